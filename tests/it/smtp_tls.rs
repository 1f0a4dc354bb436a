//! Letters over implicit TLS (`tls = "implicit"`, a "submissions" port such as 465), through the
//! real mail stack: the outbox starts TLS on its own socket and runs lettre's conversation inside
//! it, so the server's certificate is checked by caseclerk, not by lettre — a server it does not
//! trust gets neither a letter nor the password. A server that is not trusted (over implicit TLS
//! or STARTTLS) holds every letter, as a refused login does, until IT make it trusted again.

use crate::support::{Harness, PASSWORD, REFERRER, SHARED, referral};
use base64::Engine as _;

/// The harness's configuration with SMTP over implicit TLS to the stack's submissions port;
/// without `trusted`, no `ca_file` (the stack's certificate is then from an unknown authority).
fn over_implicit_tls(h: &Harness, trusted: bool) {
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    let smtp = cfg["smtp"].as_table_mut().unwrap();
    smtp.insert(
        "port".into(),
        toml::Value::Integer(h.stack.ports.submissions.into()),
    );
    smtp.insert("tls".into(), toml::Value::String("implicit".into()));
    if !trusted {
        smtp.remove("ca_file");
    }
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
}

#[tokio::test]
async fn letters_go_over_implicit_tls_once_each() {
    let h = Harness::start("bury").await;
    over_implicit_tls(&h, true);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("implicit@hospital.test", "Referral for a rapid review"),
    )
    .await;
    // At the most verbose log level: our TLS and lettre's conversation inside it log no login,
    // address or SMTP line.
    let traced = h.caseclerk_logging(&["tick", "--process-existing"], "trace");
    let (out, logs) = (
        String::from_utf8_lossy(&traced.stdout),
        String::from_utf8_lossy(&traced.stderr),
    );
    assert!(traced.status.success(), "{logs}");
    assert!(out.contains("opened RR-"), "{out}");
    assert!(out.contains("undelivered 0"), "{out}");
    assert!(!out.contains("sent 0"), "{out}");
    assert!(logs.contains("TRACE") || logs.contains("DEBUG"), "{logs}");
    let auth_plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{SHARED}\0{PASSWORD}"));
    for secret in [PASSWORD, &auth_plain, "AUTH", "RCPT TO", REFERRER, SHARED] {
        assert!(
            !logs.contains(secret),
            "`{secret}` in the trace log:\n{logs}"
        );
    }
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "the acknowledgement, once"
    );
    let log = h.stack.maillog();
    assert!(
        log.lines()
            .any(|l| l.contains("postfix/submissions/smtpd") && l.contains("sasl_method=PLAIN")),
        "logged in on the implicit-TLS listener:\n{log}"
    );
    let check = h.ok(&["check", "--connect"]);
    assert!(
        check.contains("ok     SMTP login as bsp@bury.test"),
        "{check}"
    );
    h.tick(None);
    assert_eq!(h.settled_count(REFERRER).await, 1, "not sent again");
}

/// Postfix's summary of each finished SMTP session on a submission listener (`disconnect from
/// … commands=N`).
fn submission_sessions(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("/smtpd[") && l.contains("disconnect from"))
        .filter(|l| l.contains("postfix/submission"))
        .collect()
}

#[tokio::test]
async fn a_pass_that_sent_letters_ends_its_smtp_session_with_quit_on_either_port() {
    let h = Harness::start("bury").await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("quit-1@hospital.test", "Referral for a rapid review"),
    )
    .await;
    assert!(!h.tick(None).contains("sent 0"));
    over_implicit_tls(&h, true);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("quit-2@hospital.test", "Rapid review referral"),
    )
    .await;
    assert!(!h.tick(None).contains("sent 0"));
    h.settled_count(REFERRER).await;
    let log = h.stack.maillog();
    let sessions = submission_sessions(&log);
    let used: Vec<&str> = sessions
        .iter()
        .copied()
        .filter(|l| l.contains("data="))
        .collect();
    assert_eq!(used.len(), 2, "one session a pass:\n{log}");
    for session in used {
        assert!(session.contains(" quit=1 "), "{session}");
    }
}

/// The harness's configuration with SMTP over STARTTLS (its default) and no `ca_file`: the
/// stack's certificate is then from an unknown authority.
fn over_untrusted_starttls(h: &Harness) {
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    let smtp = cfg["smtp"].as_table_mut().unwrap();
    assert_eq!(
        smtp["tls"].as_str(),
        Some("starttls"),
        "the harness's default"
    );
    smtp.remove("ca_file");
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
}

/// Put the stack's CA back in `[smtp] ca_file`, as IT would.
fn trust_the_server(h: &Harness) {
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["smtp"].as_table_mut().unwrap().insert(
        "ca_file".into(),
        toml::Value::String(h.stack.ca_pem.display().to_string()),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
}

/// A referral arrives (Thu 20 Aug 2026, 10:00) while the SMTP server's certificate is not trusted:
/// the pass opens the case, sends nothing, logs in nowhere and says what to put right; a day and
/// more later every letter still waits (none given up on as undelivered), the health check is
/// CRITICAL on its own rule and the digest's first section says letters cannot be sent. Once the
/// server is trusted again, the letters go, once each.
async fn every_letter_waits_for_an_untrusted_server(h: &Harness) {
    let at = chrono::DateTime::parse_from_rfc3339("2026-08-20T10:00:00+01:00").unwrap();
    h.stack
        .append(
            SHARED,
            &referral("untrusted@hospital.test", "Referral for a rapid review"),
            at,
        )
        .await
        .expect("append");
    let pass = |now: &str| {
        let out = h.caseclerk(&["tick", "--process-existing", "--now", now]);
        let said = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        (out.status.success(), said.0, said.1)
    };
    for now in ["2026-08-20T09:01:00Z", "2026-08-21T10:30:00Z"] {
        let (ok, stdout, stderr) = pass(now);
        assert!(
            !ok,
            "a pass that could send nothing fails: {stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("sent 0") && stdout.contains("undelivered 0"),
            "{now}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("the SMTP server's certificate is not trusted")
                && stderr.contains("ca_file"),
            "{stderr}"
        );
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
    assert_eq!(h.settled_count(REFERRER).await, 0);
    assert!(
        !h.stack.maillog().contains("sasl_method"),
        "no login was tried: {}",
        h.stack.maillog()
    );
    let health = h.caseclerk(&["health", "--now", "2026-08-21T10:31:00Z"]);
    let said = String::from_utf8_lossy(&health.stdout);
    assert_eq!(health.status.code(), Some(2), "{said}");
    assert!(said.contains("[smtp_certificate_untrusted]"), "{said}");
    assert!(!said.contains("[letters_undelivered]"), "{said}");
    let digest = h.ok(&["digest", "--now", "2026-08-21T10:31:00Z"]);
    assert!(digest.contains("LETTERS CANNOT BE SENT"), "{digest}");
    assert!(
        digest.contains("certificate was not trusted 2 times"),
        "{digest}"
    );
    assert!(!digest.contains("UNDELIVERED"), "{digest}");
    // `check --connect` says so, through the same client.
    let check = h.caseclerk(&["check", "--connect"]);
    let said = String::from_utf8_lossy(&check.stdout);
    let smtp = said
        .lines()
        .find(|l| l.contains("SMTP at"))
        .unwrap_or_default();
    assert!(
        smtp.starts_with("FAILED") && smtp.contains("certificate is not trusted"),
        "{said}"
    );

    trust_the_server(h);
    let (ok, stdout, stderr) = pass("2026-08-21T10:40:00Z");
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("undelivered 0"), "{stdout}");
    assert!(!stdout.contains("sent 0"), "{stdout}");
    let (_, again, _) = pass("2026-08-21T10:41:00Z");
    assert!(again.contains("sent 0"), "nothing twice: {again}");
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "the acknowledgement, once"
    );
    let health = h.caseclerk(&["health", "--now", "2026-08-21T10:42:00Z"]);
    let said = String::from_utf8_lossy(&health.stdout);
    assert!(!said.contains("smtp_certificate_untrusted"), "{said}");
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_over_implicit_tls_holds_every_letter() {
    let h = Harness::start("bury").await;
    over_implicit_tls(&h, false);
    every_letter_waits_for_an_untrusted_server(&h).await;
}

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_over_starttls_holds_every_letter() {
    let h = Harness::start("bury").await;
    over_untrusted_starttls(&h);
    every_letter_waits_for_an_untrusted_server(&h).await;
}

#[tokio::test]
async fn a_mailbox_server_that_is_not_trusted_is_named_in_the_digest_with_what_to_put_right() {
    let h = Harness::start("bury").await;
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["mailbox"].as_table_mut().unwrap().remove("ca_file");
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    let out = h.caseclerk(&["tick", "--process-existing"]);
    assert!(!out.status.success(), "the mailbox cannot be read");
    let digest = h.ok(&["digest"]);
    assert!(digest.contains("THE MAILBOX CANNOT BE READ"), "{digest}");
    assert!(
        digest.contains("the mail server's certificate is not trusted")
            && digest.contains("[mailbox] ca_file"),
        "{digest}"
    );
}

#[tokio::test]
async fn a_ca_file_gone_from_under_the_daemon_holds_every_letter_until_it_is_back() {
    let h = Harness::start("bury").await;
    let ca = h.dir.join("smtp-ca.pem");
    std::fs::copy(&h.stack.ca_pem, &ca).unwrap();
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["smtp"].as_table_mut().unwrap().insert(
        "ca_file".into(),
        toml::Value::String(ca.display().to_string()),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    let mut daemon = h.daemon();
    daemon.wait_log(&["first pass done"], 1).await;
    std::fs::remove_file(&ca).unwrap();
    h.deliver(
        REFERRER,
        SHARED,
        &referral("ca-gone@hospital.test", "Referral for a rapid review"),
    )
    .await;
    daemon
        .wait_log(&["the SMTP settings cannot be used"], 1)
        .await;
    let health = h.caseclerk(&["health"]);
    let said = String::from_utf8_lossy(&health.stdout);
    assert_eq!(health.status.code(), Some(2), "{said}");
    assert!(said.contains("[smtp_certificate_untrusted]"), "{said}");

    std::fs::copy(&h.stack.ca_pem, &ca).unwrap();
    h.deliver(
        REFERRER,
        SHARED,
        &referral("ca-back@hospital.test", "Rapid review referral"),
    )
    .await;
    daemon.wait_log(&["letter sent"], 8).await;
    let log = daemon.stop().await;
    assert!(!log.contains("letter undelivered"), "{log}");
    assert_eq!(
        h.settled_count(REFERRER).await,
        2,
        "one acknowledgement per referral, once each"
    );
}
