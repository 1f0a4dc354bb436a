//! What the planning pass remembers between passes, so that a pass with nothing new reads no case.
//!
//! Owns the memo: every open case the last pass saw, with its version (how many events it has and
//! the id of the last) and, when planning it found nothing to do, until when that holds
//! ([`Quiet`]); and the events table's watermark when that pass began (how many events, the
//! highest id, how many open cases). A pass first reads the watermark: unchanged, no case changed;
//! moved, the cases with an event above the old highest id are the ones that changed — provided
//! they account for every new event (on a database whose ids can commit out of order, they might
//! not: then, as on the first pass, every open case's version is listed and compared). Only the
//! changed cases, and the remembered ones that are not quiet or whose wake-up has come, are read
//! and planned.
//!
//! Why skipping is safe: planning is a function of the case's events, the configuration (fixed
//! for the engine's life) and the instant; events are only ever appended (never changed in a way
//! planning reads, never deleted), and a case's status changes only with an event. And planning's
//! answer moves with the instant only when an instant it reports as its next wake-up is reached:
//! every step, deadline and notice that is not yet due sets the wake-up to its instant, and
//! counting votes does not depend on the instant. So a case with the same events, planned at an
//! instant `t` with nothing to do and a wake-up `w`, has nothing to do at any instant in
//! `[t, w)` (at any instant from `t` when there is no wake-up).
//!
//! Must not: decide anything about a case (that is [`crate::core::react::settle`] and
//! [`crate::core::timeline::plan`]); hold a case's events or state between passes (a few numbers
//! a case, so memory stays flat in the number of cases); log personal data.

use crate::shell::store::{Store, StoreError, Watermark};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A case's version: its number of events and the id of its last (events are only appended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub events: i64,
    pub last_event: Option<i64>,
}

impl Version {
    /// The version of the events read, in order.
    pub fn of(events: &[crate::core::records::EventRow]) -> Version {
        Version {
            events: i64::try_from(events.len()).unwrap_or(i64::MAX),
            last_event: events.last().map(|e| e.id),
        }
    }
}

/// A case planned at `planned_at` with nothing to do (nothing counted, nothing due, no error),
/// and its next wake-up then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    pub planned_at: DateTime<Utc>,
    pub wake: Option<DateTime<Utc>>,
}

impl Quiet {
    /// Whether planning the same events at `now` would still find nothing to do.
    fn holds(&self, now: DateTime<Utc>) -> bool {
        self.planned_at <= now && self.wake.is_none_or(|w| now < w)
    }
}

/// What the memo knows of one open case.
#[derive(Debug, Clone)]
struct Known {
    version: Version,
    /// The case's reference when it belongs to another process file (it is not planned).
    foreign: Option<String>,
    quiet: Option<Quiet>,
}

/// What a pass must do: the cases to read and plan (ascending ids), and the earliest wake-up of
/// the cases it skips.
#[derive(Debug, Default)]
pub struct Selection {
    pub read: Vec<i64>,
    pub wake: Option<DateTime<Utc>>,
    mark: Option<Watermark>,
}

/// The memo ([module docs](self)). Empty: the next pass plans every open case.
#[derive(Debug, Default)]
pub struct PlanMemo {
    seen: Option<Watermark>,
    cases: BTreeMap<i64, Known>,
}

impl PlanMemo {
    /// Which cases this pass must read and plan at `now`, for the process `process`. The memo is
    /// updated to the cases' versions now; the caller then reports each case it read
    /// ([`PlanMemo::planned`], [`PlanMemo::foreign`]) and ends with [`PlanMemo::finish`].
    pub async fn select(
        &mut self,
        store: &Store,
        process: &str,
        now: DateTime<Utc>,
    ) -> Result<Selection, StoreError> {
        let after = self.seen.map(|s| s.last_event.unwrap_or(0));
        let (mark, changed) = store.events_after(after).await?;
        let mut read = Vec::new();
        // Unchanged, or every new event is above the old highest id. (A number of open cases
        // that moved with no new event, which no code does, is not accounted for.)
        let accounted = self.seen.is_some_and(|s| {
            s == mark
                || (!changed.is_empty()
                    && changed.iter().map(|(_, n)| n).sum::<i64>() == mark.events - s.events)
        });
        if accounted {
            for (id, _) in &changed {
                self.cases.remove(id);
                read.push(*id);
            }
        } else {
            self.relist(store, process).await?;
        }
        let mut wake: Option<DateTime<Utc>> = None;
        for (id, known) in &self.cases {
            if let Some(reference) = &known.foreign {
                tracing::warn!(case = %reference, "case belongs to another process file; not planned");
                continue;
            }
            match known.quiet {
                Some(q) if q.holds(now) => {
                    if let Some(w) = q.wake {
                        wake = Some(wake.map_or(w, |x| x.min(w)));
                    }
                }
                _ => read.push(*id),
            }
        }
        read.sort_unstable();
        read.dedup();
        Ok(Selection {
            read,
            wake,
            mark: Some(mark),
        })
    }

    /// Every open case's version listed and compared with what the memo holds: what is unchanged
    /// keeps its [`Quiet`], what changed or is new is to be planned, what is gone is forgotten.
    async fn relist(&mut self, store: &Store, process: &str) -> Result<(), StoreError> {
        let mut cases = BTreeMap::new();
        for v in store.open_case_versions().await? {
            let version = Version {
                events: v.events,
                last_event: v.last_event,
            };
            let known = match self.cases.remove(&v.id) {
                Some(k) if k.version == version => k,
                _ => Known {
                    version,
                    foreign: (v.process != process).then_some(v.reference),
                    quiet: None,
                },
            };
            cases.insert(v.id, known);
        }
        self.cases = cases;
        Ok(())
    }

    /// A case read at `version` and planned: `quiet` when there was nothing to do.
    pub fn planned(&mut self, case_id: i64, version: Version, quiet: Option<Quiet>) {
        self.cases.insert(
            case_id,
            Known {
                version,
                foreign: None,
                quiet,
            },
        );
    }

    /// A case read at `version` that belongs to another process file.
    pub fn foreign(&mut self, case_id: i64, version: Version, reference: &str) {
        self.cases.insert(
            case_id,
            Known {
                version,
                foreign: Some(reference.to_string()),
                quiet: None,
            },
        );
    }

    /// The pass is over: a case selected but not read is no longer open. The watermark is kept
    /// only when the memo holds as many open cases as the database did when the pass began
    /// (anything else — a case opened or closed meanwhile — and the next pass lists every case).
    pub fn finish(&mut self, selection: Selection, read: &[i64]) {
        for id in &selection.read {
            if read.binary_search(id).is_err() {
                self.cases.remove(id);
            }
        }
        self.seen = selection
            .mark
            .filter(|m| i64::try_from(self.cases.len()).is_ok_and(|n| n == m.open_cases));
    }

    /// How many open cases the memo holds.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether the memo holds no case.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }
}

/// The memo against a real (in-memory) database: which cases a pass reads.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::records::CaseStatus;
    use chrono::NaiveDate;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    async fn open_case(s: &Store, process: &str) -> i64 {
        let now = t("2026-12-22T09:00:00Z");
        let day0 = NaiveDate::from_ymd_opt(2026, 12, 22).unwrap();
        let mut tx = s.begin().await.unwrap();
        let (id, _) = Store::create_case(&mut tx, "RR", process, None, now, day0, None, now)
            .await
            .unwrap();
        note(&mut tx, id).await;
        tx.commit().await.unwrap();
        id
    }

    async fn note(tx: &mut crate::shell::store::Tx<'_>, id: i64) {
        let now = t("2026-12-22T09:00:00Z");
        let data = serde_json::json!({"n": 1});
        Store::add_event(tx, id, now, "note", "test", &data)
            .await
            .unwrap();
    }

    /// One pass as the engine runs it: every case read is planned with `quiet` (wake-up `wake`).
    async fn pass(
        memo: &mut PlanMemo,
        s: &Store,
        now: DateTime<Utc>,
        wake: Option<DateTime<Utc>>,
    ) -> Vec<i64> {
        let selection = memo.select(s, "bury", now).await.unwrap();
        let mut read = Vec::new();
        for (case, events) in s
            .open_cases_with_events_among(&selection.read)
            .await
            .unwrap()
        {
            read.push(case.id);
            let quiet = Quiet {
                planned_at: now,
                wake,
            };
            if case.process == "bury" {
                memo.planned(case.id, Version::of(&events), Some(quiet));
            } else {
                memo.foreign(case.id, Version::of(&events), &case.reference);
            }
        }
        memo.finish(selection, &read);
        read
    }

    #[tokio::test]
    async fn a_pass_reads_only_the_cases_that_changed_or_reached_their_wake_up() {
        let s = Store::open_in_memory().await.unwrap();
        let (a, b, c) = (
            open_case(&s, "bury").await,
            open_case(&s, "bury").await,
            open_case(&s, "bury").await,
        );
        // A case of another process file: listed, remembered, never read nor planned.
        let _other = open_case(&s, "oldham").await;
        let mut memo = PlanMemo::default();
        let nine = t("2026-12-22T09:00:00Z");
        let noon = t("2026-12-22T12:00:00Z");
        // The first pass reads every open case of its process (the listing names the other's);
        // the next, with nothing new, none.
        assert_eq!(pass(&mut memo, &s, nine, Some(noon)).await, vec![a, b, c]);
        assert_eq!(memo.len(), 4);
        assert_eq!(
            pass(&mut memo, &s, nine, Some(noon)).await,
            Vec::<i64>::new()
        );
        // A new event on one case: that case, and only it, is read again.
        let mut tx = s.begin().await.unwrap();
        note(&mut tx, b).await;
        tx.commit().await.unwrap();
        assert_eq!(pass(&mut memo, &s, nine, Some(noon)).await, vec![b]);
        // A case closed (with its event) is read once, found closed, and forgotten.
        let mut tx = s.begin().await.unwrap();
        note(&mut tx, c).await;
        Store::set_case_status(&mut tx, c, CaseStatus::Closed)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            pass(&mut memo, &s, nine, Some(noon)).await,
            Vec::<i64>::new()
        );
        assert_eq!(memo.len(), 3);
        // At the wake-up every quiet case is planned again (the other process's is never).
        assert_eq!(pass(&mut memo, &s, noon, None).await, vec![a, b]);
        // With no wake-up, a quiet case waits for its next event, however late it gets.
        assert_eq!(
            pass(&mut memo, &s, t("2027-06-01T09:00:00Z"), None).await,
            Vec::<i64>::new()
        );
        // An instant before the one planned at is not vouched for: planned again.
        assert_eq!(pass(&mut memo, &s, nine, None).await, vec![a, b]);
    }

    #[tokio::test]
    async fn a_change_the_watermark_does_not_account_for_lists_every_case_again() {
        let s = Store::open_in_memory().await.unwrap();
        let a = open_case(&s, "bury").await;
        let b = open_case(&s, "bury").await;
        let mut memo = PlanMemo::default();
        let nine = t("2026-12-22T09:00:00Z");
        assert_eq!(pass(&mut memo, &s, nine, None).await, vec![a, b]);
        // A status changed without an event (no code does this; a hand edit might): the open
        // count no longer matches, so the next pass compares every case's version.
        let mut tx = s.begin().await.unwrap();
        Store::set_case_status(&mut tx, b, CaseStatus::Closed)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(pass(&mut memo, &s, nine, None).await, Vec::<i64>::new());
        assert_eq!(memo.len(), 1, "the closed case is forgotten");
        let mut tx = s.begin().await.unwrap();
        Store::set_case_status(&mut tx, b, CaseStatus::Open)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(pass(&mut memo, &s, nine, None).await, vec![b]);
    }
}
