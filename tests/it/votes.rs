//! Decisions by email reply, without servers (see `review.rs`): the quorum decides, the case
//! follows the outcome — and forged, replayed, unauthenticated or late votes change nothing.
//! (The real-mail-stack version of a screening by reply is in `decisions.rs`.)

use crate::full_reviews::{PARTNERS, SCREENING_PANEL};
use crate::review::{Reply, Review, london};
use crate::support::REFERRER;

const LA: &str = "la.rep@bury.test";
const POLICE: &str = "police.rep@police.test";
const ICB: &str = "icb.rep@icb.test";
const MX: &str = "mx.bury.test";
const NATIONAL_PANEL: &str = "panel@education.test";

fn dmarc_pass(email: &str) -> String {
    let domain = email.split('@').nth(1).unwrap();
    format!(
        "Authentication-Results: {MX}; dmarc=pass (p=quarantine) header.from={domain}; dkim=pass header.d={domain}"
    )
}

fn dmarc_fail(email: &str) -> String {
    let domain = email.split('@').nth(1).unwrap();
    format!(
        "Authentication-Results: {MX}; dmarc=fail header.from={domain}; spf=fail smtp.mailfrom=x@evil.test"
    )
}

fn trusting_our_mx(cfg: &mut toml::Table) {
    let mut d = toml::Table::new();
    d.insert("authserv_id".into(), toml::Value::String(MX.into()));
    cfg.insert("decisions".into(), toml::Value::Table(d));
}

/// The requests an attacker has seen: the LA member's and the police member's for case 1, and the
/// LA member's for case 2.
struct Seen {
    la: crate::review::Letter,
    police: crate::review::Letter,
    la_other_case: crate::review::Letter,
}

impl Seen {
    fn subject_without_code(&self) -> String {
        self.la
            .msg
            .subject
            .split(" [code")
            .next()
            .unwrap()
            .to_string()
    }
}

/// Whether the three members have voted NFA (authenticated) before the attack.
#[derive(Clone, Copy, PartialEq)]
enum Before {
    Undecided,
    DecidedNfa,
}

/// One row of the table: what it is, the case before it, and the reply an attacker sends.
type Attack = (&'static str, Before, fn(&Seen) -> Reply);

#[tokio::test]
async fn no_forged_replayed_unauthenticated_or_late_vote_changes_the_case() {
    let attacks: &[Attack] = &[
        ("a forged From without the code", Before::Undecided, |s| {
            Reply::to(&s.la, LA, "MEETS")
                .header(dmarc_pass(LA))
                .subject(format!("RE: {}", s.subject_without_code()))
        }),
        (
            "the police member's code used by another member",
            Before::Undecided,
            |s| Reply::to(&s.police, LA, "MEETS").header(dmarc_pass(LA)),
        ),
        ("a code from another case", Before::Undecided, |s| {
            let other = &s.la_other_case.msg.subject;
            Reply::to(&s.la, LA, "MEETS")
                .header(dmarc_pass(LA))
                .subject(format!(
                    "RE: {} {}",
                    s.subject_without_code(),
                    &other[other.find("[code").unwrap()..]
                ))
        }),
        (
            "a DMARC failure from the trusted server",
            Before::Undecided,
            |s| {
                Reply::to(&s.la, LA, "MEETS").header(format!(
                    "Authentication-Results: {MX}; dmarc=fail header.from=bury.test"
                ))
            },
        ),
        (
            "a passing Authentication-Results placed below the trusted failing one",
            Before::Undecided,
            |s| {
                Reply::to(&s.la, LA, "MEETS")
                    .header(dmarc_fail(LA))
                    .header(dmarc_pass(LA))
            },
        ),
        ("no Authentication-Results at all", Before::Undecided, |s| {
            Reply::to(&s.la, LA, "MEETS")
        }),
        (
            "a genuine vote after the decision was taken",
            Before::DecidedNfa,
            |s| Reply::to(&s.la, LA, "MEETS\nChanged my mind.").header(dmarc_pass(LA)),
        ),
    ];
    for (what, before, attack) in attacks {
        let mut r = Review::with("bury", trusting_our_mx).await;
        let case = r.referral_at("2026-08-20 10:00").await;
        let other = r
            .referral_from(
                REFERRER,
                "Second referral for a rapid review",
                "2026-08-20 10:30",
            )
            .await;
        let seen = Seen {
            la: r.last_about(&case, LA, "screening-request"),
            police: r.last_about(&case, POLICE, "screening-request"),
            la_other_case: r.last_about(&other, LA, "screening-request"),
        };
        if *before == Before::DecidedNfa {
            for member in SCREENING_PANEL {
                let ask = r.last_about(&case, member, "screening-request");
                let vote = Reply::to(&ask, member, "NFA").header(dmarc_pass(member));
                r.receive(&vote.raw(), "2026-08-20 12:00").await;
            }
            assert!(
                r.report(&case).await.contains("decision screening: nfa ("),
                "{what}: the setup decides"
            );
        }
        let case_before = r.state(&case).await;
        let letters_before = r.letters().len();
        let held_before = r.report(&case).await.matches("HELD on screening").count();

        r.receive(&attack(&seen).raw(), "2026-08-20 13:00").await;
        r.at("2026-08-20 13:05").await;

        let after = r.state(&case).await;
        assert_eq!(after.votes, case_before.votes, "{what} was counted");
        assert_eq!(
            after.decisions, case_before.decisions,
            "{what} changed the decision"
        );
        assert_eq!(
            r.letters()[letters_before..]
                .iter()
                .map(|l| l.line())
                .collect::<Vec<_>>(),
            Vec::<String>::new(),
            "{what}: nothing is confirmed or sent to anyone"
        );
        let report = r.report(&case).await;
        assert_eq!(
            report.matches("HELD on screening").count(),
            held_before + 1,
            "{what} is held for the business unit:\n{report}"
        );
        if *before == Before::DecidedNfa {
            assert!(report.contains("already taken (nfa)"), "{what}: {report}");
            assert!(!report.contains("screening: meets"), "{what}: {report}");
        } else {
            assert!(!report.contains("decision screening:"), "{what}: {report}");
        }
    }
}

#[tokio::test]
async fn a_vote_with_the_right_code_and_a_passing_check_counts() {
    // The other side of the table: the same reply, authenticated and with the member's own code.
    let mut r = Review::with("bury", trusting_our_mx).await;
    let case = r.referral_at("2026-08-20 10:00").await;
    let ask = r.last_about(&case, LA, "screening-request");
    r.receive(
        &Reply::to(&ask, LA, "MEETS").header(dmarc_pass(LA)).raw(),
        "2026-08-20 13:00",
    )
    .await;
    assert!(r.state(&case).await.votes["screening"].contains_key(LA));
    assert_eq!(
        r.last_to(LA, "notice-vote-confirmed").at,
        london("2026-08-20 13:00")
    );
}

#[tokio::test]
async fn a_screening_with_all_three_votes_is_decided_and_names_the_agencies() {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    for (i, member) in SCREENING_PANEL.iter().enumerate() {
        let body = if i == 0 {
            "MEETS\nSerious harm; neglect suspected.\nAgencies: police, health visiting"
        } else {
            "Meets"
        };
        let ask = r.last_to(member, "screening-request");
        r.reply(&ask, member, body, &format!("2026-08-20 1{i}:30"))
            .await;
        let confirmed = r.last_to(member, "notice-vote-confirmed");
        assert!(
            confirmed.msg.subject.contains("has been recorded"),
            "{member}: {}",
            confirmed.msg.subject
        );
        assert!(confirmed.msg.body_text.contains("meets"));
        if i < 2 {
            assert!(
                !r.report(&case).await.contains("screening: meets ("),
                "no decision before all three"
            );
        }
    }
    let report = r.report(&case).await;
    assert!(
        report.contains("decision screening: meets (all 3 voters agreed by reply"),
        "{report}"
    );
    assert!(
        report.contains("agency police added") && report.contains("agency health-visiting added"),
        "{report}"
    );
    let told = r.last_to(REFERRER, "outcome-meets");
    assert!(
        told.msg.subject.contains("a rapid review will be held"),
        "{}",
        told.msg.subject
    );
}

#[tokio::test]
async fn a_tameside_disagreement_is_decided_by_the_majority_and_a_three_way_split_by_the_executive_chair()
 {
    let mut r = Review::of("tameside").await;
    let first = r
        .referral_from(REFERRER, "Case notification form", "2026-08-20 10:00")
        .await;
    for (member, vote) in [(LA, "MEETS"), (POLICE, "NFA"), (ICB, "MEETS")] {
        let ask = r.last_about(&first, member, "screening-request");
        r.reply(&ask, member, vote, "2026-08-20 11:00").await;
    }
    r.at("2026-08-20 11:05").await;
    let report = r.report(&first).await;
    assert!(
        report.contains("decision screening: meets (majority 2 of 3"),
        "{report}"
    );
    assert!(report.contains("the voters disagreed"), "{report}");
    // The seed takes a majority decision "in consultation with the Executive Chair": told once,
    // with the votes; the case goes on as the majority decided.
    let chair = "executive.chair@bury.test";
    let consulted = r.sent_to_for(chair, "notice-majority-consultation");
    assert_eq!(consulted.len(), 1);
    assert!(
        consulted[0].msg.body_text.contains("nfa") && consulted[0].msg.body_text.contains("meets"),
        "{}",
        consulted[0].msg.body_text
    );
    assert!(
        !consulted[0].msg.subject.contains("[code "),
        "not asked to vote"
    );

    // A second referral, split three ways: the executive chair is asked, and decides.
    let second = r
        .referral_from(REFERRER, "Case notification form", "2026-08-20 12:00")
        .await;
    for (member, vote) in [(LA, "MEETS"), (POLICE, "NFA"), (ICB, "AUDIT")] {
        let ask = r.last_about(&second, member, "screening-request");
        r.reply(&ask, member, vote, "2026-08-20 13:00").await;
    }
    r.at("2026-08-20 13:05").await;
    let ask = r.last_about(&second, chair, "notice-tie-break-request");
    assert!(ask.msg.subject.contains("split"), "{}", ask.msg.subject);
    assert!(ask.msg.subject.contains("[code "), "{}", ask.msg.subject);
    assert!(!r.report(&second).await.contains("decision screening:"));
    r.reply(
        &ask,
        chair,
        "NFA\nAfter discussion with the partners.",
        "2026-08-20 14:00",
    )
    .await;
    r.at("2026-08-20 14:05").await;
    let report = r.report(&second).await;
    assert!(
        report.contains("decision screening: nfa (no majority"),
        "{report}"
    );
    assert!(
        report.contains("decided by the executive_chair"),
        "{report}"
    );
    // The Chair decided it: nobody is "consulted" on a majority there never was.
    assert_eq!(
        r.sent_to_for(chair, "notice-majority-consultation").len(),
        1,
        "only the first case's"
    );
}

#[tokio::test]
async fn a_tameside_partner_voting_against_a_majority_already_taken_has_the_executive_chair_consulted_once()
 {
    let mut r = Review::of("tameside").await;
    let case = r
        .referral_from(REFERRER, "Case notification form", "2026-08-20 10:00")
        .await;
    for member in [LA, ICB] {
        let ask = r.last_about(&case, member, "screening-request");
        r.reply(&ask, member, "MEETS", "2026-08-20 11:00").await;
    }
    r.at("2026-08-20 11:05").await;
    let chair = "executive.chair@bury.test";
    assert!(
        r.sent_to_for(chair, "notice-majority-consultation")
            .is_empty(),
        "two of three agreeing is no disagreement yet"
    );

    // The police disagree the next morning: still too late to count, but now a disagreement.
    let ask = r.last_about(&case, POLICE, "screening-request");
    r.reply(&ask, POLICE, "NFA", "2026-08-21 09:00").await;
    let consulted = r.sent_to_for(chair, "notice-majority-consultation");
    assert_eq!(consulted.len(), 1);
    assert!(
        consulted[0]
            .msg
            .body_text
            .contains("voted nfa after the decision was taken by majority (meets)"),
        "{}",
        consulted[0].msg.body_text
    );
    assert!(r.report(&case).await.contains("decision screening: meets"));

    // Saying it again consults nobody twice.
    r.reply(&ask, POLICE, "NFA - we maintain this", "2026-08-21 10:00")
        .await;
    assert_eq!(
        r.sent_to_for(chair, "notice-majority-consultation").len(),
        1
    );
}

#[tokio::test]
async fn a_query_to_the_referrer_waits_and_the_screening_resumes_when_the_referrer_replies() {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.vote_all(
        "screening-request",
        SCREENING_PANEL,
        "QUERY\nWhat was the date of the incident?",
        "2026-08-20 11:00",
    )
    .await;
    let query = r.last_to(REFERRER, "query-referrer");
    assert!(
        query.msg.subject.contains("needs more information"),
        "{}",
        query.msg.subject
    );
    // Nothing else happens while the case waits, days later.
    let waiting = r.letters().len();
    r.at("2026-08-26 11:05").await;
    assert_eq!(
        r.letters().len(),
        waiting,
        "{:#?}",
        &r.timeline()[waiting..]
    );
    assert_eq!(r.sent_to(LA).len(), 2, "a request and a confirmation");
    // The referrer answers: the panel is asked again, with the answer attached.
    r.reply(
        &query,
        REFERRER,
        "The incident was on Sunday.",
        "2026-08-26 12:00",
    )
    .await;
    for member in SCREENING_PANEL {
        let again = r.last_to(member, "screening-request");
        assert_eq!(again.at, london("2026-08-26 12:00"), "{member}");
        assert!(
            again.msg.subject.contains("[code "),
            "{member}: {}",
            again.msg.subject
        );
        assert!(
            again
                .attachment_names()
                .iter()
                .any(|a| a.contains("referrer-reply")),
            "{member}: the referrer's answer is attached: {:?}",
            again.attachment_names()
        );
    }
    assert!(
        r.report(&case)
            .await
            .contains("decision screening reopened")
    );
    r.vote_all(
        "screening-request",
        SCREENING_PANEL,
        "MEETS",
        "2026-08-26 14:00",
    )
    .await;
    r.at("2026-08-26 14:05").await;
    assert!(
        r.report(&case)
            .await
            .contains("decision screening: meets (")
    );
}

#[tokio::test]
async fn a_sign_off_goes_to_the_national_panel_on_day_15_and_the_lcspr_report_before_publication() {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.vote_all(
        "screening-request",
        SCREENING_PANEL,
        "MEETS",
        "2026-08-20 15:00",
    )
    .await;
    // Day 13 (Wed 9 Sep): the sign-off request to the three partners; they agree on day 14.
    r.vote_all(
        "signoff-request",
        PARTNERS,
        "LCSPR\nClear learning for the partnership.",
        "2026-09-10 11:00",
    )
    .await;
    assert!(r.report(&case).await.contains("decision sign_off: lcspr"));
    // Day 15 is Fri 11 Sep: to the Panel at 15:00, not before; the referrer told at 15:30.
    r.at("2026-09-11 17:00").await;
    let np = r.last_to(NATIONAL_PANEL, "panel-submission");
    assert_eq!(np.at, london("2026-09-11 15:00"));
    assert!(
        np.msg.subject.contains("Rapid review decision"),
        "{}",
        np.msg.subject
    );
    let told = r.last_to(REFERRER, "outcome-final");
    assert_eq!(told.at, london("2026-09-11 15:30"));
    assert!(
        told.msg.subject.contains("complete"),
        "{}",
        told.msg.subject
    );
    // The National Panel answers in prose on the thread.
    r.reply(
        &np,
        NATIONAL_PANEL,
        "Dear colleagues,\nThank you for the rapid review. The Panel agrees with the partnership's decision to undertake a local review.",
        "2026-09-25 09:00",
    )
    .await;
    let report = r.report(&case).await;
    assert!(
        report.contains("decision panel_response: agree"),
        "{report}"
    );
    assert!(
        report.contains("LCSPR published (within 6 months of the decision): Wed 10 Mar 2027"),
        "{report}"
    );

    // A publication date too soon, or in the past, is refused with the reason.
    let plan = |r: &Review, date: &str, reason: &'static str, now: &str| {
        let cfg = r.engine.cfg.clone();
        let store = r.engine.store.clone();
        let case = case.clone();
        let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let now = london(now);
        async move {
            caseclerk::shell::operator::plan_publication(
                &cfg, &store, &case, date, reason, "test", now,
            )
            .await
        }
    };
    let soon = plan(&r, "2026-09-29", "x", "2026-09-25 10:00")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        soon.contains("earliest possible date is Wed 7 Oct 2026"),
        "{soon}"
    );
    let past = plan(&r, "2026-09-01", "x", "2026-09-25 10:00")
        .await
        .unwrap_err()
        .to_string();
    assert!(past.contains("not in the future"), "{past}");
    // Planned for Mon 1 Mar 2027: the report goes to the Panel, the Secretary of State and Ofsted
    // 7 working days before, on Thu 18 Feb 2027, and not earlier.
    plan(
        &r,
        "2027-03-01",
        "agreed by the partnership",
        "2026-09-25 10:00",
    )
    .await
    .unwrap();
    r.at("2027-02-18 17:00").await;
    for who in ["notifications@ofsted.test", "dfe@education.test"] {
        let got = r.sent_to(who);
        assert_eq!(got.len(), 1, "{who}: {:?}", r.timeline());
        assert_eq!(when_sent(got[0]), "Thu 18 Feb 2027", "{who}");
        assert!(
            got[0].msg.subject.contains("ahead of publication"),
            "{who}: {}",
            got[0].msg.subject
        );
    }
    // Moved beyond the six months: the delay is reported to the Panel and the Secretary of State.
    plan(&r, "2027-04-30", "criminal trial", "2027-02-19 09:00")
        .await
        .unwrap();
    r.at("2027-02-19 09:05").await;
    let dfe = r.sent_to("dfe@education.test");
    assert_eq!(dfe.len(), 2);
    assert!(
        dfe[1]
            .msg
            .subject
            .contains("will not be completed within six months"),
        "{}",
        dfe[1].msg.subject
    );
    assert!(
        dfe[1].msg.body_text.contains("Wednesday 10 March 2027"),
        "{}",
        dfe[1].msg.body_text
    );
}

fn when_sent(l: &crate::review::Letter) -> String {
    l.at.with_timezone(&caseclerk::core::calendar::LONDON)
        .format("%a %-d %b %Y")
        .to_string()
}

#[tokio::test]
async fn the_business_unit_names_agencies_by_reply_unknown_names_go_back_and_late_steps_go_at_once()
{
    let mut r = Review::of("nelincs").await;
    let case = r
        .referral_from(REFERRER, "SCSI-1 referral", "2026-08-20 10:00")
        .await;
    let ack = r.last_to(REFERRER, "acknowledge");
    // A business support officer replies on the case thread naming the agencies.
    let officer = "officer@bury.test";
    r.receive(
        &Reply::to(
            &ack,
            &format!("Business Support Officer <{officer}>"),
            "Agencies: police, GP, Little Acorns Nursery",
        )
        .raw(),
        "2026-08-20 11:00",
    )
    .await;
    let notice = r.last_to(officer, "notice-agencies-unknown");
    assert!(
        notice.msg.subject.contains("Agencies not recognised"),
        "{}",
        notice.msg.subject
    );
    assert!(
        notice.msg.body_text.contains("Little Acorns Nursery"),
        "{}",
        notice.msg.body_text
    );
    // caseclerk does not run again until day 4 (Wed 26 Aug): the day-2 requests go at once,
    // recorded as late.
    r.only_at("2026-08-26 14:00").await;
    for agency in ["ppu@police.test", "gp@practice.test"] {
        let request = r.last_to(agency, "scsi6-agency-request");
        assert_eq!(request.at, london("2026-08-26 14:00"), "{agency}");
    }
    let report = r.report(&case).await;
    assert!(
        report.contains("agency police added (Agencies: line in stored message"),
        "{report}"
    );
    assert!(report.contains("agency gp added"), "{report}");
    assert!(!report.contains("little"), "{report}");
    let late = report
        .lines()
        .find(|l| l.contains("scsi6-agency-request to agency:police"))
        .expect("the request letter");
    assert!(late.contains("minutes late"), "{late}");
}

#[tokio::test]
async fn a_letter_the_server_refuses_is_marked_undelivered_and_the_others_still_go() {
    let mut r = Review::of("bury").await;
    r.mail.refuse(POLICE);
    let case = r.referral_at("2026-08-20 10:00").await;
    assert_eq!(r.last.sent.undelivered, 1, "{:?}", r.last.sent);
    assert!(r.sent_to(POLICE).is_empty());
    for member in [LA, ICB] {
        r.last_to(member, "screening-request");
    }
    let report = r.report(&case).await;
    assert!(
        report.to_lowercase().contains("undelivered"),
        "the refusal is on the case: {report}"
    );
}

#[tokio::test]
async fn a_shared_letter_goes_to_everyone_the_server_takes_and_the_one_it_refuses_is_raised() {
    let mut r = Review::of("nelincs").await;
    // Someone who left: the server refuses their address at RCPT.
    r.mail.refuse("officer@bury.test");
    let case = r.referral_at("2026-08-20 10:00").await;
    r.decide(&case, "screening", "meets", "2026-08-20 11:00")
        .await;
    let told = r.for_step("la-notification");
    assert_eq!(told.len(), 1, "{:#?}", r.timeline());
    assert_eq!(
        told[0].to,
        ["la.lead@bury.test", "bsp@bury.test"],
        "the others got it"
    );
    let report = r.report(&case).await;
    assert!(
        report.contains("refused by the mail server for 1 of its 3 addressee(s)"),
        "{report}"
    );
    r.at("2026-08-20 11:05").await;
    assert_eq!(
        r.for_step("notice-undelivered").len(),
        1,
        "the business manager is told: {:#?}",
        r.timeline()
    );
}

#[tokio::test]
async fn a_reply_held_before_a_query_reopened_the_screening_cannot_be_confirmed_into_the_new_round()
{
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    let request = r.last_to(LA, "screening-request");
    r.reply(
        &request,
        LA,
        "QUERY or MEETS - not sure",
        "2026-08-20 10:30",
    )
    .await;
    r.vote_all(
        "screening-request",
        SCREENING_PANEL,
        "QUERY\nWhat was the date of the incident?",
        "2026-08-20 11:00",
    )
    .await;
    let query = r.last_to(REFERRER, "query-referrer");
    r.reply(&query, REFERRER, "It was on Sunday.", "2026-08-26 12:00")
        .await;
    let report = r.report(&case).await;
    let held: i64 = report
        .lines()
        .find(|l| l.contains("HELD on screening"))
        .and_then(|l| l.split("(message ").nth(1))
        .and_then(|rest| rest.split(')').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("LA's unclear reply is held:\n{report}"));
    let refused = caseclerk::shell::operator::confirm_held(
        &r.engine.cfg,
        &r.engine.store,
        &case,
        held,
        None,
        "meets",
        "read the held page",
        "operator:test",
        london("2026-08-26 13:00"),
    )
    .await
    .expect_err("LA had not seen the referrer's answer");
    assert!(
        refused
            .to_string()
            .contains("before screening was reopened"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_held_reply_that_cannot_count_is_dismissed_leaves_the_held_list_and_stays_in_the_history()
{
    use caseclerk::shell::operator::{confirm_held, dismiss_held};
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    let request = r.last_to(LA, "screening-request");
    r.vote_all(
        "screening-request",
        SCREENING_PANEL,
        "MEETS",
        "2026-08-20 10:30",
    )
    .await;
    // After the decision: too late to count, held for a person.
    r.reply(&request, LA, "NFA", "2026-08-20 10:45").await;
    let state = r.state(&case).await;
    let held = state
        .held
        .iter()
        .find(|h| h.waiting())
        .unwrap_or_else(|| panic!("LA's late reply is held: {}", "see the case's report"))
        .message;
    let store = &r.engine.store;
    let at = london("2026-08-20 11:00");
    let refused = dismiss_held(store, &case, held, " ", "operator:test", at)
        .await
        .expect_err("a reason is required");
    assert!(refused.to_string().contains("reason"), "{refused}");
    dismiss_held(store, &case, held, "no vote in it", "operator:test", at)
        .await
        .expect("dismissed");

    let state = r.state(&case).await;
    assert!(
        state.held.iter().all(|h| !h.waiting()),
        "nothing waits for a person now: {:#?}",
        state.held
    );
    assert!(
        !r.digest_text().await.contains("held replies"),
        "{}",
        r.digest_text().await
    );
    let report = r.report(&case).await;
    assert!(
        report.contains(&format!("held reply (message {held}) dismissed")),
        "{report}"
    );
    assert!(
        report.contains("no vote in it"),
        "the reason is in the history: {report}"
    );

    let (cfg, store) = (&r.engine.cfg, &r.engine.store);
    let again = dismiss_held(store, &case, held, "twice", "operator:test", at)
        .await
        .expect_err("once");
    assert!(again.to_string().contains("was dismissed"), "{again}");
    let confirm = confirm_held(
        cfg,
        store,
        &case,
        held,
        None,
        "meets",
        "after all",
        "operator:test",
        at,
    )
    .await
    .expect_err("a dismissed reply counts as no vote");
    assert!(confirm.to_string().contains("was dismissed"), "{confirm}");
}

#[tokio::test]
async fn a_panel_members_vote_with_a_document_attached_is_no_return_of_their_agency() {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-08-20 10:00").await;
    let request = r.last_to(POLICE, "screening-request");
    let vote = crate::review::Reply::to(&request, POLICE, "MEETS\nAgencies: police").attach(
        "police checks summary.docx",
        "UEsDBBQAAAAIAHJldHVybiBjb250ZW50",
    );
    r.receive(&vote.raw(), "2026-08-20 10:30").await;
    let state = r.state(&case).await;
    assert!(
        !state.agencies.is_empty(),
        "the Agencies: line added the police: {:#?}",
        state.agencies
    );
    assert!(
        state.agencies.values().all(|a| a.returned_at.is_none()),
        "a vote is no agency's return: {:#?}",
        state.agencies
    );
}

#[tokio::test]
async fn a_nil_return_that_failed_dmarc_goes_to_a_person_and_the_agency_is_still_awaited() {
    let mut r = Review::with("bury", trusting_our_mx).await;
    let case = r.referral_at("2026-08-20 10:00").await;
    r.decide(&case, "screening", "meets", "2026-08-20 11:00")
        .await;
    r.add_agencies(&case, &["police"], "2026-08-20 11:30").await;
    r.at("2026-08-24 11:55").await;
    let request = r.last_about(&case, "ppu@police.test", "agency-request");
    let forged =
        crate::review::Reply::to(&request, "ppu@police.test", "Nil return - not known to us.")
            .header(dmarc_fail("ppu@police.test"));
    r.receive(&forged.raw(), "2026-08-24 12:00").await;
    let state = r.state(&case).await;
    assert!(
        state.agencies["police"].returned_at.is_none(),
        "still awaited, and chased: {:#?}",
        state.agencies
    );
    let triage = r.engine.store.triage().await.unwrap();
    assert_eq!(triage.len(), 1, "for a person to check");
    assert!(
        r.report(&case)
            .await
            .contains("failed the receiving server's checks")
    );

    // The same from the police's own server: their nil return.
    let genuine =
        crate::review::Reply::to(&request, "ppu@police.test", "Nil return - not known to us.")
            .header(dmarc_pass("ppu@police.test"));
    r.receive(&genuine.raw(), "2026-08-24 12:30").await;
    let state = r.state(&case).await;
    assert!(state.agencies["police"].nil, "{:#?}", state.agencies);
}
