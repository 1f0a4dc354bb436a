//! A partnership's rapid-review timeline as data.
//!
//! Owns the process file format (`config/processes/<id>.toml`) and its validation: every step's
//! anchor, offset, time of day, letter template, recipients by role, the pathway (decision outcome)
//! it belongs to, the replies it expects, chasers and escalations; the decisions with their quorum
//! rules; the meeting; and the statutory deadlines shown to the business unit.
//!
//! Loading is *raw → resolved*: the TOML is deserialised into loose `Raw*` structs, then resolved
//! into [`Process`], collecting **every** problem (unknown anchor or role, missing template, a step
//! anchored on itself through other steps, …) into one [`ProcessError`] instead of stopping at the
//! first.
//!
//! Must not: read files other than the one it is given (template existence is passed in), read the
//! clock, or compute dates (that is [`crate::core::timeline`] with [`crate::core::calendar`]).
//!
//! # The format in brief
//! ```toml
//! id = "nelincs"
//! name = "North East Lincolnshire Safeguarding Children Partnership"
//! source = "shared/seeds/002_….txt, Flowchart 2"
//! default_at = "09:00"
//! # What names the child in a letter to an agency (agency_request, chaser): particulars read from
//! # the referral and confirmed by a person, only over SMTP that requires TLS (default: none).
//! identify_child = ["initials", "date_of_birth", "incident_date"]
//!
//! [[decision]]                       # a decision taken by email reply
//! id = "screening"
//! voters = "statutory_partners"
//! quorum = "all"                     # all | majority | three_including_two_partners
//! outcomes = ["meets", "nfa", "single_agency", "query"]
//! provisional = "meets"              # NE Lincs: the review runs while the partners agree
//! due = { anchor = "referral", working_days = 5 }
//!
//! [meeting]
//! when = { day = 11, at = "14:00" }
//! minutes = 120
//! attendees = ["review_group"]
//!
//! [[step]]
//! id = "scsi5-agency-request"
//! kind = "agency_request"
//! on = "screening:meets"             # pathway: only when that decision has that outcome
//! when = { day = 2 }                 # working day 2 from day 0, at default_at
//! to = ["agency"]
//! template = "nelincs/scsi6-agency-request"
//! attach = ["agency_template"]
//! return_by = { day = 7, at = "17:00" }   # for agencies asked on the request's day; one asked
//!                                        # later gets the same working days from its request
//!                                        # (README, "When an agency must return")
//! ```
//!
//! # Who receives a step's letter, and how often
//! Each person receives a given letter of a step once (per round: a reopened decision asks
//! again). How the people in `to` and `cc` are written to depends on the step's kind:
//! - **Shared letters** (`letter`, `escalation`, `collation`): the letter says the same thing to
//!   everyone, so it goes as **one message** to everybody in `to`, with everybody in `cc` copied
//!   (minus anyone already in `to`); the greeting names them all. One thread, one reply-all.
//! - **Individual letters** (`decision_request`, `panel_submission`, `invite`): each person in
//!   `to` gets their own (their own vote code; their own invitation), and the people in `cc` are
//!   copied on **the first of them only**, never on the others — a manager sees the letter once,
//!   not once per member. Someone in both `to` and `cc` gets just their own letter.
//! - **Agency letters** (`agency_request`, `chaser`, `return_receipt`): one per agency, each about
//!   that agency (its own deadline, its own return); `cc` names that agency's people
//!   (`agency_lead`), copied on their agency's letter.

use chrono::NaiveTime;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What a step's date is counted from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Anchor {
    /// The instant the referral reached the mailbox (IMAP INTERNALDATE).
    ReferralReceived,
    /// Day 0 of the review: the working day the referral was received.
    Referral,
    /// The day a decision (by id, e.g. `screening`, `sign_off`) was taken.
    Decision(String),
    /// The day of the rapid review meeting.
    Meeting,
    /// The day the rapid review was sent to the National Panel.
    PanelSubmission,
    /// The day the National Panel's answer arrived.
    PanelResponse,
    /// The day an LCSPR was commissioned (the 6-month clock).
    LcsprDecision,
    /// The planned publication date of an LCSPR report.
    Publication,
    /// When another step of this process is due (`step:<id>`).
    Step(String),
}

impl Anchor {
    fn parse(text: &str) -> Option<Anchor> {
        Some(match text {
            "referral_received" => Anchor::ReferralReceived,
            "referral" => Anchor::Referral,
            "meeting" => Anchor::Meeting,
            "panel_submission" => Anchor::PanelSubmission,
            "panel_response" => Anchor::PanelResponse,
            "lcspr_decision" => Anchor::LcsprDecision,
            "publication" => Anchor::Publication,
            other => {
                if let Some(id) = other.strip_prefix("decision:") {
                    Anchor::Decision(id.to_string())
                } else if let Some(id) = other.strip_prefix("step:") {
                    Anchor::Step(id.to_string())
                } else {
                    return None;
                }
            }
        })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anchor::ReferralReceived => write!(f, "the referral's arrival"),
            Anchor::Referral => write!(f, "day 0"),
            Anchor::Decision(id) => write!(f, "the {id} decision"),
            Anchor::Meeting => write!(f, "the rapid review meeting"),
            Anchor::PanelSubmission => write!(f, "the submission to the National Panel"),
            Anchor::PanelResponse => write!(f, "the National Panel's response"),
            Anchor::LcsprDecision => write!(f, "the decision to hold an LCSPR"),
            Anchor::Publication => write!(f, "the planned publication date"),
            Anchor::Step(id) => write!(f, "step {id}"),
        }
    }
}

/// Which way a date that lands on a non-working day moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roll {
    /// To the next working day (the default: nothing is sent on a weekend).
    Next,
    /// To the previous working day (a deadline that must not be missed).
    Previous,
    /// Not at all (elapsed-hours deadlines such as Tameside's 48 hours).
    None,
}

/// When something falls due: an anchor plus an offset, at a time of day.
///
/// Offsets apply in this order: calendar months, calendar weeks, then the roll to a working day,
/// then working days, then elapsed hours. `at` is Europe/London wall-clock time; `None` means "at the
/// anchor's own instant" for `referral_received`/hours offsets, else the process's `default_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub anchor: Anchor,
    pub months: i32,
    pub weeks: i32,
    pub working_days: i32,
    pub hours: i64,
    pub at: Option<NaiveTime>,
    pub roll: Roll,
}

impl When {
    /// True when the due instant is the anchor's instant plus elapsed hours (no wall-clock time).
    pub fn is_instant(&self) -> bool {
        self.at.is_none()
            && (self.anchor == Anchor::ReferralReceived || self.hours != 0)
            && self.months == 0
            && self.weeks == 0
            && self.working_days == 0
    }

    /// "working day 7", "2 working days after the screening decision", "7 working days before the
    /// planned publication date", "6 months after …", "48 hours after the referral's arrival".
    pub fn describe(&self) -> String {
        let plural = |n: i64, unit: &str| {
            if n.abs() == 1 {
                format!("1 {unit}")
            } else {
                format!("{} {unit}s", n.abs())
            }
        };
        let side = |n: i64| if n < 0 { "before" } else { "after" };
        if self.anchor == Anchor::Referral
            && self.months == 0
            && self.weeks == 0
            && self.hours == 0
            && self.working_days >= 0
        {
            return format!("working day {}", self.working_days);
        }
        // Calendar offsets first ("6 months after the decision to hold an LCSPR"), then working days
        // counted from that ("20 working days before 6 months after …"), then elapsed hours.
        let mut phrase = self.anchor.to_string();
        let mut calendar = Vec::new();
        if self.months != 0 {
            calendar.push((i64::from(self.months), "month"));
        }
        if self.weeks != 0 {
            calendar.push((i64::from(self.weeks), "week"));
        }
        for (n, unit) in calendar {
            phrase = format!("{} {} {phrase}", plural(n, unit), side(n));
        }
        if self.working_days != 0 {
            let n = i64::from(self.working_days);
            phrase = format!("{} {} {phrase}", plural(n, "working day"), side(n));
        }
        if self.hours != 0 {
            phrase = format!(
                "{} {} {phrase}",
                plural(self.hours, "hour"),
                side(self.hours)
            );
        }
        if phrase == self.anchor.to_string() {
            format!("at {phrase}")
        } else {
            phrase
        }
    }
}

/// Who a letter goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The person who sent the referral (from the case).
    Referrer,
    /// Each agency involved in the case: one letter per agency.
    Agency,
    /// The named safeguarding lead of the agency the letter is for (copies on chasers).
    AgencyLead,
    /// Everyone who attends the meeting (the meeting's `attendees` roles).
    Attendees,
    /// A role whose people are listed in the partnership's configuration (`[roles]`).
    Directory(String),
}

/// Roles every partnership may use without declaring them; their people come from the config.
pub const DIRECTORY_ROLES: &[&str] = &[
    "business_unit",
    "business_manager",
    "screening_panel",
    "statutory_partners",
    "la",
    "police",
    "icb",
    "review_group",
    "chair",
    "national_panel",
    "ofsted",
    "secretary_of_state",
    "executive_chair",
    "independent_scrutineer",
    "partnership_chair",
    "case_review_subgroup",
    "strategic_partnership",
    "safeguarding_executive",
    "la_head_of_safeguarding",
];

impl Role {
    fn parse(text: &str, extra: &BTreeSet<String>) -> Option<Role> {
        Some(match text {
            "referrer" => Role::Referrer,
            "agency" => Role::Agency,
            "agency_lead" => Role::AgencyLead,
            "attendees" => Role::Attendees,
            other if DIRECTORY_ROLES.contains(&other) || extra.contains(other) => {
                Role::Directory(other.to_string())
            }
            _ => return None,
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Referrer => write!(f, "referrer"),
            Role::Agency => write!(f, "agency"),
            Role::AgencyLead => write!(f, "agency_lead"),
            Role::Attendees => write!(f, "attendees"),
            Role::Directory(name) => write!(f, "{name}"),
        }
    }
}

/// What a step does, which decides how the engine fans it out and what it expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// A letter to its recipients, once each.
    Letter,
    /// A request for votes on a decision; each voter gets their own letter and token.
    DecisionRequest,
    /// An information request to each involved agency, with a return deadline.
    AgencyRequest,
    /// A receipt to an agency when its return arrives (sent on the event, not on a date).
    ReturnReceipt,
    /// A reminder to each agency that has not returned by its date.
    Chaser,
    /// A note to the business unit naming agencies still missing after the deadline.
    Escalation,
    /// The collated returns (attached), nil returns and missing agencies, to the review group.
    Collation,
    /// The meeting invitation (iCalendar, METHOD:REQUEST) to every attendee.
    Invite,
    /// The signed decision and covering letter to the National Panel.
    PanelSubmission,
}

impl StepKind {
    fn parse(text: &str) -> Option<StepKind> {
        Some(match text {
            "letter" => StepKind::Letter,
            "decision_request" => StepKind::DecisionRequest,
            "agency_request" => StepKind::AgencyRequest,
            "return_receipt" => StepKind::ReturnReceipt,
            "chaser" => StepKind::Chaser,
            "escalation" => StepKind::Escalation,
            "collation" => StepKind::Collation,
            "invite" => StepKind::Invite,
            "panel_submission" => StepKind::PanelSubmission,
            _ => return None,
        })
    }

    /// The name used in process files.
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Letter => "letter",
            StepKind::DecisionRequest => "decision_request",
            StepKind::AgencyRequest => "agency_request",
            StepKind::ReturnReceipt => "return_receipt",
            StepKind::Chaser => "chaser",
            StepKind::Escalation => "escalation",
            StepKind::Collation => "collation",
            StepKind::Invite => "invite",
            StepKind::PanelSubmission => "panel_submission",
        }
    }
}

/// The pathway a step belongs to: always, or only when a decision has one of some outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pathway {
    Always,
    Outcome {
        decision: String,
        outcomes: Vec<String>,
    },
}

impl fmt::Display for Pathway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pathway::Always => write!(f, "every referral"),
            Pathway::Outcome { decision, outcomes } => {
                write!(f, "{decision}: {}", outcomes.join(" or "))
            }
        }
    }
}

/// One step of a process.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub name: String,
    pub kind: StepKind,
    pub on: Pathway,
    /// When the step falls due. `None` only for event-driven steps ([`StepKind::ReturnReceipt`]).
    pub when: Option<When>,
    pub template: String,
    pub to: Vec<Role>,
    pub cc: Vec<Role>,
    /// Named files from the config's `[attachments]` table.
    pub attach: Vec<String>,
    /// For agency requests: the return deadline written into the letter.
    pub return_by: Option<When>,
    /// For agency requests (`one_agency = true`): the letter is for one agency, the one with the
    /// learning — a single-agency outcome. With several agencies on the case nobody is written
    /// to and the business unit is told to leave only that one (`caseclerk agencies remove`).
    pub one_agency: bool,
    /// For chasers, escalations, receipts and collations: the agency request they follow.
    pub follows: Option<String>,
    /// For decision requests: which decision is asked; for a panel submission: the decision its
    /// answer takes (the National Panel's response).
    pub decision: Option<String>,
    /// Free text from the process file: why this step is where it is.
    pub note: Option<String>,
}

/// How a decision's votes become an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quorum {
    /// Every voter, agreeing (Bury, North East Lincolnshire).
    All,
    /// A majority of voters; if they disagree, the tie-breaker role is consulted (Tameside).
    Majority { tie_breaker: Option<String> },
    /// At least `min_votes` agreeing votes including at least `min_partners` statutory partners
    /// (Buckinghamshire: three including two partners).
    AtLeast { min_votes: u32, min_partners: u32 },
}

impl Quorum {
    /// The rule in words, for letters and the schedule.
    pub fn describe(&self, voters: &str) -> String {
        let voters = voters.replace('_', " ");
        match self {
            Quorum::All => format!("all of the {voters} must agree"),
            Quorum::Majority { tie_breaker: None } => format!("a majority of the {voters} decides"),
            Quorum::Majority {
                tie_breaker: Some(t),
            } => format!(
                "a majority of the {voters} decides; if they disagree, the {} is consulted",
                t.replace('_', " ")
            ),
            Quorum::AtLeast {
                min_votes,
                min_partners,
            } => format!(
                "at least {min_votes} agreeing {voters}, including at least {min_partners} of the statutory partners"
            ),
        }
    }
}

/// A decision taken by email reply.
#[derive(Debug, Clone)]
pub struct Decision {
    pub id: String,
    pub name: String,
    /// The directory role whose members vote.
    pub voters: String,
    pub quorum: Quorum,
    pub outcomes: Vec<String>,
    /// The outcome assumed until the decision is taken (NE Lincs runs the review meanwhile).
    pub provisional: Option<String>,
    /// When the decision is due.
    pub due: When,
    /// The words a reply uses for each outcome ("MEETS", "NO LCSPR"), by outcome id. Defaults to
    /// the outcome id itself and the id with spaces for underscores.
    pub keywords: BTreeMap<String, Vec<String>>,
    /// Read the outcome anywhere in the reply (prose answers such as the National Panel's) rather
    /// than from the first line.
    pub read_anywhere: bool,
}

/// The rapid review meeting.
#[derive(Debug, Clone)]
pub struct Meeting {
    pub when: When,
    pub minutes: u32,
    pub attendees: Vec<Role>,
    /// Working days between which the meeting may be moved (Buckinghamshire: 7 to 13).
    pub window: Option<(i32, i32)>,
}

/// A statutory or local deadline the business unit must see coming.
#[derive(Debug, Clone)]
pub struct Deadline {
    pub id: String,
    pub name: String,
    pub on: Pathway,
    pub when: When,
}

/// A validated process definition.
#[derive(Debug, Clone)]
pub struct Process {
    pub id: String,
    pub name: String,
    pub source: String,
    pub default_at: NaiveTime,
    pub areas: Vec<String>,
    pub decisions: Vec<Decision>,
    pub meeting: Option<Meeting>,
    pub steps: Vec<Step>,
    pub deadlines: Vec<Deadline>,
    pub extra_roles: Vec<String>,
    /// The periodic tracker report across all cases (`[tracker_report]`), if the partnership
    /// sends one.
    pub tracker_report: Option<TrackerReport>,
    /// What identifies the child in a letter to an agency (an `agency_request` or `chaser` step):
    /// `identify_child = ["initials", "date_of_birth"]`, particulars a person has confirmed, in
    /// this order, and only over an SMTP connection that requires TLS
    /// ([`crate::core::particulars::for_letter`]). Empty (the default): none.
    pub identify_child: Vec<crate::core::particulars::Field>,
}

/// How often the tracker report goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    /// Monthly, on the `working_day`th working day of the month (1 = the first).
    Month { working_day: u32 },
    /// Every `weeks` weeks, counted from Monday 1 January 2024, on `weekday` (or the next working
    /// day when that is not one).
    Weeks {
        weeks: u32,
        weekday: chrono::Weekday,
    },
}

/// The tracker report (`[tracker_report]`): every case on one spreadsheet, emailed to `to` once
/// per period (BHR: "reported as part of a tracker report … so no situations are lost").
///
/// ```toml
/// [tracker_report]
/// every = "month"        # or "week", or weeks = 2
/// on_day = 1             # month: the Nth working day (1-15); weeks: "monday"…"friday"
/// at = "09:00"           # London time; default: the process's default_at
/// to = ["strategic_partnership", "independent_scrutineer"]
/// template = "tracker-report"   # the default
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerReport {
    pub every: Every,
    pub at: NaiveTime,
    /// The covering letter's template (the spreadsheet is attached to it).
    pub template: String,
    /// Directory roles; one email, to the first person, copied to the rest.
    pub to: Vec<Role>,
}

impl Process {
    /// The step with this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The decision with this id.
    pub fn decision(&self, id: &str) -> Option<&Decision> {
        self.decisions.iter().find(|d| d.id == id)
    }

    /// Every directory role the process sends letters to, votes with or invites.
    pub fn directory_roles(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut add = |r: &Role| {
            if let Role::Directory(name) = r {
                out.insert(name.clone());
            }
        };
        for s in &self.steps {
            s.to.iter().chain(&s.cc).for_each(&mut add);
        }
        if let Some(m) = &self.meeting {
            m.attendees.iter().for_each(&mut add);
        }
        if let Some(t) = &self.tracker_report {
            t.to.iter().for_each(&mut add);
        }
        for d in &self.decisions {
            out.insert(d.voters.clone());
        }
        out
    }

    /// Every template name the process uses.
    pub fn templates(&self) -> BTreeSet<String> {
        self.steps.iter().map(|s| s.template.clone()).collect()
    }

    /// Every `[attachments]` name the process uses.
    pub fn attachment_names(&self) -> BTreeSet<String> {
        self.steps
            .iter()
            .flat_map(|s| s.attach.iter().cloned())
            .collect()
    }
}

/// Every problem found in one process file.
#[derive(Debug, thiserror::Error)]
#[error("process file {file} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ProcessError {
    pub file: String,
    pub problems: Vec<String>,
}

// ---- raw (serde) form ----------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    id: String,
    name: String,
    source: String,
    #[serde(default)]
    default_at: Option<String>,
    #[serde(default)]
    areas: Vec<String>,
    #[serde(default)]
    extra_roles: Vec<String>,
    #[serde(default, rename = "decision")]
    decisions: Vec<RawDecision>,
    #[serde(default)]
    meeting: Option<RawMeeting>,
    #[serde(default, rename = "step")]
    steps: Vec<RawStep>,
    #[serde(default, rename = "deadline")]
    deadlines: Vec<RawDeadline>,
    #[serde(default)]
    tracker_report: Option<RawTrackerReport>,
    #[serde(default)]
    identify_child: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrackerReport {
    every: Option<String>,
    weeks: Option<u32>,
    on_day: Option<toml::Value>,
    at: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    template: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    day: Option<i32>,
    anchor: Option<String>,
    #[serde(default)]
    months: i32,
    #[serde(default)]
    weeks: i32,
    #[serde(default)]
    working_days: i32,
    #[serde(default)]
    hours: i64,
    at: Option<String>,
    roll: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecision {
    id: String,
    #[serde(default)]
    name: Option<String>,
    voters: String,
    quorum: String,
    #[serde(default)]
    tie_breaker: Option<String>,
    #[serde(default)]
    min_votes: Option<u32>,
    #[serde(default)]
    min_partners: Option<u32>,
    outcomes: Vec<String>,
    #[serde(default)]
    provisional: Option<String>,
    due: RawWhen,
    #[serde(default)]
    keywords: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    read: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeeting {
    when: RawWhen,
    #[serde(default = "default_minutes")]
    minutes: u32,
    attendees: Vec<String>,
    #[serde(default)]
    window: Option<[i32; 2]>,
}

fn default_minutes() -> u32 {
    120
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    on: Option<String>,
    #[serde(default)]
    when: Option<RawWhen>,
    template: String,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    attach: Vec<String>,
    #[serde(default)]
    return_by: Option<RawWhen>,
    #[serde(default)]
    one_agency: bool,
    #[serde(default)]
    follows: Option<String>,
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadline {
    id: String,
    name: String,
    #[serde(default)]
    on: Option<String>,
    when: RawWhen,
}

/// What the loader may check outside the file itself.
pub struct Environment<'a> {
    /// Is there a template with this name (all of its parts)?
    pub has_template: &'a dyn Fn(&str) -> bool,
}

/// Parse and validate a process file's text. `file` names it in errors.
pub fn parse(file: &str, text: &str, env: &Environment<'_>) -> Result<Process, ProcessError> {
    let raw: RawProcess = toml::from_str(text).map_err(|e| ProcessError {
        file: file.to_string(),
        problems: vec![format!(
            "not a valid process file: {}",
            e.to_string().trim()
        )],
    })?;
    Resolver::new(file, env).resolve(raw)
}

struct Resolver<'a> {
    file: String,
    env: &'a Environment<'a>,
    problems: Vec<String>,
    extra_roles: BTreeSet<String>,
}

fn parse_time(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

impl<'a> Resolver<'a> {
    fn new(file: &str, env: &'a Environment<'a>) -> Self {
        Resolver {
            file: file.to_string(),
            env,
            problems: Vec::new(),
            extra_roles: BTreeSet::new(),
        }
    }

    fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    fn when(&mut self, owner: &str, raw: &RawWhen) -> Option<When> {
        let anchor = match (&raw.day, &raw.anchor) {
            (Some(_), Some(_)) => {
                self.problem(format!("{owner}: give either `day` or `anchor`, not both"));
                return None;
            }
            (Some(day), None) => {
                if raw.working_days != 0 {
                    self.problem(format!(
                        "{owner}: `day` already counts working days from day 0; drop `working_days`"
                    ));
                }
                if *day < 0 {
                    self.problem(format!("{owner}: `day` must be 0 or more (got {day})"));
                }
                Anchor::Referral
            }
            (None, Some(text)) => match Anchor::parse(text) {
                Some(a) => a,
                None => {
                    self.problem(format!(
                        "{owner}: unknown anchor `{text}` (use referral_received, referral, decision:<id>, \
                         meeting, panel_submission, panel_response, lcspr_decision, publication or step:<id>)"
                    ));
                    return None;
                }
            },
            (None, None) => {
                self.problem(format!("{owner}: needs `day = N` or `anchor = \"…\"`"));
                return None;
            }
        };
        let at = match &raw.at {
            Some(t) => match parse_time(t) {
                Some(t) => Some(t),
                None => {
                    self.problem(format!(
                        "{owner}: `at = \"{t}\"` is not a time like \"09:30\""
                    ));
                    None
                }
            },
            None => None,
        };
        let roll = match raw.roll.as_deref() {
            None | Some("next") => Roll::Next,
            Some("previous") => Roll::Previous,
            Some("none") => Roll::None,
            Some(other) => {
                self.problem(format!(
                    "{owner}: roll `{other}` is not one of next, previous, none"
                ));
                Roll::Next
            }
        };
        if raw.hours != 0 && at.is_some() {
            self.problem(format!(
                "{owner}: an offset in hours is an elapsed time; it cannot also have `at`"
            ));
        }
        if raw.hours != 0
            && (raw.months != 0 || raw.weeks != 0 || raw.working_days != 0 || raw.day.is_some())
        {
            self.problem(format!(
                "{owner}: combine hours with nothing else (hours count elapsed time from the anchor)"
            ));
        }
        Some(When {
            anchor,
            months: raw.months,
            weeks: raw.weeks,
            working_days: raw.day.unwrap_or(raw.working_days),
            hours: raw.hours,
            at,
            roll,
        })
    }

    fn roles(&mut self, owner: &str, field: &str, names: &[String]) -> Vec<Role> {
        let mut out = Vec::new();
        for name in names {
            match Role::parse(name, &self.extra_roles) {
                Some(r) => out.push(r),
                None => self.problem(format!(
                    "{owner}: unknown role `{name}` in `{field}` (built-in roles: referrer, agency, agency_lead, \
                     attendees, {}; declare others in `extra_roles`)",
                    DIRECTORY_ROLES.join(", ")
                )),
            }
        }
        out
    }

    fn pathway(&mut self, owner: &str, on: Option<&str>, decisions: &[Decision]) -> Pathway {
        let Some(text) = on else {
            return Pathway::Always;
        };
        if text == "referral" || text == "always" {
            return Pathway::Always;
        }
        let Some((decision, outcomes)) = text.split_once(':') else {
            self.problem(format!(
                "{owner}: `on = \"{text}\"` should look like \"screening:meets\" (decision:outcome)"
            ));
            return Pathway::Always;
        };
        let outcomes: Vec<String> = outcomes.split('|').map(|s| s.trim().to_string()).collect();
        match decisions.iter().find(|d| d.id == decision) {
            None => self.problem(format!(
                "{owner}: `on` names decision `{decision}`, which this process does not define"
            )),
            Some(d) => {
                for o in &outcomes {
                    if !d.outcomes.contains(o) {
                        self.problem(format!(
                            "{owner}: decision `{decision}` has no outcome `{o}` (it has {})",
                            d.outcomes.join(", ")
                        ));
                    }
                }
            }
        }
        Pathway::Outcome {
            decision: decision.to_string(),
            outcomes,
        }
    }

    fn resolve(mut self, raw: RawProcess) -> Result<Process, ProcessError> {
        let default_at = self.header(&raw);
        let decisions = self.decisions(&raw.decisions);
        let meeting = raw.meeting.as_ref().and_then(|m| self.meeting(m));
        let steps = self.steps(&raw.steps, &decisions, meeting.as_ref());
        let deadlines: Vec<Deadline> = raw
            .deadlines
            .iter()
            .filter_map(|d| {
                let owner = format!("deadline `{}`", d.id);
                let on = self.pathway(&owner, d.on.as_deref(), &decisions);
                self.when(&owner, &d.when).map(|when| Deadline {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    on,
                    when,
                })
            })
            .collect();

        let tracker_report = raw
            .tracker_report
            .as_ref()
            .and_then(|t| self.tracker_report(t, default_at));
        let identify_child = self.identify_child(&raw.identify_child);

        let process = Process {
            id: raw.id,
            name: raw.name,
            source: raw.source,
            default_at,
            areas: raw.areas,
            decisions,
            meeting,
            steps,
            deadlines,
            extra_roles: raw.extra_roles,
            tracker_report,
            identify_child,
        };
        self.check_anchors(&process);
        if self.problems.is_empty() {
            Ok(process)
        } else {
            Err(ProcessError {
                file: self.file,
                problems: self.problems,
            })
        }
    }

    /// `identify_child`: particulars' ids, each known, none twice.
    fn identify_child(&mut self, raw: &[String]) -> Vec<crate::core::particulars::Field> {
        use crate::core::particulars::Field;
        let mut out = Vec::new();
        for name in raw {
            match Field::parse(name) {
                Some(f) if !out.contains(&f) => out.push(f),
                Some(_) => self.problem(format!("identify_child: `{name}` is named twice")),
                None => self.problem(format!(
                    "identify_child: `{name}` is not a particular (use: {})",
                    Field::known()
                )),
            }
        }
        out
    }

    /// The process's own fields: its extra roles, its default hour (returned) and its id.
    fn header(&mut self, raw: &RawProcess) -> NaiveTime {
        self.extra_roles = raw.extra_roles.iter().cloned().collect();
        for r in &raw.extra_roles {
            if DIRECTORY_ROLES.contains(&r.as_str()) {
                self.problem(format!("extra_roles: `{r}` is already a built-in role"));
            }
        }
        let default_at = match raw.default_at.as_deref() {
            None => NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"),
            Some(t) => parse_time(t).unwrap_or_else(|| {
                self.problem(format!("default_at = \"{t}\" is not a time like \"09:00\""));
                NaiveTime::from_hms_opt(9, 0, 0).expect("valid time")
            }),
        };
        if raw.id.is_empty()
            || !raw
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.problem(format!(
                "id `{}` must be letters, digits, '-' or '_' (it names the process in the database)",
                raw.id
            ));
        }
        default_at
    }

    /// `[[decision]]`s: each checked; those whose due time resolves are kept.
    fn decisions(&mut self, raw: &[RawDecision]) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let mut seen = BTreeSet::new();
        for d in raw {
            let owner = format!("decision `{}`", d.id);
            if !seen.insert(d.id.clone()) {
                self.problem(format!("{owner} is defined twice"));
            }
            if let Some(decision) = self.decision(&owner, d) {
                decisions.push(decision);
            }
        }
        decisions
    }

    /// One `[[decision]]`: voters, quorum, outcomes, due time, keywords and where to read them.
    fn decision(&mut self, owner: &str, d: &RawDecision) -> Option<Decision> {
        if Role::parse(&d.voters, &self.extra_roles).is_none()
            || matches!(
                d.voters.as_str(),
                "referrer" | "agency" | "agency_lead" | "attendees"
            )
        {
            self.problem(format!(
                "{owner}: voters `{}` must be a directory role (e.g. screening_panel, statutory_partners)",
                d.voters
            ));
        }
        let quorum = self.quorum(owner, d);
        if d.outcomes.is_empty() {
            self.problem(format!("{owner}: needs at least one outcome"));
        }
        if let Some(p) = &d.provisional
            && !d.outcomes.contains(p)
        {
            self.problem(format!(
                "{owner}: provisional outcome `{p}` is not one of its outcomes"
            ));
        }
        let due = self.when(&format!("{owner} due"), &d.due);
        let keywords = self.keywords(owner, d);
        let read_anywhere = match d.read.as_deref() {
            None | Some("first_line") => false,
            Some("anywhere") => true,
            Some(other) => {
                self.problem(format!(
                    "{owner}: read `{other}` is not one of first_line, anywhere"
                ));
                false
            }
        };
        due.map(|due| Decision {
            id: d.id.clone(),
            name: d.name.clone().unwrap_or_else(|| d.id.replace('_', " ")),
            voters: d.voters.clone(),
            quorum,
            outcomes: d.outcomes.clone(),
            provisional: d.provisional.clone(),
            due,
            keywords,
            read_anywhere,
        })
    }

    /// A decision's quorum, and its tie-breaker.
    fn quorum(&mut self, owner: &str, d: &RawDecision) -> Quorum {
        let quorum = match d.quorum.as_str() {
            "all" => Quorum::All,
            "majority" => Quorum::Majority {
                tie_breaker: d.tie_breaker.clone(),
            },
            "three_including_two_partners" => Quorum::AtLeast {
                min_votes: d.min_votes.unwrap_or(3),
                min_partners: d.min_partners.unwrap_or(2),
            },
            "at_least" => match (d.min_votes, d.min_partners) {
                (Some(v), p) => Quorum::AtLeast {
                    min_votes: v,
                    min_partners: p.unwrap_or(0),
                },
                (None, _) => {
                    self.problem(format!("{owner}: quorum `at_least` needs `min_votes`"));
                    Quorum::All
                }
            },
            other => {
                self.problem(format!(
                    "{owner}: quorum `{other}` is not one of all, majority, three_including_two_partners, at_least"
                ));
                Quorum::All
            }
        };
        if let Some(tb) = &d.tie_breaker {
            if Role::parse(tb, &self.extra_roles).is_none() {
                self.problem(format!("{owner}: tie_breaker `{tb}` is not a known role"));
            }
            if d.quorum != "majority" {
                self.problem(format!(
                    "{owner}: a tie_breaker only applies to quorum = \"majority\""
                ));
            }
        }
        quorum
    }

    /// A decision's keywords per outcome (the outcome's own name by default), none shared.
    fn keywords(&mut self, owner: &str, d: &RawDecision) -> BTreeMap<String, Vec<String>> {
        let mut keywords: BTreeMap<String, Vec<String>> = BTreeMap::new();
        match &d.keywords {
            None => {
                for o in &d.outcomes {
                    let mut words = vec![o.clone()];
                    if o.contains('_') {
                        words.push(o.replace('_', " "));
                    }
                    keywords.insert(o.clone(), words);
                }
            }
            Some(map) => {
                for (o, words) in map {
                    if !d.outcomes.contains(o) {
                        self.problem(format!(
                            "{owner}: keywords for `{o}`, which is not one of its outcomes"
                        ));
                    }
                    if words.is_empty() {
                        self.problem(format!("{owner}: outcome `{o}` has an empty keyword list"));
                    }
                    keywords.insert(o.clone(), words.clone());
                }
                for o in &d.outcomes {
                    if !map.contains_key(o) {
                        self.problem(format!(
                            "{owner}: outcome `{o}` has no keywords (a reply could never choose it)"
                        ));
                    }
                }
            }
        }
        let mut seen_words: BTreeMap<String, String> = BTreeMap::new();
        for (o, words) in &keywords {
            for w in words {
                let norm = crate::core::text::fold(w);
                if let Some(other) = seen_words.insert(norm, o.clone())
                    && &other != o
                {
                    self.problem(format!(
                        "{owner}: keyword `{w}` is given for both `{other}` and `{o}`"
                    ));
                }
            }
        }
        keywords
    }

    /// `[meeting]`: when, who attends, and the window it must fall in.
    fn meeting(&mut self, m: &RawMeeting) -> Option<Meeting> {
        let when = self.when("meeting", &m.when);
        let attendees = self.roles("meeting", "attendees", &m.attendees);
        if attendees.is_empty() {
            self.problem("meeting: needs at least one attendee role".to_string());
        }
        if attendees.iter().any(|r| matches!(r, Role::Attendees)) {
            self.problem("meeting: attendees cannot include `attendees`".to_string());
        }
        let window = m.window.map(|[a, b]| (a, b));
        if let (Some((a, b)), Some(w)) = (window, &when) {
            if a > b {
                self.problem(format!("meeting: window [{a}, {b}] is backwards"));
            } else if w.anchor == Anchor::Referral && (w.working_days < a || w.working_days > b) {
                self.problem(format!(
                    "meeting: planned on working day {} but its window is days {a} to {b}",
                    w.working_days
                ));
            }
        }
        when.map(|when| Meeting {
            when,
            minutes: m.minutes,
            attendees,
            window,
        })
    }

    /// `[[step]]`s: each checked, then every `follows` checked against the others.
    fn steps(
        &mut self,
        raw: &[RawStep],
        decisions: &[Decision],
        meeting: Option<&Meeting>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut step_ids = BTreeSet::new();
        for s in raw {
            let owner = format!("step `{}`", s.id);
            if !step_ids.insert(s.id.clone()) {
                self.problem(format!("{owner} is defined twice"));
            }
            steps.push(self.step(&owner, s, decisions, meeting));
        }
        for s in &steps {
            if let Some(f) = &s.follows {
                match steps.iter().find(|x| &x.id == f) {
                    None => self.problem(format!(
                        "step `{}`: follows `{f}`, which is not a step",
                        s.id
                    )),
                    Some(x) if x.kind != StepKind::AgencyRequest => self.problem(format!(
                        "step `{}`: follows `{f}`, which is not an agency_request",
                        s.id
                    )),
                    Some(_) => {}
                }
            }
        }
        steps
    }

    /// One `[[step]]`: its id, kind, pathway, time, recipients, and the fields its kind needs.
    fn step(
        &mut self,
        owner: &str,
        s: &RawStep,
        decisions: &[Decision],
        meeting: Option<&Meeting>,
    ) -> Step {
        if s.id.is_empty()
            || !s
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.problem(format!("{owner}: ids are letters, digits, '-' or '_'"));
        }
        let kind = match s.kind.as_deref() {
            None => StepKind::Letter,
            Some(k) => StepKind::parse(k).unwrap_or_else(|| {
                self.problem(format!(
                    "{owner}: unknown kind `{k}` (letter, decision_request, agency_request, return_receipt, \
                     chaser, escalation, collation, invite, panel_submission)"
                ));
                StepKind::Letter
            }),
        };
        let on = self.pathway(owner, s.on.as_deref(), decisions);
        let when = match (&s.when, kind) {
            (None, StepKind::ReturnReceipt) => None,
            (Some(_), StepKind::ReturnReceipt) => {
                self.problem(format!(
                    "{owner}: a return_receipt is sent when a return arrives; remove `when`"
                ));
                None
            }
            (None, _) => {
                self.problem(format!("{owner}: needs `when`"));
                None
            }
            (Some(w), _) => self.when(owner, w),
        };
        let (to, cc) = self.step_recipients(owner, s, kind, meeting);
        let return_by = match (&s.return_by, kind) {
            (Some(r), StepKind::AgencyRequest) => self.when(&format!("{owner} return_by"), r),
            (None, StepKind::AgencyRequest) => {
                self.problem(format!("{owner}: an agency_request needs `return_by`"));
                None
            }
            (Some(_), _) => {
                self.problem(format!("{owner}: only an agency_request has `return_by`"));
                None
            }
            (None, _) => None,
        };
        if s.one_agency && kind != StepKind::AgencyRequest {
            self.problem(format!("{owner}: only an agency_request has `one_agency`"));
        }
        self.step_links(owner, s, kind, decisions);
        if !(self.env.has_template)(&s.template) {
            self.problem(format!(
                "{owner}: template `{}` not found (needs {0}.subject.hbs, {0}.text.hbs and {0}.html.hbs \
                 in the templates directory)",
                s.template
            ));
        }
        Step {
            id: s.id.clone(),
            name: s.name.clone(),
            kind,
            on,
            when,
            template: s.template.clone(),
            to,
            cc,
            attach: s.attach.clone(),
            return_by,
            one_agency: s.one_agency,
            follows: s.follows.clone(),
            decision: s.decision.clone(),
            note: s.note.clone(),
        }
    }

    /// A step's `to` and `cc`, checked against its kind and the meeting.
    fn step_recipients(
        &mut self,
        owner: &str,
        s: &RawStep,
        kind: StepKind,
        meeting: Option<&Meeting>,
    ) -> (Vec<Role>, Vec<Role>) {
        let to = self.roles(owner, "to", &s.to);
        let cc = self.roles(owner, "cc", &s.cc);
        if to.is_empty() {
            self.problem(format!(
                "{owner}: needs at least one recipient role in `to`"
            ));
        }
        let agency_kinds = matches!(
            kind,
            StepKind::AgencyRequest | StepKind::ReturnReceipt | StepKind::Chaser
        );
        if agency_kinds && to != [Role::Agency] {
            self.problem(format!(
                "{owner}: a {} goes to `to = [\"agency\"]` (one letter per agency)",
                kind.name()
            ));
        }
        if !agency_kinds && (to.contains(&Role::Agency) || to.contains(&Role::AgencyLead)) {
            self.problem(format!(
                "{owner}: only agency_request, return_receipt and chaser steps can write to each agency"
            ));
        }
        if cc.contains(&Role::AgencyLead) && !agency_kinds {
            self.problem(format!(
                "{owner}: agency_lead can only be copied on agency letters"
            ));
        }
        if (to.contains(&Role::Attendees) || cc.contains(&Role::Attendees)) && meeting.is_none() {
            self.problem(format!(
                "{owner}: writes to `attendees` but the process has no [meeting]"
            ));
        }
        if kind == StepKind::Invite && meeting.is_none() {
            self.problem(format!("{owner}: an invite needs a [meeting]"));
        }
        (to, cc)
    }

    /// A step's `follows` and `decision`: present exactly when its kind needs them.
    fn step_links(&mut self, owner: &str, s: &RawStep, kind: StepKind, decisions: &[Decision]) {
        let needs_follows = matches!(
            kind,
            StepKind::ReturnReceipt | StepKind::Chaser | StepKind::Escalation | StepKind::Collation
        );
        if needs_follows && s.follows.is_none() {
            self.problem(format!(
                "{owner}: a {} needs `follows = \"<agency_request step id>\"`",
                kind.name()
            ));
        }
        if !needs_follows && s.follows.is_some() {
            self.problem(format!(
                "{owner}: only receipts, chasers, escalations and collations have `follows`"
            ));
        }
        match (kind, &s.decision) {
            (StepKind::DecisionRequest | StepKind::PanelSubmission, Some(d))
                if !decisions.iter().any(|x| &x.id == d) =>
            {
                self.problem(format!("{owner}: decision `{d}` is not defined in this process"))
            }
            (StepKind::DecisionRequest, None) => {
                self.problem(format!("{owner}: a decision_request needs `decision = \"<id>\"`"))
            }
            (StepKind::DecisionRequest | StepKind::PanelSubmission, _) => {}
            (_, Some(_)) => self.problem(format!(
                "{owner}: only a decision_request (or a panel_submission, for the answer it expects) names a `decision`"
            )),
            (_, None) => {}
        }
    }

    /// `[tracker_report]`: a period, a day in it, a time, and directory roles to send it to.
    fn tracker_report(
        &mut self,
        raw: &RawTrackerReport,
        default_at: NaiveTime,
    ) -> Option<TrackerReport> {
        const OWNER: &str = "[tracker_report]";
        let weekday = |v: &toml::Value| -> Option<chrono::Weekday> {
            match v.as_str()?.to_ascii_lowercase().as_str() {
                "monday" => Some(chrono::Weekday::Mon),
                "tuesday" => Some(chrono::Weekday::Tue),
                "wednesday" => Some(chrono::Weekday::Wed),
                "thursday" => Some(chrono::Weekday::Thu),
                "friday" => Some(chrono::Weekday::Fri),
                _ => None,
            }
        };
        let weeks = match (raw.every.as_deref(), raw.weeks) {
            (Some(_), Some(_)) => {
                self.problem(format!(
                    "{OWNER}: give `every = \"month\"` or `weeks = N`, not both"
                ));
                return None;
            }
            (None, None) => {
                self.problem(format!(
                    "{OWNER}: needs `every = \"month\"`, `every = \"week\"` or `weeks = N`"
                ));
                return None;
            }
            (Some("month"), None) => None,
            (Some("week"), None) => Some(1),
            (Some(other), None) => {
                self.problem(format!(
                    "{OWNER}: every = \"{other}\" is not \"month\" or \"week\" (for longer gaps use `weeks = N`)"
                ));
                return None;
            }
            (None, Some(n)) if (1..=52).contains(&n) => Some(n),
            (None, Some(n)) => {
                self.problem(format!("{OWNER}: weeks = {n} must be between 1 and 52"));
                return None;
            }
        };
        let every = match weeks {
            None => {
                let day = match &raw.on_day {
                    None => Some(1),
                    Some(v) => v
                        .as_integer()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| (1..=15).contains(n)),
                };
                let Some(working_day) = day else {
                    self.problem(format!(
                        "{OWNER}: for a monthly report on_day is the working day of the month, 1 to 15"
                    ));
                    return None;
                };
                Every::Month { working_day }
            }
            Some(weeks) => {
                let day = match &raw.on_day {
                    None => Some(chrono::Weekday::Mon),
                    Some(v) => weekday(v),
                };
                let Some(weekday) = day else {
                    self.problem(format!(
                        "{OWNER}: for a weekly report on_day is a weekday, \"monday\" to \"friday\""
                    ));
                    return None;
                };
                Every::Weeks { weeks, weekday }
            }
        };
        let at = match raw.at.as_deref() {
            None => default_at,
            Some(t) => match parse_time(t) {
                Some(t) => t,
                None => {
                    self.problem(format!(
                        "{OWNER}: `at = \"{t}\"` is not a time like \"09:00\""
                    ));
                    return None;
                }
            },
        };
        let to = self.roles(OWNER, "to", &raw.to);
        if to.is_empty() {
            self.problem(format!(
                "{OWNER}: needs at least one recipient role in `to` (e.g. strategic_partnership)"
            ));
        }
        for r in &to {
            if !matches!(r, Role::Directory(_)) {
                self.problem(format!(
                    "{OWNER}: `{r}` is not a directory role; the report goes to people listed in [roles]"
                ));
            }
        }
        let template = raw
            .template
            .clone()
            .unwrap_or_else(|| "tracker-report".into());
        if !(self.env.has_template)(&template) {
            self.problem(format!(
                "{OWNER}: template `{template}` not found (needs {template}.subject.hbs, {template}.text.hbs and \
                 {template}.html.hbs in the templates directory)"
            ));
        }
        Some(TrackerReport {
            every,
            at,
            template,
            to,
        })
    }

    /// Every anchor names something that exists, and no chain of `step:`/`meeting` anchors loops.
    fn check_anchors(&mut self, p: &Process) {
        // Nodes: "step:<id>", "meeting", "decision:<id>"; edges: what a node's date is counted from.
        let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut whens: Vec<(String, &When)> = Vec::new();
        for s in &p.steps {
            if let Some(w) = &s.when {
                whens.push((format!("step:{}", s.id), w));
            }
            if let Some(w) = &s.return_by {
                whens.push((format!("step:{}", s.id), w));
            }
        }
        if let Some(m) = &p.meeting {
            whens.push(("meeting".to_string(), &m.when));
        }
        for d in &p.decisions {
            whens.push((format!("decision:{}", d.id), &d.due));
        }
        for (_, w) in p.deadlines.iter().map(|d| (d.id.clone(), &d.when)) {
            whens.push(("deadline".to_string(), w));
        }
        for (node, w) in &whens {
            let target = match &w.anchor {
                Anchor::Step(id) => {
                    if p.step(id).is_none() {
                        self.problem(format!(
                            "{node}: anchored on step `{id}`, which does not exist"
                        ));
                        continue;
                    }
                    if p.step(id).is_some_and(|s| s.when.is_none()) {
                        self.problem(format!(
                            "{node}: anchored on step `{id}`, which has no date (it is sent on an event)"
                        ));
                        continue;
                    }
                    format!("step:{id}")
                }
                Anchor::Meeting => {
                    if p.meeting.is_none() {
                        self.problem(format!(
                            "{node}: anchored on the meeting, but there is no [meeting]"
                        ));
                        continue;
                    }
                    "meeting".to_string()
                }
                Anchor::Decision(id) => {
                    if p.decision(id).is_none() {
                        self.problem(format!(
                            "{node}: anchored on decision `{id}`, which does not exist"
                        ));
                        continue;
                    }
                    // A decision's *day* is when it is taken, which is an event, not a planned date;
                    // for planning it is expected at its `due`, so that is the edge.
                    format!("decision:{id}")
                }
                _ => continue,
            };
            edges.entry(node.clone()).or_default().push(target);
        }
        // Depth-first search for cycles.
        let mut state: BTreeMap<String, u8> = BTreeMap::new(); // 1 = on stack, 2 = done
        let mut reported = BTreeSet::new();
        fn visit(
            n: &str,
            edges: &BTreeMap<String, Vec<String>>,
            state: &mut BTreeMap<String, u8>,
            stack: &mut Vec<String>,
            cycles: &mut Vec<Vec<String>>,
        ) {
            state.insert(n.to_string(), 1);
            stack.push(n.to_string());
            for m in edges.get(n).into_iter().flatten() {
                match state.get(m.as_str()) {
                    Some(1) => {
                        let start = stack.iter().position(|x| x == m).unwrap_or(0);
                        let mut cycle = stack[start..].to_vec();
                        cycle.push(m.clone());
                        cycles.push(cycle);
                    }
                    Some(_) => {}
                    None => visit(m, edges, state, stack, cycles),
                }
            }
            stack.pop();
            state.insert(n.to_string(), 2);
        }
        let mut cycles = Vec::new();
        for n in edges.keys() {
            if !state.contains_key(n) {
                visit(n, &edges, &mut state, &mut Vec::new(), &mut cycles);
            }
        }
        for c in cycles {
            let mut key: Vec<String> = c.clone();
            key.sort();
            key.dedup();
            if reported.insert(key) {
                self.problem(format!("dates anchored in a cycle: {}", c.join(" → ")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_all() -> Environment<'static> {
        Environment {
            has_template: &|_| true,
        }
    }

    const MINIMAL: &str = r#"
        id = "mini"
        name = "Minimal"
        source = "test"
        [[decision]]
        id = "screening"
        voters = "screening_panel"
        quorum = "all"
        outcomes = ["meets", "nfa"]
        due = { day = 1, at = "17:00" }
        [[step]]
        id = "acknowledge"
        name = "Acknowledge"
        when = { anchor = "referral_received" }
        template = "acknowledge"
        to = ["referrer"]
        [[step]]
        id = "request"
        name = "Agency request"
        kind = "agency_request"
        on = "screening:meets"
        when = { day = 2 }
        template = "request"
        to = ["agency"]
        return_by = { day = 7, at = "17:00" }
        [[step]]
        id = "chase"
        name = "Chase"
        kind = "chaser"
        on = "screening:meets"
        follows = "request"
        when = { day = 7, at = "10:00" }
        template = "chase"
        to = ["agency"]
        cc = ["agency_lead"]
    "#;

    #[test]
    fn a_minimal_process_loads_with_its_pathways_and_offsets() {
        let p = parse("mini.toml", MINIMAL, &env_all()).expect("valid");
        assert_eq!(p.steps.len(), 3);
        assert!(p.steps[0].when.as_ref().unwrap().is_instant());
        let req = p.step("request").unwrap();
        assert_eq!(req.kind, StepKind::AgencyRequest);
        assert_eq!(req.when.as_ref().unwrap().working_days, 2);
        assert_eq!(
            req.on,
            Pathway::Outcome {
                decision: "screening".into(),
                outcomes: vec!["meets".into()]
            }
        );
        assert_eq!(req.return_by.as_ref().unwrap().describe(), "working day 7");
        assert_eq!(
            p.directory_roles().into_iter().collect::<Vec<_>>(),
            vec!["screening_panel"]
        );
    }

    #[test]
    fn every_problem_in_a_bad_file_is_reported_at_once() {
        let bad = r#"
            id = "bad"
            name = "Bad"
            source = "test"
            [[step]]
            id = "a"
            name = "A"
            when = { anchor = "the_moon", working_days = 1 }
            template = "missing"
            to = ["referrer", "wizard"]
            [[step]]
            id = "b"
            name = "B"
            on = "screening:meets"
            when = { day = 1, at = "25:99" }
            template = "ok"
            to = ["business_unit"]
        "#;
        let env = Environment {
            has_template: &|name| name != "missing",
        };
        let err = parse("bad.toml", bad, &env).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown anchor `the_moon`"), "{text}");
        assert!(text.contains("template `missing` not found"), "{text}");
        assert!(text.contains("unknown role `wizard`"), "{text}");
        assert!(
            text.contains("decision `screening`, which this process does not define"),
            "{text}"
        );
        assert!(text.contains("`at = \"25:99\"` is not a time"), "{text}");
        assert_eq!(err.problems.len(), 5, "{text}");
    }

    #[test]
    fn a_cycle_of_anchors_is_rejected_and_named() {
        let cyclic = r#"
            id = "loop"
            name = "Loop"
            source = "test"
            [meeting]
            when = { anchor = "step:pack", working_days = 1 }
            attendees = ["review_group"]
            [[step]]
            id = "pack"
            name = "Pack"
            when = { anchor = "meeting", working_days = -1 }
            template = "pack"
            to = ["review_group"]
        "#;
        let err = parse("loop.toml", cyclic, &env_all()).unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.contains("cycle") && p.contains("meeting") && p.contains("step:pack")),
            "{err}"
        );
    }

    #[test]
    fn a_step_anchored_on_a_missing_step_or_meeting_is_rejected() {
        let text = r#"
            id = "x"
            name = "X"
            source = "test"
            [[step]]
            id = "a"
            name = "A"
            when = { anchor = "step:nope" }
            template = "t"
            to = ["chair"]
            [[step]]
            id = "b"
            name = "B"
            when = { anchor = "meeting" }
            template = "t"
            to = ["chair"]
        "#;
        let err = parse("x.toml", text, &env_all()).unwrap_err();
        assert!(
            err.to_string()
                .contains("step `nope`, which does not exist"),
            "{err}"
        );
        assert!(err.to_string().contains("there is no [meeting]"), "{err}");
    }

    #[test]
    fn agency_letters_must_go_to_each_agency_and_chasers_must_follow_a_request() {
        let text = r#"
            id = "x"
            name = "X"
            source = "test"
            [[step]]
            id = "req"
            name = "Request"
            kind = "agency_request"
            when = { day = 2 }
            template = "t"
            to = ["review_group"]
            [[step]]
            id = "chase"
            name = "Chase"
            kind = "chaser"
            when = { day = 7 }
            template = "t"
            to = ["agency"]
        "#;
        let err = parse("x.toml", text, &env_all()).unwrap_err();
        let t = err.to_string();
        assert!(t.contains("goes to `to = [\"agency\"]`"), "{t}");
        assert!(t.contains("needs `return_by`"), "{t}");
        assert!(t.contains("needs `follows"), "{t}");
    }

    #[test]
    fn a_toml_syntax_error_is_reported_with_the_file_name() {
        let err = parse("broken.toml", "id = ", &env_all()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("process file broken.toml has 1 problem"),
            "{err}"
        );
    }

    #[test]
    fn offsets_describe_themselves_in_words() {
        let w = When {
            anchor: Anchor::Publication,
            months: 0,
            weeks: 0,
            working_days: -7,
            hours: 0,
            at: None,
            roll: Roll::Previous,
        };
        assert_eq!(
            w.describe(),
            "7 working days before the planned publication date"
        );
        let h = When {
            anchor: Anchor::ReferralReceived,
            months: 0,
            weeks: 0,
            working_days: 0,
            hours: 48,
            at: None,
            roll: Roll::None,
        };
        assert_eq!(h.describe(), "48 hours after the referral's arrival");
        assert!(h.is_instant());
    }
}
