//! The daily digest: one email each working morning telling the business unit what needs it.
//!
//! Owns turning a [`Snapshot`] (plus the calendar, for "tomorrow" and "within two working days")
//! into a [`Digest`]: a subject, a plain-text part and an HTML part built from the same tables.
//! Sections, each left out when empty:
//!
//! 1. cases caseclerk cannot work out, and a mailbox it cannot read — first, because every other
//!    section is only as good as what caseclerk could read;
//! 2. new referrals since the last digest, with their screening status;
//! 3. letters sent since the last digest;
//! 4. what falls due today and on the next working day (steps, agencies' returns, decisions);
//! 5. agencies overdue, with the contact's name and phone number to call;
//! 6. decisions awaited, naming who has not voted;
//! 7. meetings in the next five working days;
//! 8. statutory deadlines within two working days, and those passed and not met (overdue);
//! 9. replies held for a person, and messages waiting in triage;
//! 10. letters that could not be delivered.
//!
//! A day with nothing in any section is one line saying so.
//!
//! What it shows: case references, areas, agency names and their contacts' names and phone
//! numbers from the directory, directory names of voters, step and deadline names, dates. Never a
//! message's subject or body, and never an address (views carry labels only).
//!
//! Must not: read the store, the clock or the configuration (everything comes in the snapshot);
//! send anything (that is [`crate::shell::periodic`]).

use crate::core::calendar::{self, Calendar, CalendarError};
use crate::core::views::{CaseView, DIGEST_STEP, Snapshot};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write;

/// A rendered digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Nothing needed the business unit: the text is one line saying so.
    pub nothing_to_do: bool,
}

/// The digest could not be built: a date is beyond the calendar's holiday data.
#[derive(Debug, thiserror::Error)]
#[error("the digest's dates cannot be worked out: {0} (update the bank holiday data)")]
pub struct DigestError(#[from] CalendarError);

/// One section: a title, optional lines of prose, and a table.
#[derive(Debug, Clone, Default)]
struct Section {
    /// A word or two for the subject line ("agencies overdue").
    tag: &'static str,
    title: String,
    lines: Vec<String>,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Section {
    fn new(tag: &'static str, title: impl Into<String>, headers: &[&'static str]) -> Section {
        Section {
            tag,
            title: title.into(),
            headers: headers.to_vec(),
            ..Section::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.lines.is_empty()
    }

    /// A column blank in every row says nothing (no areas outside BHR): leave it out.
    fn drop_empty_columns(&mut self) {
        for c in (1..self.headers.len()).rev() {
            if self
                .rows
                .iter()
                .all(|r| r.get(c).is_none_or(String::is_empty))
            {
                self.headers.remove(c);
                for r in &mut self.rows {
                    if c < r.len() {
                        r.remove(c);
                    }
                }
            }
        }
    }
}

/// How instants and dates read in the digest: "Tue 1 Sep 10:00", with the year only when it is
/// not the digest's own year.
struct Dates {
    year: i32,
}

impl Dates {
    fn date(&self, d: NaiveDate) -> String {
        if d.year() == self.year {
            calendar::short_day(d)
        } else {
            calendar::short_date(d)
        }
    }

    fn at(&self, t: DateTime<Utc>) -> String {
        format!(
            "{} {}",
            self.date(calendar::london_date(t)),
            calendar::london_time(t)
        )
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn names(people: &[String]) -> String {
    people.join(", ")
}

fn area(c: &CaseView) -> String {
    c.state.area.clone().unwrap_or_default()
}

/// The screening status of a case in a few words.
fn screening_status(c: &CaseView, d: &Dates) -> String {
    let Some(s) = c.screening() else {
        return String::new();
    };
    if let Some((outcome, at)) = &s.outcome {
        return format!(
            "{} ({})",
            outcome.replace('_', " "),
            d.date(calendar::london_date(*at))
        );
    }
    let due = s
        .due
        .as_ref()
        .map(|r| format!(", due {}", d.at(r.at)))
        .unwrap_or_default();
    let provisional = s
        .provisional
        .as_ref()
        .map(|p| format!(" (running as {} meanwhile)", p.replace('_', " ")))
        .unwrap_or_default();
    if s.requested_at.is_none() {
        return format!("not yet asked{due}{provisional}");
    }
    let voted = s.voters.len() - s.not_voted.len();
    format!(
        "awaiting votes: {voted} of {}{due}{provisional}",
        s.voters.len()
    )
}

/// The first instant of the London day after `d`.
fn end_of(d: NaiveDate) -> DateTime<Utc> {
    calendar::london_instant(d + Duration::days(1), NaiveTime::MIN)
}

/// Build the digest for the snapshot's instant.
pub fn build(snap: &Snapshot, cal: &Calendar) -> Result<Digest, DigestError> {
    let now = snap.now;
    let today = calendar::london_date(now);
    let d = Dates { year: today.year() };
    let next = cal
        .next_working_day_on_or_after(today + Duration::days(1))?
        .date;
    let due_until = end_of(next);
    let meetings_until = end_of(cal.add_working_days(today, 5)?.date);
    let deadline_horizon = cal.add_working_days(today, 2)?.date;
    let deadline_floor = cal.add_working_days(today, -2)?.date;
    let open: Vec<&CaseView> = snap.cases.iter().filter(|c| c.is_open()).collect();
    let mut sections = Vec::new();

    // 1. What caseclerk itself cannot do.
    let mut problems = Section::new(
        "cases to look at",
        "Cases caseclerk cannot work out: please look at them",
        &["Case", "Problem"],
    );
    for p in &snap.problems {
        let (case, why) = p.split_once(": ").unwrap_or(("", p.as_str()));
        problems.rows.push(vec![case.to_string(), why.to_string()]);
    }
    for c in &open {
        for p in &c.problems {
            problems
                .rows
                .push(vec![c.reference().to_string(), p.clone()]);
        }
    }
    sections.push(problems);

    let mut mailbox = Section::new("MAILBOX UNREADABLE", "The mailbox cannot be read", &[]);
    if snap.mailbox.failing() {
        let m = &snap.mailbox;
        mailbox.lines.push(format!(
            "{} since the last successful read{}; the last at {}: {}. New referrals and replies may be waiting unseen.",
            plural(m.failures as usize, "failed attempt", "failed attempts"),
            m.last_ok_at
                .map(|t| format!(" ({})", d.at(t)))
                .unwrap_or_else(|| " (it has never been read)".into()),
            m.last_error_at.map(|t| d.at(t)).unwrap_or_default(),
            m.last_error.as_deref().unwrap_or("unknown error"),
        ));
    }
    sections.push(mailbox);

    // 2. New referrals.
    let mut referrals = Section::new(
        "new referrals",
        format!("New referrals since the last digest ({})", d.at(snap.since)),
        &["Case", "Area", "Referrer's agency", "Received", "Screening"],
    );
    let mut new_cases: Vec<&CaseView> = snap
        .cases
        .iter()
        .filter(|c| c.state.received_at >= snap.since && c.state.received_at < now)
        .collect();
    new_cases.sort_by_key(|c| c.state.received_at);
    for c in new_cases {
        referrals.rows.push(vec![
            c.reference().to_string(),
            area(c),
            c.referrer_agency.clone().unwrap_or_default(),
            d.at(c.state.received_at),
            screening_status(c, &d),
        ]);
    }
    sections.push(referrals);

    // 3. Letters sent.
    let mut sent = Section::new(
        "letters sent",
        "Letters sent since the last digest",
        &["Case", "Letter", "To", "Sent"],
    );
    // (case, step) → (letter name, recipients, first sent).
    type Sent = (String, Vec<String>, DateTime<Utc>);
    let mut groups: BTreeMap<(String, String), Sent> = BTreeMap::new();
    let case_letters = snap.cases.iter().flat_map(|c| {
        c.letters
            .iter()
            .map(move |l| (c.reference().to_string(), l))
    });
    let other = snap
        .other_letters
        .iter()
        .filter(|l| l.step != DIGEST_STEP)
        .map(|l| ("all cases".to_string(), l));
    for (case, l) in case_letters.chain(other) {
        let Some(at) = l.sent_at.filter(|t| *t >= snap.since && *t < now) else {
            continue;
        };
        let g = groups
            .entry((case, l.step.clone()))
            .or_insert_with(|| (l.step_name.clone(), Vec::new(), at));
        if !g.1.contains(&l.to) {
            g.1.push(l.to.clone());
        }
        g.2 = g.2.min(at);
    }
    let mut grouped: Vec<_> = groups.into_iter().collect();
    grouped.sort_by_key(|((case, _), (_, _, at))| (*at, case.clone()));
    for ((case, _), (name, to, at)) in grouped {
        let to = if to.len() > 3 {
            format!("{} recipients", to.len())
        } else {
            names(&to)
        };
        sent.rows.push(vec![case, name, to, d.at(at)]);
    }
    sections.push(sent);

    // 4. Due today and on the next working day.
    let mut due = Section::new(
        "due today",
        format!(
            "Due today ({}) and on the next working day ({})",
            d.date(today),
            d.date(next)
        ),
        &["When", "Case", "What", "For"],
    );
    let mut due_rows: Vec<(DateTime<Utc>, Vec<String>)> = Vec::new();
    for c in &open {
        for u in c
            .upcoming
            .iter()
            .filter(|u| u.due.at >= now && u.due.at < due_until)
        {
            due_rows.push((
                u.due.at,
                vec![
                    d.at(u.due.at),
                    c.reference().to_string(),
                    u.name.clone(),
                    u.to.replace('_', " "),
                ],
            ));
        }
        if let Some(r) = c
            .return_deadline
            .as_ref()
            .filter(|r| r.at >= now && r.at < due_until)
        {
            let waiting: Vec<String> = c
                .agencies
                .iter()
                .filter(|a| a.asked_at.is_some() && a.returned_at.is_none())
                .map(|a| a.name.clone())
                .collect();
            if !waiting.is_empty() {
                due_rows.push((
                    r.at,
                    vec![
                        d.at(r.at),
                        c.reference().to_string(),
                        "Agencies' returns due".into(),
                        names(&waiting),
                    ],
                ));
            }
        }
        for dec in c.awaited() {
            if let Some(r) = dec.due.as_ref().filter(|r| r.at >= now && r.at < due_until) {
                due_rows.push((
                    r.at,
                    vec![
                        d.at(r.at),
                        c.reference().to_string(),
                        format!("{} due", dec.name),
                        format!(
                            "{} of {} voted",
                            dec.voters.len() - dec.not_voted.len(),
                            dec.voters.len()
                        ),
                    ],
                ));
            }
        }
    }
    due_rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1[1].cmp(&b.1[1])));
    due.rows = due_rows.into_iter().map(|(_, r)| r).collect();
    sections.push(due);

    // 5. Agencies overdue.
    let mut overdue = Section::new(
        "agencies overdue",
        "Agencies overdue with their returns: please phone",
        &["Case", "Agency", "Call", "Phone", "Return was due"],
    );
    for c in &open {
        for a in c.overdue_agencies() {
            let (who, phone) = match (&a.deputy, a.away) {
                (Some(dep), true) => (
                    format!("{} (the contact is away)", dep.name),
                    dep.phone.clone(),
                ),
                _ => match &a.contact {
                    Some(p) => (p.name.clone(), p.phone.clone()),
                    None => ("not in the directory".into(), None),
                },
            };
            overdue.rows.push(vec![
                c.reference().to_string(),
                a.name.clone(),
                who,
                phone.unwrap_or_else(|| "no number in the directory".into()),
                c.return_deadline
                    .as_ref()
                    .map(|r| d.at(r.at))
                    .unwrap_or_default(),
            ]);
        }
    }
    sections.push(overdue);

    // 6. Decisions awaited.
    let mut awaited = Section::new(
        "decisions awaited",
        "Decisions awaited",
        &["Case", "Decision", "Due", "Not yet voted"],
    );
    for c in &open {
        for dec in c.awaited() {
            let waiting: Vec<String> = dec.not_voted.iter().map(|p| p.name.clone()).collect();
            let due = match &dec.due {
                Some(r) if r.at < now => format!("{} (OVERDUE)", d.at(r.at)),
                Some(r) => d.at(r.at),
                None => String::new(),
            };
            awaited.rows.push(vec![
                c.reference().to_string(),
                dec.name.clone(),
                due,
                if waiting.is_empty() {
                    "everyone has voted; the outcome needs a person".into()
                } else {
                    format!(
                        "{} ({} of {} voted)",
                        names(&waiting),
                        dec.voters.len() - waiting.len(),
                        dec.voters.len()
                    )
                },
            ]);
        }
    }
    sections.push(awaited);

    // 7. Meetings.
    let mut meetings = Section::new(
        "meetings",
        "Meetings in the next five working days",
        &["When", "Case", "Area"],
    );
    let mut m: Vec<(DateTime<Utc>, &CaseView)> = open
        .iter()
        .filter_map(|c| c.meeting.map(|t| (t, *c)))
        .filter(|(t, _)| *t >= now && *t < meetings_until)
        .collect();
    m.sort_by_key(|(t, c)| (*t, c.reference().to_string()));
    for (t, c) in m {
        meetings
            .rows
            .push(vec![d.at(t), c.reference().to_string(), area(c)]);
    }
    sections.push(meetings);

    // 8. Deadlines.
    let mut deadlines = Section::new(
        "deadlines",
        "Statutory deadlines within two working days, and any passed and not met",
        &["Case", "Deadline", "Due", "Status"],
    );
    let mut dl: Vec<(DateTime<Utc>, Vec<String>)> = Vec::new();
    for c in &open {
        for x in &c.deadlines {
            let Some(r) = &x.due else { continue };
            if x.met_at.is_some() || r.date > deadline_horizon {
                continue;
            }
            let passed = r.at < now;
            if passed && !x.verifiable && r.date < deadline_floor {
                continue;
            }
            let status = if !passed {
                let n = cal.working_day_number(today, r.date)?;
                match n {
                    0 => "today".to_string(),
                    1 => "next working day".to_string(),
                    n => format!("in {n} working days"),
                }
            } else {
                let n = cal.working_day_number(r.date, today)?;
                let ago = match n {
                    0 => "today".to_string(),
                    1 => "1 working day ago".to_string(),
                    n => format!("{n} working days ago"),
                };
                if x.verifiable {
                    format!("OVERDUE: passed {ago}, not met")
                } else {
                    format!("passed {ago}: caseclerk cannot see it; check it was met")
                }
            };
            dl.push((
                r.at,
                vec![
                    c.reference().to_string(),
                    x.name.clone(),
                    d.at(r.at),
                    status,
                ],
            ));
        }
    }
    dl.sort_by(|a, b| a.0.cmp(&b.0).then(a.1[0].cmp(&b.1[0])));
    deadlines.rows = dl.into_iter().map(|(_, r)| r).collect();
    sections.push(deadlines);

    // 9. Held replies and triage.
    let mut held = Section::new(
        "held replies",
        "Replies held for a person (confirm or discard them)",
        &["Case", "About", "From", "Held since", "Why"],
    );
    for c in &open {
        for h in c
            .held
            .iter()
            .filter(|h| h.decision_open || h.at >= snap.since)
        {
            held.rows.push(vec![
                c.reference().to_string(),
                h.decision
                    .clone()
                    .unwrap_or_else(|| "no decision named".into()),
                h.from.clone(),
                d.at(h.at),
                h.reason.clone(),
            ]);
        }
    }
    sections.push(held);

    let mut triage = Section::new(
        "messages to place",
        "Messages caseclerk could not place (caseclerk triage)",
        &["Message", "Received", "Why"],
    );
    let (fresh, older): (Vec<_>, Vec<_>) =
        snap.triage.iter().partition(|t| t.received >= snap.since);
    for t in fresh {
        triage.rows.push(vec![
            format!("message {}", t.message),
            d.at(t.received),
            t.rule.replace('_', " "),
        ]);
    }
    if let Some(oldest) = older.iter().map(|t| t.received).min() {
        triage.rows.push(vec![
            plural(older.len(), "older message", "older messages"),
            format!("since {}", d.at(oldest)),
            "still waiting".into(),
        ]);
    }
    sections.push(triage);

    // 10. Undelivered letters.
    let mut undelivered = Section::new(
        "undelivered letters",
        "Letters that could not be delivered",
        &["Case", "Letter", "To", "What happened"],
    );
    for u in &snap.undelivered {
        undelivered.rows.push(vec![
            u.case.clone().unwrap_or_else(|| "all cases".into()),
            u.step_name.clone(),
            u.to.clone(),
            u.how.clone(),
        ]);
    }
    sections.push(undelivered);

    sections.retain(|s| !s.is_empty());
    for s in &mut sections {
        s.drop_empty_columns();
    }
    let long_today = calendar::long_date(today);
    if sections.is_empty() {
        let mailbox = match snap.mailbox.last_ok_at {
            Some(t) => format!("; the mailbox was last read {}", d.at(t)),
            None => String::new(),
        };
        let line = format!(
            "Nothing needs the business unit on {long_today}: no new referrals, nothing due, overdue or waiting{mailbox}."
        );
        return Ok(Digest {
            subject: format!(
                "{} daily digest, {}: nothing to do",
                snap.short_name,
                calendar::short_date(today)
            ),
            html: format!("{HTML_OPEN}\n<p>{}</p>\n</div>\n", escape(&line)),
            text: format!("{line}\n"),
            nothing_to_do: true,
        });
    }
    let tags: Vec<&str> = sections.iter().map(|s| s.tag).collect();
    let summary = if tags.len() > 4 {
        format!("{} and {} more", tags[..3].join(", "), tags.len() - 3)
    } else {
        tags.join(", ")
    };
    let heading = format!("{}: daily digest for {long_today}", snap.partnership);
    let footer = format!(
        "Sent by caseclerk at {} (London time). It names cases by reference only: `caseclerk case <reference>` shows one in full.",
        calendar::london_time(now)
    );
    Ok(Digest {
        subject: format!(
            "{} daily digest, {}: {summary}",
            snap.short_name,
            calendar::short_date(today),
        ),
        text: render_text(&heading, &sections, &footer),
        html: render_html(&heading, &sections, &footer),
        nothing_to_do: false,
    })
}

fn render_text(heading: &str, sections: &[Section], footer: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{heading}");
    for s in sections {
        let _ = writeln!(out);
        let _ = writeln!(out, "{}", s.title.to_uppercase());
        for l in &s.lines {
            let _ = writeln!(out, "{l}");
        }
        if s.rows.is_empty() {
            continue;
        }
        let cols = s.headers.len();
        let mut width = vec![0usize; cols];
        for row in std::iter::once(s.headers.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .chain(s.rows.iter().cloned())
        {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    l.push_str(cell);
                } else {
                    let pad = width[i] - cell.chars().count();
                    l.push_str(cell);
                    l.push_str(&" ".repeat(pad + 2));
                }
            }
            l.trim_end().to_string()
        };
        let headers: Vec<String> = s.headers.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(out, "{}", line(&headers));
        for r in &s.rows {
            let _ = writeln!(out, "{}", line(r));
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "--");
    let _ = writeln!(out, "{footer}");
    out
}

const HTML_OPEN: &str = r#"<div style="font-family: Arial, sans-serif; font-size: 11pt;">"#;
const TH: &str =
    r#"<th style="text-align: left; border-bottom: 1px solid #999; padding: 3px 10px 3px 0;">"#;
const TD: &str =
    r#"<td style="vertical-align: top; border-bottom: 1px solid #ddd; padding: 3px 10px 3px 0;">"#;

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            other => out.push(other),
        }
    }
    out
}

fn render_html(heading: &str, sections: &[Section], footer: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HTML_OPEN}");
    let _ = writeln!(out, "<p><strong>{}</strong></p>", escape(heading));
    for s in sections {
        let _ = writeln!(
            out,
            r#"<h3 style="font-size: 12pt; margin: 18px 0 6px 0;">{}</h3>"#,
            escape(&s.title)
        );
        for l in &s.lines {
            let _ = writeln!(out, "<p>{}</p>", escape(l));
        }
        if s.rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, r#"<table style="border-collapse: collapse;">"#);
        let _ = write!(out, "<tr>");
        for h in &s.headers {
            let _ = write!(out, "{TH}{}</th>", escape(h));
        }
        let _ = writeln!(out, "</tr>");
        for r in &s.rows {
            let _ = write!(out, "<tr>");
            for cell in r {
                let _ = write!(out, "{TD}{}</td>", escape(cell));
            }
            let _ = writeln!(out, "</tr>");
        }
        let _ = writeln!(out, "</table>");
    }
    let _ = writeln!(
        out,
        r#"<p style="color:#555; font-size: 9pt;">--<br>{}</p>"#,
        escape(footer)
    );
    let _ = writeln!(out, "</div>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::views::fixture::{self, World};
    use crate::core::views::{MailboxHealth, Snapshot};

    fn golden(name: &str, actual: &str) {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                path.display()
            )
        });
        if expected != actual {
            let first = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(expected.lines().count().min(actual.lines().count()));
            panic!(
                "{} differs from the digest, first at line {} (UPDATE_GOLDEN=1 rewrites it; read the diff):\n--- actual ---\n{actual}",
                path.display(),
                first + 1
            );
        }
    }

    /// Tags open and close in order; void elements (`<br>`) need no closing tag.
    fn check_balanced(html: &str) -> Result<(), String> {
        const VOID: &[&str] = &["br", "hr", "img", "meta", "link", "input"];
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').ok_or("a `<` is never closed")?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.contains('<') {
                return Err(format!("`<` inside a tag: <{tag}>"));
            }
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_lowercase();
            if name.is_empty() {
                return Err(format!("not a tag: <{tag}>"));
            }
            if closing {
                match stack.pop() {
                    Some(open) if open == name => {}
                    Some(open) => return Err(format!("</{name}> closes <{open}>")),
                    None => return Err(format!("</{name}> closes nothing")),
                }
            } else if !VOID.contains(&name.as_str()) && !tag.ends_with('/') {
                stack.push(name);
            }
        }
        if let Some(open) = stack.pop() {
            return Err(format!("<{open}> is never closed"));
        }
        if html.contains('>') && html.matches('>').count() != html.matches('<').count() {
            return Err("a stray `>` in text".into());
        }
        Ok(())
    }

    fn digest() -> Digest {
        let world = World::new();
        build(&fixture::snapshot(&world), &world.calendar).unwrap()
    }

    #[test]
    fn the_digest_for_a_fixed_morning_matches_its_golden_text() {
        let d = digest();
        assert!(!d.nothing_to_do);
        assert_eq!(
            d.subject,
            "BSP daily digest, Tue 1 Sep 2026: new referrals, letters sent, due today and 7 more"
        );
        golden("digest-2026-09-01.txt", &d.text);
    }

    #[test]
    fn the_digest_html_is_well_formed_and_carries_the_same_tables() {
        let d = digest();
        check_balanced(&d.html).unwrap_or_else(|e| panic!("{e}\n{}", d.html));
        assert!(
            d.html
                .starts_with(r#"<div style="font-family: Arial, sans-serif; font-size: 11pt;">"#)
        );
        assert!(d.html.contains("<table"), "a table, not a log dump");
        assert!(d.html.contains("Referrer's agency"));
        assert!(d.html.contains("Deputy Team Manager (the contact is away)"));
        for reference in [
            "RR-2026-0001",
            "RR-2026-0002",
            "RR-2026-0003",
            "RR-2026-0004",
        ] {
            assert!(d.html.contains(reference), "{reference}");
            assert!(d.text.contains(reference), "{reference}");
        }
        assert_eq!(
            d.html.matches("<h3").count(),
            d.text
                .lines()
                .filter(|l| !l.is_empty() && l.chars().any(char::is_alphabetic))
                .filter(|l| l
                    .chars()
                    .filter(|c| c.is_alphabetic())
                    .all(char::is_uppercase))
                .count(),
            "every text section is an HTML section"
        );
    }

    #[test]
    fn the_html_checker_catches_what_it_is_for() {
        assert!(check_balanced("<div><p>a<br>b</p></div>").is_ok());
        assert!(check_balanced("<div><p>a</div>").is_err());
        assert!(check_balanced("<div><p>a</p>").is_err());
        assert!(check_balanced("<p>a</p></p>").is_err());
        assert!(check_balanced("<p>a > b</p>").is_err());
    }

    #[test]
    fn the_digest_names_no_address_subject_or_body() {
        let d = digest();
        for part in [&d.subject, &d.text, &d.html] {
            assert!(!part.contains('@'), "an address leaked:\n{part}");
        }
    }

    #[test]
    fn the_closed_case_appears_nowhere_in_the_digest() {
        let d = digest();
        assert!(!d.text.contains("RR-2026-0005"), "{}", d.text);
    }

    #[test]
    fn a_day_with_nothing_to_do_says_so_in_one_line() {
        let world = World::new();
        let snap = Snapshot {
            now: fixture::now(),
            since: fixture::since(),
            partnership: "Bury Safeguarding Partnership".into(),
            short_name: "BSP".into(),
            cases: Vec::new(),
            other_letters: Vec::new(),
            triage: Vec::new(),
            undelivered: Vec::new(),
            mailbox: MailboxHealth {
                known: true,
                last_ok_at: Some(fixture::t("2026-09-01T06:59:00Z")),
                ..MailboxHealth::default()
            },
            problems: Vec::new(),
        };
        let d = build(&snap, &world.calendar).unwrap();
        assert!(d.nothing_to_do);
        assert_eq!(
            d.text,
            "Nothing needs the business unit on Tuesday 1 September 2026: no new referrals, nothing due, \
             overdue or waiting; the mailbox was last read Tue 1 Sep 07:59.\n"
        );
        assert_eq!(d.text.lines().count(), 1);
        assert!(d.subject.ends_with("nothing to do"), "{}", d.subject);
        check_balanced(&d.html).unwrap();
    }

    #[test]
    fn empty_sections_are_left_out() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        snap.triage.clear();
        snap.undelivered.clear();
        let d = build(&snap, &world.calendar).unwrap();
        assert!(!d.text.contains("COULD NOT PLACE"), "{}", d.text);
        assert!(!d.text.contains("COULD NOT BE DELIVERED"), "{}", d.text);
        assert!(
            !d.text.contains("MAILBOX"),
            "a healthy mailbox is not a section"
        );
        assert!(!d.html.contains("could not be delivered"));
        // Only the new case, and nothing else: one section.
        let mut only_new = fixture::snapshot(&world);
        only_new.cases.retain(|c| c.reference() == "RR-2026-0002");
        only_new.cases[0].held.clear();
        for dec in &mut only_new.cases[0].decisions {
            dec.awaited = false;
        }
        only_new.cases[0].upcoming.clear();
        only_new.triage.clear();
        only_new.undelivered.clear();
        let d = build(&only_new, &world.calendar).unwrap();
        let headings: Vec<&str> = d
            .text
            .lines()
            .filter(|l| l.chars().any(char::is_alphabetic))
            .filter(|l| {
                l.chars()
                    .filter(|c| c.is_alphabetic())
                    .all(char::is_uppercase)
            })
            .collect();
        assert_eq!(
            headings,
            [
                "NEW REFERRALS SINCE THE LAST DIGEST (FRI 28 AUG 08:00)",
                "LETTERS SENT SINCE THE LAST DIGEST"
            ],
            "{}",
            d.text
        );
    }

    #[test]
    fn a_mailbox_that_cannot_be_read_comes_first() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        snap.mailbox = MailboxHealth {
            known: true,
            last_ok_at: Some(fixture::t("2026-08-31T16:00:00Z")),
            failures: 14,
            last_error_at: Some(fixture::t("2026-09-01T06:58:00Z")),
            last_error: Some("login failed (check the mailbox password)".into()),
        };
        let d = build(&snap, &world.calendar).unwrap();
        let first = d.text.lines().nth(2).unwrap();
        assert_eq!(first, "THE MAILBOX CANNOT BE READ", "{}", d.text);
        assert!(
            d.text.contains(
                "14 failed attempts since the last successful read (Mon 31 Aug 17:00); the last at Tue 1 Sep 07:58: login failed"
            ),
            "{}",
            d.text
        );
    }

    #[test]
    fn a_deadline_caseclerk_cannot_see_is_named_around_its_date_then_dropped() {
        let world = World::new();
        let snap = fixture::snapshot(&world);
        // RR-2026-0004's National Panel deadline passed a week ago and stays overdue; a deadline
        // caseclerk cannot see being met is only named up to two working days after it.
        let d = build(&snap, &world.calendar).unwrap();
        assert!(
            d.text
                .contains("OVERDUE: passed 5 working days ago, not met"),
            "{}",
            d.text
        );
        let mut later = snap.clone();
        for c in &mut later.cases {
            for x in &mut c.deadlines {
                x.verifiable = false;
            }
        }
        let d = build(&later, &world.calendar).unwrap();
        assert!(!d.text.contains("RR-2026-0004  Rapid review"), "{}", d.text);
    }
}
