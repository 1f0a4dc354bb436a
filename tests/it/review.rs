//! A whole review without servers: the engine with a manual clock, a database in a temporary
//! directory, and a recording transport instead of SMTP.
//!
//! Mail "arrives" by being stored exactly as the mailbox would store it (raw bytes, a UID, the
//! arrival time); time passes by running the engine's pass (`Engine::work`) at every instant the
//! engine itself asks to be woken, as the daemon does; what was sent is read back from the
//! recording transport, with the instant of the pass that sent it and the process step it was for.
//!
//! ```ignore
//! let mut review = Review::of("bury").await;
//! review.referral_at("2026-08-20 10:00").await;
//! let ask = review.last_to(LA, "screening-request");
//! review.reply(&ask, LA, "MEETS", "2026-08-20 11:30").await;
//! review.at("2026-08-24 10:00").await;
//! assert_eq!(review.sent_to(POLICE_CONTACT).len(), 1);
//! ```

#![allow(dead_code)]

use crate::support::{self, REFERRER, SHARED};
use caseclerk::core::calendar::LONDON;
use caseclerk::core::intake::{self, Message};
use caseclerk::shell::clock::ManualClock;
use caseclerk::shell::config::{self, Needs};
use caseclerk::shell::engine::{Engine, TickReport};
use caseclerk::shell::mailbox::{self, ExistingMail};
use caseclerk::shell::outbox::RecordingTransport;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(1);

/// A London wall-clock time, "2026-08-20 10:00" (or with a `T`), as an instant.
pub fn london(when: &str) -> DateTime<Utc> {
    let t = NaiveDateTime::parse_from_str(&when.replace('T', " "), "%Y-%m-%d %H:%M")
        .unwrap_or_else(|e| panic!("{when}: want YYYY-MM-DD HH:MM ({e})"));
    LONDON
        .from_local_datetime(&t)
        .single()
        .unwrap_or_else(|| panic!("{when} is not one London instant"))
        .with_timezone(&Utc)
}

/// "Thu 20 Aug 10:00", London time.
pub fn when(t: DateTime<Utc>) -> String {
    t.with_timezone(&LONDON)
        .format("%a %-d %b %H:%M")
        .to_string()
}

/// Which letter a letter is: (case, step, what it is about, round).
pub type Identity = (Option<i64>, String, String, String);

/// One letter the engine sent.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The instant of the pass that sent it.
    pub at: DateTime<Utc>,
    /// The case it is about (none for the digest and the tracker report).
    pub case: Option<i64>,
    /// The process step (or notice) it was for.
    pub step: String,
    /// Its outbox recipient key: an address, the addresses of a shared letter, `agency:<id>`, … with
    /// `#r<n>` for a later round.
    pub key: String,
    /// The envelope recipients (the addressee and any copies).
    pub to: Vec<String>,
    pub raw: Vec<u8>,
    pub msg: Message,
}

impl Letter {
    /// Which letter this is, as a person would tell letters apart: its case, its step, what it is
    /// about (each agency's letter is about its agency; a notice about the message or event that
    /// caused it) and its round (a decision asked again).
    pub fn identity(&self) -> Identity {
        let round = self.key.rfind("#r").map_or("", |i| &self.key[i..]);
        let about = if self.step.starts_with("notice-") {
            self.key.as_str()
        } else {
            self.key
                .strip_prefix("agency:")
                .map_or("", |a| a.split("#r").next().unwrap_or(a))
        };
        (
            self.case,
            self.step.clone(),
            about.to_string(),
            round.to_string(),
        )
    }

    /// "Thu 20 Aug 10:00 acknowledge → referrer@hospital.test"
    pub fn line(&self) -> String {
        format!("{} {} → {}", when(self.at), self.step, self.to.join(", "))
    }

    pub fn attachment_names(&self) -> Vec<&str> {
        self.msg
            .attachments
            .iter()
            .map(|a| a.filename.as_str())
            .collect()
    }
}

/// A reply to one of our letters, as a mail client writes it.
pub struct Reply {
    from: String,
    in_reply_to: String,
    subject: String,
    body: String,
    top_headers: Vec<String>,
    attachment: Option<(String, String)>,
}

impl Reply {
    /// A reply from `from` to `letter`: "RE: " and its subject, threaded by In-Reply-To.
    pub fn to(letter: &Letter, from: &str, body: &str) -> Reply {
        Reply {
            from: from.to_string(),
            in_reply_to: letter.msg.message_id.clone().unwrap_or_default(),
            subject: format!("RE: {}", letter.msg.subject),
            body: body.to_string(),
            top_headers: Vec::new(),
            attachment: None,
        }
    }

    /// A header above the others, as the receiving server adds `Authentication-Results`.
    pub fn header(mut self, h: impl Into<String>) -> Reply {
        self.top_headers.push(h.into());
        self
    }

    pub fn subject(mut self, s: impl Into<String>) -> Reply {
        self.subject = s.into();
        self
    }

    /// A Word document attached (`b64`: its base64 content).
    pub fn attach(mut self, name: &str, b64: &str) -> Reply {
        self.attachment = Some((name.to_string(), b64.to_string()));
        self
    }

    pub fn raw(&self) -> Vec<u8> {
        let mut s = String::new();
        for h in &self.top_headers {
            s.push_str(h);
            s.push_str("\r\n");
        }
        let id = self.in_reply_to.as_str();
        s.push_str(&format!(
            "From: {}\r\nTo: {SHARED}\r\nSubject: {}\r\nMessage-ID: <reply.{}.{}@test>\r\nIn-Reply-To: <{id}>\r\n\
             References: <{id}>\r\nMIME-Version: 1.0\r\n",
            self.from,
            self.subject,
            self.from
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>(),
            NEXT.fetch_add(1, Ordering::SeqCst),
        ));
        let body = format!(
            "{}\r\n\r\nOn Tue, BSP wrote:\r\n> quoted request\r\n",
            self.body.replace('\n', "\r\n")
        );
        match &self.attachment {
            None => s.push_str(&format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{body}")),
            Some((name, b64)) => s.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"r1\"\r\n\r\n--r1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n\
                 --r1\r\nContent-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--r1--\r\n"
            )),
        }
        s.into_bytes()
    }
}

/// The engine, its clock, its database and what it sent.
pub struct Review {
    pub engine: Engine,
    pub mail: RecordingTransport,
    clock: Arc<ManualClock>,
    dir: PathBuf,
    now: DateTime<Utc>,
    next_wake: Option<DateTime<Utc>>,
    uid: u32,
    taken: usize,
    sent: Vec<Letter>,
    /// The report of the last pass.
    pub last: TickReport,
}

impl Drop for Review {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Review {
    /// A review under `config/processes/<process>.toml`, with the example configuration.
    pub async fn of(process: &str) -> Review {
        Self::with(process, |_| {}).await
    }

    /// As [`of`], letting the test change the configuration first.
    pub async fn with(process: &str, edit: impl Fn(&mut toml::Table)) -> Review {
        // On tmpfs when there is one: the store syncs every commit, and a review commits often.
        let tmp = Some(PathBuf::from("/dev/shm"))
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let dir = tmp.join(format!(
            "caseclerk-review-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        support::write_secret(&dir.join("password"), support::PASSWORD);
        let mut cfg = support::config_for(process, &dir);
        edit(&mut cfg);
        let path = dir.join("caseclerk.toml");
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        let cfg = config::load(&path, Needs::NoSecrets).unwrap_or_else(|e| panic!("{e}"));
        let start = london("2026-01-01 00:00");
        let clock = Arc::new(ManualClock::new(start));
        let mail = RecordingTransport::new();
        let engine = Engine::open(cfg, clock.clone(), ExistingMail::Process)
            .await
            .expect("the engine opens")
            .with_transport(Arc::new(mail.clone()));
        Review {
            engine,
            mail,
            clock,
            dir,
            now: start,
            next_wake: None,
            uid: 0,
            taken: 0,
            sent: Vec::new(),
            last: TickReport::default(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The daemon restarted at `when` (London) with its configuration changed by `edit` — an
    /// upgrade, or a partnership editing its files: the engine is opened again on the same
    /// database, after the old one has let go of it.
    /// The daemon was stopped after its last pass (nothing ran since).
    pub async fn restart(&mut self, when: &str, edit: impl Fn(&mut toml::Table)) {
        let t = london(when);
        self.clock.set(t);
        self.now = t;
        let path = self.config_path();
        let mut cfg: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        edit(&mut cfg);
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        let cfg = config::load(&path, Needs::NoSecrets).unwrap_or_else(|e| panic!("{e}"));
        // The old engine holds the database's lock until dropped: it is swapped for one on a
        // throwaway database first.
        let mut aside = cfg.clone();
        aside.database = self.dir.join("between-engines.db");
        let between = Engine::open(aside, self.clock.clone(), ExistingMail::Process)
            .await
            .expect("a throwaway engine opens");
        drop(std::mem::replace(&mut self.engine, between));
        self.engine = Engine::open(cfg, self.clock.clone(), ExistingMail::Process)
            .await
            .expect("the engine opens again")
            .with_transport(Arc::new(self.mail.clone()));
    }

    /// The configuration file, for running the real `caseclerk` binary on the same database.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("caseclerk.toml")
    }

    /// One pass of the engine at `t` (everything after fetching: classify, plan, queue, send).
    async fn pass(&mut self, t: DateTime<Utc>) {
        assert!(
            t >= self.now,
            "time goes forwards: {} is before {}",
            when(t),
            when(self.now)
        );
        self.clock.set(t);
        self.now = t;
        let mut report = TickReport::default();
        self.engine
            .work(t, &mut report)
            .await
            .unwrap_or_else(|e| panic!("the pass at {} failed: {e}", when(t)));
        let recorded = self.mail.sent();
        for r in &recorded[self.taken..] {
            let msg = intake::parse(&r.raw);
            let id = msg.message_id.clone().unwrap_or_default();
            let row = self.engine.store.letter_by_message_id(&id).await.unwrap();
            let (case, step, key) = row
                .map(|row| (row.case_id, row.step, row.recipient))
                .unwrap_or((None, "?".into(), "?".into()));
            self.sent.push(Letter {
                at: t,
                case,
                step,
                key,
                to: r.to.clone(),
                raw: r.raw.clone(),
                msg,
            });
        }
        self.taken = recorded.len();
        self.next_wake = report.next_wake;
        self.last = report;
    }

    /// Let time pass to `until` (exclusive) as the daemon would: a pass at every instant the
    /// engine asked to be woken.
    async fn run_until(&mut self, until: DateTime<Utc>) {
        for _ in 0..10_000 {
            match self.next_wake {
                Some(w) if w > self.now && w < until => self.pass(w).await,
                _ => return,
            }
        }
        panic!("the engine kept asking to be woken before {}", when(until));
    }

    /// Time passes to `when` (London, "2026-08-24 10:00"), and the engine runs then.
    pub async fn at(&mut self, when: &str) -> &TickReport {
        let t = london(when);
        self.run_until(t).await;
        self.pass(t).await;
        &self.last
    }

    /// `raw` reaches the shared mailbox at `when`; the engine runs then (after any pass due
    /// before).
    pub async fn receive(&mut self, raw: &[u8], when: &str) -> &TickReport {
        let t = london(when);
        self.run_until(t).await;
        self.stored(raw, when).await;
        self.pass(t).await;
        &self.last
    }

    /// `raw` reached the shared mailbox at `when` (London) but the engine has not run: stored as
    /// the mailbox would store it, with the next UID, and no pass.
    pub async fn stored(&mut self, raw: &[u8], when: &str) {
        let t = london(when);
        self.uid += 1;
        let folder = self.engine.cfg.imap.folder.clone();
        self.engine
            .store
            .store_fetched(
                &folder,
                1,
                &[mailbox::new_message(raw, self.uid, t)],
                self.uid,
                t,
            )
            .await
            .unwrap();
    }

    /// caseclerk's first look at the mailbox, at `when` (London), with `--process-existing`:
    /// recorded over the mail stored so far, then a pass.
    pub async fn first_run_at(&mut self, when: &str) -> &TickReport {
        use caseclerk::shell::firstrun::{self, FirstRunRecord};
        let record = FirstRunRecord {
            started: london(when),
            uidvalidity: 1,
            until_uid: self.uid,
            since: None,
            processed: true,
            left: 0,
        };
        firstrun::record(&self.engine.store, &record).await.unwrap();
        self.at(when).await
    }

    /// The standard referral (`support::referral`) arrives at `when`; the reference it opened.
    pub async fn referral_at(&mut self, when: &str) -> String {
        self.referral_from(REFERRER, "Referral for a rapid review", when)
            .await
    }

    /// A referral from `from` with `subject` arrives at `when`; the reference it opened.
    pub async fn referral_from(&mut self, from: &str, subject: &str, when: &str) -> String {
        let id = format!(
            "referral.{}@hospital.test",
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let raw = String::from_utf8(support::referral(&id, subject))
            .unwrap()
            .replace(
                &format!("From: Dr Test Referrer <{REFERRER}>"),
                &format!("From: {from}"),
            );
        let report = self.receive(raw.as_bytes(), when).await;
        report
            .opened
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("the referral at {when} opened no case"))
    }

    /// `from` replies `body` to `letter` at `when`.
    pub async fn reply(&mut self, letter: &Letter, from: &str, body: &str, when: &str) {
        self.receive(&Reply::to(letter, from, body).raw(), when)
            .await;
    }

    /// Every letter sent so far, in order.
    pub fn letters(&self) -> &[Letter] {
        &self.sent
    }

    /// Every letter sent to `addr` (addressed or copied).
    pub fn sent_to(&self, addr: &str) -> Vec<&Letter> {
        self.sent
            .iter()
            .filter(|l| l.to.iter().any(|t| t.eq_ignore_ascii_case(addr)))
            .collect()
    }

    /// Letters sent to `addr` for `step`.
    pub fn sent_to_for(&self, addr: &str, step: &str) -> Vec<&Letter> {
        self.sent_to(addr)
            .into_iter()
            .filter(|l| l.step == step)
            .collect()
    }

    /// The last letter for `step` sent to `addr`.
    pub fn last_to(&self, addr: &str, step: &str) -> Letter {
        self.sent_to_for(addr, step)
            .pop()
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no {step} letter to {addr}; sent:\n{}",
                    self.timeline().join("\n")
                )
            })
    }

    /// The last letter for `step` to `addr` about case `reference`.
    pub fn last_about(&self, reference: &str, addr: &str, step: &str) -> Letter {
        self.sent_to_for(addr, step)
            .into_iter()
            .rfind(|l| l.msg.subject.contains(reference))
            .cloned()
            .unwrap_or_else(|| {
                panic!(
                    "no {step} letter about {reference} to {addr}; sent:\n{}",
                    self.timeline().join("\n")
                )
            })
    }

    /// Each of `voters` replies `body` to their own `step` request at `when`.
    pub async fn vote_all(&mut self, step: &str, voters: &[&str], body: &str, when: &str) {
        self.at(when).await;
        for voter in voters {
            let ask = self.last_to(voter, step);
            self.reply(&ask, voter, body, when).await;
        }
    }

    /// The engine was not running until `when`: one pass then, and none at the instants before
    /// (what was due meanwhile goes at once, recorded as late).
    pub async fn only_at(&mut self, when: &str) -> &TickReport {
        self.pass(london(when)).await;
        &self.last
    }

    /// Letters for `step`.
    pub fn for_step(&self, step: &str) -> Vec<&Letter> {
        self.sent.iter().filter(|l| l.step == step).collect()
    }

    /// Every letter as "Thu 20 Aug 10:00 step → recipients".
    pub fn timeline(&self) -> Vec<String> {
        self.sent.iter().map(Letter::line).collect()
    }

    /// A case's state, from its events.
    pub async fn state(&self, reference: &str) -> caseclerk::core::case::CaseState {
        let row = self
            .engine
            .store
            .case_by_ref(reference)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no case {reference}"));
        self.engine.state(&row).await.unwrap()
    }

    /// The daily digest's text as `caseclerk digest` prints it now (the last 24 hours).
    pub async fn digest_text(&self) -> String {
        use caseclerk::shell::{snapshot, templates};
        let (cfg, store, now) = (&self.engine.cfg, &self.engine.store, self.now);
        let snap = snapshot::gather(cfg, store, now, now - chrono::Duration::days(1))
            .await
            .unwrap();
        let templates = templates::load(&cfg.templates_dir).unwrap();
        let d = caseclerk::core::digest::build(&snap, &cfg.calendar).unwrap();
        caseclerk::core::digest::render(&d, &templates)
            .unwrap()
            .text
    }

    /// The tracker's case rows as `caseclerk export` writes them now.
    pub async fn tracker(&self) -> caseclerk::core::export::Tracker {
        let (cfg, store, now) = (&self.engine.cfg, &self.engine.store, self.now);
        let snap = caseclerk::shell::snapshot::gather(cfg, store, now, now)
            .await
            .unwrap();
        caseclerk::core::export::rows(&snap, &cfg.process, None)
    }

    /// `caseclerk case <reference>` now.
    pub async fn report(&self, reference: &str) -> String {
        caseclerk::shell::report::case_report(
            &self.engine.cfg,
            &self.engine.store,
            reference,
            self.now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `caseclerk decide`: a decision recorded by hand at `when` (the engine runs then).
    pub async fn decide(&mut self, reference: &str, decision: &str, outcome: &str, when: &str) {
        let t = london(when);
        self.run_until(t).await;
        caseclerk::shell::operator::decide(
            &self.engine.cfg,
            &self.engine.store,
            reference,
            decision,
            outcome,
            "recorded at the meeting",
            false,
            "test",
            t,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        self.pass(t).await;
    }

    /// `caseclerk agencies add` at `when` (the engine runs then).
    pub async fn add_agencies(&mut self, reference: &str, names: &[&str], when: &str) {
        let t = london(when);
        self.run_until(t).await;
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        caseclerk::shell::operator::add_agencies(
            &self.engine.cfg,
            &self.engine.store,
            reference,
            &names,
            Some("panel list"),
            "test",
            t,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        self.pass(t).await;
    }
}
