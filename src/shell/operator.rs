//! Operator commands: corrections and facts a person records by hand.
//!
//! Owns checking that a command makes sense for the case as it stands (an unknown agency, a
//! decision the process does not have, an outcome it does not allow, a closed case) and recording
//! it as an event with who ran it and why. The daemon picks the change up on its next pass (within a
//! minute) and the timeline does the rest: an agency added after the request day gets its request at
//! once; a decision opens its pathway.
//!
//! Must not: send anything itself, or change history (events are only ever appended).

use crate::core::case::Event;
use crate::core::decisions;
use crate::core::react;
use crate::shell::config::Config;
use crate::shell::store::{CaseRow, CaseStatus, OutboxState, Store, StoreError};
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
    #[error(
        "message {message} is not a return in case {case}'s collation pack (`caseclerk case {case}` lists each return with its message)"
    )]
    NotAReturn { message: i64, case: String },
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
    #[error("case {0} is already closed")]
    AlreadyClosed(String),
    #[error("case {0} is not closed")]
    NotClosed(String),
    #[error("there is no stored message {0} (see `caseclerk triage`)")]
    NoMessage(i64),
    #[error(
        "message {id} is not waiting for a person (it is {state}); only triaged messages can be attached"
    )]
    NotTriaged { id: i64, state: String },
    #[error("message {message} is not a held reply on case {case}")]
    NotHeld { message: i64, case: String },
    #[error("held reply {0} was already confirmed")]
    AlreadyConfirmed(i64),
    #[error("held reply {0} was dismissed: it counts as no vote")]
    Dismissed(i64),
    #[error(
        "held reply {0} names no decision (its reason says which it could be): say which with --decision"
    )]
    HeldWithoutDecision(i64),
    #[error("held reply {message} is about {held}, not {named}")]
    HeldOnAnother {
        message: i64,
        held: String,
        named: String,
    },
    #[error(
        "the sender of held reply {message} is not one of those whose vote counts on {decision}, so it cannot count; if the decision was taken another way, record it with `caseclerk decide`"
    )]
    NotAVoter { message: i64, decision: String },
    #[error(
        "decision {decision} has not been asked on this case yet, so held reply {message} cannot count on it; choose the decision its request went out for"
    )]
    NotAsked { message: i64, decision: String },
    #[error(
        "the sender's later reply (message {later}) is their answer on {decision} now, so held reply {message}, which came before it, cannot replace it; dismiss it (`caseclerk dismiss`, or Dismiss on the Held page), or, if that later reply is held, confirm that one"
    )]
    LaterReply {
        message: i64,
        later: i64,
        decision: String,
    },
    #[error(
        "held reply {message} came before {decision} was reopened with the referrer's answer, which the member had not seen; they are asked again in this round, so dismiss it (`caseclerk dismiss`, or Dismiss on the Held page)"
    )]
    BeforeReopening { message: i64, decision: String },
    #[error("there is no letter {letter} on case {case} (see `caseclerk case {case}`)")]
    NoLetter { letter: i64, case: String },
    #[error("letter {0} has not been sent yet; it goes on its own")]
    NotSentYet(i64),
    #[error("`{0}` is not an email address")]
    BadAddress(String),
    #[error(
        "`{what}` is not something that can be moved: use step:<id>, return_by:<agency request id>, decision:<id>, deadline:<id> or meeting (this process has: {known})"
    )]
    UnknownTarget { what: String, known: String },
    #[error("{at} is in the past: a deadline can only move to a time still to come")]
    PastTime { at: String },
    #[error(
        "{0} was erased under the retention schedule ([retention]); a sent letter's copy is in the shared mailbox's sent folder"
    )]
    Erased(String),
    #[error(
        "letter {0} was never sent: what it encloses was erased under the retention schedule \
         ([retention]), and sending it now would carry empty copies; send what it needs by hand"
    )]
    EnclosuresErased(i64),
    #[error("the process of case {0} has no meeting to cancel")]
    NoMeeting(String),
    #[error(
        "the meeting of case {0} is already cancelled; `caseclerk reschedule {0} meeting <when>` sets a new one"
    )]
    AlreadyCancelled(String),
    #[error("`{0}` is not a particular (use one of: {known})", known = crate::core::particulars::Field::known())]
    UnknownField(String),
    #[error("nothing was read for {field} on case {case}: give its value (--set {field}=<value>)")]
    NothingRead { field: String, case: String },
    #[error("{field}: {why}")]
    BadValue { field: String, why: String },
    #[error("say which particulars: --confirm <field,...|all> and/or --set <field>=<value>")]
    NothingToCheck,
    #[error(
        "the reviewer `{0}` cannot go on the tracker: give a name of 1 to 80 characters on one line, starting with a letter"
    )]
    BadReviewer(String),
    #[error("{name} is already the reviewer of case {case}")]
    SameReviewer { name: String, case: String },
    #[error(
        "message {message} is already on case {case}; nothing was opened (see `caseclerk case {case}`)"
    )]
    AlreadyOnCase { message: i64, case: String },
    #[error("the process has no area `{area}` (it has: {known})")]
    UnknownArea { area: String, known: String },
    #[error(
        "message {message} names none of the process's areas: say which area the child lives in (--area, one of: {known})"
    )]
    NoArea { message: i64, known: String },
    #[error("day 0 cannot be worked out for message {message}: {why}")]
    NoDayZero { message: i64, why: String },
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
    if case.status == CaseStatus::Closed {
        return Err(OperatorError::Closed(reference.to_string()));
    }
    Ok(case)
}

/// An open case a change with a reason may be made to.
async fn case_to_change(
    store: &Store,
    reference: &str,
    reason: &str,
) -> Result<CaseRow, OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    open_case(store, reference).await
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
        crate::shell::store::record_event(&mut tx, case.id, at, actor, e).await?;
    }
    Store::commit(tx).await?;
    Ok(())
}

/// Agencies currently on a case (folded from its events).
async fn agencies_on(store: &Store, case: &CaseRow) -> Result<Vec<String>, OperatorError> {
    let mut on: Vec<String> = Vec::new();
    for e in store.events(case.id).await? {
        match e.event() {
            Ok(Event::AgencyAdded { agency, .. }) if !on.contains(&agency) => on.push(agency),
            Ok(Event::AgencyRemoved { agency, .. }) => on.retain(|a| *a != agency),
            _ => {}
        }
    }
    Ok(on)
}

fn unknown_agency(cfg: &Config, name: &str) -> OperatorError {
    OperatorError::UnknownAgency {
        name: name.to_string(),
        known: cfg
            .directory
            .agencies
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The directory id of the agency `name` names, which must be on the case.
async fn agency_on_case(
    cfg: &Config,
    store: &Store,
    case: &CaseRow,
    name: &str,
) -> Result<String, OperatorError> {
    let matched = crate::core::agencies::resolve(&[name.to_string()], &cfg.directory.agencies);
    let id = matched
        .ids
        .first()
        .cloned()
        .ok_or_else(|| unknown_agency(cfg, name))?;
    if !agencies_on(store, case).await?.contains(&id) {
        return Err(OperatorError::NotOn {
            agency: id,
            case: case.reference.clone(),
        });
    }
    Ok(id)
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
    let matched = crate::core::agencies::resolve(names, &cfg.directory.agencies);
    if let Some(name) = matched.unmatched.first() {
        return Err(unknown_agency(cfg, name));
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
    let case = case_to_change(store, reference, reason).await?;
    let id = agency_on_case(cfg, store, &case, name).await?;
    let e = Event::AgencyRemoved {
        agency: id.clone(),
        reason: reason.to_string(),
    };
    record(store, &case, now, actor, &[e]).await?;
    Ok(id)
}

/// Take one of an agency's returns out of the collation pack: the wrong child's, or the one a
/// later correction replaces when the agency had sent more than one (which, only a person can
/// tell). The message stays filed on the case. Returns the agency's id.
pub async fn withdraw_return(
    store: &Store,
    reference: &str,
    message: i64,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, OperatorError> {
    let case = case_to_change(store, reference, reason).await?;
    let state = case_state(store, &case).await?;
    let Some(agency) = state
        .agencies
        .iter()
        .find(|(_, a)| a.returns.contains(&message))
        .map(|(id, _)| id.clone())
    else {
        return Err(OperatorError::NotAReturn {
            message,
            case: reference.to_string(),
        });
    };
    let e = Event::ReturnWithdrawn {
        agency: agency.clone(),
        message,
        reason: reason.to_string(),
    };
    record(store, &case, now, actor, &[e]).await?;
    Ok(agency)
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
    let case = case_to_change(store, reference, reason).await?;
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
            }) = e.event()
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
    let case = case_to_change(store, reference, reason).await?;
    let lcspr = store.events(case.id).await?.into_iter().any(
        |e| matches!(e.event(), Ok(Event::DecisionTaken { outcome, .. }) if outcome == "lcspr"),
    );
    if !lcspr {
        return Err(OperatorError::NoLcspr(reference.to_string()));
    }
    let today = crate::core::calendar::london_date(now);
    let show = crate::core::calendar::short_date;
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

/// Close or reopen a case.
pub async fn set_status(
    store: &Store,
    reference: &str,
    close: bool,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    let case = store
        .case_by_ref(reference)
        .await?
        .ok_or_else(|| OperatorError::NoCase(reference.to_string()))?;
    match (close, case.status == CaseStatus::Closed) {
        (true, true) => return Err(OperatorError::AlreadyClosed(reference.to_string())),
        (false, false) => return Err(OperatorError::NotClosed(reference.to_string())),
        _ => {}
    }
    let status = if close {
        CaseStatus::Closed
    } else {
        CaseStatus::Open
    };
    let e = Event::StatusChanged {
        status,
        reason: reason.to_string(),
    };
    let mut tx = store.begin().await?;
    crate::shell::store::record_event(&mut tx, case.id, now, actor, &e).await?;
    Store::set_case_status(&mut tx, case.id, status).await?;
    Store::commit(tx).await?;
    Ok(())
}

/// The stored message `message` is waiting in triage for a person.
async fn waiting_in_triage(store: &Store, message: i64) -> Result<(), OperatorError> {
    let (state, _) = store
        .message_state(message)
        .await?
        .ok_or(OperatorError::NoMessage(message))?;
    if state != "triage" {
        return Err(OperatorError::NotTriaged { id: message, state });
    }
    Ok(())
}

/// How a triaged message is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachAs {
    /// Filed on the case, nothing more.
    Note,
    /// An agency's return (with `nil` for a nil return).
    Return { agency: String, nil: bool },
}

/// Attach a message from the triage list to a case.
#[allow(clippy::too_many_arguments)]
pub async fn attach(
    cfg: &Config,
    store: &Store,
    reference: &str,
    message: i64,
    how: AttachAs,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    let case = case_to_change(store, reference, reason).await?;
    waiting_in_triage(store, message).await?;
    if store
        .message_raw(message)
        .await?
        .is_none_or(|r| r.is_empty())
    {
        return Err(OperatorError::Erased(format!("message {message}")));
    }
    let mut events = vec![Event::MessageFiled {
        message,
        rule: "attached by hand".into(),
        verdict: reason.to_string(),
        agency: match &how {
            AttachAs::Return { agency, .. } => Some(agency.clone()),
            AttachAs::Note => None,
        },
    }];
    if let AttachAs::Return { agency, nil } = &how {
        let id = agency_on_case(cfg, store, &case, agency).await?;
        let received = store
            .message_received(message)
            .await?
            .ok_or(OperatorError::NoMessage(message))?;
        let state = case_state(store, &case).await?;
        let late =
            crate::core::timeline::agency_return_deadline(&cfg.process, &cfg.calendar, &state, &id)
                .map_err(|e| OperatorError::Case(e.to_string()))?
                .is_some_and(|d| received > d.at);
        events.push(Event::ReturnReceived {
            agency: id,
            message,
            nil: *nil,
            late,
            replaces: false,
        });
    }
    let mut tx = store.begin().await?;
    for e in &events {
        crate::shell::store::record_event(&mut tx, case.id, now, actor, e).await?;
    }
    let by = serde_json::json!({"by": actor});
    let filed = "attached_by_hand";
    if !Store::file_from_triage(&mut tx, message, "filed", filed, &by, Some(case.id), now).await? {
        return Err(taken_meanwhile(store, message).await);
    }
    Store::commit(tx).await?;
    Ok(())
}

/// The message was taken off the triage list by another command between the check and the
/// change (two people at once): nothing was changed.
async fn taken_meanwhile(store: &Store, message: i64) -> OperatorError {
    match store.message_state(message).await {
        Ok(found) => OperatorError::NotTriaged {
            id: message,
            state: found.map(|(state, _)| state).unwrap_or_default(),
        },
        Err(e) => OperatorError::Store(e),
    }
}

/// Take a message off the triage list as not case business (a newsletter, a misdirected email):
/// it stays stored, on no case (state `ignored`, rule `not_case_business`, with who and why), and
/// the retention schedule treats it as other mail.
pub async fn not_case_business(
    store: &Store,
    message: i64,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    waiting_in_triage(store, message).await?;
    let mut tx = store.begin().await?;
    let why = serde_json::json!({"by": actor, "reason": reason});
    if !Store::file_from_triage(
        &mut tx,
        message,
        "ignored",
        "not_case_business",
        &why,
        None,
        now,
    )
    .await?
    {
        return Err(taken_meanwhile(store, message).await);
    }
    Store::commit(tx).await?;
    Ok(())
}

/// Open a case from a message waiting in triage, as a classified referral opens one (a referral
/// the classifier did not recognise: sent from an unknown address, a subject it did not read):
/// the same core ([`crate::core::react::opening`]: day 0 from when the message reached the
/// mailbox, the process's cutoff applied) and the same recording
/// ([`crate::shell::engine::record_opening`]: the reference, the `opened` event, the referral's
/// particulars), as `actor`, with a note of why. The daemon's next pass plans the
/// acknowledgement and the screening letters as for any new case. The area is the one given,
/// else the one the message names; a process with areas refuses a case with none.
///
/// Opened once: the message leaves triage in the same transaction, on condition that it is
/// still there, so a repeated command (or two people at once) is refused and opens nothing.
/// Returns the new case's reference. The answer and case caps do not apply: a person decided.
#[allow(clippy::too_many_arguments)]
pub async fn open_referral(
    cfg: &Config,
    store: &Store,
    message: i64,
    area: Option<&str>,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<String, OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    let state = store.message_state(message).await?;
    // A message waiting in triage may be stored on a case all the same (a reply about a closed
    // case, kept under its hold): it may be a new referral quoting the old reference, and opens
    // a case like any other waiting message, moving to it.
    if let Some((_, Some(case_id))) = state.as_ref().filter(|(s, _)| s != "triage") {
        let case = store.case_by_id(*case_id).await?;
        let case = case.map_or_else(|| format!("#{case_id}"), |c| c.reference);
        return Err(OperatorError::AlreadyOnCase { message, case });
    }
    waiting_in_triage(store, message).await?;
    let raw = store.message_raw(message).await?.unwrap_or_default();
    let received = store.message_received(message).await?;
    let (false, Some(received)) = (raw.is_empty(), received) else {
        return Err(OperatorError::Erased(format!("message {message}")));
    };
    let msg = crate::core::intake::parse(&raw);
    let (p, cal) = (&cfg.process, &cfg.calendar);
    let mut o = crate::core::react::opening(p, cal, cfg.cutoff, message, received, &msg)
        .map_err(|why| OperatorError::NoDayZero { message, why })?;
    let known = || match p.areas.is_empty() {
        true => "none".to_string(),
        false => p.areas.join(", "),
    };
    match area.map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => match p.areas.iter().find(|k| k.eq_ignore_ascii_case(a)) {
            Some(k) => o.area = Some(k.clone()),
            None => {
                let (area, known) = (a.to_string(), known());
                return Err(OperatorError::UnknownArea { area, known });
            }
        },
        None if o.area.is_none() && !p.areas.is_empty() => {
            return Err(OperatorError::NoArea {
                message,
                known: known(),
            });
        }
        None => {}
    }
    // One transaction holding the write lock from its start: the message is taken off the triage
    // list at its end only if it is still on it, else the case opened here is rolled back.
    let mut tx = store.begin().await?;
    let verdict = serde_json::json!({"by": actor, "reason": reason});
    let (case, _) = crate::shell::engine::record_opening(&mut tx, cfg, &o, actor, now).await?;
    let note = Event::Note {
        text: format!("opened by hand from message {message} in triage: {reason}"),
    };
    crate::shell::store::record_event(&mut tx, case.id, now, actor, &note).await?;
    // As the daemon does for a referral: replies on its thread, and Outlook's conversation,
    // find the case.
    if let Some(id) = &msg.message_id {
        Store::add_thread_id(&mut tx, id, case.id, None, None, None).await?;
    }
    if let Some(conv) = &msg.thread_conversation {
        Store::add_conversation(&mut tx, conv, case.id).await?;
    }
    let rule = "opened_by_hand";
    let on = Some(case.id);
    if !Store::file_from_triage(&mut tx, message, "filed", rule, &verdict, on, now).await? {
        return Err(taken_meanwhile(store, message).await);
    }
    Store::commit(tx).await?;
    tracing::info!(case = %case.reference, stored_message = message, "referral opened by hand");
    Ok(case.reference)
}

async fn case_state(
    store: &Store,
    case: &CaseRow,
) -> Result<crate::core::case::CaseState, OperatorError> {
    let events = store.events(case.id).await?;
    crate::core::case::fold_rows(&events).map_err(|e| OperatorError::Case(e.to_string()))
}

/// Confirm a held reply as a member's vote, with the outcome a person read from it: on the
/// decision it was held on, or, when it was held naming none, on the one the person names. A
/// reply from someone whose vote does not count on that decision is refused, never recorded as a
/// vote the count would then pass over in silence.
#[allow(clippy::too_many_arguments)]
pub async fn confirm_held(
    cfg: &Config,
    store: &Store,
    reference: &str,
    message: i64,
    named: Option<&str>,
    outcome: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    let case = case_to_change(store, reference, reason).await?;
    let state = case_state(store, &case).await?;
    let held = waiting_held(&state, reference, message)?;
    let decision = match (&held.decision, named) {
        (Some(held), None) => held.clone(),
        (Some(held), Some(named)) if held == named => held.clone(),
        (Some(held), Some(named)) => {
            return Err(OperatorError::HeldOnAnother {
                message,
                held: held.clone(),
                named: named.to_string(),
            });
        }
        (None, Some(named)) => named.to_string(),
        (None, None) => return Err(OperatorError::HeldWithoutDecision(message)),
    };
    let d = cfg
        .process
        .decision(&decision)
        .ok_or_else(|| OperatorError::UnknownDecision {
            process: cfg.process.id.clone(),
            decision: decision.clone(),
            known: cfg
                .process
                .decisions
                .iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if !d.outcomes.iter().any(|o| o == outcome) {
        return Err(OperatorError::UnknownOutcome {
            decision,
            outcome: outcome.to_string(),
            known: d.outcomes.join(", "),
        });
    }
    if let Some((was, _)) = state.decisions.get(&decision) {
        return Err(OperatorError::AlreadyDecided {
            decision,
            case: reference.to_string(),
            outcome: was.clone(),
        });
    }
    if !decisions::counts_on(&cfg.directory, d, state.area.as_deref(), &held.voter) {
        return Err(OperatorError::NotAVoter { message, decision });
    }
    // A reply held naming no decision counts only on one the panel was asked (its request
    // went): a vote on a decision nobody was asked yet would be counted before its time.
    if held.decision.is_none() && !react::awaited(&cfg.process, &state, d) {
        return Err(OperatorError::NotAsked { message, decision });
    }
    // A reply from before the decision was reopened answered without the referrer's answer.
    if state
        .reopened_at
        .get(&decision)
        .is_some_and(|reopened| held.at < *reopened)
    {
        return Err(OperatorError::BeforeReopening { message, decision });
    }
    // A held reply is the voter's answer as it was when it came: one they sent after it about
    // the same decision — counted, or itself held (an unclear correction, which set their vote
    // aside) — is their answer now.
    let counted = state
        .votes
        .get(&decision)
        .and_then(|v| v.get(&held.voter))
        .map(|v| v.message);
    // A later reply a person dismissed counts as no answer, so it does not stand in the way.
    let other_held = state.held.iter().filter(|h| {
        h.message != message
            && !h.dismissed
            && h.voter.eq_ignore_ascii_case(&held.voter)
            && h.decision.as_deref().is_none_or(|d| d == decision)
    });
    let held_came = store.message_received(message).await?;
    for later in counted.into_iter().chain(other_held.map(|h| h.message)) {
        if store.message_received(later).await? > held_came {
            return Err(OperatorError::LaterReply {
                message,
                later,
                decision,
            });
        }
    }
    let e = Event::HeldConfirmed {
        message,
        decision,
        voter: held.voter.clone(),
        outcome: outcome.to_string(),
    };
    let note = Event::Note {
        text: format!("held reply {message} confirmed: {reason}"),
    };
    record(store, &case, now, actor, &[e, note]).await
}

/// Held reply `message` of the case, still waiting for a person (neither confirmed nor
/// dismissed).
fn waiting_held<'s>(
    state: &'s crate::core::case::CaseState,
    reference: &str,
    message: i64,
) -> Result<&'s crate::core::case::Held, OperatorError> {
    let held = state
        .held
        .iter()
        .find(|h| h.message == message)
        .ok_or_else(|| OperatorError::NotHeld {
            message,
            case: reference.to_string(),
        })?;
    if held.confirmed {
        return Err(OperatorError::AlreadyConfirmed(message));
    }
    if held.dismissed {
        return Err(OperatorError::Dismissed(message));
    }
    Ok(held)
}

/// Dismiss a held reply: a person read it and it counts as no vote — too late, overtaken by the
/// member's later answer, from before a reopening, or no vote at all. It leaves the Held list and
/// the digest, and stays in the case history with the reason.
pub async fn dismiss_held(
    store: &Store,
    reference: &str,
    message: i64,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    let case = case_to_change(store, reference, reason).await?;
    let state = case_state(store, &case).await?;
    waiting_held(&state, reference, message)?;
    let note = Event::Note {
        text: format!("held reply {message} dismissed: {reason}"),
    };
    record(
        store,
        &case,
        now,
        actor,
        &[Event::HeldDismissed { message }, note],
    )
    .await
}

/// Send a letter again, as it was, to its recipient or to another address.
#[allow(clippy::too_many_arguments)]
pub async fn resend(
    cfg: &Config,
    store: &Store,
    reference: &str,
    letter: i64,
    to: Option<&str>,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<i64, OperatorError> {
    let case = case_to_change(store, reference, reason).await?;
    let row = store
        .letter(letter)
        .await?
        .filter(|l| l.case_id == Some(case.id))
        .ok_or_else(|| OperatorError::NoLetter {
            letter,
            case: reference.to_string(),
        })?;
    if row.state == OutboxState::Pending {
        return Err(OperatorError::NotSentYet(letter));
    }
    if row.raw.is_empty() {
        return Err(OperatorError::Erased(format!("letter {letter}")));
    }
    if row
        .last_error
        .as_deref()
        .is_some_and(crate::core::retention::erased_enclosures)
    {
        return Err(OperatorError::EnclosuresErased(letter));
    }
    if let Some(addr) = to
        && (!addr.contains('@') || addr.contains(char::is_whitespace) || addr.contains('<'))
    {
        return Err(OperatorError::BadAddress(addr.to_string()));
    }
    let install = store
        .meta("install_id")
        .await?
        .unwrap_or_else(|| "operator".into());
    // The installation's secret, as the daemon keys its Message-IDs with it (none before the
    // daemon ever ran: then there is no letter to send again either).
    let secret = match store.meta("vote_key").await? {
        Some(k) => crate::shell::store::installation_secret(&k)?,
        None => Vec::new(),
    };
    let previous = store
        .events(case.id)
        .await?
        .into_iter()
        .filter(|e| matches!(e.event(), Ok(Event::LetterResent { outbox, .. }) if outbox == letter))
        .count();
    let new = crate::core::letters::resent_letter(
        (&install, &cfg.id_domain, &secret),
        &crate::core::letters::OriginalLetter {
            outbox: row.id,
            case_id: Some(case.id),
            step: &row.step,
            recipient: &row.recipient,
            envelope_from: &row.envelope_from,
            envelope_to: &row.envelope_to,
            raw: &row.raw,
        },
        reference,
        previous + 1,
        to,
        now,
    );
    let envelope_to = new.envelope_to.clone();
    let mut tx = store.begin().await?;
    let id = crate::shell::outbox::enqueue(&mut tx, &new, now)
        .await?
        .ok_or_else(|| OperatorError::Case("the resend was already queued".into()))?;
    let e = Event::LetterResent {
        outbox: letter,
        resent_as: id,
        to: envelope_to.join(", "),
        reason: reason.to_string(),
    };
    crate::shell::store::record_event(&mut tx, case.id, now, actor, &e).await?;
    Store::commit(tx).await?;
    Ok(id)
}

/// What [`reschedule`] can move in a process: its key (`step:<id>`, `return_by:<id>`,
/// `decision:<id>`, `deadline:<id>`, `meeting`) and its name for people.
pub fn movable(p: &crate::core::process::Process) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = p
        .steps
        .iter()
        .filter(|s| s.when.is_some())
        .map(|s| (format!("step:{}", s.id), s.name.clone()))
        .collect();
    k.extend(p.steps.iter().filter(|s| s.return_by.is_some()).map(|s| {
        (
            format!("return_by:{}", s.id),
            format!("returns for: {}", s.name),
        )
    }));
    k.extend(
        p.decisions
            .iter()
            .map(|d| (format!("decision:{}", d.id), d.name.clone())),
    );
    k.extend(
        p.deadlines
            .iter()
            .map(|d| (format!("deadline:{}", d.id), d.name.clone())),
    );
    if p.meeting.is_some() {
        k.push(("meeting".into(), "the meeting".into()));
    }
    k
}

/// Move a step, a return deadline, a decision's due date, a deadline or the meeting (adjourn or
/// extend), to a time still to come.
#[allow(clippy::too_many_arguments)]
pub async fn reschedule(
    cfg: &Config,
    store: &Store,
    reference: &str,
    what: &str,
    at: DateTime<Utc>,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    let case = case_to_change(store, reference, reason).await?;
    let known = movable(&cfg.process);
    if !known.iter().any(|(k, _)| k == what) {
        return Err(OperatorError::UnknownTarget {
            what: what.to_string(),
            known: known
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if at <= now {
        return Err(OperatorError::PastTime {
            at: crate::core::calendar::short_instant(at),
        });
    }
    let e = if what == "meeting" {
        Event::MeetingScheduled {
            at,
            reason: reason.to_string(),
        }
    } else {
        Event::Rescheduled {
            what: what.to_string(),
            at,
            reason: reason.to_string(),
        }
    };
    record(store, &case, now, actor, &[e]).await
}

/// Call off the case's meeting. Every attendee who was sent the invitation is sent a
/// cancellation (`METHOD:CANCEL`, same UID, the next SEQUENCE) on the daemon's next pass; no
/// invitation goes after it. `caseclerk reschedule <case> meeting <when>` sets a new date, and
/// those attendees then get an updated invitation.
pub async fn cancel_meeting(
    cfg: &Config,
    store: &Store,
    reference: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    let case = case_to_change(store, reference, reason).await?;
    if cfg.process.meeting.is_none() {
        return Err(OperatorError::NoMeeting(reference.to_string()));
    }
    let cancelled = store
        .events(case.id)
        .await?
        .into_iter()
        .rev()
        .find_map(|e| match e.event() {
            Ok(Event::MeetingCancelled { .. }) => Some(true),
            Ok(Event::MeetingScheduled { .. }) => Some(false),
            _ => None,
        });
    if cancelled == Some(true) {
        return Err(OperatorError::AlreadyCancelled(reference.to_string()));
    }
    let e = Event::MeetingCancelled {
        reason: reason.to_string(),
    };
    record(store, &case, now, actor, &[e]).await
}

/// What a person makes of a case's particulars: fields confirmed as read, and fields corrected
/// (or given, when nothing was read) with their value.
#[derive(Default)]
pub struct ParticularChecks {
    /// Field ids, or `all` for every particular read and not yet checked.
    pub confirm: Vec<String>,
    /// `(field id, value)`.
    pub set: Vec<(String, String)>,
}

/// Confirm or correct a case's particulars ([`crate::core::particulars`]): each is recorded as
/// a `particular_checked` event with who and why (never the value), and the value and its state
/// in the particulars table, in one transaction. Nothing is recorded if one is refused. Returns
/// the fields checked.
pub async fn check_particulars(
    store: &Store,
    reference: &str,
    checks: &ParticularChecks,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<crate::core::particulars::Field>, OperatorError> {
    use crate::core::particulars::{self, Field};
    let case = case_to_change(store, reference, reason).await?;
    let read = store.particulars(case.id).await?;
    let field =
        |name: &str| Field::parse(name).ok_or_else(|| OperatorError::UnknownField(name.into()));
    let mut confirm: Vec<Field> = Vec::new();
    for name in &checks.confirm {
        if name.trim().eq_ignore_ascii_case("all") {
            confirm.extend(particulars::unchecked(&read));
            continue;
        }
        let f = field(name)?;
        if !read.iter().any(|p| p.field == f) {
            return Err(OperatorError::NothingRead {
                field: f.as_str().into(),
                case: reference.into(),
            });
        }
        confirm.push(f);
    }
    let mut set: Vec<(Field, String)> = Vec::new();
    for (name, value) in &checks.set {
        let f = field(name)?;
        let v = particulars::corrected_value(f, value).map_err(|why| OperatorError::BadValue {
            field: f.as_str().into(),
            why,
        })?;
        set.push((f, v));
    }
    confirm.retain(|f| !set.iter().any(|(s, _)| s == f));
    confirm.dedup();
    if confirm.is_empty() && set.is_empty() {
        return Err(OperatorError::NothingToCheck);
    }
    let mut tx = store.begin().await?;
    let mut done = Vec::new();
    let changes = confirm
        .iter()
        .map(|f| (*f, None))
        .chain(set.iter().map(|(f, v)| (*f, Some(v.as_str()))));
    for (f, value) in changes {
        Store::decide_particular(&mut tx, case.id, f, value, actor, now).await?;
        let e = Event::ParticularChecked {
            field: f.as_str().into(),
            corrected: value.is_some(),
            reason: reason.to_string(),
        };
        crate::shell::store::record_event(&mut tx, case.id, now, actor, &e).await?;
        done.push(f);
    }
    Store::commit(tx).await?;
    Ok(done)
}

/// Name the person who leads a case's review (the rapid review or LCSPR reviewer), for the
/// tracker's "Reviewer" column. A later name replaces it; the history keeps both, with who named
/// them and why. A closed case may be given one too: naming a reviewer sends nothing, and a
/// business manager completing the tracker should not have to reopen a case (which plans letters
/// again) to do it.
///
/// The name must start with a letter and stay on one line: it goes into spreadsheet cells, where a
/// leading `=`, `+`, `-` or `@` would be read as a formula.
pub async fn set_reviewer(
    store: &Store,
    reference: &str,
    name: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), OperatorError> {
    if reason.trim().is_empty() {
        return Err(OperatorError::NoReason);
    }
    let name = name.trim();
    let fits = name.chars().next().is_some_and(char::is_alphabetic)
        && name.chars().count() <= 80
        && !name.chars().any(char::is_control);
    if !fits {
        return Err(OperatorError::BadReviewer(name.to_string()));
    }
    let case = store
        .case_by_ref(reference)
        .await?
        .ok_or_else(|| OperatorError::NoCase(reference.to_string()))?;
    if case_state(store, &case).await?.reviewer.as_deref() == Some(name) {
        return Err(OperatorError::SameReviewer {
            name: name.to_string(),
            case: reference.to_string(),
        });
    }
    let e = Event::ReviewerSet {
        reviewer: name.to_string(),
        reason: reason.to_string(),
    };
    record(store, &case, now, actor, &[e]).await
}
