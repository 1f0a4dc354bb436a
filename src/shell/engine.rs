//! The engine: one pass (`tick`) and the daemon loop (`run`).
//!
//! Owns the order of work and its transactions. A tick:
//! 1. fetches new mail into the store (raw bytes + watermark; a mailbox failure is recorded for the
//!    digest and the tick carries on — deadlines still go out);
//! 2. classifies each stored message and applies the verdict — open a case, file a reply, note an
//!    auto-reply, mark a bounced letter undelivered, or list it for a person — in one transaction per
//!    message;
//! 3. plans every open case with [`timeline::plan`], renders each due letter with [`letters`], and
//!    queues it with its events in one transaction per case (unique case/step/recipient key: a
//!    letter is decided once);
//! 4. sends what is due through [`outbox`].
//!
//! `run` repeats the tick whenever the mailbox watcher signals, when the next letter falls due, or
//! at least hourly — "sleep until the next due instant or until notified".
//!
//! Must not: decide what a message is (that is [`classify`]) or what is due (that is [`timeline`]);
//! log names, subjects, bodies or addresses (only case references, step ids and hashes).

use crate::core::calendar;
use crate::core::case::{self, CaseState, Event};
use crate::core::classify::{self, Kind, ReplyKind};
use crate::core::intake;
use crate::core::letters::{self, Compose, OutAttachment, Templates};
use crate::core::process::StepKind;
use crate::core::timeline::{self, DueLetter, TimelineError};
use crate::shell::clock::SharedClock;
use crate::shell::config::Config;
use crate::shell::mailbox::{self, ExistingMail, FetchReport, hash_id};
use crate::shell::outbox::{self, SendReport};
use crate::shell::store::{CaseRow, NewLetter, Store, StoreError, record_event};
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Engine errors. Each names the case or message it concerns by reference or id only.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Letters(#[from] letters::LetterError),
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    #[error("case {reference}: {source}")]
    Case {
        reference: String,
        source: case::CaseError,
    },
    #[error("case {reference}: {source}")]
    Timeline {
        reference: String,
        source: TimelineError,
    },
    #[error(
        "another caseclerk is already working on {path} (run and tick take turns; stop the daemon first)"
    )]
    Locked { path: String },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

/// What one tick did.
#[derive(Debug, Default)]
pub struct TickReport {
    pub fetch: Option<FetchReport>,
    pub fetch_error: Option<String>,
    pub processed: usize,
    pub opened: Vec<String>,
    pub queued: usize,
    pub sent: SendReport,
    pub next_wake: Option<DateTime<Utc>>,
}

/// The engine: configuration, store, templates and the one clock.
pub struct Engine {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub templates: Templates,
    pub clock: SharedClock,
    existing: ExistingMail,
    install_id: String,
    /// The secret behind vote codes (32 random bytes, kept in the database).
    vote_key: Vec<u8>,
    _lock: std::fs::File,
}

fn lock_file(db: &std::path::Path) -> Result<std::fs::File, EngineError> {
    let path = PathBuf::from(format!("{}.lock", db.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| EngineError::Lock {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| EngineError::Lock {
            path: path.display().to_string(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Locked {
            path: db.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(EngineError::Lock {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Our Message-ID for a letter: this installation's id and a hash of the letter's unique key.
pub fn mint_message_id(install_id: &str, id_domain: &str, dedupe_key: &str) -> String {
    let h = hex::encode(&Sha256::digest(dedupe_key.as_bytes())[..8]);
    format!("caseclerk.{install_id}.{h}@{id_domain}")
}

/// The letters' London date formats (kept here so callers of `engine::long_date` still compile).
pub use crate::core::calendar::{long_date, long_instant};

impl EngineError {
    /// The error without any address or content in it, for logs.
    pub fn for_log(&self) -> String {
        match self {
            EngineError::Letters(e) => e.for_log(),
            other => other.to_string(),
        }
    }
}

impl Engine {
    /// Open the store (taking the database lock) and load the templates.
    pub async fn open(
        cfg: Config,
        clock: SharedClock,
        existing: ExistingMail,
    ) -> Result<Engine, EngineError> {
        let lock = lock_file(&cfg.database)?;
        let store = Store::open(&cfg.database).await?;
        let templates = crate::shell::templates::load(&cfg.templates_dir)?;
        let install_id = store
            .meta_or_init("install_id", || {
                let seed = format!("{:?}{}{:?}", clock.now(), std::process::id(), cfg.database);
                hex::encode(&Sha256::digest(seed.as_bytes())[..8])
            })
            .await?;
        let vote_key = store
            .meta_or_init("vote_key", || {
                let mut bytes = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .expect("the system random source works");
                hex::encode(bytes)
            })
            .await?;
        let vote_key =
            hex::decode(vote_key).map_err(|e| StoreError::Corrupt(format!("vote_key: {e}")))?;
        Ok(Engine {
            cfg: Arc::new(cfg),
            store,
            templates,
            clock,
            existing,
            install_id,
            vote_key,
            _lock: lock,
        })
    }

    /// One pass: fetch, classify and apply, plan and queue, send.
    pub async fn tick(&self) -> Result<TickReport, EngineError> {
        let now = self.clock.now();
        let mut report = TickReport::default();
        match mailbox::fetch_once(&self.cfg.imap, &self.store, self.existing, now).await {
            Ok(f) => report.fetch = Some(f),
            Err(e) => {
                tracing::error!(error = %e, "could not read the mailbox; carrying on with what is stored");
                self.store
                    .record_mailbox_error(&self.cfg.imap.folder, &e.to_string(), now)
                    .await?;
                report.fetch_error = Some(e.to_string());
            }
        }
        self.work(now, &mut report).await?;
        Ok(report)
    }

    /// Everything after fetching: classify, plan, queue, send.
    pub async fn work(
        &self,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), EngineError> {
        let (processed, opened) = self.process_messages(now).await?;
        report.processed = processed;
        report.opened = opened;
        let (queued, wake) = self.plan_all(now).await?;
        // The daily digest and the tracker report (after planning, so they see today's letters).
        let (periodic, periodic_wake) = crate::shell::periodic::queue_due(self, now).await?;
        report.queued = queued + periodic;
        match outbox::transport(&self.cfg.smtp) {
            Ok(transport) => report.sent = outbox::send_due(&self.store, &transport, now).await?,
            Err(e) => tracing::error!(error = %e, "cannot send: SMTP is not configured"),
        }
        let next_send = self.store.next_send_at().await?;
        report.next_wake = [wake, periodic_wake, next_send.filter(|t| *t > now)]
            .into_iter()
            .flatten()
            .min();
        Ok(())
    }

    /// Classify and apply every stored message not yet handled. Returns (count, references opened).
    pub async fn process_messages(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(usize, Vec<String>), EngineError> {
        let pending = self.store.pending_messages().await?;
        if pending.is_empty() {
            return Ok((0, Vec::new()));
        }
        let mut opened = Vec::new();
        let mut agency_cases = Vec::new();
        for case in self.store.open_cases().await? {
            if let Ok(state) = self.state(&case).await {
                for (id, _) in state.active_agencies() {
                    agency_cases.push(classify::AgencyCase {
                        agency: id.clone(),
                        case_ref: case.reference.clone(),
                    });
                }
            }
        }
        let mut case_refs = self.store.case_refs().await?;
        for m in &pending {
            let msg = intake::parse(&m.raw);
            let mut ids: Vec<String> = msg.in_reply_to.clone();
            ids.extend(msg.references.iter().cloned());
            ids.sort();
            ids.dedup();
            let known = self
                .store
                .thread_ids(&ids)
                .await?
                .into_iter()
                .map(|t| classify::Known {
                    message_id: t.message_id,
                    case_ref: t.case_ref,
                    letter: t.step.map(|step| classify::LetterRef {
                        step,
                        recipient: t.recipient.unwrap_or_default(),
                    }),
                })
                .collect();
            let ctx = classify::Context {
                own_addresses: self.cfg.own_addresses.clone(),
                own_id_domain: self.cfg.id_domain.clone(),
                known,
                case_refs: case_refs.clone(),
                agencies: self
                    .cfg
                    .directory
                    .agencies
                    .iter()
                    .map(|a| classify::AgencyContact {
                        id: a.id.clone(),
                        addresses: [Some(&a.contact), a.lead.as_ref(), a.deputy.as_ref()]
                            .into_iter()
                            .flatten()
                            .map(|c| c.email.to_lowercase())
                            .collect(),
                        domains: a.domains.clone(),
                    })
                    .collect(),
                agency_cases: agency_cases.clone(),
            };
            let verdict = classify::classify(&msg, &ctx);
            if let Some(reference) = self
                .apply(m.id, m.internal_date, &msg, &verdict, now)
                .await?
            {
                case_refs.push(reference.clone());
                opened.push(reference);
            }
        }
        Ok((pending.len(), opened))
    }

    async fn case_id(&self, reference: &str) -> Result<Option<CaseRow>, EngineError> {
        Ok(self.store.case_by_ref(reference).await?)
    }

    /// Apply one verdict. Returns the reference of a case it opened.
    async fn apply(
        &self,
        message: i64,
        received: DateTime<Utc>,
        msg: &intake::Message,
        verdict: &classify::Verdict,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, EngineError> {
        let vjson = serde_json::to_value(verdict).unwrap_or(serde_json::Value::Null);
        let rule = verdict.rule;
        let mut tx = self.store.begin().await?;
        let mut opened = None;
        match &verdict.kind {
            Kind::Referral => {
                let day0 = match self.cfg.calendar.day_zero(received, self.cfg.cutoff) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(stored_message = message, error = %e, "referral held for a person: day 0 cannot be computed");
                        Store::file_message(
                            &mut tx,
                            message,
                            "triage",
                            "referral_day0_error",
                            &vjson,
                            None,
                            now,
                        )
                        .await?;
                        Store::commit(tx).await?;
                        return Ok(None);
                    }
                };
                let referrer = msg
                    .reply_to
                    .first()
                    .or(msg.from.as_ref())
                    .map(|a| a.email.to_lowercase());
                let area = crate::core::area::detect_area(msg, &self.cfg.process.areas);
                let (case_id, reference) = Store::create_case(
                    &mut tx,
                    &self.cfg.reference_prefix,
                    &self.cfg.process.id,
                    area.as_deref(),
                    received,
                    day0.date,
                    referrer.as_deref(),
                    now,
                )
                .await?;
                let e = Event::Opened {
                    reference: reference.clone(),
                    process: self.cfg.process.id.clone(),
                    area,
                    referrer,
                    received_at: received,
                    day0: day0.date,
                    day0_explained: day0.explain(),
                    message,
                    message_id: msg.message_id.clone(),
                    references: msg.references.clone(),
                };
                record_event(&mut tx, case_id, received, "caseclerk", &e).await?;
                if let Some(id) = &msg.message_id {
                    Store::add_thread_id(&mut tx, id, case_id, None, None, None).await?;
                }
                Store::file_message(&mut tx, message, "filed", rule, &vjson, Some(case_id), now)
                    .await?;
                tracing::info!(case = %reference, stored_message = message, day0 = %day0.date, "referral opened a case");
                opened = Some(reference);
            }
            Kind::CaseReply {
                case_ref,
                in_reply_to_letter,
                agency,
                reply,
            } => {
                let Some(case) = self.case_id(case_ref).await? else {
                    Store::file_message(&mut tx, message, "triage", rule, &vjson, None, now)
                        .await?;
                    Store::commit(tx).await?;
                    return Ok(None);
                };
                let agency = in_reply_to_letter
                    .as_ref()
                    .and_then(|l| l.recipient.strip_prefix("agency:").map(str::to_string))
                    .or_else(|| agency.clone());
                let e = Event::MessageFiled {
                    message,
                    rule: rule.to_string(),
                    verdict: format!("{reply:?}"),
                    agency: agency.clone(),
                };
                record_event(&mut tx, case.id, received, "caseclerk", &e).await?;
                if let Some(id) = &msg.message_id {
                    Store::add_thread_id(&mut tx, id, case.id, None, None, None).await?;
                }
                let sender = msg
                    .from
                    .as_ref()
                    .map(|a| a.email.to_lowercase())
                    .unwrap_or_default();
                let answering_our_letter = in_reply_to_letter
                    .as_ref()
                    .is_some_and(|l| l.recipient == sender);
                if let Some(line) = crate::core::agencies::agencies_line(&msg.body_text)
                    && (self.is_business_unit(&sender) || answering_our_letter)
                {
                    let names = crate::core::agencies::split_names(line);
                    let matched =
                        crate::core::agencies::resolve(&names, &self.cfg.directory.agencies);
                    let state = self.state(&case).await?;
                    for id in &matched.ids {
                        if state.agencies.get(id).is_some_and(|a| !a.removed) {
                            continue;
                        }
                        let e = Event::AgencyAdded {
                            agency: id.clone(),
                            source: format!("Agencies: line in stored message {message}"),
                        };
                        record_event(
                            &mut tx,
                            case.id,
                            received,
                            &format!("mail:{}", hash_id(&sender)),
                            &e,
                        )
                        .await?;
                    }
                    if !matched.unmatched.is_empty() {
                        tracing::warn!(case = %case.reference, unmatched = matched.unmatched.len(), "agency names not in the directory");
                        let notice = self.notice(
                            &state,
                            "agencies-unknown",
                            &format!("notice:{message}"),
                            timeline::Recipient {
                                name: msg
                                    .from
                                    .as_ref()
                                    .and_then(|a| a.name.clone())
                                    .unwrap_or_default(),
                                email: sender.clone(),
                                role: "sender".into(),
                                phone: None,
                            },
                            matched.unmatched.clone(),
                            now,
                        );
                        self.queue_notice(&mut tx, &case, &state, &notice, now)
                            .await?;
                    }
                }
                let state = self.state(&case).await?;
                self.consider_vote(
                    &mut tx,
                    &case,
                    &state,
                    msg,
                    in_reply_to_letter.as_ref(),
                    message,
                    received,
                    now,
                )
                .await?;
                self.consider_query_answer(&mut tx, &case, &state, &sender, message, received)
                    .await?;
                if let (Some(agency), ReplyKind::Return | ReplyKind::NilReturn) = (&agency, reply) {
                    let state = self.state(&case).await?;
                    if state.agencies.get(agency).is_some_and(|a| !a.removed) {
                        let late = timeline::return_deadline(
                            &self.cfg.process,
                            &self.cfg.calendar,
                            &state,
                        )
                        .map_err(|source| EngineError::Timeline {
                            reference: case.reference.clone(),
                            source,
                        })?
                        .is_some_and(|d| received > d.at);
                        let e = Event::ReturnReceived {
                            agency: agency.clone(),
                            message,
                            nil: *reply == ReplyKind::NilReturn,
                            late,
                        };
                        record_event(&mut tx, case.id, received, "caseclerk", &e).await?;
                        tracing::info!(case = %case.reference, agency = %agency, late, nil = *reply == ReplyKind::NilReturn, "agency return recorded");
                    }
                }
                Store::file_message(&mut tx, message, "filed", rule, &vjson, Some(case.id), now)
                    .await?;
            }
            Kind::AutoReply { case_ref } => {
                let case = match case_ref {
                    Some(r) => self.case_id(r).await?,
                    None => None,
                };
                if let Some(case) = &case {
                    let agency = msg.from.as_ref().and_then(|f| self.agency_of(&f.email));
                    let e = Event::AutoReplyNoted { message, agency };
                    record_event(&mut tx, case.id, received, "caseclerk", &e).await?;
                }
                Store::file_message(
                    &mut tx,
                    message,
                    "recorded",
                    rule,
                    &vjson,
                    case.map(|c| c.id),
                    now,
                )
                .await?;
            }
            Kind::Bounce { original_ids, .. } => {
                let mut matched = None;
                for id in original_ids {
                    if let Some(row) = self.store.letter_by_message_id(id).await? {
                        matched = Some(row);
                        break;
                    }
                }
                match matched {
                    Some(row) => {
                        let reason =
                            "bounced: the recipient's server could not deliver it".to_string();
                        let mut state_case = None;
                        if let Some(case_id) = row.case_id {
                            let e = Event::LetterUndelivered {
                                step: row.step.clone(),
                                recipient: row.recipient.clone(),
                                outbox: row.id,
                                reason,
                            };
                            record_event(&mut tx, case_id, received, "caseclerk", &e).await?;
                            state_case = Some(case_id);
                        }
                        Store::mark_bounced(&mut tx, row.id).await?;
                        Store::file_message(
                            &mut tx, message, "recorded", rule, &vjson, state_case, now,
                        )
                        .await?;
                        tracing::warn!(outbox = row.id, step = %row.step, "a letter bounced");
                    }
                    None => {
                        Store::file_message(&mut tx, message, "triage", rule, &vjson, None, now)
                            .await?;
                    }
                }
            }
            Kind::SecureNotice { case_ref } => {
                let case = match case_ref {
                    Some(r) => self.case_id(r).await?,
                    None => None,
                };
                if let Some(case) = &case {
                    let e = Event::MessageFiled {
                        message,
                        rule: rule.to_string(),
                        verdict: "secure message: open it in the sender's portal".into(),
                        agency: msg.from.as_ref().and_then(|f| self.agency_of(&f.email)),
                    };
                    record_event(&mut tx, case.id, received, "caseclerk", &e).await?;
                }
                Store::file_message(
                    &mut tx,
                    message,
                    "triage",
                    rule,
                    &vjson,
                    case.map(|c| c.id),
                    now,
                )
                .await?;
            }
            Kind::OwnMessage => {
                Store::file_message(&mut tx, message, "ignored", rule, &vjson, None, now).await?;
            }
            Kind::Unmatched => {
                Store::file_message(&mut tx, message, "triage", rule, &vjson, None, now).await?;
                tracing::info!(
                    stored_message = message,
                    rule,
                    "message listed for a person"
                );
            }
        }
        Store::commit(tx).await?;
        Ok(opened)
    }

    /// The people who vote on a decision for this case.
    pub fn voters(
        &self,
        d: &crate::core::process::Decision,
        state: &CaseState,
    ) -> Vec<crate::shell::config::Contact> {
        self.cfg.people(&d.voters, state.area.as_deref()).to_vec()
    }

    /// The people who break a tie on a decision (majority quorum with a tie-breaker).
    pub fn tie_breakers(
        &self,
        d: &crate::core::process::Decision,
        state: &CaseState,
    ) -> Vec<crate::shell::config::Contact> {
        match &d.quorum {
            crate::core::process::Quorum::Majority {
                tie_breaker: Some(role),
            } => self.cfg.people(role, state.area.as_deref()).to_vec(),
            _ => Vec::new(),
        }
    }

    /// The vote code of one member on one decision of a case.
    pub fn vote_code(&self, case_ref: &str, decision: &str, voter: &str) -> String {
        crate::core::decisions::vote_code(&self.vote_key, case_ref, decision, voter)
    }

    /// A reply that reads as a vote is accepted only if every check passes; otherwise it is held
    /// for the business unit with the reason, and never applied. Either way the evidence goes on the
    /// case. A reply with no outcome keyword is not a vote (it stays an ordinary reply).
    #[allow(clippy::too_many_arguments)]
    async fn consider_vote(
        &self,
        tx: &mut crate::shell::store::Tx<'_>,
        case: &CaseRow,
        state: &CaseState,
        msg: &intake::Message,
        letter: Option<&classify::LetterRef>,
        message: i64,
        received: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        use crate::core::decisions::{self, Reading};
        let Some(sender) = msg.from.as_ref().map(|a| a.email.to_lowercase()) else {
            return Ok(());
        };
        let p = &self.cfg.process;
        let codes = decisions::find_codes(&msg.subject);
        let code_for = |d: &crate::core::process::Decision| {
            codes.iter().any(|c| {
                decisions::code_matches(&self.vote_key, &case.reference, &d.id, &sender, c)
            })
        };
        let asked = |d: &crate::core::process::Decision| {
            state.letters.keys().any(|(step, _)| {
                p.step(step)
                    .is_some_and(|s| s.decision.as_deref() == Some(d.id.as_str()))
            })
        };
        let is_voter = |d: &crate::core::process::Decision| {
            self.voters(d, state)
                .iter()
                .chain(self.tie_breakers(d, state).iter())
                .any(|c| c.email.eq_ignore_ascii_case(&sender))
        };
        let by_code = p.decisions.iter().find(|d| code_for(d));
        let by_letter = letter
            .and_then(|l| p.step(&l.step))
            .and_then(|s| s.decision.as_deref())
            .and_then(|id| p.decision(id));
        let by_sender: Vec<&crate::core::process::Decision> = p
            .decisions
            .iter()
            .filter(|d| asked(d) && !state.decisions.contains_key(&d.id) && is_voter(d))
            .collect();
        let decision: &crate::core::process::Decision =
            match (by_code, by_letter, by_sender.as_slice()) {
                (Some(d), _, _) | (None, Some(d), _) => d,
                (None, None, [d]) => d,
                _ => return Ok(()),
            };
        let reading = decisions::read_vote(decisions::own_text(&msg.body_text), decision);
        if reading == Reading::NotAVote {
            return Ok(());
        }
        let auth = match &self.cfg.authserv_id {
            Some(id) => decisions::check_authentication(&msg.authentication_results, id, &sender),
            None => Ok("no authserv-id configured: sender and code only".to_string()),
        };
        let hold_reason = if !is_voter(decision) {
            Some(format!(
                "the sender is not one of the {} asked for this decision",
                decision.voters.replace('_', " ")
            ))
        } else if !code_for(decision) {
            Some(
                "the reply does not carry the code our request gave this member for this case"
                    .to_string(),
            )
        } else if let Err(why) = &auth {
            Some(format!("sender authentication failed: {why}"))
        } else if let Some((outcome, _)) = state.decisions.get(&decision.id) {
            Some(format!(
                "the decision was already taken ({outcome}); a later vote changes nothing"
            ))
        } else if let Reading::Ambiguous(why) = &reading {
            Some(format!(
                "the reply is not clear: {why}; the member has been asked again"
            ))
        } else {
            None
        };
        let actor = format!("mail:{}", hash_id(&sender));
        if let Some(reason) = hold_reason {
            let e = Event::VoteHeld {
                decision: Some(decision.id.clone()),
                voter: sender.clone(),
                message,
                reason,
            };
            record_event(tx, case.id, received, &actor, &e).await?;
            tracing::warn!(case = %case.reference, decision = %decision.id, stored_message = message, "a reply that looks like a vote was held for the business unit");
            if matches!(reading, Reading::Ambiguous(_))
                && is_voter(decision)
                && code_for(decision)
                && auth.is_ok()
            {
                let to = self.recipient_for(&sender, state);
                let mut ask = self.notice(
                    state,
                    "vote-unclear",
                    &format!("notice:{message}"),
                    to,
                    Vec::new(),
                    now,
                );
                ask.decision = Some(decision.id.clone());
                self.queue_notice(tx, case, state, &ask, now).await?;
            }
            return Ok(());
        }
        let Reading::Clear(outcome) = reading else {
            return Ok(());
        };
        let evidence = format!("code matched; {}", auth.unwrap_or_default());
        let e = Event::VoteAccepted {
            decision: decision.id.clone(),
            voter: sender.clone(),
            outcome: outcome.clone(),
            message,
            evidence,
        };
        record_event(tx, case.id, received, &actor, &e).await?;
        tracing::info!(case = %case.reference, decision = %decision.id, outcome = %outcome, stored_message = message, "vote accepted");
        let to = self.recipient_for(&sender, state);
        let mut confirm = self.notice(
            state,
            "vote-confirmed",
            &format!("notice:{message}"),
            to,
            vec![outcome],
            now,
        );
        confirm.decision = Some(decision.id.clone());
        self.queue_notice(tx, case, state, &confirm, now).await?;
        Ok(())
    }

    /// The referrer answering a query reopens the decision that asked it: the panel is asked again.
    async fn consider_query_answer(
        &self,
        tx: &mut crate::shell::store::Tx<'_>,
        case: &CaseRow,
        state: &CaseState,
        sender: &str,
        message: i64,
        received: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        if state.referrer.as_deref() != Some(sender) {
            return Ok(());
        }
        for (decision, (outcome, _)) in &state.decisions {
            if outcome == "query" {
                let e = Event::DecisionReopened {
                    decision: decision.clone(),
                    reason: format!("the referrer answered the query (message {message})"),
                };
                record_event(tx, case.id, received, "caseclerk", &e).await?;
                tracing::info!(case = %case.reference, decision = %decision, "query answered: decision reopened");
            }
        }
        Ok(())
    }

    /// A recipient for a person we know by address (a voter, the referrer).
    fn recipient_for(&self, email: &str, state: &CaseState) -> timeline::Recipient {
        let known = self
            .cfg
            .directory
            .roles
            .values()
            .flatten()
            .chain(
                state
                    .area
                    .as_deref()
                    .and_then(|a| self.cfg.directory.area_roles.get(a))
                    .into_iter()
                    .flat_map(|r| r.values().flatten()),
            )
            .find(|c| c.email.eq_ignore_ascii_case(email));
        timeline::Recipient {
            name: known.map(|c| c.name.clone()).unwrap_or_default(),
            email: email.to_string(),
            role: "voter".into(),
            phone: None,
        }
    }

    /// Count the votes of every undecided decision; record a decision when its quorum is met, ask
    /// the tie-breaker when a majority decision has none, and tell the business unit when the
    /// voters disagree. Returns the state with any decision taken.
    async fn settle_decisions(
        &self,
        case: &CaseRow,
        mut state: CaseState,
        now: DateTime<Utc>,
    ) -> Result<CaseState, EngineError> {
        use crate::core::decisions::{Counted, Tally, tally};
        let p = &self.cfg.process;
        for d in &p.decisions {
            if state.decisions.contains_key(&d.id) {
                continue;
            }
            let Some(votes) = state.votes.get(&d.id).filter(|v| !v.is_empty()) else {
                continue;
            };
            let voters = self.voters(d, &state);
            let tie_breakers = self.tie_breakers(d, &state);
            let mut counted = std::collections::BTreeMap::new();
            let mut tie = None;
            for (who, v) in votes {
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
                }
            }
            let round = state.rounds.get(&d.id).copied().unwrap_or(0);
            match tally(d, &voters, &counted, tie.as_deref()) {
                Tally::Waiting { .. } => {}
                Tally::Decided { outcome, how } => {
                    // Taken when the deciding vote arrived, not when we noticed.
                    let at = votes.values().map(|v| v.at).max().unwrap_or(now);
                    let e = Event::DecisionTaken {
                        decision: d.id.clone(),
                        outcome: outcome.clone(),
                        how,
                    };
                    let mut tx = self.store.begin().await?;
                    record_event(&mut tx, case.id, at, "caseclerk", &e).await?;
                    Store::commit(tx).await?;
                    tracing::info!(case = %case.reference, decision = %d.id, outcome = %outcome, "decision taken by reply");
                    state.decisions.insert(d.id.clone(), (outcome, at));
                }
                Tally::Disagreement { how, tie_breaker } => {
                    let mut tx = self.store.begin().await?;
                    match tie_breaker {
                        Some(_) => {
                            for c in &tie_breakers {
                                let to = timeline::Recipient {
                                    name: c.name.clone(),
                                    email: c.email.to_lowercase(),
                                    role: "tie-breaker".into(),
                                    phone: c.phone.clone(),
                                };
                                let mut ask = self.notice(
                                    &state,
                                    "tie-break-request",
                                    &format!("notice:tiebreak:{}#r{round}:{}", d.id, to.email),
                                    to,
                                    vec![how.clone()],
                                    now,
                                );
                                ask.decision = Some(d.id.clone());
                                self.queue_notice(&mut tx, case, &state, &ask, now).await?;
                            }
                        }
                        None => {
                            let mut people = self
                                .cfg
                                .people("business_manager", state.area.as_deref())
                                .to_vec();
                            if people.is_empty() {
                                people = self
                                    .cfg
                                    .people("business_unit", state.area.as_deref())
                                    .to_vec();
                            }
                            for c in people {
                                let to = timeline::Recipient {
                                    name: c.name.clone(),
                                    email: c.email.to_lowercase(),
                                    role: "business_manager".into(),
                                    phone: c.phone.clone(),
                                };
                                let tell = self.notice(
                                    &state,
                                    "decision-disagreement",
                                    &format!("notice:disagree:{}#r{round}:{}", d.id, to.email),
                                    to,
                                    vec![how.clone()],
                                    now,
                                );
                                self.queue_notice(&mut tx, case, &state, &tell, now).await?;
                            }
                        }
                    }
                    Store::commit(tx).await?;
                }
            }
        }
        Ok(state)
    }

    /// Is this address someone in the business unit (roles business_unit, business_manager)?
    fn is_business_unit(&self, email: &str) -> bool {
        ["business_unit", "business_manager"]
            .iter()
            .flat_map(|r| self.cfg.people(r, None))
            .any(|c| c.email.eq_ignore_ascii_case(email))
    }

    /// A letter outside the process's steps (a notice about something that just happened).
    fn notice(
        &self,
        state: &CaseState,
        template: &str,
        key: &str,
        to: timeline::Recipient,
        notes: Vec<String>,
        now: DateTime<Utc>,
    ) -> DueLetter {
        let date = calendar::london_date(now);
        DueLetter {
            step: format!("notice-{template}"),
            step_name: template.replace('-', " "),
            kind: StepKind::Letter,
            template: template.to_string(),
            key: key.to_string(),
            to,
            cc: Vec::new(),
            due: timeline::Resolved {
                at: now,
                date,
                day: self.cfg.calendar.working_day_number(state.day0, date).ok(),
                explanation: "at once".into(),
            },
            attach: Vec::new(),
            agency: None,
            return_by: None,
            missing: Vec::new(),
            nil_returns: Vec::new(),
            returns: Vec::new(),
            meeting: None,
            notes,
            decision: None,
        }
    }

    /// Queue a notice; a notice that cannot be prepared is logged, never allowed to undo the
    /// transaction it rides in (the message or decision it is about must still be recorded).
    async fn queue_notice(
        &self,
        tx: &mut crate::shell::store::Tx<'_>,
        case: &CaseRow,
        state: &CaseState,
        due: &DueLetter,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        match self.queue(tx, case, state, due, now).await {
            Ok(_) => Ok(()),
            Err(EngineError::Store(e)) => Err(EngineError::Store(e)),
            Err(e) => {
                tracing::error!(case = %case.reference, step = %due.step, error = %e.for_log(), "notice could not be prepared");
                Ok(())
            }
        }
    }

    /// Render one due letter and queue it with its events, in the caller's transaction.
    /// Returns whether it was new.
    async fn queue(
        &self,
        tx: &mut crate::shell::store::Tx<'_>,
        case: &CaseRow,
        state: &CaseState,
        due: &DueLetter,
        now: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        let letter = self.build_letter(case, state, due, now).await?;
        let Some(id) = Store::queue_letter(tx, &letter, now).await? else {
            return Ok(false);
        };
        let late = (now - due.due.at).num_minutes().max(0);
        let e = Event::LetterQueued {
            step: due.step.clone(),
            recipient: due.key.clone(),
            outbox: id,
            due_at: due.due.at,
            late_minutes: late,
        };
        record_event(tx, case.id, now, "caseclerk", &e).await?;
        Store::add_thread_id(
            tx,
            &letter.message_id,
            case.id,
            Some(id),
            Some(&due.step),
            Some(&due.key),
        )
        .await?;
        if late > 60 {
            tracing::warn!(case = %case.reference, step = %due.step, late_minutes = late, "letter decided late");
        }
        Ok(true)
    }

    fn agency_of(&self, email: &str) -> Option<String> {
        let email = email.to_lowercase();
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        self.cfg
            .directory
            .agencies
            .iter()
            .find(|a| {
                a.contact.email == email
                    || a.lead
                        .as_ref()
                        .is_some_and(|l| l.email.eq_ignore_ascii_case(&email))
                    || a.deputy
                        .as_ref()
                        .is_some_and(|l| l.email.eq_ignore_ascii_case(&email))
            })
            .or_else(|| {
                self.cfg
                    .directory
                    .agencies
                    .iter()
                    .find(|a| a.domains.contains(&domain))
            })
            .map(|a| a.id.clone())
    }

    /// A case's state, from its events.
    pub async fn state(&self, case: &CaseRow) -> Result<CaseState, EngineError> {
        let events = self.store.events(case.id).await?;
        case::fold_rows(&events).map_err(|source| EngineError::Case {
            reference: case.reference.clone(),
            source,
        })
    }

    /// Plan every open case and queue what is due. Returns (letters queued, next wake-up).
    pub async fn plan_all(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>), EngineError> {
        let mut queued = 0;
        let mut wake: Option<DateTime<Utc>> = None;
        for case in self.store.open_cases().await? {
            if case.process != self.cfg.process.id {
                tracing::warn!(case = %case.reference, "case belongs to another process file; not planned");
                continue;
            }
            let state = self.state(&case).await?;
            let state = self.settle_decisions(&case, state, now).await?;
            let mut plan = match timeline::plan(
                &self.cfg.process,
                &self.cfg.directory,
                &self.cfg.calendar,
                &state,
                now,
            ) {
                Ok(p) => p,
                Err(source) => {
                    tracing::error!(case = %case.reference, error = %source, "cannot plan this case");
                    continue;
                }
            };
            timeline::address_receipts(&mut plan, &self.cfg.directory);
            for p in &plan.problems {
                tracing::warn!(case = %case.reference, problem = %p, "planning problem");
            }
            if let Some(w) = plan.next_wake {
                wake = Some(wake.map_or(w, |x| x.min(w)));
            }
            if plan.due.is_empty() {
                continue;
            }
            let mut tx = self.store.begin().await?;
            for due in &plan.due {
                match self.queue(&mut tx, &case, &state, due, now).await {
                    Ok(true) => queued += 1,
                    Ok(false) => {}
                    Err(EngineError::Store(e)) => return Err(EngineError::Store(e)),
                    Err(e) => {
                        tracing::error!(case = %case.reference, step = %due.step, error = %e.for_log(), "letter could not be prepared");
                    }
                }
            }
            Store::commit(tx).await?;
        }
        Ok((queued, wake))
    }

    /// Our Message-ID for the letter with this outbox key.
    pub(crate) fn message_id(&self, dedupe_key: &str) -> String {
        mint_message_id(&self.install_id, &self.cfg.id_domain, dedupe_key)
    }

    /// The data a letter template sees.
    pub fn letter_data(&self, state: &CaseState, due: &DueLetter) -> serde_json::Value {
        let cfg = &self.cfg;
        let agency_json = |id: &str| match cfg.agency(id) {
            Some(a) => json!({
                "id": a.id, "name": a.name, "contact": a.contact,
                "lead": a.lead, "deputy": a.deputy,
            }),
            None => json!({ "id": id, "name": id, "contact": null, "lead": null, "deputy": null }),
        };
        let process = &cfg.process;
        let decision = process
            .step(&due.step)
            .and_then(|s| s.decision.as_deref())
            .or(due.decision.as_deref())
            .and_then(|id| process.decision(id))
            .map(|d| {
                let when = timeline::resolve(process, &cfg.calendar, state, &d.due, &format!("decision:{}", d.id))
                    .ok()
                    .flatten();
                json!({
                    "id": d.id,
                    "name": d.name,
                    "due": when.map(|w| long_instant(w.at)),
                    "outcomes": d.outcomes,
                    "rule": d.quorum.describe(&d.voters),
                    "keywords": d.keywords,
                    "code": crate::core::decisions::vote_code(&self.vote_key, &state.reference, &d.id, &due.to.email),
                })
            });
        let mut deadlines = serde_json::Map::new();
        if let Ok(list) = timeline::deadlines(process, &cfg.calendar, state) {
            for (d, r) in list {
                if let Some(r) = r {
                    deadlines.insert(d.id.clone(), json!(long_instant(r.at)));
                }
            }
        }
        json!({
            "decision": decision,
            "deadlines": deadlines,
            "partnership": {
                "name": cfg.partnership_name,
                "short_name": cfg.short_name,
                "address": cfg.address,
            },
            "process": { "id": cfg.process.id, "name": cfg.process.name },
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
            "recipient": due.to,
            "agency": due.agency.as_deref().map(agency_json),
            "return_by": due.return_by.as_ref().map(|r| long_instant(r.at)),
            "missing": due.missing.iter().map(|a| agency_json(a)).collect::<Vec<_>>(),
            "nil_returns": due.nil_returns.iter().map(|a| agency_json(a)).collect::<Vec<_>>(),
            "notes": due.notes,
            "known_agencies": cfg.directory.agencies.iter().map(|a| json!({"id": a.id, "name": a.name})).collect::<Vec<_>>(),
            "meeting": due.meeting.as_ref().map(|m| json!({
                "when": long_instant(m.at),
                "date": long_date(m.date),
                "day": m.day,
                "minutes": cfg.process.meeting.as_ref().map(|x| x.minutes),
            })),
        })
    }

    async fn attachments(
        &self,
        state: &CaseState,
        due: &DueLetter,
    ) -> Result<Vec<OutAttachment>, EngineError> {
        let mut out = Vec::new();
        for name in &due.attach {
            match name.as_str() {
                "referral" => {
                    if let Some(raw) = self.store.message_raw(state.referral_message).await? {
                        let m = intake::parse(&raw);
                        out.push(OutAttachment {
                            filename: format!("{}-referral-email.txt", state.reference),
                            content_type: "text/plain; charset=utf-8".into(),
                            data: referral_text(&m).into_bytes(),
                        });
                        for a in m.attachments {
                            out.push(OutAttachment {
                                filename: a.filename,
                                content_type: a.content_type,
                                data: a.data,
                            });
                        }
                    }
                    // What the referrer added later (an answer to a query) travels with the referral.
                    let mut n = 0;
                    for id in state.messages.iter().skip(1) {
                        let Some(raw) = self.store.message_raw(*id).await? else {
                            continue;
                        };
                        let m = intake::parse(&raw);
                        let from = m.from.as_ref().map(|a| a.email.to_lowercase());
                        if from.is_some() && from == state.referrer {
                            n += 1;
                            out.push(OutAttachment {
                                filename: format!("{}-referrer-reply-{n}.txt", state.reference),
                                content_type: "text/plain; charset=utf-8".into(),
                                data: referral_text(&m).into_bytes(),
                            });
                        }
                    }
                }
                "returns" => {
                    for (id, a) in state.active_agencies() {
                        let Some(message) = a.return_message.filter(|_| !a.nil) else {
                            continue;
                        };
                        if let Some(raw) = self.store.message_raw(message).await? {
                            for att in intake::parse(&raw).attachments {
                                out.push(OutAttachment {
                                    filename: format!("{id} - {}", att.filename),
                                    content_type: att.content_type,
                                    data: att.data,
                                });
                            }
                        }
                    }
                }
                other => {
                    if let Some(path) = self.cfg.attachments.get(other) {
                        let data = tokio::fs::read(path).await.map_err(|e| {
                            letters::LetterError::Compose(format!(
                                "attachment {other} ({}): {e}",
                                path.display()
                            ))
                        })?;
                        out.push(OutAttachment {
                            filename: path
                                .file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                                .unwrap_or_else(|| other.to_string()),
                            content_type: content_type_for(path),
                            data,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Render and compose one due letter into an outbox row.
    async fn build_letter(
        &self,
        case: &CaseRow,
        state: &CaseState,
        due: &DueLetter,
        now: DateTime<Utc>,
    ) -> Result<NewLetter, EngineError> {
        let dedupe_key = format!("{}/{}/{}", case.reference, due.step, due.key);
        let message_id = self.message_id(&dedupe_key);
        let data = self.letter_data(state, due);
        let rendered = self.templates.render(&due.template, &data)?;
        let mut references = state.referral_references.clone();
        if let Some(id) = &state.referral_message_id {
            references.push(id.clone());
        }
        let calendar = if due.kind == StepKind::Invite {
            due.meeting.as_ref().map(|m| {
                letters::invite_ics(&letters::Invite {
                    uid: format!("{}-meeting@{}", case.reference, self.cfg.id_domain),
                    summary: format!("{} rapid review meeting", case.reference),
                    start: m.at,
                    minutes: self.cfg.process.meeting.as_ref().map_or(120, |x| x.minutes),
                    organizer: self.cfg.address.clone(),
                    attendee: due.to.email.clone(),
                    stamp: now,
                })
            })
        } else {
            None
        };
        let mut subject = letters::subject_with_reference(&rendered.subject, &case.reference);
        if let Some(d) = &due.decision {
            subject = format!(
                "{subject} {}",
                crate::core::decisions::code_tag(&self.vote_code(
                    &case.reference,
                    d,
                    &due.to.email
                ))
            );
        }
        let compose = Compose {
            from_name: self.cfg.partnership_name.clone(),
            from: self.cfg.address.clone(),
            to_name: due.to.name.clone(),
            to: due.to.email.clone(),
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
            attachments: self.attachments(state, due).await?,
            calendar,
        };
        let raw = letters::compose(&compose)?;
        let mut envelope_to = vec![due.to.email.clone()];
        envelope_to.extend(due.cc.iter().map(|c| c.email.clone()));
        tracing::debug!(case = %case.reference, step = %due.step, to = %hash_id(&due.to.email), "letter prepared");
        Ok(NewLetter {
            dedupe_key,
            case_id: Some(case.id),
            step: due.step.clone(),
            recipient: due.key.clone(),
            message_id,
            due_at: due.due.at,
            envelope_from: self.cfg.address.clone(),
            envelope_to,
            raw,
        })
    }

    /// The daemon: watch the mailbox and tick whenever something may have arrived or fallen due.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), EngineError> {
        let notify = Arc::new(tokio::sync::Notify::new());
        let watcher = tokio::spawn(mailbox::watch(
            Arc::new(self.cfg.imap.clone()),
            notify.clone(),
        ));
        tokio::pin!(shutdown);
        // The first pass fetches; after that the watcher's signal means "fetch", and the timer
        // (at the next due instant, and at least every minute, so an operator's change is acted on
        // promptly) means "plan and send".
        let mut fetch = true;
        loop {
            let report = if fetch {
                self.tick().await
            } else {
                let mut r = TickReport::default();
                self.work(self.clock.now(), &mut r).await.map(|_| r)
            };
            let wake = match report {
                Ok(r) => {
                    if r.processed > 0 || r.queued > 0 || r.sent.sent > 0 || r.sent.undelivered > 0
                    {
                        tracing::info!(
                            processed = r.processed,
                            opened = r.opened.len(),
                            queued = r.queued,
                            sent = r.sent.sent,
                            retrying = r.sent.retrying,
                            undelivered = r.sent.undelivered,
                            "tick"
                        );
                    }
                    r.next_wake
                }
                Err(e) => {
                    tracing::error!(error = %e.for_log(), "tick failed; retrying in a minute");
                    None
                }
            };
            let now = self.clock.now();
            let sleep = wake
                .map(|w| (w - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(RESCAN)
                .min(RESCAN);
            tokio::select! {
                _ = notify.notified() => fetch = true,
                _ = tokio::time::sleep(sleep) => fetch = false,
                _ = &mut shutdown => {
                    tracing::info!("shutting down");
                    watcher.abort();
                    return Ok(());
                }
            }
        }
    }
}

/// How long the daemon sleeps at most between passes over the cases.
pub const RESCAN: Duration = Duration::from_secs(60);

fn content_type_for(path: &std::path::Path) -> String {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("docx") => {
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document".into()
        }
        Some("doc") => "application/msword".into(),
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".into(),
        Some("pdf") => "application/pdf".into(),
        Some("txt") => "text/plain; charset=utf-8".into(),
        _ => "application/octet-stream".into(),
    }
}

/// The referral email as text, for the screening panel.
fn referral_text(m: &intake::Message) -> String {
    let who = |a: &intake::Address| match &a.name {
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
    if !m.attachments.is_empty() {
        out.push_str(&format!(
            "Attachments: {}\n",
            m.attachments
                .iter()
                .map(|a| a.filename.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out.push('\n');
    out.push_str(&m.body_text);
    out
}

/// Resolve the path of a relative config file given on the command line.
pub fn default_config_path() -> PathBuf {
    std::env::var_os("CASECLERK_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config/example.toml"))
}
