//! The outbox's SMTP conversation, step by step, against a server that misbehaves exactly where
//! each test needs it:
//! - a letter whose whole content reached the server, with no answer after it (the `250` lost to a
//!   timeout or a cut connection), may have been accepted: with the server keeping its own copy
//!   (`sent_copy = "server"`, as Exchange Online does) it stays in doubt and the sent folder
//!   settles it — found there, it is recorded sent and never sent again; a failure before the
//!   content is an ordinary temporary failure, retried;
//! - an addressee refused for good at `RCPT` (someone who left) costs only that addressee the
//!   letter: the others get it, and it is recorded undelivered for the one who did not;
//! - a server that will not send as our address (`MAIL FROM` refused) holds every letter, none
//!   given up, until it does; so does one that refuses the connection or the login itself.
//!
//! The server here is a few lines of SMTP on loopback.

use caseclerk::core::indoubt::CopyPolicy;
use caseclerk::shell::config::{Secret, SmtpSettings, TlsMode};
use caseclerk::shell::outbox::{self, InDoubt, SentFolder, Unrecorded};
use caseclerk::shell::store::{NewLetter, OutboxState, Store};
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Where the fake server goes quiet.
#[derive(Clone, Copy, PartialEq)]
enum Quiet {
    /// After the letter's final dot: it has the letter, and never answers.
    AfterDot,
    /// At `RCPT TO`: it never has the letter.
    AtRcpt,
    /// Never: it answers `250` to the dot.
    Never,
}

/// The letters the fake server took (their bytes), and where it goes quiet.
#[derive(Clone)]
struct Server {
    taken: Arc<Mutex<Vec<String>>>,
    quiet: Arc<Mutex<Quiet>>,
    /// Addresses refused at `RCPT` with `550 5.1.1`; the addresses each letter was taken for.
    refused: Arc<Mutex<Vec<String>>>,
    recipients: Arc<Mutex<Vec<Vec<String>>>>,
    /// What it answers `MAIL FROM` instead of `250`, while set.
    sender_refusal: Arc<Mutex<Option<&'static str>>>,
    /// An address it will not send as (`550 5.7.60` to its `MAIL FROM`).
    refused_sender: Arc<Mutex<Option<String>>>,
    /// What it greets a connection with instead of `220`, and what it answers `AUTH`
    /// instead of `235`, while set.
    greeting: Arc<Mutex<Option<&'static str>>>,
    auth_refusal: Arc<Mutex<Option<&'static str>>>,
    port: u16,
}

impl Server {
    async fn start(quiet: Quiet) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            taken: Arc::default(),
            quiet: Arc::new(Mutex::new(quiet)),
            refused: Arc::default(),
            recipients: Arc::default(),
            sender_refusal: Arc::default(),
            refused_sender: Arc::default(),
            greeting: Arc::default(),
            auth_refusal: Arc::default(),
            port: listener.local_addr().unwrap().port(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(s.clone().session(socket));
            }
        });
        server
    }

    fn quiet(&self, q: Quiet) {
        *self.quiet.lock().unwrap() = q;
    }

    fn taken(&self) -> usize {
        self.taken.lock().unwrap().len()
    }

    async fn session(self, socket: tokio::net::TcpStream) {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let greeting = *self.greeting.lock().unwrap();
        let _ = write
            .write_all(greeting.unwrap_or("220 fake ESMTP\r\n").as_bytes())
            .await;
        let mut data: Option<String> = None;
        let mut to: Vec<String> = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let quiet = *self.quiet.lock().unwrap();
            if let Some(d) = data.as_mut() {
                if line != "." {
                    d.push_str(&line);
                    d.push('\n');
                    continue;
                }
                self.taken.lock().unwrap().push(data.take().unwrap());
                self.recipients
                    .lock()
                    .unwrap()
                    .push(std::mem::take(&mut to));
                if quiet == Quiet::AfterDot {
                    std::future::pending::<()>().await;
                }
                let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                continue;
            }
            let upper = line.to_ascii_uppercase();
            let refusal = *self.sender_refusal.lock().unwrap();
            let refused_sender = self
                .refused_sender
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|a| line.contains(a.as_str()));
            let answer: &[u8] = if upper.starts_with("MAIL") && refused_sender {
                b"550 5.7.60 SMTP; Client does not have permissions to send as this sender\r\n"
            } else if upper.starts_with("MAIL")
                && let Some(refusal) = refusal
            {
                refusal.as_bytes()
            } else if upper.starts_with("EHLO") {
                b"250-fake\r\n250 AUTH PLAIN LOGIN\r\n"
            } else if upper.starts_with("AUTH") {
                let refusal = *self.auth_refusal.lock().unwrap();
                refusal.map_or(b"235 2.7.0 ok\r\n".as_slice(), str::as_bytes)
            } else if upper.starts_with("RCPT") && quiet == Quiet::AtRcpt {
                std::future::pending::<()>().await;
                unreachable!()
            } else if upper.starts_with("RCPT") {
                let address = line
                    .split(['<', '>'])
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                if self.refused.lock().unwrap().contains(&address) {
                    b"550 5.1.1 Recipient address rejected: User unknown\r\n"
                } else {
                    to.push(address);
                    b"250 2.1.5 ok\r\n"
                }
            } else if upper.starts_with("DATA") {
                data = Some(String::new());
                b"354 go ahead\r\n"
            } else if upper.starts_with("QUIT") {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            } else {
                b"250 ok\r\n"
            };
            let _ = write.write_all(answer).await;
        }
    }
}

/// The server's sent folder: it holds a copy of every letter the server took.
struct Copies(Server);

impl SentFolder for Copies {
    fn has_copy<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        let found = self
            .0
            .taken
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(message_id));
        Box::pin(std::future::ready(Ok(found)))
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn one_letter(name: &str) -> (Store, i64) {
    letter_to(name, &["agency@hospital.test"]).await
}

async fn letter_to(name: &str, to: &[&str]) -> (Store, i64) {
    let dir = std::env::temp_dir().join(format!("caseclerk-answer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir.join("caseclerk.db")).await.unwrap();
    let id = enqueue(&store, name, 1, to).await;
    (store, id)
}

/// Queue letter `n` of `name` (its own key and Message-ID), due at [`t0`].
async fn enqueue(store: &Store, name: &str, n: usize, to: &[&str]) -> i64 {
    enqueue_from(store, name, n, to, "bsp@bury.test").await
}

/// [`enqueue`], the letter made to go from `from`.
async fn enqueue_from(store: &Store, name: &str, n: usize, to: &[&str], from: &str) -> i64 {
    let letter = NewLetter {
        dedupe_key: format!("answer/{name}/{n}"),
        case_id: None,
        step: "acknowledge".into(),
        recipient: "agency@hospital.test".into(),
        replies_as: "agency@hospital.test".into(),
        message_id: format!("answer.{n}@bury.test"),
        due_at: t0(),
        envelope_from: from.into(),
        envelope_to: to.iter().map(|a| a.to_string()).collect(),
        raw: format!("From: <bsp@bury.test>\r\nTo: <agency@hospital.test>\r\nSubject: letter\r\nMessage-ID: <answer.{n}@bury.test>\r\n\r\nA letter.\r\n").into_bytes(),
    };
    let mut tx = store.begin().await.unwrap();
    let id = outbox::enqueue(&mut tx, &letter, t0())
        .await
        .unwrap()
        .unwrap();
    Store::commit(tx).await.unwrap();
    id
}

fn smtp(server: &Server) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port: server.port,
        tls: TlsMode::None,
        username: "bsp@bury.test".into(),
        password: Some(Secret::new("password")),
        password_file: None,
        ca_file: None,
        oauth2: None,
        timeout: std::time::Duration::from_secs(1),
    }
}

/// One letter in a store, the fake server going quiet as `quiet` says, and the outbox's own
/// transport to it, with the server's copies as its sent folder (a two-minute grace).
struct Outbox {
    server: Server,
    store: Store,
    id: i64,
    folder: Copies,
    memory: Unrecorded,
    transport: Box<dyn outbox::Transport>,
}

impl Outbox {
    async fn new(quiet: Quiet, name: &str) -> Outbox {
        let server = Server::start(quiet).await;
        let (store, id) = one_letter(name).await;
        Outbox {
            folder: Copies(server.clone()),
            transport: outbox::smtp(&smtp(&server)).unwrap(),
            server,
            store,
            id,
            memory: Unrecorded::default(),
        }
    }

    /// A pass `minutes` after the letter fell due.
    async fn pass(&self, minutes: i64) -> outbox::SendReport {
        let doubt = InDoubt {
            policy: CopyPolicy::server_copy(Duration::minutes(2)),
            folder: Some(&self.folder),
            sender: None,
            progress: None,
            copies: None,
        };
        let at = t0() + Duration::minutes(minutes);
        outbox::send_due_settling(
            &self.store,
            self.transport.as_ref(),
            &self.memory,
            doubt,
            at,
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_letter_whose_answer_was_lost_after_its_content_is_settled_by_the_servers_copy_not_sent_again()
 {
    let o = Outbox::new(Quiet::AfterDot, "after-dot").await;
    let (server, store, id) = (&o.server, &o.store, o.id);
    let report = o.pass(0).await;
    assert_eq!((report.sent, report.undelivered), (0, 0), "{report:?}");
    assert_eq!(server.taken(), 1, "the server has the letter");
    let row = store.letter(id).await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Pending);

    // The server answers again; a minute later, within the grace, nothing goes; after it, the
    // copy is found and the letter recorded sent.
    server.quiet(Quiet::Never);
    for minutes in [1, 3] {
        o.pass(minutes).await;
    }
    assert_eq!(server.taken(), 1, "never sent again");
    let row = store.letter(id).await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Sent);
    assert_eq!(store.confirmed_by_copy_total().await.unwrap(), 1);
}

/// A sent folder that never holds the letter.
struct NoCopies;

impl SentFolder for NoCopies {
    fn has_copy<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(std::future::ready(Ok(false)))
    }
}

#[tokio::test]
async fn a_letter_whose_answer_is_lost_every_time_is_raised_after_a_day() {
    // With the default grace, and with one longer than the two hours that otherwise break a run
    // of failures: passes come every minute, so each attempt follows the grace at once.
    for (grace, name) in [(2, "lost-every-time"), (180, "lost-long-grace")] {
        let server = Server::start(Quiet::AfterDot).await;
        let (store, id) = one_letter(name).await;
        let doubt = InDoubt {
            policy: CopyPolicy::server_copy(Duration::minutes(grace)),
            folder: Some(&NoCopies),
            sender: None,
            progress: None,
            copies: None,
        };
        let memory = Unrecorded::default();
        let mut settings = smtp(&server);
        settings.timeout = std::time::Duration::from_millis(300);
        let transport = outbox::smtp(&settings).unwrap();
        // Tried at once, then (no copy found after the grace) again and again.
        let every = (grace + 1).max(90);
        let mut undelivered = 0;
        let mut minutes = 0;
        while minutes <= 27 * 60 {
            let at = t0() + Duration::minutes(minutes);
            let report = outbox::send_due_settling(&store, transport.as_ref(), &memory, doubt, at)
                .await
                .unwrap();
            undelivered += report.undelivered;
            let state = store.letter(id).await.unwrap().unwrap().state;
            if minutes < 24 * 60 {
                assert_eq!(state, OutboxState::Pending, "{name}: at +{minutes} min");
            }
            minutes += if minutes == 0 { grace + 1 } else { every };
        }
        assert_eq!(undelivered, 1, "{name}");
        let row = store.letter(id).await.unwrap().unwrap();
        assert_eq!(row.state, OutboxState::Failed, "{name}");
        assert!(
            row.last_error
                .as_deref()
                .is_some_and(|e| e.contains("after its content for a day")),
            "{name}: {:?}",
            row.last_error
        );
    }
}

#[tokio::test]
async fn a_server_that_goes_quiet_before_the_content_leaves_a_letter_to_retry_not_in_doubt() {
    let o = Outbox::new(Quiet::AtRcpt, "at-rcpt").await;
    let (server, store, id) = (&o.server, &o.store, o.id);
    let report = o.pass(0).await;
    assert_eq!(report.retrying, 1, "{report:?}");
    assert_eq!(server.taken(), 0);
    assert!(
        store
            .sending_since(t0() + Duration::minutes(1))
            .await
            .unwrap()
            .is_empty(),
        "not in doubt"
    );
    server.quiet(Quiet::Never);
    o.pass(2).await;
    assert_eq!(server.taken(), 1);
    assert_eq!(
        store.letter(id).await.unwrap().unwrap().state,
        OutboxState::Sent
    );
}

#[tokio::test]
async fn an_addressee_the_server_refuses_costs_only_them_the_letter() {
    let server = Server::start(Quiet::Never).await;
    server
        .refused
        .lock()
        .unwrap()
        .push("left@hospital.test".into());
    let to = [
        "agency@hospital.test",
        "left@hospital.test",
        "lead@hospital.test",
    ];
    let (store, id) = letter_to("refused", &to).await;
    let memory = Unrecorded::default();
    let transport = outbox::smtp(&smtp(&server)).unwrap();
    let report = outbox::send_due(&store, transport.as_ref(), &memory, t0())
        .await
        .unwrap();
    assert_eq!((report.sent, report.undelivered), (1, 1), "{report:?}");
    assert_eq!(
        *server.recipients.lock().unwrap(),
        [vec![
            "agency@hospital.test".to_string(),
            "lead@hospital.test".to_string()
        ]],
        "the others have it"
    );
    let row = store.letter(id).await.unwrap().unwrap();
    assert_eq!(row.state, OutboxState::Bounced, "undelivered all the same");
    assert!(row.sent_at.is_some());

    // Refused for everyone it is for: refused, as before.
    let (store, id) = letter_to("all-refused", &["left@hospital.test"]).await;
    let report = outbox::send_due(&store, transport.as_ref(), &memory, t0())
        .await
        .unwrap();
    assert_eq!((report.sent, report.undelivered), (0, 1), "{report:?}");
    assert_eq!(
        store.letter(id).await.unwrap().unwrap().state,
        OutboxState::Failed
    );
    assert_eq!(server.taken(), 1);
}

#[tokio::test]
async fn a_server_that_will_not_send_as_our_address_holds_the_letters_and_gives_none_up() {
    // Exchange Online, once the account's Send As permission on the shared mailbox is gone.
    let o = Outbox::new(Quiet::Never, "send-as").await;
    let (server, store, id) = (&o.server, &o.store, o.id);
    *server.sender_refusal.lock().unwrap() =
        Some("550 5.7.60 SMTP; Client does not have permissions to send as this sender\r\n");
    for minutes in [0, 90, 24 * 60 + 5] {
        let report = o.pass(minutes).await;
        assert_eq!(
            report.held,
            Some(caseclerk::core::views::SmtpHold::SenderRefused),
            "{report:?}"
        );
        assert_eq!(report.undelivered, 0, "{report:?}");
        let row = store.letter(id).await.unwrap().unwrap();
        assert_eq!(row.state, OutboxState::Pending, "at +{minutes} min");
    }
    *server.sender_refusal.lock().unwrap() = None;
    let report = o.pass(24 * 60 + 10).await;
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(server.taken(), 1);
}

#[tokio::test]
async fn a_shared_mailbox_that_is_full_holds_the_letters_and_gives_none_up() {
    // Exchange Online keeps every letter in the mailbox's Sent Items; once it is full it sends
    // nothing more until IT free space — no letter's fault, and every other would be refused.
    let o = Outbox::new(Quiet::Never, "mailbox-full").await;
    let (server, store, id) = (&o.server, &o.store, o.id);
    *server.sender_refusal.lock().unwrap() = Some(
        "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded\r\n",
    );
    for minutes in [0, 90, 24 * 60 + 5] {
        let report = o.pass(minutes).await;
        assert_eq!(
            report.held,
            Some(caseclerk::core::views::SmtpHold::MailboxRefused),
            "{report:?}"
        );
        assert_eq!(report.undelivered, 0, "{report:?}");
        let row = store.letter(id).await.unwrap().unwrap();
        assert_eq!(row.state, OutboxState::Pending, "at +{minutes} min");
    }
    *server.sender_refusal.lock().unwrap() = None;
    let report = o.pass(24 * 60 + 10).await;
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(server.taken(), 1);
}

#[tokio::test]
async fn a_server_that_does_not_answer_ends_the_pass_and_the_other_letters_wait_untried() {
    // A relay that goes silent: each letter would wait out the whole timeout, and a pass over
    // many letters outlasted systemd's watchdog, which killed the daemon mid-send.
    let o = Outbox::new(Quiet::AtRcpt, "silent").await;
    let (a, b) = (
        enqueue(&o.store, "silent", 2, &["agency@hospital.test"]).await,
        enqueue(&o.store, "silent", 3, &["agency@hospital.test"]).await,
    );
    let report = o.pass(0).await;
    assert!(report.unanswered, "{report:?}");
    assert_eq!(report.retrying, 1, "one letter waited; {report:?}");
    let attempts = |id| {
        let store = o.store.clone();
        async move { store.letter(id).await.unwrap().unwrap().attempts }
    };
    assert_eq!(attempts(o.id).await, 1);
    assert_eq!((attempts(a).await, attempts(b).await), (0, 0), "untried");
    o.server.quiet(Quiet::Never);
    let report = o.pass(5).await;
    assert_eq!(report.sent, 3, "{report:?}");
}

#[tokio::test]
async fn a_letter_from_an_address_no_longer_ours_is_refused_alone_and_holds_no_other() {
    // The partnership changed `[mailbox] address` while a letter made with the old one waited:
    // the server will not send as the old address, and that is the letter's own fault.
    let server = Server::start(Quiet::Never).await;
    *server.refused_sender.lock().unwrap() = Some("old@bury.test".into());
    let (store, current) = one_letter("old-sender").await;
    let old = enqueue_from(
        &store,
        "old-sender",
        2,
        &["agency@hospital.test"],
        "old@bury.test",
    )
    .await;
    let transport = outbox::smtp(&smtp(&server)).unwrap();
    let doubt = InDoubt {
        sender: Some("bsp@bury.test"),
        ..InDoubt::resend()
    };
    let report = outbox::send_due_settling(
        &store,
        transport.as_ref(),
        &Unrecorded::default(),
        doubt,
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(report.held, None, "{report:?}");
    assert_eq!((report.sent, report.undelivered), (1, 1), "{report:?}");
    assert_eq!(
        store.letter(current).await.unwrap().unwrap().state,
        OutboxState::Sent
    );
    let refused = store.letter(old).await.unwrap().unwrap();
    assert_eq!(refused.state, OutboxState::Failed);
    assert!(
        refused
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no longer")),
        "{:?}",
        refused.last_error
    );
}

#[tokio::test]
async fn the_connection_check_asks_whether_the_server_will_send_as_the_shared_mailbox_and_sends_nothing()
 {
    // `caseclerk check --connect` on the day IT sets the account up: a missing Send As
    // permission shows there, not at the first referral's acknowledgement.
    let server = Server::start(Quiet::Never).await;
    let settings = smtp(&server);
    outbox::test_login(&settings, Some("bsp@bury.test"))
        .await
        .unwrap();
    *server.refused_sender.lock().unwrap() = Some("bsp@bury.test".into());
    let e = outbox::test_login(&settings, Some("bsp@bury.test"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, outbox::FailureKind::Sender, "{}", e.detail);
    assert!(e.detail.contains("5.7.60"), "{}", e.detail);
    // Without a sender to ask about, only the login is checked.
    outbox::test_login(&settings, None).await.unwrap();
    assert_eq!(server.taken(), 0, "nothing was sent");
}

/// Where the fake server keeps one of its refusals.
type Refusal = fn(&Server) -> &Arc<Mutex<Option<&'static str>>>;

#[tokio::test]
async fn a_server_that_refuses_the_connection_or_the_login_itself_holds_every_letter_and_gives_none_up()
 {
    use caseclerk::core::views::SmtpHold;
    // This host's address on a blocklist, at the greeting; basic authentication switched off, at
    // AUTH: no letter's fault, and every letter would meet it.
    let cases: [(&str, Refusal, &'static str, SmtpHold); 2] = [
        (
            "greeting-554",
            |s| &s.greeting,
            "554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org\r\n",
            SmtpHold::ConnectionRefused,
        ),
        (
            "auth-550",
            |s| &s.auth_refusal,
            "550 5.7.30 Basic authentication is not supported for Client Submission.\r\n",
            SmtpHold::LoginRefused,
        ),
    ];
    for (name, refusal, said, hold) in cases {
        let o = Outbox::new(Quiet::Never, name).await;
        let others = [
            enqueue(&o.store, name, 2, &["panel@police.test"]).await,
            enqueue(&o.store, name, 3, &["nationalpanel@panel.test"]).await,
        ];
        *refusal(&o.server).lock().unwrap() = Some(said);
        for minutes in [0, 90, 24 * 60 + 5] {
            let report = o.pass(minutes).await;
            assert_eq!(report.held, Some(hold), "{name}: {report:?}");
            assert_eq!(report.undelivered, 0, "{name}: {report:?}");
            for id in [o.id, others[0], others[1]] {
                let row = o.store.letter(id).await.unwrap().unwrap();
                assert_eq!(row.state, OutboxState::Pending, "{name} at +{minutes} min");
            }
        }
        *refusal(&o.server).lock().unwrap() = None;
        let report = o.pass(24 * 60 + 10).await;
        assert_eq!(report.sent, 3, "{name}: {report:?}");
    }
}

/// A sent folder that cannot be searched, counting how often it is asked.
struct Unsearchable(std::sync::atomic::AtomicUsize);

impl SentFolder for Unsearchable {
    fn has_copy<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::ready(Err("NO Server Unavailable".to_string())))
    }
}

#[tokio::test]
async fn after_a_restore_letters_due_before_it_wait_while_the_sent_folder_cannot_be_searched_then_go()
 {
    let o = Outbox::new(Quiet::Never, "restored-folder-down").await;
    let second = enqueue(&o.store, "restored-folder-down", 2, &["panel@police.test"]).await;
    let restored = t0() + Duration::minutes(30);
    o.store
        .set_meta(
            caseclerk::shell::store::RESTORED_AT,
            &caseclerk::shell::store::ts(restored),
        )
        .await
        .unwrap();
    let folder = Unsearchable(Default::default());
    let pass = |minutes: i64| {
        let doubt = InDoubt {
            copies: Some(&folder),
            ..InDoubt::resend()
        };
        outbox::send_due_settling(
            &o.store,
            o.transport.as_ref(),
            &o.memory,
            doubt,
            restored + Duration::minutes(minutes),
        )
    };
    let report = pass(1).await.unwrap();
    assert_eq!((report.sent, report.retrying), (0, 2), "{report:?}");
    assert_eq!(
        folder.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "asked once a pass, not once a letter"
    );
    for id in [o.id, second] {
        let row = o.store.letter(id).await.unwrap().unwrap();
        assert_eq!(row.state, OutboxState::Pending);
    }
    assert_eq!(o.server.taken(), 0);
    // A day on, a letter late beats one never sent.
    let report = pass(24 * 60 + 1).await.unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
}
