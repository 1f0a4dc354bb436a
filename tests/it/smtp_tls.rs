//! Letters over implicit TLS (`tls = "implicit"`, a "submissions" port such as 465), through the
//! real mail stack: the outbox starts TLS on its own socket and runs lettre's conversation inside
//! it, so the server's certificate is checked by caseclerk, not by lettre — a server it does not
//! trust gets neither a letter nor the password.

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

#[tokio::test]
async fn a_server_whose_certificate_is_not_trusted_gets_no_letter_and_no_password() {
    let h = Harness::start("bury").await;
    over_implicit_tls(&h, false);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("untrusted@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let out = h.caseclerk(&["tick", "--process-existing"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("opened RR-"), "{stdout}");
    assert!(
        stdout.contains("sent 0") && stdout.contains("undelivered 0"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert_eq!(h.settled_count(REFERRER).await, 0);
    // `check --connect` says so, through the same client.
    let check = h.caseclerk(&["check", "--connect"]);
    let said = String::from_utf8_lossy(&check.stdout);
    let smtp = said
        .lines()
        .find(|l| l.contains("SMTP at"))
        .unwrap_or_default();
    assert!(
        smtp.starts_with("FAILED") && smtp.contains("starting TLS with the mail server"),
        "{said}"
    );
    // Nothing reached the server's SMTP conversation: no login was tried.
    assert!(
        !h.stack.maillog().contains("sasl_method"),
        "{}",
        h.stack.maillog()
    );
}
