//! Dates that follow what actually happened on a case, not only the process file's day numbers:
//! an agency asked late is given its time to return, and what waits for the returns waits for it;
//! a letter the process plans after the meeting never goes before it (without servers, see
//! `review.rs`).
//!
//! Bury, day 0 Tue 3 Mar 2026: day 1 Wed 4, day 2 Thu 5, day 7 Thu 12, day 9 Mon 16, day 10
//! Tue 17, day 11 Wed 18, day 12 Thu 19, day 13 Fri 20, day 14 Mon 23, day 16 Wed 25, day 18
//! Fri 27 Mar.

use crate::full_reviews::{CSC, GP, HV, POLICE, SCHOOL, SCREENING_PANEL};
use crate::review::{Reply, Review, london};
use crate::support::REFERRER;

const DOCX_B64: &str = "UEsDBBQAAAAIAHJldHVybiBjb250ZW50";

/// A Bury referral on day 0 that the screening panel queries on day 1; the referrer answers on
/// day 9 and the panel decides MEETS on day 11 (Wed 18 Mar) at 09:30, naming five agencies.
async fn screened_in_on_day_11() -> (Review, String) {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-03-03 10:00").await;
    r.vote_all(
        "screening-request",
        SCREENING_PANEL,
        "QUERY\nWhat was the date of the incident?",
        "2026-03-04 11:00",
    )
    .await;
    let query = r.last_to(REFERRER, "query-referrer");
    r.reply(
        &query,
        REFERRER,
        "The incident was on Sunday 1 March.",
        "2026-03-16 15:00",
    )
    .await;
    r.at("2026-03-18 09:30").await;
    for member in SCREENING_PANEL {
        let ask = r.last_to(member, "screening-request");
        r.reply(
            &ask,
            member,
            "MEETS\nAgencies: police, health visiting, St Mary's primary, gp, csc",
            "2026-03-18 09:30",
        )
        .await;
    }
    (r, case)
}

#[tokio::test]
async fn an_agency_asked_on_day_11_has_seven_working_days_to_return_and_the_papers_wait_for_them() {
    let (mut r, case) = screened_in_on_day_11().await;
    r.at("2026-03-18 09:31").await;
    r.at("2026-03-18 09:40").await;
    // Asked at once, the day-2 request gives the process's seven working days from today: day 18.
    let requests = r.for_step("agency-request");
    assert_eq!(requests.len(), 5, "{:#?}", r.timeline());
    for l in &requests {
        assert_eq!(l.at, london("2026-03-18 09:30"), "{}", l.line());
        assert!(
            l.msg
                .subject
                .contains("reply by Friday 27 March 2026 at 17:00"),
            "{}",
            l.msg.subject
        );
    }
    // Nothing that waits for the returns goes in the passes after the requests.
    assert!(
        r.for_step("escalate-missing").is_empty(),
        "{:#?}",
        r.timeline()
    );
    assert!(
        r.for_step("circulate-papers").is_empty(),
        "{:#?}",
        r.timeline()
    );
    assert!(r.report(&case).await.contains("Fri 27 Mar 2026 17:00"));

    // The police and health visiting return; the others are chased two working days before
    // their deadline (day 16, Wed 25 Mar), as the day-7 chase is two before day 9.
    let police = r.last_to(POLICE, "agency-request");
    r.receive(
        &Reply::to(&police, POLICE, "Please find our return attached.")
            .attach("police return.docx", DOCX_B64)
            .raw(),
        "2026-03-20 11:00",
    )
    .await;
    let hv = r.last_to(HV, "agency-request");
    r.reply(&hv, HV, "Nil return: no involvement.", "2026-03-23 10:00")
        .await;
    r.at("2026-03-25 09:59").await;
    assert!(r.for_step("chase").is_empty(), "{:#?}", r.timeline());
    r.at("2026-03-25 10:00").await;
    let chased: Vec<String> = r
        .for_step("chase")
        .iter()
        .map(|l| {
            assert_eq!(l.at, london("2026-03-25 10:00"), "{}", l.line());
            l.msg.subject.clone()
        })
        .collect();
    assert_eq!(chased.len(), 3, "{:#?}", r.timeline());
    for s in &chased {
        assert!(s.contains("Friday 27 March 2026 at 17:00"), "{s}");
    }
    for who in [SCHOOL, GP, CSC] {
        assert_eq!(r.sent_to_for(who, "chase").len(), 1, "{who}");
    }
    let school = r.last_to(SCHOOL, "agency-request");
    r.receive(
        &Reply::to(&school, SCHOOL, "Our return is attached.")
            .attach("school return.docx", DOCX_B64)
            .raw(),
        "2026-03-27 16:30",
    )
    .await;

    // The pack and the escalation go when the returns are due, with what came in.
    r.at("2026-03-27 16:59").await;
    assert!(
        r.for_step("circulate-papers").is_empty(),
        "{:#?}",
        r.timeline()
    );
    r.at("2026-03-27 17:00").await;
    let pack = r.for_step("circulate-papers");
    assert_eq!(pack.len(), 1, "{:#?}", r.timeline());
    assert_eq!(pack[0].at, london("2026-03-27 17:00"));
    let files = pack[0].attachment_names();
    for f in ["police return.docx", "school return.docx"] {
        assert!(files.iter().any(|a| a.contains(f)), "{f}: {files:?}");
    }
    let escalation = r.for_step("escalate-missing");
    assert_eq!(escalation.len(), 1, "{:#?}", r.timeline());
    assert_eq!(escalation[0].at, london("2026-03-27 17:00"));
    let text = escalation[0].msg.body_text.clone();
    assert!(text.contains("GP Practice"), "{text}");
    assert!(!text.contains("Greater Manchester Police"), "{text}");
}

/// A Bury referral on day 0 (Tue 3 Mar 2026) screened in on day 1, with the example
/// configuration changed by `edit`.
async fn screened_in_on_day_1(edit: fn(&mut toml::Table)) -> (Review, String) {
    let mut r = Review::with("bury", edit).await;
    let case = r.referral_at("2026-03-03 10:00").await;
    r.vote_all(
        "screening-request",
        SCREENING_PANEL,
        "MEETS\nAgencies: police, gp",
        "2026-03-04 11:00",
    )
    .await;
    (r, case)
}

fn no_change(_: &mut toml::Table) {}

#[tokio::test]
async fn the_sign_off_request_waits_for_a_meeting_the_business_unit_adjourned() {
    let (mut r, case) = screened_in_on_day_1(no_change).await;
    r.at("2026-03-16 09:00").await;
    // Day 12's meeting (Thu 19 Mar 10:00) is adjourned to day 14, Mon 23 Mar at 10:00.
    caseclerk::shell::operator::reschedule(
        &r.engine.cfg,
        &r.engine.store,
        &case,
        "meeting",
        london("2026-03-23 10:00"),
        "the chair is ill",
        "test",
        r.now(),
    )
    .await
    .unwrap();
    r.at("2026-03-16 09:01").await;
    // Day 13, when the request was planned: nothing asks the partners to sign off yet.
    r.at("2026-03-20 17:00").await;
    assert!(
        r.for_step("signoff-request").is_empty(),
        "{:#?}",
        r.timeline()
    );
    // It goes when the meeting has ended (two hours), not before.
    r.at("2026-03-23 11:59").await;
    assert!(
        r.for_step("signoff-request").is_empty(),
        "{:#?}",
        r.timeline()
    );
    r.at("2026-03-23 12:00").await;
    let asked = r.for_step("signoff-request");
    assert_eq!(asked.len(), 3, "{:#?}", r.timeline());
    for l in asked {
        assert_eq!(l.at, london("2026-03-23 12:00"), "{}", l.line());
    }
}

/// Day 13, Fri 20 Mar 2026, is a closure day of the office.
fn closed_on_day_13(cfg: &mut toml::Table) {
    let mut closure = toml::Table::new();
    closure.insert("date".into(), "2026-03-20".into());
    closure.insert("reason".into(), "staff training".into());
    cfg["calendar"]
        .as_table_mut()
        .unwrap()
        .insert("closures".into(), toml::Value::Array(vec![closure.into()]));
}

#[tokio::test]
async fn a_closure_day_never_moves_the_sign_off_request_before_the_meeting_it_follows() {
    let (mut r, case) = screened_in_on_day_1(closed_on_day_13).await;
    // Moved back from the closure day (day 13) to day 12, the meeting's day (10:00 to 12:00):
    // it goes when the meeting has ended, not at 09:00 before it.
    r.at("2026-03-19 11:59").await;
    assert!(
        r.for_step("signoff-request").is_empty(),
        "{:#?}",
        r.timeline()
    );
    // `caseclerk case` says when and why.
    let report = r.report(&case).await;
    assert!(
        report.contains(
            "the office is closed Fri 20 Mar staff training (closure day), so it goes on the last \
             open working day before: Thu 19 Mar 2026; not before the meeting has ended \
             (Thu 19 Mar 2026 12:00)"
        ),
        "{report}"
    );
    r.at("2026-03-19 12:00").await;
    let asked = r.for_step("signoff-request");
    assert_eq!(asked.len(), 3, "{:#?}", r.timeline());
    for l in asked {
        assert_eq!(l.at, london("2026-03-19 12:00"), "{}", l.line());
    }
}
