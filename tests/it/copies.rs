//! A person copied on a letter gets it once, through the real mail stack: Barking & Dagenham,
//! Havering and Redbridge's Practice Review Group (three members in Havering) is asked to agree a
//! local review, copied to the Partnership Manager — who receives one letter, not three. The rule
//! itself, over every step of every process, is tested without servers in `process_pathways.rs`
//! and over whole reviews in `full_reviews.rs`.

use crate::support::{Harness, REFERRER, SHARED, referral};

const MANAGER: &str = "manager@bury.test";
const GROUP: [&str; 3] = [
    "prg.chair@havering.test",
    "prg.health@havering.test",
    "prg.police@havering.test",
];
const PANEL: [&str; 3] = [
    "la.rep@bury.test",
    "police.rep@police.test",
    "icb.rep@icb.test",
];

/// Havering's own Practice Review Group: three members.
fn havering(cfg: &mut toml::Table) {
    let areas: toml::Table = format!(
        "[Havering.roles]\nreview_group = [{}]\n",
        GROUP
            .iter()
            .map(|e| format!("{{ name = \"{e}\", email = \"{e}\" }}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .parse()
    .expect("areas table");
    cfg.insert("areas".into(), toml::Value::Table(areas));
}

#[tokio::test]
async fn the_partnership_manager_copied_on_the_bhr_local_review_letter_receives_it_once() {
    let h = Harness::start_with("bhr", havering).await;
    let t = chrono::DateTime::parse_from_rfc3339("2026-08-20T10:00:00+01:00").unwrap();
    h.stack
        .append(
            SHARED,
            &referral(
                "copies-1@hospital.test",
                "Referral for a rapid review - Havering",
            ),
            t,
        )
        .await
        .expect("append");
    h.tick(Some("2026-08-20T09:01:00Z"));
    h.wait_inbox(REFERRER, 1).await;
    for (i, member) in PANEL.iter().enumerate() {
        let request = h.request_with_code(member).await;
        let id = request.message_id.clone().unwrap_or_default();
        let raw = format!(
            "From: {member}\r\nTo: {SHARED}\r\nSubject: RE: {}\r\nMessage-ID: <copies.vote.{i}@test>\r\n\
             In-Reply-To: <{id}>\r\nReferences: <{id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             LOCAL\r\nA local review will do.\r\n",
            request.subject
        );
        let at =
            chrono::DateTime::parse_from_rfc3339(&format!("2026-08-20T11:0{i}:00+01:00")).unwrap();
        h.stack
            .append(SHARED, raw.as_bytes(), at)
            .await
            .expect("append");
    }
    let out = h.tick(Some("2026-08-20T10:30:00Z"));
    assert!(out.contains("processed 3"), "{out}");
    // The step goes at 10:00 on the decision's day, and the tick is after it.
    let group_letters: Vec<_> = h
        .wait_inbox(GROUP[0], 1)
        .await
        .into_iter()
        .filter(|m| m.subject.to_lowercase().contains("local review"))
        .collect();
    assert_eq!(group_letters.len(), 1, "the chair has the letter");
    let letter = &group_letters[0];
    let to: Vec<&str> = letter.to.iter().map(|a| a.email.as_str()).collect();
    assert_eq!(to, GROUP, "one message addressed to the whole group");
    assert_eq!(
        letter
            .cc
            .iter()
            .map(|a| a.email.as_str())
            .collect::<Vec<_>>(),
        [MANAGER]
    );
    for member in &GROUP[1..] {
        let theirs = h.wait_inbox(member, 1).await;
        assert_eq!(
            theirs[0].message_id, letter.message_id,
            "{member}: the same message"
        );
    }
    // Everything in flight delivered, the manager holds exactly one copy of it.
    let manager_count = h.settled_count(MANAGER).await;
    let copies = h
        .inbox(MANAGER)
        .await
        .into_iter()
        .filter(|m| m.subject == letter.subject)
        .count();
    assert_eq!(
        copies, 1,
        "the manager's copies ({manager_count} letters in all)"
    );
}
