//! Intent before action, without a server: a letter is recorded as "being sent" before it is
//! handed over, nothing goes when that record cannot be written, and a letter the server accepted
//! but the database would not record stops the outbox until it is recorded — then the outbox
//! carries on by itself, sending nothing twice.
//!
//! The database refuses writes here through triggers the test adds and drops on a connection of its
//! own: `RAISE(ABORT, 'database or disk is full')` refuses a statement, and a row whose deferred
//! foreign key points nowhere refuses the COMMIT (as a full disk refuses the WAL write), each for
//! exactly the write the test names. The real full disk is in `full_disk.rs`.

use caseclerk::shell::outbox::{self, RecordingTransport, Unrecorded};
use caseclerk::shell::store::{NewLetter, OutboxState, Store};
use chrono::{DateTime, Duration, Utc};
use sqlx::Connection;
use std::path::PathBuf;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("caseclerk-intent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn letter(n: usize) -> NewLetter {
    let message_id = format!("letter.{n}@intent.test");
    NewLetter {
        dedupe_key: format!("test/{n}"),
        case_id: None,
        step: "digest".into(),
        recipient: "someone@example.test".into(),
        replies_as: "someone@example.test".into(),
        message_id: message_id.clone(),
        due_at: t0(),
        envelope_from: "bsp@bury.test".into(),
        envelope_to: vec!["someone@example.test".into()],
        raw: format!("Message-ID: <{message_id}>\r\nSubject: letter {n}\r\n\r\nbody\r\n")
            .into_bytes(),
    }
}

/// A store with `n` letters due at `t0`, and a connection of the test's own to the same file.
async fn outbox_of(name: &str, n: usize) -> (Store, sqlx::SqliteConnection, Vec<i64>, PathBuf) {
    outbox_with(name, (0..n).map(letter).collect()).await
}

/// As [`outbox_of`], with these letters.
async fn outbox_with(
    name: &str,
    letters: Vec<NewLetter>,
) -> (Store, sqlx::SqliteConnection, Vec<i64>, PathBuf) {
    let dir = scratch(name);
    let path = dir.join("caseclerk.db");
    let store = Store::open(&path).await.unwrap();
    let mut ids = vec![];
    for l in &letters {
        let mut tx = store.begin().await.unwrap();
        ids.push(outbox::enqueue(&mut tx, l, t0()).await.unwrap().unwrap());
        Store::commit(tx).await.unwrap();
    }
    let side = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (store, side, ids, dir)
}

/// Make the database refuse the outbox updates for which `when` holds, as a full disk would.
async fn refuse(side: &mut sqlx::SqliteConnection, when: &'static str) {
    // The condition is the test's own literal.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse BEFORE UPDATE ON outbox WHEN {when} \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )))
    .execute(side)
    .await
    .unwrap();
}

/// Make the database refuse to *commit* a transaction that marks a letter sent (the statements
/// go through; the commit fails, as a full disk's does): the trigger leaves a row whose deferred
/// foreign key points nowhere.
async fn refuse_commit_of_sent(side: &mut sqlx::SqliteConnection) {
    sqlx::raw_sql(
        "CREATE TABLE nowhere (id INTEGER PRIMARY KEY); \
         CREATE TABLE dangling (n INTEGER REFERENCES nowhere(id) DEFERRABLE INITIALLY DEFERRED); \
         CREATE TRIGGER refuse AFTER UPDATE ON outbox WHEN NEW.state = 'sent' \
         BEGIN INSERT INTO dangling VALUES (1); END",
    )
    .execute(side)
    .await
    .unwrap();
}

async fn accept(side: &mut sqlx::SqliteConnection) {
    sqlx::raw_sql("DROP TRIGGER refuse")
        .execute(side)
        .await
        .unwrap();
}

async fn state(store: &Store, id: i64) -> OutboxState {
    store.letter(id).await.unwrap().unwrap().state
}

#[tokio::test]
async fn a_letter_whose_intent_or_outcome_cannot_be_written_beforehand_is_not_sent_and_the_pass_stops()
 {
    for (name, refused) in [
        ("no-intent", "NEW.sending_since IS NOT NULL"),
        ("no-staged-outcome", "NEW.state = 'sent'"),
    ] {
        let (store, mut side, ids, dir) = outbox_of(name, 2).await;
        let transport = RecordingTransport::new();
        let memory = Unrecorded::default();
        refuse(&mut side, refused).await;

        let report = outbox::send_due(&store, &transport, &memory, t0())
            .await
            .unwrap();
        assert!(report.stopped, "{name}: {report:?}");
        assert_eq!(transport.sent().len(), 0, "{name}: nothing is sent");
        assert_eq!(state(&store, ids[0]).await, OutboxState::Pending);

        accept(&mut side).await;
        let report = outbox::send_due(&store, &transport, &memory, t0())
            .await
            .unwrap();
        assert_eq!(
            (report.sent, report.stopped),
            (2, false),
            "{name}: {report:?}"
        );
        assert_eq!(transport.sent().len(), 2, "{name}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[tokio::test]
async fn a_letter_accepted_but_not_recorded_stops_the_outbox_until_it_is_recorded_and_is_not_sent_again()
 {
    let (store, mut side, ids, dir) = outbox_of("no-outcome", 3).await;
    let transport = RecordingTransport::new();
    let memory = Unrecorded::default();
    refuse_commit_of_sent(&mut side).await;

    let report = outbox::send_due(&store, &transport, &memory, t0())
        .await
        .unwrap();
    assert!(report.stopped, "{report:?}");
    assert_eq!(
        transport.sent().len(),
        1,
        "the outbox stops after the first letter"
    );
    assert_eq!(memory.ids(), vec![ids[0]], "the outcome is kept in memory");
    let later = t0() + Duration::minutes(30);
    assert_eq!(
        store.sending_since(later).await.unwrap(),
        vec![ids[0]],
        "the database shows the letter as being sent since its intent"
    );

    // Still refused: the next pass tries to record it again and sends nothing.
    let report = outbox::send_due(&store, &transport, &memory, later)
        .await
        .unwrap();
    assert!(report.stopped && report.sent == 0, "{report:?}");
    assert_eq!(transport.sent().len(), 1);

    // Writable again: recorded without a resend, and the rest go.
    accept(&mut side).await;
    let report = outbox::send_due(&store, &transport, &memory, later)
        .await
        .unwrap();
    assert_eq!((report.sent, report.stopped), (2, false), "{report:?}");
    assert!(memory.ids().is_empty());
    for id in &ids {
        assert_eq!(state(&store, *id).await, OutboxState::Sent);
        assert_eq!(store.in_doubt_count(*id).await.unwrap(), 0);
    }
    let mut sent: Vec<Vec<u8>> = transport.sent().into_iter().map(|l| l.raw).collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 3, "three letters, each once");
    assert_eq!(transport.sent().len(), 3);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_letter_found_being_sent_after_a_crash_is_sent_again_and_counted_in_doubt() {
    let (store, _side, ids, dir) = outbox_of("in-doubt", 1).await;
    // A daemon recorded its intent and died before recording the outcome.
    let mut conn = store.send_connection().await.unwrap();
    assert!(!conn.mark_sending(ids[0], t0()).await.unwrap());
    drop(conn);

    let transport = RecordingTransport::new();
    let later = t0() + Duration::minutes(5);
    let report = outbox::send_due(&store, &transport, &Unrecorded::default(), later)
        .await
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(
        transport.sent().len(),
        1,
        "re-sent (with its own Message-ID)"
    );
    assert_eq!(store.in_doubt_count(ids[0]).await.unwrap(), 1);
    assert!(
        store
            .sending_since(later + Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A sent folder for the server-free tests: holds the Message-IDs it is given, or cannot be
/// searched at all.
struct Folder {
    holds: Vec<String>,
    reachable: bool,
    looked: std::sync::Mutex<usize>,
}

impl outbox::SentFolder for Folder {
    fn has_copy<'a>(
        &'a self,
        message_id: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<bool, String>> {
        *self.looked.lock().unwrap() += 1;
        let answer = if self.reachable {
            Ok(self.holds.iter().any(|m| m == message_id))
        } else {
            Err("connection refused".to_string())
        };
        Box::pin(std::future::ready(answer))
    }
}

fn folder(holds: &[&str], reachable: bool) -> Folder {
    Folder {
        holds: holds.iter().map(|s| s.to_string()).collect(),
        reachable,
        looked: std::sync::Mutex::new(0),
    }
}

fn server_copy(f: &Folder) -> outbox::InDoubt<'_> {
    outbox::InDoubt {
        policy: caseclerk::core::indoubt::CopyPolicy::server_copy(Duration::minutes(2)),
        folder: Some(f),
        sender: None,
        progress: None,
        copies: None,
    }
}

/// A store whose letters 0..n all have an intent at `t0` and no outcome (a daemon died).
async fn in_doubt(name: &str, n: usize) -> (Store, Vec<i64>, PathBuf) {
    let (store, _side, ids, dir) = outbox_of(name, n).await;
    let mut conn = store.send_connection().await.unwrap();
    for id in &ids {
        conn.mark_sending(*id, t0()).await.unwrap();
    }
    drop(conn);
    (store, ids, dir)
}

#[tokio::test]
async fn with_the_servers_copy_a_letter_in_doubt_waits_out_the_grace_then_is_recorded_from_the_copy_or_sent()
 {
    let (store, ids, dir) = in_doubt("server-copy", 2).await;
    // The server took letter 0 before the crash (its copy is in the folder), never letter 1.
    let sent = folder(&["letter.0@intent.test"], true);
    let transport = RecordingTransport::new();
    let memory = Unrecorded::default();

    let early = t0() + Duration::seconds(90);
    let report = outbox::send_due_settling(&store, &transport, &memory, server_copy(&sent), early)
        .await
        .unwrap();
    assert_eq!(report.sent + report.confirmed_by_copy, 0, "{report:?}");
    assert_eq!(report.recheck_at, Some(t0() + Duration::minutes(2)));
    assert_eq!(*sent.looked.lock().unwrap(), 0, "not even looked at yet");

    let later = t0() + Duration::minutes(2);
    let report = outbox::send_due_settling(&store, &transport, &memory, server_copy(&sent), later)
        .await
        .unwrap();
    assert_eq!(
        (report.confirmed_by_copy, report.sent),
        (1, 1),
        "{report:?}"
    );
    let raws: Vec<String> = transport
        .sent()
        .iter()
        .map(|l| String::from_utf8_lossy(&l.raw).into_owned())
        .collect();
    assert_eq!(raws.len(), 1, "only the letter the server never took goes");
    assert!(raws[0].contains("letter.1@intent.test"), "{raws:?}");
    let confirmed = store.letter(ids[0]).await.unwrap().unwrap();
    assert_eq!(confirmed.state, OutboxState::Sent);
    assert_eq!(
        confirmed.sent_at,
        Some(t0()),
        "sent when it was handed over"
    );
    assert_eq!(store.in_doubt_count(ids[0]).await.unwrap(), 0);
    assert_eq!(store.in_doubt_count(ids[1]).await.unwrap(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_letter_in_doubt_waits_while_the_sent_folder_cannot_be_searched_but_an_hour_at_most() {
    let (store, ids, dir) = in_doubt("folder-down", 1).await;
    let down = folder(&[], false);
    let transport = RecordingTransport::new();
    let memory = Unrecorded::default();

    let at = t0() + Duration::minutes(5);
    let report = outbox::send_due_settling(&store, &transport, &memory, server_copy(&down), at)
        .await
        .unwrap();
    assert_eq!(report.sent, 0, "{report:?}");
    assert_eq!(report.recheck_at, Some(at + Duration::minutes(1)));
    assert_eq!(transport.sent().len(), 0);

    let an_hour_on = t0() + Duration::hours(1);
    let report =
        outbox::send_due_settling(&store, &transport, &memory, server_copy(&down), an_hour_on)
            .await
            .unwrap();
    assert_eq!(report.sent, 1, "late, never lost: {report:?}");
    assert_eq!(store.in_doubt_count(ids[0]).await.unwrap(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_engine_asks_to_be_woken_when_a_letter_in_doubt_has_waited_out_its_grace() {
    // The daemon's loop sleeps until the pass's `next_wake`: were the end of the grace not among
    // the wake-ups, a letter in doubt would wait for whatever woke the daemon next (a day, on a
    // quiet mailbox) before being looked up and, if the server never took it, sent.
    let mut review = crate::review::Review::with("bury", |cfg| {
        let mailbox = cfg["mailbox"].as_table_mut().expect("[mailbox]");
        mailbox.insert("sent_copy".into(), "server".into());
        mailbox.insert("in_doubt_grace_seconds".into(), 300.into());
    })
    .await;
    let intent = crate::review::london("2026-01-05 09:00");
    review.at("2026-01-05 09:00").await;
    let store = review.engine.store.clone();
    let mut tx = store.begin().await.unwrap();
    let mut died = letter(0);
    died.due_at = intent;
    let id = outbox::enqueue(&mut tx, &died, intent)
        .await
        .unwrap()
        .unwrap();
    Store::commit(tx).await.unwrap();
    // The daemon recorded its intent, handed the letter over and died before the outcome.
    let mut conn = store.send_connection().await.unwrap();
    conn.mark_sending(id, intent).await.unwrap();
    drop(conn);

    let report = review.at("2026-01-05 09:01").await;
    assert_eq!(report.sent.recheck_at, Some(intent + Duration::minutes(5)));
    assert_eq!(
        report.next_wake,
        Some(intent + Duration::minutes(5)),
        "the next wake-up is the end of the letter's grace"
    );
    assert!(review.mail.sent().is_empty(), "nothing handed over again");
    assert_eq!(
        state(&store, id).await,
        OutboxState::Pending,
        "not sent again yet"
    );
}

#[tokio::test]
async fn a_letter_refused_for_one_addressee_and_not_recorded_is_recorded_sent_and_undelivered_later()
 {
    let mut shared = letter(0);
    shared.envelope_to = vec!["someone@example.test".into(), "gone@example.test".into()];
    let (store, mut side, ids, dir) = outbox_with("partly-refused", vec![shared]).await;
    let id = ids[0];
    let transport = RecordingTransport::new();
    transport.refuse("gone@example.test");
    let memory = Unrecorded::default();
    refuse_commit_of_sent(&mut side).await;
    let report = outbox::send_due(&store, &transport, &memory, t0())
        .await
        .unwrap();
    assert!(report.stopped, "{report:?}");
    assert_eq!(memory.ids(), vec![id]);

    accept(&mut side).await;
    let later = t0() + Duration::minutes(1);
    let report = outbox::send_due(&store, &transport, &memory, later)
        .await
        .unwrap();
    assert!(!report.stopped, "{report:?}");
    let row = store.letter(id).await.unwrap().unwrap();
    assert_eq!(
        row.state,
        OutboxState::Bounced,
        "undelivered for the one refused"
    );
    assert!(row.sent_at.is_some(), "sent to the other");
    assert_eq!(transport.sent().len(), 1, "not sent again");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_pass_says_it_is_alive_after_each_letter_so_a_long_one_is_not_taken_for_a_hung_one() {
    // The daemon pings systemd's watchdog there: eighteen 20 MB letters over a slow line take
    // longer than the watchdog's ten minutes, and a kill mid-send would send one twice.
    let (store, _side, _ids, _dir) = outbox_of("alive", 3).await;
    let transport = RecordingTransport::new();
    let told = std::sync::atomic::AtomicUsize::new(0);
    let alive = || {
        told.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    };
    let doubt = outbox::InDoubt {
        progress: Some(&alive),
        copies: None,
        ..outbox::InDoubt::resend()
    };
    let report = outbox::send_due_settling(&store, &transport, &Unrecorded::default(), doubt, t0())
        .await
        .unwrap();
    assert_eq!(report.sent, 3, "{report:?}");
    assert_eq!(told.load(std::sync::atomic::Ordering::SeqCst), 3);
}
