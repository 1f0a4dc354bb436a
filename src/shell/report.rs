//! Read-only views of cases for people: `caseclerk case <ref>`.
//!
//! Owns turning a case's stored history into text an operator reads: the case line, its agencies
//! and their returns, every event in order with who did it, its letters and their state, its
//! deadlines, and the planned schedule ahead with every date explained. The digest and the tracker read [`crate::core::views`].
//!
//! Must not: change anything, or show message content (ids, keys and rules only).

use crate::core::calendar;
use crate::core::case::{self, CaseState, Event, Recorded};
use crate::core::timeline;
use crate::shell::config::Config;
use crate::shell::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::fmt::Write;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("there is no case {0} (see `caseclerk cases`)")]
    NoCase(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Case(String),
}

fn local(t: DateTime<Utc>) -> String {
    calendar::short_instant(t)
}

/// The text of `caseclerk case <ref>` at `now`.
pub async fn case_report(
    cfg: &Config,
    store: &Store,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<String, ReportError> {
    let row = store
        .case_by_ref(reference)
        .await?
        .ok_or_else(|| ReportError::NoCase(reference.to_string()))?;
    let events = store.events(row.id).await?;
    let recorded = case::read_rows(&events).map_err(|e| ReportError::Case(e.to_string()))?;
    let state = case::fold(&recorded).map_err(|e| ReportError::Case(e.to_string()))?;
    let mut out = String::new();
    write_heading(&mut out, cfg, &state, &recorded, now);
    write_agencies(&mut out, &state);
    // A referral that carried unsafe files is flagged: they were never forwarded.
    if let Some(raw) = store.message_raw(state.referral_message).await?
        && let Some(withheld) =
            crate::core::trust::withheld_summary(&crate::core::intake::parse(&raw).attachments)
    {
        let _ = writeln!(
            out,
            "\nflag: the referral's {withheld}; they were not forwarded to the panel (the \
             original is in the mailbox)"
        );
    }
    let _ = writeln!(out, "\nhistory:");
    for r in &recorded {
        let _ = writeln!(
            out,
            "  {}  {:<18} {}",
            local(r.at),
            r.actor,
            r.event.describe()
        );
    }
    // Their lines only: a letter carrying a referral's file can be 20 MB, and none is read here.
    let letters = store.letter_summaries(Some(row.id)).await?;
    if !letters.is_empty() {
        let _ = writeln!(out, "\nletters:");
        for l in &letters {
            let delayed = match state.delayed.get(&l.id) {
                Some(at) if !l.state.undelivered() => {
                    format!(" — delayed, still trying (reported {})", local(*at))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:>4}  {:<28} {:<34} due {}  {}{}{delayed}",
                l.id,
                l.step,
                l.recipient,
                local(l.due_at),
                match l.state {
                    crate::core::records::OutboxState::Imported => "imported — not sent".into(),
                    s => s.to_string(),
                },
                l.sent_at
                    .map(|t| format!(" {}", local(t)))
                    .unwrap_or_default()
            );
        }
    }
    if cfg.process.id == state.process {
        write_ahead(&mut out, cfg, &state, now);
    }
    Ok(out)
}

/// The case line, day 0 explained, today's day number, and the decisions taken.
fn write_heading(
    out: &mut String,
    cfg: &Config,
    state: &CaseState,
    recorded: &[Recorded],
    now: DateTime<Utc>,
) {
    let _ = writeln!(
        out,
        "{}  {}  {}{}",
        state.reference,
        state.process,
        state.status,
        state
            .area
            .as_ref()
            .map(|a| format!("  area {a}"))
            .unwrap_or_default()
    );
    let day0 = recorded.first().and_then(|r| match &r.event {
        Event::Opened { day0_explained, .. } => Some(day0_explained.clone()),
        _ => None,
    });
    let _ = writeln!(
        out,
        "received {}; day 0 = {}",
        local(state.received_at),
        day0.unwrap_or_default()
    );
    if let Some(h) = &state.hold {
        let _ = writeln!(
            out,
            "LEGAL HOLD since {} by {}: {} (nothing of this case is erased; `caseclerk release` ends it)",
            local(h.since),
            h.by,
            h.reason
        );
    }
    let today = calendar::london_date(now);
    if today >= state.day0
        && let Ok(n) = cfg
            .calendar
            .statutory()
            .working_day_number(state.day0, today)
    {
        let _ = writeln!(out, "today ({}) is day {n}", calendar::short_date(today));
    }
    if !state.decisions.is_empty() {
        let _ = writeln!(out, "\ndecisions:");
        for (id, (outcome, at)) in &state.decisions {
            let _ = writeln!(out, "  {id}: {outcome} ({})", local(*at));
        }
    }
}

/// Each agency's return (or removal), and an out-of-office seen.
fn write_agencies(out: &mut String, state: &CaseState) {
    if state.agencies.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nagencies:");
    for (id, a) in &state.agencies {
        let status = match (a.removed, a.returned_at, a.nil, a.late) {
            (true, ..) => "removed".to_string(),
            (false, Some(t), true, late) => format!(
                "nil return {}{}",
                local(t),
                if late { " (late)" } else { "" }
            ),
            (false, Some(t), false, late) => {
                format!("returned {}{}", local(t), if late { " (late)" } else { "" })
            }
            (false, None, ..) => "not returned".to_string(),
        };
        let away = a
            .out_of_office_at
            .map(|t| format!("; out-of-office seen {}", local(t)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {id}: {status}{away}");
    }
}

/// What lies ahead: the deadlines, the planned letters with their dates explained, the next one.
fn write_ahead(out: &mut String, cfg: &Config, state: &CaseState, now: DateTime<Utc>) {
    let _ = writeln!(out, "\ndeadlines:");
    match timeline::deadlines(&cfg.process, &cfg.calendar, state) {
        Ok(list) => {
            for (d, r) in list {
                let _ = match r {
                    Some(r) => writeln!(
                        out,
                        "  {}: {}\n      {}",
                        d.name,
                        local(r.at),
                        r.explanation
                    ),
                    None => writeln!(out, "  {}: not yet known ({})", d.name, d.when.describe()),
                };
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  cannot compute: {e}");
        }
    }
    let horizon = now + chrono::Duration::days(400);
    match timeline::upcoming(&cfg.process, &cfg.calendar, state, now, horizon) {
        Ok(list) if !list.is_empty() => {
            let _ = writeln!(out, "\nplanned (on the pathways open now):");
            for u in list {
                let _ = writeln!(
                    out,
                    "  {}  {} [{}] to {}\n      {}",
                    local(u.due.at),
                    u.name,
                    u.step,
                    u.to,
                    u.due.explanation
                );
            }
        }
        Ok(_) => {}
        Err(e) => {
            let _ = writeln!(out, "\nplanned: cannot compute: {e}");
        }
    }
    if let Ok(plan) = timeline::plan(&cfg.process, &cfg.directory, &cfg.calendar, state, now)
        && let Some(next) = plan.next_wake
    {
        let _ = writeln!(out, "\nnext letter falls due {}", local(next));
    }
}
