//! The daemon killed with `kill -9` at random while it sends, 30 times, the server keeping its own
//! copy of each letter in the sent folder (`sent_copy = "server"`): no letter is lost, and a
//! letter left in doubt by a kill is settled by that copy instead of being sent again.
//!
//! What is guaranteed, and so asserted: a letter goes twice only if the daemon resent it in
//! doubt, and it resends only a letter whose copy was not in the folder after the grace (5 s
//! here) — which, for a letter Postfix accepted, means its copy took longer than that to reach
//! Dovecot. On a healthy stack that does not happen, so the test allows at most one duplicate in
//! 30 kills (a very loaded machine), not the ~20 the blind resend gave. The long run, 1,000
//! kills, is `caseclerk chaos --kills 1000`; its figures are in the README.

use caseclerk::dev::chaos::{self, ChaosOptions};
use std::path::PathBuf;

#[tokio::test]
async fn thirty_kills_while_sending_lose_no_letter_and_the_servers_copy_keeps_letters_in_doubt_from_going_twice()
 {
    let opts = ChaosOptions::new(30, PathBuf::from(env!("CARGO_BIN_EXE_caseclerk")));
    let report = chaos::run(&opts).await.unwrap();
    eprintln!("{}", report.render());
    assert_eq!(
        report.kills,
        30,
        "every kill landed while sending:\n{}",
        report.render()
    );
    assert_eq!(report.lost, 0, "{}", report.render());
    assert!(
        report.duplicates <= 1,
        "a letter in doubt is settled by the server's copy, not sent again:\n{}",
        report.render()
    );
    assert!(
        report.duplicates as i64 <= report.resent_in_doubt,
        "every duplicate is a letter the daemon knew was in doubt:\n{}",
        report.render()
    );
    assert!(
        report.resent_in_doubt + report.confirmed_by_copy <= report.kills as i64,
        "at most one letter in doubt per kill:\n{}",
        report.render()
    );
}
