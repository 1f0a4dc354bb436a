//! Decisions by email reply, end to end: the panel votes by replying, the quorum decides, the case
//! follows the outcome — and forged, replayed, unauthenticated or late votes change nothing.

use crate::support::{Harness, REFERRER, SHARED, referral};
use caseclerk::core::intake::Message;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

const LA: &str = "la.rep@bury.test";
const POLICE: &str = "police.rep@police.test";
const ICB: &str = "icb.rep@icb.test";
const PANEL: [&str; 3] = [LA, POLICE, ICB];
const MX: &str = "mx.bury.test";

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

fn dmarc_pass(domain: &str) -> String {
    format!(
        "Authentication-Results: {MX}; dmarc=pass (p=quarantine) header.from={domain}; dkim=pass header.d={domain}"
    )
}

fn domain(email: &str) -> &str {
    email.split('@').nth(1).unwrap()
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

#[tokio::test]
async fn a_tameside_disagreement_is_decided_by_the_majority_and_a_three_way_split_by_the_executive_chair()
 {
    let h = Harness::start("tameside").await;
    arrive(
        &h,
        &referral("tam-d@hospital.test", "Case notification form"),
        "2026-08-20T10:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T09:01:00Z"));
    // A majority: MEETS, NFA, MEETS.
    for (member, vote) in [(LA, "MEETS"), (POLICE, "NFA"), (ICB, "MEETS")] {
        let req = request_to(&h, member, "").await;
        arrive(
            &h,
            &answer(member, &req, vote, &[], None),
            "2026-08-20T11:00:00+01:00",
        )
        .await;
    }
    h.tick(Some("2026-08-20T10:05:00Z"));
    let report = h.ok(&["case", "RR-2026-0001"]);
    assert!(
        report.contains("decision screening: meets (majority 2 of 3"),
        "{report}"
    );
    assert!(report.contains("the voters disagreed"), "{report}");

    // A second referral, split three ways: the executive chair is asked, and decides.
    arrive(
        &h,
        &referral("tam-e@hospital.test", "Case notification form"),
        "2026-08-20T12:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T11:01:00Z"));
    for (member, vote) in [(LA, "MEETS"), (POLICE, "NFA"), (ICB, "AUDIT")] {
        let req = request_to(&h, member, "RR-2026-0002").await;
        arrive(
            &h,
            &answer(member, &req, vote, &[], None),
            "2026-08-20T13:00:00+01:00",
        )
        .await;
    }
    h.tick(Some("2026-08-20T12:05:00Z"));
    let chair = "executive.chair@bury.test";
    let ask = request_to(&h, chair, "RR-2026-0002").await;
    assert!(ask.subject.contains("split"), "{}", ask.subject);
    assert!(
        !h.ok(&["case", "RR-2026-0002"])
            .contains("decision screening:")
    );
    arrive(
        &h,
        &answer(
            chair,
            &ask,
            "NFA\nAfter discussion with the partners.",
            &[],
            None,
        ),
        "2026-08-20T14:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T13:05:00Z"));
    let report = h.ok(&["case", "RR-2026-0002"]);
    assert!(
        report.contains("decision screening: nfa (no majority"),
        "{report}"
    );
    assert!(
        report.contains("decided by the executive_chair"),
        "{report}"
    );
}

#[tokio::test]
async fn a_query_to_the_referrer_waits_and_the_screening_resumes_when_the_referrer_replies() {
    let h = Harness::start("bury").await;
    open_bury_case(&h).await;
    for member in PANEL {
        let req = request_to(&h, member, "Screening").await;
        arrive(
            &h,
            &answer(
                member,
                &req,
                "QUERY\nWhat was the date of the incident?",
                &[],
                None,
            ),
            "2026-08-20T11:00:00+01:00",
        )
        .await;
    }
    h.tick(Some("2026-08-20T10:05:00Z"));
    let referrer = h.wait_inbox(REFERRER, 2).await;
    let query = referrer
        .iter()
        .find(|m| m.subject.contains("needs more information"))
        .expect("query letter");
    // Nothing else happens while the case waits, days later.
    h.tick(Some("2026-08-26T10:05:00Z"));
    assert_eq!(h.settled_count(LA).await, 2, "a request and a confirmation");
    // The referrer answers: the panel is asked again, with the answer attached.
    arrive(
        &h,
        &answer(REFERRER, query, "The incident was on Sunday.", &[], None),
        "2026-08-26T12:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-26T11:05:00Z"));
    for member in PANEL {
        let inbox = h.wait_inbox(member, 3).await;
        let again = inbox.last().unwrap();
        assert!(
            again.subject.contains("[code "),
            "{member}: {}",
            again.subject
        );
        assert!(
            again
                .attachments
                .iter()
                .any(|a| a.filename.contains("referrer-reply")),
            "{member}: the referrer's answer is attached: {:?}",
            again
                .attachments
                .iter()
                .map(|a| &a.filename)
                .collect::<Vec<_>>()
        );
    }
    let report = h.ok(&["case", "RR-2026-0001"]);
    assert!(report.contains("decision screening reopened"), "{report}");
    for member in PANEL {
        let req = request_to(&h, member, "Screening").await;
        arrive(
            &h,
            &answer(member, &req, "MEETS", &[], None),
            "2026-08-26T14:00:00+01:00",
        )
        .await;
    }
    h.tick(Some("2026-08-26T13:05:00Z"));
    assert!(
        h.ok(&["case", "RR-2026-0001"])
            .contains("decision screening: meets (")
    );
}

#[tokio::test]
async fn a_sign_off_sends_the_decision_to_the_national_panel_on_day_15_and_records_its_answer() {
    let h = Harness::start("bury").await;
    // Day 0: Thu 20 Aug 2026 10:00 BST (replayed in the past).
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    h.stack
        .append(
            SHARED,
            &referral("so-1@hospital.test", "Referral for a rapid review"),
            t("2026-08-20T10:00:00+01:00"),
        )
        .await
        .unwrap();
    h.tick(Some("2026-08-20T09:01:00Z"));
    for member in PANEL {
        let req = request_to(&h, member, "Screening").await;
        h.stack
            .append(
                SHARED,
                &answer(member, &req, "MEETS", &[], None),
                t("2026-08-20T15:00:00+01:00"),
            )
            .await
            .unwrap();
    }
    h.tick(Some("2026-08-20T14:05:00Z"));
    assert!(
        h.ok(&["case", "RR-2026-0001", "--now", "2026-08-20T14:06:00Z"])
            .contains("decision screening: meets")
    );
    // Day 13 (Wed 9 Sep): the sign-off request to the three partners.
    h.tick(Some("2026-09-09T08:00:00Z"));
    let leads = [
        "la.lead@bury.test",
        "police.lead@police.test",
        "icb.lead@icb.test",
    ];
    for lead in leads {
        let req = request_to(&h, lead, "Sign-off").await;
        h.stack
            .append(
                SHARED,
                &answer(
                    lead,
                    &req,
                    "LCSPR\nClear learning for the partnership.",
                    &[],
                    None,
                ),
                t("2026-09-10T11:00:00+01:00"),
            )
            .await
            .unwrap();
    }
    h.tick(Some("2026-09-10T10:05:00Z"));
    assert!(
        h.ok(&["case", "RR-2026-0001", "--now", "2026-09-10T10:06:00Z"])
            .contains("decision sign_off: lcspr")
    );
    // Day 15 is Fri 11 Sep: nothing to the Panel before 15:00.
    h.tick(Some("2026-09-11T13:00:00Z"));
    assert_eq!(h.settled_count("panel@education.test").await, 0);
    h.tick(Some("2026-09-11T14:00:00Z"));
    let np = request_to(&h, "panel@education.test", "RR-2026-0001").await;
    assert!(
        np.subject.contains("Rapid review decision"),
        "{}",
        np.subject
    );
    h.tick(Some("2026-09-11T14:30:00Z"));
    let referrer = h.wait_inbox(REFERRER, 2).await;
    assert!(
        referrer.iter().any(|m| m.subject.contains("complete")),
        "the referrer is told"
    );
    // The National Panel answers in prose on the thread.
    h.stack
        .append(
            SHARED,
            &answer(
                "panel@education.test",
                &np,
                "Dear colleagues,\nThank you for the rapid review. The Panel agrees with the partnership's decision to undertake a local review.",
                &[],
                None,
            ),
            t("2026-09-25T09:00:00+01:00"),
        )
        .await
        .unwrap();
    h.tick(Some("2026-09-25T08:05:00Z"));
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-09-25T08:06:00Z"]);
    assert!(
        report.contains("decision panel_response: agree"),
        "{report}"
    );
    assert!(
        report.contains("LCSPR published (within 6 months of the decision): Wed 10 Mar 2027"),
        "{report}"
    );

    // A publication date too soon, or in the past, is refused with the reason.
    let soon = h.caseclerk(&[
        "publication",
        "RR-2026-0001",
        "2026-09-29",
        "--reason",
        "x",
        "--now",
        "2026-09-25T09:00:00Z",
    ]);
    assert_eq!(soon.status.code(), Some(2));
    let err = String::from_utf8_lossy(&soon.stderr);
    assert!(
        err.contains("earliest possible date is Wed 7 Oct 2026"),
        "{err}"
    );
    let past = h.caseclerk(&[
        "publication",
        "RR-2026-0001",
        "2026-09-01",
        "--reason",
        "x",
        "--now",
        "2026-09-25T09:00:00Z",
    ]);
    assert!(String::from_utf8_lossy(&past.stderr).contains("not in the future"));
    // Planned for Mon 1 Mar 2027: the report goes to the Panel, the Secretary of State and Ofsted
    // 7 working days before, on Thu 18 Feb 2027, and not earlier.
    h.ok(&[
        "publication",
        "RR-2026-0001",
        "2027-03-01",
        "--reason",
        "agreed by the partnership",
        "--now",
        "2026-09-25T09:00:00Z",
    ]);
    h.tick(Some("2027-02-17T12:00:00Z"));
    assert_eq!(h.settled_count("notifications@ofsted.test").await, 0);
    h.tick(Some("2027-02-18T09:30:00Z"));
    for who in ["notifications@ofsted.test", "dfe@education.test"] {
        let got = h.wait_inbox(who, 1).await;
        assert!(
            got[0].subject.contains("ahead of publication"),
            "{who}: {}",
            got[0].subject
        );
    }
    // Moved beyond the six months: the delay is reported to the Panel and the Secretary of State.
    h.ok(&[
        "publication",
        "RR-2026-0001",
        "2027-04-30",
        "--reason",
        "criminal trial",
        "--now",
        "2027-02-19T09:00:00Z",
    ]);
    h.tick(Some("2027-02-19T09:05:00Z"));
    let dfe = h.wait_inbox("dfe@education.test", 2).await;
    assert!(
        dfe[1]
            .subject
            .contains("will not be completed within six months"),
        "{}",
        dfe[1].subject
    );
    assert!(
        dfe[1].body_text.contains("Wednesday 10 March 2027"),
        "{}",
        dfe[1].body_text
    );
}

#[tokio::test]
async fn forged_replayed_unauthenticated_and_late_votes_change_nothing() {
    let h = Harness::start_with("bury", |cfg| {
        let mut d = toml::Table::new();
        d.insert("authserv_id".into(), toml::Value::String(MX.into()));
        cfg.insert("decisions".into(), toml::Value::Table(d));
    })
    .await;
    open_bury_case(&h).await;
    arrive(
        &h,
        &referral("dec-2@hospital.test", "Second referral for a rapid review"),
        "2026-08-20T10:30:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T09:31:00Z"));
    let la_req = request_to(&h, LA, "RR-2026-0001").await;
    let police_req = request_to(&h, POLICE, "RR-2026-0001").await;
    let la_req_2 = request_to(&h, LA, "RR-2026-0002").await;
    let no_code = la_req.subject.split(" [code").next().unwrap().to_string();

    let attacks: Vec<(&str, Vec<u8>)> = vec![
        (
            "a forged From without the code",
            answer(
                LA,
                &la_req,
                "MEETS",
                &[dmarc_pass(domain(LA))],
                Some(format!("RE: {no_code}")),
            ),
        ),
        (
            "the police member's code used by another member",
            answer(LA, &police_req, "MEETS", &[dmarc_pass(domain(LA))], None),
        ),
        (
            "a code from another case",
            answer(
                LA,
                &la_req,
                "MEETS",
                &[dmarc_pass(domain(LA))],
                Some(format!(
                    "RE: {no_code} {}",
                    &la_req_2.subject[la_req_2.subject.find("[code").unwrap()..]
                )),
            ),
        ),
        (
            "a DMARC failure",
            answer(
                LA,
                &la_req,
                "MEETS",
                &[format!(
                    "Authentication-Results: {MX}; dmarc=fail header.from={}",
                    domain(LA)
                )],
                None,
            ),
        ),
        (
            "a passing Authentication-Results placed below the trusted failing one",
            answer(
                LA,
                &la_req,
                "MEETS",
                &[
                    format!(
                        "Authentication-Results: {MX}; dmarc=fail header.from={}; spf=fail smtp.mailfrom=x@evil.test",
                        domain(LA)
                    ),
                    dmarc_pass(domain(LA)),
                ],
                None,
            ),
        ),
        (
            "no Authentication-Results at all",
            answer(LA, &la_req, "MEETS", &[], None),
        ),
    ];
    for (what, raw) in &attacks {
        arrive(&h, raw, "2026-08-20T11:00:00+01:00").await;
        h.tick(Some("2026-08-20T10:05:00Z"));
        let report = h.ok(&["case", "RR-2026-0001"]);
        assert!(
            !report.contains("vote on screening from"),
            "{what} was counted:\n{report}"
        );
        assert!(
            report.contains("HELD on screening"),
            "{what} is held for the business unit:\n{report}"
        );
    }
    // Nothing was confirmed to anyone, and no decision was taken.
    assert_eq!(
        h.settled_count(LA).await,
        2,
        "two requests, no confirmations"
    );
    let report = h.ok(&["case", "RR-2026-0001"]);
    assert_eq!(
        report.matches("HELD on screening").count(),
        attacks.len(),
        "{report}"
    );
    assert!(!report.contains("decision screening:"), "{report}");

    // The real votes, authenticated, decide; a vote after the decision changes nothing.
    for member in PANEL {
        let req = request_to(&h, member, "RR-2026-0001").await;
        arrive(
            &h,
            &answer(member, &req, "NFA", &[dmarc_pass(domain(member))], None),
            "2026-08-20T12:00:00+01:00",
        )
        .await;
    }
    h.tick(Some("2026-08-20T11:05:00Z"));
    assert!(
        h.ok(&["case", "RR-2026-0001"])
            .contains("decision screening: nfa (")
    );
    let req = request_to(&h, LA, "RR-2026-0001").await;
    arrive(
        &h,
        &answer(
            LA,
            &req,
            "MEETS\nChanged my mind.",
            &[dmarc_pass(domain(LA))],
            Some(format!("RE: {}", req.subject)),
        ),
        "2026-08-20T13:00:00+01:00",
    )
    .await;
    h.tick(Some("2026-08-20T12:05:00Z"));
    let report = h.ok(&["case", "RR-2026-0001"]);
    assert!(report.contains("already taken (nfa)"), "{report}");
    assert!(report.contains("screening: nfa"), "{report}");
    assert!(!report.contains("screening: meets"), "{report}");
}
