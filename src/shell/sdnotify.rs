//! systemd's service notifications (`sd_notify`): ready, one status line, the watchdog, stopping.
//!
//! Owns sending datagrams to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace) when
//! systemd runs the daemon with `Type=notify`; without that variable every call does nothing, so
//! `caseclerk run` from a terminal is unchanged. The watchdog interval is half of
//! `$WATCHDOG_USEC` (when `$WATCHDOG_PID` is unset or ours), as systemd recommends.
//!
//! Sending never fails loudly: a lost notification is systemd's to notice (it times out and
//! restarts us), and nothing here may stop the daemon's work.
//!
//! Must not: decide when the daemon is healthy (the engine's loop pings only after a pass that
//! worked); put names, addresses or subjects in a status line (counts and instants only).

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where notifications go, if anywhere.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From systemd's environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::new(socket.map(PathBuf::from), usec.as_deref(), pid.as_deref())
    }

    /// From the values of those variables (tests give them directly).
    pub fn new(
        socket: Option<PathBuf>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
    ) -> Notifier {
        let target = socket.and_then(|s| {
            let bytes = s.as_os_str().as_encoded_bytes();
            match bytes.first() {
                Some(b'@') => Some(Target::Abstract(bytes[1..].to_vec())),
                Some(b'/') => Some(Target::Path(s)),
                _ => None,
            }
        });
        let ours = watchdog_pid.is_none_or(|p| p.trim() == std::process::id().to_string());
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && ours && target.is_some())
            .map(|u| Duration::from_micros(u / 2));
        Notifier { target, watchdog }
    }

    /// How often to ping the watchdog, when systemd wants pings.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Start-up is done: `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// The one line `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// A pass worked: `WATCHDOG=1` (when the watchdog is on) with the status line.
    pub fn alive(&self, status: &str) {
        if self.watchdog.is_some() {
            self.send(&format!("WATCHDOG=1\nSTATUS={}", one_line(status)));
        } else {
            self.status(status);
        }
    }

    /// Shutting down: `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        let Ok(socket) = UnixDatagram::unbound() else {
            return;
        };
        let sent = match target {
            Target::Path(p) => socket.send_to(message.as_bytes(), p).map(|_| ()),
            Target::Abstract(name) => abstract_addr(name)
                .and_then(|addr| socket.send_to_addr(message.as_bytes(), &addr).map(|_| ())),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "systemd notification not sent");
        }
    }
}

fn abstract_addr(name: &[u8]) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

/// A status is one line: newlines would start another assignment.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(name: &str) -> (UnixDatagram, PathBuf) {
        let path =
            std::env::temp_dir().join(format!("caseclerk-notify-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        (UnixDatagram::bind(&path).unwrap(), path)
    }

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn ready_status_watchdog_and_stopping_reach_the_notify_socket() {
        let (socket, path) = listener("path");
        let n = Notifier::new(Some(path.clone()), Some("600000000"), None);
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(300)));
        n.ready("first pass…");
        assert_eq!(received(&socket), "READY=1\nSTATUS=first pass…");
        n.alive("3 cases open\n0 due");
        assert_eq!(received(&socket), "WATCHDOG=1\nSTATUS=3 cases open 0 due");
        n.stopping();
        assert_eq!(received(&socket), "STOPPING=1");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn an_abstract_socket_name_is_reached_too() {
        let name = format!("caseclerk-notify-test-{}", std::process::id());
        let addr = abstract_addr(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier::new(Some(PathBuf::from(format!("@{name}"))), None, None);
        n.alive("ok");
        assert_eq!(
            received(&socket),
            "STATUS=ok",
            "no watchdog asked for: no WATCHDOG=1"
        );
    }

    #[test]
    fn without_systemd_or_for_another_pid_there_is_no_watchdog() {
        assert_eq!(
            Notifier::new(None, Some("600000000"), None).watchdog_interval(),
            None
        );
        let other = Notifier::new(Some(PathBuf::from("/run/x")), Some("600000000"), Some("1"));
        assert_eq!(other.watchdog_interval(), None);
        let relative = Notifier::new(Some(PathBuf::from("x")), None, None);
        relative.ready("nothing happens");
    }
}
