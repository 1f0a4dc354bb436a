//! Particulars read from each partnership's referral form, as Word and as PDF, and from a body
//! with LF or CRLF line ends, pinned in golden files (`tests/golden/particulars/`). The fixtures
//! are genuine .docx and .pdf files made by `scripts/make-referral-fixtures.py`. Regenerate the
//! goldens with `UPDATE_GOLDEN=1 cargo test --test it particulars::` after a deliberate change,
//! and read the diff.

use caseclerk::core::particulars::{self, Field, Particular, Source};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const FORMS: &[&str] = &[
    "tameside-appendix-a",
    "nelincs-scsi-1",
    "bhr-referral-serious-incidents",
    "bury-referral-form",
    "bucks-referral-rapid-review",
];

const BHR_AREAS: &[&str] = &["Barking and Dagenham", "Havering", "Redbridge"];

/// One line per particular: field, value, confidence, label (the source is the file's kind).
fn listing(ps: &[Particular]) -> String {
    ps.iter()
        .map(|p| {
            format!(
                "{:<16} {:<70} {:<6} {}\n",
                p.field.as_str(),
                p.value,
                p.confidence.as_str(),
                p.label
            )
        })
        .collect()
}

fn read_form(file: &str) -> Vec<Particular> {
    let path = root().join("tests/fixtures/referrals").join(file);
    let data = std::fs::read(&path).expect("fixture exists");
    let text = particulars::document_text(file, "application/octet-stream", &data)
        .expect("a form kind")
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    let areas: Vec<String> = BHR_AREAS.iter().map(|s| s.to_string()).collect();
    let ps = particulars::extract(
        &[Source {
            name: format!("attachment 1 ({file})"),
            form: true,
            text: &text,
        }],
        &areas,
    );
    assert!(
        ps.iter()
            .all(|p| p.source == format!("attachment 1 ({file})")),
        "every particular names the attachment it came from"
    );
    ps
}

fn golden(name: &str, text: &str) {
    let path = root()
        .join("tests/golden/particulars")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("golden dir");
        std::fs::write(&path, text).expect("write golden");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert_eq!(text, expected, "particulars differ from {}", path.display());
}

#[test]
fn each_seeds_form_as_word_gives_its_particulars() {
    for form in FORMS {
        golden(form, &listing(&read_form(&format!("{form}.docx"))));
    }
}

#[test]
fn each_seeds_form_as_pdf_gives_the_same_particulars_as_its_word_version() {
    for form in FORMS {
        let pdf = listing(&read_form(&format!("{form}.pdf")));
        let word = listing(&read_form(&format!("{form}.docx")));
        assert_eq!(pdf, word, "{form}: the PDF reads as the Word form does");
    }
}

#[test]
fn every_form_gives_a_date_of_birth_an_incident_date_a_type_and_agencies() {
    for form in FORMS {
        let ps = read_form(&format!("{form}.docx"));
        for f in [
            Field::Initials,
            Field::DateOfBirth,
            Field::IncidentDate,
            Field::Kind,
            Field::Agencies,
            Field::ReferrerAgency,
        ] {
            assert!(ps.iter().any(|p| p.field == f), "{form}: no {}", f.as_str());
        }
    }
}

const BODY: &str = "Dear Business Unit,\n\nPlease find below a referral.\n\nChild's initials: K.M.\nDate of birth: 04/07/2018\nDate of incident: 20/11/2026\nType of incident: serious harm\nAgencies involved: Police, Health Visiting\nReferring agency: Stockport NHS Foundation Trust\n\nKind regards\n";

fn from_body(body: &str) -> String {
    listing(&particulars::extract(
        &[Source {
            name: "message body".into(),
            form: false,
            text: body,
        }],
        &[],
    ))
}

#[test]
fn a_body_with_lf_or_crlf_line_ends_gives_the_same_particulars_at_medium_confidence() {
    let lf = from_body(BODY);
    let crlf = from_body(&BODY.replace('\n', "\r\n"));
    assert_eq!(lf, crlf);
    golden("message-body", &lf);
    assert!(lf.lines().all(|l| l.contains(" medium ")));
}

// ---- a review without servers: referral → particulars → screening → confirmed → agency request

use crate::review::Review;
use caseclerk::shell::operator::{self, ParticularChecks};

const LA_REP: &str = "la.rep@bury.test";
const POLICE: &str = "ppu@police.test";
const PANEL: &[&str] = &[
    "la.rep@bury.test",
    "police.rep@police.test",
    "icb.rep@icb.test",
];

/// A referral with Bury's form attached (as Word), the body saying a little more.
pub(crate) fn referral_with_form(id: &str) -> Vec<u8> {
    use base64::Engine as _;
    let form = std::fs::read(root().join("tests/fixtures/referrals/bury-referral-form.docx"))
        .expect("fixture");
    let b64 = base64::engine::general_purpose::STANDARD.encode(form);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).expect("base64"))
        .collect();
    format!(
        "From: Dr Test Referrer <{}>\r\nTo: {}\r\nSubject: Referral for a rapid review\r\n\
         Message-ID: <{id}>\r\nDate: Thu, 20 Aug 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Please consider this referral for a rapid review. The form is attached.\r\n--b1\r\n\
         Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document\r\n\
         Content-Disposition: attachment; filename=\"bury-referral-form.docx\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        crate::support::REFERRER,
        crate::support::SHARED,
        lines.join("\r\n")
    )
    .into_bytes()
}

/// A Bury review whose configuration is edited by `smtp_tls` ("starttls" or "none") and the
/// protective marking set.
async fn bury(smtp_tls: &str) -> Review {
    let tls = smtp_tls.to_string();
    Review::with("bury", move |cfg| {
        let smtp = cfg["smtp"].as_table_mut().expect("[smtp]");
        smtp.insert("tls".into(), toml::Value::String(tls.clone()));
        let mut letters = toml::Table::new();
        letters.insert(
            "marking".into(),
            toml::Value::String("OFFICIAL-SENSITIVE".into()),
        );
        cfg.insert("letters".into(), toml::Value::Table(letters));
    })
    .await
}

/// The referral with Bury's form arrives on Thu 20 Aug 2026 at 10:00; the case it opened.
async fn referred(review: &mut Review) -> String {
    review
        .receive(
            &referral_with_form("form.1@hospital.test"),
            "2026-08-20 10:00",
        )
        .await;
    review.last.opened.first().cloned().expect("a case opened")
}

/// The referral arrives; the panel votes MEETS keeping the proposed Agencies: line.
async fn screened(review: &mut Review) -> String {
    let reference = referred(review).await;
    for voter in PANEL {
        let ask = review.last_to(voter, "screening-request");
        let text = ask.msg.body_text.clone();
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("Agencies:"))
            .expect("an Agencies: line")
            .trim()
            .to_string();
        review
            .reply(&ask, voter, &format!("MEETS\n{line}"), "2026-08-20 14:00")
            .await;
    }
    reference
}

async fn case_id(review: &Review, reference: &str) -> i64 {
    review
        .engine
        .store
        .case_by_ref(reference)
        .await
        .unwrap()
        .expect("case")
        .id
}

#[tokio::test]
async fn a_referral_form_becomes_particulars_the_panel_is_offered_its_agencies_and_the_agency_request_names_the_child_once_confirmed()
 {
    let mut review = bury("starttls").await;
    let reference = referred(&mut review).await;
    let id = case_id(&review, &reference).await;

    // Stored with where each came from, nobody has checked them, and no agency is on the case.
    let read = review.engine.store.particulars(id).await.unwrap();
    let dob = read
        .iter()
        .find(|p| p.field == Field::DateOfBirth)
        .expect("a date of birth");
    assert_eq!(dob.value, "2019-05-17");
    assert_eq!(dob.source, "attachment 1 (bury-referral-form.docx)");
    assert_eq!(dob.label, "DOB");
    assert_eq!(particulars::unchecked(&read).len(), read.len());
    assert!(review.state(&reference).await.agencies.is_empty());
    // The tracker's incident date is the form's, as read.
    let column = caseclerk::core::export::COLUMNS
        .iter()
        .position(|c| *c == "Incident date")
        .expect("an incident date column");
    assert_eq!(
        review.tracker().await.cases[0][column],
        caseclerk::core::export::Cell::Date(chrono::NaiveDate::from_ymd_opt(2026, 12, 1))
    );

    // The screening request proposes the directory's agencies the form names; a reply adds them.
    let ask = review.last_to(LA_REP, "screening-request");
    assert!(
        ask.msg
            .body_text
            .lines()
            .any(|l| l.trim() == "Agencies: Greater Manchester Police"),
        "{}",
        ask.msg.body_text
    );
    for voter in PANEL {
        let ask = review.last_to(voter, "screening-request");
        review
            .reply(
                &ask,
                voter,
                "MEETS\nAgencies: Greater Manchester Police",
                "2026-08-20 14:00",
            )
            .await;
    }
    assert!(
        review
            .state(&reference)
            .await
            .agencies
            .contains_key("police")
    );

    // The business unit confirms what was read, and corrects the incident date.
    let checks = ParticularChecks {
        confirm: vec!["all".into()],
        set: vec![("incident_date".into(), "14/08/2026".into())],
    };
    operator::check_particulars(
        &review.engine.store,
        &reference,
        &checks,
        "checked against the form with the referrer",
        "operator:jo",
        review.now(),
    )
    .await
    .expect("checked");
    let events = review.report(&reference).await;
    assert!(
        events.contains("particular incident_date corrected"),
        "{events}"
    );
    assert!(
        !events.contains("2026-08-14"),
        "the history never holds a value"
    );

    // Day 3: the agency request names the child by initials, date of birth and incident date,
    // under the marking.
    review.at("2026-08-24 10:00").await;
    let request = review.last_to(POLICE, "agency-request");
    assert!(request.msg.subject.starts_with("OFFICIAL-SENSITIVE: "));
    assert!(
        request.msg.body_text.contains(
            "The child: initials OS, date of birth Friday 17 May 2019, incident date Friday 14 August 2026."
        ),
        "{}",
        request.msg.body_text
    );
    assert!(!request.msg.body_text.contains("Oliver"));
    assert!(!request.msg.subject.contains("OS"));
}

#[tokio::test]
async fn particulars_nobody_has_confirmed_are_not_sent_to_an_agency_and_the_digest_asks_for_them() {
    let mut review = bury("starttls").await;
    let reference = screened(&mut review).await;
    review.at("2026-08-24 10:00").await;
    let request = review.last_to(POLICE, "agency-request");
    assert!(!request.msg.body_text.contains("The child:"));
    assert!(
        request
            .msg
            .body_text
            .contains("The child's details had not been confirmed"),
        "{}",
        request.msg.body_text
    );
    let snap = caseclerk::shell::snapshot::gather(
        &review.engine.cfg,
        &review.engine.store,
        review.now(),
        review.now() - chrono::Duration::hours(24),
    )
    .await
    .unwrap();
    let digest = caseclerk::core::digest::build(&snap, &review.engine.cfg.calendar).unwrap();
    let section = digest
        .sections
        .iter()
        .find(|s| s.id == "particulars")
        .expect("a check these particulars section");
    assert_eq!(section.rows[0][0].text, reference);
    assert!(section.rows[0][1].text.contains("date of birth"));
    let everything = format!("{digest:?}");
    assert!(!everything.contains("2019-05-17") && !everything.contains("Oliver"));
}

#[tokio::test]
async fn without_an_smtp_connection_that_requires_tls_the_agency_request_does_not_identify_the_child()
 {
    let mut review = bury("none").await;
    let reference = screened(&mut review).await;
    operator::check_particulars(
        &review.engine.store,
        &reference,
        &ParticularChecks {
            confirm: vec!["all".into()],
            set: Vec::new(),
        },
        "checked",
        "operator:jo",
        review.now(),
    )
    .await
    .expect("checked");
    review.at("2026-08-24 10:00").await;
    let request = review.last_to(POLICE, "agency-request");
    assert!(!request.msg.body_text.contains("The child:"));
    assert!(!request.msg.body_text.contains("2019"));
    assert!(
        request
            .msg
            .body_text
            .contains("our mail connection does not require encryption"),
        "{}",
        request.msg.body_text
    );
}

// ---- the operator command, through the real binary and mail stack

#[tokio::test]
async fn the_business_unit_checks_particulars_from_the_command_line_and_no_log_line_holds_a_value()
{
    use crate::support::{Harness, SHARED, referral};
    let h = Harness::start("bury").await;
    let raw = String::from_utf8(referral("pc-1@hospital.test", "Referral for a rapid review"))
        .unwrap()
        .replace(
            "Please consider this referral for a rapid review. The form is attached.",
            "Please consider this referral.\r\nChild's name: Zara Quinnell\r\nDate of birth: 12/03/2019\r\nAgencies involved: police",
        );
    let t = chrono::DateTime::parse_from_rfc3339("2026-08-20T10:00:00+01:00").unwrap();
    h.stack
        .append(SHARED, raw.as_bytes(), t)
        .await
        .expect("append");
    let log = h.caseclerk(&[
        "tick",
        "--process-existing",
        "--now",
        "2026-08-20T09:01:00Z",
    ]);
    assert!(log.status.success(), "{}", crate::support::said(&log));
    let said = crate::support::said(&log);
    for value in ["Zara", "Quinnell", "2019-03-12", "12/03/2019", "ZQ"] {
        assert!(!said.contains(value), "a log line holds `{value}`:\n{said}");
    }

    let check = h.ok(&["check"]);
    assert!(
        check.contains(
            "letters to agencies: name the child by initials, date_of_birth, incident_date once the business unit has confirmed them (SMTP requires TLS)"
        ),
        "{check}"
    );

    let case = "RR-2026-0001";
    let run = |args: &[&str]| {
        let mut v = args.to_vec();
        v.extend(["--by", "jo.bloggs", "--now", "2026-08-20T09:30:00Z"]);
        h.caseclerk(&v)
    };
    let shown = run(&["particulars", case]);
    let text = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(text.contains("date_of_birth    2019-03-12"), "{text}");
    assert!(
        text.contains("TO CHECK; medium confidence; from message body"),
        "{text}"
    );

    // Refused: a value of the wrong shape, a field nothing was read for, no reason.
    for (args, why) in [
        (
            vec![
                "particulars",
                case,
                "--set",
                "date_of_birth=soon",
                "--reason",
                "x",
            ],
            "is not a date",
        ),
        (
            vec!["particulars", case, "--confirm", "borough", "--reason", "x"],
            "nothing was read for borough",
        ),
        (
            vec!["particulars", case, "--confirm", "all"],
            "give a reason",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{}", crate::support::said(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(why),
            "{}",
            crate::support::said(&out)
        );
    }

    let out = run(&[
        "particulars",
        case,
        "--confirm",
        "all",
        "--set",
        "date_of_birth=13/03/2019",
        "--reason",
        "the referrer corrected the date by phone",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", crate::support::said(&out));
    assert!(text.contains("date_of_birth    2019-03-13"), "{text}");
    assert!(text.contains("corrected by operator:jo.bloggs"), "{text}");
    assert!(text.contains("confirmed by operator:jo.bloggs"), "{text}");
    assert!(!text.contains("TO CHECK"), "{text}");
    let history = String::from_utf8_lossy(&h.caseclerk(&["case", case]).stdout).to_string();
    assert!(
        history.contains(
            "particular date_of_birth corrected (the referrer corrected the date by phone)"
        ),
        "{history}"
    );
}
