//! Read-only views of every case for the business unit: what the digest and the tracker read.
//!
//! Owns gathering one snapshot from the configuration and the store at an instant ([`gather`]):
//! every case's row and folded state, its letters, its deadlines resolved (and whether caseclerk
//! can see they were met), its upcoming steps, its meeting, agencies overdue with a contact to
//! phone, decisions awaited with the people who have not voted, replies held for a person; plus
//! the messages waiting in triage, letters that could not be delivered, and the mailbox's health.
//! Per case the derivation is pure ([`case_view`]) so tests build views from events without a
//! database.
//!
//! Views carry *labels*, never addresses: a person is a directory name (and phone), an agency its
//! directory name, a letter's recipient "Greater Manchester Police" or "the referrer". Nothing here
//! reads a message's subject or body.
//!
//! Must not: change anything (no events, no outbox rows); decide what is due (that is
//! [`crate::core::timeline`], whose functions it calls); hold SQL (that is [`crate::shell::store`]).

use crate::core::calendar::Calendar;
use crate::core::case::CaseState;
use crate::core::decisions;
use crate::core::directory::{Agency, Contact, Directory};
use crate::core::process::{Process, StepKind};
use crate::core::records::{CaseRow, CaseStatus, LetterSummary, OutboxState};
use crate::core::timeline::{self, Resolved, Upcoming};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::BTreeMap;

/// The outbox step names of the daily digest and the tracker report.
pub use crate::core::timeline::periodic::{DIGEST_STEP, TRACKER_STEP};

/// Where names come from: the process, the calendar and the directory.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub process: &'a Process,
    pub calendar: &'a Calendar,
    pub directory: &'a Directory,
}

impl<'a> Context<'a> {
    /// The people in a role for a case in `area` (the area's list first), as [`Directory::people`].
    pub fn people(&self, role: &str, area: Option<&str>) -> &'a [Contact] {
        self.directory.people(role, area)
    }

    fn agency(&self, id: &str) -> Option<&'a Agency> {
        self.directory.agency(id)
    }

    /// The agency an address speaks for: one of its people, else its mail domain.
    pub fn agency_of_address(&self, email: &str) -> Option<&'a Agency> {
        self.directory.agency_of(email)
    }

    /// A person's directory name for an address (any role, any area, any agency's people).
    fn name_of(&self, email: &str) -> Option<String> {
        if let Some(c) = self.directory.person(email) {
            return Some(c.name.clone());
        }
        for a in &self.directory.agencies {
            for c in [Some(&a.contact), a.lead.as_ref(), a.deputy.as_ref()]
                .into_iter()
                .flatten()
            {
                if c.email.eq_ignore_ascii_case(email) {
                    return Some(format!("{} ({})", c.name, a.name));
                }
            }
        }
        None
    }

    /// Who a letter went to, in words: never an address (a shared letter names everyone).
    pub fn recipient_label(&self, key: &str, referrer: Option<&str>) -> String {
        self.recipient_labels(key, referrer).join(", ")
    }

    /// Who a letter went to, one label per addressee (a shared letter's key lists them all; a
    /// letter of a later round is keyed `…#r1`).
    pub fn recipient_labels(&self, key: &str, referrer: Option<&str>) -> Vec<String> {
        timeline::key_addressees(key)
            .map(|k| self.addressee_label(k, referrer))
            .collect()
    }

    /// One addressee of a letter key, in words.
    fn addressee_label(&self, key: &str, referrer: Option<&str>) -> String {
        if let Some(id) = key.strip_prefix("agency:") {
            return self.agency(id).map_or(id.to_string(), |a| a.name.clone());
        }
        if let Some(roles) = key.strip_prefix("role:") {
            return roles.replace('_', " ").replace('+', ", ");
        }
        if key.starts_with("undelivered:") {
            return "business manager".into();
        }
        if let Some(m) = key.strip_prefix("notice:") {
            return format!("the sender of message {m}");
        }
        if referrer.is_some_and(|r| r.eq_ignore_ascii_case(key)) {
            return "the referrer".into();
        }
        self.name_of(key)
            .unwrap_or_else(|| "someone outside the directory".into())
    }

    /// A step's name for people.
    pub fn step_name(&self, step: &str) -> String {
        if let Some(s) = self.process.step(step) {
            return s.name.clone();
        }
        match step {
            DIGEST_STEP => "Daily digest".into(),
            TRACKER_STEP => "Tracker report".into(),
            timeline::UNDELIVERED_NOTICE => "Undelivered letter notice".into(),
            other => match other.strip_prefix("notice-") {
                Some(n) => {
                    let mut s = n.replace('-', " ");
                    if let Some(first) = s.get(0..1) {
                        s.replace_range(0..1, &first.to_uppercase());
                    }
                    format!("{s} notice")
                }
                None => other.to_string(),
            },
        }
    }
}

/// A person to call or wait for: a directory name and phone, never an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub phone: Option<String>,
}

impl Person {
    fn of(c: &Contact) -> Person {
        Person {
            name: c.name.clone(),
            phone: c.phone.clone(),
        }
    }
}

/// One letter of a case.
#[derive(Debug, Clone, PartialEq)]
pub struct LetterView {
    pub outbox: i64,
    pub step: String,
    pub step_name: String,
    pub kind: Option<StepKind>,
    /// Who it went to, in words: everyone it was addressed to (a shared letter names them all).
    pub to: String,
    /// The same, one label per addressee.
    pub people: Vec<String>,
    pub state: OutboxState,
    pub due_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A statutory or local deadline of the case's process, on an open pathway.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlineView {
    pub id: String,
    pub name: String,
    /// `None` while its anchor has not happened (an LCSPR decision not yet taken).
    pub due: Option<Resolved>,
    /// Whether caseclerk can see the deadline being met (see [`met_evidence`]).
    pub verifiable: bool,
    /// When it was met, if caseclerk saw it.
    pub met_at: Option<DateTime<Utc>>,
}

impl DeadlineView {
    /// Met on or before the deadline? `None` while not met (or not yet known).
    pub fn on_time(&self) -> Option<bool> {
        Some(self.met_at? <= self.due.as_ref()?.at)
    }
}

/// One agency on the case (removed agencies are left out).
#[derive(Debug, Clone, PartialEq)]
pub struct AgencyView {
    pub id: String,
    pub name: String,
    /// The contact information requests go to.
    pub contact: Option<Person>,
    /// Who to call instead when the contact's out-of-office reply was seen.
    pub deputy: Option<Person>,
    pub away: bool,
    /// When the information request was sent (else decided) for it.
    pub asked_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub late: bool,
    pub nil: bool,
    /// When its return is due: the date its request gave it (later than the process's for an
    /// agency asked late), else the process's; `None` when not yet known.
    pub return_by: Option<DateTime<Utc>>,
    /// Asked, not returned, and its return deadline has passed.
    pub overdue: bool,
}

/// One of the process's decisions on this case.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionView {
    pub id: String,
    pub name: String,
    /// The outcome and when it was taken.
    pub outcome: Option<(String, DateTime<Utc>)>,
    /// The outcome assumed meanwhile (NE Lincs).
    pub provisional: Option<String>,
    pub due: Option<Resolved>,
    /// When the request for votes first went out.
    pub requested_at: Option<DateTime<Utc>>,
    pub voters: Vec<Person>,
    /// Voters whose vote has not been counted yet.
    pub not_voted: Vec<Person>,
    /// Not taken, on an open pathway, and its request letter has gone out.
    pub awaited: bool,
}

/// A reply held for a person (not yet confirmed).
#[derive(Debug, Clone, PartialEq)]
pub struct HeldView {
    pub message: i64,
    /// The decision's name, if the reply was about one.
    pub decision: Option<String>,
    /// Is that decision still open?
    pub decision_open: bool,
    /// The sender's directory name, else "someone outside the directory".
    pub from: String,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// The decisions a person may count it on: the one it was held on, or, for a reply held
    /// naming none, each decision awaiting votes (asked, not taken) that the sender's vote
    /// counts on.
    pub choices: Vec<HeldChoice>,
}

/// A decision a held reply may be counted on, with the outcomes it allows.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldChoice {
    pub id: String,
    pub name: String,
    pub outcomes: Vec<String>,
}

/// Everything the business unit's views need about one case.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub row: CaseRow,
    pub state: CaseState,
    /// The referrer's agency (by address or mail domain), never the address.
    pub referrer_agency: Option<String>,
    pub letters: Vec<LetterView>,
    pub deadlines: Vec<DeadlineView>,
    /// Steps on open pathways not yet decided, due from now on, earliest first.
    pub upcoming: Vec<Upcoming>,
    /// The meeting, when it is on the case's pathway and its date is known.
    pub meeting: Option<DateTime<Utc>>,
    /// The agencies' return deadline, once known.
    pub return_deadline: Option<Resolved>,
    pub agencies: Vec<AgencyView>,
    pub decisions: Vec<DecisionView>,
    pub held: Vec<HeldView>,
    /// When the rapid review first went to the National Panel (a `panel_submission` step sent).
    pub panel_submitted: Option<DateTime<Utc>>,
    /// The date of the incident (the death or serious harm), for the tracker's "Incident date"
    /// column: the referral's incident-date particular, as read until a person checks it
    /// ([`CaseView::with_particulars`]).
    pub incident_date: Option<NaiveDate>,
    /// What could not be worked out for this case (each needs a person).
    pub problems: Vec<String>,
    /// The particulars read from the referral and what a person made of them (the shell fills
    /// them in: [`crate::shell::snapshot`]); personal data, for the business unit's own views.
    pub particulars: Vec<crate::core::particulars::Particular>,
}

impl CaseView {
    /// The view with the case's particulars (the shell reads them): the incident date follows.
    pub fn with_particulars(mut self, read: Vec<crate::core::particulars::Particular>) -> CaseView {
        self.incident_date = crate::core::particulars::incident_date(&read);
        self.particulars = read;
        self
    }

    /// Particulars read from the referral that nobody has checked yet.
    pub fn particulars_to_check(&self) -> Vec<crate::core::particulars::Field> {
        crate::core::particulars::unchecked(&self.particulars)
    }

    pub fn reference(&self) -> &str {
        &self.state.reference
    }

    pub fn is_open(&self) -> bool {
        self.state.status != CaseStatus::Closed
    }

    /// Decisions awaited: not taken, pathway open, request sent.
    pub fn awaited(&self) -> impl Iterator<Item = &DecisionView> {
        self.decisions.iter().filter(|d| d.awaited)
    }

    /// Agencies asked whose return is overdue.
    pub fn overdue_agencies(&self) -> impl Iterator<Item = &AgencyView> {
        self.agencies.iter().filter(|a| a.overdue)
    }

    pub fn decision(&self, id: &str) -> Option<&DecisionView> {
        self.decisions.iter().find(|d| d.id == id)
    }

    /// The screening decision: the process's first decision.
    pub fn screening(&self) -> Option<&DecisionView> {
        self.decisions.first()
    }

    /// The decision that can commission an LCSPR (one with an `lcspr` outcome): the one taken,
    /// else the first. Buckinghamshire has two (chair, or subgroup); only one is ever taken.
    pub fn lcspr_decision(&self, process: &Process) -> Option<&DecisionView> {
        let candidates: Vec<&DecisionView> = self
            .decisions
            .iter()
            .filter(|d| {
                process
                    .decision(&d.id)
                    .is_some_and(|p| p.outcomes.iter().any(|o| o == "lcspr"))
            })
            .collect();
        candidates
            .iter()
            .find(|d| d.outcome.is_some())
            .or(candidates.first())
            .copied()
    }

    pub fn deadline(&self, id: &str) -> Option<&DeadlineView> {
        self.deadlines.iter().find(|d| d.id == id)
    }
}

/// A message waiting for a person (`caseclerk triage`).
#[derive(Debug, Clone, PartialEq)]
pub struct TriageView {
    pub message: i64,
    pub received: DateTime<Utc>,
    /// The classification rule that put it there ("unmatched", "secure_portal", …).
    pub rule: String,
}

/// How many new triage messages the digest names one by one; the rest are counted.
///
/// A first run over a council's whole mailbox can leave thousands of messages in triage at
/// once: named one by one they made a digest of megabytes that nobody could read, and reading
/// them all into one list to build it was what made a first run's memory grow with the backlog
/// (issue 15). Twenty rows still fit a screen; `caseclerk triage` and the workspace list them
/// all.
pub const TRIAGE_LISTED: usize = 20;

/// The messages waiting in triage as the digest shows them, in memory bounded whatever their
/// number: the first [`TRIAGE_LISTED`] new ones (received since the last digest) by number, the
/// other new ones and the older ones counted. Built by [`TriageSummary::add`], one message at a
/// time, in any order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TriageSummary {
    /// The earliest new messages, oldest first (by arrival, then number).
    pub listed: Vec<TriageView>,
    /// The new messages not in `listed`.
    pub more: Option<Span>,
    /// The messages received before the last digest.
    pub older: Option<Span>,
}

/// Some messages: how many, and when the first and last of them arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub count: usize,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

impl Span {
    fn of(at: DateTime<Utc>) -> Span {
        Span {
            count: 1,
            first: at,
            last: at,
        }
    }

    fn with(span: Option<Span>, at: DateTime<Utc>) -> Option<Span> {
        Some(match span {
            None => Span::of(at),
            Some(s) => Span {
                count: s.count + 1,
                first: s.first.min(at),
                last: s.last.max(at),
            },
        })
    }
}

impl TriageSummary {
    /// Count one more message waiting in triage; `since` is the last digest's instant.
    pub fn add(&mut self, m: TriageView, since: DateTime<Utc>) {
        if m.received < since {
            self.older = Span::with(self.older, m.received);
            return;
        }
        let key = |v: &TriageView| (v.received, v.message);
        let at = self.listed.partition_point(|v| key(v) <= key(&m));
        let out = if at < TRIAGE_LISTED {
            self.listed.insert(at, m);
            if self.listed.len() > TRIAGE_LISTED {
                self.listed.pop()
            } else {
                None
            }
        } else {
            Some(m)
        };
        if let Some(out) = out {
            self.more = Span::with(self.more, out.received);
        }
    }

    /// Nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.more.is_none() && self.older.is_none()
    }
}

/// A letter that was refused, bounced or given up on, or is delayed and still being tried.
#[derive(Debug, Clone, PartialEq)]
pub struct UndeliveredView {
    /// The case reference (`None` for the digest or the tracker report).
    pub case: Option<String>,
    pub outbox: i64,
    pub step_name: String,
    pub to: String,
    /// "bounced back", "refused, or not sent for a day", "delayed, still trying" or "not sent:
    /// what it encloses was erased …" (the server's words can quote addresses: left out).
    pub how: String,
    pub queued_at: DateTime<Utc>,
}

/// A letter that fell due long before caseclerk's first run: decided, never sent
/// ([`crate::core::firstrun`]); `caseclerk resend` sends it deliberately.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedView {
    pub case: String,
    pub outbox: i64,
    pub step_name: String,
    pub to: String,
    pub due_at: DateTime<Utc>,
    pub queued_at: DateTime<Utc>,
}

/// How reading the mailbox is going.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MailboxHealth {
    /// Has caseclerk ever read it (or tried)?
    pub known: bool,
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Failed attempts since the last successful read.
    pub failures: i64,
    pub last_error_at: Option<DateTime<Utc>>,
    /// What kind of failure: "login failed", "cannot connect", … (no server text).
    pub last_error: Option<String>,
}

impl MailboxHealth {
    /// Does it need a person?
    pub fn failing(&self) -> bool {
        self.failures > 0
    }
}

/// Why the outbox holds every letter untouched: a failure that repeats at every attempt until a
/// person acts, and is no letter's fault. The outbox records [`SmtpHold::recorded`] as the
/// `<smtp>` row's last error; the digest, the health check and the pass's status line read it
/// back with [`SmtpHold::of`] to say what to put right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpHold {
    /// The server refused our login (a rotated password, a refused token).
    LoginRefused,
    /// The server's TLS certificate did not verify (a new internal CA, an expired certificate):
    /// caseclerk does not send the password, let alone a letter, to a server it cannot trust.
    CertificateNotTrusted,
    /// The server will not send as our address (a refused `MAIL FROM`, Exchange Online's "send
    /// as" refusals): a permission or the configured sender, for a person to put right.
    SenderRefused,
    /// The server will not send from the shared mailbox at all for now: it is full (Exchange
    /// keeps every letter in its Sent Items), over its daily recipient limit, or throttled for
    /// repeated errors — for IT to put right; no letter's fault.
    MailboxRefused,
    /// The server refuses the connection itself, before any letter: at its greeting, `EHLO` or
    /// `STARTTLS` (our address on a blocklist, a relay's access list changed, `554 5.7.1 …
    /// Client host blocked`) — for IT to put right; no letter's fault.
    ConnectionRefused,
}

impl SmtpHold {
    /// What the outbox records as the `<smtp>` row's last error (no server text).
    pub fn recorded(self) -> &'static str {
        match self {
            SmtpHold::LoginRefused => "login failed",
            SmtpHold::CertificateNotTrusted => "certificate not trusted",
            SmtpHold::SenderRefused => "sender refused",
            SmtpHold::MailboxRefused => "mailbox refused",
            SmtpHold::ConnectionRefused => "connection refused",
        }
    }

    /// The hold a recorded last error names; anything else (rows written before there were two
    /// kinds) is a refused login.
    pub fn of(last_error: Option<&str>) -> SmtpHold {
        match last_error {
            Some(e) if e == SmtpHold::CertificateNotTrusted.recorded() => {
                SmtpHold::CertificateNotTrusted
            }
            Some(e) if e == SmtpHold::SenderRefused.recorded() => SmtpHold::SenderRefused,
            Some(e) if e == SmtpHold::MailboxRefused.recorded() => SmtpHold::MailboxRefused,
            Some(e) if e == SmtpHold::ConnectionRefused.recorded() => SmtpHold::ConnectionRefused,
            _ => SmtpHold::LoginRefused,
        }
    }
}

/// Everything at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub now: DateTime<Utc>,
    /// "Since the last digest": the previous digest's send time, or 24 hours before `now`.
    pub since: DateTime<Utc>,
    pub partnership: String,
    pub short_name: String,
    pub cases: Vec<CaseView>,
    /// Letters that belong to no case (the digest, the tracker report).
    pub other_letters: Vec<LetterView>,
    pub triage: TriageSummary,
    pub undelivered: Vec<UndeliveredView>,
    /// Letters imported — not sent, on open cases, decided since the last digest.
    pub imported: Vec<ImportedView>,
    pub mailbox: MailboxHealth,
    /// How logging in to the SMTP server is going (known once it has failed).
    pub smtp: MailboxHealth,
    /// Due letters that could not be prepared (known once one has failed); `last_error` is
    /// what the pass recorded (a case reference, a step and what to fix: no personal data).
    pub unprepared: MailboxHealth,
    /// Letters made once that could not be prepared (`<notices>`; never cleared: the digest
    /// speaks of one that failed since the last digest).
    pub notices: MailboxHealth,
    /// Messages the mail server lists and did not hand over (`<imap-unfetched>`).
    pub unfetched: MailboxHealth,
    /// Cases whose history cannot be read at all (reference: why).
    pub problems: Vec<String>,
    /// The history's head when gathered: the last event's id and hash (`None`: no events yet).
    /// The digest carries it, so a copy of the chain's end leaves the server every day.
    pub history_head: Option<(i64, String)>,
}

/// The category of a stored mailbox error, without the server's words.
pub fn error_kind(text: &str) -> String {
    let t = text.to_lowercase();
    if t.contains("access token") {
        "Microsoft 365 sign-in failed (run caseclerk check --connect for the reason)".into()
    } else if t.contains("login") {
        "login failed (check the mailbox password)".into()
    } else if t.contains("tls") && t.contains("invalid peer certificate") {
        // (rustls's words for the server's certificate failing verification; an alert about a
        // certificate of ours is another TLS failure.)
        "the mail server's certificate is not trusted (IT: put its certificate authority in \
         [mailbox] ca_file, or renew the certificate)"
            .into()
    } else if t.contains("tls") {
        "secure connection failed".into()
    } else if t.contains("cannot connect") {
        "cannot connect to the mail server".into()
    } else if t.contains("timed out") {
        "the mail server stopped answering".into()
    } else if t.contains("password") {
        "no mailbox password configured".into()
    } else {
        "the mailbox could not be read".into()
    }
}

/// Text from elsewhere in caseclerk (a held reply's reason, an error) with anything that looks like
/// an address replaced, so no address reaches the business unit's email by accident.
pub fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|w| if w.contains('@') { "[address]" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Which deadlines caseclerk can see being met, and by what.
///
/// Only the National Panel deadline (`national_panel`): it is met when a `panel_submission` step
/// has been sent. Every other deadline is met by someone else's action caseclerk does not see (the
/// local authority's own notification, a report being published), so the digest names it around
/// its date and asks a person to check, rather than calling it overdue for ever.
pub fn met_evidence(
    deadline_id: &str,
    panel_submitted: Option<DateTime<Utc>>,
) -> (bool, Option<DateTime<Utc>>) {
    match deadline_id {
        "national_panel" => (true, panel_submitted),
        _ => (false, None),
    }
}

/// Letters grouped by their case, each case's in the order given (letters of no case left
/// out): what [`case_view`] is given for each case, so that building every case's view reads
/// each letter once.
pub fn letters_by_case(letters: &[LetterSummary]) -> BTreeMap<i64, Vec<LetterSummary>> {
    let mut out: BTreeMap<i64, Vec<LetterSummary>> = BTreeMap::new();
    for l in letters {
        if let Some(id) = l.case_id {
            out.entry(id).or_default().push(l.clone());
        }
    }
    out
}

/// The view of one case at `now`: pure, from its row, state and letters (all letters, or only
/// the case's own: [`letters_by_case`]).
pub fn case_view(
    ctx: &Context<'_>,
    row: CaseRow,
    state: CaseState,
    summaries: &[LetterSummary],
    now: DateTime<Utc>,
) -> CaseView {
    let p = ctx.process;
    let cal = ctx.calendar;
    let mut problems = Vec::new();
    let letters = letter_views(ctx, row.id, &state, summaries);
    let referrer_agency = state
        .referrer
        .as_deref()
        .and_then(|r| ctx.agency_of_address(r))
        .map(|a| a.name.clone());
    let mut view = CaseView {
        row,
        referrer_agency,
        letters,
        deadlines: Vec::new(),
        upcoming: Vec::new(),
        meeting: None,
        return_deadline: None,
        agencies: Vec::new(),
        decisions: Vec::new(),
        held: Vec::new(),
        panel_submitted: None,
        incident_date: None,
        problems: Vec::new(),
        particulars: Vec::new(),
        state,
    };
    if view.state.process != p.id {
        view.problems.push(format!(
            "belongs to process {}, not {} (this configuration's): not planned",
            view.state.process, p.id
        ));
        return view;
    }
    let state = &view.state;
    let panel_submitted = view
        .letters
        .iter()
        .filter(|l| l.kind == Some(StepKind::PanelSubmission))
        .filter_map(|l| l.sent_at)
        .min();
    let deadlines = deadline_views(ctx, state, panel_submitted, &mut problems);

    // Upcoming steps, from now on (the first is the tracker's "next step").
    let upcoming = match timeline::upcoming(p, cal, state, now, now + Duration::days(3 * 366)) {
        Ok(u) => u,
        Err(e) => {
            problems.push(format!("upcoming steps cannot be computed: {e}"));
            Vec::new()
        }
    };
    let meeting = meeting(ctx, state, &mut problems);
    let return_deadline = match timeline::return_deadline(p, cal, state) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("the return deadline cannot be computed: {e}"));
            None
        }
    };
    let agencies = agency_views(ctx, state, view.row.id, summaries, now);
    let decisions = decision_views(ctx, state, &view.letters, &mut problems);
    let held = held_views(ctx, state);

    view.deadlines = deadlines;
    view.upcoming = upcoming;
    view.meeting = meeting;
    view.return_deadline = return_deadline;
    view.agencies = agencies;
    view.decisions = decisions;
    view.held = held;
    view.panel_submitted = panel_submitted;
    view.problems = problems.iter().map(|p| scrub(p)).collect();
    view
}

/// The case's letters, named and addressed in words.
fn letter_views(
    ctx: &Context<'_>,
    case_id: i64,
    state: &CaseState,
    summaries: &[LetterSummary],
) -> Vec<LetterView> {
    summaries
        .iter()
        .filter(|l| l.case_id == Some(case_id))
        .map(|l| LetterView {
            outbox: l.id,
            step: l.step.clone(),
            step_name: ctx.step_name(&l.step),
            kind: ctx.process.step(&l.step).map(|s| s.kind),
            to: ctx.recipient_label(&l.recipient, state.referrer.as_deref()),
            people: ctx.recipient_labels(&l.recipient, state.referrer.as_deref()),
            state: l.state,
            due_at: l.due_at,
            queued_at: l.queued_at,
            sent_at: l.sent_at,
        })
        .collect()
}

/// The case's statutory deadlines, and whether caseclerk can see each one met.
fn deadline_views(
    ctx: &Context<'_>,
    state: &CaseState,
    panel_submitted: Option<DateTime<Utc>>,
    problems: &mut Vec<String>,
) -> Vec<DeadlineView> {
    match timeline::deadlines(ctx.process, ctx.calendar, state) {
        Ok(list) => list
            .into_iter()
            .map(|(d, r)| {
                let (verifiable, met_at) = met_evidence(&d.id, panel_submitted);
                DeadlineView {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    due: r,
                    verifiable,
                    met_at,
                }
            })
            .collect(),
        Err(e) => {
            problems.push(format!("deadlines cannot be computed: {e}"));
            Vec::new()
        }
    }
}

/// The meeting: when invitations are on an open pathway (or it was scheduled by hand).
fn meeting(
    ctx: &Context<'_>,
    state: &CaseState,
    problems: &mut Vec<String>,
) -> Option<DateTime<Utc>> {
    let (p, cal) = (ctx.process, ctx.calendar);
    let invited = p
        .steps
        .iter()
        .any(|s| s.kind == StepKind::Invite && timeline::on_pathway(p, cal, state, &s.on));
    if !invited && state.meeting_at.is_none() {
        return None;
    }
    // Cancelled by a person (`caseclerk cancel-meeting`) and not set again: no meeting.
    if state
        .meeting_changes
        .last()
        .is_some_and(|(_, cancelled, _)| *cancelled)
    {
        return None;
    }
    match timeline::meeting_at(p, cal, state) {
        Ok(m) => m,
        Err(e) => {
            problems.push(format!("the meeting date cannot be computed: {e}"));
            None
        }
    }
}

/// The agencies involved: when each was asked, whether it returned, whether it is overdue.
fn agency_views(
    ctx: &Context<'_>,
    state: &CaseState,
    case_id: i64,
    summaries: &[LetterSummary],
    now: DateTime<Utc>,
) -> Vec<AgencyView> {
    let p = ctx.process;
    state
        .active_agencies()
        .map(|(id, a)| {
            let dir = ctx.agency(id);
            let key = format!("agency:{id}");
            let asked_at = summaries
                .iter()
                .filter(|l| l.case_id == Some(case_id) && l.recipient == key)
                .filter(|l| {
                    p.step(&l.step)
                        .is_some_and(|s| s.kind == StepKind::AgencyRequest)
                })
                .map(|l| l.sent_at.unwrap_or(l.queued_at))
                .min();
            // A deadline that cannot be computed (beyond the holiday data) is raised with the
            // case's; it makes nobody overdue.
            let return_by = timeline::agency_return_deadline(p, ctx.calendar, state, id)
                .ok()
                .flatten()
                .map(|r| r.at);
            let overdue =
                a.returned_at.is_none() && asked_at.is_some() && return_by.is_some_and(|d| now > d);
            AgencyView {
                id: id.clone(),
                name: dir.map_or(id.clone(), |d| d.name.clone()),
                contact: dir.map(|d| Person::of(&d.contact)),
                deputy: dir.and_then(|d| d.deputy.as_ref()).map(Person::of),
                away: a.out_of_office_at.is_some(),
                asked_at,
                returned_at: a.returned_at,
                late: a.late,
                nil: a.nil,
                return_by,
                overdue,
            }
        })
        .collect()
}

/// The process's decisions on this case: asked when, due when, who has not voted.
fn decision_views(
    ctx: &Context<'_>,
    state: &CaseState,
    letters: &[LetterView],
    problems: &mut Vec<String>,
) -> Vec<DecisionView> {
    let (p, cal) = (ctx.process, ctx.calendar);
    let area = state.area.as_deref();
    let mut decisions = Vec::new();
    for d in &p.decisions {
        let due = match timeline::resolve(p, cal, state, &d.due, &format!("decision:{}", d.id)) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("the {} due date cannot be computed: {e}", d.name));
                None
            }
        };
        let request_steps: Vec<&str> = p
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::DecisionRequest && s.decision.as_deref() == Some(&d.id))
            .filter(|s| timeline::on_pathway(p, cal, state, &s.on))
            .map(|s| s.id.as_str())
            .collect();
        let requested_at = letters
            .iter()
            .filter(|l| request_steps.contains(&l.step.as_str()))
            .filter_map(|l| l.sent_at)
            .min();
        let people = ctx.people(&d.voters, area);
        let votes = state.votes.get(&d.id);
        let not_voted = people
            .iter()
            .filter(|c| !votes.is_some_and(|v| v.keys().any(|k| k.eq_ignore_ascii_case(&c.email))))
            .map(Person::of)
            .collect();
        let outcome = state.decisions.get(&d.id).cloned();
        decisions.push(DecisionView {
            id: d.id.clone(),
            name: d.name.clone(),
            awaited: outcome.is_none() && requested_at.is_some(),
            outcome,
            provisional: d.provisional.clone(),
            due,
            requested_at,
            voters: people.iter().map(Person::of).collect(),
            not_voted,
        });
    }
    decisions
}

/// Replies held for a person and not yet confirmed or dismissed.
fn held_views(ctx: &Context<'_>, state: &CaseState) -> Vec<HeldView> {
    state
        .held
        .iter()
        .filter(|h| h.waiting())
        .map(|h| {
            let decision = h.decision.as_deref();
            HeldView {
                message: h.message,
                decision: decision.map(|id| {
                    ctx.process
                        .decision(id)
                        .map_or(id.to_string(), |d| d.name.clone())
                }),
                decision_open: decision.is_none_or(|id| !state.decisions.contains_key(id)),
                from: ctx
                    .name_of(&h.voter)
                    .unwrap_or_else(|| "someone outside the directory".into()),
                at: h.at,
                reason: scrub(&h.reason),
                choices: ctx
                    .process
                    .decisions
                    .iter()
                    .filter(|d| match decision {
                        Some(id) => d.id == id,
                        None => {
                            crate::core::react::awaited(ctx.process, state, d)
                                && decisions::counts_on(
                                    ctx.directory,
                                    d,
                                    state.area.as_deref(),
                                    &h.voter,
                                )
                        }
                    })
                    .map(|d| HeldChoice {
                        id: d.id.clone(),
                        name: d.name.clone(),
                        outcomes: d.outcomes.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// The names a snapshot goes out under.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    pub partnership: &'a str,
    pub short_name: &'a str,
}

/// Put a snapshot together from every case's view and what the store listed beside them.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    ctx: &Context<'_>,
    names: Names<'_>,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    cases: Vec<CaseView>,
    letters: &[LetterSummary],
    triage: TriageSummary,
    mailbox: MailboxHealth,
    problems: Vec<String>,
) -> Snapshot {
    let by_id: BTreeMap<i64, &CaseView> = cases.iter().map(|c| (c.row.id, c)).collect();
    let undelivered = undelivered_letters(ctx, &by_id, letters, now);
    let imported = imported_letters(ctx, &by_id, letters, since);
    let other_letters = letters
        .iter()
        .filter(|l| l.case_id.is_none())
        .map(|l| LetterView {
            outbox: l.id,
            step: l.step.clone(),
            step_name: ctx.step_name(&l.step),
            kind: None,
            to: ctx.recipient_label(&l.recipient, None),
            people: ctx.recipient_labels(&l.recipient, None),
            state: l.state,
            due_at: l.due_at,
            queued_at: l.queued_at,
            sent_at: l.sent_at,
        })
        .collect();
    Snapshot {
        now,
        since,
        partnership: names.partnership.to_string(),
        short_name: names.short_name.to_string(),
        cases,
        other_letters,
        triage,
        undelivered,
        imported,
        mailbox,
        smtp: MailboxHealth::default(),
        unprepared: MailboxHealth::default(),
        notices: MailboxHealth::default(),
        unfetched: MailboxHealth::default(),
        problems,
        history_head: None,
    }
}

/// Letters imported — not sent on open cases, decided at or after `since` (so the first digest
/// after a first run lists them all, and later digests only new ones; `caseclerk case` and the
/// tracker always show them).
pub(crate) fn imported_letters(
    ctx: &Context<'_>,
    cases: &BTreeMap<i64, &CaseView>,
    letters: &[LetterSummary],
    since: DateTime<Utc>,
) -> Vec<ImportedView> {
    letters
        .iter()
        .filter(|l| l.state == OutboxState::Imported && l.queued_at >= since)
        .filter_map(|l| {
            let case = cases.get(&l.case_id?).filter(|c| c.is_open())?;
            Some(ImportedView {
                case: case.reference().to_string(),
                outbox: l.id,
                step_name: ctx.step_name(&l.step),
                to: ctx.recipient_label(&l.recipient, case.state.referrer.as_deref()),
                due_at: l.due_at,
                queued_at: l.queued_at,
            })
        })
        .collect()
}

/// How long a delayed letter is shown after its last delay report: five days, the longest
/// common retry period (Postfix's and sendmail's default; Exchange and Gmail give up after two).
/// By then its server has delivered it or sent a failure report, which marks it undelivered.
pub const DELAY_SHOWN_FOR: Duration = Duration::days(5);

/// Letters refused, bounced or given up on that still matter: those of open cases, and a lost
/// digest or tracker report for a week; and letters of open cases reported delayed (still being
/// tried) in the last [`DELAY_SHOWN_FOR`], shown as "delayed, still trying" and never raised.
/// A closed case needs nothing more.
pub(crate) fn undelivered_letters(
    ctx: &Context<'_>,
    cases: &BTreeMap<i64, &CaseView>,
    letters: &[LetterSummary],
    now: DateTime<Utc>,
) -> Vec<UndeliveredView> {
    let mut out = Vec::new();
    for l in letters {
        let case = l.case_id.and_then(|id| cases.get(&id));
        // A delay (still being tried) is shown for DELAY_SHOWN_FOR after its last report; a
        // failure report after it marks the letter undelivered instead.
        let delayed = !l.state.undelivered()
            && case
                .and_then(|c| c.state.delayed.get(&l.id))
                .is_some_and(|at| now - *at <= DELAY_SHOWN_FOR);
        if !l.state.undelivered() && !delayed {
            continue;
        }
        match case {
            Some(c) if !c.is_open() => continue,
            None if now - l.queued_at > Duration::days(7) => continue,
            _ => {}
        }
        out.push(UndeliveredView {
            case: case.map(|c| c.reference().to_string()),
            outbox: l.id,
            step_name: ctx.step_name(&l.step),
            to: ctx.recipient_label(&l.recipient, case.and_then(|c| c.state.referrer.as_deref())),
            how: if delayed {
                "delayed, still trying".into()
            } else if l.state == OutboxState::Bounced {
                "bounced back".into()
            } else if case
                .and_then(|c| c.state.letters.get(&(l.step.clone(), l.recipient.clone())))
                .and_then(|s| s.undelivered.as_deref())
                .is_some_and(crate::core::retention::erased_enclosures)
            {
                "not sent: what it encloses was erased under the retention schedule".into()
            } else {
                "refused, or not sent for a day".into()
            },
            queued_at: l.queued_at,
        });
    }
    out
}

/// A fixed set of cases for the digest's and the tracker's tests: the Bury process, a small
/// directory, and five cases as they stand on Tuesday 1 September 2026 at 08:00 (London), the
/// morning after the Summer bank holiday, the previous digest having gone on Friday 28 August at
/// 08:00.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;
    use crate::core::case::{self, Event, Recorded};
    use chrono::NaiveDate;

    pub fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Now: Tue 1 Sep 2026 08:00 BST.
    pub fn now() -> DateTime<Utc> {
        t("2026-09-01T07:00:00Z")
    }

    /// The previous digest: Fri 28 Aug 2026 08:00 BST.
    pub fn since() -> DateTime<Utc> {
        t("2026-08-28T07:00:00Z")
    }

    const DIRECTORY: &str = r#"
        [roles]
        business_unit = [{ name = "BSP Business Unit", email = "bsp@bury.test" }]
        business_manager = [{ name = "Business Manager", email = "manager@bury.test", phone = "0161 000 0001" }]
        screening_panel = [
            { name = "Amina Shah (LA)", email = "la.rep@bury.test", partner = "la" },
            { name = "DS Pat Jones (Police)", email = "police.rep@police.test", partner = "police" },
            { name = "Dr Lee Chan (ICB)", email = "icb.rep@icb.test", partner = "icb" },
        ]
        statutory_partners = [
            { name = "Local Authority lead", email = "la.lead@bury.test", partner = "la" },
            { name = "Police lead", email = "police.lead@police.test", partner = "police" },
            { name = "ICB lead", email = "icb.lead@icb.test", partner = "icb" },
        ]
        review_group = [{ name = "Rapid Review Group", email = "review.group@bury.test" }]
        chair = [{ name = "Rapid Review Chair", email = "chair@bury.test" }]
        case_review_subgroup = [{ name = "Case Review Subgroup", email = "subgroup@bury.test" }]
        national_panel = [{ name = "Child Safeguarding Practice Review Panel", email = "panel@education.test" }]

        [[agency]]
        id = "police"
        name = "Greater Manchester Police"
        contact = { name = "Public Protection Unit", email = "ppu@police.test", phone = "0161 000 0100" }
        domains = ["police.test"]

        [[agency]]
        id = "health-visiting"
        name = "Health Visiting Service"
        contact = { name = "Health Visiting Team Manager", email = "hv@nhs.test", phone = "0161 000 0200" }
        deputy = { name = "Deputy Team Manager", email = "hv.deputy@nhs.test", phone = "0161 000 0201" }
        domains = ["nhs.test"]

        [[agency]]
        id = "st-marys-primary"
        name = "St Mary's Primary School"
        contact = { name = "Designated Safeguarding Lead", email = "dsl@stmarys.test", phone = "0161 000 0300" }

        [[agency]]
        id = "gp"
        name = "GP Practice"
        contact = { name = "Practice Safeguarding Lead", email = "gp@practice.test" }
    "#;

    #[derive(serde::Deserialize)]
    struct Listed {
        roles: BTreeMap<String, Vec<Contact>>,
        agency: Vec<Agency>,
    }

    /// Everything a [`Context`] borrows.
    pub struct World {
        pub process: Process,
        pub calendar: Calendar,
        pub directory: Directory,
    }

    impl World {
        pub fn new() -> World {
            let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let path = root.join("config/processes/bury.toml");
            let text = std::fs::read_to_string(&path).unwrap();
            let has = |_: &str| true;
            let process = crate::core::process::parse(
                "bury.toml",
                &text,
                &crate::core::process::Environment { has_template: &has },
            )
            .unwrap();
            let dir: Listed = toml::from_str(DIRECTORY).unwrap();
            World {
                process,
                calendar: Calendar::bundled(),
                directory: Directory {
                    roles: dir.roles,
                    area_roles: BTreeMap::new(),
                    agencies: dir.agency,
                },
            }
        }

        pub fn ctx(&self) -> Context<'_> {
            Context {
                process: &self.process,
                calendar: &self.calendar,
                directory: &self.directory,
            }
        }
    }

    /// One case's events and letters, built up in order.
    #[derive(Clone)]
    pub struct Case {
        pub id: i64,
        pub events: Vec<Recorded>,
        pub letters: Vec<LetterSummary>,
        pub status: CaseStatus,
    }

    static OUTBOX: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1);

    impl Case {
        pub fn open(id: i64, received: &str, referrer: &str) -> Case {
            let received = t(received);
            let day0 = Calendar::bundled().day_zero(received, None).unwrap().date;
            let mut c = Case {
                id,
                events: Vec::new(),
                letters: Vec::new(),
                status: CaseStatus::Open,
            };
            c.at(
                received,
                Event::Opened {
                    reference: format!("RR-2026-{id:04}"),
                    process: "bury".into(),
                    area: None,
                    referrer: Some(referrer.into()),
                    received_at: received,
                    day0,
                    day0_explained: String::new(),
                    message: id * 100,
                    message_id: None,
                    references: Vec::new(),
                },
            );
            c
        }

        fn at(&mut self, at: DateTime<Utc>, event: Event) -> &mut Case {
            self.events.push(Recorded {
                at,
                actor: "caseclerk".into(),
                event,
            });
            self
        }

        pub fn event(&mut self, at: &str, event: Event) -> &mut Case {
            self.at(t(at), event)
        }

        /// A letter decided and (unless `state` says otherwise) sent at `at`.
        pub fn letter(&mut self, step: &str, key: &str, at: &str, state: &str) -> &mut Case {
            let state: OutboxState = state.parse().expect("a letter state");
            let at = t(at);
            let id = OUTBOX.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.at(
                at,
                Event::LetterQueued {
                    step: step.into(),
                    recipient: key.into(),
                    outbox: id,
                    due_at: at,
                    late_minutes: 0,
                    imported: false,
                },
            );
            if state != OutboxState::Pending {
                self.at(
                    at,
                    Event::LetterSent {
                        step: step.into(),
                        recipient: key.into(),
                        outbox: id,
                        confirmed_by_copy: false,
                    },
                );
            }
            self.letters.push(LetterSummary {
                id,
                case_id: Some(self.id),
                step: step.into(),
                recipient: key.into(),
                due_at: at,
                queued_at: at,
                state,
                attempts: 1,
                sent_at: (state == OutboxState::Sent).then_some(at),
            });
            self
        }

        pub fn decide(&mut self, at: &str, decision: &str, outcome: &str) -> &mut Case {
            self.event(
                at,
                Event::DecisionTaken {
                    decision: decision.into(),
                    outcome: outcome.into(),
                    how: "votes".into(),
                },
            )
        }

        pub fn agencies(&mut self, at: &str, ids: &[&str]) -> &mut Case {
            for id in ids {
                self.event(
                    at,
                    Event::AgencyAdded {
                        agency: id.to_string(),
                        source: "test".into(),
                    },
                );
            }
            self
        }

        pub fn returned(&mut self, at: &str, agency: &str, nil: bool, late: bool) -> &mut Case {
            self.event(
                at,
                Event::ReturnReceived {
                    agency: agency.into(),
                    message: 0,
                    nil,
                    late,
                    replaces: false,
                },
            )
        }

        pub fn view(&self, ctx: &Context<'_>, now: DateTime<Utc>) -> CaseView {
            let state = case::fold(&self.events).unwrap();
            let row = CaseRow {
                id: self.id,
                reference: state.reference.clone(),
                process: state.process.clone(),
                area: state.area.clone(),
                status: self.status,
                received_at: state.received_at,
                day0: state.day0,
                referrer: state.referrer.clone(),
            };
            case_view(ctx, row, state, &self.letters, now)
        }
    }

    /// The five cases.
    pub fn cases() -> Vec<Case> {
        vec![
            meeting_today_and_agencies_overdue(),
            new_on_friday_with_a_held_reply(),
            panel_deadline_in_two_days(),
            panel_deadline_passed_and_a_letter_bounced(),
            closed_after_no_further_action(),
        ]
    }

    /// RR-2026-0001: day 12 today (meeting at 10:00); two agencies overdue since day 9
    /// (Wed 26 Aug), health visiting's contact away; sign-off request tomorrow.
    fn meeting_today_and_agencies_overdue() -> Case {
        let mut a = Case::open(1, "2026-08-13T09:00:00Z", "referrer@hospital.test");
        a.letter(
            "acknowledge",
            "referrer@hospital.test",
            "2026-08-13T09:01:00Z",
            "sent",
        )
        .letter(
            "screening-request",
            "la.rep@bury.test",
            "2026-08-13T09:01:00Z",
            "sent",
        )
        .decide("2026-08-14T11:00:00Z", "screening", "meets")
        .letter(
            "outcome-meets",
            "referrer@hospital.test",
            "2026-08-14T11:01:00Z",
            "sent",
        )
        .agencies(
            "2026-08-14T12:00:00Z",
            &["police", "health-visiting", "st-marys-primary", "gp"],
        );
        for agency in ["police", "health-visiting", "st-marys-primary", "gp"] {
            a.letter(
                "agency-request",
                &format!("agency:{agency}"),
                "2026-08-17T09:00:00Z",
                "sent",
            );
        }
        a.letter(
            "invite",
            "review.group@bury.test",
            "2026-08-18T09:00:00Z",
            "sent",
        )
        .returned("2026-08-25T10:00:00Z", "police", false, false)
        .event(
            "2026-08-21T10:00:00Z",
            Event::AutoReplyNoted {
                message: 150,
                agency: Some("health-visiting".into()),
            },
        )
        .letter(
            "chase",
            "agency:health-visiting",
            "2026-08-24T09:00:00Z",
            "sent",
        )
        .letter("chase", "agency:gp", "2026-08-24T09:00:00Z", "sent")
        .returned("2026-08-26T15:00:00Z", "st-marys-primary", true, false)
        .letter(
            "escalate-missing",
            "manager@bury.test",
            "2026-08-27T08:00:00Z",
            "sent",
        )
        .letter(
            "circulate-papers",
            "review.group@bury.test",
            "2026-08-27T11:00:00Z",
            "sent",
        );
        a
    }

    /// RR-2026-0002: new on Friday afternoon; one of three panel members has voted; a reply
    /// from outside the directory was held.
    fn new_on_friday_with_a_held_reply() -> Case {
        let mut b = Case::open(2, "2026-08-28T13:30:00Z", "dr.khan@nhs.test");
        b.letter(
            "acknowledge",
            "dr.khan@nhs.test",
            "2026-08-28T13:31:00Z",
            "sent",
        );
        for member in [
            "la.rep@bury.test",
            "police.rep@police.test",
            "icb.rep@icb.test",
        ] {
            b.letter("screening-request", member, "2026-08-28T13:31:00Z", "sent");
        }
        b.event(
            "2026-08-28T15:00:00Z",
            Event::VoteAccepted {
                decision: "screening".into(),
                voter: "LA.Rep@bury.test".into(),
                outcome: "meets".into(),
                message: 201,
                evidence: "token".into(),
            },
        )
        .event(
            "2026-08-29T09:00:00Z",
            Event::VoteHeld {
                decision: Some("screening".into()),
                voter: "someone@elsewhere.test".into(),
                message: 202,
                reason: "the sender is not a voter on this decision".into(),
            },
        );
        b
    }

    /// RR-2026-0003: day 13 today; sign-off request at 09:00; National Panel due in two
    /// working days (Thu 3 Sep).
    fn panel_deadline_in_two_days() -> Case {
        let mut c = Case::open(3, "2026-08-12T10:00:00Z", "referrer@hospital.test");
        c.decide("2026-08-13T10:00:00Z", "screening", "meets")
            .agencies("2026-08-13T11:00:00Z", &["police"]);
        c.letter(
            "agency-request",
            "agency:police",
            "2026-08-14T09:00:00Z",
            "sent",
        )
        .returned("2026-08-20T09:00:00Z", "police", false, false)
        .letter("chase", "agency:police", "2026-08-21T09:00:00Z", "pending");
        c
    }

    /// RR-2026-0004: the National Panel deadline passed (day 15, Mon 24 Aug) and nothing was
    /// sent; the outcome letter to the referrer bounced.
    fn panel_deadline_passed_and_a_letter_bounced() -> Case {
        let mut d = Case::open(4, "2026-08-03T10:00:00Z", "referrer@hospital.test");
        d.decide("2026-08-04T10:00:00Z", "screening", "meets")
            .letter(
                "outcome-meets",
                "referrer@hospital.test",
                "2026-08-04T10:01:00Z",
                "bounced",
            )
            .event(
                "2026-08-04T12:00:00Z",
                Event::LetterUndelivered {
                    step: "outcome-meets".into(),
                    recipient: "referrer@hospital.test".into(),
                    outbox: 0,
                    reason: "bounced".into(),
                },
            )
            .letter(
                "signoff-request",
                "la.lead@bury.test",
                "2026-08-20T08:00:00Z",
                "sent",
            )
            .decide("2026-08-21T11:00:00Z", "sign_off", "no_lcspr");
        d
    }

    /// RR-2026-0005: closed after no further action; nothing about it needs anyone.
    fn closed_after_no_further_action() -> Case {
        let mut e = Case::open(5, "2026-07-01T09:00:00Z", "gp@practice.test");
        e.decide("2026-07-02T09:00:00Z", "screening", "nfa").event(
            "2026-07-03T09:00:00Z",
            Event::StatusChanged {
                status: CaseStatus::Closed,
                reason: "no further action".into(),
            },
        );
        e.status = CaseStatus::Closed;
        e
    }

    /// The snapshot the digest and the tracker are tested on.
    pub fn snapshot(world: &World) -> Snapshot {
        let ctx = world.ctx();
        let views: Vec<CaseView> = cases().iter().map(|c| c.view(&ctx, now())).collect();
        let letters: Vec<LetterSummary> = cases().into_iter().flat_map(|c| c.letters).collect();
        Snapshot {
            history_head: None,
            now: now(),
            since: since(),
            partnership: "Bury Safeguarding Partnership".into(),
            short_name: "BSP".into(),
            other_letters: Vec::new(),
            undelivered: undelivered(&ctx, &views, &letters),
            imported: Vec::new(),
            cases: views,
            triage: {
                let mut triage = TriageSummary::default();
                for (message, received, rule) in [
                    (7, "2026-08-01T10:00:00Z", "unmatched"),
                    (41, "2026-08-29T10:12:00Z", "secure_portal"),
                ] {
                    let received = t(received);
                    let rule = rule.into();
                    triage.add(
                        TriageView {
                            message,
                            received,
                            rule,
                        },
                        since(),
                    );
                }
                triage
            },
            mailbox: MailboxHealth {
                known: true,
                last_ok_at: Some(t("2026-09-01T06:59:00Z")),
                ..MailboxHealth::default()
            },
            smtp: MailboxHealth::default(),
            unprepared: MailboxHealth::default(),
            notices: MailboxHealth::default(),
            unfetched: MailboxHealth::default(),
            problems: Vec::new(),
        }
    }

    fn undelivered(
        ctx: &Context<'_>,
        views: &[CaseView],
        letters: &[LetterSummary],
    ) -> Vec<UndeliveredView> {
        let by_id: BTreeMap<i64, &CaseView> = views.iter().map(|c| (c.row.id, c)).collect();
        undelivered_letters(ctx, &by_id, letters, now())
    }

    pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_smtp_hold_reads_back_as_recorded_and_an_older_row_is_a_refused_login() {
        for hold in [SmtpHold::LoginRefused, SmtpHold::CertificateNotTrusted] {
            assert_eq!(SmtpHold::of(Some(hold.recorded())), hold);
        }
        assert_eq!(SmtpHold::of(None), SmtpHold::LoginRefused);
        assert_eq!(SmtpHold::of(Some("login failed")), SmtpHold::LoginRefused);
    }
    use super::fixture::{self, World};
    use super::*;

    /// A case whose acknowledgement was reported delayed (still being tried) at 14:00 on Thu 27
    /// Aug, seen at `now`: what the digest's undelivered section lists.
    fn delayed_ack_seen_at(now: &str) -> Vec<UndeliveredView> {
        let world = World::new();
        let ctx = world.ctx();
        let mut c = fixture::Case::open(9, "2026-08-27T10:00:00Z", "referrer@hospital.test");
        c.letter(
            "acknowledge",
            "referrer@hospital.test",
            "2026-08-27T10:01:00Z",
            "sent",
        );
        let outbox = c.letters[0].id;
        c.event(
            "2026-08-27T14:00:00Z",
            crate::core::case::Event::LetterDelayed {
                step: "acknowledge".into(),
                recipient: "referrer@hospital.test".into(),
                outbox,
                reason: "delayed".into(),
            },
        );
        let now = fixture::t(now);
        let v = c.view(&ctx, now);
        let by_id = BTreeMap::from([(v.row.id, &v)]);
        undelivered_letters(&ctx, &by_id, &c.letters, now)
    }

    #[test]
    fn a_delayed_letter_is_listed_as_delayed_still_trying_for_five_days_never_as_undelivered() {
        let shown = delayed_ack_seen_at("2026-08-28T07:00:00Z");
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert_eq!(shown[0].how, "delayed, still trying");
        assert_eq!(shown[0].to, "the referrer");
        assert!(
            delayed_ack_seen_at("2026-09-02T07:00:00Z").is_empty(),
            "five days after the last delay report it has been delivered, or failed"
        );
    }

    fn view(reference: &str) -> CaseView {
        let world = World::new();
        fixture::snapshot(&world)
            .cases
            .into_iter()
            .find(|c| c.reference() == reference)
            .unwrap()
    }

    #[test]
    fn a_case_given_only_its_own_letters_looks_the_same_as_given_every_letter() {
        let world = World::new();
        let ctx = world.ctx();
        let cases = fixture::cases();
        let every: Vec<LetterSummary> = cases.iter().flat_map(|c| c.letters.clone()).collect();
        let by_case = letters_by_case(&every);
        assert_eq!(by_case.values().map(Vec::len).sum::<usize>(), every.len());
        for c in &cases {
            let own = by_case.get(&c.id).map(Vec::as_slice).unwrap_or_default();
            let mut all = c.clone();
            all.letters = every.clone();
            let mut grouped = c.clone();
            grouped.letters = own.to_vec();
            assert_eq!(
                format!("{:?}", grouped.view(&ctx, fixture::now())),
                format!("{:?}", all.view(&ctx, fixture::now())),
            );
        }
    }

    #[test]
    fn a_held_reply_may_be_counted_on_its_decision_or_on_each_open_one_its_sender_votes_on() {
        let world = World::new();
        let mut case = fixture::cases().remove(1);
        for (message, voter) in [
            (203, "police.rep@police.test"),
            (204, "someone@elsewhere.test"),
            (205, "la.lead@bury.test"),
        ] {
            case.event(
                "2026-08-29T10:00:00Z",
                crate::core::case::Event::VoteHeld {
                    decision: None,
                    voter: voter.into(),
                    message,
                    reason: "could be a vote on more than one decision".into(),
                },
            );
        }
        let v = case.view(&world.ctx(), "2026-08-29T11:00:00Z".parse().unwrap());
        let choices = |message: i64| {
            let h = v.held.iter().find(|h| h.message == message).unwrap();
            h.choices.iter().map(|c| c.id.as_str()).collect::<Vec<_>>()
        };
        // Held on screening: counted on screening, whoever sent it (confirming refuses a
        // non-voter and says why).
        assert_eq!(choices(202), ["screening"]);
        // Held naming none: the open decisions the sender votes on. The police screening member
        // is no statutory partner, so not the sign-off.
        assert_eq!(choices(203), ["screening"]);
        assert!(choices(204).is_empty());
        // A statutory partner: the sign-off has not been asked yet, so it is not offered.
        assert!(choices(205).is_empty());
        let screening = &v.held.iter().find(|h| h.message == 203).unwrap().choices[0];
        assert_eq!(
            screening.outcomes,
            ["meets", "nfa", "single_agency", "query"]
        );
    }

    #[test]
    fn a_decision_is_awaited_once_its_request_went_out_and_until_it_is_taken() {
        let new = view("RR-2026-0002");
        let screening = new.screening().unwrap();
        assert!(screening.awaited);
        assert_eq!(
            screening
                .not_voted
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["DS Pat Jones (Police)", "Dr Lee Chan (ICB)"],
            "a vote counts whatever the case of the voter's address"
        );
        let a = view("RR-2026-0001");
        assert!(
            a.awaited().next().is_none(),
            "sign-off is not asked for yet, screening is taken"
        );
        let d = view("RR-2026-0004");
        assert!(d.awaited().next().is_none(), "sign-off was taken");
    }

    #[test]
    fn an_agency_is_overdue_only_when_asked_not_returned_and_past_the_deadline() {
        let a = view("RR-2026-0001");
        let overdue: Vec<&str> = a.overdue_agencies().map(|x| x.id.as_str()).collect();
        assert_eq!(overdue, ["gp", "health-visiting"]);
        let hv = a
            .agencies
            .iter()
            .find(|x| x.id == "health-visiting")
            .unwrap();
        assert!(hv.away);
        assert_eq!(
            hv.deputy.as_ref().unwrap().phone.as_deref(),
            Some("0161 000 0201")
        );
        let c = view("RR-2026-0003");
        assert!(c.overdue_agencies().next().is_none());
    }

    #[test]
    fn letters_name_their_recipients_in_words_never_by_address() {
        let world = World::new();
        let snap = fixture::snapshot(&world);
        for c in &snap.cases {
            for l in &c.letters {
                assert!(!l.to.contains('@'), "{}: {}", c.reference(), l.to);
            }
        }
        let ctx = world.ctx();
        assert_eq!(ctx.recipient_label("agency:gp", None), "GP Practice");
        assert_eq!(
            ctx.recipient_label("REFERRER@hospital.test", Some("referrer@hospital.test")),
            "the referrer"
        );
        assert_eq!(
            ctx.recipient_label("la.rep@bury.test", None),
            "Amina Shah (LA)"
        );
        assert_eq!(
            ctx.recipient_label("hv.deputy@nhs.test", None),
            "Deputy Team Manager (Health Visiting Service)"
        );
        assert_eq!(
            ctx.recipient_label("stranger@example.test", None),
            "someone outside the directory"
        );
        assert_eq!(
            ctx.recipient_label("role:strategic_partnership+independent_scrutineer", None),
            "strategic partnership, independent scrutineer"
        );
    }

    #[test]
    fn the_national_panel_deadline_is_met_by_the_submission_and_others_cannot_be_seen() {
        let d = view("RR-2026-0004");
        let national = d.deadline("national_panel").unwrap();
        assert!(national.verifiable);
        assert_eq!(national.met_at, None);
        let sent = fixture::t("2026-08-24T14:00:00Z");
        assert_eq!(
            met_evidence("national_panel", Some(sent)),
            (true, Some(sent))
        );
        assert_eq!(met_evidence("lcspr_six_months", Some(sent)), (false, None));
    }

    #[test]
    fn the_meeting_is_shown_only_on_a_pathway_that_invites_to_it() {
        assert!(view("RR-2026-0001").meeting.is_some());
        assert!(
            view("RR-2026-0002").meeting.is_none(),
            "screening not yet decided"
        );
        assert!(view("RR-2026-0005").meeting.is_none(), "no further action");
    }

    #[test]
    fn text_from_elsewhere_loses_anything_that_looks_like_an_address() {
        assert_eq!(
            scrub("reply from <x@y.test> is not a voter"),
            "reply from [address] is not a voter"
        );
        assert_eq!(scrub("no token"), "no token");
    }

    #[test]
    fn a_stored_mailbox_error_is_reduced_to_its_kind() {
        assert_eq!(
            error_kind("IMAP login failed: NO [AUTHENTICATIONFAILED]"),
            "login failed (check the mailbox password)"
        );
        assert_eq!(
            error_kind(
                "IMAP login with an access token refused (NO): the mail server refused the access token"
            ),
            "Microsoft 365 sign-in failed (run caseclerk check --connect for the reason)"
        );
        assert_eq!(
            error_kind(
                "TLS with IMAP server mail.bury.test failed: invalid peer certificate: UnknownIssuer"
            ),
            "the mail server's certificate is not trusted (IT: put its certificate authority in \
             [mailbox] ca_file, or renew the certificate)"
        );
        assert_eq!(
            error_kind("TLS with IMAP server mail.bury.test failed: handshake timed out"),
            "secure connection failed"
        );
        assert_eq!(
            error_kind(
                "TLS with IMAP server mail.bury.test failed: received fatal alert: BadCertificate"
            ),
            "secure connection failed",
            "an alert about a certificate of ours"
        );
        assert_eq!(
            error_kind("cannot connect to IMAP server 127.0.0.1:10993: refused"),
            "cannot connect to the mail server"
        );
    }

    mod triage_summary {
        //! The digest's triage summary: bounded, and the same whatever order messages come in.
        use super::super::*;
        use super::fixture::{since, t};
        use proptest::prelude::*;

        /// The summary written out the slow way: every message sorted, then cut.
        fn sorted(all: &[TriageView]) -> TriageSummary {
            let mut new: Vec<&TriageView> = all.iter().filter(|m| m.received >= since()).collect();
            new.sort_by_key(|m| (m.received, m.message));
            let span = |ms: &[&TriageView]| {
                Some(Span {
                    count: ms.len(),
                    first: ms.iter().map(|m| m.received).min()?,
                    last: ms.iter().map(|m| m.received).max()?,
                })
            };
            let older: Vec<&TriageView> = all.iter().filter(|m| m.received < since()).collect();
            let cut = new.len().min(TRIAGE_LISTED);
            TriageSummary {
                listed: new[..cut].iter().map(|m| (*m).clone()).collect(),
                more: span(&new[cut..]),
                older: span(&older),
            }
        }

        proptest! {
            #[test]
            fn the_summary_keeps_the_earliest_new_ones_and_counts_the_rest_in_any_order(
                minutes in proptest::collection::vec(-3_000i64..3_000, 0..80),
                seed in any::<u64>(),
            ) {
                let all: Vec<TriageView> = minutes
                    .iter()
                    .enumerate()
                    .map(|(i, m)| TriageView {
                        message: (i as i64 * 7919 + seed as i64 % 97).rem_euclid(1_000),
                        received: since() + Duration::minutes(*m / 4),
                        rule: "unmatched".into(),
                    })
                    .collect();
                let mut order: Vec<usize> = (0..all.len()).collect();
                let mut x = seed | 1;
                for i in (1..order.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    order.swap(i, (x % (i as u64 + 1)) as usize);
                }
                let mut summary = TriageSummary::default();
                for i in order {
                    summary.add(all[i].clone(), since());
                }
                prop_assert!(summary.listed.len() <= TRIAGE_LISTED);
                prop_assert_eq!(summary.is_empty(), all.is_empty());
                prop_assert_eq!(summary, sorted(&all));
            }
        }

        #[test]
        fn a_message_received_at_the_last_digest_is_new() {
            let mut summary = TriageSummary::default();
            let m = TriageView {
                message: 1,
                received: since(),
                rule: "unmatched".into(),
            };
            summary.add(m, since());
            let before = TriageView {
                message: 2,
                received: t("2026-08-28T06:59:59Z"),
                rule: "unmatched".into(),
            };
            summary.add(before, since());
            assert_eq!(summary.listed.len(), 1);
            assert_eq!(summary.older.map(|o| o.count), Some(1));
        }
    }
}
