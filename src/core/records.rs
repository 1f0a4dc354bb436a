//! The rows the store hands to the core, as plain data: a case's row, its events as stored, a
//! letter without its bytes.
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
