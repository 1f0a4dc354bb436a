//! Every letter template renders in strict mode with the data the engine gives it — built by the
//! one function that builds it, `letters::data` — once sparse (no agency lead, no phone, no area,
//! nothing decided so no deadline that hangs on a decision resolves) and once full (everything
//! decided, a meeting, a publication date, every optional value filled in). A template that
//! dereferences something nullable outside `{{#if …}}` fails here rather than on a real case.
//! Notices and the tracker report are rendered the same way, and a last test checks that no
//! template in `mail-templates/` escapes all of these.

use caseclerk::core::calendar::{Calendar, london_date};
use caseclerk::core::case::{AgencyState, CaseState};
use caseclerk::core::directory::{Agency, Contact, Directory};
use caseclerk::core::letters::{self, Letterhead, Paperwork, Signature, Templates};
use caseclerk::core::particulars;
use caseclerk::core::process::{Anchor, Pathway, Process, Step, StepKind};
use caseclerk::core::timeline::{DueLetter, MeetingChange, Recipient, Resolved};
use caseclerk::shell::config;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn templates() -> Templates {
    caseclerk::shell::templates::load(&root().join("mail-templates")).expect("templates load")
}

fn process(id: &str) -> Process {
    config::load_process(
        &root().join("config/processes").join(format!("{id}.toml")),
        &root().join("mail-templates"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 instant")
}

fn contact(name: &str, full: bool) -> Contact {
    Contact {
        name: name.into(),
        email: format!("{}@example.test", name.to_lowercase().replace(' ', ".")),
        phone: full.then(|| "01234 000000".to_string()),
        partner: None,
    }
}

/// One agency, `health-visiting`: with a lead and a deputy when `full`.
fn directory(full: bool) -> Directory {
    Directory {
        agencies: vec![Agency {
            id: "health-visiting".into(),
            name: "Health Visiting Service".into(),
            aliases: vec![],
            contact: contact("Team Manager", full),
            lead: full.then(|| contact("Named Nurse", true)),
            deputy: full.then(|| contact("Deputy", true)),
            domains: vec![],
        }],
        ..Directory::default()
    }
}

/// A case received on Tuesday 22 December 2026. Sparse: as it stands when `step` falls due — the
/// decision of its pathway and anchor taken, nothing else. Full: every decision taken (on its
/// first outcome), a meeting and a publication date, and the agency asked.
fn case_for(p: &Process, step: Option<&Step>, full: bool) -> CaseState {
    let mut s = case(p, full);
    let taken = at("2026-12-23T12:00:00Z");
    let lcspr = |s: &mut CaseState| {
        for d in p
            .decisions
            .iter()
            .filter(|d| d.outcomes.iter().any(|o| o == "lcspr"))
        {
            s.decisions.insert(d.id.clone(), ("lcspr".into(), taken));
        }
    };
    let Some(step) = step else {
        // A notice: the LCSPR delay notice is only ever sent on an LCSPR.
        lcspr(&mut s);
        return s;
    };
    if let Pathway::Outcome { decision, outcomes } = &step.on {
        let outcome = outcomes.first().cloned().unwrap_or_default();
        s.decisions.insert(decision.clone(), (outcome, taken));
    }
    match step.when.as_ref().map(|w| &w.anchor) {
        Some(Anchor::Decision(d)) => {
            let first = p.decision(d).and_then(|d| d.outcomes.first().cloned());
            s.decisions
                .entry(d.clone())
                .or_insert((first.unwrap_or_default(), taken));
        }
        Some(Anchor::LcsprDecision) => lcspr(&mut s),
        Some(Anchor::Publication) => {
            lcspr(&mut s);
            s.publication = Some(london_date(at("2027-05-03T09:00:00Z")));
        }
        Some(Anchor::Meeting) => s.meeting_at = Some(at("2027-01-13T10:00:00Z")),
        _ => {}
    }
    s
}

/// A case received on Tuesday 22 December 2026; when `full`, every decision taken (on its first
/// outcome), a meeting and a publication date, and the agency asked.
fn case(p: &Process, full: bool) -> CaseState {
    let area = (full && !p.areas.is_empty()).then(|| p.areas[0].clone());
    let mut s = CaseState::new(
        "RR-2026-0001",
        &p.id,
        area,
        Some("referrer@example.test".into()),
        at("2026-12-22T10:15:00Z"),
        london_date(at("2026-12-22T10:15:00Z")),
        1,
    );
    if full {
        for d in &p.decisions {
            let outcome = d.outcomes.first().cloned().unwrap_or_default();
            s.decisions
                .insert(d.id.clone(), (outcome, at("2026-12-23T12:00:00Z")));
        }
        s.meeting_at = Some(at("2027-01-13T10:00:00Z"));
        s.publication = Some(london_date(at("2027-05-03T09:00:00Z")));
        s.agencies
            .insert("health-visiting".into(), AgencyState::default());
    }
    s
}

fn resolved(s: &str, day: Option<i32>) -> Resolved {
    Resolved {
        at: at(s),
        date: london_date(at(s)),
        day,
        explanation: "day 2 = Thu 24 Dec 2026 (no days skipped)".into(),
    }
}

/// The letter the timeline would decide for `step`, sparse or full.
fn due(step: &Step, full: bool) -> DueLetter {
    let agency_letter = matches!(
        step.kind,
        StepKind::AgencyRequest | StepKind::Chaser | StepKind::ReturnReceipt
    );
    let returns_by = matches!(step.kind, StepKind::AgencyRequest | StepKind::Chaser);
    let lists = matches!(step.kind, StepKind::Escalation | StepKind::Collation);
    let agencies = if full && lists {
        vec![
            "health-visiting".to_string(),
            "not-in-directory".to_string(),
        ]
    } else {
        Vec::new()
    };
    DueLetter {
        step: step.id.clone(),
        step_name: step.name.clone(),
        kind: step.kind,
        template: step.template.clone(),
        key: "someone@example.test".into(),
        to: Recipient {
            name: if full {
                "A Person".into()
            } else {
                String::new()
            },
            email: "someone@example.test".into(),
            role: "review_group".into(),
            phone: full.then(|| "01234 000000".to_string()),
        },
        // Full: a shared letter to two people, whose greeting names both.
        also_to: if full && caseclerk::core::timeline::shares_one_message(step.kind) {
            vec![Recipient {
                name: "Another Person".into(),
                email: "another@example.test".into(),
                role: "review_group".into(),
                phone: None,
            }]
        } else {
            Vec::new()
        },
        cc: Vec::new(),
        due: resolved("2026-12-24T09:00:00Z", full.then_some(2)),
        attach: Vec::new(),
        agency: agency_letter.then(|| "health-visiting".to_string()),
        return_by: returns_by.then(|| resolved("2027-01-08T17:00:00Z", None)),
        missing: agencies.clone(),
        nil_returns: agencies,
        returns: Vec::new(),
        meeting: (step.kind == StepKind::Invite)
            .then(|| resolved("2027-01-13T10:00:00Z", full.then_some(12))),
        meeting_change: None,
        notes: if full {
            vec!["Acme Housing".into()]
        } else {
            Vec::new()
        },
        decision: (step.kind == StepKind::DecisionRequest)
            .then(|| step.decision.clone())
            .flatten(),
    }
}

/// Render `due` on the case with the engine's own data; a problem in words, if any.
fn render(
    t: &Templates,
    p: &Process,
    step: Option<&Step>,
    due: &DueLetter,
    full: bool,
) -> Option<String> {
    let cal = Calendar::bundled();
    let dir = directory(full);
    let paperwork = if full {
        Paperwork {
            marking: Some("OFFICIAL-SENSITIVE".into()),
            signature: Some(Signature {
                name: "Jo Bloggs".into(),
                title: Some("Business Manager".into()),
                phone: "01234 000001".into(),
            }),
            meeting_location: Some("Town Hall, Committee Room 2".into()),
            meeting_link: Some("https://teams.example.test/meet/1".into()),
        }
    } else {
        Paperwork::default()
    };
    let head = Letterhead {
        name: "Example Safeguarding Children Partnership",
        short_name: "ESCP",
        address: "partnership@example.test",
        id_domain: "example.test",
        install_id: "test",
        vote_key: b"key",
        process: p,
        calendar: &cal,
        directory: &dir,
        paperwork: &paperwork,
        secure_smtp: full,
    };
    let data = letters::data(&head, &case_for(p, step, full), due, &particulars(full));
    let mode = if full { "full" } else { "sparse" };
    match t.render(&due.template, &data) {
        Ok(r) if r.subject.trim().is_empty() || r.text.trim().is_empty() => {
            Some(format!("{} renders empty ({mode})", due.template))
        }
        Ok(r) if !r.html.contains("font-family: Arial") => {
            Some(format!("{} has no HTML wrapper", due.template))
        }
        Ok(_) => None,
        Err(e) => Some(format!("{} ({mode} data): {e}", due.step)),
    }
}

/// Full data: every particular read and confirmed (the agency letters name the child, the
/// screening request proposes agencies); sparse: none.
fn particulars(full: bool) -> Vec<particulars::Particular> {
    if !full {
        return Vec::new();
    }
    let text = "Child's name: Jayden Lee Testchild\nDate of birth: 03/02/2026\n\
                Date of incident: 14/11/2026\nAgencies involved: police, health visiting\n";
    let mut ps = particulars::extract(
        &[particulars::Source {
            name: "message body".into(),
            form: false,
            text,
        }],
        &[],
    );
    for p in &mut ps {
        p.state = particulars::State::Confirmed;
    }
    ps
}

fn check_templates(id: &str) {
    let p = process(id);
    let t = templates();
    let problems: Vec<String> = p
        .steps
        .iter()
        .flat_map(|step| {
            [false, true].map(|full| render(&t, &p, Some(step), &due(step, full), full))
        })
        .flatten()
        .collect();
    assert!(problems.is_empty(), "{id}:\n{}", problems.join("\n"));
}

#[test]
fn every_bury_letter_renders_with_sparse_and_full_data() {
    check_templates("bury");
}

#[test]
fn every_bhr_letter_renders_with_sparse_and_full_data() {
    check_templates("bhr");
}

#[test]
fn every_nelincs_letter_renders_with_sparse_and_full_data() {
    check_templates("nelincs");
}

#[test]
fn every_bucks_letter_renders_with_sparse_and_full_data() {
    check_templates("bucks");
}

#[test]
fn every_tameside_letter_renders_with_sparse_and_full_data() {
    check_templates("tameside");
}

/// The notices the core sends outside the process's steps, by template, with the decision they
/// carry a code for (if any).
const NOTICES: &[(&str, bool)] = &[
    ("agencies-unknown", false),
    ("vote-unclear", true),
    ("vote-confirmed", true),
    ("tie-break-request", true),
    ("decision-disagreement", false),
    ("majority-consultation", false),
    ("undelivered-notice", false),
    ("lcspr-delay-notice", false),
];

#[test]
fn every_notice_renders_with_sparse_and_full_data_in_every_process() {
    let t = templates();
    let mut problems = Vec::new();
    for id in ["bury", "bhr", "nelincs", "bucks", "tameside"] {
        let p = process(id);
        for (template, decided) in NOTICES {
            for full in [false, true] {
                let mut n = caseclerk::core::timeline::notice(
                    &Calendar::bundled(),
                    &case(&p, full),
                    template,
                    "notice:1",
                    Recipient {
                        name: String::new(),
                        email: "someone@example.test".into(),
                        role: "voter".into(),
                        phone: None,
                    },
                    if full { vec!["one".into()] } else { Vec::new() },
                    at("2026-12-24T09:00:00Z"),
                );
                if *decided {
                    n.decision = p.decisions.first().map(|d| d.id.clone());
                }
                problems.extend(render(&t, &p, None, &n, full).map(|e| format!("{id}: {e}")));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The updated invitation and the cancellation sent when a person moves or cancels the meeting.
const MEETING_CHANGES: &[(&str, bool)] = &[("meeting-update", false), ("meeting-cancelled", true)];

#[test]
fn every_meeting_change_renders_with_sparse_and_full_data_in_every_process() {
    let t = templates();
    let mut problems = Vec::new();
    for id in ["bury", "bhr", "nelincs", "bucks", "tameside"] {
        let p = process(id);
        for (template, cancelled) in MEETING_CHANGES {
            for full in [false, true] {
                let mut n = caseclerk::core::timeline::notice(
                    &Calendar::bundled(),
                    &case(&p, full),
                    template,
                    "someone@example.test#s1",
                    Recipient {
                        name: String::new(),
                        email: "someone@example.test".into(),
                        role: "attendee".into(),
                        phone: None,
                    },
                    Vec::new(),
                    at("2026-12-24T09:00:00Z"),
                );
                n.kind = StepKind::Invite;
                n.meeting = Some(resolved("2027-01-13T10:00:00Z", full.then_some(12)));
                n.meeting_change = Some(MeetingChange {
                    sequence: 1,
                    cancelled: *cancelled,
                    reason: if full {
                        "the chair is ill".into()
                    } else {
                        String::new()
                    },
                });
                problems.extend(render(&t, &p, None, &n, full).map(|e| format!("{id}: {e}")));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every template in the folder, by name (`nelincs/scsi2`), without the partials.
fn every_template_in_the_folder() -> BTreeSet<String> {
    let dir = root().join("mail-templates");
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path
                .strip_prefix(&dir)
                .ok()
                .and_then(|p| p.to_str())
                .and_then(|p| p.strip_suffix(".subject.hbs"))
            {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// Templates rendered by other tests with their own data: the tracker report
/// (`core::timeline::periodic`'s unit test renders it with `export::tracker_data`) and the daily digest
/// (`core::digest`'s unit tests render it from the fixture's snapshot, against its golden text).
const RENDERED_ELSEWHERE: &[&str] = &["tracker-report", "digest"];

#[test]
fn no_template_in_the_folder_escapes_the_render_tests() {
    let mut covered: BTreeSet<String> = ["bury", "bhr", "nelincs", "bucks", "tameside"]
        .iter()
        .flat_map(|id| process(id).steps.into_iter().map(|s| s.template))
        .collect();
    covered.extend(NOTICES.iter().map(|(t, _)| t.to_string()));
    covered.extend(MEETING_CHANGES.iter().map(|(t, _)| t.to_string()));
    covered.extend(RENDERED_ELSEWHERE.iter().map(|t| t.to_string()));
    let missed: Vec<String> = every_template_in_the_folder()
        .difference(&covered)
        .cloned()
        .collect();
    assert!(
        missed.is_empty(),
        "templates no test renders (render them above, or delete them): {missed:?}"
    );
}
