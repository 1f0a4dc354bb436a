//! When the periodic letters fall due: the daily digest on each working day at its time, and the
//! tracker report once per period (a month, or every N weeks) on its day — and how the period
//! reads in its covering letter.
//!
//! Pure: the shell (`shell::periodic`) asks at `now` and queues what is due; a period whose letter
//! is missing is caught up the first time it asks within that period (late beats never). A
//! weekly report whose day is a holiday goes on the next working day in its week, else the one
//! before; a week with no working day at all has its report in the next week.
//!
//! Must not: read the store or the clock, or build the letters (that is `core::letters`).

use crate::core::calendar::{self, Calendar, CalendarError};
use crate::core::process::{Every, TrackerReport};
/// The step name of the daily digest in the outbox.
pub const DIGEST_STEP: &str = "digest";
/// The step name of the tracker report in the outbox.
pub const TRACKER_STEP: &str = "tracker-report";

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};

/// When a periodic email is due: the one to send now (if any) and the next instant to wake for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The outbox key and due instant of the one due now (or overdue within its period).
    pub now: Option<(String, DateTime<Utc>)>,
    /// The tracker report of the period before, due now in this one: that period had no
    /// working day left for it ([`tracker_due`]).
    pub caught: Option<(String, DateTime<Utc>)>,
    /// The next due instant after `now`'s.
    pub next: DateTime<Utc>,
}

/// The outbox key of the digest for a date.
pub fn digest_key(d: NaiveDate) -> String {
    format!("{DIGEST_STEP}/{}", d.format("%Y-%m-%d"))
}

/// The digest's timing at `now`: due today if today is a working day and `at` has passed.
pub fn digest_due(cal: &Calendar, at: NaiveTime, now: DateTime<Utc>) -> Result<Due, CalendarError> {
    let today = calendar::london_date(now);
    let todays = calendar::london_instant(today, at);
    let due_now = cal.is_working_day(today)? && now >= todays;
    let next = if cal.is_working_day(today)? && now < todays {
        todays
    } else {
        // Past the last day the holiday data covers, the next cannot be known: today's digest
        // still goes (it names the data's end), and tomorrow is asked about tomorrow.
        let tomorrow = today + Duration::days(1);
        let next = cal.next_working_day_on_or_after(tomorrow).map(|d| d.date);
        calendar::london_instant(next.unwrap_or(tomorrow), at)
    };
    Ok(Due {
        now: due_now.then(|| (digest_key(today), todays)),
        caught: None,
        next,
    })
}

/// Monday 1 January 2024: weeks of a `weeks = N` report are counted from here.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).expect("a valid date")
}

/// The day a report of this period is due, and its key.
fn period_due(
    cal: &Calendar,
    every: Every,
    period: i64,
) -> Result<(String, NaiveDate), CalendarError> {
    let first = period_start(every, period);
    match every {
        Every::Month { working_day } => {
            let day = cal.add_working_days(first, working_day as i32 - 1)?.date;
            Ok((format!("{TRACKER_STEP}/{}", first.format("%Y-%m")), day))
        }
        Every::Weeks { weekday, weeks } => {
            let monday = first;
            let day = monday + Duration::days(i64::from(weekday.num_days_from_monday()));
            let end = monday + Duration::weeks(i64::from(weeks));
            Ok((
                format!("{TRACKER_STEP}/{}", monday.format("%Y-%m-%d")),
                working_day_within(cal, day, monday, end)?,
            ))
        }
    }
}

/// The working day a report set for `day` goes on, in its period `[start, end)`: `day` or the
/// next working day, while that is still in the period; else the working day before (a Friday
/// report in Good Friday's week goes on the Thursday — rolled on to the Tuesday, it fell in the
/// next week, and the week had no report at all); else, a period without a working day left, the
/// next working day after it ([`tracker_due`] still catches it in the next period).
fn working_day_within(
    cal: &Calendar,
    day: NaiveDate,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<NaiveDate, CalendarError> {
    let next = cal.next_working_day_on_or_after(day)?.date;
    if next < end {
        return Ok(next);
    }
    let before = cal
        .previous_working_day_on_or_before(day - Duration::days(1))?
        .date;
    Ok(if before >= start { before } else { next })
}

/// The first day of a period ([`tracker_due`]'s numbering).
fn period_start(every: Every, period: i64) -> NaiveDate {
    match every {
        Every::Month { .. } => {
            let (y, m) = (period.div_euclid(12), period.rem_euclid(12) + 1);
            NaiveDate::from_ymd_opt(y as i32, m as u32, 1).expect("a valid month")
        }
        Every::Weeks { .. } => epoch() + Duration::weeks(period),
    }
}

/// The tracker report's timing at `now`: the current period's report once its day and time have
/// come, and when the next one is due.
pub fn tracker_due(
    cal: &Calendar,
    t: &TrackerReport,
    now: DateTime<Utc>,
) -> Result<Due, CalendarError> {
    let today = calendar::london_date(now);
    let (period, step) = match t.every {
        Every::Month { .. } => (i64::from(today.year()) * 12 + i64::from(today.month0()), 1),
        Every::Weeks { weeks, .. } => {
            let week = (today - epoch()).num_days().div_euclid(7);
            (week - week.rem_euclid(i64::from(weeks)), i64::from(weeks))
        }
    };
    let (key, day) = period_due(cal, t.every, period)?;
    let at = calendar::london_instant(day, t.at);
    // The period before, if it had no working day left for its report, is due in this one (on
    // the same day as this one's own, it may be: a Monday report after a week closed throughout).
    let (before, before_day) = period_due(cal, t.every, period - step)?;
    let before_at = calendar::london_instant(before_day, t.at);
    let caught = (before_day >= period_start(t.every, period) && now >= before_at)
        .then_some((before, before_at));
    if now >= at {
        let (_, next_day) = period_due(cal, t.every, period + step)?;
        Ok(Due {
            now: Some((key, at)),
            caught,
            next: calendar::london_instant(next_day, t.at),
        })
    } else {
        Ok(Due {
            now: None,
            caught,
            next: at,
        })
    }
}

/// "September 2026" for a monthly key, "the fortnight from Monday 31 August 2026" for weeks.
pub fn period_words(key: &str, every: Every) -> String {
    let tail = key.rsplit('/').next().unwrap_or_default();
    match every {
        Every::Month { .. } => NaiveDate::parse_from_str(&format!("{tail}-01"), "%Y-%m-%d")
            .map(calendar::month_year)
            .unwrap_or_else(|_| tail.to_string()),
        Every::Weeks { weeks, .. } => {
            let from = NaiveDate::parse_from_str(tail, "%Y-%m-%d")
                .map(calendar::long_date)
                .unwrap_or_else(|_| tail.to_string());
            match weeks {
                1 => format!("the week from {from}"),
                2 => format!("the fortnight from {from}"),
                n => format!("the {n} weeks from {from}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::process::{self, Environment, Role};
    use crate::core::views::fixture::{self, World};

    fn t(s: &str) -> DateTime<Utc> {
        fixture::t(s)
    }

    fn eight() -> NaiveTime {
        NaiveTime::from_hms_opt(8, 0, 0).unwrap()
    }

    #[test]
    fn the_digest_is_due_at_its_time_on_working_days_only() {
        let cal = Calendar::bundled();
        // Mon 31 Aug 2026 is the Summer bank holiday: nothing, and the next is Tuesday at 08:00.
        let bank_holiday = digest_due(&cal, eight(), t("2026-08-31T09:00:00Z")).unwrap();
        assert_eq!(bank_holiday.now, None);
        assert_eq!(bank_holiday.next, t("2026-09-01T07:00:00Z"));
        // Tuesday a minute early, then on time, then late in the day.
        let early = digest_due(&cal, eight(), t("2026-09-01T06:59:00Z")).unwrap();
        assert_eq!(early.now, None);
        assert_eq!(early.next, t("2026-09-01T07:00:00Z"));
        let on_time = digest_due(&cal, eight(), t("2026-09-01T07:00:00Z")).unwrap();
        assert_eq!(
            on_time.now,
            Some(("digest/2026-09-01".to_string(), t("2026-09-01T07:00:00Z")))
        );
        assert_eq!(on_time.next, t("2026-09-02T07:00:00Z"));
        let late = digest_due(&cal, eight(), t("2026-09-01T15:00:00Z")).unwrap();
        assert_eq!(late.now.unwrap().0, "digest/2026-09-01", "late beats never");
        // A Saturday: nothing; the next is Monday. Across the October clock change, 08:00 GMT.
        let saturday = digest_due(&cal, eight(), t("2026-09-05T09:00:00Z")).unwrap();
        assert_eq!(saturday.now, None);
        assert_eq!(saturday.next, t("2026-09-07T07:00:00Z"));
        let friday = digest_due(&cal, eight(), t("2026-10-23T09:00:00Z")).unwrap();
        assert_eq!(friday.next, t("2026-10-26T08:00:00Z"));
    }

    #[test]
    fn the_last_working_day_the_holiday_data_covers_still_has_its_digest() {
        let cal = Calendar::bundled();
        let last = (0..400)
            .map(|d| NaiveDate::from_ymd_opt(2028, 1, 1).unwrap() + Duration::days(d))
            .take_while(|d| cal.is_working_day(*d).is_ok())
            .filter(|d| matches!(cal.is_working_day(*d), Ok(true)))
            .last()
            .unwrap();
        let at = calendar::london_instant(last, eight()) + Duration::hours(1);
        let d = digest_due(&cal, eight(), at).expect("today's digest is due");
        assert_eq!(d.now.map(|(k, _)| k), Some(digest_key(last)));
    }

    #[test]
    fn a_closure_day_has_no_digest() {
        let cal = Calendar::bundled().with_closures(vec![(
            NaiveDate::from_ymd_opt(2026, 12, 29).unwrap(),
            "Christmas shutdown".into(),
        )]);
        let d = digest_due(&cal, eight(), t("2026-12-29T09:00:00Z")).unwrap();
        assert_eq!(d.now, None);
        assert_eq!(d.next, t("2026-12-30T08:00:00Z"));
    }

    fn monthly() -> TrackerReport {
        TrackerReport {
            every: Every::Month { working_day: 1 },
            at: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            template: "tracker-report".into(),
            to: vec![Role::Directory("strategic_partnership".into())],
        }
    }

    #[test]
    fn a_monthly_tracker_report_is_due_on_the_first_working_day_and_caught_up_within_the_month() {
        let cal = Calendar::bundled();
        let t1 = monthly();
        let before = tracker_due(&cal, &t1, t("2026-09-01T07:59:00Z")).unwrap();
        assert_eq!(before.now, None);
        assert_eq!(before.next, t("2026-09-01T08:00:00Z"));
        let due = tracker_due(&cal, &t1, t("2026-09-01T08:00:00Z")).unwrap();
        assert_eq!(
            due.now,
            Some((
                "tracker-report/2026-09".to_string(),
                t("2026-09-01T08:00:00Z")
            ))
        );
        assert_eq!(due.next, t("2026-10-01T08:00:00Z"));
        let caught_up = tracker_due(&cal, &t1, t("2026-09-15T12:00:00Z")).unwrap();
        assert_eq!(caught_up.now.unwrap().0, "tracker-report/2026-09");
        // January 2027: New Year's Day is a Friday, so the first working day is Monday 4th.
        let january = tracker_due(&cal, &t1, t("2027-01-01T12:00:00Z")).unwrap();
        assert_eq!(january.now, None);
        assert_eq!(january.next, t("2027-01-04T09:00:00Z"));
        // December, for the next year's January.
        let december = tracker_due(&cal, &t1, t("2026-12-10T12:00:00Z")).unwrap();
        assert_eq!(december.now.unwrap().0, "tracker-report/2026-12");
        assert_eq!(december.next, t("2027-01-04T09:00:00Z"));
    }

    #[test]
    fn a_fortnightly_tracker_report_is_due_every_other_week_on_its_day() {
        let cal = Calendar::bundled();
        let t2 = TrackerReport {
            every: Every::Weeks {
                weeks: 2,
                weekday: chrono::Weekday::Fri,
            },
            ..monthly()
        };
        // Fri 28 Aug 2026 is in week 138 after Mon 1 Jan 2024: an even week, a report week.
        let due = tracker_due(&cal, &t2, t("2026-08-28T08:00:00Z")).unwrap();
        assert_eq!(
            due.now,
            Some((
                "tracker-report/2026-08-24".to_string(),
                t("2026-08-28T08:00:00Z")
            ))
        );
        assert_eq!(due.next, t("2026-09-11T08:00:00Z"));
        let within = tracker_due(&cal, &t2, t("2026-09-02T08:00:00Z")).unwrap();
        assert_eq!(within.now.unwrap().0, "tracker-report/2026-08-24");
        assert_eq!(within.next, t("2026-09-11T08:00:00Z"));
        // The next period starts on Monday 7 September; its report is not due until Friday.
        let next_period = tracker_due(&cal, &t2, t("2026-09-07T08:00:00Z")).unwrap();
        assert_eq!(next_period.now, None);
        assert_eq!(next_period.next, t("2026-09-11T08:00:00Z"));
    }

    /// Every report key due, asking hourly from `from` to `to` as the daemon does.
    fn keys_due(cal: &Calendar, t: &TrackerReport, from: &str, to: &str) -> Vec<(String, String)> {
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut now = fixture::t(from);
        while now < fixture::t(to) {
            let due = tracker_due(cal, t, now).unwrap();
            for (key, at) in due.caught.into_iter().chain(due.now) {
                if !seen.iter().any(|(k, _)| *k == key) {
                    seen.push((key, calendar::london_date(at).to_string()));
                }
            }
            now += Duration::hours(1);
        }
        seen
    }

    #[test]
    fn a_weekly_report_whose_day_is_a_holiday_goes_the_working_day_before_when_the_next_is_another_week()
     {
        let weekly = |weekday| TrackerReport {
            every: Every::Weeks { weeks: 1, weekday },
            ..monthly()
        };
        let cal = Calendar::bundled();
        let friday = weekly(chrono::Weekday::Fri);
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, d)| (format!("tracker-report/{k}"), d.to_string()))
                .collect()
        };
        // Good Friday, 26 March 2027, and Christmas Day, Friday 25 December 2026: the Thursday.
        assert_eq!(
            keys_due(
                &cal,
                &friday,
                "2027-03-15T00:00:00Z",
                "2027-04-10T00:00:00Z"
            ),
            pairs(&[
                ("2027-03-15", "2027-03-19"),
                ("2027-03-22", "2027-03-25"),
                ("2027-03-29", "2027-04-02"),
                ("2027-04-05", "2027-04-09"),
            ])
        );
        // And New Year's Day, Friday 1 January 2027 (Monday 28 December a bank holiday too).
        assert_eq!(
            keys_due(
                &cal,
                &friday,
                "2026-12-21T00:00:00Z",
                "2027-01-09T00:00:00Z"
            ),
            pairs(&[
                ("2026-12-21", "2026-12-24"),
                ("2026-12-28", "2026-12-31"),
                ("2027-01-04", "2027-01-08"),
            ])
        );
        // Easter Monday moves a Monday report to the Tuesday, still in its week.
        let monday = weekly(chrono::Weekday::Mon);
        let easter = keys_due(
            &cal,
            &monday,
            "2027-03-29T00:00:00Z",
            "2027-04-03T00:00:00Z",
        );
        assert_eq!(easter, pairs(&[("2027-03-29", "2027-03-30")]));
        // A week closed throughout (a Christmas shutdown): its report goes in the next week.
        let shut = Calendar::bundled().with_closures((29..=31).map(|d| {
            (
                NaiveDate::from_ymd_opt(2026, 12, d).unwrap(),
                "shutdown".into(),
            )
        }));
        let keys: Vec<String> = keys_due(
            &shut,
            &friday,
            "2026-12-28T00:00:00Z",
            "2027-01-09T00:00:00Z",
        )
        .into_iter()
        .map(|(k, _)| k)
        .collect();
        assert_eq!(
            keys,
            ["tracker-report/2026-12-28", "tracker-report/2027-01-04"]
        );
        // A Monday report: the closed week's goes with the next week's own, the same morning.
        let monday = weekly(chrono::Weekday::Mon);
        let keys: Vec<String> = keys_due(
            &shut,
            &monday,
            "2026-12-28T00:00:00Z",
            "2027-01-12T00:00:00Z",
        )
        .into_iter()
        .map(|(k, _)| k)
        .collect();
        assert_eq!(
            keys,
            [
                "tracker-report/2026-12-28",
                "tracker-report/2027-01-04",
                "tracker-report/2027-01-11"
            ]
        );
    }

    fn with_tracker(table: &str) -> Result<crate::core::process::Process, process::ProcessError> {
        let text = format!(
            r#"
            id = "mini"
            name = "Minimal"
            source = "test"
            [[step]]
            id = "acknowledge"
            name = "Acknowledge"
            when = {{ anchor = "referral_received" }}
            template = "acknowledge"
            to = ["referrer"]
            [tracker_report]
            {table}
            "#
        );
        let has = |name: &str| name != "missing-template";
        process::parse("mini.toml", &text, &Environment { has_template: &has })
    }

    #[test]
    fn a_tracker_report_section_is_validated_with_every_problem_at_once() {
        let ok = with_tracker(
            r#"every = "month"
            to = ["strategic_partnership", "independent_scrutineer"]"#,
        )
        .unwrap();
        let t = ok.tracker_report.as_ref().unwrap();
        assert_eq!(t.every, Every::Month { working_day: 1 });
        assert_eq!(
            t.at,
            NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            "the default_at"
        );
        assert!(ok.directory_roles().contains("independent_scrutineer"));
        let weekly = with_tracker(
            r#"weeks = 2
            on_day = "thursday"
            at = "16:30"
            to = ["strategic_partnership"]"#,
        )
        .unwrap();
        assert_eq!(
            weekly.tracker_report.unwrap().every,
            Every::Weeks {
                weeks: 2,
                weekday: chrono::Weekday::Thu
            }
        );
        let err = with_tracker(
            r#"every = "month"
            on_day = 31
            to = ["referrer", "nobody_role"]
            template = "missing-template""#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("on_day is the working day of the month, 1 to 15"),
            "{err}"
        );
        let err = with_tracker(
            r#"every = "month"
            to = ["referrer", "nobody_role"]
            template = "missing-template""#,
        )
        .unwrap_err()
        .to_string();
        for expected in [
            "unknown role `nobody_role`",
            "`referrer` is not a directory role",
            "template `missing-template` not found",
        ] {
            assert!(err.contains(expected), "{expected}: {err}");
        }
        for (table, expected) in [
            (r#"every = "year""#, "is not \"month\" or \"week\""),
            (
                r#"every = "month"
                weeks = 2"#,
                "not both",
            ),
            (r#"weeks = 0"#, "between 1 and 52"),
            (
                r#"weeks = 1
                on_day = "saturday""#,
                "\"monday\" to \"friday\"",
            ),
            (
                r#"every = "month"
                at = "9am"
                to = ["chair"]"#,
                "not a time like",
            ),
            (r#"to = ["chair"]"#, "needs `every"),
        ] {
            let err = with_tracker(table).unwrap_err().to_string();
            assert!(err.contains(expected), "{table}: {expected}: {err}");
        }
    }

    #[test]
    fn the_tracker_report_letter_renders_in_strict_mode_without_a_case() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let templates = crate::shell::templates::load(&root.join("mail-templates")).unwrap();
        let world = World::new();
        let snap = fixture::snapshot(&world);
        let data = crate::core::export::tracker_data(
            ("Bury Safeguarding Partnership", "BSP", "bsp@bury.test"),
            &period_words("tracker-report/2026-09", Every::Month { working_day: 1 }),
            "BSP-tracker-2026-09.xlsx",
            &snap,
            &world.process,
        );
        let r = templates.render("tracker-report", &data).unwrap();
        assert_eq!(r.subject, "BSP rapid review tracker: September 2026");
        assert!(r.text.contains("5 in all (4 open, 1 closed)"), "{}", r.text);
        assert!(
            r.text.contains(
                "Where the open cases stand:\n\n- Awaiting the screening decision: 1\n- Rapid review in progress: 3\n"
            ),
            "the open cases by stage, in words: {}",
            r.text
        );
        assert!(
            r.html
                .contains("<li>Awaiting the screening decision: 1</li>")
        );
        assert!(r.text.contains("BSP-tracker-2026-09.xlsx"));
        assert!(
            r.html
                .starts_with(r#"<div style="font-family: Arial, sans-serif; font-size: 11pt;">"#)
        );
        assert!(
            !r.text.contains("RR-2026"),
            "no case is named in the covering letter"
        );
        assert_eq!(
            period_words(
                "tracker-report/2026-08-24",
                Every::Weeks {
                    weeks: 2,
                    weekday: chrono::Weekday::Fri
                }
            ),
            "the fortnight from Monday 24 August 2026"
        );
    }

    #[test]
    fn every_process_file_with_a_tracker_report_loads_and_bhr_reports_monthly() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let bhr = crate::shell::config::load_process(
            &root.join("config/processes/bhr.toml"),
            &root.join("mail-templates"),
        )
        .unwrap();
        let t = bhr.tracker_report.expect("BHR sends a tracker report");
        assert_eq!(t.every, Every::Month { working_day: 1 });
        assert_eq!(
            t.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "strategic_partnership",
                "statutory_partners",
                "independent_scrutineer"
            ]
        );
    }
}
