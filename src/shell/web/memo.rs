//! What the workspace's list pages read — the cases list, held replies, undelivered letters, the
//! next 15 working days and the tracker table: every case's [`Summary`], kept in memory between
//! requests and brought up to date at the start of each, so no page reads and folds every case.
//!
//! Owns the summaries and when each is read again. A request first reads the events table's
//! watermark (as the planning pass does, [`crate::shell::planmemo`]): unchanged, no case changed;
//! moved, the cases with an event above the last one seen are the ones that changed — provided
//! they account for every new event, else (the first request, or events removed) every case is
//! read again. The changed cases, and those whose summary no longer holds at the request's
//! instant ([`Summary::holds`]: a date of the case passed), are read (events, letters,
//! particulars) and summarised again. So a page shows what the store holds at its request, the
//! change an action made included.
//!
//! Why a case's events are enough to know it changed: every change to a case the views read
//! comes with an event on it — its letters decided, sent, undelivered, delayed, resent or erased
//! (`letter_queued`, `letter_sent`, `letter_undelivered`, `letter_delayed`, `letter_resent`,
//! `content_erased`), its particulars read or checked, its status — and events are only ever
//! appended.
//!
//! Must not: change anything; decide anything about a case (the summary is the core's,
//! [`crate::core::workspace::summary`]); log personal data (case ids only).

use crate::core::case;
use crate::core::views::case_view;
use crate::core::workspace::{self, Summary};
use crate::shell::config::Config;
use crate::shell::snapshot;
use crate::shell::store::{Store, StoreError, Watermark};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Cases read and summarised per query (the `IN` lists stay well under SQLite's limit).
const READ_CASES: usize = 500;

/// The summaries, behind a lock: one request brings them up to date at a time.
#[derive(Default)]
pub struct PageMemo {
    inner: tokio::sync::Mutex<Summaries>,
}

/// Every case's summary, as of the last request.
#[derive(Default)]
pub struct Summaries {
    seen: Option<Watermark>,
    cases: BTreeMap<i64, Summary>,
}

impl PageMemo {
    /// Every case's summary, up to date at `now`.
    pub async fn at(
        &self,
        cfg: &Config,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<tokio::sync::MutexGuard<'_, Summaries>, StoreError> {
        let mut s = self.inner.lock().await;
        s.refresh(cfg, store, now).await?;
        Ok(s)
    }
}

impl Summaries {
    /// Every case's summary, in case id order.
    pub fn all(&self) -> impl Iterator<Item = &Summary> {
        self.cases.values()
    }

    /// About how many bytes the summaries hold ([`Summary::approx_bytes`]), for the benchmark.
    pub fn approx_bytes(&self) -> usize {
        self.cases.values().map(Summary::approx_bytes).sum()
    }

    async fn refresh(
        &mut self,
        cfg: &Config,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let after = self.seen.map(|s| s.last_event.unwrap_or(0));
        let (mark, changed) = store.events_after(after).await?;
        let accounted = self.seen.is_some_and(|s| {
            s == mark
                || (!changed.is_empty()
                    && changed.iter().map(|(_, n)| n).sum::<i64>() == mark.events - s.events)
        });
        if !accounted {
            self.cases.clear();
            self.read_all(cfg, store, now).await?;
        } else {
            let mut ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
            ids.extend(self.cases.values().filter(|s| !s.holds(now)).map(|s| s.id));
            ids.sort_unstable();
            ids.dedup();
            for chunk in ids.chunks(READ_CASES) {
                self.read_among(cfg, store, chunk, now).await?;
            }
        }
        // The mark was read before the cases: an event committed meanwhile is above it, and the
        // next request reads its case again.
        self.seen = Some(mark);
        Ok(())
    }

    /// Read and summarise every case, a page of cases at a time.
    async fn read_all(
        &mut self,
        cfg: &Config,
        store: &Store,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut every = store.every_case(false, true).await?;
        let by_case = crate::core::views::letters_by_case(&every.letters);
        let mut particulars = store.all_particulars().await?;
        while let Some(page) = every.next_page().await? {
            for (row, events) in page {
                let own = by_case.get(&row.id).map(Vec::as_slice).unwrap_or_default();
                let read = particulars.remove(&row.id).unwrap_or_default();
                self.summarise(cfg, row, &events, own, read, now);
            }
        }
        Ok(())
    }

    /// Read and summarise the cases among `ids` (ascending); one no longer stored is dropped.
    async fn read_among(
        &mut self,
        cfg: &Config,
        store: &Store,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let cases = store.cases_with_events_among(ids, false).await?;
        let letters = store.letter_summaries_among(ids).await?;
        let by_case = crate::core::views::letters_by_case(&letters);
        let mut particulars = store.particulars_among(ids).await?;
        for id in ids {
            self.cases.remove(id);
        }
        for (row, events) in cases {
            let own = by_case.get(&row.id).map(Vec::as_slice).unwrap_or_default();
            let read = particulars.remove(&row.id).unwrap_or_default();
            self.summarise(cfg, row, &events, own, read, now);
        }
        Ok(())
    }

    /// One case's summary from what was read. A case whose events do not fold is left out of
    /// the lists (the digest reports it as a problem for a person); its page says why.
    fn summarise(
        &mut self,
        cfg: &Config,
        row: crate::shell::store::CaseRow,
        events: &[crate::core::records::EventRow],
        letters: &[crate::core::records::LetterSummary],
        read: Vec<crate::core::particulars::Particular>,
        now: DateTime<Utc>,
    ) {
        let id = row.id;
        match case::fold_rows(events) {
            Ok(state) => {
                let ctx = snapshot::context(cfg);
                let view = case_view(&ctx, row, state, letters, now).with_particulars(read);
                self.cases
                    .insert(id, workspace::summary(&ctx, &view, letters, now));
            }
            Err(_) => {
                tracing::warn!(
                    case_id = id,
                    "case left out of the workspace's lists: its events do not fold"
                );
            }
        }
    }
}
