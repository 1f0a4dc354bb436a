//! Storing fetched mail a batch at a time ([`Store::ingest`], [`Ingest::store_batch`]): the
//! mailbox reader's one write.
//!
//! Owns the packing of a batch's bytes ([`Ingest::prepare`], for a blocking thread, before the
//! batch's transaction: the fetch packs each batch while the one before is being stored; each
//! message is read there too, from the packing, and the readings of the rows stored are handed
//! to [`super::fresh`] once the batch commits, so the engine need not read them back) and the
//! batch's SQL: which of its messages are new (the identity rule's de-duplication, applied to
//! the whole batch against the database and against the batch's own earlier messages, exactly
//! as if they were stored one by one), and the rows — a few
//! multi-row statements a batch instead of four or five statements a message, because every
//! statement through sqlx's SQLite driver is a hand-over to the connection's own thread and back
//! (at 10,000 messages that was most of what storing cost). The batch, its rows and its
//! watermark commit in one transaction.
//!
//! One connection serves a whole fetch, its settings for ingest (`synchronous = NORMAL`, a large
//! automatic-checkpoint threshold) set once when it is taken and put back when it is given back;
//! a connection whose settings could not be put back is closed, never handed out again. While a
//! large fetch is stored, the log is checkpointed in the background on another connection
//! ([`CHECKPOINT_EVERY`]), so what is left for after the fetch is its last few megabytes.
//!
//! Must not: decide anything about the mail, log content or keys (the mailbox logs hashed ids),
//! or hold a batch's bytes twice for longer than the statement that writes them (a reading is
//! the decoded message, held within [`super::fresh`]'s budget).

use super::blobs::{self, STATEMENT_BYTES};
use super::{
    IN_LIST, INGEST_WAL_PAGES, NewMessage, Settling, Store, StoreError, batches_by_bytes,
    placeholders, ts,
};
use crate::core::{identity, intake, packing};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::pool::PoolConnection;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// What [`Ingest::store_batch`] did: how many new messages it stored, and how long packing them
/// took (for `caseclerk bench`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStored {
    pub stored: usize,
    pub packing: Duration,
}

/// A connection taken for storing fetched mail, with ingest's settings; see the module
/// documentation. Give it back with [`Ingest::finish`].
pub struct Ingest {
    conn: Option<PoolConnection<sqlx::Sqlite>>,
    /// Where each committed batch's readings go ([`super::fresh`]).
    store: Store,
    /// Bytes of mail fetched and committed (by the server's sizes, a batch's already-stored
    /// messages included) since the last checkpoint was started.
    unchecked: u64,
    /// The checkpoint started while storing ([`CHECKPOINT_EVERY`]), if one was.
    checkpointing: Settling,
}

/// While a large fetch is stored, the write-ahead log is checkpointed in the background each
/// time this many more bytes of mail have been committed (one checkpoint at a time): the disk
/// copies and syncs the fetch's first batches while the next are packed and stored, and the
/// checkpoint after the fetch ([`Store::settle_ingest`]) has only the last ones left. A fetch of
/// 1,000 messages (30 MB) ended 0.02–0.05 s sooner with it (README, *Session 19*). The same
/// amount as decides whether a fetch is checkpointed after it at all, so a fetch smaller than
/// this (the daemon's every-day fetch) starts none.
const CHECKPOINT_EVERY: u64 = super::CHECKPOINT_BYTES;

impl Store {
    /// A connection for storing fetched mail ([`Ingest::store_batch`]): batches commit without
    /// waiting for the disk and without checkpointing the write-ahead log until it holds
    /// [`INGEST_WAL_PAGES`] pages ([`Store::settle_ingest`] checkpoints after a large fetch).
    ///
    /// Safe because a batch and its watermark commit together: a power cut can only lose both,
    /// and the batch is fetched again. Nothing is ever decided on a batch that could still
    /// vanish: the log is written in order and synced whole, so the first full-sync commit after
    /// it — the engine's filing of the message and its letters, the outbox's intent before a
    /// send — makes the batch durable before, or with, anything decided on it.
    pub async fn ingest(&self) -> Result<Ingest, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let set = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = {INGEST_WAL_PAGES}"
        )))
        .execute(&mut *conn)
        .await;
        if let Err(e) = set {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(Ingest {
            conn: Some(conn),
            store: self.clone(),
            unchecked: 0,
            checkpointing: Settling::default(),
        })
    }
}

/// A fetched batch with each message's bytes packed ([`Ingest::prepare`]), ready to be stored.
pub struct Prepared {
    messages: Vec<Ready>,
    packing: Duration,
}

/// A fetched message ready to be stored: its bytes held once — packed when they could be (the
/// message's own `raw` then let go), else whole.
struct Ready {
    msg: NewMessage,
    size: i64,
    packed: Option<packing::Packed>,
    /// The message read from these bytes, for the engine ([`super::fresh`]).
    read: Option<intake::Message>,
}

impl Ready {
    /// The message's exact bytes: as fetched, or put back together from the packed form (only
    /// the identity rule's comparisons with rows an older caseclerk stored ask for them).
    fn bytes(&self) -> Result<std::borrow::Cow<'_, [u8]>, StoreError> {
        match &self.packed {
            None => Ok(std::borrow::Cow::Borrowed(&self.msg.raw)),
            Some(p) => packing::unpack(&p.skeleton, |sha| p.blob(sha))
                .map(std::borrow::Cow::Owned)
                .map_err(|e| StoreError::Corrupt(format!("a fetched message packed: {e}"))),
        }
    }
}

impl Ingest {
    /// Pack a fetched batch's bytes ([`crate::core::packing`]): the processor's work, for a
    /// blocking thread, done before the batch's transaction — so it neither holds the write lock
    /// nor waits for the batch before it to be stored. Every message is packed, even one the
    /// identity rule will find already stored (a re-delivery or a re-fetch: rare). With `read`,
    /// each message is also read from its packing for the engine ([`super::fresh`]): only when
    /// an engine will decide what is stored (a pass's fetch); a fetch nobody decides reads none.
    pub fn prepare(messages: Vec<NewMessage>, read: bool) -> Prepared {
        let started = std::time::Instant::now();
        let messages = messages
            .into_iter()
            .map(|mut msg| {
                let size = msg.raw.len() as i64;
                let packed = packing::pack(&msg.raw);
                let read = match &packed {
                    // A large message is read back when decided, as before: its reading would
                    // add its files' size again to a burst's peak for little gain.
                    _ if !read || msg.raw.len() > super::fresh::FRESH_MESSAGE => None,
                    Some(p) => intake::parse_fresh(p).ok(),
                    None => Some(intake::parse(&msg.raw)),
                };
                if packed.is_some() {
                    msg.raw = Vec::new();
                }
                Ready {
                    msg,
                    size,
                    packed,
                    read,
                }
            })
            .collect();
        Prepared {
            messages,
            packing: started.elapsed(),
        }
    }

    /// Start packing (and with `read`, reading) a fetched batch ([`Ingest::prepare`]) on a
    /// blocking thread, at once.
    pub fn pack_ahead(messages: Vec<NewMessage>, read: bool) -> PackingAhead {
        PackingAhead(tokio::task::spawn_blocking(move || {
            Ingest::prepare(messages, read)
        }))
    }

    /// Store fetched messages and advance the watermark, in one transaction: either both happen
    /// or neither. Duplicates are skipped: the same folder UID, or the same key with the same
    /// fingerprint (the same message delivered again: [`crate::core::identity`]); a *different*
    /// message reusing a known Message-ID is kept under `mid:<id>#<fingerprint>`. The
    /// `body_sha256` column holds the fingerprint of a message keyed by it (one without a
    /// Message-ID) and is empty for one with a Message-ID: that fingerprint is computed only when
    /// a delivery under the same key is compared with it, from the row's stored bytes, and stored
    /// when the row's content is erased ([`Store::erase_message`]). Hashing every message's body
    /// as it arrived was a tenth of a first run's time, for a comparison that is almost never
    /// made. (Rows stored before fingerprints hold the body's hash, and were keyed
    /// `sha256:<raw hash>` without a Message-ID: both are compared with too, so nothing is stored
    /// twice across the upgrade.) Each message's bytes are let go
    /// once their row is written; their readings are kept for the engine ([`super::fresh`]). The
    /// batch is packed first ([`Ingest::prepare`], on a blocking thread); a fetch packs each batch
    /// while the one before is stored, and calls [`Ingest::store_prepared`].
    pub async fn store_batch(
        &mut self,
        mailbox: &str,
        uidvalidity: u32,
        messages: Vec<NewMessage>,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<BatchStored, StoreError> {
        let prepared = Ingest::pack_ahead(messages, true).finished().await?;
        self.store_prepared(mailbox, uidvalidity, prepared, last_uid, now)
            .await
    }

    /// [`Ingest::store_batch`] of a batch already packed.
    pub async fn store_prepared(
        &mut self,
        mailbox: &str,
        uidvalidity: u32,
        prepared: Prepared,
        last_uid: u32,
        now: DateTime<Utc>,
    ) -> Result<BatchStored, StoreError> {
        let Prepared { messages, packing } = prepared;
        let bytes: u64 = messages.iter().map(|m| m.size.unsigned_abs()).sum();
        let mut tx = self.begin().await?;
        let known = Known::read(&mut tx, (mailbox, uidvalidity), &messages).await?;
        let new = known.new_messages(&messages)?;
        let mut slots: Vec<Option<Ready>> = messages.into_iter().map(Some).collect();
        let mut readings: Vec<(String, DateTime<Utc>, intake::Message)> = Vec::new();
        let rows: Vec<NewRow> = new
            .into_iter()
            .filter_map(|(i, key)| {
                let Ready {
                    msg,
                    size,
                    packed,
                    read,
                } = slots.get_mut(i)?.take()?;
                if let Some(read) = read {
                    readings.push((key.clone(), msg.internal_date, read));
                }
                Some(NewRow {
                    key,
                    // Only a fingerprint given with the message is stored (see `store_batch`).
                    fingerprint: msg.fingerprint.unwrap_or_default(),
                    uid: msg.uid,
                    internal_date: msg.internal_date,
                    size,
                    stored: blobs::packed_or_whole(msg.raw, packed),
                })
            })
            .collect();
        // What was not new is let go before the rows are written.
        drop(slots);
        let ids = insert(&mut tx, mailbox, uidvalidity, rows, now).await?;
        sqlx::query(
            "INSERT INTO mailbox_state (mailbox, uidvalidity, last_uid, last_ok_at, failures) VALUES (?, ?, ?, ?, 0) \
             ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, \
             last_ok_at = excluded.last_ok_at, failures = 0",
        )
        .bind(mailbox)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(last_uid))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.unchecked += bytes;
        self.checkpoint_if_due();
        // Committed: the engine may take these readings instead of reading the rows back. Each
        // arrival as the engine would read it from its row (the stored time's precision).
        let mut fresh = Vec::with_capacity(readings.len());
        for (key, internal_date, read) in readings {
            if let Some(&id) = ids.get(&key) {
                let internal_date = super::parse_ts(&ts(internal_date))?;
                fresh.push((super::Arrival { id, internal_date }, read));
            }
        }
        self.store.keep_fresh(fresh);
        Ok(BatchStored {
            stored: ids.len(),
            packing,
        })
    }

    /// A batch's transaction. It takes the write lock at once: the batch's keys are read before
    /// its rows are written, and the engine may be filing mail meanwhile (see
    /// `DecisionConn::begin`).
    pub(super) async fn begin(&mut self) -> Result<super::Tx<'_>, StoreError> {
        use sqlx::Connection;
        Ok(self.conn()?.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Start a checkpoint in the background once [`CHECKPOINT_EVERY`] bytes have been committed
    /// since the last one started, unless that one is still running.
    fn checkpoint_if_due(&mut self) {
        if self.unchecked < CHECKPOINT_EVERY || self.checkpointing.running() {
            return;
        }
        self.unchecked = 0;
        self.checkpointing = self.store.checkpoint(Settling::default());
    }

    /// Whether the last fetch that read the mail it stored for the engine stopped while it
    /// read ([`Ingest::mark_reading`] left its record).
    pub async fn reading_stopped(&mut self) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let mark: Option<String> = sqlx::query_scalar(super::META_GET)
            .bind(super::FETCH_READING_KEY)
            .fetch_optional(&mut **conn)
            .await?;
        Ok(mark.is_some())
    }

    /// Record that this fetch reads what it stores (`true`), or that a fetch ended (`false`).
    /// Reading is the first time a message's content meets the parser; a message that stops
    /// caseclerk there — before its batch is stored, and before the engine's own guard
    /// ([`crate::core::deciding`]) has a record — would stop every fetch after it, and every
    /// letter behind it. A fetch that finds this record reads nothing: the engine reads what it
    /// stores back under its guard, which sets such a message aside. Written on the ingest
    /// connection without waiting for the disk: it must outlive the process, not the machine.
    pub async fn mark_reading(&mut self, reading: bool) -> Result<(), StoreError> {
        let conn = self.conn()?;
        let q = match reading {
            true => sqlx::query(super::META_SET)
                .bind(super::FETCH_READING_KEY)
                .bind("reading"),
            false => sqlx::query(super::META_CLEAR).bind(super::FETCH_READING_KEY),
        };
        q.execute(&mut **conn).await?;
        Ok(())
    }

    fn conn(&mut self) -> Result<&mut PoolConnection<sqlx::Sqlite>, StoreError> {
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("the ingest connection was given back".into()))
    }

    /// Give the connection back with every other write's settings. Returns the checkpoint started
    /// while storing, if it is still running: [`Store::settle_ingest`] waits for it before its
    /// own (a `PASSIVE` checkpoint that finds another running does nothing).
    pub async fn finish(mut self) -> Settling {
        let running = std::mem::take(&mut self.checkpointing);
        if let Some(mut conn) = self.conn.take() {
            let reset =
                sqlx::raw_sql("PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 1000")
                    .execute(&mut *conn)
                    .await;
            if reset.is_err() {
                conn.close_on_drop();
            }
        }
        running
    }
}

impl Drop for Ingest {
    /// Not given back with [`Ingest::finish`] (an error or a cancelled fetch): closed, so no
    /// other write ever runs with ingest's settings.
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
    }
}

/// A fetched batch being packed on a blocking thread ([`Ingest::pack_ahead`]).
pub struct PackingAhead(tokio::task::JoinHandle<Prepared>);

impl PackingAhead {
    /// The batch packed. An error when packing stopped: it panicked (on bytes nothing else could
    /// read), or the runtime is shutting down; the batch is fetched again.
    pub async fn finished(self) -> Result<Prepared, StoreError> {
        self.0.await.map_err(|_| StoreError::PackingStopped)
    }
}

/// A new message as it is inserted: its final key and its bytes as stored.
struct NewRow {
    key: String,
    fingerprint: String,
    uid: u32,
    internal_date: DateTime<Utc>,
    size: i64,
    stored: blobs::Stored<'static>,
}

/// What the database holds under a batch's keys and UIDs: who holds each key the batch could
/// touch (a stored row's fingerprint, or a message earlier in the batch), which of the batch's
/// messages without a Message-ID an older caseclerk stored under its raw bytes' hash (by the
/// message's place in the batch), which of the batch's UIDs the folder's rows already have, and
/// the batch's fingerprints as far as they are known.
///
/// A message with a Message-ID arrives without its fingerprint (`NewMessage::fingerprint`): it is
/// computed here, from the message's bytes, only when its key is found (a second delivery, or a
/// Message-ID reused), and a stored row without one has it computed from its stored bytes then.
struct Known {
    holders: HashMap<String, Holder>,
    legacy: Vec<bool>,
    uids: HashSet<u32>,
    /// Each of the batch's messages' fingerprint once known: given with it, or computed when a
    /// comparison needed it (never stored: see [`Ingest::store_batch`]).
    prints: Vec<Option<String>>,
}

/// Who holds a key: a stored row (its fingerprint as stored in `body_sha256`, or computed from its
/// bytes when it was stored without one), or the message at this place in the batch.
enum Holder {
    Stored(String),
    Batch(usize),
}

impl Known {
    async fn read(
        tx: &mut super::Tx<'_>,
        (mailbox, uidvalidity): (&str, u32),
        messages: &[Ready],
    ) -> Result<Known, StoreError> {
        let mut uids = HashSet::new();
        for chunk in messages.chunks(IN_LIST) {
            let sql = format!(
                "SELECT uid FROM messages WHERE mailbox = ? AND uidvalidity = ? AND uid IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .bind(mailbox)
                .bind(i64::from(uidvalidity));
            for m in chunk {
                q = q.bind(i64::from(m.msg.uid));
            }
            uids.extend(
                q.fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .filter_map(|u| u32::try_from(u).ok()),
            );
        }
        let mut prints: Vec<Option<String>> =
            messages.iter().map(|m| m.msg.fingerprint.clone()).collect();
        // A message whose UID the folder's rows already have is left out at once
        // (`new_messages`): none of its keys is looked up, nor its fingerprint computed.
        let open = |m: &Ready| !uids.contains(&m.msg.uid);
        let own: Vec<String> = messages
            .iter()
            .filter(|m| open(m))
            .map(|m| m.msg.dedupe_key.clone())
            .collect();
        let mut stored = stored_prints(tx, &own).await?;
        // A message whose key is stored is compared by its fingerprint, computed now; the key it
        // takes if its content differs is looked up too. (A key with `#` is only ever stored
        // beside its own key, and rows are never deleted: no other message's can be stored.)
        let mut reused_keys = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if open(m) && stored.contains_key(&m.msg.dedupe_key) {
                let print = print_of(messages, &mut prints, i)?;
                reused_keys.push(reused(&m.msg.dedupe_key, &print));
            }
        }
        stored.extend(stored_prints(tx, &reused_keys).await?);
        // Stored before identity keys, under the hash of its raw bytes? Asked only of a message
        // keyed by its content whose key is not stored (the hash is of every byte).
        let mut legacy_keys: Vec<(usize, String)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let key = &m.msg.dedupe_key;
            if open(m) && key.starts_with("content:") && !stored.contains_key(key) {
                legacy_keys.push((i, identity::legacy_key(&m.bytes()?)));
            }
        }
        let mut found = HashSet::new();
        for chunk in legacy_keys.chunks(IN_LIST) {
            let sql = format!(
                "SELECT dedupe_key FROM messages WHERE dedupe_key IN ({})",
                placeholders(chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
            for (_, k) in chunk {
                q = q.bind(k);
            }
            found.extend(q.fetch_all(&mut **tx).await?);
        }
        let mut legacy = vec![false; messages.len()];
        for (i, k) in &legacy_keys {
            legacy[*i] = found.contains(k);
        }
        Ok(Known {
            holders: stored
                .into_iter()
                .map(|(k, p)| (k, Holder::Stored(p)))
                .collect(),
            legacy,
            uids,
            prints,
        })
    }

    /// The batch's new messages (by their place in it) with the key each is stored under, in the
    /// batch's order: the rule of [`Ingest::store_batch`] applied message by message, each seeing
    /// the database and the batch's messages before it. `holders` and `uids` mirror, for every
    /// key and UID the batch could touch, what the database holds, and take each message
    /// accepted.
    fn new_messages(mut self, messages: &[Ready]) -> Result<Vec<(usize, String)>, StoreError> {
        let mut new = Vec::with_capacity(messages.len());
        for (i, ready) in messages.iter().enumerate() {
            let m = &ready.msg;
            // A UID the folder's rows already have: its row is left as it is, whatever it holds.
            if self.uids.contains(&m.uid) {
                continue;
            }
            let key = match self.holders.get(&m.dedupe_key) {
                // (Its key not stored when the batch was read: its raw bytes' hash was asked.)
                None if self.legacy.get(i).copied().unwrap_or(false) => continue,
                None => m.dedupe_key.clone(),
                Some(holder) => {
                    let theirs = match holder {
                        Holder::Stored(print) => print.clone(),
                        Holder::Batch(j) => print_of(messages, &mut self.prints, *j)?,
                    };
                    let mine = print_of(messages, &mut self.prints, i)?;
                    // Rows stored before fingerprints hold the body's hash: computed only here.
                    if theirs == mine || theirs == identity::body_sha256(&ready.bytes()?) {
                        continue; // the same message again (a second delivery, or a re-fetch)
                    }
                    reused(&m.dedupe_key, &mine)
                }
            };
            // A key already stored, or taken by the batch: a conflict, as its INSERT would be.
            if self.holders.contains_key(&key) {
                continue;
            }
            self.holders.insert(key.clone(), Holder::Batch(i));
            self.uids.insert(m.uid);
            new.push((i, key));
        }
        Ok(new)
    }
}

/// The fingerprint of the batch's message at `i`: as given, or computed from its bytes (once).
fn print_of(
    messages: &[Ready],
    prints: &mut [Option<String>],
    i: usize,
) -> Result<String, StoreError> {
    if let Some(Some(print)) = prints.get(i) {
        return Ok(print.clone());
    }
    let ready = messages
        .get(i)
        .ok_or_else(|| StoreError::Corrupt("a batch's message out of range".into()))?;
    let print = identity::fingerprint(&ready.bytes()?);
    prints[i] = Some(print.clone());
    Ok(print)
}

/// The fingerprint stored under each of `keys` that is stored. A row stored without one (a
/// message with a Message-ID: see [`Ingest::store_batch`]) has it computed from its stored bytes;
/// if those cannot be read back, its fingerprint is taken as unknown (`""`, which no message
/// has): a message under its key is then kept under a key of its own — stored, never lost, where
/// a row that cannot be read could not tell it apart.
async fn stored_prints(
    tx: &mut super::Tx<'_>,
    keys: &[String],
) -> Result<HashMap<String, String>, StoreError> {
    let mut prints = HashMap::new();
    let mut unknown: Vec<(i64, String)> = Vec::new();
    for chunk in keys.chunks(IN_LIST) {
        let sql = format!(
            "SELECT id, dedupe_key, body_sha256 FROM messages WHERE dedupe_key IN ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for k in chunk {
            q = q.bind(k);
        }
        for r in q.fetch_all(&mut **tx).await? {
            let (key, print): (String, String) =
                (r.try_get("dedupe_key")?, r.try_get("body_sha256")?);
            if print.is_empty() {
                unknown.push((r.try_get("id")?, key.clone()));
            }
            prints.insert(key, print);
        }
    }
    // One that cannot be read back keeps `""`: the delivery is kept under a key of its own.
    for (id, key) in unknown {
        if let Some(print) = super::message_fingerprint(tx, id).await? {
            prints.insert(key, print);
        }
    }
    Ok(prints)
}

/// The key a message is stored under when its own is already stored with other content (a
/// Message-ID reused).
fn reused(key: &str, print: &str) -> String {
    format!("{key}#{print}")
}

/// Insert the new messages' rows, bytes and blobs; the id of each row stored, by its key (a row
/// the database already holds under its key or UID is left as it is, as `ON CONFLICT DO
/// NOTHING` does).
async fn insert(
    tx: &mut super::Tx<'_>,
    mailbox: &str,
    uidvalidity: u32,
    rows: Vec<NewRow>,
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, StoreError> {
    let fetched_at = ts(now);
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(IN_LIST) {
        let sql = format!(
            "INSERT INTO messages (dedupe_key, body_sha256, mailbox, uidvalidity, uid, internal_date, \
             fetched_at, size, state) VALUES {} ON CONFLICT DO NOTHING RETURNING id, dedupe_key",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?, 'new')"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(&r.key)
                .bind(&r.fingerprint)
                .bind(mailbox)
                .bind(i64::from(uidvalidity))
                .bind(i64::from(r.uid))
                .bind(ts(r.internal_date))
                .bind(&fetched_at)
                .bind(r.size);
        }
        for row in q.fetch_all(&mut **tx).await? {
            ids.insert(row.try_get("dedupe_key")?, row.try_get("id")?);
        }
    }
    let mut bytes: Vec<(i64, blobs::Stored<'static>)> = Vec::with_capacity(ids.len());
    let mut owned = Vec::new();
    for r in rows {
        if let Some(id) = ids.get(&r.key) {
            let mut stored = r.stored;
            owned.push((*id, std::mem::take(&mut stored.blobs)));
            bytes.push((*id, stored));
        }
    }
    // Its bytes in a row of their own (migration 15): filing the message later rewrites its
    // small row, never these. A statement at a time, bounded by bytes, each let go once written.
    let sized = bytes.into_iter().map(|(id, s)| {
        let n = s.raw.len() as u64;
        ((id, s), n)
    });
    for chunk in batches_by_bytes(sized, IN_LIST, STATEMENT_BYTES) {
        let sql = format!(
            "INSERT INTO message_bytes (message_id, raw, packing) VALUES {}",
            vec!["(?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, s) in chunk {
            q = q.bind(id).bind(s.raw.into_owned()).bind(s.packing);
        }
        q.execute(&mut **tx).await?;
    }
    // Its attached files stored once (migration 14): the skeleton names them.
    blobs::attach_many(tx, blobs::Owner::Message, owned).await?;
    Ok(ids)
}

/// Storing a batch at once must keep exactly what storing its messages one at a time keeps: the
/// identity rule is applied to the batch in memory, so these tests hold the two together on
/// batches full of repeats (the same message twice, a Message-ID reused for other content, a
/// message without one, UIDs already stored, attached files shared between messages).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::mailbox::new_message;
    use base64::Engine as _;
    use proptest::prelude::*;

    /// A message: which Message-ID (none for 0), which body, which attached file (none for 0).
    type Shape = (u8, u8, u8);

    fn mail((id, body, file): Shape) -> Vec<u8> {
        let id = match id {
            0 => String::new(),
            n => format!("Message-ID: <m{n}@agency.test>\r\n"),
        };
        let attached = match file {
            0 => String::new(),
            n => {
                let data: Vec<u8> = (0..3000)
                    .map(|k| ((k * 7 + usize::from(n)) % 251) as u8)
                    .collect();
                let b64 = base64::engine::general_purpose::STANDARD.encode(data);
                let lines: Vec<&str> = b64
                    .as_bytes()
                    .chunks(76)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect();
                format!(
                    "--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                    lines.join("\r\n")
                )
            }
        };
        format!(
            "From: a@agency.test\r\nTo: bsp@bury.test\r\nSubject: Return\r\n{id}MIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
             body {body}\r\n{attached}--b--\r\n"
        )
        .into_bytes()
    }

    fn batch(shapes: &[(Shape, u32)]) -> Vec<NewMessage> {
        let now = "2026-12-22T09:00:00Z".parse().unwrap();
        shapes
            .iter()
            .map(|(shape, uid)| new_message(&mail(*shape), *uid, now))
            .collect()
    }

    /// Every message row, its bytes as read back, and every blob, in a comparable form.
    async fn contents(s: &Store) -> (Vec<(String, String, i64)>, Vec<Vec<u8>>, Vec<String>) {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT dedupe_key, body_sha256, uid FROM messages ORDER BY uid, dedupe_key",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap();
        let mut bytes = Vec::new();
        for id in s.pending_ids().await.unwrap() {
            bytes.push(s.pending_message(id).await.unwrap().unwrap().raw);
        }
        bytes.sort();
        let blobs: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM blobs ORDER BY sha256")
            .fetch_all(&s.pool)
            .await
            .unwrap();
        (rows, bytes, blobs)
    }

    async fn stored_both_ways(before: Vec<(Shape, u32)>, shapes: Vec<(Shape, u32)>) {
        let now = "2026-12-22T09:01:00Z".parse().unwrap();
        let (whole, one_by_one) = (
            Store::open_in_memory().await.unwrap(),
            Store::open_in_memory().await.unwrap(),
        );
        for s in [&whole, &one_by_one] {
            s.store_batch("INBOX", 7, batch(&before), 1000, now)
                .await
                .unwrap();
        }
        let at_once = whole
            .store_batch("INBOX", 7, batch(&shapes), 2000, now)
            .await
            .unwrap()
            .stored;
        let mut singly = 0;
        for m in batch(&shapes) {
            singly += one_by_one
                .store_batch("INBOX", 7, vec![m], 2000, now)
                .await
                .unwrap()
                .stored;
        }
        assert_eq!(at_once, singly, "as many stored");
        assert_eq!(contents(&whole).await, contents(&one_by_one).await);
        // And what both keep is what the rule keeps with every fingerprint taken up front.
        let mut expected = kept_by_the_rule(&[batch(&before), batch(&shapes)].concat());
        expected.sort();
        let mut held: Vec<String> = sqlx::query_scalar("SELECT dedupe_key FROM messages")
            .fetch_all(&whole.pool)
            .await
            .unwrap();
        held.sort();
        assert_eq!(held, expected, "the keys the identity rule keeps");
    }

    /// The identity rule as [`crate::core::identity`] states it, every message's fingerprint
    /// computed as it arrives (the store computes one only when a comparison needs it): the keys
    /// kept, for messages stored one after another into one folder.
    fn kept_by_the_rule(messages: &[NewMessage]) -> Vec<String> {
        let mut held: HashMap<String, String> = HashMap::new();
        let mut uids = HashSet::new();
        let mut kept = Vec::new();
        for m in messages {
            if uids.contains(&m.uid) {
                continue;
            }
            let print = identity::fingerprint(&m.raw);
            let key = match held.get(&m.dedupe_key) {
                None => m.dedupe_key.clone(),
                Some(p) if *p == print => continue,
                Some(_) => format!("{}#{print}", m.dedupe_key),
            };
            if held.contains_key(&key) {
                continue;
            }
            held.insert(key.clone(), print);
            uids.insert(m.uid);
            kept.push(key);
        }
        kept
    }

    /// A message with a Message-ID is stored without hashing its body; the hash is taken when a
    /// delivery under the same Message-ID is compared with it — from the stored bytes, put back
    /// together when they were stored packed — and kept when the message's content is erased.
    #[tokio::test]
    async fn a_message_is_hashed_only_when_a_delivery_under_its_message_id_is_compared_with_it() {
        let s = Store::open_in_memory().await.unwrap();
        let now = "2026-12-22T09:01:00Z".parse().unwrap();
        let print_of = |key: &'static str| {
            let pool = s.pool.clone();
            async move {
                sqlx::query_scalar::<_, String>(
                    "SELECT body_sha256 FROM messages WHERE dedupe_key = ?",
                )
                .bind(key)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        let id_of = |key: &'static str| {
            let pool = s.pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT id FROM messages WHERE dedupe_key = ?")
                    .bind(key)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        // Message 1 with an attached file (stored packed), message 2 without one.
        let first = batch(&[((1, 1, 1), 1), ((2, 2, 0), 2)]);
        assert!(first.iter().all(|m| m.fingerprint.is_none()));
        s.store_fetched("INBOX", 7, &first, 2, now).await.unwrap();
        assert_eq!(
            print_of("mid:m1@agency.test").await,
            "",
            "not hashed as it arrived"
        );
        // The folder rebuilt (a new UIDVALIDITY): the same two again, and two other messages
        // reusing their Message-IDs.
        let again = batch(&[
            ((1, 1, 1), 1),
            ((2, 2, 0), 2),
            ((1, 3, 2), 3),
            ((2, 4, 0), 4),
        ]);
        let stored = s.store_fetched("INBOX", 8, &again, 4, now).await.unwrap();
        assert_eq!(stored, 2, "the same two are known; the two others are kept");
        let reused = |shape| {
            let raw = mail(shape);
            let id = intake::header_message_id(&raw).unwrap();
            format!("mid:{id}#{}", identity::fingerprint(&raw))
        };
        let mut keys: Vec<String> =
            sqlx::query_scalar("SELECT dedupe_key FROM messages ORDER BY id")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        keys.sort();
        let mut expected = vec![
            "mid:m1@agency.test".to_string(),
            "mid:m2@agency.test".to_string(),
            reused((1, 3, 2)),
            reused((2, 4, 0)),
        ];
        expected.sort();
        assert_eq!(keys, expected);
        // Its content erased, the message is still known by the hash taken from it.
        let id = id_of("mid:m1@agency.test").await;
        sqlx::query("UPDATE messages SET state = 'triage' WHERE id = ?")
            .bind(id)
            .execute(&s.pool)
            .await
            .unwrap();
        let mut tx = s.begin().await.unwrap();
        Store::erase_message(&mut tx, id, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            print_of("mid:m1@agency.test").await,
            identity::fingerprint(&mail((1, 1, 1)))
        );
        let stored = s
            .store_fetched("INBOX", 9, &batch(&[((1, 1, 1), 1)]), 1, now)
            .await
            .unwrap();
        assert_eq!(
            stored, 0,
            "delivered again after its content was erased: not stored"
        );
        // A stored row whose bytes cannot be read back cannot tell a delivery apart: the delivery
        // is kept under a key of its own, and the fetch goes on.
        let id = id_of("mid:m2@agency.test").await;
        sqlx::query("DELETE FROM message_bytes WHERE message_id = ?")
            .bind(id)
            .execute(&s.pool)
            .await
            .unwrap();
        let stored = s
            .store_fetched("INBOX", 10, &batch(&[((2, 2, 0), 1)]), 1, now)
            .await
            .unwrap();
        assert_eq!(stored, 1, "kept, never lost");
    }

    fn at_nine() -> DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-22T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A store in a file of its own (checkpoints need one): the store, its directory (removed by
    /// the test) and the database file.
    async fn on_disk(name: &str) -> (Store, std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("caseclerk-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("c.db");
        (Store::open(&db).await.unwrap(), dir, db)
    }

    /// A batch of `n` messages of 512 KB each that neither pack nor compress, UIDs from `first`.
    fn large_batch(first: u32, n: u32) -> Vec<NewMessage> {
        let now = at_nine();
        (first..first + n)
            .map(|i| {
                let body: String = (0..512 * 1024)
                    .map(|k| char::from(b'a' + ((k * 31 + i as usize * 7) % 26) as u8))
                    .collect();
                let raw = format!("Message-ID: <m{i}@x.test>\r\nSubject: m\r\n\r\n{body}\r\n");
                new_message(raw.as_bytes(), i, now)
            })
            .collect()
    }

    #[tokio::test]
    async fn a_large_fetch_is_checkpointed_while_it_is_stored_and_the_checkpoint_after_it_covers_every_batch()
     {
        let (store, dir, db) = on_disk("ckpt").await;
        let now = at_nine();
        let in_file = || std::fs::metadata(&db).unwrap().len();
        let mut ingest = store.ingest().await.unwrap();
        // 3 MB: less than a checkpoint's worth, so none is started and the mail is in the log.
        ingest
            .store_batch("INBOX", 1, large_batch(1, 6), 6, now)
            .await
            .unwrap();
        assert!(!ingest.checkpointing.running());
        std::mem::take(&mut ingest.checkpointing).finished().await;
        assert!(
            in_file() < 1024 * 1024,
            "nothing checkpointed: {}",
            in_file()
        );
        // 6 MB: one is started, and copies the first batches into the database meanwhile.
        ingest
            .store_batch("INBOX", 1, large_batch(7, 6), 12, now)
            .await
            .unwrap();
        std::mem::take(&mut ingest.checkpointing).finished().await;
        assert!(
            in_file() > 5 * 1024 * 1024,
            "checkpointed while storing: {}",
            in_file()
        );
        // The last batch starts another, still running when the fetch ends; the checkpoint after
        // the fetch waits for it, then takes what it left.
        ingest
            .store_batch("INBOX", 1, large_batch(13, 10), 22, now)
            .await
            .unwrap();
        let running = ingest.finish().await;
        store
            .settle_ingest(11 * 1024 * 1024, running)
            .finished()
            .await;
        assert!(
            in_file() > 11 * 1024 * 1024,
            "every batch checkpointed: {}",
            in_file()
        );
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_checkpoint_after_a_fetch_waits_for_the_one_running_and_takes_what_came_meanwhile()
    {
        let (store, dir, db) = on_disk("ckwait").await;
        let in_file = || std::fs::metadata(&db).unwrap().len();
        // A checkpoint still running when the fetch ends (here a stand-in), during which a last
        // batch of 3 MB is committed (too little to start a checkpoint of its own).
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let late = store.clone();
        let running = Settling(Some(tokio::spawn(async move {
            let _ = wait.await;
            let mut ingest = late.ingest().await.unwrap();
            ingest
                .store_batch("INBOX", 1, large_batch(1, 6), 6, at_nine())
                .await
                .unwrap();
            ingest.finish().await.finished().await;
        })));
        let settling = store.settle_ingest(8 * 1024 * 1024, running);
        go.send(()).unwrap();
        settling.finished().await;
        assert!(
            in_file() > 3 * 1024 * 1024,
            "the last batch is in the database: {}",
            in_file()
        );
        store.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_batch_of_repeats_keeps_what_storing_its_messages_one_at_a_time_keeps() {
        stored_both_ways(
            vec![((1, 1, 0), 1), ((0, 2, 1), 2)],
            vec![
                ((1, 1, 0), 10), // delivered again: skipped
                ((1, 3, 0), 11), // its Message-ID reused for other content: kept under a new key
                ((1, 3, 0), 12), // and that again: skipped
                ((1, 4, 2), 13), // reused once more, another content
                ((0, 2, 1), 14), // no Message-ID, same content as one stored: skipped
                ((0, 5, 1), 15), // no Message-ID, new content, a file already stored
                ((0, 5, 1), 16), // and again in the same batch: skipped
                ((2, 6, 2), 1),  // a UID already stored: left as it is
                ((3, 7, 3), 17), // new, with a new file
                ((4, 8, 3), 18), // new, sharing that file
            ],
        )
        .await;
    }

    fn shapes() -> impl Strategy<Value = Vec<(Shape, u32)>> {
        prop::collection::vec(((0u8..4, 0u8..4, 0u8..3), 1u32..40), 0..16)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_batch_keeps_what_storing_its_messages_one_at_a_time_keeps(
            before in shapes(),
            after in shapes(),
        ) {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(stored_both_ways(before, after));
        }
    }
}
