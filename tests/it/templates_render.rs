//! Every letter template each process uses renders in strict mode, with the data shapes the engine
//! gives it (`Engine::letter_data`): once with every optional value null or empty (no agency lead,
//! no phone, no resolvable deadline, no area) and once with everything filled in. A template that
//! dereferences something nullable outside `{{#if …}}` fails here rather than on a real case.

use caseclerk::core::process::{Anchor, Pathway, Process, StepKind};
use caseclerk::shell::config;
use serde_json::{Value, json};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn process(id: &str) -> Process {
    config::load_process(
        &root().join("config/processes").join(format!("{id}.toml")),
        &root().join("mail-templates"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn contact(name: &str, full: bool) -> Value {
    json!({
        "name": name,
        "email": "someone@example.test",
        "phone": if full { json!("01234 000000") } else { Value::Null },
        "partner": Value::Null,
    })
}

fn agency(full: bool) -> Value {
    json!({
        "id": "health-visiting",
        "name": "Health Visiting Service",
        "contact": contact("Team Manager", full),
        "lead": if full { contact("Named Nurse", true) } else { Value::Null },
        "deputy": if full { contact("Deputy", true) } else { Value::Null },
    })
}

/// The JSON `letter_data` builds for a letter of this step.
fn data(p: &Process, step: &caseclerk::core::process::Step, full: bool) -> Value {
    let agency_letter = matches!(
        step.kind,
        StepKind::AgencyRequest | StepKind::Chaser | StepKind::ReturnReceipt
    );
    let returns_by = matches!(step.kind, StepKind::AgencyRequest | StepKind::Chaser);
    let lists = matches!(step.kind, StepKind::Escalation | StepKind::Collation);
    let decision = step.decision.as_deref().and_then(|id| p.decision(id)).map(|d| {
        json!({
            "id": d.id,
            "name": d.name,
            "due": if full { json!("Wednesday 23 December 2026 at 17:00") } else { Value::Null },
            "outcomes": d.outcomes,
            "rule": d.quorum.describe(&d.voters),
        })
    });
    // Sparse: only the deadlines that are bound to resolve when this step falls due (counted from
    // day 0, or from the step's own anchor, on its own pathway or on every referral). Full: all.
    let mut deadlines = serde_json::Map::new();
    for d in &p.deadlines {
        let bound = step.when.as_ref().is_some_and(|w| {
            (matches!(d.when.anchor, Anchor::Referral | Anchor::ReferralReceived)
                || d.when.anchor == w.anchor)
                && (d.on == Pathway::Always || d.on == step.on)
        });
        if full || bound {
            deadlines.insert(d.id.clone(), json!("Monday 18 January 2027 at 17:00"));
        }
    }
    let some_agencies = if full {
        json!([agency(true), agency(false)])
    } else {
        json!([])
    };
    json!({
        "decision": decision,
        "deadlines": deadlines,
        "partnership": {
            "name": "Example Safeguarding Children Partnership",
            "short_name": "ESCP",
            "address": "partnership@example.test",
        },
        "process": { "id": p.id, "name": p.name },
        "case": {
            "reference": "RR-2026-0001",
            "received": "Tuesday 22 December 2026 at 10:15",
            "day0": "Tuesday 22 December 2026",
            "area": if full && !p.areas.is_empty() { json!(p.areas[0]) } else { Value::Null },
        },
        "letter": {
            "step": step.id,
            "name": step.name,
            "date": "Thursday 24 December 2026",
            "day": if full { json!(2) } else { Value::Null },
            "explanation": "day 2 = Thu 24 Dec 2026 (no days skipped)",
        },
        "recipient": {
            "name": if full { "A Person" } else { "" },
            "email": "someone@example.test",
            "role": "review_group",
            "phone": if full { json!("01234 000000") } else { Value::Null },
        },
        "agency": if agency_letter { agency(full) } else { Value::Null },
        "return_by": if returns_by { json!("Friday 8 January 2027 at 17:00") } else { Value::Null },
        "missing": if lists { some_agencies.clone() } else { json!([]) },
        "nil_returns": if lists { some_agencies } else { json!([]) },
        "meeting": if step.kind == StepKind::Invite {
            json!({
                "when": "Wednesday 13 January 2027 at 10:00",
                "date": "Wednesday 13 January 2027",
                "day": if full { json!(12) } else { Value::Null },
                "minutes": 120,
            })
        } else {
            Value::Null
        },
    })
}

fn check_templates(id: &str) {
    let p = process(id);
    let templates =
        caseclerk::shell::templates::load(&root().join("mail-templates")).expect("templates load");
    let mut problems = Vec::new();
    for step in &p.steps {
        for full in [false, true] {
            match templates.render(&step.template, &data(&p, step, full)) {
                Ok(r) => {
                    if r.subject.trim().is_empty() || r.text.trim().is_empty() {
                        problems.push(format!("{}: {} renders empty", step.id, step.template));
                    }
                    if !r.html.contains("font-family: Arial") {
                        problems.push(format!(
                            "{}: {} has no HTML wrapper",
                            step.id, step.template
                        ));
                    }
                }
                Err(e) => problems.push(format!(
                    "step {} ({} data): {e}",
                    step.id,
                    if full { "full" } else { "sparse" }
                )),
            }
        }
    }
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
