//! caseclerk on a Microsoft 365 shared mailbox, against the local stand-in (a token issuer with
//! Entra ID's answers; Dovecot and Postfix taking XOAUTH2): app-only login for IMAP and SMTP,
//! clear errors that keep letters pending, and every letter filed once in Sent Items.

use crate::support::{CLIENT_ID, CLIENT_SECRET, Harness, REFERRER, SHARED, referral};

#[tokio::test]
async fn a_referral_is_read_and_acknowledged_with_both_logins_on_oauth2_and_one_token() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("m365-1@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let out = h.tick(None);
    assert!(out.contains("opened RR-"), "{out}");
    assert_eq!(h.settled_count(REFERRER).await, 1, "the acknowledgement");
    let issuer = h.stack.issuer.as_ref().unwrap();
    assert_eq!(
        issuer.issued(),
        1,
        "one token served the IMAP login and every letter of the pass"
    );
    let _ = (CLIENT_ID, CLIENT_SECRET);
}
