//! `caseclerk bench --cases N`: how the daily work grows with the number of cases.
//!
//! Owns one repeatable measurement on a throwaway local mail stack: N referrals (by default
//! 10,000, each from its own referrer with a small attached form) arrive in the shared mailbox
//! in slices of 1,000 and go through the real ingest path — caseclerk's IMAP fetch into its
//! store, classification, the reaction that opens the case and queues its letters, and the
//! planning pass — never written to the database directly. Letters are decided, not sent (no
//! SMTP: sending is measured by `caseclerk chaos` and `bench --burst`). After the first 1,000
//! cases and again after the last slice, in the same process and the same database, it times
//! - **planning pass**: [`Engine::plan_all`] with nothing new, after one case changed, and with
//!   nothing remembered (the first pass after a start), against its reference: the pure planning
//!   of the same states (counting votes and [`timeline::plan`], no database);
//! - **digest**: `caseclerk digest` (snapshot, build, render), and **export** as XLSX and CSV,
//!   against reading every case, event and letter summary from the database;
//! - **`case <ref>`**: the report of the newest case, against the report of the first case;
//! - **opening a case**: the mean time to process a referral in the slice just ingested,
//!   against the same in the first slice.
//!
//! Each figure is the best of a few repetitions (the machine is shared). The numbers go in the
//! README; no test asserts on them.
//!
//! Must not: touch any mailbox but its own throwaway stack, or keep anything afterwards.

use crate::core::{case, react, timeline};
use crate::dev::bench::BenchError;
use crate::dev::devstack::MailStack;
use crate::dev::membench::{self, large_referral};
use crate::shell::clock::{SharedClock, SystemClock};
use crate::shell::config::{self, Needs};
use crate::shell::engine::Engine;
use crate::shell::mailbox::{self, ExistingMail};
use crate::shell::progress::Progress;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// The configuration to derive the bench's from (its process, templates, people).
    pub config: PathBuf,
    /// Cases to create in all.
    pub cases: usize,
    /// Cases per slice; the first measurement is taken after the first slice.
    pub slice: usize,
    /// The size of each referral (its attached form is most of it), in bytes.
    pub form_bytes: usize,
}

/// The figures at one number of cases.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub cases: usize,
    pub planning: Duration,
    /// The planning pass after one case changed (a legal hold placed or released).
    pub planning_one: Duration,
    /// The planning pass with nothing remembered (the first after a start).
    pub planning_cold: Duration,
    pub planning_pure: Duration,
    pub digest: Duration,
    pub export_xlsx: Duration,
    pub export_csv: Duration,
    /// Reading every case, event and letter as the digest and the tracker do
    /// ([`crate::shell::store::Store::every_case`]).
    pub read_all: Duration,
    /// The same rows read through sqlx's pool, page by page (how they were read before).
    pub read_all_sqlx: Duration,
    pub case_newest: Duration,
    pub case_first: Duration,
    /// Mean time to process one referral (open its case) in the slice that reached `cases`.
    pub open_mean: Duration,
    pub database_bytes: u64,
    /// The raw mail of the referrals appended so far (the reference for the database's size).
    pub mail_bytes: u64,
    /// The web workspace's pages over HTTP, by name, in words ([`crate::dev::pagebench`]).
    pub pages: Vec<(String, String)>,
}

/// What one run measured: the figures after the first slice and after the last.
#[derive(Debug, Clone, Default)]
pub struct ScaleReport {
    pub marks: Vec<Figures>,
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl ScaleReport {
    /// The report as the README shows it: one column per number of cases, the reference beside.
    pub fn render(&self) -> String {
        let cell = |s: String| format!("{s:>14}");
        let line = |name: &str, get: &dyn Fn(&Figures) -> String| {
            let cells: String = self.marks.iter().map(|m| cell(get(m))).collect();
            format!("{name:<38}{cells}\n")
        };
        let first_open = self.marks.first().map(|m| m.open_mean).unwrap_or_default();
        let names = self
            .marks
            .first()
            .map(|m| m.pages.clone())
            .unwrap_or_default();
        let pages = names.iter().enumerate().map(|(i, (name, _))| {
            line(&format!("page: {name}"), &|m| {
                m.pages.get(i).map_or_else(String::new, |(_, v)| v.clone())
            })
        });
        [
            line("", &|m| format!("{} cases", m.cases)),
            line("planning pass (nothing new)", &|m| ms(m.planning)),
            line("planning pass (one case changed)", &|m| ms(m.planning_one)),
            line("planning pass (first after a start)", &|m| {
                ms(m.planning_cold)
            }),
            line("  reference: pure planning", &|m| ms(m.planning_pure)),
            line("digest", &|m| ms(m.digest)),
            line("export --format xlsx", &|m| ms(m.export_xlsx)),
            line("export --format csv", &|m| ms(m.export_csv)),
            line("  reference: read every row", &|m| ms(m.read_all)),
            line("  reference: the same through sqlx", &|m| {
                ms(m.read_all_sqlx)
            }),
            line("case <newest ref>", &|m| ms(m.case_newest)),
            line("  reference: case <first ref>", &|m| ms(m.case_first)),
            line("opening a case (mean of the slice)", &|m| ms(m.open_mean)),
            line("  reference: the first slice", &|_| ms(first_open)),
            line("database size", &|m| {
                format!("{:.1} MB", m.database_bytes as f64 / 1e6)
            }),
            line("database size per referral", &|m| {
                per_referral(m, m.database_bytes)
            }),
            line("  reference: raw mail per referral", &|m| {
                per_referral(m, m.mail_bytes)
            }),
            line("  database / raw mail", &|m| {
                format!(
                    "{:.2}x",
                    m.database_bytes as f64 / m.mail_bytes.max(1) as f64
                )
            }),
        ]
        .into_iter()
        .chain(pages)
        .collect::<Vec<_>>()
        .concat()
    }
}

fn per_referral(m: &Figures, bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1e3 / m.cases.max(1) as f64)
}

/// The database's size once its write-ahead log is checkpointed into it and emptied (and free
/// pages given back): what the data takes, not how far the log has grown since its last
/// checkpoint.
async fn database_size(engine: &Engine) -> Result<u64, BenchError> {
    engine.store.reclaim().await?;
    let db = engine.cfg.database.display().to_string();
    Ok(["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{db}{s}")).ok().map(|m| m.len()))
        .sum())
}

fn other(e: impl std::fmt::Display) -> BenchError {
    BenchError::Other(e.to_string())
}

/// Run the benchmark.
pub async fn run(opts: &ScaleOptions) -> Result<ScaleReport, BenchError> {
    MailStack::check_installed()?;
    let (stack, config) = membench::start_stack(&opts.config, &[]).await?;
    let result = measure(&stack, config, opts).await;
    let _ = stack.stop().await;
    result
}

/// The best of `n` runs of `f`.
async fn best<F, Fut, T>(n: usize, mut f: F) -> Result<Duration, BenchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BenchError>>,
{
    let mut best = Duration::MAX;
    for _ in 0..n {
        let started = Instant::now();
        std::hint::black_box(f().await?);
        best = best.min(started.elapsed());
    }
    Ok(best)
}

async fn measure(
    stack: &MailStack,
    config: PathBuf,
    opts: &ScaleOptions,
) -> Result<ScaleReport, BenchError> {
    let cfg = config::load(&config, Needs::Everything).map_err(other)?;
    let user = cfg.imap.username.clone();
    let clock: SharedClock = Arc::new(SystemClock);
    let engine = Engine::open(cfg, clock.clone(), ExistingMail::Process)
        .await
        .map_err(other)?;
    let mut report = ScaleReport::default();
    let slice = opts.slice.max(1);
    let mut made = 0;
    let mut mail_bytes = 0u64;
    while made < opts.cases {
        let n = slice.min(opts.cases - made);
        // A minute in the past: Dovecot refuses no date, but clamps future ones.
        let at = clock.now().fixed_offset() - chrono::Duration::seconds(60);
        let mail: Vec<_> = (made..made + n)
            .map(|i| {
                let from = format!("referrer{i}@hospital{}.test", i % 97);
                (large_referral(i, &from, &user, opts.form_bytes), at)
            })
            .collect();
        mail_bytes += mail.iter().map(|(m, _)| m.len() as u64).sum::<u64>();
        stack.append_many(&user, &mail).await?;
        drop(mail);
        let now = clock.now();
        mailbox::fetch_once(
            &engine.cfg.imap,
            &engine.store,
            ExistingMail::Process,
            now,
            &Progress::off(),
            None,
        )
        .await?
        .settling
        // Its checkpoint finished first, so the time to open a case is that alone.
        .finished()
        .await;
        let started = Instant::now();
        let (processed, opened) = engine.process_messages(now, None).await.map_err(other)?;
        let open_mean = started.elapsed() / u32::try_from(processed.max(1)).unwrap_or(1);
        if opened.len() != n {
            return Err(other(format!(
                "{} of {n} referrals opened a case (processed {processed})",
                opened.len()
            )));
        }
        engine.plan_all(now).await.map_err(other)?;
        made += n;
        if made == slice || made == opts.cases {
            let mut f = figures(&engine).await?;
            f.cases = made;
            f.open_mean = open_mean;
            f.mail_bytes = mail_bytes;
            f.database_bytes = database_size(&engine).await?;
            report.marks.push(f);
        }
    }
    Ok(report)
}

/// The best of `reps` planning passes, each after one case changed: a legal hold placed on the
/// newest case, or released (an event that plans nothing).
async fn one_changed(
    engine: &Engine,
    now: chrono::DateTime<chrono::Utc>,
    reps: usize,
) -> Result<Duration, BenchError> {
    let refs = engine.store.case_refs().await?;
    let newest = refs.last().ok_or_else(|| other("no case was opened"))?;
    let mut best = Duration::MAX;
    for i in 0..reps * 2 {
        crate::shell::retention::set_hold(&engine.store, newest, i % 2 == 0, "bench", "bench", now)
            .await
            .map_err(other)?;
        let started = Instant::now();
        std::hint::black_box(engine.plan_all(now).await.map_err(other)?);
        best = best.min(started.elapsed());
    }
    Ok(best)
}

/// Every figure at the database's current size.
async fn figures(engine: &Engine) -> Result<Figures, BenchError> {
    let cfg = &engine.cfg;
    let store = &engine.store;
    let now = engine.clock.now();
    let reps = 3;
    let planning = best(reps, || async { engine.plan_all(now).await.map_err(other) }).await?;
    let planning_one = one_changed(engine, now, reps).await?;
    let planning_cold = best(reps, || async {
        engine.forget_plans();
        engine.plan_all(now).await.map_err(other)
    })
    .await?;
    // The reference: the same planning on states already in memory.
    let mut states = Vec::new();
    for (_, events) in store.cases_with_events(true).await? {
        states.push(case::fold_rows(&events).map_err(other)?);
    }
    let rules = engine.rules();
    let planning_pure = best(reps, || async {
        let mut due = 0;
        for s in &states {
            let settled = react::settle(&rules, s.clone(), now);
            if let Ok(p) = timeline::plan(
                &cfg.process,
                &cfg.directory,
                &cfg.calendar,
                &settled.state,
                now,
            ) {
                due += p.due.len();
            }
        }
        Ok::<_, BenchError>(due)
    })
    .await?;
    drop(states);
    let templates = &engine.templates;
    let digest = best(reps, || async {
        let key = timeline::periodic::digest_key(crate::core::calendar::london_date(now));
        let since =
            crate::shell::snapshot::since_last(store, crate::core::views::DIGEST_STEP, &key, now)
                .await?;
        let snap = crate::shell::snapshot::gather(cfg, store, now, since).await?;
        crate::core::digest::build(&snap, &cfg.calendar)
            .and_then(|d| crate::core::digest::render(&d, templates))
            .map_err(other)
    })
    .await?;
    let export = |xlsx: bool| async move {
        let snap = crate::shell::snapshot::gather(cfg, store, now, now).await?;
        let tracker = crate::core::export::rows(&snap, &cfg.process, None);
        Ok::<_, BenchError>(if xlsx {
            let heading = crate::shell::periodic::tracker_heading(cfg, now);
            crate::core::export::xlsx(&tracker, &heading, now).map_err(other)?
        } else {
            crate::core::export::csv(&tracker).into_bytes()
        })
    };
    let export_xlsx = best(reps, || export(true)).await?;
    let export_csv = best(reps, || export(false)).await?;
    let read_all = best(reps, || async {
        let mut every = store.every_case(false, true).await?;
        let mut cases = 0;
        while let Some(page) = every.next_page().await? {
            cases += page.len();
        }
        Ok::<_, BenchError>((cases, every.letters.len()))
    })
    .await?;
    let read_all_sqlx = best(reps, || async {
        let cases = store.cases_with_events(false).await?;
        let letters = store.letter_summaries(None).await?;
        Ok::<_, BenchError>((cases.len(), letters.len()))
    })
    .await?;
    let refs = store.case_refs().await?;
    let (Some(first), Some(newest)) = (refs.first(), refs.last()) else {
        return Err(other("no case was opened"));
    };
    let report = |r: &str| {
        let r = r.to_string();
        async move {
            crate::shell::report::case_report(cfg, store, &r, now)
                .await
                .map_err(other)
        }
    };
    let case_newest = best(5, || report(newest)).await?;
    let pages = crate::dev::pagebench::pages(engine).await?;
    let case_first = best(5, || report(first)).await?;
    Ok(Figures {
        planning,
        planning_one,
        planning_cold,
        planning_pure,
        digest,
        export_xlsx,
        export_csv,
        read_all,
        read_all_sqlx,
        case_newest,
        case_first,
        pages,
        ..Default::default()
    })
}
