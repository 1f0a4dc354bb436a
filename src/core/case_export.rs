//! What `caseclerk export-case` writes: everything held about one case, as files, for a subject
//! access request or a disclosure decision.
//!
//! Owns the layout and content of the export, given what the store holds about the case:
//! - `README.txt`: what the export is, when it was made, what each folder holds, and the
//!   SHA-256 and size of every other file (the manifest);
//! - `case.txt` (the `caseclerk case` report) and `case.json` (the case's row);
//! - `history.csv` and `history.json`: every event, its data and its chain hashes;
//! - `messages/message-<id>.eml`: every message linked to the case exactly as received, and
//!   `messages/message-<id>-attachments/<n>-<name>` with its attachments decoded;
//!   `messages.csv` the messages' particulars;
//! - `letters/letter-<id>-<step>.eml`: every letter exactly as queued and sent (the bytes the
//!   SMTP server was given); `letters.csv` their particulars (recipient, state, when).
//!
//! A message or letter whose bytes were erased under the retention schedule is listed with
//! "erased" and has no `.eml`. File names from mail are reduced to safe characters: nothing in a
//! sender's file name can leave the export folder.
//!
//! Must not: read the database or the file system, or log (the shell gathers and writes).

use crate::core::intake;
use crate::core::records::CaseRow;
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// An event with its chain columns, as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HeldEvent {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub actor: String,
    /// The event's JSON, exactly as stored (the text the hash covers).
    pub data: String,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// A stored message linked to the case.
#[derive(Debug, Clone)]
pub struct HeldMessage {
    pub id: i64,
    pub received: DateTime<Utc>,
    pub state: String,
    pub rule: Option<String>,
    /// The bytes as received (empty when erased).
    pub raw: Vec<u8>,
}

/// A letter decided on the case.
#[derive(Debug, Clone)]
pub struct HeldLetter {
    pub id: i64,
    pub step: String,
    pub recipient: String,
    pub message_id: String,
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The bytes queued and sent (empty when erased).
    pub raw: Vec<u8>,
}

/// Everything the store holds about one case.
#[derive(Debug, Clone)]
pub struct Held {
    pub case: CaseRow,
    /// The `caseclerk case` report at the time of the export.
    pub report: String,
    pub events: Vec<HeldEvent>,
    pub messages: Vec<HeldMessage>,
    pub letters: Vec<HeldLetter>,
    /// The particulars read from the referral and what a person made of them (not erased).
    pub particulars: Vec<crate::core::particulars::Particular>,
    pub made_at: DateTime<Utc>,
}

/// One file of the export: its path inside the export folder (`/`-separated) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub bytes: Vec<u8>,
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(fields: &[&str]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// A file name from a message reduced to letters, digits, `.`, `-` and `_` (others become `_`),
/// never empty, never starting with a dot, at most 100 characters.
pub fn safe_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    while s.starts_with('.') {
        s.replace_range(0..1, "_");
    }
    if s.is_empty() { "file".into() } else { s }
}

/// The export's files, `README.txt` (with the manifest of all the others) last.
pub fn files(h: &Held) -> Vec<File> {
    let mut out = vec![
        File {
            path: "case.txt".into(),
            bytes: h.report.clone().into_bytes(),
        },
        File {
            path: "case.json".into(),
            bytes: case_json(&h.case).into_bytes(),
        },
    ];
    out.extend(history(&h.events));
    out.extend(messages(&h.messages));
    out.extend(letters(&h.letters));
    out.push(File {
        path: "particulars.json".into(),
        bytes: (serde_json::to_string_pretty(&h.particulars).unwrap_or_default() + "\n")
            .into_bytes(),
    });
    let readme = readme(h, &out);
    out.push(File {
        path: "README.txt".into(),
        bytes: readme.into_bytes(),
    });
    out
}

fn case_json(c: &CaseRow) -> String {
    let v = serde_json::json!({
        "reference": c.reference,
        "process": c.process,
        "area": c.area,
        "status": c.status.as_str(),
        "received_at": instant(c.received_at),
        "day0": c.day0.to_string(),
        "referrer": c.referrer,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

fn history(events: &[HeldEvent]) -> Vec<File> {
    let mut csv = csv_line(&[
        "event_id",
        "at",
        "kind",
        "actor",
        "data",
        "prev_hash",
        "hash",
    ]);
    for e in events {
        csv.push_str(&csv_line(&[
            &e.id.to_string(),
            &e.at,
            &e.kind,
            &e.actor,
            &e.data,
            e.prev_hash.as_deref().unwrap_or(""),
            e.hash.as_deref().unwrap_or(""),
        ]));
    }
    let json = serde_json::to_string_pretty(events).unwrap_or_default() + "\n";
    vec![
        File {
            path: "history.csv".into(),
            bytes: csv.into_bytes(),
        },
        File {
            path: "history.json".into(),
            bytes: json.into_bytes(),
        },
    ]
}

fn messages(messages: &[HeldMessage]) -> Vec<File> {
    let mut csv = csv_line(&[
        "message_id",
        "received",
        "state",
        "rule",
        "file",
        "attachments",
    ]);
    let mut out = Vec::new();
    for m in messages {
        let (file, attachments) = if m.raw.is_empty() {
            ("erased".to_string(), 0)
        } else {
            let file = format!("messages/message-{}.eml", m.id);
            out.push(File {
                path: file.clone(),
                bytes: m.raw.clone(),
            });
            let parsed = intake::parse(&m.raw);
            for (n, a) in parsed.attachments.iter().enumerate() {
                out.push(File {
                    path: format!(
                        "messages/message-{}-attachments/{}-{}",
                        m.id,
                        n + 1,
                        safe_name(&a.filename)
                    ),
                    bytes: a.data.clone(),
                });
            }
            (file, parsed.attachments.len())
        };
        csv.push_str(&csv_line(&[
            &m.id.to_string(),
            &instant(m.received),
            &m.state,
            m.rule.as_deref().unwrap_or(""),
            &file,
            &attachments.to_string(),
        ]));
    }
    out.insert(
        0,
        File {
            path: "messages.csv".into(),
            bytes: csv.into_bytes(),
        },
    );
    out
}

fn letters(letters: &[HeldLetter]) -> Vec<File> {
    let mut csv = csv_line(&[
        "letter_id",
        "step",
        "recipient",
        "message_id",
        "state",
        "due",
        "sent",
        "file",
    ]);
    let mut out = Vec::new();
    for l in letters {
        let file = if l.raw.is_empty() {
            "erased".to_string()
        } else {
            let file = format!("letters/letter-{}-{}.eml", l.id, safe_name(&l.step));
            out.push(File {
                path: file.clone(),
                bytes: l.raw.clone(),
            });
            file
        };
        csv.push_str(&csv_line(&[
            &l.id.to_string(),
            &l.step,
            &l.recipient,
            &l.message_id,
            &l.state,
            &instant(l.due_at),
            &l.sent_at.map(instant).unwrap_or_default(),
            &file,
        ]));
    }
    out.insert(
        0,
        File {
            path: "letters.csv".into(),
            bytes: csv.into_bytes(),
        },
    );
    out
}

fn readme(h: &Held, files: &[File]) -> String {
    let mut r = String::new();
    let _ = write!(
        r,
        "Everything caseclerk holds about case {reference}\r\n\
         Made {made} (UTC) by `caseclerk export-case`, for a subject access request or a\r\n\
         disclosure decision. It is a copy: nothing was changed or removed in caseclerk.\r\n\
         It names children and families: keep it as securely as the case file itself.\r\n\r\n\
         case.txt          the case as `caseclerk case` shows it (status, agencies, history, letters)\r\n\
         case.json         the case's particulars as stored\r\n\
         history.csv/json  every event of the case in order, with its chain hashes (`caseclerk\r\n\
         \x20                 verify` checks the chain over all cases)\r\n\
         messages.csv      every message linked to the case; messages/ holds each as received\r\n\
         \x20                 (.eml) and its attachments decoded\r\n\
         letters.csv       every letter decided on the case; letters/ holds each exactly as sent\r\n\
         \x20                 (.eml)\r\n\
         particulars.json  what was read from the referral (child, dates, type, agencies, borough,\r\n\
         \x20                 referrer's agency), where from, how sure, and who checked it\r\n\
         \"erased\" in a list: the bytes were erased under the retention schedule.\r\n\r\n\
         {events} event(s), {messages} message(s), {letters} letter(s).\r\n\r\n\
         Manifest (SHA-256, bytes, file):\r\n",
        reference = h.case.reference,
        made = instant(h.made_at),
        events = h.events.len(),
        messages = h.messages.len(),
        letters = h.letters.len(),
    );
    for f in files {
        let _ = write!(
            r,
            "{}  {:>10}  {}\r\n",
            hex::encode(Sha256::digest(&f.bytes)),
            f.bytes.len(),
            f.path
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_from_mail_cannot_leave_the_folder_or_hide() {
        assert_eq!(safe_name("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(safe_name(".bashrc"), "_bashrc");
        assert_eq!(
            safe_name("Return – Bury CSC.docx"),
            "Return___Bury_CSC.docx"
        );
        assert_eq!(safe_name(""), "file");
        assert!(!safe_name("a/b\\c").contains(['/', '\\']));
    }

    #[test]
    fn a_csv_field_with_a_comma_or_quote_is_quoted() {
        assert_eq!(csv_line(&["a", "b,c", "d\"e"]), "a,\"b,c\",\"d\"\"e\"\r\n");
    }
}
