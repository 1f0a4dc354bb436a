//! The caps that end a mail loop whatever shape it takes: never more than a configured number of
//! letters *in answer to incoming mail* to one address in 24 hours, and never more than a
//! configured number of cases opened for one sender in 24 hours.
//!
//! Recognising automated mail ([`crate::core::classify`]) stops the loops we know; these caps
//! are the backstop for the ones we do not. They are one pure rule ([`within_caps`]) the engine
//! applies to every [`Reaction`] of [`crate::core::react::react`] they can change ([`can_cap`]),
//! over [`Counts`] it loaded from its store. Past a cap, caseclerk stops: the message is recorded (on its case when it has
//! one), nothing is queued for that address and no case is opened, and the message is listed
//! for a person with the cap as its reason (`caseclerk triage`, the digest's triage section, and
//! a note on the case for `caseclerk case`).
//!
//! What counts as an answer: the notices a message causes ([`ANSWER_NOTICES`]) and the steps
//! that answer a referral's sender at once ([`answer_steps`]: anchored on the referral and
//! addressed to the referrer — the acknowledgement). Counting is over the last 24 hours, not the
//! calendar day, so a loop that starts at 23:50 does not get two allowances. Answers are counted
//! by when they were queued; cases by when their referrals reached the mailbox (the 24 hours
//! before this message), so a first run over a backlog of one referrer's old referrals is not
//! taken for a loop.
//!
//! Must not: read the store or the clock (the engine counts), log, or decide what a message is.

use std::collections::BTreeMap;

use crate::core::case::{Event, Recorded};
use crate::core::process::{Anchor, Process, Role};
use crate::core::reaction::{Filing, Reaction, Step};

/// The caps (`[limits]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Letters in answer to incoming mail, to one address, in 24 hours.
    pub answers_per_address_per_day: u32,
    /// Cases opened for one sender (the referral's referrer), in 24 hours.
    pub cases_per_sender_per_day: u32,
}

impl Default for Limits {
    /// Five answers: a busy panel member on a busy day votes on two or three cases, each vote
    /// confirmed, with an ask-again at most once a round. Three cases: a hospital can refer
    /// siblings together; a fourth in a day from one address is for a person to look at.
    fn default() -> Limits {
        Limits {
            answers_per_address_per_day: 5,
            cases_per_sender_per_day: 3,
        }
    }
}

/// What the engine counted for a message, over the last 24 hours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Letters in answer to mail already queued, by address (lowercase). The engine counts the
    /// addresses [`counted_addresses`] names; any other address counts from 0.
    pub answers: BTreeMap<String, u32>,
    /// Cases opened for the referral's referrer.
    pub cases_opened: u32,
}

/// The notices a message causes, as their outbox steps.
pub const ANSWER_NOTICES: &[&str] = &[
    "notice-vote-confirmed",
    "notice-vote-unclear",
    "notice-agencies-unknown",
];

/// A message held because an address already had its answers for the day.
pub const ANSWER_CAP: &str = "answer_cap";
/// A referral held because its sender already had their cases for the day.
pub const CASE_CAP: &str = "case_cap";

/// Every outbox step that is a letter in answer to incoming mail: [`ANSWER_NOTICES`] and the
/// process's steps that answer a referral's sender at once (anchored on `referral_received`,
/// addressed to `referrer`).
pub fn answer_steps(process: &Process) -> Vec<String> {
    let mut out: Vec<String> = ANSWER_NOTICES.iter().map(|s| s.to_string()).collect();
    for step in &process.steps {
        let on_referral = step
            .when
            .as_ref()
            .is_some_and(|w| w.anchor == Anchor::ReferralReceived);
        if on_referral && step.to.iter().any(|r| matches!(r, Role::Referrer)) {
            out.push(step.id.clone());
        }
    }
    out
}

/// The addresses whose answers the engine must count for a message: its From and Reply-To
/// (every notice in answer goes to the sender; an acknowledgement goes to the Reply-To).
pub fn counted_addresses(msg: &crate::core::intake::Message) -> Vec<String> {
    let mut out: Vec<String> = msg
        .from
        .iter()
        .chain(msg.reply_to.iter())
        .map(|a| a.email.to_lowercase())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether the caps can change `r`: only a reaction that opens a case or answers with notices.
/// Any other passes [`within_caps`] unchanged whatever the counts, so the engine counts (its
/// queries for [`Counts`]) only for these — most of a first run's messages are neither.
pub fn can_cap(r: &Reaction) -> bool {
    r.open.is_some() || !r.notices.is_empty()
}

/// A reaction within the caps: notices to an address past its cap are dropped, a case past its
/// sender's cap (or whose acknowledgement would pass the referrer's answer cap) is not opened,
/// and either way the message is listed for a person with the cap as its reason.
pub fn within_caps(mut r: Reaction, counts: &Counts, limits: &Limits) -> Reaction {
    if let Some(open) = &r.open {
        let referrer = open.referrer.clone().unwrap_or_default();
        let answered = counts.answers.get(&referrer).copied().unwrap_or(0);
        let why = if counts.cases_opened >= limits.cases_per_sender_per_day {
            Some(format!(
                "{} cases already opened for this sender in 24 hours (cap {}): no case opened, \
                 nothing sent",
                counts.cases_opened, limits.cases_per_sender_per_day
            ))
        } else if answered >= limits.answers_per_address_per_day {
            Some(format!(
                "{answered} letters already sent in answer to this sender in 24 hours (cap {}): \
                 no case opened, nothing sent",
                limits.answers_per_address_per_day
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let mut held = Reaction::held(CASE_CAP);
            held.steps = r.steps;
            held.steps.push(Step {
                rule: CASE_CAP,
                why,
            });
            return held;
        }
    }
    let mut sent: BTreeMap<String, u32> = BTreeMap::new();
    let mut kept = Vec::new();
    let mut dropped = 0;
    for notice in std::mem::take(&mut r.notices) {
        let to = notice.to.email.to_lowercase();
        let before = counts.answers.get(&to).copied().unwrap_or(0);
        let n = sent.entry(to).or_insert(0);
        if before + *n >= limits.answers_per_address_per_day {
            dropped += 1;
            continue;
        }
        *n += 1;
        kept.push(notice);
    }
    r.notices = kept;
    if dropped > 0 {
        let cap = limits.answers_per_address_per_day;
        let why = format!(
            "{dropped} letter(s) in answer not sent: the address already had {cap} in 24 hours \
             (the cap); listed for a person"
        );
        if r.on_case {
            let at = r.events.first().map(|e| e.at);
            if let Some(at) = at {
                r.events.push(Recorded {
                    at,
                    actor: "caseclerk".into(),
                    event: Event::Note {
                        text: format!("answer cap: {why}"),
                    },
                });
            }
        }
        r.filing = Filing::Triage;
        r.held_by = Some(ANSWER_CAP);
        r.steps.push(Step {
            rule: ANSWER_CAP,
            why,
        });
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::calendar::Calendar;
    use crate::core::case::CaseState;
    use crate::core::reaction::Opening;
    use crate::core::timeline::{self, Recipient};
    use chrono::{DateTime, NaiveDate, Utc};

    const MEMBER: &str = "la.rep@bury.test";

    fn t() -> DateTime<Utc> {
        "2026-03-03T10:00:00Z".parse().unwrap()
    }

    fn state() -> CaseState {
        let day0 = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        CaseState::new("RR-2026-0001", "bury", None, None, t(), day0, 1)
    }

    /// A reply filed on its case that confirms a vote to `to`.
    fn answering(to: &str) -> Reaction {
        let mut r = Reaction::held("x");
        r.filing = Filing::Filed;
        r.held_by = None;
        r.on_case = true;
        r.events.push(Recorded {
            at: t(),
            actor: "caseclerk".into(),
            event: Event::Note {
                text: "filed".into(),
            },
        });
        let to = Recipient {
            name: String::new(),
            email: to.into(),
            role: "voter".into(),
            phone: None,
        };
        let n = timeline::notice(
            &Calendar::bundled(),
            &state(),
            "vote-confirmed",
            "k",
            to,
            Vec::new(),
            t(),
        );
        r.notices.push(n);
        r
    }

    fn counts(answers: u32, cases: u32) -> Counts {
        Counts {
            answers: [(MEMBER.to_string(), answers)].into(),
            cases_opened: cases,
        }
    }

    #[test]
    fn a_reaction_that_opens_nothing_and_answers_nothing_is_never_capped_so_needs_no_counting() {
        let filed_on_case = {
            let mut r = answering(MEMBER);
            r.notices.clear();
            r
        };
        let nothing_left = Limits {
            answers_per_address_per_day: 0,
            cases_per_sender_per_day: 0,
        };
        for r in [Reaction::held("unmatched"), filed_on_case] {
            assert!(!can_cap(&r));
            let capped = within_caps(r.clone(), &counts(u32::MAX, u32::MAX), &nothing_left);
            assert_eq!(
                format!("{capped:?}"),
                format!("{r:?}"),
                "unchanged by the caps"
            );
        }
        assert!(can_cap(&answering(MEMBER)), "an answer is counted");
        let mut opens = Reaction::held("referral");
        opens.open = opening(MEMBER).open;
        assert!(can_cap(&opens), "a referral is counted");
    }

    #[test]
    fn an_answer_under_the_cap_goes() {
        let r = within_caps(answering(MEMBER), &counts(4, 0), &Limits::default());
        assert_eq!(r.notices.len(), 1);
        assert_eq!(r.filing, Filing::Filed);
        assert_eq!(r.held_by, None);
    }

    #[test]
    fn an_answer_past_the_cap_is_not_queued_and_the_message_is_listed_for_a_person() {
        let r = within_caps(
            answering("LA.Rep@bury.test"),
            &counts(5, 0),
            &Limits::default(),
        );
        assert!(r.notices.is_empty());
        assert_eq!(r.filing, Filing::Triage);
        assert_eq!(r.held_by, Some(ANSWER_CAP));
        assert!(r.on_case, "still recorded on its case");
        assert!(
            r.events.iter().any(
                |e| matches!(&e.event, Event::Note { text } if text.starts_with("answer cap"))
            ),
            "the case says why"
        );
    }

    fn opening(referrer: &str) -> Reaction {
        let mut r = Reaction::held("x");
        r.filing = Filing::Filed;
        r.held_by = None;
        r.on_case = true;
        r.open = Some(Opening {
            process: "bury".into(),
            area: None,
            referrer: Some(referrer.into()),
            received_at: t(),
            day0: NaiveDate::from_ymd_opt(2026, 3, 3).unwrap(),
            day0_explained: String::new(),
            message: 1,
            message_id: None,
            references: Vec::new(),
            particulars: Vec::new(),
            unreadable: 0,
        });
        r
    }

    #[test]
    fn a_referral_past_the_case_cap_or_the_answer_cap_opens_no_case() {
        let limits = Limits::default();
        let ok = within_caps(opening(MEMBER), &counts(4, 2), &limits);
        assert!(ok.open.is_some());
        for c in [counts(0, 3), counts(5, 0)] {
            let r = within_caps(opening(MEMBER), &c, &limits);
            assert!(r.open.is_none(), "{c:?}");
            assert!(!r.on_case && r.events.is_empty() && r.notices.is_empty());
            assert_eq!(r.filing, Filing::Triage);
            assert_eq!(r.held_by, Some(CASE_CAP));
        }
    }
}
