//! Steps new to this installation: a step added to the process file — by an upgrade of caseclerk
//! or by the partnership editing its file — writes about what falls due from then on, never
//! about the past of every open case.
//!
//! Without this, a new step's letters were planned for open cases too, and every one already
//! due went at once after the restart: when session 23 added `panel-disagrees`, a case whose
//! National Panel had disagreed weeks before would have written to the partners that day as if
//! it were news. The engine keeps, per process, the steps it has known ([`new_steps`]); at a
//! start that finds new ones it plans every open case as it stands — before any mail that came
//! while it was stopped is decided — and records each letter of a new step already due as
//! imported — not sent, as a first run records what fell due before it. Those letters are
//! decided, so never planned again; a letter of the step that falls due later (from the
//! timeline, or from mail decided after the start) goes as planned. No instant is kept, so a
//! clock set wrong at a start cannot hold a step's letters back afterwards.
//!
//! The first start with the record knows every step of the file (a new installation, and an
//! upgrade from before the record, whose steps the earlier version already planned). A step
//! removed from the file is forgotten, so adding it back later counts as new.
//!
//! Owns the record's format and which steps are new. Must not: read or write anything (the
//! engine keeps the record and records the letters), or look at a case.

use std::collections::BTreeSet;

/// Behaviours of existing steps that a version of caseclerk added, kept in the same record as the
/// steps: a behaviour new to an installation is imported like a new step's letters, so what an
/// older version never planned is not sent in a burst at the upgrade. `#late-escalations`:
/// session 24's escalation of an agency asked late, on its own
/// ([`crate::core::timeline::is_late_escalation`]).
pub const BEHAVIOURS: &[&str] = &[LATE_ESCALATIONS];

/// See [`BEHAVIOURS`].
pub const LATE_ESCALATIONS: &str = "#late-escalations";

/// The steps of the process file, and the [`BEHAVIOURS`], new since the stored record, and the
/// record to store once their due letters are recorded (`None`: no change). With no record
/// kept, no step is new — the earlier version planned them all — but every behaviour is: the
/// earlier version did not have it (on a new installation there is no case to import from).
pub fn new_steps(stored: Option<&str>, steps: &[&str]) -> (Vec<String>, Option<String>) {
    let before = stored.and_then(|s| serde_json::from_str::<BTreeSet<String>>(s).ok());
    let now: BTreeSet<String> = steps
        .iter()
        .chain(BEHAVIOURS)
        .map(|s| s.to_string())
        .collect();
    let new = match &before {
        None => BEHAVIOURS.iter().map(|s| s.to_string()).collect(),
        Some(b) => now.difference(b).cloned().collect(),
    };
    let record =
        (before.as_ref() != Some(&now)).then(|| serde_json::to_string(&now).unwrap_or_default());
    (new, record)
}

/// Whether a due letter (of `step`, keyed `key`) is one of the `new` steps or behaviours.
pub fn letter_is_new(new: &[String], step: &str, key: &str) -> bool {
    new.iter().any(|n| n == step)
        || (new.iter().any(|n| n == LATE_ESCALATIONS)
            && crate::core::timeline::is_late_escalation(key))
}

/// Cases whose letters of new steps could not all be recorded imported at a start, with those
/// steps: their letters are held until a start records them (kept by the engine, per process).
pub type Held = std::collections::BTreeMap<i64, Vec<String>>;

/// The held cases as stored; nothing held when there is no record, or one that cannot be read
/// (logged by the caller's next write, which replaces it).
pub fn read_held(stored: Option<&str>) -> Held {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The held cases as stored.
pub fn write_held(held: &Held) -> String {
    serde_json::to_string(held).unwrap_or_default()
}

/// The steps whose letters already due are recorded imported on one case at a start: the steps
/// new at this start, and those still held for it since an earlier one (each once).
pub fn steps_to_import(new: &[String], held: Option<&Vec<String>>) -> Vec<String> {
    let mut steps = new.to_vec();
    for s in held.into_iter().flatten() {
        if !steps.contains(s) {
            steps.push(s.clone());
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    //! The first record knows every step; a step added later is new once; a removed step is
    //! forgotten.
    use super::*;

    #[test]
    fn the_first_record_knows_every_step_but_no_behaviour_and_is_stored_once() {
        let (new, record) = new_steps(None, &["ack", "chase"]);
        assert_eq!(new, BEHAVIOURS, "only what the earlier version did not do");
        let record = record.expect("stored the first time");
        assert_eq!(
            new_steps(Some(&record), &["chase", "ack"]),
            (Vec::new(), None)
        );
    }

    #[test]
    fn a_held_case_imports_the_new_steps_and_its_own_held_ones_each_once() {
        let new = vec!["invite".to_string()];
        let held: Held = read_held(Some(r#"{"7":["outcome-meets","invite"]}"#));
        assert_eq!(
            steps_to_import(&new, held.get(&7)),
            ["invite", "outcome-meets"]
        );
        assert_eq!(steps_to_import(&new, held.get(&8)), ["invite"]);
        assert!(steps_to_import(&[], None).is_empty());
        assert_eq!(read_held(Some(&write_held(&held))), held);
        assert!(read_held(None).is_empty() && read_held(Some("not json")).is_empty());
    }

    #[test]
    fn a_step_added_later_is_new_once() {
        let (_, first) = new_steps(None, &["ack"]);
        let (new, record) = new_steps(first.as_deref(), &["ack", "panel-disagrees"]);
        assert_eq!(new, ["panel-disagrees"], "behaviours once known stay known");
        let record = record.expect("the record grows");
        assert_eq!(
            new_steps(Some(&record), &["ack", "panel-disagrees"]),
            (Vec::new(), None),
            "known from then on"
        );
    }

    #[test]
    fn a_step_removed_and_added_back_counts_as_new() {
        let (_, first) = new_steps(None, &["ack", "extra"]);
        let (_, without) = new_steps(first.as_deref(), &["ack"]);
        let (new, _) = new_steps(without.as_deref(), &["ack", "extra"]);
        assert_eq!(new, ["extra"]);
    }

    #[test]
    fn a_letter_is_new_by_its_step_or_as_a_late_escalation() {
        let new = vec!["panel-disagrees".to_string(), LATE_ESCALATIONS.to_string()];
        assert!(letter_is_new(&new, "panel-disagrees", "a@x.test"));
        assert!(letter_is_new(
            &new,
            "escalate",
            "manager@x.test#late:housing"
        ));
        assert!(!letter_is_new(&new, "escalate", "manager@x.test"));
        let only_step = vec!["panel-disagrees".to_string()];
        assert!(!letter_is_new(
            &only_step,
            "escalate",
            "manager@x.test#late:housing"
        ));
    }

    #[test]
    fn an_unreadable_record_is_taken_as_never_kept() {
        let (new, record) = new_steps(Some("not json"), &["ack"]);
        assert_eq!(new, BEHAVIOURS);
        assert!(record.is_some());
    }
}
