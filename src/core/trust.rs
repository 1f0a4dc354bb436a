//! Who may open a case, and which attached files may travel: the receiving server's verdict
//! (Authentication-Results, spam headers), trusted sender domains, and unsafe attachments.
//!
//! The rules, as the business unit sees them (README "Who may open a case"):
//! - **Marked as spam** by the receiving server (an operator-named flag or score header, see
//!   [`SpamRule`]) → the referral opens no case and nothing is sent; it is listed for a person.
//!   *Any* instance of a named header that says spam counts: a sender can forge a "not spam"
//!   header below the server's, never remove the server's own.
//! - **Failed authentication**: the topmost Authentication-Results from our `authserv_id` says
//!   `dmarc=fail`, `spf=fail` or `dkim=fail` and nothing aligned passed → no case, listed for a
//!   person, *whatever the domain* (a trusted domain that fails is exactly what a spoof looks like).
//! - **Trusted senders** are the `trusted_domains` patterns plus every agency in the directory.
//!   A trusted sender opens a case when authentication passed *or no verdict is available* (no
//!   `authserv_id`, or our server added no Authentication-Results).
//! - **Untrusted senders** (only when `trusted_domains` is set; an empty list keeps the old
//!   behaviour, anyone may refer) open a case only when authentication *passed* and the referral
//!   carries no unsafe attachment; otherwise it is listed for a person. A lookalike domain can pass
//!   DMARC for itself, so an untrusted sender's program or web page is never forwarded on its say.
//! - **Unsafe attachments** ([`attachment_risk`]: programs, scripts, web pages, disk images,
//!   macro-enabled Office files, SVG with script) are never forwarded to the panel; the letter's
//!   copy of the referral says how many of which kind were withheld (never their names).
//!
//! Must not: read the clock, the store or the mail; log; name addresses or quote text in reasons.

use crate::core::decisions;
use crate::core::intake::{Attachment, Message};

/// A header the receiving server (or its filter) writes to mark spam.
#[derive(Debug, Clone, PartialEq)]
pub enum SpamRule {
    /// Spam when the header's value equals `value` (case-insensitive, first word).
    Flag { header: String, value: String },
    /// Spam when the header's leading number is over `threshold` (or at least, when
    /// `inclusive`): SpamAssassin's `X-Spam-Score`, Microsoft's `X-MS-Exchange-Organization-SCL`.
    Score {
        header: String,
        threshold: f64,
        inclusive: bool,
    },
}

/// What the configuration says about senders.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The receiving server's `authserv-id` (the one whose Authentication-Results count).
    pub authserv_id: Option<String>,
    pub spam: Vec<SpamRule>,
    /// `bury.gov.uk` (exactly that domain) or `*.nhs.net` (that domain and every subdomain).
    pub trusted_domains: Vec<String>,
}

/// The receiving server's authentication verdict for the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// DMARC pass, or aligned DKIM/SPF pass, from our server.
    Pass(String),
    /// Our server says DMARC, SPF or DKIM failed, and nothing aligned passed.
    Fail(String),
    /// No verdict: no `authserv_id`, no header from our server, or only none/neutral/softfail.
    Unverified(String),
}

/// Why the message is marked as spam, naming the header only; `None` when it is not.
pub fn spam_reason(msg: &Message, rules: &[SpamRule]) -> Option<String> {
    rules.iter().find_map(|rule| {
        let header = match rule {
            SpamRule::Flag { header, .. } | SpamRule::Score { header, .. } => header,
        };
        let values = msg
            .header_fields
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(header.trim()))
            .map(|(_, v)| v.trim());
        let hit = values.into_iter().find(|v| match rule {
            SpamRule::Flag { value, .. } => v
                .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(value.trim())),
            SpamRule::Score {
                threshold,
                inclusive,
                ..
            } => leading_number(v).is_some_and(|n| {
                if *inclusive {
                    n >= *threshold
                } else {
                    n > *threshold
                }
            }),
        })?;
        let _ = hit;
        Some(match rule {
            SpamRule::Flag { header, value } => {
                format!("the receiving server marked it as spam ({header}: {value})")
            }
            SpamRule::Score {
                header,
                threshold,
                inclusive,
            } => format!(
                "the receiving server scored it as spam ({header} {} {threshold})",
                if *inclusive { "at least" } else { "over" }
            ),
        })
    })
}

fn leading_number(value: &str) -> Option<f64> {
    let end = value
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '-' || *c == '+'))))
        .map_or(value.len(), |(i, _)| i);
    value[..end].parse().ok()
}

/// The receiving server's verdict on the From address (reusing
/// [`decisions::check_authentication`] for the topmost header from `authserv_id`).
pub fn authentication(msg: &Message, authserv_id: Option<&str>) -> Auth {
    let Some(id) = authserv_id.map(str::trim).filter(|s| !s.is_empty()) else {
        return Auth::Unverified("no authserv_id configured".into());
    };
    let Some(sender) = msg.from.as_ref().map(|a| a.email.as_str()) else {
        return Auth::Fail("no From address".into());
    };
    let Some(top) = msg.authentication_results.first() else {
        return Auth::Unverified(format!("no Authentication-Results header from {id}"));
    };
    let top_id = top
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    if !top_id.is_some_and(|t| t.eq_ignore_ascii_case(id)) {
        return Auth::Unverified(format!(
            "the topmost Authentication-Results header is not from {id}"
        ));
    }
    match decisions::check_authentication(&msg.authentication_results, id, sender) {
        Ok(evidence) => Auth::Pass(evidence),
        Err(_) => {
            let failed: Vec<&str> = top
                .split(';')
                .skip(1)
                .filter_map(|m| m.split_whitespace().next()?.split_once('='))
                .filter(|(_, r)| r.eq_ignore_ascii_case("fail"))
                .filter_map(|(name, _)| match name.to_ascii_lowercase().as_str() {
                    "dmarc" => Some("DMARC"),
                    "spf" => Some("SPF"),
                    "dkim" => Some("DKIM"),
                    _ => None,
                })
                .collect();
            if failed.is_empty() {
                Auth::Unverified(format!(
                    "{id} reports no pass and no failure for the sender"
                ))
            } else {
                Auth::Fail(format!("{} fail reported by {id}", failed.join(", ")))
            }
        }
    }
}

/// Whether `domain` matches one of the `trusted_domains` patterns: `x` matches exactly `x`;
/// `*.x` matches `x` and every subdomain of it (NHSmail is `nhs.net` itself).
pub fn domain_trusted(domain: &str, patterns: &[String]) -> bool {
    let domain = domain.trim().to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(base) => domain == base || domain.ends_with(&format!(".{base}")),
            None => !p.is_empty() && domain == p,
        }
    })
}

/// Whether a `trusted_domains` pattern is well formed: a domain with a dot, optionally `*.`
/// in front, letters, digits, `-` and `.` only. `Err` says what is wrong.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let base = pattern.strip_prefix("*.").unwrap_or(pattern);
    if base.is_empty()
        || !base.contains('.')
        || base.starts_with('.')
        || base.ends_with('.')
        || !base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!(
            "`{pattern}` is not a domain pattern: write `bury.gov.uk` for one domain or \
             `*.nhs.net` for a domain and its subdomains"
        ));
    }
    Ok(())
}

/// Why an attached file must not travel to the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Risk {
    Program,
    Script,
    WebPage,
    DiskImage,
    MacroDocument,
    ScriptedImage,
    /// An archive whose contents cannot be looked into here (.7z, .rar), or a zip that holds
    /// another archive or a file that is unsafe itself.
    Archive,
}

impl Risk {
    /// Plain words for letters and triage.
    pub fn label(self) -> &'static str {
        match self {
            Risk::Program => "program",
            Risk::Script => "script",
            Risk::WebPage => "web page (HTML)",
            Risk::DiskImage => "disk image",
            Risk::MacroDocument => "macro-enabled Office document",
            Risk::ScriptedImage => "image with script (SVG)",
            Risk::Archive => "archive that could not be checked",
        }
    }
}

/// Extensions never forwarded, by kind.
pub const UNSAFE_EXTENSIONS: &[(&str, Risk)] = &[
    ("exe", Risk::Program),
    ("scr", Risk::Program),
    ("msi", Risk::Program),
    ("com", Risk::Program),
    ("pif", Risk::Program),
    ("jar", Risk::Program),
    ("dll", Risk::Program),
    ("js", Risk::Script),
    ("jse", Risk::Script),
    ("vbs", Risk::Script),
    ("vbe", Risk::Script),
    ("wsf", Risk::Script),
    ("bat", Risk::Script),
    ("cmd", Risk::Script),
    ("ps1", Risk::Script),
    ("hta", Risk::Script),
    ("lnk", Risk::Script),
    ("html", Risk::WebPage),
    ("htm", Risk::WebPage),
    ("shtml", Risk::WebPage),
    ("xhtml", Risk::WebPage),
    ("mht", Risk::WebPage),
    ("iso", Risk::DiskImage),
    ("img", Risk::DiskImage),
    ("vhd", Risk::DiskImage),
    ("vhdx", Risk::DiskImage),
    ("cpl", Risk::Program),
    ("xll", Risk::Program),
    ("msix", Risk::Program),
    ("appx", Risk::Program),
    ("application", Risk::Program),
    ("reg", Risk::Script),
    ("url", Risk::Script),
    ("scf", Risk::Script),
    ("chm", Risk::WebPage),
    ("one", Risk::MacroDocument),
    ("xlam", Risk::MacroDocument),
    ("ppam", Risk::MacroDocument),
    ("potm", Risk::MacroDocument),
    ("sldm", Risk::MacroDocument),
    ("7z", Risk::Archive),
    ("rar", Risk::Archive),
    ("docm", Risk::MacroDocument),
    ("xlsm", Risk::MacroDocument),
    ("pptm", Risk::MacroDocument),
    ("dotm", Risk::MacroDocument),
    ("xltm", Risk::MacroDocument),
];

/// How deep forwarded messages and zips are looked into ([`attachment_risk`]).
const MAX_NESTING: usize = 3;

/// The most entries of a zip whose names are read.
const MAX_ZIP_ENTRIES: usize = 10_000;

/// Why this attachment must not be forwarded, if it must not: by extension (the last one, so
/// `form.pdf.exe` and `form.html.` count), by content type (HTML, JavaScript, programs), an SVG
/// image that carries script — or what it holds: a forwarded message (`.eml`,
/// `message/rfc822`) carrying any of these, or a zip naming one (or another archive), is
/// withheld as what it holds, up to [`MAX_NESTING`] deep.
pub fn attachment_risk(a: &Attachment) -> Option<Risk> {
    risk_within(a, 0)
}

/// A file name as Windows and the browsers save it: trailing dots and spaces (any Unicode space)
/// dropped, together — `invoice.exe .` is saved as `invoice.exe`.
fn saved_name(name: &str) -> String {
    name.trim_start()
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
        .to_ascii_lowercase()
}

fn risk_within(a: &Attachment, depth: usize) -> Option<Risk> {
    let name = saved_name(&a.filename);
    if let Some(r) = risk_by_name(&name) {
        return Some(r);
    }
    let ct = a.content_type.to_ascii_lowercase();
    if ct == "message/rfc822" || name.ends_with(".eml") {
        if depth >= MAX_NESTING {
            return Some(Risk::Archive);
        }
        let inner = crate::core::intake::parse(&a.data);
        // A forwarded message that cannot be read cannot be vouched for either.
        if !inner.parsed {
            return Some(Risk::Archive);
        }
        return inner
            .attachments
            .iter()
            .filter_map(|i| risk_within(i, depth + 1))
            .max();
    }
    if ct == "application/zip" || ct == "application/x-zip-compressed" || name.ends_with(".zip") {
        return zip_risk(&a.data);
    }
    risk_by_content(a, &name)
}

/// The risk an extension names.
fn risk_by_name(name: &str) -> Option<Risk> {
    name.rsplit_once('.').and_then(|(_, ext)| {
        UNSAFE_EXTENSIONS
            .iter()
            .find(|(e, _)| *e == ext)
            .map(|(_, r)| *r)
    })
}

/// A zip, by the names of what it holds (nothing is decompressed): an unsafe file, or another
/// archive (whose contents this does not open), makes it unsafe; so does one that cannot be
/// read (damaged, or names hidden).
fn zip_risk(data: &[u8]) -> Option<Risk> {
    let Ok(zip) = zip::ZipArchive::new(std::io::Cursor::new(data)) else {
        return Some(Risk::Archive);
    };
    if zip.len() > MAX_ZIP_ENTRIES {
        return Some(Risk::Archive);
    }
    zip.file_names()
        .filter_map(|n| {
            let Ok(n) = n else {
                return Some(Risk::Archive);
            };
            let n = saved_name(&n);
            let archive = [".zip", ".eml", ".msg"].iter().any(|e| n.ends_with(e));
            risk_by_name(&n).or(archive.then_some(Risk::Archive))
        })
        .max()
}

/// The risk a content type, or an SVG's script, shows.
fn risk_by_content(a: &Attachment, name: &str) -> Option<Risk> {
    let ct = a.content_type.as_str();
    let by_type = match ct {
        "text/html" | "application/xhtml+xml" => Some(Risk::WebPage),
        "application/javascript" | "text/javascript" | "application/x-javascript" => {
            Some(Risk::Script)
        }
        "application/x-msdownload"
        | "application/x-msdos-program"
        | "application/x-msi"
        | "application/java-archive" => Some(Risk::Program),
        "application/x-iso9660-image" => Some(Risk::DiskImage),
        _ => None,
    };
    if by_type.is_some() {
        return by_type;
    }
    let svg = ct == "image/svg+xml" || name.ends_with(".svg");
    if svg {
        let text = String::from_utf8_lossy(&a.data).to_ascii_lowercase();
        let scripted = text.contains("<script")
            || text.contains("javascript:")
            || text.contains("<foreignobject")
            || ["onload=", "onclick=", "onerror=", "onmouseover="]
                .iter()
                .any(|h| text.contains(h));
        if scripted {
            return Some(Risk::ScriptedImage);
        }
    }
    None
}

/// "2 files withheld: 1 program, 1 web page (HTML)" — counts and kinds, never names; `None`
/// when nothing is withheld.
pub fn withheld_summary(attachments: &[Attachment]) -> Option<String> {
    let mut risks: Vec<Risk> = attachments.iter().filter_map(attachment_risk).collect();
    if risks.is_empty() {
        return None;
    }
    risks.sort();
    let total = risks.len();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < risks.len() {
        let n = risks[i..].iter().take_while(|r| **r == risks[i]).count();
        parts.push(format!("{n} {}", risks[i].label()));
        i += n;
    }
    Some(format!(
        "{total} attached file{} withheld as unsafe: {}",
        if total == 1 { "" } else { "s" },
        parts.join(", ")
    ))
}

/// A file name as a person is shown it, and as it is offered for download: every control
/// character and every invisible formatting one — bidirectional overrides and isolates,
/// zero-width characters, the soft hyphen — becomes `_`, so that "Referral form\u{202E}fdp.exe"
/// (a program) cannot pass for "Referral formexe.pdf". An empty name is "unnamed".
pub fn shown_name(name: &str) -> String {
    let invisible = |c: char| {
        c.is_control()
            || matches!(c,
                '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}')
    };
    let shown: String = name
        .trim()
        .chars()
        .map(|c| if invisible(c) { '_' } else { c })
        .collect();
    if shown.is_empty() {
        "unnamed".into()
    } else {
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::intake;

    #[test]
    fn a_file_name_cannot_hide_what_it_is_behind_invisible_characters() {
        assert_eq!(
            shown_name("Referral form\u{202E}fdp.exe"),
            "Referral form_fdp.exe"
        );
        assert_eq!(shown_name("a\u{200B}b\u{2066}c\u{FEFF}.pdf"), "a_b_c_.pdf");
        assert_eq!(shown_name("line\r\nbreak.docx"), "line__break.docx");
        assert_eq!(
            shown_name("Chronology – Café.docx"),
            "Chronology – Café.docx"
        );
        assert_eq!(shown_name("  "), "unnamed");
    }

    fn msg(headers: &str) -> Message {
        intake::parse(format!("{headers}\r\nSubject: x\r\n\r\nbody\r\n").as_bytes())
    }

    /// A zip holding empty files of these names.
    fn zip_of(names: &[&str]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for n in names {
            w.start_file(*n, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"x").unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn binary(name: &str, ct: &str, data: Vec<u8>) -> Attachment {
        Attachment {
            size: data.len(),
            data,
            ..file(name, ct, "")
        }
    }

    #[test]
    fn what_a_forwarded_message_or_a_zip_holds_is_withheld_as_what_it_is() {
        let eml = |inner: &str| {
            format!(
                "From: a@b.test\r\nSubject: Referral\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/mixed; boundary=\"y\"\r\n\r\n\
                 --y\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
                 --y\r\n{inner}\r\n--y--\r\n"
            )
        };
        let page = "Content-Type: text/html; name=\"Referral-form.html\"\r\n\
                    Content-Disposition: attachment; filename=\"Referral-form.html\"\r\n\r\n<form></form>";
        let form = "Content-Type: application/pdf; name=\"form.pdf\"\r\n\
                    Content-Disposition: attachment; filename=\"form.pdf\"\r\n\r\n%PDF-1.4";
        assert_eq!(
            attachment_risk(&file("Referral.eml", "message/rfc822", &eml(page))),
            Some(Risk::WebPage),
            "a phishing page inside a forwarded message"
        );
        assert_eq!(
            attachment_risk(&file("Referral.eml", "message/rfc822", &eml(form))),
            None,
            "a forwarded referral with its form travels"
        );
        let nested = format!(
            "Content-Type: message/rfc822; name=\"inner.eml\"\r\n\
             Content-Disposition: attachment; filename=\"inner.eml\"\r\n\r\n{}",
            eml(page)
        );
        assert_eq!(
            attachment_risk(&file("outer.eml", "message/rfc822", &eml(&nested))),
            Some(Risk::WebPage),
            "a message inside a message"
        );
        let zip = |names: &[&str]| binary("returns.zip", "application/zip", zip_of(names));
        assert_eq!(
            attachment_risk(&zip(&["chronology.docx", "summary.pdf"])),
            None
        );
        assert_eq!(
            attachment_risk(&zip(&["summary.pdf", "invoice.js"])),
            Some(Risk::Script)
        );
        assert_eq!(
            attachment_risk(&zip(&["inner.zip"])),
            Some(Risk::Archive),
            "an archive in an archive is not opened"
        );
        assert_eq!(
            attachment_risk(&binary(
                "returns.zip",
                "application/zip",
                b"PK not a zip".to_vec()
            )),
            Some(Risk::Archive)
        );
        assert_eq!(
            attachment_risk(&file("returns.7z", "application/octet-stream", "")),
            Some(Risk::Archive)
        );
        assert_eq!(
            attachment_risk(&file("Referral.eml", "message/rfc822", "")),
            Some(Risk::Archive),
            "a forwarded message that cannot be read cannot be vouched for"
        );
        assert_eq!(
            attachment_risk(&file("notes.one", "application/octet-stream", "")),
            Some(Risk::MacroDocument)
        );
    }

    fn file(name: &str, ct: &str, data: &str) -> Attachment {
        Attachment {
            filename: name.into(),
            content_type: ct.into(),
            size: data.len(),
            content_id: None,
            inline: false,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_program_named_with_trailing_dots_and_spaces_is_withheld_as_windows_would_save_it() {
        // Windows and the browsers drop trailing dots and spaces: each is saved as a program.
        for name in [
            "invoice.exe .",
            "invoice.exe. .",
            "report.html .",
            "run.js \u{3000}.",
        ] {
            let a = file(name, "application/octet-stream", "MZ");
            assert!(attachment_risk(&a).is_some(), "{name:?} offered");
        }
        let zip = binary(
            "forms.zip",
            "application/zip",
            zip_of(&["forms/setup.exe ."]),
        );
        assert!(attachment_risk(&zip).is_some(), "a zip naming one");
        assert_eq!(
            attachment_risk(&file("Referral form.pdf . ", "application/pdf", "%PDF")),
            None
        );
    }

    #[test]
    fn a_spam_flag_anywhere_in_the_header_counts_and_a_forged_no_does_not_hide_it() {
        let rules = vec![
            SpamRule::Flag {
                header: "X-Spam-Flag".into(),
                value: "YES".into(),
            },
            SpamRule::Score {
                header: "X-MS-Exchange-Organization-SCL".into(),
                threshold: 5.0,
                inclusive: true,
            },
        ];
        let flagged = msg("X-Spam-Flag: YES\r\nX-Spam-Flag: NO\r\nFrom: a@b.test");
        assert!(spam_reason(&flagged, &rules).is_some());
        let scl5 = msg("X-MS-Exchange-Organization-SCL: 5\r\nFrom: a@b.test");
        assert!(spam_reason(&scl5, &rules).is_some());
        let scl1 = msg("X-MS-Exchange-Organization-SCL: 1\r\nX-Spam-Flag: NO\r\nFrom: a@b.test");
        assert_eq!(spam_reason(&scl1, &rules), None);
        let over = vec![SpamRule::Score {
            header: "X-Spam-Score".into(),
            threshold: 5.0,
            inclusive: false,
        }];
        assert_eq!(
            spam_reason(&msg("X-Spam-Score: 5.0\r\nFrom: a@b.test"), &over),
            None
        );
        assert!(
            spam_reason(&msg("X-Spam-Score: 7.3 (*******)\r\nFrom: a@b.test"), &over).is_some()
        );
    }

    #[test]
    fn authentication_is_pass_fail_or_unverified() {
        let mx = Some("mx.bury.test");
        let pass = msg(
            "Authentication-Results: mx.bury.test; dmarc=pass header.from=police.test\r\nFrom: a@police.test",
        );
        assert!(matches!(authentication(&pass, mx), Auth::Pass(_)));
        let fail = msg(
            "Authentication-Results: mx.bury.test; spf=fail smtp.mailfrom=police.test; dmarc=fail header.from=police.test\r\nFrom: a@police.test",
        );
        assert!(matches!(authentication(&fail, mx), Auth::Fail(_)));
        let softfail = msg(
            "Authentication-Results: mx.bury.test; spf=softfail smtp.mailfrom=police.test\r\nFrom: a@police.test",
        );
        assert!(matches!(authentication(&softfail, mx), Auth::Unverified(_)));
        let foreign =
            msg("Authentication-Results: mx.elsewhere.test; dmarc=fail\r\nFrom: a@police.test");
        assert!(matches!(authentication(&foreign, mx), Auth::Unverified(_)));
        assert!(matches!(authentication(&fail, None), Auth::Unverified(_)));
    }

    #[test]
    fn a_star_pattern_covers_the_domain_and_its_subdomains_and_a_plain_one_only_itself() {
        let p = vec!["*.nhs.net".to_string(), "bury.gov.uk".to_string()];
        assert!(domain_trusted("nhs.net", &p));
        assert!(domain_trusted("mft.nhs.net", &p));
        assert!(domain_trusted("BURY.gov.uk", &p));
        assert!(!domain_trusted("mail.bury.gov.uk", &p));
        assert!(!domain_trusted("nhs-net.co", &p));
        assert!(!domain_trusted("evilnhs.net", &p));
        assert!(check_pattern("*.police.uk").is_ok());
        assert!(check_pattern("police").is_err());
        assert!(check_pattern("*.").is_err());
        assert!(check_pattern("a b.uk").is_err());
    }

    #[test]
    fn programs_scripts_web_pages_and_macro_documents_are_withheld_and_documents_travel() {
        assert_eq!(
            attachment_risk(&file(
                "a.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                ""
            )),
            None
        );
        assert_eq!(attachment_risk(&file("a.pdf", "application/pdf", "")), None);
        assert_eq!(
            attachment_risk(&file("Referral.pdf.exe", "application/octet-stream", "")),
            Some(Risk::Program)
        );
        assert_eq!(
            attachment_risk(&file("doc.HTM", "application/octet-stream", "")),
            Some(Risk::WebPage)
        );
        assert_eq!(
            attachment_risk(&file("view", "text/html", "")),
            Some(Risk::WebPage)
        );
        assert_eq!(
            attachment_risk(&file("form.docm", "application/octet-stream", "")),
            Some(Risk::MacroDocument)
        );
        assert_eq!(
            attachment_risk(&file("logo.svg", "image/svg+xml", "<svg><rect/></svg>")),
            None
        );
        assert_eq!(
            attachment_risk(&file("logo.svg", "image/svg+xml", "<svg onload=\"x()\">")),
            Some(Risk::ScriptedImage)
        );
        let all = [
            file("a.html", "text/html", ""),
            file("b.exe", "", ""),
            file("c.htm", "", ""),
            file("d.pdf", "application/pdf", ""),
        ];
        assert_eq!(
            withheld_summary(&all).as_deref(),
            Some("3 attached files withheld as unsafe: 1 program, 2 web page (HTML)")
        );
        assert_eq!(withheld_summary(&all[3..]), None);
    }
}
