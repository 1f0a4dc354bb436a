//! The `blobs` table and its references (`message_blobs`, `letter_blobs`): large attached files
//! of messages and letters, stored once by the SHA-256 of their content (migration 14).
//!
//! Owns the SQL that stores a row's bytes packed ([`crate::core::packing`]: a skeleton in `raw`,
//! the format in `packing`, each blob once), puts the exact bytes back when a row is read, and
//! erases a row's references and then every blob nothing refers to any more.
//!
//! Must not: decide what is taken out of a message (core::packing does, and checks the round
//! trip), or log content or file names.

use super::{IN_LIST, StoreError, Tx, placeholders};
use crate::core::packing::{self, Blob};
use sqlx::Row;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// The most bytes (blobs, or messages' bytes: [`super::ingest`]) bound to one multi-row
/// statement, a larger one alone: SQLite copies what it is given while the statement runs, so
/// this bounds that second copy.
pub(super) const STATEMENT_BYTES: u64 = 2 * 1024 * 1024;

/// Whose bytes: a stored message's or a letter's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Message,
    Letter,
}

impl Owner {
    fn refs(self) -> &'static str {
        match self {
            Owner::Message => "message_blobs",
            Owner::Letter => "letter_blobs",
        }
    }

    fn column(self) -> &'static str {
        match self {
            Owner::Message => "message_id",
            Owner::Letter => "outbox_id",
        }
    }
}

/// A row's bytes as stored: `raw` (the skeleton, or the bytes whole), `packing` (the skeleton's
/// format, `None` for whole bytes) and the blobs the skeleton names.
pub(super) struct Stored<'a> {
    pub raw: Cow<'a, [u8]>,
    pub packing: Option<&'static str>,
    pub blobs: Vec<Blob>,
}

/// How a letter's `raw` is stored: packed when it has an attached file worth storing once (and
/// the packed form gives back exactly `raw`), and the skeleton — or the whole bytes as a
/// one-segment skeleton — compressed too. (A fetched message is packed on the fetch's packing
/// thread, uncompressed: [`packed_or_whole`].)
pub(super) fn prepare(raw: Cow<'_, [u8]>) -> Stored<'_> {
    let (skeleton, blobs) = match packing::pack(&raw) {
        Some(p) => (p.skeleton, p.blobs),
        None => (packing::whole(&raw), Vec::new()),
    };
    match packing::compress(&skeleton) {
        Some(small) => Stored {
            raw: Cow::Owned(small),
            packing: Some(packing::FORMAT_DEFLATE),
            blobs,
        },
        None if blobs.is_empty() => Stored {
            raw,
            packing: None,
            blobs,
        },
        None => Stored {
            raw: Cow::Owned(skeleton),
            packing: Some(packing::FORMAT),
            blobs,
        },
    }
}

/// A fetched message's bytes as stored, from what [`packing::pack`] made of them (done ahead,
/// on the fetch's packing thread): packed when a file was taken out, else whole; never
/// compressed (see [`packing::FORMAT_DEFLATE`]).
pub(super) fn packed_or_whole(raw: Vec<u8>, packed: Option<packing::Packed>) -> Stored<'static> {
    match packed {
        Some(p) => Stored {
            raw: Cow::Owned(p.skeleton),
            packing: Some(packing::FORMAT),
            blobs: p.blobs,
        },
        None => Stored {
            raw: Cow::Owned(raw),
            packing: None,
            blobs: Vec::new(),
        },
    }
}

/// Store `blobs` (each only if no blob with its SHA-256 is stored yet) and record that row `id`
/// uses them — in the caller's transaction, with the row.
pub(super) async fn attach(
    tx: &mut Tx<'_>,
    owner: Owner,
    id: i64,
    blobs: Vec<Blob>,
) -> Result<(), StoreError> {
    attach_many(tx, owner, vec![(id, blobs)]).await
}

/// [`attach`] for many rows at once (a fetched batch's messages): each distinct blob looked up
/// and stored once, in a few multi-row statements.
pub(super) async fn attach_many(
    tx: &mut Tx<'_>,
    owner: Owner,
    rows: Vec<(i64, Vec<Blob>)>,
) -> Result<(), StoreError> {
    let mut links: Vec<(i64, [u8; 32])> = Vec::new();
    let mut distinct: Vec<Blob> = Vec::new();
    let mut seen = HashSet::new();
    for (id, blobs) in rows {
        for b in blobs {
            links.push((id, b.sha256));
            if seen.insert(b.sha256) {
                distinct.push(b);
            }
        }
    }
    if links.is_empty() {
        return Ok(());
    }
    let mut ids: HashMap<[u8; 32], i64> = HashMap::with_capacity(distinct.len());
    for chunk in distinct.chunks(IN_LIST) {
        let sql = format!(
            "SELECT id, sha256 FROM blobs WHERE sha256 IN ({})",
            placeholders(chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in chunk {
            q = q.bind(b.hex());
        }
        for r in q.fetch_all(&mut **tx).await? {
            ids.insert(
                sha_of(&r.try_get::<String, _>("sha256")?)?,
                r.try_get("id")?,
            );
        }
    }
    // The blobs not stored yet, a statement at a time bounded by bytes (a large one alone).
    let missing: Vec<Blob> = distinct
        .into_iter()
        .filter(|b| !ids.contains_key(&b.sha256))
        .collect();
    let sized = missing.into_iter().map(|b| {
        let n = b.data.len() as u64;
        (b, n)
    });
    for chunk in super::batches_by_bytes(sized, IN_LIST, STATEMENT_BYTES) {
        let sql = format!(
            "INSERT INTO blobs (sha256, size, data) VALUES {} RETURNING id, sha256",
            vec!["(?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in chunk {
            q = q.bind(b.hex()).bind(b.data.len() as i64).bind(b.data);
        }
        for r in q.fetch_all(&mut **tx).await? {
            ids.insert(
                sha_of(&r.try_get::<String, _>("sha256")?)?,
                r.try_get("id")?,
            );
        }
    }
    for chunk in links.chunks(IN_LIST) {
        let sql = format!(
            "INSERT INTO {} ({}, blob_id) VALUES {} ON CONFLICT DO NOTHING",
            owner.refs(),
            owner.column(),
            vec!["(?, ?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, sha) in chunk {
            let blob_id = ids.get(sha).ok_or_else(|| {
                StoreError::Corrupt("a blob just stored could not be found again".into())
            })?;
            q = q.bind(*id).bind(*blob_id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A stored blob's key (lowercase hex) as the 32 bytes it names.
fn sha_of(hex_key: &str) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_key, &mut out)
        .map_err(|_| StoreError::Corrupt("a blob's key is not a SHA-256".into()))?;
    Ok(out)
}

/// The exact bytes of row `id`, from what its columns hold (`raw`, `packing`): whole bytes are
/// returned as they are; a skeleton is unpacked with the row's blobs, read in the caller's
/// transaction (so an erasure cannot come between the two reads). A blob missing or altered is
/// [`StoreError::Corrupt`]: the bytes are never given back changed.
pub(super) async fn unpacked(
    tx: &mut Tx<'_>,
    owner: Owner,
    id: i64,
    raw: Vec<u8>,
    packing: Option<String>,
) -> Result<Vec<u8>, StoreError> {
    let skeleton = match form(owner, id, raw, packing.as_deref())? {
        Form::Whole(raw) => return Ok(raw),
        Form::Skeleton(skeleton) => skeleton,
    };
    let files = if packing::blob_refs(&skeleton)
        .map_err(|e| corrupt(owner, id, e))?
        .is_empty()
    {
        Files::new()
    } else {
        of_rows(tx, owner, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default()
    };
    packing::unpack(&skeleton, |sha| file(&files, sha)).map_err(|e| corrupt(owner, id, e))
}

/// Row `id`'s stored bytes cannot be given back: what was wrong, named by the row.
pub(super) fn corrupt(owner: Owner, id: i64, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{} {id}: {e}", owner.refs()))
}

/// A row's bytes as its `raw` and `packing` columns hold them.
pub(crate) enum Form {
    /// The exact bytes.
    Whole(Vec<u8>),
    /// A skeleton ([`packing`], decompressed), naming the row's blobs.
    Skeleton(Vec<u8>),
}

/// What a row's `raw` column holds, by its `packing` column.
pub(super) fn form(
    owner: Owner,
    id: i64,
    raw: Vec<u8>,
    packing: Option<&str>,
) -> Result<Form, StoreError> {
    match packing {
        None => Ok(Form::Whole(raw)),
        Some(packing::FORMAT) => Ok(Form::Skeleton(raw)),
        Some(packing::FORMAT_DEFLATE) => packing::decompress(&raw)
            .map(Form::Skeleton)
            .map_err(|e| corrupt(owner, id, e)),
        Some(other) => Err(corrupt(owner, id, format!("unknown packing `{other}`"))),
    }
}

/// A row's files: each blob's SHA-256 and content.
pub(crate) type Files = Vec<([u8; 32], Vec<u8>)>;

/// The content of file `sha` among a row's files.
pub(super) fn file<'a>(files: &'a [([u8; 32], Vec<u8>)], sha: &[u8; 32]) -> Option<&'a [u8]> {
    files
        .iter()
        .find(|(k, _)| k == sha)
        .map(|(_, d)| d.as_slice())
}

/// The blobs rows `ids` of `owner` refer to, by row (SHA-256 and content), read in `tx`: one
/// query for up to [`IN_LIST`] rows. A blob two of them share is read for each.
pub(super) async fn of_rows(
    tx: &mut Tx<'_>,
    owner: Owner,
    ids: &[i64],
) -> Result<HashMap<i64, Files>, StoreError> {
    let mut out: HashMap<i64, Files> = HashMap::new();
    for chunk in ids.chunks(IN_LIST) {
        let sql = format!(
            "SELECT r.{column} AS owner_id, b.sha256, b.data FROM {refs} r \
             JOIN blobs b ON b.id = r.blob_id WHERE r.{column} IN ({})",
            placeholders(chunk.len()),
            refs = owner.refs(),
            column = owner.column(),
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            out.entry(r.try_get("owner_id")?).or_default().push((
                sha_of(&r.try_get::<String, _>("sha256")?)?,
                r.try_get::<Vec<u8>, _>("data")?,
            ));
        }
    }
    Ok(out)
}

/// Drop row `id`'s references to blobs, then every one of those blobs that nothing refers to any
/// more (its pages are zeroed: secure_delete). In the caller's transaction, with the erasure.
pub(super) async fn release(tx: &mut Tx<'_>, owner: Owner, id: i64) -> Result<(), StoreError> {
    let (refs, column) = (owner.refs(), owner.column());
    let used: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT blob_id FROM {refs} WHERE {column} = ?"
    )))
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {refs} WHERE {column} = ?"
    )))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    for blob in used {
        sqlx::query(
            "DELETE FROM blobs WHERE id = ? \
             AND NOT EXISTS (SELECT 1 FROM message_blobs WHERE blob_id = ?) \
             AND NOT EXISTS (SELECT 1 FROM letter_blobs WHERE blob_id = ?)",
        )
        .bind(blob)
        .bind(blob)
        .bind(blob)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{NewMessage, Store};
    use crate::core::records::NewLetter;
    use base64::Engine as _;
    use chrono::{DateTime, Utc};

    pub(super) fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|k| (k * 7 % 256) as u8).collect()
    }

    /// A referral as a hospital's mail program writes it: the form in 76-character lines.
    pub(super) fn referral(form: &[u8]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(form);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "From: a@hospital.test\r\nTo: bsp@x.test\r\nSubject: Referral\r\nMessage-ID: <r1@hospital.test>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nPlease see the form.\r\n--b\r\nContent-Type: application/pdf\r\n\
             Content-Disposition: attachment; filename=\"form.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {}\r\n--b--\r\n",
            lines.join("\r\n")
        )
        .into_bytes()
    }

    /// A letter carrying the form, composed by lettre as caseclerk's letters are.
    fn letter(form: &[u8], to: &str) -> NewLetter {
        use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
        let raw = lettre::Message::builder()
            .from("bsp@x.test".parse().unwrap())
            .to(to.parse().unwrap())
            .subject("Screening request")
            .message_id(Some(format!("<{to}@caseclerk>")))
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(format!("Dear {to}, please decide.")))
                    .singlepart(Attachment::new("form.pdf".into()).body(
                        form.to_vec(),
                        ContentType::parse("application/pdf").unwrap(),
                    )),
            )
            .unwrap()
            .formatted();
        NewLetter {
            dedupe_key: format!("RR-2026-0001/screening-request/{to}"),
            case_id: None,
            step: "screening-request".into(),
            recipient: to.into(),
            replies_as: to.into(),
            message_id: format!("{to}@caseclerk"),
            due_at: t("2026-12-22T09:00:00Z"),
            envelope_from: "bsp@x.test".into(),
            envelope_to: vec![to.into()],
            raw,
        }
    }

    async fn count(s: &Store, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&s.pool).await.unwrap()
    }

    /// The referral stored (and filed: read), and one letter queued per address in `to`.
    async fn referral_and_letters(
        s: &Store,
        form: &[u8],
        to: &[&str],
    ) -> (i64, Vec<u8>, Vec<(i64, Vec<u8>)>) {
        let now = t("2026-12-22T09:00:00Z");
        let raw = referral(form);
        let m = crate::shell::mailbox::new_message(&raw, 1, now);
        s.store_fetched("INBOX", 1, &[m], 1, now).await.unwrap();
        let id = s.pending_ids().await.unwrap()[0];
        let mut tx = s.begin().await.unwrap();
        Store::file_message(
            &mut tx,
            id,
            "filed",
            "referral",
            &serde_json::json!({}),
            None,
            now,
        )
        .await
        .unwrap();
        let mut letters = Vec::new();
        for addr in to {
            let l = letter(form, addr);
            let lid = Store::queue_letter(&mut tx, &l, now)
                .await
                .unwrap()
                .unwrap();
            letters.push((lid, l.raw));
        }
        tx.commit().await.unwrap();
        (id, raw, letters)
    }

    #[tokio::test]
    async fn a_referrals_file_is_stored_once_for_the_referral_and_every_letter_that_carries_it() {
        let s = Store::open_in_memory().await.unwrap();
        let form = file(40_000);
        let panel = ["la@x.test", "police@x.test", "icb@x.test"];
        let (id, raw, letters) = referral_and_letters(&s, &form, &panel).await;
        assert_eq!(count(&s, "SELECT COUNT(*) FROM blobs").await, 1);
        assert_eq!(
            count(&s, "SELECT SUM(LENGTH(data)) FROM blobs").await,
            form.len() as i64
        );
        assert_eq!(count(&s, "SELECT COUNT(*) FROM letter_blobs").await, 3);
        // What is left in the rows is the mail around the file.
        assert!(count(&s, "SELECT MAX(LENGTH(raw)) FROM message_bytes").await < 1_000);
        assert!(count(&s, "SELECT MAX(LENGTH(raw)) FROM outbox").await < 1_000);
        // Every read gives back the bytes exactly as fetched, and as decided.
        assert_eq!(s.message_raw(id).await.unwrap().unwrap(), raw);
        assert_eq!(s.held_messages(0, &[id]).await.unwrap()[0].raw, raw);
        let now = t("2026-12-22T09:00:00Z");
        for (lid, bytes) in &letters {
            assert_eq!(&s.letter(*lid).await.unwrap().unwrap().raw, bytes);
            assert_eq!(
                &s.sendable_letter(*lid, now).await.unwrap().unwrap().raw,
                bytes
            );
        }
        let all: Vec<Vec<u8>> = s
            .letters(None)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.raw)
            .collect();
        assert_eq!(
            all,
            letters.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>()
        );
        let mut tx = s.begin().await.unwrap();
        Store::mark_sent(&mut tx, letters[0].0, now).await.unwrap();
        tx.commit().await.unwrap();
        let unfiled = s.unfiled_sent(10).await.unwrap();
        assert_eq!(unfiled[0].id, letters[0].0);
        let raw = s.letter(unfiled[0].id).await.unwrap().unwrap().raw;
        assert_eq!(raw, letters[0].1);
    }

    /// A database as caseclerk's schema 14 left it, on one connection made with `options`.
    async fn at_version_14(options: sqlx::sqlite::SqliteConnectOptions) -> Store {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let s = Store {
            pool,
            bulk: None,
            fresh: Default::default(),
        };
        let before: Vec<_> = super::super::MIGRATIONS
            .iter()
            .copied()
            .filter(|(v, _)| *v < 15)
            .collect();
        s.apply_migrations(&before).await.unwrap();
        s
    }

    /// Version 15 moved each message's bytes out of its row; a database from before keeps every
    /// message exactly, whole or packed, read or not yet read.
    #[tokio::test]
    async fn messages_stored_before_version_15_are_read_back_exactly_after_it() {
        use std::str::FromStr;
        let s = at_version_14(
            sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:")
                .unwrap()
                .foreign_keys(true),
        )
        .await;
        // As version 14 stored them: a packed referral not yet read, and a plain note filed.
        let referral = referral(&file(30_000));
        let packed = super::packed_or_whole(referral.clone(), super::packing::pack(&referral));
        assert!(packed.packing.is_some(), "the referral's form is taken out");
        let note = b"From: a@x.test\r\nSubject: note\r\n\r\nA short note.\r\n".to_vec();
        let mut tx = s.begin().await.unwrap();
        for (id, state, raw, packing) in [
            (1_i64, "new", &*packed.raw, packed.packing),
            (2, "filed", note.as_slice(), None),
        ] {
            sqlx::query(
                "INSERT INTO messages (id, dedupe_key, body_sha256, mailbox, uidvalidity, uid, \
                 internal_date, fetched_at, size, raw, packing, state) \
                 VALUES (?, ?, 'x', 'INBOX', 1, ?, '2026-12-22T09:00:00.000000Z', \
                 '2026-12-22T09:00:00.000000Z', 1, ?, ?, ?)",
            )
            .bind(id)
            .bind(format!("mid:{id}"))
            .bind(id)
            .bind(raw)
            .bind(packing)
            .bind(state)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        super::attach(&mut tx, super::Owner::Message, 1, packed.blobs)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        s.migrate().await.unwrap();

        assert_eq!(s.pending_message(1).await.unwrap().unwrap().raw, referral);
        assert_eq!(s.message_raw(2).await.unwrap().unwrap(), note);
        assert_eq!(s.pending_ids().await.unwrap(), [1]);
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('messages')")
                .fetch_all(&s.pool)
                .await
                .unwrap();
        assert!(
            !columns.iter().any(|c| c == "raw" || c == "packing"),
            "{columns:?}"
        );
    }

    /// The upgrade to version 15 copies every message's bytes; the pages they leave and the log
    /// it wrote are given back when the database is opened, not left to the next erasure.
    #[tokio::test]
    async fn the_space_the_upgrade_to_version_15_frees_is_given_back_at_once() {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
        let dir = std::env::temp_dir().join(format!("caseclerk-up15-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("c.db");
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("auto_vacuum", "INCREMENTAL");
        let old = at_version_14(options).await;
        for id in 1..=8_i64 {
            sqlx::query(
                "INSERT INTO messages (id, dedupe_key, body_sha256, mailbox, uidvalidity, uid, \
                 internal_date, fetched_at, size, raw, state) \
                 VALUES (?, ?, 'x', 'INBOX', 1, ?, '2026-12-22T09:00:00.000000Z', \
                 '2026-12-22T09:00:00.000000Z', 1, ?, 'filed')",
            )
            .bind(id)
            .bind(format!("mid:{id}"))
            .bind(id)
            .bind(file(256 * 1024))
            .execute(&old.pool)
            .await
            .unwrap();
        }
        old.pool.close().await;

        let s = Store::open(&db).await.unwrap();
        assert_eq!(count(&s, "PRAGMA freelist_count").await, 0);
        let wal = std::fs::metadata(dir.join("c.db-wal")).map_or(0, |m| m.len());
        assert!(wal < 256 * 1024, "the log is emptied: {wal} bytes");
        assert_eq!(s.message_raw(8).await.unwrap().unwrap(), file(256 * 1024));
        s.pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_file_is_erased_with_the_last_message_or_letter_that_uses_it() {
        let s = Store::open_in_memory().await.unwrap();
        let form = file(30_000);
        let (id, raw, letters) = referral_and_letters(&s, &form, &["la@x.test"]).await;
        let (lid, letter_bytes) = letters[0].clone();
        let now = t("2026-12-22T10:00:00Z");
        let mut tx = s.begin().await.unwrap();
        Store::mark_sent(&mut tx, lid, now).await.unwrap();
        // The message's content goes: the file stays, the letter still carries it.
        let erased = Store::erase_message(&mut tx, id, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(erased, Some(raw.len() as i64));
        assert_eq!(s.message_raw(id).await.unwrap().unwrap(), b"");
        assert_eq!(count(&s, "SELECT COUNT(*) FROM blobs").await, 1);
        assert_eq!(count(&s, "SELECT COUNT(*) FROM message_blobs").await, 0);
        assert_eq!(s.letter(lid).await.unwrap().unwrap().raw, letter_bytes);
        // The letter's goes too: nothing uses the file any more, and it is gone.
        let mut tx = s.begin().await.unwrap();
        let erased = Store::erase_letter(&mut tx, lid, now).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(erased, Some(letter_bytes.len() as i64));
        assert_eq!(count(&s, "SELECT COUNT(*) FROM blobs").await, 0);
        assert_eq!(count(&s, "SELECT COUNT(*) FROM letter_blobs").await, 0);
        assert_eq!(s.letter(lid).await.unwrap().unwrap().raw, b"");
        // Retention's accounting of what each row held is the bytes as fetched and as sent.
        let (messages, letters) = s.contents().await.unwrap();
        assert!(messages.is_empty() && letters.is_empty());
    }

    #[tokio::test]
    async fn retention_counts_a_packed_row_at_its_size_as_fetched_and_as_sent() {
        let s = Store::open_in_memory().await.unwrap();
        let form = file(30_000);
        let (_, raw, letters) = referral_and_letters(&s, &form, &["la@x.test"]).await;
        let (messages, held) = s.contents().await.unwrap();
        assert_eq!(messages[0].bytes, raw.len() as i64);
        assert_eq!(held[0].bytes, letters[0].1.len() as i64);
    }

    #[tokio::test]
    async fn a_stored_file_that_was_altered_is_never_given_back_as_the_message() {
        let s = Store::open_in_memory().await.unwrap();
        let (id, _, letters) = referral_and_letters(&s, &file(20_000), &["la@x.test"]).await;
        sqlx::query("UPDATE blobs SET data = ?")
            .bind(file(20_001))
            .execute(&s.pool)
            .await
            .unwrap();
        assert!(matches!(
            s.message_raw(id).await,
            Err(super::StoreError::Corrupt(_))
        ));
        assert!(matches!(
            s.letter(letters[0].0).await,
            Err(super::StoreError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn a_pending_message_whose_file_was_altered_or_lost_is_never_decided_on() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:00:00Z");
        let raw = referral(&file(20_000));
        let m = crate::shell::mailbox::new_message(&raw, 1, now);
        s.store_fetched("INBOX", 1, &[m], 1, now).await.unwrap();
        let id = s.pending_ids().await.unwrap()[0];
        let read = s.pending_stored(&[id]).await.unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].parse().unwrap().attachments[0].data, file(20_000));
        // Whether the engine's read of the message is refused as corrupt.
        let refused = async || {
            let read = s.pending_stored(&[id]).await.unwrap();
            matches!(read[0].parse(), Err(super::StoreError::Corrupt(_)))
        };
        sqlx::query("UPDATE blobs SET data = ?")
            .bind(file(20_001))
            .execute(&s.pool)
            .await
            .unwrap();
        assert!(refused().await, "an altered file");
        assert!(matches!(
            s.pending_messages(&[id]).await,
            Err(super::StoreError::Corrupt(_))
        ));
        sqlx::query("DELETE FROM message_blobs")
            .execute(&s.pool)
            .await
            .unwrap();
        assert!(refused().await, "a lost file");
    }

    #[tokio::test]
    async fn a_letter_is_stored_compressed_and_sent_exactly_as_decided() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:00:00Z");
        let text = "Please give your screening decision by Friday 27 November 2026.\r\n".repeat(30);
        let mut l = letter(&file(10), "la@x.test");
        l.raw =
            format!("Message-ID: <la@caseclerk>\r\nSubject: Screening\r\n\r\n{text}").into_bytes();
        let mut tx = s.begin().await.unwrap();
        let id = Store::queue_letter(&mut tx, &l, now)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) FROM outbox WHERE packing = 'parts-1+deflate'"
            )
            .await,
            1
        );
        assert!(count(&s, "SELECT LENGTH(raw) FROM outbox").await * 3 < l.raw.len() as i64);
        assert_eq!(
            s.sendable_letter(id, now).await.unwrap().unwrap().raw,
            l.raw
        );
        let (_, letters) = s.contents().await.unwrap();
        assert_eq!(letters[0].bytes, l.raw.len() as i64);
    }

    #[tokio::test]
    async fn a_letter_stored_before_packing_is_read_as_it_was_stored() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:00:00Z");
        let l = letter(&file(5_000), "la@x.test");
        let mut tx = s.begin().await.unwrap();
        let id = Store::queue_letter(&mut tx, &l, now)
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        // As an older caseclerk left it: the bytes whole, no packing, no size.
        sqlx::query("DELETE FROM letter_blobs")
            .execute(&s.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM blobs")
            .execute(&s.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE outbox SET raw = ?, packing = NULL, size = NULL")
            .bind(&l.raw)
            .execute(&s.pool)
            .await
            .unwrap();
        assert_eq!(s.letter(id).await.unwrap().unwrap().raw, l.raw);
        let (_, letters) = s.contents().await.unwrap();
        assert_eq!(letters[0].bytes, l.raw.len() as i64);
    }

    #[tokio::test]
    async fn mail_without_a_large_attached_file_is_stored_whole() {
        let s = Store::open_in_memory().await.unwrap();
        let now = t("2026-12-22T09:00:00Z");
        let raw = referral(&file(500));
        let m: NewMessage = crate::shell::mailbox::new_message(&raw, 1, now);
        s.store_fetched("INBOX", 1, &[m], 1, now).await.unwrap();
        let id = s.pending_ids().await.unwrap()[0];
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) FROM message_bytes WHERE packing IS NULL"
            )
            .await,
            1
        );
        assert_eq!(count(&s, "SELECT COUNT(*) FROM blobs").await, 0);
        assert_eq!(s.pending_message(id).await.unwrap().unwrap().raw, raw);
    }
}

// The engine's deciding loop loads pending messages a batch at a time and files those whose
// reaction is only their filing in one statement: each comes back whole (packed or not) in the
// order asked, one filed meanwhile is left out, and each filing lands on its own row only.
#[cfg(test)]
mod batches {
    use super::super::{Filing, Store};
    use super::tests::{referral, t};

    #[tokio::test]
    async fn a_batch_loads_whole_messages_in_the_order_asked_and_files_each_with_its_own_verdict() {
        let dir = std::env::temp_dir().join(format!("caseclerk-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = Store::open(&dir.join("cc.db")).await.unwrap();
        let now = t("2026-12-22T09:00:00Z");
        let packed = referral(&vec![7u8; 20_000]);
        let mut fetched = Vec::new();
        for uid in 1..=150u32 {
            let raw = if uid % 50 == 0 {
                packed.clone()
            } else {
                format!("From: a{uid}@x.test\r\nMessage-ID: <m{uid}@x.test>\r\nSubject: n{uid}\r\n\r\nbody {uid}\r\n")
                    .into_bytes()
            };
            fetched.push((uid, crate::shell::mailbox::new_message(&raw, uid, now)));
        }
        let batch: Vec<_> = fetched.iter().map(|(_, m)| m.clone()).collect();
        s.store_fetched("INBOX", 1, &batch, 150, now).await.unwrap();
        let ids = s.pending_ids().await.unwrap();
        assert_eq!(
            ids.len(),
            148,
            "three copies of the referral are one message"
        );
        let mut conn = s.decision_connection().await.unwrap();
        // Asked out of order, with one id that is no message: back in the order asked.
        let mut asked: Vec<i64> = ids.iter().rev().copied().collect();
        asked.insert(3, 9_999);
        let loaded = s.pending_messages(&asked).await.unwrap();
        let got: Vec<i64> = loaded.iter().map(|m| m.id).collect();
        let want: Vec<i64> = ids.iter().rev().copied().collect();
        assert_eq!(got, want);
        let whole = loaded.iter().filter(|m| m.raw == packed).count();
        assert_eq!(whole, 1, "the packed referral comes back byte for byte");
        // One is filed by someone else first: the batch's filing leaves it as it is.
        let first = ids[0];
        Store::file_message(
            s.pool().acquire().await.unwrap().as_mut(),
            first,
            "filed",
            "attached_by_hand",
            &serde_json::json!({}),
            None,
            now,
        )
        .await
        .unwrap();
        // File every other one; they are no longer pending, and each row has its own verdict.
        let filings: Vec<Filing> = ids
            .iter()
            .step_by(2)
            .map(|&id| Filing {
                id,
                state: if id % 3 == 0 { "ignored" } else { "triage" },
                rule: "test_rule",
                verdict: serde_json::json!({"id": id}),
            })
            .collect();
        conn.file_messages(&filings, now).await.unwrap();
        let left = s.pending_messages(&ids).await.unwrap();
        let left: Vec<i64> = left.iter().map(|m| m.id).collect();
        let unfiled: Vec<i64> = ids.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(left, unfiled);
        drop(conn);
        for f in &filings {
            if f.id == first {
                let (state, rule): (String, String) =
                    sqlx::query_as("SELECT state, rule FROM messages WHERE id = ?")
                        .bind(f.id)
                        .fetch_one(s.pool())
                        .await
                        .unwrap();
                assert_eq!(
                    (state.as_str(), rule.as_str()),
                    ("filed", "attached_by_hand")
                );
                continue;
            }
            let (state, rule, verdict, processed): (String, String, String, Option<String>) =
                sqlx::query_as(
                    "SELECT state, rule, verdict, processed_at FROM messages WHERE id = ?",
                )
                .bind(f.id)
                .fetch_one(s.pool())
                .await
                .unwrap();
            assert_eq!((state.as_str(), rule.as_str()), (f.state, f.rule));
            assert_eq!(verdict, f.verdict.to_string());
            assert!(processed.is_some());
        }
        s.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
