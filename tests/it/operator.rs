//! Operator commands: every correction is recorded with who and why, and refused when it makes no
//! sense. A Bury review replayed in August 2026.

use crate::support::{Harness, REFERRER, SHARED, referral};

async fn arrive(h: &Harness, raw: &[u8], at: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    h.stack.append(SHARED, raw, t).await.expect("append");
}

fn refused(out: &std::process::Output, contains: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "stdout: {} stderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(contains), "expected `{contains}` in: {err}");
}

/// One person, jo.bloggs, correcting one Bury case by hand at given times.
struct Operator<'a> {
    h: &'a Harness,
    case: &'static str,
}

impl Operator<'_> {
    /// `caseclerk <args> --now <when> --by jo.bloggs`.
    fn run(&self, args: &[&str], when: &str) -> std::process::Output {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(["--now", when, "--by", "jo.bloggs"]);
        self.h.caseclerk(&v)
    }

    /// The case's report as `caseclerk case` prints it at `when`.
    fn report(&self, when: &str) -> String {
        self.h.ok(&["case", self.case, "--now", when])
    }
}

#[tokio::test]
async fn corrections_are_recorded_with_who_and_why_and_nonsense_is_refused() {
    let h = Harness::start("bury").await;
    arrive(
        &h,
        &referral("op-1@hospital.test", "Referral for a rapid review"),
        "2026-08-20T10:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T09:01:00Z"));
    let op = Operator {
        h: &h,
        case: "RR-2026-0001",
    };

    a_decision_and_agencies_are_recorded_by_hand_and_nonsense_is_refused(&op);
    the_chase_moved_by_a_person_is_planned_and_sent_at_the_new_time(&op).await;
    a_stray_return_is_triaged_then_attached_by_hand_as_the_police_return(&op).await;
    a_letter_sent_again_keeps_its_content_under_a_new_message_id(&op).await;
    a_case_is_closed_once_and_reopened(&op);
    the_history_says_who_did_each_correction_and_why(&op);
}

/// A decision taken in a meeting, recorded by hand; a second one is refused without --replace.
fn a_decision_and_agencies_are_recorded_by_hand_and_nonsense_is_refused(op: &Operator) {
    let case = op.case;
    assert!(
        op.run(
            &[
                "decide",
                case,
                "screening",
                "meets",
                "--reason",
                "panel call"
            ],
            "2026-08-20T12:00:00Z"
        )
        .status
        .success()
    );
    refused(
        &op.run(
            &["decide", case, "screening", "nfa", "--reason", "x"],
            "2026-08-20T12:01:00Z",
        ),
        "already taken (meets)",
    );
    refused(
        &op.run(
            &["decide", case, "screening", "perhaps", "--reason", "x"],
            "2026-08-20T12:01:00Z",
        ),
        "has no outcome perhaps",
    );
    refused(
        &op.run(
            &["agencies", "add", case, "the moon"],
            "2026-08-20T12:01:00Z",
        ),
        "unknown agency the moon",
    );
    assert!(
        op.run(
            &["agencies", "add", case, "police", "gp"],
            "2026-08-20T12:02:00Z"
        )
        .status
        .success()
    );
    refused(
        &op.run(&["agencies", "add", case, "gp"], "2026-08-20T12:03:00Z"),
        "already on case",
    );
}

/// Moving the chase day: refused in the past or for something the process does not have; moved,
/// the case plans it on the new day and the reminder goes then, not on day 7.
async fn the_chase_moved_by_a_person_is_planned_and_sent_at_the_new_time(op: &Operator<'_>) {
    let (h, case) = (op.h, op.case);
    refused(
        &op.run(
            &[
                "reschedule",
                case,
                "step:chase",
                "2026-08-19",
                "--reason",
                "x",
            ],
            "2026-08-20T12:05:00Z",
        ),
        "in the past",
    );
    refused(
        &op.run(
            &[
                "reschedule",
                case,
                "step:nothing",
                "2026-09-10",
                "--reason",
                "x",
            ],
            "2026-08-20T12:05:00Z",
        ),
        "step:chase",
    );
    assert!(
        op.run(
            &[
                "extend",
                case,
                "step:chase",
                "2026-09-03 11:00",
                "--reason",
                "school holidays"
            ],
            "2026-08-20T12:05:00Z"
        )
        .status
        .success()
    );
    // The case shows its planned schedule with the dates explained, including the move.
    let planned = op.report("2026-08-20T12:06:00Z");
    assert!(
        planned.contains("planned (on the pathways open now):"),
        "{planned}"
    );
    assert!(
        planned.contains("day 2 = Mon 24 Aug 2026 (skipped a weekend)"),
        "{planned}"
    );
    assert!(
        planned.contains("moved by a person to Thu 3 Sep 2026 11:00"),
        "{planned}"
    );
    // Day 2 (Mon 24 Aug): the requests go. Day 7 (Tue 1 Sep): no chase, it was moved.
    h.tick(Some("2026-08-24T09:30:00Z"));
    h.wait_inbox("gp@practice.test", 1).await;
    h.tick(Some("2026-09-01T10:00:00Z"));
    assert_eq!(
        h.settled_count("gp@practice.test").await,
        1,
        "not chased on day 7"
    );
    h.tick(Some("2026-09-03T10:05:00Z"));
    let gp = h.wait_inbox("gp@practice.test", 2).await;
    assert!(
        gp[1].subject.contains("Reminder"),
        "chased at the new time: {}",
        gp[1].subject
    );
}

/// A return that arrived without thread or reference from an address we do not know is triaged,
/// then attached by hand as the police return.
async fn a_stray_return_is_triaged_then_attached_by_hand_as_the_police_return(op: &Operator<'_>) {
    let (h, case) = (op.h, op.case);
    let stray = b"From: someone@elsewhere.test\r\nTo: bsp@bury.test\r\nSubject: Information\r\nMessage-ID: <stray-1@elsewhere.test>\r\n\r\nOur summary.\r\n";
    arrive(h, stray, "2026-09-03T11:00:00+01:00").await;
    h.tick(Some("2026-09-03T10:06:00Z"));
    let triage = h.ok(&["triage"]);
    let id: String = triage
        .split_whitespace()
        .nth(1)
        .expect("a message id")
        .to_string();
    refused(
        &op.run(
            &[
                "attach",
                case,
                &id,
                "--return",
                "St Mary's primary",
                "--reason",
                "x",
            ],
            "2026-09-03T10:07:00Z",
        ),
        "is not on case",
    );
    assert!(
        op.run(
            &[
                "attach",
                case,
                &id,
                "--return",
                "police",
                "--reason",
                "phoned to confirm"
            ],
            "2026-09-03T10:08:00Z"
        )
        .status
        .success()
    );
    refused(
        &op.run(
            &["attach", case, &id, "--reason", "again"],
            "2026-09-03T10:09:00Z",
        ),
        "not waiting for a person",
    );
    assert!(h.ok(&["triage"]).contains("nothing waiting"));
}

/// A letter sent again to another address keeps its content under a new Message-ID.
async fn a_letter_sent_again_keeps_its_content_under_a_new_message_id(op: &Operator<'_>) {
    let (h, case) = (op.h, op.case);
    let report = op.report("2026-09-03T10:10:00Z");
    let letters = report
        .split("\nletters:\n")
        .nth(1)
        .expect("a letters section");
    let ack_line = letters
        .lines()
        .find(|l| l.contains("acknowledge") && l.contains("sent"))
        .expect("the ack letter");
    let ack_id = ack_line.split_whitespace().next().unwrap().to_string();
    let resent = op.run(
        &[
            "resend",
            case,
            &ack_id,
            "--to",
            "named.nurse@nhs.test",
            "--reason",
            "referrer asked for a copy to the named nurse",
        ],
        "2026-09-03T10:11:00Z",
    );
    assert!(
        resent.status.success(),
        "{}",
        String::from_utf8_lossy(&resent.stderr)
    );
    h.tick(Some("2026-09-03T10:12:00Z"));
    let copy = h.wait_inbox("named.nurse@nhs.test", 1).await;
    let original = h.inbox(REFERRER).await.remove(0);
    assert_eq!(copy[0].subject, original.subject);
    assert_ne!(copy[0].message_id, original.message_id);
}

/// Close, refused twice; a closed case is not planned; reopen.
fn a_case_is_closed_once_and_reopened(op: &Operator) {
    let case = op.case;
    assert!(
        op.run(
            &["close", case, "--reason", "merged with another case"],
            "2026-09-03T10:13:00Z"
        )
        .status
        .success()
    );
    refused(
        &op.run(
            &["close", case, "--reason", "again"],
            "2026-09-03T10:14:00Z",
        ),
        "already closed",
    );
    refused(
        &op.run(
            &["agencies", "add", case, "st marys primary"],
            "2026-09-03T10:14:00Z",
        ),
        "closed",
    );
    op.h.tick(Some("2026-09-04T09:00:00Z"));
    assert!(
        op.run(
            &["reopen", case, "--reason", "not a duplicate after all"],
            "2026-09-04T09:30:00Z"
        )
        .status
        .success()
    );
}

/// Everything is in the history with who did it and why.
fn the_history_says_who_did_each_correction_and_why(op: &Operator) {
    let report = op.report("2026-09-04T10:00:00Z");
    for line in [
        "operator:jo.bloggs decision screening: meets (recorded by hand: panel call)",
        "operator:jo.bloggs agency gp added",
        "operator:jo.bloggs step:chase moved to Thu 3 Sep 2026 11:00",
        "school holidays",
        "operator:jo.bloggs message",
        "attached by hand",
        "police: returned",
        "referrer asked for a copy to the named nurse",
        "operator:jo.bloggs status closed (merged with another case)",
        "operator:jo.bloggs status open (not a duplicate after all)",
    ] {
        assert!(report.contains(line), "`{line}` in:\n{report}");
    }
}

/// A referral (Message-ID `id`) arrives on Thursday 20 August 2026 and is opened; the screening
/// request `member` receives.
async fn screening_requested(
    h: &Harness,
    id: &str,
    member: &str,
) -> caseclerk::core::intake::Message {
    arrive(
        h,
        &referral(id, "Referral for a rapid review"),
        "2026-08-20T10:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T09:01:00Z"));
    h.wait_inbox(member, 1).await.remove(0)
}

/// The id of the held message on the case report's line containing `needle`.
fn held_id(report: &str, needle: &str) -> String {
    report
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split("(message ").nth(1))
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("`{needle}` in:\n{report}"))
        .to_string()
}

#[tokio::test]
async fn a_held_reply_cannot_be_confirmed_over_the_member_s_later_counted_vote() {
    let (h, member) = (Harness::start("bury").await, "la.rep@bury.test");
    let req = screening_requested(&h, "op-3@hospital.test", member).await;
    let answer = |id: &str, body: &str| {
        format!(
            "From: {member}\r\nTo: {SHARED}\r\nSubject: RE: {}\r\nMessage-ID: <{id}@bury.test>\r\nIn-Reply-To: <{}>\r\n\r\n{body}\r\n",
            req.subject,
            req.message_id.as_deref().unwrap()
        )
    };
    let unclear = answer("first", "MEETS or NFA - not sure");
    arrive(&h, unclear.as_bytes(), "2026-08-20T11:00:00+01:00").await;
    let clear = answer("second", "NFA");
    arrive(&h, clear.as_bytes(), "2026-08-20T11:30:00+01:00").await;
    h.tick(Some("2026-08-20T10:35:00Z"));
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T10:36:00Z"]);
    assert!(
        report.contains("screening from la.rep@bury.test: nfa"),
        "{report}"
    );
    let first = held_id(&report, "HELD on screening");
    let out = h.caseclerk(&[
        "confirm",
        "RR-2026-0001",
        &first,
        "meets",
        "--reason",
        "read the held page",
        "--now",
        "2026-08-20T12:00:00Z",
    ]);
    refused(&out, "later reply");
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T12:01:00Z"]);
    assert!(!report.contains("confirmed as"), "{report}");

    // LA then takes the NFA back, unclearly: the vote is set aside, and the first held reply
    // still cannot be confirmed — the newest one is LA's answer now.
    let third = answer("third", "Sorry - MEETS or NFA, I am not sure now");
    arrive(&h, third.as_bytes(), "2026-08-20T12:10:00+01:00").await;
    h.tick(Some("2026-08-20T11:15:00Z"));
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T11:16:00Z"]);
    assert!(report.contains("set aside"), "{report}");
    let confirm = |message: &str| {
        h.caseclerk(&[
            "confirm",
            "RR-2026-0001",
            message,
            "meets",
            "--reason",
            "phoned LA",
            "--now",
            "2026-08-20T11:20:00Z",
        ])
    };
    refused(&confirm(&first), "later reply");
    let newest = report
        .lines()
        .rev()
        .find(|l| l.contains("HELD on screening"))
        .and_then(|l| l.split("(message ").nth(1))
        .and_then(|r| r.split(')').next())
        .unwrap()
        .to_string();
    assert_ne!(newest, first);
    assert!(confirm(&newest).status.success());
}

#[tokio::test]
async fn an_unclear_vote_is_held_asked_again_and_can_be_confirmed_by_hand() {
    let (h, member) = (Harness::start("bury").await, "la.rep@bury.test");
    let req = screening_requested(&h, "op-2@hospital.test", member).await;
    let reply = format!(
        "From: {member}\r\nTo: {SHARED}\r\nSubject: RE: {}\r\nMessage-ID: <AM0PR01MB0001.unclear@bury.test>\r\nIn-Reply-To: <{}>\r\n\r\nMEETS or NFA - not sure\r\n",
        req.subject,
        req.message_id.as_deref().unwrap()
    );
    arrive(&h, reply.as_bytes(), "2026-08-20T11:00:00+01:00").await;
    h.tick(Some("2026-08-20T10:05:00Z"));
    let inbox = h.wait_inbox(member, 2).await;
    assert!(
        inbox[1].subject.contains("Please reply again"),
        "{}",
        inbox[1].subject
    );
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T10:06:00Z"]);
    let message = held_id(&report, "HELD on screening");
    refused(
        &h.caseclerk(&[
            "confirm",
            "RR-2026-0001",
            &message,
            "maybe",
            "--reason",
            "x",
            "--now",
            "2026-08-20T10:07:00Z",
        ]),
        "has no outcome maybe",
    );
    assert!(
        h.caseclerk(&[
            "confirm",
            "RR-2026-0001",
            &message,
            "meets",
            "--reason",
            "phoned: she meant MEETS",
            "--now",
            "2026-08-20T10:08:00Z"
        ])
        .status
        .success()
    );
    refused(
        &h.caseclerk(&[
            "confirm",
            "RR-2026-0001",
            &message,
            "meets",
            "--reason",
            "again",
            "--now",
            "2026-08-20T10:09:00Z",
        ]),
        "already confirmed",
    );
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T10:10:00Z"]);
    assert!(
        report.contains(&format!(
            "held reply {message} confirmed as {member}'s vote on screening: meets"
        )),
        "{report}"
    );

    // Someone outside the panel answering the same request is held, and a person cannot count
    // it: the count would pass over it in silence.
    let stranger = "someone@elsewhere.test";
    let forwarded = format!(
        "From: {stranger}\r\nTo: {SHARED}\r\nSubject: RE: {}\r\nMessage-ID: <stranger.1@elsewhere.test>\r\nIn-Reply-To: <{}>\r\n\r\nMEETS\r\n",
        req.subject,
        req.message_id.as_deref().unwrap()
    );
    arrive(&h, forwarded.as_bytes(), "2026-08-20T11:20:00+01:00").await;
    h.tick(Some("2026-08-20T10:25:00Z"));
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T10:26:00Z"]);
    let theirs = held_id(&report, &format!("reply from {stranger} HELD on screening"));
    let confirm = |message: &str, extra: &[&str]| {
        let mut args = vec![
            "confirm",
            "RR-2026-0001",
            message,
            "meets",
            "--reason",
            "read it",
            "--now",
            "2026-08-20T10:27:00Z",
        ];
        args.extend_from_slice(extra);
        h.caseclerk(&args)
    };
    refused(&confirm(&theirs, &[]), "cannot count");
    refused(
        &confirm(&theirs, &["--decision", "sign_off"]),
        "is about screening, not sign_off",
    );
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T10:28:00Z"]);
    assert!(
        !report.contains(&format!("held reply {theirs} confirmed")),
        "{report}"
    );
}

#[tokio::test]
async fn a_reply_held_naming_no_decision_counts_only_on_one_that_was_asked() {
    let h = Harness::start("bury").await;
    arrive(
        &h,
        &referral("op-3@hospital.test", "Referral for a rapid review"),
        "2026-08-20T10:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T09:01:00Z"));
    // A member asked on more than one open decision replied with nothing to say which: held
    // naming none (as caseclerk records it).
    let store = caseclerk::shell::store::Store::open(&h.dir.join("caseclerk.db"))
        .await
        .unwrap();
    let case = store.case_by_ref("RR-2026-0001").await.unwrap().unwrap();
    let mut tx = store.begin().await.unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-08-20T10:29:00Z").unwrap();
    for (message, voter) in [(4242, "icb.lead@icb.test"), (4243, "icb.rep@icb.test")] {
        let held = caseclerk::core::case::Event::VoteHeld {
            decision: None,
            voter: voter.into(),
            message,
            reason: "could be a vote on more than one decision".into(),
        };
        caseclerk::shell::store::record_event(&mut tx, case.id, at.to_utc(), "test", &held)
            .await
            .unwrap();
    }
    caseclerk::shell::store::Store::commit(tx).await.unwrap();
    store.close().await;
    let confirm_none = |message: &str, outcome: &str, extra: &[&str]| {
        let mut args = vec![
            "confirm",
            "RR-2026-0001",
            message,
            outcome,
            "--reason",
            "phoned",
            "--now",
            "2026-08-20T10:30:00Z",
        ];
        args.extend_from_slice(extra);
        h.caseclerk(&args)
    };
    refused(
        &confirm_none("4243", "meets", &[]),
        "say which with --decision",
    );
    // The ICB lead is a statutory partner, but the sign-off has not been asked yet.
    refused(
        &confirm_none("4242", "lcspr", &["--decision", "sign_off"]),
        "has not been asked on this case yet",
    );
    assert!(
        confirm_none("4243", "meets", &["--decision", "screening"])
            .status
            .success()
    );
}
