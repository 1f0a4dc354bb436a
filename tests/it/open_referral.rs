//! `caseclerk open-referral`: a referral the daemon did not recognise, waiting in triage, opened
//! as a new case by a person — through the core path a classified referral takes (day 0 from
//! when the message reached the mailbox, its letters planned by the normal pass), recorded with
//! who and why, opened once however often the command is repeated, and refused with its reason
//! otherwise. Server-free (the review harness), plus the real binary for the command line.

use crate::review::Review;
use crate::support::{self, said};
use crate::web::LA;
use caseclerk::shell::operator::{self, OperatorError};
use caseclerk::shell::store::Store;

/// A nurse's first referral, from an address the directory does not know and with a subject the
/// classifier does not read as a referral: it waits in triage.
const NURSE: &str = "nurse@surgery.test";
const STRAY: &[u8] = b"From: A Practice Nurse <nurse@surgery.test>\r\nTo: bsp@bury.test\r\nSubject: Concerns about a child\r\nMessage-ID: <nurse-1@surgery.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nA child was brought to the surgery with injuries last night.\r\n";

async fn waiting(r: &mut Review, when: &str) -> i64 {
    r.receive(STRAY, when).await;
    let triage = r.engine.store.triage().await.unwrap();
    assert_eq!(triage.len(), 1, "the nurse's message waits in triage");
    triage[0].id
}

async fn open(
    r: &Review,
    message: i64,
    area: Option<&str>,
    reason: &str,
) -> Result<String, OperatorError> {
    let (cfg, store) = (&r.engine.cfg, &r.engine.store);
    operator::open_referral(cfg, store, message, area, reason, "operator:casey", r.now()).await
}

#[tokio::test]
async fn a_referral_opened_from_triage_counts_day_0_from_its_receipt_and_its_letters_go_as_for_any_referral()
 {
    let mut r = Review::of("bury").await;
    let m = waiting(&mut r, "2026-08-20 16:30").await;
    // A referral the classifier recognised, received at the same instant: the yardstick.
    let classified = r.referral_at("2026-08-20 16:30").await;
    r.at("2026-08-21 08:50").await;
    let out = support::cli(
        &r.config_path(),
        &[
            "open-referral",
            &m.to_string(),
            "--reason",
            "a GP surgery's referral from a new address",
            "--by",
            "casey",
            "--now",
            "2026-08-21T08:55:00Z",
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    let reference = said(&out)
        .split_whitespace()
        .find(|w| w.starts_with("RR-"))
        .map(|w| w.trim_end_matches(';').to_string())
        .unwrap_or_else(|| panic!("no reference in: {}", said(&out)));
    let (opened, yardstick) = (r.state(&reference).await, r.state(&classified).await);
    assert_eq!(opened.received_at, yardstick.received_at);
    assert_eq!(
        opened.day0, yardstick.day0,
        "day 0 as for a classified referral"
    );
    assert_eq!(opened.referrer.as_deref(), Some(NURSE));
    assert!(
        r.engine.store.triage().await.unwrap().is_empty(),
        "off the triage list"
    );

    r.at("2026-08-21 10:00").await;
    let acknowledged = r.sent_to_for(NURSE, "acknowledge");
    assert_eq!(acknowledged.len(), 1, "{:#?}", r.timeline());
    r.last_about(&reference, LA, "screening-request");

    let row = r
        .engine
        .store
        .case_by_ref(&reference)
        .await
        .unwrap()
        .unwrap();
    let events = r.engine.store.events(row.id).await.unwrap();
    let by_hand: Vec<_> = events
        .iter()
        .filter(|e| e.actor == "operator:casey")
        .collect();
    let kinds: Vec<&str> = by_hand.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["opened", "note"], "who opened it, and why");
    assert!(
        by_hand[1]
            .data
            .to_string()
            .contains("a GP surgery's referral from a new address")
    );
}

#[tokio::test]
async fn opening_the_same_message_again_is_refused_and_opens_nothing() {
    let mut r = Review::of("bury").await;
    let m = waiting(&mut r, "2026-08-20 10:00").await;
    let reference = open(&r, m, None, "a referral").await.expect("opened");
    let again = open(&r, m, None, "a referral").await;
    assert!(
        matches!(&again, Err(OperatorError::AlreadyOnCase { case, .. }) if *case == reference),
        "{again:?}"
    );
    assert_eq!(r.engine.store.case_refs().await.unwrap(), [reference]);
    r.at("2026-08-21 10:00").await;
    assert_eq!(r.sent_to_for(NURSE, "acknowledge").len(), 1);
}

#[tokio::test]
async fn opening_is_refused_without_a_reason_for_an_unknown_area_and_for_a_message_not_in_triage() {
    let mut r = Review::of("bury").await;
    let m = waiting(&mut r, "2026-08-20 10:00").await;
    let refused = |e: Result<String, OperatorError>| e.expect_err("refused").to_string();
    assert!(refused(open(&r, m, None, " ").await).contains("give a reason"));
    assert!(
        refused(open(&r, m, Some("Narnia"), "a referral").await).contains("has no area `Narnia`")
    );
    assert!(refused(open(&r, 9999, None, "a referral").await).contains("no stored message 9999"));
    let classified = r.referral_at("2026-08-20 10:05").await;
    let filed = r
        .engine
        .store
        .case_by_ref(&classified)
        .await
        .unwrap()
        .unwrap();
    let its_referral = r.state(&classified).await.messages[0];
    let on_case = refused(open(&r, its_referral, None, "a referral").await);
    assert!(
        on_case.contains(&format!("already on case {}", filed.reference)),
        "{on_case}"
    );
    let (store, now) = (&r.engine.store, r.now());
    operator::not_case_business(store, m, "a newsletter", "operator:casey", now)
        .await
        .unwrap();
    let ignored = refused(open(&r, m, None, "a referral").await);
    assert!(
        ignored.contains("not waiting for a person (it is ignored)"),
        "{ignored}"
    );
    assert_eq!(r.engine.store.case_refs().await.unwrap(), [classified]);
}

#[tokio::test]
async fn a_message_one_person_took_off_the_triage_list_is_not_filed_again_by_another() {
    let mut r = Review::of("bury").await;
    let m = waiting(&mut r, "2026-08-20 10:00").await;
    let (store, now) = (&r.engine.store, r.now());
    // Both saw it waiting; the first change lands, the second finds it gone and changes nothing.
    let why = serde_json::json!({"by": "operator:casey", "reason": "a newsletter"});
    let mut first = store.begin().await.unwrap();
    let took = Store::file_from_triage(
        &mut first,
        m,
        "ignored",
        "not_case_business",
        &why,
        None,
        now,
    );
    assert!(took.await.unwrap());
    Store::commit(first).await.unwrap();
    let by = serde_json::json!({"by": "operator:sam"});
    let mut second = store.begin().await.unwrap();
    let again = Store::file_from_triage(
        &mut second,
        m,
        "filed",
        "attached_by_hand",
        &by,
        Some(1),
        now,
    );
    assert!(!again.await.unwrap());
    drop(second);
    assert_eq!(
        store.message_state(m).await.unwrap(),
        Some(("ignored".to_string(), None))
    );
}
