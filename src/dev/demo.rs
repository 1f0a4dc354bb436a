//! `caseclerk demo`: the whole product on one machine, in one command.
//!
//! Owns the demo's choreography: start the bundled local mail stack (Dovecot + Postfix on the
//! loopback ports the configuration names, in `run/devstack` beside the config), with a mailbox for
//! every address the configuration mentions plus a demo referrer; start the real daemon
//! (`caseclerk run`) as a child against it; email a sample referral to the shared mailbox; wait for
//! the acknowledgement to arrive in the referrer's mailbox and show it. Then keep running until
//! Ctrl-C (or stop at once with `--once`), stopping the daemon and the stack on the way out.
//!
//! Must not: be used by `run` or `tick`, or touch any mailbox but the local stack's.

use crate::core::intake;
use crate::dev::devstack::{MailStack, Ports, StackOptions};
use crate::shell::config::{self, Config, Needs};
use crate::shell::engine;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The demo referrer's address.
pub const DEMO_REFERRER: &str = "referrer@hospital.test";
/// The demo stack's inbound SMTP and plain IMAP ports (the configuration names the other two).
const DEMO_SMTP_PORT: u16 = 10025;
const DEMO_IMAP_PORT: u16 = 10143;
/// The demo stack's implicit-TLS submission port (the demo's configuration uses STARTTLS).
const DEMO_SUBMISSIONS_PORT: u16 = 10465;

/// Demo errors.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Config(String),
    #[error("the local mail stack: {0}")]
    Stack(#[from] crate::dev::devstack::DevstackError),
    #[error("{0}")]
    Io(String),
    #[error("the acknowledgement did not arrive: {0}")]
    NoAcknowledgement(String),
}

/// Every address the configuration names: the mailbox, everyone in a role, every agency contact.
pub fn addresses(cfg: &Config) -> Vec<String> {
    let mut out = vec![cfg.address.clone()];
    let mut add = |e: &str| {
        let e = e.to_lowercase();
        if !out.contains(&e) {
            out.push(e);
        }
    };
    for list in cfg
        .directory
        .roles
        .values()
        .chain(cfg.directory.area_roles.values().flat_map(|r| r.values()))
    {
        for c in list {
            add(&c.email);
        }
    }
    for a in &cfg.directory.agencies {
        add(&a.contact.email);
        for c in [&a.lead, &a.deputy].into_iter().flatten() {
            add(&c.email);
        }
    }
    out
}

/// The sample referral: a short email with a referral form attached.
pub fn sample_referral(to: &str) -> Vec<u8> {
    let form = include_bytes!("../../config/demo/referral-form.docx");
    let boundary = "caseclerk-demo-boundary";
    let b64 = base64_lines(form);
    format!(
        "From: Dr A. Example <{DEMO_REFERRER}>\r\n\
         To: {to}\r\n\
         Subject: Referral for a rapid review (SCSI-1 notification form attached)\r\n\
         Message-ID: <demo.{}@hospital.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Dear colleagues,\r\n\
         \r\n\
         Please find attached a referral for consideration of a rapid review. This is a\r\n\
         fictional demonstration referral: no real child or family is described.\r\n\
         \r\n\
         Dr A. Example, Named Doctor for Safeguarding\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document\r\n\
         Content-Disposition: attachment; filename=\"SCSI-1 referral form.docx\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {b64}\r\n\
         --{boundary}--\r\n",
        std::process::id()
    )
    .into_bytes()
}

/// Base64 in 76-character lines, as MIME wants.
fn base64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    text.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn stack_dir(cfg: &Config) -> Result<PathBuf, DemoError> {
    let ca = cfg.imap.ca_file.clone().ok_or_else(|| {
        DemoError::Config("[mailbox] ca_file must name <dir>/tls/ca.pem of the demo stack (see config/example.toml)".into())
    })?;
    let dir = ca.parent().and_then(Path::parent).ok_or_else(|| {
        DemoError::Config("[mailbox] ca_file must look like <dir>/tls/ca.pem".into())
    })?;
    std::fs::create_dir_all(dir).map_err(|e| DemoError::Io(format!("{}: {e}", dir.display())))?;
    dir.canonicalize()
        .map_err(|e| DemoError::Io(format!("{}: {e}", dir.display())))
}

/// Each demo starts from an empty database, so it shows the same thing however often it runs (a
/// fourth run in a day would otherwise meet the cap on cases per sender, and show nothing). Only
/// the demo's own database is removed: the one beside the demo stack's folder.
fn fresh_database(cfg: &Config, stack: &Path) -> Result<(), DemoError> {
    let beside = cfg
        .database
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .is_some_and(|p| Some(p.as_path()) == stack.parent());
    if !beside || !cfg.database.exists() {
        return Ok(());
    }
    println!(
        "clearing the previous demo's cases ({}) …",
        cfg.database.display()
    );
    for suffix in ["", "-wal", "-shm"] {
        let f = PathBuf::from(format!("{}{suffix}", cfg.database.display()));
        if f.exists() {
            std::fs::remove_file(&f).map_err(|e| DemoError::Io(format!("{}: {e}", f.display())))?;
        }
    }
    Ok(())
}

/// Run the demo.
pub async fn run(config: Option<PathBuf>, once: bool) -> Result<(), DemoError> {
    let path = config.unwrap_or_else(engine::default_config_path);
    let cfg =
        config::load(&path, Needs::NoSecrets).map_err(|e| DemoError::Config(e.to_string()))?;
    MailStack::check_installed()?;
    let dir = stack_dir(&cfg)?;
    fresh_database(&cfg, &dir)?;
    let mut users = addresses(&cfg);
    users.push(DEMO_REFERRER.to_string());
    let password = "caseclerk-demo".to_string();
    println!("starting the local mail stack in {} …", dir.display());
    let stack = MailStack::start(StackOptions {
        users,
        password: password.clone(),
        ports: Some(Ports {
            imap: DEMO_IMAP_PORT,
            imaps: cfg.imap.port,
            smtp: DEMO_SMTP_PORT,
            submission: cfg.smtp.port,
            submissions: DEMO_SUBMISSIONS_PORT,
        }),
        dir: Some(dir.clone()),
        without_idle: false,
        oauth: false,
        sent_copies: false,
    })
    .await?;
    let password_file = dir.join("password");
    write_private(&password_file, &password)?;

    // The demo account first: opening the database migrates it before the daemon does.
    let sign_in = if once {
        None
    } else {
        demo_account(&cfg).await?
    };
    let exe = exe_path()?;
    println!("starting `caseclerk run` with {} …", path.display());
    let mut daemon = tokio::process::Command::new(exe)
        .arg("--config")
        .arg(&path)
        .arg("run")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DemoError::Io(format!("cannot start caseclerk run: {e}")))?;
    let mut workspace = match &sign_in {
        Some(password) => Some(start_workspace(&exe_path()?, &path, password)?),
        None => None,
    };
    let result = choreography(&cfg, &stack, once).await;
    if let Some(w) = workspace.as_mut() {
        stop_daemon(w).await;
    }
    stop_daemon(&mut daemon).await;
    if let Err(e) = stack.stop().await {
        eprintln!("warning: stopping the local mail stack: {e}");
    }
    result
}

fn exe_path() -> Result<PathBuf, DemoError> {
    std::env::current_exe().map_err(|e| DemoError::Io(format!("cannot find caseclerk itself: {e}")))
}

/// The web workspace's demo account (business unit), with a made password; `None` when it exists
/// already (its password was printed the first time).
async fn demo_account(cfg: &Config) -> Result<Option<String>, DemoError> {
    use crate::shell::web::accounts;
    let store = crate::shell::store::Store::open(&cfg.database)
        .await
        .map_err(|e| DemoError::Io(e.to_string()))?;
    let password = accounts::random_token()[..20].to_string();
    let now = crate::shell::clock::Clock::now(&crate::shell::clock::SystemClock);
    let role = crate::core::access::Role::BusinessUnit;
    let name = "Demo business support officer";
    let made = match accounts::add_user(&store, "demo", name, role, &password, now).await {
        Ok(_) => Some(password),
        Err(accounts::AccountError::Exists(_)) => Some(String::new()),
        Err(e) => return Err(DemoError::Io(e.to_string())),
    };
    store.close().await;
    Ok(made)
}

/// The web workspace beside the demo's daemon (`caseclerk serve`, on its default loopback
/// address); its address and the demo sign-in printed.
fn start_workspace(
    exe: &Path,
    config: &Path,
    password: &str,
) -> Result<tokio::process::Child, DemoError> {
    let child = tokio::process::Command::new(exe)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DemoError::Io(format!("cannot start caseclerk serve: {e}")))?;
    let password = if password.is_empty() {
        "as printed when the demo first made the account".to_string()
    } else {
        password.to_string()
    };
    println!(
        "the web workspace: http://{}/ — sign in as demo, password {password}",
        crate::shell::config::web_default_listen()
    );
    Ok(child)
}

/// Wait until the daemon has recorded its first look at the mailbox (at most a minute).
async fn first_look(database: &Path) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Before the daemon's migrations the database may be missing or empty: that is "not yet".
        if let Ok(store) = crate::shell::store::Store::open_read_only(database).await {
            let looked = crate::shell::firstrun::load(&store).await;
            store.close().await;
            if matches!(looked, Ok(Some(_))) {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::Io(format!(
                "the daemon did not look at the mailbox within a minute ({} has no first run \
                 recorded); see its log above",
                database.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn choreography(cfg: &Config, stack: &MailStack, once: bool) -> Result<(), DemoError> {
    // The daemon leaves mail from before its first look for people: send only once it has looked.
    first_look(&cfg.database).await?;
    let before = stack.fetch_all(DEMO_REFERRER).await?.len();
    let panel = cfg.people("screening_panel", None).to_vec();
    let mut panel_before = Vec::new();
    for member in &panel {
        panel_before.push(stack.fetch_all(&member.email).await?.len());
    }
    println!(
        "emailing a sample referral from {DEMO_REFERRER} to {} …",
        cfg.address
    );
    stack
        .deliver(
            DEMO_REFERRER,
            &[cfg.address.as_str()],
            &sample_referral(&cfg.address),
        )
        .await?;
    let got = stack
        .wait_for(DEMO_REFERRER, before + 1, Duration::from_secs(60))
        .await
        .map_err(|e| DemoError::NoAcknowledgement(e.to_string()))?;
    let ack = intake::parse(&got[before].raw);
    println!("\nthe acknowledgement arrived in {DEMO_REFERRER}'s mailbox:\n");
    println!(
        "  From:       {}",
        ack.from.as_ref().map(|a| a.email.as_str()).unwrap_or("?")
    );
    println!("  Subject:    {}", ack.subject);
    println!(
        "  Message-ID: <{}>",
        ack.message_id.as_deref().unwrap_or("?")
    );
    println!("  In-Reply-To: <{}>", ack.in_reply_to.join("> <"));
    println!(
        "  Auto-Submitted: {}",
        ack.auto_submitted.as_deref().unwrap_or("(none)")
    );
    println!();
    for line in ack.body_text.lines() {
        println!("  | {line}");
    }
    for (member, before) in panel.iter().zip(panel_before) {
        match stack
            .wait_for(&member.email, before + 1, Duration::from_secs(30))
            .await
        {
            Ok(_) => println!(
                "\n{} received the referral, for the screening decision.",
                member.email
            ),
            Err(e) => println!("\n{} has not received the referral yet: {e}", member.email),
        }
    }
    if once {
        return Ok(());
    }
    println!(
        "\ncaseclerk is running against the local mail stack. Mail more with, for example:\n  \
         swaks --server 127.0.0.1:{DEMO_SMTP_PORT} --from {DEMO_REFERRER} --to {} --header 'Subject: Referral' --body 'A referral.'\n\
         See the cases with: cargo run -- --config {} cases\nPress Ctrl-C to stop.",
        cfg.address,
        cfg.file.display()
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), DemoError> {
    crate::shell::private::write(path, text)
        .map_err(|e| DemoError::Io(format!("{}: {e}", path.display())))
}

async fn stop_daemon(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // Our own child, by its pid: ask it to stop as systemd would.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_referral_is_recognised_as_a_referral_with_its_form() {
        let raw = sample_referral("bsp@bury.test");
        let m = intake::parse(&raw);
        assert!(m.parsed);
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].filename, "SCSI-1 referral form.docx");
        assert_eq!(
            m.attachments[0].data,
            include_bytes!("../../config/demo/referral-form.docx")
        );
        let v = crate::core::classify::classify(&m, &crate::core::classify::Context::default());
        assert_eq!(
            v.kind,
            crate::core::classify::Kind::Referral,
            "{:?}",
            v.reasons
        );
    }
}
