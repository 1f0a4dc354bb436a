//! The timeline: process file + case state + now → the letters due and the next wake-up.
//!
//! Owns *deciding* what is due: resolving each step's anchor and offset to a London wall-clock
//! instant with an explanation ("day 7 = Tue 5 Jan 2027 (skipped …)"), checking the step's pathway
//! against the case's decisions, fanning a step out to its recipients (one letter per person, or
//! per agency), and the agency-round rules (who is chased, who is missing, who gets a receipt;
//! an agency asked late has as long to return as one asked on time, and what follows the returns
//! follows its date: `Ctx::agency_return_by`).
//! It also lays out the whole planned schedule for `caseclerk timeline`, and the updated
//! invitation or cancellation owed to every attendee when a person moves or cancels the meeting.
//!
//! Two calendars: every date is statutory time (England & Wales working days,
//! [`Calendar::statutory`]); the office's closure days only move when a step's letter goes
//! ([`Calendar::sending_day`]: the last open working day before), and the explanation says so.
//! A letter the process plans after the meeting never goes before the case's meeting has ended,
//! however the meeting or the letter moved (`Ctx::after_meeting`); the decision due after it
//! follows an adjourned meeting (`Ctx::after_adjourned`), and the papers a meeting moved earlier
//! (`Ctx::papers_pulled`).
//!
//! Planning is idempotent: it returns every letter that is due at `now` and not yet decided; the
//! engine queues them under a unique case/step/recipient key, so planning twice decides nothing
//! twice. A letter whose due instant passed while the daemon was down comes out here at once; the
//! engine records how late it is. Except a chaser meant as a reminder before an agency's return
//! day, once that day has gone too: it would ask for a return "by" a date past (the escalation,
//! or the collation, names who is missing).
//!
//! Must not: read the clock, the store or the mail; render or send anything.

pub mod periodic;

use crate::core::calendar::{self, Calendar, CalendarError};
use crate::core::case::CaseState;
use crate::core::directory::{Agency, Contact, Lookup};
use crate::core::process::{Anchor, Pathway, Process, Role, Roll, Step, StepKind, When};
use crate::core::records::CaseStatus;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Planning failed: a date could not be computed (usually beyond the holiday data).
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("{what}: {source}")]
    Calendar { what: String, source: CalendarError },
}

/// An instant a step resolves to, with how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub at: DateTime<Utc>,
    pub date: NaiveDate,
    /// The working-day number of `date` counted from day 0, when it is on or after day 0.
    pub day: Option<i32>,
    /// "day 7 = Tue 5 Jan 2027 (skipped …)" or "2 working days after the screening decision = …".
    pub explanation: String,
}

/// One person a letter goes to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recipient {
    pub name: String,
    pub email: String,
    pub role: String,
    pub phone: Option<String>,
}

/// A letter that is due and not yet decided.
#[derive(Debug, Clone, PartialEq)]
pub struct DueLetter {
    pub step: String,
    pub step_name: String,
    pub kind: StepKind,
    pub template: String,
    /// The outbox key's recipient part: an address, or `agency:<id>` for per-agency letters.
    pub key: String,
    pub to: Recipient,
    /// The others a shared letter is addressed to, after `to` (one message to everyone).
    pub also_to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub due: Resolved,
    pub attach: Vec<String>,
    /// The agency this letter is for (agency requests, chasers, receipts).
    pub agency: Option<String>,
    /// The return deadline (agency requests and chasers).
    pub return_by: Option<Resolved>,
    /// For collations and escalations: agencies that have not returned.
    pub missing: Vec<String>,
    /// For collations: agencies that made a nil return.
    pub nil_returns: Vec<String>,
    /// For collations: agencies whose return is attached, with the stored message ids.
    pub returns: Vec<(String, i64)>,
    /// For invites: the meeting.
    pub meeting: Option<Resolved>,
    /// For an invitation that changes one already sent: how (moved or cancelled) and its
    /// iCalendar SEQUENCE.
    pub meeting_change: Option<MeetingChange>,
    /// Free lines a notice carries (e.g. agency names that matched nothing).
    pub notes: Vec<String>,
    /// The decision whose vote code this letter carries in its subject (requests for a decision,
    /// the National Panel submission, a tie-break request).
    pub decision: Option<String>,
}

/// A change to a meeting whose invitation has gone: the updated invitation (same UID, the next
/// SEQUENCE) or the cancellation (`METHOD:CANCEL`) sent to each attendee who got the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingChange {
    /// 1 for the first change after the invitation, 2 for the next, …
    pub sequence: u32,
    pub cancelled: bool,
    /// Why, as the person who moved or cancelled it said.
    pub reason: String,
}

/// What the timeline decided at `now`.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub due: Vec<DueLetter>,
    /// The earliest future instant at which something will fall due.
    pub next_wake: Option<DateTime<Utc>>,
    /// Steps that cannot be sent because nobody is configured for a role, and similar.
    pub problems: Vec<String>,
}

/// Whether dates depend on what actually happened, or on what is expected to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Undecided decisions and unscheduled events are unknown: steps anchored on them wait.
    Actual,
    /// Decisions are taken on their due date (for the planned schedule).
    Planned,
}

enum Base {
    Instant(DateTime<Utc>),
    Date(NaiveDate),
}

struct Ctx<'a> {
    process: &'a Process,
    /// Statutory time: England & Wales working days (weekends and bank holidays only).
    law: Calendar,
    /// The office's calendar (the law's plus closure days): when letters go.
    office: &'a Calendar,
    state: &'a CaseState,
    mode: Mode,
    /// Agency requests decided in this planning pass and not yet on the case, by (step, letter
    /// key): they go now, so what follows them (a chaser, the pack) counts them as asked now.
    asking: std::cell::RefCell<BTreeMap<(String, String), DateTime<Utc>>>,
    /// The case as the planned schedule imagines it (day 0 and arrival only), made when first
    /// needed: what the process plans, as against what happened.
    planned: std::cell::OnceCell<CaseState>,
}

fn cal_err(what: &str) -> impl FnOnce(CalendarError) -> TimelineError + '_ {
    move |source| TimelineError::Calendar {
        what: what.to_string(),
        source,
    }
}

impl<'a> Ctx<'a> {
    fn new(
        process: &'a Process,
        office: &'a Calendar,
        state: &'a CaseState,
        mode: Mode,
    ) -> Ctx<'a> {
        Ctx {
            process,
            law: office.statutory(),
            office,
            state,
            mode,
            asking: std::cell::RefCell::default(),
            planned: std::cell::OnceCell::new(),
        }
    }

    /// The planned schedule for this case: its day 0, every decision taken on its due date, the
    /// meeting on its planned day (`caseclerk timeline`).
    fn planned(&self) -> Ctx<'_> {
        let s = self.state;
        let state = self.planned.get_or_init(|| {
            CaseState::new(
                &s.reference,
                &s.process,
                s.area.clone(),
                None,
                s.received_at,
                s.day0,
                s.referral_message,
            )
        });
        Ctx::new(self.process, self.office, state, Mode::Planned)
    }

    fn anchor(&self, a: &Anchor) -> Result<Option<Base>, TimelineError> {
        Ok(match a {
            Anchor::ReferralReceived => Some(Base::Instant(self.state.received_at)),
            Anchor::Referral => Some(Base::Date(self.state.day0)),
            Anchor::Decision(id) => match self.state.decisions.get(id) {
                Some((_, at)) => Some(Base::Instant(*at)),
                None if self.mode == Mode::Planned => match self.process.decision(id) {
                    Some(d) => self
                        .resolve(&d.due, &format!("decision {id}"))?
                        .map(|r| Base::Instant(r.at)),
                    None => None,
                },
                None => None,
            },
            Anchor::Meeting => match self.state.meeting_at {
                Some(at) => Some(Base::Instant(at)),
                None => match &self.process.meeting {
                    Some(m) => self
                        .resolve(&m.when, "meeting")?
                        .map(|r| Base::Instant(r.at)),
                    None => None,
                },
            },
            Anchor::Step(id) => match self.process.step(id).and_then(|s| s.when.as_ref()) {
                Some(w) => self
                    .resolve(w, &format!("step {id}"))?
                    .map(|r| Base::Instant(r.at)),
                None => None,
            },
            Anchor::PanelSubmission if self.mode == Mode::Planned => {
                self.planned_step_of(StepKind::PanelSubmission)?
            }
            Anchor::PanelResponse if self.mode == Mode::Planned => {
                self.planned_decision("panel_response")?
            }
            Anchor::LcsprDecision if self.mode == Mode::Planned => match self
                .process
                .decisions
                .iter()
                .find(|d| d.outcomes.iter().any(|o| o == "lcspr"))
            {
                Some(d) => self.planned_decision(&d.id.clone())?,
                None => None,
            },
            Anchor::PanelSubmission => self
                .state
                .letters
                .iter()
                .filter(|((step, _), _)| {
                    self.process
                        .step(step)
                        .is_some_and(|s| s.kind == StepKind::PanelSubmission)
                })
                .filter_map(|(_, l)| l.sent_at)
                .min()
                .map(Base::Instant),
            Anchor::PanelResponse => self
                .state
                .decisions
                .get("panel_response")
                .map(|(_, at)| Base::Instant(*at)),
            Anchor::LcsprDecision => self
                .state
                .decisions
                .values()
                .filter(|(o, _)| o == "lcspr")
                .map(|(_, at)| *at)
                .min()
                .map(Base::Instant),
            Anchor::Publication => self.state.publication.map(Base::Date),
        })
    }

    /// In the planned schedule: when the first step of a kind is due.
    fn planned_step_of(&self, kind: StepKind) -> Result<Option<Base>, TimelineError> {
        match self
            .process
            .steps
            .iter()
            .find(|s| s.kind == kind)
            .and_then(|s| s.when.as_ref())
        {
            Some(w) => Ok(self.resolve(w, kind.name())?.map(|r| Base::Instant(r.at))),
            None => Ok(None),
        }
    }

    /// In the planned schedule: a decision is taken when it is due.
    fn planned_decision(&self, id: &str) -> Result<Option<Base>, TimelineError> {
        match self.process.decision(id) {
            Some(d) => Ok(self.resolve(&d.due, id)?.map(|r| Base::Instant(r.at))),
            None => Ok(None),
        }
    }

    /// Resolve what `owner` names (`step:<id>`, `return_by:<id>`, `decision:<id>`,
    /// `deadline:<id>`): a person's rescheduling wins over the process file's `When`.
    fn resolve_owned(&self, owner: &str, w: &When) -> Result<Option<Resolved>, TimelineError> {
        match self.state.overrides.get(owner) {
            Some(at) => {
                let date = calendar::london_date(*at);
                Ok(Some(Resolved {
                    at: *at,
                    date,
                    day: self.day_number(date)?,
                    explanation: format!("moved by a person to {}", calendar::short_instant(*at)),
                }))
            }
            None => match owner.strip_prefix("decision:") {
                Some(id) => match self.resolve(w, owner)? {
                    Some(r) => self.after_adjourned(id, w, r).map(Some),
                    None => Ok(None),
                },
                None => self.resolve(w, owner),
            },
        }
    }

    /// A decision the process dates by working day (`day = N`) after the meeting — the
    /// partners' sign-off — is due as many working days after the case's meeting ends as the
    /// process plans after its meeting, when a person adjourned the meeting later (`caseclerk
    /// adjourn … meeting`): Bury's sign-off, day 15 at noon three working days after the day-12
    /// meeting, is due three working days after a meeting adjourned to day 14. Never earlier
    /// than the process's date; a meeting moved earlier leaves it, and a date a person set for
    /// the decision stands as set ([`Self::resolve_owned`]).
    fn after_adjourned(&self, id: &str, w: &When, r: Resolved) -> Result<Resolved, TimelineError> {
        if self.mode == Mode::Planned
            || w.anchor != Anchor::Referral
            || w.months != 0
            || w.weeks != 0
            || w.hours != 0
            || !self.meeting_held()
        {
            return Ok(r);
        }
        let owner = format!("decision:{id}");
        let planned = self.planned();
        let (Some(planned_due), Some(planned_end), Some(end)) = (
            planned.resolve(w, &owner)?,
            planned.meeting_end()?,
            self.meeting_end()?,
        ) else {
            return Ok(r);
        };
        if planned_due.at < planned_end || end <= planned_end {
            return Ok(r);
        }
        let law = &self.law;
        let gap = law
            .working_day_number(calendar::london_date(planned_end), planned_due.date)
            .map_err(cal_err(&owner))?;
        let reached = law
            .add_working_days(calendar::london_date(end), gap)
            .map_err(cal_err(&owner))?;
        let time = planned_due.at.with_timezone(&calendar::LONDON).time();
        let at = calendar::london_instant(reached.date, time);
        if at <= r.at {
            return Ok(r);
        }
        Ok(Resolved {
            at,
            date: reached.date,
            day: self.day_number(reached.date)?,
            explanation: format!(
                "{gap} working days after the adjourned meeting ends ({}) = {}, not {}",
                calendar::short_instant(end),
                reached.explain(),
                r.explanation
            ),
        })
    }

    /// When the office sends a step's letter: its date ([`Self::dated_letter`]), and never
    /// before the meeting has ended when the process plans it after the meeting
    /// ([`Self::after_meeting`]). A person's rescheduling of the step stands as they set it.
    fn resolve_letter(
        &self,
        owner: &str,
        w: &When,
        owned: bool,
    ) -> Result<Option<Resolved>, TimelineError> {
        let Some(r) = self.dated_letter(owner, w, owned)? else {
            return Ok(None);
        };
        if owned && self.state.overrides.contains_key(owner) {
            return Ok(Some(r));
        }
        self.after_meeting(owner, r).map(Some)
    }

    /// Is the case's meeting to be held: the process has one, the pathway of its invitation is
    /// open (in the planned schedule, always), and nobody has called it off?
    fn meeting_held(&self) -> bool {
        if self.process.meeting.is_none()
            || self
                .state
                .meeting_changes
                .last()
                .is_some_and(|(_, cancelled, _)| *cancelled)
        {
            return false;
        }
        let mut invites = self
            .process
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Invite)
            .peekable();
        self.mode == Mode::Planned
            || invites.peek().is_none()
            || invites.any(|s| self.on_pathway(&s.on))
    }

    /// When the case's meeting starts, as planned or as a person moved it.
    fn meeting_start(&self) -> Result<Option<DateTime<Utc>>, TimelineError> {
        if self.process.meeting.is_none() {
            return Ok(None);
        }
        Ok(match self.anchor(&Anchor::Meeting)? {
            Some(Base::Instant(t)) => Some(t),
            Some(Base::Date(d)) => Some(calendar::london_instant(d, self.process.default_at)),
            None => None,
        })
    }

    /// When the case's meeting ends: its start ([`Self::meeting_start`]) and its length
    /// (`minutes`).
    fn meeting_end(&self) -> Result<Option<DateTime<Utc>>, TimelineError> {
        let Some(m) = &self.process.meeting else {
            return Ok(None);
        };
        Ok(self
            .meeting_start()?
            .map(|start| start + chrono::Duration::minutes(i64::from(m.minutes))))
    }

    /// A letter the process plans for after the meeting — at or after the meeting's end in the
    /// planned schedule ([`Self::planned`]), while the case's meeting is to be held — never goes
    /// before the case's meeting has ended: not when a person moved the meeting later
    /// (`caseclerk adjourn … meeting`), nor when a closure day moved the letter back to the
    /// meeting's day or before. It then goes the moment the meeting ends (its start and its
    /// `minutes`), as a letter that answers a decision goes when the decision is taken.
    /// (Choice: the end of the meeting, not the next morning — a letter moved back by a closure
    /// still goes earlier than its date, never later, and the partners can be asked while the
    /// meeting is fresh.) Invitations are the meeting's own letters and are left alone.
    fn after_meeting(&self, owner: &str, r: Resolved) -> Result<Resolved, TimelineError> {
        let id = owner.strip_prefix("step:").unwrap_or(owner);
        let Some(step) = self.process.step(id) else {
            return Ok(r);
        };
        let Some(w) = step.when.as_ref().filter(|_| step.kind != StepKind::Invite) else {
            return Ok(r);
        };
        if !self.meeting_held() {
            return Ok(r);
        }
        let Some(end) = self.meeting_end()? else {
            return Ok(r);
        };
        if r.at >= end {
            return Ok(r);
        }
        let planned = self.planned();
        let (Some(planned_at), Some(planned_end)) =
            (planned.resolve(w, owner)?, planned.meeting_end()?)
        else {
            return Ok(r);
        };
        if planned_at.at < planned_end {
            return Ok(r);
        }
        let date = calendar::london_date(end);
        Ok(Resolved {
            at: end,
            date,
            day: self.day_number(date)?,
            explanation: format!(
                "{}; not before the meeting has ended ({})",
                r.explanation,
                calendar::short_instant(end)
            ),
        })
    }

    /// A step's letter's date: its statutory date ([`Self::resolve_owned`]), moved to the last
    /// open working day before it when the office is closed that day
    /// ([`Calendar::sending_day`]). A person's rescheduling stands as they set it, and a letter
    /// dated in elapsed hours or at the instant of an event (an acknowledgement, "48 hours
    /// after") answers what happened and goes when it falls due.
    fn dated_letter(
        &self,
        owner: &str,
        w: &When,
        owned: bool,
    ) -> Result<Option<Resolved>, TimelineError> {
        let resolved = if owned {
            self.resolve_owned(owner, w)?
        } else {
            self.resolve(w, owner)?
        };
        let Some(r) = resolved else { return Ok(None) };
        if (owned && self.state.overrides.contains_key(owner)) || w.is_instant() || w.hours != 0 {
            return Ok(Some(r));
        }
        // Not before what it answers; a letter dated before its anchor (publication − 7
        // working days) not before day 0.
        let (base, anchor_date) = match self.anchor(&w.anchor)? {
            Some(Base::Instant(t)) => (Some(t), calendar::london_date(t)),
            Some(Base::Date(d)) => (None, d),
            None => return Ok(Some(r)),
        };
        let earliest = if r.date < anchor_date {
            self.state.day0
        } else {
            anchor_date
        };
        let sending = self
            .office
            .sending_day(r.date, earliest)
            .map_err(cal_err(owner))?;
        let Some(why) = sending.explain() else {
            return Ok(Some(r));
        };
        let explanation = format!("{}; {why}", r.explanation);
        let calendar::Sending::Before { date, .. } = sending else {
            return Ok(Some(Resolved { explanation, ..r }));
        };
        // The same London time of day, and never before what it answers.
        let time = r.at.with_timezone(&calendar::LONDON).time();
        let mut at = calendar::london_instant(date, time);
        if let Some(b) = base
            && date == anchor_date
            && at < b
        {
            at = b;
        }
        let mut explanation = explanation;
        // Nor before the returns it reports on are due: a collation pack or an escalation dated
        // after the agencies' deadline, moved back by a closure, goes at the deadline (returns
        // that come on time that afternoon are in it), not before.
        if let Some(step) = owner
            .strip_prefix("step:")
            .and_then(|id| self.process.step(id))
            && let Some((_, due)) = request_of(self, step)?
            && r.at >= due.at
            && at < due.at
        {
            at = due.at;
            explanation = format!(
                "{explanation}; not before the returns are due ({})",
                calendar::short_instant(due.at)
            );
        }
        let date = calendar::london_date(at);
        Ok(Some(Resolved {
            at,
            date,
            day: self.day_number(date)?,
            explanation,
        }))
    }

    /// Resolve a `When` to an instant; `None` when its anchor has not happened yet.
    fn resolve(&self, w: &When, what: &str) -> Result<Option<Resolved>, TimelineError> {
        let Some(base) = self.anchor(&w.anchor)? else {
            return Ok(None);
        };
        let cal = &self.law;
        if w.is_instant() || w.hours != 0 {
            let start = match base {
                Base::Instant(t) => t,
                Base::Date(d) => calendar::london_instant(d, self.process.default_at),
            };
            let at = calendar::add_hours(start, w.hours).map_err(cal_err(what))?;
            let date = calendar::london_date(at);
            let local = calendar::short_instant(at);
            let explanation = if w.hours == 0 {
                format!("{} = {local}", w.describe())
            } else {
                format!(
                    "{} = {local} (elapsed hours, weekends included)",
                    w.describe()
                )
            };
            return Ok(Some(Resolved {
                at,
                date,
                day: self.day_number(date)?,
                explanation,
            }));
        }
        let base_instant = match base {
            Base::Instant(t) => Some(t),
            Base::Date(_) => None,
        };
        let mut date = match base {
            Base::Instant(t) => calendar::london_date(t),
            Base::Date(d) => d,
        };
        let mut skipped = Vec::new();
        if w.months != 0 {
            date = calendar::add_months(date, w.months).map_err(cal_err(what))?;
        }
        if w.weeks != 0 {
            date = calendar::add_weeks(date, w.weeks).map_err(cal_err(what))?;
        }
        if w.working_days == 0 || w.months != 0 || w.weeks != 0 {
            let r = match w.roll {
                Roll::Next => Some(
                    cal.next_working_day_on_or_after(date)
                        .map_err(cal_err(what))?,
                ),
                Roll::Previous => Some(
                    cal.previous_working_day_on_or_before(date)
                        .map_err(cal_err(what))?,
                ),
                Roll::None => None,
            };
            if let Some(r) = r {
                date = r.date;
                skipped.extend(r.skipped);
            }
        }
        if w.working_days != 0 {
            let r = cal
                .add_working_days(date, w.working_days)
                .map_err(cal_err(what))?;
            date = r.date;
            skipped.extend(r.skipped);
        }
        let mut at = calendar::london_instant(date, w.at.unwrap_or(self.process.default_at));
        // "At 10:00 on the day of the decision" never means before the decision was taken.
        if let Some(b) = base_instant
            && w.months == 0
            && w.weeks == 0
            && w.working_days == 0
            && at < b
        {
            at = b;
        }
        skipped.sort_by_key(|(d, _)| *d);
        skipped.dedup();
        let explained = calendar::Reckoning {
            date,
            skipped,
            after_cutoff: None,
        }
        .explain();
        let day = self.day_number(date)?;
        let explanation = match (&w.anchor, day) {
            (Anchor::Referral, Some(n)) if w.months == 0 && w.weeks == 0 => {
                format!("day {n} = {explained}")
            }
            _ => format!("{} = {explained}", w.describe()),
        };
        Ok(Some(Resolved {
            at,
            date,
            day,
            explanation,
        }))
    }

    /// The working days the process gives an agency to return under the request `req`: from the
    /// request's date to its `return_by` date. When both count from the same anchor (day N, or
    /// the same decision), on this case's own dates; otherwise (Buckinghamshire's request the
    /// moment the decision is taken, returns on day 6) as the planned schedule has them, every
    /// decision taken on its due date (`caseclerk timeline`). At least one.
    fn return_gap(&self, req: &Step) -> Result<i32, TimelineError> {
        let (Some(w), Some(rb)) = (&req.when, &req.return_by) else {
            return Ok(1);
        };
        let what = format!("return_by:{}", req.id);
        let gap = |ctx: &Ctx<'_>| -> Result<Option<i32>, TimelineError> {
            let (Some(asked), Some(due)) = (ctx.resolve(w, &what)?, ctx.resolve(rb, &what)?) else {
                return Ok(None);
            };
            if due.date <= asked.date {
                return Ok(None);
            }
            ctx.law
                .working_day_number(asked.date, due.date)
                .map(Some)
                .map_err(cal_err(&what))
        };
        let n = if w.anchor == rb.anchor {
            gap(self)?
        } else {
            gap(&self.planned())?
        };
        Ok(n.unwrap_or(1).max(1))
    }

    /// When an agency asked at `asked` under the request `req` must return: the process's date
    /// (`nominal`: its `return_by`, or the date a person moved it to), but never less than the
    /// process's own gap between the request's day and the return day ([`Self::return_gap`]),
    /// counted in working days from the day the request actually went, at the return's time of
    /// day. An agency asked on time keeps the process's date exactly; one asked late (a late
    /// screening decision, an agency added later) gets the same working days as the others had.
    fn agency_return_by(
        &self,
        req: &Step,
        nominal: &Resolved,
        asked: DateTime<Utc>,
    ) -> Result<Resolved, TimelineError> {
        let gap = self.return_gap(req)?;
        let from = calendar::london_date(asked);
        let reached = self
            .law
            .add_working_days(from, gap)
            .map_err(cal_err(&format!("return_by:{}", req.id)))?;
        let time = nominal.at.with_timezone(&calendar::LONDON).time();
        let at = calendar::london_instant(reached.date, time);
        if at <= nominal.at {
            return Ok(nominal.clone());
        }
        Ok(Resolved {
            at,
            date: reached.date,
            day: self.day_number(reached.date)?,
            explanation: format!(
                "{gap} working days after the request went ({}) = {}, not {}: the request went late",
                calendar::short_instant(asked),
                reached.explain(),
                nominal.explanation
            ),
        })
    }

    /// When the request `req` went for agency `id` in this round; `None` when it was not asked.
    /// It went when it was sent (`sent_at`): a request held in the outbox (a refused login, a
    /// full mailbox) reached the agency only then. While it is still unsent, when it was decided
    /// (queued). A request imported — not sent at the first run (it fell due long before) counts
    /// as asked on its own date: people did that round by hand.
    fn asked_at(&self, req: &Step, id: &str) -> Option<DateTime<Utc>> {
        let key = (req.id.clone(), keyed(self.state, req, agency_key(id)));
        match self.state.letters.get(&key) {
            Some(l) if l.imported => Some(l.due_at),
            Some(l) => Some(l.sent_at.unwrap_or(l.queued_at)),
            None => self.asking.borrow().get(&key).copied(),
        }
    }

    /// Did the escalation letter `sent` (a step following `req`, whose return deadline is
    /// `nominal`) name agency `id` when it was decided, as the case then stood
    /// ([`returns_roundup`])? It did when the agency's request had gone before it, no return had
    /// come by then, and — for an escalation dated at or after the returns are due — the
    /// agency's own deadline, counted from its request as it was known then (sent by then, or
    /// else decided), had passed.
    fn escalation_named(
        &self,
        req: &Step,
        nominal: &Resolved,
        sent: &crate::core::case::LetterState,
        id: &str,
    ) -> Result<bool, TimelineError> {
        let at = sent.queued_at;
        let key = (req.id.clone(), keyed(self.state, req, agency_key(id)));
        let Some(request) = self.state.letters.get(&key).filter(|r| r.queued_at < at) else {
            return Ok(false);
        };
        let returned = self.state.agencies.get(id).and_then(|a| a.returned_at);
        if returned.is_some_and(|t| t <= at) {
            return Ok(false);
        }
        if sent.due_at < nominal.at {
            return Ok(true);
        }
        let asked = match (request.imported, request.sent_at) {
            (true, _) => request.due_at,
            (false, Some(s)) if s <= at => s,
            (false, _) => request.queued_at,
        };
        Ok(self.agency_return_by(req, nominal, asked)?.at <= at)
    }

    /// Each agency asked in this round under `req` (whose own deadline is `nominal`) that has not
    /// returned yet: when it was asked, and its return deadline.
    fn awaited(
        &self,
        req: &Step,
        nominal: &Resolved,
    ) -> Result<Vec<(DateTime<Utc>, Resolved)>, TimelineError> {
        let mut out = Vec::new();
        for (id, a) in self.state.active_agencies() {
            if a.returned_at.is_some() {
                continue;
            }
            if let Some(asked) = self.asked_at(req, id) {
                out.push((asked, self.agency_return_by(req, nominal, asked)?));
            }
        }
        Ok(out)
    }

    /// When a step's letter goes, dated `due` by [`Self::resolve_letter`]: the papers pulled
    /// earlier with a meeting moved earlier ([`Self::papers_pulled`]), and after the returns it
    /// reports on ([`Self::after_returns`]) — but papers pulled before the returns are due (the
    /// meeting itself is before then) go on that date with what is in.
    fn letter_due(&self, step: &Step, due: Resolved) -> Result<Resolved, TimelineError> {
        let Some(pulled) = self.papers_pulled(step, &due)? else {
            return self.after_returns(step, due);
        };
        match request_of(self, step)? {
            Some((_, nominal)) if pulled.at < nominal.at => Ok(pulled),
            _ => self.after_returns(step, pulled),
        }
    }

    /// The papers for the meeting (a collation the process plans before its meeting) go as many
    /// working days before the case's meeting as the process plans them before its own, at
    /// their time of day, when a person moved the meeting earlier: Bury's day-10 papers (two
    /// working days before the day-12 meeting) go on day 8 for a meeting moved to day 10 — at
    /// once, when that day has passed. Never before the returns are due when they are due
    /// before the meeting starts (Bury's returns at 17:00 on day 9), and a closure day moves
    /// them earlier as for any letter. `None` when nothing pulls them earlier than `due`: a
    /// meeting as planned or moved later (the papers then go on their date), a cancelled one,
    /// or a date a person set for the step.
    fn papers_pulled(
        &self,
        step: &Step,
        due: &Resolved,
    ) -> Result<Option<Resolved>, TimelineError> {
        let owner = format!("step:{}", step.id);
        let Some(w) = step.when.as_ref() else {
            return Ok(None);
        };
        if step.kind != StepKind::Collation
            || self.mode == Mode::Planned
            || self.state.overrides.contains_key(&owner)
            || !self.meeting_held()
        {
            return Ok(None);
        }
        let planned = self.planned();
        let (Some(planned_at), Some(planned_start), Some(start)) = (
            planned.resolve(w, &owner)?,
            planned.meeting_start()?,
            self.meeting_start()?,
        ) else {
            return Ok(None);
        };
        if planned_at.at >= planned_start || start >= planned_start {
            return Ok(None);
        }
        let gap = self
            .law
            .working_day_number(planned_at.date, calendar::london_date(planned_start))
            .map_err(cal_err(&owner))?;
        let reached = self
            .law
            .add_working_days(calendar::london_date(start), -gap)
            .map_err(cal_err(&owner))?;
        let explanation = format!(
            "{}; the meeting moved earlier ({}): {gap} working days before it = {}",
            planned_at.explanation,
            calendar::short_instant(start),
            reached.explain()
        );
        let (mut at, mut explanation) = self.sent_on(
            reached.date,
            self.state.day0,
            planned_at.at,
            explanation,
            &owner,
        )?;
        if let Some((_, nominal)) = request_of(self, step)?
            && nominal.at < start
            && at < nominal.at
        {
            at = nominal.at;
            explanation = format!(
                "{explanation}; not before the returns are due ({})",
                calendar::short_instant(at)
            );
        }
        if at >= due.at {
            return Ok(None);
        }
        let date = calendar::london_date(at);
        Ok(Some(Resolved {
            at,
            date,
            day: self.day_number(date)?,
            explanation,
        }))
    }

    /// A letter reckoned for `date`, at the London time of day `like` has, as the office sends
    /// it: a closure day moves it to the last open working day before (never before
    /// `earliest`), and `explanation` says so when it does.
    fn sent_on(
        &self,
        date: NaiveDate,
        earliest: NaiveDate,
        like: DateTime<Utc>,
        mut explanation: String,
        owner: &str,
    ) -> Result<(DateTime<Utc>, String), TimelineError> {
        let sending = self
            .office
            .sending_day(date, earliest)
            .map_err(cal_err(owner))?;
        if let Some(why) = sending.explain() {
            explanation = format!("{explanation}; {why}");
        }
        let date = match sending {
            calendar::Sending::Before { date, .. } => date,
            _ => date,
        };
        let time = like.with_timezone(&calendar::LONDON).time();
        Ok((calendar::london_instant(date, time), explanation))
    }

    /// A letter about the agencies' returns, dated `due` (as [`Self::resolve_letter`] gave it),
    /// follows the deadlines of the agencies it is about when they are later than the
    /// process's (see [`Self::agency_return_by`]). A collation or an escalation dated at or after
    /// the returns are due waits until the latest deadline of the agencies asked in this round
    /// that have not returned; a chaser, or an escalation dated before the deadline (NE Lincs'
    /// day-7 phone list), goes as many working days later as the earliest of those deadlines is
    /// after the process's, so it stays as far ahead of it as planned (a chaser then goes to each
    /// agency at its own time: [`chasers`]). A date a person set for the step stands as set.
    fn after_returns(&self, step: &Step, due: Resolved) -> Result<Resolved, TimelineError> {
        let roundup = matches!(step.kind, StepKind::Collation | StepKind::Escalation);
        if !(roundup || step.kind == StepKind::Chaser)
            || self
                .state
                .overrides
                .contains_key(&format!("step:{}", step.id))
        {
            return Ok(due);
        }
        let Some((req, nominal)) = request_of(self, step)? else {
            return Ok(due);
        };
        let awaited = self.awaited(req, &nominal)?;
        // The escalation goes on its date: it names the agencies whose own deadline has passed
        // ([`returns_roundup`]), and one asked late must not hold back the business manager's
        // word about those really late.
        if step.kind == StepKind::Escalation && due.at >= nominal.at {
            return Ok(due);
        }
        if roundup && due.at >= nominal.at {
            // The pack waits for the returns still due, but not past the meeting's start for an
            // agency asked late while others were asked in time for the meeting: it waits for
            // those due before the meeting and goes with what is in, the late one listed as
            // missing. When every agency of the round was asked too late for the meeting (after
            // a late screening decision) a pack now would be empty: it waits for their returns,
            // and the meeting must move.
            let meeting = match self.meeting_held() {
                true => self.meeting_start()?,
                false => None,
            };
            let before_meeting = |at: DateTime<Utc>| meeting.is_none_or(|m| at < m);
            let mut some_in_time = false;
            for (id, _) in self.state.active_agencies() {
                if let Some(asked) = self.asked_at(req, id) {
                    some_in_time |= before_meeting(self.agency_return_by(req, &nominal, asked)?.at);
                }
            }
            let waited_for = awaited
                .into_iter()
                .map(|(_, r)| r)
                .filter(|r| !some_in_time || before_meeting(r.at))
                .max_by_key(|r| r.at);
            return Ok(match waited_for {
                Some(last) if last.at > due.at => Resolved {
                    explanation: format!(
                        "{}; not before the returns are due ({})",
                        due.explanation,
                        calendar::short_instant(last.at)
                    ),
                    ..last
                },
                _ => due,
            });
        }
        match awaited.into_iter().min_by_key(|(_, r)| r.at) {
            Some((asked, first)) => self.ahead_of(step, due, &nominal, asked, &first),
            None => Ok(due),
        }
    }

    /// `step`'s letter (dated `due`), which the process dates ahead of the return deadline
    /// `nominal`, for an agency asked at `asked` whose return is due at `deadline` instead: as
    /// many working days later as the deadline moved, counted on statutory time from the step's
    /// own date; a closure day then moves it earlier as for any letter, never before the request
    /// went.
    fn ahead_of(
        &self,
        step: &Step,
        due: Resolved,
        nominal: &Resolved,
        asked: DateTime<Utc>,
        deadline: &Resolved,
    ) -> Result<Resolved, TimelineError> {
        let owner = format!("step:{}", step.id);
        let Some(w) = step.when.as_ref().filter(|_| deadline.at > nominal.at) else {
            return Ok(due);
        };
        let Some(base) = self.resolve(w, &owner)? else {
            return Ok(due);
        };
        let shift = self
            .law
            .working_day_number(nominal.date, deadline.date)
            .map_err(cal_err(&owner))?;
        let moved = self
            .law
            .add_working_days(base.date, shift)
            .map_err(cal_err(&owner))?;
        let explanation = format!(
            "{}; this return is due {}, {shift} working days later: {}",
            base.explanation,
            calendar::short_instant(deadline.at),
            moved.explain()
        );
        let (at, explanation) = self.sent_on(
            moved.date,
            calendar::london_date(asked),
            base.at,
            explanation,
            &owner,
        )?;
        let at = at.max(asked);
        let date = calendar::london_date(at);
        Ok(Resolved {
            at,
            date,
            day: self.day_number(date)?,
            explanation,
        })
    }

    fn day_number(&self, date: NaiveDate) -> Result<Option<i32>, TimelineError> {
        if date < self.state.day0 {
            return Ok(None);
        }
        self.law
            .working_day_number(self.state.day0, date)
            .map(Some)
            .map_err(cal_err("day number"))
    }

    /// Is the step's pathway open for this case?
    fn on_pathway(&self, p: &Pathway) -> bool {
        match p {
            Pathway::Always => true,
            Pathway::Outcome { decision, outcomes } => match self.state.decisions.get(decision) {
                Some((o, _)) => outcomes.contains(o),
                None => match self.mode {
                    Mode::Planned => true,
                    Mode::Actual => self
                        .process
                        .decision(decision)
                        .and_then(|d| d.provisional.as_ref())
                        .is_some_and(|prov| outcomes.contains(prov)),
                },
            },
        }
    }
}

/// A person of the directory as a letter's recipient, in `role`.
pub fn contact_recipient(c: &Contact, role: &str) -> Recipient {
    Recipient {
        name: c.name.clone(),
        email: c.email.to_lowercase(),
        role: role.to_string(),
        phone: c.phone.clone(),
    }
}

/// People in `roles` for this case (not the per-agency roles), de-duplicated by address.
fn expand(
    roles: &[Role],
    process: &Process,
    dir: &dyn Lookup,
    state: &CaseState,
    agency: Option<&Agency>,
) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    let mut push = |r: Recipient| {
        if !out.iter().any(|x| x.email == r.email) {
            out.push(r);
        }
    };
    for role in roles {
        match role {
            Role::Referrer => {
                if let Some(e) = state.referrer.as_deref() {
                    push(Recipient {
                        name: String::new(),
                        email: e.to_lowercase(),
                        role: "referrer".into(),
                        phone: None,
                    })
                }
            }
            Role::Agency => {
                if let Some(a) = agency {
                    push(contact_recipient(&a.contact, "agency"));
                }
            }
            Role::AgencyLead => {
                if let Some(l) = agency.and_then(|a| a.lead.as_ref()) {
                    push(contact_recipient(l, "agency_lead"));
                }
            }
            Role::Attendees => {
                if let Some(m) = &process.meeting {
                    for r in expand(&m.attendees, process, dir, state, agency) {
                        push(Recipient {
                            role: format!("attendee ({})", r.role),
                            ..r
                        });
                    }
                }
            }
            Role::Directory(name) => {
                for c in dir.people(name, state.area.as_deref()) {
                    push(contact_recipient(&c, name));
                }
            }
        }
    }
    out
}

/// Everything due for one case at `now`, and when to look again.
pub fn plan(
    process: &Process,
    dir: &dyn Lookup,
    cal: &Calendar,
    state: &CaseState,
    now: DateTime<Utc>,
) -> Result<Plan, TimelineError> {
    let ctx = Ctx::new(process, cal, state, Mode::Actual);
    let mut plan = Plan::default();
    if state.status == CaseStatus::Closed {
        return Ok(plan);
    }
    let wake = |plan: &mut Plan, at: DateTime<Utc>| {
        if at > now && plan.next_wake.is_none_or(|w| at < w) {
            plan.next_wake = Some(at);
        }
    };
    for step in &process.steps {
        if !ctx.on_pathway(&step.on) {
            continue;
        }
        if step.kind == StepKind::ReturnReceipt {
            receipts(&ctx, step, &mut plan);
            continue;
        }
        let Some(when) = &step.when else { continue };
        // A step whose date cannot be worked out (beyond the holiday data) is a problem for that
        // step and those anchored on it, never for the case's other letters.
        let due = match ctx
            .resolve_letter(&format!("step:{}", step.id), when, true)
            .and_then(|due| due.map(|d| ctx.letter_due(step, d)).transpose())
        {
            Ok(Some(due)) => due,
            Ok(None) => continue,
            Err(e) => {
                plan.problems.push(e.to_string());
                continue;
            }
        };
        if due.at > now {
            wake(&mut plan, due.at);
            continue;
        }
        if let Err(e) = fan_out(&ctx, dir, step, &due, now, &mut plan) {
            plan.problems.push(format!("{}: {e}", step.id));
        }
    }
    undelivered_notices(&ctx, dir, &mut plan);
    if let Err(e) = lcspr_delay_notice(&ctx, dir, now, &mut plan) {
        plan.problems.push(format!("{LCSPR_DELAY_NOTICE}: {e}"));
    }
    if let Err(e) = meeting_changes(&ctx, dir, &mut plan) {
        plan.problems.push(format!("{MEETING_CHANGE}: {e}"));
    }
    Ok(plan)
}

/// The step id of an updated meeting invitation or a cancellation.
pub const MEETING_CHANGE: &str = "meeting-change";

/// The meeting was moved or cancelled after its invitations went: each attendee who got one is
/// sent, at once, the updated invitation (template `meeting-update`: same UID, the next SEQUENCE)
/// or the cancellation (`meeting-cancelled`: `METHOD:CANCEL`). SEQUENCE counts the changes
/// recorded after the first invitation was decided; when several come before a pass, only the
/// latest goes (its SEQUENCE is higher, so calendars take it). A change before any invitation
/// went needs no letter: the invitation carries it (and none goes after a cancellation).
fn meeting_changes(ctx: &Ctx<'_>, dir: &dyn Lookup, plan: &mut Plan) -> Result<(), TimelineError> {
    let state = ctx.state;
    let Some((changed_at, cancelled, reason)) = state.meeting_changes.last() else {
        return Ok(());
    };
    let invited: Vec<(&str, &crate::core::case::LetterState)> = state
        .letters
        .iter()
        .filter(|((step, _), _)| {
            ctx.process
                .step(step)
                .is_some_and(|s| s.kind == StepKind::Invite)
        })
        .map(|((_, key), l)| (key_without_round(key), l))
        .collect();
    let Some(first) = invited.iter().map(|(_, l)| l.queued_at).min() else {
        return Ok(());
    };
    let sequence = state
        .meeting_changes
        .iter()
        .filter(|(at, ..)| *at > first)
        .count();
    if sequence == 0 {
        return Ok(());
    }
    let Some(at) = meeting_at(ctx.process, ctx.office, state)? else {
        return Ok(());
    };
    let attendees = ctx
        .process
        .meeting
        .as_ref()
        .map(|m| expand(&m.attendees, ctx.process, dir, state, None))
        .unwrap_or_default();
    let change = MeetingChange {
        sequence: u32::try_from(sequence).unwrap_or(u32::MAX),
        cancelled: *cancelled,
        reason: reason.clone(),
    };
    let (template, name, why) = if *cancelled {
        ("meeting-cancelled", "Meeting cancelled", "cancelled")
    } else {
        (
            "meeting-update",
            "Meeting moved: updated invitation",
            "moved",
        )
    };
    let mut done = BTreeSet::new();
    for (email, _) in invited {
        let key = format!("{email}#s{sequence}");
        if !done.insert(email) || state.has_letter(MEETING_CHANGE, &key) {
            continue;
        }
        let to = attendees
            .iter()
            .find(|r| r.email == email)
            .cloned()
            .unwrap_or_else(|| Recipient {
                name: String::new(),
                email: email.to_string(),
                role: "attendee".into(),
                phone: None,
            });
        let date = calendar::london_date(*changed_at);
        let due = Resolved {
            at: *changed_at,
            date,
            day: ctx.day_number(date)?,
            explanation: format!("as soon as the meeting was {why}"),
        };
        let mut l = letter_to(
            (MEETING_CHANGE, name, template),
            StepKind::Invite,
            key,
            to,
            due,
        );
        l.meeting = Some(Resolved {
            at,
            date: calendar::london_date(at),
            day: ctx.day_number(calendar::london_date(at))?,
            explanation: String::new(),
        });
        l.meeting_change = Some(change.clone());
        plan.due.push(l);
    }
    Ok(())
}

/// A letter outside the process's steps (`(step, name, template)`) to one person, with nothing
/// else filled in: the callers add what theirs carries.
fn letter_to(
    (step, name, template): (&str, &str, &str),
    kind: StepKind,
    key: String,
    to: Recipient,
    due: Resolved,
) -> DueLetter {
    DueLetter {
        step: step.to_string(),
        step_name: name.to_string(),
        kind,
        template: template.to_string(),
        key,
        to,
        also_to: Vec::new(),
        cc: Vec::new(),
        due,
        attach: Vec::new(),
        agency: None,
        return_by: None,
        missing: Vec::new(),
        nil_returns: Vec::new(),
        returns: Vec::new(),
        meeting: None,
        meeting_change: None,
        notes: Vec::new(),
        decision: None,
    }
}

/// The step id of the notice that tells the National Panel and the Secretary of State an LCSPR
/// will miss its six months.
pub const LCSPR_DELAY_NOTICE: &str = "notice-lcspr-delay";

/// The id of the deadline the delay notice watches (a process's `[[deadline]]`).
pub const LCSPR_DEADLINE: &str = "lcspr_six_months";

/// When an LCSPR will miss its six-month deadline — its planned publication is later, or the date
/// passed with none planned — the National Panel and the Secretary of State are told, once
/// (Working Together: a delay is reported with its reason).
fn lcspr_delay_notice(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> Result<(), TimelineError> {
    let state = ctx.state;
    let Some(deadline) = ctx
        .process
        .deadlines
        .iter()
        .find(|d| d.id == LCSPR_DEADLINE && ctx.on_pathway(&d.on))
    else {
        return Ok(());
    };
    let Some(due) = ctx.resolve_owned(&format!("deadline:{}", deadline.id), &deadline.when)? else {
        return Ok(());
    };
    let (late, at) = match state.publication {
        Some(p) if p > due.date => (true, now.min(due.at).max(state.received_at)),
        Some(_) => (false, due.at),
        None => (now >= due.at, due.at),
    };
    if !late {
        if state.publication.is_none() && due.at > now && plan.next_wake.is_none_or(|w| due.at < w)
        {
            plan.next_wake = Some(due.at);
        }
        return Ok(());
    }
    for role in ["national_panel", "secretary_of_state"] {
        for c in dir.people(role, state.area.as_deref()) {
            let to = contact_recipient(&c, role);
            let key = format!("lcspr-delay:{}", to.email);
            if state.has_letter(LCSPR_DELAY_NOTICE, &key) {
                continue;
            }
            let date = calendar::london_date(at);
            plan.due.push(letter_to(
                (
                    LCSPR_DELAY_NOTICE,
                    "LCSPR delay notice",
                    "lcspr-delay-notice",
                ),
                StepKind::Letter,
                key,
                to,
                Resolved {
                    at,
                    date,
                    day: ctx.day_number(date)?,
                    explanation: format!("the LCSPR will miss {}", due.explanation),
                },
            ));
        }
    }
    Ok(())
}

/// The step id of the notice that raises an undelivered letter to the business unit.
pub const UNDELIVERED_NOTICE: &str = "notice-undelivered";

/// A letter that was refused or bounced is raised to the business manager (else the business
/// unit) once, so a person can phone or find another address. Notices are never raised about
/// notices (no loops).
fn undelivered_notices(ctx: &Ctx<'_>, dir: &dyn Lookup, plan: &mut Plan) {
    let state = ctx.state;
    let mut people = dir.people("business_manager", state.area.as_deref());
    if people.is_empty() {
        people = dir.people("business_unit", state.area.as_deref());
    }
    for ((step, recipient), letter) in &state.letters {
        let Some(reason) = &letter.undelivered else {
            continue;
        };
        if step.starts_with("notice-") {
            continue;
        }
        let key = format!("undelivered:{}", letter.outbox);
        if state.has_letter(UNDELIVERED_NOTICE, &key) {
            continue;
        }
        let Some(first) = people.first() else {
            plan.problems.push("an undelivered letter cannot be raised: nobody in business_manager or business_unit".into());
            continue;
        };
        let step_name = ctx
            .process
            .step(step)
            .map_or(step.clone(), |s| s.name.clone());
        let at = letter.sent_at.unwrap_or(letter.queued_at);
        let date = calendar::london_date(at);
        let mut l = letter_to(
            (
                UNDELIVERED_NOTICE,
                "Undelivered letter",
                "undelivered-notice",
            ),
            StepKind::Letter,
            key,
            contact_recipient(first, "business_manager"),
            Resolved {
                at,
                date,
                day: ctx.day_number(date).ok().flatten(),
                explanation: "as soon as the letter was found undelivered".into(),
            },
        );
        l.cc = people
            .iter()
            .skip(1)
            .map(|c| contact_recipient(c, "business_unit"))
            .collect();
        l.agency = key_without_round(recipient)
            .strip_prefix("agency:")
            .map(str::to_string);
        l.notes = vec![
            format!("Letter: {step_name}"),
            format!("To: {recipient}"),
            format!("Why: {reason}"),
        ];
        l.cc.retain(|c| c.email != l.to.email);
        plan.due.push(l);
    }
}

fn letter(
    step: &Step,
    key: String,
    to: Recipient,
    cc: Vec<Recipient>,
    due: &Resolved,
) -> DueLetter {
    DueLetter {
        step: step.id.clone(),
        step_name: step.name.clone(),
        kind: step.kind,
        template: step.template.clone(),
        key,
        to,
        also_to: Vec::new(),
        cc,
        due: due.clone(),
        attach: step.attach.clone(),
        agency: None,
        return_by: None,
        missing: Vec::new(),
        nil_returns: Vec::new(),
        returns: Vec::new(),
        meeting: None,
        meeting_change: None,
        notes: Vec::new(),
        decision: step.decision.clone(),
    }
}

/// The agency request step a chaser/escalation/collation follows, and its return deadline.
fn request_of<'a>(
    ctx: &'a Ctx<'_>,
    step: &Step,
) -> Result<Option<(&'a Step, Resolved)>, TimelineError> {
    let Some(req) = step.follows.as_deref().and_then(|id| ctx.process.step(id)) else {
        return Ok(None);
    };
    let Some(rb) = &req.return_by else {
        return Ok(None);
    };
    Ok(ctx
        .resolve_owned(&format!("return_by:{}", req.id), rb)?
        .map(|r| (req, r)))
}

fn agency_key(id: &str) -> String {
    format!("agency:{id}")
}

/// The decision a step depends on: the one it asks, or the one whose outcome opens its pathway.
fn step_decision(step: &Step) -> Option<&str> {
    step.decision.as_deref().or(match &step.on {
        Pathway::Outcome { decision, .. } => Some(decision.as_str()),
        Pathway::Always => None,
    })
}

/// A letter's key within its step: after a decision is reopened (a query answered), the letters
/// that depend on it are decided afresh, so their keys carry the round (`…#r1`).
fn keyed(state: &CaseState, step: &Step, key: String) -> String {
    match step_decision(step)
        .and_then(|d| state.rounds.get(d))
        .copied()
    {
        Some(n) if n > 0 => format!("{key}#r{n}"),
        _ => key,
    }
}

/// The letters one due step sends: one per agency, or one per person in its roles.
fn fan_out(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    due: &Resolved,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> Result<(), TimelineError> {
    match step.kind {
        StepKind::AgencyRequest => agency_requests(ctx, dir, step, due, now, plan),
        StepKind::Chaser => chasers(ctx, dir, step, due, now, plan),
        StepKind::Escalation => {
            returns_roundup(ctx, dir, step, due, now, plan)?;
            late_escalations(ctx, dir, step, now, plan)
        }
        StepKind::Collation => returns_roundup(ctx, dir, step, due, now, plan),
        StepKind::Invite => invites(ctx, dir, step, due, plan),
        StepKind::ReturnReceipt => unreachable!("receipts are planned by their events"),
        StepKind::Letter | StepKind::DecisionRequest | StepKind::PanelSubmission => {
            role_letters(ctx, dir, step, due, plan);
            Ok(())
        }
    }
}

/// An agency request: one letter to each active agency's contact, with its return deadline —
/// the process's, or later for a request that goes late ([`Ctx::agency_return_by`]: it goes now).
fn agency_requests(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    due: &Resolved,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> Result<(), TimelineError> {
    let state = ctx.state;
    let return_by = match &step.return_by {
        Some(rb) => ctx.resolve_owned(&format!("return_by:{}", step.id), rb)?,
        None => None,
    };
    // A letter for the one agency with the learning (`one_agency`): with several on the case,
    // which one is a person's call, and nobody is written to until they leave only that one.
    if step.one_agency {
        let gone = state
            .letters
            .keys()
            .any(|(s, key)| s == &step.id && key.starts_with("agency:"));
        let agencies = state.active_agencies().count();
        if gone {
            return Ok(());
        }
        if agencies > 1 {
            plan.problems.push(format!(
                "{}: for the one agency with the learning, but the case has {agencies}: remove \
                 the others (caseclerk agencies remove), and it goes to the one left",
                step.id
            ));
            return Ok(());
        }
    }
    for (id, _) in state.active_agencies() {
        let key = keyed(state, step, agency_key(id));
        if state.has_letter(&step.id, &key) {
            continue;
        }
        let Some(agency) = dir.agency(id) else {
            plan.problems
                .push(format!("agency `{id}` is not in the directory"));
            continue;
        };
        let to = contact_recipient(&agency.contact, "agency");
        let cc = expand(&step.cc, ctx.process, dir, state, Some(&agency));
        let asked = now.max(due.at);
        ctx.asking
            .borrow_mut()
            .insert((step.id.clone(), key.clone()), asked);
        let mut l = letter(step, key, to, cc, due);
        l.agency = Some(id.clone());
        l.return_by = match &return_by {
            Some(rb) => Some(ctx.agency_return_by(step, rb, asked)?),
            None => None,
        };
        plan.due.push(l);
    }
    Ok(())
}

/// A chaser: one letter to each agency asked before its chase fell due that has not returned.
/// An agency whose return is due later than the process's date (asked late) is chased as many
/// working days later ([`Ctx::ahead_of`]), and told its own deadline.
fn chasers(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    due: &Resolved,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> Result<(), TimelineError> {
    let state = ctx.state;
    let Some((req, nominal)) = request_of(ctx, step)? else {
        return Ok(());
    };
    let moved = state.overrides.contains_key(&format!("step:{}", step.id));
    for (id, a) in state.active_agencies() {
        let key = keyed(state, step, agency_key(id));
        if a.returned_at.is_some() || state.has_letter(&step.id, &key) {
            continue;
        }
        let Some(asked) = ctx.asked_at(req, id) else {
            continue;
        };
        let return_by = ctx.agency_return_by(req, &nominal, asked)?;
        let due = if moved {
            due.clone()
        } else {
            ctx.ahead_of(step, due.clone(), &nominal, asked, &return_by)?
        };
        if due.at > now {
            if plan.next_wake.is_none_or(|w| due.at < w) {
                plan.next_wake = Some(due.at);
            }
            continue;
        }
        // Only chase an agency that was asked before its chase fell due: one added later
        // has had no time to answer (the escalation covers it).
        if asked > due.at {
            continue;
        }
        // A reminder meant to go before the deadline that it would now reach after it (the
        // daemon was stopped past the deadline) would ask for a return "by" a date gone, perhaps
        // for a meeting already held: it is not sent; the escalation or the collation names who is
        // missing.
        if due.at < return_by.at && return_by.at <= now {
            continue;
        }
        let Some(agency) = dir.agency(id) else {
            plan.problems.push(format!(
                "agency `{id}` is not in the directory: its chaser ({}) cannot go",
                step.id
            ));
            continue;
        };
        // An agency whose contact is away (an auto-reply was seen) is chased via its deputy.
        let contact = match (&a.out_of_office_at, &agency.deputy) {
            (Some(_), Some(deputy)) => contact_recipient(deputy, "agency deputy"),
            _ => contact_recipient(&agency.contact, "agency"),
        };
        let cc = expand(&step.cc, ctx.process, dir, state, Some(&agency));
        let mut l = letter(step, key, contact, cc, &due);
        l.agency = Some(id.clone());
        l.return_by = Some(return_by);
        plan.due.push(l);
    }
    Ok(())
}

/// An escalation (only when returns are missing) or a collation (once any agency was asked):
/// one letter per person in its roles, listing the missing and the nil returns.
fn returns_roundup(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    due: &Resolved,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> Result<(), TimelineError> {
    let state = ctx.state;
    let Some((req, nominal)) = request_of(ctx, step)? else {
        return Ok(());
    };
    let asked: Vec<&String> = state
        .active_agencies()
        .filter(|(id, _)| state.has_letter(&req.id, &keyed(state, req, agency_key(id))))
        .map(|(id, _)| id)
        .collect();
    // An escalation dated after the returns are due names only the agencies whose own deadline
    // has passed: one asked late is not late yet ([`Ctx::after_returns`]). Until one is, the
    // escalation waits (unsent, looked at again when the first of them is late), and goes once
    // one is; one late after it went is escalated on its own ([`late_escalations`]).
    let not_due_yet = |id: &str| -> Result<Option<DateTime<Utc>>, TimelineError> {
        if step.kind != StepKind::Escalation || due.at < nominal.at {
            return Ok(None);
        }
        Ok(match ctx.asked_at(req, id) {
            Some(at) => Some(ctx.agency_return_by(req, &nominal, at)?.at).filter(|d| *d > now),
            None => None,
        })
    };
    let mut missing: Vec<String> = Vec::new();
    let mut first_late: Option<DateTime<Utc>> = None;
    for id in &asked {
        let returned = state.agencies[id.as_str()]
            .returned_at
            .is_some_and(|t| t <= now);
        if returned {
            continue;
        }
        match not_due_yet(id)? {
            Some(d) => first_late = Some(first_late.map_or(d, |f| f.min(d))),
            None => missing.push(id.to_string()),
        }
    }
    if step.kind == StepKind::Escalation && missing.is_empty() {
        if let Some(d) = first_late
            && !step_decided(state, step)
            && plan.next_wake.is_none_or(|w| d < w)
        {
            plan.next_wake = Some(d);
        }
        return Ok(());
    }
    if step.kind == StepKind::Collation && asked.is_empty() {
        return Ok(());
    }
    let nil: Vec<String> = asked
        .iter()
        .filter(|id| {
            state.agencies[id.as_str()].nil && state.agencies[id.as_str()].returned_at.is_some()
        })
        .map(|s| s.to_string())
        .collect();
    if let Some(mut l) = shared_letter(ctx, dir, step, due, plan) {
        l.missing = missing;
        l.nil_returns = nil;
        plan.due.push(l);
    }
    Ok(())
}

/// The marker in the key of an escalation about one agency on its own: `<addresses>#late:<id>`
/// (and the round, `…#r1`).
const LATE_KEY: &str = "#late:";

/// Whether a letter's key is an escalation about one agency asked late (`…#late:<id>`).
pub fn is_late_escalation(key: &str) -> bool {
    late_agency_of_key(key).is_some()
}

/// The agency an escalation letter is about on its own (`…#late:<id>`), if it is one.
fn late_agency_of_key(key: &str) -> Option<&str> {
    key_without_round(key)
        .split_once(LATE_KEY)
        .map(|(_, id)| id)
}

/// An agency whose own deadline came after the escalation went (asked late: the escalation
/// could not name it, [`returns_roundup`]) is escalated on its own: when the step's date, moved
/// as many working days later as its deadline moved ([`Ctx::ahead_of`], as its chaser is), has
/// passed with no return. One letter about it to the escalation's people, keyed
/// `<addresses>#late:<id>` in the round: once, whoever is in the roles then. An agency an
/// escalation of this round already named ([`Ctx::escalation_named`]) is not escalated again;
/// before the step's own letter has gone, that letter names whoever is late.
fn late_escalations(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    now: DateTime<Utc>,
    plan: &mut Plan,
) -> Result<(), TimelineError> {
    let state = ctx.state;
    let (Some((req, nominal)), Some(w)) = (request_of(ctx, step)?, step.when.as_ref()) else {
        return Ok(());
    };
    let round = keyed(state, step, String::new());
    let gone: Vec<(&str, &crate::core::case::LetterState)> = state
        .letters
        .iter()
        .filter(|((s, key), _)| s == &step.id && key_round(key) == round)
        .map(|((_, key), l)| (key.as_str(), l))
        .collect();
    if !gone
        .iter()
        .any(|(key, _)| late_agency_of_key(key).is_none())
    {
        return Ok(());
    }
    let owner = format!("step:{}", step.id);
    let Some(base) = ctx.resolve_letter(&owner, w, true)? else {
        return Ok(());
    };
    let moved = state.overrides.contains_key(&owner);
    for (id, a) in state.active_agencies() {
        let Some(asked) = ctx.asked_at(req, id).filter(|_| a.returned_at.is_none()) else {
            continue;
        };
        let mut named = false;
        for (key, l) in &gone {
            named |= match late_agency_of_key(key) {
                Some(about) => about == id,
                None => ctx.escalation_named(req, &nominal, l, id)?,
            };
        }
        if named {
            continue;
        }
        let return_by = ctx.agency_return_by(req, &nominal, asked)?;
        let due = match moved {
            true => base.clone(),
            false => ctx.ahead_of(step, base.clone(), &nominal, asked, &return_by)?,
        };
        if due.at > now {
            if plan.next_wake.is_none_or(|w| due.at < w) {
                plan.next_wake = Some(due.at);
            }
            continue;
        }
        let (to, cc) = addressees(ctx, dir, step, plan);
        let mut to = to.into_iter();
        let Some(first) = to.next() else { continue };
        let also_to: Vec<Recipient> = to.collect();
        let addresses: Vec<&str> = std::iter::once(first.email.as_str())
            .chain(also_to.iter().map(|r| r.email.as_str()))
            .collect();
        let key = keyed(
            state,
            step,
            format!("{}{LATE_KEY}{id}", addresses.join(",")),
        );
        let mut l = letter(step, key, first, cc, &due);
        l.also_to = also_to;
        l.missing = vec![id.clone()];
        plan.due.push(l);
    }
    Ok(())
}

/// An invitation: one letter per person in its roles, once the meeting's time is known.
fn invites(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    due: &Resolved,
    plan: &mut Plan,
) -> Result<(), TimelineError> {
    let process = ctx.process;
    let meeting = ctx.anchor(&Anchor::Meeting)?.map(|b| match b {
        Base::Instant(t) => t,
        Base::Date(d) => calendar::london_instant(d, process.default_at),
    });
    let Some(at) = meeting else { return Ok(()) };
    if ctx
        .state
        .meeting_changes
        .last()
        .is_some_and(|(_, cancelled, _)| *cancelled)
    {
        return Ok(());
    }
    let meeting = Resolved {
        at,
        date: calendar::london_date(at),
        day: ctx.day_number(calendar::london_date(at))?,
        explanation: String::new(),
    };
    for mut l in individual_letters(ctx, dir, step, due, plan) {
        l.meeting = Some(meeting.clone());
        plan.due.push(l);
    }
    Ok(())
}

/// Any other letter: shared (one message to everyone) or individual, by its kind (see the
/// process-file format, "Who receives a step's letter").
fn role_letters(ctx: &Ctx<'_>, dir: &dyn Lookup, step: &Step, due: &Resolved, plan: &mut Plan) {
    if shares_one_message(step.kind) {
        if let Some(l) = shared_letter(ctx, dir, step, due, plan) {
            plan.due.push(l);
        }
    } else {
        let letters = individual_letters(ctx, dir, step, due, plan);
        plan.due.extend(letters);
    }
}

/// Does a step of this kind say the same thing to everyone in its roles (one message to all)?
pub fn shares_one_message(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::Letter | StepKind::Escalation | StepKind::Collation
    )
}

/// The people a step writes to, or a planning problem when there is nobody.
fn addressees(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    plan: &mut Plan,
) -> (Vec<Recipient>, Vec<Recipient>) {
    let (state, process) = (ctx.state, ctx.process);
    let to = expand(&step.to, process, dir, state, None);
    if to.is_empty() {
        plan.problems.push(format!(
            "step {}: nobody to send it to (roles: {})",
            step.id,
            step.to
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let cc = expand(&step.cc, process, dir, state, None)
        .into_iter()
        .filter(|c| !to.iter().any(|t| t.email == c.email))
        .collect();
    (to, cc)
}

/// Has any letter of this step gone in the current round (whoever it was addressed to)?
fn step_decided(state: &CaseState, step: &Step) -> bool {
    let round = keyed(state, step, String::new());
    state
        .letters
        .keys()
        .any(|(s, key)| s == &step.id && key_round(key) == round)
}

/// The round suffix of a letter key (`#r1`), or "" for the first round.
fn key_round(key: &str) -> &str {
    key.rfind("#r").map_or("", |i| &key[i..])
}

/// The round a letter key was sent in (`…#r1` → 1; no suffix → 0).
pub fn round_of_key(key: &str) -> u32 {
    key_round(key)
        .strip_prefix("#r")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A letter key without its round suffix (see [`keyed`]).
pub fn key_without_round(key: &str) -> &str {
    key.split("#r").next().unwrap_or(key)
}

/// What a letter key names, one entry per addressee: its address, or each address of a shared
/// letter (`a@x,b@x`), without the round (nor the agency an escalation on its own is about,
/// `…#late:<id>`).
pub fn key_addressees(key: &str) -> impl Iterator<Item = &str> {
    let key = key_without_round(key);
    key.split(LATE_KEY).next().unwrap_or(key).split(',')
}

/// One message to everyone in the step's `to` roles, copied to its `cc` roles; keyed by the
/// addresses (a single addressee's key is their address, as for an individual letter).
fn shared_letter(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    due: &Resolved,
    plan: &mut Plan,
) -> Option<DueLetter> {
    let state = ctx.state;
    let (to, cc) = addressees(ctx, dir, step, plan);
    let mut to = to.into_iter();
    let first = to.next()?;
    let also_to: Vec<Recipient> = to.collect();
    let addresses: Vec<&str> = std::iter::once(first.email.as_str())
        .chain(also_to.iter().map(|r| r.email.as_str()))
        .collect();
    let key = keyed(state, step, addresses.join(","));
    // Once per step and round, whoever was in the roles then (a database from before letters
    // were shared holds one letter per person: any of them means the step went).
    if state.has_letter(&step.id, &key) || step_decided(state, step) {
        return None;
    }
    let mut l = letter(step, key, first, cc, due);
    l.also_to = also_to;
    Some(l)
}

/// One letter to each person in the step's `to` roles; the `cc` people are copied on the first
/// letter of the step only (not at all when a letter of this step already went this round).
fn individual_letters(
    ctx: &Ctx<'_>,
    dir: &dyn Lookup,
    step: &Step,
    due: &Resolved,
    plan: &mut Plan,
) -> Vec<DueLetter> {
    let state = ctx.state;
    let (to, cc) = addressees(ctx, dir, step, plan);
    let mut copied = step_decided(state, step);
    let mut out = Vec::new();
    for to in to {
        let key = keyed(state, step, to.email.clone());
        if state.has_letter(&step.id, &key) {
            continue;
        }
        let cc = if copied { Vec::new() } else { cc.clone() };
        copied = true;
        out.push(letter(step, key, to, cc, due));
    }
    out
}

/// A receipt for every return that arrived, sent to its agency's contact when it arrives.
fn receipts(ctx: &Ctx<'_>, step: &Step, plan: &mut Plan) {
    for (id, a) in ctx.state.active_agencies() {
        let Some(at) = a.returned_at else { continue };
        let key = keyed(ctx.state, step, agency_key(id));
        if ctx.state.has_letter(&step.id, &key) {
            continue;
        }
        let date = calendar::london_date(at);
        let due = Resolved {
            at,
            date,
            day: ctx.day_number(date).ok().flatten(),
            explanation: "when the return arrived".into(),
        };
        // The recipient is filled in by the engine from the directory (it needs the contact).
        let mut l = letter(
            step,
            key,
            Recipient {
                name: String::new(),
                email: String::new(),
                role: "agency".into(),
                phone: None,
            },
            Vec::new(),
            &due,
        );
        l.agency = Some(id.clone());
        plan.due.push(l);
    }
}

/// Fill in receipts' recipients from the directory (kept apart so [`receipts`] needs no directory).
pub fn address_receipts(plan: &mut Plan, dir: &dyn Lookup) {
    plan.due.retain_mut(|l| {
        if l.kind != StepKind::ReturnReceipt {
            return true;
        }
        match l.agency.as_deref().and_then(|id| dir.agency(id)) {
            Some(a) => {
                l.to = contact_recipient(&a.contact, "agency");
                true
            }
            None => false,
        }
    });
}

/// Resolve any `When` against what has actually happened on the case (`None`: not yet known).
/// `owner` names what is resolved (`step:<id>`, `return_by:<id>`, `decision:<id>`,
/// `deadline:<id>`), so a person's rescheduling of it wins.
pub fn resolve(
    process: &Process,
    cal: &Calendar,
    state: &CaseState,
    when: &When,
    owner: &str,
) -> Result<Option<Resolved>, TimelineError> {
    Ctx::new(process, cal, state, Mode::Actual).resolve_owned(owner, when)
}

/// The process's deadlines for this case, on its open pathways, resolved where they can be.
pub fn deadlines<'p>(
    process: &'p Process,
    cal: &Calendar,
    state: &CaseState,
) -> Result<Vec<(&'p crate::core::process::Deadline, Option<Resolved>)>, TimelineError> {
    let ctx = Ctx::new(process, cal, state, Mode::Actual);
    process
        .deadlines
        .iter()
        .filter(|d| ctx.on_pathway(&d.on))
        .map(|d| {
            Ok((
                d,
                ctx.resolve_owned(&format!("deadline:{}", d.id), &d.when)?,
            ))
        })
        .collect()
}

/// A step that will fall due in a window (for the digest and `caseclerk case`).
#[derive(Debug, Clone, PartialEq)]
pub struct Upcoming {
    pub step: String,
    pub name: String,
    pub kind: StepKind,
    pub due: Resolved,
    /// The roles it goes to, in words.
    pub to: String,
}

/// Steps on the case's open pathways, with a known date in `[from, until)`, not yet decided for
/// anyone. Event-driven steps (receipts) are not listed.
pub fn upcoming(
    process: &Process,
    cal: &Calendar,
    state: &CaseState,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<Upcoming>, TimelineError> {
    let ctx = Ctx::new(process, cal, state, Mode::Actual);
    let mut out = Vec::new();
    if state.status == CaseStatus::Closed {
        return Ok(out);
    }
    for step in &process.steps {
        let Some(when) = &step.when else { continue };
        if !ctx.on_pathway(&step.on) || state.letters.keys().any(|(s, _)| s == &step.id) {
            continue;
        }
        let Some(due) = ctx.resolve_letter(&format!("step:{}", step.id), when, true)? else {
            continue;
        };
        let due = ctx.letter_due(step, due)?;
        if due.at >= from && due.at < until {
            out.push(Upcoming {
                step: step.id.clone(),
                name: step.name.clone(),
                kind: step.kind,
                due,
                to: step
                    .to
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    out.sort_by_key(|u| u.due.at);
    Ok(out)
}

/// The meeting's instant for this case, if the process has one and its date is known.
pub fn meeting_at(
    process: &Process,
    cal: &Calendar,
    state: &CaseState,
) -> Result<Option<DateTime<Utc>>, TimelineError> {
    let ctx = Ctx::new(process, cal, state, Mode::Actual);
    Ok(match ctx.anchor(&Anchor::Meeting)? {
        Some(Base::Instant(t)) => Some(t),
        Some(Base::Date(d)) => Some(calendar::london_instant(d, process.default_at)),
        None => None,
    })
}

/// Is this pathway open for the case (a decision's outcome, or its provisional outcome)?
pub fn on_pathway(process: &Process, cal: &Calendar, state: &CaseState, pathway: &Pathway) -> bool {
    Ctx::new(process, cal, state, Mode::Actual).on_pathway(pathway)
}

/// The case's agency request (the first on an open pathway) and its return deadline as the
/// process (or a person) sets it, if known yet.
fn case_request<'a>(ctx: &'a Ctx<'_>) -> Result<Option<(&'a Step, Resolved)>, TimelineError> {
    let Some(step) = ctx
        .process
        .steps
        .iter()
        .find(|s| s.kind == StepKind::AgencyRequest && ctx.on_pathway(&s.on))
    else {
        return Ok(None);
    };
    let Some(rb) = &step.return_by else {
        return Ok(None);
    };
    Ok(ctx
        .resolve_owned(&format!("return_by:{}", step.id), rb)?
        .map(|r| (step, r)))
}

/// The return deadline of the case's agency request (the first on an open pathway), if known
/// yet: the latest of the agencies asked in this round ([`agency_return_deadline`]), else the
/// process's.
pub fn return_deadline(
    process: &Process,
    cal: &Calendar,
    state: &CaseState,
) -> Result<Option<Resolved>, TimelineError> {
    let ctx = Ctx::new(process, cal, state, Mode::Actual);
    let Some((req, nominal)) = case_request(&ctx)? else {
        return Ok(None);
    };
    let mut last = nominal.clone();
    for (id, _) in state.active_agencies() {
        if let Some(asked) = ctx.asked_at(req, id) {
            let r = ctx.agency_return_by(req, &nominal, asked)?;
            if r.at > last.at {
                last = r;
            }
        }
    }
    Ok(Some(last))
}

/// When agency `id` must return under the case's agency request: the date its request gave it
/// (later than the process's when it was asked late, see `Ctx::agency_return_by`), else the
/// process's.
pub fn agency_return_deadline(
    process: &Process,
    cal: &Calendar,
    state: &CaseState,
    id: &str,
) -> Result<Option<Resolved>, TimelineError> {
    let ctx = Ctx::new(process, cal, state, Mode::Actual);
    let Some((req, nominal)) = case_request(&ctx)? else {
        return Ok(None);
    };
    match ctx.asked_at(req, id) {
        Some(asked) => ctx.agency_return_by(req, &nominal, asked).map(Some),
        None => Ok(Some(nominal)),
    }
}

// ---- the planned schedule --------------------------------------------------------------------

/// One line of the planned schedule.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub what: String,
    pub id: String,
    pub kind: &'static str,
    pub pathway: String,
    pub when: String,
    pub resolved: Option<Resolved>,
    pub template: Option<String>,
    pub recipients: String,
}

/// The whole planned schedule for a referral received at `received_at`, assuming every decision is
/// taken on its due date. Steps anchored on events with no planned date (publication, an LCSPR
/// decision) are listed without a date.
pub fn schedule(
    process: &Process,
    cal: &Calendar,
    received_at: DateTime<Utc>,
    cutoff: Option<chrono::NaiveTime>,
) -> Result<(calendar::Reckoning, Vec<Scheduled>), TimelineError> {
    let day0 = cal
        .statutory()
        .day_zero(received_at, cutoff)
        .map_err(cal_err("day 0"))?;
    let state = CaseState::new(
        "RR-PLAN",
        &process.id,
        None,
        None,
        received_at,
        day0.date,
        0,
    );
    let ctx = Ctx::new(process, cal, &state, Mode::Planned);
    let roles = |rs: &[Role]| {
        rs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    for d in &process.decisions {
        out.push(Scheduled {
            what: format!(
                "{} taken by reply ({})",
                d.name,
                d.quorum.describe(&d.voters)
            ),
            id: format!("decision:{}", d.id),
            kind: "decision",
            pathway: "every referral".into(),
            when: d.due.describe(),
            resolved: ctx.resolve(&d.due, &d.id)?,
            template: None,
            recipients: d.voters.clone(),
        });
    }
    if let Some(m) = &process.meeting {
        out.push(Scheduled {
            what: format!("Rapid review meeting ({} minutes)", m.minutes),
            id: "meeting".into(),
            kind: "meeting",
            pathway: String::new(),
            when: m.when.describe(),
            resolved: ctx.resolve(&m.when, "meeting")?,
            template: None,
            recipients: roles(&m.attendees),
        });
    }
    for s in &process.steps {
        let (when, resolved) = match &s.when {
            Some(w) => (w.describe(), ctx.resolve_letter(&s.id, w, false)?),
            None => ("when each return arrives".to_string(), None),
        };
        let mut recipients = roles(&s.to);
        if !s.cc.is_empty() {
            recipients.push_str(&format!("; cc {}", roles(&s.cc)));
        }
        if let Some(rb) = &s.return_by
            && let Some(r) = ctx.resolve(rb, &s.id)?
        {
            recipients.push_str(&format!("; return by {}", r.explanation));
        }
        out.push(Scheduled {
            what: s.name.clone(),
            id: s.id.clone(),
            kind: s.kind.name(),
            pathway: s.on.to_string(),
            when,
            resolved,
            template: Some(s.template.clone()),
            recipients,
        });
    }
    for d in &process.deadlines {
        out.push(Scheduled {
            what: d.name.clone(),
            id: format!("deadline:{}", d.id),
            kind: "deadline",
            pathway: d.on.to_string(),
            when: d.when.describe(),
            resolved: ctx.resolve(&d.when, &d.id)?,
            template: None,
            recipients: String::new(),
        });
    }
    // Dated lines in time order; undated ones (waiting on an event) at the end, in file order.
    out.sort_by(|a, b| match (&a.resolved, &b.resolved) {
        (Some(x), Some(y)) => x.at.cmp(&y.at),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    Ok((day0, out))
}

/// Render the planned schedule as the text `caseclerk timeline` prints.
pub fn render_schedule(
    process: &Process,
    received_at: DateTime<Utc>,
    day0: &calendar::Reckoning,
    lines: &[Scheduled],
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", process.name, process.id);
    let _ = writeln!(out, "source: {}", process.source);
    let _ = writeln!(
        out,
        "referral received {}",
        calendar::short_instant_zoned(received_at)
    );
    let _ = writeln!(out, "day 0 = {}", day0.explain());
    let _ = writeln!(out);
    for l in lines {
        let day = match &l.resolved {
            Some(r) => match r.day {
                Some(n) => format!("day {n:>2}"),
                None => "before".to_string(),
            },
            None => "  —   ".to_string(),
        };
        let at = match &l.resolved {
            Some(r) => calendar::short_instant(r.at),
            None => "(date not yet known)".to_string(),
        };
        let _ = writeln!(out, "{day}  {at:<22}  {} [{}] {}", l.what, l.kind, l.id);
        if !l.pathway.is_empty() && l.pathway != "every referral" {
            let _ = writeln!(out, "          pathway: {}", l.pathway);
        }
        if let Some(t) = &l.template {
            let _ = writeln!(out, "          letter: {t}");
        }
        if !l.recipients.is_empty() {
            let _ = writeln!(out, "          to: {}", l.recipients);
        }
        match &l.resolved {
            Some(r) => {
                let _ = writeln!(out, "          why: {}", r.explanation);
            }
            None => {
                let _ = writeln!(out, "          why: {}", l.when);
            }
        }
    }
    out
}

/// All recipients' addresses of a plan, for tests and logs (addresses are hashed by callers).
pub fn recipients(plan: &Plan) -> BTreeSet<String> {
    plan.due.iter().map(|l| l.to.email.clone()).collect()
}

/// A letter outside the process's steps: a notice about something that just happened, due now.
pub fn notice(
    cal: &Calendar,
    state: &CaseState,
    template: &str,
    key: &str,
    to: Recipient,
    notes: Vec<String>,
    now: DateTime<Utc>,
) -> DueLetter {
    let date = calendar::london_date(now);
    DueLetter {
        step: format!("notice-{template}"),
        step_name: template.replace('-', " "),
        kind: StepKind::Letter,
        template: template.to_string(),
        key: key.to_string(),
        to,
        also_to: Vec::new(),
        cc: Vec::new(),
        due: Resolved {
            at: now,
            date,
            day: cal.statutory().working_day_number(state.day0, date).ok(),
            explanation: "at once".into(),
        },
        attach: Vec::new(),
        agency: None,
        return_by: None,
        missing: Vec::new(),
        nil_returns: Vec::new(),
        returns: Vec::new(),
        meeting: None,
        meeting_change: None,
        notes,
        decision: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::case::{AgencyState, LetterState};
    use crate::core::process::{self, Environment};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const PROCESS: &str = r#"
        id = "test"
        name = "Test partnership"
        source = "unit test"
        [[decision]]
        id = "screening"
        voters = "screening_panel"
        quorum = "all"
        outcomes = ["meets", "nfa"]
        due = { day = 1, at = "17:00" }
        [meeting]
        when = { day = 11, at = "14:00" }
        attendees = ["review_group"]
        [[step]]
        id = "acknowledge"
        name = "Acknowledge"
        when = { anchor = "referral_received" }
        template = "t"
        to = ["referrer"]
        [[step]]
        id = "outcome"
        name = "Outcome to referrer"
        on = "screening:meets"
        when = { anchor = "decision:screening", at = "10:00" }
        template = "t"
        to = ["referrer"]
        [[step]]
        id = "request"
        name = "Agency request"
        kind = "agency_request"
        on = "screening:meets"
        when = { day = 2 }
        template = "t"
        to = ["agency"]
        return_by = { day = 7, at = "17:00" }
        [[step]]
        id = "receipt"
        name = "Receipt"
        kind = "return_receipt"
        on = "screening:meets"
        follows = "request"
        template = "t"
        to = ["agency"]
        [[step]]
        id = "chase"
        name = "Chase"
        kind = "chaser"
        on = "screening:meets"
        follows = "request"
        when = { day = 7, at = "10:00" }
        template = "t"
        to = ["agency"]
        cc = ["agency_lead"]
        [[step]]
        id = "escalate"
        name = "Escalate"
        kind = "escalation"
        on = "screening:meets"
        follows = "request"
        when = { day = 8 }
        template = "t"
        to = ["business_manager"]
        [[step]]
        id = "pack"
        name = "Collation"
        kind = "collation"
        on = "screening:meets"
        follows = "request"
        when = { day = 8, at = "08:30" }
        template = "t"
        to = ["review_group"]
        [[step]]
        id = "invite"
        name = "Invite"
        kind = "invite"
        on = "screening:meets"
        when = { day = 2 }
        template = "t"
        to = ["attendees"]
    "#;

    fn process(text: &str) -> Process {
        process::parse(
            "test.toml",
            text,
            &Environment {
                has_template: &|_| true,
            },
        )
        .unwrap()
    }

    struct Dir;
    fn contact(name: &str, email: &str) -> Contact {
        Contact {
            name: name.into(),
            email: email.into(),
            phone: None,
            partner: None,
        }
    }
    impl Lookup for Dir {
        fn people(&self, role: &str, _area: Option<&str>) -> Vec<Contact> {
            match role {
                "screening_panel" => vec![
                    contact("LA", "la@x.test"),
                    contact("Police", "police@x.test"),
                ],
                "review_group" => vec![contact("Group", "group@x.test")],
                "business_manager" => vec![contact("Manager", "manager@x.test")],
                _ => vec![],
            }
        }
        fn agency(&self, id: &str) -> Option<Agency> {
            Some(Agency {
                id: id.into(),
                name: id.to_uppercase(),
                aliases: vec![],
                contact: contact("Contact", &format!("{id}@agency.test")),
                lead: Some(contact("Lead", &format!("{id}.lead@agency.test"))),
                deputy: Some(contact("Deputy", &format!("{id}.deputy@agency.test"))),
                domains: vec![],
            })
        }
    }

    /// A case received Tue 22 Dec 2026 10:15 (day 0), with no events after opening.
    fn opened() -> CaseState {
        CaseState::new(
            "RR-2026-0001",
            "test",
            None,
            Some("referrer@hospital.test".into()),
            t("2026-12-22T10:15:00Z"),
            NaiveDate::from_ymd_opt(2026, 12, 22).unwrap(),
            1,
        )
    }

    fn sent(state: &mut CaseState, step: &str, key: &str, at: &str) {
        state.letters.insert(
            (step.into(), key.into()),
            LetterState {
                outbox: 1,
                due_at: t(at),
                queued_at: t(at),
                sent_at: Some(t(at)),
                undelivered: None,
                imported: false,
            },
        );
    }

    fn steps(plan: &Plan) -> Vec<(String, String)> {
        plan.due
            .iter()
            .map(|l| (l.step.clone(), l.key.clone()))
            .collect()
    }

    #[test]
    fn the_acknowledgement_is_due_the_moment_the_referral_arrives_and_nothing_else_before_screening()
     {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let plan = plan(&p, &Dir, &cal, &opened(), t("2026-12-22T10:16:00Z")).unwrap();
        assert_eq!(
            steps(&plan),
            [(
                "acknowledge".to_string(),
                "referrer@hospital.test".to_string()
            )]
        );
        assert_eq!(plan.due[0].due.at, t("2026-12-22T10:15:00Z"));
        // Nothing else can fall due until the screening decision is taken: no wake-up is scheduled
        // for pathway steps, whose anchor or pathway is still unknown.
        assert_eq!(plan.next_wake, None);
    }

    #[test]
    fn a_letter_already_decided_is_not_decided_again() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = opened();
        sent(
            &mut s,
            "acknowledge",
            "referrer@hospital.test",
            "2026-12-22T10:15:00Z",
        );
        let plan = plan(&p, &Dir, &cal, &s, t("2026-12-22T11:00:00Z")).unwrap();
        assert!(plan.due.is_empty());
    }

    #[test]
    fn the_screening_decision_opens_its_pathway_and_overdue_steps_come_out_at_once() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = opened();
        sent(
            &mut s,
            "acknowledge",
            "referrer@hospital.test",
            "2026-12-22T10:15:00Z",
        );
        s.agencies.insert("police".into(), AgencyState::default());
        // Decided late, on day 3 (Tue 29 Dec: no closure days in the bundled calendar) at 15:00:
        // the day-2 request is overdue and goes at once.
        s.decisions.insert(
            "screening".into(),
            ("meets".into(), t("2026-12-29T15:00:00Z")),
        );
        let now = t("2026-12-29T15:00:30Z");
        let plan = plan(&p, &Dir, &cal, &s, now).unwrap();
        let got = steps(&plan);
        assert!(
            got.contains(&("outcome".into(), "referrer@hospital.test".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("request".into(), "agency:police".into())),
            "{got:?}"
        );
        assert!(
            got.contains(&("invite".into(), "group@x.test".into())),
            "{got:?}"
        );
        let outcome = plan.due.iter().find(|l| l.step == "outcome").unwrap();
        assert_eq!(
            outcome.due.at,
            t("2026-12-29T15:00:00Z"),
            "never before the decision itself"
        );
        let request = plan.due.iter().find(|l| l.step == "request").unwrap();
        assert_eq!(request.due.day, Some(2));
        assert_eq!(request.to.email, "police@agency.test");
        // Asked a day late, on day 3, the agency has the process's five working days (day 2 to
        // day 7) from then: day 8, not day 7.
        let rb = request.return_by.as_ref().unwrap();
        assert_eq!(rb.day, Some(8));
        assert_eq!(rb.at, t("2027-01-06T17:00:00Z"));
        let invite = plan.due.iter().find(|l| l.step == "invite").unwrap();
        assert_eq!(invite.meeting.as_ref().unwrap().day, Some(11));
        // The escalation's day is next (day 8, 09:00): it goes on its date, naming only the
        // agencies whose own deadline has passed by then — none yet, so it waits for this one's.
        assert_eq!(plan.next_wake, Some(t("2027-01-06T09:00:00Z")));
    }

    #[test]
    fn a_decision_against_the_pathway_closes_it() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = opened();
        sent(
            &mut s,
            "acknowledge",
            "referrer@hospital.test",
            "2026-12-22T10:15:00Z",
        );
        s.agencies.insert("police".into(), AgencyState::default());
        s.decisions.insert(
            "screening".into(),
            ("nfa".into(), t("2026-12-23T12:00:00Z")),
        );
        let plan = plan(&p, &Dir, &cal, &s, t("2027-02-01T12:00:00Z")).unwrap();
        assert!(plan.due.is_empty(), "{:?}", steps(&plan));
    }

    /// Housing added at `at` (an `Agencies:` line or a person) and its request sent then.
    fn housing_asked_late(s: &mut CaseState, at: &str) {
        s.agencies.insert(
            "housing".into(),
            AgencyState {
                added_at: Some(t(at)),
                ..AgencyState::default()
            },
        );
        sent(s, "request", "agency:housing", at);
    }

    /// Every agency of [`asked_four`] but the police has returned, on day 7's morning.
    fn only_the_police_silent(s: &mut CaseState) {
        for id in ["health", "school", "gp"] {
            s.agencies.get_mut(id).unwrap().returned_at = Some(t("2027-01-05T12:00:00Z"));
        }
    }

    /// A case screened in on day 1 with four agencies asked on day 2.
    fn asked_four() -> CaseState {
        let mut s = opened();
        s.decisions.insert(
            "screening".into(),
            ("meets".into(), t("2026-12-23T12:00:00Z")),
        );
        for id in ["police", "health", "school", "gp"] {
            s.agencies.insert(id.into(), AgencyState::default());
            sent(
                &mut s,
                "request",
                &format!("agency:{id}"),
                "2026-12-24T09:00:00Z",
            );
        }
        for step in ["acknowledge", "outcome"] {
            sent(
                &mut s,
                step,
                "referrer@hospital.test",
                "2026-12-23T12:00:00Z",
            );
        }
        sent(&mut s, "invite", "group@x.test", "2026-12-24T09:00:00Z");
        s
    }

    #[test]
    fn on_the_chase_day_only_agencies_that_have_not_returned_are_chased_and_an_absent_contact_goes_to_the_deputy()
     {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        s.agencies.get_mut("police").unwrap().returned_at = Some(t("2026-12-30T10:00:00Z"));
        s.agencies.get_mut("school").unwrap().out_of_office_at = Some(t("2026-12-24T09:01:00Z"));
        sent(&mut s, "receipt", "agency:police", "2026-12-30T10:00:00Z");
        // Day 7 is Tue 5 Jan 2027; chase at 10:00.
        let before = plan(&p, &Dir, &cal, &s, t("2027-01-05T09:59:00Z")).unwrap();
        assert!(before.due.is_empty());
        assert_eq!(before.next_wake, Some(t("2027-01-05T10:00:00Z")));
        let plan = plan(&p, &Dir, &cal, &s, t("2027-01-05T10:00:00Z")).unwrap();
        let chased: Vec<_> = plan.due.iter().filter(|l| l.step == "chase").collect();
        let keys: Vec<_> = chased.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["agency:gp", "agency:health", "agency:school"]);
        let school = chased.iter().find(|l| l.key == "agency:school").unwrap();
        assert_eq!(school.to.email, "school.deputy@agency.test");
        assert_eq!(school.cc[0].email, "school.lead@agency.test");
        assert_eq!(school.return_by.as_ref().unwrap().day, Some(7));
    }

    #[test]
    fn a_reminder_whose_return_day_passed_while_the_daemon_was_stopped_is_not_sent_with_a_date_gone()
     {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let s = asked_four();
        let chasers = |now: &str| {
            plan(&p, &Dir, &cal, &s, t(now))
                .unwrap()
                .due
                .into_iter()
                .filter(|l| l.step == "chase")
                .count()
        };
        // Stopped from before the chase day to after the return day, and started again.
        assert_eq!(chasers("2027-01-20T10:00:00Z"), 0);
        // Started again after the chase day but before the return day: the reminders go.
        assert_eq!(chasers("2027-01-05T10:00:00Z"), 4);
        let late = plan(&p, &Dir, &cal, &s, t("2027-01-20T10:00:00Z")).unwrap();
        assert!(
            late.due.iter().any(|l| l.step == "escalate"),
            "the escalation still names who is missing"
        );
    }

    #[test]
    fn an_agency_asked_after_the_chase_day_is_not_chased_that_day() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        s.agencies
            .insert("late-added".into(), AgencyState::default());
        sent(
            &mut s,
            "request",
            "agency:late-added",
            "2027-01-06T09:00:00Z",
        );
        let plan = plan(&p, &Dir, &cal, &s, t("2027-01-06T09:30:00Z")).unwrap();
        assert!(
            !plan
                .due
                .iter()
                .any(|l| l.key == "agency:late-added" && l.step == "chase")
        );
    }

    #[test]
    fn an_agency_added_after_the_return_day_gets_its_own_deadline_and_the_pack_does_not_wait_past_the_meeting()
     {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        for id in ["police", "health", "school", "gp"] {
            s.agencies.get_mut(id).unwrap().returned_at = Some(t("2027-01-05T12:00:00Z"));
            sent(
                &mut s,
                "receipt",
                &format!("agency:{id}"),
                "2027-01-05T12:00:00Z",
            );
        }
        // An `Agencies:` line on day 8 (Wed 6 Jan 2027) at 08:00, after the day-7 deadline: the
        // request goes at once, with the process's five working days from today (day 13).
        s.agencies.insert(
            "housing".into(),
            AgencyState {
                added_at: Some(t("2027-01-06T08:00:00Z")),
                ..AgencyState::default()
            },
        );
        let now = t("2027-01-06T08:00:00Z");
        let asked = plan(&p, &Dir, &cal, &s, now).unwrap();
        let request = asked.due.iter().find(|l| l.step == "request").unwrap();
        let rb = request.return_by.as_ref().unwrap();
        assert_eq!(rb.at, t("2027-01-13T17:00:00Z"), "{}", rb.explanation);
        assert_eq!(rb.day, Some(13));
        assert!(
            rb.explanation.contains("the request went late"),
            "{}",
            rb.explanation
        );
        sent(&mut s, "request", "agency:housing", "2027-01-06T08:00:00Z");
        // Its deadline (day 13) is after the meeting (day 11): the day-8 pack goes on its date
        // with what is in, housing listed as missing, and the escalation names nobody yet (the
        // others returned; housing is not late).
        let day8 = plan(&p, &Dir, &cal, &s, t("2027-01-06T09:30:00Z")).unwrap();
        assert_eq!(
            steps(&day8),
            [("pack".to_string(), "group@x.test".to_string())]
        );
        assert_eq!(day8.due[0].missing, ["housing"]);
        sent(&mut s, "pack", "group@x.test", "2027-01-06T09:30:00Z");
        // It is chased on day 13, as far ahead of its deadline as the day-7 chase is of the
        // process's; past its deadline, the escalation names it.
        let chased = plan(&p, &Dir, &cal, &s, t("2027-01-13T10:00:00Z")).unwrap();
        assert_eq!(
            steps(&chased),
            [("chase".to_string(), "agency:housing".to_string())]
        );
        assert_eq!(chased.due[0].return_by.as_ref().unwrap().day, Some(13));
        sent(&mut s, "chase", "agency:housing", "2027-01-13T10:00:00Z");
        let late = plan(&p, &Dir, &cal, &s, t("2027-01-13T17:01:00Z")).unwrap();
        let esc = late.due.iter().find(|l| l.step == "escalate").unwrap();
        assert_eq!(esc.missing, ["housing"]);
        // Named there, it is not escalated again on its own date.
        sent(&mut s, "escalate", "manager@x.test", "2027-01-13T17:01:00Z");
        let day14 = plan(&p, &Dir, &cal, &s, t("2027-01-14T09:00:00Z")).unwrap();
        assert!(
            !day14.due.iter().any(|l| l.step == "escalate"),
            "{:?}",
            steps(&day14)
        );
        // Its return, before its own deadline, is not late.
        s.agencies.get_mut("housing").unwrap().returned_at = Some(t("2027-01-12T09:00:00Z"));
        let d = agency_return_deadline(&p, &cal, &s, "housing")
            .unwrap()
            .unwrap();
        assert_eq!(d.at, t("2027-01-13T17:00:00Z"));
        assert_eq!(
            agency_return_deadline(&p, &cal, &s, "police")
                .unwrap()
                .unwrap()
                .day,
            Some(7),
            "an agency asked on time keeps the process's date"
        );
    }

    #[test]
    fn an_agency_asked_late_never_holds_back_the_escalation_of_those_really_late() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        only_the_police_silent(&mut s);
        // Housing is added on day 5, so its own deadline is day 10, after the day-7 one and
        // before the day-11 meeting; the police, asked on day 2, are late from day 7 at 17:00.
        housing_asked_late(&mut s, "2026-12-31T08:00:00Z");
        let day8 = plan(&p, &Dir, &cal, &s, t("2027-01-06T09:30:00Z")).unwrap();
        let esc = day8.due.iter().find(|l| l.step == "escalate");
        assert_eq!(
            esc.map(|l| l.missing.clone()),
            Some(vec!["police".to_string()]),
            "{:?}",
            steps(&day8)
        );
    }

    #[test]
    fn an_agency_asked_late_is_escalated_on_its_own_date_once_and_those_already_named_are_not_named_again()
     {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        only_the_police_silent(&mut s);
        // Housing is asked on day 5, so its own deadline is day 10 (Fri 8 Jan 2027); the day-8
        // escalation named only the police, late since day 7.
        housing_asked_late(&mut s, "2026-12-31T08:00:00Z");
        sent(&mut s, "escalate", "manager@x.test", "2027-01-06T09:00:00Z");
        sent(&mut s, "pack", "group@x.test", "2027-01-08T17:00:00Z");
        sent(&mut s, "chase", "agency:police", "2027-01-05T10:00:00Z");
        sent(&mut s, "chase", "agency:housing", "2027-01-08T10:00:00Z");
        // Housing has not returned by its deadline: it is escalated as many working days after
        // it as the day-8 escalation is after day 7, on day 11 (Mon 11 Jan) at 09:00.
        let before = plan(&p, &Dir, &cal, &s, t("2027-01-11T08:59:00Z")).unwrap();
        assert!(
            !before.due.iter().any(|l| l.step == "escalate"),
            "{:?}",
            steps(&before)
        );
        assert_eq!(before.next_wake, Some(t("2027-01-11T09:00:00Z")));
        let day11 = plan(&p, &Dir, &cal, &s, t("2027-01-11T09:00:00Z")).unwrap();
        let esc: Vec<&DueLetter> = day11.due.iter().filter(|l| l.step == "escalate").collect();
        assert_eq!(esc.len(), 1, "{:?}", steps(&day11));
        assert_eq!(esc[0].key, "manager@x.test#late:housing");
        assert_eq!(esc[0].to.email, "manager@x.test");
        assert_eq!(
            esc[0].missing,
            ["housing"],
            "the police were named on day 8"
        );
        assert_eq!(
            esc[0].due.at,
            t("2027-01-11T09:00:00Z"),
            "{}",
            esc[0].due.explanation
        );
        assert_eq!(
            key_addressees(&esc[0].key).collect::<Vec<_>>(),
            ["manager@x.test"]
        );
        // Once it has gone, nothing about housing or the police goes again.
        sent(
            &mut s,
            "escalate",
            "manager@x.test#late:housing",
            "2027-01-11T09:00:00Z",
        );
        let later = plan(&p, &Dir, &cal, &s, t("2027-01-12T09:00:00Z")).unwrap();
        assert!(
            !later.due.iter().any(|l| l.step == "escalate"),
            "{:?}",
            steps(&later)
        );
        // A return before its own escalation date means there is nothing to escalate.
        s.letters.remove(&(
            "escalate".to_string(),
            "manager@x.test#late:housing".to_string(),
        ));
        s.agencies.get_mut("housing").unwrap().returned_at = Some(t("2027-01-10T09:00:00Z"));
        let returned = plan(&p, &Dir, &cal, &s, t("2027-01-11T09:00:00Z")).unwrap();
        assert!(!returned.due.iter().any(|l| l.step == "escalate"));
    }

    #[test]
    fn an_agency_asked_late_has_its_days_from_when_its_request_was_sent_not_when_it_was_queued() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        // Housing is added on day 5 (Thu 31 Dec 2026) and its request decided at once, but the
        // outbox holds it (a refused login) until day 7, Tue 5 Jan 2027 at 09:00.
        housing_asked_late(&mut s, "2026-12-31T08:00:00Z");
        s.letters
            .get_mut(&("request".to_string(), "agency:housing".to_string()))
            .unwrap()
            .sent_at = None;
        // While it waits, its five working days count from when it was decided: day 10.
        let held = agency_return_deadline(&p, &cal, &s, "housing")
            .unwrap()
            .unwrap();
        assert_eq!(held.at, t("2027-01-08T17:00:00Z"), "{}", held.explanation);
        // Sent on day 7, it has its five working days from then: day 12, Tue 12 Jan.
        s.letters
            .get_mut(&("request".to_string(), "agency:housing".to_string()))
            .unwrap()
            .sent_at = Some(t("2027-01-05T09:00:00Z"));
        let d = agency_return_deadline(&p, &cal, &s, "housing")
            .unwrap()
            .unwrap();
        assert_eq!(d.at, t("2027-01-12T17:00:00Z"), "{}", d.explanation);
        assert_eq!(d.day, Some(12));
        // It is chased on the morning its own return is due (as the day-7 chase is), day 12,
        // not on day 10.
        let day10 = plan(&p, &Dir, &cal, &s, t("2027-01-08T10:00:00Z")).unwrap();
        assert!(
            !day10.due.iter().any(|l| l.key == "agency:housing"),
            "{:?}",
            steps(&day10)
        );
        let day12 = plan(&p, &Dir, &cal, &s, t("2027-01-12T10:00:00Z")).unwrap();
        assert!(
            day12
                .due
                .iter()
                .any(|l| l.step == "chase" && l.key == "agency:housing"),
            "{:?}",
            steps(&day12)
        );
        // An agency asked on time whose request went an hour late keeps the process's date.
        s.letters
            .get_mut(&("request".to_string(), "agency:police".to_string()))
            .unwrap()
            .sent_at = Some(t("2026-12-24T10:00:00Z"));
        let police = agency_return_deadline(&p, &cal, &s, "police")
            .unwrap()
            .unwrap();
        assert_eq!(police.day, Some(7));
    }

    #[test]
    fn a_request_imported_at_the_first_run_keeps_the_process_s_deadline() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        // caseclerk's first run on Mon 18 Jan 2027 imported the day-2 requests (not sent):
        // people asked the agencies by hand, on time.
        for l in s.letters.values_mut() {
            l.queued_at = t("2027-01-18T09:00:00Z");
            l.due_at = t("2026-12-24T09:00:00Z");
            l.sent_at = None;
            l.imported = true;
        }
        let d = agency_return_deadline(&p, &cal, &s, "police")
            .unwrap()
            .unwrap();
        assert_eq!(d.day, Some(7));
        // The day-8 escalation and pack fell due before the run; nothing waits for later. The
        // day-7 chase is not due at all: its return day went by before the run.
        let now = t("2027-01-18T09:00:00Z");
        let got = plan(&p, &Dir, &cal, &s, now).unwrap();
        let mut due: Vec<&str> = got.due.iter().map(|l| l.step.as_str()).collect();
        due.dedup();
        assert_eq!(due, ["escalate", "pack"], "{:?}", steps(&got));
        assert!(got.due.iter().all(|l| l.due.at < now));
    }

    #[test]
    fn a_receipt_is_due_when_a_return_arrives() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        s.agencies.get_mut("health").unwrap().returned_at = Some(t("2026-12-31T11:00:00Z"));
        let mut plan = plan(&p, &Dir, &cal, &s, t("2026-12-31T11:00:05Z")).unwrap();
        address_receipts(&mut plan, &Dir);
        assert_eq!(
            steps(&plan),
            [("receipt".to_string(), "agency:health".to_string())]
        );
        assert_eq!(plan.due[0].to.email, "health@agency.test");
    }

    #[test]
    fn the_collation_pack_lists_nil_returns_and_missing_agencies_and_the_escalation_names_the_missing()
     {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = asked_four();
        for (id, nil) in [("police", false), ("health", true), ("school", false)] {
            let a = s.agencies.get_mut(id).unwrap();
            a.returned_at = Some(t("2027-01-04T10:00:00Z"));
            a.nil = nil;
            sent(
                &mut s,
                "receipt",
                &format!("agency:{id}"),
                "2027-01-04T10:00:00Z",
            );
        }
        sent(&mut s, "chase", "agency:gp", "2027-01-05T10:00:00Z");
        // Day 8 is Wed 6 Jan 2027.
        let plan = plan(&p, &Dir, &cal, &s, t("2027-01-06T09:00:00Z")).unwrap();
        let pack = plan.due.iter().find(|l| l.step == "pack").unwrap();
        assert_eq!(pack.missing, ["gp"]);
        assert_eq!(pack.nil_returns, ["health"]);
        assert_eq!(pack.to.email, "group@x.test");
        let esc = plan.due.iter().find(|l| l.step == "escalate").unwrap();
        assert_eq!(esc.missing, ["gp"]);
        // Once everyone has returned there is nothing to escalate.
        s.agencies.get_mut("gp").unwrap().returned_at = Some(t("2027-01-05T16:00:00Z"));
        let plan2 = super::plan(&p, &Dir, &cal, &s, t("2027-01-06T09:00:00Z")).unwrap();
        assert!(!plan2.due.iter().any(|l| l.step == "escalate"));
    }

    #[test]
    fn a_provisional_outcome_runs_its_pathway_until_the_decision_says_otherwise() {
        let text = PROCESS.replace(
            r#"outcomes = ["meets", "nfa"]"#,
            "outcomes = [\"meets\", \"nfa\"]\n        provisional = \"meets\"",
        );
        let p = process(&text);
        let cal = Calendar::bundled();
        let mut s = opened();
        s.agencies.insert("police".into(), AgencyState::default());
        // Day 2 (Thu 24 Dec) 09:00 with no decision yet: the request goes.
        let plan = plan(&p, &Dir, &cal, &s, t("2026-12-24T09:00:00Z")).unwrap();
        assert!(
            plan.due.iter().any(|l| l.step == "request"),
            "{:?}",
            steps(&plan)
        );
        s.decisions.insert(
            "screening".into(),
            ("nfa".into(), t("2026-12-24T10:00:00Z")),
        );
        let plan = super::plan(&p, &Dir, &cal, &s, t("2026-12-24T11:00:00Z")).unwrap();
        assert!(!plan.due.iter().any(|l| l.step == "request"));
    }

    #[test]
    fn a_closed_case_plans_nothing() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = opened();
        s.status = CaseStatus::Closed;
        let plan = plan(&p, &Dir, &cal, &s, t("2027-06-01T09:00:00Z")).unwrap();
        assert!(plan.due.is_empty() && plan.next_wake.is_none());
    }

    #[test]
    fn a_rescheduled_meeting_moves_the_invite() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = opened();
        s.decisions.insert(
            "screening".into(),
            ("meets".into(), t("2026-12-23T12:00:00Z")),
        );
        s.meeting_at = Some(t("2027-01-08T13:30:00Z"));
        let plan = plan(&p, &Dir, &cal, &s, t("2026-12-24T09:00:00Z")).unwrap();
        let invite = plan.due.iter().find(|l| l.step == "invite").unwrap();
        assert_eq!(
            invite.meeting.as_ref().unwrap().at,
            t("2027-01-08T13:30:00Z")
        );
    }

    #[test]
    fn an_undelivered_letter_is_raised_to_the_business_manager_once_and_a_notice_never_about_a_notice()
     {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = opened();
        sent(
            &mut s,
            "acknowledge",
            "referrer@hospital.test",
            "2026-12-22T10:15:00Z",
        );
        s.letters
            .get_mut(&(
                "acknowledge".to_string(),
                "referrer@hospital.test".to_string(),
            ))
            .unwrap()
            .undelivered = Some("bounced".into());
        let now = t("2026-12-22T10:20:00Z");
        let got = plan(&p, &Dir, &cal, &s, now).unwrap();
        assert_eq!(
            steps(&got),
            [(UNDELIVERED_NOTICE.to_string(), "undelivered:1".to_string())]
        );
        assert_eq!(got.due[0].to.email, "manager@x.test");
        assert!(
            got.due[0].notes.iter().any(|n| n == "Why: bounced"),
            "{:?}",
            got.due[0].notes
        );
        sent(
            &mut s,
            UNDELIVERED_NOTICE,
            "undelivered:1",
            "2026-12-22T10:20:00Z",
        );
        s.letters
            .get_mut(&(UNDELIVERED_NOTICE.to_string(), "undelivered:1".to_string()))
            .unwrap()
            .undelivered = Some("bounced too".into());
        assert!(plan(&p, &Dir, &cal, &s, now).unwrap().due.is_empty());
    }

    #[test]
    fn upcoming_lists_what_falls_due_in_a_window_on_open_pathways_only() {
        let p = process(PROCESS);
        let cal = Calendar::bundled();
        let mut s = opened();
        sent(
            &mut s,
            "acknowledge",
            "referrer@hospital.test",
            "2026-12-22T10:15:00Z",
        );
        // Before screening, nothing on the meets pathway is upcoming.
        let none = upcoming(
            &p,
            &cal,
            &s,
            t("2026-12-22T11:00:00Z"),
            t("2027-02-01T00:00:00Z"),
        )
        .unwrap();
        assert!(none.is_empty(), "{none:?}");
        s.decisions.insert(
            "screening".into(),
            ("meets".into(), t("2026-12-23T12:00:00Z")),
        );
        let next_two_days = upcoming(
            &p,
            &cal,
            &s,
            t("2026-12-24T00:00:00Z"),
            t("2026-12-30T00:00:00Z"),
        )
        .unwrap();
        let ids: Vec<&str> = next_two_days.iter().map(|u| u.step.as_str()).collect();
        assert_eq!(
            ids,
            ["request", "invite"],
            "day 2 (Thu 24 Dec) only; day 3 is Tue 29 Dec"
        );
        assert_eq!(
            meeting_at(&p, &cal, &s).unwrap(),
            Some(t("2027-01-11T14:00:00Z")),
            "day 11"
        );
    }

    #[test]
    fn an_lcspr_that_will_miss_six_months_is_reported_to_the_panel_and_the_secretary_of_state_once()
    {
        let text = format!(
            "{PROCESS}\n[[decision]]\nid = \"sign_off\"\nvoters = \"screening_panel\"\nquorum = \"all\"\noutcomes = [\"lcspr\", \"no_lcspr\"]\ndue = {{ day = 15 }}\n\
             [[deadline]]\nid = \"lcspr_six_months\"\nname = \"LCSPR\"\non = \"sign_off:lcspr\"\nwhen = {{ anchor = \"lcspr_decision\", months = 6, roll = \"previous\" }}\n"
        );
        let p = process(&text);
        let cal = Calendar::bundled();
        let mut s = opened();
        s.decisions.insert(
            "screening".into(),
            ("meets".into(), t("2026-12-23T12:00:00Z")),
        );
        for step in ["acknowledge", "outcome"] {
            sent(
                &mut s,
                step,
                "referrer@hospital.test",
                "2026-12-23T12:00:00Z",
            );
        }
        sent(&mut s, "invite", "group@x.test", "2026-12-24T09:00:00Z");
        s.decisions.insert(
            "sign_off".into(),
            ("lcspr".into(), t("2027-01-14T12:00:00Z")),
        );
        struct WithPanel;
        impl Lookup for WithPanel {
            fn people(&self, role: &str, area: Option<&str>) -> Vec<Contact> {
                match role {
                    "national_panel" => vec![contact("Panel", "panel@x.test")],
                    "secretary_of_state" => vec![contact("DfE", "dfe@x.test")],
                    other => Dir.people(other, area),
                }
            }
            fn agency(&self, id: &str) -> Option<Agency> {
                Dir.agency(id)
            }
        }
        let notices = |plan: &Plan| {
            plan.due
                .iter()
                .filter(|l| l.step == LCSPR_DELAY_NOTICE)
                .map(|l| l.to.email.clone())
                .collect::<Vec<_>>()
        };
        // Publication planned in time: nothing.
        s.publication = Some(NaiveDate::from_ymd_opt(2027, 7, 1).unwrap());
        assert!(
            notices(&plan(&p, &WithPanel, &cal, &s, t("2027-02-01T09:00:00Z")).unwrap()).is_empty()
        );
        // Planned after 14 Jul 2027: both are told at once.
        s.publication = Some(NaiveDate::from_ymd_opt(2027, 9, 1).unwrap());
        assert_eq!(
            notices(&plan(&p, &WithPanel, &cal, &s, t("2027-02-01T09:00:00Z")).unwrap()),
            ["panel@x.test", "dfe@x.test"]
        );
        // None planned: told when the six months pass, not before.
        s.publication = None;
        let before = plan(&p, &WithPanel, &cal, &s, t("2027-07-13T09:00:00Z")).unwrap();
        assert!(notices(&before).is_empty());
        assert!(
            notices(&plan(&p, &WithPanel, &cal, &s, t("2027-07-14T10:00:00Z")).unwrap()).len() == 2
        );
        sent(
            &mut s,
            LCSPR_DELAY_NOTICE,
            "lcspr-delay:panel@x.test",
            "2027-07-14T10:00:00Z",
        );
        sent(
            &mut s,
            LCSPR_DELAY_NOTICE,
            "lcspr-delay:dfe@x.test",
            "2027-07-14T10:00:00Z",
        );
        assert!(
            notices(&plan(&p, &WithPanel, &cal, &s, t("2027-07-15T10:00:00Z")).unwrap()).is_empty()
        );
    }
}
