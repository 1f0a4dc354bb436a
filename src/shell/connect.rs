//! `caseclerk check --connect`: every connection the daemon needs, tried once, one line each —
//! the credential (an access token, or the passwords), the IMAP login and the mailbox folder, the
//! SMTP login (no mail sent), and the sent folder — with the exact reason and what to do when one
//! fails.
//!
//! Must not: send mail, change the mailbox (folders are EXAMINEd, read-only), write the
//! database, or print a secret or a token.

use crate::shell::config::Config;
use crate::shell::mailbox;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub ok: bool,
    pub text: String,
}

fn ok(text: String) -> Line {
    Line { ok: true, text }
}

fn failed(text: String) -> Line {
    Line { ok: false, text }
}

/// Try every connection; the lines in order. Never fails itself.
pub async fn check(cfg: &Config) -> Vec<Line> {
    let mut lines = vec![credential(cfg).await];
    let imap = &cfg.imap;
    let at = format!("{}:{}", imap.host, imap.port);
    match mailbox::connect(imap).await {
        Err(e) => {
            lines.push(failed(format!("IMAP login at {at}: {e}")));
            if imap.sent_folder.is_some() {
                lines.push(failed(
                    "sent folder: not checked (the IMAP login failed)".into(),
                ));
            }
        }
        Ok(mut session) => {
            let t = imap.command_timeout;
            lines.push(
                match tokio::time::timeout(t, session.examine(&imap.folder)).await {
                    Ok(Ok(m)) => ok(format!(
                        "IMAP login as {} at {at}: ok; folder {:?} holds {} message(s)",
                        imap.username, imap.folder, m.exists
                    )),
                    Ok(Err(e)) => failed(format!(
                    "IMAP login as {} at {at}: ok, but folder {:?} cannot be opened: {e} ({})",
                    imap.username,
                    imap.folder,
                    crate::core::oauth::after_login_advice(&e.to_string()).unwrap_or(
                        "set [mailbox] folder to the folder the mail arrives in, usually \"INBOX\""
                    )
                )),
                    Err(_) => failed(format!(
                        "IMAP folder {:?}: no answer within {} s",
                        imap.folder,
                        t.as_secs()
                    )),
                },
            );
            if let Some(sent) = &imap.sent_folder {
                lines.push(match tokio::time::timeout(t, session.examine(sent)).await {
                    Ok(Ok(_)) => ok(format!("sent folder {sent:?}: exists; every letter sent is filed there")),
                    Ok(Err(e)) => failed(format!(
                        "sent folder {sent:?} cannot be opened: {e} (set [mailbox] sent_folder to the sent folder's name, or file_sent = false if the server keeps a copy itself)"
                    )),
                    Err(_) => failed(format!("sent folder {sent:?}: no answer within {} s", t.as_secs())),
                });
            }
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session.logout()).await;
        }
    }
    if imap.sent_folder.is_none() {
        lines.push(ok("sent folder: off (file_sent = false)".into()));
    }
    lines.push(smtp(cfg).await);
    lines
}

async fn credential(cfg: &Config) -> Line {
    let Some(source) = cfg.imap.oauth2.as_ref().or(cfg.smtp.oauth2.as_ref()) else {
        return ok("credentials: passwords read ([mailbox] and [smtp])".into());
    };
    let s = &source.settings;
    let expiry = match &s.credential {
        crate::shell::oauth::Credential::Certificate { cert_file, .. } => {
            crate::shell::oauth::certificate_not_after(cert_file).map(|d| ("certificate", d))
        }
        crate::shell::oauth::Credential::Secret(_) => {
            s.secret_expires.map(|d| ("client secret", d))
        }
    };
    let today = crate::core::calendar::london_date(crate::shell::clock::Clock::now(
        &crate::shell::clock::SystemClock,
    ));
    let warning = expiry
        .and_then(|(what, d)| crate::core::oauth::expiry_warning(what, d, today))
        .map(|w| format!("; WARNING: {w}"))
        .unwrap_or_default();
    match source.token().await {
        Ok(t) => ok(format!(
            "access token: obtained from {} for client {} (valid until {}){warning}",
            s.token_url(),
            s.client_id,
            t.expires.format("%Y-%m-%d %H:%M UTC")
        )),
        Err(e) => failed(format!("access token: {e}")),
    }
}

async fn smtp(cfg: &Config) -> Line {
    let s = &cfg.smtp;
    let at = format!("{}:{}", s.host, s.port);
    match crate::shell::outbox::test_login(s, Some(&cfg.address)).await {
        Ok(()) => ok(format!(
            "SMTP login as {} at {at}: ok, and it accepts {} as the sender (nothing sent)",
            s.username, cfg.address
        )),
        Err(e) if e.kind == crate::shell::outbox::FailureKind::Sender => failed(format!(
            "SMTP login as {} at {at}: ok, but the server will not send as {}: {} — give the \
             account Send As permission on the shared mailbox (Exchange Online: \
             Add-RecipientPermission), or correct [mailbox] address",
            s.username, cfg.address, e.detail
        )),
        Err(e) if e.kind == crate::shell::outbox::FailureKind::Auth && s.oauth2.is_some() => {
            failed(format!(
                "SMTP login as {} at {at}: {} — {}",
                s.username,
                e.detail,
                crate::core::oauth::REFUSED_TOKEN_ADVICE
            ))
        }
        Err(e) if e.kind == crate::shell::outbox::FailureKind::Auth => failed(format!(
            "SMTP login as {} at {at} refused: {} (check [smtp] username and the password file)",
            s.username, e.detail
        )),
        Err(e) if e.kind == crate::shell::outbox::FailureKind::Untrusted => failed(format!(
            "SMTP at {at}: {} — the server's certificate is not trusted, so caseclerk holds every \
             letter: set [smtp] ca_file to the certificate of the CA that signs it, or renew the \
             server's certificate",
            e.detail
        )),
        Err(e) => failed(format!(
            "SMTP at {at}: {} (check [smtp] host, port, tls and ca_file)",
            e.detail
        )),
    }
}
