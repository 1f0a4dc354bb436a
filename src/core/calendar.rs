//! Working days for England & Wales, and the dates of a review's timeline.
//!
//! # What this module owns
//! - **Working days**: Monday to Friday, except England & Wales bank holidays and the partnership's
//!   own closure days (for example a Christmas shutdown).
//! - **Two calendars**: statutory time counts England & Wales working days only
//!   ([`Calendar::statutory`]: weekends and bank holidays); closure days only decide when the
//!   office sends a letter ([`Calendar::sending_day`]: the last open working day before a closure).
//!   The full calendar (with closures) answers the office's own questions: when the digest goes,
//!   what "tomorrow" is.
//! - **Bank holidays**: parsed from GOV.UK's `bank-holidays.json` format (the `england-and-wales`
//!   division only). A copy covering 2018 to 2028 is bundled from `data/bank-holidays.json`
//!   ([`Calendar::bundled`]); a partnership may configure a newer file ([`Calendar::from_govuk_json`]).
//!   Holidays are keyed on their dates, never on their titles. A date outside the years the data
//!   covers is an error, never a guess.
//! - **Day 0 and day N**: day 0 is the London date a referral was received, or the next working
//!   day ([`Calendar::day_zero`]); day N is the Nth working day after day 0
//!   ([`Calendar::add_working_days`]); [`Calendar::working_day_number`] is the inverse.
//! - **Calendar offsets**: weeks, months (clamped to month end) and elapsed hours ([`add_weeks`],
//!   [`add_months`], [`add_hours`]).
//! - **Explanations**: every working-day answer is a [`Reckoning`] that lists the days it passed
//!   over, so a clerk can check it by hand ([`Reckoning::explain`]).
//! - **Europe/London wall clock**: UTC instants to London dates and back ([`london_date`],
//!   [`london_instant`]), correct across the March and October clock changes.
//! - **Written dates**: the named London date formats every letter, report and command uses
//!   ([`long_date`], [`long_instant`], [`short_date`], [`short_day`], [`short_instant`],
//!   [`short_instant_zoned`], [`london_time`], [`month_year`], [`ics_local`]), so each form is
//!   spelled once.
//!
//! # What it must not do
//! Read the clock (callers pass "now" in), touch files (the JSON text is handed in, or bundled at
//! compile time), log, or know anything about cases, agencies, letters or processes: it answers
//! questions about dates and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

use chrono::{
    DateTime, Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Timelike,
    Utc, Weekday,
};
use serde::Deserialize;

/// The time zone every partnership works in.
pub const LONDON: chrono_tz::Tz = chrono_tz::Europe::London;

/// The GOV.UK division whose bank holidays count (all partnerships are in England).
pub const DIVISION: &str = "england-and-wales";

/// Where the bundled bank-holiday data lives in the source tree.
pub const BUNDLED_FILE: &str = "data/bank-holidays.json";

/// The bundled GOV.UK bank-holiday data (England & Wales, 2018 to 2028).
const BUNDLED_JSON: &str = include_str!("../../data/bank-holidays.json");

/// Everything that can go wrong in this module. Every message says what is wrong and, where it
/// helps, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The bank-holiday JSON is not valid JSON, or a part of it has the wrong shape.
    ///
    /// serde_json's message is part of this error's message (it names the field), so it is not
    /// also chained as a `source` (that would print it twice).
    #[error("bank-holidays JSON is malformed in {context}: {error}")]
    Json {
        /// Which part of the file: "the top level", "the england-and-wales division", "event 3 of 91".
        context: String,
        /// serde_json's own error, which names the field (e.g. "missing field `date`").
        error: serde_json::Error,
    },
    /// The file has no `england-and-wales` division.
    #[error(
        "bank-holidays JSON has no \"england-and-wales\" division (divisions found: {found}); \
         use GOV.UK's bank-holidays.json format"
    )]
    MissingDivision {
        /// The divisions the file does have, comma-separated (or "none").
        found: String,
    },
    /// An event's `date` is not a `YYYY-MM-DD` calendar date.
    #[error(
        "bank-holidays JSON: england-and-wales event {index} of {count} ({title:?}) has date {value:?}, \
         which is not a YYYY-MM-DD calendar date"
    )]
    BadDate {
        /// 1-based position of the event in the division's `events` list.
        index: usize,
        /// How many events the division lists.
        count: usize,
        /// The event's title, to find it in the file.
        title: String,
        /// The offending `date` string.
        value: String,
    },
    /// The division lists no events, so no dates are covered.
    #[error(
        "bank-holidays JSON: the england-and-wales division lists no events, so it covers no dates"
    )]
    NoEvents,
    /// A year between the first and last years of the data has no events: data is missing.
    #[error(
        "bank-holidays JSON: the england-and-wales division has events from {first} to {last} but none in \
         {year}; every year has bank holidays, so the data for {year} is missing"
    )]
    MissingYear {
        /// The year with no events.
        year: i32,
        /// First year with events.
        first: i32,
        /// Last year with events.
        last: i32,
    },
    /// A date outside the years the bank-holiday data covers.
    #[error(
        "no bank-holiday data for {}: the calendar covers {} to {}; update data/bank-holidays.json \
         (or the configured holidays file) from GOV.UK's bank-holidays.json",
        short_date(*date),
        short_date(*first),
        short_date(*last)
    )]
    OutsideCoverage {
        /// The date asked about (or reached while counting).
        date: NaiveDate,
        /// First covered date (1 January of the first year with data).
        first: NaiveDate,
        /// Last covered date (31 December of the last year with data).
        last: NaiveDate,
    },
    /// Calendar arithmetic left the range of representable dates.
    #[error("date arithmetic overflow: {what}")]
    Overflow {
        /// The calculation that overflowed, e.g. "Mon 31 Aug 2026 + 2147483647 months".
        what: String,
    },
}

/// Why a date is not a working day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonWorking {
    /// A Saturday.
    Saturday,
    /// A Sunday.
    Sunday,
    /// An England & Wales bank holiday, with GOV.UK's title.
    BankHoliday {
        /// GOV.UK's title, e.g. "Boxing Day".
        title: String,
        /// GOV.UK marks the day a "Substitute day" (the holiday itself fell on a weekend).
        substitute: bool,
    },
    /// A day the partnership's business unit is closed.
    Closure {
        /// Why, as configured, e.g. "Christmas shutdown".
        reason: String,
    },
}

impl fmt::Display for NonWorking {
    /// `Saturday`, `Sunday`, `Christmas Day`, `Boxing Day (substitute day)`,
    /// `Christmas shutdown (closure day)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NonWorking::Saturday => f.write_str("Saturday"),
            NonWorking::Sunday => f.write_str("Sunday"),
            NonWorking::BankHoliday {
                title,
                substitute: false,
            } => f.write_str(title),
            NonWorking::BankHoliday {
                title,
                substitute: true,
            } => write!(f, "{title} (substitute day)"),
            NonWorking::Closure { reason } if reason.trim().is_empty() => {
                f.write_str("closure day")
            }
            NonWorking::Closure { reason } => write!(f, "{reason} (closure day)"),
        }
    }
}

/// A referral received on a working day at or after the cutoff time, so day 0 moved on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterCutoff {
    /// When it was received, on the London wall clock.
    pub received: NaiveDateTime,
    /// The cutoff it was at or after (London wall clock).
    pub cutoff: NaiveTime,
}

/// The answer to a working-day question, with the days it passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reckoning {
    /// The working day reached.
    pub date: NaiveDate,
    /// Every non-working day passed over on the way, in date order (see each method for exactly
    /// which interval).
    pub skipped: Vec<(NaiveDate, NonWorking)>,
    /// Set only by [`Calendar::day_zero`] when a referral arrived on a working day at or after the
    /// cutoff, so day 0 is a later working day.
    pub after_cutoff: Option<AfterCutoff>,
}

impl Reckoning {
    /// The date and why it is that date, for a clerk to check by hand; callers prefix it with
    /// "day 7 = ".
    ///
    /// Format: `<Www D Mmm YYYY> (<reasons>)`. Bank holidays and closure days are listed by date
    /// (`Www D Mmm`, no year: with the weekday that is unambiguous over any span shorter than five
    /// years) and title, in date order.
    /// Weekend days are summarised once at the end, counting weekends rather than days (a
    /// Saturday and the Sunday after it are one weekend): `a weekend`, `2 weekends`, … The
    /// count lets a reader check the arithmetic: calendar days = working days + listed days +
    /// weekend days. A late referral is explained first. When nothing was passed over:
    /// `Mon 4 Jan 2027 (no days skipped)`.
    ///
    /// For example `Tue 5 Jan 2027 (skipped Fri 25 Dec Christmas Day, Mon 28 Dec Boxing Day
    /// (substitute day), Fri 1 Jan New Year’s Day, 2 weekends)`.
    pub fn explain(&self) -> String {
        let mut listed = Vec::new();
        let mut weekends = BTreeSet::new();
        for (d, why) in &self.skipped {
            match why {
                // Key each weekend by its Saturday.
                NonWorking::Saturday => {
                    weekends.insert(*d);
                }
                NonWorking::Sunday => {
                    weekends.insert(d.pred_opt().unwrap_or(*d));
                }
                other => listed.push(format!("{} {other}", short_day(*d))),
            }
        }
        match weekends.len() {
            0 => {}
            1 => listed.push("a weekend".to_owned()),
            n => listed.push(format!("{n} weekends")),
        }

        let mut reasons = Vec::new();
        if let Some(late) = &self.after_cutoff {
            let relation = if late.received.time() == late.cutoff {
                "at"
            } else {
                "after"
            };
            reasons.push(format!(
                "received {} at {}, {relation} the {} cutoff",
                short_day(late.received.date()),
                clock_time(late.received.time()),
                clock_time(late.cutoff),
            ));
        }
        if !listed.is_empty() {
            reasons.push(format!("skipped {}", listed.join(", ")));
        }
        if reasons.is_empty() {
            reasons.push("no days skipped".to_owned());
        }
        format!("{} ({})", short_date(self.date), reasons.join("; "))
    }
}

/// When the office sends a letter dated by statutory time ([`Calendar::sending_day`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sending {
    /// The office is open that day (or the day is not a closure day): it goes as dated.
    AsDated,
    /// The office is closed that day: it goes on `date`, the last open working day before.
    Before {
        /// The last open working day before the closure.
        date: NaiveDate,
        /// The closure days passed over, "Tue 29 Dec Christmas shutdown (closure day)".
        closed: String,
    },
    /// The office is closed that day and has no open working day between `earliest` and it: the
    /// letter goes on its day all the same.
    OnItsDay {
        /// The closure day, "Tue 29 Dec Christmas shutdown (closure day)".
        closed: String,
        /// The first day it could go.
        earliest: NaiveDate,
    },
}

impl Sending {
    /// What a clerk reads after the statutory date's own explanation, or `None` when the letter
    /// goes as dated: `the office is closed Tue 29 Dec Christmas shutdown (closure day), so it
    /// goes on the last open working day before: Thu 24 Dec 2026`.
    pub fn explain(&self) -> Option<String> {
        match self {
            Sending::AsDated => None,
            Sending::Before { date, closed } => Some(format!(
                "the office is closed {closed}, so it goes on the last open working day before: {}",
                short_date(*date)
            )),
            Sending::OnItsDay { closed, earliest } => Some(format!(
                "the office is closed {closed} and has no open working day from {} up to it, so \
                 it goes on its day all the same",
                short_date(*earliest)
            )),
        }
    }
}

/// One GOV.UK event, as much of it as we use (`bunting` and unknown fields are ignored).
#[derive(Deserialize)]
struct GovUkEvent {
    title: String,
    date: String,
    #[serde(default)]
    notes: String,
}

/// One GOV.UK division.
#[derive(Deserialize)]
struct GovUkDivision {
    events: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Holiday {
    title: String,
    substitute: bool,
}

/// An England & Wales working-day calendar: bank holidays for whole years, plus closure days.
///
/// Precedence when a date is non-working for more than one reason: a weekend day is reported
/// as `Saturday`/`Sunday` (it would not be worked anyway, so naming a holiday on it would
/// suggest it cost an extra day), then a bank holiday, then a closure day.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Shared, so that [`Calendar::statutory`] costs two pointer copies.
    holidays: Arc<BTreeMap<NaiveDate, Holiday>>,
    closures: BTreeMap<NaiveDate, String>,
    first: NaiveDate,
    last: NaiveDate,
}

static BUNDLED: LazyLock<Calendar> = LazyLock::new(|| {
    Calendar::from_govuk_json(BUNDLED_JSON)
        .expect("data/bank-holidays.json parses (unit test the_bundled_file_parses_and_covers_2018_through_2028)")
});

impl Calendar {
    /// The bank holidays bundled at compile time from `data/bank-holidays.json` (England &
    /// Wales, 1 Jan 2018 to 31 Dec 2028), with no closure days.
    pub fn bundled() -> Calendar {
        BUNDLED.clone()
    }

    /// Parses GOV.UK's `bank-holidays.json` format and keeps the `england-and-wales` division
    /// (other divisions are ignored and may be absent).
    ///
    /// An event whose `notes` mention "substitute" is a substitute day. Two events on one date
    /// are kept as one holiday with both titles. Coverage runs from 1 January of the first year
    /// with an event to 31 December of the last; a year in between with no events is an error
    /// (every year has bank holidays, so its data is missing).
    pub fn from_govuk_json(json: &str) -> Result<Calendar, CalendarError> {
        let top: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|error| CalendarError::Json {
                context: "the top level (expected an object keyed by division)".to_owned(),
                error,
            })?;
        let Some(division) = top.get(DIVISION) else {
            let found: Vec<&str> = top.keys().map(String::as_str).collect();
            return Err(CalendarError::MissingDivision {
                found: if found.is_empty() {
                    "none".to_owned()
                } else {
                    found.join(", ")
                },
            });
        };
        let division: GovUkDivision =
            serde_json::from_value(division.clone()).map_err(|error| CalendarError::Json {
                context: "the \"england-and-wales\" division".to_owned(),
                error,
            })?;

        let count = division.events.len();
        let mut holidays: BTreeMap<NaiveDate, Holiday> = BTreeMap::new();
        for (i, value) in division.events.into_iter().enumerate() {
            let index = i + 1;
            let event: GovUkEvent =
                serde_json::from_value(value).map_err(|error| CalendarError::Json {
                    context: format!("england-and-wales event {index} of {count}"),
                    error,
                })?;
            let date = parse_iso_date(&event.date).ok_or_else(|| CalendarError::BadDate {
                index,
                count,
                title: event.title.clone(),
                value: event.date.clone(),
            })?;
            let substitute = event.notes.to_lowercase().contains("substitute");
            holidays
                .entry(date)
                .and_modify(|h| {
                    if h.title != event.title {
                        h.title = format!("{} and {}", h.title, event.title);
                    }
                    h.substitute &= substitute;
                })
                .or_insert(Holiday {
                    title: event.title,
                    substitute,
                });
        }

        let (Some(first), Some(last)) = (holidays.keys().next(), holidays.keys().next_back())
        else {
            return Err(CalendarError::NoEvents);
        };
        let (first_year, last_year) = (first.year(), last.year());
        let years: BTreeSet<i32> = holidays.keys().map(Datelike::year).collect();
        if let Some(year) = (first_year..=last_year).find(|y| !years.contains(y)) {
            return Err(CalendarError::MissingYear {
                year,
                first: first_year,
                last: last_year,
            });
        }
        let first = NaiveDate::from_ymd_opt(first_year, 1, 1);
        let last = NaiveDate::from_ymd_opt(last_year, 12, 31);
        let (Some(first), Some(last)) = (first, last) else {
            return Err(CalendarError::Overflow {
                what: format!("coverage of the years {first_year} to {last_year}"),
            });
        };
        Ok(Calendar {
            holidays: Arc::new(holidays),
            closures: BTreeMap::new(),
            first,
            last,
        })
    }

    /// Adds the partnership's closure days (e.g. its Christmas shutdown). Two reasons for one
    /// date are kept together. A closure day outside [`coverage`](Self::coverage) is kept but
    /// never reached (those dates are errors). On a weekend or bank holiday the weekend or
    /// holiday is what gets reported.
    pub fn with_closures(
        mut self,
        closures: impl IntoIterator<Item = (NaiveDate, String)>,
    ) -> Calendar {
        for (date, reason) in closures {
            self.closures
                .entry(date)
                .and_modify(|r| {
                    if *r != reason {
                        r.push_str("; ");
                        r.push_str(&reason);
                    }
                })
                .or_insert(reason);
        }
        self
    }

    /// The first and last dates this calendar can answer for: 1 January of the first year with
    /// bank-holiday data and 31 December of the last.
    pub fn coverage(&self) -> (NaiveDate, NaiveDate) {
        (self.first, self.last)
    }

    /// The law's calendar: the same bank holidays and coverage, without the partnership's closure
    /// days. Statutory time — day 0, day N, every `[[deadline]]`, "7 working days before
    /// publication" — is counted on it: a closure day is the office's, not the law's. Cheap (the
    /// holidays are shared).
    pub fn statutory(&self) -> Calendar {
        Calendar {
            holidays: Arc::clone(&self.holidays),
            closures: BTreeMap::new(),
            first: self.first,
            last: self.last,
        }
    }

    /// When the office sends a letter that statutory time dates `d`, given that it may not go
    /// before `earliest` (the day of what it answers: day 0, a decision).
    ///
    /// Every dated letter serves a statutory deadline, so a closure day moves it *earlier*, never
    /// later: to the last open working day before `d` (closure days, weekends and bank holidays
    /// passed over). When there is no open working day from `earliest` up to `d`, it goes on `d`
    /// all the same ([`Sending::OnItsDay`]): the daemon sends on a closure day rather than let a
    /// statutory letter go late. A `d` that is not a closure day is [`Sending::AsDated`].
    pub fn sending_day(&self, d: NaiveDate, earliest: NaiveDate) -> Result<Sending, CalendarError> {
        let why = match self.non_working(d)? {
            Some(why @ NonWorking::Closure { .. }) => why,
            _ => return Ok(Sending::AsDated),
        };
        let closed = |skipped: &[(NaiveDate, NonWorking)]| {
            skipped
                .iter()
                .filter(|(_, why)| matches!(why, NonWorking::Closure { .. }))
                .map(|(day, why)| format!("{} {why}", short_day(*day)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if d > earliest {
            let back = self.previous_working_day_on_or_before(d)?;
            if back.date >= earliest {
                return Ok(Sending::Before {
                    date: back.date,
                    closed: closed(&back.skipped),
                });
            }
        }
        Ok(Sending::OnItsDay {
            closed: closed(&[(d, why)]),
            earliest,
        })
    }

    fn covered(&self, d: NaiveDate) -> Result<(), CalendarError> {
        if d < self.first || d > self.last {
            Err(CalendarError::OutsideCoverage {
                date: d,
                first: self.first,
                last: self.last,
            })
        } else {
            Ok(())
        }
    }

    /// Why `d` is not a working day, or `None` when it is one. Any date outside
    /// [`coverage`](Self::coverage) is an error, weekends included, so every answer comes from
    /// the same data.
    pub fn non_working(&self, d: NaiveDate) -> Result<Option<NonWorking>, CalendarError> {
        self.covered(d)?;
        Ok(match d.weekday() {
            Weekday::Sat => Some(NonWorking::Saturday),
            Weekday::Sun => Some(NonWorking::Sunday),
            _ => {
                if let Some(h) = self.holidays.get(&d) {
                    Some(NonWorking::BankHoliday {
                        title: h.title.clone(),
                        substitute: h.substitute,
                    })
                } else {
                    self.closures.get(&d).map(|reason| NonWorking::Closure {
                        reason: reason.clone(),
                    })
                }
            }
        })
    }

    /// Whether `d` is a working day (an error outside [`coverage`](Self::coverage)).
    pub fn is_working_day(&self, d: NaiveDate) -> Result<bool, CalendarError> {
        Ok(self.non_working(d)?.is_none())
    }

    /// `d` if it is a working day, else the first working day after it; `skipped` holds the
    /// non-working days from `d` up to the answer.
    pub fn next_working_day_on_or_after(&self, d: NaiveDate) -> Result<Reckoning, CalendarError> {
        let mut skipped = Vec::new();
        let mut cur = d;
        while let Some(why) = self.non_working(cur)? {
            skipped.push((cur, why));
            cur = self.step(cur, Direction::Forward)?;
        }
        Ok(Reckoning {
            date: cur,
            skipped,
            after_cutoff: None,
        })
    }

    /// `d` if it is a working day, else the last working day before it; `skipped` holds the
    /// non-working days after the answer up to `d`, in date order.
    pub fn previous_working_day_on_or_before(
        &self,
        d: NaiveDate,
    ) -> Result<Reckoning, CalendarError> {
        let mut skipped = Vec::new();
        let mut cur = d;
        while let Some(why) = self.non_working(cur)? {
            skipped.push((cur, why));
            cur = self.step(cur, Direction::Backward)?;
        }
        skipped.reverse();
        Ok(Reckoning {
            date: cur,
            skipped,
            after_cutoff: None,
        })
    }

    /// Day 0 of a review: the London date a referral was `received`; if that is not a working
    /// day, the next working day; if it is a working day but the London wall-clock time is at or
    /// after `cutoff` (when given), the next working day after it (`after_cutoff` is then set).
    ///
    /// The cutoff matters only when the referral arrived on a working day: one arriving late on a
    /// Saturday still starts on Monday, not Tuesday. `None` means no cutoff (the whole day counts). The
    /// cutoff is compared with London time, not UTC, so 16:30 BST is after a 16:00 cutoff even
    /// though it is 15:30 UTC.
    pub fn day_zero(
        &self,
        received: DateTime<Utc>,
        cutoff: Option<NaiveTime>,
    ) -> Result<Reckoning, CalendarError> {
        let local = received.with_timezone(&LONDON).naive_local();
        let date = local.date();
        match cutoff {
            Some(cutoff) if local.time() >= cutoff && self.is_working_day(date)? => {
                let next = self.step(date, Direction::Forward)?;
                let mut reckoning = self.next_working_day_on_or_after(next)?;
                reckoning.after_cutoff = Some(AfterCutoff {
                    received: local,
                    cutoff,
                });
                Ok(reckoning)
            }
            _ => self.next_working_day_on_or_after(date),
        }
    }

    /// Day `n` counted from `from`: the `n`th working day after it (`n > 0`) or before it
    /// (`n < 0`).
    ///
    /// `from` is treated as a day 0, with the same rule as [`day_zero`](Self::day_zero): when
    /// it is not a working day, the next working day is day 0. So `n = 0` returns `from` when it
    /// is a working day and otherwise the next working day (never an error), `n = 1` from a
    /// Saturday is Tuesday (Monday is day 0), and `n = -1` from a Saturday is Friday. Results are
    /// always working days, and rise with `n` without repeats.
    ///
    /// `skipped` holds every non-working day between `from` and the answer, both ends included
    /// (the answer is a working day, so only `from` can be one of the ends), in date order.
    /// Counting past [`coverage`](Self::coverage) is an error naming the date reached.
    pub fn add_working_days(&self, from: NaiveDate, n: i32) -> Result<Reckoning, CalendarError> {
        if n >= 0 {
            let Reckoning {
                date: mut cur,
                mut skipped,
                ..
            } = self.next_working_day_on_or_after(from)?;
            let mut remaining = n.unsigned_abs();
            while remaining > 0 {
                cur = self.step(cur, Direction::Forward)?;
                match self.non_working(cur)? {
                    None => remaining -= 1,
                    Some(why) => skipped.push((cur, why)),
                }
            }
            Ok(Reckoning {
                date: cur,
                skipped,
                after_cutoff: None,
            })
        } else {
            // The working days before the rolled-forward day 0 are exactly the working days
            // strictly before `from`, so count back from `from` itself.
            let mut skipped = Vec::new();
            if let Some(why) = self.non_working(from)? {
                skipped.push((from, why));
            }
            let mut cur = from;
            let mut remaining = n.unsigned_abs();
            while remaining > 0 {
                cur = self.step(cur, Direction::Backward)?;
                match self.non_working(cur)? {
                    None => remaining -= 1,
                    Some(why) => skipped.push((cur, why)),
                }
            }
            skipped.reverse();
            Ok(Reckoning {
                date: cur,
                skipped,
                after_cutoff: None,
            })
        }
    }

    /// Which working day `d` is, counted from `day0` (rolled forward to a working day as in
    /// [`add_working_days`](Self::add_working_days)): for a working day, the `n` with
    /// `add_working_days(day0, n) == d`, negative when `d` is before day 0.
    ///
    /// A non-working `d` gets the number of the last working day on or before it: the working
    /// days *reached* by `d`. So the Saturday after day 7 is 7, and the weekend before a Monday
    /// day 0 (including a Saturday `day0` itself) is -1. This makes "is day `n` due by `d`?"
    /// one comparison: `working_day_number(day0, d)? >= n` exactly when
    /// `add_working_days(day0, n)?.date <= d`.
    pub fn working_day_number(&self, day0: NaiveDate, d: NaiveDate) -> Result<i32, CalendarError> {
        let start = self.next_working_day_on_or_after(day0)?.date;
        self.covered(d)?;
        let mut count: i64 = 0;
        if d >= start {
            // Working days in (start, d].
            let mut cur = start;
            while cur < d {
                cur = self.step(cur, Direction::Forward)?;
                if self.is_working_day(cur)? {
                    count += 1;
                }
            }
        } else {
            // -(1 + working days in (d, start)): the last working day on or before d.
            count = -1;
            let mut cur = d;
            loop {
                cur = self.step(cur, Direction::Forward)?;
                if cur >= start {
                    break;
                }
                if self.is_working_day(cur)? {
                    count -= 1;
                }
            }
        }
        i32::try_from(count).map_err(|_| CalendarError::Overflow {
            what: format!(
                "working days from {} to {}",
                short_date(day0),
                short_date(d)
            ),
        })
    }

    fn step(&self, d: NaiveDate, direction: Direction) -> Result<NaiveDate, CalendarError> {
        let next = match direction {
            Direction::Forward => d.succ_opt(),
            Direction::Backward => d.pred_opt(),
        };
        next.ok_or_else(|| CalendarError::Overflow {
            what: format!("the day {} {d}", direction.word()),
        })
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

impl Direction {
    fn word(self) -> &'static str {
        match self {
            Direction::Forward => "after",
            Direction::Backward => "before",
        }
    }
}

/// `d` plus `n` calendar weeks (negative `n` goes back).
///
/// Returns a `Result` (the brief sketched a bare date) so that an absurd `n` from configuration
/// is an error rather than a panic.
pub fn add_weeks(d: NaiveDate, n: i32) -> Result<NaiveDate, CalendarError> {
    TimeDelta::try_weeks(i64::from(n))
        .and_then(|delta| d.checked_add_signed(delta))
        .ok_or_else(|| CalendarError::Overflow {
            what: format!("{} + {n} weeks", short_date(d)),
        })
}

/// `d` plus `n` calendar months (negative `n` goes back), clamped to the end of a shorter
/// month: 31 Aug 2026 + 6 months = 28 Feb 2027, 31 Aug 2027 + 6 months = 29 Feb 2028.
pub fn add_months(d: NaiveDate, n: i32) -> Result<NaiveDate, CalendarError> {
    let months = Months::new(n.unsigned_abs());
    let result = if n >= 0 {
        d.checked_add_months(months)
    } else {
        d.checked_sub_months(months)
    };
    result.ok_or_else(|| CalendarError::Overflow {
        what: format!("{} + {n} months", short_date(d)),
    })
}

/// `t` plus `h` elapsed hours (e.g. "within 48 hours"). Counted on the UTC timeline, so 48
/// hours across a clock change reads 47 or 49 hours on the London wall clock, as it should.
///
/// Returns a `Result` so that an absurd `h` is an error rather than a panic.
pub fn add_hours(t: DateTime<Utc>, h: i64) -> Result<DateTime<Utc>, CalendarError> {
    TimeDelta::try_hours(h)
        .and_then(|delta| t.checked_add_signed(delta))
        .ok_or_else(|| CalendarError::Overflow {
            what: format!("{t} + {h} hours"),
        })
}

/// The London calendar date of an instant (23:30 UTC on a summer date is already tomorrow).
pub fn london_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&LONDON).date_naive()
}

/// The instant at which London's wall clock reads `time` on `d` (09:00 in summer is 08:00 UTC).
///
/// The two clock changes: a time in the spring-forward gap (01:00 to 01:59 on the last Sunday
/// of March, which never happens) moves forward to the first instant that does exist, the
/// moment clocks go forward (01:00 UTC, 02:00 BST). A time in the autumn overlap (01:00 to
/// 01:59 on the last Sunday of October, which happens twice) takes the earlier instant (the BST
/// one). Both choices resolve to the earlier of the reasonable answers without ever going
/// back before the requested wall-clock time.
pub fn london_instant(d: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = d.and_time(time);
    match LONDON.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
        chrono::LocalResult::None => first_instant_at_or_after(local),
    }
}

/// The first instant whose London wall-clock time is at or after `local` (a time in a gap).
fn first_instant_at_or_after(local: NaiveDateTime) -> DateTime<Utc> {
    let wall = |secs: i64| {
        DateTime::from_timestamp(secs, 0).map(|t| t.with_timezone(&LONDON).naive_local())
    };
    // London's offset is within an hour of UTC, so a day either side brackets the answer, and
    // with one clock change at most in that window the wall clock is monotonic in it.
    let centre = local.and_utc().timestamp();
    let (mut lo, mut hi) = (centre.saturating_sub(86_400), centre.saturating_add(86_400));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match wall(mid) {
            Some(w) if w >= local => hi = mid,
            _ => lo = mid,
        }
    }
    // Unreachable for London in chrono's range; reading the time as UTC is the least-bad answer.
    DateTime::from_timestamp(hi, 0).unwrap_or_else(|| local.and_utc())
}

/// `YYYY-MM-DD` strictly (GOV.UK's form), or `None`.
fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

// ---- Written dates: the one spelling of each form ------------------------------------------

/// `Tuesday 22 December 2026`: letters and reports.
pub fn long_date(d: NaiveDate) -> String {
    d.format("%A %-d %B %Y").to_string()
}

/// `Tuesday 22 December 2026 at 14:03`, in London time: letters.
pub fn long_instant(t: DateTime<Utc>) -> String {
    t.with_timezone(&LONDON)
        .format("%A %-d %B %Y at %H:%M")
        .to_string()
}

/// `Tue 22 Dec 2026`: explanations, histories, the command line, subjects.
pub fn short_date(d: NaiveDate) -> String {
    d.format("%a %-d %b %Y").to_string()
}

/// `Tue 22 Dec`: when the year goes without saying.
pub fn short_day(d: NaiveDate) -> String {
    d.format("%a %-d %b").to_string()
}

/// `Tue 22 Dec 2026 14:03`, in London time.
pub fn short_instant(t: DateTime<Utc>) -> String {
    t.with_timezone(&LONDON)
        .format("%a %-d %b %Y %H:%M")
        .to_string()
}

/// `Tue 22 Dec 2026 14:03 GMT` (or `BST`), in London time with its zone.
pub fn short_instant_zoned(t: DateTime<Utc>) -> String {
    t.with_timezone(&LONDON)
        .format("%a %-d %b %Y %H:%M %Z")
        .to_string()
}

/// `14:03`, in London time.
pub fn london_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&LONDON).format("%H:%M").to_string()
}

/// `December 2026`.
pub fn month_year(d: NaiveDate) -> String {
    d.format("%B %Y").to_string()
}

/// `20261222T140300`: iCalendar's local date-time, in London time (with `TZID=Europe/London`).
pub fn ics_local(t: DateTime<Utc>) -> String {
    t.with_timezone(&LONDON).format("%Y%m%dT%H%M%S").to_string()
}

/// `16:30`, or `16:30:15` when there are seconds.
fn clock_time(t: NaiveTime) -> String {
    if t.second() == 0 && t.nanosecond() == 0 {
        t.format("%H:%M").to_string()
    } else {
        t.format("%H:%M:%S").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_written_form_of_a_date_is_spelled_in_london_time() {
        let winter = DateTime::parse_from_rfc3339("2026-12-22T14:03:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let summer = DateTime::parse_from_rfc3339("2026-08-28T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let d = NaiveDate::from_ymd_opt(2026, 12, 22).unwrap();
        assert_eq!(long_date(d), "Tuesday 22 December 2026");
        assert_eq!(long_instant(winter), "Tuesday 22 December 2026 at 14:03");
        assert_eq!(long_instant(summer), "Saturday 29 August 2026 at 00:30");
        assert_eq!(short_date(d), "Tue 22 Dec 2026");
        assert_eq!(short_day(d), "Tue 22 Dec");
        assert_eq!(short_instant(summer), "Sat 29 Aug 2026 00:30");
        assert_eq!(short_instant_zoned(winter), "Tue 22 Dec 2026 14:03 GMT");
        assert_eq!(short_instant_zoned(summer), "Sat 29 Aug 2026 00:30 BST");
        assert_eq!(london_time(summer), "00:30");
        assert_eq!(month_year(d), "December 2026");
        assert_eq!(ics_local(summer), "20260829T003000");
    }
    use proptest::prelude::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn cal() -> Calendar {
        Calendar::bundled()
    }

    fn every_day(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
        from.iter_days().take_while(move |d| *d <= to)
    }

    fn holiday(title: &str, substitute: bool) -> Option<NonWorking> {
        Some(NonWorking::BankHoliday {
            title: title.to_owned(),
            substitute,
        })
    }

    // ---- the bundled data ----

    #[test]
    fn the_bundled_file_parses_and_covers_2018_through_2028() {
        let c = Calendar::from_govuk_json(BUNDLED_JSON).unwrap();
        assert_eq!(c.coverage(), (ymd(2018, 1, 1), ymd(2028, 12, 31)));
        assert_eq!(c.holidays.len(), 91);
        assert_eq!(cal().coverage(), c.coverage());
    }

    #[test]
    fn every_bundled_england_and_wales_date_is_a_bank_holiday_in_the_bankholidays_crate() {
        let c = cal();
        for date in c.holidays.keys() {
            assert!(
                bankholidays::uk::is_bankholiday(date),
                "{date} is bundled but the bankholidays crate says it is not a bank holiday"
            );
        }
    }

    #[test]
    fn every_bank_holiday_in_the_bankholidays_crate_from_2018_to_2028_is_bundled() {
        let c = cal();
        let mut seen = 0;
        for d in every_day(ymd(2018, 1, 1), ymd(2028, 12, 31)) {
            if bankholidays::uk::is_bankholiday(&d) {
                seen += 1;
                assert!(
                    matches!(
                        c.non_working(d).unwrap(),
                        Some(NonWorking::BankHoliday { .. })
                    ),
                    "the bankholidays crate says {d} is a bank holiday but it is not bundled"
                );
            }
        }
        assert_eq!(seen, 91);
    }

    #[test]
    fn no_bundled_bank_holiday_falls_on_a_weekend() {
        for date in cal().holidays.keys() {
            assert!(
                !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
                "{date} is a weekend day; the weekend would hide the holiday"
            );
        }
    }

    #[test]
    fn the_bundled_titles_are_govuk_titles_and_substitute_days_are_marked() {
        let c = cal();
        assert_eq!(
            c.non_working(ymd(2027, 1, 1)).unwrap(),
            holiday("New Year’s Day", false)
        );
        assert_eq!(
            c.non_working(ymd(2028, 1, 3)).unwrap(),
            holiday("New Year’s Day", true)
        );
        assert_eq!(
            c.non_working(ymd(2026, 12, 28)).unwrap(),
            holiday("Boxing Day", true)
        );
        assert_eq!(
            c.non_working(ymd(2026, 4, 3)).unwrap(),
            holiday("Good Friday", false)
        );
        assert_eq!(
            c.non_working(ymd(2026, 5, 4)).unwrap(),
            holiday("Early May bank holiday", false)
        );
        assert_eq!(
            c.non_working(ymd(2026, 5, 25)).unwrap(),
            holiday("Spring bank holiday", false)
        );
        assert_eq!(
            c.non_working(ymd(2026, 8, 31)).unwrap(),
            holiday("Summer bank holiday", false)
        );
    }

    #[test]
    fn the_one_off_bank_holidays_of_2020_2022_and_2023_are_bundled_and_the_moved_days_are_working_days()
     {
        let c = cal();
        assert_eq!(
            c.non_working(ymd(2020, 5, 8)).unwrap(),
            holiday("Early May bank holiday (VE day)", false)
        );
        assert!(c.is_working_day(ymd(2020, 5, 4)).unwrap());
        assert_eq!(
            c.non_working(ymd(2022, 6, 2)).unwrap(),
            holiday("Spring bank holiday", false)
        );
        assert_eq!(
            c.non_working(ymd(2022, 6, 3)).unwrap(),
            holiday("Platinum Jubilee bank holiday", false)
        );
        assert!(c.is_working_day(ymd(2022, 5, 30)).unwrap());
        assert_eq!(
            c.non_working(ymd(2022, 9, 19)).unwrap(),
            holiday(
                "Bank Holiday for the State Funeral of Queen Elizabeth II",
                false
            )
        );
        assert_eq!(
            c.non_working(ymd(2023, 5, 8)).unwrap(),
            holiday("Bank holiday for the coronation of King Charles III", false)
        );
    }

    // ---- Christmas 2026 ----

    #[test]
    fn five_working_days_after_christmas_eve_2026_is_tuesday_5_january_2027() {
        let r = cal().add_working_days(ymd(2026, 12, 24), 5).unwrap();
        assert_eq!(r.date, ymd(2027, 1, 5));
        assert_eq!(
            r.explain(),
            "Tue 5 Jan 2027 (skipped Fri 25 Dec Christmas Day, Mon 28 Dec Boxing Day (substitute day), \
             Fri 1 Jan New Year’s Day, 2 weekends)"
        );
        // 12 calendar days = 5 working days + 3 holidays + 4 weekend days.
        assert_eq!(r.skipped.len(), 7);
    }

    #[test]
    fn a_referral_received_on_christmas_eve_afternoon_after_the_cutoff_starts_on_the_29th() {
        let r = cal()
            .day_zero(utc("2026-12-24T16:30:00Z"), Some(hm(16, 0)))
            .unwrap();
        assert_eq!(r.date, ymd(2026, 12, 29));
        assert_eq!(
            r.explain(),
            "Tue 29 Dec 2026 (received Thu 24 Dec at 16:30, after the 16:00 cutoff; \
             skipped Fri 25 Dec Christmas Day, Mon 28 Dec Boxing Day (substitute day), a weekend)"
        );
    }

    #[test]
    fn a_referral_received_on_christmas_eve_before_the_cutoff_starts_on_christmas_eve() {
        let r = cal()
            .day_zero(utc("2026-12-24T15:59:59Z"), Some(hm(16, 0)))
            .unwrap();
        assert_eq!(r.explain(), "Thu 24 Dec 2026 (no days skipped)");
    }

    #[test]
    fn a_referral_received_exactly_at_the_cutoff_starts_on_the_next_working_day() {
        let r = cal()
            .day_zero(utc("2026-12-23T16:00:00Z"), Some(hm(16, 0)))
            .unwrap();
        assert_eq!(
            r.explain(),
            "Thu 24 Dec 2026 (received Wed 23 Dec at 16:00, at the 16:00 cutoff)"
        );
    }

    #[test]
    fn without_a_cutoff_a_referral_late_on_a_working_day_starts_that_day() {
        let r = cal().day_zero(utc("2026-12-24T23:59:00Z"), None).unwrap();
        assert_eq!(r.date, ymd(2026, 12, 24));
        assert_eq!(r.after_cutoff, None);
    }

    #[test]
    fn a_late_time_with_seconds_is_explained_to_the_second() {
        let r = cal()
            .day_zero(utc("2026-12-23T16:00:30Z"), Some(hm(16, 0)))
            .unwrap();
        assert_eq!(
            r.explain(),
            "Thu 24 Dec 2026 (received Wed 23 Dec at 16:00:30, after the 16:00 cutoff)"
        );
    }

    #[test]
    fn the_working_day_before_the_christmas_2026_break_is_christmas_eve() {
        let r = cal()
            .previous_working_day_on_or_before(ymd(2026, 12, 28))
            .unwrap();
        assert_eq!(r.date, ymd(2026, 12, 24));
        let dates: Vec<NaiveDate> = r.skipped.iter().map(|(d, _)| *d).collect();
        assert_eq!(
            dates,
            vec![
                ymd(2026, 12, 25),
                ymd(2026, 12, 26),
                ymd(2026, 12, 27),
                ymd(2026, 12, 28)
            ]
        );
    }

    // ---- Christmas 2027 ----

    #[test]
    fn christmas_2027_on_a_weekend_moves_both_holidays_to_monday_and_tuesday() {
        let c = cal();
        assert_eq!(
            c.non_working(ymd(2027, 12, 25)).unwrap(),
            Some(NonWorking::Saturday)
        );
        assert_eq!(
            c.non_working(ymd(2027, 12, 26)).unwrap(),
            Some(NonWorking::Sunday)
        );
        assert_eq!(
            c.non_working(ymd(2027, 12, 27)).unwrap(),
            holiday("Christmas Day", true)
        );
        assert_eq!(
            c.non_working(ymd(2027, 12, 28)).unwrap(),
            holiday("Boxing Day", true)
        );
        let r = c.add_working_days(ymd(2027, 12, 24), 1).unwrap();
        assert_eq!(
            r.explain(),
            "Wed 29 Dec 2027 (skipped Mon 27 Dec Christmas Day (substitute day), \
             Tue 28 Dec Boxing Day (substitute day), a weekend)"
        );
    }

    #[test]
    fn new_years_day_2028_on_a_saturday_moves_to_monday_3_january() {
        let r = cal().add_working_days(ymd(2027, 12, 31), 1).unwrap();
        assert_eq!(
            r.explain(),
            "Tue 4 Jan 2028 (skipped Mon 3 Jan New Year’s Day (substitute day), a weekend)"
        );
    }

    // ---- Easter 2027 ----

    #[test]
    fn the_working_day_after_maundy_thursday_2027_is_the_tuesday_after_easter() {
        let r = cal().add_working_days(ymd(2027, 3, 25), 1).unwrap();
        assert_eq!(
            r.explain(),
            "Tue 30 Mar 2027 (skipped Fri 26 Mar Good Friday, Mon 29 Mar Easter Monday, a weekend)"
        );
        let back = cal().add_working_days(ymd(2027, 3, 30), -1).unwrap();
        assert_eq!(back.date, ymd(2027, 3, 25));
        assert_eq!(back.skipped, r.skipped);
    }

    // ---- closure days ----

    #[test]
    fn a_christmas_shutdown_is_skipped_and_named_alongside_the_bank_holidays() {
        let shutdown = [29, 30, 31].map(|d| (ymd(2026, 12, d), "Christmas shutdown".to_owned()));
        let c = cal()
            .with_closures([(ymd(2026, 12, 24), "Christmas Eve".to_owned())])
            .with_closures(shutdown);
        assert!(
            cal().is_working_day(ymd(2026, 12, 29)).unwrap(),
            "bundled() is unaffected"
        );
        let r = c.add_working_days(ymd(2026, 12, 23), 1).unwrap();
        assert_eq!(
            r.explain(),
            "Mon 4 Jan 2027 (skipped Thu 24 Dec Christmas Eve (closure day), Fri 25 Dec Christmas Day, \
             Mon 28 Dec Boxing Day (substitute day), Tue 29 Dec Christmas shutdown (closure day), \
             Wed 30 Dec Christmas shutdown (closure day), Thu 31 Dec Christmas shutdown (closure day), \
             Fri 1 Jan New Year’s Day, 2 weekends)"
        );
    }

    #[test]
    fn a_closure_day_on_a_bank_holiday_or_weekend_is_reported_as_the_holiday_or_weekend() {
        let c = cal().with_closures([
            (ymd(2026, 12, 25), "shutdown".to_owned()),
            (ymd(2026, 12, 26), "shutdown".to_owned()),
        ]);
        assert_eq!(
            c.non_working(ymd(2026, 12, 25)).unwrap(),
            holiday("Christmas Day", false)
        );
        assert_eq!(
            c.non_working(ymd(2026, 12, 26)).unwrap(),
            Some(NonWorking::Saturday)
        );
    }

    fn shutdown() -> Calendar {
        cal().with_closures([
            (ymd(2026, 12, 29), "Christmas shutdown".to_owned()),
            (ymd(2026, 12, 30), "Christmas shutdown".to_owned()),
        ])
    }

    #[test]
    fn the_statutory_calendar_counts_a_closure_day_as_a_working_day() {
        let office = shutdown();
        let law = office.statutory();
        assert!(!office.is_working_day(ymd(2026, 12, 29)).unwrap());
        assert!(law.is_working_day(ymd(2026, 12, 29)).unwrap());
        assert_eq!(law.coverage(), office.coverage());
        // Fri 18 Dec 2026 + 15 working days: the law's Wed 13 Jan, not the office's Fri 15 Jan.
        assert_eq!(
            law.add_working_days(ymd(2026, 12, 18), 15).unwrap().date,
            ymd(2027, 1, 13)
        );
        assert_eq!(
            office.add_working_days(ymd(2026, 12, 18), 15).unwrap().date,
            ymd(2027, 1, 15)
        );
    }

    #[test]
    fn a_letter_dated_on_a_closure_day_goes_on_the_last_open_working_day_before_it() {
        let s = shutdown()
            .sending_day(ymd(2026, 12, 30), ymd(2026, 12, 22))
            .unwrap();
        assert_eq!(
            s,
            Sending::Before {
                date: ymd(2026, 12, 24),
                closed:
                    "Tue 29 Dec Christmas shutdown (closure day), Wed 30 Dec Christmas shutdown \
                         (closure day)"
                        .to_owned(),
            }
        );
        assert_eq!(
            s.explain().unwrap(),
            "the office is closed Tue 29 Dec Christmas shutdown (closure day), Wed 30 Dec Christmas \
             shutdown (closure day), so it goes on the last open working day before: Thu 24 Dec 2026"
        );
    }

    #[test]
    fn a_letter_on_an_open_day_goes_as_dated() {
        let office = shutdown();
        assert_eq!(
            office
                .sending_day(ymd(2026, 12, 31), ymd(2026, 12, 22))
                .unwrap(),
            Sending::AsDated
        );
        assert_eq!(Sending::AsDated.explain(), None);
    }

    #[test]
    fn a_letter_with_no_open_day_between_what_it_answers_and_its_date_goes_on_its_day() {
        // Answering something on Tue 29 Dec, due Wed 30 Dec: both closed, nothing open between.
        let s = shutdown()
            .sending_day(ymd(2026, 12, 30), ymd(2026, 12, 29))
            .unwrap();
        assert_eq!(
            s.explain().unwrap(),
            "the office is closed Wed 30 Dec Christmas shutdown (closure day) and has no open working \
             day from Tue 29 Dec 2026 up to it, so it goes on its day all the same"
        );
    }

    #[test]
    fn two_reasons_for_one_closure_day_are_both_kept() {
        let d = ymd(2026, 7, 1);
        let c = cal().with_closures([
            (d, "office move".to_owned()),
            (d, "office move".to_owned()),
            (d, "staff training".to_owned()),
        ]);
        assert_eq!(
            c.non_working(d).unwrap(),
            Some(NonWorking::Closure {
                reason: "office move; staff training".to_owned()
            })
        );
    }

    // ---- London wall clock and the clock changes ----

    #[test]
    fn a_referral_at_23_30_utc_on_a_summer_date_is_already_the_next_london_day() {
        let t = utc("2026-07-01T23:30:00Z");
        assert_eq!(london_date(t), ymd(2026, 7, 2));
        assert_eq!(cal().day_zero(t, None).unwrap().date, ymd(2026, 7, 2));
        // In winter London is on UTC, so the same time is still the same day.
        assert_eq!(london_date(utc("2026-01-14T23:30:00Z")), ymd(2026, 1, 14));
    }

    #[test]
    fn a_referral_at_00_30_london_time_on_a_summer_saturday_is_friday_in_utc_but_starts_on_monday()
    {
        let t = utc("2026-07-03T23:30:00Z"); // Sat 4 Jul 00:30 BST
        let r = cal().day_zero(t, None).unwrap();
        assert_eq!(r.explain(), "Mon 6 Jul 2026 (skipped a weekend)");
    }

    #[test]
    fn the_cutoff_is_compared_with_london_time_not_utc() {
        let c = cal();
        // 15:30 UTC is 16:30 BST: after a 16:00 cutoff.
        let late = c
            .day_zero(utc("2026-07-02T15:30:00Z"), Some(hm(16, 0)))
            .unwrap();
        assert_eq!(late.date, ymd(2026, 7, 3));
        let on_time = c
            .day_zero(utc("2026-07-02T14:59:00Z"), Some(hm(16, 0)))
            .unwrap();
        assert_eq!(on_time.date, ymd(2026, 7, 2));
    }

    #[test]
    fn nine_am_london_time_is_eight_utc_in_summer_and_nine_utc_in_winter() {
        assert_eq!(
            london_instant(ymd(2026, 7, 2), hm(9, 0)),
            utc("2026-07-02T08:00:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 1, 14), hm(9, 0)),
            utc("2026-01-14T09:00:00Z")
        );
        // Either side of the March change (Sun 29 Mar 2026) and the October one (Sun 25 Oct).
        assert_eq!(
            london_instant(ymd(2026, 3, 28), hm(9, 0)),
            utc("2026-03-28T09:00:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 3, 29), hm(9, 0)),
            utc("2026-03-29T08:00:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 10, 24), hm(9, 0)),
            utc("2026-10-24T08:00:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 10, 25), hm(9, 0)),
            utc("2026-10-25T09:00:00Z")
        );
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_moves_to_the_moment_clocks_go_forward() {
        assert_eq!(
            london_instant(ymd(2026, 3, 29), hm(1, 30)),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 3, 29), hm(1, 0)),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 3, 29), hm(2, 0)),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 3, 29), hm(0, 59)),
            utc("2026-03-29T00:59:00Z")
        );
    }

    #[test]
    fn an_ambiguous_autumn_time_takes_the_earlier_british_summer_time_instant() {
        assert_eq!(
            london_instant(ymd(2026, 10, 25), hm(1, 30)),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            london_instant(ymd(2026, 10, 25), hm(2, 0)),
            utc("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn forty_eight_hours_across_the_october_change_reads_an_hour_earlier_on_the_wall_clock() {
        let received = london_instant(ymd(2026, 10, 24), hm(12, 0)); // Sat 12:00 BST
        let due = add_hours(received, 48).unwrap();
        assert_eq!(due, utc("2026-10-26T11:00:00Z"));
        assert_eq!(
            due.with_timezone(&LONDON).naive_local(),
            ymd(2026, 10, 26).and_time(hm(11, 0))
        );
    }

    #[test]
    fn forty_eight_hours_across_the_march_change_reads_an_hour_later_on_the_wall_clock() {
        let received = london_instant(ymd(2026, 3, 28), hm(12, 0)); // Sat 12:00 GMT
        let due = add_hours(received, 48).unwrap();
        assert_eq!(
            due.with_timezone(&LONDON).naive_local(),
            ymd(2026, 3, 30).and_time(hm(13, 0))
        );
    }

    // ---- day 0 on non-working days ----

    #[test]
    fn a_referral_received_on_a_saturday_starts_on_monday() {
        let r = cal().day_zero(utc("2026-09-05T10:00:00Z"), None).unwrap();
        assert_eq!(r.explain(), "Mon 7 Sep 2026 (skipped a weekend)");
    }

    #[test]
    fn a_referral_received_on_a_bank_holiday_starts_the_next_working_day() {
        let r = cal().day_zero(utc("2026-08-31T10:00:00Z"), None).unwrap();
        assert_eq!(
            r.explain(),
            "Tue 1 Sep 2026 (skipped Mon 31 Aug Summer bank holiday)"
        );
    }

    #[test]
    fn a_referral_late_on_a_saturday_still_starts_on_monday() {
        let r = cal()
            .day_zero(utc("2026-09-05T18:00:00Z"), Some(hm(16, 0)))
            .unwrap();
        assert_eq!(r.date, ymd(2026, 9, 7));
        assert_eq!(r.after_cutoff, None);
    }

    // ---- day N and N = 0 ----

    #[test]
    fn day_zero_of_a_working_day_is_that_day_with_no_days_skipped() {
        let r = cal().add_working_days(ymd(2027, 1, 4), 0).unwrap();
        assert_eq!(r.explain(), "Mon 4 Jan 2027 (no days skipped)");
    }

    #[test]
    fn counting_from_a_saturday_treats_the_next_working_day_as_day_zero() {
        let c = cal();
        let sat = ymd(2027, 1, 2);
        assert_eq!(c.add_working_days(sat, 0).unwrap().date, ymd(2027, 1, 4));
        assert_eq!(c.add_working_days(sat, 1).unwrap().date, ymd(2027, 1, 5));
        let back = c.add_working_days(sat, -1).unwrap();
        assert_eq!(
            back.explain(),
            "Thu 31 Dec 2026 (skipped Fri 1 Jan New Year’s Day, a weekend)"
        );
    }

    #[test]
    fn the_fifteenth_working_day_of_a_review_opened_in_late_april_2026_skips_the_may_bank_holiday()
    {
        // Rapid review: 15 working days from day 0.
        let r = cal().add_working_days(ymd(2026, 4, 23), 15).unwrap();
        assert_eq!(
            r.explain(),
            "Fri 15 May 2026 (skipped Mon 4 May Early May bank holiday, 3 weekends)"
        );
    }

    #[test]
    fn working_day_numbers_count_the_working_days_reached() {
        let c = cal();
        let day0 = ymd(2026, 12, 24);
        let n = |d| c.working_day_number(day0, d).unwrap();
        assert_eq!(n(ymd(2026, 12, 24)), 0);
        assert_eq!(
            n(ymd(2026, 12, 25)),
            0,
            "Christmas Day: day 0 is the last working day reached"
        );
        assert_eq!(n(ymd(2026, 12, 29)), 1);
        assert_eq!(n(ymd(2027, 1, 1)), 3);
        assert_eq!(n(ymd(2027, 1, 2)), 3);
        assert_eq!(n(ymd(2027, 1, 5)), 5);
        assert_eq!(n(ymd(2026, 12, 23)), -1);
        assert_eq!(
            n(ymd(2026, 12, 19)),
            -4,
            "Saturday before: Friday 18 Dec is day -4"
        );
    }

    #[test]
    fn from_a_saturday_day_zero_the_weekend_itself_is_day_minus_one() {
        let c = cal();
        let sat = ymd(2027, 1, 2);
        let n = |d| c.working_day_number(sat, d).unwrap();
        assert_eq!(n(ymd(2027, 1, 2)), -1);
        assert_eq!(n(ymd(2027, 1, 3)), -1);
        assert_eq!(n(ymd(2027, 1, 4)), 0);
        assert_eq!(n(ymd(2026, 12, 31)), -1);
        assert_eq!(n(ymd(2026, 12, 30)), -2);
    }

    // ---- coverage ----

    #[test]
    fn a_date_beyond_the_data_is_an_error_that_names_the_date_the_range_and_the_file() {
        let err = cal().is_working_day(ymd(2029, 1, 2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no bank-holiday data for Tue 2 Jan 2029: the calendar covers Mon 1 Jan 2018 to Sun 31 Dec 2028; \
             update data/bank-holidays.json (or the configured holidays file) from GOV.UK's bank-holidays.json"
        );
        assert!(err.to_string().contains(BUNDLED_FILE));
    }

    #[test]
    fn counting_past_the_end_of_the_data_is_an_error_at_the_first_uncovered_day() {
        let err = cal().add_working_days(ymd(2028, 12, 22), 10).unwrap_err();
        assert!(
            matches!(err, CalendarError::OutsideCoverage { date, .. } if date == ymd(2029, 1, 1)),
            "{err}"
        );
        let err = cal().add_working_days(ymd(2018, 1, 3), -5).unwrap_err();
        assert!(
            matches!(err, CalendarError::OutsideCoverage { date, .. } if date == ymd(2017, 12, 31)),
            "{err}"
        );
        assert!(cal().day_zero(utc("2030-06-03T09:00:00Z"), None).is_err());
        assert!(
            cal()
                .working_day_number(ymd(2028, 12, 1), ymd(2029, 1, 3))
                .is_err()
        );
        assert!(
            cal().non_working(ymd(2017, 12, 30)).is_err(),
            "weekends outside the data too"
        );
    }

    #[test]
    fn counting_an_absurd_number_of_working_days_stops_at_the_end_of_the_data() {
        assert!(cal().add_working_days(ymd(2026, 1, 5), i32::MAX).is_err());
        assert!(cal().add_working_days(ymd(2026, 1, 5), i32::MIN).is_err());
    }

    // ---- calendar offsets ----

    #[test]
    fn six_months_from_the_end_of_august_is_the_end_of_february() {
        assert_eq!(add_months(ymd(2026, 8, 31), 6).unwrap(), ymd(2027, 2, 28));
        assert_eq!(add_months(ymd(2027, 8, 31), 6).unwrap(), ymd(2028, 2, 29));
        assert_eq!(add_months(ymd(2027, 3, 31), -1).unwrap(), ymd(2027, 2, 28));
        assert_eq!(add_months(ymd(2026, 1, 15), 1).unwrap(), ymd(2026, 2, 15));
        assert_eq!(add_months(ymd(2026, 1, 15), 0).unwrap(), ymd(2026, 1, 15));
    }

    #[test]
    fn calendar_offsets_that_overflow_are_errors_not_panics() {
        assert!(matches!(
            add_months(NaiveDate::MAX, 1),
            Err(CalendarError::Overflow { .. })
        ));
        assert!(add_months(ymd(2026, 1, 1), i32::MAX).is_err());
        assert!(add_months(ymd(2026, 1, 1), i32::MIN).is_err());
        assert!(add_weeks(ymd(2026, 1, 1), i32::MAX).is_err());
        assert!(add_hours(utc("2026-01-01T00:00:00Z"), i64::MAX).is_err());
        let err = add_months(NaiveDate::MAX, 1).unwrap_err().to_string();
        assert!(err.contains("+ 1 months"), "{err}");
    }

    #[test]
    fn weeks_are_seven_calendar_days_regardless_of_holidays() {
        assert_eq!(add_weeks(ymd(2026, 12, 24), 2).unwrap(), ymd(2027, 1, 7));
        assert_eq!(add_weeks(ymd(2026, 12, 24), -1).unwrap(), ymd(2026, 12, 17));
    }

    // ---- display ----

    #[test]
    fn non_working_days_display_as_a_reader_would_write_them() {
        assert_eq!(NonWorking::Saturday.to_string(), "Saturday");
        assert_eq!(NonWorking::Sunday.to_string(), "Sunday");
        assert_eq!(
            holiday("Christmas Day", false).unwrap().to_string(),
            "Christmas Day"
        );
        assert_eq!(
            holiday("Boxing Day", true).unwrap().to_string(),
            "Boxing Day (substitute day)"
        );
        let closure = |r: &str| {
            NonWorking::Closure {
                reason: r.to_owned(),
            }
            .to_string()
        };
        assert_eq!(
            closure("Christmas shutdown"),
            "Christmas shutdown (closure day)"
        );
        assert_eq!(closure(" "), "closure day");
    }

    // ---- the GOV.UK parser ----

    fn one_division(events: &str) -> String {
        format!(
            r#"{{"england-and-wales": {{"division": "england-and-wales", "events": [{events}]}}}}"#
        )
    }

    #[test]
    fn the_parser_rejects_a_file_without_the_england_and_wales_division() {
        let err =
            Calendar::from_govuk_json(r#"{"scotland": {"division": "scotland", "events": []}}"#)
                .unwrap_err();
        assert!(matches!(err, CalendarError::MissingDivision { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("\"england-and-wales\"") && msg.contains("found: scotland"),
            "{msg}"
        );
        let msg = Calendar::from_govuk_json("{}").unwrap_err().to_string();
        assert!(msg.contains("found: none"), "{msg}");
    }

    #[test]
    fn the_parser_rejects_dates_that_are_not_yyyy_mm_dd_and_names_the_event() {
        for bad in ["26/03/2027", "2027-02-30", "2027-3-26", "", "+2027-03-2"] {
            let json = one_division(&format!(
                r#"{{"title": "New Year’s Day", "date": "2027-01-01", "notes": "", "bunting": true}},
                   {{"title": "Good Friday", "date": "{bad}", "notes": "", "bunting": false}}"#
            ));
            let err = Calendar::from_govuk_json(&json).unwrap_err();
            assert!(
                matches!(err, CalendarError::BadDate { index: 2, .. }),
                "{bad}: {err}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("{bad:?}"))
                    && msg.contains("\"Good Friday\"")
                    && msg.contains("event 2 of 2")
                    && msg.contains("YYYY-MM-DD"),
                "{msg}"
            );
        }
    }

    #[test]
    fn the_parser_rejects_an_event_without_a_date_and_says_which_field() {
        let json = one_division(r#"{"title": "Good Friday", "notes": ""}"#);
        let msg = Calendar::from_govuk_json(&json).unwrap_err().to_string();
        assert!(
            msg.contains("event 1 of 1") && msg.contains("missing field `date`"),
            "{msg}"
        );
    }

    #[test]
    fn the_parser_rejects_text_that_is_not_json_or_has_the_wrong_shape() {
        let msg = Calendar::from_govuk_json("<html>").unwrap_err().to_string();
        assert!(msg.contains("the top level"), "{msg}");
        let msg = Calendar::from_govuk_json(r#"{"england-and-wales": {"events": 5}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("\"england-and-wales\" division") && msg.contains("invalid type"),
            "{msg}"
        );
        let msg = Calendar::from_govuk_json(
            r#"{"england-and-wales": {"division": "england-and-wales"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("missing field `events`"), "{msg}");
    }

    #[test]
    fn the_parser_rejects_a_division_with_no_events() {
        let err = Calendar::from_govuk_json(&one_division("")).unwrap_err();
        assert!(matches!(err, CalendarError::NoEvents), "{err}");
    }

    #[test]
    fn the_parser_rejects_data_with_a_missing_year_in_the_middle() {
        let json = one_division(
            r#"{"title": "Christmas Day", "date": "2025-12-25"},
               {"title": "Christmas Day", "date": "2027-12-27", "notes": "Substitute day"}"#,
        );
        let err = Calendar::from_govuk_json(&json).unwrap_err();
        assert!(
            matches!(err, CalendarError::MissingYear { year: 2026, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("none in 2026"), "{err}");
    }

    #[test]
    fn the_parser_keys_on_dates_reads_substitute_notes_and_ignores_other_divisions() {
        let json = r#"{
            "scotland": "anything at all",
            "england-and-wales": {"division": "england-and-wales", "events": [
                {"title": "Boxing Day", "date": "2026-12-28", "notes": "Substitute day", "bunting": true},
                {"title": "Christmas Day", "date": "2026-12-25", "notes": "", "bunting": true},
                {"title": "Office party", "date": "2026-12-25", "notes": "", "bunting": true}
            ]}
        }"#;
        let c = Calendar::from_govuk_json(json).unwrap();
        assert_eq!(c.coverage(), (ymd(2026, 1, 1), ymd(2026, 12, 31)));
        assert_eq!(
            c.non_working(ymd(2026, 12, 28)).unwrap(),
            holiday("Boxing Day", true)
        );
        assert_eq!(
            c.non_working(ymd(2026, 12, 25)).unwrap(),
            holiday("Christmas Day and Office party", false)
        );
        // Only the listed dates: Good Friday is not in this file, so it is a working day here.
        assert!(c.is_working_day(ymd(2026, 4, 3)).unwrap());
    }

    // ---- properties ----

    /// A date from 2019 to 2027, so that ±200 working days stay inside the bundled 2018–2028.
    fn middle_date() -> impl Strategy<Value = NaiveDate> {
        (0u64..3287).prop_map(|k| ymd(2019, 1, 1) + chrono::Days::new(k))
    }

    fn closures() -> impl Strategy<Value = Vec<(NaiveDate, String)>> {
        proptest::collection::vec(middle_date().prop_map(|d| (d, "closed".to_owned())), 0..40)
    }

    proptest! {
        #[test]
        fn adding_then_subtracting_n_working_days_returns_to_the_working_day_started_from(
            d in middle_date(), n in -200i32..=200, shut in closures()
        ) {
            let c = cal().with_closures(shut);
            let w = c.next_working_day_on_or_after(d).unwrap().date;
            let there = c.add_working_days(w, n).unwrap().date;
            prop_assert_eq!(c.add_working_days(there, -n).unwrap().date, w);
        }

        #[test]
        fn add_working_days_never_lands_on_a_weekend_bank_holiday_or_closure_day(
            d in middle_date(), n in -200i32..=200, shut in closures()
        ) {
            let c = cal().with_closures(shut);
            let r = c.add_working_days(d, n).unwrap();
            prop_assert_eq!(c.non_working(r.date).unwrap(), None);
        }

        #[test]
        fn the_skipped_days_account_for_every_calendar_day_between_a_working_day_and_day_n(
            d in middle_date(), n in -200i32..=200, shut in closures()
        ) {
            let c = cal().with_closures(shut);
            let w = c.next_working_day_on_or_after(d).unwrap().date;
            let r = c.add_working_days(w, n).unwrap();
            let span = (r.date - w).num_days().unsigned_abs();
            prop_assert_eq!(span, u64::from(n.unsigned_abs()) + r.skipped.len() as u64);
            let (lo, hi) = (w.min(r.date), w.max(r.date));
            for pair in r.skipped.windows(2) {
                prop_assert!(pair[0].0 < pair[1].0, "skipped days in date order");
            }
            for (day, why) in &r.skipped {
                prop_assert!(lo < *day && *day < hi);
                prop_assert_eq!(c.non_working(*day).unwrap(), Some(why.clone()));
            }
        }

        #[test]
        fn working_day_number_inverts_add_working_days_even_from_a_non_working_day(
            d in middle_date(), n in -200i32..=200, shut in closures()
        ) {
            let c = cal().with_closures(shut);
            let r = c.add_working_days(d, n).unwrap();
            prop_assert_eq!(c.working_day_number(d, r.date).unwrap(), n);
        }

        #[test]
        fn working_day_number_reaches_n_exactly_when_day_n_is_on_or_before_the_date(
            day0 in middle_date(), d in middle_date(), n in -200i32..=200
        ) {
            let c = cal();
            let reached = c.working_day_number(day0, d).unwrap() >= n;
            prop_assert_eq!(reached, c.add_working_days(day0, n).unwrap().date <= d);
        }

        #[test]
        fn day_zero_is_always_a_working_day_on_or_after_the_received_london_date(
            secs in 1_546_300_800i64..1_830_297_600, // 2019-01-01 .. 2028-01-01 UTC
            cutoff in proptest::option::of((0u32..24, 0u32..60)),
        ) {
            let c = cal();
            let received = DateTime::from_timestamp(secs, 0).unwrap();
            let cutoff = cutoff.map(|(h, m)| hm(h, m));
            let r = c.day_zero(received, cutoff).unwrap();
            let date = london_date(received);
            prop_assert!(c.is_working_day(r.date).unwrap());
            prop_assert!(r.date >= date);
            let same_day = c.next_working_day_on_or_after(date).unwrap().date;
            if r.after_cutoff.is_some() {
                prop_assert!(r.date > date);
                prop_assert_eq!(r.date, c.add_working_days(date, 1).unwrap().date);
            } else {
                prop_assert_eq!(r.date, same_day);
            }
        }

        #[test]
        fn london_instant_shows_the_requested_wall_clock_time_unless_it_is_in_the_spring_gap(
            d in middle_date(), secs in 0u32..86_400
        ) {
            let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap();
            let wanted = d.and_time(time);
            let t = london_instant(d, time);
            let wall = t.with_timezone(&LONDON).naive_local();
            if wall != wanted {
                prop_assert!(LONDON.from_local_datetime(&wanted).single().is_none());
                prop_assert!(wall > wanted && wall - wanted <= TimeDelta::hours(1));
                let just_before = (t - TimeDelta::seconds(1)).with_timezone(&LONDON).naive_local();
                prop_assert!(just_before < wanted, "the first instant after the gap");
            }
        }

        #[test]
        fn on_clock_change_nights_london_instant_round_trips_or_lands_on_the_first_instant_after_the_gap(
            year in 2019i32..=2027, october in any::<bool>(), secs in 0u32..4 * 3600
        ) {
            // The last Sunday of March or October, from 00:00 to 04:00.
            let month = if october { 10 } else { 3 };
            let mut d = ymd(year, month, 31);
            while d.weekday() != Weekday::Sun {
                d = d.pred_opt().unwrap();
            }
            let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap();
            let wanted = d.and_time(time);
            let t = london_instant(d, time);
            let wall = t.with_timezone(&LONDON).naive_local();
            let in_gap = !october && (1..2).contains(&(secs / 3600));
            if in_gap {
                prop_assert_eq!(wall, d.and_time(hm(2, 0)));
                prop_assert_eq!(t, d.and_time(hm(1, 0)).and_utc());
            } else {
                prop_assert_eq!(wall, wanted);
                let in_overlap = october && (1..2).contains(&(secs / 3600));
                // No earlier instant shows the same wall-clock time: the earlier one was taken.
                let hour_before = (t - TimeDelta::hours(1)).with_timezone(&LONDON).naive_local();
                prop_assert_ne!(hour_before, wanted);
                if in_overlap {
                    prop_assert_eq!((t + TimeDelta::hours(1)).with_timezone(&LONDON).naive_local(), wanted);
                }
            }
        }

        #[test]
        fn add_months_moves_whole_months_and_clamps_to_the_month_end(
            d in middle_date(), n in -240i32..=240
        ) {
            let r = add_months(d, n).unwrap();
            let months = |x: NaiveDate| x.year() * 12 + x.month0() as i32;
            prop_assert_eq!(months(r) - months(d), n);
            let month_end = add_months(r.with_day(1).unwrap(), 1).unwrap().pred_opt().unwrap().day();
            prop_assert_eq!(r.day(), d.day().min(month_end));
        }
    }
}
