//! A whole 15-working-day review for each of the five process files, without servers (see
//! `review.rs`): referral, screening by reply with the per-member code, the agency round (a
//! return, a nil return, a return after the chaser, one agency late), the chaser, the collation,
//! the meeting invitation, the partners' sign-off by reply and the letter to the National Panel —
//! every letter checked for its step, its recipients and the instant it went.
//!
//! Day 0 is Thu 20 Aug 2026 (the referral at 10:00); Mon 31 Aug is the Summer bank holiday, so
//! day 7 is Tue 1 Sep and day 15 is Fri 11 Sep.

use crate::review::{Letter, Reply, Review, london};

pub const LA_REP: &str = "la.rep@bury.test";
pub const POLICE_REP: &str = "police.rep@police.test";
pub const ICB_REP: &str = "icb.rep@icb.test";
pub const SCREENING_PANEL: &[&str] = &[LA_REP, POLICE_REP, ICB_REP];
pub const PARTNERS: &[&str] = &[
    "la.lead@bury.test",
    "police.lead@police.test",
    "icb.lead@icb.test",
];
const NATIONAL_PANEL: &str = "panel@education.test";

/// The five agencies in `config/example.toml`.
pub const POLICE: &str = "ppu@police.test";
pub const HV: &str = "hv@nhs.test";
pub const SCHOOL: &str = "dsl@stmarys.test";
pub const GP: &str = "gp@practice.test";
pub const CSC: &str = "csc@bury.test";
const CSC_LEAD: &str = "head.safeguarding@bury.test";
const AGENCIES: [&str; 5] = [POLICE, HV, SCHOOL, GP, CSC];
const DOCX_B64: &str = "UEsDBBQAAAAIAHJldHVybiBjb250ZW50";

/// A decision taken by reply: the request step, who votes, what they write and when.
struct Vote {
    step: &'static str,
    voters: &'static [&'static str],
    reply: &'static str,
    at: &'static str,
}

/// One process's version of the same review.
struct Script {
    process: &'static str,
    edit: fn(&mut toml::Table),
    subject: &'static str,
    screening: Vote,
    /// Decisions the business unit records by hand (a meeting's recommendation).
    by_hand: &'static [(&'static str, &'static str, &'static str)],
    agency_request: &'static str,
    deadline_text: &'static str,
    receipt: &'static str,
    chase: &'static str,
    /// The GP returns after the chaser, the same afternoon.
    gp_returns_at: &'static str,
    collation: &'static str,
    /// Children's Social Care returns after the collation, and is marked late.
    csc_returns_at: &'static str,
    late_today: &'static str,
    invite: &'static str,
    meeting_dtstart: &'static str,
    sign_off: Vote,
    panel_submission: &'static str,
    /// Every letter of the review, "Thu 20 Aug 10:00 step → recipients", in order.
    expected: &'static [&'static str],
}

fn nothing(_: &mut toml::Table) {}

enum Event {
    /// `voter` answers the request `step` (the first screening vote also names the agencies).
    Vote(&'static str, &'static str, String),
    /// An agency answers the agency request, with a Word document or a nil return.
    Return(&'static str, &'static str, Option<&'static str>),
    /// The business unit records a decision by hand.
    Decide(&'static str, &'static str),
    /// The National Panel answers its letter.
    PanelAnswers,
}

/// The review: every event at its instant, in order, with time passing between them as it would
/// for the daemon; the report is read when Children's Social Care's late return is in.
/// Nobody receives the same letter twice: for every address, at most one message per case, step,
/// agency (each agency's letter is about that agency) and round (a decision asked again) — as
/// addressee or as a copy. A periodic letter (no case) goes once per period, so it is left out.
fn each_letter_reaches_each_person_once(p: &str, r: &Review) {
    use std::collections::BTreeMap;
    let mut seen: BTreeMap<(String, crate::review::Identity), usize> = BTreeMap::new();
    for l in r.letters().iter().filter(|l| l.case.is_some()) {
        for to in &l.to {
            *seen.entry((to.clone(), l.identity())).or_default() += 1;
        }
    }
    let twice: Vec<String> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((to, (_, step, agency, round)), n)| format!("{to}: {step} {agency}{round} ×{n}"))
        .collect();
    assert!(
        twice.is_empty(),
        "{p}: the same letter reached one person more than once:\n{}",
        twice.join("\n")
    );
}

async fn run(s: &Script) -> Review {
    use Event::*;
    let p = s.process;
    let mut r = Review::with(p, s.edit).await;
    let case = r
        .referral_from(
            "Dr Test Referrer <referrer@hospital.test>",
            s.subject,
            "2026-08-20 10:00",
        )
        .await;
    assert_eq!(case, "RR-2026-0001");
    let mut events: Vec<(&str, Event)> = Vec::new();
    for (i, voter) in s.screening.voters.iter().enumerate() {
        let body = if i == 0 {
            format!(
                "{}\nAgencies: police, health visiting, St Mary's primary, gp, csc",
                s.screening.reply
            )
        } else {
            s.screening.reply.to_string()
        };
        events.push((s.screening.at, Vote(s.screening.step, voter, body)));
    }
    for (decision, outcome, at) in s.by_hand {
        events.push((at, Decide(decision, outcome)));
    }
    // Police returns on day 4, health visiting sends a nil return on day 5, the school returns on
    // day 6; the GP only after the chaser; Children's Social Care after the collation.
    events.push((
        "2026-08-26 11:00",
        Return(
            POLICE,
            "Please find our return attached.",
            Some("police return.docx"),
        ),
    ));
    events.push((
        "2026-08-27 15:00",
        Return(HV, "Nil return - no involvement with this family.", None),
    ));
    events.push((
        "2026-08-28 09:00",
        Return(
            SCHOOL,
            "Our chronology is attached.",
            Some("school chronology.docx"),
        ),
    ));
    events.push((
        s.gp_returns_at,
        Return(
            GP,
            "Attached, sorry for the delay.",
            Some("GP summary.docx"),
        ),
    ));
    events.push((
        s.csc_returns_at,
        Return(CSC, "Our return.", Some("CSC.docx")),
    ));
    for voter in s.sign_off.voters {
        events.push((
            s.sign_off.at,
            Vote(s.sign_off.step, voter, s.sign_off.reply.to_string()),
        ));
    }
    events.push(("2026-09-25 09:00", PanelAnswers));
    events.sort_by_key(|(at, _)| london(at));

    for (at, event) in events {
        r.at(at).await;
        match event {
            Vote(step, voter, body) => {
                let ask = r.last_to(voter, step);
                assert!(
                    ask.msg.subject.contains("[code "),
                    "{p}: {}",
                    ask.msg.subject
                );
                r.reply(&ask, voter, &body, at).await;
                assert_eq!(
                    r.last_to(voter, "notice-vote-confirmed").at,
                    london(at),
                    "{p}: {voter}'s vote is confirmed at once"
                );
            }
            Return(agency, body, attachment) => {
                let ask = r.last_to(agency, s.agency_request);
                let mut reply = Reply::to(&ask, agency, body);
                if let Some(name) = attachment {
                    reply = reply.attach(name, DOCX_B64);
                }
                r.receive(&reply.raw(), at).await;
                assert_eq!(
                    r.last_to(agency, s.receipt).at,
                    london(at),
                    "{p}: {agency}'s return is acknowledged at once"
                );
                if agency == CSC {
                    let report = r.report(&case).await;
                    assert!(
                        report.contains("childrens-social-care: returned")
                            && report.contains("(late)"),
                        "{p}: {report}"
                    );
                    assert!(
                        report.contains("health-visiting: nil return"),
                        "{p}: {report}"
                    );
                    assert!(report.contains(s.late_today), "{p}: {report}");
                }
            }
            Decide(decision, outcome) => r.decide(&case, decision, outcome, at).await,
            PanelAnswers => {
                let np = r.last_to(NATIONAL_PANEL, s.panel_submission);
                r.reply(
                    &np,
                    NATIONAL_PANEL,
                    "Dear colleagues,\nThank you for the rapid review. The Panel agrees with the partnership's decision.",
                    at,
                )
                .await;
                let report = r.report(&case).await;
                assert!(
                    report.contains("decision panel_response: agree"),
                    "{p}: {report}"
                );
            }
        }
    }
    r
}

/// What every process's review must show, beyond its own timeline.
fn check(s: &Script, r: &Review) {
    let p = s.process;
    each_letter_reaches_each_person_once(p, r);
    let timeline = r.timeline();
    let expected: Vec<String> = s.expected.iter().map(|l| l.to_string()).collect();
    if timeline != expected {
        panic!(
            "{p}: the letters differ.\nexpected:\n{}\nsent:\n{}",
            expected.join("\n"),
            timeline.join("\n")
        );
    }
    // The agency request: the template attached and the deadline written as a date.
    for a in AGENCIES {
        let m = r.last_to(a, s.agency_request);
        assert!(
            m.msg.body_text.contains(s.deadline_text),
            "{p}: {a}: the deadline as a date: {}",
            m.msg.body_text
        );
        assert!(
            m.attachment_names()
                .contains(&"agency-summary-and-chronology.docx"),
            "{p}: {a}: the template is attached"
        );
    }
    // The chaser goes to the GP and Children's Social Care only, copied to CSC's lead.
    let chased: Vec<&Letter> = r.for_step(s.chase);
    let csc = chased
        .iter()
        .find(|l| l.to[0] == CSC)
        .expect("CSC is chased");
    assert_eq!(csc.to, [CSC, CSC_LEAD], "{p}: the lead is copied");
    assert!(
        csc.msg.subject.contains("Reminder"),
        "{p}: {}",
        csc.msg.subject
    );
    // The collation: the returns attached, the nil return and the missing agency listed.
    let pack = r.for_step(s.collation)[0].clone();
    for f in [
        "police - police return.docx",
        "st-marys-primary - school chronology.docx",
        "gp - GP summary.docx",
    ] {
        assert!(
            pack.attachment_names().contains(&f),
            "{p}: {f} attached: {:?}",
            pack.attachment_names()
        );
    }
    assert!(
        !pack
            .attachment_names()
            .iter()
            .any(|n| n.starts_with("health-visiting") || n.starts_with("childrens")),
        "{p}: nothing from the nil return or the missing agency: {:?}",
        pack.attachment_names()
    );
    assert!(
        pack.msg.body_text.contains("Children's Social Care"),
        "{p}: the missing agency is listed: {}",
        pack.msg.body_text
    );
    assert!(
        pack.msg.body_text.contains("Health Visiting Service"),
        "{p}: the nil return is listed: {}",
        pack.msg.body_text
    );
    // The invitation carries an iCalendar request in London time.
    let invite = r.for_step(s.invite)[0].clone();
    let ics = crate::agency_round::calendar_part(&invite.raw);
    let cal: icalendar::Calendar = ics.parse().expect("the invite parses as iCalendar");
    assert!(ics.contains("METHOD:REQUEST"), "{p}");
    assert!(ics.contains(s.meeting_dtstart), "{p}: {ics}");
    assert_eq!(cal.components.len(), 2, "{p}: a VTIMEZONE and the VEVENT");
    // The National Panel letter, on the referral's thread.
    let np = r.last_to(NATIONAL_PANEL, s.panel_submission);
    assert!(
        np.msg.subject.contains("RR-2026-0001"),
        "{p}: {}",
        np.msg.subject
    );
}

#[tokio::test]
async fn a_bury_review_runs_from_referral_to_the_national_panel() {
    check(&BURY, &run(&BURY).await);
}

#[tokio::test]
async fn a_bhr_review_runs_from_referral_to_the_national_panel_and_tells_the_case_s_borough() {
    check(&BHR, &run(&BHR).await);
}

#[tokio::test]
async fn a_bucks_review_runs_from_notification_through_the_chair_s_decision_to_the_national_panel()
{
    check(&BUCKS, &run(&BUCKS).await);
}

#[tokio::test]
async fn a_north_east_lincolnshire_review_runs_from_scsi_1_to_letter_9() {
    check(&NELINCS, &run(&NELINCS).await);
}

#[tokio::test]
async fn a_tameside_review_runs_from_the_notification_form_to_the_national_panel() {
    check(&TAMESIDE, &run(&TAMESIDE).await);
}

const BURY: Script = Script {
    process: "bury",
    edit: nothing,
    subject: "Referral for a rapid review",
    screening: Vote {
        step: "screening-request",
        voters: SCREENING_PANEL,
        reply: "MEETS",
        at: "2026-08-20 14:00",
    },
    by_hand: &[],
    agency_request: "agency-request",
    deadline_text: "Thursday 3 September 2026 at 17:00",
    receipt: "return-receipt",
    chase: "chase",
    gp_returns_at: "2026-09-01 15:00",
    collation: "circulate-papers",
    csc_returns_at: "2026-09-07 10:00",
    late_today: "today (Mon 7 Sep 2026) is day 11",
    invite: "invite",
    meeting_dtstart: "DTSTART;TZID=Europe/London:20260908T100000",
    sign_off: Vote {
        step: "signoff-request",
        voters: PARTNERS,
        reply: "LCSPR\nClear learning for the partnership.",
        at: "2026-09-10 11:00",
    },
    panel_submission: "panel-submission",
    expected: &[
        "Thu 20 Aug 10:00 acknowledge → referrer@hospital.test",
        "Thu 20 Aug 10:00 screening-request → la.rep@bury.test",
        "Thu 20 Aug 10:00 screening-request → police.rep@police.test",
        "Thu 20 Aug 10:00 screening-request → icb.rep@icb.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → la.rep@bury.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → police.rep@police.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → icb.rep@icb.test",
        "Thu 20 Aug 14:00 outcome-meets → referrer@hospital.test",
        "Mon 24 Aug 10:00 agency-request → csc@bury.test",
        "Mon 24 Aug 10:00 agency-request → gp@practice.test",
        "Mon 24 Aug 10:00 agency-request → hv@nhs.test",
        "Mon 24 Aug 10:00 agency-request → ppu@police.test",
        "Mon 24 Aug 10:00 agency-request → dsl@stmarys.test",
        "Tue 25 Aug 10:00 invite → review.group@bury.test",
        "Tue 25 Aug 10:00 invite → chair@bury.test",
        "Wed 26 Aug 11:00 return-receipt → ppu@police.test",
        "Thu 27 Aug 15:00 return-receipt → hv@nhs.test",
        "Fri 28 Aug 09:00 return-receipt → dsl@stmarys.test",
        "Tue 1 Sep 10:00 chase → csc@bury.test, head.safeguarding@bury.test",
        "Tue 1 Sep 10:00 chase → gp@practice.test",
        "Tue 1 Sep 15:00 return-receipt → gp@practice.test",
        "Fri 4 Sep 09:00 escalate-missing → manager@bury.test",
        "Fri 4 Sep 12:00 circulate-papers → review.group@bury.test, chair@bury.test",
        "Mon 7 Sep 10:00 return-receipt → csc@bury.test",
        "Wed 9 Sep 09:00 signoff-request → la.lead@bury.test",
        "Wed 9 Sep 09:00 signoff-request → police.lead@police.test",
        "Wed 9 Sep 09:00 signoff-request → icb.lead@icb.test",
        "Thu 10 Sep 11:00 notice-vote-confirmed → la.lead@bury.test",
        "Thu 10 Sep 11:00 notice-vote-confirmed → police.lead@police.test",
        "Thu 10 Sep 11:00 notice-vote-confirmed → icb.lead@icb.test",
        "Fri 11 Sep 15:00 panel-submission → panel@education.test, bsp@bury.test, officer@bury.test",
        "Fri 11 Sep 15:30 outcome-final → referrer@hospital.test",
        "Fri 11 Sep 15:30 report-to-attendees → review.group@bury.test, chair@bury.test",
        "Fri 11 Sep 15:30 report-to-subgroup → subgroup@bury.test",
        "Fri 25 Sep 09:00 notice-vote-confirmed → panel@education.test",
    ],
};

/// BHR: the case belongs to Havering, whose local authority is told.
fn havering(cfg: &mut toml::Table) {
    let areas: toml::Table = r#"
[Havering.roles]
la = [{ name = "Havering children's services", email = "la@havering.test" }]
"#
    .parse()
    .unwrap();
    cfg.insert("areas".into(), toml::Value::Table(areas));
}

const BHR: Script = Script {
    process: "bhr",
    edit: havering,
    subject: "Referral for a rapid review - Havering",
    screening: Vote {
        step: "screening-request",
        voters: SCREENING_PANEL,
        reply: "MEETS",
        at: "2026-08-20 14:00",
    },
    by_hand: &[],
    agency_request: "agency-request",
    deadline_text: "Tuesday 1 September 2026 at 17:00",
    receipt: "return-receipt",
    chase: "chase",
    gp_returns_at: "2026-08-27 16:00",
    collation: "circulate-papers",
    csc_returns_at: "2026-09-03 10:00",
    late_today: "today (Thu 3 Sep 2026) is day 9",
    invite: "invite",
    meeting_dtstart: "DTSTART;TZID=Europe/London:20260904T100000",
    sign_off: Vote {
        step: "signoff-request",
        voters: PARTNERS,
        reply: "LCSPR",
        at: "2026-09-08 11:00",
    },
    panel_submission: "panel-submission",
    expected: &[
        "Thu 20 Aug 10:00 tracker-report → strategic@bury.test, la.lead@bury.test, police.lead@police.test, icb.lead@icb.test, scrutineer@bury.test",
        "Thu 20 Aug 10:00 acknowledge → referrer@hospital.test",
        "Thu 20 Aug 10:00 screening-request → la.rep@bury.test",
        "Thu 20 Aug 10:00 screening-request → police.rep@police.test",
        "Thu 20 Aug 10:00 screening-request → icb.rep@icb.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → la.rep@bury.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → police.rep@police.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → icb.rep@icb.test",
        "Thu 20 Aug 14:00 outcome-meets → referrer@hospital.test",
        "Thu 20 Aug 14:00 la-notification → la@havering.test, manager@bury.test",
        "Mon 24 Aug 10:00 agency-request → csc@bury.test",
        "Mon 24 Aug 10:00 agency-request → gp@practice.test",
        "Mon 24 Aug 10:00 agency-request → hv@nhs.test",
        "Mon 24 Aug 10:00 agency-request → ppu@police.test",
        "Mon 24 Aug 10:00 agency-request → dsl@stmarys.test",
        "Mon 24 Aug 11:00 invite → review.group@bury.test",
        "Mon 24 Aug 11:00 invite → head.safeguarding@bury.test",
        "Wed 26 Aug 11:00 return-receipt → ppu@police.test",
        "Thu 27 Aug 10:00 chase → csc@bury.test, head.safeguarding@bury.test",
        "Thu 27 Aug 10:00 chase → gp@practice.test",
        "Thu 27 Aug 10:00 chase → hv@nhs.test, named.nurse@nhs.test",
        "Thu 27 Aug 10:00 chase → dsl@stmarys.test",
        "Thu 27 Aug 15:00 return-receipt → hv@nhs.test",
        "Thu 27 Aug 16:00 return-receipt → gp@practice.test",
        "Fri 28 Aug 09:00 return-receipt → dsl@stmarys.test",
        "Tue 1 Sep 09:00 tracker-report → strategic@bury.test, la.lead@bury.test, police.lead@police.test, icb.lead@icb.test, scrutineer@bury.test",
        "Wed 2 Sep 09:00 escalate-missing → manager@bury.test",
        "Wed 2 Sep 12:00 circulate-papers → review.group@bury.test, head.safeguarding@bury.test",
        "Thu 3 Sep 10:00 return-receipt → csc@bury.test",
        "Mon 7 Sep 14:00 signoff-request → la.lead@bury.test",
        "Mon 7 Sep 14:00 signoff-request → police.lead@police.test",
        "Mon 7 Sep 14:00 signoff-request → icb.lead@icb.test",
        "Tue 8 Sep 11:00 notice-vote-confirmed → la.lead@bury.test",
        "Tue 8 Sep 11:00 notice-vote-confirmed → police.lead@police.test",
        "Tue 8 Sep 11:00 notice-vote-confirmed → icb.lead@icb.test",
        "Fri 11 Sep 15:00 panel-submission → panel@education.test, manager@bury.test",
        "Fri 11 Sep 15:30 outcome-final → referrer@hospital.test",
        "Fri 25 Sep 09:00 notice-vote-confirmed → panel@education.test",
    ],
};

/// Buckinghamshire: the local authority says "notified"; the meeting's recommendation is recorded
/// by hand and the partnership chair decides by reply.
const BUCKS: Script = Script {
    process: "bucks",
    edit: nothing,
    subject: "Referral for a rapid review",
    screening: Vote {
        step: "screening-request",
        voters: &["la.lead@bury.test"],
        reply: "NOTIFIED",
        at: "2026-08-20 14:00",
    },
    by_hand: &[("recommendation", "recommend_lcspr", "2026-09-04 14:00")],
    agency_request: "information-request",
    deadline_text: "Friday 28 August 2026 at 17:00",
    receipt: "return-receipt",
    chase: "chase",
    gp_returns_at: "2026-08-27 16:00",
    collation: "circulate-papers",
    csc_returns_at: "2026-09-03 10:00",
    late_today: "today (Thu 3 Sep 2026) is day 9",
    invite: "invite",
    meeting_dtstart: "DTSTART;TZID=Europe/London:20260904T100000",
    sign_off: Vote {
        step: "chair-decision-request",
        voters: &["partnership.chair@bury.test"],
        reply: "LCSPR",
        at: "2026-09-07 11:00",
    },
    panel_submission: "panel-submission",
    expected: &[
        "Thu 20 Aug 10:00 acknowledge → referrer@hospital.test",
        "Thu 20 Aug 10:00 screening-request → la.lead@bury.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → la.lead@bury.test",
        "Thu 20 Aug 14:00 chairs-notified → partnership.chair@bury.test, chair@bury.test",
        "Thu 20 Aug 14:00 information-request → csc@bury.test",
        "Thu 20 Aug 14:00 information-request → gp@practice.test",
        "Thu 20 Aug 14:00 information-request → hv@nhs.test",
        "Thu 20 Aug 14:00 information-request → ppu@police.test",
        "Thu 20 Aug 14:00 information-request → dsl@stmarys.test",
        "Thu 20 Aug 14:00 invite → review.group@bury.test",
        "Thu 20 Aug 14:00 invite → chair@bury.test",
        "Wed 26 Aug 11:00 return-receipt → ppu@police.test",
        "Thu 27 Aug 10:00 chase → csc@bury.test, head.safeguarding@bury.test",
        "Thu 27 Aug 10:00 chase → gp@practice.test",
        "Thu 27 Aug 10:00 chase → hv@nhs.test, named.nurse@nhs.test",
        "Thu 27 Aug 10:00 chase → dsl@stmarys.test",
        "Thu 27 Aug 15:00 return-receipt → hv@nhs.test",
        "Thu 27 Aug 16:00 return-receipt → gp@practice.test",
        "Fri 28 Aug 09:00 return-receipt → dsl@stmarys.test",
        "Tue 1 Sep 09:00 escalate-missing → manager@bury.test",
        "Wed 2 Sep 10:00 circulate-papers → review.group@bury.test, chair@bury.test",
        "Thu 3 Sep 10:00 return-receipt → csc@bury.test",
        "Fri 4 Sep 12:00 recommendation-request → review.group@bury.test",
        "Fri 4 Sep 14:00 chair-decision-request → partnership.chair@bury.test, chair@bury.test",
        "Mon 7 Sep 11:00 notice-vote-confirmed → partnership.chair@bury.test",
        "Mon 7 Sep 11:00 board-decision → board@bury.test",
        "Fri 11 Sep 12:00 panel-submission → panel@education.test, bsp@bury.test, officer@bury.test",
        "Fri 11 Sep 12:30 outcome-final → referrer@hospital.test",
        "Fri 25 Sep 09:00 notice-vote-confirmed → panel@education.test",
    ],
};

/// North East Lincolnshire: the statutory partners screen on day 1 and sign off.
const NELINCS: Script = Script {
    process: "nelincs",
    edit: nothing,
    subject: "SCSI-1 referral: serious child safeguarding incident",
    screening: Vote {
        step: "scsi2-partners",
        voters: PARTNERS,
        reply: "MEETS",
        at: "2026-08-21 11:00",
    },
    by_hand: &[],
    agency_request: "scsi6-agency-request",
    deadline_text: "Tuesday 1 September 2026 at 17:00",
    receipt: "return-receipt",
    chase: "chase",
    gp_returns_at: "2026-09-01 15:00",
    collation: "scsi7-report",
    csc_returns_at: "2026-09-03 10:00",
    late_today: "today (Thu 3 Sep 2026) is day 9",
    invite: "scsi3-invite",
    meeting_dtstart: "DTSTART;TZID=Europe/London:20260907T140000",
    sign_off: Vote {
        step: "srg8-partners",
        voters: PARTNERS,
        reply: "LCSPR",
        at: "2026-09-09 11:00",
    },
    panel_submission: "letter9-panel",
    expected: &[
        "Thu 20 Aug 10:00 acknowledge → referrer@hospital.test",
        "Fri 21 Aug 09:00 scsi2-partners → la.lead@bury.test",
        "Fri 21 Aug 09:00 scsi2-partners → police.lead@police.test",
        "Fri 21 Aug 09:00 scsi2-partners → icb.lead@icb.test",
        "Fri 21 Aug 09:00 scsi3-srg → review.group@bury.test",
        "Fri 21 Aug 11:00 notice-vote-confirmed → la.lead@bury.test",
        "Fri 21 Aug 11:00 notice-vote-confirmed → police.lead@police.test",
        "Fri 21 Aug 11:00 notice-vote-confirmed → icb.lead@icb.test",
        "Fri 21 Aug 11:00 la-notification → la.lead@bury.test, bsp@bury.test, officer@bury.test",
        "Mon 24 Aug 09:30 scsi3-invite → review.group@bury.test",
        "Mon 24 Aug 10:00 scsi4-partners → la.lead@bury.test, police.lead@police.test, icb.lead@icb.test",
        "Mon 24 Aug 10:00 scsi6-agency-request → csc@bury.test",
        "Mon 24 Aug 10:00 scsi6-agency-request → gp@practice.test",
        "Mon 24 Aug 10:00 scsi6-agency-request → hv@nhs.test",
        "Mon 24 Aug 10:00 scsi6-agency-request → ppu@police.test",
        "Mon 24 Aug 10:00 scsi6-agency-request → dsl@stmarys.test",
        "Mon 24 Aug 14:00 confirm-receipt-calls → bsp@bury.test, officer@bury.test",
        "Wed 26 Aug 11:00 return-receipt → ppu@police.test",
        "Thu 27 Aug 15:00 return-receipt → hv@nhs.test",
        "Fri 28 Aug 09:00 return-receipt → dsl@stmarys.test",
        "Tue 1 Sep 10:00 chase → csc@bury.test, head.safeguarding@bury.test",
        "Tue 1 Sep 10:00 chase → gp@practice.test",
        "Tue 1 Sep 10:00 day7-phone-chase → bsp@bury.test, officer@bury.test",
        "Tue 1 Sep 15:00 return-receipt → gp@practice.test",
        "Wed 2 Sep 08:30 scsi7-report → review.group@bury.test",
        "Thu 3 Sep 10:00 return-receipt → csc@bury.test",
        "Tue 8 Sep 10:00 srg8-partners → la.lead@bury.test",
        "Tue 8 Sep 10:00 srg8-partners → police.lead@police.test",
        "Tue 8 Sep 10:00 srg8-partners → icb.lead@icb.test",
        "Wed 9 Sep 11:00 notice-vote-confirmed → la.lead@bury.test",
        "Wed 9 Sep 11:00 notice-vote-confirmed → police.lead@police.test",
        "Wed 9 Sep 11:00 notice-vote-confirmed → icb.lead@icb.test",
        "Fri 11 Sep 12:00 letter9-panel → panel@education.test, bsp@bury.test, officer@bury.test",
        "Fri 11 Sep 12:30 outcome-final → referrer@hospital.test",
        "Fri 25 Sep 09:00 notice-vote-confirmed → panel@education.test",
    ],
};

/// Tameside: the screening panel decides by majority; templates on day 3, returns by day 10.
const TAMESIDE: Script = Script {
    process: "tameside",
    edit: nothing,
    subject: "Case notification form",
    // A majority decides: two members agreeing is enough, and the third need not answer.
    screening: Vote {
        step: "screening-request",
        voters: &[LA_REP, POLICE_REP],
        reply: "MEETS",
        at: "2026-08-20 14:00",
    },
    by_hand: &[],
    agency_request: "agency-request",
    deadline_text: "Friday 4 September 2026 at 17:00",
    receipt: "return-receipt",
    chase: "chase",
    gp_returns_at: "2026-09-02 15:00",
    collation: "panel-papers",
    csc_returns_at: "2026-09-08 12:00",
    late_today: "today (Tue 8 Sep 2026) is day 12",
    invite: "invite",
    meeting_dtstart: "DTSTART;TZID=Europe/London:20260909T100000",
    sign_off: Vote {
        step: "signoff-request",
        voters: PARTNERS,
        reply: "LCSPR",
        at: "2026-09-10 15:00",
    },
    panel_submission: "panel-submission",
    expected: &[
        "Thu 20 Aug 10:00 acknowledge → referrer@hospital.test",
        "Thu 20 Aug 10:00 alert-head-of-safeguarding → head.safeguarding@bury.test",
        "Thu 20 Aug 10:00 screening-request → la.rep@bury.test, head.safeguarding@bury.test",
        "Thu 20 Aug 10:00 screening-request → police.rep@police.test",
        "Thu 20 Aug 10:00 screening-request → icb.rep@icb.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → la.rep@bury.test",
        "Thu 20 Aug 14:00 notice-vote-confirmed → police.rep@police.test",
        "Thu 20 Aug 14:00 outcome-meets → referrer@hospital.test",
        "Fri 21 Aug 09:00 la-notification → head.safeguarding@bury.test, manager@bury.test",
        "Tue 25 Aug 10:00 agency-request → csc@bury.test",
        "Tue 25 Aug 10:00 agency-request → gp@practice.test",
        "Tue 25 Aug 10:00 agency-request → hv@nhs.test",
        "Tue 25 Aug 10:00 agency-request → ppu@police.test",
        "Tue 25 Aug 10:00 agency-request → dsl@stmarys.test",
        "Tue 25 Aug 10:00 invite → review.group@bury.test",
        "Tue 25 Aug 10:00 invite → chair@bury.test",
        "Wed 26 Aug 11:00 return-receipt → ppu@police.test",
        "Thu 27 Aug 15:00 return-receipt → hv@nhs.test",
        "Fri 28 Aug 09:00 return-receipt → dsl@stmarys.test",
        "Wed 2 Sep 10:00 chase → csc@bury.test, head.safeguarding@bury.test",
        "Wed 2 Sep 10:00 chase → gp@practice.test",
        "Wed 2 Sep 15:00 return-receipt → gp@practice.test",
        "Mon 7 Sep 09:00 returns-to-business-manager → manager@bury.test",
        "Tue 8 Sep 10:00 panel-papers → review.group@bury.test, chair@bury.test",
        "Tue 8 Sep 12:00 return-receipt → csc@bury.test",
        "Thu 10 Sep 12:00 signoff-request → la.lead@bury.test",
        "Thu 10 Sep 12:00 signoff-request → police.lead@police.test",
        "Thu 10 Sep 12:00 signoff-request → icb.lead@icb.test",
        "Thu 10 Sep 15:00 notice-vote-confirmed → la.lead@bury.test",
        "Thu 10 Sep 15:00 notice-vote-confirmed → police.lead@police.test",
        "Thu 10 Sep 15:00 notice-vote-confirmed → icb.lead@icb.test",
        "Fri 11 Sep 15:00 panel-submission → panel@education.test, bsp@bury.test, officer@bury.test",
        "Fri 11 Sep 15:30 outcome-final → referrer@hospital.test",
        "Fri 11 Sep 15:30 report-to-rapid-review-group → subgroup@bury.test",
        "Fri 25 Sep 09:00 notice-vote-confirmed → panel@education.test",
    ],
};
