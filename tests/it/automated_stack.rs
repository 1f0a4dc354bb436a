//! The auto-acknowledging agency loop through the real mail stack: the council's front door
//! refers a child, then answers every email it gets with a fresh "Thank you for your referral"
//! (new subject, no threading, no RFC 3834 headers). Over ten ticks caseclerk sends it one
//! acknowledgement — within the cap — opens one case, and lists each receipt for a person.

use crate::support::{Harness, SHARED, referral};

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
