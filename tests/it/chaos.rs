//! The daemon killed with `kill -9` at random while it sends, 30 times: no letter is lost, a
//! letter goes twice only if the daemon knew it was in doubt, and never more than one per kill
//! (one letter is in flight at a time). The long run, 1,000 kills, is `caseclerk chaos --kills
//! 1000`; its figures, and why a kill in the send loop so often duplicates, are in the README.

use caseclerk::dev::chaos::{self, ChaosOptions};
use std::path::PathBuf;

#[tokio::test]
async fn thirty_kills_while_sending_lose_no_letter_and_duplicate_only_letters_known_to_be_in_doubt()
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
        report.duplicates as i64 <= report.resent_in_doubt,
        "every duplicate is a letter the daemon knew was in doubt:\n{}",
        report.render()
    );
    assert!(
        report.resent_in_doubt <= report.kills as i64,
        "at most one letter in doubt per kill:\n{}",
        report.render()
    );
}
