//! What the business unit's web workspace shows, as plain data: a case's line in the list (its
//! working day, where it stands, its next step, what is overdue), the list filtered, each member's
//! vote by name, and one timeline of what was done and what is planned with every date explained.
//!
//! Owns these derivations from [`crate::core::views`] (the same views the digest and the tracker
//! read), so the workspace says what `caseclerk case` and the digest say.
//!
//! Must not: read the store or the clock; lay out HTML (that is [`crate::shell::web`]); carry an
//! address (voters and recipients are directory names or labels).

use crate::core::calendar::{self, Calendar};
use crate::core::directory::Directory;
use crate::core::process::Process;
use crate::core::records::OutboxState;
use crate::core::views::CaseView;
use chrono::{DateTime, NaiveDate, Utc};

/// One case in the list.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseLine {
    pub reference: String,
    pub area: Option<String>,
    pub received: DateTime<Utc>,
    /// Today's working-day number counted from day 0 (`None` before day 0 or beyond the calendar).
    pub day: Option<i32>,
    /// Where it stands: screening, rapid review, with the National Panel, LCSPR, closed, open.
    pub stage: String,
    pub open: bool,
    /// The next planned step and its date.
    pub next: Option<(String, NaiveDate)>,
    /// What is overdue, in words (empty: nothing).
    pub overdue: Vec<String>,
}

/// The statutory day count the list shows: "day N of 15".
pub const RAPID_REVIEW_DAYS: i32 = 15;

/// The list line of one case at `now`.
pub fn case_line(c: &CaseView, process: &Process, cal: &Calendar, now: DateTime<Utc>) -> CaseLine {
    let day = working_day(c.state.day0, cal, now);
    CaseLine {
        reference: c.reference().to_string(),
        area: c.state.area.clone(),
        received: c.state.received_at,
        day,
        stage: crate::core::export::stage(c, process),
        open: c.is_open(),
        next: next_step(c),
        overdue: if c.is_open() {
            overdue(c, now)
        } else {
            Vec::new()
        },
    }
}

/// Today's working-day number counted from `day0` (`None` before day 0 or beyond the calendar).
pub fn working_day(day0: NaiveDate, cal: &Calendar, now: DateTime<Utc>) -> Option<i32> {
    let today = calendar::london_date(now);
    (today >= day0)
        .then(|| cal.statutory().working_day_number(day0, today).ok())
        .flatten()
}

/// The next planned step and its date; while none is planned, the decision awaited soonest
/// (a step waits for it).
pub fn next_step(c: &CaseView) -> Option<(String, NaiveDate)> {
    c.upcoming
        .first()
        .map(|u| (u.name.clone(), u.due.date))
        .or_else(|| {
            c.awaited()
                .filter_map(|d| d.due.as_ref().map(|r| (d.name.clone(), r.date)))
                .min_by_key(|(_, date)| *date)
        })
}

/// What is overdue on a case at `now`: agencies' returns past their deadline, decisions awaited
/// past their due date, and deadlines caseclerk can see were not met.
pub fn overdue(c: &CaseView, now: DateTime<Utc>) -> Vec<String> {
    let mut out: Vec<String> = c
        .overdue_agencies()
        .map(|a| format!("return from {}", a.name))
        .collect();
    out.extend(
        c.awaited()
            .filter(|d| d.due.as_ref().is_some_and(|r| r.at < now))
            .map(|d| format!("{} decision", d.name)),
    );
    out.extend(
        c.deadlines
            .iter()
            .filter(|d| d.verifiable && d.met_at.is_none())
            .filter(|d| d.due.as_ref().is_some_and(|r| r.at < now))
            .map(|d| d.name.clone()),
    );
    out
}

/// Which cases the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    #[default]
    Open,
    Closed,
    Overdue,
    All,
}

impl StatusFilter {
    pub fn parse(s: &str) -> StatusFilter {
        match s {
            "closed" => StatusFilter::Closed,
            "overdue" => StatusFilter::Overdue,
            "all" => StatusFilter::All,
            _ => StatusFilter::Open,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Open => "open",
            StatusFilter::Closed => "closed",
            StatusFilter::Overdue => "overdue",
            StatusFilter::All => "all",
        }
    }
}

/// The lines a status and a reference search (any part, any case) leave, newest first.
pub fn filter(mut lines: Vec<CaseLine>, status: StatusFilter, search: &str) -> Vec<CaseLine> {
    let needle = search.trim().to_uppercase();
    lines.retain(|l| keeps(l, status, &needle));
    lines.sort_by_key(|l| std::cmp::Reverse(l.received));
    lines
}

/// Whether what was typed in the list's search may be searched for, and kept in the page's
/// address: empty, or shaped like (part of) one of the partnership's case references — its
/// `prefix` (`RR`) then only `-` and digits (`RR-2026-0003`, `rr-2026`), or a reference's number
/// alone, at most five digits (`0003`). A name typed by mistake ("Jane Doe"), an NHS number (ten
/// digits), a date of birth (`12-03-2019`) or a postcode (`SW1A 1AA`) is none of them.
pub fn searchable(typed: &str, prefix: &str) -> bool {
    let t = typed.trim().to_ascii_uppercase();
    let reference = t
        .strip_prefix(&prefix.to_ascii_uppercase())
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '-'));
    let number = (1..=5).contains(&t.len()) && t.chars().all(|c| c.is_ascii_digit());
    t.is_empty() || reference || number
}

/// Whether the list shows a line for `status` and a reference search already trimmed and in
/// capitals (`needle`; empty: any).
pub fn keeps(l: &CaseLine, status: StatusFilter, needle: &str) -> bool {
    let by_status = match status {
        StatusFilter::Open => l.open,
        StatusFilter::Closed => !l.open,
        StatusFilter::Overdue => !l.overdue.is_empty(),
        StatusFilter::All => true,
    };
    by_status && (needle.is_empty() || l.reference.to_uppercase().contains(needle))
}

/// One member's counted vote on one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct VoteLine {
    pub voter: String,
    pub outcome: String,
    pub at: DateTime<Utc>,
    /// The stored reply the vote was read from (its evidence).
    pub message: i64,
}

/// A person's directory name for an address, never the address.
pub fn person_name(directory: &Directory, email: &str) -> String {
    directory.person(email).map_or_else(
        || "someone outside the directory".into(),
        |p| p.name.clone(),
    )
}

/// The votes counted on `decision` in its current round, by member name.
pub fn votes(c: &CaseView, directory: &Directory, decision: &str) -> Vec<VoteLine> {
    c.state
        .votes
        .get(decision)
        .map(|by| {
            by.iter()
                .map(|(addr, v)| VoteLine {
                    voter: person_name(directory, addr),
                    outcome: v.outcome.replace('_', " "),
                    at: v.at,
                    message: v.message,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One line of a case's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineLine {
    pub at: DateTime<Utc>,
    pub what: String,
    /// Who it went or goes to, in words (empty for a deadline).
    pub to: String,
    /// Done (a letter sent, a deadline met) or planned.
    pub done: bool,
    /// How the date was worked out, or what happened.
    pub explained: String,
}

/// The letters sent and the steps and deadlines planned, in date order, every date explained.
pub fn timeline(c: &CaseView) -> Vec<TimelineLine> {
    let mut out: Vec<TimelineLine> = c
        .letters
        .iter()
        .filter_map(|l| {
            l.sent_at.map(|at| TimelineLine {
                at,
                what: l.step_name.clone(),
                to: l.to.clone(),
                done: true,
                explained: format!("sent (due {})", calendar::short_instant(l.due_at)),
            })
        })
        .collect();
    out.extend(c.upcoming.iter().map(|u| TimelineLine {
        at: u.due.at,
        what: u.name.clone(),
        to: u.to.clone(),
        done: false,
        explained: u.due.explanation.clone(),
    }));
    out.extend(c.deadlines.iter().filter_map(|d| {
        let due = d.due.as_ref()?;
        Some(TimelineLine {
            at: due.at,
            what: format!("deadline: {}", d.name),
            to: String::new(),
            done: d.met_at.is_some(),
            explained: match d.met_at {
                Some(m) => format!("{}; met {}", due.explanation, calendar::short_instant(m)),
                None => due.explanation.clone(),
            },
        })
    }));
    out.sort_by_key(|l| l.at);
    out
}

/// One letter that will go on a day of the coming working days.
#[derive(Debug, Clone, PartialEq)]
pub struct Going {
    pub reference: String,
    pub at: DateTime<Utc>,
    pub what: String,
    /// Its recipients in words (roles or directory labels).
    pub to: String,
    /// Already decided and waiting in the outbox (else planned by the timeline).
    pub decided: bool,
}

/// Every letter that will go from today through the next `days` working days if nothing changes,
/// by London date: letters decided and waiting in the outbox, and the timeline's planned steps on
/// open cases. A planned step's date moves when a person moves it or a reply arrives; a letter
/// overdue (due before today) is listed on today.
pub fn coming_days(
    cases: &[CaseView],
    cal: &Calendar,
    now: DateTime<Utc>,
    days: i32,
) -> Vec<(NaiveDate, Vec<Going>)> {
    let each: Vec<Vec<Going>> = cases.iter().map(coming_of).collect();
    by_day(each.iter().flatten(), cal, now, days)
}

/// The letters that will go for one case if nothing changes, whenever that is (none for a
/// closed case): those decided and waiting in the outbox, then the timeline's planned steps.
pub fn coming_of(c: &CaseView) -> Vec<Going> {
    if !c.is_open() {
        return Vec::new();
    }
    let going = |at: DateTime<Utc>, what: &str, to: &str, decided: bool| Going {
        reference: c.reference().to_string(),
        at,
        what: what.to_string(),
        to: to.to_string(),
        decided,
    };
    let waiting = c.letters.iter().filter(|l| l.state == OutboxState::Pending);
    let mut out: Vec<Going> = waiting
        .map(|l| going(l.due_at, &l.step_name, &l.to, true))
        .collect();
    out.extend(
        c.upcoming
            .iter()
            .map(|u| going(u.due.at, &u.name, &u.to, false)),
    );
    out
}

/// [`coming_days`] of letters already listed per case ([`coming_of`]).
pub fn by_day<'a>(
    going: impl IntoIterator<Item = &'a Going>,
    cal: &Calendar,
    now: DateTime<Utc>,
    days: i32,
) -> Vec<(NaiveDate, Vec<Going>)> {
    let today = calendar::london_date(now);
    let last = cal.add_working_days(today, days).map_or(today, |r| r.date);
    let mut by_day: std::collections::BTreeMap<NaiveDate, Vec<Going>> = Default::default();
    for g in going {
        let day = calendar::london_date(g.at).max(today);
        if day <= last {
            by_day.entry(day).or_default().push(g.clone());
        }
    }
    let mut out: Vec<_> = by_day.into_iter().collect();
    for (_, going) in &mut out {
        going.sort_by(|a, b| (a.at, &a.reference).cmp(&(b.at, &b.reference)));
    }
    out
}

/// What the workspace's list pages show of one case — its line in the list, its tracker row,
/// the letters it will send, its held replies and its undelivered letters — worked out once at
/// an instant, with how long that stays true ([`Summary::holds`]).
#[derive(Debug, Clone)]
pub struct Summary {
    pub id: i64,
    pub day0: NaiveDate,
    pub line: CaseLine,
    pub tracker: Vec<crate::core::export::Cell>,
    /// [`coming_of`].
    pub coming: Vec<Going>,
    /// Replies held and not yet confirmed, on an open case, with their view.
    pub held: Vec<(
        crate::core::case::Held,
        Option<crate::core::views::HeldView>,
    )>,
    pub undelivered: Vec<crate::core::views::UndeliveredView>,
    /// Worked out at this instant, from the case's events and letters as they then were.
    pub at: DateTime<Utc>,
    /// The same at every instant from `at` through this one (`None`: at every later instant).
    pub through: Option<DateTime<Utc>>,
}

impl Summary {
    /// Worked out again at `now` from the same events and letters, would it be the same?
    pub fn holds(&self, now: DateTime<Utc>) -> bool {
        self.at <= now && self.through.is_none_or(|t| now <= t)
    }

    /// About how many bytes the summary holds: its own size, its lists' and their text's (the
    /// allocator's own overhead left out). For the benchmark.
    pub fn approx_bytes(&self) -> usize {
        use crate::core::export::Cell;
        use std::mem::size_of;
        let s = |x: &String| x.capacity();
        let o = |x: &Option<String>| x.as_ref().map_or(0, String::capacity);
        let l = &self.line;
        let line = s(&l.reference)
            + o(&l.area)
            + s(&l.stage)
            + l.next.as_ref().map_or(0, |(n, _)| n.capacity())
            + l.overdue
                .iter()
                .map(|x| s(x) + size_of::<String>())
                .sum::<usize>();
        let tracker = self.tracker.capacity() * size_of::<Cell>()
            + (self.tracker.iter())
                .map(|c| if let Cell::Text(t) = c { s(t) } else { 0 })
                .sum::<usize>();
        let coming = self.coming.capacity() * size_of::<Going>()
            + (self.coming.iter())
                .map(|g| s(&g.reference) + s(&g.what) + s(&g.to))
                .sum::<usize>();
        let held = self.held.capacity()
            * size_of::<(
                crate::core::case::Held,
                Option<crate::core::views::HeldView>,
            )>()
            + (self.held.iter())
                .map(|(h, v)| {
                    o(&h.decision)
                        + s(&h.voter)
                        + s(&h.reason)
                        + v.as_ref()
                            .map_or(0, |v| o(&v.decision) + s(&v.from) + s(&v.reason))
                })
                .sum::<usize>();
        let undelivered = self.undelivered.capacity()
            * size_of::<crate::core::views::UndeliveredView>()
            + (self.undelivered.iter())
                .map(|u| o(&u.case) + s(&u.step_name) + s(&u.to) + s(&u.how))
                .sum::<usize>();
        size_of::<Summary>() + line + tracker + coming + held + undelivered
    }
}

/// The summary of a case at `now`, from its view and its own letters.
///
/// Its validity: a case's view moves with the instant only where it compares the instant with
/// a date of its own — a planned step is listed while its date is still to come, an agency's
/// return is overdue after the return deadline, a decision or a deadline is overdue after its
/// due time, a delay report is shown for [`crate::core::views::DELAY_SHOWN_FOR`]. So the
/// summary holds through the first of those dates at or after `now`. (The working day shown is
/// not kept: [`working_day`] counts it when the page is drawn. Steps more than three years
/// ahead — the view's horizon, which no process comes near — are not watched.)
pub fn summary(
    ctx: &crate::core::views::Context<'_>,
    c: &CaseView,
    letters: &[crate::core::records::LetterSummary],
    now: DateTime<Utc>,
) -> Summary {
    let (process, cal) = (ctx.process, ctx.calendar);
    let one = std::collections::BTreeMap::from([(c.row.id, c)]);
    let undelivered = crate::core::views::undelivered_letters(ctx, &one, letters, now);
    let held = c
        .state
        .held
        .iter()
        .filter(|h| c.is_open() && h.waiting())
        .map(|h| {
            (
                h.clone(),
                c.held.iter().find(|v| v.message == h.message).cloned(),
            )
        })
        .collect();
    let mut dates: Vec<DateTime<Utc>> = c.upcoming.iter().map(|u| u.due.at).collect();
    dates.extend(c.return_deadline.as_ref().map(|r| r.at));
    dates.extend(
        c.decisions
            .iter()
            .filter_map(|d| d.due.as_ref().map(|r| r.at)),
    );
    dates.extend(
        c.deadlines
            .iter()
            .filter_map(|d| d.due.as_ref().map(|r| r.at)),
    );
    let shown_for = crate::core::views::DELAY_SHOWN_FOR;
    dates.extend(c.state.delayed.values().map(|at| *at + shown_for));
    Summary {
        id: c.row.id,
        day0: c.state.day0,
        line: case_line(c, process, cal, now),
        tracker: crate::core::export::row(c, process, now),
        coming: coming_of(c),
        held,
        undelivered,
        at: now,
        through: dates.into_iter().filter(|d| *d >= now).min(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::views::fixture::{self as fixtures, Case, World, t};

    #[test]
    fn only_what_looks_like_a_case_reference_is_searched_for() {
        for yes in ["", "RR-2026-0003", "rr-2026", "RR", "0003", " 12 "] {
            assert!(searchable(yes, "RR"), "{yes:?}");
        }
        for no in [
            "Jane Doe",
            "Smith",
            "Smith2019",
            "9434765919",
            "12-03-2019",
            "2019-03-12",
            "RR 2026",
            "SW1A1AA",
            "Mar-2019",
        ] {
            assert!(!searchable(no, "RR"), "{no:?}");
        }
        assert!(searchable("BSCP-2025-0007", "BSCP"));
    }

    fn line(reference: &str, open: bool, overdue: bool, received: &str) -> CaseLine {
        CaseLine {
            reference: reference.into(),
            area: None,
            received: t(received),
            day: None,
            stage: "open".into(),
            open,
            next: None,
            overdue: if overdue { vec!["x".into()] } else { vec![] },
        }
    }

    #[test]
    fn the_list_keeps_open_cases_by_default_newest_first_and_searches_any_part_of_a_reference() {
        let lines = vec![
            line("RR-2026-001", true, false, "2026-09-01T09:00:00Z"),
            line("RR-2026-002", false, false, "2026-09-02T09:00:00Z"),
            line("RR-2026-003", true, true, "2026-09-03T09:00:00Z"),
        ];
        let refs = |ls: Vec<CaseLine>| ls.into_iter().map(|l| l.reference).collect::<Vec<_>>();
        assert_eq!(
            refs(filter(lines.clone(), StatusFilter::default(), "")),
            ["RR-2026-003", "RR-2026-001"]
        );
        assert_eq!(
            refs(filter(lines.clone(), StatusFilter::Overdue, "")),
            ["RR-2026-003"]
        );
        assert_eq!(
            refs(filter(lines, StatusFilter::All, " rr-2026-002")),
            ["RR-2026-002"]
        );
    }

    #[test]
    fn while_no_step_is_planned_the_next_step_is_the_decision_awaited() {
        let world = World::new();
        let views: Vec<CaseView> = fixtures::cases()
            .into_iter()
            .map(|c: Case| c.view(&world.ctx(), fixtures::now()))
            .collect();
        let waiting = views
            .iter()
            .find(|v| v.upcoming.is_empty() && v.awaited().any(|d| d.due.is_some()))
            .expect("a fixture case waits on a decision with nothing planned");
        let (name, _) = next_step(waiting).expect("a next step");
        assert!(waiting.awaited().any(|d| d.name == name), "{name}");
    }

    #[test]
    fn an_agency_past_its_return_deadline_makes_the_case_overdue() {
        let world = World::new();
        let view = fixtures::cases()
            .into_iter()
            .map(|c: Case| c.view(&world.ctx(), fixtures::now()))
            .find(|v| v.overdue_agencies().next().is_some())
            .expect("a fixture case has an agency overdue");
        let said = overdue(&view, fixtures::now());
        assert!(
            said.iter().any(|s| s.starts_with("return from ")),
            "{said:?}"
        );
    }

    #[test]
    fn a_summary_holds_until_the_first_date_its_case_compares_the_instant_with_and_no_longer() {
        let world = World::new();
        let now = fixtures::now();
        for case in fixtures::cases() {
            let view = case.view(&world.ctx(), now);
            let s = summary(&world.ctx(), &view, &case.letters, now);
            assert!(s.holds(now));
            assert!(
                !s.holds(now - chrono::Duration::seconds(1)),
                "not before it was made"
            );
            let Some(through) = s.through else {
                assert!(view.upcoming.is_empty(), "{}", view.reference());
                continue;
            };
            assert!(s.holds(through));
            let after = through + chrono::Duration::seconds(1);
            assert!(!s.holds(after));
            // Through that date, the case reads the same as when the summary was made.
            let again = summary(
                &world.ctx(),
                &case.view(&world.ctx(), through),
                &case.letters,
                through,
            );
            assert_eq!(
                (&again.line.overdue, &again.line.next),
                (&s.line.overdue, &s.line.next)
            );
            assert_eq!(again.tracker, s.tracker);
        }
    }
}
