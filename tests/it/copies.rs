//! A person copied on a letter gets it once, through the real mail stack: Barking & Dagenham,
//! Havering and Redbridge's Practice Review Group (three members in Havering) is asked to agree a
//! local review, copied to the Partnership Manager — who receives one letter, not three. The rule
//! itself, over every step of every process, is tested without servers in `process_pathways.rs`
//! and over whole reviews in `full_reviews.rs`.
//!
//! Without servers, the counts the business unit reads count letters as people see them: the
//! digest's "letters sent" shows the group's letter as one letter and the panel's individual
//! requests as three, and the tracker's "Letters imported (not sent)" counts the group's letter,
//! imported on a first run, once — not once per reader.

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

/// The screening panel, all three asked and voting for a local review.
const LOCAL_REVIEW: &str = "LOCAL\nA local review will do.";

#[tokio::test]
async fn the_digest_counts_the_local_review_letter_once_and_the_panel_s_own_requests_as_three() {
    let mut review = crate::review::Review::with("bhr", havering).await;
    review
        .referral_from(
            "Dr Test Referrer <referrer@hospital.test>",
            "Referral for a rapid review - Havering",
            "2026-08-20 10:00",
        )
        .await;
    review
        .vote_all(
            "screening-request",
            &PANEL,
            LOCAL_REVIEW,
            "2026-08-20 11:00",
        )
        .await;
    review.at("2026-08-20 17:00").await;
    let shared = review.for_step("local-review");
    assert_eq!(shared.len(), 1, "{:#?}", review.timeline());
    assert_eq!(
        shared[0].to.len(),
        GROUP.len() + 1,
        "the group and the manager"
    );

    let digest = review.digest_text().await;
    let row = |name: &str| {
        digest
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{digest}"))
            .to_string()
    };
    // One message to the group (copied to the manager) is one letter; three people's own
    // requests are three.
    let local = row("Ask the Practice Review Group to agree the local review");
    assert!(!local.contains("letters)"), "{local}");
    for member in GROUP {
        assert!(local.contains(member), "{member} named: {local}");
    }
    let requests = row("Practice Review Group members for a screening decision");
    assert!(requests.contains("(3 letters)"), "{requests}");
}

#[tokio::test]
async fn the_tracker_counts_an_imported_letter_to_the_whole_group_once() {
    use caseclerk::core::export::{COLUMNS, Cell};
    use caseclerk::core::records::OutboxState;
    let mut review = crate::review::Review::with("bhr", havering).await;
    // The first run, on Wed 25 Nov, finds a referral of 3 November; the panel's votes of that
    // afternoon are read just after it: every letter they made fell due three weeks ago.
    review
        .stored(
            &referral(
                "tracker-copies@hospital.test",
                "Referral for a rapid review - Havering",
            ),
            "2026-11-03 11:00",
        )
        .await;
    review.first_run_at("2026-11-25 10:00").await;
    for (i, member) in PANEL.iter().enumerate() {
        let code = review.engine.vote_code("RR-2026-0001", "screening", member);
        let vote = format!(
            "From: {member}\r\nTo: {SHARED}\r\nSubject: RE: RR-2026-0001 screening [code {code}]\r\n\
             Message-ID: <tracker.vote.{i}@test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             LOCAL\r\n"
        );
        review
            .stored(vote.as_bytes(), &format!("2026-11-03 14:0{i}"))
            .await;
    }
    review.at("2026-11-25 10:05").await;
    let store = &review.engine.store;
    assert!(
        review.letters().iter().all(|l| l.case.is_none()),
        "nothing about the case is sent: {:#?}",
        review.timeline()
    );

    let case = store.case_by_ref("RR-2026-0001").await.unwrap().unwrap();
    let imported: Vec<_> = store
        .letters(Some(case.id))
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.state == OutboxState::Imported)
        .collect();
    let group: Vec<_> = imported
        .iter()
        .filter(|l| l.step == "local-review")
        .collect();
    assert_eq!(group.len(), 1, "the group's letter, imported");
    assert_eq!(group[0].envelope_to.len(), GROUP.len() + 1);
    let readers: usize = imported.iter().map(|l| l.envelope_to.len()).sum();
    assert!(readers > imported.len(), "{readers} readers");

    let tracker = review.tracker().await;
    let column = COLUMNS
        .iter()
        .position(|c| *c == "Letters imported (not sent)")
        .unwrap();
    assert_eq!(
        tracker.cases[0][column],
        Cell::Count(imported.len() as u32),
        "one per message, whoever reads it: {readers} readers of {} messages",
        imported.len()
    );
}
