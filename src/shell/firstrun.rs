//! The first run on a full mailbox: what the mailbox reader records the first time it looks, and
//! the `--since` filter on INTERNALDATE.
//!
//! Owns the `first_run` record in the database's `meta` (JSON: when the first pass started, the
//! folder's UIDVALIDITY and newest UID then, `--since` if given, how many messages were left for
//! people). It is written once, before any old message is stored, and never changed: the engine
//! reads `started` to apply [`crate::core::firstrun::imported_not_sent`], and the mailbox reader
//! keeps applying `--since` to the UIDs that were in the folder at the first run, so a first run
//! interrupted half-way and resumed by a plain `caseclerk run` still leaves the old mail alone.
//!
//! `--since` is applied after fetching INTERNALDATE only (`UID FETCH … (UID INTERNALDATE)`, a few
//! bytes a message), not with IMAP `SEARCH SINCE`: SEARCH compares dates in the server's own time
//! zone and ignores the time of day, while the rule is a London date
//! ([`crate::core::firstrun::left_for_people`]); bodies are fetched only for the mail kept.
//!
//! Must not: decide which mail is old or which letter is stale (that is [`crate::core::firstrun`]);
//! log anything but counts and UIDs.

use crate::core::calendar::Calendar;
use crate::core::firstrun::FirstRun;
use crate::shell::store::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The `meta` key of the first run's record.
pub const META_KEY: &str = "first_run";

/// What the first look at the mailbox found and chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstRunRecord {
    pub started: DateTime<Utc>,
    pub uidvalidity: u32,
    /// The newest UID in the folder at the first run: mail above it arrived afterwards.
    pub until_uid: u32,
    /// Process mail received on or after this London date only (`--since`).
    pub since: Option<NaiveDate>,
    /// Whether old mail was read at all (`--process-existing`).
    pub processed: bool,
    /// Messages left for people (all of them without `--process-existing`).
    pub left: usize,
}

impl FirstRunRecord {
    /// Whether this UID's arrival date decides if it is left for people: under `--since`, mail
    /// that was in the folder at the first run. Once the folder is renumbered (its UIDVALIDITY
    /// changed since: a mailbox moved, restored or re-indexed), a UID no longer says whether its
    /// message was there, and the folder is read again from its start: the date of every
    /// message in it when the renumbering was found (`renumbered_until`, its newest UID then)
    /// decides, unless the first run read all the old mail. Mail that arrives after that is read
    /// as usual, whatever its date (an old referral moved back into the folder).
    pub fn filters(&self, uidvalidity: u32, uid: u32, renumbered_until: Option<u32>) -> bool {
        if self.uidvalidity != uidvalidity {
            return renumbered_until.is_some_and(|until| uid <= until)
                && (self.since.is_some() || !self.processed);
        }
        self.since.is_some() && uid <= self.until_uid
    }

    /// Whether mail that reached the folder at `received` is left for people (asked only where
    /// [`FirstRunRecord::filters`] says its date decides): before `--since`; or, in a renumbered
    /// folder whose old mail the first run left for people, before the first run.
    pub fn leaves(&self, uidvalidity: u32, received: DateTime<Utc>) -> bool {
        match self.since {
            Some(_) => crate::core::firstrun::left_for_people(self.since, received),
            None => self.uidvalidity != uidvalidity && !self.processed && received < self.started,
        }
    }
}

/// Record the first run, once; returns the record in force (an earlier one wins).
pub async fn record(store: &Store, r: &FirstRunRecord) -> Result<FirstRunRecord, StoreError> {
    let json = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let stored = store.meta_or_init(META_KEY, || json).await?;
    serde_json::from_str(&stored).map_err(|e| StoreError::Corrupt(format!("{META_KEY}: {e}")))
}

/// The first run's record, if caseclerk has looked at the mailbox.
pub async fn load(store: &Store) -> Result<Option<FirstRunRecord>, StoreError> {
    store
        .meta(META_KEY)
        .await?
        .map(|s| {
            serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{META_KEY}: {e}")))
        })
        .transpose()
}

/// The first run as the letter rule needs it, from the record and `[first_run]`.
pub async fn rule(
    store: &Store,
    cal: &Calendar,
    late_days: u32,
) -> Result<Option<FirstRun>, StoreError> {
    let Some(r) = load(store).await? else {
        return Ok(None);
    };
    FirstRun::new(cal, r.started, late_days)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("{META_KEY}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_at(started: &str, since: Option<NaiveDate>) -> FirstRunRecord {
        FirstRunRecord {
            started: DateTime::parse_from_rfc3339(started)
                .unwrap()
                .with_timezone(&Utc),
            uidvalidity: 7,
            until_uid: 1000,
            since,
            processed: true,
            left: 3,
        }
    }

    #[tokio::test]
    async fn the_first_run_is_recorded_once_and_a_later_one_changes_nothing() {
        let store = Store::open_in_memory().await.unwrap();
        assert_eq!(load(&store).await.unwrap(), None);
        let first = record_at("2026-11-23T10:00:00Z", NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(record(&store, &first).await.unwrap(), first);
        let later = record_at("2026-12-01T10:00:00Z", None);
        assert_eq!(record(&store, &later).await.unwrap(), first);
        assert_eq!(load(&store).await.unwrap(), Some(first));
        let rule = rule(&store, &Calendar::bundled(), 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rule.started, load(&store).await.unwrap().unwrap().started);
    }

    #[test]
    fn since_applies_only_to_mail_that_was_in_the_folder_at_the_first_run() {
        let r = record_at("2026-11-23T10:00:00Z", NaiveDate::from_ymd_opt(2026, 11, 1));
        assert!(r.filters(7, 1000, None));
        assert!(!r.filters(7, 1001, None), "arrived after the first run");
        let all = record_at("2026-11-23T10:00:00Z", None);
        assert!(!all.filters(7, 5, None), "no --since: nothing filtered");
    }

    #[test]
    fn in_a_renumbered_folder_mail_the_first_run_left_for_people_is_left_again_by_its_date() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let since = record_at("2026-11-23T10:00:00Z", NaiveDate::from_ymd_opt(2026, 11, 1));
        assert!(
            since.filters(8, 5000, Some(5000)),
            "every UID's date decides"
        );
        assert!(
            !since.filters(8, 5001, Some(5000)),
            "mail arriving after the renumbering was found is read as usual"
        );
        assert!(!since.filters(8, 5, None), "not found renumbered under 8");
        assert!(since.leaves(8, at("2026-10-31T12:00:00Z")));
        assert!(
            !since.leaves(8, at("2026-11-02T12:00:00Z")),
            "read, and stored"
        );
        let left = FirstRunRecord {
            processed: false,
            ..record_at("2026-11-23T10:00:00Z", None)
        };
        assert!(
            !left.filters(7, 5, Some(10)),
            "the same folder: the watermark says"
        );
        assert!(left.filters(8, 5, Some(10)));
        assert!(
            left.leaves(8, at("2026-11-23T09:59:00Z")),
            "there at the first run"
        );
        assert!(
            !left.leaves(8, at("2026-11-23T10:01:00Z")),
            "arrived after it"
        );
        let read_all = record_at("2026-11-23T10:00:00Z", None);
        assert!(
            !read_all.filters(8, 5, Some(10)),
            "all the old mail was read and stored: recognised when read again"
        );
    }
}
