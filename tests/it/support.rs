//! The integration harness: a real mail stack, a configuration pointing at it, and the real
//! `caseclerk` binary.
//!
//! `Harness::start(process)` starts Dovecot + Postfix on free loopback ports with a mailbox for every
//! address the configuration names, writes a configuration derived from `config/example.toml` (so the
//! example stays valid) with that process, the stack's ports and CA, and a database in the run
//! directory, and offers the few verbs tests need: deliver or append mail, run a caseclerk command,
//! read a mailbox.

#![allow(dead_code)]

use caseclerk::core::intake::{self, Message};
use caseclerk::dev::devstack::{MailStack, StackOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub const SHARED: &str = "bsp@bury.test";
pub const REFERRER: &str = "referrer@hospital.test";
pub const PASSWORD: &str = "test-password";
/// The application registered with the OAuth stack's token issuer, and its secret.
pub const CLIENT_ID: &str = "11111111-2222-4333-8444-555555555555";
pub const CLIENT_SECRET: &str = "Xy7~test.secret-value";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every directory role, so any process file finds people for the roles it writes to.
const ALL_ROLES: &[(&str, &str)] = &[
    ("la", "la.lead@bury.test"),
    ("police", "police.lead@police.test"),
    ("icb", "icb.lead@icb.test"),
    ("executive_chair", "executive.chair@bury.test"),
    ("independent_scrutineer", "scrutineer@bury.test"),
    ("partnership_chair", "partnership.chair@bury.test"),
    ("strategic_partnership", "strategic@bury.test"),
    ("safeguarding_executive", "executive@bury.test"),
    ("la_head_of_safeguarding", "head.safeguarding@bury.test"),
    ("board_members", "board@bury.test"),
];

pub struct Harness {
    pub stack: MailStack,
    pub config: PathBuf,
    pub dir: PathBuf,
    pub process: String,
}

fn set(cfg: &mut toml::Table, section: &str, key: &str, v: toml::Value) {
    cfg.get_mut(section)
        .and_then(|s| s.as_table_mut())
        .expect("section")
        .insert(key.into(), v);
}

fn patch_config(process: &str, stack: &MailStack, dir: &Path) -> toml::Table {
    let mut cfg = config_for(process, dir);
    set(
        &mut cfg,
        "mailbox",
        "port",
        toml::Value::Integer(stack.ports.imaps.into()),
    );
    set(
        &mut cfg,
        "smtp",
        "port",
        toml::Value::Integer(stack.ports.submission.into()),
    );
    for section in ["mailbox", "smtp"] {
        set(
            &mut cfg,
            section,
            "ca_file",
            toml::Value::String(stack.ca_pem.display().to_string()),
        );
    }
    cfg
}

/// `config/example.toml` with `process`, a database in `dir`, absolute paths for the templates and
/// attachments, passwords read from `dir/password`, no digest, and a person for every role any
/// process file writes to; no mail server (no CA file, the example's ports).
pub fn config_for(process: &str, dir: &Path) -> toml::Table {
    let text = std::fs::read_to_string(root().join("config/example.toml")).expect("example config");
    let mut cfg: toml::Table = text.parse().expect("example config is TOML");
    let abs = |p: &str| root().join("config").join(p).display().to_string();
    set(
        &mut cfg,
        "partnership",
        "process",
        toml::Value::String(abs(&format!("processes/{process}.toml"))),
    );
    for section in ["mailbox", "smtp"] {
        cfg.get_mut(section)
            .and_then(|s| s.as_table_mut())
            .expect("section")
            .remove("ca_file");
        set(
            &mut cfg,
            section,
            "password_file",
            toml::Value::String(dir.join("password").display().to_string()),
        );
    }
    set(
        &mut cfg,
        "storage",
        "database",
        toml::Value::String(dir.join("caseclerk.db").display().to_string()),
    );
    set(
        &mut cfg,
        "templates",
        "dir",
        toml::Value::String(root().join("mail-templates").display().to_string()),
    );
    set(
        &mut cfg,
        "attachments",
        "agency_template",
        toml::Value::String(abs("attachments/agency-summary-and-chronology.docx")),
    );
    // The daily digest is off unless a test turns it on (`start_with` can add `[digest]` back), so
    // other tests' mailboxes hold exactly the letters their process decides.
    cfg.remove("digest");
    let roles = cfg
        .get_mut("roles")
        .and_then(|r| r.as_table_mut())
        .expect("roles");
    for (role, email) in ALL_ROLES {
        roles.entry(role.to_string()).or_insert_with(|| {
            let mut c = toml::Table::new();
            c.insert("name".into(), toml::Value::String(role.replace('_', " ")));
            c.insert("email".into(), toml::Value::String(email.to_string()));
            toml::Value::Array(vec![toml::Value::Table(c)])
        });
    }
    cfg
}

/// Addresses a configuration table names (mailbox, roles, agencies).
fn users_of(cfg: &toml::Table) -> Vec<String> {
    let mut out = vec![SHARED.to_string(), REFERRER.to_string()];
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    if k == "email"
                        && let Some(s) = v.as_str()
                    {
                        out.push(s.to_lowercase());
                    } else {
                        walk(v, out);
                    }
                }
            }
            toml::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    for key in ["roles", "agency", "areas"] {
        if let Some(v) = cfg.get(key) {
            walk(v, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Harness {
    /// A mail stack and a configuration for `process` (a file under config/processes).
    pub async fn start(process: &str) -> Harness {
        Self::start_with(process, |_| {}).await
    }

    /// As [`start`], letting the test change the configuration first.
    pub async fn start_with(process: &str, edit: impl Fn(&mut toml::Table)) -> Harness {
        Self::start_full(process, edit, false).await
    }

    /// As [`start_with`], on an IMAP server that does not advertise IDLE.
    pub async fn start_without_idle(process: &str, edit: impl Fn(&mut toml::Table)) -> Harness {
        Self::start_full(process, edit, true).await
    }

    /// As [`start_with`], on a stack that also speaks Microsoft 365's login (a local token
    /// issuer; XOAUTH2 on IMAP and submission), with the application [`CLIENT_ID`] registered
    /// for the shared mailbox, its secret in `dir/client-secret`, and both servers set to
    /// `auth = "oauth2"`; `edit` runs after that.
    pub async fn start_oauth(process: &str, edit: impl Fn(&mut toml::Table)) -> Harness {
        let mut h = Self::start_opts(process, |_| {}, false, true).await;
        let issuer = h.stack.issuer.as_ref().expect("OAuth mode");
        issuer.add_secret_client(CLIENT_ID, CLIENT_SECRET, SHARED);
        write_secret(&h.dir.join("client-secret"), CLIENT_SECRET);
        let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
        for section in ["mailbox", "smtp"] {
            let t = cfg[section].as_table_mut().unwrap();
            t.remove("password_file");
            t.insert("auth".into(), toml::Value::String("oauth2".into()));
        }
        let mut o = toml::Table::new();
        let s = |v: String| toml::Value::String(v);
        o.insert("authority".into(), s(issuer.authority()));
        o.insert(
            "tenant".into(),
            s(caseclerk::dev::devstack::issuer::TENANT.into()),
        );
        o.insert("client_id".into(), s(CLIENT_ID.into()));
        o.insert(
            "client_secret_file".into(),
            s(h.dir.join("client-secret").display().to_string()),
        );
        o.insert("ca_file".into(), s(h.stack.ca_pem.display().to_string()));
        cfg.insert("oauth2".into(), toml::Value::Table(o));
        edit(&mut cfg);
        std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
        h.process = process.to_string();
        h
    }

    async fn start_full(
        process: &str,
        edit: impl Fn(&mut toml::Table),
        without_idle: bool,
    ) -> Harness {
        Self::start_opts(process, edit, without_idle, false).await
    }

    async fn start_opts(
        process: &str,
        edit: impl Fn(&mut toml::Table),
        without_idle: bool,
        oauth: bool,
    ) -> Harness {
        // Ports are only known once the stack runs, so start it with the users of a provisional
        // configuration, then write the real one.
        let provisional = {
            let text = std::fs::read_to_string(root().join("config/example.toml")).unwrap();
            let mut t: toml::Table = text.parse().unwrap();
            edit(&mut t);
            t
        };
        let mut users = users_of(&provisional);
        for (_, e) in ALL_ROLES {
            users.push(e.to_string());
        }
        users.sort();
        users.dedup();
        let stack = MailStack::start(StackOptions {
            without_idle,
            oauth,
            ..StackOptions::new(users, PASSWORD)
        })
        .await
        .unwrap_or_else(|e| {
            panic!("the mail stack must start (run scripts/install-mailstack.sh): {e}")
        });
        let dir = stack.dir.join("caseclerk");
        std::fs::create_dir_all(&dir).unwrap();
        write_secret(&dir.join("password"), PASSWORD);
        let mut cfg = patch_config(process, &stack, &dir);
        edit(&mut cfg);
        let config = dir.join("caseclerk.toml");
        std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
        Harness {
            stack,
            config,
            dir,
            process: process.to_string(),
        }
    }

    /// Run `caseclerk --config <ours> ARGS…` to completion.
    pub fn caseclerk(&self, args: &[&str]) -> Output {
        self.caseclerk_logging(args, "caseclerk=debug")
    }

    /// Run `caseclerk --config <ours> ARGS…` to completion with this `RUST_LOG`.
    pub fn caseclerk_logging(&self, args: &[&str], rust_log: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_caseclerk"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", rust_log)
            .output()
            .expect("caseclerk runs")
    }

    /// Run a command that must succeed; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.caseclerk(args);
        assert!(
            out.status.success(),
            "caseclerk {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\nmaillog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.stack.maillog()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// One pass at `now` (RFC 3339), or at the real time.
    pub fn tick(&self, now: Option<&str>) -> String {
        let mut args = vec!["tick", "--process-existing"];
        if let Some(n) = now {
            args.push("--now");
            args.push(n);
        }
        self.ok(&args)
    }

    /// Deliver raw mail over SMTP, as an agency's server would.
    pub async fn deliver(&self, from: &str, to: &str, raw: &[u8]) {
        self.stack
            .deliver(from, &[to], raw)
            .await
            .expect("delivery accepted");
        // Postfix hands it to Dovecot over LMTP asynchronously: wait until it is in the mailbox.
        self.wait_until_delivered(to).await;
    }

    async fn wait_until_delivered(&self, user: &str) {
        let before = self
            .stack
            .fetch_all(user)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let _ = self
            .stack
            .wait_for(user, before.max(1), Duration::from_secs(10))
            .await;
    }

    /// Every message in a user's inbox, parsed.
    pub async fn inbox(&self, user: &str) -> Vec<Message> {
        self.stack
            .fetch_all(user)
            .await
            .expect("fetch")
            .iter()
            .map(|f| intake::parse(&f.raw))
            .collect()
    }

    /// The first letter in `member`'s inbox that asks for their vote (its subject carries a
    /// `[code …]`), waiting for their mail to arrive.
    pub async fn request_with_code(&self, member: &str) -> Message {
        self.wait_inbox(member, 1)
            .await
            .into_iter()
            .find(|m| m.subject.contains("[code "))
            .unwrap_or_else(|| panic!("{member} is asked with a code"))
    }

    /// Wait for at least `n` messages in a user's inbox.
    pub async fn wait_inbox(&self, user: &str, n: usize) -> Vec<Message> {
        self.stack
            .wait_for(user, n, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{user} should receive {n} message(s): {e}"))
            .iter()
            .map(|f| intake::parse(&f.raw))
            .collect()
    }

    /// Wait until Postfix has delivered everything it accepted, then count a user's messages.
    /// (Whatever caseclerk sent has been accepted: `tick` returns after the server's answer, and
    /// a daemon test first waits for the daemon's own log line.)
    pub async fn settled_count(&self, user: &str) -> usize {
        self.stack
            .wait_queue_empty(Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.stack.fetch_all(user).await.expect("fetch").len()
    }

    /// Start `caseclerk run` (the daemon), its log collected line by line.
    pub fn daemon(&self) -> Daemon {
        self.daemon_full(&[], &[])
    }

    /// Start `caseclerk run ARGS…`, its log collected line by line.
    pub fn daemon_with(&self, args: &[&str]) -> Daemon {
        self.daemon_full(args, &[])
    }

    /// As [`daemon`](Self::daemon), with these environment variables set (e.g. systemd's).
    pub fn daemon_with_env(&self, env: &[(&str, &str)]) -> Daemon {
        self.daemon_full(&[], env)
    }

    /// Start `caseclerk run ARGS…` with these environment variables set.
    pub fn daemon_full(&self, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_caseclerk"))
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .args(args)
            .env("RUST_LOG", "caseclerk=info")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the daemon starts");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped");
        let line = std::sync::Arc::new(tokio::sync::Notify::new());
        let (sink, signal) = (log.clone(), line.clone());
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&l);
                    log.push('\n');
                }
                signal.notify_one();
            }
            signal.notify_one();
        });
        Daemon { child, log, line }
    }

    /// The raw bytes of the last message of a user's inbox.
    pub async fn last_raw(&self, user: &str) -> Vec<u8> {
        self.stack
            .fetch_all(user)
            .await
            .expect("fetch")
            .pop()
            .expect("a message")
            .raw
    }
}

/// A running `caseclerk run`; killed when dropped.
pub struct Daemon {
    child: tokio::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    /// Signalled by the reader at every line, and when the log ends.
    line: std::sync::Arc<tokio::sync::Notify>,
}

impl Daemon {
    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until `times` lines of its log contain every one of `parts` (say "tick" and
    /// "processed=1"); the daemon exiting or 20 s passing fails the test with the log.
    pub async fn wait_log(&mut self, parts: &[&str], times: usize) {
        self.wait_log_within(parts, times, Duration::from_secs(20))
            .await
    }

    /// [`Daemon::wait_log`], failing after `limit` instead of 20 s (for what the daemon does on
    /// its own timer: a pass comes at most a minute after the last).
    pub async fn wait_log_within(&mut self, parts: &[&str], times: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter(|l| parts.iter().all(|p| l.contains(p)))
                .count();
            if found >= times {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited ({status}) before logging {parts:?} x{times}:\n{log}");
            }
            if tokio::time::timeout_at(deadline, self.line.notified())
                .await
                .is_err()
            {
                panic!(
                    "the daemon did not log {parts:?} x{times} in {limit:?} (found {found}):\n{log}"
                );
            }
        }
    }

    /// Ask it to stop as systemd does (SIGTERM) and wait for it to exit; its whole log.
    pub async fn terminate(self) -> String {
        self.terminated().await.1
    }

    /// [`Daemon::terminate`], with how it exited.
    pub async fn terminated(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().expect("running") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("SIGTERM sent");
        let exited = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        match exited {
            Ok(Ok(status)) => (status, self.log()),
            _ => panic!("the daemon did not stop on SIGTERM:\n{}", self.log()),
        }
    }

    /// Stop it; its whole log.
    pub async fn stop(mut self) -> String {
        self.child.kill().await.expect("the daemon is killed");
        // Let the reader drain what was written before the kill.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.log()
    }
}

/// A plain referral email with a Word attachment.
pub fn referral(message_id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Dr Test Referrer <{REFERRER}>\r\n\
         To: {SHARED}\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{message_id}>\r\n\
         Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Please consider this referral for a rapid review. The form is attached.\r\n\
         --b1\r\n\
         Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document\r\n\
         Content-Disposition: attachment; filename=\"Referral form.docx\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         UEsDBBQAAAAIAGZvcm0gY29udGVudCBmb3IgdGVzdHM=\r\n\
         --b1--\r\n"
    )
    .into_bytes()
}

/// A reply from `from` to one of our letters (threaded by In-Reply-To).
pub fn reply(
    from: &str,
    in_reply_to: &str,
    subject: &str,
    body: &str,
    attachment: Option<(&str, &str)>,
) -> Vec<u8> {
    let id = format!(
        "reply.{}.{}@test",
        from.replace('@', "."),
        in_reply_to.len() + body.len() + subject.len()
    );
    let mut s = format!(
        "From: {from}\r\nTo: {SHARED}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nIn-Reply-To: <{in_reply_to}>\r\n\
         References: <{in_reply_to}>\r\nMIME-Version: 1.0\r\n"
    );
    match attachment {
        None => s.push_str(&format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n")),
        Some((name, b64)) => s.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"r1\"\r\n\r\n--r1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
             --r1\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--r1--\r\n"
        )),
    }
    s.into_bytes()
}

/// A header's value in raw message bytes (first occurrence, unfolded).
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Run the `caseclerk` binary with this configuration and arguments (no `RUST_LOG`), and wait.
pub fn cli(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("caseclerk runs")
}

/// What a command printed, stdout then stderr.
pub fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Write a secret's file as an operator must: readable by its owner only (caseclerk refuses one
/// every user may read).
pub fn write_secret(path: &Path, text: &str) {
    caseclerk::shell::private::write(path, text)
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
