//! What a message *is*: ordered, named rules → a [`Verdict`] with reasons.
//!
//! This module owns deciding what a parsed [`crate::core::intake::Message`] is. It is pure: it must not look
//! anything up itself (the engine hands it a [`Context`] with everything it found in its store),
//! must not change state, and must not log. The first rule that fires wins; every verdict names
//! its rule and says in plain words what fired. Reasons name header fields, rule facts, ids and
//! case references only — **never the subject or body text** (they are about children who died
//! or were seriously harmed) and never addresses; when a reason quotes a word, it is a term from
//! this module's own vocabulary lists, not the sender's text.
//!
//! The guiding choice, where the brief left one open: *nothing lost, nothing guessed*. When the
//! evidence conflicts, the verdict is [`Kind::Unmatched`] (a person sees it in the business
//! unit's triage list) rather than a guess that would open a case, send a letter, or hide a
//! message as an auto-reply.
//!
//! # Rules, in order
//! 1. [`unparseable`] — the bytes were not a message → `Unmatched`.
//! 2. [`own_message`] — From is one of our addresses, or the Message-ID is one we minted
//!    (`caseclerk.…@` our id domain; other ids in that domain are colleagues' mail).
//! 3. [`bounce`] — a delivery status notification, or a MAILER-DAEMON/postmaster message with an
//!    empty Return-Path; it says whether the letter failed for good or is only delayed
//!    ([`Delivery`]). Never threaded as a reply.
//! 4. [`auto_reply`] — RFC 3834 and vacation-program signals (see the function for the weighing).
//! 5. [`secure_notice`] — NHSmail `[secure]`, Egress, Mimecast… "read it on the portal" notices,
//!    by the sender's words (not a banner's, not a web address's: not the NHSmail footer).
//!    Then [`automated::automated_wording`] — no header says so, but the reply's own words are
//!    a machine's (auto-acknowledgements, out-of-office text, ticketing receipts) → `AutoReply`;
//!    never a message with a real attachment (a return, a referral form).
//!    Then [`unreadable_here`] — an Outlook recall of an earlier message, or S/MIME-encrypted
//!    (or opaque-signed) mail: what it means or carries cannot be read here → `Unmatched`, for a
//!    person.
//! 6. [`thread`] — In-Reply-To/References hit a message the engine knows → `CaseReply`; but a
//!    subject that names only another existing case → `Unmatched` (nothing guessed), and so does
//!    one that names no case while using new-referral words (a new referral sent as a reply), and
//!    one whose sender's own text names only other existing cases ("our return for RR-2026-0007"
//!    on RR-2026-0003's thread).
//! 7. [`case_ref_in_subject`] — the subject names exactly one existing case → `CaseReply`; but
//!    own text naming only other existing cases → `Unmatched`, as for [`thread`].
//! 8. [`conversation`] — no thread we know and no case in the subject, but Outlook's
//!    `Thread-Index` names the conversation of one case (our letters' conversation, see
//!    [`crate::core::conversation`], or a message filed on the case), or `Thread-Topic` names one
//!    existing case → `CaseReply`; two cases → `Unmatched`; new-referral words with no case in
//!    the subject → `Unmatched`, as for [`thread`].
//! 9. [`quoted_case_ref`] — the body (quoted history included) names exactly one existing case →
//!    `CaseReply`, unless the sender's own text uses new-referral words (then `Unmatched`); two or
//!    more cases → `Unmatched`.
//! 10. [`agency_sender_open_case`] — no thread or reference, but the sender's agency (by address,
//!     then domain) is on exactly one open case and its return is awaited there (asked, not yet
//!     returned) → `CaseReply` for it; on several, or not awaited → `Unmatched`.
//! 11. [`quotes_our_letter`] — the body quotes one of our letters (a `From:` line with our
//!     address, a Message-ID we minted, "Please keep RR-… in the subject", the word caseclerk) but
//!     no case was found → `Unmatched`: a reply to us is never a new referral.
//! 12. [`referral_trust`] — a would-be referral that the receiving server marked as spam, that
//!     failed DMARC/SPF/DKIM, or that comes from an untrusted sender without a passing verdict (or
//!     with an unsafe attachment) → `Unmatched`, with the reason: it opens no case and nothing is
//!     sent (see [`crate::core::trust`] for what "trusted" means).
//! 13. [`referral`] — referral vocabulary in the subject, body or attachment names → `Referral`.
//! 14. [`unmatched`] — everything else.

use std::cell::OnceCell;
use std::fmt;

pub mod automated;

use crate::core::intake::{Attachment, Message};
use crate::core::text::{
    Vocabulary, Words, ends_ignoring_case, own_text, reply_text, starts_ignoring_case,
};
use crate::core::{conversation as outlook, trust};

// ---------------------------------------------------------------------------------------------
// Context handed in by the engine

/// Everything the rules may know beyond the message itself. The engine fills it from its store
/// and configuration; classification never looks anything up.
#[derive(Clone, Default)]
pub struct Context {
    /// The shared mailbox and its aliases, lowercase.
    pub own_addresses: Vec<String>,
    /// Message-IDs we mint look like `<…@{own_id_domain}>`.
    pub own_id_domain: String,
    /// What the engine found in its store for this message's In-Reply-To/References ids. Entries
    /// for other ids are ignored, so passing a superset is harmless.
    pub known: Vec<Known>,
    /// References of existing cases, e.g. `RR-2026-0001`, indexed: built once for a pass.
    pub case_refs: CaseRefs,
    /// The agency directory.
    pub agencies: Vec<AgencyContact>,
    /// Which agencies are on which open cases (for fresh mail from an agency with no thread or
    /// reference).
    pub agency_cases: Vec<AgencyCase>,
    /// Outlook conversations (`Thread-Index` header blocks, hex) of messages filed on a case. The
    /// conversations of our own letters are derived from `case_refs` and need not be listed.
    pub conversations: Vec<Conversation>,
    /// Who may open a case: the receiving server's verdict and trusted sender domains.
    pub trust: trust::Policy,
}

/// The references of existing cases, indexed once so that a message's look-ups do not walk
/// every case: by reference (any case, surrounding spaces ignored) and by the Outlook
/// conversation of our letters on each case ([`outlook::case_conversation`] with our id
/// domain), which would otherwise be derived again for every case and every message.
#[derive(Clone, Default)]
pub struct CaseRefs {
    /// Our id domain, as the conversations were derived with (empty: none derived).
    domain: String,
    /// Upper-cased, trimmed.
    refs: std::collections::HashSet<String>,
    /// Conversation → the references whose letters carry it, in the order added.
    conversations: std::collections::HashMap<String, Vec<String>>,
}

impl CaseRefs {
    /// The references, with the conversations of our letters derived with `own_id_domain`.
    pub fn new(own_id_domain: &str, refs: impl IntoIterator<Item = String>) -> CaseRefs {
        let mut out = CaseRefs {
            domain: own_id_domain.trim().trim_start_matches('@').to_string(),
            ..CaseRefs::default()
        };
        for r in refs {
            out.push(r);
        }
        out
    }

    /// Add a case opened since the index was built.
    pub fn push(&mut self, reference: String) {
        if !self.domain.is_empty() {
            self.conversations
                .entry(outlook::case_conversation(&self.domain, &reference))
                .or_default()
                .push(reference.clone());
        }
        self.refs.insert(reference.trim().to_ascii_uppercase());
    }

    /// Whether `reference` is an existing case (case and surrounding spaces ignored).
    pub fn contains(&self, reference: &str) -> bool {
        self.refs.contains(&reference.trim().to_ascii_uppercase())
    }

    /// The cases whose letters carry the Outlook conversation `conversation`.
    pub fn by_conversation(&self, conversation: &str) -> &[String] {
        self.conversations
            .get(conversation)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// How many cases.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }
}

/// An Outlook conversation a case's messages belong to.
#[derive(Clone)]
pub struct Conversation {
    /// As [`crate::core::intake::thread_conversation`] gives it.
    pub conversation: String,
    pub case_ref: String,
}

/// An agency on an open case.
#[derive(Clone)]
pub struct AgencyCase {
    pub agency: String,
    pub case_ref: String,
    /// Its return is awaited there: its request went and no return has come.
    pub awaited: bool,
}

/// A message the engine has stored, and the case it belongs to.
#[derive(Clone)]
pub struct Known {
    /// Without angle brackets (brackets are tolerated and ignored).
    pub message_id: String,
    pub case_ref: String,
    /// `Some` when it is a letter we sent.
    pub letter: Option<LetterRef>,
}

/// A letter we sent: its process step and its recipient.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct LetterRef {
    pub step: String,
    pub recipient: String,
}

/// One agency in the directory.
#[derive(Clone)]
pub struct AgencyContact {
    pub id: String,
    /// Full addresses, lowercase.
    pub addresses: Vec<String>,
    /// Mail domains, lowercase; a subdomain matches too (`mail.police.test` → `police.test`).
    pub domains: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Verdict

/// What a message is.
///
/// `Debug` is written by hand (not derived) so that recipient addresses in [`Kind::Bounce`] and
/// [`LetterRef`] never reach a log: it prints counts and steps instead.
#[derive(Clone, PartialEq, serde::Serialize)]
pub enum Kind {
    /// Sent by us (own address, or an id we minted): record, never answer.
    OwnMessage,
    /// A delivery report about a letter (RFC 3464 or a mail system's own words). `delivery`
    /// says what it reports; `failed_recipients` lists only recipients whose delivery failed for
    /// good, `delayed_recipients` those still being tried.
    Bounce {
        original_ids: Vec<String>,
        failed_recipients: Vec<String>,
        delayed_recipients: Vec<String>,
        delivery: Delivery,
    },
    /// Out-of-office, read receipt and other automatic replies: never a return, never answered.
    AutoReply { case_ref: Option<String> },
    /// A "you have received a secure message — open the portal" notice: a person must open it.
    SecureNotice { case_ref: Option<String> },
    /// A new referral (no existing case).
    Referral,
    /// A reply on an existing case.
    CaseReply {
        case_ref: String,
        in_reply_to_letter: Option<LetterRef>,
        agency: Option<String>,
        reply: ReplyKind,
    },
    /// Keep and list for a person.
    Unmatched,
}

/// What a delivery report says happened to the letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Delivery {
    /// Failed for good, for at least one recipient: `Action: failed`, a 5.x.x status without an
    /// `Action`, or a report without machine-readable status whose words do not say it is only
    /// a delay (nothing lost: a person checks).
    Failed,
    /// Not delivered yet, still being tried: only `Action: delayed` / 4.x.x recipients, or a
    /// report without machine-readable status whose words say so ([`DELAY_PHRASES`]) and none
    /// of [`FAILURE_PHRASES`].
    Delayed,
    /// Delivered, relayed or expanded: nothing failed and nothing waits.
    Delivered,
}

/// What kind of reply a [`Kind::CaseReply`] is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum ReplyKind {
    /// Has a real attachment (not a signature logo, S/MIME signature or contact card).
    Return,
    /// A short reply saying nil return / no involvement / not known to us / no records.
    ///
    /// Conservatively: a [`NIL_RETURN_PHRASES`] phrase in the subject or within the first
    /// [`NIL_RETURN_WINDOW_CHARS`] characters of the reply's own text (quoted history removed),
    /// not negated ("this is not a nil return"), no [`NIL_RETURN_CONTRAST`] word in that window,
    /// own text no longer than [`NIL_RETURN_MAX_CHARS`], and no real attachment (that makes it a
    /// `Return`). "Not known" inside a long letter is a letter (`Other`), for a person to read:
    /// a wrong nil return would stop the chasing of an agency that does hold records.
    NilReturn,
    Other,
}

/// The outcome: what the message is, which rule decided, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub kind: Kind,
    pub rule: &'static str,
    pub reasons: Vec<String>,
}

impl fmt::Debug for LetterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LetterRef")
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::OwnMessage => f.write_str("OwnMessage"),
            Kind::Bounce {
                original_ids,
                failed_recipients,
                delayed_recipients,
                delivery,
            } => f
                .debug_struct("Bounce")
                .field("original_ids", original_ids)
                .field("failed_recipients", &failed_recipients.len())
                .field("delayed_recipients", &delayed_recipients.len())
                .field("delivery", delivery)
                .finish(),
            Kind::AutoReply { case_ref } => f
                .debug_struct("AutoReply")
                .field("case_ref", case_ref)
                .finish(),
            Kind::SecureNotice { case_ref } => f
                .debug_struct("SecureNotice")
                .field("case_ref", case_ref)
                .finish(),
            Kind::Referral => f.write_str("Referral"),
            Kind::CaseReply {
                case_ref,
                in_reply_to_letter,
                agency,
                reply,
            } => f
                .debug_struct("CaseReply")
                .field("case_ref", case_ref)
                .field("in_reply_to_letter", in_reply_to_letter)
                .field("agency", agency)
                .field("reply", reply)
                .finish(),
            Kind::Unmatched => f.write_str("Unmatched"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary: every word list the rules use, in one place.

/// Referral vocabulary, matched case-insensitively as whole words in the subject, the body and
/// attachment names. Text is split into words at every non-alphanumeric character, so
/// `SCSI-1`, `SCSI 1` and `SCSI – 1` are the same two words, and `referral` does not match
/// `referrals` or `preferral`.
pub const REFERRAL_VOCABULARY: &[&str] = &[
    "referral",
    "rapid review",
    "serious incident",
    "serious child safeguarding",
    "SCSI-1",
    "SCSI 1",
    "SCSI1",
    "case notification",
    "notification form",
    "notifiable incident",
];

/// Phrases of a nil return. See [`ReplyKind::NilReturn`] for the conservative conditions
/// around them.
pub const NIL_RETURN_PHRASES: &[&str] = &[
    "nil return",
    "nil response",
    "no involvement",
    "not known to us",
    "not known to our service",
    "not known to our services",
    "not known to this service",
    "not known to the service",
    "no records",
    "no record of",
    "no trace",
];

/// Words that turn "not known to us" into "…however, we do hold something": their presence near
/// the nil phrase makes the reply `Other`, for a person to read.
pub const NIL_RETURN_CONTRAST: &[&str] = &[
    "however",
    "but",
    "although",
    "though",
    "except",
    "apart from",
    "attached",
    "see below",
    "to follow",
    "will follow",
];

/// A nil phrase must appear within this many characters of the start of the reply's own text.
pub const NIL_RETURN_WINDOW_CHARS: usize = 300;
/// A reply whose own text (quoted history removed) is longer than this is a letter, not a nil
/// return, whatever it contains. Room is left for a signature and a typical disclaimer.
pub const NIL_RETURN_MAX_CHARS: usize = 1200;

/// Subject prefixes of out-of-office replies (case-insensitive, at the start of the subject).
pub const AUTO_REPLY_SUBJECT_PREFIXES: &[&str] = &[
    "automatic reply:",
    "auto reply:",
    "auto-reply:",
    "autoreply:",
    "auto response:",
    "auto-response:",
    "out of office:",
    "out of office reply:",
    "out of the office:",
];

/// Subject tags a sender types to have NHSmail (and similar) encrypt the message.
pub const SECURE_SUBJECT_TAGS: &[&str] = &["[secure]"];
/// Words of a secure-message notice.
pub const SECURE_NOTICE_PHRASES: &[&str] = &[
    "secure message",
    "secure email",
    "secure e mail",
    "encrypted message",
    "encrypted email",
    "secure portal",
    "egress",
    "mimecast",
];
/// Words that send the reader to a portal.
pub const SECURE_PORTAL_CUES: &[&str] = &[
    "portal",
    "click",
    "sign in",
    "log in",
    "login",
    "register",
    "read online",
    "read the message",
    "read the email",
    "view the message",
    "open the message",
];

/// Images smaller than this that are inline or have a Content-ID are signature logos, not a
/// return.
pub const DECORATION_MAX_BYTES: usize = 20 * 1024;

/// Human-readable form of the case reference pattern: `RR`, a hyphen, a four-digit year, a
/// hyphen, four or more digits (e.g. `RR-2026-0001`). Matched case-insensitively as a whole
/// word and returned upper-case by [`find_case_ref`].
pub const CASE_REF_PATTERN: &str = "RR-YYYY-NNNN";

// ---------------------------------------------------------------------------------------------
// The rules

type Rule = fn(&Message, &Context, &Scan) -> Option<Verdict>;

/// Rules 1–13 in order; [`unmatched`] is the fallback after them.
const RULES: &[(&str, Rule)] = &[
    ("unparseable", |msg, ctx, _| unparseable(msg, ctx)),
    ("own_message", |msg, ctx, _| own_message(msg, ctx)),
    ("bounce", |msg, ctx, _| bounce(msg, ctx)),
    ("auto_reply", auto_reply),
    ("secure_notice", secure_notice),
    ("automated_wording", automated::automated_wording),
    ("unreadable_here", unreadable_here),
    ("thread", thread),
    ("case_ref_in_subject", case_ref_in_subject),
    ("conversation", conversation),
    ("quoted_case_ref", quoted_case_ref),
    ("agency_sender_open_case", agency_sender_open_case),
    ("quotes_our_letter", quotes_our_letter),
    ("referral_trust", referral_trust),
    ("referral", referral),
];

/// The names of the rules in the order they run, the fallback last.
pub fn rule_names() -> Vec<&'static str> {
    RULES
        .iter()
        .map(|(name, _)| *name)
        .chain(["unmatched"])
        .collect()
}

/// Classifies one message. Pure; the first rule that fires wins.
pub fn classify(msg: &Message, ctx: &Context) -> Verdict {
    let scan = Scan::new(msg);
    RULES
        .iter()
        .find_map(|(_, rule)| rule(msg, ctx, &scan))
        .unwrap_or_else(|| unmatched(msg, ctx))
}

/// What the rules read of one message's text, each part folded into [`Words`] the first time a
/// rule asks for it and then shared: the subject, the whole body, the reply's own text (quoted
/// history cut, [`own_text`]) and the referral vocabulary found. Several rules read the same
/// text (most messages pass every rule); folding it once for all of them is what keeps a first
/// run over a full mailbox quick.
pub struct Scan<'m> {
    msg: &'m Message,
    subject: OnceCell<Words>,
    body: OnceCell<Words>,
    /// `None` when the own text is the whole body (then [`Scan::body`] serves).
    own: OnceCell<Option<Words>>,
    referral: OnceCell<Vec<String>>,
}

impl<'m> Scan<'m> {
    /// Nothing read yet.
    pub fn new(msg: &'m Message) -> Scan<'m> {
        Scan {
            msg,
            subject: OnceCell::new(),
            body: OnceCell::new(),
            own: OnceCell::new(),
            referral: OnceCell::new(),
        }
    }

    /// The subject's words.
    fn subject(&self) -> &Words {
        self.subject.get_or_init(|| words(&self.msg.subject))
    }

    /// The whole body's words, quoted history included.
    fn body(&self) -> &Words {
        self.body.get_or_init(|| words(&self.msg.body_text))
    }

    /// The words of the reply's own text ([`own_text`]).
    fn own(&self) -> &Words {
        let own = self.own.get_or_init(|| {
            let own = own_text(&self.msg.body_text);
            (own.len() < self.msg.body_text.len()).then(|| words(own))
        });
        match own {
            Some(own) => own,
            None => self.body(),
        }
    }

    /// [`referral_vocabulary_hits`], found once.
    fn referral_hits(&self) -> Vec<String> {
        self.referral
            .get_or_init(|| referral_vocabulary_hits(self.msg, self))
            .clone()
    }
}

fn verdict(rule: &'static str, kind: Kind, reasons: Vec<String>) -> Option<Verdict> {
    Some(Verdict {
        kind,
        rule,
        reasons,
    })
}

/// Rule 1: bytes that could not be read as a message at all.
pub fn unparseable(msg: &Message, _ctx: &Context) -> Option<Verdict> {
    if msg.parsed {
        return None;
    }
    verdict(
        "unparseable",
        Kind::Unmatched,
        vec!["the bytes could not be parsed as a message (no header fields found)".into()],
    )
}

/// Rule 2: mail we sent ourselves (a copy, a BCC, a message from our own alias).
/// The local-part prefix of every Message-ID caseclerk mints (see `letters::message_id`).
pub const OWN_ID_PREFIX: &str = "caseclerk.";

pub fn own_message(msg: &Message, ctx: &Context) -> Option<Verdict> {
    let mut reasons = Vec::new();
    if let Some(from) = &msg.from
        && ctx
            .own_addresses
            .iter()
            .any(|own| own.trim().eq_ignore_ascii_case(&from.email))
    {
        reasons.push("From address is one of our own mailbox addresses".to_string());
    }
    // Only ids we minted (`caseclerk.…@<id domain>`): the partnership's own council mints ids in
    // the same domain for every colleague's mail, and those must never be mistaken for ours.
    let own_domain = ctx.own_id_domain.trim().trim_start_matches('@');
    if !own_domain.is_empty()
        && let Some(id) = &msg.message_id
        && id.rsplit_once('@').is_some_and(|(local, domain)| {
            domain.eq_ignore_ascii_case(own_domain)
                && local.to_ascii_lowercase().starts_with(OWN_ID_PREFIX)
        })
    {
        reasons.push(format!(
            "Message-ID <{id}> is one we minted in our id domain {own_domain}"
        ));
    }
    if reasons.is_empty() {
        return None;
    }
    verdict("own_message", Kind::OwnMessage, reasons)
}

/// Words of a delivery report that say the letter is only delayed and still being tried, as
/// Postfix ("Delayed Mail (still being retried)", "THIS IS A WARNING ONLY"), sendmail ("Warning:
/// could not send message for past 4 hours"), Exchange ("Delivery delayed", "Delivery is delayed
/// to these recipients", "Delivery will continue to be attempted") and Gmail ("Delivery
/// incomplete", "There was a temporary problem delivering your message") write them.
pub const DELAY_PHRASES: &[&str] = &[
    "delivery has been delayed",
    "delivery delayed",
    "delivery is delayed",
    "delivery incomplete",
    "delayed mail",
    "still being retried",
    "will be retried",
    "will retry",
    "will continue to be attempted",
    "hasn't been delivered yet",
    "has not been delivered yet",
    "has not yet been delivered",
    "this is a warning only",
    "warning could not send message",
    "temporary problem delivering",
];

/// Words that say delivery failed for good; any of them makes a report without machine-readable
/// status a failure even when it also uses delay words.
pub const FAILURE_PHRASES: &[&str] = &[
    "delivery has failed",
    "delivery failed",
    "could not be delivered to",
    "couldn't be delivered to",
    "wasn't delivered",
    "was not delivered",
    "message not delivered",
    "address not found",
    "user unknown",
    "does not exist",
    "undeliverable",
    "permanent error",
    "permanent failure",
    "gave up",
];

/// Rule 3: delivery status notifications.
///
/// Fires on a `multipart/report; report-type=delivery-status`, or on a message from
/// MAILER-DAEMON/postmaster (or Exchange's `MicrosoftExchange…` system mailbox) with an empty
/// Return-Path (old-style plain-text bounces). The original Message-IDs come from the returned
/// message or headers; failing that from `Message-ID:` lines of a returned copy in the text;
/// failing that from the report's own In-Reply-To/References (Exchange sets them) — each source
/// is named in the reasons. A bounce is never threaded as a reply.
///
/// What it reports ([`Delivery`]): from the machine-readable status when there is one — any
/// recipient failed for good → `Failed`; else any still tried → `Delayed`; else delivered,
/// relayed or expanded → `Delivered`. Without one, from its words ([`delivery_from_words`]).
pub fn bounce(msg: &Message, _ctx: &Context) -> Option<Verdict> {
    let is_report = msg.content_type == "multipart/report"
        && msg.report_type.as_deref() == Some("delivery-status");
    let daemon = msg.from.as_ref().is_some_and(|a| is_daemon(&a.email));
    let empty_return_path = msg.return_path.as_deref() == Some("");
    let mut reasons = Vec::new();
    if is_report {
        reasons.push("Content-Type multipart/report; report-type=delivery-status".to_string());
    } else if daemon && empty_return_path {
        reasons.push(
            "From is a mail system address (MAILER-DAEMON/postmaster) with an empty Return-Path"
                .to_string(),
        );
    } else {
        return None;
    }
    Some(bounce_verdict(msg, reasons))
}

/// A delivery report's verdict once it is known to be one (`reasons` say why): what it reports
/// and which of our letters it names (see [`bounce`]).
fn bounce_verdict(msg: &Message, mut reasons: Vec<String>) -> Verdict {
    let mut original_ids = Vec::new();
    let mut failed_recipients = Vec::new();
    let mut delayed_recipients = Vec::new();
    let mut delivery = None;
    if let Some(dsn) = &msg.dsn {
        original_ids = dsn.original_message_ids.clone();
        failed_recipients = dsn.failed_recipients.clone();
        delayed_recipients = dsn.delayed_recipients.clone();
        let status = || {
            dsn.status
                .as_deref()
                .map_or_else(|| "not given".to_string(), token)
        };
        let action = dsn.action.as_deref().map(token);
        if !failed_recipients.is_empty() {
            reasons.push(format!(
                "{} failed recipient(s), Status: {}",
                failed_recipients.len(),
                status()
            ));
            delivery = Some(Delivery::Failed);
        } else if !delayed_recipients.is_empty() {
            reasons.push(format!(
                "delayed, not failed: {} recipient(s) still being tried (Action: {}, Status: {})",
                delayed_recipients.len(),
                action.as_deref().unwrap_or("not given"),
                status()
            ));
            delivery = Some(Delivery::Delayed);
        } else if let Some(a) =
            action.filter(|a| ["delivered", "relayed", "expanded"].contains(&a.as_str()))
        {
            reasons.push(format!("no recipient failed or waits (Action: {a})"));
            delivery = Some(Delivery::Delivered);
        } else {
            reasons.push("no recipient status in the report".to_string());
        }
        if !original_ids.is_empty() {
            reasons.push("original Message-ID taken from the returned message".to_string());
        }
    } else {
        reasons.push("no machine-readable delivery status: failed recipients unknown".to_string());
    }
    let delivery = delivery.unwrap_or_else(|| {
        let (d, why) = delivery_from_words(msg);
        reasons.push(why);
        d
    });
    if original_ids.is_empty() {
        original_ids = message_id_lines(&msg.body_text);
        if !original_ids.is_empty() {
            reasons.push(
                "original Message-ID taken from a returned copy in the text (Message-ID: line)"
                    .to_string(),
            );
        }
    }
    if original_ids.is_empty() {
        for id in msg.in_reply_to.iter().chain(&msg.references) {
            push_unique(&mut original_ids, id.clone());
        }
        if !original_ids.is_empty() {
            reasons.push(
                "original Message-ID taken from the report's In-Reply-To/References".to_string(),
            );
        }
    }
    if original_ids.is_empty() {
        reasons.push("original Message-ID not found: the bounce cannot be linked".to_string());
    }
    Verdict {
        rule: "bounce",
        kind: Kind::Bounce {
            original_ids,
            failed_recipients,
            delayed_recipients,
            delivery,
        },
        reasons,
    }
}

/// A report without machine-readable status, read by its subject and text: `Delayed` when it
/// uses a [`DELAY_PHRASES`] phrase and no [`FAILURE_PHRASES`] one; otherwise `Failed` (a report
/// nobody can read is treated as a failure, so a person looks).
pub fn delivery_from_words(msg: &Message) -> (Delivery, String) {
    let text = words(&format!("{}\n{}", msg.subject, msg.body_text));
    if let Some(term) = first_phrase(&text, &FAILURE_WORDS, false) {
        return (
            Delivery::Failed,
            format!("the report says \"{term}\": a failure"),
        );
    }
    match first_phrase(&text, &DELAY_WORDS, false) {
        Some(term) => (
            Delivery::Delayed,
            format!("the report says \"{term}\": delayed, still being tried"),
        ),
        None => (
            Delivery::Failed,
            "no words say it is only a delay: treated as a failure".to_string(),
        ),
    }
}

/// Rule 4: automatic replies.
///
/// Strong signals (one is enough): `Auto-Submitted` other than `no` (RFC 3834);
/// `Precedence: bulk`, `junk` or `auto_reply`; a vacation-program header
/// ([`crate::core::intake::AUTOREPLY_HEADERS`]); an empty Return-Path (`<>`); a read receipt
/// (`multipart/report; report-type=disposition-notification`).
///
/// Weak signals (two are needed): `X-Auto-Response-Suppress` — on an *incoming* message it says
/// the sender does not want auto-replies, which ticketing systems, apps and some people's clients
/// put on ordinary mail, so it is not evidence of automation on its own;
/// `X-MS-Exchange-Inbox-Rules-Loop` — Exchange also stamps it on mail an inbox rule forwarded,
/// e.g. a referral auto-forwarded from a colleague's mailbox; `Precedence: list` — list servers
/// stamp it on every human post, and a panel member may answer through a distribution list;
/// an out-of-office subject prefix ([`AUTO_REPLY_SUBJECT_PREFIXES`]) — supporting evidence only.
///
/// Two exceptions when no signal says *reply* (Auto-Submitted: auto-replied, Precedence:
/// auto_reply, a vacation header, a read receipt or an out-of-office prefix), i.e. the message
/// is merely machine-*generated*:
/// - a secure-message notice is machine-generated too: this rule steps aside for
///   [`secure_notice`], so a notice that an agency return is waiting is not hidden;
/// - a machine-generated message with referral vocabulary (an online referral form, a case
///   management system's notification) is neither dropped as an auto-reply nor allowed to open a
///   case from a no-reply sender: it is `Unmatched`, for a person.
///
/// An automatic message whose subject or own text says delivery failed ([`FAILURE_PHRASES`]) —
/// a mail gateway's "message blocked", a plain-text bounce with a Return-Path, one marked
/// auto-replied — is a delivery report, not a reply: its verdict is [`bounce`]'s, so the letter
/// it names is marked undelivered rather than left looking sent.
///
/// The case reference is carried when the message is threadable (see [`thread`] and
/// [`case_ref_in_subject`]).
pub fn auto_reply(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    // (reason, says "reply")
    let mut strong: Vec<(String, bool)> = Vec::new();
    let mut weak: Vec<(String, bool)> = Vec::new();

    if let Some(value) = msg.auto_submitted.as_deref() {
        let value = first_token(value);
        if !value.is_empty() && value != "no" {
            strong.push((
                format!("Auto-Submitted: {}", token(value)),
                value == "auto-replied",
            ));
        }
    }
    if let Some(value) = msg.precedence.as_deref() {
        match first_token(value) {
            v @ ("bulk" | "junk") => strong.push((format!("Precedence: {v}"), false)),
            "auto_reply" => strong.push(("Precedence: auto_reply".to_string(), true)),
            "list" => weak.push(("Precedence: list".to_string(), false)),
            _ => {}
        }
    }
    if msg.autoreply_header {
        strong.push((
            "a vacation-program header (X-Autoreply family) is present".to_string(),
            true,
        ));
    }
    if msg.return_path.as_deref() == Some("") {
        strong.push(("empty Return-Path (<>)".to_string(), false));
    }
    if msg.content_type == "multipart/report"
        && msg.report_type.as_deref() == Some("disposition-notification")
    {
        strong.push((
            "read receipt (multipart/report; report-type=disposition-notification)".to_string(),
            true,
        ));
    }
    if msg
        .x_auto_response_suppress
        .as_deref()
        .is_some_and(|v| !v.trim().is_empty())
    {
        weak.push(("X-Auto-Response-Suppress is present".to_string(), false));
    }
    if msg.inbox_rules_loop {
        weak.push((
            "X-MS-Exchange-Inbox-Rules-Loop is present".to_string(),
            false,
        ));
    }
    if let Some(prefix) = auto_reply_prefix(&msg.subject) {
        weak.push((
            format!("subject starts with the out-of-office prefix \"{prefix}\""),
            true,
        ));
    }

    if strong.is_empty() && weak.len() < 2 {
        return None;
    }
    let says_reply = strong.iter().chain(&weak).any(|(_, reply)| *reply);
    let mut reasons: Vec<String> = strong.into_iter().chain(weak).map(|(r, _)| r).collect();
    // An automatic message that says delivery failed is a delivery report whatever its headers
    // (a mail gateway's "message blocked", a plain-text bounce with a Return-Path, one marked
    // auto-replied): read as an automatic reply it would leave a letter that never arrived
    // looking sent.
    // (Its own text only: an out-of-office quoting one of our letters is not a report.)
    let failure = first_phrase(scan.subject(), &FAILURE_WORDS, false)
        .or_else(|| first_phrase(scan.own(), &FAILURE_WORDS, false));
    if let Some(term) = failure {
        reasons.push(format!(
            "automatic, and it says \"{term}\": read as a report that delivery failed"
        ));
        return Some(bounce_verdict(msg, reasons));
    }

    if !says_reply {
        if secure_notice_evidence(msg, scan).is_some() {
            return None;
        }
        let hits = scan.referral_hits();
        if !hits.is_empty() {
            reasons.extend(hits);
            reasons.push(
                "machine-generated, not a reply, yet it uses referral vocabulary (e.g. an online \
                 referral form): left for a person rather than dropped or opened as a case"
                    .to_string(),
            );
            return verdict("auto_reply", Kind::Unmatched, reasons);
        }
    }
    let case_ref = threadable_case_ref(msg, ctx, &mut reasons);
    verdict("auto_reply", Kind::AutoReply { case_ref }, reasons)
}

/// Rule 5: "you have received a secure message — read it on the portal" notices (NHSmail
/// `[secure]`, Egress, Mimecast and the like). A person must open the portal.
///
/// Fires when the message has no real attachment (a message that carries its documents is
/// delivered content, not a notice) and, in the reply's own text (quoted history removed, so a
/// quoted letter of ours asking for "secure email" does not count), either the subject carries a
/// [`SECURE_SUBJECT_TAGS`] tag and the text has a notice phrase or a portal cue, or the text has
/// both a [`SECURE_NOTICE_PHRASES`] phrase and a [`SECURE_PORTAL_CUES`] cue.
///
/// Only the sender's words count: the built-in external-sender banners ("… Do not click links
/// …") are removed ([`reply_text`]; the classifier has no configured banners), and so are web
/// addresses (`https://…`, `www.…`) —
/// their host and path are not words the message says to its reader. The NHSmail footer under
/// every nhs.net message ("NHSmail is the secure email and directory service … For more
/// information and to find out how you can switch, https://portal.nhs.net/help/joiningnhsmail")
/// has a notice phrase but its only portal word is in its address, so a referral, nil return or
/// return typed into the body from nhs.net is not a notice.
pub fn secure_notice(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    let mut reasons = secure_notice_evidence(msg, scan)?;
    if let Some(value) = msg.auto_submitted.as_deref()
        && first_token(value) != "no"
        && !value.trim().is_empty()
    {
        reasons.push(format!(
            "also marked Auto-Submitted: {} (notices are machine-generated)",
            token(first_token(value))
        ));
    }
    let case_ref = threadable_case_ref(msg, ctx, &mut reasons);
    verdict("secure_notice", Kind::SecureNotice { case_ref }, reasons)
}

/// Rule 5 (after [`automated::automated_wording`]): mail whose meaning or content caseclerk
/// cannot read, for a person:
/// - an Outlook **recall** ("Recall: …" with "would like to recall the message"): caseclerk
///   cannot take back a vote counted or a return filed, and nobody would otherwise know the
///   sender wanted to;
/// - **S/MIME** encrypted or opaque-signed mail (`application/pkcs7-mime`, `smime.p7m`; a detached
///   signature, `multipart/signed` with a `.p7s`, is readable and not caught): its text
///   and files are inside, unreadable here — filed as a reply it would be an empty return, and
///   forwarded, a file nobody on the panel can open;
///
/// (Outlook's TNEF `winmail.dat` is not among them: it often rides beside a readable body — a
/// vote — and a return inside it is still a return, forwarded as it came; see Known limits.)
/// Each names the case the subject names, if one, in its reasons.
pub fn unreadable_here(msg: &Message, ctx: &Context, _scan: &Scan) -> Option<Verdict> {
    let recall = starts_ignoring_case(msg.subject.trim(), "recall:")
        && own_text(&msg.body_text)
            .to_lowercase()
            .contains("would like to recall the message");
    let ct = msg.content_type.as_str();
    let encrypted = matches!(ct, "application/pkcs7-mime" | "application/x-pkcs7-mime")
        || msg.attachments.iter().any(|a| {
            let name = a.filename.to_ascii_lowercase();
            matches!(
                a.content_type.as_str(),
                "application/pkcs7-mime" | "application/x-pkcs7-mime"
            ) || name.ends_with(".p7m")
        });
    let what = if recall {
        "an Outlook recall of an earlier message: caseclerk cannot take back a vote or a return; \
         a person checks what it recalls"
    } else if encrypted {
        "S/MIME-encrypted (or opaque-signed) mail: its text and files are inside, unreadable here; \
         a person opens it"
    } else {
        return None;
    };
    let mut reasons = vec![what.to_string()];
    let named = existing_subject_refs(msg, ctx);
    if !named.is_empty() {
        reasons.push(format!("the subject names {}", named.join(", ")));
    }
    verdict("unreadable_here", Kind::Unmatched, reasons)
}

/// Rule 6: In-Reply-To/References name a message the engine knows → a reply on its case.
///
/// In-Reply-To (the direct parent) is tried first, then References from the most recent id
/// backwards. Ids are compared without brackets and ignoring ASCII case. When the hits belong to
/// more than one case, nothing is guessed: `Unmatched`.
pub fn thread(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    match thread_hit(msg, ctx) {
        ThreadHit::None => None,
        ThreadHit::Ambiguous { header, case_refs } => verdict(
            "thread",
            Kind::Unmatched,
            vec![format!(
                "{header} matches messages of more than one case ({}): left for a person",
                case_refs.join(", ")
            )],
        ),
        ThreadHit::Hit { header, known } => {
            let mut reasons = vec![describe_hit(header, known)];
            let named = existing_subject_refs(msg, ctx);
            let others: Vec<&str> = named
                .iter()
                .map(String::as_str)
                .filter(|r| *r != known.case_ref)
                .collect();
            // A reply on one case's thread whose subject was changed to name another case only
            // (an agency answering an old request with the return for a new case) is for a
            // person: filed by its thread, one child's return would go into another's papers.
            if !others.is_empty() && others.len() == named.len() {
                reasons.push(format!(
                    "but its subject names only another existing case ({}): left for a person",
                    others.join(", ")
                ));
                return verdict("thread", Kind::Unmatched, reasons);
            }
            if !others.is_empty() {
                reasons.push(format!(
                    "note: the subject also names another existing case ({}); threading wins",
                    others.join(", ")
                ));
            }
            if let Some(why) = own_text_names_only_another(msg, ctx, &known.case_ref) {
                reasons.push(why);
                return verdict("thread", Kind::Unmatched, reasons);
            }
            if let Some(why) = new_referral_off_subject(
                msg,
                scan,
                &named,
                (&known.case_ref, known.letter.is_some()),
            ) {
                reasons.push(why);
                return verdict("thread", Kind::Unmatched, reasons);
            }
            let kind = case_reply(
                (msg, ctx, scan),
                known.case_ref.clone(),
                known.letter.clone(),
                &mut reasons,
            );
            verdict("thread", kind, reasons)
        }
    }
}

/// A message on a case's thread (or Outlook conversation) that reads as another child's
/// referral: perhaps a new referral sent as a reply (the referrer answering our acknowledgement,
/// or following up their own referral, with another child's form). Filed by its thread, that
/// child would have no case and their form would go into this case's papers; so it is for a
/// person. What counts: words that name another child or another referral ([`ANOTHER_CHILD`],
/// "not a new referral" excepted) in the subject or the sender's own text, when the subject
/// names no case — or names only this one (`case`) and the message carries a document (a
/// form): our letters' subjects carry the case reference, and a reply keeps it. And on the
/// thread of one of **our letters** (`ours`), a subject that no longer names the case but uses
/// new-referral words itself, or an attachment so named ("SCSI-1 notification – Child B",
/// "Notification form.docx"), is enough. The reason, or `None`.
fn new_referral_off_subject(
    msg: &Message,
    scan: &Scan,
    named: &[String],
    (case, ours): (&str, bool),
) -> Option<String> {
    let only_this = !named.is_empty() && named.iter().all(|r| r == case);
    if !(named.is_empty() || only_this && has_real_attachment(msg)) {
        return None;
    }
    if ours && named.is_empty() {
        let strong = &*NEW_REFERRAL_WORDS;
        let term = first_phrase(scan.subject(), strong, true).or_else(|| {
            msg.attachments
                .iter()
                .find_map(|a| first_phrase(&words(&a.filename), strong, true))
        });
        if let Some(term) = term {
            return Some(format!(
                "but its subject no longer names the case and uses referral vocabulary \
                 \"{term}\": it could be a new referral sent as a reply; left for a person"
            ));
        }
    }
    let another = &*ANOTHER_CHILD_WORDS;
    let term = first_phrase(scan.subject(), another, true)
        .or_else(|| first_phrase(scan.own(), another, true))?;
    Some(format!(
        "but it speaks of \"{term}\": it could be a new referral sent as a reply; left for a \
         person"
    ))
}

/// A message that its thread or subject puts on `case` while the sender's own text (quoted
/// history cut) names other existing cases and not this one — an agency answering an old case's
/// request, subject kept, with "our completed template for RR-2026-0007": filed by its thread,
/// one child's return would go into another's papers (and the other case's agency chased). For a
/// person; the reason, or `None`. Own text naming this case as well is filed by its thread, and
/// so is a vote.
fn own_text_names_only_another(msg: &Message, ctx: &Context, case: &str) -> Option<String> {
    // A vote (its code in the subject) is read as a vote: "MEETS – the younger sibling of the
    // child in RR-2026-0003" files no document in anyone's papers.
    if !crate::core::decisions::find_codes(&msg.subject).is_empty() {
        return None;
    }
    let named = existing_refs_in(own_text(&msg.body_text), ctx);
    if named.is_empty() || named.iter().any(|r| r == case) {
        return None;
    }
    Some(format!(
        "but the sender's own text names only another existing case ({}): left for a person",
        named.join(", ")
    ))
}

/// Rule 7: the subject names exactly one existing case → a reply on it. Two or more existing
/// cases in one subject → `Unmatched` (nothing guessed). A case reference that is not an
/// existing case does not fire (the fallback's reasons mention it). Because this rule runs
/// before [`referral`], a new referral whose subject cites an existing case (a sibling, say)
/// lands on that case as a reply — visible there, not lost.
pub fn case_ref_in_subject(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    let refs = existing_subject_refs(msg, ctx);
    match refs.as_slice() {
        [] => None,
        [one] => {
            let mut reasons = vec![format!(
                "subject contains the existing case reference {one}"
            )];
            if let Some(why) = own_text_names_only_another(msg, ctx, one) {
                reasons.push(why);
                return verdict("case_ref_in_subject", Kind::Unmatched, reasons);
            }
            let kind = case_reply((msg, ctx, scan), one.clone(), None, &mut reasons);
            verdict("case_ref_in_subject", kind, reasons)
        }
        many => verdict(
            "case_ref_in_subject",
            Kind::Unmatched,
            vec![format!(
                "subject names more than one existing case ({}): left for a person",
                many.join(", ")
            )],
        ),
    }
}

/// Rule 10: a fresh message (no thread we know, no case reference) from an agency that is on exactly one
/// open case belongs to that case: agencies often start a new email to send their return. On
/// several open cases it is left for a person; an agency on none falls through to the later rules.
pub fn agency_sender_open_case(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    if ctx.agency_cases.is_empty() {
        return None;
    }
    let mut reasons = Vec::new();
    let agency = agency_for(msg, ctx, &mut reasons)?;
    let mut cases: Vec<&str> = ctx
        .agency_cases
        .iter()
        .filter(|c| c.agency == agency)
        .map(|c| c.case_ref.as_str())
        .collect();
    cases.sort_unstable();
    cases.dedup();
    let awaited = |case: &str| {
        ctx.agency_cases
            .iter()
            .any(|c| c.agency == agency && c.case_ref == case && c.awaited)
    };
    match cases.as_slice() {
        [] => None,
        [one] if !awaited(one) => {
            reasons.push(format!(
                "no thread or case reference; agency {agency} is on one open case, {one}, but no \
                 return is awaited from it there (not asked yet, or returned): left for a person"
            ));
            verdict("agency_sender_open_case", Kind::Unmatched, reasons)
        }
        [one] => {
            reasons.push(format!(
                "no thread or case reference; agency {agency} is on one open case, {one}"
            ));
            // "Rapid review" is how agencies title their returns; the other referral words could
            // mean a *new* referral from the same agency, which must never vanish into an old case.
            let strong = &*NEW_REFERRAL_WORDS;
            let hit = first_phrase(scan.subject(), strong, false)
                .or_else(|| {
                    msg.attachments
                        .iter()
                        .find_map(|a| first_phrase(&words(&a.filename), strong, false))
                })
                .or_else(|| first_phrase(scan.body(), strong, false));
            if let Some(term) = hit {
                reasons.push(format!("referral vocabulary \"{term}\""));
                reasons
                    .push("it could be a new referral or a return: left for a person".to_string());
                return verdict("agency_sender_open_case", Kind::Unmatched, reasons);
            }
            let reply = reply_kind(msg, scan, &mut reasons);
            verdict(
                "agency_sender_open_case",
                Kind::CaseReply {
                    case_ref: one.to_string(),
                    in_reply_to_letter: None,
                    agency: Some(agency),
                    reply,
                },
                reasons,
            )
        }
        many => {
            reasons.push(format!(
                "no thread or case reference; agency {agency} is on more than one open case ({}): left for a person",
                many.join(", ")
            ));
            verdict("agency_sender_open_case", Kind::Unmatched, reasons)
        }
    }
}

/// Rule 13: a new referral — [`REFERRAL_VOCABULARY`] in the subject, an attachment name or the
/// body (the whole body: a forwarded referral sits below the forwarding note).
///
/// Mailing-list and newsletter traffic (List-Id, List-Unsubscribe or List-Post present) never
/// opens a case: with vocabulary it is `Unmatched`, for a person. A message without vocabulary
/// falls through to [`unmatched`]. Attachments that will not travel to the panel
/// ([`trust::attachment_risk`]) are noted in the reasons.
pub fn referral(msg: &Message, _ctx: &Context, scan: &Scan) -> Option<Verdict> {
    let mut reasons = scan.referral_hits();
    if reasons.is_empty() {
        return None;
    }
    if msg.list_headers {
        reasons.push(
            "mailing-list headers (List-Id/List-Unsubscribe/List-Post): list traffic never opens \
             a case"
                .to_string(),
        );
        return verdict("referral", Kind::Unmatched, reasons);
    }
    if !msg.in_reply_to.is_empty() || !msg.references.is_empty() {
        reasons.push(
            "note: In-Reply-To/References name messages we do not know (a reply to older mail?)"
                .to_string(),
        );
    }
    if let Some(withheld) = trust::withheld_summary(&msg.attachments) {
        reasons.push(format!(
            "flag: {withheld}; they are never forwarded to the panel"
        ));
    }
    verdict("referral", Kind::Referral, reasons)
}

/// Rule 8: Outlook's conversation. `Thread-Index` continues the conversation of our letters on
/// a case (every letter of a case carries the same header block) or of a message filed on a case;
/// or `Thread-Topic` (the conversation's original subject) names an existing case. One case → a
/// reply on it; more than one → `Unmatched` (nothing guessed).
pub fn conversation(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    let mut refs: Vec<String> = Vec::new();
    let mut reasons = Vec::new();
    if let Some(conv) = &msg.thread_conversation {
        for r in ctx.case_refs.by_conversation(conv) {
            reasons.push(format!(
                "Thread-Index continues the Outlook conversation of our letters on {r}"
            ));
            push_unique(&mut refs, r.clone());
        }
        for c in &ctx.conversations {
            if c.conversation.eq_ignore_ascii_case(conv) && !refs.contains(&c.case_ref) {
                reasons.push(format!(
                    "Thread-Index continues the Outlook conversation of a message filed on {}",
                    c.case_ref
                ));
                push_unique(&mut refs, c.case_ref.clone());
            }
        }
    }
    if let Some(topic) = &msg.thread_topic {
        for r in existing_refs_in(topic, ctx) {
            if !refs.contains(&r) {
                reasons.push(format!("Thread-Topic names the existing case {r}"));
                push_unique(&mut refs, r);
            }
        }
    }
    match refs.as_slice() {
        [] => None,
        [one] => {
            let named = existing_subject_refs(msg, ctx);
            if let Some(why) = new_referral_off_subject(msg, scan, &named, (one, false)) {
                reasons.push(why);
                return verdict("conversation", Kind::Unmatched, reasons);
            }
            let kind = case_reply((msg, ctx, scan), one.clone(), None, &mut reasons);
            verdict("conversation", kind, reasons)
        }
        many => {
            reasons.push(format!(
                "the Outlook conversation points to more than one case ({}): left for a person",
                many.join(", ")
            ));
            verdict("conversation", Kind::Unmatched, reasons)
        }
    }
}

/// Rule 9: the body — quoted history included, where a reply carries the letter it answers —
/// names exactly one existing case → a reply on it. When the sender's own text (quoted history
/// removed) uses new-referral words ([`REFERRAL_VOCABULARY`] less "rapid review", which is how
/// people write about the review itself), it could be a new referral that mentions an old case:
/// `Unmatched`. Two or more cases → `Unmatched`.
pub fn quoted_case_ref(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    let refs = existing_refs_in(&msg.body_text, ctx);
    match refs.as_slice() {
        [] => None,
        [one] => {
            let mut reasons = vec![format!("the body names the existing case {one}")];
            let strong = &*NEW_REFERRAL_WORDS;
            if let Some(term) = first_phrase(scan.own(), strong, false) {
                reasons.push(format!(
                    "the sender's own text uses referral vocabulary \"{term}\": it could be a new \
                     referral that mentions {one}; left for a person"
                ));
                return verdict("quoted_case_ref", Kind::Unmatched, reasons);
            }
            let kind = case_reply((msg, ctx, scan), one.clone(), None, &mut reasons);
            verdict("quoted_case_ref", kind, reasons)
        }
        many => verdict(
            "quoted_case_ref",
            Kind::Unmatched,
            vec![format!(
                "the body names more than one existing case ({}): left for a person",
                many.join(", ")
            )],
        ),
    }
}

/// Rule 11: the body quotes one of our letters, yet no case was found (the reference was edited
/// out, or the case is gone): a reply to us is never a new referral → `Unmatched`. Evidence: a
/// quoted `From:` or "… wrote:" line with one of our addresses; a Message-ID we minted; "keep(ing) RR-…" (our
/// letters ask for the reference to stay in the subject); the word "caseclerk".
pub fn quotes_our_letter(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    let reasons = our_letter_evidence(msg, ctx, scan);
    if reasons.is_empty() {
        return None;
    }
    let mut reasons = reasons;
    reasons.push(
        "it answers one of our letters but names no case we can find: left for a person, never \
         a new referral"
            .to_string(),
    );
    verdict("quotes_our_letter", Kind::Unmatched, reasons)
}

fn our_letter_evidence(msg: &Message, ctx: &Context, scan: &Scan) -> Vec<String> {
    let mut reasons = Vec::new();
    let ours: Vec<String> = ctx
        .own_addresses
        .iter()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    // Outlook/Exchange quote "From: … <our address>"; Gmail and Apple Mail "On …, … <our
    // address> wrote:". The markers are compared ignoring ASCII case, as `text::own_text` does;
    // only a line that has one is lowercased to look for our addresses in.
    let quoted_from_us = !ours.is_empty()
        && msg.body_text.lines().any(|line| {
            let line = line.trim_matches(|c: char| c == '>' || c == '*' || c.is_whitespace());
            (starts_ignoring_case(line, "from:") || ends_ignoring_case(line, "wrote:")) && {
                let line = line.to_lowercase();
                ours.iter().any(|a| line.contains(a.as_str()))
            }
        });
    if quoted_from_us {
        reasons.push(
            "the body quotes a From: or \"… wrote:\" line with one of our addresses".to_string(),
        );
    }
    let domain = ctx
        .own_id_domain
        .trim()
        .trim_start_matches('@')
        .to_lowercase();
    // Only a word with an `@` can end with our id domain; only such a word is lowercased.
    let minted = !domain.is_empty() && {
        let ending = format!("@{domain}");
        msg.body_text
            .split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '(' | ')'))
            .filter(|t| t.contains('@'))
            .any(|t| {
                let t = t.to_lowercase();
                t.starts_with(OWN_ID_PREFIX) && t.ends_with(&ending)
            })
    };
    if minted {
        reasons.push("the body quotes a Message-ID we minted".to_string());
    }
    let w = scan.body();
    let word = |i: usize| w.get(i).unwrap_or_default();
    let keep = (0..w.len().saturating_sub(3)).any(|i| {
        matches!(word(i), "keep" | "keeping")
            && word(i + 1) == "rr"
            && word(i + 2).len() == 4
            && word(i + 2).chars().all(|c| c.is_ascii_digit())
            && word(i + 3).chars().all(|c| c.is_ascii_digit())
    });
    if keep {
        reasons.push(
            "the body quotes our request to keep a case reference in the subject".to_string(),
        );
    }
    if w.contains("caseclerk") {
        reasons.push("the body names caseclerk".to_string());
    }
    reasons
}

/// Rule 12: who may open a case (see [`crate::core::trust`]). Fires only on a would-be referral
/// (referral vocabulary, no list headers): spam-marked or failed authentication → `Unmatched`
/// whoever the sender; an untrusted sender (when `trusted_domains` is set) without a passing
/// verdict, or with an unsafe attachment → `Unmatched`. Otherwise it steps aside for [`referral`].
pub fn referral_trust(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    if msg.list_headers {
        return None;
    }
    let mut reasons = scan.referral_hits();
    if reasons.is_empty() {
        return None;
    }
    let withheld = trust::withheld_summary(&msg.attachments);
    let stopped = |mut reasons: Vec<String>| {
        if let Some(w) = &withheld {
            reasons.push(format!("flag: {w}"));
        }
        verdict("referral_trust", Kind::Unmatched, reasons)
    };
    let policy = &ctx.trust;
    if let Some(spam) = trust::spam_reason(msg, &policy.spam) {
        reasons.push(spam);
        reasons.push("a message marked as spam opens no case and is sent to nobody".to_string());
        return stopped(reasons);
    }
    let auth = trust::authentication(msg, policy.authserv_id.as_deref());
    if let trust::Auth::Fail(why) = &auth {
        reasons.push(format!("sender authentication failed: {why}"));
        reasons.push("a referral that fails authentication opens no case".to_string());
        return stopped(reasons);
    }
    if policy.trusted_domains.is_empty() || sender_trusted(msg, ctx) {
        return None;
    }
    match &auth {
        trust::Auth::Pass(_) if withheld.is_none() => None,
        trust::Auth::Pass(evidence) => {
            reasons.push(format!(
                "sender is not in trusted_domains or the agency directory; authenticated \
                 ({evidence}), but an untrusted sender's unsafe file is left for a person"
            ));
            stopped(reasons)
        }
        trust::Auth::Unverified(why) | trust::Auth::Fail(why) => {
            reasons.push(format!(
                "sender is not in trusted_domains or the agency directory, and authentication \
                 did not pass ({why}): left for a person"
            ));
            stopped(reasons)
        }
    }
}

/// The From address is in a `trusted_domains` pattern or the agency directory.
fn sender_trusted(msg: &Message, ctx: &Context) -> bool {
    let Some(email) = msg.from.as_ref().map(|a| a.email.as_str()) else {
        return false;
    };
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
    trust::domain_trusted(domain, &ctx.trust.trusted_domains)
        || agency_for(msg, ctx, &mut Vec::new()).is_some()
}

/// Rule 14, the fallback: keep the message and list it for a person, with whatever hints help.
pub fn unmatched(msg: &Message, ctx: &Context) -> Verdict {
    let mut reasons = vec![
        "no rule matched: not ours, not automated, not threaded to a known message, no existing \
         case reference in the subject, no referral vocabulary"
            .to_string(),
    ];
    let unknown: Vec<String> = find_case_refs(&msg.subject)
        .into_iter()
        .filter(|r| !ctx.case_refs.contains(r))
        .collect();
    if !unknown.is_empty() {
        reasons.push(format!(
            "subject names {} which is not an existing case",
            unknown.join(", ")
        ));
    }
    if !msg.in_reply_to.is_empty() || !msg.references.is_empty() {
        reasons.push(
            "In-Reply-To/References present, but no id matches a message we know".to_string(),
        );
    }
    Verdict {
        kind: Kind::Unmatched,
        rule: "unmatched",
        reasons,
    }
}

// ---------------------------------------------------------------------------------------------
// Case replies

fn case_reply(
    (msg, ctx, scan): (&Message, &Context, &Scan),
    case_ref: String,
    in_reply_to_letter: Option<LetterRef>,
    reasons: &mut Vec<String>,
) -> Kind {
    let agency = agency_for(msg, ctx, reasons);
    let reply = reply_kind(msg, scan, reasons);
    Kind::CaseReply {
        case_ref,
        in_reply_to_letter,
        agency,
        reply,
    }
}

/// Return when there is a real attachment; NilReturn when [`nil_return`] says so; else Other.
fn reply_kind(msg: &Message, scan: &Scan, reasons: &mut Vec<String>) -> ReplyKind {
    let mut ignored: Vec<&'static str> = Vec::new();
    let mut real: Vec<&Attachment> = Vec::new();
    for a in &msg.attachments {
        match decoration(a) {
            Some(why) => ignored.push(why),
            None => real.push(a),
        }
    }
    if !ignored.is_empty() {
        reasons.push(format!(
            "ignored {} attachment(s) that are not documents: {}",
            ignored.len(),
            ignored.join(", ")
        ));
    }
    if !real.is_empty() {
        let types: Vec<&str> = real.iter().map(|a| a.content_type.as_str()).collect();
        reasons.push(format!(
            "return: {} real attachment(s) ({})",
            real.len(),
            types.join(", ")
        ));
        return ReplyKind::Return;
    }
    match nil_return(msg, scan) {
        Ok(reason) => {
            reasons.push(reason);
            ReplyKind::NilReturn
        }
        Err(Some(reason)) => {
            reasons.push(reason);
            ReplyKind::Other
        }
        Err(None) => ReplyKind::Other,
    }
}

/// Why an attachment is not a document, if it is not.
fn decoration(a: &Attachment) -> Option<&'static str> {
    let ct = a.content_type.as_str();
    if ct.starts_with("image/")
        && a.size < DECORATION_MAX_BYTES
        && (a.content_id.is_some() || a.inline)
    {
        return Some("inline image under 20 KB (signature logo)");
    }
    if matches!(
        ct,
        "application/pkcs7-signature"
            | "application/x-pkcs7-signature"
            | "application/pgp-signature"
    ) {
        return Some("digital signature");
    }
    if matches!(ct, "text/vcard" | "text/x-vcard" | "text/directory") {
        return Some("contact card");
    }
    // A meeting invitation or its answer ("Accepted: RR-… rapid review meeting"): a calendar
    // item, never an agency's return.
    if matches!(ct, "text/calendar" | "application/ics")
        || a.filename.to_ascii_lowercase().ends_with(".ics")
    {
        return Some("calendar item");
    }
    None
}

fn has_real_attachment(msg: &Message) -> bool {
    msg.attachments.iter().any(|a| decoration(a).is_none())
}

/// A nil return, conservatively: a [`NIL_RETURN_PHRASES`] phrase in the subject or within the
/// first [`NIL_RETURN_WINDOW_CHARS`] characters of the reply's own text (quoted history
/// removed), not negated ("not a nil return"), no [`NIL_RETURN_CONTRAST`] word in that window,
/// and own text no longer than [`NIL_RETURN_MAX_CHARS`]. "Not known" inside a long letter is a
/// letter. `Ok(reason)` for a nil return; `Err(Some(reason))` when a phrase was seen but a
/// condition failed; `Err(None)` when no phrase was seen.
fn nil_return(msg: &Message, scan: &Scan) -> Result<String, Option<String>> {
    let own = own_text(&msg.body_text).trim();
    let own_chars = own.chars().count();
    let window: String = own.chars().take(NIL_RETURN_WINDOW_CHARS).collect();
    let window_words = words(&window);

    let in_window = first_phrase(&window_words, &NIL_RETURN_WORDS, true);
    let in_subject = first_phrase(scan.subject(), &NIL_RETURN_WORDS, true);
    let (phrase, place) = match (in_window, in_subject) {
        (Some(p), _) => (p, "the first 300 characters of the reply"),
        (None, Some(p)) => (p, "the subject"),
        (None, None) => {
            // The own text's words: trimming changes no word.
            let anywhere = first_phrase(scan.own(), &NIL_RETURN_WORDS, true);
            return Err(anywhere.map(|p| {
                format!(
                    "nil-return phrase \"{p}\" appears only late in a {own_chars}-character reply: \
                     not treated as a nil return"
                )
            }));
        }
    };
    if own_chars > NIL_RETURN_MAX_CHARS {
        return Err(Some(format!(
            "nil-return phrase \"{phrase}\" in {place}, but the reply is {own_chars} characters \
             long (over {NIL_RETURN_MAX_CHARS}): a letter, not a nil return"
        )));
    }
    if let Some(contrast) = first_phrase(&window_words, &NIL_RETURN_CONTRAST_WORDS, false) {
        return Err(Some(format!(
            "nil-return phrase \"{phrase}\" in {place}, but also \"{contrast}\": not treated as a \
             nil return"
        )));
    }
    Ok(format!(
        "nil return: phrase \"{phrase}\" in {place} ({own_chars} characters, no contrast word)"
    ))
}

/// Matches the From address (or Sender, when there is no From) against the directory: by full
/// address first, then by domain (subdomains included). Ambiguity leaves the agency unset.
fn agency_for(msg: &Message, ctx: &Context, reasons: &mut Vec<String>) -> Option<String> {
    let Some(email) = msg
        .from
        .as_ref()
        .or(msg.sender.as_ref())
        .map(|a| a.email.as_str())
    else {
        reasons.push("no From address: agency unknown".to_string());
        return None;
    };
    let by_address: Vec<&str> = ctx
        .agencies
        .iter()
        .filter(|a| {
            a.addresses
                .iter()
                .any(|x| x.trim().eq_ignore_ascii_case(email))
        })
        .map(|a| a.id.as_str())
        .collect();
    match by_address.as_slice() {
        [one] => {
            reasons.push(format!("From address is agency {one}'s directory address"));
            return Some(one.to_string());
        }
        [] => {}
        many => {
            reasons.push(format!(
                "From address is listed for more than one agency ({}): agency left unset",
                many.join(", ")
            ));
            return None;
        }
    }
    let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
    let by_domain: Vec<&str> = ctx
        .agencies
        .iter()
        .filter(|a| a.domains.iter().any(|d| domain_matches(domain, d)))
        .map(|a| a.id.as_str())
        .collect();
    match by_domain.as_slice() {
        [one] => {
            reasons.push(format!(
                "From domain matches agency {one}'s directory domain"
            ));
            Some(one.to_string())
        }
        [] => {
            reasons.push("From address is not in the agency directory".to_string());
            None
        }
        many => {
            reasons.push(format!(
                "From domain matches more than one agency ({}): agency left unset",
                many.join(", ")
            ));
            None
        }
    }
}

fn domain_matches(domain: &str, entry: &str) -> bool {
    let entry = entry
        .trim()
        .trim_start_matches('@')
        .trim_start_matches('.')
        .to_ascii_lowercase();
    let domain = domain.trim().to_ascii_lowercase();
    !entry.is_empty() && (domain == entry || domain.ends_with(&format!(".{entry}")))
}

// ---------------------------------------------------------------------------------------------
// Threading

enum ThreadHit<'a> {
    None,
    Hit {
        header: &'static str,
        known: &'a Known,
    },
    Ambiguous {
        header: &'static str,
        case_refs: Vec<String>,
    },
}

fn known_for<'a>(ctx: &'a Context, id: &str) -> Option<&'a Known> {
    let id = bare_id(id);
    ctx.known
        .iter()
        .find(|k| bare_id(&k.message_id).eq_ignore_ascii_case(id))
}

fn bare_id(id: &str) -> &str {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
}

fn thread_hit<'a>(msg: &Message, ctx: &'a Context) -> ThreadHit<'a> {
    let candidates: [(&'static str, Vec<&String>); 2] = [
        ("In-Reply-To", msg.in_reply_to.iter().collect()),
        ("References", msg.references.iter().rev().collect()),
    ];
    for (header, ids) in candidates {
        let hits: Vec<&Known> = ids.iter().filter_map(|id| known_for(ctx, id)).collect();
        let Some(first) = hits.first() else {
            continue;
        };
        let mut case_refs: Vec<String> = Vec::new();
        for h in &hits {
            push_unique(&mut case_refs, h.case_ref.clone());
        }
        if case_refs.len() > 1 {
            return ThreadHit::Ambiguous { header, case_refs };
        }
        return ThreadHit::Hit {
            header,
            known: first,
        };
    }
    ThreadHit::None
}

fn describe_hit(header: &str, known: &Known) -> String {
    match &known.letter {
        Some(letter) => format!(
            "{header} matches our letter {} of {}",
            token(&letter.step),
            known.case_ref
        ),
        None => format!(
            "{header} matches a message on {} (not a letter we sent)",
            known.case_ref
        ),
    }
}

/// Existing case references named in the subject, in order, without duplicates.
fn existing_subject_refs(msg: &Message, ctx: &Context) -> Vec<String> {
    existing_refs_in(&msg.subject, ctx)
}

/// Existing case references named in `text`, in order, without duplicates.
fn existing_refs_in(text: &str, ctx: &Context) -> Vec<String> {
    find_case_refs(text)
        .into_iter()
        .filter(|r| ctx.case_refs.contains(r))
        .collect()
}

/// The case an automatic reply or notice belongs to, if it can be told without guessing:
/// threading first, then a single existing case reference in the subject.
fn threadable_case_ref(msg: &Message, ctx: &Context, reasons: &mut Vec<String>) -> Option<String> {
    match thread_hit(msg, ctx) {
        ThreadHit::Hit { header, known } => {
            reasons.push(describe_hit(header, known));
            return Some(known.case_ref.clone());
        }
        ThreadHit::Ambiguous { header, case_refs } => {
            reasons.push(format!(
                "{header} matches messages of more than one case ({}): case left unset",
                case_refs.join(", ")
            ));
            return None;
        }
        ThreadHit::None => {}
    }
    match existing_subject_refs(msg, ctx).as_slice() {
        [] => None,
        [one] => {
            reasons.push(format!(
                "subject contains the existing case reference {one}"
            ));
            Some(one.clone())
        }
        many => {
            reasons.push(format!(
                "subject names more than one existing case ({}): case left unset",
                many.join(", ")
            ));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Evidence helpers

/// [`secure_notice`]'s evidence (see there), or `None`.
fn secure_notice_evidence(msg: &Message, scan: &Scan) -> Option<Vec<String>> {
    if has_real_attachment(msg) {
        return None;
    }
    let subject = msg.subject.to_lowercase();
    let tag = SECURE_SUBJECT_TAGS.iter().find(|t| subject.contains(*t));
    let evidence = |w: &Words| {
        (
            first_phrase(w, &SECURE_NOTICE_WORDS, false),
            first_phrase(w, &SECURE_PORTAL_WORDS, false),
        )
    };
    let (notice, cue) = evidence(scan.own());
    let fires = |(notice, cue): (Option<&str>, Option<&str>)| {
        (tag.is_some() && (notice.is_some() || cue.is_some()))
            || (notice.is_some() && cue.is_some())
    };
    if !fires((notice, cue)) {
        return None;
    }
    // Read again, as the sender wrote it: without external-sender banners ("Do not click
    // links…") and without web addresses, whose host and path are no words of the message (the
    // NHSmail footer's "secure email … https://portal.nhs.net/…" would otherwise be a notice).
    let said = words(&without_web_addresses(&reply_text(&msg.body_text, &[])));
    let (notice, cue) = evidence(&said);
    let mut reasons = Vec::new();
    match (tag, notice, cue) {
        (Some(tag), n, c) if n.is_some() || c.is_some() => {
            reasons.push(format!("subject carries the secure-mail tag \"{tag}\""));
            if let Some(n) = n {
                reasons.push(format!("text has the notice phrase \"{n}\""));
            }
            if let Some(c) = c {
                reasons.push(format!("text has the portal cue \"{c}\""));
            }
        }
        (_, Some(n), Some(c)) => {
            reasons.push(format!("text has the notice phrase \"{n}\""));
            reasons.push(format!("text has the portal cue \"{c}\""));
        }
        _ => return None,
    }
    reasons.push("no real attachment: the content waits on a portal".to_string());
    Some(reasons)
}

/// `text` without its web addresses (`https://…`, `www.…`), word by word.
fn without_web_addresses(text: &str) -> String {
    text.split_whitespace()
        .filter(|word| {
            let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
            !(word.contains("://") || starts_ignoring_case(word, "www."))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One reason per place where referral vocabulary occurs: subject, attachment names, body.
fn referral_vocabulary_hits(msg: &Message, scan: &Scan) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(term) = first_phrase(scan.subject(), &REFERRAL_WORDS, false) {
        reasons.push(format!("referral vocabulary \"{term}\" in the subject"));
    }
    if let Some(term) = msg
        .attachments
        .iter()
        .find_map(|a| first_phrase(&words(&a.filename), &REFERRAL_WORDS, false))
    {
        reasons.push(format!(
            "referral vocabulary \"{term}\" in an attachment name"
        ));
    }
    if let Some(term) = first_phrase(scan.body(), &REFERRAL_WORDS, false) {
        reasons.push(format!("referral vocabulary \"{term}\" in the body"));
    }
    reasons
}

fn auto_reply_prefix(subject: &str) -> Option<&'static str> {
    let subject = crate::core::text::without_subject_banners(subject).to_lowercase();
    AUTO_REPLY_SUBJECT_PREFIXES
        .iter()
        .find(|p| subject.starts_with(*p))
        .copied()
}

fn is_daemon(email: &str) -> bool {
    let local = email.split('@').next().unwrap_or("").to_ascii_lowercase();
    local == "mailer-daemon" || local == "postmaster" || local.starts_with("microsoftexchange")
}

/// `Message-ID: <…>` lines in text (a returned copy inside a plain-text bounce).
fn message_id_lines(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let id = bare_id(value);
        if !id.is_empty() && !id.contains(char::is_whitespace) && id.contains('@') {
            push_unique(&mut ids, id.to_string());
        }
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// Words

/// The folded words of `s` ([`Words`]).
fn words(s: &str) -> Words {
    Words::new(s)
}

/// The first vocabulary entry (in list order) that occurs in `text_words` as a whole-word
/// sequence. With `skip_negated`, a negated occurrence (see [`negated`]) does not count.
fn first_phrase(
    text_words: &Words,
    vocabulary: &Vocabulary,
    skip_negated: bool,
) -> Option<&'static str> {
    text_words
        .found_where(vocabulary, |i| !(skip_negated && negated(text_words, i)))
        .first()
        .copied()
}

/// The lists above, each searched for in one pass ([`Vocabulary`]).
static REFERRAL_WORDS: Vocabulary = Vocabulary::new(REFERRAL_VOCABULARY);

static SECURE_NOTICE_WORDS: Vocabulary = Vocabulary::new(SECURE_NOTICE_PHRASES);
static SECURE_PORTAL_WORDS: Vocabulary = Vocabulary::new(SECURE_PORTAL_CUES);
static FAILURE_WORDS: Vocabulary = Vocabulary::new(FAILURE_PHRASES);
static DELAY_WORDS: Vocabulary = Vocabulary::new(DELAY_PHRASES);
static NIL_RETURN_WORDS: Vocabulary = Vocabulary::new(NIL_RETURN_PHRASES);
static NIL_RETURN_CONTRAST_WORDS: Vocabulary = Vocabulary::new(NIL_RETURN_CONTRAST);

/// Words that name another child or another referral than the one a thread is about
/// ([`new_referral_off_subject`]).
pub const ANOTHER_CHILD: &[&str] = &[
    "new referral",
    "another referral",
    "further referral",
    "second referral",
    "separate referral",
    "new notification",
    "another notification",
    "separate notification",
    "another child",
    "a different child",
    "another pupil",
    "a different pupil",
    "another young person",
];

static ANOTHER_CHILD_WORDS: std::sync::LazyLock<Vocabulary> =
    std::sync::LazyLock::new(|| Vocabulary::new(ANOTHER_CHILD));

/// Words of a new referral: [`REFERRAL_VOCABULARY`] less "rapid review" — how agencies title
/// their returns, so it cannot tell a new referral from a return.
static NEW_REFERRAL_WORDS: std::sync::LazyLock<Vocabulary> = std::sync::LazyLock::new(|| {
    static PHRASES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        REFERRAL_VOCABULARY
            .iter()
            .copied()
            .filter(|t| *t != "rapid review")
            .collect()
    });
    Vocabulary::new(&PHRASES)
});

/// Whether the words before position `i` negate what starts there: "not", "never" or the "t"
/// of "isn't", directly or before an article ("not a nil return").
fn negated(text_words: &Words, i: usize) -> bool {
    let is_negation = |w: &str| matches!(w, "not" | "never" | "t");
    let before = |n: usize| i.checked_sub(n).and_then(|j| text_words.get(j));
    match before(1) {
        Some(w) if is_negation(w) => true,
        Some("a" | "an" | "the") => before(2).is_some_and(is_negation),
        _ => false,
    }
}

fn first_token(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// A header token fit for a reason: lowercase letters, digits and `.-_` only, at most 40.
fn token(value: &str) -> String {
    value
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase()
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

// ---------------------------------------------------------------------------------------------
// Case references

/// The first case reference in `text` (see [`CASE_REF_PATTERN`]), upper-cased.
pub fn find_case_ref(text: &str) -> Option<String> {
    find_case_refs(text).into_iter().next()
}

/// Every case reference in `text`, upper-cased, in order, without duplicates.
pub fn find_case_refs(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let word = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphanumeric);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b.get(i).is_some_and(|c| c.eq_ignore_ascii_case(&b'r'))
            && b.get(i + 1).is_some_and(|c| c.eq_ignore_ascii_case(&b'r'))
            && b.get(i + 2) == Some(&b'-')
            && (i + 3..i + 7).all(digit)
            && b.get(i + 7) == Some(&b'-')
            && (i == 0 || !word(i - 1));
        if starts {
            let mut j = i + 8;
            while digit(j) {
                j += 1;
            }
            if j - (i + 8) >= 4 && !word(j) {
                // the matched bytes are ASCII, so these slices are on char boundaries
                let year = &text[i + 3..i + 7];
                let number = &text[i + 8..j];
                push_unique(&mut out, format!("RR-{year}-{number}"));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::intake;
    use std::path::{Path, PathBuf};

    const IDD: &str = "caseclerk.northdale-scp.test";

    fn letter(step: &str, recipient: &str) -> Option<LetterRef> {
        Some(LetterRef {
            step: step.into(),
            recipient: recipient.into(),
        })
    }

    fn known(id: &str, case_ref: &str, letter: Option<LetterRef>) -> Known {
        Known {
            message_id: id.into(),
            case_ref: case_ref.into(),
            letter,
        }
    }

    fn agency(id: &str, addresses: &[&str], domains: &[&str]) -> AgencyContact {
        AgencyContact {
            id: id.into(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            domains: domains.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The one fixed context of the golden corpus (`tests/fixtures/mail/`), a fictional
    /// partnership "Northdale" on `.test` domains:
    /// - our mailbox `safeguarding@northdale-scp.test` and alias `rapidreview@…`; our
    ///   Message-IDs end `@caseclerk.northdale-scp.test`;
    /// - existing cases RR-2026-0001, RR-2026-0003 and RR-2026-0007;
    /// - known messages: the SCSI-6 agency requests of RR-2026-0003 to police (`.1`), health
    ///   (`.2`) and Hillcrest school (`.3`); the screening request of RR-2026-0001; the referral
    ///   that opened RR-2026-0001 (received, not a letter); the SCSI-6 request of RR-2026-0007 to
    ///   housing;
    /// - agencies: police (address `mash@northdale.police.test`, domain
    ///   `northdale.police.test`), health (domain `northdale-health.nhs.test`), school-hillcrest
    ///   (address `dsl@hillcrest-primary.sch.test`), housing (domain `homes-northdale.test`),
    ///   la-childrens-services (domain `northdale.gov.test`);
    /// - agencies on open cases: health on RR-2026-0003 and RR-2026-0007, housing on RR-2026-0007,
    ///   school-hillcrest on RR-2026-0003;
    /// - the referral of RR-2026-0007 was written in Outlook: its conversation is on file;
    /// - senders: our server is `mx.northdale-scp.test`; spam is `X-Spam-Flag: YES` or an Exchange
    ///   SCL of 5 or more; trusted domains `*.nhs.test`, `*.police.test`, `*.sch.test` and
    ///   `northdale.gov.test`.
    ///
    /// It lists every known id, not just the ones a message references: rules must ignore
    /// entries the message does not name.
    fn corpus_context() -> Context {
        Context {
            own_addresses: vec![
                "safeguarding@northdale-scp.test".into(),
                "rapidreview@northdale-scp.test".into(),
            ],
            own_id_domain: IDD.into(),
            known: vec![
                known(
                    &format!("rr-2026-0003.scsi6-agency-request.1@{IDD}"),
                    "RR-2026-0003",
                    letter("scsi6-agency-request", "mash@northdale.police.test"),
                ),
                known(
                    &format!("rr-2026-0003.scsi6-agency-request.2@{IDD}"),
                    "RR-2026-0003",
                    letter(
                        "scsi6-agency-request",
                        "safeguarding.team@northdale-health.nhs.test",
                    ),
                ),
                known(
                    &format!("<rr-2026-0003.scsi6-agency-request.3@{IDD}>"),
                    "RR-2026-0003",
                    letter("scsi6-agency-request", "dsl@hillcrest-primary.sch.test"),
                ),
                known(
                    &format!("rr-2026-0001.screening-request.1@{IDD}"),
                    "RR-2026-0001",
                    letter("screening-request", "panel.police@northdale.police.test"),
                ),
                known(
                    "CAOak4c1d2e3referral@mail.oakfield-academy.sch.test",
                    "RR-2026-0001",
                    None,
                ),
                known(
                    &format!("rr-2026-0007.scsi6-agency-request.1@{IDD}"),
                    "RR-2026-0007",
                    letter("scsi6-agency-request", "old.address@homes-northdale.test"),
                ),
            ],
            case_refs: CaseRefs::new(
                IDD,
                [
                    "RR-2026-0001".into(),
                    "RR-2026-0003".into(),
                    "RR-2026-0007".into(),
                ],
            ),
            agencies: vec![
                agency(
                    "police",
                    &["mash@northdale.police.test"],
                    &["northdale.police.test"],
                ),
                agency("health", &[], &["northdale-health.nhs.test"]),
                agency("school-hillcrest", &["dsl@hillcrest-primary.sch.test"], &[]),
                agency("housing", &[], &["homes-northdale.test"]),
                agency("la-childrens-services", &[], &["northdale.gov.test"]),
            ],
            agency_cases: vec![
                agency_case("health", "RR-2026-0003"),
                agency_case("health", "RR-2026-0007"),
                agency_case("housing", "RR-2026-0007"),
                agency_case("school-hillcrest", "RR-2026-0003"),
            ],
            conversations: vec![Conversation {
                // the Outlook conversation of the referral that opened RR-2026-0007
                conversation: "01dc1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c".into(),
                case_ref: "RR-2026-0007".into(),
            }],
            trust: trust::Policy {
                authserv_id: Some("mx.northdale-scp.test".into()),
                spam: vec![
                    trust::SpamRule::Flag {
                        header: "X-Spam-Flag".into(),
                        value: "YES".into(),
                    },
                    trust::SpamRule::Score {
                        header: "X-MS-Exchange-Organization-SCL".into(),
                        threshold: 5.0,
                        inclusive: true,
                    },
                ],
                trusted_domains: vec![
                    "*.nhs.test".into(),
                    "*.police.test".into(),
                    "*.sch.test".into(),
                    "northdale.gov.test".into(),
                ],
            },
        }
    }

    fn agency_case(agency: &str, case_ref: &str) -> AgencyCase {
        AgencyCase {
            awaited: true,
            agency: agency.into(),
            case_ref: case_ref.into(),
        }
    }

    fn fixture_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail")
    }

    fn fixtures() -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
            .expect("tests/fixtures/mail exists")
            .map(|e| e.expect("readable entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
    }

    /// What a golden file holds: the verdict, and intake facts that are not body text.
    fn golden_value(raw: &[u8], msg: &intake::Message, verdict: &Verdict) -> serde_json::Value {
        serde_json::json!({
            "verdict": verdict,
            "intake": {
                "parsed": msg.parsed,
                "dedupe_key": intake::dedupe_key(raw),
                "message_id": msg.message_id,
                "in_reply_to": msg.in_reply_to,
                "references": msg.references,
                "return_path_empty": msg.return_path.as_deref() == Some(""),
                "date": msg.date.map(|d| d.to_rfc3339()),
                "content_type": msg.content_type,
                "report_type": msg.report_type,
                "auto_submitted": msg.auto_submitted,
                "precedence": msg.precedence,
                "autoreply_header": msg.autoreply_header,
                "list_headers": msg.list_headers,
                "body_text_chars": msg.body_text.chars().count(),
                "attachments": msg.attachments.iter().map(|a| serde_json::json!({
                    "filename": a.filename,
                    "content_type": a.content_type,
                    "size": a.size,
                    "sha256": a.sha256(),
                    "inline": a.inline,
                    "content_id": a.content_id,
                })).collect::<Vec<_>>(),
                "authentication_results": msg.authentication_results,
                "dsn": msg.dsn,
            }
        })
    }

    /// The golden corpus: every `tests/fixtures/mail/NAME.eml` is parsed and classified with
    /// [`corpus_context`], and the result must equal `NAME.expected.json`. Run with
    /// `UPDATE_GOLDEN=1` to rewrite the expected files (then review the diff before committing).
    #[test]
    fn golden_corpus() {
        let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
        let ctx = corpus_context();
        let files = fixtures();
        assert!(
            files.len() >= 20,
            "the corpus has shrunk: {} fixtures",
            files.len()
        );
        let mut failures = Vec::new();
        for eml in &files {
            let raw = std::fs::read(eml).expect("fixture readable");
            let msg = intake::parse(&raw);
            let verdict = classify(&msg, &ctx);
            let actual = golden_value(&raw, &msg, &verdict);
            let expected_path = eml.with_extension("expected.json");
            let name = eml
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if update {
                let mut text = serde_json::to_string_pretty(&actual).expect("serialisable");
                text.push('\n');
                std::fs::write(&expected_path, text).expect("expected file writable");
                continue;
            }
            let expected: serde_json::Value = match std::fs::read_to_string(&expected_path) {
                Ok(text) => serde_json::from_str(&text).expect("expected file is JSON"),
                Err(_) => {
                    failures.push(format!("{name}: no {}", expected_path.display()));
                    continue;
                }
            };
            if expected != actual {
                failures.push(format!(
                    "{name}: differs from its expected file\n--- actual:\n{}",
                    serde_json::to_string_pretty(&actual).unwrap_or_default()
                ));
            }
        }
        // an expected file whose .eml is gone is a failure too
        for entry in std::fs::read_dir(fixture_dir()).expect("dir") {
            let path = entry.expect("entry").path();
            let name = path.to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".expected.json")
                && !Path::new(&format!("{stem}.eml")).exists()
            {
                failures.push(format!("{name}: no matching .eml"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} golden mismatch(es) (UPDATE_GOLDEN=1 rewrites):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Reasons name headers, rule facts, ids and case refs: never the subject, a body line or
    /// an address.
    #[test]
    fn reasons_never_quote_subject_body_or_addresses() {
        let ctx = corpus_context();
        for eml in fixtures() {
            let msg = intake::parse(&std::fs::read(&eml).expect("readable"));
            let verdict = classify(&msg, &ctx);
            let all = verdict.reasons.join("\n").to_lowercase();
            let name = eml.display();
            if msg.subject.len() > 14 {
                assert!(
                    !all.contains(&msg.subject.to_lowercase()),
                    "{name}: subject quoted"
                );
            }
            for line in msg
                .body_text
                .lines()
                .map(str::trim)
                .filter(|l| l.len() > 20)
            {
                assert!(
                    !all.contains(&line.to_lowercase()),
                    "{name}: body line quoted"
                );
            }
            let addresses = msg.from.iter().chain(&msg.to).chain(&msg.cc);
            for a in addresses {
                assert!(!all.contains(&a.email), "{name}: address in reasons");
            }
            let debug = format!("{verdict:?}");
            if let Kind::Bounce {
                failed_recipients, ..
            } = &verdict.kind
            {
                for r in failed_recipients {
                    assert!(!debug.contains(r.as_str()), "{name}: recipient in Debug");
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Unit tests on hand-made messages

    fn message(headers: &str, body: &str) -> intake::Message {
        let raw = format!("{headers}\r\nMIME-Version: 1.0\r\n\r\n{body}");
        let msg = intake::parse(raw.as_bytes());
        assert!(msg.parsed);
        msg
    }

    fn reply_to_police_letter(extra_headers: &str, body: &str) -> Verdict {
        let headers = format!(
            "From: A Person <someone@northdale.police.test>\r\n\
             Subject: RE: your letter\r\n\
             Message-ID: <x1@mail.test>\r\n\
             In-Reply-To: <rr-2026-0003.scsi6-agency-request.1@{IDD}>\r\n{extra_headers}"
        );
        classify(&message(headers.trim_end(), body), &corpus_context())
    }

    fn reply(verdict: &Verdict) -> ReplyKind {
        match &verdict.kind {
            Kind::CaseReply { reply, .. } => reply.clone(),
            other => panic!(
                "expected a CaseReply, got {other:?} ({:?})",
                verdict.reasons
            ),
        }
    }

    #[test]
    fn rule_order_is_the_documented_one() {
        assert_eq!(
            rule_names(),
            [
                "unparseable",
                "own_message",
                "bounce",
                "auto_reply",
                "secure_notice",
                "automated_wording",
                "unreadable_here",
                "thread",
                "case_ref_in_subject",
                "conversation",
                "quoted_case_ref",
                "agency_sender_open_case",
                "quotes_our_letter",
                "referral_trust",
                "referral",
                "unmatched"
            ]
        );
    }

    #[test]
    fn existing_cases_are_known_by_reference_and_by_the_conversation_of_our_letters() {
        let mut refs = CaseRefs::new(&format!("@{IDD}"), ["RR-2026-0001".to_string()]);
        refs.push("RR-2026-0002".into());
        assert!(refs.contains("rr-2026-0002 "));
        assert!(!refs.contains("RR-2026-0003"));
        let ours = outlook::case_conversation(IDD, "RR-2026-0002");
        assert_eq!(refs.by_conversation(&ours), ["RR-2026-0002".to_string()]);
        assert!(refs.by_conversation("01dc").is_empty());
        let no_domain = CaseRefs::new(" ", ["RR-2026-0002".to_string()]);
        assert!(no_domain.by_conversation(&ours).is_empty(), "none derived");
        assert_eq!(no_domain.len(), 1);
    }

    #[test]
    fn case_refs_are_found_as_whole_words_and_upper_cased() {
        assert_eq!(
            find_case_ref("RE: RR-2026-0003 request"),
            Some("RR-2026-0003".into())
        );
        assert_eq!(
            find_case_ref("re rr-2026-0042:"),
            Some("RR-2026-0042".into())
        );
        assert_eq!(
            find_case_ref("(RR-2026-123456)"),
            Some("RR-2026-123456".into())
        );
        assert_eq!(find_case_ref("RR-2026-001"), None, "three digits");
        assert_eq!(find_case_ref("XRR-2026-0001"), None, "glued prefix");
        assert_eq!(find_case_ref("RR-2026-0001A"), None, "glued suffix");
        assert_eq!(find_case_ref("RR-26-0001"), None, "two-digit year");
        assert_eq!(find_case_ref("–RR-2026-0001–"), Some("RR-2026-0001".into()));
        assert_eq!(
            find_case_refs("RR-2026-0001 and RR-2026-0007, RR-2026-0001"),
            vec!["RR-2026-0001".to_string(), "RR-2026-0007".to_string()]
        );
        assert_eq!(find_case_ref("é"), None);
        assert_eq!(find_case_ref(""), None);
    }

    #[test]
    fn vocabulary_matches_whole_words_only() {
        let w = words("Preferral of referrals; SCSI - 1 form; Serious-Incident");
        assert_eq!(
            first_phrase(&w, &Vocabulary::new(&["referral"]), false),
            None
        );
        assert_eq!(
            first_phrase(&w, &Vocabulary::new(&["SCSI-1"]), false),
            Some("SCSI-1")
        );
        assert_eq!(
            first_phrase(&w, &Vocabulary::new(&["serious incident"]), false),
            Some("serious incident")
        );
        assert_eq!(
            first_phrase(&words("SCSI-10"), &Vocabulary::new(&["SCSI 1"]), false),
            None
        );
        let negated = words("This is not a nil return. It isn't no involvement.");
        assert_eq!(
            first_phrase(&negated, &Vocabulary::new(&["a nil return"]), true),
            None,
            "negated by 'not'"
        );
        assert_eq!(
            first_phrase(&negated, &Vocabulary::new(&["no involvement"]), true),
            None
        );
    }

    #[test]
    fn nil_return_is_conservative() {
        let short = reply_to_police_letter("", "Nil return - no involvement with this family.\n");
        assert_eq!(reply(&short), ReplyKind::NilReturn, "{:?}", short.reasons);

        let not_known = reply_to_police_letter("", "Hello, the family is not known to us.\nJo\n");
        assert_eq!(reply(&not_known), ReplyKind::NilReturn);

        let contrast = reply_to_police_letter(
            "",
            "The child is not known to us, however we hold records on the mother.\n",
        );
        assert_eq!(reply(&contrast), ReplyKind::Other);
        assert!(contrast.reasons.iter().any(|r| r.contains("however")));

        let negated = reply_to_police_letter("", "Please note this is not a nil return.\n");
        assert_eq!(reply(&negated), ReplyKind::Other);

        let long_letter = format!(
            "Dear colleague,\n{}\nThe family is not known to us by this name.\n",
            "We have checked our systems and our partners' systems. ".repeat(30)
        );
        let late = reply_to_police_letter("", &long_letter);
        assert_eq!(reply(&late), ReplyKind::Other);

        let long_start = format!(
            "No records held.\n{}",
            "Further detail about the checks we made. ".repeat(40)
        );
        let long = reply_to_police_letter("", &long_start);
        assert_eq!(reply(&long), ReplyKind::Other);
        assert!(long.reasons.iter().any(|r| r.contains("characters long")));

        // the nil phrase in a quoted letter of ours does not count
        let quoted = reply_to_police_letter(
            "",
            "Thanks, will reply next week.\n\n> If not known to your service, send a nil return\n",
        );
        assert_eq!(reply(&quoted), ReplyKind::Other);

        // the subject may carry it
        let subject = classify(
            &message(
                &format!(
                    "From: x@northdale.police.test\r\nSubject: Nil return RR-2026-0003\r\n\
                     In-Reply-To: <rr-2026-0003.scsi6-agency-request.1@{IDD}>"
                ),
                "Regards, MASH\n",
            ),
            &corpus_context(),
        );
        assert_eq!(reply(&subject), ReplyKind::NilReturn);
    }

    #[test]
    fn attachments_decide_return_but_logos_and_signatures_do_not() {
        let logo = "Content-Type: multipart/related; boundary=\"b\"";
        let body = "--b\r\nContent-Type: text/plain\r\n\r\nThanks.\r\n--b\r\n\
             Content-Type: image/png\r\nContent-ID: <logo@x>\r\n\
             Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n";
        let v = reply_to_police_letter(logo, body);
        assert_eq!(reply(&v), ReplyKind::Other);
        assert!(v.reasons.iter().any(|r| r.contains("signature logo")));

        let signed = "Content-Type: multipart/signed; boundary=\"b\"";
        let body = "--b\r\nContent-Type: text/plain\r\n\r\nThanks.\r\n--b\r\n\
             Content-Type: application/pkcs7-signature; name=smime.p7s\r\n\
             Content-Disposition: attachment; filename=smime.p7s\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\r\n--b--\r\n";
        assert_eq!(
            reply(&reply_to_police_letter(signed, body)),
            ReplyKind::Other
        );

        let big_inline_image = format!(
            "--b\r\nContent-Type: text/plain\r\n\r\nSee the chronology.\r\n--b\r\n\
             Content-Type: image/png\r\nContent-ID: <shot@x>\r\n\r\n{}\r\n--b--\r\n",
            "x".repeat(DECORATION_MAX_BYTES + 10)
        );
        let v = reply_to_police_letter(
            "Content-Type: multipart/related; boundary=\"b\"",
            &big_inline_image,
        );
        assert_eq!(reply(&v), ReplyKind::Return, "{:?}", v.reasons);
    }

    #[test]
    fn agency_by_address_then_domain_and_never_guessed() {
        let mut ctx = corpus_context();
        let find = |ctx: &Context, from: &str| {
            let m = message(&format!("From: {from}\r\nSubject: x"), "x");
            let mut reasons = Vec::new();
            agency_for(&m, ctx, &mut reasons)
        };
        assert_eq!(
            find(&ctx, "MASH@northdale.police.test"),
            Some("police".into())
        );
        assert_eq!(
            find(&ctx, "a@custody.northdale.police.test"),
            Some("police".into())
        );
        assert_eq!(find(&ctx, "a@evilnorthdale.police.test"), None);
        assert_eq!(
            find(&ctx, "dsl@hillcrest-primary.sch.test"),
            Some("school-hillcrest".into())
        );
        assert_eq!(find(&ctx, "head@hillcrest-primary.sch.test"), None);
        // a shared domain (NHSmail-style) listed for two agencies: not guessed
        ctx.agencies
            .push(agency("ambulance", &[], &["northdale-health.nhs.test"]));
        assert_eq!(find(&ctx, "x@northdale-health.nhs.test"), None);
        // … but a full address still decides
        ctx.agencies
            .push(agency("gp", &["x@northdale-health.nhs.test"], &[]));
        assert_eq!(find(&ctx, "x@northdale-health.nhs.test"), Some("gp".into()));
    }

    #[test]
    fn threading_across_two_cases_is_not_guessed() {
        let m = message(
            &format!(
                "From: someone@elsewhere.test\r\nSubject: RE: two things\r\n\
                 References: <rr-2026-0001.screening-request.1@{IDD}> \
                 <rr-2026-0003.scsi6-agency-request.1@{IDD}>"
            ),
            "Replying to both.",
        );
        let v = classify(&m, &corpus_context());
        assert_eq!((v.kind.clone(), v.rule), (Kind::Unmatched, "thread"));

        // In-Reply-To (the direct parent) beats References
        let m = message(
            &format!(
                "From: someone@elsewhere.test\r\nSubject: RE: x\r\n\
                 In-Reply-To: <rr-2026-0001.screening-request.1@{IDD}>\r\n\
                 References: <rr-2026-0003.scsi6-agency-request.1@{IDD}> \
                 <rr-2026-0001.screening-request.1@{IDD}>"
            ),
            "Agreed.",
        );
        let v = classify(&m, &corpus_context());
        match v.kind {
            Kind::CaseReply { case_ref, .. } => assert_eq!(case_ref, "RR-2026-0001"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn auto_reply_signals_are_weighed() {
        let ctx = corpus_context();
        let kind = |headers: &str| {
            let v = classify(
                &message(&format!("From: a@b.test\r\n{headers}"), "Back soon."),
                &ctx,
            );
            (v.kind, v.rule)
        };
        // X-Auto-Response-Suppress alone on incoming mail is not evidence
        assert_eq!(
            kind("Subject: hello\r\nX-Auto-Response-Suppress: All"),
            (Kind::Unmatched, "unmatched")
        );
        // … nor an out-of-office subject alone
        assert_eq!(
            kind("Subject: Out of Office: hello"),
            (Kind::Unmatched, "unmatched")
        );
        // both weak signals together are
        assert_eq!(
            kind("Subject: Out of Office: hello\r\nX-Auto-Response-Suppress: All"),
            (Kind::AutoReply { case_ref: None }, "auto_reply")
        );
        assert_eq!(
            kind("Subject: x\r\nAuto-Submitted: no"),
            (Kind::Unmatched, "unmatched")
        );
        assert_eq!(
            kind("Subject: x\r\nPrecedence: list"),
            (Kind::Unmatched, "unmatched")
        );
        assert_eq!(
            kind("Subject: x\r\nPrecedence: bulk"),
            (Kind::AutoReply { case_ref: None }, "auto_reply")
        );
        assert_eq!(
            kind("Subject: x\r\nReturn-Path: <>"),
            (Kind::AutoReply { case_ref: None }, "auto_reply")
        );
        assert_eq!(
            kind("Subject: RE: RR-2026-0007\r\nX-Autorespond: yes"),
            (
                Kind::AutoReply {
                    case_ref: Some("RR-2026-0007".into())
                },
                "auto_reply"
            )
        );
        // an auto-reply that mentions a referral is still an auto-reply
        assert_eq!(
            kind("Subject: Automatic reply: referral\r\nAuto-Submitted: auto-replied"),
            (Kind::AutoReply { case_ref: None }, "auto_reply")
        );
        // a rule-forwarded referral (Exchange loop header + sender's XARS) is not swallowed
        assert_eq!(
            kind(
                "Subject: FW: referral\r\nX-MS-Exchange-Inbox-Rules-Loop: a@b.test\r\n\
                 X-Auto-Response-Suppress: All"
            ),
            (Kind::Unmatched, "auto_reply")
        );
    }

    #[test]
    fn secure_notice_needs_notice_words_and_no_attachment() {
        let ctx = corpus_context();
        // a clear-text reply that kept the [secure] tag is a reply, not a notice
        let m = message(
            &format!(
                "From: s@northdale-health.nhs.test\r\nSubject: [secure] RE: RR-2026-0003\r\n\
                 In-Reply-To: <rr-2026-0003.scsi6-agency-request.2@{IDD}>"
            ),
            "Nil return.\n",
        );
        let v = classify(&m, &ctx);
        assert_eq!(v.rule, "thread");
        assert_eq!(reply(&v), ReplyKind::NilReturn);

        // a person mentioning Egress is not a notice without a portal cue
        let m = message(
            "From: a@b.test\r\nSubject: hello",
            "I will send it by Egress tomorrow.",
        );
        assert_eq!(classify(&m, &ctx).rule, "unmatched");

        // our quoted letter asking for secure email does not make a notice
        let m = message(
            "From: a@b.test\r\nSubject: RE: RR-2026-0003",
            "Thanks.\n\n> Please reply by secure email; click the portal link to register.\n",
        );
        assert_eq!(classify(&m, &ctx).rule, "case_ref_in_subject");
    }

    #[test]
    fn own_message_by_address_or_an_id_we_minted() {
        let ctx = corpus_context();
        let m = message(
            "From: RapidReview@Northdale-SCP.test\r\nSubject: x\r\nMessage-ID: <a@b.test>",
            "x",
        );
        assert_eq!(classify(&m, &ctx).kind, Kind::OwnMessage);
        let m = message(
            &format!(
                "From: a@b.test\r\nSubject: x\r\nMessage-ID: <CaseClerk.1a2b.3c4d@{}>",
                IDD.to_uppercase()
            ),
            "x",
        );
        assert_eq!(classify(&m, &ctx).kind, Kind::OwnMessage);
        // A colleague's mail from the partnership's own council, whose Exchange mints ids in the
        // same domain, is not ours.
        let m = message(
            &format!(
                "From: colleague@b.test\r\nSubject: x\r\nMessage-ID: <AM0PR01MB1234.abc@{IDD}>"
            ),
            "x",
        );
        assert_ne!(classify(&m, &ctx).kind, Kind::OwnMessage);
        let m = message(
            &format!("From: a@b.test\r\nSubject: x\r\nMessage-ID: <abc@evil{IDD}>"),
            "x",
        );
        assert_ne!(classify(&m, &ctx).kind, Kind::OwnMessage);
    }

    #[test]
    fn an_outlook_conversation_that_points_to_two_cases_goes_to_a_person() {
        let index = {
            use base64::Engine as _;
            let conv = outlook::case_conversation(IDD, "RR-2026-0001");
            base64::engine::general_purpose::STANDARD.encode(hex::decode(conv).unwrap())
        };
        let headers = format!(
            "From: x@elsewhere.test\r\nSubject: notes\r\nMessage-ID: <c2@elsewhere.test>\r\n\
             Thread-Index: {index}\r\nThread-Topic: [RR-2026-0003] Information requested"
        );
        let v = classify(&message(&headers, "see attached"), &corpus_context());
        assert_eq!(
            (v.rule, v.kind),
            ("conversation", Kind::Unmatched),
            "{:?}",
            v.reasons
        );
        let one = headers.replace("Thread-Topic: [RR-2026-0003] ", "Thread-Topic: ");
        let v = classify(&message(&one, "see attached"), &corpus_context());
        assert!(
            matches!(v.kind, Kind::CaseReply { ref case_ref, .. } if case_ref == "RR-2026-0001")
        );
    }

    #[test]
    fn a_reply_quoting_a_message_id_we_minted_is_never_a_new_referral() {
        let body = format!(
            "Here is the referral you asked for.\r\n\r\n> Message-ID: <caseclerk.ab12.cd34@{IDD}>\r\n> quoted"
        );
        let v = classify(
            &message(
                "From: someone@hospital-elsewhere.test\r\nSubject: RE: referral\r\nMessage-ID: <m1@h.test>",
                &body,
            ),
            &corpus_context(),
        );
        assert_eq!(
            (v.rule, v.kind),
            ("quotes_our_letter", Kind::Unmatched),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn a_gmail_reply_under_our_wrote_line_is_never_a_new_referral() {
        let v = classify(
            &message(
                "From: someone@hospital-elsewhere.test\r\nSubject: Re: your referral\r\nMessage-ID: <m2@h.test>",
                "Thanks, will do.\r\n\r\nOn Thu, 12 Mar 2026 at 09:12, Northdale SCP <\r\n\
                 safeguarding@northdale-scp.test> wrote:\r\n\r\n> Thank you for the referral.",
            ),
            &corpus_context(),
        );
        // the wrapped "wrote:" line still ends on our address
        assert_eq!(
            (v.rule, v.kind),
            ("quotes_our_letter", Kind::Unmatched),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn the_phishing_lure_without_its_spam_flag_is_still_stopped_as_an_untrusted_unverified_sender()
    {
        let raw = std::fs::read(fixture_dir().join("60-phishing-shared-document.eml")).unwrap();
        let text = String::from_utf8(raw)
            .unwrap()
            .replace("X-Spam-Flag: YES", "X-Spam-Flag: NO");
        let v = classify(&intake::parse(text.as_bytes()), &corpus_context());
        assert_eq!(
            (v.rule, v.kind),
            ("referral_trust", Kind::Unmatched),
            "{:?}",
            v.reasons
        );
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("not in trusted_domains"))
        );
    }

    #[test]
    fn an_empty_context_classifies_without_panicking() {
        let ctx = Context::default();
        for eml in fixtures() {
            let msg = intake::parse(&std::fs::read(eml).expect("readable"));
            let _ = classify(&msg, &ctx);
        }
    }
}
