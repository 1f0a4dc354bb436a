//! A message that stops caseclerk whenever it is decided must not stop everything behind it: a
//! pass that stopped while deciding leaves the batch it held named; the next decides that batch
//! a message at a time, each under its own record; a message whose own record outlived the
//! process (it stopped caseclerk a second time, alone) is set aside for a person, unread, and
//! raised in health — while an error, unlike a crash, never sets a message aside.
//!
//! A crash cannot be asked for on purpose (a message that really crashed caseclerk would be a bug
//! to fix), so the crash is what it leaves behind: the record in the database, exactly as the
//! engine writes it. Errors are real: a trigger refuses one message's filing.

use crate::review::{Review, london};
use crate::support;
use caseclerk::core::deciding::{self, Mark};
use caseclerk::shell::engine::TickReport;

/// A referral from its own hospital address (so no sender's daily cap counts them together).
fn referral(n: usize) -> Vec<u8> {
    String::from_utf8(support::referral(
        &format!("stopped.{n}@hospital.test"),
        "Referral for a rapid review",
    ))
    .unwrap()
    .replace(
        &format!("<{}>", support::REFERRER),
        &format!("<referrer{n}@hospital.test>"),
    )
    .into_bytes()
}

/// A connection of the test's own to the review's database.
async fn connect(r: &Review) -> sqlx::SqlitePool {
    let db = r.engine.cfg.database.clone();
    sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

/// The stored messages' ids, in order of arrival.
async fn ids(pool: &sqlx::SqlitePool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM messages ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn state_of(pool: &sqlx::SqlitePool, id: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT state, rule FROM messages WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn record(pool: &sqlx::SqlitePool) -> Option<String> {
    sqlx::query_scalar("SELECT value FROM meta WHERE key = 'deciding'")
        .fetch_optional(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_message_that_stopped_caseclerk_alone_is_set_aside_unread_and_the_referral_behind_it_is_acknowledged()
 {
    let mut r = Review::of("bury").await;
    r.at("2026-08-20 09:00").await;
    r.stored(&referral(1), "2026-08-20 09:00").await;
    r.stored(&referral(2), "2026-08-20 09:01").await;
    let pool = connect(&r).await;
    let [first, second] = ids(&pool).await[..] else {
        panic!("two messages stored")
    };
    // What a daemon killed while deciding the first message alone leaves behind.
    sqlx::query("INSERT INTO meta (key, value) VALUES ('deciding', ?)")
        .bind(Mark::Alone(first).encode())
        .execute(&pool)
        .await
        .unwrap();

    let opened = r.at("2026-08-20 09:05").await.opened.clone();

    assert_eq!(
        state_of(&pool, first).await,
        ("triage".into(), Some(deciding::SET_ASIDE_RULE.into()))
    );
    let triage = r.engine.store.triage().await.unwrap();
    assert_eq!(triage.len(), 1);
    assert_eq!(triage[0].reasons, [deciding::SET_ASIDE_WHY]);
    assert_eq!(opened.len(), 1, "the referral behind it opened its case");
    assert_eq!(state_of(&pool, second).await.0, "filed");
    assert!(
        !r.sent_to("referrer2@hospital.test").is_empty(),
        "and its referrer was answered"
    );
    assert!(
        r.sent_to("referrer1@hospital.test").is_empty(),
        "the message set aside is never answered by caseclerk"
    );
    assert_eq!(record(&pool).await, None, "the pass ended normally");
    let (text, _) =
        caseclerk::shell::health::check(&r.engine.cfg, &r.engine.store, london("2026-08-20 09:06"))
            .await
            .unwrap();
    assert!(
        text.contains("messages_set_aside") && text.contains(&format!("message {first} ")),
        "{text}"
    );
}

#[tokio::test]
async fn a_pass_stopped_while_deciding_leaves_its_batch_named_and_the_next_decides_it_one_at_a_time_never_setting_one_aside_for_an_error()
 {
    let mut r = Review::of("bury").await;
    r.at("2026-08-20 09:00").await;
    for n in 1..=3 {
        r.stored(&referral(n), &format!("2026-08-20 09:0{n}")).await;
    }
    let pool = connect(&r).await;
    let [a, b, c] = ids(&pool).await[..] else {
        panic!("three messages stored")
    };
    // Every record the engine writes is kept, and the second message's filing is refused.
    for sql in [
        "CREATE TABLE marks (n INTEGER PRIMARY KEY, value TEXT)".to_string(),
        "CREATE TRIGGER log_insert AFTER INSERT ON meta WHEN NEW.key = 'deciding' \
         BEGIN INSERT INTO marks (value) VALUES (NEW.value); END"
            .to_string(),
        "CREATE TRIGGER log_update AFTER UPDATE ON meta WHEN NEW.key = 'deciding' \
         BEGIN INSERT INTO marks (value) VALUES (NEW.value); END"
            .to_string(),
        format!(
            "CREATE TRIGGER refuse BEFORE UPDATE OF state ON messages \
             WHEN NEW.id = {b} AND NEW.state <> 'new' BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    let marks = |pool: sqlx::SqlitePool| async move {
        sqlx::query_scalar::<_, String>("SELECT value FROM marks ORDER BY n")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let now = r.now();

    // The pass fails on the second message: the batch stays named.
    let failed = r.engine.work(now, &mut TickReport::default()).await;
    assert!(failed.is_err());
    assert_eq!(
        record(&pool).await,
        Some(Mark::Batch(vec![a, b, c]).encode())
    );
    assert_eq!(state_of(&pool, a).await.0, "filed");

    // The next decides the rest alone; the error puts the batch record back, never sets aside.
    let failed = r.engine.work(now, &mut TickReport::default()).await;
    assert!(failed.is_err());
    assert_eq!(
        marks(pool.clone()).await[1..],
        [Mark::Alone(b).encode(), Mark::Batch(vec![b]).encode()]
    );
    assert_eq!(state_of(&pool, b).await.0, "new", "an error is not a crash");
    let failed = r.engine.work(now, &mut TickReport::default()).await;
    assert!(failed.is_err(), "still the database's refusal");
    assert_eq!(state_of(&pool, b).await.0, "new", "nor are two errors");

    // Once the fault is gone it is decided, and the record cleared.
    sqlx::query("DROP TRIGGER refuse")
        .execute(&pool)
        .await
        .unwrap();
    let mut report = TickReport::default();
    r.engine.work(now, &mut report).await.unwrap();
    // The error left only the second message named: it goes alone, the third with the rest.
    assert_eq!(
        marks(pool.clone()).await[5..],
        [Mark::Alone(b).encode(), Mark::Batch(vec![c]).encode()]
    );
    assert_eq!(report.opened.len(), 2);
    assert_eq!(record(&pool).await, None);
    assert!(r.engine.store.triage().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_batch_read_ahead_is_named_before_it_is_read_as_reading_can_stop_a_pass_too() {
    let mut r = Review::of("bury").await;
    r.at("2026-08-20 09:00").await;
    // More than one loaded batch (a hundred messages each): plain notes, each for a person.
    for n in 0..101 {
        let raw = format!(
            "From: Someone {n} <someone{n}@example.test>\r\nTo: bsp@bury.test\r\nSubject: A note {n}\r\nMessage-ID: <note.{n}@example.test>\r\n\r\nHello.\r\n"
        );
        r.stored(raw.as_bytes(), "2026-08-20 09:01").await;
    }
    let pool = connect(&r).await;
    let all = ids(&pool).await;
    for sql in [
        "CREATE TABLE marks (n INTEGER PRIMARY KEY, value TEXT)",
        "CREATE TRIGGER log_insert AFTER INSERT ON meta WHEN NEW.key = 'deciding' \
         BEGIN INSERT INTO marks (value) VALUES (NEW.value); END",
        "CREATE TRIGGER log_update AFTER UPDATE ON meta WHEN NEW.key = 'deciding' \
         BEGIN INSERT INTO marks (value) VALUES (NEW.value); END",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    r.at("2026-08-20 09:05").await;
    let marks: Vec<String> = sqlx::query_scalar("SELECT value FROM marks ORDER BY n")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        marks,
        [
            Mark::Batch(all[..100].to_vec()).encode(),
            Mark::Batch(all.clone()).encode()
        ],
        "the first batch before it is read; then it and the next, before the next is read"
    );
    assert_eq!(record(&pool).await, None);
}

#[tokio::test]
async fn the_triage_page_shows_a_message_set_aside_without_reading_it() {
    let mut w = crate::web::Workspace::start().await;
    let raw = b"From: Someone <someone@elsewhere.test>\r\nTo: bsp@bury.test\r\nSubject: The words only a reading shows\r\nMessage-ID: <stopper@elsewhere.test>\r\n\r\nHello.\r\n";
    w.review.stored(raw, "2026-08-20 12:03").await;
    let pool = connect(&w.review).await;
    let id = *ids(&pool).await.last().unwrap();
    sqlx::query("INSERT INTO meta (key, value) VALUES ('deciding', ?)")
        .bind(Mark::Alone(id).encode())
        .execute(&pool)
        .await
        .unwrap();
    w.review.at("2026-08-20 12:04").await;
    assert_eq!(state_of(&pool, id).await.0, "triage");

    let mut c = w.signed_in(crate::web::CLERK).await;
    let page = c.get("/triage").await;
    assert!(
        page.body
            .contains(&format!("Message {id}: set aside unread")),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("The words only a reading shows"),
        "not read to be shown"
    );
    assert!(
        page.body.contains("Our summary of involvement"),
        "the others are"
    );
}

/// The log of every write of the fetch's reading record, kept by a trigger: `+` set, `-` cleared.
async fn log_reading_records(pool: &sqlx::SqlitePool) {
    sqlx::raw_sql(
        "CREATE TABLE reading_log (n INTEGER PRIMARY KEY, what TEXT);
         CREATE TRIGGER reading_set AFTER INSERT ON meta WHEN new.key = 'fetch_reading'
           BEGIN INSERT INTO reading_log (what) VALUES ('+'); END;
         CREATE TRIGGER reading_set_again AFTER UPDATE ON meta WHEN new.key = 'fetch_reading'
           BEGIN INSERT INTO reading_log (what) VALUES ('+'); END;
         CREATE TRIGGER reading_cleared AFTER DELETE ON meta WHEN old.key = 'fetch_reading'
           BEGIN INSERT INTO reading_log (what) VALUES ('-'); END;",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// A daemon's database on a real mail stack, after its first pass, with every write of the
/// fetch's reading record logged ([`log_reading_records`]).
async fn reading_logged() -> (crate::support::Harness, sqlx::SqlitePool) {
    let h = crate::support::Harness::start("bury").await;
    h.tick(None);
    let db = h.dir.join("caseclerk.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    log_reading_records(&pool).await;
    (h, pool)
}

async fn reading_log(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT what FROM reading_log ORDER BY n")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fetch_that_stopped_while_reading_is_followed_by_one_that_stores_unread_for_the_guard() {
    // The fetch reads the mail it stores for the engine: the first time a message's content
    // meets the parser, before its batch is stored and before the engine's own record exists. A
    // message that stops caseclerk there would stop every fetch after it, so a fetch that reads
    // says so first, and the next after a stop reads nothing: the engine reads what it stored
    // back, under its guard (the tests above), which sets such a message aside.
    use crate::support::{REFERRER, SHARED};
    let (h, pool) = reading_logged().await;

    // An ordinary pass that fetches mail: the record is set before reading, cleared after.
    h.deliver(REFERRER, SHARED, &referral(1)).await;
    h.tick(None);
    assert_eq!(reading_log(&pool).await, ["+", "-"]);

    // What a pass killed while its fetch read leaves behind.
    sqlx::query("INSERT INTO meta (key, value) VALUES ('fetch_reading', 'reading')")
        .execute(&pool)
        .await
        .unwrap();
    h.deliver(REFERRER, SHARED, &referral(2)).await;
    let out = h.caseclerk(&["tick"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("the last fetch stopped while reading"),
        "said in the log: {log}"
    );
    // Stored unread, not marked as read again (the `+` is the test's own), the record cleared
    // at the fetch's end; and the
    // referral decided all the same (read back by the engine).
    assert_eq!(reading_log(&pool).await, ["+", "-", "+", "-"]);
    let opened: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(opened, 2, "both referrals opened a case");
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE state = 'new'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pending, 0);

    // The pass after reads again.
    h.deliver(REFERRER, SHARED, &referral(3)).await;
    h.tick(None);
    assert_eq!(reading_log(&pool).await, ["+", "-", "+", "-", "+", "-"]);
}

#[tokio::test]
async fn a_fetch_that_fails_rather_than_stops_clears_its_reading_record() {
    // A database that refuses the batch is an error, not a stop: the next fetch reads as usual.
    use crate::support::{REFERRER, SHARED};
    let (h, pool) = reading_logged().await;
    sqlx::raw_sql(
        "CREATE TRIGGER no_store BEFORE INSERT ON messages BEGIN SELECT RAISE(ABORT, 'disk'); END;",
    )
    .execute(&pool)
    .await
    .unwrap();
    h.deliver(REFERRER, SHARED, &referral(1)).await;
    let failed = h.caseclerk(&["tick"]);
    assert!(!failed.status.success(), "the batch could not be stored");
    assert_eq!(reading_log(&pool).await, ["+", "-"], "set, then cleared");
    sqlx::raw_sql("DROP TRIGGER no_store")
        .execute(&pool)
        .await
        .unwrap();
    let out = h.caseclerk(&["tick"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        !log.contains("the last fetch stopped while reading"),
        "{log}"
    );
    assert_eq!(reading_log(&pool).await, ["+", "-", "+", "-"]);
}
