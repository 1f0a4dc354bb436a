//! The engine: one pass (`tick`) and the daemon loop (`run`).
//!
//! Owns the order of work and its transactions; it loads, calls the core, and stores. A tick:
//! 1. fetches new mail into the store (raw bytes + watermark; a mailbox failure is recorded for the
//!    digest and the tick carries on — deadlines still go out);
//! 2. for each stored message, loaded when its turn comes (one message in memory at a time, never
//!    the backlog): parses it ([`intake`]), classifies it ([`classify`]), loads the case
//!    its verdict names, asks [`react`] what it does, and records the reaction — the case opened,
//!    its events, its notices queued, the message filed — in one transaction per message;
//! 3. for each open case: counts its votes ([`react::settle`]), plans it ([`timeline::plan`]), and
//!    queues every due letter with its events, in one transaction per case;
//! 4. queues the digest and the tracker report when due ([`crate::shell::periodic`]);
//! 5. sends what is due through [`outbox`], one letter's bytes loaded at a time.
//!
//! Every letter is made by [`letters`] and queued by [`outbox::enqueue`] under a unique key: a
//! letter is decided once, and never sent from inside the decision.
//!
//! `run` repeats the tick whenever the mailbox watcher signals, when the next letter falls due, or
//! at least every minute — "sleep until the next due instant or until notified"; and it fetches at
//! least every `fetch_interval` (five minutes by default) whether or not the watcher signals.
//!
//! Must not: decide what a message is or does, or what is due (that is [`crate::core`]); log
//! names, subjects, bodies or addresses (only case references, step ids, rule names and hashes).

use crate::core::case::{self, CaseState, Event, Recorded};
use crate::core::classify;
use crate::core::deciding;
use crate::core::firstrun::{self, FirstRun};
use crate::core::intake;
use crate::core::letters::{self, Letterhead, Templates};
use crate::core::limits;
use crate::core::process::StepKind;
use crate::core::react::{self, BouncedLetter, Found, Incoming, Reaction, Rules};
use crate::core::timeline::{self, DueLetter, TimelineError};
use crate::core::upgrade;
use crate::core::views::SmtpHold;
use crate::shell::allocator;
use crate::shell::attachments::{self, AttachmentError};
use crate::shell::clock::SharedClock;
use crate::shell::config::Config;
use crate::shell::mailbox::{self, ExistingMail, FetchReport};
use crate::shell::outbox::{self, SendReport};
use crate::shell::planmemo::{PlanMemo, Quiet, Version};
use crate::shell::progress::Progress;
use crate::shell::store::{
    Arrival, CaseRow, DecisionConn, Filing, IN_LIST, Store, StoreError, Tx, record_event,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::core::calendar::{long_date, long_instant};

/// Engine errors. Each names the case or message it concerns by reference or id only.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Letters(#[from] letters::LetterError),
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    #[error("case {reference}: {source}")]
    Case {
        reference: String,
        source: case::CaseError,
    },
    #[error("case {reference}: {source}")]
    Timeline {
        reference: String,
        source: TimelineError,
    },
    /// Loading or parsing stored mail ahead of its turn stopped (a panic: parsing never should).
    /// The mail is still stored and pending; the next pass reads it again.
    #[error(
        "reading stored mail ahead of its turn stopped unexpectedly: {}",
        if *panicked { "it panicked" } else { "it was cancelled" }
    )]
    ReadAhead { panicked: bool },
    #[error(
        "another caseclerk is already working on {path} (run and tick take turns; stop the daemon first)"
    )]
    Locked { path: String },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// What one tick did.
#[derive(Debug, Default)]
pub struct TickReport {
    pub fetch: Option<FetchReport>,
    pub fetch_error: Option<String>,
    pub processed: usize,
    pub opened: Vec<String>,
    pub queued: usize,
    pub sent: SendReport,
    pub next_wake: Option<DateTime<Utc>>,
    /// Letters (and planning problems) this pass could not prepare: raised on the health rows,
    /// and a one-off `tick` fails for them.
    pub unprepared: usize,
}

/// The engine: configuration, store, templates and the one clock.
pub struct Engine {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub templates: Templates,
    pub clock: SharedClock,
    existing: ExistingMail,
    install_id: String,
    /// The secret behind vote codes (32 random bytes, kept in the database).
    vote_key: Vec<u8>,
    /// Sends letters instead of SMTP from the configuration (tests: a recording transport).
    transport: Option<Arc<dyn outbox::Transport>>,
    /// A long pass's progress on a terminal (off unless the command line turns it on).
    progress: Progress,
    /// Told after each letter a pass sends (the daemon: systemd's watchdog is pinged).
    sending: Option<Arc<dyn Fn() + Send + Sync>>,
    /// The first run, once the mailbox has been looked at: letters that fell due long before it
    /// are imported — not sent ([`firstrun::imported_not_sent`]). Read at the start of each pass.
    first_run: std::sync::Mutex<Option<FirstRun>>,
    /// Letters the mail server accepted whose "sent" the database would not take yet.
    unrecorded: outbox::Unrecorded,
    /// What the planning pass remembers between passes ([`PlanMemo`]).
    memo: std::sync::Mutex<PlanMemo>,
    /// Due letters this pass could not prepare ("<case> <step>: <why>", no personal data),
    /// raised under [`PREPARE_HEALTH_KEY`] once the pass has planned.
    unprepared: std::sync::Mutex<Vec<String>>,
    /// Letters made once (notices) this pass could not prepare, raised under
    /// [`NOTICE_HEALTH_KEY`]: nothing makes them again.
    unprepared_once: std::sync::Mutex<Vec<String>>,
    /// Whether the `<letters>` and `<pass>` rows may be failing ([`Raised`]).
    letters_raised: Raised,
    /// The cases whose letters of new steps a start could not record imported, with those steps
    /// ([`Engine::import_new_steps`]): those letters are held, and raised, until a start does.
    held_steps: std::sync::Mutex<upgrade::Held>,
    pass_raised: Raised,
    _lock: std::fs::File,
}

use crate::shell::store::{NOTICE_HEALTH_KEY, PASS_HEALTH_KEY, PREPARE_HEALTH_KEY};

/// How many cases the planning pass reads at once.
const PLAN_READ_CASES: usize = 1000;

/// Bytes of stored mail the deciding loop loads at once (the fetch batches' budget); a larger
/// message is loaded alone.
pub const LOAD_BUDGET: u64 = mailbox::FETCH_BUDGET;

/// Whether a health row an engine writes may be failing: a pass that went well clears the row
/// only then, so a healthy daemon does not write it at every pass. It starts raised, so the
/// first pass clears what an earlier run left; a clearing that the database refused leaves it
/// raised, to be tried again.
struct Raised(std::sync::atomic::AtomicBool);

impl Default for Raised {
    fn default() -> Raised {
        Raised(std::sync::atomic::AtomicBool::new(true))
    }
}

impl Raised {
    fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Clear `key`'s row if it may be failing.
    async fn clear(&self, store: &Store, key: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        if self.0.swap(false, std::sync::atomic::Ordering::SeqCst)
            && let Err(e) = store.record_mailbox_ok(key, now).await
        {
            self.raise();
            return Err(e);
        }
        Ok(())
    }
}

/// Whether a letter is made again at the next pass if it cannot be prepared now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Made {
    /// A planned letter: due until it is queued, so the next pass makes it again.
    EveryPass,
    /// A notice made in answer to mail or to a count of votes: made once, never again.
    Once,
}

/// What recording a message's reaction left to do.
enum Outcome {
    /// Nothing but the message's filing, for the caller to write with its batch.
    Filed(Filing),
    /// Written; the reference of a case it opened.
    Done(Option<String>),
}

/// A batch of pending messages being loaded (through the pool, not the loop's own connection)
/// and parsed on a blocking thread, in the background; a message the fetch has just stored comes
/// already read ([`Store::take_fresh`]) when its row still waits. Dropping it stops that work: the loop
/// returned early, and what it would have read is still pending for the next pass.
/// A packed message is parsed from its skeleton and files, without its files' base64 being made
/// again only to be decoded ([`crate::shell::store::PendingStored::parse`]).
struct Ahead(tokio::task::JoinHandle<Result<Vec<(Arrival, intake::Message)>, EngineError>>);

impl Ahead {
    fn start(store: &Store, ids: Vec<i64>) -> Ahead {
        let store = store.clone();
        Ahead(tokio::spawn(async move {
            // What the fetch read as it stored it is taken as it is; the rest is read back.
            let mut fresh = store.take_fresh(&ids);
            if !fresh.is_empty() {
                let taken: Vec<i64> = fresh.keys().copied().collect();
                let waiting = store.still_new(&taken).await?;
                fresh.retain(|id, _| waiting.contains(id));
            }
            let missing: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|id| !fresh.contains_key(id))
                .collect();
            let loaded = if missing.is_empty() {
                Vec::new()
            } else {
                store.pending_stored(&missing).await?
            };
            let mut read: std::collections::HashMap<i64, (Arrival, intake::Message)> =
                tokio::task::spawn_blocking(move || {
                    loaded
                        .into_iter()
                        .map(|m| Ok((m.id, (m.arrival(), m.parse()?))))
                        .collect::<Result<_, EngineError>>()
                })
                .await
                .map_err(stopped)??;
            // In the order asked for; a message no longer pending is in neither.
            Ok(ids
                .iter()
                .filter_map(|id| fresh.remove(id).or_else(|| read.remove(id)))
                .collect())
        }))
    }

    async fn finished(mut self) -> Result<Vec<(Arrival, intake::Message)>, EngineError> {
        let task = &mut self.0;
        task.await.map_err(stopped)?
    }
}

/// How a task reading ahead stopped, without its panic's message (which could quote the mail).
fn stopped(e: tokio::task::JoinError) -> EngineError {
    EngineError::ReadAhead {
        panicked: e.is_panic(),
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The pending messages (id and size, in the order to decide them) in batches of at most
/// [`IN_LIST`] messages and [`LOAD_BUDGET`] bytes; a message larger than the budget alone.
fn load_batches(pending: &[(i64, u64)]) -> Vec<Vec<i64>> {
    crate::shell::store::batches_by_bytes(pending.iter().copied(), IN_LIST, LOAD_BUDGET)
}

/// Take the one-daemon lock: an exclusive `flock` on the database file itself, held for the
/// engine's life.
///
/// Why the database file and not a `<path>.lock` beside it: a lock follows the inode, so two
/// daemons reaching one database through a symlink, a `./dir/../dir` path, a hard link in another
/// directory or a bind mount meet the same lock (a lock file named after the path, or even after
/// the canonical path, misses hard links; one named by (device, inode) misses a hard link in
/// another directory). It is a `flock`, which on Linux is independent of the POSIX (`fcntl`) locks
/// SQLite takes on the same file, so it does not disturb SQLite's own locking. (Over NFS `flock`
/// is emulated with POSIX locks — but SQLite's WAL mode does not work over a network file system
/// anyway.) The descriptor is closed only when the engine drops, after its store.
pub(crate) fn lock_file(db: &std::path::Path) -> Result<std::fs::File, EngineError> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| EngineError::Lock {
            path: dir.display().to_string(),
            source,
        })?;
    }
    // Created here if new, as the store would, owner-only.
    match crate::shell::store::lock_path(db, true) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(EngineError::Locked {
            path: db.display().to_string(),
        }),
        Err(source) => Err(EngineError::Lock {
            path: db.display().to_string(),
            source,
        }),
    }
}

impl EngineError {
    /// The error without any address or content in it, for logs.
    pub fn for_log(&self) -> String {
        match self {
            EngineError::Letters(e) => e.for_log(),
            other => other.to_string(),
        }
    }
}

impl From<AttachmentError> for EngineError {
    fn from(e: AttachmentError) -> EngineError {
        match e {
            AttachmentError::Store(e) => EngineError::Store(e),
            AttachmentError::Letter(e) => EngineError::Letters(e),
        }
    }
}

impl Engine {
    /// Open the store (taking the database lock) and load the templates.
    pub async fn open(
        cfg: Config,
        clock: SharedClock,
        existing: ExistingMail,
    ) -> Result<Engine, EngineError> {
        let lock = lock_file(&cfg.database)?;
        let store = Store::open(&cfg.database).await?;
        let templates = crate::shell::templates::load(&cfg.templates_dir)?;
        let install_id = store
            .meta_or_init("install_id", || {
                let seed = format!("{:?}{}{:?}", clock.now(), std::process::id(), cfg.database);
                hex::encode(&Sha256::digest(seed.as_bytes())[..8])
            })
            .await?;
        let vote_key = store
            .meta_or_init("vote_key", || {
                let mut bytes = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .expect("the system random source works");
                hex::encode(bytes)
            })
            .await?;
        let vote_key = crate::shell::store::installation_secret(&vote_key)?;
        crate::core::intake::keep_hashes_private(&vote_key);
        let engine = Engine {
            cfg: Arc::new(cfg),
            store,
            templates,
            clock,
            existing,
            install_id,
            vote_key,
            transport: None,
            progress: Progress::off(),
            sending: None,
            first_run: std::sync::Mutex::new(None),
            unrecorded: outbox::Unrecorded::default(),
            memo: std::sync::Mutex::default(),
            unprepared: std::sync::Mutex::default(),
            unprepared_once: std::sync::Mutex::default(),
            letters_raised: Raised::default(),
            pass_raised: Raised::default(),
            held_steps: std::sync::Mutex::default(),
            _lock: lock,
        };
        engine.import_new_steps().await?;
        Ok(engine)
    }

    /// Steps new to the process file since the last start ([`upgrade`]): each open case is
    /// planned as it stands — its votes counted, as a pass does, but before any mail is decided
    /// — and every letter of a new step already due is recorded imported — not sent. A case
    /// whose letters could not all be recorded (a template missing, a case that cannot be
    /// planned) keeps the new steps' letters held — none is sent, each raised at every pass —
    /// until a start records them (kept in `steps_held:<process>`, so a restart before then
    /// holds them still): fixing what stopped it never sends that case's old letters, and every
    /// other case, a case opened since included, writes as planned. Each new step's id is logged.
    pub async fn import_new_steps(&self) -> Result<usize, EngineError> {
        let key = format!("steps_known:{}", self.cfg.process.id);
        let held_key = format!("steps_held:{}", self.cfg.process.id);
        let steps: Vec<&str> = self
            .cfg
            .process
            .steps
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        let stored = self.store.meta(&key).await?;
        let (new, record) = upgrade::new_steps(stored.as_deref(), &steps);
        let before = upgrade::read_held(self.store.meta(&held_key).await?.as_deref());
        if record.is_none() && before.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now();
        for step in &new {
            tracing::info!(step = %step, "a step or behaviour new to this installation: its letters already due on open cases are recorded imported, not sent");
        }
        let (mut imported, mut held) = (0, upgrade::Held::new());
        let mut open = self.store.every_case(true, false).await?;
        while let Some(page) = open.next_page().await? {
            for (case, events) in page {
                let steps = upgrade::steps_to_import(&new, before.get(&case.id));
                if steps.is_empty() {
                    continue;
                }
                let (done, failed) = self.import_due(&case, &events, &steps, now).await?;
                imported += done;
                if failed > 0 {
                    tracing::error!(case = %case.reference, steps = %steps.join(","), failed, "letters of new steps could not be recorded imported: this case's letters of those steps are held until a start records them");
                    held.insert(case.id, steps);
                }
            }
        }
        // The held cases first: a stop between the two writes finds the steps new again, and
        // imports again (what was recorded is not recorded twice).
        if held != before {
            self.store
                .set_meta(&held_key, &upgrade::write_held(&held))
                .await?;
        }
        if let Some(record) = record {
            self.store.set_meta(&key, &record).await?;
        }
        *self.held_steps.lock().expect("not poisoned") = held;
        Ok(imported)
    }

    /// One open case's letters of `new` steps due now, recorded imported — not sent: how many
    /// were, and how many could not be (a case that cannot be read or planned counts one).
    async fn import_due(
        &self,
        case: &CaseRow,
        events: &[crate::core::records::EventRow],
        new: &[String],
        now: DateTime<Utc>,
    ) -> Result<(usize, usize), EngineError> {
        if case.process != self.cfg.process.id {
            return Ok((0, 0));
        }
        let planned = match case::fold_rows(events) {
            Ok(state) => self.settled_plan(state, now),
            Err(e) => {
                tracing::error!(case = %case.reference, error = %e, "a case whose history cannot be read: its letters of new steps cannot be recorded imported");
                return Ok((0, 1));
            }
        };
        let (settled, plan) = match planned {
            (settled, Ok(plan)) => (settled, plan),
            (_, Err(e)) => {
                tracing::error!(case = %case.reference, error = %e, "a case that cannot be planned: its letters of new steps cannot be recorded imported");
                return Ok((0, 1));
            }
        };
        let due: Vec<&DueLetter> = plan
            .due
            .iter()
            .filter(|d| upgrade::letter_is_new(new, &d.step, &d.key))
            .collect();
        if due.is_empty() {
            return Ok((0, 0));
        }
        let mut tx = self.store.begin().await?;
        let (mut imported, mut failed) = (0, 0);
        for d in due {
            match self
                .queue(&mut tx, case, &settled.state, d, d.due.at, now, true)
                .await
            {
                Ok(new) => imported += usize::from(new),
                Err(EngineError::Store(e)) => return Err(EngineError::Store(e)),
                Err(e) => {
                    tracing::error!(case = %case.reference, step = %d.step, error = %e.for_log(), "a letter of a new step could not be recorded imported");
                    failed += 1;
                }
            }
        }
        Store::commit(tx).await?;
        Ok((imported, failed))
    }

    /// A case's votes counted and its letters planned, as a pass does them
    /// ([`Engine::plan_case`], [`Engine::import_due`]).
    fn settled_plan(
        &self,
        state: CaseState,
        now: DateTime<Utc>,
    ) -> (react::Settlement, Result<timeline::Plan, TimelineError>) {
        let settled = react::settle(&self.rules(), state, now);
        let planned = timeline::plan(
            &self.cfg.process,
            &self.cfg.directory,
            &self.cfg.calendar,
            &settled.state,
            now,
        )
        .map(|mut plan| {
            timeline::address_receipts(&mut plan, &self.cfg.directory);
            plan
        });
        (settled, planned)
    }

    /// Send through `transport` instead of the configured SMTP server.
    pub fn with_transport(mut self, transport: Arc<dyn outbox::Transport>) -> Engine {
        self.transport = Some(transport);
        self
    }

    /// Show a long pass's progress (on a terminal: see [`Progress::on_terminal`]).
    pub fn with_progress(mut self, progress: Progress) -> Engine {
        self.progress = progress;
        self
    }

    /// Record how a pass ended under [`PASS_HEALTH_KEY`]: failed (what failed goes to the log,
    /// not the row: it can name the mailbox's address), or worked after failing ([`Raised`]).
    /// Best effort: a database that would not take it is what made the pass fail, and the health
    /// check's own rules (`database_read_only`, `disk_low`) speak for it then.
    pub async fn note_pass(&self, failed: bool, now: DateTime<Utc>) {
        let recorded = match failed {
            true => {
                self.pass_raised.raise();
                self.store
                    .record_mailbox_error(PASS_HEALTH_KEY, "pass failed", now)
                    .await
            }
            false => {
                self.pass_raised
                    .clear(&self.store, PASS_HEALTH_KEY, now)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::debug!(error = %e, "how the pass ended could not be recorded");
        }
    }

    /// Record under `key` that these letters (none: nothing) could not be prepared this pass.
    async fn raise_unprepared(
        &self,
        key: &str,
        unprepared: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let said = match unprepared {
            [] => return Ok(()),
            [one] => format!("a letter could not be prepared: {one}"),
            [first, ..] => format!(
                "{} letters could not be prepared; the first: {first}",
                unprepared.len()
            ),
        };
        self.store.record_mailbox_error(key, &said, now).await?;
        Ok(())
    }

    /// The first run's rule, as read at the start of this pass.
    fn first_run(&self) -> Option<FirstRun> {
        self.first_run.lock().ok().and_then(|f| *f)
    }

    /// One pass: fetch, classify and react, plan and queue, send.
    ///
    /// Mail is decided while the fetch is still storing it: the fetch publishes how far the
    /// pending mail may be decided ([`mailbox::Frontier`]: up to the earliest arrival still to be
    /// stored), so every message is decided in the order of arrival, as if the whole fetch had
    /// been stored first, while a first run over a full mailbox keeps both cores busy.
    pub async fn tick(&self) -> Result<TickReport, EngineError> {
        let now = self.clock.now();
        let mut report = TickReport::default();
        let (tx, rx) = tokio::sync::watch::channel(mailbox::Frontier::Unknown);
        let fetching = async {
            let fetched = mailbox::fetch_once(
                &self.cfg.imap,
                &self.store,
                self.existing,
                now,
                &self.progress,
                Some(&tx),
            )
            .await;
            // However it ended, it stores nothing more: what is stored may all be decided.
            tx.send_replace(mailbox::Frontier::Done);
            fetched
        };
        let (fetched, decided) = tokio::join!(fetching, self.decide(now, Some(rx)));
        // A deciding stopped early leaves the fetch to store on alone: what it read is let go.
        self.store.forget_fresh();
        match fetched {
            Ok(f) => report.fetch = Some(f),
            Err(e) => {
                tracing::error!(error = %e, "could not read the mailbox; carrying on with what is stored");
                self.store
                    .record_mailbox_error(&self.cfg.imap.folder, &e.to_string(), now)
                    .await?;
                report.fetch_error = Some(e.to_string());
            }
        }
        (report.processed, report.opened) = decided?;
        self.after_deciding(now, &mut report).await?;
        Ok(report)
    }

    /// Everything after fetching: classify and react, plan, queue, send.
    pub async fn work(
        &self,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), EngineError> {
        (report.processed, report.opened) = self.decide(now, None).await?;
        self.after_deciding(now, report).await
    }

    /// The first run's rule, then every pending message classified and reacted to (with a
    /// `frontier`, while a fetch stores more: see [`Engine::tick`]). How many were processed,
    /// and the references of the cases opened.
    async fn decide(
        &self,
        now: DateTime<Utc>,
        mut frontier: Option<tokio::sync::watch::Receiver<mailbox::Frontier>>,
    ) -> Result<(usize, Vec<String>), EngineError> {
        // The first run's record is written by the fetch's first look at the folder, before it
        // knows what it will store.
        if let Some(rx) = &mut frontier {
            // An error means the fetch is gone: nothing more will be stored.
            let _ = rx.wait_for(|f| *f != mailbox::Frontier::Unknown).await;
        }
        let first = crate::shell::firstrun::rule(
            &self.store,
            &self.cfg.calendar,
            self.cfg.first_run_late_days,
        )
        .await?;
        if let Ok(mut f) = self.first_run.lock() {
            *f = first;
        }
        let decided = self.process_messages(now, frontier).await;
        // Decided (or stopped by an error): readings the fetch kept and nobody took — messages
        // filed meanwhile by an operator's command, or left by the error — are let go.
        self.store.forget_fresh();
        decided
    }

    /// Plan, queue the periodic letters, send, and the daily chores: what a pass does after
    /// deciding the mail.
    async fn after_deciding(
        &self,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), EngineError> {
        let (queued, wake) = self.plan_all(now).await?;
        // Raised, or cleared, before the digest is made, so that it says how things stand.
        let unprepared = std::mem::take(&mut *self.unprepared.lock().expect("not poisoned"));
        match unprepared.is_empty() {
            true => {
                self.letters_raised
                    .clear(&self.store, PREPARE_HEALTH_KEY, now)
                    .await?
            }
            false => {
                self.letters_raised.raise();
                self.raise_unprepared(PREPARE_HEALTH_KEY, &unprepared, now)
                    .await?
            }
        }
        let once = std::mem::take(&mut *self.unprepared_once.lock().expect("not poisoned"));
        self.raise_unprepared(NOTICE_HEALTH_KEY, &once, now).await?;
        // The daily digest and the tracker report (after planning, so they see today's letters).
        let mut periodic_unprepared = Vec::new();
        let (periodic, periodic_wake) = crate::shell::periodic::queue_due(
            &self.cfg,
            &self.store,
            &self.templates,
            &self.letterhead(),
            now,
            &mut periodic_unprepared,
        )
        .await?;
        // Made again at every pass of its day while it fails, but not after: a notice's row.
        self.raise_unprepared(NOTICE_HEALTH_KEY, &periodic_unprepared, now)
            .await?;
        report.unprepared = unprepared.len() + once.len() + periodic_unprepared.len();
        report.queued = queued + periodic;
        // Once a London day: the history's chain head, recorded and logged (its id and hash).
        crate::shell::verify::record_head_if_due(&self.store, now).await?;
        let doubt = outbox::InDoubt {
            sender: Some(&self.cfg.address),
            progress: self.sending.as_deref(),
            ..outbox::InDoubt::from_settings(&self.cfg.imap)
        };
        match &self.transport {
            Some(t) => {
                report.sent =
                    outbox::send_due_settling(&self.store, t.as_ref(), &self.unrecorded, doubt, now)
                        .await?
            }
            None => match outbox::smtp(&self.cfg.smtp) {
                Ok(t) => {
                    report.sent = outbox::send_due_settling(
                        &self.store,
                        t.as_ref(),
                        &self.unrecorded,
                        doubt,
                        now,
                    )
                    .await?;
                    // Letters really sent (not a recorder's) go to the sent folder too.
                    if let Err(mailbox::MailboxError::Store(e)) =
                        crate::shell::sentfolder::file_sent(&self.cfg.imap, &self.store, now).await
                    {
                        return Err(EngineError::Store(e));
                    }
                }
                Err(outbox::OutboxError::Store(e)) => return Err(EngineError::Store(e)),
                Err(e) => {
                    // Every letter waits, as for a refused login, and the <smtp> row says so.
                    tracing::error!(error = %e, "cannot send: the SMTP settings cannot be used");
                    let hold = e.hold();
                    self.store
                        .record_mailbox_error(outbox::SMTP_HEALTH_KEY, hold.recorded(), now)
                        .await?;
                    report.sent.held = Some(hold);
                }
            },
        }
        // The retention schedule, once a London day (shell::retention): a failure is logged,
        // raised on <retention> and tried again on the next pass; it never stops the mail.
        let key = crate::shell::store::RETENTION_HEALTH_KEY;
        match crate::shell::retention::daily(&self.store, &self.cfg.retention, now).await {
            Ok(None) => {}
            Ok(Some(_)) => self.store.record_mailbox_ok(key, now).await?,
            Err(e) => {
                tracing::error!(error = %e, "retention could not run; tried again on the next pass");
                if let Err(e) = self
                    .store
                    .record_mailbox_error(key, "retention could not run", now)
                    .await
                {
                    tracing::debug!(error = %e, "the retention failure could not be recorded");
                }
            }
        }
        if let Some(source) = self
            .cfg
            .smtp
            .oauth2
            .as_ref()
            .or(self.cfg.imap.oauth2.as_ref())
        {
            crate::shell::oauth::record_health(source, &self.store, now).await?;
        }
        let next_send = self.store.next_send_at().await?;
        // An outbox stopped by a database that would not take its records tries again soon.
        let unstop = report
            .sent
            .stopped
            .then(|| now + outbox::RETRY_RECORDING_AFTER);
        // A letter in doubt waiting for the server's copy is looked at again when its grace ends.
        let recheck = report.sent.recheck_at;
        report.next_wake = [
            wake,
            periodic_wake,
            next_send.filter(|t| *t > now),
            unstop,
            recheck,
        ]
        .into_iter()
        .flatten()
        .min();
        Ok(())
    }

    /// What the core's reaction rules may know: the process, calendar, directory and settings.
    pub fn rules(&self) -> Rules<'_> {
        Rules {
            process: &self.cfg.process,
            calendar: &self.cfg.calendar,
            directory: &self.cfg.directory,
            cutoff: self.cfg.cutoff,
            vote_key: &self.vote_key,
            authserv_id: self.cfg.authserv_id.as_deref(),
            banners: &self.cfg.banners,
            limits: self.cfg.limits,
        }
    }

    /// Who letters come from and what they may name.
    pub fn letterhead(&self) -> Letterhead<'_> {
        Letterhead {
            name: &self.cfg.partnership_name,
            short_name: &self.cfg.short_name,
            address: &self.cfg.address,
            id_domain: &self.cfg.id_domain,
            install_id: &self.install_id,
            vote_key: &self.vote_key,
            process: &self.cfg.process,
            calendar: &self.cfg.calendar,
            directory: &self.cfg.directory,
            paperwork: &self.cfg.paperwork,
            secure_smtp: self.cfg.smtp.tls != crate::shell::config::TlsMode::None,
        }
    }

    /// The vote code of one member on one decision of a case.
    pub fn vote_code(&self, case_ref: &str, decision: &str, voter: &str) -> String {
        crate::core::decisions::vote_code(&self.vote_key, case_ref, decision, voter)
    }

    /// Classify and react to every stored message not yet handled. Returns (count, references
    /// opened).
    ///
    /// The backlog is listed by id and size and loaded a batch at a time (up to [`IN_LIST`]
    /// messages within [`LOAD_BUDGET`] bytes, or one larger message alone); while one batch is
    /// decided the next is loaded and parsed on other threads ([`Ahead`]), so at most two
    /// batches are held, whatever the backlog. Loading ahead of a
    /// message's turn is safe because only this loop files `new` messages (one engine at a time:
    /// the daemon's lock), and what classifying a message needs from those decided before it
    /// (threads, cases, answers counted) is looked up when its turn comes.
    ///
    /// A message whose reaction is only its filing is filed with the rest of its batch in one
    /// statement, at the end of the batch; every other reaction is recorded in its own
    /// transaction at once. A filing so deferred changes nothing a later message's decision reads,
    /// and if the pass stops before it is written the message is still `new` and is decided
    /// again on the next pass.
    ///
    /// With a `frontier` (a fetch still storing mail, [`Engine::tick`]), only what arrived up to
    /// it is decided, round after round as the fetch publishes more, until the fetch is done and
    /// nothing is pending: the order of decisions is the order of arrival, as without one.
    pub async fn process_messages(
        &self,
        now: DateTime<Utc>,
        mut frontier: Option<tokio::sync::watch::Receiver<mailbox::Frontier>>,
    ) -> Result<(usize, Vec<String>), EngineError> {
        // Made when the first message is to be decided, and kept for the pass.
        let mut pass: Option<(classify::Context, DecisionConn)> = None;
        let (mut processed, mut opened) = (0, Vec::new());
        loop {
            // How far may be decided: everything once no fetch is storing mail.
            let seen = frontier
                .as_mut()
                .map_or(mailbox::Frontier::Done, |rx| *rx.borrow_and_update());
            let pending = match seen {
                mailbox::Frontier::Done => self.store.pending_sized(None).await?,
                mailbox::Frontier::Until(d) => self.store.pending_sized(Some(d)).await?,
                mailbox::Frontier::Unknown => Vec::new(),
            };
            if pending.is_empty() {
                match frontier.as_mut() {
                    Some(rx) if seen != mailbox::Frontier::Done => {
                        // The fetch goes on: wait until it has stored more (or is gone).
                        if rx.changed().await.is_err() {
                            frontier = None;
                        }
                        continue;
                    }
                    _ => break,
                }
            }
            let mut alone = Vec::new();
            let (ctx, filing) = match &mut pass {
                Some(p) => p,
                None => {
                    // Filings commit without waiting for the disk; see `DecisionConn` for why
                    // that is safe.
                    let mut filing = self.store.decision_connection().await?;
                    alone = self.after_a_stop(&mut filing, &pending, now).await?;
                    pass.insert((self.classify_context().await?, filing))
                }
            };
            if !alone.is_empty() {
                // What a stopped pass was deciding goes first, a message at a time; then the
                // rest, read again.
                for one in pending.iter().filter(|(id, _)| alone.contains(id)) {
                    let decided = self
                        .decide_pending(&[*one], ctx, filing, now, (processed, None), true)
                        .await;
                    if let Err(e) = &decided
                        && !matches!(e, EngineError::ReadAhead { panicked: true })
                    {
                        // An error, not a crash: the message is tried alone again, not set
                        // aside. (Reading it panicked on a thread of its own: that is the
                        // message's doing, as a crash is, and its record stays.)
                        let back = deciding::Mark::Alone(one.0).after_error();
                        if let Err(e) = filing.mark_deciding(Some(&back.encode())).await {
                            // Left as it was, the message would be set aside for an error.
                            tracing::warn!(stored_message = one.0, error = %e, "could not record that deciding this message ended in an error, not a stop: it may be set aside for a person at the next pass");
                        }
                    }
                    processed += 1;
                    opened.extend(decided?);
                }
                continue;
            }
            // Progress is the fetch's while it goes on.
            let shown = (seen == mailbox::Frontier::Done).then_some(processed + pending.len());
            let decided = self
                .decide_pending(&pending, ctx, filing, now, (processed, shown), false)
                .await?;
            processed += pending.len();
            opened.extend(decided);
        }
        if let Some((_, filing)) = pass.as_mut() {
            filing.mark_deciding(None).await?;
        }
        if processed > 0 {
            self.progress.update("deciding", processed, processed);
        }
        Ok((processed, opened))
    }

    /// At a pass's first pending message: what the last pass left undecided when it stopped
    /// ([`deciding`]). A message that stopped caseclerk alone is set aside for a person, unread,
    /// and raised in health; the messages to decide alone first are returned.
    async fn after_a_stop(
        &self,
        filing: &mut DecisionConn,
        pending: &[(i64, u64)],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, EngineError> {
        let mark = filing
            .deciding_mark()
            .await?
            .and_then(|m| deciding::Mark::decode(&m));
        let ids: Vec<i64> = pending.iter().map(|(id, _)| *id).collect();
        let todo = deciding::after_a_stop(mark.as_ref(), &ids);
        if let Some(id) = todo.set_aside {
            tracing::error!(
                stored_message = id,
                "caseclerk stopped twice while deciding this message: set aside for a person, unread"
            );
            let why = serde_json::json!({
                "kind": "Unread",
                "rule": deciding::SET_ASIDE_RULE,
                "reasons": [deciding::SET_ASIDE_WHY],
            });
            filing
                .file_messages(
                    &[Filing {
                        id,
                        state: react::Filing::Triage.as_str(),
                        rule: deciding::SET_ASIDE_RULE,
                        verdict: why,
                    }],
                    now,
                )
                .await?;
            filing.mark_deciding(None).await?;
            self.store
                .record_mailbox_error(
                    crate::shell::store::SET_ASIDE_HEALTH_KEY,
                    &format!("message {id} was set aside unread"),
                    now,
                )
                .await?;
        } else if !todo.alone.is_empty() {
            tracing::warn!(
                messages = todo.alone.len(),
                "the last pass stopped while deciding: its messages are decided one at a time"
            );
        }
        Ok(todo.alone)
    }

    /// Decide `pending` in order, a loaded batch at a time (see [`Engine::process_messages`]);
    /// the references of the cases opened. `progress` is how many were decided before, and the
    /// total to show (none while a fetch goes on).
    async fn decide_pending(
        &self,
        pending: &[(i64, u64)],
        ctx: &mut classify::Context,
        filing: &mut DecisionConn,
        now: DateTime<Utc>,
        (mut processed, total): (usize, Option<usize>),
        alone: bool,
    ) -> Result<Vec<String>, EngineError> {
        let mut opened = Vec::new();
        let mut batches = load_batches(pending).into_iter();
        // What is read and decided, recorded before it is read ([`deciding`]): reading (parsing)
        // is as likely to stop the pass as deciding. The batch being decided and the one read
        // ahead of it together; a message decided alone after a stop under its own record.
        let mark = |deciding: &[i64], ahead: &[i64]| match (deciding, ahead, alone) {
            ([], [one], true) => deciding::Mark::Alone(*one),
            _ => deciding::Mark::Batch(deciding.iter().chain(ahead).copied().collect()),
        };
        let start = |b: Vec<i64>| (b.clone(), Ahead::start(&self.store, b));
        let mut ahead = None;
        if let Some(first) = batches.next() {
            filing
                .mark_deciding(Some(&mark(&[], &first).encode()))
                .await?;
            ahead = Some(start(first));
        }
        while let Some((ids, batch)) = ahead.take() {
            let loaded = batch.finished().await?;
            // The next batch is loaded and parsed on other threads while this one is decided.
            if let Some(next) = batches.next() {
                filing
                    .mark_deciding(Some(&mark(&ids, &next).encode()))
                    .await?;
                ahead = Some(start(next));
            }
            let mut filings = Vec::new();
            for (m, msg) in loaded {
                if let Some(total) = total {
                    self.progress.update("deciding", processed, total);
                }
                processed += 1;
                ctx.known = Self::known_thread(filing, &msg).await?;
                let verdict = classify::classify(&msg, ctx);
                let reaction = self.react_to(filing, &m, &msg, &verdict, now).await?;
                match reaction {
                    Outcome::Filed(f) => filings.push(f),
                    Outcome::Done(None) => {}
                    Outcome::Done(Some(reference)) => {
                        // A reply later in this same pass finds the new case by its conversation
                        // too.
                        if let Some(conversation) = &msg.thread_conversation {
                            ctx.conversations.push(classify::Conversation {
                                conversation: conversation.clone(),
                                case_ref: reference.clone(),
                            });
                        }
                        ctx.case_refs.push(reference.clone());
                        opened.push(reference);
                    }
                }
            }
            filing.file_messages(&filings, now).await?;
        }
        Ok(opened)
    }

    /// What classification may know beyond a message: our addresses, the cases, the agencies and
    /// which agencies are on which open case.
    async fn classify_context(&self) -> Result<classify::Context, EngineError> {
        let mut agency_cases = Vec::new();
        let mut open = self.store.every_case(true, false).await?;
        while let Some(page) = open.next_page().await? {
            for (case, events) in page {
                if let Ok(state) = case::fold_rows(&events) {
                    // Whether its return is awaited: its request went (in any round) and no
                    // return has come. Before the request, or after the return, what the agency
                    // sends with no thread and no reference is not taken for its return (the
                    // case's police officer and another officer's new death notification share a
                    // domain).
                    let asked = |id: &str| {
                        let key = format!("agency:{id}");
                        state.letters.iter().any(|((step, to), l)| {
                            l.sent_at.is_some()
                                && timeline::key_without_round(to) == key
                                && self
                                    .cfg
                                    .process
                                    .step(step)
                                    .is_some_and(|s| s.kind == StepKind::AgencyRequest)
                        })
                    };
                    for (id, a) in state.active_agencies() {
                        agency_cases.push(classify::AgencyCase {
                            agency: id.clone(),
                            case_ref: case.reference.clone(),
                            awaited: a.returned_at.is_none() && asked(id),
                        });
                    }
                }
            }
        }
        Ok(classify::Context {
            own_addresses: self.cfg.own_addresses.clone(),
            own_id_domain: self.cfg.id_domain.clone(),
            known: Vec::new(),
            case_refs: classify::CaseRefs::new(&self.cfg.id_domain, self.store.case_refs().await?),
            agencies: self
                .cfg
                .directory
                .agencies
                .iter()
                .map(|a| classify::AgencyContact {
                    id: a.id.clone(),
                    addresses: a.addresses(),
                    domains: a.domains.clone(),
                })
                .collect(),
            agency_cases,
            conversations: self
                .store
                .conversations()
                .await?
                .into_iter()
                .map(|(conversation, case_ref)| classify::Conversation {
                    conversation,
                    case_ref,
                })
                .collect(),
            trust: self.cfg.trust.clone(),
        })
    }

    /// The messages of ours a message's In-Reply-To and References name.
    async fn known_thread(
        filing: &mut DecisionConn,
        msg: &intake::Message,
    ) -> Result<Vec<classify::Known>, EngineError> {
        let mut ids: Vec<String> = msg.in_reply_to.clone();
        ids.extend(msg.references.iter().cloned());
        ids.sort();
        ids.dedup();
        Ok(filing
            .thread_ids(&ids)
            .await?
            .into_iter()
            .map(|t| classify::Known {
                message_id: t.message_id,
                case_ref: t.case_ref,
                letter: t.step.map(|step| classify::LetterRef {
                    step,
                    recipient: t.recipient.unwrap_or_default(),
                }),
            })
            .collect())
    }

    /// Load what a verdict names, ask the core what the message does, and record it in one
    /// transaction. Returns the reference of a case it opened.
    async fn react_to(
        &self,
        filing: &mut DecisionConn,
        m: &Arrival,
        msg: &intake::Message,
        verdict: &classify::Verdict,
        now: DateTime<Utc>,
    ) -> Result<Outcome, EngineError> {
        use classify::Kind;
        let mut bounced = None;
        let case = match &verdict.kind {
            Kind::CaseReply { case_ref, .. } => self.store.case_by_ref(case_ref).await?,
            Kind::AutoReply { case_ref } | Kind::SecureNotice { case_ref } => match case_ref {
                Some(r) => self.store.case_by_ref(r).await?,
                None => None,
            },
            Kind::Bounce { original_ids, .. } => {
                let mut row = None;
                for id in original_ids {
                    if let Some(r) = self.store.letter_by_message_id(id).await? {
                        row = Some(r);
                        break;
                    }
                }
                let case = match row.as_ref().and_then(|r| r.case_id) {
                    Some(id) => self.store.case_by_id(id).await?,
                    None => None,
                };
                bounced = row.map(|r| BouncedLetter {
                    outbox: r.id,
                    step: r.step,
                    recipient: r.recipient,
                    addressed: r.envelope_to.iter().map(|a| a.to_lowercase()).collect(),
                });
                case
            }
            _ => None,
        };
        let state = match &case {
            Some(c) => match self.state(c).await {
                Ok(state) => Some(state),
                // A message about a case whose history cannot be read is listed for a person,
                // and the case raised: deciding it would need the case, and failing the pass
                // would stop every other message and letter behind it, pass after pass.
                Err(e @ EngineError::Case { .. }) => {
                    tracing::error!(case = %c.reference, stored_message = m.id, error = %e.for_log(), "message about a case whose history cannot be read: listed for a person");
                    self.unprepared.lock().expect("not poisoned").push(format!(
                        "{}: its history cannot be read, so message {} about it waits in triage",
                        c.reference, m.id
                    ));
                    let mut reaction = Reaction::new(react::Filing::Triage).because(
                        "unreadable_case",
                        format!(
                            "about {}, whose history caseclerk cannot read (see caseclerk \
                             health)",
                            c.reference
                        ),
                    );
                    // Stored on the case all the same (nothing recorded on it): its hold, its
                    // export and its retention cover it, as for a reply on a closed case.
                    reaction.on_case = true;
                    let case = case.clone();
                    return self
                        .record_reaction(filing, m, msg, verdict, case, None, reaction, now)
                        .await;
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let incoming = Incoming {
            stored: m.id,
            received: m.internal_date,
            msg,
            verdict,
        };
        let found = Found {
            case: state.as_ref(),
            bounced: bounced.as_ref(),
        };
        // The caps, with what the store counts for them, only for a reaction they can change
        // (one that opens a case or answers): the rest passes them unchanged, uncounted.
        let rules = self.rules();
        let placed = react::react(&rules, &incoming, found, now);
        let reaction = if limits::can_cap(&placed) {
            let counts = self.counts(filing, msg, m.internal_date, now).await?;
            limits::within_caps(placed, &counts, &rules.limits)
        } else {
            placed
        };
        self.record_reaction(filing, m, msg, verdict, case, state, reaction, now)
            .await
    }

    /// What the caps need counted for a message ([`limits::Counts`]): letters in answer to its
    /// addresses in the last 24 hours, and cases opened for its referrer from referrals received
    /// in the 24 hours before it. (By when the mail arrived, not when it is processed: a first
    /// run over a mailbox holding years of one hospital's referrals is not capped, a loop is.)
    async fn counts(
        &self,
        filing: &mut DecisionConn,
        msg: &intake::Message,
        received: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<limits::Counts, EngineError> {
        let since = now - chrono::Duration::hours(24);
        let steps = limits::answer_steps(&self.cfg.process);
        let mut counts = limits::Counts::default();
        for address in limits::counted_addresses(msg) {
            let n = filing.answers_since(&address, &steps, since).await?;
            counts.answers.insert(address, n);
        }
        // The referrer a referral would open a case for ([`react::referrer_of`]).
        if let Some(referrer) = react::referrer_of(msg) {
            counts.cases_opened = filing
                .cases_opened_since(&referrer, received - chrono::Duration::hours(24))
                .await?;
        }
        Ok(counts)
    }

    /// Record a reaction: open its case, record its events, queue its notices, file the message.
    #[allow(clippy::too_many_arguments)]
    async fn record_reaction(
        &self,
        filing: &mut DecisionConn,
        m: &Arrival,
        msg: &intake::Message,
        verdict: &classify::Verdict,
        mut case: Option<CaseRow>,
        mut state: Option<CaseState>,
        reaction: Reaction,
        now: DateTime<Utc>,
    ) -> Result<Outcome, EngineError> {
        let vjson = serde_json::to_value(verdict).unwrap_or(serde_json::Value::Null);
        for step in &reaction.steps {
            tracing::info!(stored_message = m.id, rule = step.rule, why = %step.why, "reaction");
        }
        let rule = reaction.held_by.unwrap_or(verdict.rule);
        let on_case = case.is_some() && reaction.on_case;
        if reaction.open.is_none() && !on_case && reaction.mark_bounced.is_none() {
            // Nothing but the filing to write: the caller files it with the rest of its batch.
            return Ok(Outcome::Filed(Filing {
                id: m.id,
                state: reaction.filing.as_str(),
                rule,
                verdict: vjson,
            }));
        }
        let mut tx = filing.begin().await?;
        let mut opened = None;
        if let Some(o) = &reaction.open {
            let (row, rec) = record_opening(&mut tx, &self.cfg, o, "caseclerk", now).await?;
            state = case::fold(std::slice::from_ref(&rec)).ok();
            tracing::info!(case = %row.reference, stored_message = m.id, day0 = %o.day0, "referral opened a case");
            opened = Some(row.reference.clone());
            case = Some(row);
        }
        let on_case = case.as_ref().filter(|_| reaction.on_case);
        if let Some(case) = on_case {
            for e in &reaction.events {
                record_event(&mut tx, case.id, e.at, &e.actor, &e.event).await?;
            }
            if reaction.thread
                && let Some(id) = &msg.message_id
            {
                Store::add_thread_id(&mut tx, id, case.id, None, None, None).await?;
            }
            // Outlook's conversation of anything filed on a case finds the case again
            // (core::classify's `conversation` rule).
            if reaction.filing == react::Filing::Filed
                && let Some(conv) = &msg.thread_conversation
            {
                Store::add_conversation(&mut tx, conv, case.id).await?;
            }
            if let Some(state) = &state {
                // An answer to a message fell due when the message arrived.
                for notice in &reaction.notices {
                    self.queue_notice(
                        &mut tx,
                        case,
                        state,
                        notice,
                        m.internal_date,
                        now,
                        Made::Once,
                    )
                    .await?;
                }
            }
        }
        if let Some(outbox) = reaction.mark_bounced {
            Store::mark_bounced(&mut tx, outbox).await?;
        }
        Store::file_message(
            &mut tx,
            m.id,
            reaction.filing.as_str(),
            rule,
            &vjson,
            on_case.map(|c| c.id),
            now,
        )
        .await?;
        Store::commit(tx).await?;
        Ok(Outcome::Done(opened))
    }

    /// A case's state, from its events.
    pub async fn state(&self, case: &CaseRow) -> Result<CaseState, EngineError> {
        let events = self.store.events(case.id).await?;
        case::fold_rows(&events).map_err(|source| EngineError::Case {
            reference: case.reference.clone(),
            source,
        })
    }

    /// Count, plan and queue every open case. Returns (letters queued, next wake-up).
    ///
    /// A case the last pass found nothing to do for, unchanged since and not at its wake-up, is
    /// skipped unread ([`PlanMemo`]): a pass with nothing new reads the events table's watermark
    /// and no case. The others and their events are read [`PLAN_READ_CASES`] at a time (two
    /// queries each, not one per case); each is folded and planned in memory, and a transaction
    /// is opened only for a case with something to record.
    pub async fn plan_all(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>), EngineError> {
        // Taken for the pass: a pass that fails part-way leaves nothing remembered (the next
        // plans every case), and a pass running beside it plans every case itself.
        let mut memo = self
            .memo
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        let selection = memo.select(&self.store, &self.cfg.process.id, now).await?;
        let mut wake = selection.wake;
        let mut queued = 0;
        let mut read = Vec::new();
        // Opened for the first case with something to record (see `DecisionConn`).
        let mut decisions = None;
        for ids in selection.read.chunks(PLAN_READ_CASES) {
            for (case, events) in self.store.open_cases_with_events_among(ids).await? {
                read.push(case.id);
                let version = Version::of(&events);
                if case.process != self.cfg.process.id {
                    tracing::warn!(case = %case.reference, "case belongs to another process file; not planned");
                    memo.foreign(case.id, version, &case.reference);
                    continue;
                }
                let state = match case::fold_rows(&events) {
                    Ok(state) => state,
                    Err(source) => {
                        // One case whose history cannot be read stops no other: it is raised
                        // (the digest lists it too) and read again at every pass, never quiet.
                        let e = EngineError::Case {
                            reference: case.reference.clone(),
                            source,
                        };
                        tracing::error!(case = %case.reference, error = %e.for_log(), "case not planned");
                        self.unprepared.lock().expect("not poisoned").push(format!(
                            "{}: its history cannot be read, so none of its letters can be planned",
                            case.reference
                        ));
                        memo.planned(case.id, version, None);
                        continue;
                    }
                };
                drop(events);
                let (n, w, nothing_new) = self.plan_case(&mut decisions, &case, state, now).await?;
                queued += n;
                if let Some(w) = w {
                    wake = Some(wake.map_or(w, |x| x.min(w)));
                }
                let quiet = nothing_new.then_some(Quiet {
                    planned_at: now,
                    wake: w,
                });
                memo.planned(case.id, version, quiet);
            }
        }
        memo.finish(selection, &read);
        if let Ok(mut m) = self.memo.lock() {
            *m = memo;
        }
        Ok((queued, wake))
    }

    /// Forget what the planning pass remembers: the next pass reads and plans every open case, as
    /// the first pass after a start does (the scale benchmark measures it).
    pub fn forget_plans(&self) {
        if let Ok(mut m) = self.memo.lock() {
            *m = PlanMemo::default();
        }
    }

    /// One case: count its votes, plan it, and record and queue the result in one transaction
    /// (none when there is nothing to record). Returns the letters queued, the next wake-up, and
    /// whether there was nothing to do at all (nothing counted, nothing due, no error: a
    /// [`Quiet`] case).
    async fn plan_case(
        &self,
        decisions: &mut Option<DecisionConn>,
        case: &CaseRow,
        state: CaseState,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>, bool), EngineError> {
        let (settled, mut planned) = self.settled_plan(state.clone(), now);
        for step in &settled.steps {
            tracing::info!(case = %case.reference, rule = step.rule, why = %step.why, "votes counted");
        }
        // Steps whose letters the start could not record imported: held, and raised.
        let held = self
            .held_steps
            .lock()
            .expect("not poisoned")
            .get(&case.id)
            .cloned()
            .unwrap_or_default();
        if let Ok(plan) = &mut planned
            && !held.is_empty()
        {
            let (held_back, due): (Vec<DueLetter>, Vec<DueLetter>) = std::mem::take(&mut plan.due)
                .into_iter()
                .partition(|d| upgrade::letter_is_new(&held, &d.step, &d.key));
            plan.due = due;
            for d in held_back {
                self.unprepared.lock().expect("not poisoned").push(format!(
                    "{}: {}: held, as the step is new and its letters already due could not all \
                     be recorded imported at the start (see the log); fix what it names and \
                     restart",
                    case.reference, d.step
                ));
            }
        }
        // A planning problem (a due step with nobody to write to, an agency no longer in the
        // directory) stops a letter as surely as a failed template: raised with them, and the case
        // planned again at every pass until it is gone.
        let nothing_new = settled.events.is_empty()
            && settled.notices.is_empty()
            && planned
                .as_ref()
                .is_ok_and(|p| p.due.is_empty() && p.problems.is_empty());
        if nothing_new && let Ok(plan) = &planned {
            return Ok((0, plan.next_wake, true));
        }
        let conn = match decisions {
            Some(conn) => conn,
            None => decisions.insert(self.store.decision_connection().await?),
        };
        let mut tx = conn.begin().await?;
        for e in &settled.events {
            record_event(&mut tx, case.id, e.at, &e.actor, &e.event).await?;
        }
        // What counting the votes sends fell due when the deciding vote arrived.
        let decided = settled.events.iter().map(|e| e.at).max().unwrap_or(now);
        for notice in &settled.notices {
            self.queue_notice(&mut tx, case, &state, notice, decided, now, Made::Once)
                .await?;
        }
        let state = settled.state;
        let plan = match planned {
            Ok(p) => p,
            Err(source) => {
                // Raised with the letters that cannot be prepared: every letter of the case
                // waits on it, and nothing else would say so.
                tracing::error!(case = %case.reference, error = %source, "cannot plan this case");
                self.unprepared.lock().expect("not poisoned").push(format!(
                    "{}: its letters cannot be planned: {source}",
                    case.reference
                ));
                Store::commit(tx).await?;
                return Ok((0, None, false));
            }
        };
        for p in &plan.problems {
            tracing::warn!(case = %case.reference, problem = %p, "planning problem");
            self.unprepared
                .lock()
                .expect("not poisoned")
                .push(format!("{}: {p}", case.reference));
        }
        let mut queued = 0;
        for due in &plan.due {
            if self
                .queue_notice(&mut tx, case, &state, due, due.due.at, now, Made::EveryPass)
                .await?
            {
                queued += 1;
            }
        }
        Store::commit(tx).await?;
        Ok((queued, plan.next_wake, false))
    }

    /// Queue a letter or notice; one that cannot be prepared (a template that will not render, an
    /// unreadable attachment) is logged and raised (as `made` says), never allowed to undo the
    /// transaction it rides in (the message, decision or other letters it comes with must still
    /// be recorded). Only a database error stops the pass. Returns whether it was new.
    #[allow(clippy::too_many_arguments)]
    async fn queue_notice(
        &self,
        tx: &mut Tx<'_>,
        case: &CaseRow,
        state: &CaseState,
        due: &DueLetter,
        fell_due: DateTime<Utc>,
        now: DateTime<Utc>,
        made: Made,
    ) -> Result<bool, EngineError> {
        match self.queue(tx, case, state, due, fell_due, now, false).await {
            Ok(new) => Ok(new),
            Err(EngineError::Store(e)) => Err(EngineError::Store(e)),
            Err(e) => {
                tracing::error!(case = %case.reference, step = %due.step, error = %e.for_log(), "letter could not be prepared");
                let raised = match made {
                    Made::EveryPass => &self.unprepared,
                    Made::Once => {
                        // Nothing makes it again: the case's history keeps what a person must
                        // send by hand (the health row keeps only the latest failure).
                        let note = Event::Note {
                            text: format!(
                                "the {} letter to {} could not be prepared ({}) and was not \
                                 sent: send what it should have said by hand",
                                due.step,
                                due.key,
                                e.for_log()
                            ),
                        };
                        record_event(tx, case.id, now, "caseclerk", &note).await?;
                        &self.unprepared_once
                    }
                };
                raised.lock().expect("not poisoned").push(format!(
                    "{} {}: {}",
                    case.reference,
                    due.step,
                    e.for_log()
                ));
                Ok(false)
            }
        }
    }

    /// Make one due letter of a case ([`letters::case_letter`]), queue it ([`outbox::enqueue`])
    /// and record it on the case, in the caller's transaction. A letter that fell due (at
    /// `fell_due`) long before the first run is stored as imported — not sent
    /// ([`firstrun::imported_not_sent`]). Returns whether it was new.
    #[allow(clippy::too_many_arguments)]
    async fn queue(
        &self,
        tx: &mut Tx<'_>,
        case: &CaseRow,
        state: &CaseState,
        due: &DueLetter,
        fell_due: DateTime<Utc>,
        now: DateTime<Utc>,
        new_step: bool,
    ) -> Result<bool, EngineError> {
        // A letter whose enclosures were erased is recorded, never sent: no empty copies.
        let erased = attachments::erased(&self.store, state, &due.attach).await?;
        let unsendable = crate::core::retention::unsendable_after_erasure(&erased);
        // What is withheld first: it parses the mail again, and need not do so while the files
        // are held.
        let (withheld, files) = match unsendable {
            Some(_) => (None, Vec::new()),
            None => (
                attachments::withheld(&self.store, state, &due.attach).await?,
                attachments::read(&self.cfg, &self.store, state, &due.attach).await?,
            ),
        };
        let particulars = self.store.particulars(case.id).await?;
        let enclosures = letters::Enclosures {
            attachments: files,
            withheld: withheld.as_deref(),
            particulars: &particulars,
        };
        let letter = letters::case_letter(
            &self.letterhead(),
            &self.templates,
            case.id,
            state,
            due,
            enclosures,
            now,
        )?;
        let Some(id) = outbox::enqueue(tx, &letter, now).await? else {
            return Ok(false);
        };
        let late = (now - due.due.at).num_minutes().max(0);
        let imported = new_step || firstrun::imported_not_sent(self.first_run().as_ref(), fell_due);
        let e = Event::LetterQueued {
            step: due.step.clone(),
            recipient: due.key.clone(),
            outbox: id,
            due_at: due.due.at,
            late_minutes: late,
            imported,
        };
        record_event(tx, case.id, now, "caseclerk", &e).await?;
        if imported {
            Store::mark_imported(tx, id).await?;
            tracing::info!(case = %case.reference, step = %due.step, outbox = id, "letter fell due before the first run or before its step was in the process: imported, not sent");
            return Ok(true);
        }
        if let Some(reason) = unsendable {
            Store::mark_attempt_failed(tx, id, &reason, None).await?;
            let e = Event::LetterUndelivered {
                step: due.step.clone(),
                recipient: due.key.clone(),
                outbox: id,
                reason,
            };
            record_event(tx, case.id, now, "caseclerk", &e).await?;
            tracing::warn!(case = %case.reference, step = %due.step, outbox = id, "letter not sent: what it encloses was erased under the retention schedule; recorded undelivered");
            return Ok(true);
        }
        tracing::debug!(case = %case.reference, step = %due.step, outbox = id, "letter decided");
        if late > 60 {
            tracing::warn!(case = %case.reference, step = %due.step, late_minutes = late, "letter decided late");
        }
        Ok(true)
    }

    /// The daemon: watch the mailbox and tick whenever something may have arrived or fallen due.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), EngineError> {
        // systemd (`Type=notify`): ready once the lock is held and the watcher started; a watchdog
        // ping only after a pass that worked, so a daemon stuck failing is restarted — and after
        // each letter a pass sends, so a long pass of large letters is not taken for a hung one.
        let systemd = Arc::new(crate::shell::sdnotify::Notifier::from_env());
        let pinged = systemd.clone();
        self.sending = Some(Arc::new(move || pinged.alive("sending letters")));
        let notify = Arc::new(tokio::sync::Notify::new());
        let start_watcher = || {
            tokio::spawn(mailbox::watch(mailbox::Watcher {
                settings: Arc::new(self.cfg.imap.clone()),
                notify: notify.clone(),
                store: self.store.clone(),
                clock: self.clock.clone(),
            }))
        };
        let mut watcher = start_watcher();
        tokio::pin!(shutdown);
        systemd.ready("started; first pass");
        // The first pass fetches; after that the watcher's signal means "fetch", and the timer
        // (at the next due instant, and at least every minute, so an operator's change is acted on
        // promptly) means "plan and send" — and "fetch" too once `fetch_interval` has passed
        // since the last fetch: the safety net for a watcher that is reconnecting or a server whose
        // IDLE has gone quiet.
        let mut last_fetch = tokio::time::Instant::now();
        let mut fetch = true;
        let mut first = true;
        // Between passes, memory freed in the last ones goes back to the system (at most every
        // ten seconds: see `allocator`), so a burst does not leave the daemon holding its peak.
        let mut give_back = allocator::GiveBack::default();
        loop {
            keep_running(&mut watcher, start_watcher);
            let report = if fetch {
                last_fetch = tokio::time::Instant::now();
                self.tick().await
            } else {
                let mut r = TickReport::default();
                self.work(self.clock.now(), &mut r).await.map(|_| r)
            };
            let wake = match report {
                Ok(r) => {
                    if r.processed > 0 || r.queued > 0 || r.sent.sent > 0 || r.sent.undelivered > 0
                    {
                        tracing::info!(
                            processed = r.processed,
                            opened = r.opened.len(),
                            queued = r.queued,
                            sent = r.sent.sent,
                            retrying = r.sent.retrying,
                            undelivered = r.sent.undelivered,
                            "tick"
                        );
                    }
                    systemd.alive(&pass_status(&r, self.clock.now()));
                    self.note_pass(false, self.clock.now()).await;
                    r.next_wake
                }
                Err(e) => {
                    self.note_pass(true, self.clock.now()).await;
                    match failed_pass_notice(self.unrecorded.ids().len()) {
                        Notice::Alive(status) => systemd.alive(&status),
                        Notice::Status(status) => systemd.status(&status),
                    }
                    tracing::error!(error = %e.for_log(), "tick failed; retrying within a minute");
                    // Sooner while the outbox holds outcomes the database would not take.
                    (!self.unrecorded.ids().is_empty())
                        .then(|| self.clock.now() + outbox::RETRY_RECORDING_AFTER)
                }
            };
            if std::mem::take(&mut first) {
                tracing::info!("first pass done");
            }
            if give_back.due(tokio::time::Instant::now().into_std()) {
                give_back_memory().await;
            }
            let now = self.clock.now();
            let next_fetch = last_fetch + self.cfg.imap.fetch_interval;
            let sleep = wake
                .map(|w| (w - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(RESCAN)
                .min(RESCAN)
                .min(next_fetch.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                _ = notify.notified() => fetch = true,
                _ = tokio::time::sleep(sleep) => {
                    fetch = tokio::time::Instant::now() >= next_fetch;
                    if fetch {
                        tracing::debug!("safety-net fetch");
                    }
                }
                _ = &mut shutdown => {
                    systemd.stopping();
                    tracing::info!("shutting down");
                    watcher.abort();
                    return Ok(());
                }
            }
        }
    }
}

/// Start the mailbox watcher again if it has stopped. It never returns while it works (it
/// reconnects on its own); a panic in it would otherwise leave the daemon fetching only on its
/// safety-net timer, `watcher_silent` CRITICAL until a person restarted it. Whether it was.
fn keep_running(
    watcher: &mut tokio::task::JoinHandle<()>,
    start: impl FnOnce() -> tokio::task::JoinHandle<()>,
) -> bool {
    if !watcher.is_finished() {
        return false;
    }
    tracing::error!("the mailbox watcher stopped; started again");
    *watcher = start();
    true
}

/// `malloc_trim` on a blocking thread (it walks every arena); its time and outcome at debug level.
async fn give_back_memory() {
    let started = tokio::time::Instant::now();
    match tokio::task::spawn_blocking(allocator::give_back).await {
        Ok(gave) => tracing::debug!(
            gave,
            took_us = started.elapsed().as_micros() as u64,
            "free memory given back to the system"
        ),
        Err(e) => tracing::warn!(error = %e, "giving back free memory failed"),
    }
}

/// What the daemon tells systemd after a pass.
#[derive(Debug, PartialEq, Eq)]
enum Notice {
    /// The loop is alive: the watchdog is pinged, with this status.
    Alive(String),
    /// Only this status: without a ping, the watchdog restarts the daemon when the passes have
    /// failed for its whole interval.
    Status(String),
}

/// After a failed pass: no ping — a daemon whose passes keep failing may be stuck in a way a
/// restart mends — unless the outbox holds letters the server accepted whose outcomes the
/// database would not take (`unrecorded`): a restart would forget them and send them again (with
/// `sent_copy = "caseclerk"`), so while any is held the loop, which is alive, keeps the watchdog
/// fed.
fn failed_pass_notice(unrecorded: usize) -> Notice {
    match unrecorded {
        0 => Notice::Status("the last pass failed; retrying within a minute (see the log)".into()),
        n => Notice::Alive(format!(
            "the last pass failed, and {n} letter(s) the mail server accepted are not yet \
             recorded as sent: do not restart caseclerk (see the log)"
        )),
    }
}

/// The one line `systemctl status` shows after a pass: counts and a time, nothing personal.
fn pass_status(r: &TickReport, now: DateTime<Utc>) -> String {
    let mut s = format!(
        "last pass {}: {} message(s) processed, {} letter(s) sent",
        crate::core::calendar::short_instant(now),
        r.processed,
        r.sent.sent
    );
    if r.sent.retrying > 0 {
        s.push_str(&format!(", {} retrying", r.sent.retrying));
    }
    match r.sent.held {
        Some(SmtpHold::LoginRefused) => {
            s.push_str("; the mail server refuses our login: letters held")
        }
        Some(SmtpHold::CertificateNotTrusted) => {
            s.push_str("; the mail server's certificate is not trusted: letters held")
        }
        Some(SmtpHold::SenderRefused) => {
            s.push_str("; the mail server refuses to send as our address: letters held")
        }
        Some(SmtpHold::MailboxRefused) => s.push_str(
            "; the mail server will not send from the shared mailbox (full or throttled): letters held",
        ),
        Some(SmtpHold::ConnectionRefused) => {
            s.push_str("; the mail server refuses caseclerk's connection: letters held")
        }
        None => {}
    }
    if r.unprepared > 0 {
        s.push_str(&format!(
            "; {} letter(s) could not be prepared (caseclerk health names the first)",
            r.unprepared
        ));
    }
    // A stopped outbox still pings the watchdog: a restart would lose the outcome it holds in
    // memory and send that letter again.
    if r.sent.stopped {
        s.push_str("; the outbox is stopped: the database would not take its records");
    }
    s
}

/// Open the case a referral opens, in the caller's transaction: create it (its reference from
/// the year's counter), record its `opened` event as `actor`, and read the referral's
/// particulars. The one path a case is opened by — the daemon for a classified referral, a
/// person for a message in triage ([`crate::shell::operator::open_referral`]). Returns the new
/// case's row and its first event.
pub(crate) async fn record_opening(
    tx: &mut Tx<'_>,
    cfg: &Config,
    o: &react::Opening,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(CaseRow, Recorded), StoreError> {
    let (id, reference) = Store::create_case(
        tx,
        &cfg.reference_prefix,
        &o.process,
        o.area.as_deref(),
        o.received_at,
        o.day0,
        o.referrer.as_deref(),
        now,
    )
    .await?;
    let event = o.event(&reference);
    record_event(tx, id, o.received_at, actor, &event).await?;
    record_particulars(tx, id, o, now).await?;
    let rec = Recorded {
        at: o.received_at,
        actor: actor.to_string(),
        event,
    };
    Ok((opened_row(id, &reference, o), rec))
}

/// Store the particulars read from the referral that opened case `case_id`, with an event naming
/// the fields found (never the values; nor does the log).
async fn record_particulars(
    tx: &mut Tx<'_>,
    case_id: i64,
    o: &react::Opening,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (found, unreadable, message) = (&o.particulars, o.unreadable, o.message);
    Store::add_particulars(tx, case_id, found, now).await?;
    let e = Event::ParticularsRead {
        message,
        fields: found.iter().map(|p| p.field.as_str().to_string()).collect(),
        unreadable,
    };
    record_event(tx, case_id, now, "caseclerk", &e).await?;
    tracing::info!(
        case_id,
        stored_message = message,
        particulars = found.len(),
        unreadable,
        "particulars read from the referral"
    );
    Ok(())
}

/// The row of a case just created in the current transaction (a read through the pool would not
/// see it yet).
fn opened_row(id: i64, reference: &str, o: &react::Opening) -> CaseRow {
    CaseRow {
        id,
        reference: reference.to_string(),
        process: o.process.clone(),
        area: o.area.clone(),
        status: crate::shell::store::CaseStatus::Open,
        received_at: o.received_at,
        day0: o.day0,
        referrer: o.referrer.clone(),
    }
}

/// How long the daemon sleeps at most between passes over the cases.
pub const RESCAN: Duration = Duration::from_secs(60);

/// Where an installed caseclerk's configuration lives (the Debian package's conffile).
pub const INSTALLED_CONFIG: &str = "/etc/caseclerk/caseclerk.toml";

/// The configuration file when `--config` is not given: `CASECLERK_CONFIG`, else
/// [`INSTALLED_CONFIG`] when it exists, else `config/example.toml` when that exists (the source
/// tree: the demo and the bench), else [`INSTALLED_CONFIG`] — so the error names the file an
/// operator is expected to write.
pub fn default_config_path() -> PathBuf {
    choose_config(
        std::env::var_os("CASECLERK_CONFIG").map(PathBuf::from),
        |p| p.is_file(),
    )
}

fn choose_config(env: Option<PathBuf>, exists: impl Fn(&Path) -> bool) -> PathBuf {
    let source_tree = Path::new("config/example.toml");
    env.unwrap_or_else(|| {
        if !exists(Path::new(INSTALLED_CONFIG)) && exists(source_tree) {
            source_tree.to_path_buf()
        } else {
            PathBuf::from(INSTALLED_CONFIG)
        }
    })
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn a_watcher_that_stopped_is_started_again_and_a_running_one_is_left_alone() {
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = || {
            started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(std::future::pending::<()>())
        };
        let mut watcher = tokio::spawn(async { panic!("a bug in the watcher") });
        while !watcher.is_finished() {
            tokio::task::yield_now().await;
        }
        assert!(super::keep_running(&mut watcher, start));
        assert!(!super::keep_running(&mut watcher, start), "running");
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
        watcher.abort();
    }

    #[test]
    fn a_failed_pass_feeds_the_watchdog_only_while_the_outbox_holds_accepted_letters() {
        assert!(matches!(
            super::failed_pass_notice(0),
            super::Notice::Status(_)
        ));
        match super::failed_pass_notice(2) {
            super::Notice::Alive(s) => assert!(s.contains("do not restart"), "{s}"),
            other => panic!("{other:?}"),
        }
    }

    // The deciding loop's batches: in order, at most IN_LIST messages and LOAD_BUDGET bytes, a
    // larger message alone, every message exactly once.
    #[test]
    fn pending_messages_are_loaded_in_order_in_batches_bounded_by_count_and_bytes() {
        let mb = 1024 * 1024;
        let mut pending: Vec<(i64, u64)> = (1..=250).map(|id| (id, 1000)).collect();
        pending.push((251, 3 * mb));
        pending.push((252, 3 * mb));
        pending.push((253, 3 * mb));
        pending.push((254, 20 * mb));
        pending.push((255, 10));
        let batches = super::load_batches(&pending);
        let flat: Vec<i64> = batches.iter().flatten().copied().collect();
        assert_eq!(flat, (1..=255).collect::<Vec<_>>());
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        // 100, 100, then 50 small ones with two of 3 MB (under 8 MB); the third 3 MB one starts
        // a batch the 20 MB one does not fit in, which is alone, and the last starts its own.
        assert_eq!(sizes, [100, 100, 52, 1, 1, 1]);
        for b in &batches {
            let bytes: u64 = b
                .iter()
                .map(|id| pending[usize::try_from(*id).unwrap() - 1].1)
                .sum();
            assert!(b.len() <= IN_LIST);
            assert!(b.len() == 1 || bytes <= LOAD_BUDGET, "{bytes}");
        }
    }
    use super::*;

    /// A fresh directory holding `db/caseclerk.db` (the file exists, as after a first run).
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("caseclerk-lock-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("db/caseclerk.db"), b"").unwrap();
        dir
    }

    fn refused(second: &Path) -> bool {
        matches!(lock_file(second), Err(EngineError::Locked { .. }))
    }

    #[test]
    fn the_default_configuration_is_the_installed_one_then_the_source_trees_then_the_installed_path()
     {
        let env = Some(PathBuf::from("/srv/cc.toml"));
        assert_eq!(choose_config(env, |_| true), PathBuf::from("/srv/cc.toml"));
        assert_eq!(
            choose_config(None, |_| true),
            PathBuf::from(INSTALLED_CONFIG)
        );
        let only_source = |p: &Path| p == Path::new("config/example.toml");
        assert_eq!(
            choose_config(None, only_source),
            PathBuf::from("config/example.toml")
        );
        assert_eq!(
            choose_config(None, |_| false),
            PathBuf::from(INSTALLED_CONFIG)
        );
    }

    #[test]
    fn a_second_daemon_through_a_symlink_is_refused() {
        let dir = scratch("symlink");
        std::os::unix::fs::symlink(dir.join("db/caseclerk.db"), dir.join("link.db")).unwrap();
        std::os::unix::fs::symlink(dir.join("db"), dir.join("linkdir")).unwrap();
        let _first = lock_file(&dir.join("db/caseclerk.db")).unwrap();
        assert!(refused(&dir.join("link.db")));
        assert!(refused(&dir.join("linkdir/caseclerk.db")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_daemon_through_a_dot_dot_path_is_refused() {
        let dir = scratch("dotdot");
        let _first = lock_file(&dir.join("db/caseclerk.db")).unwrap();
        assert!(refused(&dir.join("./db/../db/caseclerk.db")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_daemon_through_a_hard_link_in_another_directory_is_refused() {
        let dir = scratch("hardlink");
        std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
        std::fs::hard_link(dir.join("db/caseclerk.db"), dir.join("elsewhere/copy.db")).unwrap();
        let _first = lock_file(&dir.join("db/caseclerk.db")).unwrap();
        assert!(refused(&dir.join("elsewhere/copy.db")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_refusal_says_to_stop_the_daemon_first() {
        let dir = scratch("message");
        let _first = lock_file(&dir.join("db/caseclerk.db")).unwrap();
        let e = lock_file(&dir.join("db/caseclerk.db"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("another caseclerk is already working on"), "{e}");
        assert!(e.contains("stop the daemon first"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_different_database_is_not_refused_and_the_lock_ends_with_the_engine() {
        let dir = scratch("other");
        std::fs::write(dir.join("db/other.db"), b"").unwrap();
        let first = lock_file(&dir.join("db/caseclerk.db")).unwrap();
        assert!(lock_file(&dir.join("db/other.db")).is_ok());
        drop(first);
        assert!(lock_file(&dir.join("db/caseclerk.db")).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_new_database_file_is_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("new");
        let _lock = lock_file(&dir.join("fresh/caseclerk.db")).unwrap();
        let mode = std::fs::metadata(dir.join("fresh/caseclerk.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
