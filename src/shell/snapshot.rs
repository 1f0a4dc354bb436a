//! Reads every case from the store into the core's views: what the digest, the tracker and the
//! tracker report show.
//!
//! Owns the reads; every derivation is the core's ([`views::case_view`], [`views::assemble`]).
//!
//! Must not: change anything (no events, no outbox rows); log personal data.

use crate::core::particulars::Particular;
use crate::core::records::LetterSummary;
use crate::core::views::{
    self, CaseView, Context, MailboxHealth, Names, Snapshot, TriageSummary, TriageView, case_view,
    error_kind, scrub,
};
use crate::shell::config::Config;
use crate::shell::store::{EveryCase, Store, StoreError};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// The names and directory of a loaded configuration, as the views see them.
pub fn context(cfg: &Config) -> Context<'_> {
    Context {
        process: &cfg.process,
        calendar: &cfg.calendar,
        directory: &cfg.directory,
    }
}

/// Take a snapshot of everything at `now`; `since` is the start of "new since the last digest".
pub async fn gather(
    cfg: &Config,
    store: &Store,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<Snapshot, StoreError> {
    let ctx = context(cfg);
    let particulars = store.all_particulars().await?;
    let mut every = store.every_case(false, true).await?;
    let letters = std::mem::take(&mut every.letters);
    let (cases, problems) = fold_every_case(cfg, every, &letters, particulars, now).await?;
    // Streamed into a bounded summary: after a first run, tens of thousands may be waiting.
    let mut triage = TriageSummary::default();
    store
        .each_triage(|message, received, rule| {
            let rule = rule.unwrap_or_else(|| "unclassified".into());
            let m = TriageView {
                message,
                received,
                rule,
            };
            triage.add(m, since);
        })
        .await?;
    let mailbox = match store.mailbox_state(&cfg.imap.folder).await? {
        None => MailboxHealth::default(),
        Some(m) => MailboxHealth {
            known: true,
            last_ok_at: m.last_ok_at,
            failures: m.failures,
            last_error_at: m.last_error_at,
            last_error: m.last_error.as_deref().map(error_kind),
        },
    };
    let names = Names {
        partnership: &cfg.partnership_name,
        short_name: &cfg.short_name,
    };
    let mut snap = views::assemble(
        &ctx, names, now, since, cases, &letters, triage, mailbox, problems,
    );
    snap.smtp = health_row(store, crate::shell::outbox::SMTP_HEALTH_KEY).await?;
    snap.unprepared = health_row(store, crate::shell::store::PREPARE_HEALTH_KEY).await?;
    snap.notices = health_row(store, crate::shell::store::NOTICE_HEALTH_KEY).await?;
    snap.unfetched = health_row(store, crate::shell::mailbox::UNFETCHED_HEALTH_KEY).await?;
    snap.history_head = store.history_head().await?;
    Ok(snap)
}

/// A health row (`mailbox_state` under `key`) as the digest reads it; not known when absent.
async fn health_row(store: &Store, key: &str) -> Result<MailboxHealth, StoreError> {
    Ok(store
        .mailbox_state(key)
        .await?
        .map(|m| MailboxHealth {
            known: true,
            last_ok_at: m.last_ok_at,
            failures: m.failures,
            last_error_at: m.last_error_at,
            last_error: m.last_error,
        })
        .unwrap_or_default())
}

/// Every case's view at `now`, and a line for each case that cannot be read.
///
/// Reading and folding overlap: [`Store::every_case`] reads a page of cases with their events on
/// a thread of its own while this blocking thread folds the page before and works out its views.
/// At most two pages are in memory besides the one being read, never every case's events at
/// once.
async fn fold_every_case(
    cfg: &Config,
    mut every: EveryCase,
    letters: &[LetterSummary],
    mut particulars: BTreeMap<i64, Vec<Particular>>,
    now: DateTime<Utc>,
) -> Result<(Vec<CaseView>, Vec<String>), StoreError> {
    // The folding thread owns what it reads: its own copy of the rules (small, once per
    // snapshot) and each case's own letters, grouped once (linear in cases and letters, where
    // filtering every letter for every case grew with their product).
    let rules = (
        cfg.process.clone(),
        cfg.calendar.clone(),
        cfg.directory.clone(),
    );
    let mut by_case = views::letters_by_case(letters);
    tokio::task::spawn_blocking(move || {
        let (process, calendar, directory) = &rules;
        let ctx = Context {
            process,
            calendar,
            directory,
        };
        let mut cases = Vec::new();
        let mut problems = Vec::new();
        while let Some(page) = every.next_page_blocking()? {
            for (row, events) in page {
                let own = by_case.remove(&row.id).unwrap_or_default();
                let read = particulars.remove(&row.id).unwrap_or_default();
                match crate::core::case::fold_rows(&events) {
                    Ok(state) => {
                        cases.push(case_view(&ctx, row, state, &own, now).with_particulars(read))
                    }
                    Err(e) => {
                        problems.push(format!("{}: {}", row.reference, scrub(&e.to_string())))
                    }
                }
            }
        }
        Ok((cases, problems))
    })
    .await
    // Not the task's error itself: a panic's message (which could quote a case) is never shown.
    .map_err(|_| StoreError::Corrupt("folding the cases stopped unexpectedly".into()))?
}

/// "Since the last digest": when the previous digest (not the one keyed `key`) was sent, else 24
/// hours before `now`.
pub async fn since_last(
    store: &Store,
    step: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoreError> {
    Ok(store
        .last_of_step(step, key, now)
        .await?
        .filter(|t| *t < now)
        .unwrap_or(now - Duration::hours(24)))
}

// Reading and folding overlap (a page read while the one before is folded on another thread):
// these tests hold that no page, and no case of a page, is lost or doubled on the way.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::case::Event;
    use crate::shell::config::{self, Needs};
    use chrono::NaiveDate;

    #[tokio::test]
    async fn every_case_of_every_page_is_in_the_snapshot_once_and_an_unreadable_one_is_named() {
        let cfg = config::load(
            std::path::Path::new("config/example.toml"),
            Needs::NoSecrets,
        )
        .expect("the example configuration loads");
        let store = Store::open_in_memory().await.unwrap();
        let now: DateTime<Utc> = "2026-12-22T09:01:00Z".parse().unwrap();
        let day0 = NaiveDate::from_ymd_opt(2026, 12, 22).unwrap();
        // Two full pages and one case more; the 1,500th case's history cannot be read.
        let n = 2 * usize::try_from(crate::shell::store::CASES_PER_PAGE).unwrap() + 1;
        let mut tx = store.begin().await.unwrap();
        for i in 1..=n {
            let (id, reference) =
                Store::create_case(&mut tx, "RR", &cfg.process.id, None, now, day0, None, now)
                    .await
                    .unwrap();
            let opened = Event::Opened {
                reference,
                process: cfg.process.id.clone(),
                area: None,
                referrer: None,
                received_at: now,
                day0,
                day0_explained: "Tue 22 Dec 2026".into(),
                message: i64::try_from(i).unwrap(),
                message_id: None,
                references: vec![],
            };
            let data = if i == 1500 {
                serde_json::json!({"kind": "opened", "reference": 7})
            } else {
                serde_json::to_value(&opened).unwrap()
            };
            Store::add_event(&mut tx, id, now, "opened", "test", &data)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();

        let snap = gather(&cfg, &store, now, now).await.unwrap();
        let mut seen: Vec<String> = snap.cases.iter().map(|c| c.row.reference.clone()).collect();
        assert_eq!(seen.len(), n - 1, "every readable case, once");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n - 1, "no case twice");
        assert!(!seen.contains(&"RR-2026-1500".to_string()));
        assert!(
            seen.contains(&format!("RR-2026-{n:04}")),
            "the last page's case"
        );
        assert_eq!(snap.problems.len(), 1, "{:?}", snap.problems);
        assert!(
            snap.problems[0].starts_with("RR-2026-1500: "),
            "{:?}",
            snap.problems
        );
    }
}
