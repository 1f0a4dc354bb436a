//! `caseclerk verify`, and the daily chain head: checking the tamper-evident history.
//!
//! Owns streaming every event through [`crate::core::chain::Verifier`] (the whole table is never
//! held in memory), checking every recorded chain head against the event it anchored, and
//! turning the first broken link into one sentence naming the event, its case's reference and
//! what is wrong. Also records the chain head once a London day ([`record_head_if_due`], called
//! by the engine's pass) and logs it at info — the event id and the hash only — so a copy of the
//! head outside the database (the journal, a log shipper) anchors the history: someone with the
//! database file can rewrite every hash in it, but not the heads already logged elsewhere.
//!
//! Must not: write to the database while verifying (it works on a read-only store, e.g. a
//! backup); log or print names, subjects or bodies (an event is named by id and reference).

use crate::core::chain::{self, Broken, Head, Verifier};
use crate::shell::store::{Store, StoreError};
use chrono::{DateTime, Utc};

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The whole chain holds: how many events, the head (last id and hash), heads checked.
    Intact {
        events: u64,
        head: Option<(i64, String)>,
        heads: usize,
    },
    /// The first broken link, as one sentence.
    Broken(String),
}

impl Finding {
    /// The line `caseclerk verify` prints.
    pub fn render(&self) -> String {
        match self {
            Finding::Intact {
                events,
                head: Some((id, hash)),
                heads,
            } => format!(
                "OK: the history is intact: {events} event(s) in one chain, {heads} recorded chain head(s) match; head: event {id} sha256 {hash}"
            ),
            Finding::Intact { heads, .. } => {
                format!("OK: the history is empty (no events yet); {heads} recorded chain head(s)")
            }
            Finding::Broken(why) => format!("BROKEN: {why}"),
        }
    }
}

/// Check the whole chain and every recorded chain head.
pub async fn verify(store: &Store) -> Result<Finding, StoreError> {
    verify_against(store, &[]).await
}

/// Check the whole chain, every recorded chain head, and each head kept outside the database
/// (`given`: event id and hash, e.g. from a digest email or the journal).
pub async fn verify_against(store: &Store, given: &[(i64, String)]) -> Result<Finding, StoreError> {
    let mut v = Verifier::default();
    if let Err(b) = store.each_chained_event(|link| v.push(link)).await? {
        return Ok(Finding::Broken(broken(store, &b).await?));
    }
    let heads = store.chain_heads().await?;
    for h in &heads {
        let stored = store.event_hash(h.event_id).await?.flatten();
        let head = Head {
            event_id: h.event_id,
            hash: &h.hash,
        };
        if let Err(why) = chain::check_head(&head, stored.as_deref()) {
            return Ok(Finding::Broken(format!(
                "the chain head recorded at {} (event {}, sha256 {}) does not match: {why}",
                crate::shell::store::ts(h.at),
                h.event_id,
                h.hash
            )));
        }
    }
    for (event_id, hash) in given {
        let stored = store.event_hash(*event_id).await?.flatten();
        let head = Head {
            event_id: *event_id,
            hash,
        };
        if let Err(why) = chain::check_head(&head, stored.as_deref()) {
            return Ok(Finding::Broken(format!(
                "the head you gave (event {event_id}, sha256 {hash}) does not match: {why}"
            )));
        }
    }
    Ok(Finding::Intact {
        events: v.count(),
        head: v.head().map(|(id, h)| (id, h.to_string())),
        heads: heads.len(),
    })
}

/// The first broken link as a sentence: event id, the case's reference, why.
async fn broken(store: &Store, b: &Broken) -> Result<String, StoreError> {
    let case = match store.case_by_id(b.case_id).await? {
        Some(c) => format!("case {}", c.reference),
        None => format!("case id {}, which no longer exists", b.case_id),
    };
    Ok(format!("event {} ({case}): {}", b.event_id, b.why))
}

/// Record the chain head if none was recorded this London day, and log it (id and hash only).
pub async fn record_head_if_due(store: &Store, now: DateTime<Utc>) -> Result<(), StoreError> {
    if !chain::head_due(store.last_chain_head_at().await?, now) {
        return Ok(());
    }
    if let Some(h) = store.record_chain_head(now).await? {
        tracing::info!(
            event_id = h.event_id,
            events = h.events,
            hash = %h.hash,
            "history chain head recorded"
        );
    }
    Ok(())
}
