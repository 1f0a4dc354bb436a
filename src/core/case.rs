//! A case: its events, folded into its state.
//!
//! Owns the vocabulary of what can happen on a case ([`Event`]) and the pure fold from an ordered
//! list of events to a [`CaseState`] that the timeline plans from, including the one reading of
//! events as the store hands them over ([`fold_rows`]). Every change to a case — a
//! message filed, a letter decided or sent, an agency added, a decision taken, an operator's
//! correction — is an event with who did it and when, so the history explains the state.
//!
//! Must not: read the store, the clock or the mail; decide what is due (that is
//! [`crate::core::timeline`]).

use crate::core::records::{CaseStatus, EventRow};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Something that happened on a case. Stored as JSON in `events.data`, with `kind` as the tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A referral opened the case.
    Opened {
        reference: String,
        process: String,
        area: Option<String>,
        /// Who sent the referral (Reply-To, else From): acknowledgements and outcomes go here.
        referrer: Option<String>,
        received_at: DateTime<Utc>,
        day0: NaiveDate,
        /// How day 0 was reached ("Tue 22 Dec 2026 (no days skipped)").
        day0_explained: String,
        /// The stored message that opened the case.
        message: i64,
        /// Its Message-ID, if it had one (letters thread with it).
        message_id: Option<String>,
        /// Its References, so our letters extend the same thread.
        references: Vec<String>,
    },
    /// A message from the mailbox was filed on the case.
    MessageFiled {
        message: i64,
        rule: String,
        verdict: String,
        agency: Option<String>,
    },
    /// A letter was decided and queued.
    LetterQueued {
        step: String,
        recipient: String,
        outbox: i64,
        due_at: DateTime<Utc>,
        /// Minutes between when it was due and when it was decided (a late start, or downtime).
        late_minutes: i64,
        /// Stored as imported — not sent: it fell due long before caseclerk's first run, when
        /// people did its work by hand.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        imported: bool,
    },
    /// A letter left for the recipient's server.
    LetterSent {
        step: String,
        recipient: String,
        outbox: i64,
        /// Recorded after a crash from the server's own copy in the sent folder (the daemon died
        /// before it heard the `250`): the letter was not sent again. Absent (false) otherwise.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        confirmed_by_copy: bool,
    },
    /// A letter could not be delivered (rejected, or bounced later).
    LetterUndelivered {
        step: String,
        recipient: String,
        outbox: i64,
        reason: String,
    },
    /// A letter is delayed: the recipient's server has not delivered it yet and is still trying
    /// (a 4.x.x / `Action: delayed` report). Noted and shown, never raised as undelivered.
    LetterDelayed {
        step: String,
        recipient: String,
        outbox: i64,
        reason: String,
    },
    /// An automatic reply (out of office) came back from someone on the case.
    AutoReplyNoted {
        message: i64,
        agency: Option<String>,
    },
    /// An agency was added to the case.
    AgencyAdded { agency: String, source: String },
    /// An agency was removed from the case.
    AgencyRemoved { agency: String, reason: String },
    /// An agency's return arrived (a completed template, or a nil return).
    ReturnReceived {
        agency: String,
        message: i64,
        nil: bool,
        late: bool,
        /// It says it replaces the agency's earlier return ("please disregard…, corrected
        /// version attached"): the one it sent last leaves the collation pack. Otherwise a second
        /// full return (a chronology after the summary) goes in beside the first.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replaces: bool,
    },
    /// A person took one of an agency's returns out of the collation pack (the wrong child's, or
    /// one a later correction replaces): the message stays filed on the case.
    ReturnWithdrawn {
        agency: String,
        message: i64,
        reason: String,
    },
    /// A decision was taken (screening, sign-off, …) with its outcome.
    DecisionTaken {
        decision: String,
        outcome: String,
        how: String,
    },
    /// A vote by reply passed every check and counts.
    VoteAccepted {
        decision: String,
        voter: String,
        outcome: String,
        message: i64,
        /// How it was authenticated ("token; DMARC pass") — the evidence.
        evidence: String,
    },
    /// A reply that looked like a vote was held for the business unit, never applied.
    VoteHeld {
        decision: Option<String>,
        voter: String,
        message: i64,
        reason: String,
    },
    /// A voter's counted vote no longer counts: their later reply about the same decision (in
    /// `message`, code and authentication passed) was not clear — "sorry, I meant…" — so they are
    /// asked again, and their next clear vote, or a person confirming the reply, counts instead.
    VoteSetAside {
        decision: String,
        voter: String,
        message: i64,
    },
    /// A held reply was confirmed by a person and counts as a vote.
    HeldConfirmed {
        message: i64,
        decision: String,
        voter: String,
        outcome: String,
    },
    /// A person read a held reply and dismissed it: it counts as no vote (a reply confirming
    /// would be refused for — too late, overtaken by the member's later answer, from before a
    /// reopening — or one that is no vote at all), and it is off the Held list.
    HeldDismissed { message: i64 },
    /// A decision was opened again (the referrer answered a query): earlier votes no longer count.
    DecisionReopened { decision: String, reason: String },
    /// The planned publication date of the LCSPR report.
    PublicationPlanned { date: NaiveDate, reason: String },
    /// A step, a return deadline, a decision's due date or a deadline was moved by a person
    /// (`what`: `step:<id>`, `return_by:<step id>`, `decision:<id>`, `deadline:<id>`).
    Rescheduled {
        what: String,
        at: DateTime<Utc>,
        reason: String,
    },
    /// A letter was sent again (to the same or another address) by a person.
    LetterResent {
        outbox: i64,
        resent_as: i64,
        to: String,
        reason: String,
    },
    /// The meeting was (re)scheduled to a day and time.
    MeetingScheduled { at: DateTime<Utc>, reason: String },
    /// The meeting was called off (attendees who had the invitation are sent a cancellation).
    MeetingCancelled { reason: String },
    /// The case was closed or reopened.
    StatusChanged { status: CaseStatus, reason: String },
    /// A note for the history.
    Note { text: String },
    /// A person named the case's reviewer (who leads the rapid review or LCSPR report), shown on
    /// the tracker; a later one replaces it (`caseclerk set-reviewer`).
    ReviewerSet { reviewer: String, reason: String },
    /// A legal hold was placed by a person (an inquest, a trial, a subject access request): no
    /// retention rule erases anything of the case until it is released ([`crate::core::retention`]).
    HoldPlaced { reason: String },
    /// The legal hold was released: the retention schedule applies again.
    HoldReleased { reason: String },
    /// Retention erased content of the case: what class, how many, how many bytes, under which
    /// rule ([`crate::core::retention`]). Never the content itself.
    ContentErased {
        class: String,
        count: i64,
        bytes: i64,
        rule: String,
    },
    /// Particulars were read from the referral (stored message `message`): which fields, and how
    /// many attachments could not be read. Never the values (they are in the `particulars`
    /// table, erased with the case's mail; [`crate::core::particulars`]).
    ParticularsRead {
        message: i64,
        fields: Vec<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        unreadable: usize,
    },
    /// A person confirmed a particular as read, or corrected it (never the value).
    ParticularChecked {
        field: String,
        corrected: bool,
        reason: String,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Event {
    /// The tag stored in `events.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Opened { .. } => "opened",
            Event::MessageFiled { .. } => "message_filed",
            Event::LetterQueued { .. } => "letter_queued",
            Event::LetterSent { .. } => "letter_sent",
            Event::LetterUndelivered { .. } => "letter_undelivered",
            Event::LetterDelayed { .. } => "letter_delayed",
            Event::AutoReplyNoted { .. } => "auto_reply_noted",
            Event::AgencyAdded { .. } => "agency_added",
            Event::AgencyRemoved { .. } => "agency_removed",
            Event::ReturnReceived { .. } => "return_received",
            Event::ReturnWithdrawn { .. } => "return_withdrawn",
            Event::DecisionTaken { .. } => "decision_taken",
            Event::VoteAccepted { .. } => "vote_accepted",
            Event::VoteHeld { .. } => "vote_held",
            Event::VoteSetAside { .. } => "vote_set_aside",
            Event::HeldConfirmed { .. } => "held_confirmed",
            Event::HeldDismissed { .. } => "held_dismissed",
            Event::DecisionReopened { .. } => "decision_reopened",
            Event::PublicationPlanned { .. } => "publication_planned",
            Event::Rescheduled { .. } => "rescheduled",
            Event::LetterResent { .. } => "letter_resent",
            Event::MeetingScheduled { .. } => "meeting_scheduled",
            Event::MeetingCancelled { .. } => "meeting_cancelled",
            Event::StatusChanged { .. } => "status_changed",
            Event::Note { .. } => "note",
            Event::ReviewerSet { .. } => "reviewer_set",
            Event::HoldPlaced { .. } => "hold_placed",
            Event::HoldReleased { .. } => "hold_released",
            Event::ContentErased { .. } => "content_erased",
            Event::ParticularsRead { .. } => "particulars_read",
            Event::ParticularChecked { .. } => "particular_checked",
        }
    }
}

fn london(t: DateTime<Utc>) -> String {
    crate::core::calendar::short_instant(t)
}

impl Event {
    /// One line for the case history (ids and keys only; no message content).
    pub fn describe(&self) -> String {
        match self {
            Event::Opened {
                reference, day0, ..
            } => format!(
                "opened {reference}, day 0 {}",
                crate::core::calendar::short_date(*day0)
            ),
            Event::MessageFiled {
                message,
                rule,
                verdict,
                agency,
            } => format!(
                "message {message} filed ({rule}{}{})",
                if verdict.is_empty() {
                    String::new()
                } else {
                    format!(", {verdict}")
                },
                agency
                    .as_ref()
                    .map(|a| format!(", from {a}"))
                    .unwrap_or_default()
            ),
            Event::LetterQueued {
                step,
                recipient,
                outbox,
                late_minutes,
                ..
            } => format!(
                "letter {outbox} decided: {step} to {recipient}{}",
                if *late_minutes > 60 {
                    format!(" ({late_minutes} minutes late)")
                } else {
                    String::new()
                }
            ),
            Event::LetterSent {
                step,
                recipient,
                outbox,
                confirmed_by_copy,
            } => format!(
                "letter {outbox} sent: {step} to {recipient}{}",
                if *confirmed_by_copy {
                    " (confirmed after a restart by the server's copy in the sent folder; not sent again)"
                } else {
                    ""
                }
            ),
            Event::LetterUndelivered {
                step,
                recipient,
                outbox,
                reason,
            } => {
                format!("letter {outbox} UNDELIVERED: {step} to {recipient}: {reason}")
            }
            Event::LetterDelayed {
                step,
                recipient,
                outbox,
                reason,
            } => format!("letter {outbox} delayed, still trying: {step} to {recipient}: {reason}"),
            Event::AutoReplyNoted { message, agency } => format!(
                "automatic reply (message {message}){}",
                agency
                    .as_ref()
                    .map(|a| format!(" from {a}"))
                    .unwrap_or_default()
            ),
            Event::AgencyAdded { agency, source } => format!("agency {agency} added ({source})"),
            Event::AgencyRemoved { agency, reason } => {
                format!("agency {agency} removed ({reason})")
            }
            Event::ReturnReceived {
                agency,
                message,
                nil,
                late,
                replaces,
            } => format!(
                "{} from {agency} (message {message}){}{}",
                if *nil { "nil return" } else { "return" },
                if *late { ", LATE" } else { "" },
                if *replaces {
                    ", replacing its earlier return"
                } else {
                    ""
                }
            ),
            Event::ReturnWithdrawn {
                agency,
                message,
                reason,
            } => {
                format!("return from {agency} (message {message}) taken out of the pack ({reason})")
            }
            Event::DecisionTaken {
                decision,
                outcome,
                how,
            } => format!("decision {decision}: {outcome} ({how})"),
            Event::VoteAccepted { .. }
            | Event::VoteHeld { .. }
            | Event::VoteSetAside { .. }
            | Event::HeldConfirmed { .. } => self.describe_vote(),
            Event::HeldDismissed { message } => {
                format!("held reply (message {message}) dismissed: it counts as no vote")
            }
            Event::DecisionReopened { decision, reason } => {
                format!("decision {decision} reopened ({reason})")
            }
            Event::Rescheduled { what, at, reason } => {
                format!("{what} moved to {} ({reason})", london(*at))
            }
            Event::LetterResent {
                outbox,
                resent_as,
                to,
                reason,
            } => format!("letter {outbox} sent again as letter {resent_as} to {to} ({reason})"),
            Event::MeetingScheduled { at, reason } => {
                format!("meeting set for {} ({reason})", london(*at))
            }
            Event::MeetingCancelled { reason } => format!("meeting cancelled ({reason})"),
            Event::PublicationPlanned { .. }
            | Event::StatusChanged { .. }
            | Event::Note { .. }
            | Event::ReviewerSet { .. } => self.describe_fact(),
            Event::HoldPlaced { .. } | Event::HoldReleased { .. } | Event::ContentErased { .. } => {
                self.describe_retention()
            }
            Event::ParticularsRead { .. } | Event::ParticularChecked { .. } => {
                self.describe_particulars()
            }
        }
    }
}

impl Event {
    /// [`Event::describe`] for a vote by reply: accepted, held, set aside, confirmed by hand.
    fn describe_vote(&self) -> String {
        match self {
            Event::VoteAccepted {
                decision,
                voter,
                outcome,
                message,
                evidence,
            } => format!(
                "vote on {decision} from {voter}: {outcome} (message {message}; {evidence})"
            ),
            Event::VoteHeld {
                decision,
                voter,
                message,
                reason,
            } => format!(
                "reply from {voter} HELD{} (message {message}): {reason}",
                decision
                    .as_ref()
                    .map(|d| format!(" on {d}"))
                    .unwrap_or_default()
            ),
            Event::VoteSetAside {
                decision,
                voter,
                message,
            } => format!(
                "{voter}'s vote on {decision} set aside: their later reply (message {message}) is \
                 not clear; they are asked again"
            ),
            Event::HeldConfirmed {
                message,
                decision,
                voter,
                outcome,
            } => {
                format!("held reply {message} confirmed as {voter}'s vote on {decision}: {outcome}")
            }
            _ => String::new(),
        }
    }

    /// [`Event::describe`] for the facts a person records about the case: its publication date,
    /// its status, a note, its reviewer.
    fn describe_fact(&self) -> String {
        match self {
            Event::PublicationPlanned { date, reason } => format!(
                "publication planned for {} ({reason})",
                crate::core::calendar::short_date(*date)
            ),
            Event::StatusChanged { status, reason } => format!("status {status} ({reason})"),
            Event::Note { text } => format!("note: {text}"),
            Event::ReviewerSet { reviewer, reason } => format!("reviewer: {reviewer} ({reason})"),
            _ => String::new(),
        }
    }

    /// [`Event::describe`] for the legal hold and retention events.
    fn describe_retention(&self) -> String {
        match self {
            Event::HoldPlaced { reason } => format!("LEGAL HOLD placed ({reason})"),
            Event::HoldReleased { reason } => format!("legal hold released ({reason})"),
            Event::ContentErased {
                class,
                count,
                bytes,
                rule,
            } => format!("retention erased {count} {class} ({bytes} bytes) under rule {rule}"),
            _ => self.describe_particulars(),
        }
    }

    /// [`Event::describe`] for the particulars' events (fields, never values).
    fn describe_particulars(&self) -> String {
        match self {
            Event::ParticularsRead {
                message,
                fields,
                unreadable,
            } => format!(
                "particulars read from the referral (message {message}): {}{} - check them (caseclerk particulars)",
                if fields.is_empty() {
                    "none found".to_string()
                } else {
                    fields.join(", ")
                },
                match unreadable {
                    0 => String::new(),
                    n => format!("; {n} attachment(s) could not be read"),
                }
            ),
            Event::ParticularChecked {
                field,
                corrected,
                reason,
            } => format!(
                "particular {field} {} ({reason})",
                if *corrected { "corrected" } else { "confirmed" }
            ),
            _ => String::new(),
        }
    }
}

/// A legal hold placed or released ([`apply`]).
fn apply_hold(s: &mut CaseState, r: &Recorded) {
    s.hold = match &r.event {
        Event::HoldPlaced { reason } => Some(Hold {
            reason: reason.clone(),
            since: r.at,
            by: r.actor.clone(),
        }),
        _ => None,
    };
}

/// An event with when it happened and who did it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub event: Event,
}

/// What we know of one letter on the case.
#[derive(Debug, Clone, PartialEq)]
pub struct LetterState {
    pub outbox: i64,
    pub due_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub undelivered: Option<String>,
    /// Imported — not sent (see [`Event::LetterQueued`]).
    pub imported: bool,
}

/// One counted vote.
#[derive(Debug, Clone, PartialEq)]
pub struct Vote {
    pub outcome: String,
    pub at: DateTime<Utc>,
    pub message: i64,
}

/// A reply held for the business unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub decision: Option<String>,
    pub voter: String,
    pub message: i64,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// A person confirmed it (it then counts as a vote).
    pub confirmed: bool,
    /// A person dismissed it (it counts as no vote, and waits for nobody).
    pub dismissed: bool,
}

impl Held {
    /// Still waiting for a person: neither confirmed nor dismissed.
    pub fn waiting(&self) -> bool {
        !self.confirmed && !self.dismissed
    }
}

/// What we know of one agency on the case.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgencyState {
    pub added_at: Option<DateTime<Utc>>,
    pub removed: bool,
    pub returned_at: Option<DateTime<Utc>>,
    /// The stored message of the (latest full) return.
    pub return_message: Option<i64>,
    /// Every full return's stored message, oldest first: an agency may send its chronology and
    /// its summary apart, and the collation pack carries both.
    pub returns: Vec<i64>,
    pub nil: bool,
    pub late: bool,
    pub out_of_office_at: Option<DateTime<Utc>>,
}

impl AgencyState {
    /// Return `message` taken out of the collation pack. Its only return taken out (the wrong
    /// child's): the agency has not returned, so it is chased and named missing again until its
    /// own comes.
    fn withdraw(&mut self, message: i64) {
        self.returns.retain(|m| *m != message);
        self.return_message = self.returns.last().copied();
        if self.returns.is_empty() && !self.nil {
            self.returned_at = None;
            self.late = false;
        }
    }
}

/// A case, as its events leave it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseState {
    pub reference: String,
    pub process: String,
    pub area: Option<String>,
    pub referrer: Option<String>,
    pub received_at: DateTime<Utc>,
    pub day0: NaiveDate,
    pub referral_message: i64,
    pub referral_message_id: Option<String>,
    pub referral_references: Vec<String>,
    pub status: CaseStatus,
    /// Letters by (step, recipient address).
    pub letters: BTreeMap<(String, String), LetterState>,
    pub agencies: BTreeMap<String, AgencyState>,
    /// Decisions by id: (outcome, when taken).
    pub decisions: BTreeMap<String, (String, DateTime<Utc>)>,
    pub meeting_at: Option<DateTime<Utc>>,
    pub messages: Vec<i64>,
    /// Votes in the current round, by decision then voter address.
    pub votes: BTreeMap<String, BTreeMap<String, Vote>>,
    /// How many times each decision was reopened (0: never).
    pub rounds: BTreeMap<String, u32>,
    /// When each reopened decision was last reopened.
    pub reopened_at: BTreeMap<String, DateTime<Utc>>,
    /// Replies held for the business unit.
    pub held: Vec<Held>,
    pub publication: Option<NaiveDate>,
    /// Instants moved by a person, by what they move (`step:<id>`, `return_by:<id>`, …).
    pub overrides: BTreeMap<String, DateTime<Utc>>,
    /// Letters reported delayed (still being tried), by outbox id: when the last report came.
    pub delayed: BTreeMap<i64, DateTime<Utc>>,
    /// Each time a person moved or cancelled the meeting, in order: when it was recorded,
    /// whether it was a cancellation, and why.
    pub meeting_changes: Vec<(DateTime<Utc>, bool, String)>,
    /// When the case was last closed (`None` while it is open).
    pub closed_at: Option<DateTime<Utc>>,
    /// The legal hold on the case, if one is in place: nothing of it is erased.
    pub hold: Option<Hold>,
    /// Who leads the review, as a person last named them (`caseclerk set-reviewer`).
    pub reviewer: Option<String>,
}

/// A legal hold in place: why, since when and who placed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub reason: String,
    pub since: DateTime<Utc>,
    pub by: String,
}

impl CaseState {
    /// A case as its referral leaves it, before anything else has happened: the state every
    /// history starts from (and the planned schedule's imagined case).
    pub fn new(
        reference: &str,
        process: &str,
        area: Option<String>,
        referrer: Option<String>,
        received_at: DateTime<Utc>,
        day0: NaiveDate,
        referral_message: i64,
    ) -> CaseState {
        CaseState {
            reference: reference.to_string(),
            process: process.to_string(),
            area,
            referrer,
            received_at,
            day0,
            referral_message,
            referral_message_id: None,
            referral_references: Vec::new(),
            status: CaseStatus::Open,
            letters: BTreeMap::new(),
            agencies: BTreeMap::new(),
            decisions: BTreeMap::new(),
            meeting_at: None,
            messages: vec![referral_message],
            votes: BTreeMap::new(),
            rounds: BTreeMap::new(),
            reopened_at: BTreeMap::new(),
            held: Vec::new(),
            publication: None,
            overrides: BTreeMap::new(),
            delayed: BTreeMap::new(),
            closed_at: None,
            hold: None,
            meeting_changes: Vec::new(),
            reviewer: None,
        }
    }

    /// Has the letter for `step` to `recipient` been decided?
    pub fn has_letter(&self, step: &str, recipient: &str) -> bool {
        self.letters
            .contains_key(&(step.to_string(), recipient.to_string()))
    }

    /// Agencies currently on the case, in id order.
    pub fn active_agencies(&self) -> impl Iterator<Item = (&String, &AgencyState)> {
        self.agencies.iter().filter(|(_, a)| !a.removed)
    }
}

/// The fold failed: the history does not start with `Opened`.
#[derive(Debug, thiserror::Error)]
#[error("case history is invalid: {0}")]
pub struct CaseError(pub String);

/// Fold a case's events as stored (JSON in `events.data`), oldest first, into its state: the one
/// reading of a stored history, for the engine, the views, the report and the operator commands.
/// An event that cannot be read is an error naming its id, never skipped.
pub fn fold_rows(rows: &[EventRow]) -> Result<CaseState, CaseError> {
    fold(&read_rows(rows)?)
}

/// A case's events as stored, read back (for a history that lists them as well as folding them).
/// An event that cannot be read is an error naming its id, never skipped.
pub fn read_rows(rows: &[EventRow]) -> Result<Vec<Recorded>, CaseError> {
    rows.iter()
        .map(|e| {
            e.event()
                .map(|event| Recorded {
                    at: e.at,
                    actor: e.actor.clone(),
                    event,
                })
                .map_err(|err| CaseError(format!("event {} cannot be read: {err}", e.id)))
        })
        .collect()
}

impl EventRow {
    /// The stored event, read from its JSON (see [`EventRow::data`]).
    pub fn event(&self) -> Result<Event, serde_json::Error> {
        serde_json::from_str(&self.data)
    }
}

/// Fold a case's events, oldest first, into its state.
pub fn fold(events: &[Recorded]) -> Result<CaseState, CaseError> {
    let Some(first) = events.first() else {
        return Err(CaseError("no events".into()));
    };
    let Event::Opened {
        reference,
        process,
        area,
        referrer,
        received_at,
        day0,
        message,
        message_id,
        references,
        ..
    } = &first.event
    else {
        return Err(CaseError(format!(
            "the first event is `{}`, not `opened`",
            first.event.kind()
        )));
    };
    let mut s = CaseState::new(
        reference,
        process,
        area.clone(),
        referrer.clone(),
        *received_at,
        *day0,
        *message,
    );
    s.referral_message_id = message_id.clone();
    s.referral_references = references.clone();
    for r in &events[1..] {
        apply(&mut s, r)?;
    }
    Ok(s)
}

/// [`apply`] for a vote by reply: counted, set aside, held.
fn apply_vote(s: &mut CaseState, r: &Recorded) {
    match &r.event {
        Event::VoteAccepted {
            decision,
            voter,
            outcome,
            message,
            ..
        }
        | Event::HeldConfirmed {
            decision,
            voter,
            outcome,
            message,
        } => {
            s.votes.entry(decision.clone()).or_default().insert(
                voter.clone(),
                Vote {
                    outcome: outcome.clone(),
                    at: r.at,
                    message: *message,
                },
            );
            if let Event::HeldConfirmed { message, .. } = &r.event {
                for h in s.held.iter_mut().filter(|h| h.message == *message) {
                    h.confirmed = true;
                }
            }
        }
        Event::VoteHeld {
            decision,
            voter,
            message,
            reason,
        } => s.held.push(Held {
            decision: decision.clone(),
            voter: voter.clone(),
            message: *message,
            reason: reason.clone(),
            at: r.at,
            confirmed: false,
            dismissed: false,
        }),
        Event::HeldDismissed { message } => {
            for h in s.held.iter_mut().filter(|h| h.message == *message) {
                h.dismissed = true;
            }
        }
        Event::VoteSetAside {
            decision, voter, ..
        } => {
            if let Some(votes) = s.votes.get_mut(decision) {
                votes.remove(voter);
            }
        }
        _ => {}
    }
}

/// Apply one recorded event to a case's state (what [`fold`] does for each).
pub fn apply(s: &mut CaseState, r: &Recorded) -> Result<(), CaseError> {
    match &r.event {
        Event::Opened { .. } => return Err(CaseError("a second `opened` event".into())),
        // Once: a message held in triage from a case (a return from an agency not on it) is
        // filed again when a person attaches it.
        Event::MessageFiled { message, .. } => {
            if !s.messages.contains(message) {
                s.messages.push(*message);
            }
        }
        Event::LetterQueued {
            step,
            recipient,
            outbox,
            due_at,
            imported,
            ..
        } => {
            s.letters.insert(
                (step.clone(), recipient.clone()),
                LetterState {
                    outbox: *outbox,
                    due_at: *due_at,
                    queued_at: r.at,
                    sent_at: None,
                    undelivered: None,
                    imported: *imported,
                },
            );
        }
        Event::LetterSent {
            step, recipient, ..
        } => {
            if let Some(l) = s.letters.get_mut(&(step.clone(), recipient.clone())) {
                l.sent_at = Some(r.at);
            }
        }
        Event::LetterUndelivered {
            step,
            recipient,
            reason,
            ..
        } => {
            if let Some(l) = s.letters.get_mut(&(step.clone(), recipient.clone())) {
                l.undelivered = Some(reason.clone());
            }
        }
        Event::LetterDelayed { outbox, .. } => {
            s.delayed.insert(*outbox, r.at);
        }
        Event::AutoReplyNoted { agency, .. } => {
            if let Some(a) = agency.as_ref().and_then(|a| s.agencies.get_mut(a)) {
                a.out_of_office_at = Some(r.at);
            }
        }
        Event::AgencyAdded { agency, .. } => {
            let a = s.agencies.entry(agency.clone()).or_default();
            a.removed = false;
            a.added_at.get_or_insert(r.at);
        }
        Event::AgencyRemoved { agency, .. } => {
            if let Some(a) = s.agencies.get_mut(agency) {
                a.removed = true;
            }
        }
        Event::ReturnReceived {
            agency,
            nil,
            late,
            message,
            replaces,
        } => {
            let a = s.agencies.entry(agency.clone()).or_default();
            if !*nil && *replaces {
                // It corrects what the agency sent last (the summary sent before a wrong
                // chronology stays).
                a.returns.pop();
                a.returns.push(*message);
            } else if !*nil && !a.returns.contains(message) {
                a.returns.push(*message);
            }
            if a.returned_at.is_none() {
                a.returned_at = Some(r.at);
                a.nil = *nil;
                a.late = *late;
                a.return_message = Some(*message);
            } else if !*nil {
                // A full return after a nil return replaces it (and is late if it came late);
                // after a full one (a chronology after the summary), it is the latest, and both
                // are kept in `returns`.
                if a.nil {
                    a.late = *late;
                }
                a.nil = false;
                a.return_message = Some(*message);
            }
        }
        Event::ReturnWithdrawn {
            agency, message, ..
        } => {
            if let Some(a) = s.agencies.get_mut(agency) {
                a.withdraw(*message);
            }
        }
        Event::DecisionTaken {
            decision, outcome, ..
        } => {
            s.decisions
                .insert(decision.clone(), (outcome.clone(), r.at));
        }
        Event::VoteAccepted { .. }
        | Event::HeldConfirmed { .. }
        | Event::VoteSetAside { .. }
        | Event::HeldDismissed { .. }
        | Event::VoteHeld { .. } => apply_vote(s, r),
        Event::DecisionReopened { decision, .. } => {
            s.decisions.remove(decision);
            s.votes.remove(decision);
            *s.rounds.entry(decision.clone()).or_default() += 1;
            s.reopened_at.insert(decision.clone(), r.at);
        }
        Event::PublicationPlanned { date, .. } => s.publication = Some(*date),
        Event::Rescheduled { what, at, .. } => {
            s.overrides.insert(what.clone(), *at);
        }
        Event::LetterResent { .. } => {}
        Event::MeetingScheduled { at, reason } => {
            s.meeting_at = Some(*at);
            s.meeting_changes.push((r.at, false, reason.clone()));
        }
        Event::MeetingCancelled { reason } => s.meeting_changes.push((r.at, true, reason.clone())),
        Event::StatusChanged { status, .. } => {
            s.status = *status;
            s.closed_at = (*status == CaseStatus::Closed).then_some(r.at);
        }
        Event::Note { .. }
        | Event::ContentErased { .. }
        | Event::ParticularsRead { .. }
        | Event::ParticularChecked { .. } => {}
        Event::ReviewerSet { reviewer, .. } => s.reviewer = Some(reviewer.clone()),
        Event::HoldPlaced { .. } | Event::HoldReleased { .. } => apply_hold(s, r),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rec(at: &str, event: Event) -> Recorded {
        Recorded {
            at: t(at),
            actor: "caseclerk".into(),
            event,
        }
    }

    fn opened() -> Recorded {
        rec(
            "2026-12-22T10:00:00Z",
            Event::Opened {
                reference: "RR-2026-0001".into(),
                process: "nelincs".into(),
                area: None,
                referrer: Some("ref@agency.test".into()),
                received_at: t("2026-12-22T09:58:00Z"),
                day0: NaiveDate::from_ymd_opt(2026, 12, 22).unwrap(),
                day0_explained: "Tue 22 Dec 2026 (no days skipped)".into(),
                message: 1,
                message_id: Some("ref@agency.test".into()),
                references: vec![],
            },
        )
    }

    #[test]
    fn a_history_must_start_with_the_referral() {
        assert!(fold(&[]).is_err());
        let note = rec("2026-12-22T10:00:00Z", Event::Note { text: "x".into() });
        assert!(
            fold(&[note])
                .unwrap_err()
                .to_string()
                .contains("not `opened`")
        );
    }

    #[test]
    fn a_withdrawn_return_leaves_the_pack_and_the_agency_s_others_stay() {
        let got = |message: i64| {
            rec(
                "2026-12-29T10:00:00Z",
                Event::ReturnReceived {
                    agency: "police".into(),
                    message,
                    nil: false,
                    late: false,
                    replaces: false,
                },
            )
        };
        let events = vec![
            opened(),
            got(5),
            got(6),
            got(7),
            rec(
                "2026-12-29T11:00:00Z",
                Event::ReturnWithdrawn {
                    agency: "police".into(),
                    message: 6,
                    reason: "another family's chronology".into(),
                },
            ),
        ];
        let s = fold(&events).unwrap();
        assert_eq!(s.agencies["police"].returns, [5, 7]);
        assert!(
            s.agencies["police"].returned_at.is_some(),
            "it has still returned"
        );
        assert_eq!(s.agencies["police"].return_message, Some(7));
        // Its only return taken out: not returned, so chased and named missing again.
        let withdrawn = |message| {
            rec(
                "2026-12-29T12:00:00Z",
                Event::ReturnWithdrawn {
                    agency: "police".into(),
                    message,
                    reason: "another child's".into(),
                },
            )
        };
        let only = vec![opened(), got(5), withdrawn(5)];
        let s = fold(&only).unwrap();
        assert!(s.agencies["police"].returns.is_empty());
        assert_eq!(s.agencies["police"].returned_at, None);
        assert_eq!(s.agencies["police"].return_message, None);
    }

    #[test]
    fn letters_agencies_returns_and_decisions_fold_into_state() {
        let events = vec![
            opened(),
            rec(
                "2026-12-22T10:00:01Z",
                Event::LetterQueued {
                    step: "acknowledge".into(),
                    recipient: "ref@agency.test".into(),
                    outbox: 1,
                    due_at: t("2026-12-22T09:58:00Z"),
                    late_minutes: 2,
                    imported: false,
                },
            ),
            rec(
                "2026-12-22T10:00:02Z",
                Event::LetterSent {
                    step: "acknowledge".into(),
                    recipient: "ref@agency.test".into(),
                    outbox: 1,
                    confirmed_by_copy: false,
                },
            ),
            rec(
                "2026-12-23T10:00:00Z",
                Event::AgencyAdded {
                    agency: "police".into(),
                    source: "screening reply".into(),
                },
            ),
            rec(
                "2026-12-29T10:00:00Z",
                Event::ReturnReceived {
                    agency: "police".into(),
                    message: 5,
                    nil: true,
                    late: false,
                    replaces: false,
                },
            ),
            rec(
                "2026-12-30T10:00:00Z",
                Event::ReturnReceived {
                    agency: "police".into(),
                    message: 6,
                    nil: false,
                    late: true,
                    replaces: false,
                },
            ),
            rec(
                "2026-12-23T12:00:00Z",
                Event::DecisionTaken {
                    decision: "screening".into(),
                    outcome: "meets".into(),
                    how: "votes".into(),
                },
            ),
        ];
        let s = fold(&events).unwrap();
        assert!(s.has_letter("acknowledge", "ref@agency.test"));
        let l = &s.letters[&("acknowledge".to_string(), "ref@agency.test".to_string())];
        assert_eq!(l.sent_at, Some(t("2026-12-22T10:00:02Z")));
        let police = &s.agencies["police"];
        assert_eq!(police.returned_at, Some(t("2026-12-29T10:00:00Z")));
        assert!(!police.nil, "a full return after a nil return replaces it");
        assert!(police.late, "and came after the deadline");
        assert_eq!(police.returns, [6]);
        assert_eq!(s.decisions["screening"].0, "meets");
    }

    #[test]
    fn events_round_trip_through_json_with_their_kind_tag() {
        let e = Event::AgencyAdded {
            agency: "police".into(),
            source: "operator".into(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], e.kind());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
    }

    fn row(id: i64, r: &Recorded) -> EventRow {
        EventRow {
            id,
            at: r.at,
            kind: r.event.kind().into(),
            actor: r.actor.clone(),
            data: serde_json::to_string(&r.event).unwrap(),
        }
    }

    #[test]
    fn stored_rows_fold_to_the_same_state_as_the_events_they_store() {
        let closed = rec(
            "2026-12-23T10:00:00Z",
            Event::StatusChanged {
                status: CaseStatus::Closed,
                reason: "no further action".into(),
            },
        );
        let events = [opened(), closed];
        let rows: Vec<EventRow> = events.iter().zip(1..).map(|(e, id)| row(id, e)).collect();
        assert!(
            rows[1].data.contains(r#""status":"closed""#),
            "stored as its word: {}",
            rows[1].data
        );
        let state = fold_rows(&rows).unwrap();
        assert_eq!(state, fold(&events).unwrap());
        assert_eq!(state.status, CaseStatus::Closed);
        assert_eq!(read_rows(&rows).unwrap(), events);
    }

    #[test]
    fn an_unreadable_stored_event_is_an_error_naming_it_not_skipped() {
        let mut rows = vec![row(1, &opened())];
        rows.push(EventRow {
            id: 7,
            at: rows[0].at,
            kind: "status_changed".into(),
            actor: "operator:jo".into(),
            data: r#"{"kind": "status_changed", "status": "archived", "reason": "x"}"#.into(),
        });
        let err = fold_rows(&rows).unwrap_err().to_string();
        assert!(err.contains("event 7 cannot be read"), "{err}");
        assert!(fold_rows(&[]).is_err());
    }
}
