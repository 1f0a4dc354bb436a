//! A letter in doubt settled by the server's own copy, through the real mail stack: Postfix keeps
//! a copy of what the shared mailbox submits in its "Sent" folder (as Exchange Online keeps one
//! in Sent Items), so a letter the daemon handed over and never heard back about is found there
//! and recorded sent — not sent again — while one the server never took is sent, once, after the
//! grace.
//!
//! The crash is made exactly: the letter's intent is recorded as the outbox records it, then the
//! letter is handed to Postfix (or not) on the real transport, and the outcome is never written —
//! the state a `kill -9` between the server's `250` and our commit leaves.

use caseclerk::core::records::NewLetter;
use caseclerk::dev::devstack::{MailStack, StackOptions};
use caseclerk::shell::config::{ImapSettings, Secret, SentCopy, SmtpSettings, TlsMode};
use caseclerk::shell::outbox::{self, InDoubt, Unrecorded};
use caseclerk::shell::store::{OutboxState, Store};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use lettre::address::Envelope;
use std::time::Duration as StdDuration;

const SHARED: &str = "bsp@bury.test";
const AGENCY: &str = "agency@hospital.test";
const PASSWORD: &str = "sent-copy-password";

fn letter(n: usize, now: DateTime<Utc>) -> NewLetter {
    let message_id = format!("copy.{n}@bury.test");
    NewLetter {
        dedupe_key: format!("copy/{n}"),
        case_id: None,
        step: "acknowledge".into(),
        recipient: AGENCY.into(),
        replies_as: AGENCY.into(),
        message_id: message_id.clone(),
        due_at: now - Duration::minutes(1),
        envelope_from: SHARED.into(),
        envelope_to: vec![AGENCY.into()],
        raw: format!(
            "From: <{SHARED}>\r\nTo: <{AGENCY}>\r\nSubject: letter {n}\r\n\
             Message-ID: <{message_id}>\r\n\r\nLetter {n}.\r\n"
        )
        .into_bytes(),
    }
}

fn settings(stack: &MailStack) -> (SmtpSettings, ImapSettings) {
    let smtp = SmtpSettings {
        host: "127.0.0.1".into(),
        port: stack.ports.submission,
        tls: TlsMode::Starttls,
        username: SHARED.into(),
        password: Some(Secret::new(PASSWORD)),
        password_file: None,
        ca_file: Some(stack.ca_pem.clone()),
        oauth2: None,
        timeout: StdDuration::from_secs(30),
    };
    let imap = imap_at(stack.ports.imap);
    (smtp, imap)
}

/// The shared mailbox's IMAP settings on loopback `port`, the server keeping the sent copies.
fn imap_at(port: u16) -> ImapSettings {
    ImapSettings {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: SHARED.into(),
        password: Some(Secret::new(PASSWORD)),
        folder: "INBOX".into(),
        ca_file: None,
        oauth2: None,
        sent_folder: Some("Sent".into()),
        sent_copy: SentCopy::Server,
        in_doubt_grace: StdDuration::from_secs(120),
        idle_refresh: StdDuration::from_secs(60),
        poll_interval: StdDuration::from_secs(60),
        command_timeout: StdDuration::from_secs(10),
        check_interval: StdDuration::from_secs(60),
        fetch_interval: StdDuration::from_secs(300),
    }
}

fn copies_of(fetched: &[caseclerk::dev::devstack::Fetched], n: usize) -> usize {
    let id = format!("<copy.{n}@bury.test>");
    fetched
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.raw).contains(&id))
        .count()
}

#[tokio::test]
async fn a_letter_the_server_accepted_before_the_crash_is_found_in_the_sent_folder_and_not_sent_again_while_one_it_never_took_goes_once()
 {
    let stack = MailStack::start(StackOptions {
        sent_copies: true,
        ..StackOptions::new([SHARED, AGENCY], PASSWORD)
    })
    .await
    .unwrap();
    let (smtp, imap) = settings(&stack);
    let dir = stack.dir.join("caseclerk");
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir.join("caseclerk.db")).await.unwrap();
    // The real clock (Postfix and Dovecot run on it); the store keeps microseconds.
    let intent =
        caseclerk::shell::clock::Clock::now(&caseclerk::shell::clock::SystemClock).trunc_subsecs(0);
    let mut ids = vec![];
    let mut tx = store.begin().await.unwrap();
    for n in 0..2 {
        ids.push(
            outbox::enqueue(&mut tx, &letter(n, intent), intent)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    Store::commit(tx).await.unwrap();

    // Both intents recorded; letter 0 handed over and accepted (250), letter 1 never handed
    // over; neither outcome written — the daemon died.
    let mut conn = store.send_connection().await.unwrap();
    for id in &ids {
        conn.mark_sending(*id, intent).await.unwrap();
    }
    drop(conn);
    let transport = outbox::smtp(&smtp).unwrap();
    let l0 = letter(0, intent);
    let envelope =
        Envelope::new(Some(SHARED.parse().unwrap()), vec![AGENCY.parse().unwrap()]).unwrap();
    transport.send(&envelope, &l0.raw).await.unwrap();
    stack
        .wait_queue_empty(StdDuration::from_secs(60))
        .await
        .unwrap();
    let sent_folder = stack.fetch_folder(SHARED, "Sent").await.unwrap();
    assert_eq!(
        sent_folder.len(),
        1,
        "the server filed its own copy of what it accepted"
    );

    let doubt = InDoubt::from_settings(&imap);
    let memory = Unrecorded::default();
    // Within the grace nothing is done: the copy may still be on its way.
    let early = intent + Duration::minutes(1);
    let report = outbox::send_due_settling(&store, transport.as_ref(), &memory, doubt, early)
        .await
        .unwrap();
    assert_eq!(
        (report.sent, report.confirmed_by_copy),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(report.recheck_at, Some(intent + Duration::minutes(2)));

    // After the grace: letter 0 is found and recorded; letter 1 is not there, so it goes.
    let later = intent + Duration::minutes(3);
    let report = outbox::send_due_settling(&store, transport.as_ref(), &memory, doubt, later)
        .await
        .unwrap();
    assert_eq!(
        (report.sent, report.confirmed_by_copy),
        (1, 1),
        "{report:?}"
    );
    for id in &ids {
        assert_eq!(
            store.letter(*id).await.unwrap().unwrap().state,
            OutboxState::Sent
        );
    }
    assert_eq!(store.in_doubt_count(ids[0]).await.unwrap(), 0, "not resent");
    assert_eq!(store.in_doubt_count(ids[1]).await.unwrap(), 1, "resent");
    assert_eq!(store.confirmed_by_copy_total().await.unwrap(), 1);

    stack
        .wait_queue_empty(StdDuration::from_secs(60))
        .await
        .unwrap();
    let inbox = stack.fetch_all(AGENCY).await.unwrap();
    assert_eq!(
        (copies_of(&inbox, 0), copies_of(&inbox, 1)),
        (1, 1),
        "each letter reached the agency exactly once"
    );
    store.close().await;
    stack.stop().await.unwrap();
}

/// The bury configuration with `[mailbox]` edited, loaded (or its problems).
fn mailbox_config(
    name: &str,
    edit: impl Fn(&mut toml::Table),
) -> Result<caseclerk::shell::config::Config, String> {
    let dir =
        std::env::temp_dir().join(format!("caseclerk-sent-copy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    crate::support::write_secret(&dir.join("password"), crate::support::PASSWORD);
    let mut cfg = crate::support::config_for("bury", &dir);
    edit(cfg["mailbox"].as_table_mut().unwrap());
    let path = dir.join("caseclerk.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let loaded = caseclerk::shell::config::load(&path, caseclerk::shell::config::Needs::NoSecrets)
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

#[test]
fn who_files_the_sent_copy_is_a_mailbox_setting_and_the_older_file_sent_still_means_what_it_did() {
    let default = mailbox_config("default", |_| {}).unwrap();
    assert_eq!(default.imap.sent_copy, SentCopy::Caseclerk);
    let server = mailbox_config("server", |m| {
        m.insert("sent_copy".into(), "server".into());
    })
    .unwrap();
    assert_eq!(server.imap.sent_copy, SentCopy::Server);
    assert_eq!(server.imap.sent_folder.as_deref(), Some("Sent Items"));
    assert_eq!(server.imap.in_doubt_grace, StdDuration::from_secs(120));
    let old = mailbox_config("file-sent", |m| {
        m.insert("file_sent".into(), false.into());
    })
    .unwrap();
    assert_eq!(old.imap.sent_copy, SentCopy::None);
    assert_eq!(old.imap.sent_folder, None);

    let both = mailbox_config("both", |m| {
        m.insert("sent_copy".into(), "server".into());
        m.insert("file_sent".into(), true.into());
    })
    .unwrap_err();
    assert!(both.contains("keep sent_copy only"), "{both}");
    let zero = mailbox_config("zero", |m| {
        m.insert("in_doubt_grace_seconds".into(), 0.into());
    })
    .unwrap_err();
    assert!(
        zero.contains("in_doubt_grace_seconds must be at least 1"),
        "{zero}"
    );
}

/// A few lines of IMAP over loopback: logs in, opens a sent folder of twelve messages, and
/// answers `UID SEARCH` and `UID FETCH` as `search` and `fetch` say (each a whole answer, `{tag}`
/// standing for the command's tag), as a busy or failing server does.
async fn imap_answering(search: String, fetch: String) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (search, fetch) = (search.clone(), fetch.clone());
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"* OK IMAP4rev1 ready\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut words = line.split(' ');
                    let tag = words.next().unwrap_or("*").to_string();
                    let command = words.next().unwrap_or("").to_ascii_uppercase();
                    let sub = words.next().unwrap_or("").to_ascii_uppercase();
                    let answer = match (command.as_str(), sub.as_str()) {
                        ("EXAMINE" | "SELECT", _) => "* 12 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n\
                             * OK [UIDNEXT 13] ok\r\n{tag} OK [READ-ONLY] done\r\n"
                            .to_string(),
                        ("UID", "SEARCH") => search.clone(),
                        ("UID", "FETCH") => fetch.clone(),
                        ("LOGOUT", _) => "* BYE\r\n{tag} OK done\r\n".to_string(),
                        _ => "{tag} OK done\r\n".to_string(),
                    };
                    let answer = answer.replace("{tag}", &tag);
                    let _ = write.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_sent_folder_that_refuses_the_search_or_withholds_what_it_listed_is_never_read_as_holding_no_copy()
 {
    let settings = |port: u16| ImapSettings {
        port,
        sent_folder: Some("Sent Items".into()),
        ..imap_at(0)
    };
    let envelope = |uid: u32, id: &str| {
        format!(
            "* {uid} FETCH (UID {uid} ENVELOPE (NIL \"letter\" NIL NIL NIL NIL NIL NIL NIL \"<{id}>\"))\r\n"
        )
    };
    let done = |before: &str| format!("{before}{{tag}} OK done\r\n");
    let refused = "{tag} NO Server Unavailable. 15\r\n".to_string();
    let listed_twelve = done("* SEARCH 12\r\n");
    for (search, fetch, expected) in [
        // Exchange Online, busy: a tagged NO, which the IMAP library hands back as no UIDs.
        (refused.clone(), done(""), None),
        (
            "{tag} BAD User is authenticated but not connected.\r\n".to_string(),
            done(""),
            None,
        ),
        // Listed, then not handed over.
        (listed_twelve.clone(), refused.clone(), None),
        // Listed and handed over: the newest message is another letter, or this one.
        (
            listed_twelve.clone(),
            done(&envelope(12, "other@x")),
            Some(false),
        ),
        (
            listed_twelve.clone(),
            done(&envelope(12, "copy.1@bury.test")),
            Some(true),
        ),
    ] {
        let port = imap_answering(search.clone(), fetch.clone()).await;
        let said = outbox_copy(&settings(port)).await;
        assert_eq!(
            said.as_ref().ok().copied(),
            expected,
            "search {search:?}, fetch {fetch:?}: {said:?}"
        );
    }
}

async fn outbox_copy(imap: &ImapSettings) -> Result<bool, caseclerk::shell::mailbox::MailboxError> {
    caseclerk::shell::sentfolder::has_copy(imap, "copy.1@bury.test").await
}
