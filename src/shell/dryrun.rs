//! `caseclerk tick --dry-run`: what one pass would open and send, writing and sending nothing.
//!
//! Owns running the real pass — the same engine, fetch, rules and templates — against a throwaway
//! copy of the database in a private temporary directory (`VACUUM INTO`: one consistent snapshot,
//! taken read-only from the real file; an empty database when there is none yet), with a
//! [`RecordingTransport`] that keeps letters instead of sending them. Then it describes the copy's
//! new cases and letters and deletes the directory.
//!
//! Why a copy rather than one transaction rolled back: the engine commits once per message and
//! once per case (so a crash never loses more than one), and the outbox reads what earlier
//! transactions decided; one enclosing transaction would be a second engine. A copy runs exactly
//! the code a real run runs — including the first run's `--since` filter and the imported — not
//! sent rule — and the real database is only ever read. Reading the mailbox changes nothing there
//! either: caseclerk fetches with `BODY.PEEK[]`.
//!
//! The plan names cases by reference, letters by their step's name, dates, and counts of
//! addressees — never an address, a subject or a body.
//!
//! Must not: write to the configured database, send anything, or print addresses or content.

use crate::core::calendar;
use crate::core::records::OutboxState;
use crate::shell::clock::SharedClock;
use crate::shell::config::Config;
use crate::shell::engine::{Engine, EngineError, TickReport};
use crate::shell::mailbox::ExistingMail;
use crate::shell::outbox::RecordingTransport;
use crate::shell::private::{Scratch, scratch_root};
use crate::shell::progress::Progress;
use crate::shell::store::{CaseRow, OutboxRow, StoreError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// What a dry run found: the pass's report and the letters it decided, by case.
#[derive(Debug)]
pub struct Plan {
    pub report: TickReport,
    /// The cases the pass opened or wrote letters for, with their new letters.
    pub cases: Vec<(CaseRow, Vec<OutboxRow>)>,
    /// New letters on no case (the digest, the tracker report).
    pub other: Vec<OutboxRow>,
    /// Step id → step name, from the process.
    names: BTreeMap<String, String>,
}

/// The dry run's private scratch directory (a copy of the database): beside the database, as a
/// backup's is ([`scratch_root`]) — on the volume that holds the children's records (encrypted,
/// where the README asks for it), swept by the next backup, restore or dry run. Only an operator
/// who may read the database but not write beside it gets one under the system's temporary
/// directory (a root per user, swept by the next dry run), and is told so.
fn scratch(database: &std::path::Path) -> Result<Scratch, StoreError> {
    let beside = scratch_root(database);
    if let Ok(s) = Scratch::under(&beside) {
        return Ok(s);
    }
    let uid = crate::shell::private::our_uid().unwrap_or_default();
    let root = std::env::temp_dir().join(format!("caseclerk-dry-run-{uid}"));
    tracing::warn!(
        "cannot write beside the database: the dry run's copy of it goes under the system's \
         temporary directory for the run (run it as the daemon's user to keep it beside the \
         database)"
    );
    Scratch::under(&root).map_err(|source| StoreError::File {
        path: root.display().to_string(),
        source,
    })
}

/// Run one pass against a copy of the database, sending nothing; describe what it did.
pub async fn run(
    mut cfg: Config,
    clock: SharedClock,
    existing: ExistingMail,
    progress: Progress,
) -> Result<Plan, EngineError> {
    let dir = scratch(&cfg.database)?;
    let copy = dir.path("dry-run.db");
    if cfg.database.exists() {
        crate::shell::store::Store::copy_to(&cfg.database, &copy).await?;
    }
    // What the copy held before this run — read before the engine opens, as opening it may
    // already decide letters (a step new to the process file records those already due).
    let before = match cfg.database.exists() {
        true => crate::shell::store::Store::open(&copy)
            .await?
            .letter_summaries(None)
            .await?
            .iter()
            .map(|l| l.id)
            .max()
            .unwrap_or(0),
        false => 0,
    };
    cfg.database = copy;
    let names = cfg
        .process
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    let engine = Engine::open(cfg, clock, existing)
        .await?
        .with_transport(Arc::new(RecordingTransport::new()))
        .with_progress(progress);
    let report = engine.tick().await?;
    let mut by_case: BTreeMap<i64, Vec<OutboxRow>> = BTreeMap::new();
    let mut other = Vec::new();
    for summary in engine.store.letter_summaries(None).await? {
        if summary.id <= before {
            continue;
        }
        let Some(l) = engine.store.letter(summary.id).await? else {
            continue;
        };
        match l.case_id {
            Some(c) => by_case.entry(c).or_default().push(l),
            None => other.push(l),
        }
    }
    let mut cases = Vec::new();
    for c in engine.store.cases().await? {
        let opened = report.opened.contains(&c.reference);
        let letters = by_case.remove(&c.id).unwrap_or_default();
        if opened || !letters.is_empty() {
            cases.push((c, letters));
        }
    }
    drop(engine);
    drop(dir);
    Ok(Plan {
        report,
        cases,
        other,
        names,
    })
}

impl Plan {
    fn step_name(&self, step: &str) -> String {
        self.names
            .get(step)
            .cloned()
            .unwrap_or_else(|| step.trim_start_matches("notice-").replace('-', " "))
    }

    fn count(&self, state: OutboxState) -> usize {
        self.cases
            .iter()
            .flat_map(|(_, l)| l)
            .chain(&self.other)
            .filter(|l| l.state == state)
            .count()
    }

    /// The plan as text: counts, then one line per case and per letter.
    pub fn render(&self) -> String {
        let mut out =
            String::from("dry run: nothing was written to the database and nothing was sent\n");
        if let Some(f) = &self.report.fetch {
            let _ = writeln!(
                out,
                "mailbox: {} new message(s); {} read, {} left for people",
                f.seen, f.stored, f.left
            );
        }
        if let Some(e) = &self.report.fetch_error {
            let _ = writeln!(out, "mailbox could not be read: {e}");
        }
        let _ = writeln!(
            out,
            "would process {} message(s), open {} case(s), send {} letter(s) now; {} imported — not sent; {} later",
            self.report.processed,
            self.report.opened.len(),
            self.count(OutboxState::Sent),
            self.count(OutboxState::Imported),
            self.count(OutboxState::Pending)
        );
        for (case, letters) in &self.cases {
            let opened = if self.report.opened.contains(&case.reference) {
                "would open"
            } else {
                "open"
            };
            let _ = writeln!(
                out,
                "{}  {opened}, received {}, day 0 {}",
                case.reference,
                calendar::short_instant(case.received_at),
                calendar::short_date(case.day0)
            );
            for l in letters {
                self.letter_line(&mut out, l);
            }
        }
        for l in &self.other {
            self.letter_line(&mut out, l);
        }
        out
    }

    fn letter_line(&self, out: &mut String, l: &OutboxRow) {
        let what = match l.state {
            OutboxState::Sent => "send",
            OutboxState::Imported => "imported — not sent",
            OutboxState::Pending => "later",
            OutboxState::Failed | OutboxState::Bounced => "would fail",
        };
        let _ = writeln!(
            out,
            "  {what:<20} {:<40} due {}  to {} addressee(s)",
            self.step_name(&l.step),
            calendar::short_instant(l.due_at),
            l.envelope_to.len()
        );
    }
}
