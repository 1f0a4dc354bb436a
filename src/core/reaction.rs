//! What a reaction is made of: where a message is filed, the case to open, the events and
//! notices, and the named steps that say why. The types only; the rules that make them are
//! [`crate::core::react`]'s, and the caps that bound them are [`crate::core::limits`]'.
//!
//! Must not: decide anything.

use crate::core::case::{Event, Recorded};
use crate::core::timeline::DueLetter;
use chrono::{DateTime, Utc};

/// Where a message is filed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filing {
    /// On a case: it is part of the case's history.
    Filed,
    /// Noted (an automatic reply, a bounce): never answered.
    Recorded,
    /// Listed for a person.
    Triage,
    /// Our own mail.
    Ignored,
}

impl Filing {
    /// The stable text stored with the message.
    pub fn as_str(self) -> &'static str {
        match self {
            Filing::Filed => "filed",
            Filing::Recorded => "recorded",
            Filing::Triage => "triage",
            Filing::Ignored => "ignored",
        }
    }
}

/// A case to open: everything its `opened` event needs except the reference, which the store
/// allocates.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    pub process: String,
    pub area: Option<String>,
    pub referrer: Option<String>,
    pub received_at: DateTime<Utc>,
    pub day0: chrono::NaiveDate,
    pub day0_explained: String,
    pub message: i64,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    /// What the referral's form and body give (read once, here: the area may come from them),
    /// and how many attached forms could not be read. Never in the event: personal data.
    pub particulars: Vec<crate::core::particulars::Particular>,
    pub unreadable: usize,
}

impl Opening {
    /// The case's first event, once the store has given it its reference.
    pub fn event(&self, reference: &str) -> Event {
        Event::Opened {
            reference: reference.to_string(),
            process: self.process.clone(),
            area: self.area.clone(),
            referrer: self.referrer.clone(),
            received_at: self.received_at,
            day0: self.day0,
            day0_explained: self.day0_explained.clone(),
            message: self.message,
            message_id: self.message_id.clone(),
            references: self.references.clone(),
        }
    }
}

/// A rule that fired, and why, in ids and rule words only (the engine logs these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub rule: &'static str,
    pub why: String,
}

/// What a message does.
#[derive(Debug, Clone)]
pub struct Reaction {
    pub filing: Filing,
    /// Filed on the found case (its id is the engine's to know).
    pub on_case: bool,
    /// A referral: the case to open (the message is filed on it).
    pub open: Option<Opening>,
    /// Events to record on the found case (or the opened one), in order.
    pub events: Vec<Recorded>,
    /// Letters to queue at once on that case.
    pub notices: Vec<DueLetter>,
    /// Add the message's own Message-ID to the case's thread.
    pub thread: bool,
    /// The outbox letter to mark bounced.
    pub mark_bounced: Option<i64>,
    /// The rules that fired.
    pub steps: Vec<Step>,
    /// A rule that listed the message for a person after the classifier placed it (a cap): the
    /// engine stores it as the message's rule, so the triage list says why.
    pub held_by: Option<&'static str>,
}

impl Reaction {
    pub(crate) fn new(filing: Filing) -> Reaction {
        Reaction {
            filing,
            on_case: false,
            open: None,
            events: Vec::new(),
            notices: Vec::new(),
            thread: false,
            mark_bounced: None,
            steps: Vec::new(),
            held_by: None,
        }
    }

    /// Listed for a person by `rule` (which the triage list shows), nothing else done.
    pub fn held(rule: &'static str) -> Reaction {
        let mut r = Reaction::new(Filing::Triage);
        r.held_by = Some(rule);
        r
    }

    pub(crate) fn because(mut self, rule: &'static str, why: impl Into<String>) -> Reaction {
        self.steps.push(Step {
            rule,
            why: why.into(),
        });
        self
    }
}
