//! Reading every case with its events, and every letter's summary, at once: what the digest, the
//! tracker and the workspace's first reading need ([`Store::every_case`]).
//!
//! Owns that read: a read-only connection of its own, opened for the read through `rusqlite` on a
//! blocking thread, one transaction (so the letters and every page of cases are one snapshot of
//! the database), and the decoding of those rows into [`CaseRow`], [`EventRow`] and
//! [`LetterSummary`]. Why not sqlx, as everywhere else: sqlx's SQLite driver hands each row from
//! its own thread to the task reading it and copies every value into an allocation of its own —
//! at 10,000 cases (110,000 rows) that was three quarters of the digest's time; here each value is
//! borrowed where SQLite produced it. A store with no file (an in-memory one, in tests) is read
//! through sqlx instead, in the same pages; a test holds the two reads to the same answer.
//!
//! Must not: write anything (the connection is opened read-only), hold more than two pages of
//! cases ahead of their reader, or end a read short without saying so (a reader that stops
//! without its closing mark is an error, never a shorter list of cases).

use super::{CASES_PER_PAGE, Store, StoreError, parse_date, parse_ts};
use crate::core::records::{CaseRow, CaseStatus, EventRow, LetterSummary, OutboxState};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// One page of cases (up to [`CASES_PER_PAGE`], in id order), each with its events in id order.
pub type Page = Vec<(CaseRow, Vec<EventRow>)>;

/// Where the bulk read opens its own connection: the database file, and whether it is read as
/// `immutable` (a read-only open of a file with no write-ahead log: see
/// [`Store::open_read_only`]).
#[derive(Clone, Debug)]
pub(super) struct Source {
    pub(super) path: PathBuf,
    pub(super) immutable: bool,
}

/// What the reading thread hands over, in this order: the letters, the pages, the end.
enum Chunk {
    Letters(Vec<LetterSummary>),
    Page(Page),
    Done,
}

type Sent = Result<Chunk, StoreError>;

/// Every case, read a page at a time while the caller works on the page before.
pub struct EveryCase {
    /// Every letter's summary (empty unless asked for), from the same snapshot as the cases.
    pub letters: Vec<LetterSummary>,
    pages: mpsc::Receiver<Sent>,
    done: bool,
}

impl EveryCase {
    /// The next page, `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Page>, StoreError> {
        let next = self.pages.recv().await;
        self.take(next)
    }

    /// [`EveryCase::next_page`] for a blocking thread (the digest's and the tracker's folding).
    pub fn next_page_blocking(&mut self) -> Result<Option<Page>, StoreError> {
        let next = self.pages.blocking_recv();
        self.take(next)
    }

    fn take(&mut self, next: Option<Sent>) -> Result<Option<Page>, StoreError> {
        if self.done {
            return Ok(None);
        }
        match next {
            Some(Ok(Chunk::Page(page))) => Ok(Some(page)),
            Some(Ok(Chunk::Done)) => {
                self.done = true;
                Ok(None)
            }
            Some(Err(e)) => {
                self.done = true;
                Err(e)
            }
            Some(Ok(Chunk::Letters(_))) | None => {
                self.done = true;
                Err(stopped())
            }
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Corrupt("reading every case stopped before its end".into())
}

impl Store {
    /// Every case (only those not closed when `open_only`) with its events, a page at a time, and
    /// with `letters` every letter's summary first, all from one snapshot of the database.
    pub async fn every_case(
        &self,
        open_only: bool,
        letters: bool,
    ) -> Result<EveryCase, StoreError> {
        // One page ahead of the reader: with the page being worked on and the one being read,
        // at most three pages of events are in memory.
        let (tx, mut rx) = mpsc::channel::<Sent>(1);
        match &self.bulk {
            Some(source) => {
                let source = source.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = read_file(&source, open_only, letters, &tx) {
                        let _ = tx.blocking_send(Err(e));
                    }
                });
            }
            None => {
                let store = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.read_pool(open_only, letters, &tx).await {
                        let _ = tx.send(Err(e)).await;
                    }
                });
            }
        }
        let letters = if letters {
            match rx.recv().await {
                Some(Ok(Chunk::Letters(l))) => l,
                Some(Err(e)) => return Err(e),
                _ => return Err(stopped()),
            }
        } else {
            Vec::new()
        };
        Ok(EveryCase {
            letters,
            pages: rx,
            done: false,
        })
    }

    /// The same read through sqlx, for a store with no file (the pages each in their own
    /// snapshot: an in-memory store has one connection, which nothing else writes meanwhile).
    async fn read_pool(
        &self,
        open_only: bool,
        letters: bool,
        tx: &mpsc::Sender<Sent>,
    ) -> Result<(), StoreError> {
        if letters {
            let l = self.letter_summaries(None).await?;
            if tx.send(Ok(Chunk::Letters(l))).await.is_err() {
                return Ok(());
            }
        }
        let mut after = 0;
        loop {
            let page = self.cases_with_events_page(open_only, after).await?;
            let Some((last, _)) = page.last() else {
                let _ = tx.send(Ok(Chunk::Done)).await;
                return Ok(());
            };
            after = last.id;
            if tx.send(Ok(Chunk::Page(page))).await.is_err() {
                return Ok(());
            }
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Bulk(e)
    }
}

/// The file as a read-only SQLite URI: the path percent-encoded (a `?` or `#` in a directory's
/// name is not a parameter), `immutable=1` where [`Store::open_read_only`] chose it.
fn uri(source: &Source) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::from("file:");
    for &b in source.path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(if source.immutable {
        "?mode=ro&immutable=1"
    } else {
        "?mode=ro"
    });
    out
}

const LETTERS: &str = "SELECT id, case_id, step, recipient, due_at, queued_at, state, attempts, \
     sent_at FROM outbox ORDER BY id";

const CASES: &str = "SELECT id, reference, process, area, status, received_at, day0, referrer \
     FROM cases WHERE id > ?1 AND (?2 = 0 OR status <> ?3) ORDER BY id LIMIT ?4";

const EVENTS: &str = "SELECT e.case_id, e.id, e.at, e.kind, e.actor, e.data FROM events e \
     JOIN cases c ON c.id = e.case_id \
     WHERE e.case_id BETWEEN ?1 AND ?2 AND (?3 = 0 OR c.status <> ?4) \
     ORDER BY e.case_id, e.id";

/// The whole read, on the calling (blocking) thread, handing each part to `tx` as it is read.
fn read_file(
    source: &Source,
    open_only: bool,
    letters: bool,
    tx: &mpsc::Sender<Sent>,
) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        uri(source),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // One read transaction: every part below sees the database as of its first read.
    conn.execute_batch("BEGIN")?;
    if letters {
        let l = read_letters(&conn)?;
        if tx.blocking_send(Ok(Chunk::Letters(l))).is_err() {
            return Ok(());
        }
    }
    let closed = CaseStatus::Closed.as_str();
    let open_only = i64::from(open_only);
    let mut cases = conn.prepare(CASES)?;
    let mut events = conn.prepare(EVENTS)?;
    let mut after = 0;
    loop {
        let mut page: Page = Vec::new();
        let mut rows = cases.query(rusqlite::params![after, open_only, closed, CASES_PER_PAGE])?;
        while let Some(r) = rows.next()? {
            page.push((case_row(r)?, Vec::new()));
        }
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            break;
        };
        let (first, last) = (first.0.id, last.0.id);
        let mut rows = events.query(rusqlite::params![first, last, open_only, closed])?;
        let mut at = 0;
        while let Some(r) = rows.next()? {
            let case_id: i64 = r.get(0)?;
            while at < page.len() && page[at].0.id < case_id {
                at += 1;
            }
            if let Some((c, list)) = page.get_mut(at)
                && c.id == case_id
            {
                list.push(event_row(r)?);
            }
        }
        after = last;
        if tx.blocking_send(Ok(Chunk::Page(page))).is_err() {
            return Ok(());
        }
    }
    drop((cases, events));
    conn.execute_batch("COMMIT")?;
    // Closed before the reader learns it is done: a store closed right after the last page
    // is then the database's last connection, and takes its write-ahead log with it (a read-only
    // connection closing last cannot; a test failed one run in six on that race).
    conn.close().map_err(|(_, e)| e)?;
    let _ = tx.blocking_send(Ok(Chunk::Done));
    Ok(())
}

/// A text column, borrowed.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    r.get_ref(i)?.as_str().map_err(|e| not_text(i, e))
}

fn not_text(i: usize, e: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Corrupt(format!("column {i} is not text: {e}"))
}

fn word<T>(r: &rusqlite::Row<'_>, i: usize, table: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr<Err = crate::core::records::UnknownWord>,
{
    text(r, i)?.parse().map_err(|e| {
        let id: i64 = r.get(0).unwrap_or_default();
        StoreError::Corrupt(format!("{table} row {id}: {e}"))
    })
}

fn case_row(r: &rusqlite::Row<'_>) -> Result<CaseRow, StoreError> {
    Ok(CaseRow {
        id: r.get(0)?,
        reference: r.get(1)?,
        process: r.get(2)?,
        area: r.get(3)?,
        status: word(r, 4, "cases")?,
        received_at: parse_ts(text(r, 5)?)?,
        day0: parse_date(text(r, 6)?)?,
        referrer: r.get(7)?,
    })
}

fn event_row(r: &rusqlite::Row<'_>) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        id: r.get(1)?,
        at: parse_ts(text(r, 2)?)?,
        kind: r.get(3)?,
        actor: r.get(4)?,
        data: r.get(5)?,
    })
}

fn read_letters(conn: &rusqlite::Connection) -> Result<Vec<LetterSummary>, StoreError> {
    let mut stmt = conn.prepare(LETTERS)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(LetterSummary {
            id: r.get(0)?,
            case_id: r.get(1)?,
            step: r.get(2)?,
            recipient: r.get(3)?,
            due_at: parse_ts(text(r, 4)?)?,
            queued_at: parse_ts(text(r, 5)?)?,
            state: word::<OutboxState>(r, 6, "outbox")?,
            attempts: r.get(7)?,
            sent_at: r
                .get_ref(8)?
                .as_str_or_null()
                .map_err(|e| not_text(8, e))?
                .map(parse_ts)
                .transpose()?,
        });
    }
    Ok(out)
}

// Reading every case through its own connection gives exactly what sqlx's pages give, for every
// kind of row (closed cases, cases without events, letters on no case, sent and not), and a read
// that stops without its closing mark is an error, never fewer cases.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::records::NewLetter;
    use chrono::{DateTime, Utc};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A file database in a directory whose name needs escaping in a URI, with `n` cases.
    async fn populated(name: &str, n: usize) -> (Store, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("caseclerk-bulk {name} ?#%-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir.join("cc.db")).await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        let mut tx = s.begin().await.unwrap();
        for i in 0..n {
            let (id, reference) = super::super::tests::case_of_kind(&mut tx, i, now).await;
            for (step, case_id) in [("acknowledge", Some(id)), ("digest", None)] {
                let letter = NewLetter {
                    dedupe_key: format!("{reference}/{step}"),
                    case_id,
                    step: step.into(),
                    recipient: "a@x.test".into(),
                    replies_as: "a@x.test".into(),
                    message_id: format!("{reference}.{step}@caseclerk"),
                    due_at: now,
                    envelope_from: "bsp@x.test".into(),
                    envelope_to: vec!["a@x.test".into()],
                    raw: b"raw".to_vec(),
                };
                Store::queue_letter(&mut tx, &letter, now).await.unwrap();
            }
        }
        sqlx::query("UPDATE outbox SET state = 'sent', sent_at = ? WHERE id % 3 = 0")
            .bind(super::super::ts(now))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (s, dir)
    }

    async fn read_whole(s: &Store, open_only: bool, letters: bool) -> (String, usize) {
        let mut every = s.every_case(open_only, letters).await.unwrap();
        let mut pages = Vec::new();
        while let Some(page) = every.next_page().await.unwrap() {
            pages.push(page);
        }
        let cases = pages.iter().map(Vec::len).sum();
        (format!("{:?} {pages:?}", every.letters), cases)
    }

    #[tokio::test]
    async fn every_case_read_from_the_file_is_what_sqlx_reads_page_by_page() {
        let n = usize::try_from(CASES_PER_PAGE).unwrap() + 7;
        let (s, dir) = populated("same", n).await;
        let through_sqlx = Store {
            pool: s.pool.clone(),
            bulk: None,
            fresh: Default::default(),
        };
        assert!(s.bulk.is_some());
        for open_only in [false, true] {
            for letters in [false, true] {
                let (file, cases) = read_whole(&s, open_only, letters).await;
                let (pool, _) = read_whole(&through_sqlx, open_only, letters).await;
                assert_eq!(file, pool, "open_only {open_only}, letters {letters}");
                let want = if open_only { n - n.div_ceil(5) } else { n };
                assert_eq!(cases, want, "open_only {open_only}");
            }
        }
        let mut every = s.every_case(false, true).await.unwrap();
        assert_eq!(
            format!("{:?}", every.letters),
            format!("{:?}", s.letter_summaries(None).await.unwrap())
        );
        assert_eq!(every.letters.len(), 2 * n);
        assert!(every.letters.iter().any(|l| l.sent_at.is_some()));
        assert!(every.letters.iter().any(|l| l.case_id.is_none()));
        while every.next_page().await.unwrap().is_some() {}
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_read_only_copy_is_read_the_same_way_without_writing_beside_it() {
        let (s, dir) = populated("ro", 5).await;
        let path = dir.join("cc.db");
        let (want, _) = read_whole(&s, false, true).await;
        s.close().await;
        assert!(!std::path::Path::new(&format!("{}-wal", path.display())).exists());
        let ro = Store::open_read_only(&path).await.unwrap();
        assert!(ro.bulk.as_ref().is_some_and(|b| b.immutable));
        let before: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let (got, cases) = read_whole(&ro, false, true).await;
        assert_eq!(got, want);
        assert_eq!(cases, 5);
        let after: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after, "nothing created beside the file");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_read_that_stops_before_its_end_is_an_error_not_fewer_cases() {
        let (tx, rx) = mpsc::channel::<Sent>(1);
        tx.send(Ok(Chunk::Page(Vec::new()))).await.unwrap();
        drop(tx);
        let mut every = EveryCase {
            letters: Vec::new(),
            pages: rx,
            done: false,
        };
        assert!(every.next_page().await.unwrap().is_some());
        assert!(every.next_page().await.is_err());
        assert!(every.next_page().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error_from_the_reader_not_an_empty_list() {
        let (s, dir) = populated("gone", 2).await;
        let gone = Store {
            pool: s.pool.clone(),
            fresh: Default::default(),
            bulk: Some(Source {
                path: dir.join("no-such.db"),
                immutable: false,
            }),
        };
        assert!(gone.every_case(false, true).await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
