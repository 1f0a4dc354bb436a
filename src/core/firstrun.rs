//! The first run on a mailbox that already holds mail: which old mail is read, and which letters
//! that fell due before caseclerk started are recorded as "imported — not sent" instead of sent.
//!
//! Owns two rules, as plain functions over instants:
//! - [`left_for_people`]: with `--since <date>`, mail in the mailbox at the first run whose IMAP
//!   INTERNALDATE falls on a London date before `since` is not read; people deal with it as before.
//! - [`imported_not_sent`]: a letter that fell due at or before the first run started, and before
//!   the start of the London day `late_letters_days` working days before the run's day, is never
//!   sent: it is decided and stored (so it is never decided again) as imported — not sent, and
//!   listed for the business unit, who can `caseclerk resend` it deliberately.
//!
//! Choice (where the issue left it open), for the business unit: a letter is judged by when it
//! fell due, which is when the mail it answers arrived for "at once" letters (an acknowledgement,
//! the referral to the screening panel, an ask-again) and the process's day for the others. So an
//! acknowledgement of a referral from March, and the "decision needed by Tuesday 11 March" ask, are
//! imported — not sent; the acknowledgement of last Friday's referral on a Monday first run goes,
//! late; and a case opened from an old referral still gets every letter that falls due after the
//! run started (its chasers, its meeting, its deadlines), because those are not stale.
//!
//! Must not: read the clock or the database; the engine hands it the first run's instant (kept in
//! the database the first time caseclerk looks at the mailbox).

use crate::core::calendar::{self, Calendar, CalendarError};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

/// Working days before the first run whose overdue letters still go, late, when the configuration
/// does not say (`[first_run] late_letters_days`): last Friday's referral is acknowledged on a
/// Monday first run; last month's is not.
pub const DEFAULT_LATE_LETTERS_DAYS: u32 = 2;

/// The first run, as the rule for letters needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstRun {
    /// The instant of caseclerk's first pass over the mailbox.
    pub started: DateTime<Utc>,
    /// Letters that fell due before this instant (and before `started`) are imported — not sent.
    pub recent_from: DateTime<Utc>,
}

impl FirstRun {
    /// The first run that started at `started`, sending overdue letters that fell due on the
    /// `late_letters_days` working days before the run's London day, or on that day itself.
    pub fn new(
        cal: &Calendar,
        started: DateTime<Utc>,
        late_letters_days: u32,
    ) -> Result<FirstRun, CalendarError> {
        let day = calendar::london_date(started);
        let from = match late_letters_days {
            0 => day,
            n => {
                cal.add_working_days(day, -(n.min(i32::MAX as u32) as i32))?
                    .date
            }
        };
        Ok(FirstRun {
            started,
            recent_from: calendar::london_instant(from, NaiveTime::MIN).min(started),
        })
    }
}

/// Whether mail received at `internal_date` is left for people on a first run limited to mail
/// received on or after `since` (a London date). Without `since`, all mail is read.
pub fn left_for_people(since: Option<NaiveDate>, internal_date: DateTime<Utc>) -> bool {
    since.is_some_and(|since| calendar::london_date(internal_date) < since)
}

/// Whether a letter that fell due at `fell_due` is recorded as imported — not sent instead of
/// sent: it fell due at or before the first run started, and before the recent window.
pub fn imported_not_sent(first: Option<&FirstRun>, fell_due: DateTime<Utc>) -> bool {
    first.is_some_and(|f| fell_due <= f.started && fell_due < f.recent_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A first run on Monday 23 November 2026 at 10:00 London time, two working days back.
    fn monday() -> FirstRun {
        FirstRun::new(&Calendar::bundled(), at("2026-11-23T10:00:00Z"), 2).unwrap()
    }

    #[test]
    fn the_recent_window_opens_two_working_days_before_the_run_at_midnight_london() {
        // Monday's two working days back are Thursday and Friday: the window opens Thursday 00:00.
        assert_eq!(monday().recent_from, at("2026-11-19T00:00:00Z"));
        // In summer time midnight in London is 23:00 UTC the day before.
        let june = FirstRun::new(&Calendar::bundled(), at("2026-06-10T09:00:00Z"), 1).unwrap();
        assert_eq!(june.recent_from, at("2026-06-08T23:00:00Z"));
    }

    #[test]
    fn the_acknowledgement_of_a_referral_from_march_is_imported_not_sent() {
        assert!(imported_not_sent(
            Some(&monday()),
            at("2026-03-11T09:00:00Z")
        ));
    }

    #[test]
    fn a_letter_that_fell_due_last_friday_still_goes_late_on_a_monday_first_run() {
        assert!(!imported_not_sent(
            Some(&monday()),
            at("2026-11-20T16:00:00Z")
        ));
    }

    #[test]
    fn a_letter_due_just_before_the_window_opens_is_imported_and_at_its_opening_goes() {
        let first = monday();
        assert!(imported_not_sent(
            Some(&first),
            first.recent_from - chrono::Duration::seconds(1)
        ));
        assert!(!imported_not_sent(Some(&first), first.recent_from));
    }

    #[test]
    fn an_old_cases_letters_falling_due_after_the_run_started_are_sent() {
        let first = monday();
        assert!(!imported_not_sent(
            Some(&first),
            first.started + chrono::Duration::seconds(1)
        ));
        assert!(!imported_not_sent(Some(&first), at("2027-03-11T09:00:00Z")));
    }

    #[test]
    fn without_a_recorded_first_run_every_letter_is_sent() {
        assert!(!imported_not_sent(None, at("2020-01-01T00:00:00Z")));
    }

    #[test]
    fn with_no_late_days_only_letters_due_on_the_runs_own_day_go() {
        let first = FirstRun::new(&Calendar::bundled(), at("2026-11-23T10:00:00Z"), 0).unwrap();
        assert_eq!(first.recent_from, at("2026-11-23T00:00:00Z"));
        assert!(imported_not_sent(Some(&first), at("2026-11-20T16:00:00Z")));
        assert!(!imported_not_sent(Some(&first), at("2026-11-23T08:00:00Z")));
    }

    #[test]
    fn since_leaves_mail_from_london_days_before_it_and_reads_mail_from_that_day_on() {
        let since = NaiveDate::from_ymd_opt(2026, 11, 1);
        // 31 October 23:30 UTC is still 31 October in London (GMT from 25 October).
        assert!(left_for_people(since, at("2026-10-31T23:30:00Z")));
        assert!(!left_for_people(since, at("2026-11-01T00:00:00Z")));
        // In summer, 23:30 UTC on 31 May is already 1 June in London.
        let june = NaiveDate::from_ymd_opt(2026, 6, 1);
        assert!(!left_for_people(june, at("2026-05-31T23:30:00Z")));
        assert!(left_for_people(june, at("2026-05-31T22:30:00Z")));
    }

    #[test]
    fn without_since_no_mail_is_left() {
        assert!(!left_for_people(None, at("2001-01-01T00:00:00Z")));
    }
}
