//! The identity of a message: when two fetched messages are the same message.
//!
//! This module owns the rule the store de-duplicates by, and only that rule. It is pure (bytes in,
//! text out), must not parse more than the header block's field names and values, and must not log.
//!
//! # The rule
//! A message is **what its author's software wrote**: every header field except the ones servers
//! add on the way ([`is_trace`]), and the body. Its *fingerprint* is the SHA-256 of those fields
//! (names lowercased, values unfolded with runs of white space made one space, in order) and of the
//! body (line ends made `\n`, trailing blank lines dropped). Its *key* is `mid:<Message-ID>` when it
//! has one, else `content:<fingerprint>` ([`key`]). The store keeps a message unless one with the
//! same key **and** the same fingerprint is already stored; a different fingerprint under a known
//! Message-ID is stored under `mid:<id>#<fingerprint>`. So:
//!
//! - **Two different messages are never merged.** A portal's notifier that announces two
//!   referrals with the same Message-ID and the same body still gives each its own Date, To,
//!   Subject or From — all authored fields, all in the fingerprint — so both are kept.
//! - **The same message delivered twice is stored once, with or without a Message-ID.** A second
//!   delivery (to an alias that also lands in the shared mailbox, a restore, a re-delivery after a
//!   server move) differs only in what servers added: `Received`, `Return-Path`, `Delivered-To`,
//!   `X-Original-To`, `Authentication-Results`, `ARC-*`, Exchange's `X-MS-Exchange-*` and the
//!   spam and virus scanners' stamps ([`TRACE_HEADERS`], [`TRACE_PREFIXES`]); none of them is in
//!   the fingerprint or the key.
//!
//! The lists only ever name fields that servers add in transit; an authored field (RFC 5322's
//! Date, From, Sender, Reply-To, To, Cc, Bcc, Subject, Message-ID, In-Reply-To, References, the
//! MIME fields, a client's `Thread-Index`, `X-Mailer`…) is never on them, so leaving a
//! scanner's new stamp off the lists can at worst store a re-delivery twice — it can never merge
//! two messages. Where the two risks meet, losing a referral is the worse one.
//!
//! The fingerprint of a message with a Message-ID is only ever compared when its key is already
//! stored, so the store computes it then, not as every message arrives
//! (`shell::store::ingest`); the rule is the same either way.
//!
//! Messages stored before this rule kept a hash of the body alone, and one without a Message-ID
//! was keyed by the hash of its raw bytes; the store also compares with those ([`body_sha256`],
//! [`legacy_key`]), so nothing stored before the upgrade is stored again when the same bytes are
//! re-fetched (a UIDVALIDITY reset).

use sha2::{Digest, Sha256};

/// Header fields servers add on the way (lowercase): never part of a message's identity.
pub const TRACE_HEADERS: &[&str] = &[
    "received",
    "x-received",
    "return-path",
    "delivered-to",
    "x-delivered-to",
    "x-original-to",
    "x-envelope-to",
    "envelope-to",
    "x-rcpt-to",
    "x-apparently-to",
    "x-forwarded-to",
    "x-forwarded-for",
    "x-loop",
    "x-sieve",
    "x-sieve-redirected-from",
    "authentication-results",
    "received-spf",
    "x-originatororg",
    "x-originating-ip",
    "x-ms-traffictypediagnostic",
    "x-ms-publictraffictype",
    "x-uid",
    "status",
    "x-status",
    "x-keywords",
    "x-mozilla-status",
    "x-mozilla-status2",
    "content-length",
    "lines",
];

/// Prefixes (lowercase) of families of header fields servers add on the way: ARC sealing,
/// Exchange and Microsoft 365 transport and filtering, and the common spam and virus scanners.
pub const TRACE_PREFIXES: &[&str] = &[
    "arc-",
    "x-ms-exchange-",
    "x-ms-office365-",
    "x-ms-oob-",
    "x-microsoft-antispam",
    "x-forefront-",
    "x-eopattributedmessage",
    "x-eoptenantattributedmessage",
    "x-spam",
    "x-virus",
    "x-rspamd",
    "x-amavis",
    "x-mimecast-",
    "x-proofpoint-",
    "x-barracuda-",
    "x-ironport-",
    "x-sophos",
    "x-cloudmark",
    "x-mailscanner",
    "x-policyd",
    "x-greylist",
    "x-dspam",
    "x-bogosity",
    "x-quarantine",
];

/// Is this header field (any case) one a server adds on the way?
pub fn is_trace(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    TRACE_HEADERS.contains(&name.as_str()) || TRACE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The de-duplication key: `mid:<id>` with a Message-ID (no brackets), else
/// `content:<fingerprint>`.
pub fn key(message_id: Option<&str>, fingerprint: &str) -> String {
    match message_id {
        Some(id) => format!("mid:{id}"),
        None => format!("content:{fingerprint}"),
    }
}

/// Hex SHA-256 of what the author wrote: the authored header fields and the body (see the module
/// documentation). Never panics, on any bytes.
pub fn fingerprint(raw: &[u8]) -> String {
    let (head, body) = split(raw);
    let mut h = Sha256::new();
    for (name, value) in fields(head) {
        if is_trace(&String::from_utf8_lossy(name)) {
            continue;
        }
        h.update(name.to_ascii_lowercase());
        h.update(b":");
        let mut first = true;
        for word in value
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            if !first {
                h.update(b" ");
            }
            h.update(word);
            first = false;
        }
        h.update(b"\n");
    }
    h.update(b"\n");
    let mut end = body.len();
    while end > 0 && matches!(body[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    let body = &body[..end];
    // Every CR that starts a CRLF is left out; the runs between are hashed whole.
    let mut start = 0;
    for i in memchr::memchr_iter(b'\r', body) {
        if body.get(i + 1) == Some(&b'\n') {
            h.update(&body[start..i]);
            start = i + 1;
        }
    }
    h.update(&body[start..]);
    hex::encode(h.finalize())
}

/// Hex SHA-256 of the body alone (everything after the first blank line): what the store kept
/// before fingerprints, compared with so that older rows still match.
pub fn body_sha256(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(split(raw).1))
}

/// The key a message without a Message-ID had before this rule: `sha256:<hash of the raw bytes>`.
pub fn legacy_key(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

/// The header block and the body: split at the first blank line (CRLF or LF); no blank line means
/// no body.
fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    let crlf = memchr::memmem::find(raw, b"\r\n\r\n");
    let lf = memchr::memmem::find(raw, b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c + 2 => (&raw[..l], &raw[l + 2..]),
        (Some(c), _) => (&raw[..c], &raw[c + 4..]),
        (None, Some(l)) => (&raw[..l], &raw[l + 2..]),
        (None, None) => (raw, &[]),
    }
}

/// The header block's fields, each (name, unfolded value); a line without a colon is a field
/// with that whole line as its name, so garbage still counts.
fn fields(head: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut out: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t')
            && let Some((_, value)) = out.last_mut()
        {
            value.push(b' ');
            value.extend_from_slice(line);
            continue;
        }
        match line.iter().position(|&b| b == b':') {
            Some(colon) => out.push((trim(&line[..colon]), line[colon + 1..].to_vec())),
            None => out.push((line, Vec::new())),
        }
    }
    out
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A portal's notifier: a fixed Message-ID and body, its own Date, To and Subject.
    fn notifier(date: &str, to: &str, subject: &str) -> String {
        format!(
            "From: Referral Portal <noreply@portal.test>\r\nTo: {to}\r\nSubject: {subject}\r\n\
             Date: {date}\r\nMessage-ID: <notification@portal.test>\r\nContent-Type: text/plain\r\n\r\n\
             A new referral has been submitted. Log in to the portal to read it.\r\n"
        )
    }

    fn delivered(trace: &str, message: &str) -> Vec<u8> {
        format!("{trace}{message}").into_bytes()
    }

    #[test]
    fn two_messages_differing_only_in_an_authored_field_have_different_fingerprints() {
        let base = notifier(
            "Mon, 7 Sep 2026 09:00:00 +0100",
            "bsp@bury.test",
            "New referral",
        );
        for other in [
            notifier(
                "Mon, 7 Sep 2026 09:05:00 +0100",
                "bsp@bury.test",
                "New referral",
            ),
            notifier(
                "Mon, 7 Sep 2026 09:00:00 +0100",
                "mash@bury.test",
                "New referral",
            ),
            notifier(
                "Mon, 7 Sep 2026 09:00:00 +0100",
                "bsp@bury.test",
                "New referral (2)",
            ),
            base.replace("noreply@portal.test", "alerts@portal.test"),
            base.replace("Log in", "Please log in"),
        ] {
            assert_ne!(
                fingerprint(base.as_bytes()),
                fingerprint(other.as_bytes()),
                "{other}"
            );
        }
    }

    #[test]
    fn the_same_message_delivered_twice_has_one_fingerprint_whatever_servers_added() {
        let m = notifier(
            "Mon, 7 Sep 2026 09:00:00 +0100",
            "bsp@bury.test",
            "New referral",
        );
        let first = delivered(
            "Return-Path: <noreply@portal.test>\r\nDelivered-To: bsp@bury.test\r\n\
             Received: from mx1.bury.test by imap.bury.test; Mon, 7 Sep 2026 09:00:02 +0100\r\n\
             Authentication-Results: mx.bury.test; dmarc=pass header.from=portal.test\r\n",
            &m,
        );
        let second = delivered(
            "Return-Path: <bounces+x@portal.test>\r\nDelivered-To: referrals@bury.test\r\n\
             X-Original-To: referrals@bury.test\r\n\
             Received: from mx2.bury.test by imap.bury.test; Mon, 7 Sep 2026 09:07:41 +0100\r\n\
             Received: from relay.portal.test\r\n by mx2.bury.test with ESMTPS\r\n\
             Authentication-Results: mx2.bury.test; spf=pass\r\n\
             ARC-Seal: i=1; a=rsa-sha256; cv=none; d=bury.test; s=arc; b=AAAA\r\n\
             ARC-Message-Signature: i=1; a=rsa-sha256; b=BBBB\r\n\
             ARC-Authentication-Results: i=1; mx2.bury.test; spf=pass\r\n\
             X-MS-Exchange-Organization-SCL: 1\r\nX-MS-Exchange-CrossTenant-Id: 42\r\n\
             X-Forefront-Antispam-Report: CIP:1.2.3.4;SFV:NSPM\r\nX-Microsoft-Antispam: BCL:0;\r\n\
             X-MS-Office365-Filtering-Correlation-Id: 9f2c\r\nX-Spam-Status: No, score=-1.0\r\n\
             X-Virus-Scanned: clamav\r\n",
            &m,
        );
        assert_eq!(fingerprint(&first), fingerprint(&second));
        // Refolded by a relay, stored with bare LF line ends, a trailing blank line added.
        let refolded = second
            .iter()
            .map(|&b| b as char)
            .collect::<String>()
            .replace("Subject: New referral", "Subject: New\r\n  referral")
            .replace("\r\n", "\n")
            + "\n";
        assert_eq!(fingerprint(&first), fingerprint(refolded.as_bytes()));
        assert_eq!(
            key(None, &fingerprint(&first)),
            key(None, &fingerprint(&second)),
            "without a Message-ID the key is the fingerprint's"
        );
    }

    #[test]
    fn only_fields_servers_add_are_trace_never_an_authored_one() {
        for trace in [
            "Received",
            "Delivered-To",
            "Return-Path",
            "X-Original-To",
            "Authentication-Results",
            "ARC-Seal",
            "arc-message-signature",
            "X-MS-Exchange-Organization-AuthAs",
            "X-MS-Exchange-CrossTenant-OriginalArrivalTime",
        ] {
            assert!(is_trace(trace), "{trace}");
        }
        for authored in [
            "Date",
            "From",
            "Sender",
            "Reply-To",
            "To",
            "Cc",
            "Bcc",
            "Subject",
            "Message-ID",
            "In-Reply-To",
            "References",
            "MIME-Version",
            "Content-Type",
            "Content-Transfer-Encoding",
            "DKIM-Signature",
            "Thread-Index",
            "Thread-Topic",
            "X-Mailer",
            "X-MS-Has-Attach",
            "X-MS-TNEF-Correlator",
            "Auto-Submitted",
            "Importance",
        ] {
            assert!(!is_trace(authored), "{authored}");
        }
    }

    #[test]
    fn the_key_is_the_message_id_when_there_is_one() {
        assert_eq!(key(Some("a@b.test"), "f00"), "mid:a@b.test");
        assert_eq!(key(None, "f00"), "content:f00");
    }

    #[test]
    fn any_bytes_have_a_fingerprint() {
        for raw in [
            &b""[..],
            b"\r",
            b"\n\n",
            b"no headers at all",
            b": empty name\r\n\r\n\r",
            b"X: y\r\n\tfolded\r\n\r\nbody\r\r\n",
        ] {
            assert_eq!(fingerprint(raw).len(), 64);
        }
        assert_ne!(fingerprint(b"garbage one"), fingerprint(b"garbage two"));
    }
}
