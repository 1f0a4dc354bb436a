//! `caseclerk chaos`: how often a `kill -9` of the daemon while it sends makes a letter go twice
//! (or not at all), counted from the recipients' mailboxes.
//!
//! Owns one repeatable measurement on a throwaway local mail stack: N letters are queued, due now,
//! to ten recipients; then, `kills` times, the real daemon (`caseclerk run`, a child process) is
//! started, and once it logs its first "letter sent" of that run it is killed with SIGKILL after a
//! random delay (uniform in `[0, max_delay)`, from a seeded generator: the same seed gives the same
//! delays) — so the kills land at random points of the send loop. A last run sends what is left.
//! Every letter carries its own Message-ID; each recipient's mailbox is read and every letter
//! counted: none is *lost* (0 copies), a *duplicate* is a copy beyond the first. The letters the
//! daemon found in doubt (an intent without an outcome) and sent again are counted from the
//! database: each was either a duplicate or a letter the server had not accepted; so are those it
//! settled by finding the server's copy in the sent folder (not sent again).
//!
//! By default the stack keeps the server's own copy of what the shared mailbox submits (as
//! Exchange Online does; [`StackOptions::sent_copies`]) and the daemon runs with `sent_copy =
//! "server"` and a short grace ([`ChaosOptions::grace`]); `server_copy = false` runs it as before
//! (caseclerk files its own copy; a letter in doubt is sent again at once), to compare.
//!
//! The figures go in the README (`caseclerk chaos --kills 1000`); `tests/it/chaos.rs` runs a short
//! version.
//!
//! Must not: touch any mailbox or database but its own throwaway ones, or keep anything afterwards.

use crate::core::records::NewLetter;
use crate::dev::devstack::{MailStack, StackOptions};
use crate::shell::store::Store;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Chaos errors.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("the local mail stack: {0}")]
    Stack(#[from] crate::dev::devstack::DevstackError),
    #[error("store: {0}")]
    Store(#[from] crate::shell::store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// How many times the daemon is killed while sending.
    pub kills: usize,
    /// How many letters are queued at the start (more as they run low: [`REFILL_BELOW`]).
    pub letters: usize,
    /// The longest delay between the run's first "letter sent" and the kill.
    pub max_delay: Duration,
    /// Seeds the delays.
    pub seed: u64,
    /// The `caseclerk` binary to run as the daemon.
    pub binary: PathBuf,
    /// The server keeps a copy of each letter and the daemon settles doubt with it.
    pub server_copy: bool,
    /// The daemon's `in_doubt_grace_seconds` (the local stack files its copy within
    /// milliseconds of the `250`; a few seconds leave room for a loaded machine).
    pub grace: Duration,
}

/// Fewer letters than this left to send before a daemon is started: more are queued first.
pub const REFILL_BELOW: usize = 25;

impl ChaosOptions {
    /// `kills` kills, the daemon being `binary`, with letters for them: more are queued whenever
    /// fewer than [`REFILL_BELOW`] are left, so a machine that sends many letters between a
    /// daemon's first letter and its kill (ten or so on a fast one) never runs out of letters to
    /// kill it over.
    pub fn new(kills: usize, binary: PathBuf) -> ChaosOptions {
        ChaosOptions {
            kills,
            letters: kills * 8 + 20,
            max_delay: Duration::from_millis(150),
            seed: 11,
            binary,
            server_copy: true,
            grace: Duration::from_secs(5),
        }
    }
}

/// What one run counted.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// Kills that landed while the daemon was sending.
    pub kills: usize,
    pub letters: usize,
    /// Letters in no recipient's mailbox.
    pub lost: usize,
    /// Copies beyond the first, over all letters.
    pub duplicates: usize,
    /// Letters the daemon found in doubt and sent again (from the database).
    pub resent_in_doubt: i64,
    /// Letters the daemon found in doubt and recorded sent from the server's copy (not resent).
    pub confirmed_by_copy: i64,
    /// Whether the server kept a copy the daemon could settle doubt with.
    pub server_copy: bool,
    /// In the undisturbed last run: the median time a hand-over to the server took (connection
    /// reuse, MAIL, RCPT, DATA, the message, the final dot, the server's `250`) …
    pub median_hand_over_us: u64,
    /// … and the median time from the `250` to our committed record (caseclerk's own window).
    pub median_record_us: u64,
    pub elapsed: Duration,
}

impl ChaosReport {
    /// The report as the README shows it.
    pub fn render(&self) -> String {
        let per_1000 = |n: f64| n * 1000.0 / self.kills.max(1) as f64;
        format!(
            "{} kill -9s while sending, {} letters, {:.0} s, {}\n\
             lost        {}\n\
             duplicates  {}  ({:.1} per 1,000 kills)\n\
             resent in doubt (duplicates included)  {}  ({:.1} per 1,000 kills)\n\
             in doubt, settled by the server's copy (not resent)  {}  ({:.1} per 1,000 kills)\n\
             median hand-over to the server {} µs; median 250 → committed record {} µs\n",
            self.kills,
            self.letters,
            self.elapsed.as_secs_f64(),
            if self.server_copy {
                "sent_copy = \"server\""
            } else {
                "sent_copy = \"caseclerk\""
            },
            self.lost,
            self.duplicates,
            per_1000(self.duplicates as f64),
            self.resent_in_doubt,
            per_1000(self.resent_in_doubt as f64),
            self.confirmed_by_copy,
            per_1000(self.confirmed_by_copy as f64),
            self.median_hand_over_us,
            self.median_record_us,
        )
    }
}

const SHARED: &str = "bsp@bury.test";
const PASSWORD: &str = "chaos-password";
const RECIPIENTS: usize = 10;

fn recipient(n: usize) -> String {
    format!("r{}@chaos.test", n % RECIPIENTS)
}

/// Run the measurement.
pub async fn run(opts: &ChaosOptions) -> Result<ChaosReport, ChaosError> {
    let started = Instant::now();
    let mut users: Vec<String> = (0..RECIPIENTS).map(recipient).collect();
    users.push(SHARED.into());
    let stack = MailStack::start(StackOptions {
        sent_copies: opts.server_copy,
        ..StackOptions::new(users, PASSWORD)
    })
    .await?;
    let result = measure(&stack, opts, started).await;
    stack.stop().await?;
    result
}

async fn measure(
    stack: &MailStack,
    opts: &ChaosOptions,
    started: Instant,
) -> Result<ChaosReport, ChaosError> {
    let dir = stack.dir.join("chaos");
    std::fs::create_dir_all(&dir).map_err(|e| ChaosError::Other(e.to_string()))?;
    let config = write_config(stack, &dir, opts)?;
    let db = dir.join("caseclerk.db");
    let now = crate::shell::clock::Clock::now(&crate::shell::clock::SystemClock);
    let mut ids = queue_letters(&db, 0, opts.letters, now).await?;

    let mut rng = opts.seed.max(1);
    let mut kills = 0;
    while kills < opts.kills {
        if pending(&db).await? < REFILL_BELOW {
            let more = queue_letters(&db, ids.len(), REFILL_BELOW * 4, now).await?;
            ids.extend(more);
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = opts.max_delay.mul_f64((rng % 10_000) as f64 / 10_000.0);
        if run_and_kill(&opts.binary, &config, delay).await? {
            kills += 1;
        }
    }
    // The last run sends what is left, undisturbed; its log times each hand-over and record.
    let mut last = spawn(&opts.binary, &config)?;
    let stderr = last.stderr.take().expect("piped");
    let timings = tokio::spawn(async move {
        let mut found = vec![];
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if let (Some(h), Some(r)) = (field(&l, "hand_over_us"), field(&l, "record_us")) {
                found.push((h, r));
            }
        }
        found
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    while pending(&db).await? > 0 {
        if Instant::now() > deadline {
            return Err(ChaosError::Other(
                "the last run did not send everything".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = last.kill().await;
    let mut timings = timings.await.unwrap_or_default();
    stack.wait_queue_empty(Duration::from_secs(600)).await?;

    let mut copies: HashMap<String, usize> = HashMap::new();
    for r in 0..RECIPIENTS {
        for m in stack.fetch_all(&recipient(r)).await? {
            if let Some(id) = message_id(&m.raw) {
                *copies.entry(id).or_default() += 1;
            }
        }
    }
    let store = Store::open_read_only(&db).await?;
    let resent_in_doubt = store.in_doubt_total().await?;
    let confirmed_by_copy = store.confirmed_by_copy_total().await?;
    store.close().await;
    let mut report = ChaosReport {
        kills,
        letters: ids.len(),
        resent_in_doubt,
        confirmed_by_copy,
        server_copy: opts.server_copy,
        ..ChaosReport::default()
    };
    for id in &ids {
        match copies.get(id).copied().unwrap_or(0) {
            0 => report.lost += 1,
            n => report.duplicates += n - 1,
        }
    }
    report.elapsed = started.elapsed();
    report.median_hand_over_us = median(timings.iter_mut().map(|t| t.0).collect());
    report.median_record_us = median(timings.iter().map(|t| t.1).collect());
    Ok(report)
}

/// A `name=value` number in a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!("{name}="))? + name.len() + 1;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The example configuration pointed at the stack, its database in `dir`, no digest; with the
/// server's copy, `sent_copy = "server"` in the stack's "Sent" folder and the chaos grace.
fn write_config(stack: &MailStack, dir: &Path, opts: &ChaosOptions) -> Result<PathBuf, ChaosError> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg: toml::Table = include_str!("../../config/example.toml")
        .parse()
        .map_err(|e| ChaosError::Other(format!("config/example.toml: {e}")))?;
    let abs = |p: &str| toml::Value::String(root.join(p).display().to_string());
    let password = dir.join("password");
    crate::shell::private::write(&password, PASSWORD)
        .map_err(|e| ChaosError::Other(e.to_string()))?;
    let mut set = |section: &str, key: &str, v: toml::Value| {
        if let Some(t) = cfg.get_mut(section).and_then(|s| s.as_table_mut()) {
            t.insert(key.into(), v);
        }
    };
    set("partnership", "process", abs("config/processes/bury.toml"));
    set("templates", "dir", abs("mail-templates"));
    set(
        "attachments",
        "agency_template",
        abs("config/attachments/agency-summary-and-chronology.docx"),
    );
    let path = |p: &Path| toml::Value::String(p.display().to_string());
    set("storage", "database", path(&dir.join("caseclerk.db")));
    set(
        "mailbox",
        "port",
        toml::Value::Integer(stack.ports.imaps.into()),
    );
    set(
        "smtp",
        "port",
        toml::Value::Integer(stack.ports.submission.into()),
    );
    for section in ["mailbox", "smtp"] {
        set(section, "ca_file", path(&stack.ca_pem));
        set(section, "password_file", path(&password));
    }
    if opts.server_copy {
        set("mailbox", "sent_copy", toml::Value::String("server".into()));
        set("mailbox", "sent_folder", toml::Value::String("Sent".into()));
        let grace = opts.grace.as_secs().max(1) as i64;
        set(
            "mailbox",
            "in_doubt_grace_seconds",
            toml::Value::Integer(grace),
        );
    }
    cfg.remove("digest");
    let file = dir.join("caseclerk.toml");
    let text = toml::to_string(&cfg).map_err(|e| ChaosError::Other(e.to_string()))?;
    std::fs::write(&file, text).map_err(|e| ChaosError::Other(e.to_string()))?;
    Ok(file)
}

/// Queue `n` letters due at `now`, each with its own Message-ID; their Message-IDs.
async fn queue_letters(
    db: &Path,
    from: usize,
    n: usize,
    now: DateTime<Utc>,
) -> Result<Vec<String>, ChaosError> {
    let store = Store::open(db).await?;
    let mut tx = store.begin().await?;
    let mut ids = vec![];
    for i in from..from + n {
        let to = recipient(i);
        let message_id = format!("chaos.{i}@bury.test");
        let raw = format!(
            "From: Bury Safeguarding Partnership <{SHARED}>\r\nTo: {to}\r\n\
             Subject: chaos letter {i}\r\nMessage-ID: <{message_id}>\r\n\
             Date: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Letter {i}.\r\n",
            now.to_rfc2822()
        );
        let letter = NewLetter {
            dedupe_key: format!("chaos/{i}"),
            case_id: None,
            step: "chaos".into(),
            recipient: to.clone(),
            replies_as: to.clone(),
            message_id: message_id.clone(),
            due_at: now - chrono::Duration::minutes(1),
            envelope_from: SHARED.into(),
            envelope_to: vec![to],
            raw: raw.into_bytes(),
        };
        crate::shell::outbox::enqueue(&mut tx, &letter, now).await?;
        ids.push(message_id);
    }
    Store::commit(tx).await?;
    store.close().await;
    Ok(ids)
}

/// Letters not yet recorded as sent.
async fn pending(db: &Path) -> Result<usize, ChaosError> {
    let store = Store::open_read_only(db).await?;
    let n = store
        .letter_summaries(None)
        .await?
        .iter()
        .filter(|l| l.state == crate::core::records::OutboxState::Pending)
        .count();
    store.close().await;
    Ok(n)
}

fn spawn(binary: &Path, config: &Path) -> Result<tokio::process::Child, ChaosError> {
    tokio::process::Command::new(binary)
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("RUST_LOG", "caseclerk=info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ChaosError::Other(format!("starting {}: {e}", binary.display())))
}

/// Start the daemon; once it logs a sent letter, wait `delay` and SIGKILL it. Whether the kill
/// landed while it was sending (false: it never sent in 60 s, or exited first).
async fn run_and_kill(binary: &Path, config: &Path, delay: Duration) -> Result<bool, ChaosError> {
    let mut child = spawn(binary, config)?;
    let stderr = child.stderr.take().expect("piped");
    let (first_sent, sent) = tokio::sync::oneshot::channel::<()>();
    // Read the whole log (a full pipe would block the daemon), signalling the first sent letter.
    let reader = tokio::spawn(async move {
        let mut first_sent = Some(first_sent);
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("letter sent")
                && let Some(s) = first_sent.take()
            {
                let _ = s.send(());
            }
        }
    });
    let sending = matches!(
        tokio::time::timeout(Duration::from_secs(60), sent).await,
        Ok(Ok(()))
    );
    if sending {
        tokio::time::sleep(delay).await;
    }
    let landed = sending && child.try_wait().ok().flatten().is_none();
    let _ = child.start_kill();
    let _ = child.wait().await;
    let _ = reader.await;
    Ok(landed)
}

/// A message's Message-ID (without angle brackets).
fn message_id(raw: &[u8]) -> Option<String> {
    let m = crate::core::intake::parse(raw);
    m.message_id
        .map(|id| id.trim_matches(['<', '>']).to_string())
}
