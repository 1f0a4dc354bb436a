//! What comes back about our letters, and what counts as one message, without servers.
//!
//! - Delivery reports: a permanent failure marks the letter undelivered and raises it to the
//!   business manager; a delay is noted on the letter and shown, never raised.
//! - Identity: two different messages sharing a Message-ID and a body are both read; the same
//!   message delivered twice (trace headers differing) is read once, with or without a Message-ID.

use crate::review::Review;
use crate::support::SHARED;

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
