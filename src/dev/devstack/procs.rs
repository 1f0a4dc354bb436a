//! Daemons as direct children, each leading its own process group.
//!
//! Both masters run in the foreground as our children, so we never read pid files and never
//! depend on PID 1 reaping a daemonised parent (which here happens only every ~2 s, making a
//! dead daemon look alive to `kill -0`). Their worker processes stay in the leader's process
//! group; signalling `-pgid` reaches all of them.
//!
//! Daemons in their own process groups do not get the terminal's Ctrl-C, so a test run that is
//! interrupted (or killed, or aborts on a panic) would leave them running. Each daemon therefore
//! gets a *guard*: a tiny `sh` in a process group of its own, blocked reading a pipe whose write
//! end only this process holds. When this process goes away for any reason the pipe reports EOF
//! and the guard sends SIGTERM (then SIGKILL) to the daemon's group. (`PR_SET_PDEATHSIG` is not
//! enough: Postfix's master changes its effective uid at start-up, which clears it.) On a normal
//! stop the guard is killed after the daemon's group is gone, so it never signals a reused id.

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::DevstackError;
use super::files::io_err;

/// One running daemon: the leader we spawned and its process group.
#[derive(Debug)]
pub(super) struct Daemon {
    pub name: &'static str,
    child: Child,
    pgid: i32,
    /// Kills the group if this process dies; dismissed once the group is gone.
    guard: Option<Child>,
}

impl Daemon {
    /// Spawns `cmd` in a new process group with stdin from /dev/null and stdout/stderr appended
    /// to `output` (so nothing can block on, or hold open, our own stdio).
    pub fn spawn(
        name: &'static str,
        mut cmd: Command,
        output: &Path,
    ) -> Result<Daemon, DevstackError> {
        use std::os::unix::process::CommandExt;
        let out = File::options()
            .create(true)
            .append(true)
            .open(output)
            .map_err(io_err(format!("opening {}", output.display())))?;
        let err = out
            .try_clone()
            .map_err(io_err(format!("opening {}", output.display())))?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let what = format!("starting {name} ({cmd:?})");
        let child = cmd.spawn().map_err(io_err(what))?;
        let pgid = i32::try_from(child.id()).expect("pids fit in i32");
        let guard = match spawn_guard(pgid) {
            Ok(guard) => guard,
            Err(e) => {
                signal_group(pgid, Signal::SIGKILL);
                return Err(io_err(format!("starting the guard of {name}"))(e));
            }
        };
        Ok(Daemon {
            name,
            child,
            pgid,
            guard: Some(guard),
        })
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// `Some(status)` once the leader has exited (and been reaped).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("unknown status ({e})")),
        }
    }

    /// Sends `signal` to the whole process group.
    pub fn signal_group(&self, signal: Signal) {
        signal_group(self.pgid, signal);
    }

    /// SIGKILL to the group and a blocking reap of the leader (a killed process is reaped within
    /// milliseconds). For `Drop` and "server crashed" tests.
    pub fn kill_now(mut self) -> i32 {
        self.signal_group(Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dismiss_guard();
        self.pgid
    }

    /// Kills and reaps the guard *before* its pipe closes, so it signals nothing.
    fn dismiss_guard(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.kill();
            let _ = guard.wait();
        }
    }

    /// SIGTERM to the group, then wait until the leader is reaped and no member of the group is
    /// left; SIGKILL after `grace`. Returns the group id and whether SIGKILL was needed.
    pub async fn terminate(mut self, grace: Duration) -> Result<(i32, bool), DevstackError> {
        self.signal_group(Signal::SIGTERM);
        if wait_group_gone(self.pgid, &mut self.child, grace).await {
            self.dismiss_guard();
            return Ok((self.pgid, false));
        }
        self.signal_group(Signal::SIGKILL);
        let _ = self.child.kill();
        if wait_group_gone(self.pgid, &mut self.child, Duration::from_secs(5)).await {
            self.dismiss_guard();
            return Ok((self.pgid, true));
        }
        // The guard stays armed: when `self` is dropped its pipe closes and it tries again.
        Err(DevstackError::Stuck {
            what: self.name,
            pids: live_members(self.pgid),
        })
    }
}

/// The guard of group `pgid` (see the module doc). Its stdin is the pipe; it lives in its own
/// process group so the terminal's Ctrl-C reaches only the test process.
fn spawn_guard(pgid: i32) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    Command::new("/bin/sh")
        .arg("-c")
        // dash: no `kill --`; a negative number after the signal names a process group.
        .arg(concat!(
            r#"read -r _; kill -TERM "-$1" 2>/dev/null || exit 0; "#,
            r#"for _ in 1 2 3 4 5 6; do sleep 0.5; kill -0 "-$1" 2>/dev/null || exit 0; done; "#,
            r#"kill -KILL "-$1" 2>/dev/null"#
        ))
        .arg("devstack-guard")
        .arg(pgid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

fn signal_group(pgid: i32, signal: Signal) {
    // A group id above 1 addresses the group we created (never 0 or 1: our own group, or init's).
    if pgid > 1 {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pgid), signal);
    }
}

/// Polls until the leader has been reaped and the group has no live member.
async fn wait_group_gone(pgid: i32, child: &mut Child, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let leader_gone = !matches!(child.try_wait(), Ok(None));
        if leader_gone && live_members(pgid).is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (up to `limit`) until no live process is left in group `pgid`.
pub(super) async fn wait_members_gone(pgid: i32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !live_members(pgid).is_empty() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Pids of the processes in group `pgid` that are still running. Zombies do not count: workers
/// orphaned by a master that has exited are reaped by PID 1 whenever it gets round to it, but
/// they hold no ports, sockets or files.
pub(super) fn live_members(pgid: i32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp …"; comm may contain spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        if group == Some(pgid) && !matches!(state, Some("Z" | "X")) {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` is a running (not zombie) process.
#[cfg(test)]
pub(super) fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|s| !matches!(s, "Z" | "X")),
        Err(_) => false,
    }
}
