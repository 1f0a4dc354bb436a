//! The guard against a message that stops caseclerk every time it is decided: what was being
//! decided when a pass last stopped, and what to do about it at the next.
//!
//! Deciding is the one place a message's content reaches code that could fail on it: a parser's
//! unbounded recursion or loop, a panic, the memory a hostile message asks for. When such a
//! message kills the daemon, it is still pending at the restart and comes first again — so
//! without this guard one message stops every case's letters for good, pass after pass.
//!
//! The engine records, before it decides each loaded batch, which messages it holds
//! ([`Mark::Batch`]), and clears the record once the pass has decided them all. A record found
//! at the start of a pass therefore says the last pass stopped while deciding: a crash, a kill
//! by the watchdog or an operator, a panic — or an error. [`after_a_stop`] says what to do:
//!
//! 1. After a batch's record: the batch's messages still pending are decided **one at a time**,
//!    first, each under a record of its own ([`Mark::Alone`]) — nothing is set aside yet, since
//!    a kill by an operator stops a batch too.
//! 2. After a message's own record: that message stopped caseclerk a second time, alone. It is
//!    **set aside for a person** unread (on the Triage page, raised in health), and the mail
//!    and letters behind it go on.
//!
//! An error (not a crash) while a message is decided alone puts its batch record back
//! ([`Mark::after_error`]): a busy database or a full disk is never taken for the message's
//! fault. Only a record that outlives the process — a crash, a kill — sets a message aside.
//!
//! Owns the record's format and the rule. Must not: read or write anything (the engine keeps
//! the record in the database), or look at the mail.

/// What was being decided: the record kept while a pass decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// A batch of these stored messages (their ids), decided together.
    Batch(Vec<i64>),
    /// This one message, decided alone after a batch holding it stopped a pass.
    Alone(i64),
}

/// What to do at the start of a pass, from the record the last one left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AfterStop {
    /// Set aside for a person, unread: it stopped caseclerk while decided alone.
    pub set_aside: Option<i64>,
    /// Decide these alone, one at a time, before anything else (in the order of `pending`).
    pub alone: Vec<i64>,
}

impl Mark {
    /// The record as stored: `batch:1,2,3` or `alone:7`.
    pub fn encode(&self) -> String {
        match self {
            Mark::Batch(ids) => format!(
                "batch:{}",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ),
            Mark::Alone(id) => format!("alone:{id}"),
        }
    }

    /// A stored record read back; `None` for one that cannot be read (ignored: the guard is a
    /// safety net, and a record it cannot read must not stop the pass).
    pub fn decode(s: &str) -> Option<Mark> {
        let (kind, rest) = s.split_once(':')?;
        match kind {
            "batch" if rest.is_empty() => Some(Mark::Batch(Vec::new())),
            "batch" => rest
                .split(',')
                .map(|id| id.trim().parse().ok())
                .collect::<Option<Vec<i64>>>()
                .map(Mark::Batch),
            "alone" => rest.trim().parse().ok().map(Mark::Alone),
            _ => None,
        }
    }

    /// The record to leave when deciding under this one ended in an error rather than a crash:
    /// a message decided alone goes back to its batch's record, to be tried alone again.
    pub fn after_error(self) -> Mark {
        match self {
            Mark::Alone(id) => Mark::Batch(vec![id]),
            batch => batch,
        }
    }
}

/// What to do about the record the last pass left (`None`: it ended normally), given the
/// messages pending now, in the order they are decided.
pub fn after_a_stop(mark: Option<&Mark>, pending: &[i64]) -> AfterStop {
    match mark {
        None => AfterStop::default(),
        Some(Mark::Alone(id)) => AfterStop {
            set_aside: pending.contains(id).then_some(*id),
            alone: Vec::new(),
        },
        Some(Mark::Batch(ids)) => AfterStop {
            set_aside: None,
            alone: pending
                .iter()
                .copied()
                .filter(|id| ids.contains(id))
                .collect(),
        },
    }
}

/// Why a message was set aside, as the Triage page and the digest show it.
pub const SET_ASIDE_WHY: &str = "caseclerk stopped twice while deciding this message (the second \
    time with nothing else): it was set aside so that the mail and letters behind it go on. \
    Read it and file it by hand, and report it to the supplier with the daemon's log.";

/// The rule name a set-aside message is filed under.
pub const SET_ASIDE_RULE: &str = "set_aside_after_stops";

#[cfg(test)]
mod tests {
    //! The record round-trips, and the rule: a batch's stop means one at a time, a message's own
    //! stop means set aside — only if still pending.
    use super::*;

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        for m in [
            Mark::Batch(vec![1, 22, 333]),
            Mark::Batch(vec![]),
            Mark::Alone(7),
        ] {
            assert_eq!(Mark::decode(&m.encode()), Some(m));
        }
        assert_eq!(Mark::decode("batch:1,x"), None);
        assert_eq!(Mark::decode("later:3"), None);
        assert_eq!(Mark::decode(""), None);
    }

    #[test]
    fn a_pass_that_ended_normally_changes_nothing() {
        assert_eq!(after_a_stop(None, &[1, 2, 3]), AfterStop::default());
    }

    #[test]
    fn after_a_batch_stopped_its_pending_messages_are_decided_alone_in_order_and_none_set_aside() {
        let mark = Mark::Batch(vec![5, 3, 4, 9]);
        let got = after_a_stop(Some(&mark), &[3, 4, 5, 6, 7]);
        assert_eq!(got.alone, vec![3, 4, 5], "9 was decided before the stop");
        assert_eq!(got.set_aside, None);
    }

    #[test]
    fn a_message_that_stopped_caseclerk_alone_is_set_aside_and_nothing_else_is() {
        let got = after_a_stop(Some(&Mark::Alone(4)), &[4, 5, 6]);
        assert_eq!(got.set_aside, Some(4));
        assert!(got.alone.is_empty());
    }

    #[test]
    fn a_message_no_longer_pending_is_not_set_aside() {
        // Filed by a person meanwhile (or decided after all, before the stop).
        assert_eq!(
            after_a_stop(Some(&Mark::Alone(4)), &[5, 6]),
            AfterStop::default()
        );
    }

    #[test]
    fn an_error_while_deciding_alone_is_not_taken_for_the_messages_fault() {
        let back = Mark::Alone(4).after_error();
        assert_eq!(back, Mark::Batch(vec![4]));
        let again = after_a_stop(Some(&back), &[4, 5]);
        assert_eq!(
            again.set_aside, None,
            "an error only sends it round alone again"
        );
        assert_eq!(again.alone, vec![4]);
        assert_eq!(Mark::Batch(vec![1]).after_error(), Mark::Batch(vec![1]));
    }
}
