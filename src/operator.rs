//! Operator commands: corrections and facts a person records by hand.
//!
//! Owns checking that a command makes sense for the case as it stands (an unknown agency, a
//! decision the process does not have, an outcome it does not allow, a closed case) and recording
//! it as an event with who ran it and why. The daemon picks the change up on its next pass (within a
//! minute) and the timeline does the rest: an agency added after the request day gets its request at
//! once; a decision opens its pathway.
//!
//! Must not: send anything itself, or change history (events are only ever appended).

use crate::case::Event;
use crate::config::Config;
use crate::store::{CaseRow, Store, StoreError};
use chrono::{DateTime, Utc};

/// Why an operator command was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("there is no case {0} (see `caseclerk cases`)")]
    NoCase(String),
    #[error("case {0} is closed; reopen it first")]
    Closed(String),
    #[error("unknown agency {name}: the directory has {known}")]
    UnknownAgency { name: String, known: String },
    #[error("agency {agency} is already on case {case}")]
    AlreadyOn { agency: String, case: String },
    #[error("agency {agency} is not on case {case}")]
    NotOn { agency: String, case: String },
    #[error("process {process} has no decision {decision} (it has: {known})")]
    UnknownDecision {
        process: String,
        decision: String,
        known: String,
    },
    #[error("decision {decision} has no outcome {outcome} (it has: {known})")]
    UnknownOutcome {
        decision: String,
        outcome: String,
        known: String,
    },
    #[error(
        "decision {decision} on case {case} was already taken ({outcome}); pass --replace with a reason to correct it"
    )]
    AlreadyDecided {
        decision: String,
        case: String,
        outcome: String,
    },
    #[error("give a reason (--reason): every change to a case records why")]
    NoReason,
    #[error("case {0} has no LCSPR decision: a publication date belongs to an LCSPR")]
    NoLcspr(String),
    #[error("{date} is not in the future")]
    InThePast { date: String },
    #[error(
        "publication on {date} leaves less than 7 working days for the report to reach the National Panel, the Secretary of State and Ofsted; the earliest possible date is {earliest}"
    )]
    TooSoon { date: String, earliest: String },
    #[error("{0}")]
    Calendar(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Case(String),
}

/// Who ran a command: `--by`, else the login name, else "operator".
pub fn actor(by: Option<&str>) -> String {
    let who = by
        .map(str::to_string)
        .or_else(|| std::env::var("SUDO_USER").ok())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    format!("operator:{who}")
}

async fn open_case(store: &Store, reference: &str) -> Result<CaseRow, OperatorError> {
    let case = store
        .case_by_ref(reference)
        .await?
        .ok_or_else(|| OperatorError::NoCase(reference.to_string()))?;
    if case.status == "closed" {
        return Err(OperatorError::Closed(reference.to_string()));
    }
    Ok(case)
}

async fn record(
    store: &Store,
    case: &CaseRow,
    at: DateTime<Utc>,
    actor: &str,
    events: &[Event],
) -> Result<(), OperatorError> {
    let mut tx = store.begin().await?;
    for e in events {
        let data = serde_json::to_value(e).map_err(|e| OperatorError::Case(e.to_string()))?;
        Store::add_event(&mut tx, case.id, at, e.kind(), actor, &data).await?;
    }
    Store::commit(tx).await?;
    Ok(())
}

/// Agencies currently on a case (folded from its events).
async fn agencies_on(store: &Store, case: &CaseRow) -> Result<Vec<String>, OperatorError> {
    let mut on: Vec<String> = Vec::new();
    for e in store.events(case.id).await? {
        match serde_json::from_value::<Event>(e.data) {
            Ok(Event::AgencyAdded { agency, .. }) if !on.contains(&agency) => on.push(agency),
            Ok(Event::AgencyRemoved { agency, .. }) => on.retain(|a| *a != agency),
            _ => {}
        }
    }
    Ok(on)
}

/// Add agencies to a case. Every name must be in the directory; nothing is added if one is not.
pub async fn add_agencies(
    cfg: &Config,
    store: &Store,
    reference: &str,
    names: &[String],
    reason: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<String>, OperatorError> {
    let case = open_case(store, reference).await?;
    let matched = crate::agencies::resolve(names, &cfg.agencies);
    if let Some(name) = matched.unmatched.first() {
        return Err(OperatorError::UnknownAgency {
            name: name.clone(),
            known: cfg
                .agencies
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let on = agencies_on(store, &case).await?;
    if let Some(a) = matched.ids.iter().find(|a| on.contains(a)) {
        return Err(OperatorError::AlreadyOn {
            agency: a.clone(),
            case: reference.to_string(),
        });
    }
    let source = match reason {
        Some(r) => format!("added by hand: {r}"),
        None => "added by hand".to_string(),
    };
    let events: Vec<Event> = matched
        .ids
        .iter()
        .map(|a| Event::AgencyAdded {
            agency: a.clone(),
            source: source.clone(),
        })
        .collect();
    record(store, &case, now, actor, &events).await?;
    Ok(matched.ids)
}

/// Remove an agency from a case (it is no longer asked or chased).
pub async fn remove_agency(
    cfg: &Config,
    store: &Store,
    reference: &str,
    name: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    let case = open_case(store, reference).await?;
    let matched = crate::agencies::resolve(&[name.to_string()], &cfg.agencies);
    let Some(id) = matched.ids.first().cloned() else {
        return Err(OperatorError::UnknownAgency {
            name: name.to_string(),
            known: cfg
                .agencies
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if !agencies_on(store, &case).await?.contains(&id) {
        return Err(OperatorError::NotOn {
            agency: id,
            case: reference.to_string(),
        });
    }
    let e = Event::AgencyRemoved {
        agency: id.clone(),
        reason: reason.to_string(),
    };
    record(store, &case, now, actor, &[e]).await?;
    Ok(id)
}

/// Record a decision taken outside the mailbox (in a meeting, by phone).
#[allow(clippy::too_many_arguments)]
pub async fn decide(
    cfg: &Config,
    store: &Store,
    reference: &str,
    decision: &str,
    outcome: &str,
    reason: &str,
    replace: bool,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    let case = open_case(store, reference).await?;
    let p = &cfg.process;
    let d = p
        .decision(decision)
        .ok_or_else(|| OperatorError::UnknownDecision {
            process: p.id.clone(),
            decision: decision.to_string(),
            known: p
                .decisions
                .iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if !d.outcomes.iter().any(|o| o == outcome) {
        return Err(OperatorError::UnknownOutcome {
            decision: decision.to_string(),
            outcome: outcome.to_string(),
            known: d.outcomes.join(", "),
        });
    }
    if !replace {
        for e in store.events(case.id).await? {
            if let Ok(Event::DecisionTaken {
                decision: taken,
                outcome: was,
                ..
            }) = serde_json::from_value::<Event>(e.data)
                && taken == decision
            {
                return Err(OperatorError::AlreadyDecided {
                    decision: decision.to_string(),
                    case: reference.to_string(),
                    outcome: was,
                });
            }
        }
    }
    let e = Event::DecisionTaken {
        decision: decision.to_string(),
        outcome: outcome.to_string(),
        how: format!("recorded by hand: {reason}"),
    };
    record(store, &case, now, actor, &[e]).await
}

/// Record the planned publication date of a case's LCSPR report. The report then goes to the
/// National Panel, the Secretary of State and Ofsted 7 working days before it (the process's
/// publication step), and a date beyond the six months triggers the delay notice.
#[allow(clippy::too_many_arguments)]
pub async fn plan_publication(
    cfg: &Config,
    store: &Store,
    reference: &str,
    date: chrono::NaiveDate,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    let case = open_case(store, reference).await?;
    let lcspr = store.events(case.id).await?.into_iter().any(|e| {
        matches!(serde_json::from_value::<Event>(e.data), Ok(Event::DecisionTaken { outcome, .. }) if outcome == "lcspr")
    });
    if !lcspr {
        return Err(OperatorError::NoLcspr(reference.to_string()));
    }
    let today = crate::calendar::london_date(now);
    let show = |d: chrono::NaiveDate| d.format("%a %-d %b %Y").to_string();
    if date <= today {
        return Err(OperatorError::InThePast { date: show(date) });
    }
    let earliest = cfg
        .calendar
        .add_working_days(today, 8)
        .map_err(|e| OperatorError::Calendar(e.to_string()))?
        .date;
    if date < earliest {
        return Err(OperatorError::TooSoon {
            date: show(date),
            earliest: show(earliest),
        });
    }
    let e = Event::PublicationPlanned {
        date,
        reason: reason.to_string(),
    };
    record(store, &case, now, actor, &[e]).await
}
