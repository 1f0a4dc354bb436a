//! The partnerships' process files behave on a real case as their header comments say: what the
//! timeline plans (`timeline::plan`, the engine's own call) before and after each decision, for a
//! referral received on Tuesday 3 March 2026 at 10:15 (no holidays nearby; day 1 is Wednesday 4,
//! day 2 Thursday 5 March).

use caseclerk::core::calendar::Calendar;
use caseclerk::core::case::{AgencyState, CaseState, LetterState};
use caseclerk::core::directory::Lookup;
use caseclerk::core::process::Process;
use caseclerk::core::timeline::{self, DueLetter};
use caseclerk::shell::config::{self, Agency, Contact};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn process(id: &str) -> Process {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    config::load_process(
        &root.join("config/processes").join(format!("{id}.toml")),
        &root.join("mail-templates"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("an RFC 3339 instant")
}

fn contact(email: String) -> Contact {
    Contact {
        name: email.clone(),
        email,
        phone: None,
        partner: None,
    }
}

/// One person per role, at `<role>@<area or "all">.test`; two agencies.
struct Fixed;

impl Lookup for Fixed {
    fn people(&self, role: &str, area: Option<&str>) -> Vec<Contact> {
        let area = area.unwrap_or("all").to_lowercase().replace(' ', "-");
        vec![contact(format!("{role}@{area}.test"))]
    }
    fn agency(&self, id: &str) -> Option<Agency> {
        Some(Agency {
            id: id.to_string(),
            name: id.to_string(),
            aliases: Vec::new(),
            contact: contact(format!("contact@{id}.test")),
            lead: Some(contact(format!("lead@{id}.test"))),
            deputy: None,
            domains: Vec::new(),
        })
    }
}

fn case(process: &str, area: Option<&str>) -> CaseState {
    let received = at("2026-03-03T10:15:00Z");
    let agency = AgencyState {
        added_at: Some(received),
        ..AgencyState::default()
    };
    let mut state = CaseState::new(
        "RR-TEST",
        process,
        area.map(String::from),
        Some("referrer@agency.test".into()),
        received,
        NaiveDate::from_ymd_opt(2026, 3, 3).expect("a date"),
        1,
    );
    state.agencies = [
        ("police".to_string(), agency.clone()),
        ("school".to_string(), agency),
    ]
    .into_iter()
    .collect();
    state
}

fn decided(mut state: CaseState, decision: &str, outcome: &str, when: &str) -> CaseState {
    state
        .decisions
        .insert(decision.into(), (outcome.into(), at(when)));
    state
}

fn due(p: &Process, state: &CaseState, now: &str) -> Vec<DueLetter> {
    timeline::plan(p, &Fixed, &Calendar::bundled(), state, at(now))
        .expect("plans")
        .due
}

fn steps(letters: &[DueLetter]) -> BTreeSet<String> {
    letters.iter().map(|l| l.step.clone()).collect()
}

#[test]
fn nelincs_runs_the_rapid_review_from_the_notification_until_the_partners_say_otherwise() {
    let p = process("nelincs");
    // Day 2, 10:05, the partners have not answered SCSI-2: the review runs provisionally.
    let open = steps(&due(&p, &case("nelincs", None), "2026-03-05T10:05:00Z"));
    for s in [
        "scsi2-partners",
        "scsi3-srg",
        "scsi3-invite",
        "scsi4-partners",
        "scsi6-agency-request",
    ] {
        assert!(open.contains(s), "{s} should be due: {open:?}");
    }
    // The local authority's reminder waits for the partners' MEETS.
    assert!(!open.contains("la-notification"), "{open:?}");
    assert!(!open.contains("stood-down"), "{open:?}");

    // NOT MET on day 1: the day-2 rapid review letters never go; the SRG and the professional hear.
    let not_met = decided(
        case("nelincs", None),
        "screening",
        "not_met",
        "2026-03-04T15:00:00Z",
    );
    let stood_down = steps(&due(&p, &not_met, "2026-03-05T10:05:00Z"));
    assert!(stood_down.contains("stood-down"), "{stood_down:?}");
    assert!(stood_down.contains("not-met-referrer"), "{stood_down:?}");
    for s in ["scsi3-invite", "scsi4-partners", "scsi6-agency-request"] {
        assert!(!stood_down.contains(s), "{s} should not go: {stood_down:?}");
    }

    // MEETS: the local authority is reminded at once.
    let meets = decided(
        case("nelincs", None),
        "screening",
        "meets",
        "2026-03-04T15:00:00Z",
    );
    let letters = due(&p, &meets, "2026-03-04T15:01:00Z");
    assert!(
        letters
            .iter()
            .any(|l| l.step == "la-notification" && l.to.email == "la@all.test"),
        "{:?}",
        steps(&letters)
    );
}

#[test]
fn nelincs_stood_down_on_day_0_sends_no_serious_incident_letters_on_day_1() {
    let p = process("nelincs");
    // An LLR-1 notification, recorded as LLR the afternoon it came.
    let llr = decided(
        case("nelincs", None),
        "screening",
        "llr",
        "2026-03-03T15:00:00Z",
    );
    let day1 = steps(&due(&p, &llr, "2026-03-04T09:05:00Z"));
    for s in ["scsi2-partners", "scsi3-srg"] {
        assert!(!day1.contains(s), "{s} should not go: {day1:?}");
    }
    // MEETS recorded on day 0: both go; SCSI-2 carries the referral to the partners.
    let meets = decided(
        case("nelincs", None),
        "screening",
        "meets",
        "2026-03-03T15:00:00Z",
    );
    let day1 = steps(&due(&p, &meets, "2026-03-04T09:05:00Z"));
    assert!(day1.contains("scsi3-srg"), "{day1:?}");
    assert!(day1.contains("scsi2-partners"), "{day1:?}");
}

#[test]
fn when_the_national_panel_disagrees_each_partnership_tells_those_who_decide_what_next() {
    for (id, told) in [
        ("bury", "statutory_partners@all.test"),
        ("tameside", "review_group@all.test"),
        ("bhr", "statutory_partners@all.test"),
        ("nelincs", "statutory_partners@all.test"),
        ("bucks", "statutory_partners@all.test"),
    ] {
        let p = process(id);
        // NE Lincs' Panel answers "agree" or "alternative".
        let answers: &[(&str, bool)] = match id {
            "nelincs" => &[("alternative", true), ("agree", false)],
            _ => &[
                ("disagree", true),
                ("national_review", true),
                ("agree", false),
            ],
        };
        for &(answer, expected) in answers {
            let state = decided(
                case(id, None),
                "panel_response",
                answer,
                "2026-04-08T14:00:00Z",
            );
            let letters = due(&p, &state, "2026-04-08T14:01:00Z");
            let sent = letters
                .iter()
                .any(|l| l.step == "panel-disagrees" && l.to.email == told);
            assert_eq!(sent, expected, "{id} {answer}: {:?}", steps(&letters));
        }
    }
}

#[test]
fn a_single_agency_outcome_writes_to_the_one_agency_with_the_learning_never_to_all() {
    for (id, screening, decision, outcome, step) in [
        (
            "bury",
            "single_agency",
            "screening",
            "single_agency",
            "single-agency-action",
        ),
        (
            "tameside",
            "audit_assurance",
            "audit_determination",
            "single_agency_audit",
            "single-agency-audit",
        ),
    ] {
        let p = process(id);
        let mut state = decided(
            case(id, None),
            "screening",
            screening,
            "2026-03-04T09:00:00Z",
        );
        state = decided(state, decision, outcome, "2026-03-04T10:00:00Z");
        let now = at("2026-03-04T10:01:00Z");
        // Police and a school on the case: which one has the learning is a person's call.
        let plan = timeline::plan(&p, &Fixed, &Calendar::bundled(), &state, now).expect("plans");
        assert!(
            !plan.due.iter().any(|l| l.step == step),
            "{id}: {:?}",
            steps(&plan.due)
        );
        assert!(
            plan.problems
                .iter()
                .any(|m| m.starts_with(step) && m.contains("agencies remove")),
            "{id}: {:?}",
            plan.problems
        );
        // The school removed: the police, alone, are written to.
        state.agencies.get_mut("school").unwrap().removed = true;
        let plan = timeline::plan(&p, &Fixed, &Calendar::bundled(), &state, now).expect("plans");
        let to: Vec<&str> = plan
            .due
            .iter()
            .filter(|l| l.step == step)
            .map(|l| l.to.email.as_str())
            .collect();
        assert_eq!(to, ["contact@police.test"], "{id}");
        // Once it has gone, another agency added later raises nothing about it.
        state.letters.insert(
            (step.to_string(), "agency:police".to_string()),
            caseclerk::core::case::LetterState {
                outbox: 1,
                due_at: now,
                queued_at: now,
                sent_at: Some(now),
                undelivered: None,
                imported: false,
            },
        );
        state.agencies.get_mut("school").unwrap().removed = false;
        let plan = timeline::plan(&p, &Fixed, &Calendar::bundled(), &state, now).expect("plans");
        assert!(
            !plan.problems.iter().any(|m| m.starts_with(step)),
            "{id}: {:?}",
            plan.problems
        );
    }
}

#[test]
fn nelincs_letter_9_waits_for_the_partners_signatures() {
    let p = process("nelincs");
    let meets = decided(
        case("nelincs", None),
        "screening",
        "meets",
        "2026-03-04T15:00:00Z",
    );
    // Day 15 is Tuesday 24 March 2026.
    let unsigned = steps(&due(&p, &meets, "2026-03-24T12:05:00Z"));
    assert!(!unsigned.contains("letter9-panel"), "{unsigned:?}");
    let signed = decided(meets, "sign_off", "no_review", "2026-03-24T12:30:00Z");
    let after = steps(&due(&p, &signed, "2026-03-24T12:31:00Z"));
    assert!(after.contains("letter9-panel"), "{after:?}");
}

#[test]
fn nelincs_srg_8_waits_for_a_moved_meeting_to_end_but_not_for_a_cancelled_one() {
    let p = process("nelincs");
    let mut moved = decided(
        case("nelincs", None),
        "screening",
        "meets",
        "2026-03-04T15:00:00Z",
    );
    // The day-11 meeting (Wed 18 March, 14:00) moved to day 12, Thursday 19 March at 10:00.
    moved.meeting_at = Some(at("2026-03-19T10:00:00Z"));
    let planned = timeline::upcoming(
        &p,
        &Calendar::bundled(),
        &moved,
        at("2026-03-19T00:00:00Z"),
        at("2026-03-20T00:00:00Z"),
    )
    .expect("plans");
    let srg8 = planned
        .iter()
        .find(|u| u.step == "srg8-partners")
        .expect("SRG-8 on day 12");
    assert_eq!(srg8.due.at, at("2026-03-19T12:00:00Z"), "{:?}", srg8.due);
    assert!(
        srg8.due
            .explanation
            .ends_with("not before the meeting has ended (Thu 19 Mar 2026 12:00)"),
        "{}",
        srg8.due.explanation
    );
    let before = steps(&due(&p, &moved, "2026-03-19T11:59:00Z"));
    assert!(!before.contains("srg8-partners"), "{before:?}");
    // Called off: no meeting to wait for, so SRG-8 goes on its day.
    let mut cancelled = moved;
    cancelled.meeting_changes.push((
        at("2026-03-16T09:00:00Z"),
        true,
        "the review is stood down".into(),
    ));
    let on_its_day = steps(&due(&p, &cancelled, "2026-03-19T10:00:00Z"));
    assert!(on_its_day.contains("srg8-partners"), "{on_its_day:?}");
}

/// A letter of `step` to `key`, decided and sent at `when`.
fn sent(state: &mut CaseState, step: &str, key: &str, when: &str) {
    state.letters.insert(
        (step.into(), key.into()),
        LetterState {
            outbox: 1,
            due_at: at(when),
            queued_at: at(when),
            sent_at: Some(at(when)),
            undelivered: None,
            imported: false,
        },
    );
}

#[test]
fn bury_s_papers_go_before_a_meeting_moved_earlier_and_never_wait_past_it_for_an_agency_asked_late()
{
    let p = process("bury");
    let mut state = decided(
        case("bury", None),
        "screening",
        "meets",
        "2026-03-04T15:00:00Z",
    );
    for id in ["police", "school"] {
        sent(
            &mut state,
            "agency-request",
            &format!("agency:{id}"),
            "2026-03-05T10:00:00Z",
        );
        state.agencies.get_mut(id).expect("on the case").returned_at =
            Some(at("2026-03-13T11:00:00Z"));
    }
    // Housing is asked on day 3 (Fri 6 Mar): its return is due on day 10, Tue 17 Mar at 17:00.
    state.agencies.insert(
        "housing".into(),
        AgencyState {
            added_at: Some(at("2026-03-06T09:00:00Z")),
            ..AgencyState::default()
        },
    );
    sent(
        &mut state,
        "agency-request",
        "agency:housing",
        "2026-03-06T09:00:00Z",
    );
    // The day-12 meeting (Thu 19 Mar) is moved earlier, to day 10: Tue 17 Mar at 10:00.
    state.meeting_at = Some(at("2026-03-17T10:00:00Z"));
    // The papers, two working days before the meeting as planned, go two working days before
    // the moved one — no earlier than the day-9 returns — and not after it, housing missing.
    let coming = timeline::upcoming(
        &p,
        &Calendar::bundled(),
        &state,
        at("2026-03-16T00:00:00Z"),
        at("2026-03-18T00:00:00Z"),
    )
    .expect("plans");
    let papers = coming
        .iter()
        .find(|u| u.step == "circulate-papers")
        .expect("the papers before the meeting");
    assert_eq!(
        papers.due.at,
        at("2026-03-16T17:00:00Z"),
        "{}",
        papers.due.explanation
    );
    assert!(
        papers.due.explanation.contains("the meeting moved earlier"),
        "{}",
        papers.due.explanation
    );
    let letters = due(&p, &state, "2026-03-16T17:00:00Z");
    let pack = letters
        .iter()
        .find(|l| l.step == "circulate-papers")
        .expect("the papers go");
    assert_eq!(pack.missing, ["housing"]);
    // Moved on the morning of the meeting, when their day has passed: they go at once.
    let that_morning = steps(&due(&p, &state, "2026-03-17T08:00:00Z"));
    assert!(
        that_morning.contains("circulate-papers"),
        "{that_morning:?}"
    );
    // A meeting moved later does not hold them later: they go on their day, waiting (as ever)
    // for housing's return, now due before the meeting.
    state.meeting_at = Some(at("2026-03-23T10:00:00Z"));
    let noon = steps(&due(&p, &state, "2026-03-17T12:00:00Z"));
    assert!(!noon.contains("circulate-papers"), "{noon:?}");
    let five = steps(&due(&p, &state, "2026-03-17T17:00:00Z"));
    assert!(five.contains("circulate-papers"), "{five:?}");
}

#[test]
fn bury_s_sign_off_is_due_as_long_after_an_adjourned_meeting_as_after_the_planned_one() {
    let p = process("bury");
    let cal = Calendar::bundled();
    let mut state = decided(
        case("bury", None),
        "screening",
        "meets",
        "2026-03-04T15:00:00Z",
    );
    let sign_off = &p
        .decisions
        .iter()
        .find(|d| d.id == "sign_off")
        .expect("Bury's sign-off")
        .due;
    let due_by = |state: &CaseState| {
        timeline::resolve(&p, &cal, state, sign_off, "decision:sign_off")
            .expect("resolves")
            .expect("a date")
    };
    // As planned: day 15 (Tue 24 Mar) at noon, three working days after the day-12 meeting.
    assert_eq!(due_by(&state).at, at("2026-03-24T12:00:00Z"));
    // Adjourned to day 14 (Mon 23 Mar) at 10:00: three working days after it ends, day 17.
    state.meeting_at = Some(at("2026-03-23T10:00:00Z"));
    let adjourned = due_by(&state);
    assert_eq!(
        adjourned.at,
        at("2026-03-26T12:00:00Z"),
        "{}",
        adjourned.explanation
    );
    assert_eq!(adjourned.day, Some(17));
    assert!(
        adjourned.explanation.contains("adjourned meeting"),
        "{}",
        adjourned.explanation
    );
    // The request goes when the adjourned meeting has ended, as before.
    let asked = steps(&due(&p, &state, "2026-03-23T12:00:00Z"));
    assert!(asked.contains("signoff-request"), "{asked:?}");
    // A meeting moved earlier leaves the partners their date.
    state.meeting_at = Some(at("2026-03-18T10:00:00Z"));
    assert_eq!(due_by(&state).at, at("2026-03-24T12:00:00Z"));
}

#[test]
fn tameside_reminds_the_head_of_safeguarding_on_day_1_once_the_panel_says_meets() {
    let p = process("tameside");
    let undecided = steps(&due(&p, &case("tameside", None), "2026-03-04T10:00:00Z"));
    assert!(!undecided.contains("la-notification"), "{undecided:?}");
    // A decision within the 48 hours but after 09:00 on day 1: the reminder goes at once.
    let meets = decided(
        case("tameside", None),
        "screening",
        "meets",
        "2026-03-04T14:00:00Z",
    );
    let letters = due(&p, &meets, "2026-03-04T14:01:00Z");
    assert!(
        letters.iter().any(
            |l| l.step == "la-notification" && l.to.email == "la_head_of_safeguarding@all.test"
        ),
        "{:?}",
        steps(&letters)
    );
    // The day-3 template waits for day 3.
    assert!(!steps(&letters).contains("agency-request"));
}

#[test]
fn bucks_sends_the_information_request_the_moment_the_local_authority_says_notified() {
    let p = process("bucks");
    let notified = decided(
        case("bucks", None),
        "screening",
        "notified",
        "2026-03-03T14:00:00Z",
    );
    let letters = due(&p, &notified, "2026-03-03T14:01:00Z");
    let s = steps(&letters);
    for step in ["information-request", "invite", "chairs-notified"] {
        assert!(s.contains(step), "{step} should be due: {s:?}");
    }
    assert_eq!(
        letters
            .iter()
            .filter(|l| l.step == "information-request")
            .count(),
        2,
        "one request per agency"
    );
    assert!(!s.contains("subgroup-information-request"), "{s:?}");

    let not_notified = decided(
        case("bucks", None),
        "screening",
        "not_notified",
        "2026-03-03T14:00:00Z",
    );
    let s = steps(&due(&p, &not_notified, "2026-03-03T14:01:00Z"));
    assert!(s.contains("subgroup-information-request"), "{s:?}");
    assert!(!s.contains("information-request"), "{s:?}");
    assert!(!s.contains("invite"), "{s:?}");
}

#[test]
fn bhr_writes_the_local_authority_duties_to_the_case_s_borough() {
    let p = process("bhr");
    let meets = decided(
        case("bhr", Some("Havering")),
        "screening",
        "meets",
        "2026-03-04T09:30:00Z",
    );
    let letters = due(&p, &meets, "2026-03-04T10:01:00Z");
    let reminder = letters
        .iter()
        .find(|l| l.step == "la-notification")
        .expect("the local authority is reminded");
    assert_eq!(reminder.to.email, "la@havering.test");
}

/// Three people in every role, plus one person who is in every role (so a step's `to` and `cc`
/// overlap); every agency's lead is the same person.
struct Crowded;

impl Lookup for Crowded {
    fn people(&self, role: &str, _area: Option<&str>) -> Vec<Contact> {
        let mut people: Vec<Contact> = (1..=3)
            .map(|n| contact(format!("{role}.{n}@all.test")))
            .collect();
        people.push(contact("everyone@all.test".into()));
        people
    }
    fn agency(&self, id: &str) -> Option<Agency> {
        Some(Agency {
            id: id.to_string(),
            name: id.to_string(),
            aliases: Vec::new(),
            contact: contact(format!("contact@{id}.test")),
            lead: Some(contact("lead@all.test".into())),
            deputy: None,
            domains: Vec::new(),
        })
    }
}

#[test]
fn every_step_of_every_process_reaches_each_person_once_whatever_the_decisions() {
    // For every decision's every outcome, everything that falls due within two months at once:
    // no address is on two letters of the same step about the same thing (an agency's letter is
    // about that agency), as addressee or copy.
    let mut checked = 0;
    let mut shared = 0;
    for id in ["bury", "bhr", "nelincs", "bucks", "tameside"] {
        let p = process(id);
        let area = p.areas.first().map(String::as_str);
        for d in &p.decisions {
            for outcome in &d.outcomes {
                let state = decided(case(id, area), &d.id, outcome, "2026-03-04T15:00:00Z");
                let letters = timeline::plan(
                    &p,
                    &Crowded,
                    &Calendar::bundled(),
                    &state,
                    at("2026-05-01T12:00:00Z"),
                )
                .expect("plans")
                .due;
                let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
                for l in &letters {
                    let about = l.agency.clone().unwrap_or_default();
                    if !l.also_to.is_empty() {
                        shared += 1;
                    }
                    for r in std::iter::once(&l.to).chain(&l.also_to).chain(&l.cc) {
                        checked += 1;
                        assert!(
                            seen.insert((r.email.clone(), l.step.clone(), about.clone())),
                            "{id}, {}:{outcome}: {} receives step {} {about} twice",
                            d.id,
                            r.email,
                            l.step
                        );
                    }
                }
            }
        }
    }
    assert!(checked > 500, "the plans covered {checked} recipients");
    assert!(shared > 20, "{shared} shared letters");
}

#[test]
fn a_step_dated_beyond_the_holiday_data_is_a_problem_of_its_own_and_the_other_letters_still_go() {
    let p = process("bury");
    // Day 0 is Monday 26 June 2028; day 15, Monday 17 July. The LCSPR warning counts 20 working
    // days back from six months after the sign-off (17 January 2029): beyond the bundled data.
    let mut state = case("bury", None);
    state.received_at = at("2028-06-26T09:00:00Z");
    state.day0 = NaiveDate::from_ymd_opt(2028, 6, 26).expect("a date");
    let state = decided(state, "screening", "meets", "2028-06-27T10:00:00Z");
    let state = decided(state, "sign_off", "lcspr", "2028-07-17T10:00:00Z");
    let plan = timeline::plan(
        &p,
        &Fixed,
        &Calendar::bundled(),
        &state,
        at("2028-07-17T14:35:00Z"),
    )
    .expect("plans");
    let due = steps(&plan.due);
    assert!(due.contains("panel-submission"), "{due:?}");
    assert!(due.contains("outcome-final"), "{due:?}");
    // The warning, and the delay notice watching the same six months.
    assert_eq!(plan.problems.len(), 2, "{:?}", plan.problems);
    assert!(
        plan.problems[0]
            .starts_with("step:lcspr-warning: no bank-holiday data for Wed 17 Jan 2029"),
        "{:?}",
        plan.problems
    );
    assert!(
        plan.problems[1].starts_with("notice-lcspr-delay: "),
        "{:?}",
        plan.problems
    );
}

/// A BHR referral whose attached form gives the child's borough, sent by someone whose signature
/// names their own.
fn bhr_referral(form_borough: &str, signature: &str) -> caseclerk::core::intake::Message {
    let raw = format!(
        "From: Jo Nurse <jo@nhs.test>\r\nTo: bhr@partnership.test\r\n\
         Subject: Referral for a serious incident\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\n\
         Please find the referral form attached.\r\n\r\nKind regards\r\nJo\r\n{signature}\r\n\
         --b\r\nContent-Type: text/plain; name=\"form.txt\"\r\n\
         Content-Disposition: attachment; filename=\"form.txt\"\r\n\r\n\
         Referral Form for Serious Incidents\r\nBorough: {form_borough}\r\n\
         --b--\r\n"
    );
    caseclerk::core::intake::parse(raw.as_bytes())
}

fn opened_area(msg: &caseclerk::core::intake::Message) -> Option<String> {
    let o = caseclerk::core::react::opening(
        &process("bhr"),
        &Calendar::bundled(),
        None,
        1,
        at("2026-03-03T10:15:00Z"),
        msg,
    )
    .expect("day 0 is computed");
    o.area
}

#[test]
fn bhr_takes_the_case_s_borough_from_the_form_s_label_not_from_the_referrer_s_signature() {
    let signed = bhr_referral(
        "Redbridge",
        "Safeguarding Nurse, London Borough of Havering",
    );
    assert_eq!(opened_area(&signed).as_deref(), Some("Redbridge"));
    let unsigned = bhr_referral("London Borough of Redbridge", "");
    assert_eq!(opened_area(&unsigned).as_deref(), Some("Redbridge"));
    // A label naming two boroughs, or none of them, is the referrer's answer too: a person
    // decides, not the borough in the signature.
    let both = bhr_referral("Havering / Redbridge", "Barking and Dagenham");
    assert_eq!(opened_area(&both), None);
    let elsewhere = bhr_referral("Newham", "Barking and Dagenham");
    assert_eq!(opened_area(&elsewhere), None);
    // Without a labelled answer, the one borough the text names is still the case's.
    let no_label = bhr_referral("", "Redbridge");
    assert_eq!(opened_area(&no_label).as_deref(), Some("Redbridge"));
}
