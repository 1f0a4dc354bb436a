//! The tracker: every case on one row, as a spreadsheet (XLSX) or CSV.
//!
//! Owns the tracker's columns and how each is worked out from a case's view ([`rows`]), and writing
//! them: CSV (RFC 4180: quoted where needed, CRLF line ends, ISO dates) and XLSX (a "Cases" sheet
//! with a bold, frozen header row, an autofilter, dates as real date cells in the UK format, and an
//! "Agency returns" sheet with one row per agency per case). `caseclerk export` writes it; the
//! periodic tracker report ([`crate::shell::periodic`]) attaches the XLSX.
//!
//! Columns the case store cannot fill yet are kept, blank, so the sheet's shape does not change
//! when they can: the incident date and the reviewer.
//!
//! Must not: read the store or the clock (everything comes from the snapshot); include a name,
//! address, subject or body (case references, areas, agency names, step names and dates only).

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

/// The tracker's columns, in order.
pub const COLUMNS: &[&str] = &[
    "Reference",
    "Borough/area",
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
    "Status",
    "Next step",
    "Next step due",
    "Letters imported (not sent)",
    "Legal hold",
];

/// The columns of the agency returns sheet.
pub const AGENCY_COLUMNS: &[&str] = &["Case", "Agency", "Asked", "Returned", "Late", "Nil"];

fn date(t: Option<DateTime<Utc>>) -> Cell {
    Cell::Date(t.map(calendar::london_date))
}

fn words(s: &str) -> String {
    s.replace('_', " ")
}

fn yes_no(b: bool) -> Cell {
    Cell::text(if b { "yes" } else { "no" })
}

/// Where a case is, in a word or two: closed, screening, rapid review, with the National Panel,
/// LCSPR, open.
pub fn stage(c: &CaseView, process: &Process) -> String {
    if !c.is_open() {
        return "closed".into();
    }
    let taken = |d: Option<&crate::core::views::DecisionView>| d.and_then(|d| d.outcome.clone());
    if c.screening().is_some() && taken(c.screening()).is_none() {
        return "screening".into();
    }
    if let Some((o, _)) = taken(c.lcspr_decision(process))
        && o == "lcspr"
    {
        return "LCSPR".into();
    }
    if c.panel_submitted.is_some() {
        return if taken(c.decision("panel_response")).is_none() {
            "with the National Panel".into()
        } else {
            "open".into()
        };
    }
    if c.deadline("national_panel").is_some() {
        return "rapid review".into();
    }
    "open".into()
}

/// The tracker row of one case at `now`.
pub fn row(c: &CaseView, process: &Process, now: DateTime<Utc>) -> Vec<Cell> {
    let screening = c.screening();
    let screening_outcome = match screening {
        None => String::new(),
        Some(s) => match (&s.outcome, &s.provisional) {
            (Some((o, _)), _) => words(o),
            (None, Some(p)) => format!("awaiting (provisionally {})", words(p)),
            (None, None) => "awaiting".into(),
        },
    };
    let asked: Vec<_> = c.agencies.iter().filter(|a| a.asked_at.is_some()).collect();
    let count = |f: &dyn Fn(&&crate::core::views::AgencyView) -> bool| {
        Cell::Count(asked.iter().filter(|a| f(a)).count() as u32)
    };
    let signoff = c.lcspr_decision(process);
    let national = c.deadline("national_panel");
    let on_time = match (c.panel_submitted, national) {
        (Some(_), Some(d)) => match d.on_time() {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => String::new(),
        },
        (None, Some(d)) if d.due.as_ref().is_some_and(|r| r.at < now) => "no (not sent)".into(),
        _ => String::new(),
    };
    let panel = c.decision("panel_response");
    let six_months = process
        .deadlines
        .iter()
        .filter(|d| d.when.anchor == Anchor::LcsprDecision && d.when.months > 0)
        .find_map(|d| c.deadline(&d.id))
        .and_then(|d| d.due.as_ref())
        .map(|r| r.date);
    let next = c.upcoming.first();
    vec![
        Cell::text(c.reference()),
        Cell::text(c.state.area.clone().unwrap_or_default()),
        Cell::text(c.referrer_agency.clone().unwrap_or_default()),
        Cell::Date(None),
        Cell::Date(Some(c.state.day0)),
        date(screening.and_then(|s| s.outcome.as_ref().map(|o| o.1))),
        Cell::text(screening_outcome),
        Cell::Count(asked.len() as u32),
        count(&|a| a.returned_at.is_some()),
        count(&|a| a.late),
        count(&|a| a.returned_at.is_some() && a.nil),
        date(c.meeting),
        date(signoff.and_then(|s| s.outcome.as_ref().map(|o| o.1))),
        date(c.panel_submitted),
        Cell::text(on_time),
        Cell::text(
            panel
                .and_then(|p| p.outcome.as_ref())
                .map(|o| words(&o.0))
                .unwrap_or_default(),
        ),
        date(panel.and_then(|p| p.outcome.as_ref().map(|o| o.1))),
        Cell::text(
            signoff
                .and_then(|s| s.outcome.as_ref())
                .map(|o| words(&o.0))
                .unwrap_or_default(),
        ),
        Cell::text(""),
        Cell::Date(six_months),
        Cell::Date(c.state.publication),
        Cell::text(stage(c, process)),
        Cell::text(next.map(|u| u.name.clone()).unwrap_or_default()),
        Cell::Date(next.map(|u| u.due.date)),
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

fn sheet(
    ws: &mut rust_xlsxwriter::Worksheet,
    name: &str,
    headers: &[&str],
    rows: &[Vec<Cell>],
) -> Result<(), ExportError> {
    use rust_xlsxwriter::Format;
    let bold = Format::new().set_bold().set_text_wrap();
    let date_format = Format::new().set_num_format("dd/mm/yyyy");
    ws.set_name(name)?;
    for (c, h) in headers.iter().enumerate() {
        let c = c as u16;
        ws.write_string_with_format(0, c, *h, &bold)?;
        let width = (h.len() as f64).clamp(10.0, 22.0) + 2.0;
        ws.set_column_width(c, width)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = (r + 1) as u32;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) if s.is_empty() => {}
                Cell::Text(s) => {
                    ws.write_string(r, c, s)?;
                }
                Cell::Count(n) => {
                    ws.write_number(r, c, f64::from(*n))?;
                }
                Cell::Date(Some(d)) => {
                    ws.write_datetime_with_format(r, c, excel_date(*d)?, &date_format)?;
                }
                Cell::Date(None) => {}
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    ws.autofilter(0, 0, rows.len() as u32, (headers.len() - 1) as u16)?;
    Ok(())
}

/// The tracker as an XLSX workbook: "Cases" and "Agency returns". `created` is the document's
/// creation time (the injected clock, so the bytes depend only on the data).
pub fn xlsx(
    t: &Tracker,
    partnership: &str,
    created: DateTime<Utc>,
) -> Result<Vec<u8>, ExportError> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let created = rust_xlsxwriter::ExcelDateTime::from_timestamp(created.timestamp())?;
    let props = rust_xlsxwriter::DocProperties::new()
        .set_title(format!("{partnership}: rapid review tracker"))
        .set_author("caseclerk")
        .set_creation_datetime(&created);
    wb.set_properties(&props);
    sheet(wb.add_worksheet(), "Cases", COLUMNS, &t.cases)?;
    sheet(
        wb.add_worksheet(),
        "Agency returns",
        AGENCY_COLUMNS,
        &t.agencies,
    )?;
    Ok(wb.save_to_buffer()?)
}

/// The data the tracker report's templates see.
pub fn tracker_data(
    partnership: (&str, &str, &str),
    period: &str,
    filename: &str,
    snap: &Snapshot,
) -> serde_json::Value {
    let open = snap.cases.iter().filter(|c| c.is_open()).count();
    json!({
        "partnership": { "name": partnership.0, "short_name": partnership.1, "address": partnership.2 },
        "report": {
            "period": period,
            "date": calendar::long_date(calendar::london_date(snap.now)),
            "filename": filename,
            "cases": snap.cases.len(),
            "open": open,
            "closed": snap.cases.len() - open,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn each_case_is_one_row_with_its_dates_counts_and_next_step() {
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
        assert_eq!(a[column("Screening outcome")], Cell::text("meets"));
        assert_eq!(a[column("Agencies asked")], Cell::Count(4));
        assert_eq!(a[column("Returned")], Cell::Count(2));
        assert_eq!(a[column("Nil")], Cell::Count(1));
        assert_eq!(a[column("Late")], Cell::Count(0));
        assert_eq!(a[column("Meeting")], Cell::Date(Some(date(2026, 9, 1))));
        assert_eq!(a[column("Incident date")], Cell::Date(None));
        assert_eq!(a[column("Reviewer")], Cell::text(""));
        assert_eq!(a[column("Referrer agency")], Cell::text(""));
        assert_eq!(a[column("Status")], Cell::text("rapid review"));
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
        assert_eq!(b[column("Screening outcome")], Cell::text("awaiting"));
        assert_eq!(b[column("Status")], Cell::text("screening"));
        let d = case_row(&t, "RR-2026-0004");
        assert_eq!(
            d[column("On time (National Panel deadline)")],
            Cell::text("no (not sent)")
        );
        assert_eq!(d[column("LCSPR decision")], Cell::text("no lcspr"));
        assert_eq!(d[column("Sign-off")], Cell::Date(Some(date(2026, 8, 21))));
        let e = case_row(&t, "RR-2026-0005");
        assert_eq!(e[column("Status")], Cell::text("closed"));
        assert_eq!(e[column("Screening outcome")], Cell::text("nfa"));
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
            Cell::text("yes")
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
            Cell::text("no")
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
            first.starts_with("RR-2026-0001,,,,2026-08-13,2026-08-14,meets,4,2,0,1,2026-09-01,"),
            "{first}"
        );
        assert!(text.ends_with("\r\n"));
        assert_eq!(text.matches("\r\n").count(), 6, "a header and five cases");
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    fn xlsx_bytes() -> Vec<u8> {
        let (_, t) = tracker();
        xlsx(&t, "Bury Safeguarding Partnership", fixture::now()).unwrap()
    }

    #[test]
    fn the_xlsx_reads_back_with_a_header_row_date_cells_and_the_agency_sheet() {
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
        assert_eq!(school[5], Data::String("yes".into()), "a nil return");
    }

    #[test]
    fn the_xlsx_header_row_is_frozen_and_dates_use_a_date_format() {
        let bytes = xlsx_bytes();
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut sheet = String::new();
        zip.by_name("xl/worksheets/sheet1.xml")
            .unwrap()
            .read_to_string(&mut sheet)
            .unwrap();
        assert!(
            sheet.contains(
                r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#
            ),
            "{sheet}"
        );
        let mut styles = String::new();
        zip.by_name("xl/styles.xml")
            .unwrap()
            .read_to_string(&mut styles)
            .unwrap();
        assert!(styles.contains(r#"formatCode="dd/mm/yyyy""#), "{styles}");
    }

    #[test]
    fn the_same_data_and_clock_give_the_same_workbook() {
        assert_eq!(xlsx_bytes(), xlsx_bytes());
    }
}
