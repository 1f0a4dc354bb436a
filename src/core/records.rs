//! The rows the store hands to the core, as plain data: a case's row, its events as stored, a
//! letter without its bytes, the outbox row a decided letter becomes; and the closed
//! vocabularies stored in them as text (a case's [`CaseStatus`], a letter's [`OutboxState`]),
//! each with the one text form the database holds.
//!
//! Must not: hold SQL or know the database (that is `shell::store`).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A stored word that is not one of its vocabulary's (a database written by hand or by a newer
/// caseclerk).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct UnknownWord {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Whether a case is still being worked. Stored as `open` / `closed` (`cases.status`, and in the
/// `status_changed` event's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    Open,
    Closed,
}

impl CaseStatus {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Closed => "closed",
        }
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CaseStatus {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(CaseStatus::Open),
            "closed" => Ok(CaseStatus::Closed),
            _ => Err(UnknownWord {
                what: "case status",
                value: s.to_string(),
                expected: "open, closed",
            }),
        }
    }
}

/// Where a queued letter stands. Stored as `pending`, `sent`, `failed` (given up or refused) or
/// `bounced` (`outbox.state`), or `imported` (decided on a first run, never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for its day, or for a retry.
    Pending,
    Sent,
    /// Refused by the server, or given up on after retries.
    Failed,
    /// Sent, then bounced back.
    Bounced,
    /// Fell due long before caseclerk's first run: recorded, never sent, listed for the business
    /// unit (`caseclerk resend` sends it deliberately). See [`crate::core::firstrun`].
    Imported,
}

impl OutboxState {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
            OutboxState::Bounced => "bounced",
            OutboxState::Imported => "imported",
        }
    }

    /// Refused, given up on or bounced: it did not reach its reader.
    pub fn undelivered(self) -> bool {
        matches!(self, OutboxState::Failed | OutboxState::Bounced)
    }
}

impl fmt::Display for OutboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutboxState {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(OutboxState::Pending),
            "sent" => Ok(OutboxState::Sent),
            "failed" => Ok(OutboxState::Failed),
            "bounced" => Ok(OutboxState::Bounced),
            "imported" => Ok(OutboxState::Imported),
            _ => Err(UnknownWord {
                what: "letter state",
                value: s.to_string(),
                expected: "pending, sent, failed, bounced, imported",
            }),
        }
    }
}

/// A case row.
#[derive(Debug, Clone)]
pub struct CaseRow {
    pub id: i64,
    pub reference: String,
    pub process: String,
    pub area: Option<String>,
    pub status: CaseStatus,
    pub received_at: DateTime<Utc>,
    pub day0: NaiveDate,
    pub referrer: Option<String>,
}

/// An event row.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    /// The event's JSON exactly as stored. Kept as text, not as a `serde_json::Value`: reading
    /// every case for the digest parses 60,000 of these at 10,000 cases, and parsing the text
    /// straight into the case's event (`EventRow::event`, beside the event in `case`) is one
    /// parse where a `Value` first was two (and a tree of allocations the fold threw away).
    pub data: String,
}

/// A letter without its bytes or envelope: what the business unit's views need.
#[derive(Debug, Clone)]
pub struct LetterSummary {
    pub id: i64,
    pub case_id: Option<i64>,
    pub step: String,
    pub recipient: String,
    pub due_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub state: OutboxState,
    pub attempts: i64,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A decided letter: the outbox row to insert, rendered and composed. Every letter — a process
/// step, a notice, the digest, the tracker report, an operator's resend — becomes one of these
/// (see `core::letters`) and is queued by `shell::outbox::enqueue`.
#[derive(Debug, Clone)]
pub struct NewLetter {
    /// Unique per letter: `<case ref>/<step>/<recipient key>`, `digest/<date>`, … A key already
    /// queued is never queued again.
    pub dedupe_key: String,
    pub case_id: Option<i64>,
    pub step: String,
    /// The recipient key: an address, `agency:<id>`, `role:<role>`, `resend:<addresses>`.
    pub recipient: String,
    /// The recipient key a reply to this letter is taken as from (the original's, for a resend).
    pub replies_as: String,
    pub message_id: String,
    pub due_at: DateTime<Utc>,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    pub raw: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_status_reads_back_from_its_stored_text() {
        for s in [CaseStatus::Open, CaseStatus::Closed] {
            assert_eq!(s.as_str().parse::<CaseStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn every_letter_state_reads_back_from_its_stored_text() {
        use OutboxState::*;
        for s in [Pending, Sent, Failed, Bounced, Imported] {
            assert_eq!(s.as_str().parse::<OutboxState>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(Failed.undelivered() && Bounced.undelivered());
        assert!(!Pending.undelivered() && !Sent.undelivered());
    }

    #[test]
    fn an_unknown_word_is_an_error_naming_it_not_a_guess() {
        let e = "Closed".parse::<CaseStatus>().unwrap_err();
        assert_eq!(e.value, "Closed");
        assert!(e.to_string().contains("case status `Closed`"), "{e}");
        assert!("queued".parse::<OutboxState>().is_err());
    }
}
