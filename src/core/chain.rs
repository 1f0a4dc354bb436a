//! The tamper-evident history: every case event carries the SHA-256 of its own content and of the
//! event before it, so changing, removing or reordering a stored event breaks the chain.
//!
//! Owns the one canonical encoding of an event ([`encode`]), its hash ([`hash`]), and checking a
//! sequence of stored events in id order ([`Verifier`]) and a recorded chain head
//! ([`check_head`]), naming the first broken link and why.
//!
//! # One global chain, in id order
//! The chain runs over *all* events of all cases in id order, not one chain per case: deleting
//! any row anywhere (a whole case's history included) leaves the next row pointing at a hash
//! that is no longer there. A per-case chain would not notice a case's events removed whole.
//! The price is that every event write reads the previous event's hash inside its transaction,
//! so event writes are serialised; caseclerk has one writer (the daemon, or an operator
//! command between its passes) and a few events a minute, so that costs nothing measurable.
//!
//! What the chain alone cannot show is the *last* rows removed (or the whole table rewritten
//! with fresh hashes by someone who has the file): that is what chain heads are for — the
//! latest event's id and hash recorded daily in `chain_heads` and logged, so a copy outside the
//! database (the journal, a log shipper) anchors the history as it was.
//!
//! # The encoding
//! `caseclerk-event-v1` then each field as `<byte length>:<bytes>` followed by a newline, in the
//! order prev_hash, id, case_id, at, kind, actor, data. Numbers are decimal, `at` and `data` are
//! the exact text stored in the row. A length prefix makes the encoding unambiguous whatever the
//! fields contain (a newline or a colon inside `data` cannot move a field boundary).
//!
//! Must not: read the database or the clock, or log; it is given rows and answers.

use sha2::{Digest, Sha256};
use std::fmt;

/// What the first event's `prev_hash` holds: there is no event before it.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event's content as stored (the text of each column, exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content<'a> {
    pub id: i64,
    pub case_id: i64,
    pub at: &'a str,
    pub kind: &'a str,
    pub actor: &'a str,
    pub data: &'a str,
}

/// A stored event with its chain columns (`None` where a row has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    pub content: Content<'a>,
    pub prev_hash: Option<&'a str>,
    pub hash: Option<&'a str>,
}

/// The canonical bytes hashed for an event chained after `prev_hash`.
pub fn encode(prev_hash: &str, c: &Content<'_>) -> Vec<u8> {
    let mut out = b"caseclerk-event-v1\n".to_vec();
    let id = c.id.to_string();
    let case_id = c.case_id.to_string();
    for field in [
        prev_hash,
        id.as_str(),
        case_id.as_str(),
        c.at,
        c.kind,
        c.actor,
        c.data,
    ] {
        out.extend_from_slice(field.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(field.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The event's hash: lower-case hex SHA-256 of [`encode`].
pub fn hash(prev_hash: &str, c: &Content<'_>) -> String {
    hex::encode(Sha256::digest(encode(prev_hash, c)))
}

/// Why the chain is broken at an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The row's content (or its stored hash) is not what was hashed when it was written.
    ContentChanged,
    /// The row has no hash at all (written around caseclerk, or its hash removed).
    NotHashed,
    /// The row does not point at the event before it (rows reordered, or one re-chained).
    LinkBroken,
    /// Events are missing before this one: ids `from..=to` are gone (ids are given one by one).
    RowsMissing { from: i64, to: i64 },
    /// The first event present does not start the chain: events before it were removed.
    StartMissing,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::ContentChanged => {
                f.write_str("its content was changed after it was written (the hash does not match)")
            }
            Why::NotHashed => f.write_str("it has no hash (it was written around caseclerk)"),
            Why::LinkBroken => {
                f.write_str("it does not point at the event before it (rows reordered or re-chained)")
            }
            Why::RowsMissing { from, to } if from == to => {
                write!(f, "the event before it (id {from}) is missing")
            }
            Why::RowsMissing { from, to } => {
                write!(f, "the events before it (ids {from} to {to}) are missing")
            }
            Why::StartMissing => f.write_str(
                "it is the first event present but does not start the chain: earlier events were removed",
            ),
        }
    }
}

/// The first broken link: the event (id and case) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub event_id: i64,
    pub case_id: i64,
    pub why: Why,
}

/// Checks stored events one at a time in id order (so the shell can stream a large table).
#[derive(Debug, Clone)]
pub struct Verifier {
    last_id: Option<i64>,
    last_hash: String,
    count: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            last_id: None,
            last_hash: GENESIS.to_string(),
            count: 0,
        }
    }
}

impl Verifier {
    /// The next stored event, in id order: `Err` names why the chain breaks here.
    pub fn push(&mut self, link: &Link<'_>) -> Result<(), Broken> {
        let c = &link.content;
        let broken = |why| Broken {
            event_id: c.id,
            case_id: c.case_id,
            why,
        };
        let (Some(prev), Some(stored)) = (link.prev_hash, link.hash) else {
            return Err(broken(Why::NotHashed));
        };
        if hash(prev, c) != stored {
            return Err(broken(Why::ContentChanged));
        }
        if prev != self.last_hash {
            return Err(broken(match self.last_id {
                None => Why::StartMissing,
                Some(last) if c.id > last + 1 => Why::RowsMissing {
                    from: last + 1,
                    to: c.id - 1,
                },
                Some(_) => Why::LinkBroken,
            }));
        }
        if let Some(last) = self.last_id
            && c.id > last + 1
        {
            // Re-linked over a gap: the rows in between were removed and the chain rewritten.
            return Err(broken(Why::RowsMissing {
                from: last + 1,
                to: c.id - 1,
            }));
        }
        self.last_id = Some(c.id);
        self.last_hash = stored.to_string();
        self.count += 1;
        Ok(())
    }

    /// How many events were checked.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The chain's head so far: the last event's id and hash (`None` with no events).
    pub fn head(&self) -> Option<(i64, &str)> {
        self.last_id.map(|id| (id, self.last_hash.as_str()))
    }
}

/// A chain head recorded earlier (`chain_heads`): the event id and hash it anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head<'a> {
    pub event_id: i64,
    pub hash: &'a str,
}

/// Why a recorded chain head no longer matches the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadMismatch {
    /// The event it anchored is gone (the end of the history was cut off).
    EventMissing,
    /// The event is there with another hash (the history was rewritten).
    HashDiffers,
}

impl fmt::Display for HeadMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadMismatch::EventMissing => {
                "the event it anchored is gone (the end of the history was removed)"
            }
            HeadMismatch::HashDiffers => {
                "the event it anchored now has another hash (the history was rewritten)"
            }
        })
    }
}

/// A recorded head against the stored hash of its event (`None`: no such event).
pub fn check_head(head: &Head<'_>, stored: Option<&str>) -> Result<(), HeadMismatch> {
    match stored {
        None => Err(HeadMismatch::EventMissing),
        Some(h) if h == head.hash => Ok(()),
        Some(_) => Err(HeadMismatch::HashDiffers),
    }
}

/// Whether a chain head is due: once a London day, the first pass of a day that has none yet.
pub fn head_due(
    last: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    last.is_none_or(|t| {
        crate::core::calendar::london_date(t) < crate::core::calendar::london_date(now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        id: i64,
        case_id: i64,
        data: String,
        prev: Option<String>,
        hash: Option<String>,
    }

    fn content(r: &Row) -> Content<'_> {
        Content {
            id: r.id,
            case_id: r.case_id,
            at: "2027-01-05T09:30:00.000000Z",
            kind: "note",
            actor: "system",
            data: &r.data,
        }
    }

    /// `n` events chained as caseclerk writes them.
    fn chain(n: i64) -> Vec<Row> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|id| {
                let mut r = Row {
                    id,
                    case_id: 1 + id % 2,
                    data: format!("{{\"n\":{id}}}"),
                    prev: Some(prev.clone()),
                    hash: None,
                };
                let h = hash(&prev, &content(&r));
                r.hash = Some(h.clone());
                prev = h;
                r
            })
            .collect()
    }

    fn verify(rows: &[Row]) -> Result<Verifier, Broken> {
        let mut v = Verifier::default();
        for r in rows {
            v.push(&Link {
                content: content(r),
                prev_hash: r.prev.as_deref(),
                hash: r.hash.as_deref(),
            })?;
        }
        Ok(v)
    }

    #[test]
    fn an_intact_chain_verifies_and_names_its_head() {
        let rows = chain(5);
        let v = verify(&rows).unwrap();
        assert_eq!(v.count(), 5);
        assert_eq!(v.head(), Some((5, rows[4].hash.as_deref().unwrap())));
    }

    #[test]
    fn an_empty_history_verifies_with_no_head() {
        let v = verify(&[]).unwrap();
        assert_eq!((v.count(), v.head()), (0, None));
    }

    #[test]
    fn a_changed_event_is_named_as_changed() {
        let mut rows = chain(5);
        rows[2].data = "{\"n\":99}".into();
        let b = verify(&rows).unwrap_err();
        assert_eq!((b.event_id, b.case_id, b.why), (3, 2, Why::ContentChanged));
    }

    #[test]
    fn a_changed_event_rehashed_breaks_the_next_link() {
        let mut rows = chain(5);
        rows[2].data = "{\"n\":99}".into();
        rows[2].hash = Some(hash(rows[2].prev.as_deref().unwrap(), &content(&rows[2])));
        let b = verify(&rows).unwrap_err();
        assert_eq!((b.event_id, b.why), (4, Why::LinkBroken));
    }

    #[test]
    fn a_removed_event_in_the_middle_is_named_as_missing() {
        let mut rows = chain(5);
        rows.remove(2);
        let b = verify(&rows).unwrap_err();
        assert_eq!(
            (b.event_id, b.why.clone()),
            (4, Why::RowsMissing { from: 3, to: 3 })
        );
        assert_eq!(b.why.to_string(), "the event before it (id 3) is missing");
    }

    #[test]
    fn removed_first_events_are_named() {
        let rows: Vec<Row> = chain(5).into_iter().skip(2).collect();
        let b = verify(&rows).unwrap_err();
        assert_eq!((b.event_id, b.why), (3, Why::StartMissing));
    }

    #[test]
    fn a_row_without_a_hash_is_named() {
        let mut rows = chain(3);
        rows[1].hash = None;
        assert_eq!(verify(&rows).unwrap_err().why, Why::NotHashed);
    }

    #[test]
    fn the_encoding_cannot_move_a_field_boundary() {
        // The same bytes split differently between kind and actor hash differently.
        let a = Content {
            id: 1,
            case_id: 1,
            at: "t",
            kind: "ab",
            actor: "c",
            data: "{}",
        };
        let b = Content {
            kind: "a",
            actor: "bc",
            ..a.clone()
        };
        assert_ne!(hash(GENESIS, &a), hash(GENESIS, &b));
        assert_eq!(
            String::from_utf8(encode("p", &a)).unwrap(),
            "caseclerk-event-v1\n1:p\n1:1\n1:1\n1:t\n2:ab\n1:c\n2:{}\n"
        );
    }

    #[test]
    fn a_chain_head_is_due_once_a_london_day() {
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert!(head_due(None, t("2027-01-05T09:00:00Z")));
        assert!(!head_due(
            Some(t("2027-01-05T00:30:00Z")),
            t("2027-01-05T23:30:00Z")
        ));
        // 23:30 UTC on 30 June is 00:30 on 1 July in London (summer time): a new day.
        assert!(head_due(
            Some(t("2027-06-30T22:00:00Z")),
            t("2027-06-30T23:30:00Z")
        ));
    }

    #[test]
    fn a_recorded_head_matches_only_its_event_as_it_was() {
        let head = Head {
            event_id: 4,
            hash: "abc",
        };
        assert_eq!(check_head(&head, Some("abc")), Ok(()));
        assert_eq!(
            check_head(&head, Some("abd")),
            Err(HeadMismatch::HashDiffers)
        );
        assert_eq!(check_head(&head, None), Err(HeadMismatch::EventMissing));
    }
}
