//! Steps new to this installation: a step added to the process file — by an upgrade of caseclerk
//! or by the partnership editing its file — applies to what falls due from then on, never to
//! the past of every open case.
//!
//! Without this, a new step's letters were planned for open cases too, and every one already
//! due went at once after the restart: when session 23 added `panel-disagrees`, a case whose
//! National Panel had disagreed weeks before would have written to the partners that day as if
//! it were news. The engine keeps, per process, when it first saw each step ([`Known`]), and
//! leaves unsent a letter of a step first seen after that letter fell due
//! ([`fell_due_before_known`]). A letter due later than that goes as planned.
//!
//! The first start with this record knows every step of the file *always* (a new installation,
//! and an upgrade from before the record, whose steps the earlier version already planned). A
//! step removed from the file is forgotten, so adding it back later counts as new.
//!
//! Owns the record's format and the rule. Must not: read or write anything (the engine keeps the
//! record in the database), or look at a case.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Since when this installation has known a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Since before anything it planned: its letters go whenever they fall due.
    Always,
    /// First seen at this instant: its letters due before it are not sent.
    Since(DateTime<Utc>),
}

/// The steps known now and the record to store, from the stored record (`None`: never kept)
/// and the process file's steps. The record is `None` when it needs no change.
pub fn known_steps(
    stored: Option<&str>,
    steps: &[&str],
    now: DateTime<Utc>,
) -> (BTreeMap<String, Known>, Option<String>) {
    let before = stored.and_then(|s| serde_json::from_str::<BTreeMap<String, String>>(s).ok());
    let known: BTreeMap<String, Known> = steps
        .iter()
        .map(|step| {
            let seen = match before.as_ref() {
                // Never kept (or unreadable): every step of the file is known always.
                None => Known::Always,
                Some(b) => match b.get(*step).map(String::as_str) {
                    Some("always") => Known::Always,
                    Some(t) => DateTime::parse_from_rfc3339(t)
                        .map(|t| Known::Since(t.with_timezone(&Utc)))
                        .unwrap_or(Known::Always),
                    None => Known::Since(now),
                },
            };
            (step.to_string(), seen)
        })
        .collect();
    let record: BTreeMap<&str, String> = known
        .iter()
        .map(|(step, k)| {
            let v = match k {
                Known::Always => "always".to_string(),
                Known::Since(t) => t.to_rfc3339(),
            };
            (step.as_str(), v)
        })
        .collect();
    let unchanged = before.as_ref().is_some_and(|b| {
        b.len() == record.len() && record.iter().all(|(k, v)| b.get(*k) == Some(v))
    });
    let store = (!unchanged).then(|| serde_json::to_string(&record).unwrap_or_default());
    (known, store)
}

/// A letter of `step` due at `due` fell due before this installation knew the step: it is not
/// sent.
pub fn fell_due_before_known(
    known: &BTreeMap<String, Known>,
    step: &str,
    due: DateTime<Utc>,
) -> bool {
    matches!(known.get(step), Some(Known::Since(t)) if due < *t)
}

#[cfg(test)]
mod tests {
    //! The first record knows every step always; a step added later is known from then on, and
    //! only its letters due before that are left unsent; a removed step is forgotten.
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    #[test]
    fn the_first_record_knows_every_step_always_and_is_stored_once() {
        let (known, store) = known_steps(None, &["ack", "chase"], at(1, 9));
        assert!(known.values().all(|k| *k == Known::Always));
        let store = store.expect("stored the first time");
        let (again, none) = known_steps(Some(&store), &["ack", "chase"], at(2, 9));
        assert_eq!(again, known);
        assert_eq!(none, None, "nothing changed, nothing to store");
    }

    #[test]
    fn a_step_added_later_leaves_unsent_only_its_letters_due_before_it_was_seen() {
        let (_, first) = known_steps(None, &["ack"], at(1, 9));
        let (known, store) = known_steps(first.as_deref(), &["ack", "panel-disagrees"], at(20, 9));
        assert_eq!(known["panel-disagrees"], Known::Since(at(20, 9)));
        assert!(store.is_some());
        assert!(fell_due_before_known(&known, "panel-disagrees", at(10, 10)));
        assert!(!fell_due_before_known(
            &known,
            "panel-disagrees",
            at(20, 10)
        ));
        assert!(
            !fell_due_before_known(&known, "ack", at(10, 10)),
            "known always"
        );
        assert!(!fell_due_before_known(&known, "unknown-step", at(10, 10)));
        // Seen since then: still known from the day it was added.
        let (later, none) = known_steps(store.as_deref(), &["ack", "panel-disagrees"], at(25, 9));
        assert_eq!(later["panel-disagrees"], Known::Since(at(20, 9)));
        assert_eq!(none, None);
    }

    #[test]
    fn a_step_removed_and_added_back_counts_as_new() {
        let (_, first) = known_steps(None, &["ack", "extra"], at(1, 9));
        let (_, without) = known_steps(first.as_deref(), &["ack"], at(5, 9));
        let (known, _) = known_steps(without.as_deref(), &["ack", "extra"], at(9, 9));
        assert_eq!(known["extra"], Known::Since(at(9, 9)));
    }
}
