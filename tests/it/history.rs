//! The tamper-evident history, as an operator and as an attacker with the database file see it:
//! every event caseclerk writes is chained to the one before; the database refuses to update or
//! delete an event; `caseclerk verify` passes an intact database (also read-only), and names the
//! first broken link when someone with the file and the `sqlite3` command edits an event, removes
//! one in the middle or cuts off the end; a database from before the chain is chained at open.

use crate::full_reviews::{ICB_REP, LA_REP, POLICE_REP};
use crate::review::Review;
use crate::support::{cli as caseclerk, said};
use caseclerk::shell::store::Store;
use caseclerk::shell::verify::{self, Finding};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `sqlite3 <db> <sql>`, as an attacker with the file would run it.
pub(crate) fn sqlite3(db: &Path, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 command is installed (scripts/install-mailstack.sh)");
    assert!(out.status.success(), "sqlite3: {}", said(&out));
}

/// A review with one case some way along: referral, screening votes, an agency request.
/// A Bury referral screened MEETS (the police named) and its agency round started on day 2.
pub(crate) async fn a_review() -> (Review, String) {
    let mut review = Review::of("bury").await;
    let reference = review.referral_at("2026-08-20 10:00").await;
    for (i, member) in [LA_REP, POLICE_REP, ICB_REP].iter().enumerate() {
        let ask = review.last_to(member, "screening-request");
        let body = if i == 0 {
            "MEETS\nAgencies: police"
        } else {
            "MEETS"
        };
        review.reply(&ask, member, body, "2026-08-20 14:00").await;
    }
    review.at("2026-08-24 10:00").await;
    (review, reference)
}

/// A backup copy of the review's database and a configuration that reads it.
fn copy_of(review: &Review, name: &str) -> (PathBuf, PathBuf) {
    let config = review.engine.cfg.file.clone();
    let dir = config.parent().unwrap().to_path_buf();
    let db = dir.join(format!("{name}.db"));
    let out = caseclerk(&config, &["backup", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", said(&out));
    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    cfg["storage"]["database"] = toml::Value::String(db.display().to_string());
    let other = dir.join(format!("{name}.toml"));
    std::fs::write(&other, toml::to_string(&cfg).unwrap()).unwrap();
    (db, other)
}

async fn connect(db: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(db))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_event_of_a_review_is_chained_and_verify_says_ok_with_the_head_hash() {
    let (review, _) = a_review().await;
    let finding = verify::verify(&review.engine.store).await.unwrap();
    let events = review.engine.store.row_counts().await.unwrap().2;
    let Finding::Intact {
        events: n,
        head: Some((last, hash)),
        heads,
    } = &finding
    else {
        panic!("{finding:?}")
    };
    assert_eq!((*n as i64, *last), (events, events));
    assert_eq!(hash.len(), 64);
    assert!(*heads >= 1, "the daily chain head was recorded");

    // The CLI on a copy says the same, read-only.
    let (db, config) = copy_of(&review, "copy");
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let out = caseclerk(&config, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    assert!(
        said(&out).contains(&format!(
            "OK: the history is intact: {events} event(s) in one chain"
        )) && said(&out).contains(hash.as_str()),
        "{}",
        said(&out)
    );
}

#[tokio::test]
async fn an_event_cannot_be_updated_or_deleted_through_the_database() {
    let (review, _) = a_review().await;
    let (db, _) = copy_of(&review, "locked");
    let mut conn = connect(&db).await;
    let update = sqlx::query("UPDATE events SET data = '{}' WHERE id = 2")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(update.to_string().contains("append-only"), "{update}");
    let delete = sqlx::query("DELETE FROM events WHERE id = 2")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(delete.to_string().contains("append-only"), "{delete}");
    // Nor can a chain head be moved.
    let head = sqlx::query("UPDATE chain_heads SET hash = 'x'")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(head.to_string().contains("append-only"), "{head}");
}

#[tokio::test]
async fn verify_names_an_event_edited_with_sqlite3_and_its_case() {
    let (review, reference) = a_review().await;
    let (db, config) = copy_of(&review, "edited");
    sqlite3(
        &db,
        "DROP TRIGGER events_no_update; \
         UPDATE events SET actor = 'someone else' WHERE id = 3;",
    );
    let out = caseclerk(&config, &["verify"]);
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        said(&out).contains(&format!(
            "BROKEN: event 3 (case {reference}): its content was changed"
        )),
        "{}",
        said(&out)
    );
}

#[tokio::test]
async fn verify_names_the_event_after_one_deleted_in_the_middle() {
    let (review, reference) = a_review().await;
    let (db, config) = copy_of(&review, "deleted");
    sqlite3(
        &db,
        "DROP TRIGGER events_no_delete; DELETE FROM events WHERE id = 4;",
    );
    let out = caseclerk(&config, &["verify"]);
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        said(&out).contains(&format!(
            "BROKEN: event 5 (case {reference}): the event before it (id 4) is missing"
        )),
        "{}",
        said(&out)
    );
}

#[tokio::test]
async fn verify_notices_the_end_of_the_history_cut_off_by_its_recorded_chain_head() {
    let (review, _) = a_review().await;
    let (db, config) = copy_of(&review, "cut");
    let mut conn = connect(&db).await;
    let head: i64 = sqlx::query_scalar("SELECT MAX(event_id) FROM chain_heads")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    // What is left is a whole chain: only the head recorded earlier shows what is gone.
    sqlite3(
        &db,
        &format!("DROP TRIGGER events_no_delete; DELETE FROM events WHERE id >= {head};"),
    );
    let out = caseclerk(&config, &["verify"]);
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        said(&out).contains(&format!("(event {head}, sha256 "))
            && said(&out).contains("the event it anchored is gone"),
        "{}",
        said(&out)
    );
}

#[tokio::test]
async fn a_database_from_before_the_chain_is_chained_once_at_open_in_id_order() {
    let (review, _) = a_review().await;
    let (db, _) = copy_of(&review, "legacy");
    // What a database of schema 4 looks like: no chain columns' values, no triggers.
    sqlite3(
        &db,
        "DROP TRIGGER events_no_update; UPDATE events SET prev_hash = NULL, hash = NULL; \
         DELETE FROM meta WHERE key = 'event_chain';",
    );
    let before = Store::open_read_only(&db).await.unwrap();
    let found = verify::verify(&before).await.unwrap();
    assert!(
        matches!(&found, Finding::Broken(w) if w.contains("event 1 ") && w.contains("no hash")),
        "{found:?}"
    );
    before.close().await;
    // The one-time step runs at the first read-write open (the trigger is back by then).
    sqlite3(
        &db,
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events WHEN NOT (OLD.hash IS NULL \
         AND NEW.hash IS NOT NULL AND NEW.id IS OLD.id AND NEW.case_id IS OLD.case_id AND \
         NEW.at IS OLD.at AND NEW.kind IS OLD.kind AND NEW.actor IS OLD.actor AND NEW.data IS \
         OLD.data) BEGIN SELECT RAISE(ABORT, 'append-only'); END; \
         DROP TRIGGER chain_heads_no_delete; DELETE FROM chain_heads;",
    );
    let store = Store::open(&db).await.unwrap();
    let found = verify::verify(&store).await.unwrap();
    assert!(matches!(found, Finding::Intact { .. }), "{found:?}");
    let recorded = store.meta("event_chain").await.unwrap().unwrap();
    assert!(recorded.contains("were hashed in id order"), "{recorded}");
    // Hashed once: a hashed event can no longer be updated, even to the same hash.
    let mut conn = connect(&db).await;
    let again = sqlx::query("UPDATE events SET hash = hash WHERE id = 1")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("append-only"), "{again}");
    store.close().await;
}

#[tokio::test]
async fn two_writers_appending_at_once_never_fork_the_chain() {
    let (review, _) = a_review().await;
    let (db, _) = copy_of(&review, "busy");
    let (a, b) = (
        Store::open(&db).await.unwrap(),
        Store::open(&db).await.unwrap(),
    );
    let at = review.now();
    let append = |store: Store, who: &'static str| async move {
        for n in 0..20 {
            let mut tx = store.begin().await.unwrap();
            let data = serde_json::json!({ "note": format!("{who} {n}") });
            Store::add_event(&mut tx, 1, at, "note", who, &data)
                .await
                .unwrap();
            Store::commit(tx).await.unwrap();
        }
        store
    };
    let (a, b) = tokio::join!(
        tokio::spawn(append(a, "first")),
        tokio::spawn(append(b, "second"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let found = verify::verify(&a).await.unwrap();
    assert!(
        matches!(&found, Finding::Intact { events, .. } if *events as i64 == a.row_counts().await.unwrap().2),
        "{found:?}"
    );
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_chain_head_is_recorded_once_a_london_day_on_which_the_history_grew() {
    let (review, _) = a_review().await;
    let heads = review.engine.store.chain_heads().await.unwrap();
    let days: Vec<_> = heads
        .iter()
        .map(|h| caseclerk::core::calendar::london_date(h.at))
        .collect();
    let mut distinct = days.clone();
    distinct.dedup();
    assert_eq!(days, distinct, "one a day at most: {heads:#?}");
    // The review ran on 20, 21 (the screening chaser's day, if any) and 24 August.
    assert!(heads.len() >= 2, "{heads:#?}");
    for pair in heads.windows(2) {
        assert!(
            pair[0].event_id < pair[1].event_id,
            "each head is further on"
        );
    }
    for h in &heads {
        let stored = review.engine.store.event_hash(h.event_id).await.unwrap();
        assert_eq!(stored.flatten().as_deref(), Some(h.hash.as_str()));
    }
}

#[tokio::test]
async fn an_event_inserted_around_caseclerk_is_named_and_caseclerk_keeps_working() {
    let (review, reference) = a_review().await;
    let (db, config) = copy_of(&review, "inserted");
    sqlite3(
        &db,
        "INSERT INTO events (case_id, at, kind, actor, data) \
         VALUES (1, '2026-08-24T09:00:00.000000Z', 'note', 'someone', '{}');",
    );
    let store = Store::open(&db).await.unwrap();
    let inserted = store.row_counts().await.unwrap().2;
    let mut tx = store.begin().await.unwrap();
    let data = serde_json::json!({ "note": "after" });
    Store::add_event(&mut tx, 1, review.now(), "note", "test", &data)
        .await
        .expect("letters and events still go on");
    Store::commit(tx).await.unwrap();
    store.close().await;
    let out = caseclerk(&config, &["verify"]);
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        said(&out).contains(&format!(
            "BROKEN: event {inserted} (case {reference}): it has no hash"
        )),
        "{}",
        said(&out)
    );
}

#[tokio::test]
async fn the_digest_s_history_check_catches_a_history_cut_off_together_with_its_recorded_heads() {
    let (review, _) = a_review().await;
    let (db, config) = copy_of(&review, "anchored");
    // The digest carries the head and the command that checks it.
    let out = caseclerk(&config, &["digest", "--now", "2026-08-25T08:00:00Z"]);
    assert!(out.status.success(), "{}", said(&out));
    let digest = said(&out);
    let command = digest
        .split('`')
        .find(|s| s.starts_with("caseclerk verify --head "))
        .unwrap_or_else(|| panic!("no history check in the digest:\n{digest}"))
        .to_string();
    let head = command
        .trim_start_matches("caseclerk verify --head ")
        .to_string();
    let out = caseclerk(&config, &["verify", "--head", &head]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));

    // Someone with the file removes the last events and every recorded head: the chain alone
    // still holds, and only the head kept outside the database shows what is gone.
    let event: i64 = head.split(':').next().unwrap().parse().unwrap();
    sqlite3(
        &db,
        &format!(
            "DROP TRIGGER events_no_delete; DROP TRIGGER chain_heads_no_delete; \
             DELETE FROM events WHERE id >= {}; DELETE FROM chain_heads;",
            event - 1
        ),
    );
    let out = caseclerk(&config, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let out = caseclerk(&config, &["verify", "--head", &head]);
    assert_eq!(out.status.code(), Some(4), "{}", said(&out));
    assert!(
        said(&out).contains(&format!("the head you gave (event {event}, sha256 ")),
        "{}",
        said(&out)
    );

    let out = caseclerk(&config, &["verify", "--head", "12:not-a-hash"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
    assert!(said(&out).contains("EVENT:SHA256"), "{}", said(&out));
}
