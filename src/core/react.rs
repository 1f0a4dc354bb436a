//! What a message *does* to a case, and what counting the votes does: ordered, named rules →
//! the events to record and the notices to send.
//!
//! [`classify`](crate::core::classify) says what a message *is*; this module says what follows
//! from it. It is pure: the engine loads the case the verdict names (or the letter a bounce
//! reports) and hands it in with the [`Rules`]; this module reads nothing, changes nothing, sends
//! nothing and logs nothing. It returns a [`Reaction`] — where the message is filed, the case to
//! open, the events to record, the notices to queue, the letter to mark bounced, and one [`Step`]
//! per rule that fired, naming the rule and saying why with ids only — which the engine records
//! in one transaction. Votes are counted by [`settle`] once per pass, before planning.
//!
//! A reply's rules see the case as the earlier rules left it (each event is applied to a copy of
//! the state as it is made), so an agency named on an `Agencies:` line and returning in the same
//! message counts.
//!
//! # Rules, in order
//! By the classifier's verdict:
//! 1. [`open_case`] — a referral opens a case, day 0 counted from when it reached the mailbox;
//!    when day 0 cannot be computed (beyond the holiday data) it is listed for a person instead.
//! 2. [`reply_without_case`] — a reply to a case we do not have (it was never opened here) is
//!    listed for a person; [`reply_on_closed_case`] — so is a reply on a case that is closed
//!    (nothing looks at a closed case), with its reference.
//! 3. [`file_reply`] — a reply is filed on its case and joins its thread.
//! 4. [`agencies_line`] — an `Agencies:` line from the business unit, or from someone answering
//!    our letter to them, adds the named agencies; names the directory does not know are sent
//!    back to the sender (`agencies-unknown`).
//! 5. [`vote`] — a reply that reads as a vote is *accepted* only when every check passes, and is
//!    otherwise *held* for the business unit with the first check that failed:
//!    [`NOT_A_VOTER`], [`NO_CODE`], [`NOT_AUTHENTICATED`], [`ALREADY_DECIDED`], [`UNCLEAR`]
//!    (the one held reply that is answered: a genuine voter is asked again). An accepted vote is
//!    confirmed to the voter (`vote-confirmed`). A reply with no outcome keyword is not a vote.
//!    A reply from someone asked on several open decisions, with no code and no letter to say
//!    which, is about the one its outcome reads as a vote on; if it reads as a vote on more than
//!    one, it is held naming none ([`SEVERAL_DECISIONS`]), never filed as an ordinary reply.
//! 6. [`query_answered`] — the referrer writing while a decision stands at `query` reopens it, so
//!    the panel is asked again.
//! 7. [`agency_return`] — a return or nil return from an agency asked on this case is recorded,
//!    marked late when it came after the return deadline. One from an agency not on the case, or
//!    from a sender who matches no single agency and whom the partnership does not know, is
//!    listed for a person.
//! 8. [`out_of_office`] — an automatic reply on a case notes the agency's out-of-office (its
//!    chaser then goes to the deputy); it is never answered. One recognised by its wording alone
//!    on no case is listed for a person.
//! 9. [`bounce`] — a report that one of our letters failed for good marks it undelivered (the
//!    business manager is told by the timeline); a report that it is only delayed notes the delay
//!    on the letter (shown, never raised); a report we cannot match, or a failure of a closed
//!    case's letter, is listed for a person.
//! 10. [`secure_notice`] — a "read it on our portal" notice is filed on its case, if it names one,
//!     and listed for a person.
//! 11. [`own_message`] — our own mail is ignored.
//! 12. [`unmatched`] — everything else is listed for a person.
//!
//!
//! Every reaction then passes [`crate::core::limits::within_caps`]: past the cap on answers to
//! an address or cases per sender, nothing is sent or opened and the message is listed for a
//! person.
//!
//! Counting, for each decision not yet taken ([`settle`]):
//! 13. [`QUORUM_MET`] — the process's quorum rule gives an outcome: the decision is taken, at the
//!     time of the deciding vote.
//! 14. [`TIE_BREAK`] — a majority decision without a majority asks its tie-breaker.
//! 15. [`DISAGREEMENT`] — "all must agree" and they do not: the business manager is told.
//! 16. [`CONSULTED`] — a majority decision with a tie-breaker taken while its voters disagree
//!     (a split vote, or a vote against it arriving after it was taken) is sent to the
//!     tie-breaker, whom the partnership consults on such a majority (Tameside's Executive Chair
//!     / Independent Scrutineer). The majority's decision stands; once per round.
//!
//! Must not: read the clock, the store or the mail; log; decide what a message *is* (that is
//! `classify`) or which letters of the process are due (that is `timeline`).

use crate::core::agencies;
use crate::core::calendar::Calendar;
use crate::core::case::{self, CaseState, Event, Recorded};
use crate::core::classify::{Delivery, Kind, LetterRef, ReplyKind, Verdict};
use crate::core::decisions::{self, Counted, Reading, Tally};
use crate::core::directory::{Contact, Directory};
use crate::core::intake::{Message, hash_id};
use crate::core::process::{Decision, Process, Quorum};
use crate::core::records::CaseStatus;
use crate::core::text;
use crate::core::timeline::{self, DueLetter, Recipient};
use chrono::{DateTime, NaiveTime, Utc};
use std::collections::BTreeMap;

/// Everything the rules may know beyond the message and its case: the process, the calendar, the
/// directory, and this installation's settings.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub process: &'a Process,
    pub calendar: &'a Calendar,
    pub directory: &'a Directory,
    /// Referrals received at or after this London time start on the next working day.
    pub cutoff: Option<NaiveTime>,
    /// The secret behind vote codes.
    pub vote_key: &'a [u8],
    /// When set, a vote counts only if the topmost Authentication-Results header is from this
    /// server and shows the sender authenticated.
    pub authserv_id: Option<&'a str>,
    /// External-sender banners configured beyond the built-in ones (`[mail] banners`), removed
    /// with the quoted history before a vote or an `Agencies:` line is read
    /// ([`text::reply_text`]).
    pub banners: &'a [String],
    /// The caps on answers and cases ([`crate::core::limits`]).
    pub limits: crate::core::limits::Limits,
}

/// A stored message, parsed and classified.
#[derive(Clone, Copy)]
pub struct Incoming<'a> {
    /// The stored message's id.
    pub stored: i64,
    /// When it reached the mailbox (IMAP INTERNALDATE).
    pub received: DateTime<Utc>,
    pub msg: &'a Message,
    pub verdict: &'a Verdict,
}

/// One of our letters, as a delivery report names it.
#[derive(Debug, Clone)]
pub struct BouncedLetter {
    pub outbox: i64,
    pub step: String,
    /// The outbox key's recipient part (an address, several for a shared letter, `agency:<id>`).
    pub recipient: String,
    /// Every address the letter went to (the envelope: addressees and copies), lowercase.
    pub addressed: Vec<String>,
}

/// What the engine found for a message: the case its verdict names (or its bounced letter's case)
/// with its state, and the letter a bounce reports.
#[derive(Clone, Copy, Default)]
pub struct Found<'a> {
    pub case: Option<&'a CaseState>,
    pub bounced: Option<&'a BouncedLetter>,
}

pub use crate::core::reaction::{Filing, Opening, Reaction, Step};

/// The address a message is from, lowercase.
fn sender(msg: &Message) -> Option<String> {
    msg.from.as_ref().map(|a| a.email.to_lowercase())
}

/// The referrer a referral names — its Reply-To, else its From — lowercased: who its case writes
/// back to, and whose daily count of cases it adds to (the engine counts by the same address).
pub fn referrer_of(msg: &Message) -> Option<String> {
    msg.reply_to
        .first()
        .or(msg.from.as_ref())
        .map(|a| a.email.to_lowercase())
}

/// Who records what a sender's mail did: a hash of their address, never the address.
fn mail_actor(sender: &str) -> String {
    format!("mail:{}", hash_id(sender))
}

/// The system itself.
const CASECLERK: &str = "caseclerk";

/// What `incoming` does, given what the engine `found` for it, at `now` — before the caps on
/// answers and cases, which the engine applies with the counts from its store
/// ([`crate::core::limits::within_caps`], only to a reaction they can change:
/// [`crate::core::limits::can_cap`]).
pub fn react(
    rules: &Rules<'_>,
    incoming: &Incoming<'_>,
    found: Found<'_>,
    now: DateTime<Utc>,
) -> Reaction {
    match &incoming.verdict.kind {
        Kind::Referral => open_case(rules, incoming),
        Kind::CaseReply {
            in_reply_to_letter,
            agency,
            reply,
            ..
        } => match found.case {
            None => reply_without_case(),
            Some(state) if state.status == CaseStatus::Closed => reply_on_closed_case(state),
            Some(state) => {
                let reply = Reply {
                    letter: in_reply_to_letter.as_ref(),
                    agency: agency.as_deref(),
                    kind: reply,
                };
                file_reply(rules, incoming, state, &reply, now)
            }
        },
        Kind::AutoReply { .. } => out_of_office(rules, incoming, found.case),
        Kind::Bounce { .. } => bounce(incoming, found),
        Kind::SecureNotice { .. } => secure_notice(rules, incoming, found.case),
        Kind::OwnMessage => own_message(),
        Kind::Unmatched => unmatched(incoming),
    }
}

/// Rule 1: a referral opens a case.
pub fn open_case(rules: &Rules<'_>, incoming: &Incoming<'_>) -> Reaction {
    let (p, cal) = (rules.process, rules.calendar);
    let o = match opening(
        p,
        cal,
        rules.cutoff,
        incoming.stored,
        incoming.received,
        incoming.msg,
    ) {
        Ok(o) => o,
        Err(e) => {
            return Reaction::new(Filing::Triage).because(
                "open_case",
                format!("held for a person: day 0 cannot be computed ({e})"),
            );
        }
    };
    let mut r = Reaction::new(Filing::Filed);
    r.on_case = true;
    r.thread = true;
    let why = format!("a referral opens a case with day 0 {}", o.day0);
    r.open = Some(o);
    r.because("open_case", why)
}

/// The case a referral opens: day 0 from when it reached the mailbox (the process's cutoff
/// applied), its area (the one a labelled borough field names, else the one its subject, body and
/// file names name: see [`crate::core::area`]), its referrer (Reply-To, else From), and the
/// particulars read from it. The one way a case is
/// opened — by the daemon for a classified referral ([`open_case`]), and by a person for a
/// message in triage (`caseclerk open-referral`) — so both count day 0 alike. Errs when day 0
/// cannot be computed (the calendar does not reach that far).
pub fn opening(
    process: &Process,
    calendar: &Calendar,
    cutoff: Option<NaiveTime>,
    stored: i64,
    received: DateTime<Utc>,
    msg: &Message,
) -> Result<Opening, String> {
    let day0 = calendar
        .statutory()
        .day_zero(received, cutoff)
        .map_err(|e| e.to_string())?;
    let referrer = referrer_of(msg);
    let (particulars, unreadable) = crate::core::particulars::from_message(msg, &process.areas);
    let area = crate::core::area::of_referral(msg, &particulars, &process.areas);
    Ok(Opening {
        process: process.id.clone(),
        area,
        referrer,
        received_at: received,
        day0: day0.date,
        day0_explained: day0.explain(),
        message: stored,
        message_id: msg.message_id.clone(),
        references: msg.references.clone(),
        particulars,
        unreadable,
    })
}

/// Rule 2: a reply to a case we do not have.
pub fn reply_without_case() -> Reaction {
    Reaction::new(Filing::Triage).because("reply_without_case", "the case it names is not ours")
}

/// Rule 2a: a reply on a closed case is listed for a person, not filed on it: a closed case is
/// in no digest and plans nothing, so whatever it says ("the child has since died", a new
/// referral quoting the old reference) would otherwise be seen by nobody. The person reopens the
/// case and attaches it, opens a new case from it, or sets it aside.
///
/// It is stored on the case all the same (nothing recorded on it, no letter): it is about that
/// child, so the case's legal hold keeps it, `export-case` gives it, and retention keeps it as
/// the case's mail (see `core::retention`, a message listed for a person on a case).
pub fn reply_on_closed_case(state: &CaseState) -> Reaction {
    let mut r = Reaction::new(Filing::Triage);
    r.on_case = true;
    r.because(
        "reply_on_closed_case",
        format!(
            "about {}, which is closed: reopen it and attach this, open a new case from it, or \
             set it aside",
            state.reference
        ),
    )
}

/// What the classifier said of a reply on a case.
struct Reply<'a> {
    letter: Option<&'a LetterRef>,
    agency: Option<&'a str>,
    kind: &'a ReplyKind,
}

/// Events made while reacting to one reply, applied to a copy of the case as they are made.
struct Working {
    state: CaseState,
    r: Reaction,
}

impl Working {
    fn record(&mut self, at: DateTime<Utc>, actor: &str, event: Event) {
        let rec = Recorded {
            at,
            actor: actor.to_string(),
            event,
        };
        // An event the fold refuses (a second `opened`) cannot be made here; keep it regardless,
        // the store's fold reports it.
        let _ = case::apply(&mut self.state, &rec);
        self.r.events.push(rec);
    }
}

/// Rule 3 and the rules a reply goes through (4–7).
fn file_reply(
    rules: &Rules<'_>,
    incoming: &Incoming<'_>,
    state: &CaseState,
    reply: &Reply<'_>,
    now: DateTime<Utc>,
) -> Reaction {
    // A reply to one of our letters is from the agency that letter went to; a reply to a request
    // for a decision is from no agency: a panel member answering the screening request from the
    // police's domain, with a document attached, is voting, not sending the police's return
    // (which would stop the police being chased, and put the vote's attachment in the papers as
    // their return). A reply to any other letter (the meeting's invitation, the papers) is from
    // its sender's agency, as fresh mail is. An agency letter of a later round is keyed
    // `agency:<id>#r1`: the agency is `<id>`.
    let asks_a_decision = |step: &str| {
        let step = timeline::key_without_round(step);
        rules
            .process
            .step(step)
            .is_some_and(|s| s.kind == crate::core::process::StepKind::DecisionRequest)
    };
    let agency = match reply.letter {
        Some(l) => match timeline::key_without_round(&l.recipient).strip_prefix("agency:") {
            Some(id) => Some(id),
            None if asks_a_decision(&l.step) => None,
            None => reply.agency,
        },
        None => reply.agency,
    }
    .map(str::to_string);
    let mut w = Working {
        state: state.clone(),
        r: Reaction::new(Filing::Filed),
    };
    w.r.on_case = true;
    w.r.thread = true;
    w.record(
        incoming.received,
        CASECLERK,
        Event::MessageFiled {
            message: incoming.stored,
            rule: incoming.verdict.rule.to_string(),
            verdict: format!("{:?}", reply.kind),
            agency: agency.clone(),
        },
    );
    w.r =
        w.r.clone()
            .because("file_reply", format!("filed on {}", state.reference));
    agencies_line(rules, incoming, reply, &mut w, now);
    vote(rules, incoming, reply.letter, &mut w, now);
    query_answered(incoming, &mut w);
    // Someone the partnership knows by address, the case's referrer, or a voter answering a
    // request for a decision: their documents are theirs, not a missing agency's return.
    let known = sender(incoming.msg).is_some_and(|s| {
        rules.directory.person(&s).is_some() || state.referrer.as_deref() == Some(s.as_str())
    }) || reply.letter.is_some_and(|l| asks_a_decision(&l.step));
    agency_return(
        rules,
        incoming,
        (agency.as_deref(), known),
        reply.kind,
        &mut w,
    );
    w.r
}

/// Rule 4: an `Agencies:` line adds agencies.
fn agencies_line(
    rules: &Rules<'_>,
    incoming: &Incoming<'_>,
    reply: &Reply<'_>,
    w: &mut Working,
    now: DateTime<Utc>,
) {
    let msg = incoming.msg;
    let sender = sender(msg).unwrap_or_default();
    // Our letter's recipient key is its address, or the addresses of a shared letter.
    let answering_our_letter = reply
        .letter
        .is_some_and(|l| timeline::key_addressees(&l.recipient).any(|r| r == sender));
    let own = text::reply_text(&msg.body_text, rules.banners);
    let Some(line) = agencies::agencies_line(&own) else {
        return;
    };
    if !(rules.directory.is_business_unit(&sender) || answering_our_letter) {
        return;
    }
    let names = agencies::split_names(line);
    let matched = agencies::resolve(&names, &rules.directory.agencies);
    let mut added = 0;
    for id in &matched.ids {
        if w.state.agencies.get(id).is_some_and(|a| !a.removed) {
            continue;
        }
        added += 1;
        w.record(
            incoming.received,
            &mail_actor(&sender),
            Event::AgencyAdded {
                agency: id.clone(),
                source: format!("Agencies: line in stored message {}", incoming.stored),
            },
        );
    }
    w.r.steps.push(Step {
        rule: "agencies_line",
        why: format!(
            "{added} agencies added, {} names not in the directory",
            matched.unmatched.len()
        ),
    });
    if !matched.unmatched.is_empty() {
        let to = Recipient {
            name: msg
                .from
                .as_ref()
                .and_then(|a| a.name.clone())
                .unwrap_or_default(),
            email: sender.clone(),
            role: "sender".into(),
            phone: None,
        };
        let n = timeline::notice(
            rules.calendar,
            &w.state,
            "agencies-unknown",
            &format!("notice:{}", incoming.stored),
            to,
            matched.unmatched.clone(),
            now,
        );
        w.r.notices.push(n);
    }
}

/// A reply held: the sender is not among the decision's voters (nor its tie-breaker).
pub const NOT_A_VOTER: &str = "not_a_voter";
/// A reply held: the subject does not carry the code our request gave this member for this case.
pub const NO_CODE: &str = "no_code";
/// A reply held: the receiving server did not authenticate the sender.
pub const NOT_AUTHENTICATED: &str = "not_authenticated";
/// A reply held: the decision was already taken.
pub const ALREADY_DECIDED: &str = "already_decided";
/// A reply held and the member asked again: the first line is not one clear outcome.
pub const UNCLEAR: &str = "unclear";
/// A reply held: it reads as a vote on more than one open decision and nothing says which.
pub const SEVERAL_DECISIONS: &str = "several_decisions";
/// A reply held: it answers the decision's request of an earlier round, sent before the
/// referrer's answer reopened it (the member is asked again, with the answer, in this round).
pub const EARLIER_ROUND: &str = "earlier_round";
/// A vote accepted.
pub const ACCEPTED: &str = "accepted";

/// What the vote checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteCheck {
    /// Every check passed; the evidence says how the sender was authenticated.
    Accepted { outcome: String, evidence: String },
    /// Held for the business unit: the first check that failed, and why in words.
    Held { rule: &'static str, reason: String },
}

/// Which decision a reply is about.
#[derive(Debug, Clone)]
pub enum About<'p> {
    /// The one whose code is in the subject, else the one the letter it answers asked, else the
    /// only decision the sender votes on that was asked and is not yet taken.
    One(&'p Decision),
    /// No code and no letter says which, and the sender votes on more than one decision that was
    /// asked and is not yet taken: these.
    Several(Vec<&'p Decision>),
    /// None: the sender votes on no decision that was asked and is still open.
    Nothing,
}

/// The decision a reply is about (see [`About`]).
pub fn decision_of<'p>(
    rules: &Rules<'p>,
    state: &CaseState,
    msg: &Message,
    letter: Option<&LetterRef>,
) -> About<'p> {
    let Some(sender) = sender(msg) else {
        return About::Nothing;
    };
    let p = rules.process;
    let codes = decisions::find_codes(&msg.subject);
    let by_code = p
        .decisions
        .iter()
        .find(|d| has_code(rules, state, d, &sender, &codes));
    let by_letter = letter
        .and_then(|l| p.step(&l.step))
        .and_then(|s| s.decision.as_deref())
        .and_then(|id| p.decision(id));
    let mut by_sender = asked_now(rules, state, &sender);
    match (by_code.or(by_letter), by_sender.len()) {
        (Some(d), _) => About::One(d),
        (None, 0) => About::Nothing,
        (None, 1) => About::One(by_sender.remove(0)),
        (None, _) => About::Several(by_sender),
    }
}

/// The decisions `sender` votes on that wait for votes on the case now ([`awaited`]).
fn asked_now<'p>(rules: &Rules<'p>, state: &CaseState, sender: &str) -> Vec<&'p Decision> {
    let p = rules.process;
    p.decisions
        .iter()
        .filter(|d| awaited(p, state, d) && is_voter(rules, state, d, sender))
        .collect()
}

/// Whether `d` waits for votes on the case: its request was made and it is not yet taken.
pub fn awaited(p: &Process, state: &CaseState, d: &Decision) -> bool {
    !state.decisions.contains_key(&d.id)
        && state.letters.iter().any(|((step, _), l)| {
            l.sent_at.is_some()
                && p.step(step)
                    .is_some_and(|s| s.decision.as_deref() == Some(d.id.as_str()))
        })
}

fn has_code(
    rules: &Rules<'_>,
    state: &CaseState,
    d: &Decision,
    sender: &str,
    codes: &[String],
) -> bool {
    codes
        .iter()
        .any(|c| decisions::code_matches(rules.vote_key, &state.reference, &d.id, sender, c))
}

fn is_voter(rules: &Rules<'_>, state: &CaseState, d: &Decision, sender: &str) -> bool {
    decisions::counts_on(rules.directory, d, state.area.as_deref(), sender)
}

/// The checks a vote must pass, in order; the first that fails holds it.
pub fn check_vote(
    rules: &Rules<'_>,
    state: &CaseState,
    msg: &Message,
    decision: &Decision,
    reading: &Reading,
) -> VoteCheck {
    let sender = sender(msg).unwrap_or_default();
    let codes = decisions::find_codes(&msg.subject);
    let auth = match rules.authserv_id {
        Some(id) => decisions::check_authentication(&msg.authentication_results, id, &sender),
        None => Ok("no authserv-id configured: sender and code only".to_string()),
    };
    let held = |rule, reason: String| VoteCheck::Held { rule, reason };
    if !is_voter(rules, state, decision, &sender) {
        return held(
            NOT_A_VOTER,
            format!(
                "the sender is not one of the {} asked for this decision",
                decision.voters.replace('_', " ")
            ),
        );
    }
    if !has_code(rules, state, decision, &sender, &codes) {
        return held(
            NO_CODE,
            "the reply does not carry the code our request gave this member for this case".into(),
        );
    }
    let evidence = match auth {
        Err(why) => {
            return held(
                NOT_AUTHENTICATED,
                format!("sender authentication failed: {why}"),
            );
        }
        Ok(e) => e,
    };
    if let Some((outcome, _)) = state.decisions.get(&decision.id) {
        return held(
            ALREADY_DECIDED,
            format!("the decision was already taken ({outcome}); a later vote changes nothing"),
        );
    }
    match reading {
        Reading::Ambiguous(why) => held(
            UNCLEAR,
            format!("the reply is not clear: {why}; the member has been asked again"),
        ),
        Reading::Clear(outcome) => VoteCheck::Accepted {
            outcome: outcome.clone(),
            evidence: format!("code matched; {evidence}"),
        },
        Reading::NotAVote => held(UNCLEAR, "no outcome on the first line".into()),
    }
}

/// Rule 5: a reply that reads as a vote is accepted or held.
fn vote(
    rules: &Rules<'_>,
    incoming: &Incoming<'_>,
    letter: Option<&LetterRef>,
    w: &mut Working,
    now: DateTime<Utc>,
) {
    let msg = incoming.msg;
    let Some(sender) = sender(msg) else {
        return;
    };
    let own = text::reply_text(&msg.body_text, rules.banners);
    let (decision, reading) = match voted_on(rules, &w.state, msg, letter, &own, &sender) {
        Picked::Nothing => return,
        Picked::One(d, reading) => (d, reading),
        Picked::Several(votes) => return held_on_several(incoming, &sender, &votes, w),
    };
    if reading == Reading::NotAVote {
        return;
    }
    let actor = mail_actor(&sender);
    let to = recipient_for(rules.directory, &sender);
    let check = match check_vote(rules, &w.state, msg, decision, &reading) {
        VoteCheck::Accepted { .. } if answers_earlier_round(rules, &w.state, decision, letter) => {
            VoteCheck::Held {
                rule: EARLIER_ROUND,
                reason: "it answers the request sent before the decision was reopened; the \
                         member is asked again with the referrer's answer"
                    .into(),
            }
        }
        check => check,
    };
    match check {
        VoteCheck::Held { rule, mut reason } => {
            // Only a genuine voter's unclear reply is answered; a held forgery never is. The
            // letter is keyed by decision, round and voter, not by message: a voter is asked
            // again once per round, so an unclear reply chain (a person, or a machine answering
            // the question) is never asked twice; later unclear replies are held for the
            // business unit only, and say so.
            let round = w.state.rounds.get(&decision.id).copied().unwrap_or(0);
            let key = unclear_key(&decision.id, round, &sender);
            let asked = w
                .state
                .letters
                .contains_key(&("notice-vote-unclear".to_string(), key.clone()));
            if rule == UNCLEAR && asked {
                reason = format!(
                    "{}; the member was already asked again in this round, so this reply is for \
                     the business unit to read",
                    reason
                        .split("; the member has been asked again")
                        .next()
                        .unwrap_or(&reason)
                );
            }
            w.r.steps.push(Step {
                rule,
                why: format!(
                    "reply held on {} (message {}){}",
                    decision.id,
                    incoming.stored,
                    if rule == UNCLEAR && asked {
                        ", already asked again"
                    } else {
                        ""
                    }
                ),
            });
            w.record(
                incoming.received,
                &actor,
                Event::VoteHeld {
                    decision: Some(decision.id.clone()),
                    voter: sender.clone(),
                    message: incoming.stored,
                    reason,
                },
            );
            if rule == UNCLEAR {
                set_aside(incoming, &decision.id, &sender, &actor, w);
            }
            if rule == ALREADY_DECIDED
                && let Reading::Clear(late) = &reading
                && let Some((taken, _)) = w.state.decisions.get(&decision.id)
                && late != taken
                && taken_by_majority(rules, decision, &w.state, taken)
            {
                let note = format!(
                    "{sender} voted {late} after the decision was taken by majority ({taken})"
                );
                let consult = consultation(rules, decision, &w.state, vec![note], now);
                if !consult.is_empty() {
                    w.r.steps.push(Step {
                        rule: CONSULTED,
                        why: format!("late vote against {} on {}", taken, decision.id),
                    });
                }
                w.r.notices.extend(consult);
            }
            if rule == UNCLEAR && !asked {
                let mut ask = timeline::notice(
                    rules.calendar,
                    &w.state,
                    "vote-unclear",
                    &key,
                    to,
                    first_line(&own).into_iter().collect(),
                    now,
                );
                ask.decision = Some(decision.id.clone());
                w.r.notices.push(ask);
            }
        }
        VoteCheck::Accepted { outcome, evidence } => {
            w.r.steps.push(Step {
                rule: ACCEPTED,
                why: format!(
                    "vote on {}: {outcome} (message {})",
                    decision.id, incoming.stored
                ),
            });
            w.record(
                incoming.received,
                &actor,
                Event::VoteAccepted {
                    decision: decision.id.clone(),
                    voter: sender.clone(),
                    outcome: outcome.clone(),
                    message: incoming.stored,
                    evidence,
                },
            );
            let mut confirm = timeline::notice(
                rules.calendar,
                &w.state,
                "vote-confirmed",
                &format!("notice:{}", incoming.stored),
                to,
                vec![outcome],
                now,
            );
            confirm.decision = Some(decision.id.clone());
            w.r.notices.push(confirm);
            count_now(rules, w, now);
        }
    }
}

/// What a reply is a vote on ([`vote`]): one decision and how it reads, several it could be a
/// vote on, or none.
enum Picked<'p> {
    Nothing,
    One(&'p Decision, Reading),
    Several(Vec<(&'p Decision, Reading)>),
}

/// The decision a reply votes on, and its reading: [`decision_of`], and where that leaves a
/// choice, the outcome its words read as.
fn voted_on<'p>(
    rules: &Rules<'p>,
    state: &CaseState,
    msg: &Message,
    letter: Option<&LetterRef>,
    own: &str,
    sender: &str,
) -> Picked<'p> {
    let pick = |mut votes: Vec<(&'p Decision, Reading)>| match votes.len() {
        0 => Picked::Nothing,
        1 => {
            let (d, r) = votes.remove(0);
            Picked::One(d, r)
        }
        _ => Picked::Several(votes),
    };
    match decision_of(rules, state, msg, letter) {
        About::Nothing => Picked::Nothing,
        // On the thread (or with the code) of a decision already taken, a reply that is no vote
        // on it may be one on a decision the sender is asked now ("NO LCSPR" answering the
        // screening's confirmation, from a member who also signs off): read as below. Its code
        // names the other decision, so it is held, never counted unseen.
        About::One(d)
            if state.decisions.contains_key(&d.id)
                && decisions::read_vote(own, d) == Reading::NotAVote =>
        {
            pick(read_on(own, asked_now(rules, state, sender)))
        }
        About::One(d) => Picked::One(d, decisions::read_vote(own, d)),
        // Which one is then read from the outcome: a reply that reads as a vote on only one of
        // them is about that one. It carries no code (a code would have named it), so its
        // checks hold it whichever is named; naming it lets a person confirm it.
        About::Several(ds) => pick(read_on(own, ds)),
    }
}

/// Whether the letter a reply answers is `d`'s request of a round before the one now open: the
/// member voted without the referrer's answer that reopened it.
fn answers_earlier_round(
    rules: &Rules<'_>,
    state: &CaseState,
    d: &Decision,
    letter: Option<&LetterRef>,
) -> bool {
    let now = state.rounds.get(&d.id).copied().unwrap_or(0);
    letter.is_some_and(|l| {
        rules
            .process
            .step(&l.step)
            .is_some_and(|s| s.decision.as_deref() == Some(d.id.as_str()))
            && timeline::round_of_key(&l.recipient) < now
    })
}

/// Of `ds`, those a reply reads as a vote on, with the reading.
fn read_on<'d>(own: &str, ds: Vec<&'d Decision>) -> Vec<(&'d Decision, Reading)> {
    ds.into_iter()
        .map(|d| (d, decisions::read_vote(own, d)))
        .filter(|(_, r)| *r != Reading::NotAVote)
        .collect()
}

/// An unclear reply that passed the code and authentication is the voter's own, and may take
/// back what they voted ("sorry, I meant NFA"): their counted vote stops counting until they
/// answer again. (A reply held for failing a check may be anyone's and never comes here.)
fn set_aside(incoming: &Incoming<'_>, decision: &str, sender: &str, actor: &str, w: &mut Working) {
    let counted = w
        .state
        .votes
        .get(decision)
        .is_some_and(|v| v.contains_key(sender));
    if counted {
        w.record(
            incoming.received,
            actor,
            Event::VoteSetAside {
                decision: decision.to_string(),
                voter: sender.to_string(),
                message: incoming.stored,
            },
        );
    }
}

/// Count the votes as one is accepted: the decision is taken at its deciding vote whether the
/// votes came one a pass or all in one (after an outage, on a first run), and a vote after it is
/// held as too late either way.
fn count_now(rules: &Rules<'_>, w: &mut Working, now: DateTime<Utc>) {
    let settled = settle(rules, w.state.clone(), now);
    w.state = settled.state;
    w.r.events.extend(settled.events);
    w.r.notices.extend(settled.notices);
    w.r.steps.extend(settled.steps);
}

/// A reply that reads as a vote on more than one open decision, with nothing to say which: held
/// for a person, naming none, so it is never filed as an ordinary reply unseen.
fn held_on_several(
    incoming: &Incoming<'_>,
    sender: &str,
    votes: &[(&Decision, Reading)],
    w: &mut Working,
) {
    let ids: Vec<&str> = votes.iter().map(|(d, _)| d.id.as_str()).collect();
    w.r.steps.push(Step {
        rule: SEVERAL_DECISIONS,
        why: format!(
            "reply held: could be a vote on {} (message {})",
            ids.join(" or "),
            incoming.stored
        ),
    });
    w.record(
        incoming.received,
        &mail_actor(sender),
        Event::VoteHeld {
            decision: None,
            voter: sender.to_string(),
            message: incoming.stored,
            reason: format!(
                "the reply reads as a vote, but the sender is asked to decide {} and neither a \
                 code in the subject nor the letter it answers says which; confirm it on the \
                 right one",
                ids.join(" and ")
            ),
        },
    );
}

/// The key of the ask-again letter: one per decision, round and voter.
pub fn unclear_key(decision: &str, round: u32, voter: &str) -> String {
    format!("unclear:{decision}:{round}:{voter}")
}

/// The line a vote was read from (the first non-empty line of the reply's own text), as the
/// voter wrote it, shortened to 200 characters: the ask-again letter quotes it back to them.
pub fn first_line(own: &str) -> Option<String> {
    let line = own.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut out: String = line.chars().take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    Some(out)
}

/// Rule 6: the referrer answering a query reopens the decision that asked it.
fn query_answered(incoming: &Incoming<'_>, w: &mut Working) {
    let Some(sender) = sender(incoming.msg) else {
        return;
    };
    if w.state.referrer.as_deref() != Some(sender.as_str()) {
        return;
    }
    let queried: Vec<String> = w
        .state
        .decisions
        .iter()
        .filter(|(_, (outcome, _))| outcome == "query")
        .map(|(d, _)| d.clone())
        .collect();
    for decision in queried {
        w.r.steps.push(Step {
            rule: "query_answered",
            why: format!("{decision} reopened"),
        });
        w.record(
            incoming.received,
            CASECLERK,
            Event::DecisionReopened {
                decision,
                reason: format!(
                    "the referrer answered the query (message {})",
                    incoming.stored
                ),
            },
        );
    }
}

/// Rule 7: a return or nil return from an agency on the case. One from a sender who matches no
/// single agency and whom the partnership does not know (`known`: [`case_reply`]) — a named
/// nurse at a domain many NHS bodies share — is for a person: filed as an ordinary reply, the
/// return would never reach the collation pack, its agency would be chased as missing, and
/// nobody would be told a document had come.
fn agency_return(
    rules: &Rules<'_>,
    incoming: &Incoming<'_>,
    (agency, known): (Option<&str>, bool),
    kind: &ReplyKind,
    w: &mut Working,
) {
    if !matches!(kind, ReplyKind::Return | ReplyKind::NilReturn) {
        return;
    }
    let Some(agency) = agency else {
        if !known {
            let why = format!(
                "a {} from an address that matches no single agency and nobody in the directory: \
                 if it is an agency's, attach it as that agency's return, or set it aside",
                if *kind == ReplyKind::NilReturn {
                    "nil return"
                } else {
                    "document"
                }
            );
            for_a_person(incoming, w, "return_from_no_agency", why);
        }
        return;
    };
    if w.state.agencies.get(agency).is_none_or(|a| a.removed) {
        // Not asked on this case (not yet added, or removed): a person decides. Filed as an
        // ordinary reply it would be lost — asked, chased and reported missing once the agency
        // is added, and left out of the collation pack.
        let why = format!(
            "a return from {agency}, which is not on {}: add the agency and attach it as its return, or set it aside",
            w.state.reference
        );
        return for_a_person(incoming, w, "return_from_agency_not_on_case", why);
    }
    // A return whose sender the receiving server found forged (DMARC, SPF or DKIM failed) is
    // for a person: a nil return would stop the agency being chased, and a return's files would
    // go into the panel's papers, on the word of anyone who can write the agency's address.
    if let crate::core::trust::Auth::Fail(failed) =
        crate::core::trust::authentication(incoming.msg, rules.authserv_id)
    {
        let why = format!(
            "a {} from {agency} that failed the receiving server's checks ({failed}): a person \
             checks it came from the agency, then attaches it as its return, or sets it aside",
            if *kind == ReplyKind::NilReturn {
                "nil return"
            } else {
                "return"
            }
        );
        return for_a_person(incoming, w, "return_not_authenticated", why);
    }
    // A deadline that cannot be computed (beyond the holiday data) does not make a return late.
    let late = timeline::agency_return_deadline(rules.process, rules.calendar, &w.state, agency)
        .ok()
        .flatten()
        .is_some_and(|d| incoming.received > d.at);
    let nil = *kind == ReplyKind::NilReturn;
    let own = text::reply_text(&incoming.msg.body_text, rules.banners);
    let earlier = w.state.agencies.get(agency).map_or(0, |a| a.returns.len());
    let replaces = !nil && earlier > 0 && says_it_replaces(&own);
    if replaces && earlier > 1 {
        // Which of its documents it corrects ("disregard the summary I sent Monday") cannot be
        // told here; taking out the last would leave a wrong one in the pack and drop a right one.
        let why = format!(
            "a correction from {agency}, which has sent {earlier} documents on {}: which one it \
             replaces is for a person — attach it as {agency}'s return (caseclerk attach \
             --return), then take the one it replaces out of the pack (caseclerk agencies \
             withdraw)",
            w.state.reference
        );
        return for_a_person(incoming, w, "return_correction_unclear", why);
    }
    w.r.steps.push(Step {
        rule: "agency_return",
        why: format!(
            "{} from {agency}{}{}",
            if nil { "nil return" } else { "return" },
            if late { ", late" } else { "" },
            if replaces {
                ", replacing the earlier one"
            } else {
                ""
            }
        ),
    });
    w.record(
        incoming.received,
        CASECLERK,
        Event::ReturnReceived {
            agency: agency.to_string(),
            message: incoming.stored,
            nil,
            late,
            replaces,
        },
    );
}

/// A message that was to be a return goes to triage instead, for `why`, with a note on the case.
fn for_a_person(incoming: &Incoming<'_>, w: &mut Working, rule: &'static str, why: String) {
    w.r.filing = Filing::Triage;
    w.r.steps.push(Step {
        rule,
        why: why.clone(),
    });
    w.record(
        incoming.received,
        CASECLERK,
        Event::Note {
            text: format!("message {} is in triage: {why}", incoming.stored),
        },
    );
}

/// Whether an agency's own words say its return replaces the one it sent before: a wrong file
/// sent in error (another child's, it may be) must leave the collation pack, not go beside the
/// correction. Read sentence by sentence (a sentence may run over lines), leaving out the
/// sentences of an email disclaimer ("If you have received this email in error, please notify
/// the sender and disregard its contents": [`DISCLAIMER_WORDS`]), which nearly every council's
/// and NHS body's mail carries and which would otherwise take the agency's first document out
/// of the pack when its second came. "Amended", "revised" and "updated" count before what an
/// agency sends ("our amended chronology", "the revised version"), never before the template
/// ("on the revised template").
fn says_it_replaces(own: &str) -> bool {
    const REPLACING: &[&str] = &[
        "disregard",
        "replaces",
        "replacement",
        "corrected",
        "correct version",
        "sent in error",
        "wrong attachment",
        "wrong file",
        "instead of the",
        "use the attached instead",
    ];
    /// "amended", "revised" and "updated" count before what an agency sends, never before a
    /// template.
    const WHAT: &[&str] = &[
        "version",
        "copy",
        "return",
        "chronology",
        "summary",
        "report",
        "document",
        "form",
    ];
    let t = own.to_lowercase().replace(['\r', '\n'], " ");
    let amended = |s: &str| {
        let words: Vec<&str> = s.split(|c: char| !c.is_alphanumeric()).collect();
        words
            .windows(2)
            .any(|w| ["amended", "revised", "updated"].contains(&w[0]) && WHAT.contains(&w[1]))
    };
    t.split(['.', '!', '?'])
        .filter(|s| !DISCLAIMER_WORDS.iter().any(|d| s.contains(d)))
        .any(|s| REPLACING.iter().any(|w| s.contains(w)) || amended(s))
}

/// Words of an email disclaimer's sentences, never of an agency saying its return corrects the
/// last ([`says_it_replaces`]).
const DISCLAIMER_WORDS: &[&str] = &[
    "received this email in error",
    "received this e-mail in error",
    "received this message in error",
    "received this communication in error",
    "received it in error",
    "intended recipient",
    "if you are not the",
    "notify the sender",
    "notify us immediately",
    "email is confidential",
    "e-mail is confidential",
    "message is confidential",
    "may be confidential",
    "may contain confidential",
    "legally privileged",
];

/// Rule 8: an automatic reply is noted on its case, never answered.
pub fn out_of_office(
    rules: &Rules<'_>,
    incoming: &Incoming<'_>,
    case: Option<&CaseState>,
) -> Reaction {
    // Recognised by wording alone, on no case: a person glances at it (a rule can be wrong, and
    // nothing is lost); with headers saying so, or on a case, it is only recorded.
    let filing = if case.is_none() && incoming.verdict.rule == "automated_wording" {
        Filing::Triage
    } else {
        Filing::Recorded
    };
    let mut r = Reaction::new(filing);
    if case.is_some() {
        r.on_case = true;
        let agency = incoming
            .msg
            .from
            .as_ref()
            .and_then(|f| rules.directory.agency_of(&f.email))
            .map(|a| a.id.clone());
        r.events.push(Recorded {
            at: incoming.received,
            actor: CASECLERK.into(),
            event: Event::AutoReplyNoted {
                message: incoming.stored,
                agency,
            },
        });
    }
    r.because("out_of_office", "an automatic reply: noted, never answered")
}

/// Rule 9: a delivery report about one of our letters.
///
/// - **Failed** for good ([`Delivery::Failed`]): the letter is marked undelivered
///   (`LetterUndelivered`, and the timeline raises it to the business manager). The reason says
///   for how many of the letter's addressees it failed; a failure naming none of them (a forward
///   or alias of an addressee failed) still counts — someone the letter was for did not get it.
/// - **Delayed** ([`Delivery::Delayed`]): the server is still trying. The letter stays sent; the
///   delay is noted (`LetterDelayed`, shown in `caseclerk case` and the digest as "delayed, still
///   trying") and nothing is raised or sent. A later failure report marks it undelivered then.
/// - **Delivered** (relayed, expanded): recorded, nothing follows.
///
/// The report is read per recipient: failures that name none of the letter's addressees while
/// one of them is reported delayed make it a delay for this letter.
///
/// A report naming no letter of ours is listed for a person.
pub fn bounce(incoming: &Incoming<'_>, found: Found<'_>) -> Reaction {
    let Some(letter) = found.bounced else {
        return Reaction::new(Filing::Triage).because(
            "bounce",
            "a bounce of no letter of ours: listed for a person",
        );
    };
    let (failed, delayed, delivery) = match &incoming.verdict.kind {
        Kind::Bounce {
            failed_recipients,
            delayed_recipients,
            delivery,
            ..
        } => (
            failed_recipients.as_slice(),
            delayed_recipients.as_slice(),
            *delivery,
        ),
        _ => (&[][..], &[][..], Delivery::Failed),
    };
    let ours = |reported: &[String]| {
        letter
            .addressed
            .iter()
            .filter(|a| reported.iter().any(|r| r.eq_ignore_ascii_case(a)))
            .count()
    };
    // Read per recipient: when the report's failures are all elsewhere (a forward, an alias) and
    // this letter's own addressee is among the delayed, for this letter it is a delay.
    let delivery = match delivery {
        Delivery::Failed if ours(failed) == 0 && ours(delayed) > 0 => Delivery::Delayed,
        d => d,
    };
    let of = letter.addressed.len().max(1);
    let mut r = Reaction::new(Filing::Recorded);
    r.on_case = found.case.is_some();
    let (event, why) = match delivery {
        Delivery::Failed => {
            r.mark_bounced = Some(letter.outbox);
            let reason = match ours(failed) {
                0 if failed.is_empty() => {
                    "bounced: the recipient's server could not deliver it".to_string()
                }
                0 => "bounced: delivery failed for good to an address it was forwarded to"
                    .to_string(),
                n => format!("bounced: delivery failed for good to {n} of its {of} addressee(s)"),
            };
            let event = Event::LetterUndelivered {
                step: letter.step.clone(),
                recipient: letter.recipient.clone(),
                outbox: letter.outbox,
                reason,
            };
            (
                Some(event),
                format!("letter {} ({}) bounced", letter.outbox, letter.step),
            )
        }
        Delivery::Delayed => {
            let n = ours(delayed);
            let reason = if n == 0 {
                "delayed: its server has not delivered it yet and is still trying".to_string()
            } else {
                format!("delayed for {n} of its {of} addressee(s): their server is still trying")
            };
            let event = Event::LetterDelayed {
                step: letter.step.clone(),
                recipient: letter.recipient.clone(),
                outbox: letter.outbox,
                reason,
            };
            (
                Some(event),
                format!(
                    "letter {} ({}) delayed, still being tried: noted, not raised",
                    letter.outbox, letter.step
                ),
            )
        }
        Delivery::Delivered => (
            None,
            format!(
                "letter {} ({}): a report that it was delivered or relayed",
                letter.outbox, letter.step
            ),
        ),
    };
    if let Some(event) = event.filter(|_| r.on_case) {
        r.events.push(Recorded {
            at: incoming.received,
            actor: CASECLERK.into(),
            event,
        });
    }
    // A closed case raises nothing (no digest, no undelivered notice): a letter of one that
    // failed is listed for a person as well as recorded on it.
    if delivery == Delivery::Failed
        && let Some(state) = found.case.filter(|c| c.status == CaseStatus::Closed)
    {
        r.filing = Filing::Triage;
        return r.because(
            "bounce",
            format!(
                "{why}; {} is closed, so nothing else raises it",
                state.reference
            ),
        );
    }
    r.because("bounce", why)
}

/// Rule 10: a secure-portal notice, for a person to open.
pub fn secure_notice(
    rules: &Rules<'_>,
    incoming: &Incoming<'_>,
    case: Option<&CaseState>,
) -> Reaction {
    let mut r = Reaction::new(Filing::Triage);
    if case.is_some() {
        r.on_case = true;
        r.events.push(Recorded {
            at: incoming.received,
            actor: CASECLERK.into(),
            event: Event::MessageFiled {
                message: incoming.stored,
                rule: incoming.verdict.rule.to_string(),
                verdict: "secure message: open it in the sender's portal".into(),
                agency: incoming
                    .msg
                    .from
                    .as_ref()
                    .and_then(|f| rules.directory.agency_of(&f.email))
                    .map(|a| a.id.clone()),
            },
        });
    }
    r.because(
        "secure_notice",
        "a secure-portal notice: a person must open it",
    )
}

/// Rule 11: our own mail.
pub fn own_message() -> Reaction {
    Reaction::new(Filing::Ignored).because("own_message", "our own mail")
}

/// Rule 12: everything else.
pub fn unmatched(incoming: &Incoming<'_>) -> Reaction {
    Reaction::new(Filing::Triage).because(
        "unmatched",
        format!("listed for a person ({})", incoming.verdict.rule),
    )
}

/// A decision taken.
pub const QUORUM_MET: &str = "quorum_met";
/// A majority decision without a majority: the tie-breaker is asked.
pub const TIE_BREAK: &str = "tie_break";
/// "All must agree" and they do not: the business manager is told.
pub const DISAGREEMENT: &str = "disagreement";
/// A majority decision taken while its voters disagree: its tie-breaker is consulted.
pub const CONSULTED: &str = "consulted";

/// Whether `outcome` has a majority of `voters` voters among `outcomes` (the votes counted): a
/// majority decision, not one its tie-breaker or a person made.
fn by_majority<'a>(voters: usize, outcomes: impl Iterator<Item = &'a str>, outcome: &str) -> bool {
    voters > 0 && outcomes.filter(|o| *o == outcome).count() > voters / 2
}

/// Whether decision `d`, taken as `taken`, was taken by a majority of its voters' votes.
fn taken_by_majority(rules: &Rules<'_>, d: &Decision, state: &CaseState, taken: &str) -> bool {
    let voters = voters(rules, d, state);
    let votes = state.votes.get(&d.id);
    let outcomes = votes.into_iter().flatten().filter_map(|(who, v)| {
        voters
            .iter()
            .any(|c| c.email.eq_ignore_ascii_case(who))
            .then_some(v.outcome.as_str())
    });
    by_majority(voters.len(), outcomes, taken)
}

/// Rule 16: the letters that consult a decision's tie-breaker on a majority decision its voters
/// disagree on (`notes`: the votes and the outcome). None for a decision without a tie-breaker.
/// Keyed by decision, round and person, so a split seen twice (at the deciding vote, then a
/// late dissent) consults once.
fn consultation(
    rules: &Rules<'_>,
    d: &Decision,
    state: &CaseState,
    notes: Vec<String>,
    now: DateTime<Utc>,
) -> Vec<DueLetter> {
    let round = state.rounds.get(&d.id).copied().unwrap_or(0);
    tie_breakers(rules, d, state)
        .into_iter()
        .map(|c| {
            let to = timeline::contact_recipient(&c, "tie-breaker");
            let key = format!("notice:consult:{}#r{round}:{}", d.id, to.email);
            let mut notes = notes.clone();
            notes.insert(0, d.name.clone());
            timeline::notice(
                rules.calendar,
                state,
                "majority-consultation",
                &key,
                to,
                notes,
                now,
            )
        })
        .collect()
}

/// What counting the votes of a case did.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The case with any decision taken.
    pub state: CaseState,
    pub events: Vec<Recorded>,
    pub notices: Vec<DueLetter>,
    pub steps: Vec<Step>,
}

/// The people who vote on a decision for this case.
pub fn voters(rules: &Rules<'_>, d: &Decision, state: &CaseState) -> Vec<Contact> {
    rules
        .directory
        .people(&d.voters, state.area.as_deref())
        .to_vec()
}

/// The people who break a tie on a decision (a majority quorum with a tie-breaker).
pub fn tie_breakers(rules: &Rules<'_>, d: &Decision, state: &CaseState) -> Vec<Contact> {
    match &d.quorum {
        Quorum::Majority {
            tie_breaker: Some(role),
        } => rules.directory.people(role, state.area.as_deref()).to_vec(),
        _ => Vec::new(),
    }
}

/// Rules 13–15: count the votes of every decision not yet taken.
pub fn settle(rules: &Rules<'_>, state: CaseState, now: DateTime<Utc>) -> Settlement {
    let mut out = Settlement {
        state,
        events: Vec::new(),
        notices: Vec::new(),
        steps: Vec::new(),
    };
    for d in &rules.process.decisions {
        if out.state.decisions.contains_key(&d.id) {
            continue;
        }
        let Some(votes) = out
            .state
            .votes
            .get(&d.id)
            .filter(|v| !v.is_empty())
            .cloned()
        else {
            continue;
        };
        let voters = voters(rules, d, &out.state);
        let tie_breakers = tie_breakers(rules, d, &out.state);
        let mut counted = BTreeMap::new();
        let mut tie = None;
        let mut dropped = Vec::new();
        for (who, v) in &votes {
            if let Some(c) = voters.iter().find(|c| c.email.eq_ignore_ascii_case(who)) {
                counted.insert(
                    who.clone(),
                    Counted {
                        outcome: v.outcome.clone(),
                        partner: c.partner.clone(),
                    },
                );
            } else if tie_breakers
                .iter()
                .any(|c| c.email.eq_ignore_ascii_case(who))
            {
                tie = Some(v.outcome.clone());
            } else {
                dropped.push(format!("{who} ({})", v.outcome));
            }
        }
        // A vote accepted from someone the configuration no longer asks (a member replaced since)
        // is not counted; the decision's record says so rather than reading as if nobody else
        // had voted.
        let not_counted = match dropped.is_empty() {
            true => String::new(),
            false => format!(
                "; not counted, no longer asked on this decision: {}",
                dropped.join(", ")
            ),
        };
        let round = out.state.rounds.get(&d.id).copied().unwrap_or(0);
        match decisions::tally(d, &voters, &counted, tie.as_deref()).with_note(&not_counted) {
            Tally::Waiting { .. } => {}
            Tally::Decided { outcome, how } => {
                // Taken when the deciding vote arrived, not when we noticed.
                let at = votes.values().map(|v| v.at).max().unwrap_or(now);
                out.steps.push(Step {
                    rule: QUORUM_MET,
                    why: format!("{}: {outcome}", d.id),
                });
                let majority = by_majority(
                    voters.len(),
                    counted.values().map(|c| c.outcome.as_str()),
                    &outcome,
                );
                if majority && counted.values().any(|c| c.outcome != outcome) {
                    let consult = consultation(rules, d, &out.state, vec![how.clone()], now);
                    if !consult.is_empty() {
                        out.steps.push(Step {
                            rule: CONSULTED,
                            why: format!("{} round {round}", d.id),
                        });
                    }
                    out.notices.extend(consult);
                }
                let rec = Recorded {
                    at,
                    actor: CASECLERK.into(),
                    event: Event::DecisionTaken {
                        decision: d.id.clone(),
                        outcome,
                        how,
                    },
                };
                let _ = case::apply(&mut out.state, &rec);
                out.events.push(rec);
            }
            Tally::Disagreement { how, tie_breaker } => {
                let (rule, template, tag, people, role) = match tie_breaker {
                    Some(_) => (
                        TIE_BREAK,
                        "tie-break-request",
                        "tiebreak",
                        tie_breakers.clone(),
                        "tie-breaker",
                    ),
                    None => (
                        DISAGREEMENT,
                        "decision-disagreement",
                        "disagree",
                        business_manager(rules.directory, &out.state),
                        "business_manager",
                    ),
                };
                out.steps.push(Step {
                    rule,
                    why: format!("{} round {round}", d.id),
                });
                for c in people {
                    let to = timeline::contact_recipient(&c, role);
                    let key = format!("notice:{tag}:{}#r{round}:{}", d.id, to.email);
                    let mut n = timeline::notice(
                        rules.calendar,
                        &out.state,
                        template,
                        &key,
                        to,
                        vec![how.clone()],
                        now,
                    );
                    if rule == TIE_BREAK {
                        n.decision = Some(d.id.clone());
                    }
                    out.notices.push(n);
                }
            }
        }
    }
    out
}

/// The business manager for a case, else the business unit.
fn business_manager(directory: &Directory, state: &CaseState) -> Vec<Contact> {
    let people = directory.people("business_manager", state.area.as_deref());
    if people.is_empty() {
        directory
            .people("business_unit", state.area.as_deref())
            .to_vec()
    } else {
        people.to_vec()
    }
}

/// A recipient for a person we know by address (a voter, the referrer), named from the directory.
pub fn recipient_for(directory: &Directory, email: &str) -> Recipient {
    Recipient {
        name: directory
            .person(email)
            .map(|c| c.name.clone())
            .unwrap_or_default(),
        email: email.to_string(),
        role: "voter".into(),
        phone: None,
    }
}

/// The reaction rules, without any server: a Bury case, its screening panel, and replies made
/// by hand. Each hold rule is one row of a table, and each is the *only* failing check in its
/// row, so removing any one rule fails its row.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::classify::Verdict;
    use crate::core::intake;

    const KEY: &[u8] = b"a key only this installation holds";
    const MX: &str = "mx.bury.test";
    const LA: &str = "la@bury.test";
    const POLICE: &str = "police@police.test";
    const STRANGER: &str = "someone@elsewhere.test";

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn bury() -> Process {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/processes/bury.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let has = |_: &str| true;
        crate::core::process::parse(
            "bury.toml",
            &text,
            &crate::core::process::Environment { has_template: &has },
        )
        .unwrap()
    }

    fn person(email: &str) -> Contact {
        Contact {
            name: email.into(),
            email: email.into(),
            phone: None,
            partner: None,
        }
    }

    fn directory() -> Directory {
        let mut d = Directory::default();
        d.roles
            .insert("screening_panel".into(), vec![person(LA), person(POLICE)]);
        d.roles
            .insert("business_manager".into(), vec![person("manager@bury.test")]);
        d
    }

    struct World {
        process: Process,
        calendar: Calendar,
        directory: Directory,
    }

    impl World {
        fn new() -> World {
            World {
                process: bury(),
                calendar: Calendar::bundled(),
                directory: directory(),
            }
        }
        fn rules(&self) -> Rules<'_> {
            Rules {
                process: &self.process,
                calendar: &self.calendar,
                directory: &self.directory,
                cutoff: None,
                vote_key: KEY,
                authserv_id: Some(MX),
                banners: &[],
                limits: crate::core::limits::Limits::default(),
            }
        }
    }

    fn case() -> CaseState {
        CaseState::new(
            "RR-2026-0001",
            "bury",
            None,
            Some("referrer@hospital.test".into()),
            t("2026-08-20T09:00:00Z"),
            chrono::NaiveDate::from_ymd_opt(2026, 8, 20).unwrap(),
            1,
        )
    }

    /// A reply from `from` with `code_for`'s screening code in the subject.
    fn reply(from: &str, code_for: Option<&str>, auth: &str, body: &str) -> intake::Message {
        let tag = code_for
            .map(|who| {
                decisions::code_tag(&decisions::vote_code(KEY, "RR-2026-0001", "screening", who))
            })
            .unwrap_or_default();
        let raw = format!(
            "Authentication-Results: {MX}; {auth}\r\nFrom: {from}\r\nTo: bsp@bury.test\r\nSubject: RE: [RR-2026-0001] Screening {tag}\r\nMessage-ID: <r@x.test>\r\n\r\n{body}\r\n"
        );
        intake::parse(raw.as_bytes())
    }

    fn pass(from: &str) -> String {
        format!(
            "dmarc=pass header.from={}",
            from.rsplit_once('@').unwrap().1
        )
    }

    #[test]
    fn each_vote_check_holds_a_reply_that_fails_only_it() {
        let w = World::new();
        let screening = w.process.decision("screening").unwrap();
        let mut decided = case();
        decided.decisions.insert(
            "screening".into(),
            ("nfa".into(), t("2026-08-20T11:00:00Z")),
        );
        let rows: [(&str, CaseState, intake::Message, Option<&str>); 6] = [
            (
                "a genuine vote",
                case(),
                reply(LA, Some(LA), &pass(LA), "MEETS"),
                None,
            ),
            (
                "someone outside the panel with a code made for them",
                case(),
                reply(STRANGER, Some(STRANGER), &pass(STRANGER), "MEETS"),
                Some(NOT_A_VOTER),
            ),
            (
                "a member without the code",
                case(),
                reply(LA, None, &pass(LA), "MEETS"),
                Some(NO_CODE),
            ),
            (
                "a member the server did not authenticate",
                case(),
                reply(LA, Some(LA), "dmarc=fail header.from=bury.test", "MEETS"),
                Some(NOT_AUTHENTICATED),
            ),
            (
                "a member after the decision",
                decided,
                reply(LA, Some(LA), &pass(LA), "MEETS"),
                Some(ALREADY_DECIDED),
            ),
            (
                "a member saying two things",
                case(),
                reply(LA, Some(LA), &pass(LA), "MEETS or NFA, not sure"),
                Some(UNCLEAR),
            ),
        ];
        for (what, state, msg, expected) in rows {
            let reading = decisions::read_vote(decisions::own_text(&msg.body_text), screening);
            let got = check_vote(&w.rules(), &state, &msg, screening, &reading);
            match (expected, &got) {
                (None, VoteCheck::Accepted { outcome, .. }) => {
                    assert_eq!(outcome, "meets", "{what}")
                }
                (Some(rule), VoteCheck::Held { rule: held, .. }) => {
                    assert_eq!(held, &rule, "{what}")
                }
                _ => panic!("{what}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    fn incoming<'a>(msg: &'a intake::Message, verdict: &'a Verdict) -> Incoming<'a> {
        Incoming {
            stored: 7,
            received: t("2026-08-20T12:00:00Z"),
            msg,
            verdict,
        }
    }

    /// What `msg`, read as `verdict`, does to `case` at 12:01 on the day of the tests.
    fn reacted(w: &World, msg: &intake::Message, verdict: &Verdict, case: &CaseState) -> Reaction {
        let found = Found {
            case: Some(case),
            bounced: None,
        };
        react(
            &w.rules(),
            &incoming(msg, verdict),
            found,
            t("2026-08-20T12:01:00Z"),
        )
    }

    fn case_reply() -> Verdict {
        Verdict {
            kind: Kind::CaseReply {
                case_ref: "RR-2026-0001".into(),
                in_reply_to_letter: None,
                agency: None,
                reply: ReplyKind::Other,
            },
            rule: "case_ref_in_subject",
            reasons: vec![],
        }
    }

    /// Replies to the screening request decided one after another, each seeing what the ones
    /// before it recorded and nothing else (no planning pass between them: as in one pass after
    /// an outage); message 10 at 12:00, 11 at 12:10, …
    fn in_turn(w: &World, replies: &[intake::Message]) -> (CaseState, Vec<Reaction>) {
        let (mut state, mut reactions) = (case(), Vec::new());
        let verdict = case_reply();
        for (i, msg) in replies.iter().enumerate() {
            let incoming = Incoming {
                stored: 10 + i as i64,
                received: t("2026-08-20T12:00:00Z") + chrono::Duration::minutes(10 * i as i64),
                msg,
                verdict: &verdict,
            };
            let found = Found {
                case: Some(&state),
                bounced: None,
            };
            let r = react(&w.rules(), &incoming, found, t("2026-08-20T13:00:00Z"));
            for e in &r.events {
                case::apply(&mut state, e).unwrap();
            }
            reactions.push(r);
        }
        (state, reactions)
    }

    #[test]
    fn a_decision_is_taken_at_its_deciding_vote_however_the_votes_are_batched() {
        let w = World::new();
        let (state, reactions) = in_turn(
            &w,
            &[
                reply(LA, Some(LA), &pass(LA), "MEETS"),
                reply(POLICE, Some(POLICE), &pass(POLICE), "MEETS"),
                reply(LA, Some(LA), &pass(LA), "NFA"),
            ],
        );
        assert_eq!(
            state.decisions.get("screening"),
            Some(&("meets".to_string(), t("2026-08-20T12:10:00Z"))),
            "both agreed at 12:10; LA's later NFA changes nothing"
        );
        assert!(
            reactions[2].events.iter().any(|e| matches!(
                &e.event,
                Event::VoteHeld { reason, .. } if reason.contains("already taken")
            )),
            "the late vote is held as too late, not counted"
        );
        assert!(
            reactions[2].notices.is_empty(),
            "nor confirmed to the voter"
        );
    }

    #[test]
    fn a_voter_s_unclear_correction_sets_their_earlier_vote_aside_and_a_forgery_does_not() {
        let w = World::new();
        let (state, reactions) = in_turn(
            &w,
            &[
                reply(LA, Some(LA), &pass(LA), "MEETS"),
                reply(LA, Some(LA), &pass(LA), "Sorry, I meant NFA"),
                reply(POLICE, Some(POLICE), &pass(POLICE), "MEETS"),
            ],
        );
        assert!(
            !state.decisions.contains_key("screening"),
            "LA took back MEETS: the decision waits for their answer"
        );
        assert!(!state.votes["screening"].contains_key(LA));
        assert!(
            reactions[1]
                .notices
                .iter()
                .any(|n| n.step == "notice-vote-unclear"),
            "LA is asked again"
        );
        // Without the code, the same words from LA's address may be anyone's: held, and LA's
        // vote stands.
        let (state, _) = in_turn(
            &w,
            &[
                reply(LA, Some(LA), &pass(LA), "MEETS"),
                reply(LA, None, &pass(LA), "Sorry, I meant NFA"),
                reply(POLICE, Some(POLICE), &pass(POLICE), "MEETS"),
            ],
        );
        assert_eq!(state.decisions["screening"].0, "meets");
    }

    #[test]
    fn a_vote_on_the_sign_off_sent_on_the_decided_screening_s_thread_is_held_not_lost() {
        let mut w = World::new();
        w.directory
            .roles
            .insert("statutory_partners".into(), vec![person(LA)]);
        let mut state = case();
        asked(
            &mut state,
            "screening-request",
            Some("2026-08-20T09:02:00Z"),
        );
        state.decisions.insert(
            "screening".into(),
            ("meets".into(), t("2026-08-20T11:00:00Z")),
        );
        asked(&mut state, "signoff-request", Some("2026-08-20T11:30:00Z"));
        // LA answers the screening's vote-confirmed letter, its code in the subject.
        let r = reacted(
            &w,
            &reply(LA, Some(LA), &pass(LA), "NO LCSPR"),
            &case_reply(),
            &state,
        );
        assert!(
            r.events.iter().any(|e| matches!(
                &e.event,
                Event::VoteHeld { decision: Some(d), .. } if d == "sign_off"
            )),
            "held on the sign-off for a person to confirm: {r:?}"
        );
        // A late vote on the screening itself is still held as too late.
        let late = reacted(
            &w,
            &reply(LA, Some(LA), &pass(LA), "NFA"),
            &case_reply(),
            &state,
        );
        assert!(late.events.iter().any(|e| matches!(
            &e.event,
            Event::VoteHeld { decision: Some(d), reason, .. }
                if d == "screening" && reason.contains("already taken")
        )));
    }

    #[test]
    fn a_vote_answering_the_request_before_a_query_reopened_the_decision_is_held() {
        let w = World::new();
        let mut state = case();
        asked(
            &mut state,
            "screening-request",
            Some("2026-08-20T09:02:00Z"),
        );
        let reopened = Recorded {
            at: t("2026-08-20T11:00:00Z"),
            actor: CASECLERK.into(),
            event: Event::DecisionReopened {
                decision: "screening".into(),
                reason: "the referrer answered".into(),
            },
        };
        case::apply(&mut state, &reopened).unwrap();
        let answering = |recipient: &str| Verdict {
            kind: Kind::CaseReply {
                case_ref: "RR-2026-0001".into(),
                in_reply_to_letter: Some(LetterRef {
                    step: "screening-request".into(),
                    recipient: recipient.into(),
                }),
                agency: None,
                reply: ReplyKind::Other,
            },
            rule: "thread",
            reasons: vec![],
        };
        let msg = reply(LA, Some(LA), &pass(LA), "MEETS");
        let r = reacted(&w, &msg, &answering(LA), &state);
        assert!(
            r.steps.iter().any(|s| s.rule == EARLIER_ROUND),
            "the round-0 request, answered after the query: {r:?}"
        );
        assert!(
            !r.events
                .iter()
                .any(|e| matches!(e.event, Event::VoteAccepted { .. }))
        );
        let r = reacted(&w, &msg, &answering(&format!("{LA}#r1")), &state);
        assert!(
            r.events
                .iter()
                .any(|e| matches!(e.event, Event::VoteAccepted { .. })),
            "the request of this round: {r:?}"
        );
    }

    #[test]
    fn a_counted_vote_of_someone_no_longer_on_the_panel_is_named_in_the_decision_s_record() {
        let w = World::new();
        let mut state = case();
        for (voter, outcome) in [
            (LA, "meets"),
            (POLICE, "meets"),
            ("old.icb@icb.test", "nfa"),
        ] {
            let accepted = Recorded {
                at: t("2026-08-20T12:00:00Z"),
                actor: CASECLERK.into(),
                event: Event::VoteAccepted {
                    decision: "screening".into(),
                    voter: voter.into(),
                    outcome: outcome.into(),
                    message: 9,
                    evidence: String::new(),
                },
            };
            case::apply(&mut state, &accepted).unwrap();
        }
        let out = settle(&w.rules(), state, t("2026-08-20T13:00:00Z"));
        let how = out
            .events
            .iter()
            .find_map(|e| match &e.event {
                Event::DecisionTaken { how, .. } => Some(how.clone()),
                _ => None,
            })
            .expect("decided by the two on the panel now");
        assert!(
            how.contains("not counted") && how.contains("old.icb@icb.test (nfa)"),
            "{how}"
        );
    }

    /// A verdict filing a message on RR-2026-0001 as `reply` from `agency`, by rule `rule`.
    fn on_case(agency: Option<&str>, reply: ReplyKind, rule: &'static str) -> Verdict {
        Verdict {
            kind: Kind::CaseReply {
                case_ref: "RR-2026-0001".into(),
                in_reply_to_letter: None,
                agency: agency.map(str::to_string),
                reply,
            },
            rule,
            reasons: vec![],
        }
    }

    /// Whether the reaction records a return.
    fn returned(r: &Reaction) -> bool {
        r.events
            .iter()
            .any(|e| matches!(e.event, Event::ReturnReceived { .. }))
    }

    #[test]
    fn a_return_from_an_agency_not_on_the_case_is_listed_for_a_person_not_filed_unseen() {
        let w = World::new();
        let verdict = on_case(Some("police"), ReplyKind::Return, "thread");
        let msg = reply(POLICE, None, &pass(POLICE), "Our summary is attached.");
        let r = reacted(&w, &msg, &verdict, &case());
        assert_eq!(r.filing, Filing::Triage, "{r:?}");
        assert!(!returned(&r));
        assert!(
            r.steps
                .iter()
                .any(|s| s.rule == "return_from_agency_not_on_case")
        );
        let mut on_case = case();
        on_case
            .agencies
            .insert("police".into(), case::AgencyState::default());
        let r = reacted(&w, &msg, &verdict, &on_case);
        assert_eq!(r.filing, Filing::Filed);
        assert!(
            returned(&r),
            "once the police are on the case, it is their return"
        );
    }

    #[test]
    fn a_document_from_someone_matching_no_agency_and_unknown_to_the_partnership_is_listed_for_a_person()
     {
        let w = World::new();
        let verdict = on_case(None, ReplyKind::Return, "case_ref_in_subject");
        // A named nurse at a domain many NHS bodies share: no agency by address.
        let nurse = "named.nurse@nhs.test";
        let msg = reply(nurse, None, &pass(nurse), "Health return attached.");
        let r = reacted(&w, &msg, &verdict, &case());
        assert_eq!(r.filing, Filing::Triage, "{r:?}");
        assert!(!returned(&r));
        assert!(r.steps.iter().any(|s| s.rule == "return_from_no_agency"));
        let nil = on_case(None, ReplyKind::NilReturn, "case_ref_in_subject");
        assert_eq!(reacted(&w, &msg, &nil, &case()).filing, Filing::Triage);
        // Someone the partnership knows (a panel member, the manager) or the case's referrer:
        // their document is filed on the case, as before.
        for known in [LA, "manager@bury.test", "referrer@hospital.test"] {
            let msg = reply(known, None, &pass(known), "Some notes attached.");
            let r = reacted(&w, &msg, &verdict, &case());
            assert_eq!(r.filing, Filing::Filed, "{known}: {r:?}");
        }
        // A plain reply without a document from the same nurse is filed.
        let other = on_case(None, ReplyKind::Other, "case_ref_in_subject");
        assert_eq!(reacted(&w, &msg, &other, &case()).filing, Filing::Filed);
    }

    #[test]
    fn a_correction_replaces_an_agency_s_only_document_but_which_of_several_is_for_a_person() {
        let w = World::new();
        let verdict = on_case(Some("police"), ReplyKind::Return, "thread");
        let msg = reply(
            POLICE,
            None,
            &pass(POLICE),
            "Please disregard the summary sent on Monday; corrected version attached.",
        );
        let sent = |returns: Vec<i64>| {
            let mut s = case();
            s.agencies.insert(
                "police".into(),
                case::AgencyState {
                    returns,
                    ..Default::default()
                },
            );
            s
        };
        let r = reacted(&w, &msg, &verdict, &sent(vec![1]));
        assert_eq!(r.filing, Filing::Filed);
        assert!(
            r.events
                .iter()
                .any(|e| matches!(e.event, Event::ReturnReceived { replaces: true, .. }))
        );
        let r = reacted(&w, &msg, &verdict, &sent(vec![1, 2]));
        assert_eq!(r.filing, Filing::Triage, "{r:?}");
        assert!(
            r.steps
                .iter()
                .any(|s| s.rule == "return_correction_unclear")
        );
        assert!(
            !r.events
                .iter()
                .any(|e| matches!(e.event, Event::ReturnReceived { .. }))
        );
    }

    #[test]
    fn a_correction_is_read_from_the_agency_s_words_never_from_its_disclaimer() {
        for said in [
            "Please disregard the chronology sent this afternoon; corrected version attached.",
            "The chronology was sent in error. This one replaces it.",
            "Attached is the revised version of our summary",
            "Apologies, wrong attachment - here is the right one",
            "Please disregard the chronology you received this morning and use the attached instead",
            "Please disregard my earlier email, which held confidential details of another child; \
             corrected version attached",
            "Please delete it and use the attached revised version",
            "Please find attached our amended chronology",
            "Attached is the revised chronology for this child",
        ] {
            assert!(says_it_replaces(said), "{said}");
        }
        for said in [
            "Our chronology is attached.\n\nThis email is confidential. If you have received \
             this email in error, please notify the sender and\ndisregard its contents.",
            "Please find the chronology, now on the revised template you sent round.",
            "Our summary, amended by the team manager, is attached.",
            "If you are not the intended recipient please disregard and delete it.",
        ] {
            assert!(!says_it_replaces(said), "{said}");
        }
    }

    #[test]
    fn a_return_answering_the_agency_request_of_a_reopened_round_is_that_agency_s_return() {
        let w = World::new();
        let mut state = case();
        state
            .agencies
            .insert("police".into(), case::AgencyState::default());
        // Screened in after a query: the request of round 1 is keyed `agency:police#r1`.
        let verdict = Verdict {
            kind: Kind::CaseReply {
                case_ref: "RR-2026-0001".into(),
                in_reply_to_letter: Some(LetterRef {
                    step: "agency-request".into(),
                    recipient: "agency:police#r1".into(),
                }),
                agency: None,
                reply: ReplyKind::Return,
            },
            rule: "thread",
            reasons: vec![],
        };
        let msg = reply(POLICE, None, &pass(POLICE), "Our summary is attached.");
        let r = reacted(&w, &msg, &verdict, &state);
        assert_eq!(r.filing, Filing::Filed, "{r:?}");
        assert!(
            r.events.iter().any(|e| matches!(
                &e.event,
                Event::ReturnReceived { agency, .. } if agency == "police"
            )),
            "{r:?}"
        );
    }

    #[test]
    fn an_accepted_vote_is_recorded_and_confirmed_to_the_voter() {
        let w = World::new();
        let (msg, verdict, state) = (
            reply(LA, Some(LA), &pass(LA), "MEETS"),
            case_reply(),
            case(),
        );
        let r = reacted(&w, &msg, &verdict, &state);
        assert_eq!(r.filing, Filing::Filed);
        assert!(r.events.iter().any(
            |e| matches!(&e.event, Event::VoteAccepted { outcome, .. } if outcome == "meets")
        ));
        let to: Vec<_> = r
            .notices
            .iter()
            .map(|n| (n.template.as_str(), n.to.email.as_str()))
            .collect();
        assert_eq!(to, [("vote-confirmed", LA)]);
    }

    #[test]
    fn an_unclear_vote_is_asked_again_but_a_forgery_is_never_answered() {
        let w = World::new();
        let mut state = case();
        // The panel was asked, so a member's reply without a code is still read as a vote.
        asked(
            &mut state,
            "screening-request",
            Some("2026-08-20T09:02:00Z"),
        );
        let verdict = case_reply();
        for (msg, asked) in [
            (reply(LA, Some(LA), &pass(LA), "MEETS or NFA"), true),
            (reply(LA, None, &pass(LA), "MEETS"), false),
        ] {
            let r = reacted(&w, &msg, &verdict, &state);
            assert!(
                r.events
                    .iter()
                    .any(|e| matches!(e.event, Event::VoteHeld { .. }))
            );
            assert_eq!(
                r.notices.iter().any(|n| n.template == "vote-unclear"),
                asked
            );
            assert!(!r.notices.iter().any(|n| n.template == "vote-confirmed"));
        }
    }

    /// `step`'s letter to `LA`, queued at 09:01 and sent at `sent` (`None`: not yet).
    fn asked(state: &mut CaseState, step: &str, sent: Option<&str>) {
        state.letters.insert(
            (step.into(), LA.into()),
            case::LetterState {
                outbox: 1,
                due_at: t("2026-08-20T09:01:00Z"),
                queued_at: t("2026-08-20T09:01:00Z"),
                sent_at: sent.map(t),
                undelivered: None,
                imported: false,
            },
        );
    }

    /// A reply to the case (not to one of our letters) from `LA`, who was asked on all three of
    /// bury's decisions and has decided none: it names no decision by code or by threading.
    fn asked_on_every_decision() -> (World, CaseState) {
        let mut w = World::new();
        for role in ["statutory_partners", "national_panel"] {
            w.directory.roles.insert(role.into(), vec![person(LA)]);
        }
        let mut state = case();
        for step in ["screening-request", "signoff-request", "panel-submission"] {
            asked(&mut state, step, Some("2026-08-20T09:02:00Z"));
        }
        (w, state)
    }

    #[test]
    fn a_decision_awaits_votes_once_its_request_went_and_until_it_is_taken() {
        let w = World::new();
        let screening = w.process.decision("screening").unwrap();
        let mut state = case();
        assert!(!awaited(&w.process, &state, screening), "not asked");
        asked(&mut state, "screening-request", None);
        assert!(!awaited(&w.process, &state, screening), "queued, not sent");
        asked(
            &mut state,
            "screening-request",
            Some("2026-08-20T09:02:00Z"),
        );
        assert!(awaited(&w.process, &state, screening));
        state.decisions.insert(
            "screening".into(),
            ("meets".into(), t("2026-08-20T11:00:00Z")),
        );
        assert!(!awaited(&w.process, &state, screening), "taken");
    }

    #[test]
    fn a_vote_that_could_be_on_several_open_decisions_is_held_for_a_person_naming_none() {
        let (w, state) = asked_on_every_decision();
        let verdict = case_reply();
        let held_on = |body: &str| {
            let msg = reply(LA, None, &pass(LA), body);
            let r = reacted(&w, &msg, &verdict, &state);
            assert_eq!(r.filing, Filing::Filed, "{body}");
            assert!(r.notices.is_empty(), "{body}: nobody is answered");
            let held: Vec<_> = r
                .events
                .iter()
                .filter_map(|e| match &e.event {
                    Event::VoteHeld { decision, .. } => Some(decision.clone()),
                    _ => None,
                })
                .collect();
            (held, r.steps.iter().map(|s| s.rule).collect::<Vec<_>>())
        };
        // "National review" is an outcome of the sign-off and of the National Panel's response.
        let (held, rules) = held_on("National review please");
        assert_eq!(held, [None]);
        assert!(rules.contains(&SEVERAL_DECISIONS), "{rules:?}");
        // "MEETS" is an outcome of screening only: held on it (no code), so it can be confirmed.
        let (held, rules) = held_on("MEETS");
        assert_eq!(held, [Some("screening".to_string())]);
        assert!(rules.contains(&NO_CODE), "{rules:?}");
        // No outcome at all: an ordinary reply.
        let (held, _) = held_on("Thank you, I will read the papers tonight.");
        assert!(held.is_empty());
    }

    #[test]
    fn a_reply_or_a_failed_letter_on_a_closed_case_is_listed_for_a_person_naming_it() {
        let w = World::new();
        let mut closed = case();
        closed.status = CaseStatus::Closed;
        let msg = reply(POLICE, None, &pass(POLICE), "The child has since died.");
        let found = Found {
            case: Some(&closed),
            bounced: None,
        };
        let at = t("2026-08-20T12:01:00Z");
        let r = react(&w.rules(), &incoming(&msg, &case_reply()), found, at);
        assert_eq!(r.filing, Filing::Triage);
        // Stored on the case (its hold and export cover it), nothing recorded, nothing sent.
        assert!(r.on_case && r.events.is_empty() && r.notices.is_empty());
        assert!(!r.thread);
        assert!(r.steps[0].why.contains("RR-2026-0001"), "{:?}", r.steps);

        let letter = BouncedLetter {
            outbox: 9,
            step: "outcome-nfa".into(),
            recipient: "referrer@hospital.test".into(),
            addressed: vec!["referrer@hospital.test".into()],
        };
        let report = Verdict {
            kind: Kind::Bounce {
                original_ids: vec![],
                failed_recipients: vec!["referrer@hospital.test".into()],
                delayed_recipients: vec![],
                delivery: Delivery::Failed,
            },
            rule: "bounce",
            reasons: vec![],
        };
        for (state, filing) in [(&closed, Filing::Triage), (&case(), Filing::Recorded)] {
            let found = Found {
                case: Some(state),
                bounced: Some(&letter),
            };
            let r = react(&w.rules(), &incoming(&msg, &report), found, at);
            assert_eq!(r.filing, filing);
            // Recorded on the case either way: the letter is undelivered.
            assert_eq!(r.mark_bounced, Some(9));
            assert!(
                r.events
                    .iter()
                    .any(|e| matches!(e.event, Event::LetterUndelivered { .. }))
            );
        }
    }

    fn voted(state: &mut CaseState, who: &str, outcome: &str, at: &str) {
        state.votes.entry("screening".into()).or_default().insert(
            who.into(),
            case::Vote {
                outcome: outcome.into(),
                at: t(at),
                message: 3,
            },
        );
    }

    #[test]
    fn a_decision_is_taken_when_the_last_vote_arrived_and_disagreement_goes_to_the_manager() {
        let w = World::new();
        let mut agreed = case();
        voted(&mut agreed, LA, "meets", "2026-08-20T10:00:00Z");
        voted(&mut agreed, POLICE, "meets", "2026-08-20T11:30:00Z");
        let s = settle(&w.rules(), agreed, t("2026-08-20T12:00:00Z"));
        assert_eq!(
            s.state.decisions["screening"],
            ("meets".to_string(), t("2026-08-20T11:30:00Z"))
        );
        assert_eq!(s.steps[0].rule, QUORUM_MET);
        assert!(s.notices.is_empty());

        let mut split = case();
        voted(&mut split, LA, "meets", "2026-08-20T10:00:00Z");
        voted(&mut split, POLICE, "nfa", "2026-08-20T11:30:00Z");
        let s = settle(&w.rules(), split, t("2026-08-20T12:00:00Z"));
        assert!(s.state.decisions.is_empty());
        assert_eq!(s.steps[0].rule, DISAGREEMENT);
        let to: Vec<_> = s
            .notices
            .iter()
            .map(|n| (n.template.as_str(), n.to.email.as_str()))
            .collect();
        assert_eq!(to, [("decision-disagreement", "manager@bury.test")]);

        let mut waiting = case();
        voted(&mut waiting, LA, "meets", "2026-08-20T10:00:00Z");
        let s = settle(&w.rules(), waiting, t("2026-08-20T12:00:00Z"));
        assert!(s.events.is_empty() && s.notices.is_empty() && s.steps.is_empty());
    }

    #[test]
    fn a_referral_opens_a_case_and_a_reply_to_no_case_of_ours_goes_to_a_person() {
        let w = World::new();
        let msg = intake::parse(b"From: Nurse <nurse@hospital.test>\r\nSubject: Rapid review referral\r\nMessage-ID: <ref@h.test>\r\n\r\nPlease.\r\n");
        let referral = Verdict {
            kind: Kind::Referral,
            rule: "referral",
            reasons: vec![],
        };
        let r = react(
            &w.rules(),
            &incoming(&msg, &referral),
            Found::default(),
            t("2026-08-20T12:01:00Z"),
        );
        let open = r.open.expect("a case is opened");
        assert_eq!(open.referrer.as_deref(), Some("nurse@hospital.test"));
        assert_eq!(open.day0.to_string(), "2026-08-20");
        assert_eq!((r.filing, r.thread), (Filing::Filed, true));

        let r = react(
            &w.rules(),
            &incoming(&msg, &case_reply()),
            Found::default(),
            t("2026-08-20T12:01:00Z"),
        );
        assert_eq!(r.filing, Filing::Triage);
        assert!(r.events.is_empty());
    }
}
