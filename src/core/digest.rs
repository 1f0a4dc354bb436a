//! The daily digest: one email each working morning telling the business unit what needs it.
//!
//! Owns turning a [`Snapshot`] (plus the calendar, for "tomorrow" and "within two working days")
//! into a [`Digest`]: plain, serialisable data (the subject's parts, then sections of tables)
//! that the templates `mail-templates/digest.{subject,text,html}.hbs` lay out, like every other
//! letter, so the partnership can restyle it ([`render`]). Sections, each left out when empty:
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
//! 9. replies held for a person, and messages waiting in triage (the first
//!    [`TRIAGE_LISTED`](crate::core::views::TRIAGE_LISTED) new ones by number, the rest counted,
//!    so the digest stays one screen after a first run);
//! 10. letters that could not be delivered;
//! 11. letters imported, not sent, from before caseclerk's first run;
//! 12. the bank-holiday data running out: from six months before its last date (the health rule
//!     `holiday_data_ending`, [`crate::core::health::holiday_data`], with its threshold).
//!
//! A day with nothing in any section has no sections (`nothing_to_do`): the templates say so in
//! one line. Every digest, quiet or not, ends with the history's head (the last event's id and
//! hash) and the `caseclerk verify --head` command that checks it: a copy of the chain's end in
//! the business unit's mail every working day, out of reach of someone with the database file.
//!
//! What it shows: case references, areas, agency names and their contacts' names and phone
//! numbers from the directory, directory names of voters, step and deadline names, dates. Never a
//! message's subject or body, and never an address (views carry labels only).
//!
//! Must not: read the store, the clock, the configuration or the template folder (everything comes
//! in the snapshot; the templates arrive loaded); lay out text or HTML itself (that is the
//! templates'); send anything (that is [`crate::shell::periodic`]).

use crate::core::calendar::{self, Calendar, CalendarError};
use crate::core::letters::{LetterError, Rendered, Templates};
use crate::core::views::{CaseView, DIGEST_STEP, SmtpHold, Snapshot};
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// The templates the digest is rendered with: `digest.subject.hbs`, `digest.text.hbs`,
/// `digest.html.hbs`.
pub const TEMPLATE: &str = "digest";

/// The digest as data: what the templates see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digest {
    /// "Bury Safeguarding Partnership".
    pub partnership: String,
    /// "BSP".
    pub short_name: String,
    /// The digest's day, short: "Tue 1 Sep 2026".
    pub date: String,
    /// The digest's day, long: "Tuesday 1 September 2026".
    pub long_date: String,
    /// When it was built, London time: "08:00".
    pub sent_at: String,
    /// Nothing needed the business unit: no sections.
    pub nothing_to_do: bool,
    /// When the mailbox was last read ("Tue 1 Sep 07:59"), if ever.
    pub mailbox_last_read: Option<String>,
    /// The subject's summary of the sections.
    pub subject: Subject,
    /// The sections with something in them, in order.
    pub sections: Vec<Section>,
    /// One line naming the cases under legal hold, by reference and since when (never the
    /// reason, which may name people); `None` when no case is held.
    pub legal_holds: Option<String>,
    /// The history's head, for a record of it outside the server (`None`: no events yet);
    /// `caseclerk verify --head <event>:<hash>` checks the history still leads to it.
    pub history_head: Option<HistoryHead>,
}

/// The last event's id and hash when the digest was built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryHead {
    pub event: i64,
    pub hash: String,
}

/// The subject's summary: the first sections' tags, and how many more there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// "new referrals", "letters sent", … (all of them when there are four or fewer).
    pub tags: Vec<String>,
    /// How many sections the tags leave out (0: none).
    pub more: usize,
}

/// One section: a title, optional lines of prose, and a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// A stable name for templates that treat one section differently ("overdue").
    pub id: &'static str,
    /// A word or two for the subject line ("agencies overdue").
    pub tag: &'static str,
    pub title: String,
    pub lines: Vec<String>,
    /// The table's header cells (empty: no table).
    pub columns: Vec<Cell>,
    pub rows: Vec<Vec<Cell>>,
}

/// One table cell, with its column's width for plain-text tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub text: String,
    /// The widest cell of the column, header included, in characters.
    pub width: usize,
}

/// The digest could not be built or rendered.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    #[error("the digest's dates cannot be worked out: {0} (update the bank holiday data)")]
    Dates(#[from] CalendarError),
    #[error("the digest cannot be rendered: {0}")]
    Render(#[from] LetterError),
    #[error("the digest cannot be given to its templates: {0}")]
    Data(#[from] serde_json::Error),
}

/// A section while it is built: plain strings, widths worked out at the end.
#[derive(Debug, Clone, Default)]
struct Table {
    id: &'static str,
    tag: &'static str,
    title: String,
    lines: Vec<String>,
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(
        id: &'static str,
        tag: &'static str,
        title: impl Into<String>,
        headers: &[&'static str],
    ) -> Table {
        Table {
            id,
            tag,
            title: title.into(),
            headers: headers.to_vec(),
            ..Table::default()
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

    /// The finished section: empty columns dropped, each cell carrying its column's width.
    fn finish(mut self) -> Section {
        self.drop_empty_columns();
        let cols = if self.rows.is_empty() {
            0
        } else {
            self.headers.len()
        };
        let mut width = vec![0usize; cols];
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(cols) {
                width[i] = width[i].max(cell.chars().count());
            }
        }
        let cells = |row: &[String]| -> Vec<Cell> {
            row.iter()
                .zip(&width)
                .map(|(text, width)| Cell {
                    text: text.clone(),
                    width: *width,
                })
                .collect()
        };
        Section {
            id: self.id,
            tag: self.tag,
            title: self.title,
            lines: self.lines,
            columns: cells(&headers),
            rows: self.rows.iter().map(|r| cells(r)).collect(),
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

/// What every section needs: the snapshot, its open cases, the dates and the horizons.
struct Scope<'a> {
    snap: &'a Snapshot,
    cal: &'a Calendar,
    open: Vec<&'a CaseView>,
    now: DateTime<Utc>,
    today: NaiveDate,
    next: NaiveDate,
    d: Dates,
    /// Due today and on the next working day: before this.
    due_until: DateTime<Utc>,
    meetings_until: DateTime<Utc>,
    deadline_horizon: NaiveDate,
    deadline_floor: NaiveDate,
}

impl<'a> Scope<'a> {
    fn new(snap: &'a Snapshot, cal: &'a Calendar) -> Result<Scope<'a>, CalendarError> {
        let now = snap.now;
        let today = calendar::london_date(now);
        let next = cal
            .next_working_day_on_or_after(today + Duration::days(1))?
            .date;
        Ok(Scope {
            snap,
            cal,
            open: snap.cases.iter().filter(|c| c.is_open()).collect(),
            now,
            today,
            next,
            d: Dates { year: today.year() },
            due_until: end_of(next),
            meetings_until: end_of(cal.add_working_days(today, 5)?.date),
            deadline_horizon: cal.add_working_days(today, 2)?.date,
            deadline_floor: cal.add_working_days(today, -2)?.date,
        })
    }
}

/// Build the digest for the snapshot's instant.
pub fn build(snap: &Snapshot, cal: &Calendar) -> Result<Digest, DigestError> {
    let s = Scope::new(snap, cal)?;
    let mut tables = vec![
        problems(&s),
        mailbox(&s),
        referrals(&s),
        letters_sent(&s),
        due(&s),
        agencies_overdue(&s),
        decisions_awaited(&s),
        meetings(&s),
        deadlines(&s)?,
        held_replies(&s),
        particulars(&s),
        triage(&s),
        undelivered(&s),
        imported(&s),
        holiday_data(&s),
    ];
    tables.retain(|t| !t.is_empty());
    let sections: Vec<Section> = tables.into_iter().map(Table::finish).collect();
    let tags: Vec<String> = sections.iter().map(|s| s.tag.to_string()).collect();
    let subject = if tags.len() > 4 {
        Subject {
            more: tags.len() - 3,
            tags: tags[..3].to_vec(),
        }
    } else {
        Subject { tags, more: 0 }
    };
    Ok(Digest {
        partnership: snap.partnership.clone(),
        short_name: snap.short_name.clone(),
        date: calendar::short_date(s.today),
        long_date: calendar::long_date(s.today),
        sent_at: calendar::london_time(s.now),
        nothing_to_do: sections.is_empty(),
        mailbox_last_read: snap.mailbox.last_ok_at.map(|t| s.d.at(t)),
        subject,
        sections,
        legal_holds: legal_holds(&s),
        history_head: snap.history_head.as_ref().map(|(event, hash)| HistoryHead {
            event: *event,
            hash: hash.clone(),
        }),
    })
}

/// The line listing the cases under legal hold (open or closed): reference and since when.
fn legal_holds(s: &Scope<'_>) -> Option<String> {
    let held: Vec<String> = s
        .snap
        .cases
        .iter()
        .filter_map(|c| {
            c.state.hold.as_ref().map(|h| {
                format!(
                    "{} (since {})",
                    c.reference(),
                    calendar::short_date(calendar::london_date(h.since))
                )
            })
        })
        .collect();
    (!held.is_empty()).then(|| {
        format!(
            "Under legal hold, so nothing of them is erased (caseclerk release ends one): {}",
            held.join(", ")
        )
    })
}

/// The digest's subject, text and HTML, through the templates ([`TEMPLATE`]).
pub fn render(digest: &Digest, templates: &Templates) -> Result<Rendered, DigestError> {
    let data = serde_json::to_value(digest)?;
    Ok(templates.render_owned(TEMPLATE, data)?)
}

/// 1. Cases caseclerk cannot work out.
fn problems(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "problems",
        "cases to look at",
        "Cases caseclerk cannot work out: please look at them",
        &["Case", "Problem"],
    );
    for p in &s.snap.problems {
        let (case, why) = p.split_once(": ").unwrap_or(("", p.as_str()));
        t.rows.push(vec![case.to_string(), why.to_string()]);
    }
    for c in &s.open {
        for p in &c.problems {
            t.rows.push(vec![c.reference().to_string(), p.clone()]);
        }
    }
    t
}

/// 1. A mailbox caseclerk cannot read, a mail server that refuses its login, letters that fell
///    due and cannot be prepared, or a letter made once that could not be since the last
///    digest: prose, no table.
fn mailbox(s: &Scope<'_>) -> Table {
    let snap = s.snap;
    let n = &snap.notices;
    let once = n.failures > 0 && n.last_error_at.is_some_and(|at| at >= snap.since);
    let unfetched = snap.unfetched.failing();
    let (read, send, prepare) = (
        snap.mailbox.failing(),
        snap.smtp.failing(),
        snap.unprepared.failing() || once,
    );
    let short = match (read || unfetched, send) {
        (true, _) => "MAILBOX UNREADABLE",
        (false, true) => "LETTERS NOT SENT",
        (false, false) => "LETTERS NOT PREPARED",
    };
    let parts: Vec<&str> = [
        (read, "the mailbox cannot be read"),
        (unfetched, "some messages cannot be read"),
        (send, "letters cannot be sent"),
        (prepare, "some letters cannot be prepared"),
    ]
    .into_iter()
    .filter_map(|(failing, what)| failing.then_some(what))
    .collect();
    let title = capitalised(&match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => parts.concat(),
    });
    let mut t = Table::new("mailbox", short, title, &[]);
    let u = &snap.unprepared;
    if u.failing() {
        t.lines.push(format!(
            "{}; the last try at {}. Until it is fixed nothing it names is sent (caseclerk tries \
             again at every pass): IT, fix what it names.",
            capitalised(
                u.last_error
                    .as_deref()
                    .unwrap_or("letters could not be prepared")
            ),
            u.last_error_at.map(|t| s.d.at(t)).unwrap_or_default(),
        ));
    }
    if once {
        t.lines.push(format!(
            "{} (at {}). A letter made once — in answer to mail, after votes were counted, or the \
             digest itself — is not made again: send what it should have said by hand, and ask IT \
             to fix what it names.",
            capitalised(
                n.last_error
                    .as_deref()
                    .unwrap_or("a letter could not be prepared")
            ),
            n.last_error_at.map(|t| s.d.at(t)).unwrap_or_default(),
        ));
    }
    let smtp = &s.snap.smtp;
    if smtp.failing() {
        let times = plural(smtp.failures as usize, "time", "times");
        let (what, until) = match SmtpHold::of(smtp.last_error.as_deref()) {
            SmtpHold::LoginRefused => (
                format!("The mail server refused caseclerk's login {times}"),
                "once the SMTP password works",
            ),
            SmtpHold::CertificateNotTrusted => (
                format!(
                    "The mail server's certificate was not trusted {times} (so caseclerk did not \
                     log in)"
                ),
                "once IT make the server trusted again (its certificate authority in [smtp] \
                 ca_file, or a renewed certificate)",
            ),
            SmtpHold::SenderRefused => (
                format!("The mail server refused to send as the partnership's address {times}"),
                "once IT let caseclerk's account send as the shared mailbox again (its Send As \
                 permission)",
            ),
            SmtpHold::MailboxRefused => (
                format!(
                    "The mail server refused to send from the shared mailbox {times} (it is full, \
                     over its daily limit, or throttled)"
                ),
                "once IT free space in the shared mailbox (its Sent Items keep every letter) or \
                 the limit passes",
            ),
            SmtpHold::ConnectionRefused => (
                format!(
                    "The mail server refused caseclerk's connection {times} (this computer's \
                     address blocked, or not allowed to send through it)"
                ),
                "once IT let caseclerk's computer send through the mail server again",
            ),
        };
        t.lines.push(format!(
            "{} since the last letter went{}; the last at {}. \
             Every due letter is waiting, none is lost: they go by themselves {until}.",
            what,
            smtp.last_ok_at
                .map(|t| format!(" ({})", s.d.at(t)))
                .unwrap_or_default(),
            smtp.last_error_at.map(|t| s.d.at(t)).unwrap_or_default(),
        ));
    }
    let f = &snap.unfetched;
    if f.failing() {
        t.lines.push(format!(
            "{} (last asked at {}). caseclerk asks for them again at every pass; if this lasts, \
             find them in the shared mailbox and move them out of the inbox and back (they are \
             then read as new mail) — one may be a referral.",
            capitalised(
                f.last_error
                    .as_deref()
                    .unwrap_or("messages the mail server lists were not handed over")
            ),
            f.last_error_at.map(|t| s.d.at(t)).unwrap_or_default(),
        ));
    }
    let m = &s.snap.mailbox;
    if m.failing() {
        t.lines.push(format!(
            "{} since the last successful read{}; the last at {}: {}. New referrals and replies may be waiting unseen.",
            plural(m.failures as usize, "failed attempt", "failed attempts"),
            m.last_ok_at
                .map(|t| format!(" ({})", s.d.at(t)))
                .unwrap_or_else(|| " (it has never been read)".into()),
            m.last_error_at.map(|t| s.d.at(t)).unwrap_or_default(),
            m.last_error.as_deref().unwrap_or("unknown error"),
        ));
    }
    t
}

/// 2. New referrals since the last digest.
fn referrals(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "referrals",
        "new referrals",
        format!(
            "New referrals since the last digest ({})",
            s.d.at(s.snap.since)
        ),
        &["Case", "Area", "Referrer's agency", "Received", "Screening"],
    );
    let mut new_cases: Vec<&CaseView> = s
        .snap
        .cases
        .iter()
        .filter(|c| c.state.received_at >= s.snap.since && c.state.received_at < s.now)
        .collect();
    new_cases.sort_by_key(|c| c.state.received_at);
    for c in new_cases {
        t.rows.push(vec![
            c.reference().to_string(),
            area(c),
            c.referrer_agency.clone().unwrap_or_default(),
            s.d.at(c.state.received_at),
            screening_status(c, &s.d),
        ]);
    }
    t
}

/// 3. Letters sent since the last digest, one row per case and letter.
fn letters_sent(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "sent",
        "letters sent",
        "Letters sent since the last digest",
        &["Case", "Letter", "To", "Sent"],
    );
    // (case, step) → (letter name, the people it reached, first sent, letters). One letter is
    // one message as people see it: a shared letter to five people is one letter.
    type Sent = (String, Vec<String>, DateTime<Utc>, usize);
    let mut groups: BTreeMap<(String, String), Sent> = BTreeMap::new();
    let case_letters = s.snap.cases.iter().flat_map(|c| {
        c.letters
            .iter()
            .map(move |l| (c.reference().to_string(), l))
    });
    let other = s
        .snap
        .other_letters
        .iter()
        .filter(|l| l.step != DIGEST_STEP)
        .map(|l| ("all cases".to_string(), l));
    for (case, l) in case_letters.chain(other) {
        let Some(at) = l.sent_at.filter(|t| *t >= s.snap.since && *t < s.now) else {
            continue;
        };
        let g = groups
            .entry((case, l.step.clone()))
            .or_insert_with(|| (l.step_name.clone(), Vec::new(), at, 0));
        for person in &l.people {
            if !g.1.contains(person) {
                g.1.push(person.clone());
            }
        }
        g.2 = g.2.min(at);
        g.3 += 1;
    }
    let mut grouped: Vec<_> = groups.into_iter().collect();
    grouped.sort_by_key(|((case, _), (_, _, at, _))| (*at, case.clone()));
    for ((case, _), (name, to, at, letters)) in grouped {
        let to = if to.len() > 3 {
            format!("{} recipients", to.len())
        } else {
            names(&to)
        };
        let name = if letters > 1 {
            format!("{name} ({letters} letters)")
        } else {
            name
        };
        t.rows.push(vec![case, name, to, s.d.at(at)]);
    }
    t
}

/// 4. Due today and on the next working day: steps, agencies' returns, decisions.
fn due(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "due",
        "due today",
        format!(
            "Due today ({}) and on the next working day ({})",
            s.d.date(s.today),
            s.d.date(s.next)
        ),
        &["When", "Case", "What", "For"],
    );
    let within = |at: DateTime<Utc>| at >= s.now && at < s.due_until;
    let mut rows: Vec<(DateTime<Utc>, Vec<String>)> = Vec::new();
    for c in &s.open {
        let reference = c.reference().to_string();
        for u in c.upcoming.iter().filter(|u| within(u.due.at)) {
            rows.push((
                u.due.at,
                vec![
                    s.d.at(u.due.at),
                    reference.clone(),
                    u.name.clone(),
                    u.to.replace('_', " "),
                ],
            ));
        }
        if let Some(r) = c.return_deadline.as_ref().filter(|r| within(r.at)) {
            let waiting: Vec<String> = c
                .agencies
                .iter()
                .filter(|a| a.asked_at.is_some() && a.returned_at.is_none())
                .map(|a| a.name.clone())
                .collect();
            if !waiting.is_empty() {
                rows.push((
                    r.at,
                    vec![
                        s.d.at(r.at),
                        reference.clone(),
                        "Agencies' returns due".into(),
                        names(&waiting),
                    ],
                ));
            }
        }
        for dec in c.awaited() {
            if let Some(r) = dec.due.as_ref().filter(|r| within(r.at)) {
                rows.push((
                    r.at,
                    vec![
                        s.d.at(r.at),
                        reference.clone(),
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
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1[1].cmp(&b.1[1])));
    t.rows = rows.into_iter().map(|(_, r)| r).collect();
    t
}

/// 5. Agencies overdue with their returns, with whom to phone.
fn agencies_overdue(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "overdue",
        "agencies overdue",
        "Agencies overdue with their returns: please phone",
        &["Case", "Agency", "Call", "Phone", "Return was due"],
    );
    for c in &s.open {
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
            t.rows.push(vec![
                c.reference().to_string(),
                a.name.clone(),
                who,
                phone.unwrap_or_else(|| "no number in the directory".into()),
                a.return_by.map(|t| s.d.at(t)).unwrap_or_default(),
            ]);
        }
    }
    t
}

/// 6. Decisions awaited, naming who has not voted.
fn decisions_awaited(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "awaited",
        "decisions awaited",
        "Decisions awaited",
        &["Case", "Decision", "Due", "Not yet voted"],
    );
    for c in &s.open {
        for dec in c.awaited() {
            let waiting: Vec<String> = dec.not_voted.iter().map(|p| p.name.clone()).collect();
            let due = match &dec.due {
                Some(r) if r.at < s.now => format!("{} (OVERDUE)", s.d.at(r.at)),
                Some(r) => s.d.at(r.at),
                None => String::new(),
            };
            t.rows.push(vec![
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
    t
}

/// 7. Meetings in the next five working days.
fn meetings(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "meetings",
        "meetings",
        "Meetings in the next five working days",
        &["When", "Case", "Area"],
    );
    let mut m: Vec<(DateTime<Utc>, &CaseView)> = s
        .open
        .iter()
        .filter_map(|c| c.meeting.map(|at| (at, *c)))
        .filter(|(at, _)| *at >= s.now && *at < s.meetings_until)
        .collect();
    m.sort_by_key(|(at, c)| (*at, c.reference().to_string()));
    for (at, c) in m {
        t.rows
            .push(vec![s.d.at(at), c.reference().to_string(), area(c)]);
    }
    t
}

/// 8. Statutory deadlines within two working days, and any passed and not met.
fn deadlines(s: &Scope<'_>) -> Result<Table, CalendarError> {
    let mut t = Table::new(
        "deadlines",
        "deadlines",
        "Statutory deadlines within two working days, and any passed and not met",
        &["Case", "Deadline", "Due", "Status"],
    );
    let mut rows: Vec<(DateTime<Utc>, Vec<String>)> = Vec::new();
    for c in &s.open {
        for x in &c.deadlines {
            let Some(r) = &x.due else { continue };
            if x.met_at.is_some() || r.date > s.deadline_horizon {
                continue;
            }
            let passed = r.at < s.now;
            if passed && !x.verifiable && r.date < s.deadline_floor {
                continue;
            }
            let status = deadline_status(s, r.date, passed, x.verifiable)?;
            rows.push((
                r.at,
                vec![
                    c.reference().to_string(),
                    x.name.clone(),
                    s.d.at(r.at),
                    status,
                ],
            ));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1[0].cmp(&b.1[0])));
    t.rows = rows.into_iter().map(|(_, r)| r).collect();
    Ok(t)
}

/// "in 2 working days", "OVERDUE: passed 5 working days ago, not met", ….
fn deadline_status(
    s: &Scope<'_>,
    date: NaiveDate,
    passed: bool,
    verifiable: bool,
) -> Result<String, CalendarError> {
    if !passed {
        return Ok(match s.cal.working_day_number(s.today, date)? {
            0 => "today".to_string(),
            1 => "next working day".to_string(),
            n => format!("in {n} working days"),
        });
    }
    let ago = match s.cal.working_day_number(date, s.today)? {
        0 => "today".to_string(),
        1 => "1 working day ago".to_string(),
        n => format!("{n} working days ago"),
    };
    Ok(if verifiable {
        format!("OVERDUE: passed {ago}, not met")
    } else {
        format!("passed {ago}: caseclerk cannot see it; check it was met")
    })
}

/// 9. Replies held for a person.
fn held_replies(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "held",
        "held replies",
        "Replies held for a person (count or dismiss them)",
        &["Case", "About", "From", "Held since", "Why"],
    );
    for c in &s.open {
        for h in c
            .held
            .iter()
            .filter(|h| h.decision_open || h.at >= s.snap.since)
        {
            t.rows.push(vec![
                c.reference().to_string(),
                h.decision
                    .clone()
                    .unwrap_or_else(|| "no decision named".into()),
                h.from.clone(),
                s.d.at(h.at),
                h.reason.clone(),
            ]);
        }
    }
    t
}

/// Particulars read from a referral that nobody has checked: by field name, never by value (the
/// digest is an email; the values are in `caseclerk particulars`).
fn particulars(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "particulars",
        "particulars to check",
        "Check these particulars against the referral (caseclerk particulars <case>)",
        &["Case", "Read from the referral, not yet checked"],
    );
    for c in &s.open {
        let fields = c.particulars_to_check();
        if !fields.is_empty() {
            t.rows.push(vec![
                c.reference().to_string(),
                fields
                    .iter()
                    .map(|f| f.words())
                    .collect::<Vec<_>>()
                    .join(", "),
            ]);
        }
    }
    t
}

/// 9. Messages in triage: the first new ones by number, the rest counted.
///
/// The first [`TRIAGE_LISTED`](crate::core::views::TRIAGE_LISTED) new ones in the order they
/// arrived, the other new ones counted in one row, the older ones in another.
fn triage(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "triage",
        "messages to place",
        "Messages caseclerk could not place (caseclerk triage)",
        &["Message", "Received", "Why"],
    );
    let triage = &s.snap.triage;
    for m in &triage.listed {
        t.rows.push(vec![
            format!("message {}", m.message),
            s.d.at(m.received),
            m.rule.replace('_', " "),
        ]);
    }
    if let Some(more) = triage.more {
        let (first, last) = (s.d.at(more.first), s.d.at(more.last));
        t.rows.push(vec![
            plural(more.count, "more new message", "more new messages"),
            if first == last {
                first
            } else {
                format!("{first} to {last}")
            },
            "all on the workspace's Triage page".into(),
        ]);
    }
    if let Some(older) = triage.older {
        t.rows.push(vec![
            plural(older.count, "older message", "older messages"),
            format!("since {}", s.d.at(older.first)),
            "still waiting".into(),
        ]);
    }
    t
}

/// 10. Letters that could not be delivered.
fn undelivered(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "undelivered",
        "undelivered letters",
        "Letters that could not be delivered",
        &["Case", "Letter", "To", "What happened"],
    );
    for u in &s.snap.undelivered {
        t.rows.push(vec![
            u.case.clone().unwrap_or_else(|| "all cases".into()),
            u.step_name.clone(),
            u.to.clone(),
            u.how.clone(),
        ]);
    }
    t
}

/// 11. Letters that fell due long before caseclerk's first run: recorded, not sent.
fn imported(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "imported",
        "imported letters",
        "Letters from before caseclerk started: imported, not sent (caseclerk resend sends one)",
        &["Case", "Letter", "To", "Fell due", "Letter id"],
    );
    for i in &s.snap.imported {
        t.rows.push(vec![
            i.case.clone(),
            i.step_name.clone(),
            i.to.clone(),
            calendar::short_instant(i.due_at),
            i.outbox.to_string(),
        ]);
    }
    t
}

/// 12. The bank-holiday data runs out within six months, or has: prose, no table.
fn holiday_data(s: &Scope<'_>) -> Table {
    let mut t = Table::new(
        "holidays",
        "bank holidays",
        "The bank-holiday data is running out",
        &[],
    );
    let thresholds = crate::core::health::Thresholds::default();
    if let Some(f) = crate::core::health::holiday_data(s.cal.coverage().1, s.now, &thresholds) {
        t.lines.push(format!(
            "{}. Until it is updated, caseclerk cannot date letters and deadlines past that day.",
            capitalised(&f.text)
        ));
    }
    t
}

/// `text` with its first letter upper-case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {

    /// A health row that has failed `failures` times, the last at `at` (UTC), saying `said`.
    fn failing(failures: i64, at: &str, said: &str) -> MailboxHealth {
        MailboxHealth {
            known: true,
            failures,
            last_error_at: Some(fixture::t(at)),
            last_error: Some(said.to_string()),
            ..MailboxHealth::default()
        }
    }
    use super::*;
    use crate::core::views::fixture::{self, World};
    use crate::core::views::{MailboxHealth, Snapshot, TRIAGE_LISTED, TriageSummary, TriageView};

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

    /// The templates in `mail-templates/`, as the daemon loads them.
    fn templates() -> Templates {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mail-templates");
        crate::shell::templates::load(&dir).unwrap()
    }

    /// The digest's data and its rendering.
    fn built(snap: &Snapshot, cal: &Calendar) -> (Digest, Rendered) {
        let d = build(snap, cal).unwrap();
        let r = render(&d, &templates()).unwrap_or_else(|e| panic!("{e}"));
        (d, r)
    }

    fn digest() -> Rendered {
        let world = World::new();
        built(&fixture::snapshot(&world), &world.calendar).1
    }

    #[test]
    fn the_digest_for_a_fixed_morning_matches_its_golden_text() {
        let world = World::new();
        let (data, d) = built(&fixture::snapshot(&world), &world.calendar);
        assert!(!data.nothing_to_do);
        assert_eq!(
            d.subject,
            "BSP daily digest, Tue 1 Sep 2026: new referrals, letters sent, due today and 7 more"
        );
        golden("digest-2026-09-01.txt", &d.text);
    }

    #[test]
    fn letters_sent_counts_messages_as_people_see_them_a_shared_letter_being_one() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        let case = snap
            .cases
            .iter_mut()
            .find(|c| c.reference() == "RR-2026-0002")
            .unwrap();
        // The panel's three letters become one message addressed to all three.
        let panel: Vec<_> = case
            .letters
            .iter()
            .filter(|l| l.step == "screening-request")
            .cloned()
            .collect();
        assert_eq!(panel.len(), 3, "the fixture's three individual letters");
        let mut one = panel[0].clone();
        one.people = panel.iter().flat_map(|l| l.people.clone()).collect();
        case.letters.retain(|l| l.step != "screening-request");
        case.letters.push(one);
        let (_, d) = built(&snap, &world.calendar);
        let row = d
            .text
            .lines()
            .find(|l| l.contains("Copy the referral to the screening panel"))
            .unwrap();
        assert!(!row.contains("letters)"), "{row}");
        assert!(
            row.contains("Amina Shah (LA), DS Pat Jones (Police), Dr Lee Chan (ICB)"),
            "{row}"
        );
        // The individual letters of the fixture: three letters.
        assert!(digest().text.contains("for its decision (3 letters)"));
    }

    #[test]
    fn a_case_under_legal_hold_is_named_in_one_line_by_reference_never_by_reason() {
        let world = World::new();
        assert!(
            digest().text.find("legal hold").is_none(),
            "no hold, no line"
        );
        let mut snap = fixture::snapshot(&world);
        let case = snap
            .cases
            .iter_mut()
            .find(|c| c.reference() == "RR-2026-0002")
            .unwrap();
        case.state.hold = Some(crate::core::case::Hold {
            reason: "inquest into the death of a named child".into(),
            since: fixture::t("2026-08-20T10:00:00Z"),
            by: "operator:clerk".into(),
        });
        let (data, d) = built(&snap, &world.calendar);
        let line = "Under legal hold, so nothing of them is erased (caseclerk release ends one): RR-2026-0002 (since Thu 20 Aug 2026)";
        assert_eq!(data.legal_holds.as_deref(), Some(line));
        assert!(d.text.contains(&format!("\n\n{line}\n\n--")), "{}", d.text);
        assert!(d.html.contains(&format!("<p><strong>{line}</strong></p>")));
        check_balanced(&d.html).unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.text.contains("inquest") && !d.html.contains("inquest"));
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
        // Escaped like every letter's HTML: handlebars writes an apostrophe as `&#x27;`.
        assert!(d.html.contains("Referrer&#x27;s agency"), "{}", d.html);
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
    fn the_digest_is_laid_out_by_its_templates_so_a_partnership_can_restyle_it() {
        let world = World::new();
        let d = build(&fixture::snapshot(&world), &world.calendar).unwrap();
        let sources: Vec<(String, String)> = [
            ("digest.subject", "{{short_name}}: {{len sections}} things"),
            (
                "digest.text",
                "{{#each sections}}* {{title}} ({{len rows}})\n{{/each}}",
            ),
            (
                "digest.html",
                "<ul>{{#each sections}}<li>{{title}}</li>{{/each}}</ul>",
            ),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
        let restyled = render(&d, &Templates::from_sources("test", &sources).unwrap()).unwrap();
        assert_eq!(restyled.subject, "BSP: 10 things");
        assert!(
            restyled
                .text
                .starts_with("* New referrals since the last digest (Fri 28 Aug 08:00) (1)\n"),
            "{}",
            restyled.text
        );
        assert!(restyled.html.contains("<li>Decisions awaited</li>"));
    }

    #[test]
    fn without_its_templates_the_digest_says_which_are_missing() {
        let world = World::new();
        let d = build(&fixture::snapshot(&world), &world.calendar).unwrap();
        let none = Templates::from_sources("test", &[]).unwrap();
        let err = render(&d, &none).unwrap_err().to_string();
        assert!(err.contains("digest.subject.hbs"), "{err}");
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
        // The quiet day's snapshot, with the fixture's dates.
        let mut snap = quiet_day(fixture::now());
        snap.since = fixture::since();
        snap.mailbox.last_ok_at = Some(fixture::t("2026-09-01T06:59:00Z"));
        let (data, d) = built(&snap, &world.calendar);
        assert!(data.nothing_to_do);
        assert!(data.sections.is_empty());
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
    fn the_digest_carries_the_history_head_so_a_copy_of_it_leaves_the_server_each_day() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        let (data, d) = built(&snap, &world.calendar);
        assert_eq!(data.history_head, None, "no events, no line");
        assert!(!d.text.contains("History check"), "{}", d.text);
        let hash = "0123456789abcdef".repeat(4);
        snap.history_head = Some((42, hash.clone()));
        let (data, d) = built(&snap, &world.calendar);
        assert_eq!(
            data.history_head,
            Some(HistoryHead {
                event: 42,
                hash: hash.clone()
            })
        );
        let head = format!("event 42, SHA-256 {hash}");
        let command = format!("caseclerk verify --head 42:{hash}");
        assert!(
            d.text
                .contains(&format!("History check (keep this email): {head}.")),
            "{}",
            d.text
        );
        assert!(d.text.contains(&command), "{}", d.text);
        assert!(d.html.contains(&head), "{}", d.html);
        assert!(d.html.contains(&command), "{}", d.html);
        check_balanced(&d.html).unwrap();
        // A quiet day carries it too: the record outside the server is daily.
        let mut quiet = quiet_day(fixture::now());
        quiet.history_head = Some((42, hash));
        let (_, d) = built(&quiet, &world.calendar);
        assert!(d.text.contains(&head), "{}", d.text);
    }

    /// England & Wales bank holidays of 2026 only: data that runs out on Thu 31 Dec 2026.
    const HOLIDAYS_2026: &str = r#"{"england-and-wales": {"division": "england-and-wales", "events": [
        {"title": "New Year’s Day", "date": "2026-01-01", "notes": "", "bunting": true},
        {"title": "Good Friday", "date": "2026-04-03", "notes": "", "bunting": false},
        {"title": "Easter Monday", "date": "2026-04-06", "notes": "", "bunting": true},
        {"title": "Early May bank holiday", "date": "2026-05-04", "notes": "", "bunting": true},
        {"title": "Spring bank holiday", "date": "2026-05-25", "notes": "", "bunting": true},
        {"title": "Summer bank holiday", "date": "2026-08-31", "notes": "", "bunting": true},
        {"title": "Christmas Day", "date": "2026-12-25", "notes": "", "bunting": true},
        {"title": "Boxing Day", "date": "2026-12-28", "notes": "Substitute day", "bunting": true}
    ]}}"#;

    fn quiet_day(now: DateTime<Utc>) -> Snapshot {
        Snapshot {
            history_head: None,
            now,
            since: now - Duration::days(1),
            partnership: "Bury Safeguarding Partnership".into(),
            short_name: "BSP".into(),
            cases: Vec::new(),
            other_letters: Vec::new(),
            triage: TriageSummary::default(),
            undelivered: Vec::new(),
            imported: Vec::new(),
            mailbox: MailboxHealth {
                known: true,
                last_ok_at: Some(now - Duration::minutes(1)),
                ..MailboxHealth::default()
            },
            smtp: MailboxHealth::default(),
            unprepared: MailboxHealth::default(),
            notices: MailboxHealth::default(),
            unfetched: MailboxHealth::default(),
            problems: Vec::new(),
        }
    }

    #[test]
    fn the_digest_warns_from_six_months_before_the_bank_holiday_data_runs_out() {
        let cal = Calendar::from_govuk_json(HOLIDAYS_2026).unwrap();
        // Wed 1 Jul 2026: 183 days before Thu 31 Dec 2026.
        let (data, d) = built(&quiet_day(fixture::t("2026-07-01T07:00:00Z")), &cal);
        assert!(!data.nothing_to_do);
        assert_eq!(data.sections.len(), 1, "{}", d.text);
        assert_eq!(data.sections[0].id, "holidays");
        assert!(
            d.text.contains(
                "The bank-holiday data ends on Thu 31 Dec 2026; update data/bank-holidays.json"
            ),
            "{}",
            d.text
        );
        assert!(d.subject.contains("bank holidays"), "{}", d.subject);
        check_balanced(&d.html).unwrap();
        // Tue 30 Jun 2026: 184 days before, nothing to say.
        let (data, _) = built(&quiet_day(fixture::t("2026-06-30T07:00:00Z")), &cal);
        assert!(data.nothing_to_do, "{:?}", data.sections);
    }

    #[test]
    fn a_first_runs_thousands_of_new_triage_messages_are_counted_after_the_first_twenty() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        let first = snap.since + Duration::minutes(1);
        // Added newest first: the summary keeps the earliest whatever the order they come in.
        for i in (0..5_000).rev() {
            let m = TriageView {
                message: 1_000 + i,
                received: first + Duration::seconds(i),
                rule: "unmatched".into(),
            };
            snap.triage.add(m, snap.since);
        }
        let few = built(&fixture::snapshot(&world), &world.calendar);
        let (data, d) = built(&snap, &world.calendar);
        let section = data.sections.iter().find(|s| s.id == "triage").unwrap();
        let first_column: Vec<&str> = section.rows.iter().map(|r| r[0].text.as_str()).collect();
        // The first 20 new ones in order of arrival (the 5,000 came on Fri 28 Aug, before the
        // fixture's message 41 on Sat 29 Aug); the other 4,981 new ones in one row, the one
        // older message in another.
        assert_eq!(first_column.len(), TRIAGE_LISTED + 2, "{first_column:?}");
        assert_eq!(first_column[0], "message 1000");
        assert_eq!(first_column[TRIAGE_LISTED - 1], "message 1019");
        assert_eq!(first_column[TRIAGE_LISTED], "4981 more new messages");
        assert_eq!(first_column[TRIAGE_LISTED + 1], "1 older message");
        assert!(
            d.text.contains("Fri 28 Aug 08:01 to Sat 29 Aug 11:12"),
            "{}",
            d.text
        );
        assert!(!d.text.contains("message 1020"), "{}", d.text);
        // The digest stays about the size of a quiet one, whatever the backlog.
        assert!(
            d.html.len() < few.1.html.len() + 8_000,
            "{} bytes of HTML against {}",
            d.html.len(),
            few.1.html.len()
        );
        check_balanced(&d.html).unwrap();
    }

    #[test]
    fn empty_sections_are_left_out() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        snap.triage = TriageSummary::default();
        snap.undelivered.clear();
        let d = built(&snap, &world.calendar).1;
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
        only_new.triage = TriageSummary::default();
        only_new.undelivered.clear();
        let d = built(&only_new, &world.calendar).1;
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
        let d = built(&snap, &world.calendar).1;
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
    fn letters_that_cannot_be_prepared_come_first_with_what_to_fix() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        snap.unprepared = failing(
            4,
            "2026-09-01T06:58:00Z",
            "a letter could not be prepared: RR-2026-0001 agency-request: attachment \
                 agency_template (/etc/caseclerk/t.docx) cannot be read",
        );
        let d = built(&snap, &world.calendar).1;
        assert_eq!(
            d.text.lines().nth(2),
            Some("SOME LETTERS CANNOT BE PREPARED"),
            "{}",
            d.text
        );
        assert!(
            d.text.contains(
                "A letter could not be prepared: RR-2026-0001 agency-request: attachment \
                 agency_template (/etc/caseclerk/t.docx) cannot be read; the last try at Tue 1 Sep \
                 07:58. Until it is fixed nothing it names is sent"
            ),
            "{}",
            d.text
        );
        snap.smtp = failing(1, "2026-09-01T06:58:00Z", "login failed");
        let d = built(&snap, &world.calendar).1;
        assert_eq!(
            d.text.lines().nth(2),
            Some("LETTERS CANNOT BE SENT AND SOME LETTERS CANNOT BE PREPARED"),
            "{}",
            d.text
        );
    }

    #[test]
    fn a_notice_that_could_not_be_prepared_since_the_last_digest_is_told_once() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        snap.notices = failing(
            1,
            "2026-08-31T14:00:00Z",
            "a letter could not be prepared: RR-2026-0001 vote-confirmed: template \
                 vote-confirmed: Variable \"x\" not found in strict mode",
        );
        let d = built(&snap, &world.calendar).1;
        assert_eq!(
            d.text.lines().nth(2),
            Some("SOME LETTERS CANNOT BE PREPARED"),
            "{}",
            d.text
        );
        assert!(
            d.text.contains("RR-2026-0001 vote-confirmed")
                && d.text
                    .contains("is not made again: send what it should have said by hand"),
            "{}",
            d.text
        );
        snap.since = fixture::t("2026-08-31T15:00:00Z");
        let d = built(&snap, &world.calendar).1;
        assert!(
            !d.text.contains("CANNOT BE PREPARED"),
            "told before: {}",
            d.text
        );
    }

    #[test]
    fn an_smtp_server_that_is_not_trusted_comes_first_and_says_who_puts_it_right() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        snap.smtp = failing(
            2,
            "2026-09-01T06:58:00Z",
            SmtpHold::CertificateNotTrusted.recorded(),
        );
        let d = built(&snap, &world.calendar).1;
        assert_eq!(
            d.text.lines().nth(2),
            Some("LETTERS CANNOT BE SENT"),
            "{}",
            d.text
        );
        assert!(
            d.text.contains(
                "The mail server's certificate was not trusted 2 times (so caseclerk did not log \
                 in) since the last letter went; the last at Tue 1 Sep 07:58."
            ),
            "{}",
            d.text
        );
        assert!(d.text.contains("[smtp] ca_file"), "{}", d.text);
        assert!(!d.text.contains("SMTP password"), "{}", d.text);
    }

    #[test]
    fn a_refused_smtp_login_comes_first_and_says_the_letters_wait() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        snap.smtp = failing(3, "2026-09-01T06:58:00Z", "login failed");
        let d = built(&snap, &world.calendar).1;
        let first = d.text.lines().nth(2).unwrap();
        assert_eq!(first, "LETTERS CANNOT BE SENT", "{}", d.text);
        assert!(
            d.text.contains(
                "The mail server refused caseclerk's login 3 times since the last letter went; the last at Tue 1 Sep 07:58."
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
        let d = built(&snap, &world.calendar).1;
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
        let d = built(&later, &world.calendar).1;
        assert!(!d.text.contains("RR-2026-0004  Rapid review"), "{}", d.text);
    }
}
