//! A throwaway mail stack on loopback: real Dovecot (IMAP, LMTP, SASL) and Postfix (SMTP) run
//! from a temporary directory, for caseclerk's integration tests and its demo.
//!
//! # What it owns
//! - Generating everything the stack needs under one run directory: a throwaway CA and a server
//!   certificate for `localhost`/`127.0.0.1`, Dovecot's config and passwd-file, Postfix's
//!   `main.cf`/`master.cf`/mailbox table, queue and Maildirs.
//! - Starting and stopping `dovecot -F` and Postfix's `master` as direct children, each in its own
//!   process group, and crashing/restarting Dovecot on demand. Nothing outlives the process that
//!   started it: `stop` and `Drop` end both groups, and a guard per daemon ends them if the test
//!   process is killed or interrupted (Ctrl-C does not reach the daemons' own process groups).
//! - A tiny test-side mail client: SMTP delivery into the inbound port, IMAP APPEND and FETCH.
//! - With [`StackOptions::oauth`], Microsoft 365's login: the stand-in token issuer
//!   ([`issuer`]), Dovecot's `oauth2` passdb validating its tokens, XOAUTH2/OAUTHBEARER on IMAP and
//!   submission, and a live list of mailboxes whose tokens are refused
//!   ([`MailStack::revoke_tokens_for`]); [`MailStack::kick`] ends a user's sessions as Exchange
//!   does at token expiry. Every stack has a "Sent Items" folder.
//!
//! # What it must not do
//! - Touch `/etc`, `/var` or `/run`, use systemd, or start the distribution's services: every
//!   path is under the run directory, every listener is on 127.0.0.1.
//! - Be used by the production daemon's mail path (`mailbox`, `outbox`): the client here uses plain
//!   IMAP and hand-written SMTP on loopback. Only [`crate::shell::tls`] is shared.
//! - Log passwords. The one test password appears only in the generated passwd-file; `Debug`
//!   output of [`StackOptions`] and [`MailStack`] redacts it.
//!
//! # Model
//! - **Users** are full addresses in any number of domains; the set of their domains is the stack's
//!   local domains. Postfix accepts mail for listed users only (unknown local users get `550` at
//!   RCPT, any other domain `554 Relay access denied` at RCPT) and hands it to Dovecot over LMTP.
//!   All users share one password.
//! - **Ports** are fixed (for a demo whose config names them) or, by default, picked by binding
//!   `127.0.0.1:0`; a start that loses a port race is retried with fresh ports.
//! - **Run directory**: by default a fresh `/tmp/ccds-<pid>-<n>` (unix socket paths must stay
//!   under 107 bytes, so never deep inside `target/`), removed by [`MailStack::stop`] and by
//!   `Drop` — except when dropped during a panic or when `CASECLERK_DEVSTACK_KEEP` is set, so a
//!   failing test's logs can be read. A directory given in [`StackOptions::dir`] is never removed;
//!   its mail and queue survive restarts of the demo, the certificates are reused while valid,
//!   the logs start afresh with each start.
//! - Layout: `tls/` (ca.pem, server.pem, keys), `log/` (dovecot.log, maillog, daemons' stderr),
//!   `dovecot/` (config, passwd-file, lmtp and auth sockets, base_dir), `postfix/` (etc, queue,
//!   data), `mail/<domain>/<local>/Maildir`.
//!
//! # Requirements
//! Root (Postfix's `master` refuses anything else), and the Debian packages installed by
//! `scripts/install-mailstack.sh`. Maildirs belong to the `mail` account (uid 8 on Debian), the
//! queue to `postfix`.
//!
//! Start (certificates included) takes about 0.1 s, stop about 20–100 ms.

mod client;
mod files;
pub mod issuer;
mod procs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use crate::shell::clock::{Clock, SystemClock};
use files::{Layout, SystemIds, User, io_err};
use procs::Daemon;

const DOVECOT: &str = "/usr/sbin/dovecot";
const POSTFIX_MASTER: &str = "/usr/lib/postfix/sbin/master";
const POSTQUEUE: &str = "/usr/sbin/postqueue";
const OPENSSL: &str = "/usr/bin/openssl";
/// Files whose absence means a package is missing, and which package provides them.
const REQUIRED: &[(&str, &str)] = &[
    (DOVECOT, "dovecot-core"),
    // `kick` (the OAuth mode's stand-in for Exchange ending a session); the oauth2 passdb is
    // built into dovecot-core too.
    ("/usr/bin/doveadm", "dovecot-core"),
    ("/usr/lib/dovecot/imap", "dovecot-imapd"),
    ("/usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
    (POSTFIX_MASTER, "postfix"),
    ("/usr/lib/postfix/sbin/smtpd", "postfix"),
    (POSTQUEUE, "postfix"),
    (OPENSSL, "openssl"),
];

/// How long start-up may take before it is reported as failed (generous for a loaded CI box;
/// a normal start takes ~0.1 s).
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Limit for any one client operation (connect, login, APPEND, FETCH, SMTP conversation).
const CLIENT_LIMIT: Duration = Duration::from_secs(30);
/// Keeps temporary run directories (for reading a failed start's full logs) when set.
const KEEP_ENV: &str = "CASECLERK_DEVSTACK_KEEP";
const KEEP_HINT: &str = " (set CASECLERK_DEVSTACK_KEEP=1 to keep the run directory)";
/// Lines of log quoted in error messages.
const LOG_TAIL_LINES: usize = 30;

/// What to start.
#[derive(Clone)]
pub struct StackOptions {
    /// Full addresses in any domains, e.g. `bsp@bury.test`, `referrer@hospital.test`. All their
    /// domains become the stack's local domains. Lower-cased; duplicates are ignored.
    pub users: Vec<String>,
    /// One password for every user (a test stack). No `:` or control characters.
    pub password: String,
    /// Fixed ports (the demo); `None` picks free loopback ports.
    pub ports: Option<Ports>,
    /// Run directory (absolute, ≤ 60 bytes, letters/digits/`/._-`); `None` = a fresh one under
    /// /tmp, removed on stop.
    pub dir: Option<PathBuf>,
    /// Start an IMAP server that does not advertise IDLE (to test the polling fallback).
    pub without_idle: bool,
    /// Microsoft 365's login as well: a local token issuer ([`issuer::TokenIssuer`], the
    /// client-credentials grant with Entra ID's answers), Dovecot's `oauth2` passdb validating
    /// its tokens, and XOAUTH2/OAUTHBEARER for IMAP and submission. Passwords keep working.
    pub oauth: bool,
    /// The server keeps a copy of what each user submits in the user's "Sent" folder (Postfix
    /// `sender_bcc_maps` on submission → Dovecot LMTP `lmtp_save_to_detail_mailbox`), decided
    /// before Postfix answers `250` — as Exchange Online keeps SMTP submissions in Sent Items.
    pub sent_copies: bool,
}

impl StackOptions {
    /// Options for `users` sharing `password`, on free ports in a fresh temporary directory.
    pub fn new<U: Into<String>>(
        users: impl IntoIterator<Item = U>,
        password: impl Into<String>,
    ) -> StackOptions {
        StackOptions {
            users: users.into_iter().map(Into::into).collect(),
            password: password.into(),
            ports: None,
            dir: None,
            without_idle: false,
            oauth: false,
            sent_copies: false,
        }
    }
}

impl std::fmt::Debug for StackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackOptions")
            .field("users", &self.users)
            .field("password", &"<redacted>")
            .field("ports", &self.ports)
            .field("dir", &self.dir)
            .finish()
    }
}

/// The stack's loopback ports (all on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// IMAP; STARTTLS available, plain LOGIN allowed (loopback test stack).
    pub imap: u16,
    /// IMAP over implicit TLS.
    pub imaps: u16,
    /// Inbound "MX": no AUTH; accepts mail for the local domains' users from anyone on loopback.
    pub smtp: u16,
    /// Submission: STARTTLS required, then AUTH PLAIN/LOGIN (Dovecot SASL); only authenticated
    /// clients may send, and only to the local domains. This is where caseclerk's outgoing mail
    /// goes.
    pub submission: u16,
    /// Submission over implicit TLS (RFC 8314's "submissions", 465 in real life): TLS from the
    /// first byte, then AUTH as on [`Ports::submission`] (and the same copy in Sent).
    pub submissions: u16,
}

/// A message as fetched from a user's INBOX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Its IMAP UID.
    pub uid: u32,
    /// Its INTERNALDATE (arrival, or the date given to APPEND).
    pub internal_date: Option<DateTime<FixedOffset>>,
    /// `BODY[]`: the full raw message.
    pub raw: Vec<u8>,
}

/// Everything that can go wrong with the stack. Messages name what failed and quote the relevant
/// log's last lines.
#[derive(Debug, thiserror::Error)]
pub enum DevstackError {
    /// A binary or system account is missing.
    #[error("{what} is missing; run scripts/install-mailstack.sh")]
    NotInstalled {
        /// What was looked for.
        what: String,
    },
    /// Not running as root.
    #[error(
        "the mail stack must be started as root (Postfix's master refuses to run otherwise); \
         effective uid is {euid}"
    )]
    NotRoot {
        /// Our effective uid.
        euid: u32,
    },
    /// Invalid [`StackOptions`] or arguments.
    #[error("devstack: {0}")]
    Options(String),
    /// A file-system or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command (openssl) failed.
    #[error("{what} failed ({status}):\n{output}")]
    Command {
        /// What was being done.
        what: String,
        /// Exit status.
        status: String,
        /// Its stderr/stdout.
        output: String,
    },
    /// A daemon exited while starting.
    #[error("{server} exited during start-up ({status}){KEEP_HINT}\n{logs}")]
    Exited {
        /// "dovecot" or "postfix".
        server: &'static str,
        /// Its exit status.
        status: String,
        /// Tails of its logs.
        logs: String,
    },
    /// A listener did not answer in time.
    #[error("the mail stack was not ready after {waited:?}: {pending}{KEEP_HINT}\n{logs}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// Each listener still failing, with its last error.
        pending: String,
        /// Tails of both daemons' logs.
        logs: String,
    },
    /// Processes survived SIGKILL (should not happen).
    #[error("{what} did not stop: pids {pids:?} are still running")]
    Stuck {
        /// "dovecot" or "postfix".
        what: &'static str,
        /// The survivors.
        pids: Vec<u32>,
    },
    /// The SMTP server refused a command.
    #[error(
        "SMTP server refused {command}: {code} {reply}\n--- maillog (last lines) ---\n{maillog}"
    )]
    SmtpRejected {
        /// The command refused, e.g. `RCPT TO:<x@y.test>`.
        command: String,
        /// The reply code (4xx temporary, 5xx permanent).
        code: u16,
        /// The reply text.
        reply: String,
        /// Tail of Postfix's log.
        maillog: String,
    },
    /// SMTP connection or protocol trouble.
    #[error("SMTP delivery failed: {message}\n--- maillog (last lines) ---\n{maillog}")]
    Smtp {
        /// What went wrong.
        message: String,
        /// Tail of Postfix's log.
        maillog: String,
    },
    /// An IMAP operation failed.
    #[error("IMAP {user}: {message}\n--- dovecot.log (last lines) ---\n{log}")]
    Imap {
        /// The user whose mailbox was being used.
        user: String,
        /// What went wrong.
        message: String,
        /// Tail of Dovecot's log.
        log: String,
    },
    /// [`MailStack::wait_for`] gave up.
    #[error(
        "{user}'s INBOX had {found} message(s), not the {wanted} awaited, after {waited:?}\
         {last_error}\n--- maillog (last lines) ---\n{maillog}"
    )]
    Timeout {
        /// The user.
        user: String,
        /// How many were awaited.
        wanted: usize,
        /// How many were there at the last look.
        found: usize,
        /// How long we waited.
        waited: Duration,
        /// The last fetch error, if the last look failed.
        last_error: String,
        /// Tail of Postfix's log.
        maillog: String,
    },
    /// [`MailStack::wait_queue_empty`] gave up.
    #[error(
        "Postfix still held {queued:?} after {waited:?}\n--- maillog (last lines) ---\n{maillog}"
    )]
    QueueNotEmpty {
        /// The queue files left (queue/file).
        queued: Vec<String>,
        /// How long we waited.
        waited: Duration,
        /// Tail of Postfix's log.
        maillog: String,
    },
    /// The stack's TLS client configuration could not be built.
    #[error(transparent)]
    Tls(#[from] crate::shell::tls::TlsError),
}

/// A running Dovecot + Postfix. Stop it with [`MailStack::stop`]; dropping it kills both.
pub struct MailStack {
    /// The run directory.
    pub dir: PathBuf,
    /// The loopback ports.
    pub ports: Ports,
    /// The throwaway CA that signed the server certificate (for `localhost` and `127.0.0.1`):
    /// give it to [`crate::shell::tls::client_config`] or lettre's `add_root_certificate`.
    pub ca_pem: PathBuf,
    /// The one password of every user.
    pub password: String,
    users: Vec<User>,
    layout: Layout,
    dovecot: Option<Daemon>,
    postfix: Option<Daemon>,
    /// Process group of a Dovecot killed by `kill_imap`, until its members are confirmed gone.
    killed_dovecot: Option<i32>,
    /// Whether the run directory is ours to delete.
    temporary: bool,
    without_idle: bool,
    sent_copies: bool,
    /// The stand-in token issuer, in OAuth mode ([`StackOptions::oauth`]).
    pub issuer: Option<issuer::TokenIssuer>,
}

impl std::fmt::Debug for MailStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailStack")
            .field("dir", &self.dir)
            .field("ports", &self.ports)
            .field("ca_pem", &self.ca_pem)
            .field("password", &"<redacted>")
            .field("users", &self.users())
            .field("dovecot", &self.dovecot.as_ref().map(Daemon::pgid))
            .field("postfix", &self.postfix.as_ref().map(Daemon::pgid))
            .finish()
    }
}

impl MailStack {
    /// Checks that every binary the stack runs is installed; the error names the missing one and
    /// the package that provides it.
    pub fn check_installed() -> Result<(), DevstackError> {
        for (path, package) in REQUIRED {
            if !Path::new(path).exists() {
                return Err(DevstackError::NotInstalled {
                    what: format!("{path} (Debian package {package})"),
                });
            }
        }
        Ok(())
    }

    /// Writes the run directory and starts Dovecot and Postfix. Returns once IMAP, IMAPS, SMTP
    /// and submission answer with greetings, and Dovecot's LMTP and auth sockets (Postfix's
    /// delivery and SASL paths) accept connections.
    pub async fn start(opts: StackOptions) -> Result<MailStack, DevstackError> {
        Self::check_installed()?;
        let euid = nix::unistd::geteuid().as_raw();
        if euid != 0 {
            return Err(DevstackError::NotRoot { euid });
        }
        let users = files::parse_users(&opts.users)?;
        files::check_password(&opts.password)?;
        let ids = SystemIds::lookup()?;
        let (dir, temporary) = match &opts.dir {
            Some(dir) => {
                files::check_dir(dir)?;
                (dir.clone(), false)
            }
            None => (fresh_temp_dir()?, true),
        };
        let layout = Layout { root: dir.clone() };
        let mut stack = MailStack {
            dir,
            ports: opts.ports.unwrap_or(Ports {
                imap: 0,
                imaps: 0,
                smtp: 0,
                submission: 0,
                submissions: 0,
            }),
            ca_pem: layout.ca_pem(),
            password: opts.password.clone(),
            users,
            layout,
            dovecot: None,
            postfix: None,
            killed_dovecot: None,
            temporary,
            without_idle: opts.without_idle,
            sent_copies: opts.sent_copies,
            issuer: None,
        };
        // From here on, an error drops `stack`, which kills whatever was started.
        files::create_dirs(&stack.layout, &ids)?;
        ensure_certificates(&stack.layout).await?;
        stack.write_accounts(&ids)?;
        if opts.oauth {
            let l = &stack.layout;
            files::write_file(&l.oauth2_revoked(), "", 0o640, Some((0, ids.dovecot_gid)))?;
            files::write_file(
                &l.oauth2_ext(),
                &issuer::dovecot_oauth2_ext(&l.oauth2_keys()),
                0o640,
                Some((0, ids.dovecot_gid)),
            )?;
            stack.issuer = Some(issuer::TokenIssuer::start(
                &l.server_pem(),
                &l.server_key(),
                &l.oauth2_keys(),
                ids.dovecot_gid,
            )?);
        }

        let attempts = if opts.ports.is_some() { 1 } else { 3 };
        for attempt in 1..=attempts {
            if opts.ports.is_none() {
                stack.ports = pick_free_ports()?;
            }
            stack.write_server_configs(&ids)?;
            for log in [
                stack.layout.dovecot_log(),
                stack.layout.dovecot_stderr(),
                stack.layout.maillog(),
                stack.layout.postfix_stderr(),
            ] {
                let _ = std::fs::remove_file(log);
            }
            stack.dovecot = Some(stack.spawn_dovecot()?);
            stack.postfix = Some(stack.spawn_postfix()?);
            match stack.wait_ready(true, true).await {
                Ok(()) => return Ok(stack),
                Err(e) if attempt < attempts && stack.lost_port_race() => {
                    tracing::debug!("devstack: a port was taken, retrying with new ones: {e}");
                    stack.kill_all();
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Stops both daemons: SIGTERM to each process group, then waits until every process in them
    /// has exited (SIGKILL after 10 s). Removes a temporary run directory.
    pub async fn stop(mut self) -> Result<(), DevstackError> {
        let dovecot = self.dovecot.take().map(|d| d.terminate(STOP_GRACE));
        let postfix = self.postfix.take().map(|d| d.terminate(STOP_GRACE));
        let (d, p) = tokio::join!(
            async {
                match dovecot {
                    Some(f) => f.await.map(Some),
                    None => Ok(None),
                }
            },
            async {
                match postfix {
                    Some(f) => f.await.map(Some),
                    None => Ok(None),
                }
            }
        );
        for (name, killed) in [("dovecot", &d), ("postfix", &p)] {
            if let Ok(Some((_, true))) = killed {
                tracing::warn!("devstack: {name} needed SIGKILL to stop");
            }
        }
        d?;
        p?;
        // A Dovecot crashed by `kill_imap` and never restarted: make sure its workers are gone.
        if let Some(pgid) = self.killed_dovecot.take()
            && !procs::wait_members_gone(pgid, Duration::from_secs(5)).await
        {
            return Err(DevstackError::Stuck {
                what: "dovecot",
                pids: procs::live_members(pgid),
            });
        }
        // Drop removes a temporary directory.
        Ok(())
    }

    /// SIGKILLs Dovecot's whole process group at once: a "server crashed" test. Connected IMAP
    /// clients see the connection drop; Postfix keeps accepting mail and defers it (retrying
    /// every second or two) until [`MailStack::restart_imap`].
    pub fn kill_imap(&mut self) {
        if let Some(d) = self.dovecot.take() {
            let pgid = d.kill_now();
            tracing::debug!("devstack: killed dovecot (process group {pgid})");
            self.killed_dovecot = Some(pgid);
        }
    }

    /// The process group of the running Dovecot (its master and every worker), for a test that
    /// signals it itself — SIGSTOP for a server that stops answering without closing anything,
    /// SIGCONT to bring it back. `None` after [`MailStack::kill_imap`].
    pub fn imap_process_group(&self) -> Option<i32> {
        self.dovecot.as_ref().map(Daemon::pgid)
    }

    /// Starts Dovecot again on the same ports, config and mail, after [`MailStack::kill_imap`]
    /// (if it is still running, it is stopped gracefully first). Returns when IMAP, IMAPS, LMTP
    /// and auth answer again and Postfix has been asked to deliver what it deferred meanwhile.
    ///
    /// That last step is `postqueue -f`, as an operator would run after mending Dovecot. Left to
    /// its back-off, Postfix can hold deferred mail for a whole minute: when its queue scan meets
    /// a message the LMTP agent has just deferred but not yet unlocked, qmgr logs "skipped, still
    /// being delivered" and puts it back with a fixed 60 s delay (seen once in CI).
    pub async fn restart_imap(&mut self) -> Result<(), DevstackError> {
        if let Some(d) = self.dovecot.take() {
            d.terminate(STOP_GRACE).await?;
        }
        if let Some(pgid) = self.killed_dovecot.take()
            && !procs::wait_members_gone(pgid, Duration::from_secs(5)).await
        {
            return Err(DevstackError::Stuck {
                what: "dovecot",
                pids: procs::live_members(pgid),
            });
        }
        // We know the previous master is dead; a stale pid file whose pid has been reused would
        // make Dovecot refuse to start.
        let _ = std::fs::remove_file(self.layout.dovecot_base().join("master.pid"));
        self.dovecot = Some(self.spawn_dovecot()?);
        self.wait_ready(true, false).await?;
        self.flush_queue().await
    }

    /// `postqueue -f`: every message Postfix holds, deferred ones included and whatever their
    /// back-off, is tried again now.
    pub async fn flush_queue(&self) -> Result<(), DevstackError> {
        let out = tokio::process::Command::new(POSTQUEUE)
            .arg("-c")
            .arg(self.layout.postfix_etc())
            .arg("-f")
            .output()
            .await
            .map_err(io_err("running postqueue -f"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(DevstackError::Command {
                what: "postqueue -f".into(),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// OAuth mode: from now on the servers refuse every token for `mailbox` (as Exchange does
    /// once the app's permission on the mailbox is removed), tokens already issued included;
    /// the token endpoint still issues them. `None` gives the permission back.
    ///
    /// Returns once Dovecot will see the change: its passwd-file is re-read at most once per
    /// second of its clock (`last_sync_time == ioloop_time`), so a lookup in the second of the
    /// write could still use the old list; this waits for the next second to begin.
    pub async fn revoke_tokens_for(&self, mailbox: Option<&str>) -> Result<(), DevstackError> {
        let line = mailbox
            .map(|m| format!("{}:::\n", m.to_ascii_lowercase()))
            .unwrap_or_default();
        let path = self.layout.oauth2_revoked();
        let written = SystemClock.now().timestamp();
        std::fs::write(&path, line).map_err(io_err(format!("writing {}", path.display())))?;
        while SystemClock.now().timestamp() <= written {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// End `user`'s IMAP sessions now (`doveadm kick`): what Exchange does when a session's
    /// token expires (`* BYE … AccessTokenExpired`); the client sees a `BYE`.
    pub async fn kick(&self, user: &str) -> Result<(), DevstackError> {
        let out = tokio::process::Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(self.layout.dovecot_conf())
            .args(["kick", user])
            .output()
            .await
            .map_err(io_err("running doveadm kick"))?;
        // doveadm kick exits 68 (EX_NOUSER) when nobody was connected.
        if out.status.success() || out.status.code() == Some(68) {
            Ok(())
        } else {
            Err(DevstackError::Command {
                what: format!("doveadm kick {user}"),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Give `user`'s folder `folder` a new UIDVALIDITY (`doveadm mailbox update`): what a moved,
    /// restored or re-indexed mailbox looks like to a client, which must read it again.
    pub async fn renumber(&self, user: &str, folder: &str) -> Result<(), DevstackError> {
        let user = self.known_user(user)?;
        let validity = (SystemClock.now().timestamp() as u32)
            .wrapping_add(1000)
            .to_string();
        let out = tokio::process::Command::new("/usr/bin/doveadm")
            .arg("-c")
            .arg(self.layout.dovecot_conf())
            .args([
                "mailbox",
                "update",
                "-u",
                &user,
                "--uid-validity",
                &validity,
                folder,
            ])
            .output()
            .await
            .map_err(io_err("running doveadm mailbox update"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(DevstackError::Command {
                what: format!("doveadm mailbox update -u {user} --uid-validity {validity}"),
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Every message in `user`'s folder `folder` (e.g. "Sent Items"), with its flags.
    pub async fn fetch_folder(
        &self,
        user: &str,
        folder: &str,
    ) -> Result<Vec<(Fetched, Vec<String>)>, DevstackError> {
        let user = self.known_user(user)?;
        let port = self.ports.imap;
        let password = self.password.as_str();
        let login = user.clone();
        self.imap(&user, async move {
            let mut session = client::imap_login(port, &login, password).await?;
            let all = client::imap_fetch_folder(&mut session, folder).await?;
            let _ = session.logout().await;
            Ok(all)
        })
        .await
    }

    /// SIGSTOPs (`true`) or SIGCONTs (`false`) Postfix's whole process group: a frozen SMTP
    /// server. A client connecting meanwhile waits in the listen queue for its greeting, so a
    /// test can hold a letter between our intent and the server's `250`.
    pub fn freeze_smtp(&self, frozen: bool) {
        if let Some(p) = &self.postfix {
            let signal = if frozen {
                nix::sys::signal::Signal::SIGSTOP
            } else {
                nix::sys::signal::Signal::SIGCONT
            };
            p.signal_group(signal);
        }
    }

    /// Postfix's log (`log/maillog`), for failure messages. Empty if there is none yet. Postfix
    /// logs through `postlogd`, so a line can appear a few milliseconds after the event.
    pub fn maillog(&self) -> String {
        read_lossy(&self.layout.maillog())
    }

    /// Dovecot's log (`log/dovecot.log`), for failure messages.
    pub fn dovecot_log(&self) -> String {
        read_lossy(&self.layout.dovecot_log())
    }

    /// The stack's users (lower-cased full addresses).
    pub fn users(&self) -> Vec<&str> {
        self.users.iter().map(|u| u.address.as_str()).collect()
    }

    /// Sends `raw` to the inbound SMTP port as an agency's server would (no TLS, no AUTH).
    /// `from` may be empty (null sender). A refusal is [`DevstackError::SmtpRejected`] naming the
    /// refused command (e.g. `RCPT TO:<…>`). Returns when Postfix has queued the message;
    /// use [`MailStack::wait_for`] to see it arrive.
    pub async fn deliver(&self, from: &str, to: &[&str], raw: &[u8]) -> Result<(), DevstackError> {
        if to.is_empty() {
            return Err(DevstackError::Options(
                "deliver needs at least one recipient".into(),
            ));
        }
        let run = client::smtp_deliver(self.ports.smtp, from, to, raw);
        let failure = match tokio::time::timeout(CLIENT_LIMIT, run).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(failure)) => failure,
            Err(_) => client::SmtpFailure::Io(format!("no answer within {CLIENT_LIMIT:?}")),
        };
        // postlogd writes asynchronously: give it a moment so the tail shows this refusal.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let maillog = self.maillog_tail();
        Err(match failure {
            client::SmtpFailure::Rejected { command, reply } => DevstackError::SmtpRejected {
                command,
                code: reply.code,
                reply: reply.text,
                maillog,
            },
            client::SmtpFailure::Io(message) => DevstackError::Smtp { message, maillog },
        })
    }

    /// IMAP APPENDs `raw` to `user`'s INBOX with that INTERNALDATE. The date must lie in the past:
    /// Dovecot silently clamps future dates to "now", so they are refused here.
    pub async fn append(
        &self,
        user: &str,
        raw: &[u8],
        internal_date: DateTime<FixedOffset>,
    ) -> Result<(), DevstackError> {
        if internal_date > SystemClock.now() {
            return Err(DevstackError::Options(format!(
                "append: internal date {internal_date} is in the future; Dovecot would clamp it \
                 to the current time"
            )));
        }
        let user = self.known_user(user)?;
        let port = self.ports.imap;
        let password = self.password.as_str();
        let login = user.clone();
        self.imap(&user, async move {
            let mut session = client::imap_login(port, &login, password).await?;
            client::imap_append(&mut session, raw, internal_date).await?;
            let _ = session.logout().await;
            Ok(())
        })
        .await
    }

    /// Append many messages to `user`'s INBOX over four sessions at once (an old mailbox in
    /// seconds; UIDs then do not follow the list's order), each with its own internal date (none
    /// in the future).
    pub async fn append_many(
        &self,
        user: &str,
        messages: &[(Vec<u8>, DateTime<FixedOffset>)],
    ) -> Result<(), DevstackError> {
        let now = SystemClock.now();
        if let Some((_, d)) = messages.iter().find(|(_, d)| *d > now) {
            return Err(DevstackError::Options(format!(
                "append: internal date {d} is in the future; Dovecot would clamp it to the current time"
            )));
        }
        let user = self.known_user(user)?;
        let port = self.ports.imap;
        let password = self.password.as_str();
        let batches = messages
            .chunks(messages.len().div_ceil(4).max(1))
            .map(|batch| {
                let login = user.clone();
                self.imap(&user, async move {
                    let mut session = client::imap_login(port, &login, password).await?;
                    for (raw, date) in batch {
                        client::imap_append(&mut session, raw, *date).await?;
                    }
                    let _ = session.logout().await;
                    Ok(())
                })
            });
        futures::future::try_join_all(batches).await?;
        Ok(())
    }

    /// Every message in `user`'s INBOX, in UID order, fetched with `BODY.PEEK[]` (flags are not
    /// changed) and INTERNALDATE.
    pub async fn fetch_all(&self, user: &str) -> Result<Vec<Fetched>, DevstackError> {
        let user = self.known_user(user)?;
        let port = self.ports.imap;
        let password = self.password.as_str();
        let login = user.clone();
        self.imap(&user, async move {
            let mut session = client::imap_login(port, &login, password).await?;
            let all = client::imap_fetch_all(&mut session).await?;
            let _ = session.logout().await;
            Ok(all)
        })
        .await
    }

    /// Polls [`MailStack::fetch_all`] every 100 ms until `user`'s INBOX holds at least
    /// `at_least` messages. Fetch errors (say, Dovecot restarting) count as "not yet"; on
    /// timeout the error quotes the last one and the maillog's tail.
    pub async fn wait_for(
        &self,
        user: &str,
        at_least: usize,
        timeout: Duration,
    ) -> Result<Vec<Fetched>, DevstackError> {
        self.known_user(user)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut found = 0;
        let mut last_error = String::new();
        loop {
            match self.fetch_all(user).await {
                Ok(all) if all.len() >= at_least => return Ok(all),
                Ok(all) => {
                    found = all.len();
                    last_error.clear();
                }
                Err(e) => last_error = format!("; last fetch failed: {e}"),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DevstackError::Timeout {
                    user: user.to_string(),
                    wanted: at_least,
                    found,
                    waited: timeout,
                    last_error,
                    maillog: self.maillog_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls Postfix's queue directories every 20 ms until they hold no message: everything
    /// Postfix accepted has been handed to Dovecot (LMTP answers only once the message is in the
    /// mailbox) or bounced. On timeout the error lists what is left and the maillog's tail.
    pub async fn wait_queue_empty(&self, timeout: Duration) -> Result<(), DevstackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let queued = self.queued();
            if queued.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DevstackError::QueueNotEmpty {
                    queued,
                    waited: timeout,
                    maillog: self.maillog_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The message files in Postfix's queues (as "queue/name"), hashed subdirectories included.
    fn queued(&self) -> Vec<String> {
        fn walk(dir: &Path, queue: &str, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, queue, out);
                } else {
                    out.push(format!("{queue}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        let mut out = Vec::new();
        for queue in ["maildrop", "incoming", "active", "deferred", "hold"] {
            walk(&self.layout.postfix_queue().join(queue), queue, &mut out);
        }
        out
    }

    // ---- internals -------------------------------------------------------------------------

    fn known_user(&self, user: &str) -> Result<String, DevstackError> {
        let lower = user.to_ascii_lowercase();
        if self.users.iter().any(|u| u.address == lower) {
            Ok(lower)
        } else {
            Err(DevstackError::Options(format!(
                "{user} is not one of the stack's users {:?}",
                self.users()
            )))
        }
    }

    async fn imap<T>(
        &self,
        user: &str,
        op: impl Future<Output = Result<T, String>>,
    ) -> Result<T, DevstackError> {
        client::limit("IMAP", CLIENT_LIMIT, op)
            .await
            .map_err(|message| DevstackError::Imap {
                user: user.to_string(),
                message,
                log: tail(&self.dovecot_log(), LOG_TAIL_LINES),
            })
    }

    fn maillog_tail(&self) -> String {
        tail(&self.maillog(), LOG_TAIL_LINES)
    }

    /// Dovecot's passwd-file and Postfix's mailbox table (the users never change while running).
    fn write_accounts(&self, ids: &SystemIds) -> Result<(), DevstackError> {
        let l = &self.layout;
        files::write_file(
            &l.dovecot_users(),
            &files::dovecot_users(l, &self.users, &self.password, ids),
            0o640,
            Some((0, ids.dovecot_gid)),
        )?;
        let vmailbox = l.postfix_etc().join("vmailbox");
        files::write_file(
            &vmailbox,
            &files::postfix_vmailbox(l, &self.users),
            0o644,
            None,
        )?;
        files::backdate(&vmailbox)
    }

    /// The files that name ports.
    fn write_server_configs(&self, ids: &SystemIds) -> Result<(), DevstackError> {
        let l = &self.layout;
        files::write_file(
            &l.dovecot_conf(),
            &files::dovecot_conf(
                l,
                &self.ports,
                ids,
                self.without_idle,
                self.issuer.is_some(),
                self.sent_copies,
            ),
            0o644,
            None,
        )?;
        let main_cf = l.postfix_etc().join("main.cf");
        let master_cf = l.postfix_etc().join("master.cf");
        let domains = files::domains(&self.users);
        let mut main = files::postfix_main_cf(l, &domains);
        let mut master = files::postfix_master_cf(&self.ports);
        if self.sent_copies {
            let (more, with_copies) = files::postfix_sent_copies(l, &master);
            main.push_str(&more);
            master = with_copies;
            let bcc = l.postfix_etc().join("sender_bcc");
            files::write_file(&bcc, &files::postfix_sender_bcc(&self.users), 0o644, None)?;
            files::backdate(&bcc)?;
        }
        files::write_file(&main_cf, &main, 0o644, None)?;
        files::write_file(&master_cf, &master, 0o644, None)?;
        files::backdate(&main_cf)?;
        files::backdate(&master_cf)
    }

    fn spawn_dovecot(&self) -> Result<Daemon, DevstackError> {
        let mut cmd = Command::new(DOVECOT);
        cmd.arg("-F").arg("-c").arg(self.layout.dovecot_conf());
        Daemon::spawn("dovecot", cmd, &self.layout.dovecot_stderr())
    }

    fn spawn_postfix(&self) -> Result<Daemon, DevstackError> {
        let etc = self.layout.postfix_etc();
        let mut cmd = Command::new(POSTFIX_MASTER);
        // -d: stay attached (no setsid, which would fail in the process group we created, and
        // keep stderr for start-up errors). master never forks itself into the background.
        cmd.arg("-d").arg("-c").arg(&etc).env("MAIL_CONFIG", &etc);
        Daemon::spawn("postfix", cmd, &self.layout.postfix_stderr())
    }

    /// Probes the listeners until all answer, a daemon exits, or [`START_LIMIT`] passes.
    async fn wait_ready(&mut self, dovecot: bool, postfix: bool) -> Result<(), DevstackError> {
        let tls = crate::shell::tls::client_config(Some(&self.ca_pem))?;
        #[derive(Clone, Copy, PartialEq)]
        enum Probe {
            Imap,
            Imaps,
            Lmtp,
            Auth,
            Smtp,
            Submission,
            Submissions,
        }
        let mut pending: Vec<(Probe, String)> = Vec::new();
        if dovecot {
            for p in [Probe::Imap, Probe::Imaps, Probe::Lmtp, Probe::Auth] {
                pending.push((p, "not tried".into()));
            }
        }
        if postfix {
            for p in [Probe::Smtp, Probe::Submission, Probe::Submissions] {
                pending.push((p, "not tried".into()));
            }
        }
        let start = tokio::time::Instant::now();
        loop {
            self.check_exited()?;
            let mut still = Vec::new();
            // Postfix's implicit-TLS listener offers AUTH from its first byte, so each of its
            // processes asks Dovecot's auth socket for mechanisms at once: probed before that
            // socket exists, the process exits and Postfix throttles the listener for a minute.
            // It is probed only once the auth socket answers.
            let mut auth_pending = pending.iter().any(|(p, _)| *p == Probe::Auth);
            for (probe, _) in pending {
                let step = Duration::from_secs(1);
                let ports = self.ports;
                if probe == Probe::Submissions && auth_pending {
                    still.push((probe, "waiting for Dovecot's auth socket".into()));
                    continue;
                }
                let result = match probe {
                    Probe::Imap => {
                        client::limit("IMAP", step, client::probe_imap(ports.imap, None)).await
                    }
                    Probe::Imaps => {
                        client::limit(
                            "IMAPS",
                            step,
                            client::probe_imap(ports.imaps, Some(tls.clone())),
                        )
                        .await
                    }
                    Probe::Lmtp => {
                        client::limit(
                            "LMTP",
                            step,
                            client::probe_lmtp_unix(&self.layout.lmtp_socket()),
                        )
                        .await
                    }
                    Probe::Auth => client::probe_unix(&self.layout.auth_socket()).await,
                    Probe::Smtp => {
                        client::limit("SMTP", step, client::probe_smtp_tcp(ports.smtp)).await
                    }
                    Probe::Submission => {
                        client::limit("submission", step, client::probe_smtp_tcp(ports.submission))
                            .await
                    }
                    Probe::Submissions => {
                        client::limit(
                            "submissions",
                            step,
                            client::probe_smtp_tls(ports.submissions, tls.clone()),
                        )
                        .await
                    }
                };
                match result {
                    Ok(()) if probe == Probe::Auth => auth_pending = false,
                    Ok(()) => {}
                    Err(e) => {
                        // A probe fails at once when its daemon has died: say so rather than
                        // wait.
                        self.check_exited()?;
                        still.push((probe, e));
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= START_LIMIT {
                let name = |p: Probe| match p {
                    Probe::Imap => format!("IMAP 127.0.0.1:{}", self.ports.imap),
                    Probe::Imaps => format!("IMAPS 127.0.0.1:{}", self.ports.imaps),
                    Probe::Lmtp => format!("LMTP {}", self.layout.lmtp_socket().display()),
                    Probe::Auth => format!("auth {}", self.layout.auth_socket().display()),
                    Probe::Smtp => format!("SMTP 127.0.0.1:{}", self.ports.smtp),
                    Probe::Submission => format!("submission 127.0.0.1:{}", self.ports.submission),
                    Probe::Submissions => {
                        format!("submissions 127.0.0.1:{}", self.ports.submissions)
                    }
                };
                let pending = pending
                    .iter()
                    .map(|(p, e)| format!("{} ({e})", name(*p)))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(DevstackError::NotReady {
                    waited: start.elapsed(),
                    pending,
                    logs: self.log_tails(),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An error if either daemon has exited.
    fn check_exited(&mut self) -> Result<(), DevstackError> {
        let mut exited = None;
        for daemon in [&mut self.dovecot, &mut self.postfix].into_iter().flatten() {
            if let Some(status) = daemon.exited() {
                exited = Some((daemon.name, status));
                break;
            }
        }
        match exited {
            Some((server, status)) => Err(DevstackError::Exited {
                server,
                status,
                logs: self.log_tails(),
            }),
            None => Ok(()),
        }
    }

    /// Whether the last start failed because a port had been taken in the meantime.
    fn lost_port_race(&self) -> bool {
        self.log_tails().contains("in use")
    }

    fn log_tails(&self) -> String {
        let l = &self.layout;
        let mut out = String::new();
        for path in [
            l.dovecot_stderr(),
            l.dovecot_log(),
            l.postfix_stderr(),
            l.maillog(),
        ] {
            let text = read_lossy(&path);
            if !text.trim().is_empty() {
                out.push_str(&format!(
                    "--- {} (last lines) ---\n{}\n",
                    path.display(),
                    tail(&text, LOG_TAIL_LINES)
                ));
            }
        }
        out
    }

    /// SIGKILL both groups and reap the leaders.
    fn kill_all(&mut self) {
        for d in [self.dovecot.take(), self.postfix.take()]
            .into_iter()
            .flatten()
        {
            d.kill_now();
        }
    }

    /// Pids of every live process of both daemons (tests check they are gone after stop).
    #[cfg(test)]
    fn processes(&self) -> Vec<u32> {
        [&self.dovecot, &self.postfix]
            .into_iter()
            .flatten()
            .flat_map(|d| procs::live_members(d.pgid()))
            .collect()
    }
}

impl Drop for MailStack {
    fn drop(&mut self) {
        self.kill_all();
        let keep = std::thread::panicking() || std::env::var_os(KEEP_ENV).is_some();
        if self.temporary {
            if keep {
                eprintln!(
                    "devstack: kept run directory {} for inspection",
                    self.dir.display()
                );
            } else {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// A fresh, short, empty directory `/tmp/ccds-<pid>-<n>`. Always /tmp, not `$TMPDIR`: socket
/// paths below it must stay short.
fn fresh_temp_dir() -> Result<PathBuf, DevstackError> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(format!("/tmp/ccds-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over from an earlier process that had the same pid: skip it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(format!("creating {}", dir.display()))(e)),
        }
    }
}

/// Five distinct free loopback ports: bound together (so they differ), then released for the
/// daemons. Another process may grab one in between; `start` retries when that happens.
fn pick_free_ports() -> Result<Ports, DevstackError> {
    let listeners = (0..5)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("binding 127.0.0.1:0 to find free ports"))?;
    let port = |i: usize| -> Result<u16, DevstackError> {
        Ok(listeners[i]
            .local_addr()
            .map_err(io_err("reading a bound port"))?
            .port())
    };
    Ok(Ports {
        imap: port(0)?,
        imaps: port(1)?,
        smtp: port(2)?,
        submission: port(3)?,
        submissions: port(4)?,
    })
}

/// A throwaway CA and a server certificate for `localhost` and 127.0.0.1 in `dir/tls` (made as
/// for the mail stack): the CA's, the certificate's and the key's paths. The web workspace's
/// HTTPS test serves with them.
pub async fn throwaway_certificates(
    dir: &Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf), DevstackError> {
    let layout = Layout {
        root: dir.to_path_buf(),
    };
    std::fs::create_dir_all(layout.tls()).map_err(files::io_err(format!(
        "creating {}",
        layout.tls().display()
    )))?;
    ensure_certificates(&layout).await?;
    Ok((layout.ca_pem(), layout.server_pem(), layout.server_key()))
}

/// Generates the throwaway CA and the server certificate with the openssl CLI (EC P-256 keys,
/// ~50 ms), unless valid ones are already there (a reused demo directory).
async fn ensure_certificates(layout: &Layout) -> Result<(), DevstackError> {
    let tls = layout.tls();
    let (ca_key, csr, cnf, serial) = (
        tls.join("ca.key"),
        tls.join("server.csr"),
        tls.join("openssl.cnf"),
        tls.join("ca.srl"),
    );
    let (ca, cert, key) = (layout.ca_pem(), layout.server_pem(), layout.server_key());
    if ca.exists() && key.exists() {
        let still_valid = openssl(
            "checking the server certificate",
            &["x509", "-noout", "-checkend", "86400", "-in"],
            &[&cert],
        )
        .await;
        if still_valid.is_ok() {
            return Ok(());
        }
    }
    files::write_file(&cnf, files::OPENSSL_CNF, 0o644, None)?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut args: Vec<&str> = vec!["req", "-x509", "-extensions", "ca_ext", "-days", "825"];
    args.extend(ec);
    openssl(
        "creating the throwaway CA",
        &args,
        &[
            Path::new("-config"),
            &cnf,
            Path::new("-keyout"),
            &ca_key,
            Path::new("-out"),
            &ca,
        ],
    )
    .await?;
    let mut args: Vec<&str> = vec!["req", "-new", "-subj", "/CN=localhost"];
    args.extend(ec);
    openssl(
        "creating the server key and request",
        &args,
        &[
            Path::new("-config"),
            &cnf,
            Path::new("-keyout"),
            &key,
            Path::new("-out"),
            &csr,
        ],
    )
    .await?;
    openssl(
        "signing the server certificate",
        &[
            "x509",
            "-req",
            "-days",
            "825",
            "-CAcreateserial",
            "-extensions",
            "server_ext",
        ],
        &[
            Path::new("-extfile"),
            &cnf,
            Path::new("-in"),
            &csr,
            Path::new("-CA"),
            &ca,
            Path::new("-CAkey"),
            &ca_key,
            Path::new("-CAserial"),
            &serial,
            Path::new("-out"),
            &cert,
        ],
    )
    .await
}

async fn openssl(what: &str, args: &[&str], paths: &[&Path]) -> Result<(), DevstackError> {
    let out = tokio::process::Command::new(OPENSSL)
        .args(args)
        .args(paths)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(io_err(format!("{what}: running {OPENSSL}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DevstackError::Command {
            what: what.to_string(),
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
        })
    }
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests;
