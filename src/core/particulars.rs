//! The particulars of a referral: who the child is, when and what happened, which agencies and
//! borough, and who referred — read from the referral form (Word .docx, PDF or text attached) and
//! the message body.
//!
//! Owns the vocabulary ([`Field`], [`Confidence`], [`State`], [`Particular`]), turning an
//! attachment's bytes into text ([`document_text`]: a .docx is a zip of WordprocessingML read with
//! `zip` and `quick-xml`; a PDF's text comes from `lopdf`, with a cap on decompression), reading
//! labelled fields out of that text as the five partnerships' forms label them ([`extract`]), and
//! what a letter may say about the child ([`for_letter`]) and what the screening panel is offered
//! as agencies ([`proposed_agencies`]).
//!
//! The forms (`shared/seeds/`): Tameside's Appendix A case notification form (a table: "Agency:",
//! "Date of incident prompting referral:", "Last name/s:", "Forename/s:", "Date of birth:"), North
//! East Lincolnshire's SCSI-1 notification, BHR's "Referral Form for Serious Incidents" (which
//! names the borough), Bury's referral form and Buckinghamshire's referral form to the Rapid Review
//! Panel. Labels are matched as labels (case, punctuation, "(dd/mm/yyyy)" hints ignored), never by
//! guessing from free text — except the type (death or serious harm), which a body's words can
//! suggest at low confidence. A referrer's own "Name:" is never taken for the child's.
//!
//! Every particular carries where it came from (which attachment or the body, which label) and a
//! confidence; nothing extracted is used in a letter to an agency until a person has confirmed or
//! corrected it. The agencies named are only ever *proposed* to the screening panel.
//!
//! Must not: do I/O, read the clock, or log: every value here is personal data. The hand-written
//! `Debug` of [`Particular`] shows the field and confidence, never the value.

use crate::core::agencies;
use crate::core::directory::Agency;
use crate::core::text;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Read;

/// The most a referral form's text may decompress to (a .docx's `word/document.xml`, a PDF
/// page's content): forms are a few hundred kilobytes; a bomb stops here.
pub const MAX_DECOMPRESSED: usize = 16 * 1024 * 1024;

/// The most text read from one referral's forms together: a message of a thousand attachments,
/// each within [`MAX_DECOMPRESSED`], would otherwise hold them all at once — and a referral is
/// read before any daily cap, by the loop that decides every message, so a message that exhausts
/// memory or time would stop every case's letters each time the daemon restarted.
pub const MAX_FORMS_TEXT: usize = 16 * 1024 * 1024;

/// The most attachments of a form kind read from one referral (a form, perhaps a chronology or
/// a body map): the rest are counted as not read, for a person to check.
pub const MAX_FORMS: usize = 10;

/// The most pages read from one PDF: a referral form's particulars are on its first pages, and a
/// PDF of a hundred thousand pages sharing one content stream would be decompressed once a page.
pub const MAX_PDF_PAGES: usize = 30;

/// The most one PDF page's content may decompress to.
pub const MAX_PDF_PAGE: usize = 1024 * 1024;

/// What a particular is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    ChildName,
    Initials,
    DateOfBirth,
    IncidentDate,
    /// Death or serious harm.
    Kind,
    /// The agencies the referral names (as written).
    Agencies,
    /// The borough (BHR: Barking and Dagenham, Havering, Redbridge).
    Borough,
    /// The referrer's agency.
    ReferrerAgency,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::ChildName,
        Field::Initials,
        Field::DateOfBirth,
        Field::IncidentDate,
        Field::Kind,
        Field::Agencies,
        Field::Borough,
        Field::ReferrerAgency,
    ];

    /// The stable id (process files, the store, the command line).
    pub fn as_str(self) -> &'static str {
        match self {
            Field::ChildName => "child_name",
            Field::Initials => "initials",
            Field::DateOfBirth => "date_of_birth",
            Field::IncidentDate => "incident_date",
            Field::Kind => "kind",
            Field::Agencies => "agencies",
            Field::Borough => "borough",
            Field::ReferrerAgency => "referrer_agency",
        }
    }

    /// The field for its id (`date_of_birth`; `-` and `_` alike, any case).
    pub fn parse(s: &str) -> Option<Field> {
        let s = s.trim().to_lowercase().replace('-', "_");
        Field::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Words for people ("date of birth").
    pub fn words(self) -> &'static str {
        match self {
            Field::ChildName => "child's name",
            Field::Initials => "initials",
            Field::DateOfBirth => "date of birth",
            Field::IncidentDate => "incident date",
            Field::Kind => "death or serious harm",
            Field::Agencies => "agencies named",
            Field::Borough => "borough",
            Field::ReferrerAgency => "referrer's agency",
        }
    }

    /// Every id, for error messages.
    pub fn known() -> String {
        Field::ALL.map(Field::as_str).join(", ")
    }
}

/// How sure the reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Found only in free text, or a value that did not have the expected shape.
    Low,
    /// A labelled line in the message body, or a value worked out from another (initials from
    /// the name, a two-digit year).
    Medium,
    /// A labelled field of an attached form, with a value of the expected shape.
    High,
}

impl Confidence {
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Confidence> {
        [Confidence::Low, Confidence::Medium, Confidence::High]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    fn lower(self) -> Confidence {
        match self {
            Confidence::High => Confidence::Medium,
            _ => Confidence::Low,
        }
    }
}

/// Whether a person has looked at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Read from the referral; nobody has checked it yet.
    Proposed,
    /// A person said it is right.
    Confirmed,
    /// A person gave the right value.
    Corrected,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Proposed => "proposed",
            State::Confirmed => "confirmed",
            State::Corrected => "corrected",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Proposed, State::Confirmed, State::Corrected]
            .into_iter()
            .find(|c| c.as_str() == s)
    }

    /// Confirmed or corrected by a person.
    pub fn checked(self) -> bool {
        self != State::Proposed
    }
}

/// One particular of a case: its value, where it came from, how sure, and whether a person has
/// checked it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Particular {
    pub field: Field,
    /// Dates as `YYYY-MM-DD`; the type as `death` or `serious harm`; the rest as written.
    pub value: String,
    /// "attachment 1 (referral.docx)", "message body", "corrected by a person".
    pub source: String,
    /// The form's label it was read under ("Date of incident prompting referral").
    pub label: String,
    pub confidence: Confidence,
    pub state: State,
    /// Who confirmed or corrected it (`operator:jo`), once someone has.
    pub decided_by: Option<String>,
}

impl fmt::Debug for Particular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Particular")
            .field("field", &self.field)
            .field("confidence", &self.confidence)
            .field("state", &self.state)
            .field("value_chars", &self.value.chars().count())
            .finish()
    }
}

impl Particular {
    /// A date value, when it is one.
    pub fn date(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self.value, "%Y-%m-%d").ok()
    }
}

/// A text the particulars are read from: an attachment's or the body's.
pub struct Source<'a> {
    /// "attachment 1 (referral.docx)" or "message body".
    pub name: String,
    /// A form (an attachment) rather than the message body: labelled fields in a form are read
    /// at high confidence, in a body at medium.
    pub form: bool,
    pub text: &'a str,
}

/// Why an attachment's text could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    #[error("the Word document cannot be opened: {0}")]
    Docx(String),
    #[error("the PDF cannot be read: {0}")]
    Pdf(String),
}

/// The text of an attachment, by its kind: a Word .docx, a PDF or plain text. `None` for any
/// other kind (images, spreadsheets, old binary .doc). Never panics, on any bytes.
pub fn document_text(
    filename: &str,
    content_type: &str,
    data: &[u8],
) -> Option<Result<String, TextError>> {
    document_text_within(filename, content_type, data, MAX_DECOMPRESSED)
}

/// [`document_text`] reading at most `budget` bytes of text (a .docx's XML, a PDF's pages, a
/// text file), never more than [`MAX_DECOMPRESSED`].
pub fn document_text_within(
    filename: &str,
    content_type: &str,
    data: &[u8],
    budget: usize,
) -> Option<Result<String, TextError>> {
    let budget = budget.min(MAX_DECOMPRESSED);
    let guarded = |f: fn(&[u8], usize) -> Result<String, TextError>,
                   err: fn(String) -> TextError| {
        std::panic::catch_unwind(|| f(data, budget))
            .unwrap_or_else(|_| Err(err("the reader stopped on malformed content".into())))
    };
    Some(match form_kind(filename, content_type, data)? {
        FormKind::Docx => guarded(docx_text_within, TextError::Docx),
        FormKind::Pdf => guarded(pdf_text_within, TextError::Pdf),
        FormKind::Text => {
            let end = data.len().min(budget);
            Ok(String::from_utf8_lossy(&data[..end]).into_owned())
        }
    })
}

/// The kinds of attachment whose text is read.
enum FormKind {
    Docx,
    Pdf,
    Text,
}

/// An attachment's kind, by its name, type and first bytes; `None` for a kind not read.
fn form_kind(filename: &str, content_type: &str, data: &[u8]) -> Option<FormKind> {
    let name = filename.to_lowercase();
    let ct = content_type.to_lowercase();
    if name.ends_with(".docx") || ct.contains("wordprocessingml") {
        Some(FormKind::Docx)
    } else if name.ends_with(".pdf") || ct == "application/pdf" || data.starts_with(b"%PDF-") {
        Some(FormKind::Pdf)
    } else if ct.starts_with("text/plain") || name.ends_with(".txt") {
        Some(FormKind::Text)
    } else {
        None
    }
}

/// The text of a Word document: each paragraph and each table cell on its own line, tabs and
/// line breaks kept.
pub fn docx_text(data: &[u8]) -> Result<String, TextError> {
    docx_text_within(data, MAX_DECOMPRESSED)
}

/// [`docx_text`] of a document whose XML is at most `budget` bytes (else an error).
fn docx_text_within(data: &[u8], budget: usize) -> Result<String, TextError> {
    use quick_xml::events::Event as X;
    let bad = |e: &dyn fmt::Display| TextError::Docx(e.to_string());
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|e| bad(&e))?;
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|_| TextError::Docx("it has no word/document.xml".into()))?;
    let mut xml = Vec::new();
    entry
        .take(budget as u64 + 1)
        .read_to_end(&mut xml)
        .map_err(|e| bad(&e))?;
    if xml.len() > budget {
        return Err(TextError::Docx(format!("its text is over {budget} bytes")));
    }
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut out = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(&e))? {
            X::Start(e) if e.local_name().as_ref() == "t" => in_text = true,
            X::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" | "tc" => out.push('\n'),
                _ => {}
            },
            X::Empty(e) => match e.local_name().as_ref() {
                "tab" => out.push('\t'),
                "br" | "cr" => out.push('\n'),
                _ => {}
            },
            X::Text(t) if in_text => out.push_str(&t.xml10_content()),
            X::CData(t) if in_text => out.push_str(&t.xml10_content()),
            // quick-xml hands `&amp;` and friends over as their own events.
            X::GeneralRef(r) if in_text => {
                let name = r.xml10_content().into_owned();
                out.push_str(&entity(&name));
            }
            X::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// An XML entity's text: the five predefined ones and character references.
fn entity(name: &str) -> String {
    match name {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else {
                name.strip_prefix('#').and_then(|d| d.parse().ok())
            };
            code.and_then(char::from_u32)
                .map(String::from)
                .unwrap_or_default()
        }
    }
}

/// The text of a PDF, page by page (lopdf: fonts' encodings and ToUnicode maps applied; each
/// text object on its own line).
pub fn pdf_text(data: &[u8]) -> Result<String, TextError> {
    pdf_text_within(data, MAX_DECOMPRESSED)
}

/// [`pdf_text`] of the first [`MAX_PDF_PAGES`] pages, each page's content at most
/// [`MAX_PDF_PAGE`] decompressed, the text at most `budget` bytes (else an error).
fn pdf_text_within(data: &[u8], budget: usize) -> Result<String, TextError> {
    let bad = |e: &dyn fmt::Display| TextError::Pdf(e.to_string());
    let doc = lopdf::Document::load_mem(data).map_err(|e| bad(&e))?;
    if doc.is_encrypted() {
        return Err(TextError::Pdf(
            "it is encrypted (ask the referrer for an unprotected copy)".into(),
        ));
    }
    let pages: Vec<u32> = doc
        .get_pages()
        .keys()
        .copied()
        .take(MAX_PDF_PAGES)
        .collect();
    let mut out = String::new();
    for chunk in doc.extract_text_chunks_with_limit(&pages, MAX_PDF_PAGE.min(budget)) {
        out.push_str(&chunk.map_err(|e| bad(&e))?);
        if out.len() > budget {
            return Err(TextError::Pdf(format!("its text is over {budget} bytes")));
        }
    }
    Ok(out)
}

/// The labels each form uses, folded ([`fold_label`]), and the field each stands for. The
/// forename and surname labels are kept apart ([`NamePart`]) and joined into the child's name.
const LABELS: &[(&str, Target)] = &[
    ("child's name", Target::Field(Field::ChildName)),
    ("childs name", Target::Field(Field::ChildName)),
    ("child name", Target::Field(Field::ChildName)),
    ("name of child", Target::Field(Field::ChildName)),
    ("name of the child", Target::Field(Field::ChildName)),
    (
        "name of child/young person",
        Target::Field(Field::ChildName),
    ),
    ("child/young person's name", Target::Field(Field::ChildName)),
    ("child's full name", Target::Field(Field::ChildName)),
    ("full name of child", Target::Field(Field::ChildName)),
    ("name of subject child", Target::Field(Field::ChildName)),
    ("forename/s", Target::Name(NamePart::Forename)),
    ("forenames", Target::Name(NamePart::Forename)),
    ("forename", Target::Name(NamePart::Forename)),
    ("first name", Target::Name(NamePart::Forename)),
    ("child's first name", Target::Name(NamePart::Forename)),
    ("last name/s", Target::Name(NamePart::Surname)),
    ("last name", Target::Name(NamePart::Surname)),
    ("surname", Target::Name(NamePart::Surname)),
    ("child's surname", Target::Name(NamePart::Surname)),
    ("family name", Target::Name(NamePart::Surname)),
    ("initials", Target::Field(Field::Initials)),
    ("child's initials", Target::Field(Field::Initials)),
    ("initials of child", Target::Field(Field::Initials)),
    ("child initials", Target::Field(Field::Initials)),
    ("date of birth", Target::Field(Field::DateOfBirth)),
    ("child's date of birth", Target::Field(Field::DateOfBirth)),
    ("d.o.b.", Target::Field(Field::DateOfBirth)),
    ("d.o.b", Target::Field(Field::DateOfBirth)),
    ("dob", Target::Field(Field::DateOfBirth)),
    ("date of incident", Target::Field(Field::IncidentDate)),
    ("date of the incident", Target::Field(Field::IncidentDate)),
    (
        "date of incident prompting referral",
        Target::Field(Field::IncidentDate),
    ),
    ("incident date", Target::Field(Field::IncidentDate)),
    (
        "date of serious incident",
        Target::Field(Field::IncidentDate),
    ),
    (
        "date of death or serious harm",
        Target::Field(Field::IncidentDate),
    ),
    (
        "date of death/serious harm",
        Target::Field(Field::IncidentDate),
    ),
    ("date of death", Target::Field(Field::IncidentDate)),
    ("date of serious harm", Target::Field(Field::IncidentDate)),
    ("date incident occurred", Target::Field(Field::IncidentDate)),
    ("type of incident", Target::Field(Field::Kind)),
    ("incident type", Target::Field(Field::Kind)),
    ("nature of incident", Target::Field(Field::Kind)),
    ("death or serious harm", Target::Field(Field::Kind)),
    ("death/serious harm", Target::Field(Field::Kind)),
    ("type of serious incident", Target::Field(Field::Kind)),
    ("agencies involved", Target::Field(Field::Agencies)),
    ("agencies", Target::Field(Field::Agencies)),
    (
        "agencies known to be involved",
        Target::Field(Field::Agencies),
    ),
    ("other agencies involved", Target::Field(Field::Agencies)),
    (
        "agencies involved with the child",
        Target::Field(Field::Agencies),
    ),
    (
        "agencies involved with the child and family",
        Target::Field(Field::Agencies),
    ),
    (
        "agencies involved with the child/family",
        Target::Field(Field::Agencies),
    ),
    (
        "agencies working with the family",
        Target::Field(Field::Agencies),
    ),
    ("borough", Target::Field(Field::Borough)),
    ("borough of residence", Target::Field(Field::Borough)),
    ("home borough", Target::Field(Field::Borough)),
    ("local authority", Target::Field(Field::Borough)),
    ("local authority area", Target::Field(Field::Borough)),
    ("agency", Target::Field(Field::ReferrerAgency)),
    ("referrer's agency", Target::Field(Field::ReferrerAgency)),
    ("referring agency", Target::Field(Field::ReferrerAgency)),
    (
        "referring organisation",
        Target::Field(Field::ReferrerAgency),
    ),
    ("agency/organisation", Target::Field(Field::ReferrerAgency)),
    ("organisation", Target::Field(Field::ReferrerAgency)),
    (
        "agency making referral",
        Target::Field(Field::ReferrerAgency),
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamePart {
    Forename,
    Surname,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Field(Field),
    Name(NamePart),
}

/// A label as compared: lower case, curly quotes straightened, a trailing colon or asterisk and
/// any "(…)" hint removed, spaces collapsed.
fn fold_label(s: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            '\u{2019}' | '\u{2018}' => out.push('\''),
            c => out.extend(c.to_lowercase()),
        }
    }
    let t = out.trim().trim_end_matches([':', '*', ' ', '?']).trim();
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn label_target(s: &str) -> Option<Target> {
    let folded = fold_label(s);
    if folded.is_empty() || folded.len() > 60 {
        return None;
    }
    LABELS.iter().find(|(l, _)| *l == folded).map(|(_, t)| *t)
}

/// One labelled value as read: the label as written, the value, and its target.
struct Labelled {
    target: Target,
    label: String,
    value: String,
}

/// The labelled values of a text: `Label: value` on one line, or a label alone on its line (a
/// table cell, a PDF text object) with the value on the next line that is not itself a label.
fn labelled(text: &str) -> Vec<Labelled> {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\u{a0}'))
        .filter(|l| !l.is_empty())
        .collect();
    let is_label = |l: &str| {
        label_target(l).is_some()
            || l.split_once(':')
                .is_some_and(|(h, _)| label_target(h).is_some())
    };
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (label, inline) = match line.split_once(':') {
            Some((head, rest)) if label_target(head).is_some() => (head, rest.trim()),
            _ if label_target(line).is_some() => (*line, ""),
            _ => continue,
        };
        let Some(target) = label_target(label) else {
            continue;
        };
        let value = if inline.is_empty() {
            match lines.get(i + 1) {
                Some(next) if !is_label(next) => next.to_string(),
                _ => continue,
            }
        } else {
            inline.to_string()
        };
        out.push(Labelled {
            target,
            label: label.trim().to_string(),
            value,
        });
    }
    out
}

/// A date as forms write it: `12/03/2019`, `12.03.2019`, `12-03-2019`, `2019-03-12`,
/// `12 March 2019`, `12th Mar 2019`; a two-digit year (`12/03/19`) is read as 20yy and said to
/// be less sure. Day before month (a UK form).
pub fn parse_date(s: &str) -> Option<(NaiveDate, bool)> {
    let s = s.trim().trim_end_matches('.');
    let first = s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    if let Ok(d) = NaiveDate::parse_from_str(&first, "%Y-%m-%d") {
        return Some((d, true));
    }
    let numeric: String = first
        .split_whitespace()
        .next()
        .unwrap_or("")
        .replace(['.', '-'], "/");
    let parts: Vec<&str> = numeric.split('/').collect();
    if let [d, m, y] = parts.as_slice()
        && let (Ok(d), Ok(m), Ok(y)) = (d.parse::<u32>(), m.parse::<u32>(), y.parse::<i32>())
    {
        let (year, full) = match y {
            0..=99 => (2000 + y, false),
            _ => (y, true),
        };
        return NaiveDate::from_ymd_opt(year, m, d).map(|date| (date, full));
    }
    // "12th March 2019", "1 Mar 2019"
    let words: Vec<&str> = first.split_whitespace().collect();
    if let [d, m, y] = words.as_slice() {
        let d = d.trim_end_matches(|c: char| c.is_alphabetic() || c == ',');
        let m = m.trim_end_matches(',');
        for fmt in ["%d %B %Y", "%d %b %Y"] {
            if let Ok(date) = NaiveDate::parse_from_str(&format!("{d} {m} {y}"), fmt) {
                return Some((date, true));
            }
        }
    }
    None
}

/// The type a value or text names: `death` or `serious harm` (both named, or neither: none).
fn kind_of(s: &str) -> Option<&'static str> {
    let t = s.to_lowercase();
    let death = ["death", "died", "deceased", "fatal"]
        .iter()
        .any(|w| t.contains(w));
    let harm = ["serious harm", "seriously harmed", "injur", "fracture"]
        .iter()
        .any(|w| t.contains(w));
    match (death, harm) {
        (true, false) => Some("death"),
        (false, true) => Some("serious harm"),
        _ => None,
    }
}

/// A tick box's text ("Death ☐  Serious harm ☒", "Death [ ] Serious harm [X]"): the ticked one.
fn ticked_kind(s: &str) -> Option<&'static str> {
    let t = s.to_lowercase();
    let ticked = |word: &str| {
        t.find(word).is_some_and(|i| {
            let after = &t[i + word.len()..];
            let near: String = after.chars().take(5).collect();
            near.contains('☒') || near.contains('✓') || near.contains("[x]") || near.contains('✔')
        })
    };
    match (ticked("death"), ticked("serious harm")) {
        (true, false) => Some("death"),
        (false, true) => Some("serious harm"),
        _ => None,
    }
}

/// Initials of a name: the first letter of each word, capitals ("Jayden Lee Smith" → "JLS").
pub fn initials_of(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c == '-')
        .filter_map(|w| w.chars().find(|c| c.is_alphabetic()))
        .flat_map(char::to_uppercase)
        .collect()
}

/// What could be read from the referral, best first for each field: the attachments in order,
/// then the body. `areas` are the process's areas (a borough is matched against them).
pub fn extract(sources: &[Source<'_>], areas: &[String]) -> Vec<Particular> {
    let mut found: Vec<Particular> = Vec::new();
    let mut forename: Option<(String, String, &str)> = None;
    let mut surname: Option<(String, String, &str)> = None;
    for src in sources {
        let text = src.text.replace("\r\n", "\n").replace('\r', "\n");
        let base = if src.form {
            Confidence::High
        } else {
            Confidence::Medium
        };
        for l in labelled(&text) {
            match l.target {
                Target::Name(part) => {
                    let slot = match part {
                        NamePart::Forename => &mut forename,
                        NamePart::Surname => &mut surname,
                    };
                    if slot.is_none() {
                        *slot = Some((l.value, l.label, src.name.as_str()));
                    }
                }
                Target::Field(field) => {
                    if found.iter().any(|p| p.field == field) {
                        continue;
                    }
                    if let Some((value, confidence)) = reading(field, &l.value, base, areas) {
                        found.push(proposed(field, value, &src.name, &l.label, confidence));
                    }
                }
            }
        }
        if forename.is_some() || surname.is_some() {
            // Forename and surname of one form are one name.
            join_name(&mut found, forename.take(), surname.take(), base);
        }
    }
    infer(&mut found, sources);
    found.sort_by_key(|p| p.field);
    found
}

fn proposed(
    field: Field,
    value: String,
    source: &str,
    label: &str,
    confidence: Confidence,
) -> Particular {
    Particular {
        field,
        value,
        source: source.to_string(),
        label: label.to_string(),
        confidence,
        state: State::Proposed,
        decided_by: None,
    }
}

/// A labelled value read as its field: normalised, and how sure.
fn reading(
    field: Field,
    raw: &str,
    base: Confidence,
    areas: &[String],
) -> Option<(String, Confidence)> {
    let raw = raw.trim();
    if raw.is_empty() || raw.chars().all(|c| !c.is_alphanumeric()) {
        return None;
    }
    Some(match field {
        Field::DateOfBirth | Field::IncidentDate => match parse_date(raw) {
            Some((d, true)) => (d.format("%Y-%m-%d").to_string(), base),
            Some((d, false)) => (d.format("%Y-%m-%d").to_string(), base.lower()),
            None => (raw.to_string(), Confidence::Low),
        },
        Field::Kind => match ticked_kind(raw).or_else(|| kind_of(raw)) {
            Some(k) => (k.to_string(), base),
            None => return None,
        },
        Field::Initials => {
            let letters: String = raw.chars().filter(|c| c.is_alphabetic()).collect();
            (letters.to_uppercase(), base)
        }
        Field::Borough => {
            match text::names_in(&[raw], areas).as_slice() {
                [one] => ((*one).clone(), base),
                [] if areas.is_empty() => (raw.to_string(), base.lower()),
                // None of the areas, or several ("Havering / Redbridge"): as written, for a
                // person to read; never one of them guessed.
                _ => (raw.to_string(), Confidence::Low),
            }
        }
        _ => (raw.to_string(), base),
    })
}

fn join_name(
    found: &mut Vec<Particular>,
    forename: Option<(String, String, &str)>,
    surname: Option<(String, String, &str)>,
    base: Confidence,
) {
    if found.iter().any(|p| p.field == Field::ChildName) {
        return;
    }
    let parts: Vec<&(String, String, &str)> = [&forename, &surname].into_iter().flatten().collect();
    let name = parts
        .iter()
        .map(|(v, _, _)| v.trim())
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        return;
    }
    let label = parts
        .iter()
        .map(|(_, l, _)| l.as_str())
        .collect::<Vec<_>>()
        .join(" + ");
    let confidence = if forename.is_some() && surname.is_some() {
        base
    } else {
        base.lower()
    };
    found.push(proposed(
        Field::ChildName,
        name,
        parts[0].2,
        &label,
        confidence,
    ));
}

/// What follows from what was read: initials from the name; the type from a "date of death"
/// label, else (low) from the body's words.
fn infer(found: &mut Vec<Particular>, sources: &[Source<'_>]) {
    let has = |found: &Vec<Particular>, f: Field| found.iter().any(|p| p.field == f);
    if !has(found, Field::Initials)
        && let Some(name) = found.iter().find(|p| p.field == Field::ChildName)
    {
        let initials = initials_of(&name.value);
        if !initials.is_empty() {
            let p = proposed(
                Field::Initials,
                initials,
                &name.source,
                &format!("{} (initials worked out)", name.label),
                name.confidence.min(Confidence::Medium),
            );
            found.push(p);
        }
    }
    if !has(found, Field::Kind) {
        let by_label = found.iter().find_map(|p| {
            (p.field == Field::IncidentDate)
                .then(|| kind_of(&p.label))
                .flatten()
                .map(|k| (k, p.source.clone(), p.label.clone()))
        });
        if let Some((k, source, label)) = by_label {
            found.push(proposed(
                Field::Kind,
                k.into(),
                &source,
                &label,
                Confidence::Medium,
            ));
        } else if let Some((k, src)) = sources
            .iter()
            .find_map(|s| kind_of(s.text).map(|k| (k, s.name.as_str())))
        {
            found.push(proposed(
                Field::Kind,
                k.into(),
                src,
                "(words in the text)",
                Confidence::Low,
            ));
        }
    }
}

/// What a referral message gives: its attachments' text (forms) in order, then its body. Returns
/// the particulars and how many attachments of a form kind could not be read (an encrypted or
/// damaged file: the business unit reads it by hand).
pub fn from_message(
    msg: &crate::core::intake::Message,
    areas: &[String],
) -> (Vec<Particular>, usize) {
    let mut texts = Vec::new();
    let mut unreadable = 0;
    let mut budget = MAX_FORMS_TEXT;
    for (i, a) in msg.attachments.iter().enumerate() {
        // Past the budget (MAX_FORMS, MAX_FORMS_TEXT) a form is counted as not read, for a
        // person to check, without opening it.
        if texts.len() + unreadable >= MAX_FORMS || budget == 0 {
            unreadable += usize::from(form_kind(&a.filename, &a.content_type, &a.data).is_some());
            continue;
        }
        match document_text_within(&a.filename, &a.content_type, &a.data, budget) {
            Some(Ok(t)) => {
                budget = budget.saturating_sub(t.len());
                texts.push((format!("attachment {} ({})", i + 1, a.filename), t));
            }
            Some(Err(_)) => unreadable += 1,
            None => {}
        }
    }
    let mut sources: Vec<Source<'_>> = texts
        .iter()
        .map(|(name, text)| Source {
            name: name.clone(),
            form: true,
            text,
        })
        .collect();
    sources.push(Source {
        name: "message body".into(),
        form: false,
        text: &msg.body_text,
    });
    (extract(&sources, areas), unreadable)
}

/// The agencies the referral names that the directory knows, as directory names, for the
/// screening request's "Agencies: …" line (a suggestion: only a reply that keeps the line adds
/// them). Empty when none match.
pub fn proposed_agencies(particulars: &[Particular], directory: &[Agency]) -> Vec<String> {
    let Some(p) = particulars.iter().find(|p| p.field == Field::Agencies) else {
        return Vec::new();
    };
    let matched = agencies::resolve(&agencies::split_names(&p.value), directory);
    matched
        .ids
        .iter()
        .filter_map(|id| directory.iter().find(|a| &a.id == id))
        .map(|a| a.name.clone())
        .collect()
}

/// The child as a letter to an agency names them: the `chosen` fields (the process file's
/// `identify_child`) that a person has confirmed or corrected, in the order chosen. `None` when
/// none of them is checked yet.
pub fn for_letter(particulars: &[Particular], chosen: &[Field]) -> Option<serde_json::Value> {
    let mut map = serde_json::Map::new();
    let mut words = Vec::new();
    for f in chosen {
        let Some(p) = particulars
            .iter()
            .find(|p| p.field == *f && p.state.checked())
        else {
            continue;
        };
        let shown = match p.date() {
            Some(d) => crate::core::calendar::long_date(d),
            None => p.value.clone(),
        };
        words.push(format!("{} {shown}", f.words()));
        map.insert(f.as_str().to_string(), serde_json::Value::String(shown));
    }
    if words.is_empty() {
        return None;
    }
    map.insert("line".into(), serde_json::Value::String(words.join(", ")));
    Some(serde_json::Value::Object(map))
}

/// The particulars as `caseclerk particulars` prints them: one block per field, with its value,
/// state, confidence and where it came from; a line saying what to do while any is unchecked.
pub fn listing(particulars: &[Particular]) -> String {
    if particulars.is_empty() {
        return "nothing was read from the referral: give particulars with --set <field>=<value>\n"
            .into();
    }
    let mut out = String::new();
    for p in particulars {
        let state = match (&p.state, &p.decided_by) {
            (State::Proposed, _) => "TO CHECK".to_string(),
            (s, Some(by)) => format!("{} by {by}", s.as_str()),
            (s, None) => s.as_str().to_string(),
        };
        out.push_str(&format!(
            "{:<16} {}\n                 {state}; {} confidence; from {}{}\n",
            p.field.as_str(),
            p.value,
            p.confidence.as_str(),
            p.source,
            if p.label.is_empty() {
                String::new()
            } else {
                format!(", \"{}\"", p.label)
            }
        ));
    }
    if !unchecked(particulars).is_empty() {
        out.push_str(
            "check them against the referral: --confirm <field,...|all> --reason <why>, or --set <field>=<value> --reason <why>\n",
        );
    }
    out
}

/// The fields a person still has to check ("check these particulars"), in field order.
pub fn unchecked(particulars: &[Particular]) -> Vec<Field> {
    particulars
        .iter()
        .filter(|p| !p.state.checked())
        .map(|p| p.field)
        .collect()
}

/// The checked incident date, else the proposed one: what the tracker shows.
pub fn incident_date(particulars: &[Particular]) -> Option<NaiveDate> {
    particulars
        .iter()
        .find(|p| p.field == Field::IncidentDate)
        .and_then(Particular::date)
}

/// A correction's value, checked for its field: dates must be dates (stored `YYYY-MM-DD`), the
/// type `death` or `serious harm`.
pub fn corrected_value(field: Field, value: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("give the {} (it is empty)", field.words()));
    }
    match field {
        Field::DateOfBirth | Field::IncidentDate => parse_date(v)
            .filter(|(_, full)| *full)
            .map(|(d, _)| d.format("%Y-%m-%d").to_string())
            .ok_or_else(|| {
                format!(
                    "`{v}` is not a date like 2019-03-12 or 12/03/2019 (the {})",
                    field.words()
                )
            }),
        Field::Kind => kind_of(v)
            .map(str::to_string)
            .ok_or_else(|| format!("`{v}` is not `death` or `serious harm`")),
        Field::Initials => Ok(v
            .chars()
            .filter(|c| c.is_alphabetic())
            .flat_map(char::to_uppercase)
            .collect()),
        _ => Ok(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(text: &str) -> Vec<Particular> {
        extract(
            &[Source {
                name: "attachment 1 (form.docx)".into(),
                form: true,
                text,
            }],
            &[],
        )
    }

    fn value(ps: &[Particular], f: Field) -> Option<&str> {
        ps.iter().find(|p| p.field == f).map(|p| p.value.as_str())
    }

    #[test]
    fn a_label_alone_on_its_line_takes_the_next_line_as_its_value() {
        let ps = form("Date of birth:\n12/03/2019\nForename/s:\nJayden\nLast name/s:\nSmith\n");
        assert_eq!(value(&ps, Field::DateOfBirth), Some("2019-03-12"));
        assert_eq!(value(&ps, Field::ChildName), Some("Jayden Smith"));
        assert_eq!(value(&ps, Field::Initials), Some("JS"));
    }

    #[test]
    fn an_empty_cell_is_not_filled_with_the_next_label() {
        let ps = form("Date of birth:\nForename/s:\nJayden\n");
        assert_eq!(value(&ps, Field::DateOfBirth), None);
    }

    #[test]
    fn the_referrers_own_name_is_never_taken_for_the_childs() {
        let ps = form("Name:\nDr Ann Other\nAgency:\nTameside Hospital\n");
        assert_eq!(value(&ps, Field::ChildName), None);
        assert_eq!(value(&ps, Field::ReferrerAgency), Some("Tameside Hospital"));
    }

    #[test]
    fn dates_are_read_as_uk_forms_write_them() {
        let d = |s| parse_date(s).map(|(d, full)| (d.format("%Y-%m-%d").to_string(), full));
        assert_eq!(d("03/04/2019"), Some(("2019-04-03".into(), true)));
        assert_eq!(d("3.4.2019"), Some(("2019-04-03".into(), true)));
        assert_eq!(d("2019-04-03"), Some(("2019-04-03".into(), true)));
        assert_eq!(d("3rd April 2019"), Some(("2019-04-03".into(), true)));
        assert_eq!(d("3 Apr 2019"), Some(("2019-04-03".into(), true)));
        assert_eq!(d("03/04/19"), Some(("2019-04-03".into(), false)));
        assert_eq!(d("not known"), None);
    }

    #[test]
    fn a_two_digit_year_or_an_unreadable_date_is_less_sure() {
        let ps = form("Date of birth: 03/04/19\nDate of incident: around Easter\n");
        let c = |f| ps.iter().find(|p| p.field == f).map(|p| p.confidence);
        assert_eq!(c(Field::DateOfBirth), Some(Confidence::Medium));
        assert_eq!(c(Field::IncidentDate), Some(Confidence::Low));
    }

    #[test]
    fn the_type_comes_from_a_ticked_box_a_label_or_at_low_confidence_the_words() {
        let ticked = form("Death or serious harm:\nDeath ☐ Serious harm ☒\n");
        assert_eq!(value(&ticked, Field::Kind), Some("serious harm"));
        let by_label = form("Date of death: 01/02/2026\n");
        assert_eq!(value(&by_label, Field::Kind), Some("death"));
        let words = extract(
            &[Source {
                name: "message body".into(),
                form: false,
                text: "Sadly the baby died in hospital last night.",
            }],
            &[],
        );
        assert_eq!(value(&words, Field::Kind), Some("death"));
        assert_eq!(words[0].confidence, Confidence::Low);
    }

    #[test]
    fn a_borough_is_matched_against_the_process_areas() {
        let areas = vec!["Barking and Dagenham".to_string(), "Havering".to_string()];
        let ps = extract(
            &[Source {
                name: "message body".into(),
                form: false,
                text: "Borough: London Borough of Barking & Dagenham\r\n",
            }],
            &areas,
        );
        assert_eq!(value(&ps, Field::Borough), Some("Barking and Dagenham"));
        assert_eq!(ps[0].confidence, Confidence::Medium);
        let two = extract(
            &[Source {
                name: "message body".into(),
                form: false,
                text: "Borough: Havering / Barking & Dagenham\r\n",
            }],
            &areas,
        );
        assert_eq!(
            value(&two, Field::Borough),
            Some("Havering / Barking & Dagenham"),
            "two boroughs are kept as written, neither chosen"
        );
        assert_eq!(two[0].confidence, Confidence::Low);
    }

    #[test]
    fn a_form_is_read_before_the_body_and_each_field_once() {
        let ps = extract(
            &[
                Source {
                    name: "attachment 1 (form.pdf)".into(),
                    form: true,
                    text: "Date of birth: 12/03/2019",
                },
                Source {
                    name: "message body".into(),
                    form: false,
                    text: "DOB: 13/03/2019",
                },
            ],
            &[],
        );
        let dob: Vec<&Particular> = ps
            .iter()
            .filter(|p| p.field == Field::DateOfBirth)
            .collect();
        assert_eq!(dob.len(), 1);
        assert_eq!(dob[0].value, "2019-03-12");
        assert_eq!(dob[0].source, "attachment 1 (form.pdf)");
        assert_eq!(dob[0].confidence, Confidence::High);
    }

    #[test]
    fn a_particulars_debug_output_never_shows_its_value() {
        let ps = form("Child's name: Jayden Smith");
        assert!(!format!("{ps:?}").contains("Jayden"));
    }

    #[test]
    fn a_letter_names_the_child_only_by_checked_particulars_in_the_chosen_order() {
        let mut ps = form("Child's name: Jayden Smith\nDate of birth: 12/03/2019\n");
        let chosen = [Field::Initials, Field::DateOfBirth];
        assert_eq!(for_letter(&ps, &chosen), None);
        for p in &mut ps {
            p.state = State::Confirmed;
        }
        let child = for_letter(&ps, &chosen).expect("checked");
        assert_eq!(
            child["line"],
            "initials JS, date of birth Tuesday 12 March 2019"
        );
        assert!(!child.to_string().contains("Jayden"));
    }

    #[test]
    fn a_correction_must_have_its_fields_shape() {
        assert_eq!(
            corrected_value(Field::DateOfBirth, "12/03/2019"),
            Ok("2019-03-12".into())
        );
        assert!(corrected_value(Field::DateOfBirth, "12/03/19").is_err());
        assert!(corrected_value(Field::Kind, "neglect").is_err());
        assert_eq!(corrected_value(Field::Initials, "j.s."), Ok("JS".into()));
    }

    #[test]
    fn bytes_that_are_no_document_give_an_error_never_a_panic() {
        assert!(matches!(
            document_text(
                "form.docx",
                "application/octet-stream",
                b"PK\x03\x04garbage"
            ),
            Some(Err(TextError::Docx(_)))
        ));
        assert!(matches!(
            document_text("form.pdf", "application/pdf", b"%PDF-1.4 garbage"),
            Some(Err(TextError::Pdf(_)))
        ));
        assert!(document_text("photo.jpg", "image/jpeg", b"\xff\xd8").is_none());
    }

    /// A PDF of `pages` pages that all show one content stream (a line "Child's name: page").
    fn pdf_sharing_one_stream(pages: usize) -> Vec<u8> {
        use lopdf::content::{Content, Operation};
        use lopdf::{Document, Object, Stream, dictionary};
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Courier",
            "Encoding" => "WinAnsiEncoding",
        });
        let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font } });
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![100.into(), 600.into()]),
                Operation::new("Tj", vec![Object::string_literal("Child's name: page")]),
                Operation::new("ET", vec![]),
            ],
        };
        let stream = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let kids: Vec<Object> = (0..pages)
            .map(|_| {
                doc.add_object(dictionary! {
                    "Type" => "Page", "Parent" => pages_id, "Contents" => stream,
                    "Resources" => resources,
                })
                .into()
            })
            .collect();
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages",
                "Kids" => kids,
                "Count" => pages as i64,
                "Resources" => resources,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn a_pdf_of_thousands_of_pages_sharing_one_stream_is_read_only_to_its_first_pages() {
        let text = pdf_text(&pdf_sharing_one_stream(3000)).unwrap();
        assert_eq!(text.matches("Child's name: page").count(), MAX_PDF_PAGES);
    }

    #[test]
    fn a_referral_with_dozens_of_forms_is_read_only_to_its_first_few_and_the_rest_counted() {
        let mut raw = String::from(
            "From: a@b.test\r\nTo: c@d.test\r\nSubject: Referral\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n\
             --x\r\nContent-Type: text/plain\r\n\r\nPlease see the forms.\r\n",
        );
        for i in 0..MAX_FORMS + 5 {
            raw.push_str(&format!(
                "--x\r\nContent-Type: text/plain; name=\"form{i}.txt\"\r\n\
                 Content-Disposition: attachment; filename=\"form{i}.txt\"\r\n\r\n\
                 Initials: AB\r\n"
            ));
        }
        raw.push_str("--x--\r\n");
        let msg = crate::core::intake::parse(raw.as_bytes());
        assert_eq!(msg.attachments.len(), MAX_FORMS + 5);
        let (found, unread) = from_message(&msg, &[]);
        assert_eq!(
            unread, 5,
            "the forms past the first {MAX_FORMS} are left to a person"
        );
        assert!(found.iter().any(|p| p.field == Field::Initials));
    }
}
