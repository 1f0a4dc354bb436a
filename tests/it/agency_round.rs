//! The agency round run end to end through the real mail stack, stepping the clock across working
//! days with `caseclerk tick --now` (and across the Summer bank holiday, Mon 31 Aug 2026). North
//! East Lincolnshire's here; every process file's round is replayed without servers in
//! `full_reviews.rs`.
//!
//! Every message reaches the shared mailbox with a past INTERNALDATE (IMAP APPEND), as if the review
//! had happened in August 2026, so the day numbers are fixed whatever day the tests run.

use crate::support::{Harness, SHARED, header, referral, reply, said};
use caseclerk::core::intake::Message;

/// The five agencies in `config/example.toml`, with their contacts and safeguarding leads.
const POLICE: &str = "ppu@police.test";
const HV: &str = "hv@nhs.test";
const SCHOOL: &str = "dsl@stmarys.test";
const GP: &str = "gp@practice.test";
const CSC: &str = "csc@bury.test";
const CSC_LEAD: &str = "head.safeguarding@bury.test";
const POLICE_LEAD: &str = "safeguarding@police.test";
const SRG: &str = "review.group@bury.test";
const DOCX_B64: &str = "UEsDBBQAAAAIAHJldHVybiBjb250ZW50";

async fn append(h: &Harness, raw: &[u8], at: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    h.stack.append(SHARED, raw, t).await.expect("append");
}

/// The London calendar date in a message's Date header, e.g. "24 Aug 2026".
fn sent_on(h: &[u8]) -> String {
    let date = header(h, "Date").expect("a Date header");
    let t = chrono::DateTime::parse_from_rfc2822(&date).expect("RFC 2822 date");
    t.with_timezone(&chrono_tz::Europe::London)
        .format("%a %-d %b %Y")
        .to_string()
}

/// The decoded text/calendar part of a message.
pub fn calendar_part(raw: &[u8]) -> String {
    use mail_parser::MimeHeaders;
    let m = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("parses");
    m.parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.c_type == "text" && c.subtype() == Some("calendar"))
        })
        .and_then(|p| p.text_contents())
        .expect("a text/calendar part")
        .to_string()
}

async fn raws(h: &Harness, user: &str) -> Vec<Vec<u8>> {
    h.stack
        .fetch_all(user)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.raw)
        .collect()
}

fn subjects(ms: &[Message]) -> Vec<String> {
    ms.iter().map(|m| m.subject.clone()).collect()
}

/// Request ids per agency: the Message-ID of the first letter in each agency's mailbox.
async fn request_id(h: &Harness, agency: &str) -> String {
    h.inbox(agency).await[0]
        .message_id
        .clone()
        .expect("request has an id")
}

/// One process's dates for the same scenario: five agencies; police returns on day 4, health
/// visiting sends a nil return on day 5, the school returns on day 6, the GP only after the chaser,
/// and Children's Social Care never (until after the collation, when it is marked late).
struct Dates {
    process: &'static str,
    /// Tameside waits for the screening decision; NE Lincs runs while the partners agree.
    decide_screening_at: Option<&'static str>,
    /// A tick on the day before the request day, when agencies must have heard nothing.
    before_request_tick: &'static str,
    request_tick: &'static str,
    request_date: &'static str,
    deadline_text: &'static str,
    chase_tick: &'static str,
    chase_date: &'static str,
    /// The GP's return, the afternoon of the chase day, and a tick just after.
    gp_return_at: &'static str,
    gp_return_tick: &'static str,
    pack_tick: &'static str,
    pack_subject: &'static str,
    meeting_dtstart: &'static str,
    late_return_at: &'static str,
    late_return_tick: &'static str,
    late_today: &'static str,
}

const NELINCS: Dates = Dates {
    process: "nelincs",
    decide_screening_at: None,
    before_request_tick: "2026-08-21T08:00:00Z",
    request_tick: "2026-08-24T09:00:00Z",
    request_date: "Mon 24 Aug 2026",
    deadline_text: "Tuesday 1 September 2026 at 17:00",
    chase_tick: "2026-09-01T09:00:00Z",
    chase_date: "Tue 1 Sep 2026",
    gp_return_at: "2026-09-01T15:00:00+01:00",
    gp_return_tick: "2026-09-01T14:05:00Z",
    pack_tick: "2026-09-02T07:30:00Z",
    pack_subject: "SCSI-7",
    meeting_dtstart: "DTSTART;TZID=Europe/London:20260907T140000",
    late_return_at: "2026-09-03T10:00:00+01:00",
    late_return_tick: "2026-09-03T09:05:00Z",
    late_today: "today (Thu 3 Sep 2026) is day 9",
};

/// The case every round is about.
const CASE: &str = "RR-2026-0001";

/// One process's round on a real mail stack: each method is a phase, run in order.
struct Round<'a> {
    h: Harness,
    d: &'a Dates,
}

async fn agency_round(d: &Dates) {
    let round = Round {
        h: Harness::start(d.process).await,
        d,
    };
    round
        .the_case_opens_with_five_agencies_and_an_unknown_one_refused()
        .await;
    round
        .the_requests_go_on_the_request_day_and_not_before()
        .await;
    round
        .the_meeting_invitation_is_icalendar_in_london_time()
        .await;
    round.three_agencies_return_before_the_deadline().await;
    round
        .the_chase_day_chases_only_those_not_returned_copied_to_their_leads()
        .await;
    round
        .the_collation_attaches_the_returns_and_lists_the_nil_and_the_missing()
        .await;
    round
        .a_return_after_the_deadline_still_counts_and_is_marked_late()
        .await;
}

impl Round<'_> {
    /// Day 0: Thu 20 Aug 2026, 10:00 BST. The referral opens the case and the panel names five
    /// agencies.
    async fn the_case_opens_with_five_agencies_and_an_unknown_one_refused(&self) {
        let (h, d, p, case) = (&self.h, self.d, self.d.process, CASE);
        append(
            h,
            &referral(
                "round-1@hospital.test",
                "SCSI-1 referral: serious child safeguarding incident",
            ),
            "2026-08-20T10:00:00+01:00",
        )
        .await;
        let out = h.tick(Some("2026-08-20T09:01:00Z"));
        assert!(out.contains("opened RR-2026-0001"), "{p}: {out}");
        h.ok(&[
            "agencies",
            "add",
            case,
            "police",
            "health visiting",
            "St Mary's primary",
            "gp",
            "csc",
            "--reason",
            "panel list",
            "--now",
            "2026-08-20T11:00:00Z",
        ]);
        // An unknown agency is refused with the directory's names, and nothing is added.
        let refused = h.caseclerk(&[
            "agencies",
            "add",
            case,
            "Little Acorns Nursery",
            "--now",
            "2026-08-20T11:00:00Z",
        ]);
        assert_eq!(refused.status.code(), Some(2), "{p}");
        assert!(
            String::from_utf8_lossy(&refused.stderr)
                .contains("unknown agency Little Acorns Nursery"),
            "{p}"
        );
        if let Some(at) = d.decide_screening_at {
            h.ok(&[
                "decide",
                case,
                "screening",
                "meets",
                "--reason",
                "screening call",
                "--now",
                at,
            ]);
        }
    }

    /// Before the request day, agencies hear nothing; on it, the template goes to every agency,
    /// with the deadline written as a date.
    async fn the_requests_go_on_the_request_day_and_not_before(&self) {
        let (h, d, p, case) = (&self.h, self.d, self.d.process, CASE);
        h.tick(Some(d.before_request_tick));
        for a in [POLICE, HV, SCHOOL, GP, CSC] {
            assert_eq!(
                h.settled_count(a).await,
                0,
                "{p}: {a} hears nothing before the request day"
            );
        }

        h.tick(Some(d.request_tick));
        for a in [POLICE, HV, SCHOOL, GP, CSC] {
            let got = h.wait_inbox(a, 1).await;
            assert_eq!(got.len(), 1, "{p}: {a}");
            let m = &got[0];
            assert!(m.subject.contains(case), "{p}: {a}: {}", m.subject);
            assert!(
                m.body_text.contains(d.deadline_text),
                "{p}: {a}: the deadline as a date: {}",
                m.body_text
            );
            assert!(
                m.attachments
                    .iter()
                    .any(|x| x.filename == "agency-summary-and-chronology.docx"),
                "{p}: {a}: the template is attached"
            );
            assert_eq!(sent_on(&raws(h, a).await[0]), d.request_date, "{p}: {a}");
        }
    }

    /// The meeting invitation parses as iCalendar, in London time.
    async fn the_meeting_invitation_is_icalendar_in_london_time(&self) {
        let (h, d, p, case) = (&self.h, self.d, self.d.process, CASE);
        let srg = h.wait_inbox(SRG, 1).await;
        assert!(subjects(&srg).iter().all(|s| s.contains(case)));
        let invite_raw = raws(h, SRG)
            .await
            .into_iter()
            .find(|r| String::from_utf8_lossy(r).contains("text/calendar"))
            .unwrap_or_else(|| panic!("{p}: an invite among {:?}", subjects(&srg)));
        let ics = calendar_part(&invite_raw);
        let cal: icalendar::Calendar = ics.parse().expect("the invite parses as iCalendar");
        assert!(ics.contains("METHOD:REQUEST"), "{p}");
        assert!(ics.contains(d.meeting_dtstart), "{p}: {ics}");
        assert_eq!(cal.components.len(), 2, "{p}: a VTIMEZONE and the VEVENT");
    }

    /// The police, health visiting (a nil return) and the school reply in time: a receipt each.
    async fn three_agencies_return_before_the_deadline(&self) {
        let (h, p, case) = (&self.h, self.d.process, CASE);
        let police_req = request_id(h, POLICE).await;
        let hv_req = request_id(h, HV).await;
        let school_req = request_id(h, SCHOOL).await;
        // Day 4 (Wed 26 Aug): police return with its form → receipt at once.
        append(
            h,
            &reply(
                POLICE,
                &police_req,
                &format!("RE: {case} agency information"),
                "Please find our return attached.",
                Some(("police return.docx", DOCX_B64)),
            ),
            "2026-08-26T11:00:00+01:00",
        )
        .await;
        h.tick(Some("2026-08-26T10:05:00Z"));
        assert_eq!(h.wait_inbox(POLICE, 2).await.len(), 2, "{p}");
        // That afternoon the police send their chronology apart: it goes in the pack too.
        append(
            h,
            &reply(
                POLICE,
                &police_req,
                &format!("RE: {case} agency information"),
                "And our chronology.",
                Some(("police chronology.docx", DOCX_B64)),
            ),
            "2026-08-26T15:00:00+01:00",
        )
        .await;
        h.tick(Some("2026-08-26T14:05:00Z"));
        // And the chronology was another family's. The police have sent two documents, so which
        // one the correction replaces is for a person: it waits in triage, and they attach it and
        // take the chronology out of the pack.
        append(
            h,
            &reply(
                POLICE,
                &police_req,
                &format!("RE: {case} agency information"),
                "Please disregard the chronology sent this afternoon; corrected version attached.",
                Some(("police chronology v2.docx", DOCX_B64)),
            ),
            "2026-08-26T16:00:00+01:00",
        )
        .await;
        h.tick(Some("2026-08-26T15:05:00Z"));
        let correction = last_id_after(&h.ok(&["triage"]), "message ");
        let returns = h.ok(&["case", case, "--now", "2026-08-26T15:10:00Z"]);
        let chronology = ids_after(&returns, "return from police (message ")[1].clone();
        let at = ["--now", "2026-08-26T15:10:00Z"];
        let why = [
            "--reason",
            "the police confirmed it replaces the chronology",
        ];
        h.ok(&[
            &["attach", case, &correction, "--return", "police"],
            &why[..],
            &at[..],
        ]
        .concat());
        let not_a_return =
            h.caseclerk(&[&["agencies", "withdraw", case, "999999"], &why[..]].concat());
        assert!(said(&not_a_return).contains("is not a return"), "{p}");
        h.ok(&[
            &["agencies", "withdraw", case, &chronology],
            &why[..],
            &at[..],
        ]
        .concat());
        // Day 5 (Thu 27 Aug): health visiting sends a nil return.
        append(
            h,
            &reply(
                HV,
                &hv_req,
                &format!("RE: {case}"),
                "Nil return - no involvement with this family.",
                None,
            ),
            "2026-08-27T15:00:00+01:00",
        )
        .await;
        h.tick(Some("2026-08-27T14:05:00Z"));
        assert_eq!(h.wait_inbox(HV, 2).await.len(), 2, "{p}");
        // Day 6 (Fri 28 Aug): the school returns.
        append(
            h,
            &reply(
                SCHOOL,
                &school_req,
                &format!("RE: {case}"),
                "Our chronology is attached.",
                Some(("school chronology.docx", DOCX_B64)),
            ),
            "2026-08-28T09:00:00+01:00",
        )
        .await;
        h.tick(Some("2026-08-28T08:05:00Z"));
        assert_eq!(h.wait_inbox(SCHOOL, 2).await.len(), 2, "{p}");
    }

    /// Nobody is chased on the Summer bank holiday; on the chase day every agency not yet
    /// returned is chased, copied to its safeguarding lead.
    async fn the_chase_day_chases_only_those_not_returned_copied_to_their_leads(&self) {
        let (h, d, p) = (&self.h, self.d, self.d.process);
        // Mon 31 Aug is the Summer bank holiday: nobody is chased.
        h.tick(Some("2026-08-31T09:00:00Z"));
        assert_eq!(h.settled_count(GP).await, 1, "{p}");
        assert_eq!(h.settled_count(CSC).await, 1, "{p}");

        h.tick(Some(d.chase_tick));
        let gp = h.wait_inbox(GP, 2).await;
        assert!(gp[1].subject.contains("Reminder"), "{p}: {}", gp[1].subject);
        assert_eq!(sent_on(&raws(h, GP).await[1]), d.chase_date, "{p}");
        let csc = h.wait_inbox(CSC, 2).await;
        assert!(csc[1].subject.contains("Reminder"), "{p}");
        assert_eq!(
            csc[1]
                .cc
                .iter()
                .map(|a| a.email.as_str())
                .collect::<Vec<_>>(),
            [CSC_LEAD],
            "{p}"
        );
        let lead = h.wait_inbox(CSC_LEAD, 1).await;
        assert_eq!(
            lead.iter()
                .filter(|m| m.subject.contains("Reminder"))
                .count(),
            1,
            "{p}: the lead gets the copy of the chaser: {:?}",
            subjects(&lead)
        );
        for a in [POLICE, HV, SCHOOL] {
            assert_eq!(
                h.settled_count(a).await,
                2,
                "{p}: {a} returned, so is not chased"
            );
        }
        assert_eq!(h.settled_count(POLICE_LEAD).await, 0, "{p}");
    }

    /// The GP returns after the chaser, the same afternoon (a receipt); the collation attaches the
    /// returns and lists the nil return and the missing agency.
    async fn the_collation_attaches_the_returns_and_lists_the_nil_and_the_missing(&self) {
        let (h, d, p, case) = (&self.h, self.d, self.d.process, CASE);
        let gp_req = request_id(h, GP).await;
        append(
            h,
            &reply(
                GP,
                &gp_req,
                &format!("RE: {case}"),
                "Attached, sorry for the delay.",
                Some(("GP summary.docx", DOCX_B64)),
            ),
            d.gp_return_at,
        )
        .await;
        h.tick(Some(d.gp_return_tick));
        assert_eq!(h.wait_inbox(GP, 3).await.len(), 3, "{p}");

        h.tick(Some(d.pack_tick));
        let srg = h.wait_inbox(SRG, 2).await;
        let pack = srg
            .iter()
            .find(|m| m.subject.contains(d.pack_subject))
            .unwrap_or_else(|| panic!("{p}: {} in {:?}", d.pack_subject, subjects(&srg)));
        assert!(
            pack.body_text.contains("Children's Social Care"),
            "{p}: the missing agency is listed: {}",
            pack.body_text
        );
        assert!(
            pack.body_text.contains("Health Visiting Service"),
            "{p}: the nil return is listed: {}",
            pack.body_text
        );
        let names: Vec<&str> = pack
            .attachments
            .iter()
            .map(|a| a.filename.as_str())
            .collect();
        for f in [
            "police - police return.docx",
            "police - police chronology v2.docx",
            "st-marys-primary - school chronology.docx",
            "gp - GP summary.docx",
        ] {
            assert!(names.contains(&f), "{p}: {f} attached: {names:?}");
        }
        assert!(
            !names.iter().any(|n| n.starts_with("health-visiting")),
            "{p}: a nil return has nothing to attach"
        );
        assert!(
            !names.contains(&"police - police chronology.docx"),
            "{p}: the chronology the police said to disregard is not forwarded: {names:?}"
        );

        // Every agency's mailbox holds exactly the letters the process file says, and no more.
        for (a, n) in [(POLICE, 2), (HV, 2), (SCHOOL, 2), (GP, 3), (CSC, 2)] {
            assert_eq!(h.settled_count(a).await, n, "{p}: {a}");
        }
    }

    /// Children's Social Care returns after the deadline: it still counts, and is marked late.
    async fn a_return_after_the_deadline_still_counts_and_is_marked_late(&self) {
        let (h, d, p, case) = (&self.h, self.d, self.d.process, CASE);
        let csc_req = request_id(h, CSC).await;
        append(
            h,
            &reply(
                CSC,
                &csc_req,
                &format!("RE: {case}"),
                "Our return.",
                Some(("CSC.docx", DOCX_B64)),
            ),
            d.late_return_at,
        )
        .await;
        h.tick(Some(d.late_return_tick));
        let report = h.ok(&["case", case, "--now", d.late_return_tick]);
        assert!(
            report.contains("childrens-social-care: returned") && report.contains("(late)"),
            "{p}: {report}"
        );
        assert!(
            report.contains("health-visiting: nil return"),
            "{p}: {report}"
        );
        assert!(report.contains(d.late_today), "{p}: {report}");
        assert_eq!(
            h.settled_count(CSC).await,
            3,
            "{p}: a receipt for the late return too"
        );
    }
}

#[tokio::test]
async fn a_north_east_lincolnshire_review_asks_chases_and_collates_on_the_right_working_days() {
    agency_round(&NELINCS).await;
}

/// The numbers following each `prefix` in `text`, in order.
fn ids_after(text: &str, prefix: &str) -> Vec<String> {
    text.split(prefix)
        .skip(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
        .collect()
}

/// The largest number following `prefix` in `text` (the message that arrived last).
fn last_id_after(text: &str, prefix: &str) -> String {
    ids_after(text, prefix)
        .into_iter()
        .max_by_key(|id| id.parse::<i64>().unwrap_or(0))
        .expect("a message id")
}
