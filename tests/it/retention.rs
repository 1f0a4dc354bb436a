//! Retention, real erasure and legal hold (issue 14), on the server-free harness: a phrase planted
//! in a referral and carried into its letters is in the database file before retention and
//! nowhere in it (nor in its WAL) after; a held case keeps its mail until released; an open case
//! is never erased; every erasure is recorded without its content; a schedule shorter than its
//! floors is refused, every problem at once.

use crate::review::{Review, london};
use crate::support::{self, REFERRER, SHARED};
use caseclerk::core::records::{CaseStatus, OutboxState};
use caseclerk::shell::config::{self, Needs};
use caseclerk::shell::retention;
use caseclerk::shell::store::Store;
use caseclerk::shell::verify::{self, Finding};
use chrono::{DateTime, Duration, Utc};

const PHRASE: &str = "Zanzibar-Quillfeather-4417";

/// A referral carrying `PHRASE` in its subject, its text and a text attachment (where it is also
/// the child's name, so the particulars read from it hold it too). The attachment's chronology
/// runs to a few kilobytes, as a real one does: the referral fills pages of its own, which an
/// erasure frees (letters are stored compressed and alone may fit inside a page).
fn planted_referral(id: &str) -> Vec<u8> {
    let chronology: String = (1..=120)
        .map(|n| format!("Entry {n}: home visit recorded, no concerns noted at the time.\r\n"))
        .collect();
    format!(
        "From: Dr Test Referrer <{REFERRER}>\r\n\
         To: {SHARED}\r\n\
         Subject: Referral for a rapid review {PHRASE}\r\n\
         Message-ID: <{id}>\r\n\
         Date: Mon, 5 Jan 2026 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
         \r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Please consider this referral for a rapid review. The child is {PHRASE}.\r\n\
         --b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Disposition: attachment; filename=\"notes.txt\"\r\n\
         \r\n\
         Chronology notes: {PHRASE} seen at home.\r\n\
         Child's name: {PHRASE}\r\n\
         {chronology}\
         --b1--\r\n"
    )
    .into_bytes()
}

/// Standard base64 of `bytes` (to find the phrase inside a re-encoded attachment too).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The forms the phrase can take in stored bytes: as written, and base64 at each of the three
/// alignments (the middle of each encoding, which does not depend on its neighbours).
fn forms() -> Vec<Vec<u8>> {
    let mut out = vec![PHRASE.as_bytes().to_vec()];
    for pad in 0..3 {
        let mut b = vec![b'x'; pad];
        b.extend_from_slice(PHRASE.as_bytes());
        let enc = base64(&b);
        let skip = (pad * 4).div_ceil(3) + 2;
        out.push(enc.as_bytes()[skip..enc.len() - 4].to_vec());
    }
    out
}

/// Where the phrase is found: in the database file and in its `-wal`.
fn found_in(db: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in [
        db.to_path_buf(),
        std::path::PathBuf::from(format!("{}-wal", db.display())),
    ] {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for (i, form) in forms().iter().enumerate() {
            if bytes.windows(form.len()).any(|w| w == form.as_slice()) {
                found.push(format!("{} (form {i})", file.display()));
            }
        }
    }
    found
}

/// A review without the daily digest (so time can jump a year in one pass), with a short
/// schedule.
async fn review() -> Review {
    Review::with("bury", |cfg| {
        cfg.remove("digest");
        let mut r = toml::Table::new();
        r.insert("closed_case_years".into(), 1.into());
        r.insert("letter_days".into(), 30.into());
        cfg.insert("retention".into(), r.into());
    })
    .await
}

/// The referral arrives, its letters go, the case is closed at `closed`, and its letters are
/// filed in the sent folder.
async fn closed_case(r: &mut Review, id: &str, closed: &str) -> String {
    let reference = closed_unfiled(r, id, closed).await;
    // The letters were filed in the shared mailbox's sent folder (the recording transport has
    // none): only a filed letter may lose its bytes.
    let store = &r.engine.store;
    for l in store.letters(None).await.unwrap() {
        store.mark_filed(l.id, london(closed)).await.unwrap();
    }
    reference
}

/// [`closed_case`], with nothing filed.
async fn closed_unfiled(r: &mut Review, id: &str, closed: &str) -> String {
    r.receive(&planted_referral(id), "2026-01-05 10:00").await;
    let reference = r.last.opened.first().cloned().expect("a case opened");
    r.at("2026-01-07 10:00").await;
    let store = &r.engine.store;
    caseclerk::shell::operator::set_status(
        store,
        &reference,
        true,
        "no review",
        "test",
        london(closed),
    )
    .await
    .unwrap();
    reference
}

#[tokio::test]
async fn where_the_server_keeps_the_sent_copy_a_closed_case_s_letters_are_erased_unfiled() {
    // Exchange Online files its own copy (`sent_copy = "server"`); with no copy kept ("none")
    // nothing files it either. Nothing will ever file these letters, so they are not waited for.
    for copy in ["server", "none"] {
        let mut r = Review::with("bury", |cfg| {
            cfg.remove("digest");
            let mut ret = toml::Table::new();
            ret.insert("closed_case_years".into(), 1.into());
            ret.insert("letter_days".into(), 30.into());
            cfg.insert("retention".into(), ret.into());
            let mailbox = cfg["mailbox"].as_table_mut().expect("[mailbox]");
            mailbox.insert("sent_copy".into(), copy.into());
        })
        .await;
        closed_unfiled(&mut r, "unfiled.1@hospital.test", "2026-02-02 10:00").await;
        let store = r.engine.store.clone();
        let sent = store.letters(None).await.unwrap();
        assert!(!sent.is_empty(), "the referral was answered");
        r.at("2026-03-05 10:00").await; // 31 days after closure
        for l in store.letters(None).await.unwrap() {
            assert!(
                l.raw.is_empty(),
                "sent_copy = {copy}: letter {} ({}) kept its bytes",
                l.id,
                l.step
            );
        }
        r.at("2027-02-03 10:00").await; // a year and a day: the case's mail goes too
        assert_eq!(
            found_in(&r.engine.cfg.database),
            Vec::<String>::new(),
            "sent_copy = {copy}: the referral's phrase, forwarded in its letters, is gone"
        );
    }
}

#[tokio::test]
async fn a_phrase_planted_in_a_referral_and_its_letters_is_gone_from_the_file_after_retention() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "planted.1@hospital.test", "2026-02-02 10:00").await;
    let db = r.engine.cfg.database.clone();
    let store = r.engine.store.clone();
    let letters = store.letters(None).await.unwrap();
    assert!(!letters.is_empty(), "the referral was answered");
    assert!(
        letters.iter().any(|l| forms()
            .iter()
            .any(|f| l.raw.windows(f.len()).any(|w| w == f.as_slice()))),
        "a letter carries the phrase (the referral forwarded)"
    );
    assert!(
        !found_in(&db).is_empty(),
        "the phrase is in the database before erasure"
    );
    let case_id = store.case_by_ref(&reference).await.unwrap().unwrap().id;
    assert!(
        store
            .particulars(case_id)
            .await
            .unwrap()
            .iter()
            .any(|p| p.value == PHRASE),
        "the child's name was read from the referral"
    );

    // A year and a day after closure the daemon's first pass of the day applies retention.
    r.at("2027-02-03 10:00").await;

    assert_eq!(
        found_in(&db),
        Vec::<String>::new(),
        "the phrase is gone from the file and the WAL"
    );
    // The metadata stays: the letters' rows, steps and states; the case's history.
    let after = store.letters(None).await.unwrap();
    assert_eq!(after.len(), letters.len());
    assert!(after.iter().all(|l| l.raw.is_empty() && !l.step.is_empty()));
    let report = r.report(&reference).await;
    assert!(report.contains("retention erased"), "{report}");
    assert!(
        report.contains("case_mail") && report.contains("closed_case_mail"),
        "{report}"
    );
    assert!(
        report.contains("letter") && report.contains("closed_case_letter"),
        "{report}"
    );
    assert!(report.contains("particulars"), "{report}");
    assert!(store.particulars(case_id).await.unwrap().is_empty());
    assert!(!report.contains(PHRASE));
    assert_eq!(store.integrity_check().await.unwrap(), "ok");

    // Reopened, the case cannot send an erased letter again: the sent folder has its copy.
    let now = r.now();
    let ops = caseclerk::shell::operator::set_status;
    ops(&store, &reference, false, "new information", "test", now)
        .await
        .unwrap();
    let e = caseclerk::shell::operator::resend(
        &r.engine.cfg,
        &store,
        &reference,
        after[0].id,
        None,
        "lost",
        "test",
        now,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("erased under the retention schedule"), "{e}");
}

#[tokio::test]
async fn a_reopened_case_whose_referral_was_erased_sends_no_empty_copy_and_says_so() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "reopened.1@hospital.test", "2026-02-02 10:00").await;
    r.at("2027-02-03 10:00").await; // a year and a day after closure: the mail is erased
    let store = r.engine.store.clone();
    let ops = caseclerk::shell::operator::set_status;
    ops(
        &store,
        &reference,
        false,
        "new information",
        "test",
        r.now(),
    )
    .await
    .unwrap();
    let before = r.letters().len();
    // The panel decides after all: the agency round starts, and the papers that enclose the
    // referral fall due.
    r.decide(&reference, "screening", "meets", "2027-02-03 11:00")
        .await;
    r.add_agencies(&reference, &["police", "gp"], "2027-02-03 11:30")
        .await;
    r.at("2027-02-24 13:00").await;
    let papers: Vec<_> = store
        .letters(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.step == "circulate-papers")
        .collect();
    assert!(
        !papers.is_empty(),
        "the papers were decided: {}",
        r.report(&reference).await
    );
    for l in &papers {
        assert_eq!(l.state, OutboxState::Failed, "letter {} ({})", l.id, l.step);
    }
    let sent_now: Vec<_> = r.letters()[before..].iter().collect();
    assert!(
        sent_now.iter().all(|l| l.step != "circulate-papers"),
        "no empty copy of the referral went"
    );
    assert!(
        sent_now.iter().any(|l| l.step == "agency-request"),
        "letters that enclose nothing erased still go"
    );
    r.at("2027-02-24 13:05").await;
    let notices: Vec<_> = r.letters()[before..]
        .iter()
        .filter(|l| l.step == "notice-undelivered")
        .collect();
    assert!(!notices.is_empty(), "the business manager is told");
    let report = r.report(&reference).await;
    assert!(
        report.contains("it would enclose the referral, erased under the retention schedule"),
        "{report}"
    );
    let e = caseclerk::shell::operator::resend(
        &r.engine.cfg,
        &store,
        &reference,
        papers[0].id,
        None,
        "the attendees asked",
        "test",
        r.now(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("was never sent: what it encloses was erased"),
        "{e}"
    );
    let digest = r.digest_text().await;
    assert!(
        digest.contains("LETTERS THAT COULD NOT BE DELIVERED")
            && digest
                .contains("not sent: what it encloses was erased under the retention schedule"),
        "{digest}"
    );
}

#[tokio::test]
async fn retention_that_cannot_run_is_tried_at_every_pass_and_raised_after_ten() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "refused.1@hospital.test", "2026-02-02 10:00").await;
    let db = r.engine.cfg.database.clone();
    let config = r.engine.cfg.file.clone();
    // (Nothing in this process may open the database file itself while another process changes
    // it: closing that file would drop SQLite's locks on it, and the other process would take
    // itself for the last user and reset the log. `found_in` waits until the end.)
    crate::history::sqlite3(
        &db,
        "CREATE TRIGGER refuse BEFORE UPDATE ON message_bytes \
         BEGIN SELECT RAISE(ABORT, 'refused by a test'); END;",
    );
    for minute in 0..10 {
        r.at(&format!("2027-02-03 10:{minute:02}")).await;
    }
    let report = r.report(&reference).await;
    assert!(!report.contains("case_mail"), "not erased yet: {report}");
    let (_, out) = crate::health::health(&config, "2027-02-03 10:10");
    assert!(out.contains("[retention_failing]"), "{out}");
    assert!(!out.contains(PHRASE), "{out}");

    crate::history::sqlite3(&db, "DROP TRIGGER refuse;");
    r.at("2027-02-03 10:11").await;
    let (_, out) = crate::health::health(&config, "2027-02-03 10:12");
    assert!(!out.contains("retention_failing"), "{out}");
    assert_eq!(
        found_in(&db),
        Vec::<String>::new(),
        "erased at the next pass"
    );
}

#[tokio::test]
async fn a_held_closed_case_keeps_its_mail_past_retention_until_the_hold_is_released() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "held.1@hospital.test", "2026-02-02 10:00").await;
    let store = r.engine.store.clone();
    let cfg = r.engine.cfg.clone();
    let placed = london("2026-03-01 10:00");
    retention::set_hold(
        &store,
        &reference,
        true,
        "coroner's inquest",
        "operator:test",
        placed,
    )
    .await
    .unwrap();

    let later = london("2028-06-01 10:00");
    assert!(
        retention::plan(&store, &cfg.retention, later)
            .await
            .unwrap()
            .iter()
            .all(|g| g.case.is_none())
    );
    retention::apply(&store, &cfg.retention, later)
        .await
        .unwrap();
    assert!(
        !found_in(&cfg.database).is_empty(),
        "the held case's mail is still there"
    );
    let referral = store.message_raw(1).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&referral).contains(PHRASE));

    // Visible where people look: the case, the tracker, the digest.
    let report = r.report(&reference).await;
    assert!(
        report.contains("LEGAL HOLD since") && report.contains("coroner's inquest"),
        "{report}"
    );
    let snap = caseclerk::shell::snapshot::gather(&cfg, &store, later, later - Duration::days(1))
        .await
        .unwrap();
    let tracker = caseclerk::core::export::rows(&snap, &cfg.process, None);
    let csv = caseclerk::core::export::csv(&tracker);
    assert!(csv.lines().next().unwrap().ends_with("Legal hold"), "{csv}");
    assert!(csv.lines().nth(1).unwrap().ends_with("2026-03-01"), "{csv}");
    let digest = caseclerk::core::digest::build(&snap, &cfg.calendar).unwrap();
    let line = digest.legal_holds.expect("the digest names the held case");
    assert!(
        line.contains(&reference) && !line.contains("inquest"),
        "{line}"
    );

    retention::set_hold(
        &store,
        &reference,
        false,
        "inquest concluded",
        "operator:test",
        later,
    )
    .await
    .unwrap();
    let applied = retention::apply(&store, &cfg.retention, later)
        .await
        .unwrap();
    // The freed pages went back to the file system: none is left on the free list.
    assert!(applied.reclaimed.pages > 0, "{:?}", applied.reclaimed);
    assert_eq!(pragma(&cfg.database, "PRAGMA freelist_count").await, 0);
    assert!(
        applied
            .groups
            .iter()
            .any(|g| g.case.is_some() && g.rule == "closed_case_mail")
    );
    assert_eq!(found_in(&cfg.database), Vec::<String>::new());
}

#[tokio::test]
async fn the_history_still_verifies_after_a_hold_a_release_and_an_erasure() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "chained.1@hospital.test", "2026-02-02 10:00").await;
    let store = r.engine.store.clone();
    let cfg = r.engine.cfg.clone();
    let placed = london("2026-03-01 10:00");
    retention::set_hold(&store, &reference, true, "inquest", "operator:test", placed)
        .await
        .unwrap();
    // A chain head recorded before the erasure anchors the history the erasure must not touch.
    verify::record_head_if_due(&store, placed).await.unwrap();
    let before = store.chain_heads().await.unwrap().len();
    assert!(before > 0, "a chain head was recorded before the erasure");
    let later = london("2028-06-01 10:00");
    retention::set_hold(
        &store,
        &reference,
        false,
        "concluded",
        "operator:test",
        later,
    )
    .await
    .unwrap();
    let applied = retention::apply(&store, &cfg.retention, later)
        .await
        .unwrap();
    assert!(
        applied.groups.iter().any(|g| g.case.is_some()),
        "the released case's mail was erased: {applied:?}"
    );
    let case = store.case_by_ref(&reference).await.unwrap().unwrap();
    let events = store.events(case.id).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["hold_placed", "hold_released", "content_erased"] {
        assert!(kinds.contains(&kind), "{kind} was recorded: {kinds:?}");
    }

    match verify::verify(&store).await.unwrap() {
        Finding::Intact { heads, .. } => {
            assert_eq!(heads, before, "the heads recorded before match")
        }
        broken => panic!(
            "the history still verifies after erasure: {}",
            broken.render()
        ),
    }
}

/// A `PRAGMA`'s value, read on a connection of its own.
async fn pragma(db: &std::path::Path, sql: &'static str) -> i64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let v: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    v
}

#[tokio::test]
async fn a_database_made_without_incremental_vacuum_is_converted_when_opened() {
    let dir = std::env::temp_dir().join(format!("caseclerk-vacuum-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("old.db");
    let _ = std::fs::remove_file(&db);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE before_us (x BLOB); INSERT INTO before_us VALUES (zeroblob(100000));",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(
        pragma(&db, "PRAGMA auto_vacuum").await,
        0,
        "made without it"
    );
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    assert_eq!(
        pragma(&db, "PRAGMA auto_vacuum").await,
        2,
        "incremental after opening"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_open_case_is_never_erased_however_old() {
    let mut r = review().await;
    r.receive(
        &planted_referral("open.1@hospital.test"),
        "2026-01-05 10:00",
    )
    .await;
    let store = r.engine.store.clone();
    let cfg = r.engine.cfg.clone();
    let far = london("2126-01-01 10:00");
    let plan = retention::plan(&store, &cfg.retention, far).await.unwrap();
    assert!(plan.iter().all(|g| g.case.is_none()), "{plan:?}");
    retention::apply(&store, &cfg.retention, far).await.unwrap();
    let referral = store.message_raw(1).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&referral).contains(PHRASE));
    assert!(
        store
            .letters(None)
            .await
            .unwrap()
            .iter()
            .all(|l| !l.raw.is_empty())
    );
}

#[tokio::test]
async fn mail_on_no_case_is_erased_on_its_own_schedule_and_recorded_in_erasures() {
    let mut r = review().await;
    // Mail nobody can place: listed for a person.
    let raw = format!(
        "From: someone@elsewhere.test\r\nTo: {SHARED}\r\nSubject: hello {PHRASE}\r\n\
         Message-ID: <stray.1@elsewhere.test>\r\nContent-Type: text/plain\r\n\r\nJust saying {PHRASE}.\r\n"
    );
    r.receive(raw.as_bytes(), "2026-01-05 10:00").await;
    let store = r.engine.store.clone();
    let cfg = r.engine.cfg.clone();
    let state = store.message_state(1).await.unwrap().unwrap();
    assert_eq!(state, ("triage".to_string(), None));
    let before = london("2026-12-31 10:00");
    assert!(
        retention::plan(&store, &cfg.retention, before)
            .await
            .unwrap()
            .is_empty()
    );
    let after = london("2027-01-06 10:00");
    let groups = retention::plan(&store, &cfg.retention, after)
        .await
        .unwrap();
    let refs = retention::references(&store).await.unwrap();
    let listing = retention::listing(&groups, &refs, false);
    assert!(
        listing.contains("triage_expired") && listing.contains("messages 1"),
        "{listing}"
    );
    assert!(
        !listing.contains(PHRASE) && !listing.contains("hello") && !listing.contains("elsewhere")
    );

    retention::apply(&store, &cfg.retention, after)
        .await
        .unwrap();
    assert_eq!(found_in(&cfg.database), Vec::<String>::new());
    let erasures = store.erasures().await.unwrap();
    assert_eq!(erasures.len(), 1);
    let (_, rule, class, count, bytes) = &erasures[0];
    assert_eq!(
        (rule.as_str(), class.as_str(), *count),
        ("triage_expired", "triage_mail", 1)
    );
    assert_eq!(*bytes, raw.len() as i64);
    // The row stays, empty (so it is never stored again), and leaves the triage list.
    assert!(store.triage().await.unwrap().is_empty());
    assert_eq!(store.message_raw(1).await.unwrap().unwrap().len(), 0);
}

#[tokio::test]
async fn the_erasures_record_refuses_to_be_changed_or_deleted() {
    let r = review().await;
    let db = r.engine.cfg.database.clone();
    let mut tx = r.engine.store.begin().await.unwrap();
    let at: DateTime<Utc> = london("2026-01-05 10:00");
    Store::record_erasure(&mut tx, at, "triage_expired", "triage_mail", 1, 10)
        .await
        .unwrap();
    Store::commit(tx).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    for sql in ["UPDATE erasures SET count = 0", "DELETE FROM erasures"] {
        let e = sqlx::query(sql).execute(&pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    pool.close().await;
}

#[tokio::test]
async fn a_hold_is_refused_twice_a_release_without_a_hold_and_an_unknown_case() {
    let mut r = review().await;
    let reference = r.referral_at("2026-01-05 10:00").await;
    let store = r.engine.store.clone();
    let now = london("2026-01-06 10:00");
    let hold = |place, reference: &str, reason: &str| {
        let store = store.clone();
        let (reference, reason) = (reference.to_string(), reason.to_string());
        async move {
            retention::set_hold(&store, &reference, place, &reason, "operator:test", now)
                .await
                .map_err(|e| e.to_string())
        }
    };
    assert!(
        hold(false, &reference, "x")
            .await
            .unwrap_err()
            .contains("is not under legal hold")
    );
    assert!(
        hold(true, "RR-1999-0001", "x")
            .await
            .unwrap_err()
            .contains("there is no case")
    );
    assert!(
        hold(true, &reference, " ")
            .await
            .unwrap_err()
            .contains("give a reason")
    );
    hold(true, &reference, "subject access request")
        .await
        .unwrap();
    let e = hold(true, &reference, "again").await.unwrap_err();
    assert!(
        e.contains("already under legal hold") && e.contains("subject access request"),
        "{e}"
    );
    hold(false, &reference, "answered").await.unwrap();
    let state = r.state(&reference).await;
    assert_eq!((state.hold, state.status), (None, CaseStatus::Open));
}

#[test]
fn a_schedule_shorter_than_its_floors_is_refused_every_problem_at_once() {
    let dir = std::env::temp_dir().join(format!("caseclerk-retention-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    support::write_secret(&dir.join("password"), support::PASSWORD);
    let mut cfg = support::config_for("bury", &dir);
    let mut r = toml::Table::new();
    r.insert("closed_case_years".into(), 0.into());
    r.insert("letter_days".into(), 7.into());
    r.insert("triage_days".into(), 14.into());
    r.insert("other_mail_days".into(), (-1).into());
    cfg.insert("retention".into(), r.into());
    let path = dir.join("caseclerk.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let e = config::load(&path, Needs::NoSecrets)
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    for part in [
        "[retention] closed_case_years = 0 is shorter than the shortest allowed, 1 year(s)",
        "[retention] letter_days = 7 is shorter than the shortest allowed, 30 days",
        "[retention] triage_days = 14 is shorter than the shortest allowed, 90 days",
        "[retention] other_mail_days = -1 must be a whole number",
    ] {
        assert!(e.contains(part), "missing {part:?} in:\n{e}");
    }
}

#[tokio::test]
async fn the_command_line_holds_lists_by_rule_without_content_releases_and_erases() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "cli.1@hospital.test", "2026-02-02 10:00").await;
    let file = r.engine.cfg.file.clone();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_caseclerk"))
            .arg("--config")
            .arg(&file)
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let hold = [
        "hold",
        &reference,
        "--reason",
        "criminal trial",
        "--by",
        "clerk",
    ];
    let (code, said) = run(&hold);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("under legal hold"), "{said}");
    let (code, said) = run(&hold);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("already under legal hold") && said.contains("operator:clerk"),
        "{said}"
    );

    let later = ["--now", "2027-06-01T10:00:00Z"];
    let (code, said) = run(&[&["retention", "--dry-run"], &later[..]].concat());
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.starts_with("retention: 0 record(s), 0 bytes would be erased"),
        "{said}"
    );

    let (code, said) = run(&["release", &reference, "--reason", "trial over"]);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = run(&[&["retention", "--dry-run"], &later[..]].concat());
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("closed_case_mail (") && said.contains(&format!("  {reference}: ")),
        "{said}"
    );
    assert!(said.contains("closed_case_letter ("), "{said}");
    for private in [PHRASE, "Referral for", "hospital.test", "Dr Test"] {
        assert!(
            !said.contains(private),
            "the listing shows {private:?}:\n{said}"
        );
    }
    assert!(
        !found_in(&r.engine.cfg.database).is_empty(),
        "a dry run erases nothing"
    );

    let (code, said) = run(&[&["retention"], &later[..]].concat());
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("bytes erased") && said.contains("the WAL is emptied"),
        "{said}"
    );
    assert_eq!(found_in(&r.engine.cfg.database), Vec::<String>::new());
}

/// A closed case reopened on 1 Mar 2027 (an inquest), the child's name given by a person, and
/// closed again the same day.
async fn name_given_again(
    store: &caseclerk::shell::store::Store,
    reference: &str,
    case_id: i64,
    name: &str,
) {
    let at = london("2027-03-01 10:00");
    caseclerk::shell::operator::set_status(store, reference, false, "inquest", "test", at)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    caseclerk::shell::store::Store::decide_particular(
        &mut tx,
        case_id,
        caseclerk::core::particulars::Field::ChildName,
        Some(name),
        "test",
        at,
    )
    .await
    .unwrap();
    caseclerk::shell::store::Store::commit(tx).await.unwrap();
    caseclerk::shell::operator::set_status(store, reference, true, "inquest over", "test", at)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_particular_typed_in_after_the_case_s_mail_was_erased_goes_a_year_after_it_closes_again()
{
    let mut r = review().await;
    let reference = closed_case(&mut r, "retyped.1@hospital.test", "2026-02-02 10:00").await;
    r.at("2027-02-03 10:00").await; // the mail and its particulars erased
    let store = r.engine.store.clone();
    let case_id = store.case_by_ref(&reference).await.unwrap().unwrap().id;
    assert!(store.particulars(case_id).await.unwrap().is_empty());
    // Reopened for an inquest, the child's name given again, closed again.
    name_given_again(&store, &reference, case_id, "Jane Planted").await;
    r.at("2027-06-01 10:00").await;
    assert_eq!(
        store.particulars(case_id).await.unwrap().len(),
        1,
        "kept while the case's year runs"
    );
    r.at("2028-03-02 10:00").await;
    assert!(
        store.particulars(case_id).await.unwrap().is_empty(),
        "a year after it closed again, the name typed in goes too"
    );
}

// ---- mail about a closed case, and what is erased on its own ----------------------------------

#[tokio::test]
async fn a_reply_about_a_closed_case_under_legal_hold_is_kept_while_held_and_exported_with_it() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "heldreply.1@hospital.test", "2026-02-02 10:00").await;
    let store = r.engine.store.clone();
    let cfg = r.engine.cfg.clone();
    retention::set_hold(
        &store,
        &reference,
        true,
        "coroner's inquest",
        "operator:test",
        london("2026-03-01 10:00"),
    )
    .await
    .unwrap();
    // The referrer answers one of the case's letters after closure, naming the child.
    let letter = r
        .letters()
        .iter()
        .find(|l| l.case.is_some())
        .expect("a case letter")
        .clone();
    let body =
        "Further to the above: the coroner has asked for Wolverhampton-Plumtree-9921's records.";
    r.reply(&letter, REFERRER, body, "2026-03-10 10:00").await;
    let mut id = 0;
    for m in 1..50 {
        if let Ok(Some(raw)) = store.message_raw(m).await
            && String::from_utf8_lossy(&raw).contains("Wolverhampton-Plumtree-9921")
        {
            id = m;
        }
    }
    assert!(id > 0, "the reply was stored");
    let (state, case_id) = store.message_state(id).await.unwrap().unwrap();
    eprintln!("reply stored as message {id}: state {state}, case {case_id:?}");
    let raw = store.message_raw(id).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&raw).contains("Wolverhampton-Plumtree-9921"));

    // The export made for a subject access request while the case is held.
    let held = caseclerk::shell::export_case::gather(&cfg, &store, &reference, r.now())
        .await
        .unwrap();
    let exported = held.messages.iter().any(|m| m.id == id);

    // Long past triage_days (365), the inquest still running: the hold must keep it.
    let later = london("2027-06-01 10:00");
    retention::apply(&store, &cfg.retention, later)
        .await
        .unwrap();
    let after = store.message_raw(id).await.unwrap().unwrap_or_default();
    eprintln!(
        "exported: {exported}; bytes after retention: {}",
        after.len()
    );
    assert!(
        exported,
        "the reply about {reference} (message {id}) is missing from export-case"
    );
    assert!(
        !after.is_empty(),
        "the reply about held case {reference} (message {id}) was erased under the hold"
    );
}

#[tokio::test]
async fn a_particular_typed_in_after_the_mail_went_is_gone_from_the_file_and_its_wal_when_erased() {
    let mut r = review().await;
    let reference = closed_case(&mut r, "retyped.9@hospital.test", "2026-02-02 10:00").await;
    r.at("2027-02-03 10:00").await; // the mail and its particulars erased
    let store = r.engine.store.clone();
    let db = r.engine.cfg.database.clone();
    let case_id = store.case_by_ref(&reference).await.unwrap().unwrap().id;
    name_given_again(&store, &reference, case_id, "Ottoline-Marchbanks-5150").await;
    let name = b"Ottoline-Marchbanks-5150";
    let found = |db: &std::path::Path| -> Vec<String> {
        let mut out = Vec::new();
        for f in [
            db.to_path_buf(),
            std::path::PathBuf::from(format!("{}-wal", db.display())),
        ] {
            if let Ok(bytes) = std::fs::read(&f)
                && bytes.windows(name.len()).any(|w| w == name)
            {
                out.push(f.display().to_string());
            }
        }
        out
    };
    assert!(!found(&db).is_empty(), "the name is in the file before");
    r.at("2028-03-02 10:00").await;
    assert!(
        store.particulars(case_id).await.unwrap().is_empty(),
        "erased in the table"
    );
    assert_eq!(
        found(&db),
        Vec::<String>::new(),
        "the child's name typed in after the mail was erased is still in the file or its WAL"
    );
}

#[tokio::test]
async fn a_reply_on_a_closed_case_can_still_be_opened_as_a_new_case_and_moves_to_it() {
    // "The sibling was hurt last night": a new referral quoting the old reference.
    let mut r = review().await;
    let reference = closed_case(&mut r, "newref.1@hospital.test", "2026-02-02 10:00").await;
    let store = r.engine.store.clone();
    let letter = r
        .letters()
        .iter()
        .find(|l| l.case.is_some())
        .expect("a case letter")
        .clone();
    let body = "A new referral: the sibling was hurt last night.";
    r.reply(&letter, REFERRER, body, "2026-03-10 10:00").await;
    let triage = store.triage().await.unwrap();
    assert_eq!(triage.len(), 1, "the reply waits in triage");
    let cfg = r.engine.cfg.clone();
    let opened = caseclerk::shell::operator::open_referral(
        &cfg,
        &store,
        triage[0].id,
        None,
        "a new referral quoting the old reference",
        "operator:casey",
        r.now(),
    )
    .await
    .unwrap_or_else(|e| panic!("not opened from a reply on {reference}: {e:?}"));
    let new = store.case_by_ref(&opened).await.unwrap().unwrap();
    let (state, on) = store.message_state(triage[0].id).await.unwrap().unwrap();
    assert_eq!((state.as_str(), on), ("filed", Some(new.id)));
}
