//! `caseclerk bench --first-run N` and `--burst N`: the peak memory of the real process.
//!
//! Owns two measurements of a child `caseclerk` (this binary, or `--binary` for a comparison in
//! the same conditions), each against its own throwaway local mail stack, with the reference it
//! is to be read against measured in the same run:
//! - **first run**: N messages of the benchmark's mix ([`crate::dev::bench::sample`]: 10 % with a
//!   200 KB attachment) in the shared mailbox, then `caseclerk tick --process-existing`; its peak
//!   resident memory is read from the kernel's accounting of the waited-for child
//!   (`getrusage(RUSAGE_CHILDREN)`, the largest child's `ru_maxrss`). Reference: the bytes of
//!   mail in the backlog, and for its time a bare `UID FETCH` of the backlog just before it.
//!   With `--repeat K` the one backlog is read by K first runs, each from an empty database
//!   and each after its own bare fetch; every pair is printed, and the median percentage (on
//!   this machine one pair varies by a sixth from the next).
//! - **burst**: `caseclerk run` watching an empty mailbox; once it has looked at the mailbox, its
//!   resident memory is read (`/proc/<pid>/status`, the reference); then N referrals of
//!   `--burst-mb` MB each (one large attached file, from N referrers, so no cap holds them)
//!   arrive at once, and when every one is processed, acknowledged and nothing is left to send,
//!   its peak (`VmHWM`) is read; then its resident memory while it idles on for 90 s, past its
//!   next pass over the cases: what it gives back after a burst.
//!
//! The numbers go in the README; no test asserts on them.
//!
//! Must not: touch any mailbox but its own throwaway stack, or keep anything afterwards.

use crate::dev::bench::{BenchError, proc_status_mib, sample};
use crate::dev::demo::{self, DEMO_REFERRER};
use crate::dev::devstack::{MailStack, StackOptions};
use crate::shell::clock::{Clock, SystemClock};
use crate::shell::config::{self, Needs};
use crate::shell::store::Store;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    /// The configuration to derive the bench's from (its process, templates, people).
    pub config: PathBuf,
    /// The caseclerk to measure (default: this one).
    pub binary: Option<PathBuf>,
    /// Messages in the first run's backlog.
    pub first_run: Option<usize>,
    /// How many first runs over that one backlog (at least one), each from an empty database and
    /// each with its own bare fetch just before it.
    pub repeat: usize,
    /// Large referrals arriving at once at the running daemon.
    pub burst: Option<usize>,
    /// Size of each burst message, in MB.
    pub burst_mb: f64,
}

/// The first-run measurement: one backlog, one or more first runs over it.
#[derive(Debug, Clone)]
pub struct FirstRun {
    pub messages: usize,
    pub backlog_bytes: usize,
    pub passes: Vec<FirstRunPass>,
    /// The highest of the passes' peaks.
    pub peak_mib: Option<f64>,
}

/// One first run and its reference.
#[derive(Debug, Clone)]
pub struct FirstRunPass {
    /// A bare client's `UID FETCH 1:* BODY.PEEK[]` of the same backlog over the same connection
    /// settings (TLS), warm, the fastest of [`crate::dev::bench::BARE_FETCHES`], just before the
    /// first run: the reference for its time end to end.
    pub bare_fetch: Duration,
    pub processed: usize,
    pub took: Duration,
}

impl FirstRunPass {
    /// The first run's speed as a percentage of the bare fetch's.
    pub fn percent(&self) -> f64 {
        100.0 * self.bare_fetch.as_secs_f64() / self.took.as_secs_f64().max(1e-9)
    }
}

impl FirstRun {
    /// The passes' median percentage (of an even number, the lower middle one: the figure is
    /// never flattered).
    pub fn median_percent(&self) -> f64 {
        let mut p: Vec<f64> = self.passes.iter().map(FirstRunPass::percent).collect();
        p.sort_by(f64::total_cmp);
        p.get(p.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
    }
}

/// The burst measurement.
#[derive(Debug, Clone)]
pub struct Burst {
    pub messages: usize,
    pub message_bytes: usize,
    pub idle_rss_mib: Option<f64>,
    pub idle_peak_mib: Option<f64>,
    pub peak_mib: Option<f64>,
    /// Resident memory once every referral is processed and nothing is left to send.
    pub settled_rss_mib: Option<f64>,
    /// Resident memory after [`IDLE_AFTER`] more of idling: the last reading, and the highest
    /// in that time.
    pub idle_after_mib: Option<f64>,
    pub idle_highest_mib: Option<f64>,
    pub letters_sent: usize,
    pub took: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct MemoryReport {
    pub binary: String,
    pub first_run: Option<FirstRun>,
    pub burst: Option<Burst>,
}

fn mib(m: Option<f64>) -> String {
    m.map(|m| format!("{m:.0} MiB"))
        .unwrap_or_else(|| "unknown".into())
}

impl MemoryReport {
    /// The report as the README shows it.
    pub fn render(&self) -> String {
        let mut out = format!("binary: {}\n", self.binary);
        if let Some(f) = &self.first_run {
            out.push_str(&format!(
                "first run   {} messages, {:.1} MB of mail in the backlog (reference)\n",
                f.messages,
                f.backlog_bytes as f64 / 1e6,
            ));
            for p in &f.passes {
                out.push_str(&format!(
                    "            bare UID FETCH of the backlog (reference, fastest of {}): {:.2} s; \
                     caseclerk tick --process-existing: {} processed in {:.2} s ({:.0} % of the bare fetch's speed)\n",
                    crate::dev::bench::BARE_FETCHES,
                    p.bare_fetch.as_secs_f64(),
                    p.processed,
                    p.took.as_secs_f64(),
                    p.percent(),
                ));
            }
            out.push_str(&format!(
                "            median of {} first run(s): {:.0} % of the bare fetch's speed; peak RSS {}\n",
                f.passes.len(),
                f.median_percent(),
                mib(f.peak_mib),
            ));
        }
        if let Some(b) = &self.burst {
            out.push_str(&format!(
                "burst       {} referrals of {:.1} MB ({:.1} MB) arriving at once at `caseclerk run`\n            \
                 before the burst (reference): RSS {}, peak so far {}\n            \
                 after: all processed, {} letters sent in {:.0} s, peak RSS {}\n            \
                 settled: RSS {} once all was sent; after {} s idle (past the daemon's next pass over \
                 the cases, at most {} s later) {}, the highest meanwhile {}\n",
                b.messages,
                b.message_bytes as f64 / 1e6,
                (b.messages * b.message_bytes) as f64 / 1e6,
                mib(b.idle_rss_mib),
                mib(b.idle_peak_mib),
                b.letters_sent,
                b.took.as_secs_f64(),
                mib(b.peak_mib),
                mib(b.settled_rss_mib),
                IDLE_AFTER.as_secs(),
                crate::shell::engine::RESCAN.as_secs(),
                mib(b.idle_after_mib),
                mib(b.idle_highest_mib),
            ));
        }
        out
    }
}

/// How long the daemon is watched idling after a burst, its resident memory read every half
/// second: longer than its longest sleep ([`crate::shell::engine::RESCAN`]), so the window
/// holds its next pass over the cases — which reads again every case the burst changed — and
/// what it holds after that pass.
const IDLE_AFTER: Duration = Duration::from_secs(90);

fn other(e: impl std::fmt::Display) -> BenchError {
    BenchError::Other(e.to_string())
}

/// Run the chosen scenarios, each on its own stack.
pub async fn run(opts: &MemoryOptions) -> Result<MemoryReport, BenchError> {
    MailStack::check_installed()?;
    let binary = match &opts.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(other)?,
    };
    let mut report = MemoryReport {
        binary: binary.display().to_string(),
        ..Default::default()
    };
    // The first run's figure is the largest waited-for child's: it goes first, before any other
    // caseclerk child has been waited for.
    if let Some(n) = opts.first_run {
        let (stack, config) = start_stack(&opts.config, &[]).await?;
        let result = first_run(&stack, config, &binary, n, opts.repeat.max(1)).await;
        let _ = stack.stop().await;
        report.first_run = Some(result?);
    }
    if let Some(n) = opts.burst {
        let referrers: Vec<String> = (1..=n)
            .map(|i| format!("referrer{i}@hospital.test"))
            .collect();
        let (stack, config) = start_stack(&opts.config, &referrers).await?;
        let result = burst(&stack, config, &binary, &referrers, opts.burst_mb).await;
        let _ = stack.stop().await;
        report.burst = Some(result?);
    }
    Ok(report)
}

/// Start a stack for the configuration at `config`'s people (and `extra`) and write the bench's
/// configuration into it.
pub(crate) async fn start_stack(
    config: &Path,
    extra: &[String],
) -> Result<(MailStack, PathBuf), BenchError> {
    let cfg = config::load(config, Needs::NoSecrets).map_err(other)?;
    let mut users = demo::addresses(&cfg);
    users.push(DEMO_REFERRER.to_string());
    users.extend(extra.iter().cloned());
    let stack = MailStack::start(StackOptions::new(users, "bench-password")).await?;
    match bench_config(config, &stack) {
        Ok(path) => Ok((stack, path)),
        Err(e) => {
            let _ = stack.stop().await;
            Err(e)
        }
    }
}

fn set(t: &mut toml::Table, section: &str, key: &str, v: impl Into<toml::Value>) {
    if let Some(s) = t.get_mut(section).and_then(|s| s.as_table_mut()) {
        s.insert(key.into(), v.into());
    }
}

/// The configuration at `path` pointed at the stack: its ports, CA and password, a database in
/// the stack's directory, and its own relative paths made absolute.
fn bench_config(path: &Path, stack: &MailStack) -> Result<PathBuf, BenchError> {
    let text = std::fs::read_to_string(path).map_err(other)?;
    let mut t: toml::Table = text.parse().map_err(other)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(other)?;
    let abs = |p: &str| base.join(p).display().to_string();
    let dir = stack.dir.join("bench");
    std::fs::create_dir_all(&dir).map_err(other)?;
    let password = dir.join("password");
    crate::shell::private::write(&password, &stack.password).map_err(other)?;
    let ca = stack.ca_pem.display().to_string();
    for (section, port) in [
        ("mailbox", stack.ports.imaps),
        ("smtp", stack.ports.submission),
    ] {
        set(&mut t, section, "port", i64::from(port));
        set(&mut t, section, "ca_file", ca.clone());
        set(
            &mut t,
            section,
            "password_file",
            password.display().to_string(),
        );
        if let Some(s) = t.get_mut(section).and_then(|s| s.as_table_mut()) {
            s.remove("password_env");
        }
    }
    set(&mut t, "mailbox", "tls", "implicit");
    set(&mut t, "smtp", "tls", "starttls");
    set(
        &mut t,
        "storage",
        "database",
        dir.join("caseclerk.db").display().to_string(),
    );
    if let Some(p) = t
        .get("partnership")
        .and_then(|p| p.get("process"))
        .and_then(|p| p.as_str())
    {
        let process = config::process_path(&base, p).display().to_string();
        set(&mut t, "partnership", "process", process);
    }
    if let Some(d) = t
        .get("templates")
        .and_then(|p| p.get("dir"))
        .and_then(|p| p.as_str())
    {
        let d = abs(d);
        set(&mut t, "templates", "dir", d);
    }
    if let Some(h) = t
        .get("calendar")
        .and_then(|p| p.get("holidays_file"))
        .and_then(|p| p.as_str())
    {
        let h = abs(h);
        set(&mut t, "calendar", "holidays_file", h);
    }
    if let Some(a) = t.get_mut("attachments").and_then(|a| a.as_table_mut()) {
        for (_, v) in a.iter_mut() {
            if let Some(p) = v.as_str() {
                *v = toml::Value::String(abs(p));
            }
        }
    }
    let out = dir.join("caseclerk.toml");
    std::fs::write(&out, toml::to_string(&t).map_err(other)?).map_err(other)?;
    Ok(out)
}

fn caseclerk(
    binary: &Path,
    config: &Path,
    log: &Path,
) -> Result<tokio::process::Command, BenchError> {
    let log = std::fs::File::create(log).map_err(other)?;
    let mut cmd = tokio::process::Command::new(binary);
    crate::shell::allocator::as_started_by_an_operator(&mut cmd);
    cmd.arg("--config")
        .arg(config)
        .stdout(log.try_clone().map_err(other)?)
        .stderr(log)
        .kill_on_drop(true);
    Ok(cmd)
}

/// The largest waited-for child's peak resident memory so far.
fn children_peak_mib() -> Option<f64> {
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).ok()?;
    Some(usage.max_rss() as f64 / 1024.0)
}

async fn first_run(
    stack: &MailStack,
    config: PathBuf,
    binary: &Path,
    n: usize,
    repeat: usize,
) -> Result<FirstRun, BenchError> {
    let user = &stack_user(&config)?;
    let at =
        chrono::DateTime::parse_from_rfc3339("2026-08-24T09:00:00+01:00").expect("a valid date");
    let mut backlog_bytes = 0;
    // Appended in slices, so the bench itself never holds the whole backlog.
    for start in (0..n).step_by(500) {
        let slice: Vec<_> = (start..(start + 500).min(n))
            .map(|i| (sample(i), at))
            .collect();
        backlog_bytes += slice.iter().map(|(m, _)| m.len()).sum::<usize>();
        stack.append_many(user, &slice).await?;
    }
    let imap = config::load(&config, Needs::Everything)
        .map_err(other)?
        .imap
        .clone();
    let db = database(&config)?;
    let before = children_peak_mib();
    let mut passes = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        // Each pass starts from no database: a first run. caseclerk only reads the folder; the
        // one change a pass makes there is the daily digest it sends the business unit (the
        // shared mailbox, in the demo's configuration), so a later pass's backlog holds the
        // earlier passes' digests too, and its bare fetch reads them as well (as many messages
        // as the folder holds).
        remove_database(&db)?;
        let bare_fetch = crate::dev::bench::bare_fetch(&imap, None).await?;
        passes.push(first_run_pass(&config, binary, bare_fetch).await?);
    }
    let peak = children_peak_mib().filter(|p| before.is_none_or(|b| *p > b));
    Ok(FirstRun {
        messages: n,
        backlog_bytes,
        passes,
        peak_mib: peak,
    })
}

/// The database at `db` and its log and index files gone (none is fine).
fn remove_database(db: &Path) -> Result<(), BenchError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(other(e)),
        }
    }
    Ok(())
}

/// One `caseclerk tick --process-existing` over the backlog, from an empty database.
async fn first_run_pass(
    config: &Path,
    binary: &Path,
    bare_fetch: Duration,
) -> Result<FirstRunPass, BenchError> {
    let log = config.with_file_name("first-run.log");
    let started = Instant::now();
    let status = caseclerk(binary, config, &log)?
        .args(["tick", "--process-existing"])
        .status()
        .await
        .map_err(other)?;
    let took = started.elapsed();
    if !status.success() {
        return Err(BenchError::Other(format!(
            "caseclerk tick --process-existing failed ({status}); see {}",
            log.display()
        )));
    }
    let store = Store::open_read_only(&database(config)?).await?;
    let processed = store
        .message_states()
        .await?
        .iter()
        .filter(|(state, _, _)| state != "new")
        .map(|(_, _, n)| *n as usize)
        .sum();
    store.close().await;
    Ok(FirstRunPass {
        bare_fetch,
        processed,
        took,
    })
}

fn stack_user(config: &Path) -> Result<String, BenchError> {
    let cfg = config::load(config, Needs::NoSecrets).map_err(other)?;
    Ok(cfg.imap.username.clone())
}

fn database(config: &Path) -> Result<PathBuf, BenchError> {
    let cfg = config::load(config, Needs::NoSecrets).map_err(other)?;
    Ok(cfg.database.clone())
}

/// `len` bytes that differ from every other `i`'s (no two referrals attach the same file, so
/// storing a file once is measured on files that really are one per referral) and do not
/// compress, like the PDF or Word file a referral carries: xorshift64* seeded by `i`.
pub fn filler(i: usize, len: usize) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A referral of about `bytes` bytes: a short email with one large attached file.
pub fn large_referral(i: usize, from: &str, to: &str, bytes: usize) -> Vec<u8> {
    use base64::Engine as _;
    // Base64 in 76-character lines is 4/3 of the data plus 2 bytes a line.
    let data_len = bytes * 57 / 78;
    let blob = filler(i, data_len);
    let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
    let mut body = String::with_capacity(b64.len() + b64.len() / 38);
    for line in b64.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(line).unwrap_or(""));
        body.push_str("\r\n");
    }
    format!(
        "From: Dr Example {i} <{from}>\r\nTo: {to}\r\n\
         Subject: Referral for a rapid review (SCSI-1 notification form attached)\r\n\
         Message-ID: <bench.burst.{i}.{}@hospital.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"burst{i}\"\r\n\r\n--burst{i}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Dear colleagues,\r\n\r\nPlease find attached a referral for consideration of a rapid review \
         (a fictional benchmark referral).\r\n\r\n--burst{i}\r\n\
         Content-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=\"SCSI-1 referral form {i}.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{body}--burst{i}--\r\n",
        std::process::id()
    )
    .into_bytes()
}

async fn burst(
    stack: &MailStack,
    config: PathBuf,
    binary: &Path,
    referrers: &[String],
    megabytes: f64,
) -> Result<Burst, BenchError> {
    let user = stack_user(&config)?;
    let db = database(&config)?;
    let log = config.with_file_name("run.log");
    let mut daemon = caseclerk(binary, &config, &log)?
        .arg("run")
        .spawn()
        .map_err(other)?;
    let pid = daemon
        .id()
        .ok_or_else(|| other("caseclerk run exited at once"))?;
    let result = async {
        // Idle: the daemon has looked at the (empty) mailbox once.
        wait_until(&mut daemon, &log, Duration::from_secs(60), || async {
            Ok(db.exists() && looked(&db).await)
        })
        .await?;
        let idle_rss = proc_status_mib(pid, "VmRSS");
        let idle_peak = proc_status_mib(pid, "VmHWM");
        let now = SystemClock.now().fixed_offset() - chrono::Duration::seconds(5);
        let mail: Vec<_> = referrers
            .iter()
            .enumerate()
            .map(|(i, from)| {
                let bytes = (megabytes * 1e6) as usize;
                (large_referral(i, from, &user, bytes), now)
            })
            .collect();
        let message_bytes = mail.first().map(|(m, _)| m.len()).unwrap_or(0);
        let started = Instant::now();
        stack.append_many(&user, &mail).await?;
        drop(mail);
        // Done: every referral processed and acknowledged, and nothing left to send now.
        for r in referrers {
            stack.wait_for(r, 1, Duration::from_secs(600)).await?;
        }
        let n = referrers.len();
        // Three quiet looks in a row, so a letter decided just after the last message is seen.
        let quiet = std::cell::Cell::new(0);
        wait_until(&mut daemon, &log, Duration::from_secs(600), || async {
            let (processed, sendable) = progress(&db).await?;
            let now_quiet = processed >= n && sendable == 0;
            quiet.set(if now_quiet { quiet.get() + 1 } else { 0 });
            Ok(quiet.get() >= 3)
        })
        .await?;
        let took = started.elapsed();
        let peak = proc_status_mib(pid, "VmHWM");
        let settled = proc_status_mib(pid, "VmRSS");
        let (idle_after, idle_highest) = rss_while_idle(pid).await;
        let store = Store::open_read_only(&db).await?;
        let letters_sent = store
            .letter_summaries(None)
            .await?
            .iter()
            .filter(|l| l.state == crate::shell::store::OutboxState::Sent)
            .count();
        store.close().await;
        Ok(Burst {
            messages: n,
            message_bytes,
            idle_rss_mib: idle_rss,
            idle_peak_mib: idle_peak,
            peak_mib: peak,
            settled_rss_mib: settled,
            idle_after_mib: idle_after,
            idle_highest_mib: idle_highest,
            letters_sent,
            took,
        })
    }
    .await;
    // Our own child, by its pid: stop it as systemd would.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
        nix::sys::signal::Signal::SIGTERM,
    );
    if tokio::time::timeout(Duration::from_secs(10), daemon.wait())
        .await
        .is_err()
    {
        let _ = daemon.kill().await;
    }
    result
}

/// The resident memory of `pid` read every half second for [`IDLE_AFTER`]: the last reading
/// and the highest.
async fn rss_while_idle(pid: u32) -> (Option<f64>, Option<f64>) {
    let started = Instant::now();
    let (mut last, mut highest): (Option<f64>, Option<f64>) = (None, None);
    while started.elapsed() < IDLE_AFTER {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(now) = proc_status_mib(pid, "VmRSS") {
            last = Some(now);
            highest = Some(highest.map_or(now, |h| h.max(now)));
        }
    }
    (last, highest)
}

/// Whether the daemon has recorded its first look at the mailbox.
async fn looked(db: &Path) -> bool {
    let Ok(store) = Store::open_read_only(db).await else {
        return false;
    };
    let folder = store.mailbox_state("INBOX").await.ok().flatten();
    store.close().await;
    folder.is_some()
}

/// (Messages processed, letters sendable now.)
async fn progress(db: &Path) -> Result<(usize, usize), BenchError> {
    let store = Store::open_read_only(db).await?;
    let processed = store
        .message_states()
        .await?
        .iter()
        .filter(|(state, _, _)| state != "new")
        .map(|(_, _, n)| *n as usize)
        .sum();
    let sendable = store.sendable_ids(SystemClock.now()).await?.len();
    store.close().await;
    Ok((processed, sendable))
}

/// Poll `done` every half second until it holds, the daemon exits, or `limit` passes.
async fn wait_until<F, Fut>(
    daemon: &mut tokio::process::Child,
    log: &Path,
    limit: Duration,
    mut done: F,
) -> Result<(), BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BenchError>>,
{
    let started = Instant::now();
    loop {
        if done().await? {
            return Ok(());
        }
        if let Ok(Some(status)) = daemon.try_wait() {
            return Err(BenchError::Other(format!(
                "caseclerk run exited ({status}); see {}",
                log.display()
            )));
        }
        if started.elapsed() > limit {
            return Err(BenchError::Other(format!(
                "caseclerk run did not finish within {limit:?}; see {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{classify, intake};

    fn first_run_of(passes: &[(f64, f64)]) -> FirstRun {
        FirstRun {
            messages: 10,
            backlog_bytes: 100,
            passes: passes
                .iter()
                .map(|&(bare, took)| FirstRunPass {
                    bare_fetch: Duration::from_secs_f64(bare),
                    processed: 10,
                    took: Duration::from_secs_f64(took),
                })
                .collect(),
            peak_mib: None,
        }
    }

    #[test]
    fn the_first_runs_median_is_the_middle_pass_and_of_an_even_number_the_lower_middle() {
        // 50 %, 25 %, 40 %: the middle is 40 %.
        let odd = first_run_of(&[(1.0, 2.0), (1.0, 4.0), (1.0, 2.5)]);
        assert!((odd.median_percent() - 40.0).abs() < 1e-9);
        // 50 %, 25 %, 40 %, 20 %: the lower middle, 25 %, not the mean of the middle two.
        let even = first_run_of(&[(1.0, 2.0), (1.0, 4.0), (1.0, 2.5), (1.0, 5.0)]);
        assert!((even.median_percent() - 25.0).abs() < 1e-9);
        // Each pass is read against its own bare fetch.
        let own = first_run_of(&[(0.5, 1.0), (2.0, 2.0)]);
        assert!((own.median_percent() - 50.0).abs() < 1e-9);
        let rendered = MemoryReport {
            first_run: Some(odd),
            ..Default::default()
        }
        .render();
        assert_eq!(rendered.matches("bare UID FETCH").count(), 3, "{rendered}");
        assert!(
            rendered.contains("median of 3 first run(s): 40 %"),
            "{rendered}"
        );
    }

    #[test]
    fn a_burst_message_is_a_referral_of_about_the_size_asked() {
        let raw = large_referral(3, "referrer3@hospital.test", "bsp@bury.test", 2_000_000);
        assert!(
            (1_990_000..2_010_000).contains(&raw.len()),
            "{} bytes",
            raw.len()
        );
        let m = intake::parse(&raw);
        assert_eq!(m.attachments.len(), 1);
        let v = classify::classify(&m, &classify::Context::default());
        assert_eq!(v.kind, classify::Kind::Referral, "{:?}", v.reasons);
    }

    #[test]
    fn no_two_referrals_attach_the_same_file() {
        let files: std::collections::HashSet<Vec<u8>> =
            (0..600).map(|i| filler(i, 2_000)).collect();
        assert_eq!(files.len(), 600);
        assert_eq!(filler(7, 2_001).len(), 2_001);
        assert_eq!(filler(7, 100), filler(7, 100));
    }
}
