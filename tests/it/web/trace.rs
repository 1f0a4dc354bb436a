//! `RUST_LOG=trace` over the web workspace, run as the real binary (`caseclerk serve`, and the
//! `user add` and `user totp` that make its account): a wrong password, a sign-in with password
//! and code, every page of a case whose referral names a child in its subject and comes from a
//! named sender, each of its letters and attachments, triage and its attachment, the tracker
//! and its downloads, a form posted with the child's name in its reason, a forged form, and
//! signing out. The log must carry no password, code, second-factor secret, cookie, CSRF
//! token, user name, child's name, email address or subject — whatever the wire libraries
//! (hyper, axum, sqlx, rustls) would say at trace.

use super::{Answer, Client};
use crate::review::Review;
use caseclerk::core::totp;
use caseclerk::shell::clock::{Clock, SystemClock};
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

const SENDER: &str = "Dr Rowan Referrer <rowan.referrer@hospital.test>";
const SUBJECT: &str = "Referral about Jane Doe, aged 3";
const STRAY_FROM: &str = "sam.sender@elsewhere.test";
const STRAY_SUBJECT: &str = "Chronology for Jane Doe";
const USER: &str = "bsofficer";
const DISPLAY: &str = "Beatrice Officer";
const PASSWORD: &str = "a long sign-in passphrase";

fn caseclerk(config: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("caseclerk runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "caseclerk {args:?}: {}",
        crate::support::said(&out)
    );
    out
}

/// Every link in a page to somewhere under `prefix`.
fn links<'a>(page: &'a Answer, prefix: &str) -> Vec<&'a str> {
    page.body
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|href| href.starts_with(prefix))
        .collect()
}

/// A stray return naming the child, from a named sender, with an attachment: in triage.
fn stray() -> Vec<u8> {
    format!(
        "From: Sam Sender <{STRAY_FROM}>\r\nTo: bsp@bury.test\r\nSubject: {STRAY_SUBJECT}\r\n\
         Message-ID: <stray-trace@elsewhere.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
         Jane Doe was seen at the clinic twice.\r\n--b1\r\nContent-Type: text/plain; \
         name=\"Jane Doe chronology.txt\"\r\nContent-Disposition: attachment; \
         filename=\"Jane Doe chronology.txt\"\r\n\r\nChronology of Jane Doe.\r\n--b1--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn with_rust_log_at_trace_the_workspace_logs_no_secret_name_address_or_subject() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut r = Review::with("bury", move |cfg| {
        let mut web = toml::Table::new();
        web.insert("listen".into(), format!("127.0.0.1:{port}").into());
        cfg.insert("web".into(), web.into());
    })
    .await;
    let case = r.referral_from(SENDER, SUBJECT, "2026-08-20 10:00").await;
    r.receive(&stray(), "2026-08-20 12:00").await;
    let config = r.config_path();
    let (secret, mut log) = an_account_with_a_second_factor_made_on_the_command_line(&config);
    let log_file = config.with_file_name("serve-trace.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .spawn()
        .expect("caseclerk serve runs");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the workspace listens"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut c = Client {
        addr,
        cookies: Default::default(),
        headers: Vec::new(),
    };
    let mut secrets = signed_in_with_password_and_code(&mut c, &secret).await;
    secrets.extend(every_page_a_form_a_forged_form_and_sign_out(&mut c, &case).await);
    server.kill().unwrap();
    server.wait().unwrap();
    log += &std::fs::read_to_string(&log_file).unwrap();
    the_log_carries_none_of(&log, &secrets);
}

/// `caseclerk user add` and `user totp`, traced: the secret printed, and their log.
fn an_account_with_a_second_factor_made_on_the_command_line(
    config: &std::path::Path,
) -> (Vec<u8>, String) {
    let mut log = String::new();
    let add = [
        "user",
        "add",
        USER,
        "--name",
        DISPLAY,
        "--role",
        "business-unit",
        "--password-stdin",
    ];
    log += &String::from_utf8_lossy(&caseclerk(config, &add, &format!("{PASSWORD}\n")).stderr);
    let enrolled = caseclerk(config, &["user", "totp", USER], "");
    log += &String::from_utf8_lossy(&enrolled.stderr);
    let printed = String::from_utf8_lossy(&enrolled.stdout).to_string();
    let setup = printed
        .split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("the setup key is printed");
    (totp::from_base32(setup).unwrap(), log)
}

/// A wrong password, then the password and the code: what must not be logged (the password,
/// the secret, the code, the sign-in form's token and the cookies).
async fn signed_in_with_password_and_code(c: &mut Client, secret: &[u8]) -> Vec<String> {
    assert_eq!(c.sign_in(USER, "not the password at all").await.status, 401);
    let asked = c.sign_in(USER, PASSWORD).await;
    let sign_in_token = asked.csrf();
    let code = totp::code_at(secret, totp::step(SystemClock.now()));
    let signed = c
        .post(
            "/sign-in/code",
            &[("csrf", &sign_in_token), ("code", &code)],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let mut secrets = vec![
        PASSWORD.to_string(),
        totp::base32(secret),
        hex::encode(secret),
        code,
        sign_in_token,
    ];
    secrets.extend(c.cookies.values().cloned());
    secrets
}

/// Every page, each letter and attachment of the case and triage, a hold placed with the
/// child's name in its reason, a forged form, and signing out: the session's form token.
async fn every_page_a_form_a_forged_form_and_sign_out(c: &mut Client, case: &str) -> Vec<String> {
    let case_page = c.get(&format!("/cases/{case}")).await;
    assert_eq!(case_page.status, 200);
    let csrf = case_page.csrf();
    let mut pages: Vec<String> = [
        "/cases",
        "/cases?status=open",
        "/triage",
        "/held",
        "/undelivered",
        "/coming",
        "/tracker",
        "/tracker.csv",
        "/tracker.xlsx",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    let prefix = format!("/cases/{case}/");
    pages.extend(links(&case_page, &prefix).into_iter().map(str::to_string));
    let triage = c.get("/triage").await;
    pages.extend(links(&triage, "/triage/").into_iter().map(str::to_string));
    assert!(
        pages.iter().any(|p| p.contains("/letters/"))
            && pages.iter().any(|p| p.contains("/attachments/")),
        "a letter and an attachment are opened: {pages:?}"
    );
    for p in &pages {
        assert_eq!(c.get(p).await.status, 200, "{p}");
    }
    let hold = format!("/cases/{case}/hold");
    let reason = [("to", "place"), ("reason", "Jane Doe's inquest")];
    let held = c
        .post(&hold, &[&[("csrf", csrf.as_str())][..], &reason].concat())
        .await;
    assert_eq!(held.status, 303, "{}", held.body);
    let forged = c
        .post(&hold, &[&[("csrf", "forged")][..], &reason].concat())
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(c.post("/sign-out", &[("csrf", &csrf)]).await.status, 303);
    vec![csrf]
}

fn the_log_carries_none_of(log: &str, secrets: &[String]) {
    for line in ["web workspace listening", "web sign-in", "web action"] {
        assert!(
            log.contains(line),
            "the log was captured (`{line}`):\n{log}"
        );
    }
    let personal = [
        "Jane",
        "Doe",
        "rowan.referrer",
        "Rowan",
        STRAY_FROM,
        "Sam Sender",
        SUBJECT,
        STRAY_SUBJECT,
        USER,
        DISPLAY,
        "@",
    ];
    for needle in secrets.iter().map(String::as_str).chain(personal) {
        assert!(
            !log.contains(needle),
            "the log shows `{needle}`:\n{}",
            log.lines()
                .filter(|l| l.contains(needle))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
