//! What comes back about our letters, and what counts as one message, without servers.
//!
//! - Delivery reports: a permanent failure marks the letter undelivered and raises it to the
//!   business manager; a delay is noted on the letter and shown, never raised.
//! - Identity: two different messages sharing a Message-ID and a body are both read; the same
//!   message delivered twice (trace headers differing) is read once, with or without a Message-ID.

use crate::review::{Letter, Review};
use crate::support::{REFERRER, SHARED};

/// A portal's notice of a referral: a fixed Message-ID and body (a badly made notifier), its own
/// Date and Subject; `trace` stands for what the receiving servers add on top.
fn portal_notice(trace: &str, date: &str, subject: &str, message_id: bool) -> Vec<u8> {
    format!(
        "{trace}From: Referral Portal <noreply@portal.test>\r\nTo: {SHARED}\r\nSubject: {subject}\r\n\
         Date: {date}\r\n{}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         A new referral for a rapid review has been submitted on the portal.\r\n",
        if message_id { "Message-ID: <notification@portal.test>\r\n" } else { "" }
    )
    .into_bytes()
}

const VIA_MX1: &str = "Return-Path: <noreply@portal.test>\r\nDelivered-To: bsp@bury.test\r\n\
    Received: from mx1.bury.test by imap.bury.test; Mon, 7 Sep 2026 09:00:02 +0100\r\n\
    Authentication-Results: mx1.bury.test; dmarc=pass header.from=portal.test\r\n";
const VIA_MX2: &str = "Return-Path: <bounces@portal.test>\r\nDelivered-To: referrals@bury.test\r\n\
    X-Original-To: referrals@bury.test\r\n\
    Received: from mx2.bury.test by imap.bury.test; Tue, 8 Sep 2026 14:00:00 +0100\r\n\
    Authentication-Results: mx2.bury.test; dmarc=pass header.from=portal.test\r\n\
    ARC-Seal: i=1; a=rsa-sha256; cv=none; d=bury.test; s=arc; b=AAAA\r\n\
    X-MS-Exchange-Organization-Network-Message-Id: 5c1e\r\n";

#[tokio::test]
async fn two_referrals_a_portal_announced_with_one_message_id_and_one_body_both_open_a_case() {
    let mut review = Review::of("bury").await;
    let first = review
        .receive(
            &portal_notice(
                VIA_MX1,
                "Mon, 7 Sep 2026 09:00:00 +0100",
                "Rapid review referral 1041",
                true,
            ),
            "2026-09-07 09:00",
        )
        .await
        .opened
        .clone();
    let second = review
        .receive(
            &portal_notice(
                VIA_MX1,
                "Mon, 7 Sep 2026 11:20:00 +0100",
                "Rapid review referral 1042",
                true,
            ),
            "2026-09-07 11:20",
        )
        .await
        .opened
        .clone();
    assert_eq!((first.len(), second.len()), (1, 1), "{first:?} {second:?}");
    assert_ne!(first, second);
}

#[tokio::test]
async fn the_same_message_delivered_again_through_other_servers_is_read_once_with_or_without_a_message_id()
 {
    for message_id in [true, false] {
        let mut review = Review::of("bury").await;
        let date = "Mon, 7 Sep 2026 09:00:00 +0100";
        let subject = "Rapid review referral 1041";
        let once = review
            .receive(
                &portal_notice(VIA_MX1, date, subject, message_id),
                "2026-09-07 09:00",
            )
            .await;
        assert_eq!((once.processed, once.opened.len()), (1, 1));
        // Delivered again a day later: to an alias, through another server, stamped by Exchange.
        let again = review
            .receive(
                &portal_notice(VIA_MX2, date, subject, message_id),
                "2026-09-08 14:00",
            )
            .await;
        assert_eq!(
            (again.processed, again.opened.len()),
            (0, 0),
            "with Message-ID: {message_id}"
        );
    }
}

const MANAGER: &str = "manager@bury.test";

/// A Postfix delivery report about `letter` for `recipient`: `Action`/`Status` as given.
fn postfix_report(letter: &Letter, recipient: &str, action: &str, status: &str) -> Vec<u8> {
    let id = letter
        .msg
        .message_id
        .clone()
        .expect("our letters carry a Message-ID");
    let subject = if action == "delayed" {
        "Delayed Mail (still being retried)"
    } else {
        "Undelivered Mail Returned to Sender"
    };
    format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.bury.test (Mail Delivery System)\r\nTo: {SHARED}\r\n\
         Subject: {subject}\r\nDate: Mon, 24 Aug 2026 15:00:00 +0100\r\n\
         Message-Id: <report.{action}.{}@mx.bury.test>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.bury.test.\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.bury.test\r\n\r\n\
         Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{id}>\r\nTo: {recipient}\r\n\r\n--B--\r\n",
        id.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn a_delayed_report_notes_the_delay_on_the_letter_and_raises_nothing_then_a_failure_marks_it_undelivered()
 {
    let mut review = Review::of("bury").await;
    let case = review.referral_at("2026-08-20 10:00").await;
    let ack = review.last_to(REFERRER, "acknowledge");
    let sent_before = review.letters().len();

    // Four hours on, Postfix warns the acknowledgement is delayed: noted, shown, not raised.
    review
        .receive(
            &postfix_report(&ack, REFERRER, "delayed", "4.4.1"),
            "2026-08-20 14:05",
        )
        .await;
    review.at("2026-08-21 10:00").await;
    assert!(
        review
            .sent_to(MANAGER)
            .iter()
            .all(|l| l.step != "notice-undelivered"),
        "a delay is never raised as undelivered:\n{}",
        review.timeline().join("\n")
    );
    assert_eq!(
        review.letters().len(),
        sent_before,
        "nothing is sent about a delay"
    );
    let state = review.state(&case).await;
    assert_eq!(state.delayed.len(), 1, "the delay is noted on the letter");
    assert!(
        state.letters.values().all(|l| l.undelivered.is_none()),
        "the letter is still sent, not undelivered"
    );
    let report = review.report(&case).await;
    assert!(
        report.contains("delayed, still trying:"),
        "the history: {report}"
    );
    assert!(
        report.contains("sent") && report.contains("— delayed, still trying (reported"),
        "the letters list: {report}"
    );
    assert!(!report.contains("UNDELIVERED"), "{report}");

    // Days later the server gives up: now it is undelivered, and the business manager is told once.
    review
        .receive(
            &postfix_report(&ack, REFERRER, "failed", "4.4.7"),
            "2026-08-25 10:05",
        )
        .await;
    review.at("2026-08-25 11:00").await;
    let notices = review.sent_to_for(MANAGER, "notice-undelivered");
    assert_eq!(notices.len(), 1, "{}", review.timeline().join("\n"));
    let report = review.report(&case).await;
    assert!(report.contains("UNDELIVERED"), "{report}");
}

#[tokio::test]
async fn a_permanent_failure_marks_the_letter_undelivered_and_tells_the_business_manager() {
    let mut review = Review::of("bury").await;
    let case = review.referral_at("2026-08-20 10:00").await;
    let ack = review.last_to(REFERRER, "acknowledge");
    review
        .receive(
            &postfix_report(&ack, REFERRER, "failed", "5.1.1"),
            "2026-08-20 10:05",
        )
        .await;
    review.at("2026-08-20 11:00").await;
    assert_eq!(review.sent_to_for(MANAGER, "notice-undelivered").len(), 1);
    let state = review.state(&case).await;
    assert!(state.delayed.is_empty());
    assert!(
        state
            .letters
            .iter()
            .any(|((step, _), l)| step == "acknowledge" && l.undelivered.is_some()),
        "{:?}",
        state.letters
    );
}

#[tokio::test]
async fn a_report_with_a_failed_and_a_delayed_recipient_marks_the_letter_undelivered_for_the_failed_one()
 {
    let mut review = Review::of("bury").await;
    let case = review.referral_at("2026-08-20 10:00").await;
    let ack = review.last_to(REFERRER, "acknowledge");
    let id = ack.msg.message_id.clone().unwrap();
    let raw = format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.bury.test\r\nTo: {SHARED}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-Id: <report.mixed@mx.bury.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.bury.test\r\n\r\n\
         Final-Recipient: rfc822; someone.else@hospital.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n\
         Final-Recipient: rfc822; {REFERRER}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{id}>\r\n\r\n--B--\r\n"
    );
    review.receive(raw.as_bytes(), "2026-08-20 10:05").await;
    let report = review.report(&case).await;
    assert!(
        report.contains("delivery failed for good to 1 of its 1 addressee(s)"),
        "{report}"
    );
}

#[test]
fn reports_without_machine_readable_status_are_read_by_their_words() {
    use caseclerk::core::classify::{Delivery, delivery_from_words};
    use caseclerk::core::intake::parse;
    let report = |subject: &str, body: &str| {
        let raw = format!(
            "From: MAILER-DAEMON@mx.test\r\nReturn-Path: <>\r\nSubject: {subject}\r\n\r\n{body}\r\n"
        );
        delivery_from_words(&parse(raw.as_bytes())).0
    };
    for (subject, body) in [
        (
            "Delivery delayed:RR-2026-0001 Screening decision needed",
            "This message hasn't been delivered yet. Delivery will continue to be attempted.",
        ),
        (
            "Delivery Status Notification (Delay)",
            "** Delivery incomplete **\r\nThere was a temporary problem delivering your message. Gmail will retry for 47 more hours. You'll be notified if the delivery fails permanently.",
        ),
        (
            "Delayed Mail (still being retried)",
            "THIS IS A WARNING ONLY. Your message could not be delivered for more than 4 hour(s).\r\nIt will be retried until it is 5 day(s) old.",
        ),
        (
            "Warning: could not send message for past 4 hours",
            "Will keep trying until message is 5 days old",
        ),
        (
            "Mail delivery notice",
            "Delivery has been delayed to one or more recipients.",
        ),
    ] {
        assert_eq!(report(subject, body), Delivery::Delayed, "{subject}");
    }
    for (subject, body) in [
        (
            "Undeliverable: RR-2026-0001",
            "Delivery has failed to these recipients or groups",
        ),
        (
            "Undelivered Mail Returned to Sender",
            "your message could not\r\nbe delivered to one or more recipients",
        ),
        (
            "Delivery Status Notification (Failure)",
            "** Address not found **",
        ),
        ("Mail System Error - Returned Mail", "Something went wrong."),
    ] {
        assert_eq!(report(subject, body), Delivery::Failed, "{subject}");
    }
}

#[tokio::test]
async fn a_report_where_only_another_address_failed_and_the_addressee_is_delayed_is_a_delay_for_the_letter()
 {
    let mut review = Review::of("bury").await;
    let case = review.referral_at("2026-08-20 10:00").await;
    let ack = review.last_to(REFERRER, "acknowledge");
    let id = ack.msg.message_id.clone().unwrap();
    let raw = format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.bury.test\r\nTo: {SHARED}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-Id: <report.forward@mx.bury.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.bury.test\r\n\r\n\
         Final-Recipient: rfc822; {REFERRER}\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n\
         Final-Recipient: rfc822; old.forward@elsewhere.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{id}>\r\n\r\n--B--\r\n"
    );
    review.receive(raw.as_bytes(), "2026-08-20 10:05").await;
    review.at("2026-08-20 11:00").await;
    assert!(review.sent_to_for(MANAGER, "notice-undelivered").is_empty());
    let state = review.state(&case).await;
    assert_eq!(state.delayed.len(), 1);
    assert!(state.letters.values().all(|l| l.undelivered.is_none()));
}
