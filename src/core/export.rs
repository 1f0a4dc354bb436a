//! The tracker: every case on one row, as a spreadsheet (XLSX) or CSV, in words a business
//! manager uses.
//!
//! Owns the tracker's columns (heading, width, order) and how each is worked out from a case's
//! view ([`rows`]); the plain words for the process files' outcome ids and a case's stage
//! ([`outcome_words`], [`stage`]); and writing them: CSV (RFC 4180: quoted where needed, CRLF line
//! ends, ISO dates) and XLSX. The XLSX is made to be printed and filtered: one "Cases" sheet with a
//! bold, frozen, wrapped header row, the reference column frozen too, an autofilter on every
//! column (status, and Excel's year/month grouping of the date columns), dates as real date cells
//! in the UK format, long text wrapped in columns of a set width; printed A4 landscape, one page
//! wide, the header row repeated on every page, with the partnership's name and the protective
//! marking (`[letters] marking`) in the page header and footer. An "Agency returns" sheet has one
//! row per agency per case. `caseclerk export` writes it; the periodic tracker report
//! ([`crate::shell::periodic`]) attaches the XLSX and counts the cases by stage ([`tracker_data`]).
//!
//! The incident date comes from [`CaseView::incident_date`], the reviewer from the case's
//! `reviewer_set` events (`caseclerk set-reviewer`).
//!
//! Must not: read the store or the clock (everything comes from the snapshot); include the child's
//! or a family's name, an address, a subject or a body (case references, areas, agency names, step
//! names, dates and the reviewer a person named for the tracker only).

use crate::core::calendar;
use crate::core::process::{Anchor, Process};
use crate::core::views::{CaseView, Snapshot};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::json;

/// Why a spreadsheet could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot build the spreadsheet: {0} (this is a bug in caseclerk; please report it)")]
    Xlsx(String),
}

impl From<rust_xlsxwriter::XlsxError> for ExportError {
    fn from(e: rust_xlsxwriter::XlsxError) -> Self {
        ExportError::Xlsx(e.to_string())
    }
}

/// One cell of the tracker.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(u32),
    /// A calendar date (London); blank when `None`.
    Date(Option<NaiveDate>),
}

impl Cell {
    fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// The value as CSV writes it (ISO dates).
    pub fn as_text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Date(Some(d)) => d.format("%Y-%m-%d").to_string(),
            Cell::Date(None) => String::new(),
        }
    }
}

/// The tracker's columns, in order: where the case stands first (what a business manager looks
/// for), then its dates along the process, left to right.
pub const COLUMNS: &[&str] = &[
    "Reference",
    "Borough or area",
    "Status",
    "Next step",
    "Next step due",
    "Referrer agency",
    "Incident date",
    "Received (day 0)",
    "Screening decision",
    "Screening outcome",
    "Agencies asked",
    "Returned",
    "Late",
    "Nil",
    "Meeting",
    "Sign-off",
    "Sent to National Panel",
    "On time (National Panel deadline)",
    "Panel response",
    "Panel response date",
    "LCSPR decision",
    "Reviewer",
    "6-month target",
    "Publication",
    "Letters imported (not sent)",
    "Legal hold",
];

/// Each column's width in the XLSX, in Excel's character units, in [`COLUMNS`] order. Dates fit
/// `dd/mm/yyyy`; counts are narrow; text is wide enough for two or three words a line and wraps
/// ("Next step" gets the most); headings wrap between words, so only their longest word sets a
/// floor. At these widths the 26 columns print one page wide on A4 landscape at about half size.
const WIDTHS: &[f64] = &[
    12.5, // Reference
    11.0, // Borough or area
    13.0, // Status
    26.0, // Next step
    10.5, // Next step due
    14.0, // Referrer agency
    10.5, // Incident date
    10.5, // Received (day 0)
    10.5, // Screening decision
    14.0, // Screening outcome
    9.5,  // Agencies asked
    9.5,  // Returned
    6.0,  // Late
    6.0,  // Nil
    10.5, // Meeting
    10.5, // Sign-off
    10.5, // Sent to National Panel
    10.5, // On time (National Panel deadline)
    11.0, // Panel response
    10.5, // Panel response date
    13.0, // LCSPR decision
    13.0, // Reviewer
    10.5, // 6-month target
    12.5, // Publication
    10.0, // Letters imported (not sent)
    10.5, // Legal hold
];

/// The columns of the agency returns sheet, and their widths.
pub const AGENCY_COLUMNS: &[&str] = &["Case", "Agency", "Asked", "Returned", "Late", "Nil"];
const AGENCY_WIDTHS: &[f64] = &[12.5, 34.0, 10.5, 10.5, 6.0, 6.0];

fn date(t: Option<DateTime<Utc>>) -> Cell {
    Cell::Date(t.map(calendar::london_date))
}

fn yes_no(b: bool) -> Cell {
    Cell::text(if b { "Yes" } else { "No" })
}

/// An outcome id of a process file (`meets`, `no_lcspr`) in the words a business manager uses.
/// Every outcome of the shipped process files has its words here; an outcome a partnership adds
/// reads as its id with spaces for underscores and a capital letter.
pub fn outcome_words(id: &str) -> String {
    let words = match id {
        "meets" => "Meets the criteria: rapid review",
        "not_met" => "Does not meet the criteria",
        "nfa" => "No further action",
        "single_agency" => "Single-agency action",
        "query" => "Query to the referrer",
        "local_review" => "Local review",
        "llr" => "Local learning review",
        "audit_assurance" => "Audit and assurance",
        "lcspr" => "LCSPR (local child safeguarding practice review)",
        "no_lcspr" => "No LCSPR",
        "national_review" => "National review",
        "agree" => "Agrees",
        "disagree" => "Does not agree",
        "alternative" => "Proposes an alternative",
        "decline" => "Declines",
        "notified" => "Notified to the National Panel",
        "not_notified" => "Not notified to the National Panel",
        "recommend_lcspr" => "Recommends an LCSPR",
        "recommend_alternative" => "Recommends an alternative review",
        "recommend_none" => "Recommends no review",
        "alternative_review" => "Alternative review",
        "no_review" => "No review",
        "multi_agency_audit" => "Multi-agency audit",
        "single_agency_audit" => "Single-agency audit",
        other => {
            let spaced = other.replace('_', " ");
            let mut chars = spaced.chars();
            return match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => String::new(),
            };
        }
    };
    words.to_string()
}

/// Where a case is, in words: Closed, Awaiting the screening decision, LCSPR in progress, With the
/// National Panel, Rapid review in progress, Open.
pub fn stage(c: &CaseView, process: &Process) -> String {
    if !c.is_open() {
        return "Closed".into();
    }
    let taken = |d: Option<&crate::core::views::DecisionView>| d.and_then(|d| d.outcome.clone());
    if c.screening().is_some() && taken(c.screening()).is_none() {
        return "Awaiting the screening decision".into();
    }
    if let Some((o, _)) = taken(c.lcspr_decision(process))
        && o == "lcspr"
    {
        return "LCSPR in progress".into();
    }
    if c.panel_submitted.is_some() {
        return if taken(c.decision("panel_response")).is_none() {
            "With the National Panel".into()
        } else {
            "Open".into()
        };
    }
    if c.deadline("national_panel").is_some() {
        return "Rapid review in progress".into();
    }
    "Open".into()
}

/// The screening outcome in words: taken, awaited (and what is assumed meanwhile), or blank.
fn screening_words(c: &CaseView) -> String {
    match c.screening() {
        None => String::new(),
        Some(s) => match (&s.outcome, &s.provisional) {
            (Some((o, _)), _) => outcome_words(o),
            (None, Some(p)) => format!("Awaited (meanwhile: {})", outcome_words(p)),
            (None, None) => "Awaited".into(),
        },
    }
}

/// Was the rapid review sent to the National Panel by its deadline, in words.
fn on_time_words(c: &CaseView, now: DateTime<Utc>) -> String {
    match (c.panel_submitted, c.deadline("national_panel")) {
        (Some(_), Some(d)) => match d.on_time() {
            Some(true) => "Yes".into(),
            Some(false) => "No (sent late)".into(),
            None => String::new(),
        },
        (None, Some(d)) if d.due.as_ref().is_some_and(|r| r.at < now) => {
            "No (overdue, not sent)".into()
        }
        _ => String::new(),
    }
}

/// The case's next step and when it is due: the earlier of the first letter planned and the first
/// decision awaited ("Awaiting: Screening decision", overdue ones included), so a case waiting on
/// votes does not show a blank.
fn next_step(c: &CaseView) -> (String, Option<NaiveDate>) {
    let step = c
        .upcoming
        .first()
        .map(|u| (u.name.clone(), Some(u.due.date)));
    let awaited = c
        .awaited()
        .min_by_key(|d| d.due.as_ref().map(|r| r.at))
        .map(|d| {
            (
                format!("Awaiting: {}", d.name),
                d.due.as_ref().map(|r| r.date),
            )
        });
    match (step, awaited) {
        (Some(s), Some(a)) if a.1.is_some_and(|due| s.1.is_none_or(|at| due < at)) => a,
        (Some(s), _) => s,
        (None, Some(a)) => a,
        (None, None) => (String::new(), None),
    }
}

/// The tracker row of one case at `now`.
pub fn row(c: &CaseView, process: &Process, now: DateTime<Utc>) -> Vec<Cell> {
    let screening = c.screening();
    let asked: Vec<_> = c.agencies.iter().filter(|a| a.asked_at.is_some()).collect();
    let count = |f: &dyn Fn(&&crate::core::views::AgencyView) -> bool| {
        Cell::Count(asked.iter().filter(|a| f(a)).count() as u32)
    };
    let signoff = c.lcspr_decision(process);
    let panel = c.decision("panel_response");
    let outcome = |d: Option<&crate::core::views::DecisionView>| {
        Cell::text(
            d.and_then(|d| d.outcome.as_ref())
                .map(|o| outcome_words(&o.0))
                .unwrap_or_default(),
        )
    };
    let six_months = process
        .deadlines
        .iter()
        .filter(|d| d.when.anchor == Anchor::LcsprDecision && d.when.months > 0)
        .find_map(|d| c.deadline(&d.id))
        .and_then(|d| d.due.as_ref())
        .map(|r| r.date);
    let (next, next_due) = next_step(c);
    vec![
        Cell::text(c.reference()),
        Cell::text(c.state.area.clone().unwrap_or_default()),
        Cell::text(stage(c, process)),
        Cell::text(next),
        Cell::Date(next_due),
        Cell::text(c.referrer_agency.clone().unwrap_or_default()),
        Cell::Date(c.incident_date),
        Cell::Date(Some(c.state.day0)),
        date(screening.and_then(|s| s.outcome.as_ref().map(|o| o.1))),
        Cell::text(screening_words(c)),
        Cell::Count(asked.len() as u32),
        count(&|a| a.returned_at.is_some()),
        count(&|a| a.late),
        count(&|a| a.returned_at.is_some() && a.nil),
        date(c.meeting),
        date(signoff.and_then(|s| s.outcome.as_ref().map(|o| o.1))),
        date(c.panel_submitted),
        Cell::text(on_time_words(c, now)),
        outcome(panel),
        date(panel.and_then(|p| p.outcome.as_ref().map(|o| o.1))),
        outcome(signoff),
        Cell::text(c.state.reviewer.clone().unwrap_or_default()),
        Cell::Date(six_months),
        Cell::Date(c.state.publication),
        Cell::Count(
            c.letters
                .iter()
                .filter(|l| l.state == crate::core::records::OutboxState::Imported)
                .count() as u32,
        ),
        // The date the hold was placed (never its reason, which may name people).
        Cell::Date(
            c.state
                .hold
                .as_ref()
                .map(|h| calendar::london_date(h.since)),
        ),
    ]
}

/// The agency returns rows of one case.
pub fn agency_rows(c: &CaseView) -> Vec<Vec<Cell>> {
    c.agencies
        .iter()
        .map(|a| {
            vec![
                Cell::text(c.reference()),
                Cell::text(a.name.clone()),
                date(a.asked_at),
                date(a.returned_at),
                yes_no(a.late),
                yes_no(a.returned_at.is_some() && a.nil),
            ]
        })
        .collect()
}

/// The tracker: its case rows and agency rows, cases received (day 0) on or after `since`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    pub cases: Vec<Vec<Cell>>,
    pub agencies: Vec<Vec<Cell>>,
}

/// Build the tracker from a snapshot, one row per case in reference order.
pub fn rows(snap: &Snapshot, process: &Process, since: Option<NaiveDate>) -> Tracker {
    let mut cases: Vec<&CaseView> = snap
        .cases
        .iter()
        .filter(|c| since.is_none_or(|s| c.state.day0 >= s))
        .collect();
    cases.sort_by(|a, b| a.reference().cmp(b.reference()));
    Tracker {
        cases: cases.iter().map(|c| row(c, process, snap.now)).collect(),
        agencies: cases.iter().flat_map(|c| agency_rows(c)).collect(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The case rows as CSV (RFC 4180), header first.
pub fn csv(t: &Tracker) -> String {
    let mut out = String::new();
    let line = |cells: Vec<String>| {
        let mut l = cells
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",");
        l.push_str("\r\n");
        l
    };
    out.push_str(&line(COLUMNS.iter().map(|c| c.to_string()).collect()));
    for r in &t.cases {
        out.push_str(&line(r.iter().map(Cell::as_text).collect()));
    }
    out
}

fn excel_date(d: NaiveDate) -> Result<rust_xlsxwriter::ExcelDateTime, ExportError> {
    Ok(rust_xlsxwriter::ExcelDateTime::from_ymd(
        u16::try_from(d.year()).map_err(|_| ExportError::Xlsx(format!("year of {d}")))?,
        d.month() as u8,
        d.day() as u8,
    )?)
}

/// Whose tracker it is and how it is marked: the printed page's header and footer.
#[derive(Debug, Clone, Copy)]
pub struct Heading<'a> {
    /// The partnership's full name.
    pub partnership: &'a str,
    /// The protective marking (`[letters] marking`, e.g. OFFICIAL-SENSITIVE), if one is set.
    pub marking: Option<&'a str>,
    /// The date the tracker is as at.
    pub as_at: NaiveDate,
}

/// Text for a page header or footer: `&` doubled (a single one starts a control code), one
/// line, and short enough that the whole header stays under Excel's 255 characters.
fn header_text(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
        .replace('&', "&&")
}

/// Print set-up: A4 landscape, one page wide (as many pages long as it takes), the header row on
/// every page, narrow margins, gridlines, and the partnership, the marking (top and bottom, as
/// protectively marked paper carries it), the date and the page number in the header and footer.
fn print_setup(
    ws: &mut rust_xlsxwriter::Worksheet,
    title: &str,
    heading: &Heading<'_>,
) -> Result<(), ExportError> {
    const A4: u8 = 9;
    ws.set_paper_size(A4);
    ws.set_landscape();
    ws.set_print_fit_to_pages(1, 0);
    ws.set_repeat_rows(0, 0)?;
    // Inches: left, right, top, bottom, header, footer.
    ws.set_margins(0.4, 0.4, 0.6, 0.6, 0.25, 0.25);
    ws.set_print_gridlines(true);
    let marking = header_text(heading.marking.unwrap_or_default().trim(), 40);
    ws.set_header(format!(
        "&L{}&C&\"-,Bold\"{marking}&R{}",
        header_text(heading.partnership, 100),
        header_text(title, 60),
    ));
    ws.set_footer(format!(
        "&LAs at {}&C&\"-,Bold\"{marking}&RPage &P of &N",
        calendar::short_date(heading.as_at)
    ));
    Ok(())
}

/// Points per line of 11-point text.
const LINE_HEIGHT: f64 = 15.0;

/// How many lines `text` takes wrapped between words in a column `width` characters wide. It
/// counts every character as wide as a digit (Excel's unit), which most letters are not, so the
/// row it sets is never too short; a word longer than the line is broken, as Excel breaks it.
fn wrapped_lines(text: &str, width: f64, bold: bool) -> usize {
    let room = (width - if bold { 1.5 } else { 1.0 }).max(1.0) as usize;
    let mut lines = 1;
    let mut used = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if used > 0 && used + 1 + len <= room {
            used += 1 + len;
            continue;
        }
        if used > 0 {
            lines += 1;
        }
        lines += len.saturating_sub(1) / room;
        used = (len - 1) % room + 1;
    }
    lines
}

/// The height of a row, in points, for its tallest wrapped cell. Set by hand because LibreOffice
/// does not grow a row for wrapped text on opening (Excel does), and a printed row must show all
/// of its "Next step".
fn row_height<'a>(cells: impl Iterator<Item = (&'a str, f64)>, bold: bool) -> f64 {
    let lines = cells
        .map(|(text, width)| wrapped_lines(text, width, bold))
        .max()
        .unwrap_or(1);
    lines as f64 * LINE_HEIGHT
}

/// Write one sheet: headings, rows, widths, wrapping, a frozen header row (and first column) and
/// an autofilter on every column.
fn sheet(
    ws: &mut rust_xlsxwriter::Worksheet,
    name: &str,
    headers: (&[&str], &[f64]),
    rows: &[Vec<Cell>],
) -> Result<(), ExportError> {
    use rust_xlsxwriter::{Format, FormatAlign, FormatBorder};
    let (headers, widths) = headers;
    let top = Format::new().set_align(FormatAlign::Top);
    let heading = top
        .clone()
        .set_bold()
        .set_text_wrap()
        .set_background_color("D9D9D9")
        .set_border_bottom(FormatBorder::Thin);
    let wrapped = top.clone().set_text_wrap();
    let date_format = top.clone().set_num_format("dd/mm/yyyy");
    ws.set_name(name)?;
    let width = |c: usize| widths.get(c).copied().unwrap_or(12.0);
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &heading)?;
        ws.set_column_width(c as u16, width(c))?;
    }
    ws.set_row_height(
        0,
        row_height(
            headers.iter().enumerate().map(|(c, h)| (*h, width(c))),
            true,
        ),
    )?;
    for (r, row) in rows.iter().enumerate() {
        let r = (r + 1) as u32;
        let texts = row.iter().enumerate().filter_map(|(c, cell)| match cell {
            Cell::Text(s) => Some((s.as_str(), width(c))),
            _ => None,
        });
        ws.set_row_height(r, row_height(texts, false))?;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) if s.is_empty() => {}
                Cell::Text(s) => {
                    ws.write_string_with_format(r, c, s, &wrapped)?;
                }
                Cell::Count(n) => {
                    ws.write_number_with_format(r, c, f64::from(*n), &top)?;
                }
                Cell::Date(Some(d)) => {
                    ws.write_datetime_with_format(r, c, excel_date(*d)?, &date_format)?;
                }
                Cell::Date(None) => {}
            }
        }
    }
    ws.set_freeze_panes(1, 1)?;
    ws.autofilter(0, 0, rows.len() as u32, (headers.len() - 1) as u16)?;
    Ok(())
}

/// The tracker as an XLSX workbook: "Cases" and "Agency returns", each set up to print. `created`
/// is the document's creation time (the injected clock, so the bytes depend only on the data).
pub fn xlsx(
    t: &Tracker,
    heading: &Heading<'_>,
    created: DateTime<Utc>,
) -> Result<Vec<u8>, ExportError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let created = rust_xlsxwriter::ExcelDateTime::from_timestamp(created.timestamp())?;
    let mut props = rust_xlsxwriter::DocProperties::new()
        .set_title(format!("{}: rapid review tracker", heading.partnership))
        .set_author("caseclerk")
        .set_creation_datetime(&created);
    if let Some(m) = heading.marking {
        props = props.set_keywords(m);
    }
    wb.set_properties(&props);
    let cases = wb.add_worksheet();
    sheet(cases, "Cases", (COLUMNS, WIDTHS), &t.cases)?;
    print_setup(cases, "Rapid review tracker", heading)?;
    let agencies = wb.add_worksheet();
    sheet(
        agencies,
        "Agency returns",
        (AGENCY_COLUMNS, AGENCY_WIDTHS),
        &t.agencies,
    )?;
    print_setup(agencies, "Agency returns", heading)?;
    Ok(wb.save_to_buffer()?)
}

/// The data the tracker report's templates see: the counts, and the open cases by stage in words
/// ("Rapid review in progress: 3").
pub fn tracker_data(
    partnership: (&str, &str, &str),
    period: &str,
    filename: &str,
    snap: &Snapshot,
    process: &Process,
) -> serde_json::Value {
    let open = snap.cases.iter().filter(|c| c.is_open()).count();
    let mut stages: Vec<(String, usize)> = Vec::new();
    for c in snap.cases.iter().filter(|c| c.is_open()) {
        let s = stage(c, process);
        match stages.iter_mut().find(|(name, _)| *name == s) {
            Some((_, n)) => *n += 1,
            None => stages.push((s, 1)),
        }
    }
    stages.sort();
    json!({
        "partnership": { "name": partnership.0, "short_name": partnership.1, "address": partnership.2 },
        "report": {
            "period": period,
            "date": calendar::long_date(calendar::london_date(snap.now)),
            "filename": filename,
            "cases": snap.cases.len(),
            "open": open,
            "closed": snap.cases.len() - open,
            "stages": stages
                .iter()
                .map(|(stage, count)| json!({ "stage": stage, "count": count }))
                .collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::case::{Event, Recorded};
    use crate::core::views::fixture::{self, World, date};
    use calamine::{Data, DataType, Reader, Xlsx};
    use std::io::{Cursor, Read};

    fn tracker() -> (World, Tracker) {
        let world = World::new();
        let t = rows(&fixture::snapshot(&world), &world.process, None);
        (world, t)
    }

    fn column(name: &str) -> usize {
        COLUMNS.iter().position(|c| *c == name).unwrap()
    }

    fn case_row<'a>(t: &'a Tracker, reference: &str) -> &'a [Cell] {
        t.cases
            .iter()
            .find(|r| r[0] == Cell::Text(reference.into()))
            .unwrap()
    }

    #[test]
    fn each_case_is_one_row_with_its_dates_counts_and_next_step_in_words() {
        let (_, t) = tracker();
        assert_eq!(t.cases.len(), 5, "closed cases stay on the tracker");
        let a = case_row(&t, "RR-2026-0001");
        assert_eq!(
            a[column("Received (day 0)")],
            Cell::Date(Some(date(2026, 8, 13)))
        );
        assert_eq!(
            a[column("Screening decision")],
            Cell::Date(Some(date(2026, 8, 14)))
        );
        assert_eq!(
            a[column("Screening outcome")],
            Cell::text("Meets the criteria: rapid review")
        );
        assert_eq!(a[column("Agencies asked")], Cell::Count(4));
        assert_eq!(a[column("Returned")], Cell::Count(2));
        assert_eq!(a[column("Nil")], Cell::Count(1));
        assert_eq!(a[column("Late")], Cell::Count(0));
        assert_eq!(a[column("Meeting")], Cell::Date(Some(date(2026, 9, 1))));
        assert_eq!(a[column("Incident date")], Cell::Date(None));
        assert_eq!(a[column("Reviewer")], Cell::text(""));
        assert_eq!(a[column("Referrer agency")], Cell::text(""));
        assert_eq!(a[column("Status")], Cell::text("Rapid review in progress"));
        assert_eq!(
            a[column("Next step")],
            Cell::text("Ask the three statutory partners to sign off the report and action plan")
        );
        assert_eq!(
            a[column("Next step due")],
            Cell::Date(Some(date(2026, 9, 2)))
        );
        let b = case_row(&t, "RR-2026-0002");
        assert_eq!(
            b[column("Referrer agency")],
            Cell::text("Health Visiting Service")
        );
        assert_eq!(b[column("Screening outcome")], Cell::text("Awaited"));
        assert_eq!(
            (&b[column("Next step")], &b[column("Next step due")]),
            (
                &Cell::text("Awaiting: Screening panel decision"),
                &Cell::Date(Some(date(2026, 9, 1)))
            ),
            "nothing is planned before the decision awaited, which is the next step"
        );
        assert_eq!(
            b[column("Status")],
            Cell::text("Awaiting the screening decision")
        );
        let d = case_row(&t, "RR-2026-0004");
        assert_eq!(
            d[column("On time (National Panel deadline)")],
            Cell::text("No (overdue, not sent)")
        );
        assert_eq!(d[column("LCSPR decision")], Cell::text("No LCSPR"));
        assert_eq!(d[column("Sign-off")], Cell::Date(Some(date(2026, 8, 21))));
        let e = case_row(&t, "RR-2026-0005");
        assert_eq!(e[column("Status")], Cell::text("Closed"));
        assert_eq!(
            e[column("Screening outcome")],
            Cell::text("No further action")
        );
        assert!(
            t.agencies
                .iter()
                .all(|r| r[0] == Cell::text("RR-2026-0001") || r[0] == Cell::text("RR-2026-0003")),
            "{:?}",
            t.agencies
        );
        assert_eq!(t.agencies.len(), 5);
    }

    #[test]
    fn no_cell_shows_an_internal_code_or_an_underscore() {
        let (world, t) = tracker();
        let codes: Vec<&str> = world
            .process
            .decisions
            .iter()
            .flat_map(|d| d.outcomes.iter().map(String::as_str))
            .collect();
        for cell in t.cases.iter().chain(&t.agencies).flatten() {
            let text = cell.as_text();
            assert!(!text.contains('_'), "{text}");
            assert!(!codes.contains(&text.as_str()), "an outcome id: {text}");
            assert!(
                !["yes", "no", "rapid review", "screening", "closed", "open"]
                    .contains(&text.as_str()),
                "a lower-case code word: {text}"
            );
        }
    }

    #[test]
    fn every_outcome_of_every_shipped_process_file_has_plain_words() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/processes");
        let has = |_: &str| true;
        let mut seen = 0;
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let p = crate::core::process::parse(
                &path.display().to_string(),
                &text,
                &crate::core::process::Environment { has_template: &has },
            )
            .unwrap();
            for d in &p.decisions {
                for o in &d.outcomes {
                    seen += 1;
                    let words = outcome_words(o);
                    let fallback = o.replace('_', " ");
                    assert!(
                        !words.eq_ignore_ascii_case(&fallback) || words.contains(' '),
                        "{}: outcome `{o}` of {} has no words of its own: {words}",
                        path.display(),
                        d.id
                    );
                }
            }
        }
        assert!(seen > 40, "the five process files were read: {seen}");
        assert_eq!(outcome_words("peer_review"), "Peer review", "a new outcome");
    }

    #[test]
    fn the_reviewer_a_person_named_and_the_incident_date_fill_their_columns() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        let c = snap
            .cases
            .iter_mut()
            .find(|c| c.reference() == "RR-2026-0001")
            .unwrap();
        for name in ["A. Reviewer", "Jo Bloggs (independent reviewer)"] {
            crate::core::case::apply(
                &mut c.state,
                &Recorded {
                    at: fixture::t("2026-08-20T10:00:00Z"),
                    actor: "operator:bm".into(),
                    event: Event::ReviewerSet {
                        reviewer: name.into(),
                        reason: "chair's choice".into(),
                    },
                },
            )
            .unwrap();
        }
        c.incident_date = Some(date(2026, 8, 10));
        let t = rows(&snap, &world.process, None);
        let r = case_row(&t, "RR-2026-0001");
        assert_eq!(
            r[column("Reviewer")],
            Cell::text("Jo Bloggs (independent reviewer)"),
            "the last name given"
        );
        assert_eq!(
            r[column("Incident date")],
            Cell::Date(Some(date(2026, 8, 10)))
        );
    }

    #[test]
    fn a_submission_to_the_national_panel_is_on_time_when_sent_by_its_deadline() {
        let world = World::new();
        let mut snap = fixture::snapshot(&world);
        let c = snap
            .cases
            .iter_mut()
            .find(|c| c.reference() == "RR-2026-0003")
            .unwrap();
        let sent = fixture::t("2026-09-03T14:00:00Z");
        c.panel_submitted = Some(sent);
        for d in &mut c.deadlines {
            d.met_at = Some(sent);
        }
        let t = rows(&snap, &world.process, None);
        let r = case_row(&t, "RR-2026-0003");
        assert_eq!(
            r[column("Sent to National Panel")],
            Cell::Date(Some(date(2026, 9, 3)))
        );
        assert_eq!(
            r[column("On time (National Panel deadline)")],
            Cell::text("Yes")
        );
        for d in &mut snap
            .cases
            .iter_mut()
            .find(|c| c.reference() == "RR-2026-0003")
            .unwrap()
            .deadlines
        {
            d.met_at = Some(fixture::t("2026-09-04T09:00:00Z"));
        }
        let t = rows(&snap, &world.process, None);
        let r = case_row(&t, "RR-2026-0003");
        assert_eq!(
            r[column("On time (National Panel deadline)")],
            Cell::text("No (sent late)")
        );
    }

    #[test]
    fn since_filters_on_the_received_date() {
        let world = World::new();
        let t = rows(
            &fixture::snapshot(&world),
            &world.process,
            Some(date(2026, 8, 12)),
        );
        let refs: Vec<String> = t.cases.iter().map(|r| r[0].as_text()).collect();
        assert_eq!(refs, ["RR-2026-0001", "RR-2026-0002", "RR-2026-0003"]);
    }

    #[test]
    fn csv_has_the_same_columns_and_quotes_as_rfc_4180_says() {
        let (_, t) = tracker();
        let text = csv(&t);
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        let first = lines.next().unwrap();
        assert!(
            first.starts_with(
                "RR-2026-0001,,Rapid review in progress,Ask the three statutory partners to sign \
                 off the report and action plan,2026-09-02,,,2026-08-13,2026-08-14,\
                 Meets the criteria: rapid review,4,2,0,1,2026-09-01,"
            ),
            "{first}"
        );
        assert!(text.ends_with("\r\n"));
        assert_eq!(text.matches("\r\n").count(), 6, "a header and five cases");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    fn heading(marking: Option<&str>) -> Heading<'_> {
        Heading {
            partnership: "Barking & Dagenham, Havering and Redbridge Safeguarding Partnership",
            marking,
            as_at: date(2026, 9, 1),
        }
    }

    fn xlsx_bytes() -> Vec<u8> {
        let (_, t) = tracker();
        xlsx(&t, &heading(Some("OFFICIAL-SENSITIVE")), fixture::now()).unwrap()
    }

    fn part(bytes: &[u8], name: &str) -> String {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        zip.by_name(name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn the_xlsx_reads_back_with_a_header_row_date_cells_words_and_the_agency_sheet() {
        let bytes = xlsx_bytes();
        let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).unwrap();
        assert_eq!(wb.sheet_names(), ["Cases", "Agency returns"]);
        let cases = wb.worksheet_range("Cases").unwrap();
        let header: Vec<String> = cases
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(header, COLUMNS);
        let row = cases
            .rows()
            .find(|r| r[0] == Data::String("RR-2026-0001".into()))
            .unwrap();
        let received = &row[column("Received (day 0)")];
        assert!(
            received.is_datetime(),
            "a date cell, not text: {received:?}"
        );
        assert_eq!(received.as_date(), Some(date(2026, 8, 13)));
        assert_eq!(row[column("Agencies asked")].as_f64(), Some(4.0));
        assert_eq!(row[column("Incident date")], Data::Empty);
        assert_eq!(
            row[column("Status")],
            Data::String("Rapid review in progress".into())
        );
        assert_eq!(
            row[column("Next step")],
            Data::String(
                "Ask the three statutory partners to sign off the report and action plan".into()
            ),
            "the whole next step is in the cell"
        );
        assert_eq!(cases.height(), 6);

        let agencies = wb.worksheet_range("Agency returns").unwrap();
        let header: Vec<String> = agencies
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(header, AGENCY_COLUMNS);
        let hv = agencies
            .rows()
            .find(|r| r[1] == Data::String("Health Visiting Service".into()))
            .unwrap();
        assert_eq!(hv[0], Data::String("RR-2026-0001".into()));
        assert_eq!(hv[2].as_date(), Some(date(2026, 8, 17)));
        assert_eq!(hv[3], Data::Empty, "not returned");
        let school = agencies
            .rows()
            .find(|r| r[1] == Data::String("St Mary's Primary School".into()))
            .unwrap();
        assert_eq!(school[5], Data::String("Yes".into()), "a nil return");
    }

    #[test]
    fn the_xlsx_header_row_and_reference_are_frozen_and_dates_use_a_date_format() {
        let bytes = xlsx_bytes();
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(
            sheet.contains(
                r#"<pane xSplit="1" ySplit="1" topLeftCell="B2" activePane="bottomRight" state="frozen"/>"#
            ),
            "{sheet}"
        );
        assert!(sheet.contains(r#"<autoFilter ref="A1:Z6"/>"#), "{sheet}");
        let styles = part(&bytes, "xl/styles.xml");
        assert!(styles.contains(r#"formatCode="dd/mm/yyyy""#), "{styles}");
        assert!(styles.contains(r#"wrapText="1""#), "{styles}");
    }

    #[test]
    fn the_cases_sheet_prints_a4_landscape_one_page_wide_with_the_header_row_on_every_page() {
        let bytes = xlsx_bytes();
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(sheet.contains(r#"<pageSetUpPr fitToPage="1"/>"#), "{sheet}");
        assert!(
            sheet.contains(r#"<pageSetup paperSize="9" fitToHeight="0" orientation="landscape""#),
            "{sheet}"
        );
        assert!(
            sheet.contains(r#"<printOptions gridLines="1"/>"#),
            "{sheet}"
        );
        let workbook = part(&bytes, "xl/workbook.xml");
        assert!(
            workbook.contains(
                r#"<definedName name="_xlnm.Print_Titles" localSheetId="0">Cases!$1:$1</definedName>"#
            ),
            "{workbook}"
        );
        // Widths: "Next step" is the widest column, so it wraps onto a line or two, never cut off.
        let next = column("Next step");
        assert!(WIDTHS.iter().all(|w| *w <= WIDTHS[next]));
        assert!(sheet.contains(r#"<col min="4" max="4" width="26.7109375" customWidth="1"/>"#));
    }

    #[test]
    fn the_printed_page_carries_the_partnership_and_the_marking_top_and_bottom() {
        let bytes = xlsx_bytes();
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(
            sheet.contains(
                "<oddHeader>&amp;LBarking &amp;&amp; Dagenham, Havering and Redbridge Safeguarding \
                 Partnership&amp;C&amp;\"-,Bold\"OFFICIAL-SENSITIVE&amp;RRapid review tracker</oddHeader>"
            ),
            "{sheet}"
        );
        assert!(
            sheet.contains(
                "<oddFooter>&amp;LAs at Tue 1 Sep 2026&amp;C&amp;\"-,Bold\"OFFICIAL-SENSITIVE\
                 &amp;RPage &amp;P of &amp;N</oddFooter>"
            ),
            "{sheet}"
        );
        let (_, t) = tracker();
        let unmarked = xlsx(&t, &heading(None), fixture::now()).unwrap();
        let sheet = part(&unmarked, "xl/worksheets/sheet1.xml");
        assert!(!sheet.contains("OFFICIAL"), "{sheet}");
        assert!(sheet.contains("&amp;C&amp;\"-,Bold\"&amp;RRapid review tracker"));
    }

    #[test]
    fn every_column_has_a_width_its_heading_s_longest_word_fits() {
        assert_eq!(WIDTHS.len(), COLUMNS.len());
        assert_eq!(AGENCY_WIDTHS.len(), AGENCY_COLUMNS.len());
        for (heading, width) in COLUMNS
            .iter()
            .zip(WIDTHS)
            .chain(AGENCY_COLUMNS.iter().zip(AGENCY_WIDTHS))
        {
            let longest = heading.split(' ').map(|w| w.chars().count()).max().unwrap();
            assert!(
                longest as f64 + 1.0 <= *width,
                "{heading}: a {longest}-letter word in a column {width} wide"
            );
        }
    }

    #[test]
    fn a_row_is_as_tall_as_its_longest_wrapped_text() {
        assert_eq!(wrapped_lines("Closed", 13.0, false), 1);
        assert_eq!(
            wrapped_lines("Awaiting the screening decision", 13.0, false),
            3
        );
        assert_eq!(wrapped_lines("", 13.0, false), 1);
        assert_eq!(
            wrapped_lines("abcdefghijklmnopqrstuvwxyz", 11.0, false),
            3,
            "broken"
        );
        assert_eq!(
            wrapped_lines(
                "Ask the three statutory partners to sign off the report and action plan",
                26.0,
                false
            ),
            3
        );
        let bytes = xlsx_bytes();
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        assert!(
            sheet.contains(r#"<row r="2" spans="1:26" ht="45" customHeight="1">"#),
            "three lines for RR-2026-0001's next step: {sheet}"
        );
    }

    #[test]
    fn the_same_data_and_clock_give_the_same_workbook() {
        assert_eq!(xlsx_bytes(), xlsx_bytes());
    }
}
