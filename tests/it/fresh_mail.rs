//! Fresh mail from an agency — no thread, no case reference — is taken for its return only while
//! that return is awaited on one open case: asked, not yet returned. Before the request goes, or
//! once the return is in, it waits for a person (a police force is one mail domain: another
//! officer's new notification must never become this case's return).

use crate::review::Review;

/// A new message (no thread, no reference) from someone at the police, with a document.
fn from_the_police(id: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: A Police Officer <a.officer@police.test>\r\nTo: bsp@bury.test\r\nSubject: {subject}\r\nMessage-ID: <{id}@police.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nPlease find attached.\r\n--b\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document; name=\"account.docx\"\r\nContent-Disposition: attachment; filename=\"account.docx\"\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBBQAAAAIAHJldHVybiBjb250ZW50\r\n--b--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn an_agencys_fresh_mail_is_its_return_only_while_that_return_is_awaited() {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.decide(&case, "screening", "meets", "2026-08-20 11:00")
        .await;
    r.add_agencies(&case, &["police"], "2026-08-20 11:30").await;
    let triaged = |r: &Review| {
        let store = r.engine.store.clone();
        async move { store.triage().await.unwrap().len() }
    };

    // Before the request (day 2, Mon 24 Aug): for a person.
    r.receive(
        &from_the_police("early", "Initial account"),
        "2026-08-21 09:00",
    )
    .await;
    assert_eq!(triaged(&r).await, 1);
    assert!(
        r.state(&case).await.agencies["police"]
            .returned_at
            .is_none()
    );

    // Asked and awaited: the police's return.
    r.receive(&from_the_police("return", "Chronology"), "2026-08-24 12:00")
        .await;
    assert!(
        r.state(&case).await.agencies["police"]
            .returned_at
            .is_some()
    );
    assert_eq!(triaged(&r).await, 1);

    // Returned: the next fresh message (another officer, another child) is for a person.
    r.receive(&from_the_police("later", "Op Larch"), "2026-08-25 09:00")
        .await;
    assert_eq!(triaged(&r).await, 2);
}

#[tokio::test]
async fn an_agency_on_two_cases_writing_fresh_mail_is_left_for_a_person_even_if_one_has_its_return()
{
    let mut r = Review::of("bury").await;
    let a = r.referral_at("2026-08-20 10:00").await;
    let b = r
        .referral_from(
            "other@hospital.test",
            "Referral for a rapid review",
            "2026-08-20 10:30",
        )
        .await;
    for (case, m) in [(&a, "00"), (&b, "05")] {
        r.decide(case, "screening", "meets", &format!("2026-08-20 11:{m}"))
            .await;
    }
    for (case, m) in [(&a, "30"), (&b, "35")] {
        r.add_agencies(case, &["police"], &format!("2026-08-20 11:{m}"))
            .await;
    }
    // B's police return is in (a reply to B's request); A's is awaited.
    r.at("2026-08-24 10:30").await;
    let request = r.last_about(&b, "ppu@police.test", "agency-request");
    let returned = crate::review::Reply::to(&request, "ppu@police.test", "Return attached.")
        .attach("return.docx", "UEsDBBQAAAAIAHJldHVybiBjb250ZW50");
    r.receive(&returned.raw(), "2026-08-24 12:00").await;
    assert!(r.state(&b).await.agencies["police"].returned_at.is_some());
    r.receive(
        &from_the_police("two-cases", "Op Larch"),
        "2026-08-25 09:00",
    )
    .await;
    assert!(r.state(&a).await.agencies["police"].returned_at.is_none());
    assert_eq!(r.engine.store.triage().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_return_asked_for_in_a_later_round_of_the_screening_is_still_awaited() {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    let panel = crate::full_reviews::SCREENING_PANEL;
    r.vote_all(
        "screening-request",
        panel,
        "QUERY\nHow old is the child?",
        "2026-08-20 11:00",
    )
    .await;
    let query = r.last_to(crate::support::REFERRER, "query-referrer");
    r.reply(
        &query,
        crate::support::REFERRER,
        "The child is 4; the incident was on Monday.",
        "2026-08-20 12:00",
    )
    .await;
    r.vote_all("screening-request", panel, "MEETS", "2026-08-20 14:00")
        .await;
    r.add_agencies(&case, &["police"], "2026-08-20 14:30").await;
    r.at("2026-08-24 11:00").await;
    assert!(
        r.letters()
            .iter()
            .any(|l| l.step == "agency-request" && l.key.ends_with("#r1")),
        "{:#?}",
        r.timeline()
    );
    r.receive(&from_the_police("round", "Chronology"), "2026-08-24 12:00")
        .await;
    assert!(
        r.state(&case).await.agencies["police"]
            .returned_at
            .is_some()
    );
}
