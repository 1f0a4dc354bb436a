//! A step added to the process file — by an upgrade, or by the partnership editing its file —
//! writes about what falls due from then on, never about every open case's past: its letters
//! already due when the daemon restarts with it are not sent, and those due later go as planned.

use crate::full_reviews::SCREENING_PANEL;
use crate::review::{Reply, Review};
use crate::support::{self, REFERRER};

/// Bury's process file without some of its steps, as an older version had it.
fn bury_without(dir: &std::path::Path, steps: &[&str]) -> String {
    let text = std::fs::read_to_string(support::root().join("config/processes/bury.toml")).unwrap();
    let kept: Vec<&str> = text
        .split("\n[[")
        .filter(|block| {
            !steps
                .iter()
                .any(|s| block.contains(&format!("\nid = \"{s}\"\n")))
        })
        .collect();
    // One file per test: tests run side by side in one process.
    let path = dir.join(format!(
        "bury-without-{}-{}.toml",
        steps.join("+"),
        std::process::id()
    ));
    std::fs::write(&path, kept.join("\n[[")).unwrap();
    path.display().to_string()
}

/// A Bury review on the process file at `path`.
async fn review_on(path: &str) -> Review {
    Review::with("bury", |cfg| {
        let p = cfg["partnership"].as_table_mut().unwrap();
        p.insert("process".into(), toml::Value::String(path.to_string()));
    })
    .await
}

/// The daemon restarted at `at` on Bury's full process file: an upgrade that adds the steps the
/// older file lacked.
async fn upgrade(r: &mut Review, at: &str) {
    let full = support::root().join("config/processes/bury.toml");
    r.restart(at, |cfg| {
        let p = cfg["partnership"].as_table_mut().unwrap();
        p.insert(
            "process".into(),
            toml::Value::String(full.display().to_string()),
        );
    })
    .await;
}

#[tokio::test]
async fn a_step_added_by_an_upgrade_sends_nothing_already_due_and_its_later_letters_as_planned() {
    let older = bury_without(&std::env::temp_dir(), &["outcome-meets", "invite"]);
    let mut r = review_on(&older).await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.decide(&case, "screening", "meets", "2026-08-20 11:00")
        .await;
    assert!(
        r.sent_to_for(REFERRER, "outcome-meets").is_empty(),
        "the older file has no such step"
    );
    // A second case, whose panel's votes reach the mailbox while the daemon is stopped.
    let other = "other.referrer@hospital.test";
    let second = r
        .referral_from(other, "Referral for a rapid review", "2026-08-20 12:00")
        .await;
    for member in SCREENING_PANEL {
        let ask = r.last_about(&second, member, "screening-request");
        r.stored(&Reply::to(&ask, member, "MEETS").raw(), "2026-08-21 10:30")
            .await;
    }

    // Upgraded at 11:00: both steps are new to this installation.
    upgrade(&mut r, "2026-08-21 11:00").await;
    r.at("2026-08-21 11:05").await;
    assert!(
        r.sent_to_for(REFERRER, "outcome-meets").is_empty(),
        "the referrer was due to hear yesterday, before the step existed here"
    );
    assert!(
        r.report(&case).await.contains("imported — not sent"),
        "recorded on the case, as a first run records what it did not send"
    );
    // The votes that came while it was stopped are decided after the start: their letter goes,
    // though it fell due (10:30) before the step was known here.
    assert_eq!(r.sent_to_for(other, "outcome-meets").len(), 1);

    // The invitations fall due on day 3, after the upgrade: they go.
    r.at("2026-08-25 10:05").await;
    assert!(!r.for_step("invite").is_empty(), "{:?}", r.timeline());
    // A referral after the upgrade gets every step.
    let next = r.referral_at("2026-08-25 11:00").await;
    r.decide(&next, "screening", "meets", "2026-08-25 12:00")
        .await;
    r.at("2026-08-25 12:05").await;
    assert_eq!(r.sent_to_for(REFERRER, "outcome-meets").len(), 1);
    let _ = std::fs::remove_file(&older);
}

#[tokio::test]
async fn a_return_receipt_step_added_by_an_upgrade_does_not_answer_returns_already_in() {
    let older = bury_without(&std::env::temp_dir(), &["return-receipt"]);
    let mut r = review_on(&older).await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.decide(&case, "screening", "meets", "2026-08-20 11:00")
        .await;
    r.add_agencies(&case, &["police", "gp"], "2026-08-20 11:30")
        .await;
    r.at("2026-08-24 10:05").await;
    let police = "ppu@police.test";
    let request = r.last_about(&case, police, "agency-request");
    let back = Reply::to(&request, police, "Our return is attached.")
        .attach("police return.docx", "UEsDBBQAAAAIAHJldHVybiBjb250ZW50");
    r.receive(&back.raw(), "2026-08-24 12:00").await;
    assert!(
        r.state(&case).await.agencies["police"]
            .returned_at
            .is_some()
    );

    upgrade(&mut r, "2026-08-24 14:00").await;
    r.at("2026-08-24 14:05").await;
    assert!(
        r.sent_to_for(police, "return-receipt").is_empty(),
        "the police's return came before the step existed here"
    );
    // The GP's return after the upgrade is confirmed.
    let gp = "gp@practice.test";
    let request = r.last_about(&case, gp, "agency-request");
    let back = Reply::to(&request, gp, "Return attached.")
        .attach("gp return.docx", "UEsDBBQAAAAIAHJldHVybiBjb250ZW50");
    r.receive(&back.raw(), "2026-08-25 09:00").await;
    assert_eq!(r.sent_to_for(gp, "return-receipt").len(), 1);
    assert!(r.sent_to_for(police, "return-receipt").is_empty());
    let _ = std::fs::remove_file(&older);
}

#[tokio::test]
async fn an_agency_asked_late_on_a_case_from_before_the_upgrade_is_not_escalated_in_a_burst() {
    // An installation whose earlier version never escalated an agency asked late on its own.
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.decide(&case, "screening", "meets", "2026-08-20 11:00")
        .await;
    r.add_agencies(&case, &["police"], "2026-08-20 11:30").await;
    // The GP is asked late, on day 7 (Mon 31 Aug is a bank holiday); the police never return.
    r.add_agencies(&case, &["gp"], "2026-09-01 09:00").await;
    r.at("2026-09-04 12:00").await;
    let manager = "manager@bury.test";
    let escalations = |r: &Review| -> Vec<String> {
        r.sent_to_for(manager, "escalate-missing")
            .iter()
            .map(|l| l.key.clone())
            .collect()
    };
    assert_eq!(escalations(&r).len(), 1, "day 10's, naming the police");
    // The earlier version kept no record of this behaviour.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", r.engine.cfg.database.display()))
        .await
        .unwrap();
    let record: String =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'steps_known:bury'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let older = record
        .replace(
            &format!(",\"{}\"", caseclerk::core::upgrade::LATE_ESCALATIONS),
            "",
        )
        .replace(
            &format!("\"{}\",", caseclerk::core::upgrade::LATE_ESCALATIONS),
            "",
        );
    assert_ne!(older, record);
    sqlx::query("UPDATE meta SET value = ? WHERE key = 'steps_known:bury'")
        .bind(&older)
        .execute(&pool)
        .await
        .unwrap();

    // Stopped since; upgraded a week later, after the GP's own deadline.
    r.restart("2026-09-14 12:00", |_| {}).await;
    r.at("2026-09-14 12:05").await;
    assert_eq!(
        escalations(&r).len(),
        1,
        "the GP's escalation fell due before this version: recorded, not sent ({:?})",
        escalations(&r)
    );
    assert!(r.report(&case).await.contains("imported — not sent"));
}

/// The cases held at a start, as `steps_held:bury` keeps them.
async fn held(r: &Review) -> String {
    r.engine
        .store
        .meta("steps_held:bury")
        .await
        .unwrap()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_case_that_cannot_be_imported_holds_only_its_own_letters_and_a_case_opened_after_writes_as_planned()
 {
    use caseclerk::core::records::CaseStatus;
    use caseclerk::shell::store::Store;
    let older = bury_without(&std::env::temp_dir(), &["outcome-meets"]);
    let mut r = review_on(&older).await;
    // A case whose history this version cannot read (an event from a newer one).
    let broken = r.referral_at("2026-08-20 10:00").await;
    let store = r.engine.store.clone();
    let broken_id = store.case_by_ref(&broken).await.unwrap().unwrap().id;
    let mut tx = store.begin().await.unwrap();
    Store::add_event(
        &mut tx,
        broken_id,
        crate::review::london("2026-08-20 10:30"),
        "mystery",
        "test",
        &serde_json::json!({ "from_a_newer_version": true }),
    )
    .await
    .unwrap();
    Store::commit(tx).await.unwrap();

    // The upgrade adds outcome-meets; the broken case cannot be imported: it alone is held.
    upgrade(&mut r, "2026-08-21 11:00").await;
    assert_eq!(
        held(&r).await,
        format!("{{\"{broken_id}\":[\"outcome-meets\"]}}")
    );
    // A referral after the upgrade: its outcome letter falls due after it, and goes.
    let other = "other.referrer@hospital.test";
    let fresh = r
        .referral_from(other, "Referral for a rapid review", "2026-08-21 12:00")
        .await;
    r.decide(&fresh, "screening", "meets", "2026-08-21 13:00")
        .await;
    r.at("2026-08-21 13:05").await;
    assert_eq!(r.sent_to_for(other, "outcome-meets").len(), 1);

    // A restart with the case still unreadable holds it still, and sends nothing again.
    r.restart("2026-08-21 15:00", |_| {}).await;
    r.at("2026-08-21 15:05").await;
    assert_eq!(
        held(&r).await,
        format!("{{\"{broken_id}\":[\"outcome-meets\"]}}")
    );
    assert_eq!(r.sent_to_for(other, "outcome-meets").len(), 1);

    // Closed, it plans nothing: the next start holds nothing.
    let mut tx = store.begin().await.unwrap();
    Store::set_case_status(&mut tx, broken_id, CaseStatus::Closed)
        .await
        .unwrap();
    Store::commit(tx).await.unwrap();
    r.restart("2026-08-21 16:00", |_| {}).await;
    assert_eq!(held(&r).await, "{}");
    let _ = std::fs::remove_file(&older);
}
