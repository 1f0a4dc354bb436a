//! A step added to the process file — by an upgrade, or by the partnership editing its file —
//! writes about what falls due from then on, never about every open case's past: its letters
//! already due when the daemon restarts with it are not sent, and those due later go as planned.

use crate::review::Review;
use crate::support::{self, REFERRER};

/// Bury's process file without two of its steps, as an older version had it.
fn bury_without(dir: &std::path::Path, steps: &[&str]) -> String {
    let text = std::fs::read_to_string(support::root().join("config/processes/bury.toml")).unwrap();
    let kept: Vec<&str> = text
        .split("\n[[")
        .filter(|block| {
            !steps
                .iter()
                .any(|s| block.contains(&format!("\nid = \"{s}\"\n")))
        })
        .collect();
    let path = dir.join(format!("bury-older-{}.toml", std::process::id()));
    std::fs::write(&path, kept.join("\n[[")).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_step_added_by_an_upgrade_sends_nothing_already_due_and_its_later_letters_as_planned() {
    let older = bury_without(&std::env::temp_dir(), &["outcome-meets", "invite"]);
    let mut r = Review::with("bury", |cfg| {
        let p = cfg["partnership"].as_table_mut().unwrap();
        p.insert("process".into(), toml::Value::String(older.clone()));
    })
    .await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.decide(&case, "screening", "meets", "2026-08-20 11:00")
        .await;
    assert!(
        r.sent_to_for(REFERRER, "outcome-meets").is_empty(),
        "the older file has no such step"
    );

    // Upgraded the next morning: both steps are new to this installation.
    let full = support::root().join("config/processes/bury.toml");
    r.restart("2026-08-21 09:00", |cfg| {
        let p = cfg["partnership"].as_table_mut().unwrap();
        p.insert(
            "process".into(),
            toml::Value::String(full.display().to_string()),
        );
    })
    .await;
    r.at("2026-08-21 09:05").await;
    assert!(
        r.sent_to_for(REFERRER, "outcome-meets").is_empty(),
        "the referrer was due to hear yesterday, before the step existed here"
    );

    // The invitations fall due on day 3, after the upgrade: they go.
    r.at("2026-08-25 10:05").await;
    assert!(!r.for_step("invite").is_empty(), "{:?}", r.timeline());
    // A referral after the upgrade gets every step.
    let next = r.referral_at("2026-08-25 11:00").await;
    r.decide(&next, "screening", "meets", "2026-08-25 12:00")
        .await;
    r.at("2026-08-25 12:05").await;
    assert_eq!(r.sent_to_for(REFERRER, "outcome-meets").len(), 1);
    let _ = std::fs::remove_file(&older);
}
