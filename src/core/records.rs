//! The rows the store hands to the core, as plain data: a case's row, its events as stored, a
//! letter without its bytes, and the outbox row a decided letter becomes.
//!
//! Must not: hold SQL or know the database (that is `shell::store`).

use chrono::{DateTime, NaiveDate, Utc};

/// A case row.
#[derive(Debug, Clone)]
pub struct CaseRow {
    pub id: i64,
    pub reference: String,
    pub process: String,
    pub area: Option<String>,
    pub status: String,
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
    pub data: serde_json::Value,
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
    /// `pending`, `sent`, `failed` (given up or refused) or `bounced`.
    pub state: String,
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
