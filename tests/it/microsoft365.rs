//! caseclerk on a Microsoft 365 shared mailbox, against the local stand-in (a token issuer with
//! Entra ID's answers; Dovecot and Postfix taking XOAUTH2): app-only login for IMAP and SMTP,
//! clear errors that keep letters pending, and every letter filed once in Sent Items.

use crate::support::{CLIENT_ID, CLIENT_SECRET, Harness, REFERRER, SHARED, referral};

#[tokio::test]
async fn a_referral_is_read_and_acknowledged_with_both_logins_on_oauth2_and_one_token() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    // As long as Microsoft's tokens (about 3 KB here): longer than Postfix's default AUTH line.
    let issuer = h.stack.issuer.as_ref().unwrap();
    issuer.set_padding(CLIENT_ID, 2200);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("m365-1@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let out = h.tick(None);
    assert!(out.contains("opened RR-"), "{out}");
    assert_eq!(h.settled_count(REFERRER).await, 1, "the acknowledgement");
    assert_eq!(
        issuer.issued(),
        1,
        "one token served the IMAP login and every letter of the pass"
    );
}

/// The mailbox back on its password (only sending uses OAuth2), so a referral is read and its
/// letters decided whatever happens to the token.
fn mailbox_on_password(h: &Harness) {
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    let m = cfg["mailbox"].as_table_mut().unwrap();
    m.remove("auth");
    m.insert(
        "password_file".into(),
        toml::Value::String(h.dir.join("password").display().to_string()),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
}

/// A pass that cannot send (`tick` exits 1): what it printed, and its log.
fn failing_tick(h: &Harness) -> (String, String) {
    let out = h.caseclerk(&["tick", "--process-existing"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// A health row as a read-only health check would read it: (failures, last error).
async fn health(h: &Harness, key: &str) -> (i64, String) {
    let store = caseclerk::shell::store::Store::open_read_only(&h.dir.join("caseclerk.db"))
        .await
        .unwrap();
    let row = store.mailbox_state(key).await.unwrap();
    row.map(|r| (r.failures, r.last_error.unwrap_or_default()))
        .unwrap_or((0, String::new()))
}

#[tokio::test]
async fn a_wrong_client_secret_is_named_keeps_the_letters_and_they_go_once_the_file_is_put_right() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    mailbox_on_password(&h);
    // The secret was renewed in Entra ID; the file still holds the old one.
    let issuer = h.stack.issuer.as_ref().unwrap();
    issuer.set_secret(CLIENT_ID, "Renewed~secret-value");
    h.deliver(
        REFERRER,
        SHARED,
        &referral("m365-secret@hospital.test", "Referral for a rapid review"),
    )
    .await;

    let (stdout, stderr) = failing_tick(&h);
    assert!(stdout.contains("opened RR-"), "{stdout}");
    assert!(
        stdout.contains("sent 0") && stdout.contains("undelivered 0"),
        "{stdout}"
    );
    assert!(stderr.contains("AADSTS7000215"), "{stderr}");
    assert!(stderr.contains("the client secret is wrong"), "{stderr}");
    assert!(stderr.contains("not its Secret ID"), "{stderr}");
    assert!(
        !stderr.contains(CLIENT_SECRET) && !stderr.contains("Renewed~secret-value"),
        "no secret in the log: {stderr}"
    );
    let (failures, error) = health(&h, "<oauth2>").await;
    assert!(
        failures >= 1 && error.contains("AADSTS7000215"),
        "{failures} {error}"
    );
    assert!(
        health(&h, "<smtp>").await.0 >= 1,
        "the SMTP health row is raised"
    );
    assert!(h.ok(&["digest"]).contains("LETTERS CANNOT BE SENT"));
    assert_eq!(h.settled_count(REFERRER).await, 0);

    std::fs::write(h.dir.join("client-secret"), "Renewed~secret-value\n").unwrap();
    let again = h.tick(None);
    assert!(again.contains("undelivered 0"), "{again}");
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "the acknowledgement, once"
    );
    assert_eq!(health(&h, "<oauth2>").await.0, 0, "the alarm clears");
    assert_eq!(health(&h, "<smtp>").await.0, 0, "the alarm clears");
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_both_servers_with_what_to_check_and_both_recover() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    mailbox_on_password(&h);
    // The app's permission on the mailbox is removed: the token endpoint still answers, the
    // servers refuse every token (the one in hand included).
    h.stack.revoke_tokens_for(Some(SHARED)).await.unwrap();
    h.deliver(
        REFERRER,
        SHARED,
        &referral("m365-revoked@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let out = h.caseclerk(&["tick", "--process-existing"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("opened RR-") && stdout.contains("undelivered 0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("refused caseclerk's SMTP login"),
        "{stderr}"
    );
    assert!(health(&h, "<smtp>").await.0 >= 1);
    assert_eq!(h.settled_count(REFERRER).await, 0, "letters kept pending");

    // The mailbox on OAuth2 too: its login is refused with what to check.
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    let m = cfg["mailbox"].as_table_mut().unwrap();
    m.remove("password_file");
    m.insert("auth".into(), toml::Value::String("oauth2".into()));
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    let out = h.caseclerk(&["tick"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refused the access token"), "{stderr}");
    assert!(stderr.contains("Add-MailboxPermission"), "{stderr}");

    h.stack.revoke_tokens_for(None).await.unwrap();
    h.tick(None);
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "the acknowledgement, once"
    );
    assert_eq!(health(&h, "<smtp>").await.0, 0);
}

/// Every Message-ID in the shared mailbox's Sent Items, and whether each copy is marked read.
async fn sent_items(h: &Harness) -> Vec<(String, bool)> {
    h.stack
        .fetch_folder(SHARED, "Sent Items")
        .await
        .unwrap()
        .iter()
        .map(|(f, flags)| {
            let id = caseclerk::core::intake::parse(&f.raw)
                .message_id
                .unwrap_or_default();
            (id, flags.iter().any(|f| f.contains("Seen")))
        })
        .collect()
}

async fn sql(h: &Harness, statement: &'static str) -> i64 {
    let url = format!("sqlite://{}", h.dir.join("caseclerk.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n = if statement.starts_with("SELECT") {
        sqlx::query_scalar(statement)
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .unwrap()
            .rows_affected() as i64
    };
    pool.close().await;
    n
}

#[tokio::test]
async fn every_letter_sent_is_filed_once_in_sent_items_also_after_a_crash_on_either_side_of_filing()
{
    let h = Harness::start_oauth("bury", |cfg| {
        // A folder that is not there: letters go, filing fails (as if the daemon had died
        // between sending and filing).
        let m = cfg["mailbox"].as_table_mut().unwrap();
        m.insert(
            "sent_folder".into(),
            toml::Value::String("Not There".into()),
        );
    })
    .await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("m365-sent@hospital.test", "Referral for a rapid review"),
    )
    .await;
    h.tick(None);
    let sent = sql(&h, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'").await;
    assert!(
        sent >= 4,
        "the acknowledgement and the screening requests: {sent}"
    );
    assert!(sent_items(&h).await.is_empty());
    assert!(
        health(&h, "<sent-folder>").await.0 >= 1,
        "the filing's health row"
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "sending was not held up"
    );

    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["mailbox"].as_table_mut().unwrap().remove("sent_folder");
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    h.tick(None);
    let filed = sent_items(&h).await;
    assert_eq!(
        filed.len() as i64,
        sent,
        "each letter sent is filed: {filed:?}"
    );
    assert!(
        filed.iter().all(|(_, seen)| *seen),
        "filed as read: {filed:?}"
    );
    assert_eq!(health(&h, "<sent-folder>").await.0, 0);

    // A crash after APPEND, before the filing was recorded: the next pass finds the copies.
    assert_eq!(sql(&h, "UPDATE outbox SET filed_at = NULL").await, sent);
    h.tick(None);
    let again = sent_items(&h).await;
    let mut ids: Vec<&str> = again.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(again.len() as i64, sent, "no second copy: {again:?}");
    assert_eq!(ids.len() as i64, sent, "each Message-ID once");
    assert_eq!(
        sql(
            &h,
            "SELECT COUNT(*) FROM outbox WHERE state = 'sent' AND filed_at IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_daemon_renews_short_lived_tokens_before_they_expire_and_misses_nothing() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    // Six-second tokens (Microsoft's live an hour): renewed after 4.5 s, the IMAP session
    // replaced before each one's end.
    let issuer = h.stack.issuer.as_ref().unwrap();
    issuer.set_lifetime(CLIENT_ID, 6);
    let mut daemon = h.daemon();
    daemon
        .wait_log(&["watching the mailbox with IDLE"], 1)
        .await;

    for (n, id) in ["renew-1@hospital.test", "renew-2@hospital.test"]
        .iter()
        .enumerate()
    {
        // Each referral arrives in a session opened with a renewed token.
        daemon
            .wait_log(&["access token is due for renewal: reconnecting"], n + 1)
            .await;
        daemon
            .wait_log(&["watching the mailbox with IDLE"], n + 2)
            .await;
        h.deliver(
            REFERRER,
            SHARED,
            &referral(id, "Referral for a rapid review"),
        )
        .await;
        h.wait_inbox(REFERRER, n + 1).await;
    }
    // Exchange ends a session whose token expired with a BYE: any BYE means log in again.
    h.stack.kick(SHARED).await.unwrap();
    daemon
        .wait_log(&["mailbox watcher lost its connection"], 1)
        .await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("renew-3@hospital.test", "Referral for a rapid review"),
    )
    .await;
    h.wait_inbox(REFERRER, 3).await;
    let log = daemon.stop().await;

    let obtained = log.matches("access token obtained").count();
    let sessions = log.matches("watching the mailbox with IDLE").count();
    assert!(obtained >= 3, "renewed across several lifetimes:\n{log}");
    assert!(
        obtained <= sessions + 1,
        "a token per lifetime, not per connection ({obtained} tokens, {sessions} sessions):\n{log}"
    );
    assert!(!log.contains("no access token"), "{log}");
    assert!(
        !log.contains("refused"),
        "no token was ever refused:\n{log}"
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        3,
        "one acknowledgement each"
    );
}

#[tokio::test]
async fn check_connect_reports_each_connection_on_a_line_and_fails_naming_the_wrong_part() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    let out = h.ok(&["check", "--connect"]);
    for line in [
        "login: mailbox by OAuth2 (XOAUTH2), SMTP by OAuth2 (XOAUTH2); app",
        "ok     access token: obtained from",
        "ok     IMAP login as bsp@bury.test",
        "folder \"INBOX\" holds 0 message(s)",
        "ok     sent folder \"Sent Items\": exists",
        "ok     SMTP login as bsp@bury.test",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
    assert!(!out.contains(CLIENT_SECRET), "{out}");
    let sent = h.stack.fetch_folder(SHARED, "Sent Items").await.unwrap();
    assert!(sent.is_empty(), "nothing is sent or filed by a check");

    h.stack
        .issuer
        .as_ref()
        .unwrap()
        .set_secret(CLIENT_ID, "Renewed~secret-value");
    let out = h.caseclerk(&["check", "--connect"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let token_line = stdout
        .lines()
        .find(|l| l.contains("access token:"))
        .unwrap_or_default();
    assert!(token_line.starts_with("FAILED"), "{stdout}");
    assert!(token_line.contains("AADSTS7000215") && token_line.contains("client secret is wrong"));
    assert!(
        stdout.lines().any(|l| l.starts_with("FAILED IMAP login")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("FAILED SMTP")),
        "{stdout}"
    );
}

/// A self-signed RSA certificate valid for `days` and its key, made with openssl in `dir`.
fn certificate(dir: &std::path::Path, name: &str, days: u32) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = std::process::Command::new("/usr/bin/openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=caseclerk",
        ])
        .args(["-days", &days.to_string(), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test]
async fn a_certificate_signs_the_client_assertion_and_its_expiry_is_warned_about() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    let (cert, key) = certificate(&h.dir, "app", 20);
    let (_, other_key) = certificate(&h.dir, "other", 20);
    let issuer = h.stack.issuer.as_ref().unwrap();
    issuer
        .add_certificate_client(CLIENT_ID, std::path::Path::new(&cert), SHARED)
        .unwrap();
    let use_key = |key: &str| {
        let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
        let o = cfg["oauth2"].as_table_mut().unwrap();
        o.remove("client_secret_file");
        o.insert("certificate_file".into(), toml::Value::String(cert.clone()));
        o.insert("private_key_file".into(), toml::Value::String(key.into()));
        std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    };
    use_key(&key);
    let out = h.ok(&["check", "--connect"]);
    assert!(out.contains("ok     access token: obtained"), "{out}");
    assert!(out.contains("WARNING: the certificate expires on"), "{out}");
    assert!(out.contains("ok     SMTP login"), "{out}");

    // A key that is not the registered certificate's.
    use_key(&other_key);
    let out = h.caseclerk(&["check", "--connect"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("AADSTS700027"), "{stdout}");
    assert!(stdout.contains("upload this certificate"), "{stdout}");
}

/// `text` loaded as a configuration file, written in a directory of its own (tests run side by
/// side) that is removed once the file is read.
fn load(text: &str) -> Result<caseclerk::shell::config::Config, String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("caseclerk-m365-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("caseclerk.toml");
    std::fs::write(&file, text).unwrap();
    let loaded = caseclerk::shell::config::load(&file, caseclerk::shell::config::Needs::NoSecrets)
        .map_err(|e| e.to_string());
    std::fs::remove_dir_all(&dir).unwrap();
    loaded
}

fn example() -> String {
    let root = crate::support::root().join("config");
    std::fs::read_to_string(root.join("microsoft365.example.toml"))
        .unwrap()
        .replace(
            "process = \"bury\"",
            &format!(
                "process = \"{}\"",
                root.join("processes/bury.toml").display()
            ),
        )
        .replace(
            "dir = \"../mail-templates\"",
            &format!(
                "dir = \"{}\"",
                crate::support::root().join("mail-templates").display()
            ),
        )
        .replace(
            "\"attachments/",
            &format!("\"{}/attachments/", root.display()),
        )
}

#[test]
fn the_microsoft_365_example_configuration_is_valid_and_uses_oauth2_for_both_servers() {
    let cfg = load(&example()).unwrap();
    let token = cfg.imap.oauth2.as_ref().expect("IMAP on OAuth2");
    assert!(
        std::sync::Arc::ptr_eq(token, cfg.smtp.oauth2.as_ref().unwrap()),
        "one token client"
    );
    assert_eq!(
        token.settings.token_url(),
        "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token"
    );
    assert_eq!(
        token.settings.scope,
        "https://outlook.office365.com/.default"
    );
    assert_eq!(cfg.imap.sent_folder.as_deref(), Some("Sent Items"));
}

#[test]
fn every_oauth2_problem_is_reported_at_once() {
    let text = example()
        .replace("client_secret_file = \"/etc/caseclerk/client-secret\"", "client_secret = \"hunter2\"\nclient_secret_file = \"x\"\nprivate_key_file = \"k\"")
        .replace("secret_expires = \"2027-11-30\"", "secret_expires = \"30/11/2027\"\nscope = \"https://outlook.office365.com/IMAP.AccessAsApp\"\nauthority = \"http://login.example\"")
        .replace("[smtp]\nhost = \"smtp.office365.com\"\nport = 587\ntls = \"starttls\"", "[smtp]\nhost = \"127.0.0.1\"\nport = 587\ntls = \"none\"\npassword_file = \"p\"");
    let e = load(&text).unwrap_err();
    for part in [
        "[oauth2] authority `http://login.example` must be an https:// address",
        "[oauth2] scope",
        "must end in /.default",
        "[oauth2] client_secret: secrets never go in the config file",
        "[oauth2] secret_expires `30/11/2027` is not a date",
        "[oauth2] give exactly one credential",
        "[smtp] auth = \"oauth2\" logs in with a token: remove password",
        "[smtp] auth = \"oauth2\" sends a bearer token: it needs tls",
    ] {
        assert!(e.contains(part), "{part:?} in:\n{e}");
    }
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn oauth2_login_without_an_oauth2_section_says_what_to_add() {
    let text = example();
    let start = text.find("[oauth2]").unwrap();
    let end = text.find("[storage]").unwrap();
    let without = format!("{}{}", &text[..start], &text[end..]);
    let e = load(&without).unwrap_err();
    assert!(
        e.contains("[mailbox] auth = \"oauth2\" needs an [oauth2] section")
            && e.contains("[smtp] auth = \"oauth2\" needs an [oauth2] section"),
        "{e}"
    );
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_old_token_until_it_expires_says_why_and_recovers_without_a_restart()
 {
    let h = Harness::start_oauth("bury", |_| {}).await;
    let issuer = h.stack.issuer.as_ref().unwrap();
    issuer.set_lifetime(CLIENT_ID, 6);
    let mut daemon = h.daemon();
    daemon
        .wait_log(&["watching the mailbox with IDLE"], 1)
        .await;
    // The secret is renewed in Entra ID but not yet in caseclerk's file: the renewal fails.
    issuer.set_secret(CLIENT_ID, "Renewed~secret-value");
    daemon
        .wait_log(&["no access token", "AADSTS7000215"], 1)
        .await;
    // The old token serves until it expires; then the watcher cannot log in.
    daemon
        .wait_log(&["mailbox watcher cannot connect", "no access token"], 1)
        .await;
    let requests_then = issuer.refused();
    std::fs::write(h.dir.join("client-secret"), "Renewed~secret-value").unwrap();
    daemon.wait_log(&["access token obtained"], 2).await;
    daemon
        .wait_log(&["watching the mailbox with IDLE"], 2)
        .await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral(
            "renewal-failed@hospital.test",
            "Referral for a rapid review",
        ),
    )
    .await;
    h.wait_inbox(REFERRER, 1).await;
    let log = daemon.stop().await;
    assert!(
        requests_then <= 4,
        "a failed renewal is retried by the minute or the backoff, not at every connection: {requests_then} refused requests\n{log}"
    );
    assert!(!log.contains("Renewed~secret-value"), "{log}");
    assert_eq!(h.settled_count(REFERRER).await, 1);
}

/// A council's outbound web proxy on loopback: it answers each `CONNECT` with `answer` and, on
/// a 200, tunnels the connection. What it was asked for is kept, a line per connection.
fn web_proxy(answer: &'static str) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            log.lock().unwrap().push(first.trim().to_string());
            let mut client = client;
            client.write_all(answer.as_bytes()).unwrap();
            if !answer.contains(" 200 ") {
                continue;
            }
            let target = first.split_whitespace().nth(1).unwrap().to_string();
            let server = std::net::TcpStream::connect(target).unwrap();
            let (mut up_from, mut up_to) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut up_from, &mut up_to));
            let (mut down_from, mut down_to) = (server, client);
            std::thread::spawn(move || std::io::copy(&mut down_from, &mut down_to));
        }
    });
    (port, asked)
}

/// `[oauth2] proxy` set to `http://127.0.0.1:<port>`.
fn through_proxy(h: &Harness, port: u16) {
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["oauth2"].as_table_mut().unwrap().insert(
        "proxy".into(),
        toml::Value::String(format!("http://127.0.0.1:{port}")),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
}

#[tokio::test]
async fn the_token_is_fetched_through_the_councils_web_proxy_when_one_is_set() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    let (port, asked) = web_proxy("HTTP/1.1 200 Connection established\r\n\r\n");
    through_proxy(&h, port);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("proxy-1@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let out = h.tick(None);
    assert!(out.contains("opened RR-"), "{out}");
    assert_eq!(h.settled_count(REFERRER).await, 1, "the acknowledgement");
    let issuer = h.stack.issuer.as_ref().unwrap();
    let authority = issuer.authority();
    let target = authority
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        *asked.lock().unwrap(),
        [format!("CONNECT {target} HTTP/1.1")],
        "one token, asked for through the proxy"
    );
}

#[tokio::test]
async fn a_proxy_that_wants_a_login_is_named_with_what_to_ask_for_and_the_letters_wait() {
    let h = Harness::start_oauth("bury", |_| {}).await;
    mailbox_on_password(&h);
    let (port, asked) = web_proxy(
        "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate\r\n\r\n",
    );
    through_proxy(&h, port);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("proxy-2@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let (stdout, stderr) = failing_tick(&h);
    assert!(
        stdout.contains("opened RR-") && stdout.contains("undelivered 0"),
        "{stdout}"
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        0,
        "nothing sent without a token"
    );
    assert!(!asked.lock().unwrap().is_empty());
    let (failures, said) = health(&h, "<oauth2>").await;
    assert!(failures > 0, "{said}");
    let named = format!("the proxy 127.0.0.1:{port} wants a login");
    assert!(
        said.contains(&named) && said.contains("let through"),
        "{said}"
    );
    assert!(stderr.contains(&named), "{stderr}");

    // IT lets the host through: the proxy answers, and the letters go, once.
    let (open, _) = web_proxy("HTTP/1.1 200 Connection established\r\n\r\n");
    through_proxy(&h, open);
    let again = h.tick(None);
    assert!(again.contains("undelivered 0"), "{again}");
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "the acknowledgement, once"
    );
    assert_eq!(health(&h, "<oauth2>").await.0, 0, "the alarm clears");
}

#[test]
fn a_proxy_given_with_a_password_or_a_path_is_refused_at_once() {
    let text = example().replace(
        "[oauth2]\n",
        "[oauth2]\nproxy = \"http://user:secret@proxy.council.local:3128\"\n",
    );
    let e = load(&text).unwrap_err();
    assert!(
        e.contains("[oauth2] proxy `http://user:secret@proxy.council.local:3128` must be"),
        "{e}"
    );
}
