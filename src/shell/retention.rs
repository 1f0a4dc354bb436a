//! Retention and legal hold: `caseclerk retention [--dry-run]`, its daily run in the daemon, and
//! `caseclerk hold` / `caseclerk release`.
//!
//! Owns gathering what the retention rules need (ids, states, dates, sizes, each case's status,
//! last closure and hold — never the content), streaming it one record at a time into
//! [`crate::core::retention::Plan`], erasing what it names, recording every erasure, and giving
//! the freed pages back:
//! - a case's content erased is recorded as a `content_erased` event on the case (class, count,
//!   bytes, rule), through the one event-append function ([`crate::shell::store::record_event`]);
//!   content on no case, as a row of the append-only `erasures` table. Neither holds the content.
//!   Events are never updated or deleted.
//! - the erasure is real: every connection runs with `secure_delete` (freed space is zeroed), the
//!   database uses incremental auto-vacuum and, after an erasure, [`Store::reclaim`] gives the
//!   free pages back to the file system and empties the WAL (`wal_checkpoint(TRUNCATE)`), so no
//!   page image of the content is left in `caseclerk.db` or `caseclerk.db-wal`.
//!
//! A legal hold is two events (`hold_placed`, `hold_released`) with the reason and who; the case's
//! fold carries it ([`crate::core::case::CaseState::hold`]), so `case`, the tracker and the digest
//! show it, and the rules keep everything of a held case.
//!
//! Web sign-in records (`web_signins`, with the address of each attempt) older than
//! `[retention] signin_days` are deleted by the same run and recorded as one erasure (rule
//! `signin_expired`, class `web_signin`), and the sessions over as long ago with them (class
//! `web_session`).
//!
//! Must not: decide what goes (that is [`crate::core::retention`]); update or delete events; log
//! or print names, subjects, addresses or content (ids, references, counts and bytes only).

use crate::core::calendar::london_date;
use crate::core::case::Event;
use crate::core::records::CaseStatus;
use crate::core::retention::{self, CaseFacts, Class, Group, Record, Schedule, What};
use crate::shell::store::{self, Content, Reclaimed, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Who erasures are recorded as.
pub const ACTOR: &str = "caseclerk:retention";

/// The `meta` key holding the London date retention last ran on (the daemon's once a day).
const LAST_RUN: &str = "retention_last_day";

/// The `meta` key set to `yes` while an erasure's WAL could not be emptied (a reader was busy).
const RECLAIM_PENDING: &str = "retention_reclaim_pending";

/// Why a hold or release was refused.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("there is no case {0} (see `caseclerk cases`)")]
    NoCase(String),
    #[error("give a reason (--reason): a legal hold records why (an inquest, a trial, a request)")]
    NoReason,
    #[error(
        "case {reference} is already under legal hold (placed {since} by {by}: {reason}); nothing to do"
    )]
    AlreadyHeld {
        reference: String,
        since: String,
        by: String,
        reason: String,
    },
    #[error("case {0} is not under legal hold; nothing to release")]
    NotHeld(String),
    #[error("case {reference} cannot be read: {error}")]
    Case { reference: String, error: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one run erased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The groups erased, with the ids and bytes actually erased.
    pub groups: Vec<Group>,
    /// Web sign-in records erased (older than `[retention] signin_days`).
    pub signins: i64,
    /// Particulars erased on their own: typed in after the case's mail had gone.
    pub particulars: i64,
    pub reclaimed: Reclaimed,
}

/// The rule and class web sign-in records are erased under (recorded in `erasures`).
pub const SIGNIN_RULE: &str = "signin_expired";
pub const SIGNIN_CLASS: &str = "web_signin";
pub const SESSION_CLASS: &str = "web_session";
pub const READ_CLASS: &str = "web_read";

/// Erase the web sign-in records older than the schedule keeps, and the sessions over as long
/// ago and the reads made then, each recorded as one erasure: how many sign-in records, and how
/// many sessions and reads.
async fn erase_signins(
    store: &Store,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<(i64, i64), StoreError> {
    let mut tx = store.begin().await?;
    let before = schedule.signins_before(now);
    let (count, bytes) = Store::erase_signins_before(&mut tx, before).await?;
    if count > 0 {
        Store::record_erasure(&mut tx, now, SIGNIN_RULE, SIGNIN_CLASS, count, bytes).await?;
    }
    // Sessions over as long ago go with them (a token's hash, a form token, three times), and
    // the record of what was read in them.
    let sessions = Store::erase_sessions_before(&mut tx, before).await?;
    if sessions > 0 {
        Store::record_erasure(&mut tx, now, SIGNIN_RULE, SESSION_CLASS, sessions, 0).await?;
    }
    let reads = Store::erase_reads_before(&mut tx, before).await?;
    if reads > 0 {
        Store::record_erasure(&mut tx, now, SIGNIN_RULE, READ_CLASS, reads, 0).await?;
    }
    Store::commit(tx).await?;
    if count > 0 {
        tracing::info!(
            rule = SIGNIN_RULE,
            count,
            bytes,
            "retention erased web sign-in records"
        );
    }
    Ok((count, sessions + reads))
}

impl Applied {
    pub fn count(&self) -> usize {
        self.groups.iter().map(|g| g.ids.len()).sum()
    }
}

/// Each case's status, last closure and hold, folded from its status and hold events.
async fn case_facts(store: &Store) -> Result<BTreeMap<i64, CaseFacts>, StoreError> {
    let mut facts: BTreeMap<i64, CaseFacts> = store
        .cases()
        .await?
        .into_iter()
        .map(|c| {
            let f = CaseFacts {
                id: c.id,
                status: c.status,
                closed_at: None,
                held: false,
            };
            (c.id, f)
        })
        .collect();
    for (case_id, row) in store.retention_events().await? {
        let Some(f) = facts.get_mut(&case_id) else {
            continue;
        };
        let event: Event = row
            .event()
            .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", row.id)))?;
        match event {
            Event::StatusChanged { status, .. } => {
                f.closed_at = (status == CaseStatus::Closed).then_some(row.at)
            }
            Event::HoldPlaced { .. } => f.held = true,
            Event::HoldReleased { .. } => f.held = false,
            _ => {}
        }
    }
    Ok(facts)
}

/// What retention would erase at `now`: every record that still holds content, summarised for
/// the rules and streamed through the plan one at a time.
pub async fn plan(
    store: &Store,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Vec<Group>, StoreError> {
    plan_with(store, schedule, now, &case_facts(store).await?).await
}

/// [`plan`] with the cases' facts already read.
async fn plan_with(
    store: &Store,
    schedule: &Schedule,
    now: DateTime<Utc>,
    facts: &BTreeMap<i64, CaseFacts>,
) -> Result<Vec<Group>, StoreError> {
    let case = |id: Option<i64>| id.and_then(|id| facts.get(&id).copied());
    let mut plan = retention::Plan::default();
    store
        .each_content(|kind, row| {
            let what = match kind {
                Content::Message => What::Message { state: row.state },
                // Settled: no longer waiting to be sent, and, if it was sent and caseclerk files
                // its copy, filed in the sent folder (the filing reads these bytes). A letter
                // refused or imported was never sent.
                Content::Letter => What::Letter {
                    settled: row.state != "pending" && (row.filed || !schedule.sent_letters_filed),
                },
            };
            let record = Record {
                id: row.id,
                what,
                case: case(row.case_id),
                at: row.at,
                bytes: row.bytes,
            };
            plan.add(schedule, now, &record);
        })
        .await?;
    Ok(plan.groups())
}

/// Erase the particulars still held on cases whose mail is due to go (see
/// [`retention::particulars_due`]), each recorded on its case under the mail's rule.
async fn leftover_particulars(
    store: &Store,
    schedule: &Schedule,
    now: DateTime<Utc>,
    facts: &BTreeMap<i64, CaseFacts>,
) -> Result<i64, StoreError> {
    let mut erased = 0;
    for id in store.cases_with_particulars().await? {
        let Some(case) = facts
            .get(&id)
            .filter(|c| retention::particulars_due(schedule, c, now))
        else {
            continue;
        };
        let mut tx = store.begin().await?;
        let (count, bytes) = Store::erase_particulars(&mut tx, case.id, now).await?;
        let event = Event::ContentErased {
            class: "particulars".into(),
            count,
            bytes,
            rule: "closed_case_mail".into(),
        };
        store::record_event(&mut tx, case.id, now, ACTOR, &event).await?;
        Store::commit(tx).await?;
        tracing::info!(case_id = case.id, count, "particulars erased");
        erased += count;
    }
    Ok(erased)
}

/// Erase what the schedule says goes at `now`, record each erasure, and give the space back.
pub async fn apply(
    store: &Store,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Applied, StoreError> {
    let mut applied = Applied::default();
    // Read once: erasing content changes no case's status or hold.
    let facts = case_facts(store).await?;
    for group in plan_with(store, schedule, now, &facts).await? {
        let mut tx = store.begin().await?;
        let mut erased = Group {
            ids: Vec::new(),
            bytes: 0,
            ..group.clone()
        };
        for id in &group.ids {
            let bytes = match group.class {
                Class::Letter => Store::erase_letter(&mut tx, *id, now).await?,
                _ => Store::erase_message(&mut tx, *id, now).await?,
            };
            if let Some(b) = bytes {
                erased.ids.push(*id);
                erased.bytes += b;
            }
        }
        if erased.ids.is_empty() {
            continue;
        }
        let count = erased.ids.len() as i64;
        match group.case {
            Some(case_id) => {
                let event = Event::ContentErased {
                    class: group.class.as_str().into(),
                    count,
                    bytes: erased.bytes,
                    rule: group.rule.into(),
                };
                store::record_event(&mut tx, case_id, now, ACTOR, &event).await?;
                // The particulars read from the referral are personal data from the case's
                // mail: they go with it, under the same rule.
                if group.class == Class::CaseMail {
                    let (n, bytes) = Store::erase_particulars(&mut tx, case_id, now).await?;
                    if n > 0 {
                        let event = Event::ContentErased {
                            class: "particulars".into(),
                            count: n,
                            bytes,
                            rule: group.rule.into(),
                        };
                        store::record_event(&mut tx, case_id, now, ACTOR, &event).await?;
                    }
                }
            }
            None => {
                Store::record_erasure(
                    &mut tx,
                    now,
                    group.rule,
                    group.class.as_str(),
                    count,
                    erased.bytes,
                )
                .await?;
            }
        }
        Store::commit(tx).await?;
        tracing::info!(
            rule = group.rule,
            class = group.class.as_str(),
            case_id = ?group.case,
            count,
            bytes = erased.bytes,
            "retention erased content"
        );
        applied.groups.push(erased);
    }
    applied.particulars = leftover_particulars(store, schedule, now, &facts).await?;
    let sessions_and_reads;
    (applied.signins, sessions_and_reads) = erase_signins(store, schedule, now).await?;
    // After any erasure — mail, particulars typed in later, sign-in records or sessions alone —
    // or when an earlier one could not empty the WAL: give the pages back and empty the WAL
    // (what was erased is still in both until then); if a reader is in the way, the next run
    // tries again.
    let pending = store.meta(RECLAIM_PENDING).await?.as_deref() == Some("yes");
    let erased = !applied.groups.is_empty() || applied.particulars > 0;
    if erased || applied.signins > 0 || sessions_and_reads > 0 || pending {
        applied.reclaimed = store.reclaim().await?;
        if applied.reclaimed.wal_busy {
            tracing::warn!(
                "after erasing, the WAL could not be emptied (a reader was busy); the next run tries again"
            );
        }
        let flag = if applied.reclaimed.wal_busy {
            "yes"
        } else {
            "no"
        };
        store.set_meta(RECLAIM_PENDING, flag).await?;
        // The flag's own write is in the WAL: empty it once more (nothing erased is in it).
        if !applied.reclaimed.wal_busy {
            store.reclaim().await?;
        }
    }
    Ok(applied)
}

/// The daemon's daily run: the first pass of each London day applies the schedule (a failure
/// is logged and tried again on the next pass, never stopping the pass's mail).
pub async fn daily(
    store: &Store,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Option<Applied>, StoreError> {
    let today = london_date(now).to_string();
    if store.meta(LAST_RUN).await?.as_deref() == Some(today.as_str()) {
        return Ok(None);
    }
    let applied = apply(store, schedule, now).await?;
    store.set_meta(LAST_RUN, &today).await?;
    Ok(Some(applied))
}

/// `caseclerk retention [--dry-run]`'s listing: grouped by rule, with counts and bytes; ids and
/// case references only.
pub fn listing(groups: &[Group], refs: &BTreeMap<i64, String>, done: bool) -> String {
    let count: usize = groups.iter().map(|g| g.ids.len()).sum();
    let bytes: i64 = groups.iter().map(|g| g.bytes).sum();
    let verb = if done { "erased" } else { "would be erased" };
    let mut out = format!("retention: {count} record(s), {bytes} bytes {verb}\n");
    let mut rule = "";
    for g in groups {
        if g.rule != rule {
            rule = g.rule;
            let n: usize = groups
                .iter()
                .filter(|x| x.rule == rule)
                .map(|x| x.ids.len())
                .sum();
            out.push_str(&format!("\n{rule} ({n}): {}\n", g.reason));
        }
        let whose = match g.case {
            Some(id) => refs
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("case {id}")),
            None => "no case".into(),
        };
        let table = if g.class == Class::Letter {
            "letters"
        } else {
            "messages"
        };
        let ids: Vec<String> = g.ids.iter().map(i64::to_string).collect();
        out.push_str(&format!(
            "  {whose}: {} × {}, {} bytes: {table} {}\n",
            g.ids.len(),
            g.class.as_str(),
            g.bytes,
            ids.join(", ")
        ));
    }
    out
}

/// Case references by id (for [`listing`]).
pub async fn references(store: &Store) -> Result<BTreeMap<i64, String>, StoreError> {
    Ok(store
        .cases()
        .await?
        .into_iter()
        .map(|c| (c.id, c.reference))
        .collect())
}

/// `caseclerk hold <case> --reason …` (`place`) or `caseclerk release <case> --reason …`.
pub async fn set_hold(
    store: &Store,
    reference: &str,
    place: bool,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), HoldError> {
    if reason.trim().is_empty() {
        return Err(HoldError::NoReason);
    }
    let case = store
        .case_by_ref(reference)
        .await?
        .ok_or_else(|| HoldError::NoCase(reference.to_string()))?;
    let state = crate::core::case::fold_rows(&store.events(case.id).await?).map_err(|e| {
        HoldError::Case {
            reference: reference.to_string(),
            error: e.to_string(),
        }
    })?;
    let event = match (place, &state.hold) {
        (true, Some(h)) => {
            return Err(HoldError::AlreadyHeld {
                reference: reference.to_string(),
                since: crate::core::calendar::short_instant(h.since),
                by: h.by.clone(),
                reason: h.reason.clone(),
            });
        }
        (false, None) => return Err(HoldError::NotHeld(reference.to_string())),
        (true, None) => Event::HoldPlaced {
            reason: reason.to_string(),
        },
        (false, Some(_)) => Event::HoldReleased {
            reason: reason.to_string(),
        },
    };
    let mut tx = store.begin().await?;
    store::record_event(&mut tx, case.id, now, actor, &event).await?;
    Store::commit(tx).await?;
    tracing::info!(case = %reference, kind = event.kind(), "legal hold changed");
    Ok(())
}
