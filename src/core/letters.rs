//! Letters: a decided letter → rendered subject, text and HTML → the bytes of an email.
//!
//! Owns the handlebars templates under `mail-templates/` (`<name>.subject.hbs`, `<name>.text.hbs`,
//! `<name>.html.hbs`; subdirectories give names like `nelincs/scsi2`), rendering them in strict
//! mode (a missing variable is an error naming the template, line and path, not a blank), and
//! composing the MIME message with lettre: our own Message-ID, threading headers,
//! `Auto-Submitted: auto-generated`, attachments, and an iCalendar part for invites (with the
//! meeting's room and online link; a moved meeting's update under the same UID with the next
//! SEQUENCE, a cancelled one's `METHOD:CANCEL`). The configured [`Paperwork`] is applied here: the
//! protective marking on every letter ([`marked`]) and the signing officer in the template data.
//!
//! Two registries: subjects and text parts are rendered without HTML escaping; HTML parts with it.
//! Both carry the few helpers in `helpers` (`pad`, `upper`, `trim_end`) for plain-text tables.
//!
//! Must not: decide what is due (that is [`crate::core::timeline`]), touch the store or the network, or
//! read the clock (the `Date` header is the instant it is given).

use crate::core::calendar::{Calendar, long_date, long_instant};
use crate::core::case::CaseState;
use crate::core::decisions;
use crate::core::directory::{Contact, Directory};
use crate::core::intake::Message;
use crate::core::particulars::Particular;
use crate::core::process::{Process, StepKind};
use crate::core::records::NewLetter;
use crate::core::timeline::{self, DueLetter};
use crate::core::trust;
use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use serde_json::json;

mod helpers;

/// Letter errors, saying which template and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LetterError {
    #[error("cannot load templates from {dir}: {source}")]
    Load {
        dir: String,
        source: Box<handlebars::TemplateError>,
    },
    #[error("cannot read templates from {dir}: {reason}")]
    Read { dir: String, reason: String },
    #[error(
        "template {name} is missing (create {name}.subject.hbs, {name}.text.hbs and {name}.html.hbs)"
    )]
    Missing { name: String },
    #[error("template {name}: {source}")]
    Render {
        name: String,
        source: Box<handlebars::RenderError>,
    },
    #[error("address `{address}` cannot be used in a letter: {reason}")]
    Address { address: String, reason: String },
    #[error("cannot compose the letter: {0}")]
    Compose(String),
    /// A file named in `[attachments]` could not be read (moved, deleted, or not readable by
    /// caseclerk's user). Its name and path come from the configuration: no personal data.
    #[error(
        "attachment {name} ({path}) cannot be read: {reason} (check the file named in \
         [attachments], and that caseclerk's user can read it)"
    )]
    Attachment {
        name: String,
        path: String,
        reason: String,
    },
}

impl LetterError {
    /// The error without any address in it, for logs.
    pub fn for_log(&self) -> String {
        match self {
            LetterError::Address { reason, .. } => {
                format!("an address cannot be used in a letter: {reason}")
            }
            LetterError::Compose(_) => "the letter cannot be composed".to_string(),
            other => other.to_string(),
        }
    }
}

/// The loaded templates.
#[derive(Debug)]
pub struct Templates {
    plain: Handlebars<'static>,
    html: Handlebars<'static>,
}

/// A rendered letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// What official correspondence carries, from the configuration's `[letters]`: a protective
/// marking, the officer who signs, and where the meeting is held. Every part is optional; with
/// none set letters are as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Paperwork {
    /// A protective marking such as `OFFICIAL-SENSITIVE`: it opens every letter's subject and
    /// stands at the top and the foot of its body ([`marked`]).
    pub marking: Option<String>,
    /// The named officer who signs every case letter, with a phone number.
    pub signature: Option<Signature>,
    /// Where the meeting is held ("Town Hall, Committee Room 2"): the invite's `LOCATION`.
    pub meeting_location: Option<String>,
    /// The online meeting's link (Teams, Zoom): the invite's `URL`, and `LOCATION` when there is
    /// no room.
    pub meeting_link: Option<String>,
}

/// The officer a letter is signed by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signature {
    pub name: String,
    /// "Safeguarding Partnership Business Manager".
    pub title: Option<String>,
    pub phone: String,
}

/// A rendered letter under a protective marking: `MARKING: subject`, and the marking on its own
/// line at the top and the foot of the text and HTML (the Government Security Classifications'
/// convention). No marking: unchanged.
pub fn marked(mut r: Rendered, marking: Option<&str>) -> Rendered {
    let Some(m) = marking.map(str::trim).filter(|m| !m.is_empty()) else {
        return r;
    };
    r.subject = format!("{m}: {}", r.subject);
    r.text = format!("{m}\n\n{}\n\n{m}\n", r.text.trim_end());
    let para = format!(
        "<p style=\"font-family: Arial, sans-serif; font-weight: bold;\">{}</p>",
        handlebars::html_escape(m)
    );
    let start = r
        .html
        .find("<body")
        .and_then(|i| r.html[i..].find('>').map(|j| i + j + 1))
        .unwrap_or(0);
    r.html.insert_str(start, &para);
    let end = r.html.rfind("</body>").unwrap_or(r.html.len());
    r.html.insert_str(end, &para);
    r
}

/// A file attached to a letter.
#[derive(Debug, Clone)]
pub struct OutAttachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Everything needed to build one email.
#[derive(Debug, Clone)]
pub struct Compose {
    pub from_name: String,
    pub from: String,
    pub to_name: String,
    pub to: String,
    /// Further addressees of a shared letter, after `to`: (name, address).
    pub also_to: Vec<(String, String)>,
    pub cc: Vec<(String, String)>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Without angle brackets.
    pub message_id: String,
    /// Without angle brackets.
    pub in_reply_to: Option<String>,
    /// Without angle brackets, oldest first.
    pub references: Vec<String>,
    pub date: DateTime<Utc>,
    pub attachments: Vec<OutAttachment>,
    /// An iCalendar `METHOD:REQUEST` body: placed inside the alternative part (Outlook needs that)
    /// and attached as `invite.ics`.
    pub calendar: Option<String>,
    /// Outlook's `Thread-Index` (a case letter's conversation, [`crate::core::conversation`]);
    /// `Thread-Topic` is then the subject.
    pub thread_index: Option<String>,
}

impl Templates {
    /// Templates from their sources: `(name, text)` pairs, the name without `.hbs`
    /// (`nelincs/scsi2.subject`). `origin` says where they came from, for errors. The shell reads
    /// the folder (`shell::templates`); tests give sources directly.
    pub fn from_sources(
        origin: &str,
        sources: &[(String, String)],
    ) -> Result<Templates, LetterError> {
        let load = |escape: bool| -> Result<Handlebars<'static>, LetterError> {
            let mut h = Handlebars::new();
            h.set_strict_mode(true);
            helpers::register(&mut h);
            if !escape {
                h.register_escape_fn(handlebars::no_escape);
            }
            for (name, text) in sources {
                h.register_template_string(name, text)
                    .map_err(|e| LetterError::Load {
                        dir: origin.to_string(),
                        source: Box::new(e),
                    })?;
            }
            Ok(h)
        };
        Ok(Templates {
            plain: load(false)?,
            html: load(true)?,
        })
    }

    /// Is there a complete template called `name`?
    pub fn has(&self, name: &str) -> bool {
        ["subject", "text", "html"]
            .iter()
            .all(|p| self.plain.has_template(&format!("{name}.{p}")))
    }

    /// Render the three parts of template `name` with `data`.
    pub fn render(&self, name: &str, data: &serde_json::Value) -> Result<Rendered, LetterError> {
        self.render_parts(name, data.clone(), false)
    }

    /// [`Templates::render`] for a large document (the digest): the data, taken, becomes the one
    /// context the three parts are rendered from (Handlebars' own `render` copies it into a new
    /// context for every part: megabytes at 10,000 cases), and the plain text and the HTML are
    /// rendered at the same time on two threads. A letter is too small to be worth a thread.
    pub fn render_owned(
        &self,
        name: &str,
        data: serde_json::Value,
    ) -> Result<Rendered, LetterError> {
        self.render_parts(name, data, true)
    }

    fn render_parts(
        &self,
        name: &str,
        data: serde_json::Value,
        at_once: bool,
    ) -> Result<Rendered, LetterError> {
        if !self.has(name) {
            return Err(LetterError::Missing { name: name.into() });
        }
        let context = handlebars::Context::from(data);
        let part = |reg: &Handlebars<'static>, p: &str| {
            let full = format!("{name}.{p}");
            reg.render_with_context(&full, &context)
                .map_err(|e| LetterError::Render {
                    name: full,
                    source: Box::new(e),
                })
        };
        let subject = part(&self.plain, "subject")?;
        let (text, html) = if at_once {
            std::thread::scope(|s| {
                let html = s.spawn(|| part(&self.html, "html"));
                let text = part(&self.plain, "text");
                (text, html.join())
            })
        } else {
            (part(&self.plain, "text"), Ok(part(&self.html, "html")))
        };
        // A panic while rendering the HTML is the same failure as on this thread: passed on.
        let html = html.unwrap_or_else(|p| std::panic::resume_unwind(p));
        Ok(Rendered {
            // One line, whatever the file's trailing newline or a value's line breaks.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: text?,
            html: html?,
        })
    }
}

/// Make sure a subject carries the case reference (replies are matched by it).
pub fn subject_with_reference(subject: &str, reference: &str) -> String {
    if subject.contains(reference) {
        subject.to_string()
    } else {
        format!("[{reference}] {subject}")
    }
}

fn mailbox(name: &str, address: &str) -> Result<Mailbox, LetterError> {
    let addr = address
        .parse()
        .map_err(|e: lettre::address::AddressError| LetterError::Address {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
    Ok(Mailbox::new(
        if name.trim().is_empty() {
            None
        } else {
            Some(name.to_string())
        },
        addr,
    ))
}

fn bracket(id: &str) -> String {
    format!("<{}>", id.trim_matches(|c| c == '<' || c == '>'))
}

/// Build the email's bytes. Takes the letter, so its attachments are moved into the email, not
/// copied (a referral's files can be tens of megabytes).
pub fn compose(mut c: Compose) -> Result<Vec<u8>, LetterError> {
    let attachments = std::mem::take(&mut c.attachments);
    let mut b = lettre::Message::builder()
        .from(mailbox(&c.from_name, &c.from)?)
        .to(mailbox(&c.to_name, &c.to)?)
        .subject(c.subject.clone())
        .message_id(Some(bracket(&c.message_id)))
        .date(std::time::SystemTime::from(c.date))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .user_agent("caseclerk".into());
    if let Some(index) = &c.thread_index {
        b = b
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Thread-Index"),
                index.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Thread-Topic"),
                c.subject.clone(),
            ));
    }
    for (name, addr) in &c.also_to {
        b = b.to(mailbox(name, addr)?);
    }
    for (name, addr) in &c.cc {
        b = b.cc(mailbox(name, addr)?);
    }
    if let Some(irt) = &c.in_reply_to {
        b = b.in_reply_to(bracket(irt));
    }
    if !c.references.is_empty() {
        // lettre replaces rather than appends: pass every id in one call.
        b = b.references(
            c.references
                .iter()
                .map(|r| bracket(r))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let mut alternative = MultiPart::alternative()
        .singlepart(SinglePart::plain(c.text.clone()))
        .singlepart(SinglePart::html(c.html.clone()));
    if let Some(ics) = &c.calendar {
        let method = if ics.contains("\r\nMETHOD:CANCEL\r\n") {
            "CANCEL"
        } else {
            "REQUEST"
        };
        let ct = ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
            .map_err(|e| LetterError::Compose(e.to_string()))?;
        alternative =
            alternative.singlepart(SinglePart::builder().content_type(ct).body(ics.clone()));
    }
    let message = if attachments.is_empty() && c.calendar.is_none() {
        b.multipart(alternative)
    } else {
        let mut mixed = MultiPart::mixed().multipart(alternative);
        for a in attachments {
            let ct = ContentType::parse(&a.content_type)
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("valid"));
            mixed = mixed.singlepart(Attachment::new(a.filename).body(a.data, ct));
        }
        if let Some(ics) = &c.calendar {
            let ct = ContentType::parse("application/ics").expect("valid content type");
            mixed = mixed.singlepart(Attachment::new("invite.ics".into()).body(ics.clone(), ct));
        }
        b.multipart(mixed)
    }
    .map_err(|e| LetterError::Compose(e.to_string()))?;
    Ok(message.formatted())
}

/// A meeting invitation.
#[derive(Debug, Clone)]
pub struct Invite {
    pub uid: String,
    pub summary: String,
    pub start: DateTime<Utc>,
    pub minutes: u32,
    pub organizer: String,
    pub attendee: String,
    pub stamp: DateTime<Utc>,
    /// Where: a room, or (without one) the online link.
    pub location: Option<String>,
    /// The online meeting's link.
    pub link: Option<String>,
    /// 0 for the first invitation; each change after it (moved, cancelled) one more, under the
    /// same `uid`, so a calendar replaces its copy.
    pub sequence: u32,
    /// `METHOD:CANCEL` (the meeting is called off) rather than `METHOD:REQUEST`.
    pub cancelled: bool,
}

/// Europe/London as an iCalendar VTIMEZONE (GMT/BST rules since 1996).
const LONDON_VTIMEZONE: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/London\r\n\
BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0100\r\nTZNAME:BST\r\nDTSTART:19700329T010000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nTZNAME:GMT\r\nDTSTART:19701025T020000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";

/// Escape a TEXT value (RFC 5545 3.3.11).
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// Fold a content line at 75 octets (RFC 5545 3.1), never inside a UTF-8 character.
fn ics_fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for ch in line.chars() {
        let n = ch.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += n;
    }
    out.push_str("\r\n");
    out
}

/// The iCalendar text of a meeting request, in Europe/London wall-clock time.
pub fn invite_ics(i: &Invite) -> String {
    let london = crate::core::calendar::ics_local;
    let end = i.start + chrono::Duration::minutes(i64::from(i.minutes));
    let (method, status) = if i.cancelled {
        ("CANCEL", "CANCELLED")
    } else {
        ("REQUEST", "CONFIRMED")
    };
    let mut out = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//caseclerk//rapid review//EN\r\nMETHOD:{method}\r\nCALSCALE:GREGORIAN\r\n",
    );
    out.push_str(LONDON_VTIMEZONE);
    let mut lines = vec![
        "BEGIN:VEVENT".to_string(),
        format!("UID:{}", i.uid),
        format!("DTSTAMP:{}", i.stamp.format("%Y%m%dT%H%M%SZ")),
        format!("DTSTART;TZID=Europe/London:{}", london(i.start)),
        format!("DTEND;TZID=Europe/London:{}", london(end)),
        format!("SUMMARY:{}", ics_text(&i.summary)),
    ];
    if let Some(place) = i.location.as_ref().or(i.link.as_ref()) {
        lines.push(format!("LOCATION:{}", ics_text(place)));
    }
    if let Some(link) = &i.link {
        lines.push(format!("URL:{}", link.trim()));
        lines.push(format!(
            "DESCRIPTION:{}",
            ics_text(&format!("Join online: {}", link.trim()))
        ));
    }
    lines.extend([
        format!("ORGANIZER:mailto:{}", i.organizer),
        format!(
            "ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{}",
            i.attendee
        ),
        format!("SEQUENCE:{}", i.sequence),
        format!("STATUS:{status}"),
        "TRANSP:OPAQUE".to_string(),
        "END:VEVENT".to_string(),
    ]);
    for line in lines {
        out.push_str(&ics_fold(&line));
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// The same letter with a new Message-ID and, when given, a new To: for sending it again.
/// Only the header block is touched; the body and attachments stay byte for byte.
pub fn readdress(raw: &[u8], new_id: &str, new_to: Option<&str>) -> Vec<u8> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut out = String::new();
    let mut skipping = false;
    for line in head.split_inclusive("\r\n") {
        let continuation = line.starts_with(' ') || line.starts_with('\t');
        if continuation && skipping {
            continue;
        }
        skipping = false;
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("message-id:") {
            out.push_str(&format!("Message-ID: {}\r\n", bracket(new_id)));
            skipping = true;
        } else if let (true, Some(to)) = (lower.starts_with("to:"), new_to) {
            out.push_str(&format!("To: {to}\r\n"));
            skipping = true;
        } else {
            out.push_str(line);
        }
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&raw[split..]);
    bytes
}

// ---------------------------------------------------------------------------------------------
// From a decided letter to its outbox row: the one path every letter takes.

/// Who letters come from and what they may name: the partnership, this installation, the process,
/// the calendar and the directory.
#[derive(Clone, Copy)]
pub struct Letterhead<'a> {
    /// The partnership's name: the From's display name.
    pub name: &'a str,
    pub short_name: &'a str,
    /// The shared mailbox's address: the From of every letter.
    pub address: &'a str,
    /// The domain of Message-IDs we mint.
    pub id_domain: &'a str,
    /// This installation's id, in every Message-ID we mint.
    pub install_id: &'a str,
    /// The installation's secret: behind vote codes and our Message-IDs ([`message_id`]).
    pub vote_key: &'a [u8],
    pub process: &'a Process,
    pub calendar: &'a Calendar,
    pub directory: &'a Directory,
    /// The marking, the signing officer and the meeting's place (`[letters]`).
    pub paperwork: &'a Paperwork,
    /// The SMTP connection requires TLS (`[smtp] tls` is `implicit` or `starttls`, which must
    /// succeed): only then does a letter to an agency identify the child ([`child`]).
    pub secure_smtp: bool,
}

/// What a letter to an agency says about the child (the template's `child` and
/// `child_withheld`): the particulars the process file's `identify_child` chooses, once a person
/// has checked them, and only over an SMTP connection that requires TLS. Letters of other kinds
/// never identify the child (the referral itself travels to the people who screen it).
fn child(
    h: &Letterhead<'_>,
    due: &DueLetter,
    particulars: &[Particular],
) -> (Option<serde_json::Value>, Option<&'static str>) {
    let to_agency = matches!(due.kind, StepKind::AgencyRequest | StepKind::Chaser);
    if !to_agency || h.process.identify_child.is_empty() {
        return (None, None);
    }
    if !h.secure_smtp {
        return (
            None,
            Some(
                "The child's details are not given in this email because our mail connection does not require encryption: please telephone the business unit for them.",
            ),
        );
    }
    match crate::core::particulars::for_letter(particulars, &h.process.identify_child) {
        Some(c) => (Some(c), None),
        None => (
            None,
            Some(
                "The child's details had not been confirmed when this email was sent: please telephone the business unit for them.",
            ),
        ),
    }
}

/// Our Message-ID for the letter with this outbox key: this installation's id and a keyed hash
/// of the key (HMAC-SHA256 under the installation's secret, the one behind vote codes, with a
/// label of its own; 64 bits of it).
///
/// Keyed, because the key is guessable — a case reference, a step and a recipient — and a
/// Message-ID anyone could compute would let someone who has seen one letter thread a message
/// onto another (an agency's return, a reply to a request) without having received it. The same
/// outbox key always gives the same Message-ID in one installation, as a re-planned letter needs;
/// a letter already queued keeps the Message-ID it was stored with (threading reads the stored
/// one), so the upgrade from unkeyed IDs changes only letters made after it.
pub fn message_id(install_id: &str, id_domain: &str, secret: &[u8], dedupe_key: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(b"caseclerk message id\0");
    ctx.update(dedupe_key.as_bytes());
    let h = hex::encode(&ctx.sign().as_ref()[..8]);
    format!("caseclerk.{install_id}.{h}@{id_domain}")
}

/// The data a case letter's template sees. The one place it is built: the engine renders with
/// it, and the template tests render every template of every process with it.
pub fn data(
    h: &Letterhead<'_>,
    state: &CaseState,
    due: &DueLetter,
    particulars: &[Particular],
) -> serde_json::Value {
    let agency_json = |id: &str| match h.directory.agency(id) {
        Some(a) => json!({
            "id": a.id, "name": a.name, "contact": a.contact,
            "lead": a.lead, "deputy": a.deputy,
        }),
        None => json!({ "id": id, "name": id, "contact": null, "lead": null, "deputy": null }),
    };
    let process = h.process;
    let decision = process
        .step(&due.step)
        .and_then(|s| s.decision.as_deref())
        .or(due.decision.as_deref())
        .and_then(|id| process.decision(id))
        .map(|d| {
            let when = timeline::resolve(
                process,
                h.calendar,
                state,
                &d.due,
                &format!("decision:{}", d.id),
            )
            .ok()
            .flatten();
            json!({
                "id": d.id,
                "name": d.name,
                "due": when.map(|w| long_instant(w.at)),
                "outcomes": d.outcomes,
                "rule": d.quorum.describe(&d.voters),
                "keywords": d.keywords,
                // The answers in plain words, for people: never the outcome ids.
                "answers": d.outcomes.iter().map(|o| json!({
                    "outcome": o.replace('_', " "),
                    "words": d.keywords.get(o).cloned().unwrap_or_default(),
                })).collect::<Vec<_>>(),
                "code": decisions::vote_code(h.vote_key, &state.reference, &d.id, &due.to.email),
            })
        });
    let mut deadlines = serde_json::Map::new();
    if let Ok(list) = timeline::deadlines(process, h.calendar, state) {
        for (d, r) in list {
            if let Some(r) = r {
                deadlines.insert(d.id.clone(), json!(long_instant(r.at)));
            }
        }
    }
    let (child, child_withheld) = child(h, due, particulars);
    let proposed = crate::core::particulars::proposed_agencies(particulars, &h.directory.agencies);
    json!({
        "decision": decision,
        "deadlines": deadlines,
        "child": child,
        "child_withheld": child_withheld,
        // A suggestion for a decision request's `Agencies:` line: only a reply adds agencies.
        "proposed_agencies": (due.kind == StepKind::DecisionRequest && !proposed.is_empty())
            .then(|| proposed.join(", ")),
        "proposed_agencies_note": "The referral names these agencies that are in our directory. If they are the agencies involved, keep this line in your reply (change or delete names as needed); they are added to the case only from a reply:",
        "partnership": {
            "name": h.name,
            "short_name": h.short_name,
            "address": h.address,
        },
        "process": { "id": process.id, "name": process.name },
        "case": {
            "reference": state.reference,
            "received": long_instant(state.received_at),
            "day0": long_date(state.day0),
            "area": state.area,
        },
        "letter": {
            "step": due.step,
            "name": due.step_name,
            "date": long_date(due.due.date),
            "day": due.due.day,
            "explanation": due.due.explanation,
        },
        "recipient": addressed(due),
        "agency": due.agency.as_deref().map(agency_json),
        "return_by": due.return_by.as_ref().map(|r| long_instant(r.at)),
        "missing": due.missing.iter().map(|a| agency_json(a)).collect::<Vec<_>>(),
        "nil_returns": due.nil_returns.iter().map(|a| agency_json(a)).collect::<Vec<_>>(),
        "notes": due.notes,
        "known_agencies": h.directory.agencies.iter().map(|a| json!({"id": a.id, "name": a.name})).collect::<Vec<_>>(),
        "meeting": due.meeting.as_ref().map(|m| json!({
            "when": long_instant(m.at),
            "date": long_date(m.date),
            "day": m.day,
            "minutes": process.meeting.as_ref().map(|x| x.minutes),
            "location": h.paperwork.meeting_location,
            "link": h.paperwork.meeting_link,
            "change": due.meeting_change.as_ref().map(|c| json!({
                "sequence": c.sequence,
                "cancelled": c.cancelled,
                "reason": c.reason,
            })),
        })),
        "paperwork": h.paperwork,
    })
}

/// Who a letter is addressed to, as its greeting names them: the one recipient, or for a shared
/// letter everyone in its To ("Ann Lee, Bo Kay and Cy Dunn").
fn addressed(due: &DueLetter) -> serde_json::Value {
    if due.also_to.is_empty() {
        return json!(due.to);
    }
    let names: Vec<&str> = std::iter::once(&due.to)
        .chain(&due.also_to)
        .map(|r| r.name.as_str())
        .filter(|n| !n.trim().is_empty())
        .collect();
    let name = match names.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    json!({ "name": name, "email": due.to.email, "role": due.to.role, "phone": null })
}

/// What the shell read for a case letter: its attachments, what it left out of them
/// ([`crate::core::trust::withheld_summary`]; the letter then opens with [`withheld_note`]), and
/// the case's particulars ([`crate::core::particulars`]).
pub struct Enclosures<'a> {
    pub attachments: Vec<OutAttachment>,
    pub withheld: Option<&'a str>,
    pub particulars: &'a [Particular],
}

/// A case letter, due and decided, with what the shell read for it ([`Enclosures`]): its outbox
/// row.
pub fn case_letter(
    h: &Letterhead<'_>,
    templates: &Templates,
    case_id: i64,
    state: &CaseState,
    due: &DueLetter,
    enclosures: Enclosures<'_>,
    now: DateTime<Utc>,
) -> Result<NewLetter, LetterError> {
    let Enclosures {
        attachments,
        withheld,
        particulars,
    } = enclosures;
    let reference = &state.reference;
    let dedupe_key = format!("{reference}/{}/{}", due.step, due.key);
    let message_id = message_id(h.install_id, h.id_domain, h.vote_key, &dedupe_key);
    let mut rendered = templates.render(&due.template, &data(h, state, due, particulars))?;
    if let Some(w) = withheld {
        rendered = withheld_note(rendered, w);
    }
    let mut references = state.referral_references.clone();
    if let Some(id) = &state.referral_message_id {
        references.push(id.clone());
    }
    let calendar = (due.kind == StepKind::Invite)
        .then_some(due.meeting.as_ref())
        .flatten()
        .map(|m| {
            invite_ics(&Invite {
                uid: format!("{reference}-meeting@{}", h.id_domain),
                summary: format!("{reference} rapid review meeting"),
                start: m.at,
                minutes: h.process.meeting.as_ref().map_or(120, |x| x.minutes),
                organizer: h.address.to_string(),
                attendee: due.to.email.clone(),
                stamp: now,
                location: h.paperwork.meeting_location.clone(),
                link: h.paperwork.meeting_link.clone(),
                sequence: due.meeting_change.as_ref().map_or(0, |c| c.sequence),
                cancelled: due.meeting_change.as_ref().is_some_and(|c| c.cancelled),
            })
        });
    rendered.subject = subject_with_reference(&rendered.subject, reference);
    let rendered = marked(rendered, h.paperwork.marking.as_deref());
    let mut subject = rendered.subject.clone();
    if let Some(d) = &due.decision {
        let code = decisions::vote_code(h.vote_key, reference, d, &due.to.email);
        subject = format!("{subject} {}", decisions::code_tag(&code));
    }
    let raw = compose(Compose {
        from_name: h.name.to_string(),
        from: h.address.to_string(),
        to_name: due.to.name.clone(),
        to: due.to.email.clone(),
        also_to: due
            .also_to
            .iter()
            .map(|c| (c.name.clone(), c.email.clone()))
            .collect(),
        cc: due
            .cc
            .iter()
            .map(|c| (c.name.clone(), c.email.clone()))
            .collect(),
        subject,
        text: rendered.text,
        html: rendered.html,
        message_id: message_id.clone(),
        in_reply_to: state.referral_message_id.clone(),
        references,
        date: now,
        attachments,
        calendar,
        thread_index: Some(crate::core::conversation::thread_index(
            h.id_domain,
            reference,
        )),
    })?;
    let envelope_to = envelope(
        std::iter::once(&due.to)
            .chain(&due.also_to)
            .chain(&due.cc)
            .map(|r| r.email.clone()),
    );
    Ok(NewLetter {
        dedupe_key,
        case_id: Some(case_id),
        step: due.step.clone(),
        recipient: due.key.clone(),
        replies_as: due.key.clone(),
        message_id,
        due_at: due.due.at,
        envelope_from: h.address.to_string(),
        envelope_to,
        raw,
    })
}

/// The envelope's recipients: each address once, in the order given (To, then Cc).
fn envelope(addresses: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in addresses {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// A letter with no case to a list of people (the first in To, the rest copied): the digest and
/// the tracker report. `recipient` is its outbox recipient key (`role:<role>`).
#[allow(clippy::too_many_arguments)]
pub fn people_letter(
    h: &Letterhead<'_>,
    people: &[Contact],
    step: &str,
    recipient: &str,
    dedupe_key: &str,
    due_at: DateTime<Utc>,
    rendered: Rendered,
    attachments: Vec<OutAttachment>,
    now: DateTime<Utc>,
) -> Result<NewLetter, LetterError> {
    let Some(first) = people.first() else {
        return Err(LetterError::Compose(format!(
            "{step}: nobody to send it to"
        )));
    };
    let message_id = message_id(h.install_id, h.id_domain, h.vote_key, dedupe_key);
    let rendered = marked(rendered, h.paperwork.marking.as_deref());
    let raw = compose(Compose {
        from_name: h.name.to_string(),
        from: h.address.to_string(),
        to_name: first.name.clone(),
        to: first.email.to_lowercase(),
        also_to: Vec::new(),
        cc: people[1..]
            .iter()
            .map(|c| (c.name.clone(), c.email.to_lowercase()))
            .collect(),
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        message_id: message_id.clone(),
        in_reply_to: None,
        references: Vec::new(),
        date: now,
        attachments,
        calendar: None,
        thread_index: None,
    })?;
    let envelope_to = envelope(people.iter().map(|c| c.email.to_lowercase()));
    Ok(NewLetter {
        dedupe_key: dedupe_key.to_string(),
        case_id: None,
        step: step.to_string(),
        recipient: recipient.to_string(),
        replies_as: recipient.to_string(),
        message_id,
        due_at,
        envelope_from: h.address.to_string(),
        envelope_to,
        raw,
    })
}

/// A letter sent again, as it was, under a new key and Message-ID, to its recipients or to `to`.
/// Replies to it count as replies to the original.
pub fn resent_letter(
    (install_id, id_domain, secret): (&str, &str, &[u8]),
    original: &OriginalLetter<'_>,
    reference: &str,
    attempt: usize,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> NewLetter {
    let dedupe_key = format!("{reference}/resend/{}/{attempt}", original.outbox);
    let message_id = message_id(install_id, id_domain, secret, &dedupe_key);
    let envelope_to = match to {
        Some(a) => vec![a.to_lowercase()],
        None => original.envelope_to.to_vec(),
    };
    NewLetter {
        dedupe_key,
        case_id: original.case_id,
        step: original.step.to_string(),
        recipient: format!("resend:{}", envelope_to.join(",")),
        replies_as: original.recipient.to_string(),
        message_id: message_id.clone(),
        due_at: now,
        envelope_from: original.envelope_from.to_string(),
        envelope_to,
        raw: readdress(original.raw, &message_id, to),
    }
}

/// A letter already sent, as [`resent_letter`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct OriginalLetter<'a> {
    pub outbox: i64,
    pub case_id: Option<i64>,
    pub step: &'a str,
    pub recipient: &'a str,
    pub envelope_from: &'a str,
    pub envelope_to: &'a [String],
    pub raw: &'a [u8],
}

/// The referral email as text, for the screening panel. Files that do not travel
/// ([`crate::core::trust::attachment_risk`]) are not named: a line says how many of which kind
/// were withheld.
pub fn referral_text(m: &Message) -> String {
    let who = |a: &crate::core::intake::Address| match &a.name {
        Some(n) => format!("{n} <{}>", a.email),
        None => a.email.clone(),
    };
    let mut out = String::new();
    if let Some(f) = &m.from {
        out.push_str(&format!("From: {}\n", who(f)));
    }
    if let Some(d) = m.date {
        out.push_str(&format!("Date: {}\n", long_instant(d)));
    }
    out.push_str(&format!("Subject: {}\n", m.subject));
    let travelling: Vec<&str> = m
        .attachments
        .iter()
        .filter(|a| trust::attachment_risk(a).is_none())
        .map(|a| a.filename.as_str())
        .collect();
    if !travelling.is_empty() {
        out.push_str(&format!("Attachments: {}\n", travelling.join(", ")));
    }
    if let Some(withheld) = trust::withheld_summary(&m.attachments) {
        out.push_str(&format!(
            "Withheld: {withheld}. caseclerk never forwards programs, scripts, web pages, disk \
             images or macro-enabled documents; the business unit holds the original email.\n"
        ));
    }
    out.push('\n');
    out.push_str(&m.body_text);
    out
}

/// A letter that opens by saying which attached files were left out (by count and kind, never
/// by name): first in the text part, and first inside the HTML part's `<body>`.
pub fn withheld_note(mut r: Rendered, withheld: &str) -> Rendered {
    let note = format!(
        "Not forwarded: {withheld}. caseclerk never forwards programs, scripts, web pages, disk \
         images or macro-enabled documents; the business unit holds the original email."
    );
    r.text = format!("{note}\n\n{}", r.text);
    let para = format!("<p><strong>{}</strong></p>", handlebars::html_escape(&note));
    let at = r
        .html
        .find("<body")
        .and_then(|i| r.html[i..].find('>').map(|j| i + j + 1))
        .unwrap_or(0);
    r.html.insert_str(at, &para);
    r
}

/// What of a received message travels with a letter: its files that may be forwarded
/// (never programs, scripts, web pages, disk images, macro-enabled Office files or SVG with
/// script — [`crate::core::trust::attachment_risk`]), each named `prefix` + its file name.
/// Takes the message, so the files are moved, not copied.
pub fn forwardable(m: Message, prefix: &str) -> Vec<OutAttachment> {
    m.attachments
        .into_iter()
        .filter(|a| trust::attachment_risk(a).is_none())
        .map(|a| OutAttachment {
            filename: format!("{prefix}{}", a.filename),
            content_type: a.content_type,
            data: a.data,
        })
        .collect()
}

/// The content type of a configured attachment, by its file name's extension.
pub fn content_type_for(file_name: &str) -> String {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document".into(),
        "doc" => "application/msword".into(),
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
        "pdf" => "application/pdf".into(),
        "txt" => "text/plain; charset=utf-8".into(),
        _ => "application/octet-stream".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        for (name, body) in files {
            let p = d.0.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "caseclerk-letters-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn subjects_and_text_are_not_escaped_but_html_is() {
        let d = dir_with(&[
            ("ack.subject.hbs", "Referral {{case.reference}} — {{who}}\n"),
            ("ack.text.hbs", "Dear {{who}},\n"),
            ("ack.html.hbs", "<p>Dear {{who}},</p>\n"),
        ]);
        let t = crate::shell::templates::load(&d.0).unwrap();
        let r = t
            .render(
                "ack",
                &serde_json::json!({"case": {"reference": "RR-2026-0001"}, "who": "A & B"}),
            )
            .unwrap();
        assert_eq!(r.subject, "Referral RR-2026-0001 — A & B");
        assert_eq!(r.text, "Dear A & B,\n");
        assert_eq!(r.html, "<p>Dear A &amp; B,</p>\n");
    }

    #[test]
    fn a_missing_variable_names_the_template_instead_of_leaving_a_blank() {
        let d = dir_with(&[
            ("x/y.subject.hbs", "s"),
            ("x/y.text.hbs", "line\n{{case.deadline}}"),
            ("x/y.html.hbs", "h"),
        ]);
        let t = crate::shell::templates::load(&d.0).unwrap();
        assert!(t.has("x/y"));
        let err = t
            .render("x/y", &serde_json::json!({"case": {}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x/y.text"), "{err}");
        assert!(err.contains("case.deadline"), "{err}");
        assert!(matches!(
            t.render("nope", &serde_json::json!({})),
            Err(LetterError::Missing { .. })
        ));
    }

    #[test]
    fn the_case_reference_is_always_in_the_subject() {
        assert_eq!(
            subject_with_reference("Referral received", "RR-2026-0001"),
            "[RR-2026-0001] Referral received"
        );
        assert_eq!(
            subject_with_reference("RR-2026-0001: hi", "RR-2026-0001"),
            "RR-2026-0001: hi"
        );
    }

    fn sample() -> Compose {
        Compose {
            from_name: "Bury Safeguarding Partnership".into(),
            from: "bsp@bury.test".into(),
            to_name: "Dr Referrer".into(),
            to: "referrer@hospital.test".into(),
            also_to: Vec::new(),
            cc: vec![("Business Unit".into(), "bu@bury.test".into())],
            subject: "[RR-2026-0001] Referral received".into(),
            text: "Thank you.\n".into(),
            html: "<p>Thank you.</p>\n".into(),
            message_id: "abc.1@bury.test".into(),
            in_reply_to: Some("orig@hospital.test".into()),
            references: vec!["older@hospital.test".into(), "orig@hospital.test".into()],
            date: DateTime::parse_from_rfc3339("2026-12-22T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            attachments: vec![OutAttachment {
                filename: "Referral form – Ünïcode.docx".into(),
                content_type:
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document".into(),
                data: vec![0x50, 0x4b, 3, 4, 0, 1, 2],
            }],
            calendar: None,
            thread_index: None,
        }
    }

    #[test]
    fn a_composed_letter_carries_our_id_threading_and_auto_submitted() {
        let raw = compose(sample()).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Message-ID: <abc.1@bury.test>"), "{text}");
        assert!(text.contains("In-Reply-To: <orig@hospital.test>"), "{text}");
        assert!(
            text.contains("References: <older@hospital.test> <orig@hospital.test>"),
            "{text}"
        );
        assert!(text.contains("Auto-Submitted: auto-generated"), "{text}");
        assert!(
            text.contains("Date: Tue, 22 Dec 2026 10:00:00 +0000"),
            "{text}"
        );
        use mail_parser::MimeHeaders;
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.message_id(), Some("abc.1@bury.test"));
        assert_eq!(parsed.subject(), Some("[RR-2026-0001] Referral received"));
        let att = parsed.attachments().next().unwrap();
        assert_eq!(att.attachment_name(), Some("Referral form – Ünïcode.docx"));
        assert_eq!(att.contents(), &[0x50, 0x4b, 3, 4, 0, 1, 2]);
    }

    #[test]
    fn a_message_id_is_the_same_for_the_same_letter_and_cannot_be_computed_without_the_secret() {
        let key = "RR-2026-0001/agency-request/agency:police";
        let ours = message_id("cafe", "bury.test", b"secret one", key);
        assert_eq!(ours, message_id("cafe", "bury.test", b"secret one", key));
        assert!(ours.starts_with("caseclerk.cafe.") && ours.ends_with("@bury.test"));
        // Someone who knows the installation's id and how keys are made, but not its secret.
        assert_ne!(ours, message_id("cafe", "bury.test", b"secret two", key));
        assert_ne!(ours, message_id("cafe", "bury.test", b"", key));
        use sha2::{Digest, Sha256};
        let unkeyed = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        assert!(
            !ours.contains(&unkeyed),
            "the key's plain hash is not in it"
        );
        assert_ne!(
            ours,
            message_id(
                "cafe",
                "bury.test",
                b"secret one",
                "RR-2026-0001/agency-request/agency:health"
            )
        );
    }

    #[test]
    fn a_resent_letter_gets_a_new_id_and_address_and_keeps_its_body() {
        let raw = compose(sample()).unwrap();
        let again = readdress(&raw, "new.1@bury.test", Some("other@hospital.test"));
        let text = String::from_utf8_lossy(&again);
        assert!(text.contains("Message-ID: <new.1@bury.test>\r\n"), "{text}");
        assert!(text.contains("To: other@hospital.test\r\n"), "{text}");
        assert!(!text.contains("abc.1@bury.test"));
        let body = |b: &[u8]| b[b.windows(4).position(|w| w == b"\r\n\r\n").unwrap()..].to_vec();
        assert_eq!(body(&raw), body(&again));
        let parsed = mail_parser::MessageParser::default().parse(&again).unwrap();
        assert_eq!(parsed.message_id(), Some("new.1@bury.test"));
    }

    #[test]
    fn an_invite_is_valid_icalendar_in_london_time() {
        use icalendar::Component;
        let start = DateTime::parse_from_rfc3339("2027-01-07T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ics = invite_ics(&Invite {
            uid: "RR-2026-0001-meeting@bury.test".into(),
            summary: "RR-2026-0001 rapid review meeting; agenda, papers".into(),
            start,
            minutes: 90,
            organizer: "bsp@bury.test".into(),
            attendee: "chair@bury.test".into(),
            stamp: start,
            location: None,
            link: None,
            sequence: 0,
            cancelled: false,
        });
        assert!(ics.lines().all(|l| l.len() <= 76), "{ics}");
        assert!(ics.contains("METHOD:REQUEST"));
        assert!(
            ics.contains("DTSTART;TZID=Europe/London:20270107T140000"),
            "{ics}"
        );
        let parsed: icalendar::Calendar = ics.parse().expect("parses as iCalendar");
        let event = parsed
            .components
            .iter()
            .find_map(|c| c.as_event())
            .expect("one event");
        assert_eq!(
            event.get_summary(),
            Some("RR-2026-0001 rapid review meeting; agenda, papers")
        );
        assert_eq!(event.get_uid(), Some("RR-2026-0001-meeting@bury.test"));
        // Summer time: 14:00 in London is 13:00 UTC.
        let summer = invite_ics(&Invite {
            start: DateTime::parse_from_rfc3339("2027-07-07T13:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            ..Invite {
                uid: "u".into(),
                summary: "s".into(),
                start,
                minutes: 60,
                organizer: "o@x.test".into(),
                attendee: "a@x.test".into(),
                stamp: start,
                location: None,
                link: None,
                sequence: 0,
                cancelled: false,
            }
        });
        assert!(
            summer.contains("DTSTART;TZID=Europe/London:20270707T140000"),
            "{summer}"
        );
        assert!(
            summer.contains("DTEND;TZID=Europe/London:20270707T150000"),
            "{summer}"
        );
    }

    fn meeting(sequence: u32, cancelled: bool) -> Invite {
        let start = DateTime::parse_from_rfc3339("2027-01-07T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Invite {
            uid: "RR-2026-0001-meeting@bury.test".into(),
            summary: "RR-2026-0001 rapid review meeting".into(),
            start,
            minutes: 90,
            organizer: "bsp@bury.test".into(),
            attendee: "chair@bury.test".into(),
            stamp: start,
            location: Some("Town Hall, Committee Room 2".into()),
            link: Some("https://teams.example.test/l/meetup-join/19%3ameeting_abc".into()),
            sequence,
            cancelled,
        }
    }

    #[test]
    fn an_invite_names_the_room_and_the_online_link() {
        use icalendar::{Component, EventLike};
        let ics = invite_ics(&meeting(0, false));
        assert!(ics.lines().all(|l| l.len() <= 76), "{ics}");
        let parsed: icalendar::Calendar = ics.parse().expect("parses as iCalendar");
        let event = parsed.components.iter().find_map(|c| c.as_event()).unwrap();
        assert_eq!(event.get_location(), Some("Town Hall, Committee Room 2"));
        assert_eq!(
            event.get_url(),
            Some("https://teams.example.test/l/meetup-join/19%3ameeting_abc")
        );
        // Online only: the link is where.
        let online = invite_ics(&Invite {
            location: None,
            ..meeting(0, false)
        });
        assert!(
            online.contains("LOCATION:https://teams.example.test/l/meetup-join/19%3ameeting_abc"),
            "{online}"
        );
    }

    #[test]
    fn a_moved_meeting_is_the_same_uid_with_the_next_sequence_and_a_cancelled_one_is_method_cancel()
    {
        let moved = invite_ics(&meeting(1, false));
        assert!(moved.contains("\r\nMETHOD:REQUEST\r\n"), "{moved}");
        assert!(moved.contains("\r\nUID:RR-2026-0001-meeting@bury.test\r\n"));
        assert!(moved.contains("\r\nSEQUENCE:1\r\n"), "{moved}");
        assert!(moved.contains("\r\nSTATUS:CONFIRMED\r\n"));
        let cancelled = invite_ics(&meeting(2, true));
        assert!(cancelled.contains("\r\nMETHOD:CANCEL\r\n"), "{cancelled}");
        assert!(cancelled.contains("\r\nUID:RR-2026-0001-meeting@bury.test\r\n"));
        assert!(cancelled.contains("\r\nSEQUENCE:2\r\n"));
        assert!(cancelled.contains("\r\nSTATUS:CANCELLED\r\n"));
        let _: icalendar::Calendar = cancelled.parse().expect("parses as iCalendar");
        let mut c = sample();
        c.calendar = Some(cancelled);
        let text = String::from_utf8(compose(c).unwrap()).unwrap();
        assert!(text.contains("method=CANCEL"), "{text}");
    }

    #[test]
    fn a_marked_letter_carries_its_marking_in_the_subject_and_at_the_top_and_foot_of_its_body() {
        let r = Rendered {
            subject: "[RR-2026-0001] Rapid review".into(),
            text: "Dear Ann,\n\nText.\n".into(),
            html: "<html><body><p>Dear Ann,</p></body></html>".into(),
        };
        let m = marked(r.clone(), Some("OFFICIAL-SENSITIVE"));
        assert_eq!(m.subject, "OFFICIAL-SENSITIVE: [RR-2026-0001] Rapid review");
        assert_eq!(
            m.text,
            "OFFICIAL-SENSITIVE\n\nDear Ann,\n\nText.\n\nOFFICIAL-SENSITIVE\n"
        );
        assert_eq!(
            m.html.matches("OFFICIAL-SENSITIVE").count(),
            2,
            "{}",
            m.html
        );
        assert!(m.html.starts_with("<html><body><p style"), "{}", m.html);
        assert!(m.html.ends_with("</p></body></html>"), "{}", m.html);
        assert_eq!(marked(r.clone(), None), r);
        assert_eq!(marked(r.clone(), Some("  ")), r);
    }

    #[test]
    fn an_invite_puts_the_calendar_inside_the_alternative_part_and_attaches_it() {
        let mut c = sample();
        c.attachments.clear();
        c.calendar = Some("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n".into());
        let raw = compose(c).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let alt = text.find("multipart/alternative").unwrap();
        let cal = text.find("text/calendar").unwrap();
        let ics = text.find("invite.ics").unwrap();
        assert!(alt < cal && cal < ics, "{text}");
        assert!(text.contains("method=REQUEST"), "{text}");
    }
}
