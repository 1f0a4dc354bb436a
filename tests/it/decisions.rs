//! Decisions by email reply through the real mail stack: the panel's requests reach their
//! mailboxes over SMTP, their replies are read over IMAP, the quorum decides.
//!
//! The rules themselves (majorities and tie-breaks, queries, sign-off and the National Panel, and
//! the table of forged, replayed, unauthenticated and late votes) are tested without servers in
//! `votes.rs` and `full_reviews.rs`.

use crate::support::{Harness, REFERRER, SHARED, referral};
use caseclerk::core::intake::Message;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

const LA: &str = "la.rep@bury.test";
const POLICE: &str = "police.rep@police.test";
const ICB: &str = "icb.rep@icb.test";
const PANEL: [&str; 3] = [LA, POLICE, ICB];

/// A reply from `from` to `request`, first line `first`, with optional headers on top (as the
/// receiving server would add them) and the subject as a mail client writes it.
fn answer(
    from: &str,
    request: &Message,
    body: &str,
    top_headers: &[String],
    subject: Option<String>,
) -> Vec<u8> {
    let id = request.message_id.clone().unwrap_or_default();
    let mut raw = String::new();
    for h in top_headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str(&format!(
        "From: {from}\r\nTo: {SHARED}\r\nSubject: {}\r\nMessage-ID: <ans.{}.{}@test>\r\nIn-Reply-To: <{id}>\r\n\
         References: <{id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\r\nOn Tue, BSP wrote:\r\n> quoted request\r\n",
        subject.unwrap_or_else(|| format!("RE: {}", request.subject)),
        from.replace('@', "."),
        NEXT_ID.fetch_add(1, Ordering::SeqCst)
    ));
    raw.into_bytes()
}

/// The request letter a member received for the case (the first with a code in its subject).
async fn request_to(h: &Harness, member: &str, containing: &str) -> Message {
    let inbox = h.wait_inbox(member, 1).await;
    inbox
        .into_iter()
        .rev()
        .find(|m| m.subject.contains("[code ") && m.subject.contains(containing))
        .unwrap_or_else(|| panic!("{member} has a request with a code"))
}

/// Put a message in the shared mailbox as received at `at` (RFC 3339, in the past).
async fn arrive(h: &Harness, raw: &[u8], at: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    h.stack.append(SHARED, raw, t).await.expect("append");
}

/// A Bury case whose referral arrived on Thu 20 Aug 2026 at 10:00 BST (replayed in the past, so
/// the working days are the same whenever the tests run).
async fn open_bury_case(h: &Harness) {
    arrive(
        h,
        &referral("dec-1@hospital.test", "Referral for a rapid review"),
        "2026-08-20T10:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T09:01:00Z"));
    h.wait_inbox(REFERRER, 1).await;
}

#[tokio::test]
async fn a_screening_with_all_three_votes_opens_the_rapid_review_and_each_vote_is_confirmed() {
    let h = Harness::start("bury").await;
    open_bury_case(&h).await;
    for (i, member) in PANEL.iter().enumerate() {
        let req = request_to(&h, member, "Screening").await;
        let body = if i == 0 {
            "MEETS\nSerious harm; neglect suspected.\nAgencies: police, health visiting"
        } else {
            "Meets"
        };
        arrive(
            &h,
            &answer(member, &req, body, &[], None),
            &format!("2026-08-20T1{i}:30:00+01:00"),
        )
        .await;
        let out = h.tick(Some(&format!("2026-08-20T{:02}:35:00Z", 9 + i)));
        assert!(out.contains("processed 1"), "{out}");
        let got = h.wait_inbox(member, 2).await;
        assert!(
            got[1].subject.contains("has been recorded"),
            "{member}: {}",
            got[1].subject
        );
        assert!(got[1].body_text.contains("meets"), "{}", got[1].body_text);
        let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T12:00:00Z"]);
        if i < 2 {
            assert!(
                !report.contains("screening: meets ("),
                "no decision before all three: {report}"
            );
        }
    }
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T12:00:00Z"]);
    assert!(
        report.contains("decision screening: meets (all 3 voters agreed by reply"),
        "{report}"
    );
    assert!(
        report.contains("agency police added") && report.contains("agency health-visiting added"),
        "{report}"
    );
    // The referrer is told the outcome.
    let referrer = h.wait_inbox(REFERRER, 2).await;
    assert!(
        referrer[1].subject.contains("a rapid review will be held"),
        "{}",
        referrer[1].subject
    );
}
