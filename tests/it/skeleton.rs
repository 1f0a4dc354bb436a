//! A referral email becomes a case and is acknowledged — end to end through the real mail stack.

use crate::support::{Harness, REFERRER, SHARED, referral, reply};
use caseclerk::core::classify::find_case_ref;
use std::time::Duration;

const PANEL: [&str; 3] = [
    "la.rep@bury.test",
    "police.rep@police.test",
    "icb.rep@icb.test",
];

#[tokio::test]
async fn a_referral_email_opens_a_case_is_acknowledged_and_goes_to_each_panel_member_with_its_attachment()
 {
    let h = Harness::start("bury").await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("ref-1@hospital.test", "Referral for a rapid review"),
    )
    .await;

    let out = h.tick(None);
    assert!(out.contains("opened RR-"), "{out}");

    // The referrer's acknowledgement.
    let acks = h.wait_inbox(REFERRER, 1).await;
    assert_eq!(acks.len(), 1);
    let ack = &acks[0];
    let reference = find_case_ref(&ack.subject).expect("the subject carries the case reference");
    assert!(
        reference.starts_with("RR-20") && reference.ends_with("-0001"),
        "{reference}"
    );
    assert_eq!(ack.from.as_ref().unwrap().email, SHARED);
    assert_eq!(ack.auto_submitted.as_deref(), Some("auto-generated"));
    assert_eq!(
        ack.in_reply_to,
        ["ref-1@hospital.test"],
        "it threads with the referral"
    );
    assert!(ack.references.contains(&"ref-1@hospital.test".to_string()));
    let ack_id = ack.message_id.clone().expect("our own Message-ID");
    assert!(
        ack_id.starts_with("caseclerk.") && ack_id.ends_with("@bury.test"),
        "{ack_id}"
    );
    assert!(ack.body_text.contains(&reference));
    let raw = h.last_raw(REFERRER).await;
    let html = String::from_utf8_lossy(&raw);
    assert!(
        html.contains("text/html") && html.contains("text/plain"),
        "text and HTML parts"
    );

    // Each screening panel member gets the referral with its attachment, on the same thread.
    for member in PANEL {
        let got = h.wait_inbox(member, 1).await;
        assert_eq!(got.len(), 1, "{member}");
        let m = &got[0];
        assert!(m.subject.contains(&reference), "{member}: {}", m.subject);
        assert_eq!(m.in_reply_to, ["ref-1@hospital.test"]);
        let names: Vec<&str> = m.attachments.iter().map(|a| a.filename.as_str()).collect();
        assert!(names.contains(&"Referral form.docx"), "{member}: {names:?}");
        let form = m
            .attachments
            .iter()
            .find(|a| a.filename == "Referral form.docx")
            .unwrap();
        assert!(
            form.data.starts_with(b"PK\x03\x04"),
            "the Word file arrives intact"
        );
        assert!(
            names.iter().any(|n| n.ends_with("referral-email.txt")),
            "{names:?}"
        );
        assert_ne!(
            m.message_id.as_deref(),
            Some(ack_id.as_str()),
            "every letter has its own id"
        );
    }

    // The case is listed with its day numbers.
    let cases = h.ok(&["cases"]);
    assert!(
        cases.contains(&reference) && cases.contains("bury") && cases.contains("open"),
        "{cases}"
    );
}

#[tokio::test]
async fn ticking_again_or_restarting_sends_nothing_twice() {
    let h = Harness::start("bury").await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("ref-2@hospital.test", "Rapid review referral"),
    )
    .await;
    h.tick(None);
    h.wait_inbox(REFERRER, 1).await;
    for member in PANEL {
        h.wait_inbox(member, 1).await;
    }
    let again = h.tick(None);
    assert!(
        again.contains("fetched 0 new") && again.contains("queued 0, sent 0"),
        "{again}"
    );
    // The daemon starting over the same database decides nothing again either.
    let mut daemon = h.daemon();
    daemon.wait_log(&["first pass done"], 1).await;
    let log = daemon.stop().await;
    assert!(!log.contains("letter sent"), "{log}");
    assert_eq!(h.settled_count(REFERRER).await, 1);
    for member in PANEL {
        assert_eq!(h.settled_count(member).await, 1, "{member}");
    }
    assert_eq!(
        h.ok(&["cases"])
            .lines()
            .filter(|l| l.starts_with("RR-"))
            .count(),
        1
    );
}

#[tokio::test]
async fn an_out_of_office_reply_is_recorded_on_the_case_and_never_answered() {
    let h = Harness::start("bury").await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("ref-3@hospital.test", "Referral"),
    )
    .await;
    h.tick(None);
    let ack = h.wait_inbox(REFERRER, 1).await.remove(0);
    let ack_id = ack.message_id.unwrap();
    let ooo = format!(
        "From: {REFERRER}\r\nTo: {SHARED}\r\nSubject: Automatic reply: {}\r\nAuto-Submitted: auto-replied\r\n\
         Message-ID: <ooo-1@hospital.test>\r\nIn-Reply-To: <{ack_id}>\r\n\r\nI am out of the office until Monday.\r\n",
        ack.subject
    );
    h.deliver(REFERRER, SHARED, ooo.as_bytes()).await;
    let out = h.tick(None);
    assert!(
        out.contains("processed 1") && out.contains("queued 0, sent 0"),
        "{out}"
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "nothing is sent back to an auto-reply"
    );
    let triage = h.ok(&["triage"]);
    assert!(
        triage.contains("nothing waiting"),
        "an out-of-office is not work for a person: {triage}"
    );
}

#[tokio::test]
async fn a_bounce_marks_the_letter_undelivered_and_is_never_answered() {
    let h = Harness::start("bury").await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("ref-4@hospital.test", "Referral"),
    )
    .await;
    h.tick(None);
    let ack = h.wait_inbox(REFERRER, 1).await.remove(0);
    let ack_id = ack.message_id.unwrap();
    let dsn = format!(
        "From: MAILER-DAEMON@hospital.test (Mail Delivery System)\r\nTo: {SHARED}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Message-ID: <dsn-1@hospital.test>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"d1\"\r\n\r\n\
         --d1\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n\
         --d1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; hospital.test\r\n\r\n\
         Final-Recipient: rfc822; {REFERRER}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
         --d1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{ack_id}>\r\nSubject: {}\r\n\r\n--d1--\r\n",
        ack.subject
    );
    h.deliver("", SHARED, dsn.as_bytes()).await;
    let out = h.tick(None);
    assert!(
        out.contains("queued 1, sent 1"),
        "only the notice to the business manager: {out}"
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "a bounce is never answered"
    );
    let notices = h.wait_inbox("manager@bury.test", 1).await;
    assert!(
        notices[0].subject.contains("could not be delivered"),
        "{}",
        notices[0].subject
    );
    assert!(
        notices[0].body_text.contains("Acknowledge the referral"),
        "{}",
        notices[0].body_text
    );
    assert!(h.ok(&["triage"]).contains("nothing waiting"));
}

#[tokio::test]
async fn mail_that_is_none_of_these_is_kept_and_listed_for_a_person() {
    let h = Harness::start("bury").await;
    let newsletter =
        b"From: news@council.test\r\nTo: bsp@bury.test\r\nSubject: Staff newsletter\r\n\
        Message-ID: <news-1@council.test>\r\n\r\nThis week's staff news.\r\n";
    h.deliver("news@council.test", SHARED, newsletter).await;
    let out = h.tick(None);
    assert!(
        out.contains("processed 1") && out.contains("opened none"),
        "{out}"
    );
    let triage = h.ok(&["triage"]);
    assert!(triage.contains("rule unmatched"), "{triage}");
    assert!(h.ok(&["cases"]).contains("no cases"));
}

#[tokio::test]
async fn a_referral_received_on_a_saturday_starts_on_the_next_working_day() {
    let h = Harness::start("bury").await;
    // Saturday 14 November 2026, 10:30 London time (GMT).
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-14T10:30:00+00:00").unwrap();
    h.stack
        .append(
            SHARED,
            &referral("ref-sat@hospital.test", "Referral: serious incident"),
            at,
        )
        .await
        .unwrap();
    h.tick(Some("2026-11-14T10:35:00Z"));
    let cases = h.ok(&["cases", "--now", "2026-11-18T12:00:00Z"]);
    assert!(
        cases.contains("Sat 14 Nov 2026 10:30"),
        "received is the server's time: {cases}"
    );
    assert!(
        cases.contains("Mon 16 Nov 2026"),
        "day 0 is the Monday: {cases}"
    );
    assert!(cases.contains("day 2"), "Wednesday is day 2: {cases}");
}

#[tokio::test]
async fn mail_already_in_the_mailbox_at_the_first_look_is_left_for_people() {
    let h = Harness::start("bury").await;
    h.deliver(REFERRER, SHARED, &referral("old@hospital.test", "Referral"))
        .await;
    let first = h.ok(&["tick"]);
    assert!(first.contains("opened none"), "{first}");
    h.deliver(REFERRER, SHARED, &referral("new@hospital.test", "Referral"))
        .await;
    let second = h.ok(&["tick"]);
    assert!(second.contains("opened RR-"), "{second}");
    let acks = h.wait_inbox(REFERRER, 1).await;
    assert_eq!(acks[0].in_reply_to, ["new@hospital.test"]);
}

#[tokio::test]
async fn the_shared_mailbox_is_never_marked_read_nor_emptied_nor_its_new_mail_made_old() {
    let h = Harness::start("bury").await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("seen-1@hospital.test", "Referral"),
    )
    .await;
    h.tick(None);
    let settings = caseclerk::shell::config::ImapSettings {
        host: "127.0.0.1".into(),
        port: h.stack.ports.imap,
        tls: caseclerk::shell::config::TlsMode::None,
        username: SHARED.into(),
        password: Some(caseclerk::shell::config::Secret::new(
            crate::support::PASSWORD,
        )),
        folder: "INBOX".into(),
        ca_file: None,
        oauth2: None,
        sent_folder: None,
        sent_copy: caseclerk::shell::config::SentCopy::None,
        in_doubt_grace: std::time::Duration::from_secs(120),
        idle_refresh: Duration::from_secs(60),
        poll_interval: Duration::from_secs(60),
        command_timeout: Duration::from_secs(10),
        check_interval: Duration::from_secs(60),
        fetch_interval: Duration::from_secs(300),
    };
    let mut session = caseclerk::shell::mailbox::connect(&settings).await.unwrap();
    // caseclerk opens the folder read-only: a person's client is the first to take `\Recent`.
    let inbox = session.select("INBOX").await.unwrap();
    assert_eq!(inbox.recent, 1, "caseclerk took the new mail's \\Recent");
    let flags: Vec<String> = {
        use futures::StreamExt;
        let fetched: Vec<_> = session.fetch("1:*", "FLAGS").await.unwrap().collect().await;
        fetched
            .into_iter()
            .map(|f| format!("{:?}", f.unwrap().flags().collect::<Vec<_>>()))
            .collect()
    };
    assert_eq!(flags.len(), 1, "the referral is still there");
    assert!(!flags[0].contains("Seen"), "{flags:?}");
}

#[tokio::test]
async fn the_daemon_acknowledges_a_referral_as_soon_as_it_arrives() {
    let h = Harness::start("bury").await;
    let mut daemon = h.daemon();
    // The first pass has set the watermark (mail already there is left for people) and IDLE runs.
    daemon.wait_log(&["first pass done"], 1).await;
    daemon
        .wait_log(&["watching the mailbox with IDLE"], 1)
        .await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("idle-1@hospital.test", "Referral for rapid review"),
    )
    .await;
    // IDLE wakes the daemon: no tick needed.
    let acks = h.wait_inbox(REFERRER, 1).await;
    assert_eq!(acks[0].in_reply_to, ["idle-1@hospital.test"]);
    // A reply from the referrer on the thread is filed on the case, not answered.
    let reply = reply(
        REFERRER,
        acks[0].message_id.as_deref().unwrap(),
        &format!("Re: {}", acks[0].subject),
        "Thanks.",
        None,
    );
    h.deliver(REFERRER, SHARED, &reply).await;
    // The daemon's own report of the pass that read it: one message processed, nothing queued.
    daemon.wait_log(&["tick", "processed=1"], 2).await;
    let log = daemon.stop().await;
    let reply_pass = log
        .lines()
        .filter(|l| l.contains("tick") && l.contains("processed=1"))
        .nth(1)
        .unwrap();
    assert!(reply_pass.contains("queued=0"), "{reply_pass}");
    assert_eq!(h.settled_count(REFERRER).await, 1);
}

#[tokio::test]
async fn a_bad_configuration_is_refused_with_every_problem_listed() {
    let h = Harness::start_with("bury", |cfg| {
        let mailbox = cfg.get_mut("mailbox").unwrap().as_table_mut().unwrap();
        mailbox.insert("password".into(), toml::Value::String("in-the-file".into()));
        mailbox.insert(
            "host".into(),
            toml::Value::String("imap.example.org".into()),
        );
        mailbox.insert("tls".into(), toml::Value::String("none".into()));
        cfg.get_mut("roles")
            .unwrap()
            .as_table_mut()
            .unwrap()
            .remove("national_panel");
    })
    .await;
    let out = h.caseclerk(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("passwords never go in the config file"),
        "{err}"
    );
    assert!(err.contains("only allowed to a loopback host"), "{err}");
    assert!(err.contains("national_panel"), "{err}");
    assert!(
        !err.contains("in-the-file"),
        "the password is never echoed: {err}"
    );
}

#[tokio::test]
async fn logs_carry_case_references_and_ids_never_names_subjects_bodies_or_addresses() {
    let h = Harness::start("bury").await;
    let raw = String::from_utf8(referral(
        "ref-log@hospital.test",
        "Referral about Jane Doe, aged 3",
    ))
    .unwrap()
    .replace(
        "Please consider this referral",
        "Jane Doe was seriously harmed; please consider this referral",
    );
    h.deliver(REFERRER, SHARED, raw.as_bytes()).await;
    let out = h.caseclerk(&["tick", "--process-existing"]);
    assert!(out.status.success());
    // A second pass with a bounce and an unmatched message exercises the other log lines.
    h.deliver("news@council.test", SHARED, b"From: news@council.test\r\nTo: bsp@bury.test\r\nSubject: Jane Doe newsletter\r\n\r\nx\r\n").await;
    let again = h.caseclerk(&["tick"]);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(logs.contains("RR-"), "logs name the case: {logs}");
    for secret in [
        "Jane",
        "Doe",
        "aged 3",
        "seriously harmed",
        "referrer@hospital.test",
        "hospital.test",
        "Test Referrer",
        "news@council.test",
    ] {
        assert!(
            !logs.contains(secret),
            "`{secret}` leaked into the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn on_a_server_without_idle_the_daemon_polls_and_still_acknowledges() {
    let h = Harness::start_without_idle("bury", |cfg| {
        let mailbox = cfg.get_mut("mailbox").unwrap().as_table_mut().unwrap();
        mailbox.insert("poll_seconds".into(), toml::Value::Integer(1));
    })
    .await;
    let mut daemon = h.daemon();
    daemon.wait_log(&["first pass done"], 1).await;
    daemon.wait_log(&["no IDLE: polling"], 1).await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("poll-1@hospital.test", "Referral for rapid review"),
    )
    .await;
    let acks = h.wait_inbox(REFERRER, 1).await;
    assert_eq!(acks[0].in_reply_to, ["poll-1@hospital.test"]);
    let logs = daemon.stop().await;
    assert!(logs.contains("no IDLE: polling"), "{logs}");
}

/// A referral naming a child, the panel's three votes and the letters that follow, every pass run
/// with `RUST_LOG=trace` through the real SMTP and IMAP servers: the log has our own debug lines
/// but no password (plain or as the base64 of `AUTH PLAIN`), no SMTP command, address, name,
/// subject, body or letter. (lettre alone would write all of these at `debug`.)
#[tokio::test]
async fn with_rust_log_at_trace_a_whole_screening_logs_no_password_address_name_subject_or_body() {
    use base64::Engine as _;
    const PANEL: [&str; 3] = [
        "la.rep@bury.test",
        "police.rep@police.test",
        "icb.rep@icb.test",
    ];
    let h = Harness::start("bury").await;
    let arrive = |raw: Vec<u8>, at: &'static str| {
        let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
        let stack = &h.stack;
        async move { stack.append(SHARED, &raw, t).await.expect("append") }
    };
    let raw = String::from_utf8(referral(
        "trace-1@hospital.test",
        "Referral about Jane Doe, aged 3",
    ))
    .unwrap()
    .replace(
        "Please consider this referral",
        "Jane Doe was seriously harmed at home; please consider this referral",
    );
    arrive(raw.into_bytes(), "2026-08-20T10:00:00+01:00").await;
    let mut outputs = vec![h.caseclerk_logging(
        &[
            "tick",
            "--process-existing",
            "--now",
            "2026-08-20T09:01:00Z",
        ],
        "trace",
    )];
    let times = [
        "2026-08-20T10:30:00+01:00",
        "2026-08-20T10:40:00+01:00",
        "2026-08-20T10:50:00+01:00",
    ];
    for (member, at) in PANEL.iter().zip(times) {
        let request = h.request_with_code(member).await;
        let vote = reply(
            member,
            request.message_id.as_deref().unwrap(),
            &format!("RE: {}", request.subject),
            "MEETS\nJane Doe's injuries are unexplained; neglect suspected.\nAgencies: police",
            None,
        );
        arrive(vote, at).await;
    }
    for now in ["2026-08-20T12:00:00Z", "2026-08-21T12:00:00Z"] {
        outputs.push(h.caseclerk_logging(&["tick", "--now", now], "trace"));
    }
    let mut logs = String::new();
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // The review happened, and the log was at its most verbose.
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-08-21T12:00:00Z"]);
    assert!(report.contains("decision screening: meets"), "{report}");
    assert!(h.wait_inbox(REFERRER, 2).await.len() >= 2);
    assert!(
        logs.contains("letter decided") && logs.contains("DEBUG"),
        "{logs}"
    );

    let auth_plain = base64::engine::general_purpose::STANDARD
        .encode(format!("\0{SHARED}\0{}", crate::support::PASSWORD));
    let auth_login = base64::engine::general_purpose::STANDARD.encode(crate::support::PASSWORD);
    let mut secrets = vec![
        crate::support::PASSWORD.to_string(),
        auth_plain,
        auth_login,
        "AUTH".into(),
        "RCPT TO".into(),
        "MAIL FROM".into(),
        "Subject:".into(),
        "Content-Type:".into(),
        "Jane".into(),
        "Doe".into(),
        "aged 3".into(),
        "seriously harmed".into(),
        "neglect suspected".into(),
        "Test Referrer".into(),
        "Referral form".into(),
        REFERRER.into(),
        SHARED.into(),
        "hospital.test".into(),
    ];
    secrets.extend(PANEL.iter().map(|p| p.to_string()));
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "`{secret}` leaked into the RUST_LOG=trace log:\n{logs}"
        );
    }
}
