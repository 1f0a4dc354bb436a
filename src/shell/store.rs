//! The database: raw messages, the IMAP watermark, cases, their events and the outbox.
//!
//! Owns every SQL statement and the schema (`migrations/*.sql`, embedded and applied in order by a
//! small runner of our own: each file runs whole as one script in its own transaction, its version
//! recorded in `schema_version`). SQL is kept portable (no SQLite-only functions;
//! instants are fixed-width RFC 3339 text) so a PostgreSQL backend stays possible.
//!
//! Must not: decide anything (what a message is, what is due), talk to the network, or log
//! message content. It moves bytes and state, in the transactions its callers ask for.

use crate::core::chain;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

mod blobs;
mod bulk;
pub use bulk::{EveryCase, Page};
mod fresh;
mod ingest;
pub use ingest::{BatchStored, Ingest, PackingAhead, Prepared};
mod particulars;

/// A database transaction.
pub type Tx<'a> = Transaction<'a, sqlx::Sqlite>;

/// Database errors, with what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the database {path}: {source} (check the [storage] database path and its directory's permissions)"
    )]
    Open { path: String, source: sqlx::Error },
    #[error("cannot prepare the database file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("database migration {version} failed: {source}")]
    Migrate { version: i64, source: sqlx::Error },
    #[error(
        "the database was written by a newer caseclerk (schema {found}, this build knows {known}); upgrade caseclerk"
    )]
    TooNew { found: i64, known: i64 },
    #[error(
        "the database {path} has schema {found} and this caseclerk knows {known}; it is opened read-only, so it is not upgraded: read it with the caseclerk that wrote it, or upgrade the live database by starting the daemon (or `caseclerk tick`) on it"
    )]
    OlderSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "{path} is not a caseclerk database (it has no schema version); check the [storage] database path"
    )]
    NotCaseclerk { path: String },
    #[error(
        "there is no database at {path} (the daemon creates it on its first run); check the [storage] database path"
    )]
    Missing { path: String },
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("database error reading every case: {0}")]
    Bulk(rusqlite::Error),
    /// Packing (and reading) a fetched batch stopped: it panicked on bytes nothing else could
    /// read, or the runtime is shutting down. Counted as a stop of the fetch's reading
    /// ([`Ingest::mark_reading`]), not as an ordinary error.
    #[error("packing a fetched batch stopped unexpectedly; it is fetched again")]
    PackingStopped,
}

/// The events table at an instant ([`Store::events_after`]): how many events, the highest id,
/// and how many open cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    pub events: i64,
    pub last_event: Option<i64>,
    pub open_cases: i64,
}

/// An open case's version ([`Store::open_case_versions`]): its number of events and the id of
/// its last, with the case's id, reference and process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseVersion {
    pub id: i64,
    pub reference: String,
    pub process: String,
    pub events: i64,
    pub last_event: Option<i64>,
}

/// How many rows of a query the database thread may read ahead of the task taking them (sqlx's
/// default is 50). With a small buffer the two threads hand over nearly every row, each handover
/// a wake-up of the other thread — on a busy machine most of the time of reading 10,000 cases'
/// events and letters went there; rows are small (the big ones, messages and letters' bytes, are
/// read one at a time), so a thousand ahead costs little memory.
const ROW_BUFFER: usize = 1024;

/// Connections in a store's pool (a read-only copy's too).
const POOL_CONNECTIONS: u32 = 4;

/// The write-ahead log's automatic checkpoint while mail is stored, in 4 KiB pages (64 MiB;
/// SQLite's default, used by every other write, is 1,000 pages): a first run over a large
/// mailbox checkpoints a few times, not every 4 MB. (A large fetch also checkpoints in the
/// background while it stores: [`Ingest`].)
const INGEST_WAL_PAGES: u32 = 16_384;

/// A fetch that stored less mail than this (about what SQLite's automatic checkpoint lets the log
/// hold, 1,000 pages) is not checkpointed after it ([`Store::settle_ingest`]); a larger one is,
/// and is checkpointed each time this much more is stored while it runs ([`Ingest`]).
const CHECKPOINT_BYTES: u64 = 4 * 1024 * 1024;

/// How many cases [`Store::cases_with_events_page`] reads at once: few queries, and a bounded
/// amount of events in memory while a page is worked.
pub const CASES_PER_PAGE: i64 = 1000;

/// The embedded migrations, in order.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (
        2,
        include_str!("../../migrations/0002_thread_conversations.sql"),
    ),
    (3, include_str!("../../migrations/0003_outbox_intent.sql")),
    (4, include_str!("../../migrations/0004_sent_folder.sql")),
    (5, include_str!("../../migrations/0005_retention.sql")),
    (6, include_str!("../../migrations/0006_event_chain.sql")),
    (7, include_str!("../../migrations/0007_scale.sql")),
    (9, include_str!("../../migrations/0009_sent_by_copy.sql")),
    (10, include_str!("../../migrations/0010_scale_reads.sql")),
    (11, include_str!("../../migrations/0011_particulars.sql")),
    (12, include_str!("../../migrations/0012_web_accounts.sql")),
    (
        13,
        include_str!("../../migrations/0013_web_second_factor_and_proxy.sql"),
    ),
    (14, include_str!("../../migrations/0014_blobs.sql")),
    (15, include_str!("../../migrations/0015_message_bytes.sql")),
    (
        16,
        include_str!("../../migrations/0016_fingerprint_when_compared.sql"),
    ),
    (
        17,
        include_str!("../../migrations/0017_outbox_failing_since.sql"),
    ),
    (18, include_str!("../../migrations/0018_signins_folded.sql")),
    (19, include_str!("../../migrations/0019_web_reads.sql")),
];

/// The `meta` key recording that events stored before the chain were hashed (and the row every
/// event write touches first, to take SQLite's write lock before reading the chain's end).
const CHAIN_META: &str = "event_chain";

/// A recorded chain head: the last event's id and hash when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub at: DateTime<Utc>,
    pub event_id: i64,
    pub hash: String,
    pub events: i64,
}

/// `?, ?, …`: one placeholder per id, for an `IN (…)` list. Only placeholders are formatted into
/// such a query's text; every value is bound.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Format an instant the one way the database stores it.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parse an instant stored by [`ts`]. The one shape [`ts`] writes
/// (`2026-12-22T09:00:00.000000Z`) is read digit by digit — reading every case and letter parses
/// a few hundred thousand of them; anything else (an older row, a hand edit) goes through the
/// full RFC 3339 parser, which also refuses what is not an instant.
pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    fixed_ts(s)
        .or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
        .ok_or_else(|| StoreError::Corrupt(format!("bad instant `{s}`")))
}

/// An instant in exactly [`ts`]'s shape, `YYYY-MM-DDTHH:MM:SS.ffffffZ`; `None` for any other.
fn fixed_ts(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 27 || !s.is_ascii() {
        return None;
    }
    let punct = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ];
    if punct.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date =
        chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
        num(20, 26)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// Read a stored word of a closed vocabulary ([`CaseStatus`], [`OutboxState`]): an unknown one is
/// [`StoreError::Corrupt`], naming the table and row.
fn parse_word<T>(r: &sqlx::sqlite::SqliteRow, column: &str, table: &str) -> Result<T, StoreError>
where
    T: FromStr<Err = crate::core::records::UnknownWord>,
{
    let word: String = r.try_get(column)?;
    word.parse().map_err(|e| {
        let id = r.try_get::<i64, _>("id").unwrap_or_default();
        StoreError::Corrupt(format!("{table} row {id}: {e}"))
    })
}

fn parse_date(s: &str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("bad date `{s}`")))
}

/// Append a case event (its kind and JSON) in a transaction.
pub async fn record_event(
    tx: &mut Tx<'_>,
    case_id: i64,
    at: DateTime<Utc>,
    actor: &str,
    event: &crate::core::case::Event,
) -> Result<i64, StoreError> {
    let data =
        serde_json::to_value(event).map_err(|e| StoreError::Corrupt(format!("event: {e}")))?;
    Store::add_event(tx, case_id, at, event.kind(), actor, &data).await
}

/// Events stored before the chain are hashed this many at a time at the first open with schema 6
/// (inside the one transaction): a database of 100,000 such events (about 126 MB read whole) is
/// never held in memory at once, only one page of rows.
const CHAIN_PAGE: i64 = 1_000;

/// Hash the next `page` unhashed events after id `after`, chained from `prev` (left at the last
/// hash written). Returns the last id hashed and how many, `None` when none were left.
async fn hash_page(
    tx: &mut Tx<'_>,
    after: i64,
    prev: &mut String,
    page: i64,
) -> Result<Option<(i64, u64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, case_id, at, kind, actor, data FROM events \
         WHERE hash IS NULL AND id > ? ORDER BY id LIMIT ?",
    )
    .bind(after)
    .bind(page)
    .fetch_all(&mut **tx)
    .await?;
    let mut last = None;
    for r in &rows {
        let (at, kind, actor, data): (String, String, String, String) = (
            r.try_get("at")?,
            r.try_get("kind")?,
            r.try_get("actor")?,
            r.try_get("data")?,
        );
        let id: i64 = r.try_get("id")?;
        let content = chain::Content {
            id,
            case_id: r.try_get("case_id")?,
            at: &at,
            kind: &kind,
            actor: &actor,
            data: &data,
        };
        let hash = chain::hash(prev, &content);
        sqlx::query("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?")
            .bind(&*prev)
            .bind(&hash)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        *prev = hash;
        last = Some(id);
    }
    Ok(last.map(|id| (id, rows.len() as u64)))
}

/// The database handle.
pub use crate::core::records::{
    CaseRow, CaseStatus, EventRow, LetterSummary, NewLetter, OutboxState,
};

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Where [`Store::every_case`] opens its own connection; `None` for an in-memory store.
    bulk: Option<bulk::Source>,
    /// Messages the fetch has just stored, already read ([`fresh`]).
    fresh: std::sync::Arc<std::sync::Mutex<fresh::Fresh>>,
}

/// The health row (`mailbox_state`) for letters that fell due and could not be prepared (a
/// template that will not render, a file in `[attachments]` gone or unreadable): such a letter is
/// not sent and is tried again at every pass, so it must not stay in the log alone — the health
/// check (`letters_unprepared`) and the digest's first section say so until a pass prepares them
/// all. Written by the engine; read by `caseclerk health` and the snapshot.
pub const PREPARE_HEALTH_KEY: &str = "<letters>";

/// The health row for letters made once that could not be prepared: a notice made in answer to
/// mail or to a count of votes (`vote-confirmed`, `agencies-unknown`, …), or the day's digest or
/// tracker report. Unlike a planned letter it is not made again at the next pass, so its row is
/// never cleared by one: `caseclerk health` (`notices_unprepared`) and the digest speak of it for
/// a day after its last failure.
pub const NOTICE_HEALTH_KEY: &str = "<notices>";

/// A `meta` value by its key; a `meta` value set; a `meta` value removed (the pool's, the
/// engine's and the fetch's own connections read and write `meta` alike).
const META_GET: &str = "SELECT value FROM meta WHERE key = ?";
const META_SET: &str = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const META_CLEAR: &str = "DELETE FROM meta WHERE key = ?";

/// The installation's secret (`meta` `vote_key`, hex) as bytes: behind vote codes, Message-IDs
/// and the log's hashes. A value that is not hex is a corrupt database, never an empty key.
pub fn installation_secret(hex_value: &str) -> Result<Vec<u8>, StoreError> {
    hex::decode(hex_value).map_err(|e| StoreError::Corrupt(format!("vote_key: {e}")))
}

/// The `meta` key of what the engine is deciding ([`crate::core::deciding`]).
pub const DECIDING_KEY: &str = "deciding";

/// The `meta` key kept while a fetch reads the mail it stores for the engine
/// ([`Ingest::mark_reading`]): found at the next fetch, the last one stopped while reading.
pub const FETCH_READING_KEY: &str = "fetch_reading";

/// The health row for messages set aside because caseclerk stopped twice while deciding them
/// ([`crate::core::deciding`]): its text names the stored message's id only. Never cleared by a
/// pass; `caseclerk health` (`messages_set_aside`) speaks of it for a week after, and the digest
/// lists the message among those waiting for a person.
pub const SET_ASIDE_HEALTH_KEY: &str = "<set-aside>";

/// The health row for the daily retention run: failing while it cannot run (it is tried again at
/// every pass), cleared by the next run that works. Read by `caseclerk health`
/// (`retention_failing`): content kept past the schedule is the data protection officer's
/// business, not only the log's.
pub const RETENTION_HEALTH_KEY: &str = "<retention>";

/// The health row for the passes themselves: a pass that fails after the fetch (the database
/// refusing a planning transaction, say) plans, queues and sends nothing — and the fetch and the
/// watcher, which still work, would keep every other row green. Recorded by the daemon and by
/// `caseclerk tick` ([`crate::shell::engine::Engine::note_pass`]); read by `caseclerk health`
/// (`pass_failing`).
pub const PASS_HEALTH_KEY: &str = "<pass>";

/// The one statement that files a message (`state`, `rule`, `verdict`, `case_id`), with `only`
/// added to its `WHERE id = ?` (a fixed condition, or nothing); how many rows it changed.
async fn update_filing(
    conn: &mut sqlx::SqliteConnection,
    id: i64,
    (state, rule, verdict, case_id): (&str, &str, &serde_json::Value, Option<i64>),
    now: DateTime<Utc>,
    only: &'static str,
) -> Result<u64, StoreError> {
    let sql = format!(
        "UPDATE messages SET state = ?, rule = ?, verdict = ?, case_id = ?, processed_at = ? \
         WHERE id = ?{only}"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(state)
        .bind(rule)
        .bind(verdict.to_string())
        .bind(case_id)
        .bind(ts(now))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

impl Store {
    /// The connection pool, for the web workspace's own tables ([`crate::shell::web::accounts`]).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A message fetched from the mailbox, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// [`crate::core::identity::key`]: `mid:<Message-ID>`, else `content:<fingerprint>`.
    pub dedupe_key: String,
    /// [`crate::core::identity::fingerprint`]: what the author wrote. Given with a message keyed
    /// by it (one without a Message-ID); `None` for one with a Message-ID, whose fingerprint the
    /// store computes only if a comparison needs it (see [`Ingest::store_batch`]).
    pub fingerprint: Option<String>,
    pub uid: u32,
    pub internal_date: DateTime<Utc>,
    pub raw: Vec<u8>,
}

/// A stored message waiting to be classified.
#[derive(Debug, Clone)]
pub struct PendingMessage {
    pub id: i64,
    pub internal_date: DateTime<Utc>,
    pub raw: Vec<u8>,
}

/// Which stored message the engine is deciding, and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub id: i64,
    pub internal_date: DateTime<Utc>,
}

/// A stored message waiting to be classified, as it is stored: its bytes whole, or a skeleton
/// and the files it names ([`crate::core::packing`]), read together.
pub struct PendingStored {
    pub id: i64,
    pub internal_date: DateTime<Utc>,
    form: blobs::Form,
    files: blobs::Files,
}

impl PendingStored {
    /// Which message, and when it arrived.
    pub fn arrival(&self) -> Arrival {
        Arrival {
            id: self.id,
            internal_date: self.internal_date,
        }
    }

    /// The message read ([`crate::core::intake`]); a packed one without encoding its files
    /// again ([`crate::core::intake::parse_packed`]). A missing or altered file is
    /// [`StoreError::Corrupt`].
    pub fn parse(&self) -> Result<crate::core::intake::Message, StoreError> {
        match &self.form {
            blobs::Form::Whole(raw) => Ok(crate::core::intake::parse(raw)),
            blobs::Form::Skeleton(skeleton) => {
                crate::core::intake::parse_packed(skeleton, |sha| blobs::file(&self.files, sha))
                    .map_err(|e| corrupt_message(self.id, e))
            }
        }
    }

    /// Its exact bytes, put back together when it was stored packed.
    pub fn into_pending(self) -> Result<PendingMessage, StoreError> {
        let PendingStored {
            id,
            internal_date,
            form,
            files,
        } = self;
        let raw = match form {
            blobs::Form::Whole(raw) => raw,
            blobs::Form::Skeleton(skeleton) => {
                crate::core::packing::unpack(&skeleton, |sha| blobs::file(&files, sha))
                    .map_err(|e| corrupt_message(id, e))?
            }
        };
        Ok(PendingMessage {
            id,
            internal_date,
            raw,
        })
    }
}

fn corrupt_message(id: i64, e: crate::core::packing::PackError) -> StoreError {
    blobs::corrupt(blobs::Owner::Message, id, e)
}

/// The mailbox watermark and health.
#[derive(Debug, Clone, Default)]
pub struct MailboxState {
    pub uidvalidity: u32,
    pub last_uid: u32,
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub failures: i64,
}

/// The outbox's counts for the health check ([`Store::outbox_health`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxHealth {
    pub pending_due: usize,
    pub oldest_pending_due: Option<DateTime<Utc>>,
    pub retrying: usize,
    pub undelivered_since: usize,
    /// The oldest `sending_since` of a letter still pending: handed to the server and its
    /// outcome not recorded (the outbox stopped on a database that would not take it, or a
    /// daemon killed mid-send and not running).
    pub in_flight_since: Option<DateTime<Utc>>,
    /// Letters sent since `since` that were re-sent in doubt after a crash (may have gone twice).
    pub in_doubt_since: usize,
    /// The oldest fetch time of a message not yet decided.
    pub undecided_since: Option<DateTime<Utc>>,
    /// When the last letter was sent.
    pub last_sent_at: Option<DateTime<Utc>>,
}

/// A queued letter.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub case_id: Option<i64>,
    pub step: String,
    pub recipient: String,
    pub message_id: String,
    pub due_at: DateTime<Utc>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub raw: Vec<u8>,
    pub state: OutboxState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When its sending first failed for a reason that may pass (the day before it is given up
    /// counts from here), if it has.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it is next to be tried.
    pub next_attempt_at: DateTime<Utc>,
}

/// A sent letter still to be filed in the sent folder: what finds it there, not its bytes. A
/// pass files up to hundreds, and a letter carrying a referral's file can be 20 MB: each one's
/// bytes are read ([`Store::letter`]) only when it is appended, and let go before the next.
#[derive(Debug, Clone)]
pub struct UnfiledLetter {
    pub id: i64,
    pub message_id: String,
    pub sent_at: DateTime<Utc>,
}

/// A Message-ID known to belong to a case's thread.
#[derive(Debug, Clone)]
pub struct ThreadId {
    pub message_id: String,
    pub case_ref: String,
    pub step: Option<String>,
    pub recipient: Option<String>,
}

/// A message listed for a person (unmatched, unparseable, held).
#[derive(Debug, Clone)]
pub struct TriageRow {
    pub id: i64,
    pub internal_date: DateTime<Utc>,
    pub rule: Option<String>,
    pub size: i64,
    /// The classifier's reasons (header facts, rule words and ids; never text or addresses).
    pub reasons: Vec<String>,
}

fn case_row(r: &sqlx::sqlite::SqliteRow) -> Result<CaseRow, StoreError> {
    Ok(CaseRow {
        id: r.try_get("id")?,
        reference: r.try_get("reference")?,
        process: r.try_get("process")?,
        area: r.try_get("area")?,
        status: parse_word(r, "status", "cases")?,
        received_at: parse_ts(&r.try_get::<String, _>("received_at")?)?,
        day0: parse_date(&r.try_get::<String, _>("day0")?)?,
        referrer: r.try_get("referrer")?,
    })
}

/// Cases in id order, each given its rows of `rows` (read in `(case_id, id)` order) by walking
/// both lists once. Each row is decoded as it arrives, while the database thread reads the next
/// ones: the rows are never all held undecoded, and the two threads do not hand over each row
/// (a task that only collected rows would be faster than the thread reading them, and would be
/// woken for nearly every one).
async fn group_events(
    cases: Vec<CaseRow>,
    mut rows: impl futures::Stream<Item = Result<sqlx::sqlite::SqliteRow, sqlx::Error>> + Unpin,
) -> Result<Vec<(CaseRow, Vec<EventRow>)>, StoreError> {
    use futures::TryStreamExt;
    let mut out: Vec<(CaseRow, Vec<EventRow>)> =
        cases.into_iter().map(|c| (c, Vec::new())).collect();
    let mut at = 0;
    while let Some(r) = rows.try_next().await? {
        let case_id: i64 = r.try_get("case_id")?;
        while at < out.len() && out[at].0.id < case_id {
            at += 1;
        }
        if let Some((c, events)) = out.get_mut(at)
            && c.id == case_id
        {
            events.push(event_row(&r)?);
        }
    }
    Ok(out)
}

fn event_row(r: &sqlx::sqlite::SqliteRow) -> Result<EventRow, StoreError> {
    Ok(EventRow {
        id: r.try_get("id")?,
        at: parse_ts(&r.try_get::<String, _>("at")?)?,
        kind: r.try_get("kind")?,
        actor: r.try_get("actor")?,
        // Parsed where it is read (`EventRow::event`): an unreadable one is an error naming it.
        data: r.try_get("data")?,
    })
}

/// A message's exact bytes, from its `message_bytes` columns `raw` and `packing` (put back together from
/// its skeleton and blobs, read in `tx`, when it was stored packed).
async fn whole_message(
    tx: &mut Tx<'_>,
    id: i64,
    r: &sqlx::sqlite::SqliteRow,
) -> Result<Vec<u8>, StoreError> {
    let raw = r.try_get::<Option<Vec<u8>>, _>("raw")?.unwrap_or_default();
    blobs::unpacked(tx, blobs::Owner::Message, id, raw, r.try_get("packing")?).await
}

/// The fingerprint ([`crate::core::identity::fingerprint`]) of stored message `id`, from its
/// stored bytes; `None` when they are missing or cannot be read back (logged with the row's id:
/// the callers treat the fingerprint as unknown and go on). Only the database failing is an error.
async fn message_fingerprint(tx: &mut Tx<'_>, id: i64) -> Result<Option<String>, StoreError> {
    let row = sqlx::query("SELECT raw, packing FROM message_bytes WHERE message_id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let raw = match row {
        None => Err("missing".to_string()),
        Some(row) => match whole_message(tx, id, &row).await {
            Ok(raw) => Ok(raw),
            Err(StoreError::Corrupt(e)) => Err(e),
            Err(StoreError::Sql(sqlx::Error::ColumnDecode { source, .. })) => {
                Err(source.to_string())
            }
            Err(e) => return Err(e),
        },
    };
    match raw {
        Ok(raw) => Ok(Some(crate::core::identity::fingerprint(&raw))),
        Err(_) => {
            tracing::warn!(
                message = id,
                "a stored message's bytes could not be read back to take its fingerprint; it is taken as unknown"
            );
            Ok(None)
        }
    }
}

/// Letters as read by `SELECT * FROM outbox`, each with its exact bytes (a packed letter is put
/// back together from its skeleton and blobs, in `tx`).
async fn whole_letters(
    tx: &mut Tx<'_>,
    rows: Vec<sqlx::sqlite::SqliteRow>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut row = outbox_row(&r)?;
        let packing: Option<String> = r.try_get("packing")?;
        drop(r);
        let raw = std::mem::take(&mut row.raw);
        row.raw = blobs::unpacked(tx, blobs::Owner::Letter, row.id, raw, packing).await?;
        out.push(row);
    }
    Ok(out)
}

fn outbox_row(r: &sqlx::sqlite::SqliteRow) -> Result<OutboxRow, StoreError> {
    let to: String = r.try_get("envelope_to")?;
    Ok(OutboxRow {
        id: r.try_get("id")?,
        case_id: r.try_get("case_id")?,
        step: r.try_get("step")?,
        recipient: r.try_get("recipient")?,
        message_id: r.try_get("message_id")?,
        due_at: parse_ts(&r.try_get::<String, _>("due_at")?)?,
        envelope_from: r.try_get("envelope_from")?,
        envelope_to: serde_json::from_str(&to)
            .map_err(|e| StoreError::Corrupt(format!("outbox envelope: {e}")))?,
        raw: r.try_get("raw")?,
        state: parse_word(r, "state", "outbox")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        sent_at: r
            .try_get::<Option<String>, _>("sent_at")?
            .map(|s| parse_ts(&s))
            .transpose()?,
        failing_since: r
            .try_get::<Option<String>, _>("failing_since")?
            .map(|s| parse_ts(&s))
            .transpose()?,
        next_attempt_at: parse_ts(&r.try_get::<String, _>("next_attempt_at")?)?,
    })
}

/// How long past its planned retry a letter may wait before its run of failures counts as
/// broken (a refused login held it, the daemon was stopped): its next failure then starts a new
/// day of retries instead of finding the old day spent. Twice the longest backoff (an hour).
pub const FAILING_RUN_BROKEN_AFTER: chrono::Duration = chrono::Duration::hours(2);

/// When the current run of temporary failures of `row` began, as its next failure at `now`
/// will count it (see [`FAILING_RUN_BROKEN_AFTER`]); `now` when this is the first.
pub fn failing_since(row: &OutboxRow, now: DateTime<Utc>) -> DateTime<Utc> {
    failing_since_within(row, now, FAILING_RUN_BROKEN_AFTER)
}

/// [`failing_since`], with the run broken by a wait longer than `broken_after` (a letter in
/// doubt waits out the sent folder's grace between attempts).
pub fn failing_since_within(
    row: &OutboxRow,
    now: DateTime<Utc>,
    broken_after: chrono::Duration,
) -> DateTime<Utc> {
    row.failing_since
        .filter(|_| now - row.next_attempt_at <= broken_after)
        .unwrap_or(now)
}

/// The file beside the database that every running `caseclerk serve` holds a shared lock on
/// ([`serving_lock`]), so a restore can tell that a workspace still has the database open (the
/// daemon's own lock is on the database file itself, and a workspace runs beside the daemon).
pub fn serving_path(database: &Path) -> std::path::PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".serving");
    std::path::PathBuf::from(name)
}

/// Hold the database's serving lock ([`serving_path`]): shared with every other workspace,
/// `exclusive` for a restore. `Ok(None)` when another holds it the other way.
pub fn serving_lock(database: &Path, exclusive: bool) -> std::io::Result<Option<std::fs::File>> {
    lock_path(&serving_path(database), exclusive)
}

/// Lock the file at `path` (made owner-only if there is none), `exclusive` or shared, without
/// waiting; `Ok(None)` when another holds it the other way. The daemon's lock on its database
/// (`engine::lock_file`) and the workspaces' serving lock.
pub fn lock_path(path: &Path, exclusive: bool) -> std::io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let taken = match exclusive {
        true => file.try_lock(),
        false => file.try_lock_shared(),
    };
    match taken {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Where the instant of the last restore from a backup is kept (`meta`, RFC 3339), written by
/// `caseclerk restore` into the database it puts back.
pub const RESTORED_AT: &str = "restored_at";

impl Store {
    /// Open (creating if needed, with owner-only permissions) and migrate the database file.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let display = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::shell::private::create_dirs(dir).map_err(|source| StoreError::File {
                path: dir.display().to_string(),
                source,
            })?;
        }
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::File {
                    path: display.clone(),
                    source,
                })?;
        }
        // The path as a file name, not in a URL: a directory named with `?` or `#` is not a
        // parameter.
        let options = SqliteConnectOptions::new()
            .filename(path)
            // Real erasure (issue 14): freed pages are free of what they held (secure_delete
            // zeroes deleted content, on every connection), and an erasure's freed pages are
            // given back to the file system ([`Store::reclaim`]) once the database is in
            // incremental auto-vacuum ([`Store::ensure_incremental`]). Not `auto_vacuum` here:
            // setting it on an existing file is a write, and a connection opened while another
            // holds the write lock would wait for it.
            .pragma("secure_delete", "ON")
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .row_buffer_size(ROW_BUFFER);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            // Every connection is checked as it is handed back (one round trip, below), so
            // an idle one has just answered: checking it again as it is taken out would be a
            // second hand-over to its thread for every query (issue 15).
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(release_only_if_idle(conn)))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: display.clone(),
                source,
            })?;
        let store = Store {
            pool,
            fresh: Default::default(),
            bulk: Some(bulk::Source {
                path: path.to_path_buf(),
                immutable: false,
            }),
        };
        let upgraded = store.migrate().await?;
        // Not fatal: another process reading at that moment makes the one-time VACUUM fail;
        // the next open tries again, and meanwhile erased content is still zeroed in place.
        if let Err(e) = store.ensure_incremental().await {
            tracing::warn!(error = %e, "the database could not be converted to incremental auto-vacuum yet; the next start tries again");
        }
        // An upgrade that moved stored bytes (schema 15 copies every message's) leaves the old
        // pages free and the log as large as what it wrote: both are given back at once, not
        // left to the next erasure. Not fatal either: the next erasure does it.
        if upgraded {
            match store.reclaim().await {
                Ok(r) => tracing::info!(pages = r.pages, "space freed by the upgrade given back"),
                Err(e) => {
                    tracing::warn!(error = %e, "the space freed by the upgrade could not be given back yet; the next erasure does it")
                }
            }
        }
        Ok(store)
    }

    /// Open an existing database for reading only — `cases`, `case`, `digest`, `export`: no lock,
    /// no migration, nothing written, so a backup copy on a read-only file or directory can be
    /// read. A database from another schema is refused with what to do, never migrated.
    ///
    /// With a `-wal` file beside it (a daemon is working on it, or stopped uncleanly) it is opened
    /// `mode=ro`, seeing what the WAL holds. Without one the file is the whole database (SQLite
    /// removes the WAL when the last writer closes cleanly) and it is opened `immutable`: no
    /// `-shm` or `-wal` is created and no lock is taken, which is what lets a read-only directory
    /// be read. A daemon starting during such a read could only disturb it by checkpointing into
    /// the file, which it does after ~1,000 pages — a reading command is long finished by then.
    pub async fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        Store::open_read_only_at(path, false).await
    }

    /// [`Store::open_read_only`], a database of an older schema accepted too: a backup taken of a
    /// database the daemon has not started on since an upgrade is a faithful copy (its restore
    /// brings it up to date). Only its counts and integrity are read from such a store.
    pub async fn open_read_only_backup(path: &Path) -> Result<Store, StoreError> {
        Store::open_read_only_at(path, true).await
    }

    async fn open_read_only_at(path: &Path, older_ok: bool) -> Result<Store, StoreError> {
        let display = path.display().to_string();
        std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => StoreError::Missing {
                path: display.clone(),
            },
            _ => StoreError::File {
                path: display.clone(),
                source,
            },
        })?;
        let live = Path::new(&format!("{display}-wal")).exists();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(!live)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(30))
            .row_buffer_size(ROW_BUFFER);
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: display.clone(),
                source,
            })?;
        let store = Store {
            pool,
            fresh: Default::default(),
            bulk: Some(bulk::Source {
                path: path.to_path_buf(),
                immutable: !live,
            }),
        };
        store.check_schema(&display, MIGRATIONS, older_ok).await?;
        Ok(store)
    }

    /// Close every connection, waiting for them (the last one checkpoints and removes the WAL).
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The recorded schema is exactly the one this build knows (for a read-only store), or, with
    /// `older_ok`, not newer.
    async fn check_schema(
        &self,
        path: &str,
        migrations: &[(i64, &'static str)],
        older_ok: bool,
    ) -> Result<(), StoreError> {
        let known = migrations.last().map(|m| m.0).unwrap_or(0);
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.message().contains("no such table") => {
                    StoreError::NotCaseclerk { path: path.into() }
                }
                other => StoreError::Open {
                    path: path.into(),
                    source: other,
                },
            })?;
        match found.unwrap_or(0) {
            found if found > known => Err(StoreError::TooNew { found, known }),
            found if found < known && !older_ok => Err(StoreError::OlderSchema {
                path: path.into(),
                found,
                known,
            }),
            _ => Ok(()),
        }
    }

    /// Copy the database at `path` into a new file `dest` (`VACUUM INTO`: one consistent snapshot,
    /// even while the daemon writes), opening the original read-only. For `tick --dry-run`.
    pub async fn copy_to(path: &Path, dest: &Path) -> Result<(), StoreError> {
        let display = path.display().to_string();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(30))
            .row_buffer_size(ROW_BUFFER);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: display.clone(),
                source,
            })?;
        sqlx::query("VACUUM INTO ?")
            .bind(dest.display().to_string())
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    }

    /// SQLite's `PRAGMA integrity_check`: "ok", or what is wrong.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.join("; "))
    }

    /// How many cases, letters, events and stored messages the database holds.
    pub async fn row_counts(&self) -> Result<(i64, i64, i64, i64), StoreError> {
        Ok(sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM cases), (SELECT COUNT(*) FROM outbox), \
             (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM messages)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// An in-memory database (tests).
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|source| StoreError::Open {
                path: ":memory:".into(),
                source,
            })?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: ":memory:".into(),
                source,
            })?;
        let store = Store {
            pool,
            bulk: None,
            fresh: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Bring the schema up to date. `true` when an existing database was upgraded (not a new
    /// one made, nor one already current).
    async fn migrate(&self) -> Result<bool, StoreError> {
        let upgraded = self.apply_migrations(MIGRATIONS).await?;
        self.chain_stored_events().await?;
        Ok(upgraded)
    }

    /// The one-time step after migration 6: hash the events stored before the chain existed, in
    /// id order from [`chain::GENESIS`], in one transaction, and record it in `meta` as
    /// `event_chain` (never run again once recorded; SQLite's SQL cannot compute SHA-256, so the
    /// migration leaves their hashes NULL and this does it in Rust).
    async fn chain_stored_events(&self) -> Result<(), StoreError> {
        if self.meta(CHAIN_META).await?.is_some() {
            return Ok(());
        }
        self.hash_stored_events(CHAIN_PAGE).await
    }

    /// Hash the events with no hash, `page` rows at a time, in id order, all in one transaction
    /// (so a crash part-way leaves none hashed and the next open starts again from the first).
    async fn hash_stored_events(&self, page: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Take the write lock first, so no event is appended between the read and the hashing.
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, 'hashing') ON CONFLICT (key) DO NOTHING",
        )
        .bind(CHAIN_META)
        .execute(&mut *tx)
        .await?;
        let (mut prev, mut after, mut hashed) = (chain::GENESIS.to_string(), 0_i64, 0_u64);
        loop {
            let rows = hash_page(&mut tx, after, &mut prev, page).await?;
            let Some(last) = rows else { break };
            after = last.0;
            hashed += last.1;
        }
        sqlx::query("UPDATE meta SET value = ? WHERE key = ?")
            .bind(format!(
                "chained; {hashed} event(s) stored before the chain were hashed in id order at the first open with schema 6"
            ))
            .bind(CHAIN_META)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Apply the `migrations` newer than the recorded schema version, each in its own
    /// transaction with its version; refuse a database from a newer caseclerk. `true` when a
    /// database that had a schema was upgraded.
    async fn apply_migrations(
        &self,
        migrations: &[(i64, &'static str)],
    ) -> Result<bool, StoreError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&self.pool)
            .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&self.pool)
            .await?;
        let current = current.unwrap_or(0);
        let known = migrations.last().map(|m| m.0).unwrap_or(0);
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        for (version, sql) in migrations.iter().filter(|(v, _)| *v > current) {
            let mut tx = self.pool.begin().await?;
            // The file runs whole, as SQLite parses it: a `;` inside a string literal, a comment or
            // a trigger body is not the end of a statement.
            sqlx::raw_sql(*sql)
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migrate {
                    version: *version,
                    source,
                })?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(current > 0 && known > current)
    }

    /// Begin a transaction to write in. It takes the write lock at once (`BEGIN IMMEDIATE`),
    /// waiting for another writer's commit if need be: a transaction that began by reading
    /// could not write after a commit it did not see, and while the daemon fetches a large
    /// backlog its batches commit every few milliseconds (a sign-in, a letter's outcome, the
    /// retention schedule would fail with "database is locked" instead of waiting its turn).
    pub async fn begin(&self) -> Result<Tx<'static>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Commit a transaction.
    pub async fn commit(tx: Tx<'_>) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }

    /// A value from `meta`, set to `init()` the first time it is asked for.
    pub async fn meta_or_init(
        &self,
        key: &str,
        init: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        if let Some(v) = sqlx::query_scalar::<_, String>(META_GET)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(v);
        }
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(init())
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar(META_GET)
            .bind(key)
            .fetch_one(&self.pool)
            .await?)
    }

    // ---- mailbox --------------------------------------------------------------------------

    /// The watermark and health of one mailbox folder.
    pub async fn mailbox_state(&self, mailbox: &str) -> Result<Option<MailboxState>, StoreError> {
        let row = sqlx::query("SELECT * FROM mailbox_state WHERE mailbox = ?")
            .bind(mailbox)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| -> Result<MailboxState, StoreError> {
            let opt_ts = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
                r.try_get::<Option<String>, _>(name)?
                    .map(|s| parse_ts(&s))
                    .transpose()
            };
            Ok(MailboxState {
                uidvalidity: u32::try_from(r.try_get::<i64, _>("uidvalidity")?).unwrap_or(0),
                last_uid: u32::try_from(r.try_get::<i64, _>("last_uid")?).unwrap_or(0),
                last_ok_at: opt_ts("last_ok_at")?,
                last_error: r.try_get("last_error")?,
                last_error_at: opt_ts("last_error_at")?,
                failures: r.try_get("failures")?,
            })
        })
        .transpose()
    }

    /// Store fetched messages and advance the watermark, in one transaction: either both happen or
    /// neither. Duplicates are skipped: the same folder UID, or the same key with the same
    /// fingerprint (the same message delivered again: [`crate::core::identity`]); a *different*
    /// message reusing a known Message-ID is kept under `mid:<id>#<fingerprint>`. The
    /// `body_sha256` column holds the fingerprint (rows stored before fingerprints hold the body's
    /// hash, and were keyed `sha256:<raw hash>` without a Message-ID: both are compared with too,
    /// so nothing is stored twice across the upgrade). Returns how many new messages were stored.
    pub async fn store_fetched(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        messages: &[NewMessage],
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Ok(self
            .store_batch(mailbox, uidvalidity, messages.to_vec(), last_uid, now)
            .await?
            .stored)
    }

    /// [`Store::store_fetched`], taking the batch, on a connection of its own
    /// ([`Store::ingest`], [`Ingest::store_batch`]: a fetch of many batches keeps one).
    pub async fn store_batch(
        &self,
        mailbox: &str,
        uidvalidity: u32,
        messages: Vec<NewMessage>,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<BatchStored, StoreError> {
        let mut ingest = self.ingest().await?;
        let stored = ingest
            .store_batch(mailbox, uidvalidity, messages, last_uid, now)
            .await;
        ingest.finish().await;
        stored
    }

    /// After a fetch that stored `bytes` of mail: checkpoint the write-ahead log into the
    /// database if the fetch wrote more than an automatic checkpoint would have let it hold
    /// (a small fetch leaves it to the next write's automatic checkpoint, as before).
    ///
    /// The checkpoint runs on a pool connection of its own while the caller goes on: copying the
    /// fetched mail from the log into the database and syncing it is the disk's work, and the
    /// engine's next step — parsing and deciding what it fetched — is the processor's. It is
    /// `PASSIVE`: it never waits for, nor blocks, the engine's writes, which go on appending to
    /// the log; an automatic checkpoint that falls due meanwhile finds this one running and
    /// leaves it the work. Nothing depends on it for safety (the log is as durable as the
    /// database); a checkpoint that fails is logged, and the next one does its work.
    ///
    /// `running` is the checkpoint the fetch started while it stored ([`Ingest::finish`]): this
    /// one starts once that one has finished, since a `PASSIVE` checkpoint that finds another
    /// running does nothing, and batches committed after that one began would be left in the log.
    pub fn settle_ingest(&self, bytes: u64, running: Settling) -> Settling {
        if bytes < CHECKPOINT_BYTES {
            return running;
        }
        self.checkpoint(running)
    }

    /// A `PASSIVE` checkpoint on a pool connection of its own, in the background, once `after`
    /// (a checkpoint still running) has finished.
    pub(super) fn checkpoint(&self, after: Settling) -> Settling {
        let pool = self.pool.clone();
        Settling(Some(tokio::spawn(async move {
            after.finished().await;
            match sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                Ok(_) => {}
                // A one-shot command closed the store meanwhile: the next open checkpoints.
                Err(sqlx::Error::PoolClosed) => {
                    tracing::debug!("a checkpoint of fetched mail was left: the store was closed");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a checkpoint of fetched mail failed; the next one does its work");
                }
            }
        })))
    }

    /// Record that reaching the mailbox failed (for the digest's mailbox health).
    pub async fn record_mailbox_error(
        &self,
        mailbox: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, last_error, last_error_at, failures) \
             VALUES (?, 0, 0, ?, ?, 1) ON CONFLICT (mailbox) DO UPDATE SET last_error = excluded.last_error, \
             last_error_at = excluded.last_error_at, failures = mailbox_state.failures + 1",
        )
        .bind(mailbox)
        .bind(error)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record that `mailbox` (or the SMTP login, under its health key) worked again: its failures
    /// are cleared. Only a row that exists is touched (a health row is made by a failure).
    pub async fn record_mailbox_ok(
        &self,
        mailbox: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE mailbox_state SET last_ok_at = ?, failures = 0 WHERE mailbox = ? AND failures > 0",
        )
        .bind(ts(now))
        .bind(mailbox)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record a proof of life under a health key (the mailbox watcher's `<imap-watch>`): the row
    /// is made if new, its `last_ok_at` set and its failures cleared; the last error stays, for
    /// the record.
    pub async fn record_mailbox_alive(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, last_ok_at, failures) VALUES (?, 0, 0, ?, 0) \
             ON CONFLICT (mailbox) DO UPDATE SET last_ok_at = excluded.last_ok_at, failures = 0",
        )
        .bind(key)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The ids of messages not yet classified, in the order the engine decides them
    /// ([`Store::pending_sized`] without the sizes).
    pub async fn pending_ids(&self) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .pending_sized(None)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// The messages not yet classified, oldest first, each with its size as fetched (its bytes
    /// when loaded): a few bytes each, so a backlog of any size is listed without its mail, and
    /// the engine loads it a batch at a time within a budget. With `until`, only those that
    /// arrived (`internal_date`) at or before it: what may be decided while a fetch is still
    /// storing mail that arrived later ([`crate::shell::mailbox::Frontier`]).
    pub async fn pending_sized(
        &self,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<(i64, u64)>, StoreError> {
        let until = until.map(ts);
        let sql = format!(
            "SELECT id, size FROM messages WHERE state = 'new'{} ORDER BY internal_date, id",
            if until.is_some() {
                " AND internal_date <= ?"
            } else {
                ""
            }
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        if let Some(until) = until {
            q = q.bind(until);
        }
        let rows: Vec<(i64, i64)> = q.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|(id, size)| (id, u64::try_from(size).unwrap_or(0)))
            .collect())
    }

    /// One message not yet classified, with its raw bytes (`None` once it has been classified):
    /// [`Store::pending_messages`] of one.
    pub async fn pending_message(&self, id: i64) -> Result<Option<PendingMessage>, StoreError> {
        Ok(self.pending_messages(&[id]).await?.pop())
    }

    /// The messages among `ids` not yet classified, with their exact bytes, in the order of
    /// `ids` (one filed meanwhile is left out): [`Store::pending_stored`], each put back
    /// together.
    pub async fn pending_messages(&self, ids: &[i64]) -> Result<Vec<PendingMessage>, StoreError> {
        self.pending_stored(ids)
            .await?
            .into_iter()
            .map(PendingStored::into_pending)
            .collect()
    }

    /// The messages among `ids` not yet classified, as stored (each row and its files read in
    /// one transaction, so from one snapshot), in the order of `ids` (one filed meanwhile is
    /// left out): one query for the rows and one for the files of up to [`IN_LIST`] of them.
    /// What the engine reads: a packed message is parsed from its skeleton and files
    /// ([`PendingStored::parse`]) without being put back together first.
    pub async fn pending_stored(&self, ids: &[i64]) -> Result<Vec<PendingStored>, StoreError> {
        let mut found: std::collections::HashMap<i64, PendingStored> =
            std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_LIST) {
            let sql = format!(
                "SELECT m.id, m.internal_date, b.raw, b.packing FROM messages m \
                 JOIN message_bytes b ON b.message_id = m.id \
                 WHERE m.id IN ({}) AND m.state = 'new'",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            let mut tx = self.pool.begin().await?;
            let mut packed = Vec::new();
            for r in q.fetch_all(&mut *tx).await? {
                let id: i64 = r.try_get("id")?;
                let raw = r.try_get::<Option<Vec<u8>>, _>("raw")?.unwrap_or_default();
                let packing: Option<String> = r.try_get("packing")?;
                let form = blobs::form(blobs::Owner::Message, id, raw, packing.as_deref())?;
                if matches!(form, blobs::Form::Skeleton(_)) {
                    packed.push(id);
                }
                let internal_date = parse_ts(&r.try_get::<String, _>("internal_date")?)?;
                found.insert(
                    id,
                    PendingStored {
                        id,
                        internal_date,
                        form,
                        files: Vec::new(),
                    },
                );
            }
            for (id, files) in blobs::of_rows(&mut tx, blobs::Owner::Message, &packed).await? {
                if let Some(m) = found.get_mut(&id) {
                    m.files = files;
                }
            }
            tx.commit().await?;
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Record what a message was and where it went: one statement, in the caller's transaction
    /// (`&mut tx`) or on its own.
    pub async fn file_message(
        conn: &mut sqlx::SqliteConnection,
        id: i64,
        state: &str,
        rule: &str,
        verdict: &serde_json::Value,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let filing = (state, rule, verdict, case_id);
        update_filing(conn, id, filing, now, "").await.map(|_| ())
    }

    /// [`Store::file_message`] for a message a person takes off the triage list (attached to a
    /// case, opened as one, or set aside as not case business), only if it is still on it:
    /// `false` when another command took it first (a form sent twice, two people working the
    /// list at once) — the caller then changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub async fn file_from_triage(
        tx: &mut Tx<'_>,
        id: i64,
        state: &str,
        rule: &str,
        verdict: &serde_json::Value,
        case_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let filing = (state, rule, verdict, case_id);
        let only = " AND state = 'triage'";
        Ok(update_filing(tx, id, filing, now, only).await? == 1)
    }

    /// A stored message's state and case, if it exists.
    pub async fn message_state(
        &self,
        id: i64,
    ) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let row = sqlx::query("SELECT state, case_id FROM messages WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("state")?, r.try_get("case_id")?)))
            .transpose()
    }

    /// When a stored message reached the mailbox.
    pub async fn message_received(&self, id: i64) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT internal_date FROM messages WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        at.map(|s| parse_ts(&s)).transpose()
    }

    /// One letter by its outbox id.
    pub async fn letter(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT * FROM outbox WHERE id = ?")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        let out = whole_letters(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(out.into_iter().next())
    }

    /// When the database was last restored from a backup ([`RESTORED_AT`]), if ever: every
    /// letter due before then is looked for in the sent folder before it goes
    /// (`outbox::after_restore`).
    pub async fn restored_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.meta(RESTORED_AT)
            .await?
            .map(|v| parse_ts(&v))
            .transpose()
    }

    /// A value from `meta`, if set.
    pub async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(META_GET)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Messages waiting for a person, in order of arrival.
    pub async fn triage(&self) -> Result<Vec<TriageRow>, StoreError> {
        self.triage_page(0, usize::MAX).await
    }

    /// How many messages are waiting for a person.
    pub async fn triage_count(&self) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE state = 'triage' AND erased_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as usize)
    }

    /// `limit` of the messages waiting for a person, from the `skip`-th in order of arrival (the
    /// workspace shows a page at a time: after a first run, tens of thousands may be waiting).
    pub async fn triage_page(
        &self,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<TriageRow>, StoreError> {
        let as_sql = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT id, internal_date, rule, size, verdict FROM messages WHERE state = 'triage' \
             AND erased_at IS NULL ORDER BY internal_date, id LIMIT ? OFFSET ?",
        )
        .bind(as_sql(limit))
        .bind(as_sql(skip))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TriageRow {
                    id: r.try_get("id")?,
                    internal_date: parse_ts(&r.try_get::<String, _>("internal_date")?)?,
                    rule: r.try_get("rule")?,
                    size: r.try_get("size")?,
                    reasons: r
                        .try_get::<Option<String>, _>("verdict")?
                        .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
                        .and_then(|v| {
                            v.get("reasons")?.as_array().map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                        })
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Every message waiting for a person, streamed to `each` as (id, when it arrived, rule), in
    /// order of arrival: the digest counts them without holding them (tens of thousands after a
    /// first run; [`Store::triage`] reads each one's reasons too, for the lists that show them).
    pub async fn each_triage(
        &self,
        mut each: impl FnMut(i64, DateTime<Utc>, Option<String>),
    ) -> Result<(), StoreError> {
        use futures::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT id, internal_date, rule FROM messages WHERE state = 'triage' \
             AND erased_at IS NULL ORDER BY internal_date, id",
        )
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let at = parse_ts(&r.try_get::<String, _>("internal_date")?)?;
            each(r.try_get("id")?, at, r.try_get("rule")?);
        }
        Ok(())
    }

    /// Count messages by state (for tests and the digest).
    pub async fn message_states(&self) -> Result<Vec<(String, Option<String>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, rule, COUNT(*) AS n FROM messages GROUP BY state, rule ORDER BY state, rule",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("state")?, r.try_get("rule")?, r.try_get("n")?)))
            .collect()
    }

    /// Was the stored message `id`'s content erased under the retention schedule? (`false` for
    /// a message that is not stored.)
    pub async fn message_erased(&self, id: i64) -> Result<bool, StoreError> {
        let erased: Option<bool> =
            sqlx::query_scalar("SELECT erased_at IS NOT NULL FROM messages WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(erased.unwrap_or(false))
    }

    /// The raw bytes of a stored message, exactly as fetched (put back together from its
    /// skeleton and blobs when it was stored packed; empty once erased).
    pub async fn message_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT raw, packing FROM message_bytes WHERE message_id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let raw = whole_message(&mut tx, id, &r).await?;
        tx.commit().await?;
        Ok(Some(raw))
    }

    // ---- threads --------------------------------------------------------------------------

    /// Every Outlook conversation filed on a case, with the case's reference.
    pub async fn conversations(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.conversation, c.reference FROM thread_conversations t \
             JOIN cases c ON c.id = t.case_id ORDER BY c.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Note that an Outlook conversation has a message filed on a case.
    pub async fn add_conversation(
        tx: &mut Tx<'_>,
        conversation: &str,
        case_id: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO thread_conversations (conversation, case_id) VALUES (?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(conversation)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Put a Message-ID on a case's thread (first writer wins).
    pub async fn add_thread_id(
        tx: &mut Tx<'_>,
        message_id: &str,
        case_id: i64,
        outbox_id: Option<i64>,
        step: Option<&str>,
        recipient: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO thread_ids (message_id, case_id, outbox_id, step, recipient) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(message_id)
        .bind(case_id)
        .bind(outbox_id)
        .bind(step)
        .bind(recipient)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    // ---- cases and events -----------------------------------------------------------------

    /// Allocate the next reference for `year` (`RR-2026-0001`) and create the case.
    ///
    /// The next number comes from the year's counter (`case_counters`), bumped in the caller's
    /// transaction, so it stays unique and gapless whatever the number of cases. A year (or
    /// prefix) without a counter — the first case of a new year, or a database the migration
    /// could not read — starts from the highest reference of that year found by one scan.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_case(
        tx: &mut Tx<'_>,
        prefix: &str,
        process: &str,
        area: Option<&str>,
        received_at: DateTime<Utc>,
        day0: NaiveDate,
        referrer: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(i64, String), StoreError> {
        let year = day0.format("%Y").to_string();
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last FROM case_counters WHERE prefix = ? AND year = ?")
                .bind(prefix)
                .bind(&year)
                .fetch_optional(&mut **tx)
                .await?;
        let last = match last {
            Some(n) => n,
            None => Self::highest_reference(tx, prefix, &year).await?,
        };
        let mut next = last + 1;
        // A reference already taken (one written by other means than this counter) is skipped,
        // never reused: an index look-up, normally once.
        let reference = loop {
            let reference = format!("{prefix}-{year}-{next:04}");
            let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM cases WHERE reference = ?")
                .bind(&reference)
                .fetch_optional(&mut **tx)
                .await?;
            if taken.is_none() {
                break reference;
            }
            next += 1;
        };
        sqlx::query(
            "INSERT INTO case_counters (prefix, year, last) VALUES (?, ?, ?) \
             ON CONFLICT (prefix, year) DO UPDATE SET last = excluded.last",
        )
        .bind(prefix)
        .bind(&year)
        .bind(next)
        .execute(&mut **tx)
        .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO cases (reference, process, area, status, received_at, day0, opened_at, referrer) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&reference)
        .bind(process)
        .bind(area)
        .bind(CaseStatus::Open.as_str())
        .bind(ts(received_at))
        .bind(day0.format("%Y-%m-%d").to_string())
        .bind(ts(now))
        .bind(referrer)
        .fetch_one(&mut **tx)
        .await?;
        Ok((id, reference))
    }

    /// The highest number among `{prefix}-{year}-…` references (0 when none): a scan, for a
    /// year that has no counter yet.
    async fn highest_reference(
        tx: &mut Tx<'_>,
        prefix: &str,
        year: &str,
    ) -> Result<i64, StoreError> {
        let pattern = format!("{prefix}-{year}-");
        let refs: Vec<String> =
            sqlx::query_scalar("SELECT reference FROM cases WHERE instr(reference, ?) = 1")
                .bind(&pattern)
                .fetch_all(&mut **tx)
                .await?;
        Ok(refs
            .iter()
            .filter_map(|r| r.strip_prefix(&pattern)?.parse::<i64>().ok())
            .max()
            .unwrap_or(0))
    }

    /// Append an event to a case: the one way into `events`, chained to the event before it
    /// ([`crate::core::chain`]; one global chain in id order).
    ///
    /// Inside the caller's transaction it first takes SQLite's write lock (a write to `meta`),
    /// then reads the last event's id and hash, so two writers cannot chain to the same event:
    /// the second waits for the first to commit and then reads its hash. The new event's id is
    /// the last one plus one (events are never deleted, so that is the id SQLite would give).
    pub async fn add_event(
        tx: &mut Tx<'_>,
        case_id: i64,
        at: DateTime<Utc>,
        kind: &str,
        actor: &str,
        data: &serde_json::Value,
    ) -> Result<i64, StoreError> {
        sqlx::query("UPDATE meta SET value = value WHERE key = ?")
            .bind(CHAIN_META)
            .execute(&mut **tx)
            .await?;
        let last: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut **tx)
                .await?;
        let (id, prev) = match last {
            None => (1, chain::GENESIS.to_string()),
            Some((id, Some(hash))) => (id + 1, hash),
            // The last row was written around caseclerk (no hash). Letters must still go out:
            // the new event is chained to an empty hash, and `verify` names that row as broken.
            Some((id, None)) => (id + 1, String::new()),
        };
        let (at, data) = (ts(at), data.to_string());
        let hash = chain::hash(
            &prev,
            &chain::Content {
                id,
                case_id,
                at: &at,
                kind,
                actor,
                data: &data,
            },
        );
        Ok(sqlx::query_scalar(
            "INSERT INTO events (id, case_id, at, kind, actor, data, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(id)
        .bind(case_id)
        .bind(at)
        .bind(kind)
        .bind(actor)
        .bind(data)
        .bind(prev)
        .bind(hash)
        .fetch_one(&mut **tx)
        .await?)
    }

    /// A case's events with their chain columns, as stored (for `export-case`).
    pub async fn held_events(
        &self,
        case_id: i64,
    ) -> Result<Vec<crate::core::case_export::HeldEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, kind, actor, data, prev_hash, hash FROM events \
             WHERE case_id = ? ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::core::case_export::HeldEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    actor: r.try_get("actor")?,
                    data: r.try_get("data")?,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }

    /// The messages linked to a case (`messages.case_id`) or named by its events (`also`), by id.
    pub async fn held_messages(
        &self,
        case_id: i64,
        also: &[i64],
    ) -> Result<Vec<crate::core::case_export::HeldMessage>, StoreError> {
        let mut ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM messages WHERE case_id = ?")
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        ids.extend_from_slice(also);
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::new();
        let mut tx = self.pool.begin().await?;
        for id in ids {
            let row = sqlx::query(
                "SELECT m.internal_date, m.state, m.rule, b.raw, b.packing FROM messages m \
                 JOIN message_bytes b ON b.message_id = m.id WHERE m.id = ?",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = row {
                out.push(crate::core::case_export::HeldMessage {
                    id,
                    received: parse_ts(&r.try_get::<String, _>("internal_date")?)?,
                    state: r.try_get("state")?,
                    rule: r.try_get("rule")?,
                    raw: whole_message(&mut tx, id, &r).await?,
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Record the chain head (the last event's id and hash, and how many events there are) in
    /// `chain_heads` unless the last head recorded is already this event. `None`: no events yet,
    /// or nothing new since the last head.
    pub async fn record_chain_head(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<ChainHead>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE meta SET value = value WHERE key = ?")
            .bind(CHAIN_META)
            .execute(&mut *tx)
            .await?;
        let last: Option<(i64, Option<String>, i64)> = sqlx::query_as(
            "SELECT id, hash, (SELECT COUNT(*) FROM events) FROM events ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some((event_id, Some(hash), events)) = last else {
            return Ok(None);
        };
        let recorded: Option<i64> =
            sqlx::query_scalar("SELECT event_id FROM chain_heads ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        if recorded == Some(event_id) {
            return Ok(None);
        }
        sqlx::query("INSERT INTO chain_heads (at, event_id, hash, events) VALUES (?, ?, ?, ?)")
            .bind(ts(now))
            .bind(event_id)
            .bind(&hash)
            .bind(events)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(ChainHead {
            at: now,
            event_id,
            hash,
            events,
        }))
    }

    /// The history's head now: the last event's id and hash (`None`: no events, or the last one
    /// not hashed yet).
    pub async fn history_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let last: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(last.and_then(|(id, hash)| Some((id, hash?))))
    }

    /// When the last chain head was recorded (`None`: never).
    pub async fn last_chain_head_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<String> =
            sqlx::query_scalar("SELECT at FROM chain_heads ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        at.map(|s| parse_ts(&s)).transpose()
    }

    /// Every recorded chain head, oldest first.
    pub async fn chain_heads(&self) -> Result<Vec<ChainHead>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT at, event_id, hash, events FROM chain_heads ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(at, event_id, hash, events)| {
                Ok(ChainHead {
                    at: parse_ts(&at)?,
                    event_id,
                    hash,
                    events,
                })
            })
            .collect()
    }

    /// The stored hash of event `id` (`Ok(None)`: no such event; `Some(None)`: no hash).
    pub async fn event_hash(&self, id: i64) -> Result<Option<Option<String>>, StoreError> {
        Ok(sqlx::query_scalar("SELECT hash FROM events WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every event with its chain columns, in id order, streamed to `each` (the whole table is
    /// never held in memory). Stops at the first `Err` `each` returns and hands it back.
    pub async fn each_chained_event<E>(
        &self,
        mut each: impl FnMut(&chain::Link<'_>) -> Result<(), E>,
    ) -> Result<Result<(), E>, StoreError> {
        use futures::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT id, case_id, at, kind, actor, data, prev_hash, hash FROM events ORDER BY id",
        )
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            let (at, kind, actor, data): (String, String, String, String) = (
                r.try_get("at")?,
                r.try_get("kind")?,
                r.try_get("actor")?,
                r.try_get("data")?,
            );
            let (prev, hash): (Option<String>, Option<String>) =
                (r.try_get("prev_hash")?, r.try_get("hash")?);
            let link = chain::Link {
                content: chain::Content {
                    id: r.try_get("id")?,
                    case_id: r.try_get("case_id")?,
                    at: &at,
                    kind: &kind,
                    actor: &actor,
                    data: &data,
                },
                prev_hash: prev.as_deref(),
                hash: hash.as_deref(),
            };
            if let Err(e) = each(&link) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Set a case's status.
    pub async fn set_case_status(
        tx: &mut Tx<'_>,
        case_id: i64,
        status: CaseStatus,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE cases SET status = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(case_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// All cases, newest reference last.
    pub async fn cases(&self) -> Result<Vec<CaseRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM cases ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(case_row).collect()
    }

    /// Cases that are still open.
    pub async fn open_cases(&self) -> Result<Vec<CaseRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM cases WHERE status <> ? ORDER BY id")
            .bind(CaseStatus::Closed.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(case_row).collect()
    }

    /// One case by reference.
    pub async fn case_by_ref(&self, reference: &str) -> Result<Option<CaseRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM cases WHERE reference = ?")
            .bind(reference)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case_row).transpose()
    }

    /// One case by id.
    pub async fn case_by_id(&self, id: i64) -> Result<Option<CaseRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM cases WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case_row).transpose()
    }

    /// Every case reference.
    pub async fn case_refs(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT reference FROM cases ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A case's events, in order.
    pub async fn events(&self, case_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, kind, actor, data FROM events WHERE case_id = ? ORDER BY id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_row).collect()
    }

    /// Every case (or every open case) with its events in order, in pages of at most
    /// [`CASES_PER_PAGE`] cases: two queries a page whatever the number of events, not one per
    /// case (the planning pass, the classifier's context, the digest and the tracker read them
    /// all). Cases in id order.
    pub async fn cases_with_events(
        &self,
        open_only: bool,
    ) -> Result<Vec<(CaseRow, Vec<EventRow>)>, StoreError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.cases_with_events_page(open_only, after).await?;
            let Some((last, _)) = page.last() else {
                return Ok(out);
            };
            after = last.id;
            out.extend(page);
        }
    }

    /// One page of [`Store::cases_with_events`]: up to [`CASES_PER_PAGE`] cases with an id
    /// above `after`, and their events. Empty when there are no more. A caller that works a
    /// page before reading the next holds one page's events at a time.
    pub async fn cases_with_events_page(
        &self,
        open_only: bool,
        after: i64,
    ) -> Result<Vec<(CaseRow, Vec<EventRow>)>, StoreError> {
        let closed = CaseStatus::Closed.as_str();
        let open_only = i64::from(open_only);
        // Both reads in one transaction: one snapshot of the database, so every case listed has
        // all its events, whatever the daemon commits meanwhile. The events are read in
        // (case_id, id) order (the `events_case` index) and grouped by walking both lists.
        let mut tx = self.pool.begin().await?;
        let cases = sqlx::query(
            "SELECT * FROM cases WHERE id > ? AND (? = 0 OR status <> ?) ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(open_only)
        .bind(closed)
        .bind(CASES_PER_PAGE)
        .fetch_all(&mut *tx)
        .await?;
        let cases: Vec<CaseRow> = cases.iter().map(case_row).collect::<Result<_, _>>()?;
        let (Some(first), Some(last)) = (cases.first(), cases.last()) else {
            tx.commit().await?;
            return Ok(Vec::new());
        };
        let (first, last) = (first.id, last.id);
        let rows = sqlx::query(
            "SELECT e.case_id, e.id, e.at, e.kind, e.actor, e.data FROM events e \
             JOIN cases c ON c.id = e.case_id \
             WHERE e.case_id BETWEEN ? AND ? AND (? = 0 OR c.status <> ?) \
             ORDER BY e.case_id, e.id",
        )
        .bind(first)
        .bind(last)
        .bind(open_only)
        .bind(closed)
        .fetch(&mut *tx);
        let out = group_events(cases, rows).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The events table's watermark, and the cases with an event above `after` (with how many
    /// such events each), read in one snapshot. `None`: the watermark only.
    pub async fn events_after(
        &self,
        after: Option<i64>,
    ) -> Result<(Watermark, Vec<(i64, i64)>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let (events, last_event): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MAX(id) FROM events")
                .fetch_one(&mut *tx)
                .await?;
        let open_cases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE status <> ?")
            .bind(CaseStatus::Closed.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let changed = match after {
            Some(after) => {
                sqlx::query_as(
                    "SELECT case_id, COUNT(*) FROM events WHERE id > ? \
                     GROUP BY case_id ORDER BY case_id",
                )
                .bind(after)
                .fetch_all(&mut *tx)
                .await?
            }
            None => Vec::new(),
        };
        tx.commit().await?;
        let mark = Watermark {
            events,
            last_event,
            open_cases,
        };
        Ok((mark, changed))
    }

    /// Each open case's version, in id order: how many events it has and the id of its last
    /// (`None` for a case with none), with what names it. Events are only ever appended, so a
    /// case whose version is unchanged has the same events — the planning pass re-reads only the
    /// cases whose version moved. One query, answered from the `events_case` index.
    pub async fn open_case_versions(&self) -> Result<Vec<CaseVersion>, StoreError> {
        let rows: Vec<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT c.id, c.reference, c.process, COUNT(e.id), MAX(e.id) \
             FROM cases c LEFT JOIN events e ON e.case_id = c.id \
             WHERE c.status <> ? GROUP BY c.id, c.reference, c.process ORDER BY c.id",
        )
        .bind(CaseStatus::Closed.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, reference, process, events, last_event)| CaseVersion {
                id,
                reference,
                process,
                events,
                last_event,
            })
            .collect())
    }

    /// The open cases among `ids` (ascending, at most a few thousand) with their events in
    /// order, in id order, read in one snapshot like [`Store::cases_with_events_page`].
    pub async fn open_cases_with_events_among(
        &self,
        ids: &[i64],
    ) -> Result<Vec<(CaseRow, Vec<EventRow>)>, StoreError> {
        self.cases_with_events_among(ids, true).await
    }

    /// The cases (or the open cases) among `ids` (ascending, at most a few thousand) with their
    /// events in order, in id order, in one snapshot.
    pub async fn cases_with_events_among(
        &self,
        ids: &[i64],
        open_only: bool,
    ) -> Result<Vec<(CaseRow, Vec<EventRow>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = placeholders(ids.len());
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "SELECT * FROM cases WHERE (? = 0 OR status <> ?) AND id IN ({list}) ORDER BY id"
        );
        let mut cases_q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(open_only))
            .bind(CaseStatus::Closed.as_str());
        for id in ids {
            cases_q = cases_q.bind(id);
        }
        let cases = cases_q.fetch_all(&mut *tx).await?;
        let cases: Vec<CaseRow> = cases.iter().map(case_row).collect::<Result<_, _>>()?;
        let sql = format!(
            "SELECT case_id, id, at, kind, actor, data FROM events WHERE case_id IN ({list}) \
             ORDER BY case_id, id"
        );
        let mut events_q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            events_q = events_q.bind(id);
        }
        let out = group_events(cases, events_q.fetch(&mut *tx)).await?;
        tx.commit().await?;
        Ok(out)
    }

    // ---- outbox ---------------------------------------------------------------------------

    /// Queue a letter unless one with the same key was already decided. Returns its id when new.
    pub async fn queue_letter(
        tx: &mut Tx<'_>,
        letter: &NewLetter,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        // Its attached files stored once (migration 14): `raw` holds the rest. Packing checks
        // that the stored form gives back exactly these bytes, else keeps them whole.
        let packed = blobs::prepare(letter.raw.as_slice().into());
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO outbox (dedupe_key, case_id, step, recipient, message_id, due_at, queued_at, \
             envelope_from, envelope_to, raw, packing, size, state, attempts, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&letter.dedupe_key)
        .bind(letter.case_id)
        .bind(&letter.step)
        .bind(&letter.recipient)
        .bind(&letter.message_id)
        .bind(ts(letter.due_at))
        .bind(ts(now))
        .bind(&letter.envelope_from)
        .bind(serde_json::to_string(&letter.envelope_to).unwrap_or_else(|_| "[]".into()))
        .bind(&*packed.raw)
        .bind(packed.packing)
        .bind(letter.raw.len() as i64)
        .bind(OutboxState::Pending.as_str())
        .bind(ts(letter.due_at))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = id {
            blobs::attach(tx, blobs::Owner::Letter, id, packed.blobs).await?;
        }
        Ok(id)
    }

    /// Has a letter with this key been decided already?
    pub async fn letter_exists(&self, dedupe_key: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE dedupe_key = ?")
            .bind(dedupe_key)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// The letter we sent with this Message-ID (for bounces).
    pub async fn letter_by_message_id(
        &self,
        message_id: &str,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT * FROM outbox WHERE message_id = ?")
            .bind(message_id)
            .fetch_all(&mut *tx)
            .await?;
        let out = whole_letters(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(out.into_iter().next())
    }

    /// Mark a sent letter as bounced back.
    pub async fn mark_bounced(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET state = ? WHERE id = ?")
            .bind(OutboxState::Bounced.as_str())
            .bind(id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Mark a letter just decided as imported — not sent (a first run's stale letter).
    pub async fn mark_imported(tx: &mut Tx<'_>, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET state = ? WHERE id = ? AND state = ?")
            .bind(OutboxState::Imported.as_str())
            .bind(id)
            .bind(OutboxState::Pending.as_str())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Letters ready to send at `now`.
    pub async fn sendable(&self, now: DateTime<Utc>) -> Result<Vec<OutboxRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE state = ? AND next_attempt_at <= ? ORDER BY due_at, id",
        )
        .bind(OutboxState::Pending.as_str())
        .bind(ts(now))
        .fetch_all(&mut *tx)
        .await?;
        let out = whole_letters(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// The ids of the letters ready to send at `now`, in sending order: the outbox is walked one
    /// letter at a time ([`Store::sendable_letter`]), never loaded whole with its bytes.
    pub async fn sendable_ids(&self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM outbox WHERE state = ? AND next_attempt_at <= ? ORDER BY due_at, id",
        )
        .bind(OutboxState::Pending.as_str())
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?)
    }

    /// One letter with its bytes, if it is still ready to send at `now`.
    pub async fn sendable_letter(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows =
            sqlx::query("SELECT * FROM outbox WHERE id = ? AND state = ? AND next_attempt_at <= ?")
                .bind(id)
                .bind(OutboxState::Pending.as_str())
                .bind(ts(now))
                .fetch_all(&mut *tx)
                .await?;
        let out = whole_letters(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(out.into_iter().next())
    }

    /// The earliest instant a pending letter becomes sendable.
    pub async fn next_send_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<String> =
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE state = ?")
                .bind(OutboxState::Pending.as_str())
                .fetch_one(&self.pool)
                .await?;
        next.map(|s| parse_ts(&s)).transpose()
    }

    /// The outbox as the health check reads it at `now`: letters due and not sent (and the
    /// earliest due instant among them), those being retried, and those undelivered since
    /// `since` (a refused letter keeps the instant of its last attempt in `next_attempt_at`; a
    /// bounced one its `sent_at`). Counts only: nothing about whom or what.
    pub async fn outbox_health(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<OutboxHealth, StoreError> {
        let (due, oldest, retrying): (i64, Option<String>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(due_at), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) \
             FROM outbox WHERE state = ? AND due_at <= ?",
        )
        .bind(OutboxState::Pending.as_str())
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await?;
        let undelivered: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE (state = ? AND next_attempt_at >= ?) \
             OR (state = ? AND sent_at >= ?)",
        )
        .bind(OutboxState::Failed.as_str())
        .bind(ts(since))
        .bind(OutboxState::Bounced.as_str())
        .bind(ts(since))
        .fetch_one(&self.pool)
        .await?;
        let in_flight: Option<String> = sqlx::query_scalar(
            "SELECT MIN(sending_since) FROM outbox WHERE state = ? AND sending_since IS NOT NULL",
        )
        .bind(OutboxState::Pending.as_str())
        .fetch_one(&self.pool)
        .await?;
        let in_doubt: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE in_doubt > 0 AND sent_at >= ?")
                .bind(ts(since))
                .fetch_one(&self.pool)
                .await?;
        let undecided: Option<String> =
            sqlx::query_scalar("SELECT MIN(fetched_at) FROM messages WHERE state = 'new'")
                .fetch_one(&self.pool)
                .await?;
        let last_sent: Option<String> = sqlx::query_scalar("SELECT MAX(sent_at) FROM outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(OutboxHealth {
            last_sent_at: last_sent.map(|s| parse_ts(&s)).transpose()?,
            in_flight_since: in_flight.map(|s| parse_ts(&s)).transpose()?,
            in_doubt_since: in_doubt as usize,
            undecided_since: undecided.map(|s| parse_ts(&s)).transpose()?,
            pending_due: due as usize,
            oldest_pending_due: oldest.map(|s| parse_ts(&s)).transpose()?,
            retrying: retrying.unwrap_or(0) as usize,
            undelivered_since: undelivered as usize,
        })
    }

    /// Letters of one case (or all when `None`).
    pub async fn letters(&self, case_id: Option<i64>) -> Result<Vec<OutboxRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = match case_id {
            Some(id) => {
                sqlx::query("SELECT * FROM outbox WHERE case_id = ? ORDER BY id")
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM outbox ORDER BY id")
                    .fetch_all(&mut *tx)
                    .await?
            }
        };
        let out = whole_letters(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Letters without their bytes, oldest first: one case's (the workspace's case page, through
    /// the `case_id` index) or, with `None`, every case's (the digest and the tracker).
    pub async fn letter_summaries(
        &self,
        case_id: Option<i64>,
    ) -> Result<Vec<LetterSummary>, StoreError> {
        let query = match case_id {
            Some(id) => sqlx::query(
                "SELECT id, case_id, step, recipient, due_at, queued_at, state, attempts, sent_at \
                 FROM outbox WHERE case_id = ? ORDER BY id",
            )
            .bind(id),
            None => sqlx::query(
                "SELECT id, case_id, step, recipient, due_at, queued_at, state, attempts, sent_at \
                 FROM outbox ORDER BY id",
            ),
        };
        self.summaries_of(query).await
    }

    /// The letter summaries of the cases among `ids` (at most a few thousand), in id order.
    pub async fn letter_summaries_among(
        &self,
        ids: &[i64],
    ) -> Result<Vec<LetterSummary>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = placeholders(ids.len());
        let sql = format!(
            "SELECT id, case_id, step, recipient, due_at, queued_at, state, attempts, sent_at \
             FROM outbox WHERE case_id IN ({list}) ORDER BY id"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        self.summaries_of(query).await
    }

    /// Letters on no case (the digest, the tracker report) refused, bounced or given up on,
    /// queued since `since`, in id order.
    pub async fn undelivered_without_case(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<LetterSummary>, StoreError> {
        let query = sqlx::query(
            "SELECT id, case_id, step, recipient, due_at, queued_at, state, attempts, sent_at \
             FROM outbox WHERE case_id IS NULL AND state IN (?, ?) AND queued_at >= ? ORDER BY id",
        )
        .bind(OutboxState::Failed.as_str())
        .bind(OutboxState::Bounced.as_str())
        .bind(ts(since));
        self.summaries_of(query).await
    }

    async fn summaries_of<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> Result<Vec<LetterSummary>, StoreError> {
        use futures::TryStreamExt;
        // Decoded as they arrive (see [`group_events`]).
        let mut rows = query.fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            out.push(LetterSummary {
                id: r.try_get("id")?,
                case_id: r.try_get("case_id")?,
                step: r.try_get("step")?,
                recipient: r.try_get("recipient")?,
                due_at: parse_ts(&r.try_get::<String, _>("due_at")?)?,
                queued_at: parse_ts(&r.try_get::<String, _>("queued_at")?)?,
                state: parse_word(&r, "state", "outbox")?,
                attempts: r.try_get("attempts")?,
                sent_at: r
                    .try_get::<Option<String>, _>("sent_at")?
                    .map(|s| parse_ts(&s))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    /// When the latest letter of `step` decided before `before` (other than the one keyed
    /// `except_key`) was sent, else when it was decided: "since the last digest".
    pub async fn last_of_step(
        &self,
        step: &str,
        except_key: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT queued_at, sent_at FROM outbox WHERE step = ? AND dedupe_key <> ? AND queued_at < ? \
             ORDER BY queued_at DESC, id DESC LIMIT 1",
        )
        .bind(step)
        .bind(except_key)
        .bind(ts(before))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<DateTime<Utc>, StoreError> {
            match r.try_get::<Option<String>, _>("sent_at")? {
                Some(s) => parse_ts(&s),
                None => parse_ts(&r.try_get::<String, _>("queued_at")?),
            }
        })
        .transpose()
    }

    /// Record a successful send.
    pub async fn mark_sent(tx: &mut Tx<'_>, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = ?, sent_at = ?, attempts = attempts + 1, last_error = NULL, \
             sending_since = NULL WHERE id = ?",
        )
        .bind(OutboxState::Sent.as_str())
        .bind(ts(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Letters sent but not yet filed in the sent folder (oldest first, at most `limit`): their
    /// id, Message-ID and when they were sent — not their bytes ([`UnfiledLetter`]).
    pub async fn unfiled_sent(&self, limit: i64) -> Result<Vec<UnfiledLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, message_id, sent_at FROM outbox \
             WHERE filed_at IS NULL AND sent_at IS NOT NULL ORDER BY sent_at, id LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnfiledLetter {
                    id: r.try_get("id")?,
                    message_id: r.try_get("message_id")?,
                    sent_at: parse_ts(&r.try_get::<String, _>("sent_at")?)?,
                })
            })
            .collect()
    }

    /// Record that a sent letter is in the sent folder.
    pub async fn mark_filed(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET filed_at = ? WHERE id = ? AND filed_at IS NULL")
            .bind(ts(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record an attempt whose answer was lost after the letter's content went: counted, its
    /// failure noted with when its run of failures began ([`failing_since_within`]), and its
    /// intent (`sending_since`) kept, so that it is in doubt — settled by the server's copy in
    /// the sent folder, never simply sent again.
    pub async fn mark_answer_lost(
        tx: &mut Tx<'_>,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
        failing_since: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, failing_since = ?, \
             next_attempt_at = ? WHERE id = ?",
        )
        .bind(error)
        .bind(ts(failing_since))
        .bind(ts(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Record a failed attempt: retry as `retry` says — when, and when its run of failures
    /// began ([`failing_since`]) — or give up (`None`: state `failed`).
    pub async fn mark_attempt_failed(
        tx: &mut Tx<'_>,
        id: i64,
        error: &str,
        retry: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Result<(), StoreError> {
        match retry {
            Some((at, failing_since)) => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, \
                     sending_since = NULL, failing_since = ?, next_attempt_at = ? WHERE id = ?",
                )
                .bind(error)
                .bind(ts(failing_since))
                .bind(ts(at))
                .bind(id)
                .execute(&mut **tx)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, state = ?, \
                     sending_since = NULL WHERE id = ?",
                )
                .bind(error)
                .bind(OutboxState::Failed.as_str())
                .bind(id)
                .execute(&mut **tx)
                .await?
            }
        };
        Ok(())
    }
}

/// Whether a connection handed back to the pool may be handed out again: only if neither sqlx nor
/// SQLite thinks a transaction is still open on it. Otherwise it is closed (which rolls back
/// whatever SQLite kept and releases its locks) and the pool opens a fresh one.
///
/// Why: when a write fails for lack of space (`SQLITE_FULL`) SQLite may roll the transaction
/// back by itself; sqlx's `ROLLBACK` on drop then fails ("no transaction is active") and sqlx
/// keeps counting a transaction on that connection. Its next `begin` becomes a `SAVEPOINT` that
/// opens a real transaction, whose failure is undone by `ROLLBACK TO` — which does not end it. The
/// connection then holds SQLite's write lock for good, every other connection waits out its busy
/// timeout and fails with "database is locked", and only a restart cleared it (issue 11).
///
/// One round trip, because every query through the pool pays it: SQLite's own view first
/// (`BEGIN` is refused inside a transaction), which also runs after a dropped transaction's queued
/// rollback (the connection's thread takes its commands in order), so sqlx's count of open
/// transactions read after it is settled too.
async fn release_only_if_idle(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let sqlite_idle = sqlx::raw_sql("BEGIN; ROLLBACK")
        .execute(&mut *conn)
        .await
        .is_ok();
    Ok(sqlite_idle && !conn.is_in_transaction())
}

/// A checkpoint after a large fetch, running in the background ([`Store::settle_ingest`]).
#[derive(Debug, Default)]
pub struct Settling(Option<tokio::task::JoinHandle<()>>);

impl Settling {
    /// The checkpoint is still running.
    fn running(&self) -> bool {
        self.0.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Wait until the checkpoint has finished (at once when there was none). Nothing needs to:
    /// the benchmark does, to count its time. Dropping a `Settling` leaves the checkpoint running.
    pub async fn finished(self) {
        if let Some(task) = self.0 {
            let _ = task.await;
        }
    }
}

/// What a message was and where it went, when that is all its reaction writes
/// ([`DecisionConn::file_messages`]).
#[derive(Debug, Clone)]
pub struct Filing {
    pub id: i64,
    pub state: &'static str,
    pub rule: &'static str,
    pub verdict: serde_json::Value,
}

/// The engine's connection for what it decides in one pass — filing messages, planning cases —
/// held for the pass and closed (never handed back to the pool) when dropped, so its setting
/// never reaches another write.
///
/// Its commits do not wait for the disk (`synchronous = NORMAL`): each message is filed in a
/// transaction of its own (its case opened, its events, the letters it queues, the message marked
/// filed), and so is each case planning records something for; a first run over a council's
/// mailbox makes tens of thousands, and waiting for an fsync each was a fifth of that run's time.
/// Safe for the same reason as [`Store::store_batch`]: the write-ahead log is written in order
/// and synced whole, so a power cut loses only the newest commits, never one without those before
/// it; and nothing leaves the database before a commit that does wait for the disk — the
/// outbox's intent before each send ([`SendConn::mark_sending`]) and every write a person makes in
/// the workspace or by a command (the pool's connections are `FULL`) — which makes every decision
/// before it durable too. What a power cut can lose is what nobody has acted on yet: messages
/// still stored but unfiled are filed again (or, if their storing was lost too, fetched again),
/// and cases are planned again.
pub struct DecisionConn {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
}

impl Store {
    /// The engine's connection for one pass's decisions (see [`DecisionConn`]).
    pub async fn decision_connection(&self) -> Result<DecisionConn, StoreError> {
        let conn = self.own_connection("PRAGMA synchronous = NORMAL").await?;
        Ok(DecisionConn { conn })
    }

    /// A connection of the pool's with `setting` applied, closed when dropped rather than handed
    /// back, so the setting never reaches another caller.
    async fn own_connection(
        &self,
        setting: &'static str,
    ) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        conn.close_on_drop();
        sqlx::raw_sql(setting).execute(&mut *conn).await?;
        Ok(conn)
    }
}

/// `items` (each with its size in bytes) in batches, in order: at most `count` a batch and at
/// most `budget` bytes, an item larger than the budget alone. The fetch's batches and the
/// engine's loading of pending mail ([`crate::shell::engine`]) are both made this way, and so
/// are the store's multi-row statements.
pub fn batches_by_bytes<T>(
    items: impl IntoIterator<Item = (T, u64)>,
    count: usize,
    budget: u64,
) -> Vec<Vec<T>> {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut bytes = 0u64;
    for (item, n) in items {
        if !current.is_empty() && (current.len() >= count || bytes + n > budget) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(item);
        bytes += n;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// At most this many values in one `IN` list (SQLite's limit on bound values is far above it).
pub const IN_LIST: usize = 100;

/// The reads of the engine's loop over pending messages are made on its own connection too: each
/// query through the pool is a connection taken and handed back as well (a round trip to the
/// connection's thread of its own), and a first run makes them for tens of thousands of messages.
impl DecisionConn {
    /// A transaction on this connection: one message's filing, or one case's planning. It takes
    /// the write lock at once (`BEGIN IMMEDIATE`), waiting for another writer's commit if need be:
    /// each reads before it writes (the case's state, the next reference), and a transaction that
    /// began by reading could not write after a commit it did not see — while the engine decides
    /// mail the fetch is still storing, the mailbox's batches commit every few milliseconds.
    pub async fn begin(&mut self) -> Result<Tx<'_>, StoreError> {
        use sqlx::Connection;
        Ok(self.conn.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// File messages whose reactions write nothing else (no case opened, nothing on a case, no
    /// letter marked) — most of a first run's messages: one statement for up to [`IN_LIST`] of
    /// them, a transaction by itself. Only a message still `new` is filed: one filed meanwhile
    /// keeps its filing.
    pub async fn file_messages(
        &mut self,
        filings: &[Filing],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for chunk in filings.chunks(IN_LIST) {
            let rows = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "UPDATE messages SET state = v.state, rule = v.rule, verdict = v.verdict, \
                 case_id = NULL, processed_at = ? \
                 FROM (SELECT column1 AS id, column2 AS state, column3 AS rule, column4 AS verdict \
                 FROM (VALUES {rows})) AS v WHERE messages.id = v.id AND messages.state = 'new'"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ts(now));
            for f in chunk {
                q = q
                    .bind(f.id)
                    .bind(f.state)
                    .bind(f.rule)
                    .bind(f.verdict.to_string());
            }
            q.execute(&mut *self.conn).await?;
        }
        Ok(())
    }

    /// The record of what a pass is deciding ([`crate::core::deciding`]), as the last pass left
    /// it: `None` when it ended normally.
    pub async fn deciding_mark(&mut self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(META_GET)
            .bind(DECIDING_KEY)
            .fetch_optional(&mut *self.conn)
            .await?)
    }

    /// Record what is being decided now (`None`: nothing, the pass is done). Written on this
    /// connection, without waiting for the disk: the record must outlive the process (a crash
    /// while deciding), not the machine — a power cut that loses it loses nothing but the guard's
    /// count.
    pub async fn mark_deciding(&mut self, mark: Option<&str>) -> Result<(), StoreError> {
        match mark {
            Some(m) => {
                sqlx::query(META_SET)
                    .bind(DECIDING_KEY)
                    .bind(m)
                    .execute(&mut *self.conn)
                    .await?
            }
            None => {
                sqlx::query(META_CLEAR)
                    .bind(DECIDING_KEY)
                    .execute(&mut *self.conn)
                    .await?
            }
        };
        Ok(())
    }

    /// Which of these Message-IDs are on a case's thread: one query for up to [`IN_LIST`] of
    /// them.
    pub async fn thread_ids(&mut self, ids: &[String]) -> Result<Vec<ThreadId>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(IN_LIST) {
            let sql = format!(
                "SELECT t.message_id, c.reference, t.step, t.recipient FROM thread_ids t \
                 JOIN cases c ON c.id = t.case_id WHERE t.message_id IN ({}) ORDER BY t.message_id",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&mut *self.conn).await? {
                out.push(ThreadId {
                    message_id: r.try_get(0)?,
                    case_ref: r.try_get(1)?,
                    step: r.try_get(2)?,
                    recipient: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }

    /// How many letters in answer to mail (outbox `steps`) were queued to `address` (lowercase)
    /// since `since`: for the answer cap ([`crate::core::limits`]).
    pub async fn answers_since(
        &mut self,
        address: &str,
        steps: &[String],
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        // Only this address's letters leave the database (the `outbox_step` index covers the
        // query: no letter's bytes are read); the recipients are then compared exactly here
        // (envelope_to is a JSON list; a LIKE would read `_` in an address as a wildcard).
        let steps: Vec<&String> = steps
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut rows: Vec<String> = Vec::new();
        for chunk in steps.chunks(IN_LIST) {
            let sql = format!(
                "SELECT envelope_to FROM outbox \
                 WHERE step IN ({}) AND queued_at >= ? AND instr(lower(envelope_to), ?) > 0",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for step in chunk {
                q = q.bind(*step);
            }
            rows.extend(
                q.bind(ts(since))
                    // SQLite's lower() folds ASCII only: so does this, keeping a superset of the
                    // exact comparison below.
                    .bind(address.to_ascii_lowercase())
                    .fetch_all(&mut *self.conn)
                    .await?,
            );
        }
        let n = rows
            .iter()
            .filter(|to| {
                serde_json::from_str::<Vec<String>>(to)
                    .unwrap_or_default()
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(address))
            })
            .count();
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// How many cases were opened for `referrer` (lowercase) from referrals that reached the
    /// mailbox since `since`: for the case cap.
    pub async fn cases_opened_since(
        &mut self,
        referrer: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM cases WHERE received_at >= ? AND lower(referrer) = ?",
        )
        .bind(ts(since))
        .bind(referrer)
        .fetch_one(&mut *self.conn)
        .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// The send loop's own connection, held for one pass and closed (never reused) when dropped.
///
/// It writes the two records around each hand-over to SMTP: the intent before
/// ([`SendConn::mark_sending`], committed with `synchronous = FULL`: on disk even across a power
/// cut) and the outcome after ([`SendConn::stage_sent`], committed with `synchronous = NORMAL`:
/// no fsync wait between the server's `250` and the commit; a committed WAL write survives a
/// killed process, and only a power cut could lose it — then the intent is still there and the
/// letter is in doubt). Its automatic WAL checkpoint is off, so a checkpoint (an fsync of the
/// database file) never runs inside that window; [`SendConn::finish`] checkpoints after the pass.
pub struct SendConn {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
}

impl Store {
    /// The send loop's connection (see [`SendConn`]).
    pub async fn send_connection(&self) -> Result<SendConn, StoreError> {
        let conn = self.own_connection("PRAGMA wal_autocheckpoint = 0").await?;
        Ok(SendConn { conn })
    }

    /// Pending letters being sent (their intent recorded, no outcome yet) since before `before`:
    /// in doubt, or held by an outbox that could not record what the server said.
    pub async fn sending_since(&self, before: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM outbox WHERE state = ? AND sending_since IS NOT NULL \
             AND sending_since < ? ORDER BY id",
        )
        .bind(OutboxState::Pending.as_str())
        .bind(ts(before))
        .fetch_all(&self.pool)
        .await?)
    }

    /// How many times, over all letters, a letter was found in doubt and sent again.
    pub async fn in_doubt_total(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(SUM(in_doubt), 0) FROM outbox")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// How many letters in doubt were recorded sent on the evidence of the server's copy.
    pub async fn confirmed_by_copy_total(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(SUM(confirmed_by_copy), 0) FROM outbox")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// How often a letter was found in doubt and sent again.
    pub async fn in_doubt_count(&self, id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT in_doubt FROM outbox WHERE id = ?")
                .bind(id)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

impl SendConn {
    /// Record, durably, that letter `id` is being handed to the server now. Returns whether it
    /// already was (an earlier attempt's outcome was never recorded: it is in doubt), counting
    /// that in `in_doubt`.
    pub async fn mark_sending(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        use sqlx::Connection;
        sqlx::raw_sql("PRAGMA synchronous = FULL")
            .execute(&mut *self.conn)
            .await?;
        let mut tx = self.conn.begin().await?;
        let doubt = sqlx::query(
            "UPDATE outbox SET in_doubt = in_doubt + 1 WHERE id = ? AND sending_since IS NOT NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        sqlx::query("UPDATE outbox SET sending_since = ? WHERE id = ?")
            .bind(ts(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(doubt)
    }

    /// Write "sent" for letter `id` (with its case's `letter_sent` event) in a transaction that
    /// is returned open: the caller hands the letter over and commits it on the server's `250`
    /// (or rolls it back), or, for a letter the server accepted whose outcome could not be
    /// written then, commits it when it can. The write lock is held meanwhile — the daemon's own passes are
    /// sequential, and another writer (an operator's command) waits its busy timeout.
    pub async fn stage_sent(
        &mut self,
        id: i64,
        event: Option<(i64, &crate::core::case::Event)>,
        now: DateTime<Utc>,
    ) -> Result<Tx<'_>, StoreError> {
        use sqlx::Connection;
        sqlx::raw_sql("PRAGMA synchronous = NORMAL")
            .execute(&mut *self.conn)
            .await?;
        let mut tx = self.conn.begin_with("BEGIN IMMEDIATE").await?;
        Store::mark_sent(&mut tx, id, now).await?;
        if let Some((case_id, e)) = event {
            record_event(&mut tx, case_id, now, "caseclerk", e).await?;
        }
        Ok(tx)
    }

    /// When letter `id`'s intent was recorded, if it is pending with an intent and no outcome.
    pub async fn intent(&mut self, id: i64) -> Result<Option<DateTime<Utc>>, StoreError> {
        let since: Option<String> = sqlx::query_scalar(
            "SELECT sending_since FROM outbox WHERE id = ? AND state = ? AND sending_since IS NOT NULL",
        )
        .bind(id)
        .bind(OutboxState::Pending.as_str())
        .fetch_optional(&mut *self.conn)
        .await?
        .flatten();
        since.map(|s| parse_ts(&s)).transpose()
    }

    /// Record letter `id` sent on the evidence of the server's copy in the sent folder (it was
    /// accepted before the daemon died; it is not sent again): sent at its intent, filed (the
    /// copy is there), `confirmed_by_copy`, with the case's `letter_sent` event — one transaction.
    pub async fn record_confirmed_by_copy(
        &mut self,
        id: i64,
        event: Option<(i64, &crate::core::case::Event)>,
        intent: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        use sqlx::Connection;
        sqlx::raw_sql("PRAGMA synchronous = FULL")
            .execute(&mut *self.conn)
            .await?;
        let mut tx = self.conn.begin().await?;
        sqlx::query(
            "UPDATE outbox SET state = ?, sent_at = ?, attempts = attempts + 1, last_error = NULL, \
             sending_since = NULL, filed_at = ?, confirmed_by_copy = 1 WHERE id = ?",
        )
        .bind(OutboxState::Sent.as_str())
        .bind(ts(intent))
        .bind(ts(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some((case_id, e)) = event {
            record_event(&mut tx, case_id, now, "caseclerk", e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Clear letter `id`'s intent without an outcome (our login was refused: nothing was sent).
    pub async fn clear_sending(&mut self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET sending_since = NULL WHERE id = ?")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// A transaction on this connection (an outcome recorded with other writes).
    pub async fn begin(&mut self) -> Result<Tx<'_>, StoreError> {
        use sqlx::Connection;
        Ok(self.conn.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// After the pass: checkpoint what the WAL holds if no reader is in the way (outside any
    /// send), then close the connection.
    pub async fn finish(mut self) {
        let _ = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut *self.conn)
            .await;
    }
}

/// Which table a [`ContentRow`] is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Message,
    Letter,
}

/// One row that still holds content, for the retention rules ([`Store::each_content`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRow {
    pub id: i64,
    pub case_id: Option<i64>,
    /// `messages.state` or `outbox.state`.
    pub state: String,
    /// A message: when it reached the mailbox. A letter: when it was sent, else queued.
    pub at: DateTime<Utc>,
    pub bytes: i64,
    /// A letter: nothing left to file in the sent folder (filed there, or never sent).
    pub filed: bool,
}

/// What an erasure did to the file ([`Store::reclaim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reclaimed {
    /// Free pages given back to the file system.
    pub pages: i64,
    /// The WAL could not be emptied (a reader was in the way): the next erasure tries again.
    pub wal_busy: bool,
}

// ---- retention (issue 14): what holds content, erasing it, and giving the pages back ----------
impl Store {
    /// A database not yet in incremental auto-vacuum (a new one, or one made before this version)
    /// is converted once, when opened: `PRAGMA auto_vacuum = INCREMENTAL; VACUUM` rewrites the
    /// file with the setting; later opens find it set and do nothing. The one-time rewrite needs
    /// free space the size of the database and holds the write lock while it runs (seconds for a
    /// typical partnership's file; a new database is a few pages).
    async fn ensure_incremental(&self) -> Result<(), StoreError> {
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&self.pool)
            .await?;
        if mode != 2 {
            let mut conn = self.pool.acquire().await?;
            sqlx::raw_sql("PRAGMA auto_vacuum = INCREMENTAL; VACUUM")
                .execute(&mut *conn)
                .await?;
            tracing::info!(
                from = mode,
                "database converted to incremental auto-vacuum (once)"
            );
        }
        Ok(())
    }

    /// Remove a `meta` value (nothing when it is not there).
    pub async fn clear_meta(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query(META_CLEAR)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Set a value in `meta`.
    pub async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(META_SET)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every stored message and letter that still holds content: ids, dates and sizes, never
    /// the content.
    pub async fn contents(&self) -> Result<(Vec<ContentRow>, Vec<ContentRow>), StoreError> {
        let (mut messages, mut letters) = (Vec::new(), Vec::new());
        self.each_content(|kind, row| match kind {
            Content::Message => messages.push(row),
            Content::Letter => letters.push(row),
        })
        .await?;
        Ok((messages, letters))
    }

    /// Every message, then every letter, that still holds content, streamed to `each` in id
    /// order (never the whole table in memory: retention reads them all once a day).
    pub async fn each_content(
        &self,
        mut each: impl FnMut(Content, ContentRow),
    ) -> Result<(), StoreError> {
        use futures::TryStreamExt;
        const MESSAGES: &str = "SELECT id, case_id, state, internal_date AS at, size AS bytes, \
             0 AS filed FROM messages WHERE erased_at IS NULL ORDER BY id";
        const LETTERS: &str = "SELECT id, case_id, state, COALESCE(sent_at, queued_at) AS at, \
             COALESCE(size, LENGTH(raw)) AS bytes, \
             CASE WHEN filed_at IS NULL AND sent_at IS NOT NULL THEN 0 ELSE 1 END AS filed \
             FROM outbox WHERE erased_at IS NULL ORDER BY id";
        for (kind, sql) in [(Content::Message, MESSAGES), (Content::Letter, LETTERS)] {
            let mut rows = sqlx::query(sql).fetch(&self.pool);
            while let Some(r) = rows.try_next().await? {
                let row = ContentRow {
                    id: r.try_get("id")?,
                    case_id: r.try_get("case_id")?,
                    state: r.try_get("state")?,
                    at: parse_ts(&r.try_get::<String, _>("at")?)?,
                    bytes: r.try_get::<Option<i64>, _>("bytes")?.unwrap_or(0),
                    filed: r.try_get::<i64, _>("filed")? != 0,
                };
                each(kind, row);
            }
        }
        Ok(())
    }

    /// The events retention reads (closures, reopenings, holds), oldest first, with their case.
    pub async fn retention_events(&self) -> Result<Vec<(i64, EventRow)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, case_id, at, kind, actor, data FROM events \
             WHERE kind IN ('status_changed', 'hold_placed', 'hold_released') ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("case_id")?, event_row(r)?)))
            .collect()
    }

    /// Erase a message's content: its raw bytes (its skeleton, and each of its attached files
    /// that no other message or letter still uses) and its verdict. Returns how many bytes it
    /// held (as fetched), `None` if it held none any more (or is not yet read).
    pub async fn erase_message(
        tx: &mut Tx<'_>,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        // The size is read with the erasure's own guard (never a message not yet read, never
        // twice), so a row that may not be erased is neither measured nor touched.
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT size, body_sha256 FROM messages \
             WHERE id = ? AND erased_at IS NULL AND state <> 'new'",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        let bytes = row.as_ref().map(|(size, _)| *size);
        if let Some((_, mut print)) = row {
            // Stored without its fingerprint (it has a Message-ID: `Ingest::store_batch`): taken
            // now, from the bytes about to go, so a later delivery of the same message is still
            // known. Bytes that cannot be read back leave it unknown; the erasure goes ahead.
            if print.is_empty()
                && let Some(p) = message_fingerprint(tx, id).await?
            {
                print = p;
            }
            sqlx::query(
                "UPDATE messages SET verdict = NULL, erased_at = ?, body_sha256 = ? WHERE id = ?",
            )
            .bind(ts(now))
            .bind(&print)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            // Its bytes are in a row of their own (migration 15), emptied in the same transaction.
            sqlx::query("UPDATE message_bytes SET raw = ?, packing = NULL WHERE message_id = ?")
                .bind(Vec::<u8>::new())
                .bind(id)
                .execute(&mut **tx)
                .await?;
            blobs::release(tx, blobs::Owner::Message, id).await?;
        }
        Ok(bytes)
    }

    /// Erase a letter's rendered bytes (its skeleton, and each of its attached files that no
    /// other letter or message still uses) and the server's last answer about it. Returns how
    /// many bytes it held (as sent), `None` if none any more. A pending letter is never touched.
    pub async fn erase_letter(
        tx: &mut Tx<'_>,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        // The size is read with the erasure's own guard, so a row that may not be erased is
        // neither measured nor touched.
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT COALESCE(size, LENGTH(raw)) FROM outbox \
             WHERE id = ? AND erased_at IS NULL AND state <> 'pending'",
        )
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        if bytes.is_some() {
            sqlx::query(
                "UPDATE outbox SET raw = ?, packing = NULL, last_error = NULL, erased_at = ? \
                 WHERE id = ?",
            )
            .bind(Vec::<u8>::new())
            .bind(ts(now))
            .bind(id)
            .execute(&mut **tx)
            .await?;
            blobs::release(tx, blobs::Owner::Letter, id).await?;
        }
        Ok(bytes)
    }

    /// Record an erasure of case-less content in the append-only `erasures` table.
    pub async fn record_erasure(
        tx: &mut Tx<'_>,
        at: DateTime<Utc>,
        rule: &str,
        class: &str,
        count: i64,
        bytes: i64,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO erasures (at, rule, class, count, bytes, case_id) \
             VALUES (?, ?, ?, ?, ?, NULL) RETURNING id",
        )
        .bind(ts(at))
        .bind(rule)
        .bind(class)
        .bind(count)
        .bind(bytes)
        .fetch_one(&mut **tx)
        .await?)
    }

    /// Delete the web workspace's sign-in records made before `before` (retention,
    /// [`crate::shell::retention`]): how many, and the bytes their text held.
    pub async fn erase_signins_before(
        tx: &mut Tx<'_>,
        before: DateTime<Utc>,
    ) -> Result<(i64, i64), StoreError> {
        let (count, bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(at) + LENGTH(outcome) + LENGTH(remote)), 0) \
             FROM web_signins WHERE at < ?",
        )
        .bind(ts(before))
        .fetch_one(&mut **tx)
        .await?;
        if count > 0 {
            sqlx::query("DELETE FROM web_signins WHERE at < ?")
                .bind(ts(before))
                .execute(&mut **tx)
                .await?;
        }
        Ok((count, bytes))
    }

    /// Delete the record of reads in the web workspace made before `before` (migration 19): how
    /// many.
    pub async fn erase_reads_before(
        tx: &mut Tx<'_>,
        before: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query("DELETE FROM web_reads WHERE at < ?")
            .bind(ts(before))
            .execute(&mut **tx)
            .await?
            .rows_affected() as i64)
    }

    /// Delete the web workspace's sessions over before `before` (ended, or last used then: a
    /// session lives 10 hours at most): how many.
    pub async fn erase_sessions_before(
        tx: &mut Tx<'_>,
        before: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let done =
            sqlx::query("DELETE FROM web_sessions WHERE COALESCE(ended_at, last_seen_at) < ?")
                .bind(ts(before))
                .execute(&mut **tx)
                .await?;
        Ok(i64::try_from(done.rows_affected()).unwrap_or(i64::MAX))
    }

    /// Every recorded case-less erasure, oldest first: (at, rule, class, count, bytes).
    pub async fn erasures(&self) -> Result<Vec<(String, String, String, i64, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT at, rule, class, count, bytes FROM erasures ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// After an erasure: give the freed pages back to the file system (`incremental_vacuum`;
    /// secure_delete has already zeroed them), then copy the WAL into the file and empty it
    /// (`wal_checkpoint(TRUNCATE)`), so no earlier page image of the content stays in `-wal`.
    pub async fn reclaim(&self) -> Result<Reclaimed, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut *conn)
            .await?;
        sqlx::raw_sql("PRAGMA incremental_vacuum")
            .execute(&mut *conn)
            .await?;
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut *conn)
            .await?;
        Ok(Reclaimed {
            pages: free,
            wal_busy: busy != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity;

    #[tokio::test]
    async fn a_database_in_a_new_directory_is_made_in_one_only_its_owner_may_enter() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("caseclerk-newdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let db = root.join("state").join("caseclerk.db");
        Store::open(&db).await.unwrap();
        for dir in [root.clone(), root.join("state")] {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_instant_in_the_stored_shape_reads_as_the_full_parser_reads_it_and_anything_else_falls_back_or_fails()
     {
        for s in [
            "2026-12-22T09:00:00.000000Z",
            "2027-03-28T00:59:59.999999Z",
            "2028-02-29T23:30:00.123456Z",
            "1999-01-01T00:00:00.000001Z",
        ] {
            let full = DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            assert_eq!(fixed_ts(s), Some(full), "{s}");
            assert_eq!(parse_ts(s).unwrap(), full);
            assert_eq!(ts(full), s);
        }
        // Other shapes: read by the full parser, or refused.
        assert_eq!(
            parse_ts("2026-12-22T09:00:00+00:00").unwrap(),
            parse_ts("2026-12-22T09:00:00.000000Z").unwrap()
        );
        assert_eq!(fixed_ts("2026-12-22T09:00:00Z"), None);
        assert_eq!(fixed_ts("2026-12-22 09:00:00.000000Z"), None);
        for bad in [
            "2026-02-30T09:00:00.000000Z",
            "2026-12-22T24:00:00.000000Z",
            "2026-12-22T09:0a:00.000000Z",
            "",
        ] {
            assert_eq!(fixed_ts(bad), None, "{bad}");
            assert!(parse_ts(bad).is_err(), "{bad}");
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn msg(uid: u32, key: &str, body: &str) -> NewMessage {
        NewMessage {
            dedupe_key: key.into(),
            fingerprint: Some(body.into()),
            uid,
            internal_date: t("2026-12-22T09:00:00Z"),
            raw: format!("Subject: x\r\n\r\n{body}").into_bytes(),
        }
    }

    #[tokio::test]
    async fn decisions_commit_without_waiting_for_the_disk_and_that_setting_never_reaches_the_pool()
    {
        async fn synchronous(conn: &mut sqlx::SqliteConnection) -> i64 {
            sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(conn)
                .await
                .unwrap()
        }
        let dir = std::env::temp_dir().join(format!("caseclerk-decisions-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("c.db")).await.unwrap();
        let mut decisions = store.decision_connection().await.unwrap();
        assert_eq!(synchronous(&mut decisions.conn).await, 1, "NORMAL");
        let tx = decisions.begin().await.unwrap();
        tx.commit().await.unwrap();
        drop(decisions);
        // Every connection the pool can hand out waits for the disk (FULL), the one the
        // decisions used included: it was closed, not handed back.
        let mut held = Vec::new();
        for _ in 0..POOL_CONNECTIONS {
            let mut conn = store.pool.acquire().await.unwrap();
            assert_eq!(synchronous(&mut conn).await, 2, "FULL");
            held.push(conn);
        }
        drop(held);
        store.pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every transaction that writes — the pool's ([`Store::begin`]), the engine's
    /// ([`DecisionConn::begin`]) and the ingest's ([`Ingest::store_batch`]) — holds the write
    /// lock from its start: another writer trying meanwhile is told to wait (here, with no
    /// patience, refused), and the transaction's own write after its read is never refused
    /// because someone else committed between the two.
    #[tokio::test]
    async fn a_transaction_that_writes_holds_the_write_lock_from_its_start() {
        use sqlx::{ConnectOptions, Connection};
        let dir = std::env::temp_dir().join(format!("caseclerk-immediate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("c.db");
        let store = Store::open(&db).await.unwrap();
        // Another process's writer that does not wait.
        let mut other = SqliteConnectOptions::new()
            .filename(&db)
            .busy_timeout(Duration::ZERO)
            .connect()
            .await
            .unwrap();
        async fn write(conn: &mut sqlx::SqliteConnection, key: &str) -> Result<(), sqlx::Error> {
            sqlx::query("INSERT INTO meta (key, value) VALUES (?, 'x')")
                .bind(key)
                .execute(conn)
                .await
                .map(|_| ())
        }
        async fn read(conn: &mut sqlx::SqliteConnection) -> i64 {
            sqlx::query_scalar("SELECT count(*) FROM meta")
                .fetch_one(conn)
                .await
                .unwrap()
        }

        let mut tx = store.begin().await.unwrap();
        read(&mut tx).await;
        assert!(
            write(&mut other, "other-1").await.is_err(),
            "the other writer waits"
        );
        write(&mut tx, "pool")
            .await
            .expect("the pool's write after its read");
        tx.commit().await.unwrap();

        let mut decisions = store.decision_connection().await.unwrap();
        let mut tx = decisions.begin().await.unwrap();
        read(&mut tx).await;
        assert!(
            write(&mut other, "other-2").await.is_err(),
            "the other writer waits"
        );
        write(&mut tx, "engine")
            .await
            .expect("the engine's write after its read");
        tx.commit().await.unwrap();
        drop(decisions);

        // The ingest: its batch's keys are read, then its rows written.
        let mut ingest = store.ingest().await.unwrap();
        let mut tx = ingest.begin().await.unwrap();
        read(&mut tx).await;
        assert!(
            write(&mut other, "other-3").await.is_err(),
            "the other writer waits"
        );
        tx.commit().await.unwrap();
        ingest.finish().await;

        write(&mut other, "other-4").await.expect("and then writes");
        other.close().await.unwrap();
        store.pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The checkpoint after a large fetch runs once the fetch has returned; when it has
    /// finished, the fetched mail is in the database file, not only in its log. A small fetch
    /// leaves it to SQLite's automatic checkpoint.
    #[tokio::test]
    async fn a_large_fetch_is_checkpointed_in_the_background_and_a_small_one_is_left_to_sqlite() {
        let dir = std::env::temp_dir().join(format!("caseclerk-settle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("c.db");
        let store = Store::open(&db).await.unwrap();
        let now = t("2026-12-22T09:00:00Z");
        let messages: Vec<NewMessage> = (0..8_u32)
            .map(|i| {
                // Distinct bytes that neither pack nor compress: 256 KB each, 2 MB in all.
                let body: String = (0..256 * 1024)
                    .map(|k| char::from(b'a' + ((k * 31 + i as usize * 7) % 26) as u8))
                    .collect();
                let raw = format!("Message-ID: <m{i}@x.test>\r\nSubject: m\r\n\r\n{body}\r\n");
                crate::shell::mailbox::new_message(raw.as_bytes(), i + 1, now)
            })
            .collect();
        store
            .store_fetched("INBOX", 1, &messages, 8, now)
            .await
            .unwrap();
        let in_file = || std::fs::metadata(&db).unwrap().len();
        assert!(
            in_file() < 1024 * 1024,
            "the mail is in the log: {}",
            in_file()
        );
        store
            .settle_ingest(1024 * 1024, Settling::default())
            .finished()
            .await;
        assert!(in_file() < 1024 * 1024, "a small fetch: {}", in_file());
        store
            .settle_ingest(8 * 1024 * 1024, Settling::default())
            .finished()
            .await;
        assert!(in_file() > 2 * 1024 * 1024, "checkpointed: {}", in_file());
        store.pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn stored_instants_sort_as_text() {
        assert!(ts(t("2026-12-22T09:00:00Z")) < ts(t("2026-12-22T09:00:00.5Z")));
        assert!(ts(t("2026-12-22T09:00:00.5Z")) < ts(t("2026-12-22T10:00:00Z")));
        assert_eq!(
            parse_ts(&ts(t("2026-03-29T01:30:00Z"))).unwrap(),
            t("2026-03-29T01:30:00Z")
        );
    }

    #[tokio::test]
    async fn a_health_row_keeps_the_last_proof_of_life_and_counts_the_failures_since() {
        let s = Store::open_in_memory().await.unwrap();
        let (first, failed, back) = (
            t("2026-12-22T09:00:00Z"),
            t("2026-12-22T09:02:00Z"),
            t("2026-12-22T09:05:00Z"),
        );
        s.record_mailbox_alive("<imap-watch>", first).await.unwrap();
        for _ in 0..2 {
            s.record_mailbox_error("<imap-watch>", "IMAP NOOP timed out", failed)
                .await
                .unwrap();
        }
        let row = s.mailbox_state("<imap-watch>").await.unwrap().unwrap();
        assert_eq!((row.last_ok_at, row.failures), (Some(first), 2));
        assert_eq!(row.last_error_at, Some(failed));
        s.record_mailbox_alive("<imap-watch>", back).await.unwrap();
        let row = s.mailbox_state("<imap-watch>").await.unwrap().unwrap();
        assert_eq!((row.last_ok_at, row.failures), (Some(back), 0));
        assert_eq!(row.last_error.as_deref(), Some("IMAP NOOP timed out"));
    }

    #[tokio::test]
    async fn a_message_is_stored_once_however_often_it_is_fetched() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        let first = s
            .store_fetched(
                "INBOX",
                7,
                &[msg(1, "mid:a@x", "b1"), msg(2, "mid:b@x", "b2")],
                2,
                now,
            )
            .await
            .unwrap();
        assert_eq!(first, 2);
        // The same UIDs again (a crash before the watermark moved), and a second copy of `a` under a new UID.
        let again = s
            .store_fetched(
                "INBOX",
                7,
                &[
                    msg(1, "mid:a@x", "b1"),
                    msg(2, "mid:b@x", "b2"),
                    msg(3, "mid:a@x", "b1"),
                ],
                3,
                now,
            )
            .await
            .unwrap();
        assert_eq!(again, 0);
        let state = s.mailbox_state("INBOX").await.unwrap().unwrap();
        assert_eq!((state.uidvalidity, state.last_uid), (7, 3));
        assert_eq!(s.pending_ids().await.unwrap().len(), 2);
    }

    /// What the engine may decide while a fetch is still storing ([`Store::pending_sized`] with a
    /// frontier): what arrived up to it, that instant included, oldest first.
    #[tokio::test]
    async fn pending_messages_up_to_a_frontier_include_one_that_arrived_at_it_and_none_after() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T10:00:00Z");
        let at = |uid, key, when| NewMessage {
            internal_date: t(when),
            ..msg(uid, key, key)
        };
        let fetched = [
            at(1, "mid:late@x", "2026-12-22T09:30:00Z"),
            at(2, "mid:early@x", "2026-12-22T08:00:00Z"),
            at(3, "mid:at@x", "2026-12-22T09:00:00Z"),
        ];
        s.store_fetched("INBOX", 7, &fetched, 3, now).await.unwrap();
        let ids = |p: Vec<(i64, u64)>| p.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
        let all = ids(s.pending_sized(None).await.unwrap());
        assert_eq!(all.len(), 3);
        let up_to = ids(s
            .pending_sized(Some(t("2026-12-22T09:00:00Z")))
            .await
            .unwrap());
        // Oldest first: the one at 08:00, then the one at the frontier itself.
        assert_eq!(up_to, vec![all[0], all[1]]);
        let (_, size) = s.pending_sized(None).await.unwrap()[0];
        assert_eq!(size, fetched[1].raw.len() as u64);
    }

    #[tokio::test]
    async fn a_different_message_reusing_a_message_id_is_kept_not_dropped() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        s.store_fetched("INBOX", 7, &[msg(1, "mid:a@x", "b1")], 1, now)
            .await
            .unwrap();
        let n = s
            .store_fetched("INBOX", 7, &[msg(2, "mid:a@x", "other")], 2, now)
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(s.pending_ids().await.unwrap().len(), 2);
    }

    /// Two referrals a portal announced with one Message-ID and one body, and the same messages
    /// delivered again through other servers (with and without a Message-ID): as the mailbox
    /// keys them ([`crate::shell::mailbox::new_message`], [`crate::core::identity`]).
    #[tokio::test]
    async fn different_messages_are_both_kept_and_a_redelivery_is_stored_once_with_or_without_an_id()
     {
        use crate::shell::mailbox::new_message;
        let notice = |date: &str, subject: &str, id: bool| {
            format!(
                "From: Portal <noreply@portal.test>\r\nTo: bsp@bury.test\r\nSubject: {subject}\r\n\
                 Date: {date}\r\n{}\r\n\r\nA new referral has been submitted.\r\n",
                if id {
                    "Message-ID: <notice@portal.test>"
                } else {
                    "X-Mailer: portal"
                }
            )
        };
        let trace = |n: u32| {
            format!(
                "Return-Path: <bounce{n}@portal.test>\r\nDelivered-To: alias{n}@bury.test\r\n\
                 Received: from mx{n}.bury.test; Mon, 7 Sep 2026 09:0{n}:00 +0100\r\n\
                 Authentication-Results: mx{n}.bury.test; dmarc=pass\r\nARC-Seal: i=1; b={n}\r\n\
                 X-MS-Exchange-Organization-Network-Message-Id: {n}\r\n"
            )
        };
        let (first, second) = (
            "Mon, 7 Sep 2026 09:00:00 +0100",
            "Mon, 7 Sep 2026 09:30:00 +0100",
        );
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-09-07T10:00:00Z");
        let mut uid = 0;
        let mut fetch = |raws: Vec<String>| {
            raws.into_iter()
                .map(|r| {
                    uid += 1;
                    new_message(r.as_bytes(), uid, now)
                })
                .collect::<Vec<_>>()
        };
        let batch = fetch(vec![
            format!("{}{}", trace(1), notice(first, "New referral", true)),
            format!("{}{}", trace(1), notice(second, "New referral", true)),
            format!("{}{}", trace(1), notice(first, "New referral", false)),
            format!("{}{}", trace(1), notice(second, "New referral (2)", false)),
        ]);
        let stored = s.store_fetched("INBOX", 7, &batch, 4, now).await.unwrap();
        assert_eq!(stored, 4, "four different messages, none merged");
        let again = fetch(vec![
            format!("{}{}", trace(2), notice(first, "New referral", true)),
            format!("{}{}", trace(3), notice(second, "New referral", true)),
            format!("{}{}", trace(2), notice(first, "New referral", false)),
            format!("{}{}", trace(3), notice(second, "New referral (2)", false)),
        ]);
        let stored = s.store_fetched("INBOX", 7, &again, 8, now).await.unwrap();
        assert_eq!(
            stored, 0,
            "each delivered again through other servers: stored once"
        );
        assert_eq!(s.pending_ids().await.unwrap().len(), 4);
    }

    #[tokio::test]
    async fn a_row_stored_before_fingerprints_still_matches_its_message_by_the_body_hash() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        // What an older caseclerk stored: the body's hash in `body_sha256`.
        let mut old = msg(1, "mid:a@x", "b1");
        old.fingerprint = Some(identity::body_sha256(&old.raw));
        s.store_fetched("INBOX", 7, &[old], 1, now).await.unwrap();
        let n = s
            .store_fetched("INBOX", 8, &[msg(1, "mid:a@x", "b1")], 1, now)
            .await
            .unwrap();
        assert_eq!(
            n, 0,
            "a re-fetch after a UIDVALIDITY change stores nothing twice"
        );

        // Without a Message-ID, an older caseclerk keyed the raw bytes' hash.
        let raw = b"Subject: scan\r\n\r\nscanned document\r\n";
        let mut old = crate::shell::mailbox::new_message(raw, 2, now);
        old.dedupe_key = identity::legacy_key(raw);
        s.store_fetched("INBOX", 7, &[old], 2, now).await.unwrap();
        let again = crate::shell::mailbox::new_message(raw, 2, now);
        assert!(again.dedupe_key.starts_with("content:"));
        let n = s.store_fetched("INBOX", 8, &[again], 2, now).await.unwrap();
        assert_eq!(n, 0, "nor one without a Message-ID");

        // The same with an attached file, which is stored packed (its bytes are put back
        // together to be compared).
        use base64::Engine as _;
        let pdf: Vec<u8> = (0..6_000).map(|k| (k * 7 % 251) as u8).collect();
        let body = base64::engine::general_purpose::STANDARD.encode(&pdf);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let scan = |id: &str| {
            format!(
                "{id}Subject: scan\r\nMIME-Version: 1.0\r\nContent-Type: application/pdf\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                lines.join("\r\n")
            )
            .into_bytes()
        };
        assert!(crate::core::packing::pack(&scan("")).is_some());
        let with_id = scan("Message-ID: <scan@x>\r\n");
        let mut old = crate::shell::mailbox::new_message(&with_id, 3, now);
        old.fingerprint = Some(identity::body_sha256(&with_id));
        s.store_fetched("INBOX", 7, &[old], 3, now).await.unwrap();
        let again = crate::shell::mailbox::new_message(&with_id, 3, now);
        let n = s.store_fetched("INBOX", 8, &[again], 3, now).await.unwrap();
        assert_eq!(n, 0, "a packed message matches by its body's hash");
        let without = scan("");
        let mut old = crate::shell::mailbox::new_message(&without, 4, now);
        old.dedupe_key = identity::legacy_key(&without);
        s.store_fetched("INBOX", 7, &[old], 4, now).await.unwrap();
        let again = crate::shell::mailbox::new_message(&without, 4, now);
        let n = s.store_fetched("INBOX", 8, &[again], 4, now).await.unwrap();
        assert_eq!(n, 0, "and by its raw bytes' hash without a Message-ID");
    }

    #[tokio::test]
    async fn events_stored_before_the_chain_are_hashed_page_by_page_into_one_unbroken_chain() {
        let s = Store::open_in_memory().await.unwrap();
        let reference = open_case_on(&s, "2026-12-22").await;
        let case = s.case_by_ref(&reference).await.unwrap().unwrap();
        // What a database from before the chain holds: events with no hashes, nothing recorded.
        sqlx::query("DROP TRIGGER events_no_update")
            .execute(&s.pool)
            .await
            .unwrap();
        for n in 0..9 {
            sqlx::query(
                "INSERT INTO events (case_id, at, kind, actor, data) VALUES (?, ?, 'note', 'x', ?)",
            )
            .bind(case.id)
            .bind(ts(t("2026-12-22T10:00:00Z")))
            .bind(format!("{{\"n\":{n}}}"))
            .execute(&s.pool)
            .await
            .unwrap();
        }
        sqlx::query("UPDATE events SET prev_hash = NULL, hash = NULL")
            .execute(&s.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM meta WHERE key = ?")
            .bind(CHAIN_META)
            .execute(&s.pool)
            .await
            .unwrap();
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert!(events > 7, "more than two pages of three: {events}");

        s.hash_stored_events(3).await.unwrap();

        let mut v = chain::Verifier::default();
        let found = s.each_chained_event(|link| v.push(link)).await.unwrap();
        if let Err(b) = found {
            panic!(
                "one unbroken chain across the pages, broken at event {}: {}",
                b.event_id, b.why
            );
        }
        assert_eq!(v.count(), events as u64);
        let recorded = s.meta(CHAIN_META).await.unwrap().unwrap();
        assert!(
            recorded.starts_with(&format!("chained; {events} event(s)")),
            "{recorded}"
        );
    }

    /// Open a case with day 0 on `day0` (YYYY-MM-DD) and return its reference.
    async fn open_case_on(s: &Store, day0: &str) -> String {
        let now = t("2026-12-22T09:01:00Z");
        let day0 = NaiveDate::parse_from_str(day0, "%Y-%m-%d").unwrap();
        let mut tx = s.begin().await.unwrap();
        let (_, r) = Store::create_case(&mut tx, "RR", "bury", None, now, day0, None, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        r
    }

    #[tokio::test]
    async fn references_follow_on_after_a_restart_and_start_again_at_one_in_a_new_year() {
        let dir = std::env::temp_dir().join(format!("caseclerk-refs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("caseclerk.db");
        let s = Store::open(&db).await.unwrap();
        assert_eq!(open_case_on(&s, "2026-12-22").await, "RR-2026-0001");
        assert_eq!(open_case_on(&s, "2026-12-23").await, "RR-2026-0002");
        s.close().await;
        let s = Store::open(&db).await.unwrap();
        assert_eq!(
            open_case_on(&s, "2026-12-24").await,
            "RR-2026-0003",
            "after a restart"
        );
        assert_eq!(open_case_on(&s, "2027-01-04").await, "RR-2027-0001");
        assert_eq!(open_case_on(&s, "2027-01-05").await, "RR-2027-0002");
        assert_eq!(
            open_case_on(&s, "2026-12-31").await,
            "RR-2026-0004",
            "a late case of last year"
        );
        s.close().await;
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_database_from_before_the_counter_goes_on_from_its_highest_reference_of_each_year() {
        let s = Store::open_in_memory().await.unwrap();
        // Undo version 7 (and the later ones) and go back to the cases as an older caseclerk
        // left them.
        sqlx::raw_sql(
            "DROP TABLE case_counters; ALTER TABLE outbox DROP COLUMN confirmed_by_copy; \
             DROP TABLE web_second_steps; DROP TABLE web_reads; \
             DROP TABLE web_signins; DROP TABLE web_sessions; DROP TABLE web_users; \
             DROP TABLE letter_blobs; DROP TABLE message_blobs; DROP TABLE blobs; \
             DROP TABLE message_bytes; ALTER TABLE messages ADD COLUMN raw BLOB NOT NULL DEFAULT x''; \
             ALTER TABLE outbox DROP COLUMN packing; \
             ALTER TABLE outbox DROP COLUMN size; \
             ALTER TABLE outbox DROP COLUMN failing_since; \
             DELETE FROM schema_version WHERE version >= 7; \
             INSERT INTO cases (reference, process, status, received_at, day0, opened_at) VALUES \
             ('RR-2026-0009', 'bury', 'open', 'x', '2026-03-01', 'x'), \
             ('RR-2026-9999', 'bury', 'open', 'x', '2026-11-01', 'x'), \
             ('RR-2026-10000', 'bury', 'open', 'x', '2026-11-02', 'x'), \
             ('RR-2025-0042', 'bury', 'closed', 'x', '2025-12-30', 'x'), \
             ('BSCP-RR-2025-0007', 'bury', 'open', 'x', '2025-06-30', 'x');",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        s.migrate().await.unwrap();
        let seeded: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT prefix, year, last FROM case_counters ORDER BY prefix, year")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        assert_eq!(
            seeded,
            [
                ("BSCP-RR".to_string(), "2025".to_string(), 7),
                ("RR".to_string(), "2025".to_string(), 42),
                ("RR".to_string(), "2026".to_string(), 10000),
            ]
        );
        assert_eq!(open_case_on(&s, "2026-12-22").await, "RR-2026-10001");
        assert_eq!(open_case_on(&s, "2025-12-31").await, "RR-2025-0043");
        assert_eq!(open_case_on(&s, "2027-01-04").await, "RR-2027-0001");
    }

    #[tokio::test]
    async fn a_year_without_a_counter_is_counted_from_its_references_and_a_taken_one_is_skipped() {
        let s = Store::open_in_memory().await.unwrap();
        assert_eq!(open_case_on(&s, "2026-12-22").await, "RR-2026-0001");
        assert_eq!(open_case_on(&s, "2026-12-22").await, "RR-2026-0002");
        sqlx::raw_sql(
            "DELETE FROM case_counters; \
             INSERT INTO cases (reference, process, status, received_at, day0, opened_at) VALUES \
             ('RR-2026-0004', 'bury', 'open', 'x', '2026-12-22', 'x'), \
             ('RR-2027-0001', 'bury', 'open', 'x', '2027-01-04', 'x');",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        assert_eq!(open_case_on(&s, "2026-12-23").await, "RR-2026-0005");
        // A counter behind the references (written by other means) never reuses one.
        sqlx::query("UPDATE case_counters SET last = 2 WHERE year = '2026'")
            .execute(&s.pool)
            .await
            .unwrap();
        assert_eq!(open_case_on(&s, "2026-12-23").await, "RR-2026-0003");
        assert_eq!(open_case_on(&s, "2026-12-23").await, "RR-2026-0006");
        assert_eq!(open_case_on(&s, "2027-01-04").await, "RR-2027-0002");
    }

    /// The `i`th of a set of cases of every kind: every third has no events, the others
    /// `i % 4 + 1` of them, numbered; every fifth is closed; every other has an area, every third
    /// a referrer. Returns its id and reference.
    pub(super) async fn case_of_kind(
        tx: &mut Tx<'_>,
        i: usize,
        now: DateTime<Utc>,
    ) -> (i64, String) {
        let day0 = NaiveDate::from_ymd_opt(2026, 12, 22).unwrap();
        let area = i.is_multiple_of(2).then_some("bury");
        let referrer = i.is_multiple_of(3).then_some("ward@hospital.test");
        let (id, reference) = Store::create_case(tx, "RR", "bury", area, now, day0, referrer, now)
            .await
            .unwrap();
        for k in 0..if i.is_multiple_of(3) { 0 } else { i % 4 + 1 } {
            Store::add_event(tx, id, now, "note", "test", &serde_json::json!({"k": k}))
                .await
                .unwrap();
        }
        if i.is_multiple_of(5) {
            Store::set_case_status(tx, id, CaseStatus::Closed)
                .await
                .unwrap();
        }
        (id, reference)
    }

    #[tokio::test]
    async fn cases_and_their_events_are_read_in_pages_each_case_with_only_its_own_events() {
        let s = Store::open_in_memory().await.unwrap();
        let n = usize::try_from(CASES_PER_PAGE).unwrap() + 3;
        let now = t("2026-12-22T09:01:00Z");
        let mut tx = s.begin().await.unwrap();
        for i in 0..n {
            case_of_kind(&mut tx, i, now).await;
        }
        tx.commit().await.unwrap();
        for open_only in [false, true] {
            let all = s.cases_with_events(open_only).await.unwrap();
            let expected: Vec<CaseRow> = if open_only {
                s.open_cases().await.unwrap()
            } else {
                s.cases().await.unwrap()
            };
            assert_eq!(all.len(), expected.len());
            for ((row, events), want) in all.iter().zip(&expected) {
                assert_eq!(row.id, want.id);
                let one_by_one = s.events(row.id).await.unwrap();
                let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
                let want_ids: Vec<i64> = one_by_one.iter().map(|e| e.id).collect();
                assert_eq!(ids, want_ids, "case {}", row.reference);
            }
        }
    }

    #[tokio::test]
    async fn case_references_count_up_within_a_year() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        let day0 = NaiveDate::from_ymd_opt(2026, 12, 22).unwrap();
        let mut refs = Vec::new();
        for _ in 0..3 {
            let mut tx = s.begin().await.unwrap();
            let (_, r) = Store::create_case(&mut tx, "RR", "bury", None, now, day0, None, now)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            refs.push(r);
        }
        let mut tx = s.begin().await.unwrap();
        let next_year = NaiveDate::from_ymd_opt(2027, 1, 4).unwrap();
        let (_, r) = Store::create_case(&mut tx, "RR", "bury", None, now, next_year, None, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        refs.push(r);
        assert_eq!(
            refs,
            [
                "RR-2026-0001",
                "RR-2026-0002",
                "RR-2026-0003",
                "RR-2027-0001"
            ]
        );
    }

    #[tokio::test]
    async fn a_letter_is_decided_once_per_key() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        let letter = NewLetter {
            dedupe_key: "RR-2026-0001/acknowledge/a@x.test".into(),
            case_id: None,
            step: "acknowledge".into(),
            recipient: "a@x.test".into(),
            replies_as: "a@x.test".into(),
            message_id: "m1@caseclerk".into(),
            due_at: now,
            envelope_from: "bsp@x.test".into(),
            envelope_to: vec!["a@x.test".into()],
            raw: b"raw".to_vec(),
        };
        let mut tx = s.begin().await.unwrap();
        assert!(
            Store::queue_letter(&mut tx, &letter, now)
                .await
                .unwrap()
                .is_some()
        );
        let again = NewLetter {
            message_id: "m2@caseclerk".into(),
            ..letter.clone()
        };
        assert!(
            Store::queue_letter(&mut tx, &again, now)
                .await
                .unwrap()
                .is_none()
        );
        tx.commit().await.unwrap();
        assert_eq!(s.sendable(now).await.unwrap().len(), 1);
        assert_eq!(s.next_send_at().await.unwrap(), Some(now));
    }

    #[tokio::test]
    async fn due_letters_are_listed_by_id_and_one_no_longer_due_when_its_turn_comes_is_not_loaded()
    {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        let letter = |key: &str, due: DateTime<Utc>| NewLetter {
            dedupe_key: key.into(),
            case_id: None,
            step: "acknowledge".into(),
            recipient: key.into(),
            replies_as: key.into(),
            message_id: format!("{key}@caseclerk"),
            due_at: due,
            envelope_from: "bsp@x.test".into(),
            envelope_to: vec![key.into()],
            raw: key.as_bytes().to_vec(),
        };
        let mut tx = s.begin().await.unwrap();
        let later = Store::queue_letter(&mut tx, &letter("b@x.test", now), now)
            .await
            .unwrap()
            .unwrap();
        let first = Store::queue_letter(
            &mut tx,
            &letter("a@x.test", now - chrono::Duration::hours(1)),
            now,
        )
        .await
        .unwrap()
        .unwrap();
        Store::queue_letter(
            &mut tx,
            &letter("c@x.test", now + chrono::Duration::hours(1)),
            now,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            s.sendable_ids(now).await.unwrap(),
            vec![first, later],
            "by due time"
        );
        let row = s.sendable_letter(first, now).await.unwrap().expect("due");
        assert_eq!(row.raw, b"a@x.test");
        let mut tx = s.begin().await.unwrap();
        Store::mark_sent(&mut tx, later, now).await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            s.sendable_letter(later, now).await.unwrap().is_none(),
            "already sent"
        );
    }

    #[tokio::test]
    async fn the_previous_periodic_letter_is_found_by_step_leaving_out_the_current_one() {
        let s = Store::open_in_memory().await.unwrap();
        let letter = |key: &str, mid: &str| NewLetter {
            dedupe_key: key.into(),
            case_id: None,
            step: "digest".into(),
            recipient: "role:business_unit".into(),
            replies_as: "role:business_unit".into(),
            message_id: mid.into(),
            due_at: t("2026-08-28T07:00:00Z"),
            envelope_from: "bsp@x.test".into(),
            envelope_to: vec!["bu@x.test".into()],
            raw: b"raw".to_vec(),
        };
        let friday = t("2026-08-28T07:00:00Z");
        let tuesday = t("2026-09-01T07:00:00Z");
        let mut tx = s.begin().await.unwrap();
        let id = Store::queue_letter(&mut tx, &letter("digest/2026-08-28", "a@x"), friday)
            .await
            .unwrap()
            .unwrap();
        Store::mark_sent(&mut tx, id, t("2026-08-28T07:00:05Z"))
            .await
            .unwrap();
        Store::queue_letter(&mut tx, &letter("digest/2026-09-01", "b@x"), tuesday)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            s.last_of_step("digest", "digest/2026-09-01", t("2026-09-01T07:30:00Z"))
                .await
                .unwrap(),
            Some(t("2026-08-28T07:00:05Z")),
            "when Friday's was sent"
        );
        assert_eq!(
            s.last_of_step("digest", "digest/2026-08-28", friday)
                .await
                .unwrap(),
            None
        );
        let all = s.letter_summaries(None).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].state, OutboxState::Sent);
        assert_eq!(all[1].sent_at, None);
        // One case's letters only: the digests belong to no case.
        assert!(s.letter_summaries(Some(1)).await.unwrap().is_empty());
    }

    fn refused(opened: Result<Store, StoreError>) -> StoreError {
        match opened {
            Ok(_) => panic!("opened, but should have been refused"),
            Err(e) => e,
        }
    }

    /// A directory holding a migrated database that its writer has closed, as a backup copy is.
    async fn closed_database(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("caseclerk-ro-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = dir.join("caseclerk.db");
        let s = Store::open(&db).await.unwrap();
        s.meta_or_init("install_id", || "cafe".into())
            .await
            .unwrap();
        s.pool.close().await;
        db
    }

    #[tokio::test]
    async fn a_closed_database_is_read_without_writing_a_byte_or_creating_a_file_beside_it() {
        let db = closed_database("closed").await;
        let before = std::fs::read(&db).unwrap();
        let mtime = std::fs::metadata(&db).unwrap().modified().unwrap();
        let s = Store::open_read_only(&db).await.unwrap();
        assert_eq!(s.meta("install_id").await.unwrap().as_deref(), Some("cafe"));
        let cases = s.cases().await.unwrap();
        assert!(cases.is_empty());
        assert!(
            sqlx::query("INSERT INTO meta (key, value) VALUES ('x', 'y')")
                .execute(&s.pool)
                .await
                .is_err(),
            "a read-only store refuses a write"
        );
        s.pool.close().await;
        assert_eq!(std::fs::read(&db).unwrap(), before);
        assert_eq!(std::fs::metadata(&db).unwrap().modified().unwrap(), mtime);
        let dir = db.parent().unwrap();
        let mut beside: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        beside.sort();
        assert_eq!(beside, ["caseclerk.db"], "no -wal, -shm or lock file");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_database_with_an_older_schema_is_refused_read_only_and_not_migrated() {
        let db = closed_database("older").await;
        {
            let s = Store::open(&db).await.unwrap();
            sqlx::query("DELETE FROM schema_version WHERE version > 1")
                .execute(&s.pool)
                .await
                .unwrap();
            s.pool.close().await;
        }
        let e = refused(Store::open_read_only(&db).await);
        assert!(matches!(e, StoreError::OlderSchema { found: 1, .. }), "{e}");
        assert!(e.to_string().contains("not upgraded"), "{e}");
        let s = Store::open_read_only(&db).await.err();
        assert!(s.is_some(), "still schema 1: nothing was migrated");
        std::fs::remove_dir_all(db.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_caseclerk_database_or_is_missing_is_refused_read_only() {
        let db = closed_database("other").await;
        let dir = db.parent().unwrap().to_path_buf();
        let e = refused(Store::open_read_only(&dir.join("missing.db")).await);
        assert!(matches!(e, StoreError::Missing { .. }), "{e}");
        assert!(!dir.join("missing.db").exists(), "not created");
        {
            let s = Store::open(&db).await.unwrap();
            sqlx::query("DROP TABLE schema_version")
                .execute(&s.pool)
                .await
                .unwrap();
            s.pool.close().await;
        }
        let e = refused(Store::open_read_only(&db).await);
        assert!(matches!(e, StoreError::NotCaseclerk { .. }), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A later migration with a `;` inside a string literal and inside a trigger body.
    const TRICKY: &str = "
        -- a comment; with a semicolon
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, touched INTEGER NOT NULL DEFAULT 0);
        INSERT INTO notes (body) VALUES ('first; second');
        CREATE TRIGGER notes_touch AFTER UPDATE OF body ON notes BEGIN
            UPDATE notes SET touched = touched + 1 WHERE id = NEW.id;
            INSERT INTO meta (key, value) VALUES ('touched;' || NEW.id, 'yes; really');
        END;
    ";

    #[tokio::test]
    async fn a_migration_runs_whole_even_with_semicolons_in_strings_and_trigger_bodies() {
        let s = Store::open_in_memory().await.unwrap();
        let next = MIGRATIONS.last().map_or(0, |m| m.0) + 1;
        let both: Vec<(i64, &str)> = MIGRATIONS.iter().copied().chain([(next, TRICKY)]).collect();
        s.apply_migrations(&both).await.unwrap();
        let body: String = sqlx::query_scalar("SELECT body FROM notes")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(body, "first; second");
        sqlx::query("UPDATE notes SET body = 'third'")
            .execute(&s.pool)
            .await
            .unwrap();
        let touched: i64 = sqlx::query_scalar("SELECT touched FROM notes")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(touched, 1, "the trigger ran both of its statements");
        assert_eq!(
            s.meta("touched;1").await.unwrap().as_deref(),
            Some("yes; really")
        );
        // Applied once: running the list again changes nothing.
        s.apply_migrations(&both).await.unwrap();
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_version ORDER BY version")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        let expected: Vec<i64> = both.iter().map(|m| m.0).collect();
        assert_eq!(versions, expected);
    }

    #[tokio::test]
    async fn a_failed_migration_leaves_nothing_behind_and_names_its_version() {
        let s = Store::open_in_memory().await.unwrap();
        let next = MIGRATIONS.last().map_or(0, |m| m.0) + 1;
        let broken: Vec<(i64, &str)> = MIGRATIONS
            .iter()
            .copied()
            .chain([(next, "CREATE TABLE half (id INTEGER); NOT SQL AT ALL;")])
            .collect();
        let err = s.apply_migrations(&broken).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Migrate { version, .. } if version == next),
            "{err}"
        );
        let half: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'half'",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap();
        assert_eq!(half, 0, "the migration's transaction was rolled back");
    }

    #[tokio::test]
    async fn a_database_from_a_newer_caseclerk_is_refused() {
        let s = Store::open_in_memory().await.unwrap();
        sqlx::query("INSERT INTO schema_version (version) VALUES (99)")
            .execute(&s.pool)
            .await
            .unwrap();
        let err = s.migrate().await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::TooNew { found: 99, known } if Some(known) == MIGRATIONS.last().map(|m| m.0)
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unknown_status_or_letter_state_in_the_database_is_a_clear_error_not_a_panic() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:01:00Z");
        let day0 = NaiveDate::from_ymd_opt(2026, 12, 22).unwrap();
        let mut tx = s.begin().await.unwrap();
        let (id, _) = Store::create_case(&mut tx, "RR", "bury", None, now, day0, None, now)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(s.cases().await.unwrap()[0].status, CaseStatus::Open);
        sqlx::query("UPDATE cases SET status = 'archived' WHERE id = ?")
            .bind(id)
            .execute(&s.pool)
            .await
            .unwrap();
        let err = s.cases().await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("cases row 1") && m.contains("`archived`")),
            "{err}"
        );

        let letter = NewLetter {
            dedupe_key: "k".into(),
            case_id: None,
            step: "digest".into(),
            recipient: "role:business_unit".into(),
            replies_as: "role:business_unit".into(),
            message_id: "m@x".into(),
            due_at: now,
            envelope_from: "bsp@x.test".into(),
            envelope_to: vec!["bu@x.test".into()],
            raw: b"raw".to_vec(),
        };
        let mut tx = s.begin().await.unwrap();
        Store::queue_letter(&mut tx, &letter, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            s.letters(None).await.unwrap()[0].state,
            OutboxState::Pending
        );
        sqlx::query("UPDATE outbox SET state = 'queued'")
            .execute(&s.pool)
            .await
            .unwrap();
        assert!(matches!(s.letters(None).await, Err(StoreError::Corrupt(_))));
        assert!(matches!(
            s.letter_summaries(None).await,
            Err(StoreError::Corrupt(_))
        ));
    }
}
