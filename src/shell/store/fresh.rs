//! Messages the fetch has just stored, already read, for the engine to decide without reading
//! them back ([`Store::take_fresh`]).
//!
//! The fetch packs each batch on a blocking thread; when an engine decides while it stores (a
//! pass's fetch), it reads each message there too ([`crate::core::intake::parse_fresh`]), from
//! the very bytes it stores, and once the batch has committed hands the readings here under the
//! rows' ids. A fetch nobody decides (`caseclerk bench`'s ingest) reads nothing. The engine,
//! deciding stored mail in order of arrival, takes a message's reading from here when it is here
//! and reads the row back from the database otherwise: both give the same [`Message`] (the golden
//! corpus and the property tests of [`crate::core::intake::parse_packed`] hold `parse_fresh` to
//! it), so which way a message came never changes what is decided. What it saves is a first
//! run's reading of every file back out of the database, its SHA-256 check and its copies.
//!
//! Bounded by bytes ([`FRESH_BUDGET`]): when the fetch runs ahead of the deciding, later readings
//! are not kept (those messages are read back from the database). Emptied when a pass has
//! decided everything stored ([`Store::forget_fresh`]), so an idle daemon holds none.
//!
//! Must not: hold a message that is not stored and committed, or be the only place a message is.

use super::{Arrival, IN_LIST, Store, StoreError, placeholders};
use crate::core::intake::Message;
use std::collections::{HashMap, HashSet};

/// At most this many bytes of readings (body text and files) are kept: two of the fetch's
/// batches (its budget is 8 MB; the store does not import the mailbox, which imports it).
pub const FRESH_BUDGET: usize = 16 * 1024 * 1024;

/// The readings kept, by message id, and their bytes.
#[derive(Default)]
pub(super) struct Fresh {
    held: HashMap<i64, (Arrival, Message)>,
    bytes: usize,
}

/// How many readings and bytes are kept; never what they say.
impl std::fmt::Debug for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fresh")
            .field("messages", &self.held.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// The largest message (its bytes as fetched) the fetch reads for the engine: a first run's mail
/// is mostly far smaller, and a burst of 20 MB referrals peaked 57 MiB higher (385 against 328
/// MiB, `bench --burst 6`) when each was read beside its packing; those are read back instead.
pub const FRESH_MESSAGE: usize = 4 * 1024 * 1024;

/// About how much memory a reading holds: its text and its files.
fn weight(m: &Message) -> usize {
    m.body_text.len() + m.attachments.iter().map(|a| a.data.len()).sum::<usize>()
}

impl Store {
    /// Keep the readings of messages just stored (their transaction committed), while they fit.
    pub(super) fn keep_fresh(&self, read: Vec<(Arrival, Message)>) {
        let Ok(mut fresh) = self.fresh.lock() else {
            return;
        };
        for (arrival, message) in read {
            let w = weight(&message);
            if fresh.bytes + w > FRESH_BUDGET {
                continue;
            }
            fresh.bytes += w;
            fresh.held.insert(arrival.id, (arrival, message));
        }
    }

    /// Take the readings of `ids` that are kept: each is given once.
    pub fn take_fresh(&self, ids: &[i64]) -> HashMap<i64, (Arrival, Message)> {
        let Ok(mut fresh) = self.fresh.lock() else {
            return HashMap::new();
        };
        let mut out = HashMap::new();
        for id in ids {
            if let Some((arrival, message)) = fresh.held.remove(id) {
                fresh.bytes -= weight(&message);
                out.insert(*id, (arrival, message));
            }
        }
        out
    }

    /// Which of `ids` are still waiting to be decided (`state = 'new'`): a reading taken from here
    /// is decided only if its row still waits, exactly as a row read back would be.
    pub async fn still_new(&self, ids: &[i64]) -> Result<HashSet<i64>, StoreError> {
        let mut out = HashSet::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST) {
            let sql = format!(
                "SELECT id FROM messages WHERE id IN ({}) AND state = 'new'",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            out.extend(q.fetch_all(&self.pool).await?);
        }
        Ok(out)
    }

    /// Let every kept reading go (a pass has decided all that was stored).
    pub fn forget_fresh(&self) {
        if let Ok(mut fresh) = self.fresh.lock() {
            *fresh = Fresh::default();
        }
    }
}

/// The readings the fetch keeps must be the messages as the engine would read them back — the
/// same reading, the same arrival — given once, only while they wait, and never beyond the budget.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::mailbox::new_message;

    fn mail(n: u32, file: Option<&[u8]>) -> Vec<u8> {
        let attached = file.map_or(String::new(), |f| {
            format!(
                "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; \
                 filename=\"return {n}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                crate::core::intake::b64_lines(f)
            )
        });
        format!(
            "From: a@agency.test\r\nTo: bsp@bury.test\r\nSubject: Return {n}\r\n\
             Message-ID: <{n}@agency.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
             body {n}\r\n{attached}--b--\r\n"
        )
        .into_bytes()
    }

    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Store `raws` as one fetched batch (UIDs from 1); the ids pending, in order.
    async fn stored(s: &Store, raws: &[Vec<u8>]) -> Vec<i64> {
        // A time with nanoseconds: the reading's arrival must be the row's, as stored.
        let at: chrono::DateTime<chrono::Utc> = "2026-12-22T09:00:00.123456789Z".parse().unwrap();
        let batch = raws
            .iter()
            .zip(1..)
            .map(|(raw, uid)| new_message(raw, uid, at))
            .collect();
        let mut ingest = s.ingest().await.unwrap();
        ingest
            .store_batch("INBOX", 1, batch, raws.len() as u32, at)
            .await
            .unwrap();
        ingest.finish().await;
        s.pending_ids().await.unwrap()
    }

    fn same(a: &(Arrival, Message), b: &(Arrival, Message)) {
        assert_eq!(a.0.id, b.0.id);
        assert_eq!(a.0.internal_date, b.0.internal_date);
        assert_eq!(
            serde_json::to_value(&a.1).unwrap(),
            serde_json::to_value(&b.1).unwrap()
        );
        let files = |m: &Message| {
            m.attachments
                .iter()
                .map(|f| f.data.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(files(&a.1), files(&b.1));
    }

    #[tokio::test]
    async fn a_stored_batch_is_kept_read_exactly_as_its_rows_read_back_and_given_once() {
        let s = Store::open_in_memory().await.unwrap();
        let pdf = file(20_000);
        let raws = vec![
            mail(1, Some(&pdf)),
            mail(2, None),
            mail(1, Some(&pdf)), // the same message again: not stored, so not kept
            mail(3, Some(&pdf)), // the same file in another message
        ];
        let ids = stored(&s, &raws).await;
        assert_eq!(ids.len(), 3);
        let mut fresh = s.take_fresh(&ids);
        assert_eq!(fresh.len(), 3, "every stored message is kept read");
        for m in s.pending_stored(&ids).await.unwrap() {
            let back = (m.arrival(), m.parse().unwrap());
            same(&fresh.remove(&m.id).unwrap(), &back);
        }
        assert!(s.take_fresh(&ids).is_empty(), "each reading is given once");
    }

    #[tokio::test]
    async fn a_fetch_no_engine_decides_keeps_no_readings() {
        let s = Store::open_in_memory().await.unwrap();
        let at = "2026-12-22T09:00:00Z".parse().unwrap();
        let batch = vec![new_message(&mail(1, Some(&file(5_000))), 1, at)];
        let prepared = super::super::Ingest::pack_ahead(batch, false)
            .finished()
            .await
            .unwrap();
        let mut ingest = s.ingest().await.unwrap();
        ingest
            .store_prepared("INBOX", 1, prepared, 1, at)
            .await
            .unwrap();
        ingest.finish().await;
        let ids = s.pending_ids().await.unwrap();
        assert_eq!(ids.len(), 1, "stored");
        assert!(s.take_fresh(&ids).is_empty(), "but not read");
    }

    #[tokio::test]
    async fn a_large_message_is_read_back_not_kept() {
        let s = Store::open_in_memory().await.unwrap();
        let ids = stored(&s, &[mail(1, Some(&file(FRESH_MESSAGE))), mail(2, None)]).await;
        let fresh = s.take_fresh(&ids);
        assert_eq!(fresh.keys().copied().collect::<Vec<_>>(), [ids[1]]);
    }

    #[tokio::test]
    async fn a_message_filed_meanwhile_no_longer_waits() {
        let s = Store::open_in_memory().await.unwrap();
        let ids = stored(&s, &[mail(1, None), mail(2, None)]).await;
        let now = "2026-12-22T10:00:00Z".parse().unwrap();
        Store::file_message(
            &mut s.pool.acquire().await.unwrap(),
            ids[0],
            "filed",
            "operator",
            &serde_json::json!({}),
            None,
            now,
        )
        .await
        .unwrap();
        assert_eq!(s.still_new(&ids).await.unwrap(), HashSet::from([ids[1]]));
    }

    #[tokio::test]
    async fn readings_beyond_the_budget_are_not_kept_and_a_pass_lets_all_go() {
        let s = Store::open_in_memory().await.unwrap();
        // Each reading a little over 2.5 MiB (its message under FRESH_MESSAGE): six fit in the
        // 16 MiB, a seventh does not.
        let big = file(FRESH_MESSAGE * 5 / 8);
        let raws: Vec<Vec<u8>> = (1..=8).map(|n| mail(n, Some(&big))).collect();
        let ids = stored(&s, &raws).await;
        assert_eq!(ids.len(), 8);
        let kept = |s: &Store| s.fresh.lock().unwrap().held.len();
        assert_eq!(kept(&s), 6, "six fit the budget, a seventh does not");
        assert!(s.fresh.lock().unwrap().bytes <= FRESH_BUDGET);
        s.forget_fresh();
        assert_eq!(kept(&s), 0);
        assert_eq!(s.fresh.lock().unwrap().bytes, 0);
    }
}
