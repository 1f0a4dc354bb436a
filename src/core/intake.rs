//! Raw message bytes → a plain [`Message`].
//!
//! This module owns parsing, and only parsing. It must not do I/O, must not decide what a message
//! *is* (that is [`crate::core::classify`]), and must not log anything: the mail is about children who
//! died or were seriously harmed, so names, addresses, subjects and bodies never leave this module
//! except inside the returned [`Message`]. The hand-written `Debug` implementations below print
//! only ids, counts, sizes and hashes, so a stray `{:?}` cannot leak content into a log.
//!
//! [`parse`] never panics, on any input: `mail-parser` promises the same, but its debug assertions
//! and unchecked arithmetic can still fire on hostile input in debug builds, so the call is also
//! wrapped in [`std::panic::catch_unwind`] (this relies on the default `panic = "unwind"`).
//! Bytes that cannot be read as a message at all give a [`Message`] with `parsed == false` and
//! nothing filled: nothing is dropped, the caller keeps the raw bytes.
//!
//! Parsing hashes nothing: the message's identity is [`dedupe_key`] of its bytes (the mailbox
//! computes it once, as it stores them), and an attachment's SHA-256 is
//! [`Attachment::sha256`], computed when asked. Deciding a message needs neither, and hashing
//! every byte of every message twice more on each reading was a fifth of a first run's time.
//!
//! Facts about `mail-parser` 0.11 this module works around (see `shared/CRATE-NOTES.md`):
//! - ids come back without angle brackets; In-Reply-To/References are a single text for one id
//!   and a list for several — [`Message::in_reply_to`] and [`Message::references`] are always
//!   lists, in header order, without duplicates;
//! - a parameter value folded right after `=` (`filename=\r\n "x.docx"`, also `name=` and
//!   `filename*=`) is lost: the header is re-read from the raw bytes with the fold removed, and
//!   when that still gives nothing the attachment is named from its content type
//!   (`attachment-2.docx`), so no attachment is ever nameless.

use std::fmt;

use mail_parser::{
    Address as MpAddress, HeaderName, HeaderValue, MessageParser, MessagePart, MimeHeaders,
    PartType,
};
use sha2::{Digest, Sha256};

use crate::core::{identity, packing};

/// One mailbox: a display name (decoded) and an address (trimmed, lowercased).
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

/// A real attachment: not an inline text body, not DSN machinery.
#[derive(Clone, serde::Serialize)]
pub struct Attachment {
    /// The decoded file name (RFC 2047/2231), reduced to its last path component; when the
    /// message gives none, a name made from the content type, e.g. `attachment-2.pdf`.
    pub filename: String,
    /// Lowercased `type/subtype`, without parameters; `application/octet-stream` when absent.
    pub content_type: String,
    /// Size of the decoded content in bytes.
    pub size: usize,
    /// `Content-ID` without angle brackets (inline images in HTML mail carry one).
    pub content_id: Option<String>,
    /// `Content-Disposition: inline`, or a part `mail-parser` shows inline (e.g. an image inside
    /// `multipart/related`). Signature logos are inline; real documents usually are not.
    pub inline: bool,
    /// The decoded content. Text attachments come back as UTF-8 (charset converted by
    /// `mail-parser`); a `message/rfc822` attachment is the forwarded message's raw bytes.
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// What a delivery status notification (RFC 3464) says.
#[derive(Clone, serde::Serialize)]
pub struct Dsn {
    /// Message-IDs (no brackets) of the returned message, from the `message/rfc822` or
    /// `text/rfc822-headers` part; empty when the report does not return the original.
    pub original_message_ids: Vec<String>,
    /// Recipients whose delivery failed for good: `Action: failed` (whatever the status: the
    /// server has given up), or, with no `Action`, a 5.x.x `Status`. Each block's
    /// `Final-Recipient` and, when it differs, its `Original-Recipient` (the address as sent,
    /// before a forward or an alias expanded it); lowercased, without the `rfc822;` type.
    pub failed_recipients: Vec<String>,
    /// Recipients the server is still trying: `Action: delayed`, or, with no `Action`, a 4.x.x
    /// `Status` (a warning, not a failure). Listed as [`Dsn::failed_recipients`] are.
    pub delayed_recipients: Vec<String>,
    /// `Status` of the first failed recipient, else of the first delayed one, else of the first
    /// recipient block.
    pub status: Option<String>,
    /// `Action` (lowercased) of the first failed recipient, else of the first delayed one, else
    /// of the first recipient block (`delivered`, `relayed`, `expanded`: nothing failed).
    pub action: Option<String>,
}

/// A parsed message: plain data, no borrowing from the raw bytes.
#[derive(Clone, serde::Serialize)]
pub struct Message {
    /// `false` when the bytes could not be parsed as a message at all: `mail-parser` found
    /// nothing, or no top-level header field with a registered name (From, Date, Message-ID,
    /// Content-Type, Received…) — random bytes "parse" into made-up header names otherwise.
    pub parsed: bool,
    /// The first `Message-ID`, without angle brackets.
    pub message_id: Option<String>,
    /// Ids from every `In-Reply-To` field, without brackets, in order, no duplicates.
    pub in_reply_to: Vec<String>,
    /// Ids from every `References` field, without brackets, in order, no duplicates.
    pub references: Vec<String>,
    /// The first address of the first `From` field.
    pub from: Option<Address>,
    pub sender: Option<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// The topmost `Return-Path` (the one the delivering server added), without brackets;
    /// `Some("")` for `Return-Path: <>`.
    pub return_path: Option<String>,
    /// The first `Subject`, decoded (RFC 2047); `""` when absent.
    pub subject: String,
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    /// Lowercased, unfolded value of the first `Auto-Submitted` field (RFC 3834).
    pub auto_submitted: Option<String>,
    /// Lowercased, unfolded value of the first `Precedence` field.
    pub precedence: Option<String>,
    /// Lowercased, unfolded value of the first `X-Auto-Response-Suppress` field.
    pub x_auto_response_suppress: Option<String>,
    /// One of the vacation-program headers in [`AUTOREPLY_HEADERS`] is present.
    pub autoreply_header: bool,
    /// `X-MS-Exchange-Inbox-Rules-Loop` is present. Kept apart from `autoreply_header` because
    /// Exchange also stamps it on mail an inbox rule *forwarded* — a referral auto-forwarded from
    /// a colleague's mailbox carries it too.
    pub inbox_rules_loop: bool,
    /// `List-Id`, `List-Unsubscribe` or `List-Post` is present (RFC 2369/2919): mailing-list
    /// or newsletter traffic.
    pub list_headers: bool,
    /// Top-level content type, lowercased `type/subtype`, e.g. `multipart/report`;
    /// `text/plain` when absent.
    pub content_type: String,
    /// The `report-type` parameter of a `multipart/report`, lowercased.
    pub report_type: Option<String>,
    /// Every text body part, decoded, joined with a newline (HTML-only mail converted to text).
    pub body_text: String,
    /// Real attachments; DSN machinery parts (delivery-status, disposition-notification,
    /// rfc822-headers, and the returned message of a report) are excluded.
    pub attachments: Vec<Attachment>,
    /// Raw `Authentication-Results` values (unfolded, trimmed), in header order, topmost first.
    pub authentication_results: Vec<String>,
    /// Filled for a delivery status notification: a `multipart/report` with
    /// `report-type=delivery-status`, or any message with a `message/delivery-status` part.
    pub dsn: Option<Dsn>,
    /// Outlook's `Thread-Topic`: the conversation's original subject, without `RE:`/`FW:`.
    pub thread_topic: Option<String>,
    /// The conversation Outlook/Exchange's `Thread-Index` names: the hex of its first 22 bytes
    /// (its header block; every reply appends five bytes). See [`thread_conversation`].
    pub thread_conversation: Option<String>,
    /// Every top-level header field as (lowercase name, unfolded value), in header order: what
    /// the operator's spam-header rules read (see `core::trust`). Never logged.
    pub header_fields: Vec<(String, String)>,
}

/// Vacation-program headers that mark an automatic reply, lowercase. Present with any value.
/// `X-MS-Exchange-Inbox-Rules-Loop` is deliberately not here: see [`Message::inbox_rules_loop`].
pub const AUTOREPLY_HEADERS: &[&str] = &[
    "x-autoreply",
    "x-autorespond",
    "x-auto-reply",
    "x-autoreply-from",
    "x-mail-autoreply",
];

impl Attachment {
    /// Hex SHA-256 of the decoded content (computed on each call).
    pub fn sha256(&self) -> String {
        sha256_hex(&self.data)
    }
}

impl Message {
    fn unparsed() -> Message {
        Message {
            parsed: false,
            message_id: None,
            in_reply_to: Vec::new(),
            references: Vec::new(),
            from: None,
            sender: None,
            reply_to: Vec::new(),
            to: Vec::new(),
            cc: Vec::new(),
            return_path: None,
            subject: String::new(),
            date: None,
            auto_submitted: None,
            precedence: None,
            x_auto_response_suppress: None,
            autoreply_header: false,
            inbox_rules_loop: false,
            list_headers: false,
            content_type: String::new(),
            report_type: None,
            body_text: String::new(),
            attachments: Vec::new(),
            authentication_results: Vec::new(),
            dsn: None,
            thread_topic: None,
            thread_conversation: None,
            header_fields: Vec::new(),
        }
    }
}

/// How often `parse` caught a panic from `mail-parser` (tests report it).
/// A short hash of an id or an address: what logs and actors carry instead of the address.
/// Keyed with the installation's secret once [`keep_hashes_private`] has been called (the engine
/// does at its start): a plain hash of an address can be matched by hashing every address in the
/// directory, which anyone reading the journal may have.
pub fn hash_id(id: &str) -> String {
    hash_with(HASH_KEY.get(), id)
}

/// The key [`hash_id`] uses: one per process, from the installation's secret.
static HASH_KEY: std::sync::OnceLock<ring::hmac::Key> = std::sync::OnceLock::new();

/// Key [`hash_id`] with `secret` (the installation's own, kept in its database), for the rest
/// of the process; a second call changes nothing. The key is derived for this use alone.
pub fn keep_hashes_private(secret: &[u8]) {
    let base = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let derived = ring::hmac::sign(&base, b"caseclerk log hashes");
    let _ = HASH_KEY.set(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        derived.as_ref(),
    ));
}

/// [`hash_id`] with `key`, or a plain SHA-256 without one (a process that never opened the
/// installation's database: tests, the bench).
fn hash_with(key: Option<&ring::hmac::Key>, id: &str) -> String {
    match key {
        Some(k) => hex::encode(&ring::hmac::sign(k, id.as_bytes()).as_ref()[..6]),
        None => hex::encode(&Sha256::digest(id.as_bytes())[..6]),
    }
}

#[cfg(test)]
static CAUGHT_PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Parses raw message bytes. Never panics; see the module documentation.
pub fn parse(raw: &[u8]) -> Message {
    match std::panic::catch_unwind(|| parse_inner(raw, None)) {
        Ok(Some(message)) => message,
        Ok(None) => Message::unparsed(),
        Err(_) => {
            #[cfg(test)]
            CAUGHT_PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Message::unparsed()
        }
    }
}

/// The key the store de-duplicates on ([`identity::key`]): `mid:<id>` when the message has a
/// Message-ID, else `content:<fingerprint>` — read from the header block alone, and the same
/// Message-ID as [`parse`] finds (a test holds the two together); the mailbox computes it for
/// every message it fetches.
pub fn dedupe_key(raw: &[u8]) -> String {
    identity::key(
        header_message_id(raw).as_deref(),
        &identity::fingerprint(raw),
    )
}

/// The first Message-ID of raw bytes (no brackets), read from the header block alone; `None`
/// when there is none or the bytes are no message.
pub fn header_message_id(raw: &[u8]) -> Option<String> {
    std::panic::catch_unwind(|| {
        let parsed = MessageParser::default().parse_headers(raw)?;
        let headers = parsed.headers();
        if !headers
            .iter()
            .any(|h| !matches!(h.name, HeaderName::Other(_)))
        {
            return None;
        }
        first(headers, &HeaderName::MessageId).and_then(|v| ids_of(v).into_iter().next())
    })
    .ok()
    .flatten()
}

/// Parses a message stored packed ([`packing`]) without putting its files' base64 back: the
/// same [`Message`] as [`parse`] of the bytes [`packing::unpack`] gives back, for a small part of
/// the work. mail-parser reads the message with each file's base64 replaced by a stand-in
/// ([`packing::stand_in`]), and each attached file that decodes to exactly its stand-in takes its
/// content from the blob. That is the content [`parse`] would decode: a blob is taken out only
/// where its base64 re-encodes to the stored bytes exactly, and it is checked against its SHA-256
/// on the way in.
///
/// Only files mail-parser hands over as they decode — binary parts, not `text/*` (converted
/// from their charset) and not `message/*` (parsed as messages) — take their content from the
/// blob. Whenever the stand-ins do not account for every blob exactly once (a stand-in inside a
/// text body, a forwarded message or a returned one in a bounce, or anything mail-parser reads
/// differently), the message is put back whole and read by [`parse`]: what comes back never
/// depends on which way was taken. A missing or altered blob is an error, as for `unpack`.
pub fn parse_packed<'a>(
    skeleton: &[u8],
    blob: impl Fn(&[u8; 32]) -> Option<&'a [u8]>,
) -> Result<Message, packing::PackError> {
    read_stood_in(&packing::stand_in(skeleton, &blob)?, skeleton)
}

/// The message [`packing::pack`] has just packed, read as [`parse_packed`] reads it from storage —
/// the same [`Message`], without hashing the files [`packing::pack`] has just named (see
/// [`packing::stand_in_packed`]). For the fetch, which reads each message as it stores it.
pub fn parse_fresh(packed: &packing::Packed) -> Result<Message, packing::PackError> {
    read_stood_in(&packing::stand_in_packed(packed)?, &packed.skeleton)
}

/// The message `skeleton` stands for, read through its stand-ins when they tell everything, else
/// put back from the files the stand-ins were made with (each checked once, there) and read whole.
fn read_stood_in(
    stood_in: &packing::StoodIn<'_>,
    skeleton: &[u8],
) -> Result<Message, packing::PackError> {
    match parse_stood_in(stood_in) {
        Some(message) => Ok(message),
        None => Ok(parse(&stood_in.put_back(skeleton)?)),
    }
}

/// [`parse_packed`]'s quick way: `None` when the stand-ins do not tell everything.
fn parse_stood_in(stood_in: &packing::StoodIn<'_>) -> Option<Message> {
    let resolved = std::panic::catch_unwind(|| {
        let mut found = Found {
            per_file: vec![0; stood_in.files()],
            elsewhere: false,
        };
        let message = parse_inner(&stood_in.bytes, Some((stood_in, &mut found)))?;
        let complete = found.per_file.iter().all(|n| *n == 1)
            && !found.elsewhere
            && !stood_in.appears_in(message.body_text.as_bytes());
        complete.then_some(message)
    });
    resolved.ok().flatten()
}

/// What reading a message with stand-ins found: how many times each file's stand-in was an
/// attached file's whole content, and whether a stand-in showed inside any other attachment.
struct Found {
    per_file: Vec<usize>,
    elsewhere: bool,
}

fn parse_inner(
    raw: &[u8],
    mut stand_ins: Option<(&packing::StoodIn<'_>, &mut Found)>,
) -> Option<Message> {
    let parsed = MessageParser::default().parse(raw)?;
    let headers = parsed.headers();
    if !headers
        .iter()
        .any(|h| !matches!(h.name, HeaderName::Other(_)))
    {
        return None;
    }

    let root_type = parsed.root_part().content_type();
    let content_type = root_type
        .map(mime_type)
        .unwrap_or_else(|| "text/plain".to_string());
    let report_type = root_type
        .and_then(|ct| ct.attribute("report-type"))
        .map(|v| v.trim().to_ascii_lowercase());
    let is_report = content_type == "multipart/report";

    let body_text = (0..parsed.text_body_count())
        .filter_map(|i| parsed.body_text(i))
        .collect::<Vec<_>>()
        .join("\n");

    let mut attachments = Vec::new();
    for part in parsed.attachments() {
        let ctype = part
            .content_type()
            .map(mime_type)
            .unwrap_or_else(|| "application/octet-stream".to_string());
        if is_report_machinery(&ctype) || (is_report && is_returned_message(&ctype)) {
            continue;
        }
        let binary = matches!(part.body, PartType::Binary(_) | PartType::InlineBinary(_))
            && !ctype.starts_with("text/")
            && !ctype.starts_with("message/");
        let contents = part.contents();
        let data = match stand_ins.as_mut() {
            Some((stood_in, found)) => match stood_in.resolve(contents).filter(|_| binary) {
                Some((i, file)) => {
                    found.per_file[i] += 1;
                    file.to_vec()
                }
                None => {
                    found.elsewhere |= stood_in.appears_in(contents);
                    contents.to_vec()
                }
            },
            None => contents.to_vec(),
        };
        let filename = part
            .attachment_name()
            .and_then(clean_filename)
            .or_else(|| recover_folded_name(raw, part))
            .unwrap_or_else(|| fallback_name(attachments.len() + 1, &ctype));
        // Outlook's rich text: the files a `winmail.dat` carries, each as itself.
        if let Some(files) = from_winmail(&ctype, &filename, &data, attachments.len()) {
            attachments.extend(files);
            continue;
        }
        attachments.push(Attachment {
            filename,
            content_type: ctype,
            size: data.len(),
            content_id: part.content_id().and_then(clean_id),
            inline: matches!(part.body, PartType::InlineBinary(_))
                || part.content_disposition().is_some_and(|d| d.is_inline()),
            data,
        });
    }

    let dsn = extract_dsn(&parsed.parts, is_report, report_type.as_deref());

    Some(Message {
        parsed: true,
        message_id: first(headers, &HeaderName::MessageId)
            .and_then(|v| ids_of(v).into_iter().next()),
        in_reply_to: all_ids(headers, &HeaderName::InReplyTo),
        references: all_ids(headers, &HeaderName::References),
        from: first(headers, &HeaderName::From).and_then(|v| addresses_of(v).into_iter().next()),
        sender: first(headers, &HeaderName::Sender)
            .and_then(|v| addresses_of(v).into_iter().next()),
        reply_to: all_addresses(headers, &HeaderName::ReplyTo),
        to: all_addresses(headers, &HeaderName::To),
        cc: all_addresses(headers, &HeaderName::Cc),
        return_path: first(headers, &HeaderName::ReturnPath).map(|v| match v {
            HeaderValue::Empty => String::new(),
            other => ids_of(other).into_iter().next().unwrap_or_default(),
        }),
        subject: first(headers, &HeaderName::Subject)
            .and_then(|v| v.as_text())
            .map(str::to_string)
            .unwrap_or_default(),
        date: first(headers, &HeaderName::Date)
            .and_then(|v| v.as_datetime())
            .filter(|d| d.is_valid())
            .and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0)),
        auto_submitted: raw_value(headers, "auto-submitted"),
        precedence: raw_value(headers, "precedence"),
        x_auto_response_suppress: raw_value(headers, "x-auto-response-suppress"),
        autoreply_header: headers.iter().any(|h| {
            AUTOREPLY_HEADERS
                .iter()
                .any(|n| h.name().eq_ignore_ascii_case(n))
        }),
        inbox_rules_loop: headers.iter().any(|h| {
            h.name()
                .eq_ignore_ascii_case("x-ms-exchange-inbox-rules-loop")
        }),
        list_headers: headers.iter().any(|h| {
            matches!(
                h.name,
                HeaderName::ListId | HeaderName::ListUnsubscribe | HeaderName::ListPost
            )
        }),
        content_type,
        report_type,
        body_text,
        attachments,
        authentication_results: headers
            .iter()
            .filter(|h| h.name == HeaderName::AuthenticationResults)
            .filter_map(|h| text_of(&h.value))
            .map(|v| unfold(&v))
            .collect(),
        dsn,
        thread_topic: raw_text(headers, "thread-topic").map(|t| decode_words(&t)),
        thread_conversation: raw_text(headers, "thread-index")
            .as_deref()
            .and_then(thread_conversation),
        header_fields: headers
            .iter()
            .map(|h| {
                let value = text_of(&h.value).map(|v| unfold(&v)).unwrap_or_default();
                (h.name().to_ascii_lowercase(), value)
            })
            .collect(),
    })
}

/// The conversation a `Thread-Index` value names: the lowercase hex of its first 22 decoded bytes
/// (Outlook's header block: a reserved byte, five bytes of time and a 16-byte GUID; each reply
/// appends five bytes, so every message of a conversation shares these 22). `None` when the
/// value is not base64 or shorter than 22 bytes.
pub fn thread_conversation(thread_index: &str) -> Option<String> {
    use base64::Engine as _;
    let compact: String = thread_index.split_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()?;
    (bytes.len() >= 22).then(|| hex::encode(&bytes[..22]))
}

/// RFC 2047 encoded words decoded, as for Subject (Outlook encodes a non-ASCII Thread-Topic;
/// `mail-parser` leaves unregistered headers as they are): the value is read as a Subject.
fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let probe = format!("Subject: {value}\r\n\r\n");
    MessageParser::default()
        .parse_headers(probe.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| value.to_string())
}

/// First value of a header kept as text, unfolded and trimmed, case kept; `None` when empty.
fn raw_text(headers: &[mail_parser::Header<'_>], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .and_then(|h| text_of(&h.value))
        .map(|v| unfold(&v))
        .filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Header helpers

fn first<'a, 'x>(
    headers: &'a [mail_parser::Header<'x>],
    name: &HeaderName<'_>,
) -> Option<&'a HeaderValue<'x>> {
    headers.iter().find(|h| &h.name == name).map(|h| &h.value)
}

/// First value of a header `mail-parser` keeps raw (its name is unregistered or parsed as raw
/// text): unfolded, trimmed, lowercased.
fn raw_value(headers: &[mail_parser::Header<'_>], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| {
            text_of(&h.value)
                .map(|v| unfold(&v).to_lowercase())
                .unwrap_or_default()
        })
}

fn text_of(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => Some(l.join(", ")),
        _ => None,
    }
}

/// Folded header text → one line: every run of whitespace (incl. CR/LF) becomes one space.
fn unfold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ids_of(value: &HeaderValue<'_>) -> Vec<String> {
    let raw: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.as_ref()).collect(),
        _ => Vec::new(),
    };
    raw.into_iter().filter_map(clean_id).collect()
}

/// An id without brackets and surrounding space; `None` when empty or when it contains
/// whitespace (free text such as `In-Reply-To: your message of Monday` is not an id).
fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    if id.is_empty() || id.chars().any(char::is_whitespace) {
        None
    } else {
        Some(id.to_string())
    }
}

fn all_ids(headers: &[mail_parser::Header<'_>], name: &HeaderName<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in headers.iter().filter(|h| &h.name == name) {
        for id in ids_of(&h.value) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
    }
    out
}

fn addresses_of(value: &HeaderValue<'_>) -> Vec<Address> {
    let Some(address) = value.as_address() else {
        return Vec::new();
    };
    let addrs: Vec<&mail_parser::Addr<'_>> = match address {
        MpAddress::List(list) => list.iter().collect(),
        MpAddress::Group(groups) => groups.iter().flat_map(|g| g.addresses.iter()).collect(),
    };
    addrs
        .into_iter()
        .filter_map(|a| {
            let email = a
                .address
                .as_deref()?
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_lowercase();
            if email.is_empty() {
                return None;
            }
            let name = a
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string);
            Some(Address { name, email })
        })
        .collect()
}

fn all_addresses(headers: &[mail_parser::Header<'_>], name: &HeaderName<'_>) -> Vec<Address> {
    headers
        .iter()
        .filter(|h| &h.name == name)
        .flat_map(|h| addresses_of(&h.value))
        .collect()
}

fn mime_type(ct: &mail_parser::ContentType<'_>) -> String {
    match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype().trim(), sub.trim()).to_ascii_lowercase(),
        None => ct.ctype().trim().to_ascii_lowercase(),
    }
}

// ---------------------------------------------------------------------------------------------
// Attachments

/// Parts that carry a report's machine-readable status, never a document.
fn is_report_machinery(ctype: &str) -> bool {
    matches!(
        ctype,
        "message/delivery-status"
            | "message/global-delivery-status"
            | "message/disposition-notification"
            | "message/global-disposition-notification"
            | "text/rfc822-headers"
            | "message/global-headers"
    )
}

/// The returned original inside a `multipart/report` (elsewhere, an attached message is a real
/// attachment: an agency may forward a referral as an attachment).
fn is_returned_message(ctype: &str) -> bool {
    matches!(ctype, "message/rfc822" | "message/global")
}

/// Keeps the last path component (some clients send `C:\fakepath\form.docx`), drops control
/// characters and surrounding space; `None` when nothing is left.
/// The files of a `winmail.dat` as attachments of their own ([`crate::core::tnef`]); `None`
/// when the part is no `winmail.dat`, or one that does not read as TNEF (kept as it came).
/// `before` attachments come before them (for a name made up for a file that has none).
fn from_winmail(
    content_type: &str,
    filename: &str,
    data: &[u8],
    before: usize,
) -> Option<Vec<Attachment>> {
    if !crate::core::tnef::is_tnef(content_type, filename, data) {
        return None;
    }
    let files = crate::core::tnef::files(data)?;
    Some(
        files
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let name = clean_filename(&f.name)
                    .unwrap_or_else(|| fallback_name(before + i + 1, "application/octet-stream"));
                Attachment {
                    content_type: crate::core::tnef::content_type(&name),
                    filename: name,
                    size: f.data.len(),
                    content_id: None,
                    inline: false,
                    data: f.data,
                }
            })
            .collect(),
    )
}

fn clean_filename(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        None
    } else {
        Some(cleaned.to_string())
    }
}

/// Works around `mail-parser` 0.11 losing a parameter folded right after `=`: re-reads the
/// part's raw `Content-Disposition`/`Content-Type` with folds and the whitespace after `=` (outside
/// quotes) removed, and lets `mail-parser` decode that (RFC 2047/2231 included).
fn recover_folded_name(raw: &[u8], part: &MessagePart<'_>) -> Option<String> {
    for (name, wanted) in [
        (HeaderName::ContentDisposition, "Content-Disposition"),
        (HeaderName::ContentType, "Content-Type"),
    ] {
        // the last occurrence first, as `mail-parser` reads it
        for header in part.headers.iter().rev().filter(|h| h.name == name) {
            let Some(bytes) = raw.get(header.offset_start as usize..header.offset_end as usize)
            else {
                continue;
            };
            let value = join_folded_params(&String::from_utf8_lossy(bytes));
            let synthetic = if wanted == "Content-Type" {
                format!("Content-Type: {value}\r\n\r\n")
            } else {
                format!("Content-Type: application/octet-stream\r\n{wanted}: {value}\r\n\r\n")
            };
            let reparsed = MessageParser::default().parse_headers(synthetic.as_bytes());
            if let Some(found) = reparsed
                .as_ref()
                .and_then(|m| m.root_part().attachment_name())
                .and_then(clean_filename)
            {
                return Some(found);
            }
        }
    }
    None
}

/// Removes line breaks, and whitespace right after `=` outside quoted strings.
fn join_folded_params(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut in_quotes = false;
    let mut after_equals = false;
    let mut escaped = false;
    for c in value.chars() {
        if c == '\r' || c == '\n' {
            continue;
        }
        if after_equals && (c == ' ' || c == '\t') {
            continue;
        }
        after_equals = false;
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == '=' {
            after_equals = true;
        }
        out.push(c);
    }
    out.trim().to_string()
}

/// `attachment-<n>.<ext>`, the extension from the content type (`bin` when unknown).
fn fallback_name(n: usize, ctype: &str) -> String {
    let ext = match ctype {
        "application/pdf" => "pdf",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/vnd.oasis.opendocument.text" => "odt",
        "application/vnd.oasis.opendocument.spreadsheet" => "ods",
        "application/rtf" | "text/rtf" => "rtf",
        "application/zip" | "application/x-zip-compressed" => "zip",
        "application/vnd.ms-outlook" => "msg",
        "application/ms-tnef" => "dat",
        "application/pkcs7-signature" | "application/x-pkcs7-signature" => "p7s",
        "message/rfc822" | "message/global" => "eml",
        "text/plain" => "txt",
        "text/html" => "html",
        "text/csv" => "csv",
        "text/calendar" => "ics",
        "text/vcard" | "text/x-vcard" => "vcf",
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpg",
        "image/gif" => "gif",
        "image/tiff" => "tif",
        "image/bmp" => "bmp",
        _ => "bin",
    };
    format!("attachment-{n}.{ext}")
}

// ---------------------------------------------------------------------------------------------
// Delivery status notifications

fn extract_dsn(
    parts: &[MessagePart<'_>],
    is_report: bool,
    report_type: Option<&str>,
) -> Option<Dsn> {
    let mut found_status_part = false;
    let mut original_message_ids: Vec<String> = Vec::new();
    let mut recipients: Vec<RecipientStatus> = Vec::new();
    let push_id = |id: Option<String>, ids: &mut Vec<String>| {
        if let Some(id) = id
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    };
    for part in parts {
        let ctype = part.content_type().map(mime_type).unwrap_or_default();
        match ctype.as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                found_status_part = true;
                recipients.extend(parse_delivery_status(&String::from_utf8_lossy(
                    part.contents(),
                )));
            }
            "text/rfc822-headers" | "message/global-headers" => {
                push_id(
                    headers_message_id(part.contents()),
                    &mut original_message_ids,
                );
            }
            "message/rfc822" | "message/global" if is_report => {
                let id = match &part.body {
                    PartType::Message(m) => m.message_id().and_then(clean_id),
                    _ => headers_message_id(part.contents()),
                };
                push_id(id, &mut original_message_ids);
            }
            _ => {}
        }
    }
    let is_dsn = found_status_part || (is_report && report_type == Some("delivery-status"));
    if !is_dsn {
        return None;
    }
    let failed: Vec<&RecipientStatus> = recipients.iter().filter(|r| r.failed()).collect();
    let delayed: Vec<&RecipientStatus> = recipients.iter().filter(|r| r.delayed()).collect();
    let headline = failed
        .first()
        .or(delayed.first())
        .copied()
        .or(recipients.first());
    Some(Dsn {
        original_message_ids,
        failed_recipients: addresses(&failed),
        delayed_recipients: addresses(&delayed),
        status: headline.and_then(|r| r.status.clone()),
        action: headline.and_then(|r| r.action.clone()),
    })
}

/// The recipients' final and original addresses, each once, in report order.
fn addresses(blocks: &[&RecipientStatus]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in blocks {
        for addr in [&r.recipient, &r.original].into_iter().flatten() {
            if !out.contains(addr) {
                out.push(addr.clone());
            }
        }
    }
    out
}

fn headers_message_id(bytes: &[u8]) -> Option<String> {
    let mut owned = bytes.to_vec();
    // a headers-only part may lack the blank line that ends a header block
    owned.extend_from_slice(b"\r\n\r\n");
    let parsed = MessageParser::default().parse_headers(&owned)?;
    parsed.message_id().and_then(clean_id)
}

#[derive(Default)]
struct RecipientStatus {
    /// `Final-Recipient`, else `Original-Recipient`.
    recipient: Option<String>,
    /// `Original-Recipient` when it differs from `recipient`.
    original: Option<String>,
    action: Option<String>,
    status: Option<String>,
}

impl RecipientStatus {
    /// A permanent failure: `Action: failed` (the server gave up, even on a 4.x.x status such as
    /// 4.4.7 "expired"), or no `Action` and a 5.x.x status.
    fn failed(&self) -> bool {
        match self.action.as_deref() {
            Some(action) => action == "failed",
            None => self.status.as_deref().is_some_and(|s| s.starts_with('5')),
        }
    }

    /// Still being tried: `Action: delayed`, or no `Action` and a 4.x.x status.
    fn delayed(&self) -> bool {
        match self.action.as_deref() {
            Some(action) => action == "delayed",
            None => self.status.as_deref().is_some_and(|s| s.starts_with('4')),
        }
    }
}

/// Per-recipient blocks of a `message/delivery-status` body (RFC 3464 §2.3). The per-message
/// block (Reporting-MTA…) has no recipient fields and is skipped.
fn parse_delivery_status(text: &str) -> Vec<RecipientStatus> {
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if blocks.last().is_some_and(|b| !b.is_empty()) {
                blocks.push(Vec::new());
            }
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            continue;
        };
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    blocks
        .into_iter()
        .filter_map(|fields| {
            let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
            let original = get("original-recipient").map(address_from_typed);
            let recipient = get("final-recipient")
                .map(address_from_typed)
                .or_else(|| original.clone());
            let action = get("action").map(|a| a.trim().to_ascii_lowercase());
            let status =
                get("status").map(|s| s.split_whitespace().next().unwrap_or_default().to_string());
            if recipient.is_none() && action.is_none() && status.is_none() {
                return None;
            }
            let recipient = recipient.filter(|r| !r.is_empty());
            Some(RecipientStatus {
                original: original.filter(|o| !o.is_empty() && Some(o) != recipient.as_ref()),
                recipient,
                action,
                status,
            })
        })
        .collect()
}

/// `rfc822; User@Example.test` → `user@example.test`.
fn address_from_typed(value: &str) -> String {
    let addr = value.split_once(';').map_or(value, |(_, a)| a);
    addr.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// ---------------------------------------------------------------------------------------------
// Debug: ids, counts, sizes, hashes — never names, addresses, subjects or bodies.

/// Short hash of personal text, to tell two values apart in a log without showing them.
fn fingerprint(text: &str) -> String {
    let full = sha256_hex(text.as_bytes());
    full.get(..12).unwrap_or(&full).to_string()
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("email_sha256", &fingerprint(&self.email))
            .field("has_name", &self.name.is_some())
            .finish()
    }
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("content_type", &self.content_type)
            .field("size", &self.size)
            .field("sha256", &self.sha256())
            .field("inline", &self.inline)
            .field("has_content_id", &self.content_id.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dsn")
            .field("original_message_ids", &self.original_message_ids)
            .field("failed_recipients", &self.failed_recipients.len())
            .field("delayed_recipients", &self.delayed_recipients.len())
            .field("status", &self.status)
            .field("action", &self.action)
            .finish()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("parsed", &self.parsed)
            .field("message_id", &self.message_id)
            .field("in_reply_to", &self.in_reply_to)
            .field("references", &self.references)
            .field("from", &self.from)
            .field("to", &self.to.len())
            .field("cc", &self.cc.len())
            .field("reply_to", &self.reply_to.len())
            .field("subject_len", &self.subject.len())
            .field("body_len", &self.body_text.len())
            .field("content_type", &self.content_type)
            .field("attachments", &self.attachments)
            .field("dsn", &self.dsn)
            .field("authentication_results", &self.authentication_results.len())
            .finish_non_exhaustive()
    }
}

/// `data` in base64 as a mail program writes an attached file: lines of 76 characters, CRLF
/// between them (for tests that build mail).
#[cfg(test)]
pub(crate) fn b64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_keyed_with_the_installation_s_secret_is_not_the_plain_hash_of_the_address() {
        let address = "la.rep@bury.test";
        let plain = hash_with(None, address);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"this installation's secret");
        let keyed = hash_with(Some(&key), address);
        assert_eq!(keyed.len(), 12);
        assert_ne!(
            keyed, plain,
            "anyone can compute the plain one from the directory"
        );
        assert_eq!(
            keyed,
            hash_with(Some(&key), address),
            "the same id, the same hash"
        );
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another installation");
        assert_ne!(keyed, hash_with(Some(&other), address));
    }

    /// A return from Outlook in rich text: its files in a `winmail.dat`.
    fn return_in_winmail(files: &[(&str, &str, &[u8])]) -> Vec<u8> {
        use base64::Engine as _;
        let w = crate::core::tnef::tests::winmail(files);
        let b64 = base64::engine::general_purpose::STANDARD.encode(w);
        format!(
            "From: School <dsl@school.test>\r\nTo: bsp@bury.test\r\nSubject: RE: RR-2026-0003 request\r\n\
             Message-ID: <tnef.1@school.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
             Please find our return attached.\r\n--b\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\n\
             Content-Disposition: attachment; filename=\"winmail.dat\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {b64}\r\n--b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_return_in_a_winmail_dat_gives_its_files_each_as_itself() {
        let raw = return_in_winmail(&[
            (
                "Chronology – school.docx",
                "CHRONO~1.DOC",
                b"PK\x03\x04 the chronology",
            ),
            ("summary.pdf", "SUMMARY.PDF", b"%PDF-1.7 the summary"),
        ]);
        let m = parse(&raw);
        let got: Vec<(&str, &str, &[u8])> = m
            .attachments
            .iter()
            .map(|a| {
                (
                    a.filename.as_str(),
                    a.content_type.as_str(),
                    a.data.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "Chronology – school.docx",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    &b"PK\x03\x04 the chronology"[..]
                ),
                (
                    "summary.pdf",
                    "application/pdf",
                    &b"%PDF-1.7 the summary"[..]
                ),
            ]
        );
        assert!(m.attachments.iter().all(|a| a.size == a.data.len()));
    }

    #[test]
    fn a_program_inside_a_winmail_dat_is_withheld_by_its_own_name() {
        let raw = return_in_winmail(&[
            ("chronology.docx", "CHRONO~1.DOC", b"PK\x03\x04"),
            ("invoice.scr", "INVOICE.SCR", b"MZ\x90\x00"),
        ]);
        let m = parse(&raw);
        let risks: Vec<bool> = m
            .attachments
            .iter()
            .map(|a| crate::core::trust::attachment_risk(a).is_some())
            .collect();
        assert_eq!(risks, [false, true]);
    }

    use std::path::{Path, PathBuf};

    fn fixture_paths() -> Vec<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("fixture dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
    }

    fn fixture(name: &str) -> Message {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mail")
            .join(format!("{name}.eml"));
        parse(&std::fs::read(path).expect("fixture readable"))
    }

    #[test]
    fn outlook_thread_topic_and_the_conversation_of_thread_index_are_exposed() {
        let raw = b"From: a@b.test\r\nSubject: RE: x\r\n\
            Thread-Topic: =?utf-8?Q?Baby_M_=E2=80=93_early_help?=\r\n\
            Thread-Index: AdyyP0nQ8tW9c8ZkQ1mHc0v2kZp9Ag\r\n ABI0VniQ==\r\n\r\nbody\r\n";
        let m = parse(raw);
        assert_eq!(
            m.thread_topic.as_deref(),
            Some("Baby M \u{2013} early help")
        );
        assert_eq!(
            m.thread_conversation.as_deref(),
            Some("01dcb23f49d0f2d5bd73c664435987734bf6919a7d02")
        );
        assert!(
            m.header_fields
                .iter()
                .any(|(n, v)| n == "thread-index" && v.starts_with("AdyyP0nQ"))
        );
        let plain = parse(b"From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n");
        assert_eq!(
            (plain.thread_topic, plain.thread_conversation),
            (None, None)
        );
    }

    #[test]
    fn ids_lose_their_brackets_whether_one_or_many() {
        let m = parse(
            b"From: a@b.test\r\nMessage-ID:  <one@x.test> \r\nIn-Reply-To: <p@x.test>\r\n\
              References: <r1@x.test>\r\n <r2@x.test> <r1@x.test>\r\n\r\nbody",
        );
        assert_eq!(m.message_id.as_deref(), Some("one@x.test"));
        assert_eq!(m.in_reply_to, vec!["p@x.test"]);
        assert_eq!(m.references, vec!["r1@x.test", "r2@x.test"], "deduplicated");
        assert_eq!(m.message_id.as_deref(), Some("one@x.test"));

        let m = parse(b"From: a@b.test\r\nIn-Reply-To: <a@x.test> <b@x.test>\r\n\r\nbody");
        assert_eq!(m.in_reply_to, vec!["a@x.test", "b@x.test"]);
        assert_eq!(m.message_id, None);
    }

    #[test]
    fn return_path_and_addresses() {
        let m = parse(
            b"Return-Path: <>\r\nReturn-Path: <later@x.test>\r\n\
              From: \"Smith, Jo\" <Jo.Smith@X.Test>\r\nTo: undisclosed-recipients:;\r\n\
              Cc: A <a@x.test>, b@Y.test\r\nReply-To: r@x.test\r\n\r\nbody",
        );
        assert_eq!(
            m.return_path.as_deref(),
            Some(""),
            "topmost Return-Path wins"
        );
        let from = m.from.clone().expect("from");
        assert_eq!(from.email, "jo.smith@x.test");
        assert_eq!(from.name.as_deref(), Some("Smith, Jo"));
        assert!(m.to.is_empty(), "an empty group has no addresses");
        let cc: Vec<&str> = m.cc.iter().map(|a| a.email.as_str()).collect();
        assert_eq!(cc, ["a@x.test", "b@y.test"]);
        assert_eq!(m.reply_to.len(), 1);
        assert_eq!(m.subject, "");
        assert_eq!(m.content_type, "text/plain");

        let m = parse(b"Return-Path: <Bounce@X.test>\r\nFrom: a@b.test\r\n\r\nx");
        assert_eq!(m.return_path.as_deref(), Some("Bounce@X.test"));
        let m = parse(b"From: a@b.test\r\n\r\nx");
        assert_eq!(m.return_path, None);
    }

    #[test]
    fn encoded_words_and_rfc2231_names_are_decoded() {
        let m = fixture("16-encoded-subject-rfc2231");
        assert_eq!(m.subject, "Rapid review referral – Zoë (fictional)");
        assert_eq!(
            m.from.as_ref().and_then(|a| a.name.as_deref()),
            Some("Renée Faure")
        );
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].filename, "Referral form – Zoë.docx");
        assert_eq!(m.body_text.trim(), "Please see the attached form. Renée");
    }

    #[test]
    fn a_name_folded_after_equals_is_recovered_else_made_from_the_type() {
        let m = fixture("17-folded-filename");
        let names: Vec<&str> = m.attachments.iter().map(|a| a.filename.as_str()).collect();
        assert_eq!(names, ["SCSI-5 Hillcrest Primary.docx", "attachment-2.pdf"]);

        // each folded form on its own
        for header in [
            "Content-Disposition: attachment; filename=\r\n \"Nil return.pdf\"",
            "Content-Disposition: attachment; filename*=\r\n utf-8''Nil%20return.pdf",
            "Content-Disposition: attachment;\r\n filename*0*=\r\n utf-8''Nil%20;\r\n filename*1=return.pdf",
            "Content-Disposition: attachment\r\nContent-Type: application/pdf; name=\r\n\t\"Nil return.pdf\"",
        ] {
            let header = if header.contains("Content-Type") {
                header.to_string()
            } else {
                format!("Content-Type: application/pdf\r\n{header}")
            };
            let raw = format!(
                "From: a@b.test\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n\
                 {header}\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
            );
            let m = parse(raw.as_bytes());
            assert_eq!(m.attachments.len(), 1, "{header}");
            assert_eq!(m.attachments[0].filename, "Nil return.pdf", "{header}");
        }
    }

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        assert_eq!(
            clean_filename("C:\\fakepath\\form.docx").as_deref(),
            Some("form.docx")
        );
        assert_eq!(
            clean_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(clean_filename("a\u{7}b.pdf ").as_deref(), Some("ab.pdf"));
        assert_eq!(clean_filename(" .. "), None);
        assert_eq!(clean_filename("dir/"), None);
        assert_eq!(
            fallback_name(3, "application/x-unknown"),
            "attachment-3.bin"
        );
    }

    #[test]
    fn html_only_mail_becomes_text() {
        let m = fixture("08-secure-egress");
        assert_eq!(m.content_type, "text/html");
        assert!(
            m.body_text
                .contains("has sent you a secure email using Egress")
        );
        assert!(!m.body_text.contains("<p>"));
    }

    #[test]
    fn quoted_printable_and_charsets_are_decoded() {
        let m = fixture("10-nil-return-references");
        assert!(
            m.body_text
                .starts_with("Nil return \u{2014} no involvement")
        );
    }

    #[test]
    fn attachments_keep_documents_and_drop_report_machinery() {
        let m = fixture("02-referral-docx-pdf");
        assert_eq!(
            m.attachments.len(),
            2,
            "the alternative text/html body is not one"
        );
        let docx = &m.attachments[0];
        assert!(docx.data.starts_with(b"PK\x03\x04"));
        assert_eq!(docx.size, docx.data.len());
        assert_eq!(docx.sha256(), hex::encode(Sha256::digest(&docx.data)));
        assert!(!docx.inline);

        for name in [
            "05-bounce-postfix",
            "06-bounce-exchange-ndr",
            "21-read-receipt",
        ] {
            let m = fixture(name);
            assert!(m.attachments.is_empty(), "{name}: {:?}", m.attachments);
        }

        let logo = &fixture("12-reply-signature-logo").attachments[0];
        assert!(logo.inline);
        assert_eq!(
            logo.content_id.as_deref(),
            Some("image001.png@01DC8600.1A2B3C40")
        );
    }

    #[test]
    fn a_forwarded_message_is_a_real_attachment() {
        let raw = b"From: a@b.test\r\nSubject: FW: referral\r\n\
            Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n\
            Content-Type: message/rfc822\r\n\r\n\
            From: c@d.test\r\nMessage-ID: <inner@d.test>\r\nSubject: Referral\r\n\r\nInner body\r\n\
            --b--\r\n";
        let m = parse(raw);
        assert!(m.dsn.is_none());
        assert_eq!(m.attachments.len(), 1);
        let a = &m.attachments[0];
        assert_eq!(a.content_type, "message/rfc822");
        assert_eq!(a.filename, "attachment-1.eml");
        let inner = String::from_utf8_lossy(&a.data);
        assert!(inner.starts_with("From: c@d.test"), "{inner:?}");
        assert!(inner.contains("Inner body"));
    }

    #[test]
    fn delivery_status_notifications_are_read() {
        let dsn = fixture("05-bounce-postfix").dsn.expect("postfix dsn");
        assert_eq!(
            dsn.original_message_ids,
            ["rr-2026-0007.scsi6-agency-request.1@caseclerk.northdale-scp.test"]
        );
        assert_eq!(dsn.failed_recipients, ["old.address@homes-northdale.test"]);
        assert_eq!(dsn.status.as_deref(), Some("5.1.1"));
        assert_eq!(dsn.action.as_deref(), Some("failed"));

        let m = fixture("06-bounce-exchange-ndr");
        assert_eq!(m.report_type.as_deref(), Some("delivery-status"));
        let dsn = m.dsn.expect("exchange dsn");
        assert_eq!(dsn.failed_recipients, ["d.mills@northdale.police.test"]);
        assert_eq!(dsn.status.as_deref(), Some("5.1.10"));
        assert_eq!(dsn.original_message_ids.len(), 1);

        assert!(fixture("21-read-receipt").dsn.is_none(), "an MDN is no DSN");
        assert!(fixture("23-bounce-mailer-daemon-plain").dsn.is_none());
    }

    #[test]
    fn delay_reports_list_no_failed_recipient() {
        let blocks = parse_delivery_status(
            "Reporting-MTA: dns; mx.test\r\n\r\n\
             Final-Recipient: rfc822; late@x.test\r\nAction: delayed\r\nStatus: 4.4.1\r\n\r\n\
             Final-Recipient: rfc822;gone@x.test\r\nStatus: 5.1.1 (unknown user)\r\n",
        );
        assert_eq!(blocks.len(), 2);
        assert!(!blocks[0].failed());
        assert!(blocks[0].delayed());
        assert!(!blocks[1].delayed());
        assert!(blocks[1].failed(), "no Action, permanent Status");
        assert_eq!(blocks[1].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn authentication_results_in_header_order() {
        let m = fixture("18-two-authentication-results");
        assert_eq!(m.authentication_results.len(), 2);
        assert!(m.authentication_results[0].starts_with("mx.northdale-scp.test;"));
        assert!(!m.authentication_results[0].contains('\n'), "unfolded");
        assert!(m.authentication_results[1].starts_with("gateway.northdale-scp.test;"));
    }

    #[test]
    fn automation_headers_are_read() {
        let m = parse(
            b"From: a@b.test\r\nAuto-Submitted: Auto-Replied; owner-email=x\r\n\
              Precedence: BULK\r\nX-Auto-Response-Suppress: All\r\nX-AutoRespond: yes\r\n\
              X-MS-Exchange-Inbox-Rules-Loop: a@b.test\r\nList-Id: <l.x.test>\r\n\r\nx",
        );
        assert_eq!(
            m.auto_submitted.as_deref(),
            Some("auto-replied; owner-email=x")
        );
        assert_eq!(m.precedence.as_deref(), Some("bulk"));
        assert_eq!(m.x_auto_response_suppress.as_deref(), Some("all"));
        assert!(m.autoreply_header);
        assert!(m.inbox_rules_loop);
        assert!(m.list_headers);
        let plain = parse(b"From: a@b.test\r\n\r\nx");
        assert!(!plain.autoreply_header && !plain.inbox_rules_loop && !plain.list_headers);
    }

    #[test]
    fn dates_become_utc() {
        let m = parse(b"From: a@b.test\r\nDate: Mon, 12 Jan 2026 10:13:51 +0100\r\n\r\nx");
        assert_eq!(
            m.date.map(|d| d.to_rfc3339()).as_deref(),
            Some("2026-01-12T09:13:51+00:00")
        );
        let m = parse(b"From: a@b.test\r\nDate: yesterday-ish\r\n\r\nx");
        assert_eq!(m.date, None);
    }

    #[test]
    fn what_is_not_a_message_is_unparsed_and_keyed_by_its_content() {
        for raw in [
            &b""[..],
            b"hello world\nno headers here\n",
            b"X-Only-Made-Up: header\r\n\r\nbody",
        ] {
            let m = parse(raw);
            assert!(!m.parsed);
            assert_eq!(
                dedupe_key(raw),
                format!("content:{}", identity::fingerprint(raw))
            );
        }
        assert!(!fixture("19-garbage").parsed);
    }

    #[test]
    fn debug_output_shows_no_personal_data() {
        for path in fixture_paths() {
            let m = parse(&std::fs::read(&path).expect("readable"));
            let debug = format!("{m:?}");
            let name = path.display();
            if !m.subject.is_empty() {
                assert!(!debug.contains(&m.subject), "{name}: subject in Debug");
            }
            for line in m.body_text.lines().map(str::trim).filter(|l| l.len() > 6) {
                assert!(!debug.contains(line), "{name}: body line in Debug: {line}");
            }
            let addresses = m
                .from
                .iter()
                .chain(&m.sender)
                .chain(&m.to)
                .chain(&m.cc)
                .chain(&m.reply_to);
            for a in addresses {
                assert!(!debug.contains(&a.email), "{name}: address in Debug");
                if let Some(n) = &a.name {
                    assert!(!debug.contains(n.as_str()), "{name}: display name in Debug");
                }
            }
            for a in &m.attachments {
                assert!(!debug.contains(&a.filename), "{name}: filename in Debug");
            }
            if let Some(dsn) = &m.dsn {
                for r in &dsn.failed_recipients {
                    assert!(!debug.contains(r.as_str()), "{name}: recipient in Debug");
                }
            }
        }
        // and a hand-made one whose words are easy to spot
        let m = parse(
            b"From: Zebedee Quill <zebedee@quill.test>\r\nTo: Y <yolanda@x.test>\r\n\
              Subject: Xylophone matter\r\nMessage-ID: <id-ok@x.test>\r\n\r\nMarmalade body text",
        );
        let debug = format!("{m:?}");
        for secret in ["Zebedee", "zebedee@", "yolanda", "Xylophone", "Marmalade"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("id-ok@x.test"), "ids are shown");
    }

    /// Deterministic pseudo-random numbers (a 64-bit LCG), so failures reproduce.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// `parse` must never panic: every fixture truncated at many points and with bytes flipped
    /// (towards the bytes MIME parsing cares about), plus empty input, random bytes, a 1 MB
    /// header line, deep multipart nesting and deeply nested messages.
    #[test]
    fn parse_survives_hostile_input() {
        let before = CAUGHT_PANICS.load(std::sync::atomic::Ordering::Relaxed);
        let mut rng = Lcg(0x5eed_cafe);
        let specials = b"\r\n:;=\"<>-\t \\*'%@\x00\xff";
        let mut inputs_run = 0usize;
        let mut check = |raw: &[u8]| {
            let m = parse(raw);
            let _ = format!("{m:?}");
            inputs_run += 1;
        };
        for path in fixture_paths() {
            let raw = std::fs::read(&path).expect("readable");
            let stride = (raw.len() / 150).max(1);
            for cut in (0..raw.len()).step_by(stride) {
                check(&raw[..cut]);
            }
            for _ in 0..300 {
                let mut bytes = raw.clone();
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(bytes.len());
                    bytes[at] = if rng.below(2) == 0 {
                        specials[rng.below(specials.len())]
                    } else {
                        rng.next() as u8
                    };
                }
                check(&bytes);
            }
        }
        check(b"");
        check(b"\r\n\r\n");
        let random: Vec<u8> = (0..65_536).map(|_| rng.next() as u8).collect();
        check(&random);
        let mut long = b"From: a@b.test\r\nSubject: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 1 << 20));
        long.extend_from_slice(b"\r\n\r\nbody");
        check(&long);
        let mut long_name = std::iter::repeat_n(b'X', 1 << 20).collect::<Vec<u8>>();
        long_name.extend_from_slice(b": v\r\n\r\nbody");
        check(&long_name);
        let mut nested = String::from("From: a@b.test\r\n");
        for depth in 0..300 {
            nested.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{depth}\"\r\n\r\n--b{depth}\r\n"
            ));
        }
        nested.push_str("Content-Type: text/plain\r\n\r\ndeep\r\n");
        check(nested.as_bytes());
        let mut messages = String::new();
        for _ in 0..200 {
            messages.push_str("From: a@b.test\r\nContent-Type: message/rfc822\r\n\r\n");
        }
        messages.push_str("From: end@b.test\r\n\r\nend");
        check(messages.as_bytes());
        let mut encoded = String::from("From: a@b.test\r\n");
        for _ in 0..50 {
            encoded.push_str(
                "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            );
        }
        check(encoded.as_bytes());

        let caught = CAUGHT_PANICS.load(std::sync::atomic::Ordering::Relaxed) - before;
        eprintln!("parse_survives_hostile_input: {inputs_run} inputs, {caught} caught panic(s)");
    }

    /// `parse_packed` of `raw` packed, and `parse_fresh` of the packing itself (the fetch's way),
    /// each compared field by field and file by file with `parse`; returns whether the stand-ins
    /// told everything (the quick way was taken).
    fn packed_reads_as_whole(raw: &[u8]) -> bool {
        let p = packing::pack(raw).expect("the message has a file to take out");
        let blob = |sha: &[u8; 32]| p.blob(sha);
        let whole = parse(raw);
        let packed = parse_packed(&p.skeleton, blob).expect("every blob is there");
        let fresh = parse_fresh(&p).expect("every blob is there");
        let what = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
        let files = |m: &Message| {
            m.attachments
                .iter()
                .map(|a| a.data.clone())
                .collect::<Vec<_>>()
        };
        for (way, read) in [("parse_packed", &packed), ("parse_fresh", &fresh)] {
            assert_eq!(
                serde_json::to_value(read).unwrap(),
                serde_json::to_value(&whole).unwrap(),
                "{way}: {what}"
            );
            assert_eq!(files(read), files(&whole), "{way}: {what}");
        }
        parse_stood_in(&packing::stand_in(&p.skeleton, blob).unwrap()).is_some()
    }

    fn with_part(part_headers: &str, data: &[u8]) -> Vec<u8> {
        format!(
            "From: a@agency.test\r\nTo: bsp@bury.test\r\nSubject: Referral\r\n\
             Message-ID: <p@agency.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nPlease see attached.\r\n--b\r\n{part_headers}\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64_lines(data)
        )
        .into_bytes()
    }

    #[test]
    fn a_packed_message_reads_exactly_as_its_bytes_whole_for_every_fixture_that_packs() {
        let mut packed = 0;
        for path in fixture_paths() {
            let raw = std::fs::read(&path).unwrap();
            for raw in [
                raw.clone(),
                String::from_utf8_lossy(&raw)
                    .replace("\r\n", "\n")
                    .into_bytes(),
            ] {
                if packing::pack(&raw).is_some() {
                    packed_reads_as_whole(&raw);
                    packed += 1;
                }
            }
        }
        assert!(
            packed >= 4,
            "only {packed} fixtures have a file to take out"
        );
    }

    #[test]
    fn binary_files_are_read_from_their_blobs_and_anything_else_from_the_bytes_whole() {
        let file: Vec<u8> = (0..5_000).map(|k| (k * 7 % 256) as u8).collect();
        let pdf = with_part(
            "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"form.pdf\"",
            &file,
        );
        assert!(packed_reads_as_whole(&pdf), "a PDF is read from its blob");
        let logo = with_part(
            "Content-Type: image/png\r\nContent-Disposition: inline\r\nContent-ID: <logo@x>",
            &file,
        );
        assert!(packed_reads_as_whole(&logo), "an inline image too");
        let mut twice = String::from_utf8(pdf.clone()).unwrap();
        twice.truncate(twice.len() - "--b--\r\n".len());
        twice.push_str(&format!(
            "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"copy.pdf\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64_lines(&file)
        ));
        assert!(
            packed_reads_as_whole(twice.as_bytes()),
            "the same file twice"
        );

        // Text is converted from its charset: read whole (Latin-1 é as 0xE9).
        let latin1: Vec<u8> = b"Caf\xe9 notes. ".repeat(200);
        let text = with_part(
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment; filename=\"notes.txt\"",
            &latin1,
        );
        assert!(!packed_reads_as_whole(&text), "a text file is read whole");
        let html_body = format!(
            "From: a@agency.test\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64_lines("<p>Referral details</p>".repeat(100).as_bytes())
        );
        assert!(
            !packed_reads_as_whole(html_body.as_bytes()),
            "a body is read whole"
        );
        // A forwarded message, and a bounce returning a referral with its file.
        let forwarded = with_part("Content-Type: message/rfc822", &pdf);
        assert!(
            !packed_reads_as_whole(&forwarded),
            "a forwarded message is read whole"
        );
        let inner = String::from_utf8(pdf.clone()).unwrap();
        let bounce = format!(
            "From: MAILER-DAEMON@bury.test\r\nTo: bsp@bury.test\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n--r\r\n\
             Content-Type: text/plain\r\n\r\nIt could not be delivered.\r\n--r\r\n\
             Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; bury.test\r\n\r\n\
             Final-Recipient: rfc822; x@y.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--r\r\n\
             Content-Type: message/rfc822\r\n\r\n{inner}\r\n--r--\r\n"
        );
        assert!(
            !packed_reads_as_whole(bounce.as_bytes()),
            "a returned referral is read whole"
        );
    }

    #[test]
    fn base64_after_a_file_in_the_same_part_is_read_alike_either_way() {
        // A file's base64 ends (a shorter last line, padded or not), and more base64 follows in
        // the same part: whatever mail-parser makes of it, the packed message reads the same.
        for len in [4_998, 4_999, 5_000] {
            let file: Vec<u8> = (0..len).map(|k| (k * 11 % 256) as u8).collect();
            for after in ["QUJD", "QQ==", "QUI=", "=", "QUJDRA"] {
                let part = format!(
                    "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"f.pdf\"\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n{}\r\n{after}\r\n",
                    b64_lines(&file)
                );
                let raw = format!(
                    "From: a@agency.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
                     Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n{part}--b--\r\n"
                );
                assert!(packing::pack(raw.as_bytes()).is_some());
                // mail-parser decodes on past the padding: only "=" leaves the file as it was.
                assert_eq!(packed_reads_as_whole(raw.as_bytes()), after == "=");
            }
        }
    }

    #[test]
    fn a_file_that_looks_like_a_stand_in_is_never_taken_for_one() {
        let file: Vec<u8> = (0..5_000).map(|k| (k * 13 % 256) as u8).collect();
        let pdf = with_part(
            "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"form.pdf\"",
            &file,
        );
        let p = packing::pack(&pdf).unwrap();
        let nonce = hex::encode(&Sha256::digest(&p.skeleton)[..8]);
        // The sender cannot know the nonce of a message that would contain it; a guess at
        // another message's nonce is a small file of its own, and read as one.
        let mut forged = String::from_utf8(pdf).unwrap();
        forged.truncate(forged.len() - "--b--\r\n".len());
        forged.push_str(&format!(
            "--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"x.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64_lines(format!("caseclerk stand-in {nonce} 0").as_bytes())
        ));
        assert!(packed_reads_as_whole(forged.as_bytes()));
        let m = parse(forged.as_bytes());
        assert_eq!(m.attachments.len(), 2);
        assert!(m.attachments[1].data.starts_with(b"caseclerk stand-in "));
    }

    #[test]
    fn a_packed_message_read_from_its_bytes_whole_fetches_and_checks_each_file_once() {
        // A text file is converted from its charset by the parser: the stand-ins cannot tell
        // it, so the message is put back whole and read by `parse`.
        let csv = "child,agency\r\n".repeat(2_000).into_bytes();
        let raw = with_part(
            "Content-Type: text/csv\r\nContent-Disposition: attachment; filename=\"list.csv\"",
            &csv,
        );
        assert!(!packed_reads_as_whole(&raw), "read from the bytes whole");
        let p = packing::pack(&raw).unwrap();
        let fetched = std::cell::Cell::new(0);
        let blob = |sha: &[u8; 32]| {
            fetched.set(fetched.get() + 1);
            p.blob(sha)
        };
        let m = parse_packed(&p.skeleton, blob).unwrap();
        assert_eq!(fetched.get(), 1, "each file fetched (and hashed) once");
        assert_eq!(m.attachments[0].data, csv);
    }

    #[test]
    fn the_cheap_dedupe_key_is_the_full_parse_s_key_for_every_fixture_and_odd_input() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
        let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        inputs.push(Vec::new());
        inputs.push(b"garbage without headers".to_vec());
        inputs.push(b"X-Only: other\r\n\r\nbody".to_vec());
        inputs.push(b"Message-ID: <a b>\r\nSubject: x\r\n\r\n".to_vec());
        for raw in inputs {
            assert_eq!(
                dedupe_key(&raw),
                identity::key(
                    parse(&raw).message_id.as_deref(),
                    &identity::fingerprint(&raw)
                ),
                "{}",
                String::from_utf8_lossy(&raw[..raw.len().min(80)])
            );
        }
    }
}
