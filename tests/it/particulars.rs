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
        ps.iter().all(|p| p.source == format!("attachment 1 ({file})")),
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
            assert!(
                ps.iter().any(|p| p.field == f),
                "{form}: no {}",
                f.as_str()
            );
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
