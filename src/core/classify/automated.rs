//! Rule 5½ of [`crate::core::classify`]: automated mail that does not say it is automated —
//! recognised by its wording, since no RFC 3834 header, vacation header or `Precedence` is there
//! to go by.
//!
//! Front doors (a children's services "Thank you for your referral, we will respond within 3
//! working days. Your reference number is …"), out-of-office text typed into a rule ("I am out of
//! the office until …", "I am currently on leave with limited access to email") and ticketing
//! systems (ServiceNow, Zendesk, Freshdesk, TOPdesk: "[Ticket #12345]", "Request received",
//! "Your request has been logged") answer every email. Answering them back is a mail loop;
//! reading a panel member's auto-acknowledgement as an unclear vote is one too.
//!
//! Owns: the wording vocabularies and the weighing. Reasons quote only these vocabularies, never
//! the message.
//!
//! Must not: look anything up, or fire on a person's answer. A person's vote or return that
//! *mentions* being away ("MEETS — I am on leave from Friday") must still count, so
//! - a message with a real attachment (a document: not a signature logo, digital signature or
//!   contact card — what makes a reply a return) is never taken for automated by its wording:
//!   the machines this rule is for do not attach documents, while a person sending a return or a
//!   referral form writes "Thank you for your email … In my absence please contact my deputy";
//! - only the reply's own text is read (banners and quoted history removed: our own quoted
//!   letter never counts), and only its first [`WINDOW_CHARS`] characters;
//! - when the first line is a short answer of a person (four words or fewer, not a greeting and
//!   not itself automated wording: "MEETS", "NFA - see below"), the rule does not fire;
//! - one [`STRONG`] phrase is enough; the phrases people write too need each other: a
//!   [`THANKS`] ("thank you for your email") and a [`REDIRECTS`] ("if your query is urgent"), or
//!   one of them and a ticket-system or acknowledgement subject ([`SUBJECT_CUES`]). "Thanks for
//!   your email, I'll get back to you" alone is a person;
//! - the subject is not read for [`SUBJECT_CUES`] when the message answers one of our letters
//!   (In-Reply-To/References): it is then our letter's subject, and ours carry such words ("Is
//!   this incident notified to the National Panel?", "Your agency's return has been received"),
//!   so a vote signed "For urgent matters call …" is still a vote.

use super::{
    Context, Kind, Scan, ThreadHit, Verdict, has_real_attachment, thread_hit, threadable_case_ref,
    verdict,
};
use crate::core::intake::Message;
use crate::core::text::{Vocabulary, Words, fold_until, reply_text_start};

/// Only this many characters from the start of the reply's own text are read.
pub const WINDOW_CHARS: usize = 600;

/// Wording only machines write to people they have never read (folded phrases).
pub const STRONG: &[&str] = &[
    // Auto-acknowledgements (Exchange and Gmail rules, council and NHS front doors).
    "this is an automated response",
    "this is an automated reply",
    "this is an automatic reply",
    "this is an automatic response",
    "this is an automated message",
    "this is an automated email",
    "this is an automatically generated",
    "this email has been automatically generated",
    "this message has been automatically generated",
    "this email was sent automatically",
    "this is an auto generated",
    "automated acknowledgement",
    "automatic acknowledgement",
    "please do not reply to this email",
    "please do not reply to this message",
    "this mailbox is not monitored",
    "this inbox is not monitored",
    "your reference number is",
    "your case number is",
    "your enquiry reference is",
    "we will respond within",
    "we aim to respond within",
    "we will aim to respond within",
    "we endeavour to respond within",
    "will be responded to within",
    "we will get back to you within",
    // Out of office typed as text.
    "i am out of the office",
    "i am currently out of the office",
    "i m out of the office",
    "i m currently out of the office",
    "i am away from the office",
    "i am currently away from the office",
    "i am on annual leave",
    "i am currently on annual leave",
    "i am currently on leave",
    "i am on leave until",
    "i am currently working remotely with limited access",
    "with limited access to email",
    "with limited access to my email",
    "with limited access to emails",
    "with no access to email",
    "with no access to my email",
    "i will have limited access to email",
    "i will be out of the office",
    // Ticketing systems (ServiceNow, Zendesk, Freshdesk, TOPdesk, Jira Service Management).
    "your ticket number is",
    "a ticket has been created",
    "a ticket has been raised",
    "a new ticket has been created",
    "your request has been received",
    "your request has been logged",
    "your request has been created",
    "we have received your request and",
    "your incident number is",
    "an incident has been logged",
    "to add additional comments reply to this email",
    "please reply above this line",
    "reply above this line",
    "type your reply above this line",
    "has been received and is being reviewed",
];

/// An acknowledgement's opening, which a person writes too (folded phrases).
pub const THANKS: &[&str] = &[
    "thank you for your email",
    "thank you for your e mail",
    "thank you for your message",
    "thank you for your referral",
    "thank you for your enquiry",
    "thank you for contacting",
    "thanks for your email",
    "we have received your email",
    "we have received your referral",
    "we have received your message",
    "your email has been received",
    "your referral has been received",
];

/// Where an acknowledgement sends the sender meanwhile, which a person writes too (folded).
pub const REDIRECTS: &[&str] = &[
    "if your query is urgent",
    "if your enquiry is urgent",
    "if your matter is urgent",
    "if your email is urgent",
    "if your request is urgent",
    "if your concern is urgent",
    "if this is urgent",
    "if it is urgent",
    "if your matter requires urgent attention",
    "for urgent matters",
    "for urgent enquiries",
    "for anything urgent",
    "in my absence",
    "on my return",
    "upon my return",
    "in the order it was received",
    "in the order they are received",
    "will be dealt with",
];

/// Subject wording of ticketing systems and front doors (folded phrases).
pub const SUBJECT_CUES: &[&str] = &[
    "ticket",
    "request received",
    "request id",
    "case number",
    "incident",
    "acknowledgement",
    "acknowledgment",
    "auto acknowledgement",
    "we have received your",
    "thank you for your",
    "has been received",
    "has been logged",
];

/// Greetings a machine starts with too: a short first line like these is not a person's answer.
const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "dear",
    "good morning",
    "good afternoon",
    "thank you",
    "thanks",
    "many thanks",
    "greetings",
];

/// The lists above, each searched for in one pass ([`Vocabulary`]).
static STRONG_WORDS: Vocabulary = Vocabulary::new(STRONG);
static THANKS_WORDS: Vocabulary = Vocabulary::new(THANKS);
static REDIRECT_WORDS: Vocabulary = Vocabulary::new(REDIRECTS);
static SUBJECT_CUE_WORDS: Vocabulary = Vocabulary::new(SUBJECT_CUES);

/// Is the first line a person's short answer ("MEETS", "NFA - see below")? Only the first five
/// words of the first line with a word are folded: five or more are not a short answer.
fn person_answers_first(own: &str) -> bool {
    let Some((first, whole)) = own
        .lines()
        .map(|l| {
            let (mut seen, mut spaces) = (0, 0);
            fold_until(l, |out| {
                spaces += out.as_bytes()[seen..]
                    .iter()
                    .filter(|b| **b == b' ')
                    .count();
                seen = out.len();
                spaces >= 4
            })
        })
        .find(|(l, _)| !l.is_empty())
    else {
        return false;
    };
    if !whole {
        return false;
    }
    let greeting = GREETINGS.iter().any(|g| {
        first == *g || (first.starts_with(g) && first.as_bytes().get(g.len()) == Some(&b' '))
    });
    let automated = !Words::new(&first).found(&STRONG_WORDS).is_empty();
    !greeting && !automated
}

/// Does the message answer a letter we sent (In-Reply-To/References)? Then its subject is our
/// letter's ("Is this incident notified…", "Your agency's return has been received"), and its
/// words are ours, not a ticketing system's.
fn answers_our_letter(msg: &Message, ctx: &Context) -> bool {
    matches!(thread_hit(msg, ctx), ThreadHit::Hit { known, .. } if known.letter.is_some())
}

/// The rule: a message whose own words are a machine's.
pub fn automated_wording(msg: &Message, ctx: &Context, scan: &Scan) -> Option<Verdict> {
    // A message that carries a document is delivered content (a return, a referral form), not
    // an acknowledgement: wording alone never hides it.
    if has_real_attachment(msg) {
        return None;
    }
    // Only the window and the first line are read: the reply is read no further than that.
    let own = reply_text_start(&msg.body_text, &[], WINDOW_CHARS);
    if person_answers_first(&own) {
        return None;
    }
    let window: String = own.chars().take(WINDOW_CHARS).collect();
    let text_words = Words::new(&window);
    let strong = text_words.found(&STRONG_WORDS);
    let thanks = text_words.found(&THANKS_WORDS);
    let redirects = text_words.found(&REDIRECT_WORDS);
    let subject = if answers_our_letter(msg, ctx) {
        Vec::new()
    } else {
        scan.subject().found(&SUBJECT_CUE_WORDS)
    };
    let weak: Vec<&str> = thanks.iter().chain(&redirects).copied().collect();
    let fires = !strong.is_empty()
        || (!thanks.is_empty() && !redirects.is_empty())
        || (!weak.is_empty() && !subject.is_empty());
    if !fires {
        return None;
    }
    let quote = |list: &[&str]| {
        list.iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut reasons = Vec::new();
    if !strong.is_empty() {
        reasons.push(format!("automated wording {}", quote(&strong)));
    }
    if !weak.is_empty() {
        reasons.push(format!("acknowledgement wording {}", quote(&weak)));
    }
    if !subject.is_empty() {
        reasons.push(format!(
            "ticket or acknowledgement subject {}",
            quote(&subject)
        ));
    }
    reasons.push(
        "no auto-reply header, but written as automated mail is: recorded, never answered"
            .to_string(),
    );
    let case_ref = threadable_case_ref(msg, ctx, &mut reasons);
    verdict("automated_wording", Kind::AutoReply { case_ref }, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::intake;

    fn msg(subject: &str, body: &str) -> Message {
        let raw = format!(
            "From: a@x.test\r\nTo: b@y.test\r\nSubject: {subject}\r\nMessage-ID: <1@x.test>\r\n\r\n{body}"
        );
        intake::parse(raw.as_bytes())
    }

    fn automated(subject: &str, body: &str) -> bool {
        let m = msg(subject, body);
        automated_wording(&m, &Context::default(), &Scan::new(&m)).is_some()
    }

    #[test]
    fn machine_wording_is_recognised() {
        let rows = [
            (
                "Out of office",
                "I am out of the office until Monday 2 February.",
            ),
            (
                "Re: x",
                "Hello,\r\n\r\nI am currently on leave with limited access to email.",
            ),
            (
                "Re: x",
                "Thank you for your email. If your query is urgent, please call 0161.",
            ),
            (
                "[Ticket #48213] Re: x",
                "Thank you for contacting the service desk.",
            ),
            (
                "Re: x",
                "Dear sender,\r\nThis is an automated response. Please do not reply to this email.",
            ),
            (
                "RITM0041277 Request received",
                "Your request has been received and is being reviewed.",
            ),
        ];
        for (subject, body) in rows {
            assert!(automated(subject, body), "{subject} / {body}");
        }
    }

    #[test]
    fn a_person_is_not_taken_for_a_machine() {
        let rows = [
            (
                "RE: x [code K7M2Q9XP]",
                "MEETS\r\n\r\nI am on annual leave from Friday with limited access to email.",
            ),
            (
                "Re: x",
                "NFA - see below\r\nI am out of the office tomorrow.",
            ),
            (
                "Re: x",
                "Thanks for your email, I'll get back to you as soon as possible.",
            ),
            ("Re: x", "Thank you for your email. Our return is attached."),
            (
                "Re: x",
                "Please see our return.\r\n\r\nOn Tue, Jo wrote:\r\n> This is an automated response.",
            ),
        ];
        for (subject, body) in rows {
            assert!(!automated(subject, body), "{subject} / {body}");
        }
    }
}
