//! The auto-acknowledging agency loop through the real mail stack: the council's front door
//! refers a child, then answers every email it gets with a fresh "Thank you for your referral"
//! (new subject, no threading, no RFC 3834 headers). Over ten ticks caseclerk sends it one
//! acknowledgement — within the cap — opens one case, and lists each receipt for a person.
//! A panel member's auto-acknowledgement that keeps the vote code is driven the same way (no
//! answer, no vote), and a vote under an Exchange external-sender banner counts.

use crate::support::{Harness, REFERRER, SHARED, referral};
use caseclerk::core::intake::Message;

/// Children's Social Care's contact in `config/example.toml`, acting as the front door.
const FRONT_DOOR: &str = "csc@bury.test";
/// The default `[limits] answers_per_address_per_day`.
const ANSWER_CAP: usize = 5;

fn receipt(n: usize) -> Vec<u8> {
    format!(
        "From: Children's Services Front Door <{FRONT_DOOR}>\r\nTo: {SHARED}\r\n\
         Subject: Thank you for your referral - Ref FD-2026-{n:05}\r\n\
         Message-ID: <fd-receipt-{n}@bury.test>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\n\
         Thread-Topic: Thank you for your referral - Ref FD-2026-{n:05}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Thank you for your referral to Bury Children's Services Front Door.\r\n\r\n\
         This is an automated response to confirm that your email has been received. We aim to \r\n\
         respond within 3 working days.\r\n\r\nYour reference number is FD-2026-{n:05}.\r\n\r\n\
         If your concern is urgent, please call 0161 000 0000.\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn an_auto_acknowledging_front_door_is_answered_at_most_the_cap_over_ten_ticks() {
    let h = Harness::start("bury").await;
    let mut referral = String::from_utf8(referral(
        "fd-referral@bury.test",
        "Referral for a rapid review",
    ))
    .unwrap();
    referral = referral.replace(
        "Dr Test Referrer <referrer@hospital.test>",
        &format!("Front Door <{FRONT_DOOR}>"),
    );
    h.deliver(FRONT_DOOR, SHARED, referral.as_bytes()).await;
    let mut answered = 0;
    let mut n = 0;
    for _ in 0..10 {
        h.tick(None);
        let got = h.settled_count(FRONT_DOOR).await;
        // The front door's rule answers every letter it received since the last tick.
        for _ in answered..got {
            n += 1;
            h.deliver(FRONT_DOOR, SHARED, &receipt(n)).await;
        }
        answered = got;
    }
    h.tick(None);
    let letters = h.settled_count(FRONT_DOOR).await;
    assert!(letters <= ANSWER_CAP, "{letters} letters to the front door");
    assert_eq!(letters, 1, "only the acknowledgement of its referral");
    let cases = h.ok(&["cases"]);
    assert_eq!(cases.matches("RR-").count(), 1, "{cases}");
    let triage = h.ok(&["triage"]);
    assert_eq!(
        triage.matches("rule automated_wording").count(),
        n,
        "{triage}"
    );
}

const LA: &str = "la.rep@bury.test";
const POLICE: &str = "police.rep@police.test";
const ICB: &str = "icb.rep@icb.test";

/// Subjects of the letters sent in answer to a vote (`vote-confirmed`, `vote-unclear`).
fn is_vote_answer(m: &Message) -> bool {
    m.subject.contains("Your reply has been recorded")
        || m.subject
            .contains("Please reply again: your answer was not clear")
}

/// A reply from `from` to `letter` as a mail client writes it: threaded, subject `subject`, the
/// letter quoted under the text.
fn reply_to(from: &str, letter: &Message, subject: &str, body: &str, n: usize) -> Vec<u8> {
    let id = letter.message_id.clone().unwrap_or_default();
    format!(
        "From: {from}\r\nTo: {SHARED}\r\nSubject: {subject}\r\n\
         Message-ID: <auto.{n}.{}@test>\r\nIn-Reply-To: <{id}>\r\nReferences: <{id}>\r\n\
         Date: Thu, 20 Aug 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\r\n\
         On Thu, 20 Aug 2026, BSP wrote:\r\n> quoted letter\r\n",
        from.replace('@', ".")
    )
    .into_bytes()
}

/// Put a message in the shared mailbox as received at `at` (RFC 3339, in the past).
async fn arrive(h: &Harness, raw: &[u8], at: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    h.stack.append(SHARED, raw, t).await.expect("append");
}

/// A Bury case whose referral arrived on Thu 20 Aug 2026 at 10:00 BST (replayed in the past, so
/// the working days are the same whenever the tests run); the panel is asked at the first tick.
async fn open_bury_case(h: &Harness, id: &str) {
    arrive(
        h,
        &referral(id, "Referral for a rapid review"),
        "2026-08-20T10:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T09:01:00Z"));
    h.wait_inbox(REFERRER, 1).await;
}

#[tokio::test]
async fn a_panel_member_auto_acknowledging_with_the_vote_code_gets_no_answer_and_casts_no_vote_over_ten_ticks()
 {
    let h = Harness::start("bury").await;
    open_bury_case(&h, "auto-member@hospital.test").await;
    h.wait_inbox(LA, 1).await;
    let mut answered = 0;
    let mut n = 0;
    // Ten ticks an hour apart on Thu 20 Aug 2026; after each, the member's mailbox rule answers
    // every letter it received since the last one, keeping the subject (and so the vote code).
    for hour in 10..20 {
        let inbox = h.inbox(LA).await;
        for letter in &inbox[answered..] {
            n += 1;
            let auto_ack = reply_to(
                LA,
                letter,
                &format!("RE: {}", letter.subject),
                "Thank you for your email.\r\n\r\nI am working reduced hours this week and will \
                 reply as soon as I can. If your query is urgent, please contact the safeguarding \
                 team on 0161 000 0001.",
                n,
            );
            arrive(&h, &auto_ack, &format!("2026-08-20T{:02}:30:00Z", hour - 1)).await;
        }
        answered = inbox.len();
        h.tick(Some(&format!("2026-08-20T{hour:02}:01:00Z")));
        h.settled_count(LA).await;
    }
    let inbox = h.inbox(LA).await;
    let answers = inbox.iter().filter(|m| is_vote_answer(m)).count();
    assert!(answers <= ANSWER_CAP, "{answers} answers to the member");
    assert_eq!(
        answers,
        0,
        "no confirmation and no ask-again: {:?}",
        inbox.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(n >= 1, "the member's rule answered the screening request");
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T20:00:00Z"]);
    assert!(report.contains("automatic reply"), "{report}");
    assert!(!report.contains("vote on screening"), "{report}");
    assert!(!report.contains("notice-vote"), "{report}");
    assert!(!report.contains("decision screening"), "{report}");
    let triage = h.ok(&["triage"]);
    assert!(
        !triage.contains("rule vote_unclear") && !triage.contains("answer_cap"),
        "{triage}"
    );
}

#[tokio::test]
async fn a_vote_under_an_external_sender_banner_counts_and_with_the_other_two_takes_the_decision() {
    let h = Harness::start("bury").await;
    open_bury_case(&h, "banner-vote@hospital.test").await;
    for (i, member) in [POLICE, LA, ICB].iter().enumerate() {
        let request = h.request_with_code(member).await;
        let (subject, body) = if i == 0 {
            (
                format!("[EXTERNAL] RE: {}", request.subject),
                "CAUTION: This email originated from outside of the organisation. Do not click \
                 links or open attachments unless you recognise the sender and know the content \
                 is safe.\r\n\r\nMEETS\r\nClear evidence of serious harm."
                    .to_string(),
            )
        } else {
            (format!("RE: {}", request.subject), "MEETS".to_string())
        };
        arrive(
            &h,
            &reply_to(member, &request, &subject, &body, i),
            &format!("2026-08-20T1{i}:30:00+01:00"),
        )
        .await;
        h.tick(Some(&format!("2026-08-20T{:02}:35:00Z", 9 + i)));
        let got = h.wait_inbox(member, 2).await;
        assert!(
            got[1].subject.contains("Your reply has been recorded"),
            "{member}: {}",
            got[1].subject
        );
        if i == 0 {
            let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T12:00:00Z"]);
            assert!(
                report.contains(&format!("vote on screening from {POLICE}: meets")),
                "{report}"
            );
            assert!(!report.contains("decision screening"), "{report}");
        }
    }
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T12:00:00Z"]);
    assert!(
        report.contains("decision screening: meets (all 3 voters agreed by reply"),
        "{report}"
    );
    let referrer = h.wait_inbox(REFERRER, 2).await;
    assert!(
        referrer[1].subject.contains("a rapid review will be held"),
        "{}",
        referrer[1].subject
    );
}
