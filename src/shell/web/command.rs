//! The command line of the web workspace: `caseclerk serve`, `caseclerk user add | disable |
//! list | signins | totp | proxy`, and serving beside the daemon when `[web]` is configured.
//!
//! Owns turning those commands into calls of [`super::serve`] and [`super::accounts`], and what
//! they print. A new account's password is made here (20 random characters, printed once) unless
//! one is given on standard input.
//!
//! Must not: print or log a password other than the one it just made, once, to the terminal;
//! print a second factor's secret but once, to the terminal, when it is made.

use super::{App, WebError, accounts};
use crate::core::access::Role;
use crate::shell::clock::SharedClock;
use crate::shell::config::{Config, WebSettings};
use crate::shell::store::Store;
use std::sync::Arc;

/// The web workspace's commands, at the top level of the command line.
#[derive(clap::Subcommand, Debug)]
pub enum WebCommand {
    /// Serve the business unit's web workspace where [web] listen says (default 127.0.0.1:8080;
    /// HTTPS with [web] certificate and key), until stopped. `caseclerk run` serves it too when
    /// the configuration has a [web] section.
    Serve,
    /// Personal accounts of the web workspace: add, disable, enable, password, list, signins,
    /// reads.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum UserAction {
    /// Add an account. Its password is made and printed once, unless --password-stdin.
    Add {
        /// The sign-in name: lowercase letters, digits, dots, dashes, underscores.
        username: String,
        /// The person's name, as the workspace shows it.
        #[arg(long)]
        name: String,
        /// read-only (sees every case, changes none) or business-unit (runs the operator commands).
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input (at least 12 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it can no longer sign in, and its sessions end at once.
    Disable { username: String },
    /// Enable a disabled account again (its password as it was).
    Enable { username: String },
    /// Give an account a new password (its person forgot theirs): made and printed once, unless
    /// --password-stdin. Its sessions end and its lockout is lifted.
    Password {
        username: String,
        /// Read the password from the first line of standard input (at least 12 characters).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every account, its role, and whether it is disabled or locked.
    List,
    /// An account's sign-ins (and failed attempts), newest first; --all: every recorded
    /// attempt, also those that named no account (an unknown name, a proxy header from an
    /// address not trusted).
    Signins {
        #[arg(required_unless_present = "all")]
        username: Option<String>,
        #[arg(long, conflicts_with = "username")]
        all: bool,
    },
    /// What an account read in the workspace (a case's page, a letter, a file, the triage list,
    /// the tracker), newest first; --all: every account's reads.
    Reads {
        #[arg(required_unless_present = "all")]
        username: Option<String>,
        #[arg(long, conflicts_with = "username")]
        all: bool,
    },
    /// Give an account a second factor (a 6-digit code from an authenticator app after its
    /// password): prints, once, the setup key and the otpauth:// address to scan. Run again to
    /// replace a lost one; --remove to go back to the password alone.
    Totp {
        username: String,
        /// Remove the account's second factor instead.
        #[arg(long)]
        remove: bool,
    },
    /// Link an account to the name the council's sign-in proxy gives its person
    /// ([web] trusted_proxy_header, e.g. an email address or UPN); --remove to unlink.
    Proxy {
        username: String,
        /// The name the proxy's header carries for this person.
        #[arg(required_unless_present = "remove")]
        name: Option<String>,
        /// Unlink the account instead.
        #[arg(long, conflicts_with = "name")]
        remove: bool,
    },
}

/// Why a web command failed: a usage problem (exit 2) or a failure while working (exit 1).
#[derive(Debug)]
pub enum Outcome {
    Usage(String),
    Work(String),
}

fn usage(e: impl std::fmt::Display) -> Outcome {
    Outcome::Usage(e.to_string())
}

fn work(e: impl std::fmt::Display) -> Outcome {
    Outcome::Work(e.to_string())
}

/// Run a web command with the loaded configuration.
pub async fn run(
    cfg: Config,
    clock: SharedClock,
    command: &WebCommand,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Outcome> {
    let store = Store::open(&cfg.database).await.map_err(work)?;
    match command {
        WebCommand::Serve => {
            // Held while serving: `caseclerk restore` refuses to replace the database under it.
            let serving = crate::shell::store::serving_lock(&cfg.database, false)
                .map_err(work)?
                .ok_or_else(|| work("a restore is replacing the database: start again after it"))?;
            let settings = cfg.web.clone().unwrap_or_else(|| WebSettings {
                listen: crate::shell::config::web_default_listen(),
                tls: None,
                proxy: None,
            });
            let scheme = if settings.tls.is_some() {
                "https"
            } else {
                "http"
            };
            println!("the web workspace is at {scheme}://{}/", settings.listen);
            let app = App {
                cfg: Arc::new(cfg),
                store,
                clock,
                https: false,
                pages: Default::default(),
            };
            let served = super::serve(&settings, app, shutdown).await.map_err(work);
            drop(serving);
            served
        }
        WebCommand::User { action } => user(&store, &cfg.database, clock, action).await,
    }
}

/// A new account password: the first line of standard input, or one made here (`true`: shown
/// once by the caller).
fn new_password(stdin: bool) -> Result<(String, bool), Outcome> {
    if stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(work)?;
        return Ok((line.trim_end_matches(['\r', '\n']).to_string(), false));
    }
    Ok((accounts::random_token()[..20].to_string(), true))
}

/// An account error as the command's failure: the store's, a hash's or a key's is a failure
/// while working; the rest are the command's usage.
fn refused(e: accounts::AccountError) -> Outcome {
    match e {
        accounts::AccountError::Store(_)
        | accounts::AccountError::Hash(_)
        | accounts::AccountError::SecondFactor(_) => work(e),
        _ => usage(e),
    }
}

/// `caseclerk user proxy <user> <name>` (`None`: `--remove`).
async fn proxy(store: &Store, username: &str, name: Option<&str>) -> Result<(), Outcome> {
    super::proxy::link(store, username, name)
        .await
        .map_err(refused)?;
    match name {
        Some(n) => println!(
            "{username} now signs in through the proxy as {}",
            super::proxy::normalise(n)
        ),
        None => println!("{username} no longer signs in through the proxy"),
    }
    Ok(())
}

/// `caseclerk user totp <name> [--remove]`.
async fn totp(
    store: &Store,
    database: &std::path::Path,
    username: &str,
    remove: bool,
) -> Result<(), Outcome> {
    use crate::core::totp;
    if remove {
        let had = super::second_factor::remove(store, username)
            .await
            .map_err(refused)?;
        match had {
            true => println!("{username}'s second factor is removed: the password alone signs in"),
            false => println!("{username} had no second factor; nothing to do"),
        }
        return Ok(());
    }
    let key = super::second_factor::key_path(database);
    let secret = super::second_factor::enrol(store, &key, username)
        .await
        .map_err(refused)?;
    let setup = totp::base32(&secret);
    let grouped: Vec<&str> = setup
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    println!(
        "{username} now needs a 6-digit code after the password (from the next sign-in).\n\
         Shown once — set it up now, with {username} beside you:\n\n\
         \x20 setup key:  {}\n\
         \x20 address:    {}\n\n\
         In the authenticator app on their phone (Microsoft Authenticator, Google Authenticator,\n\
         FreeOTP, …): add an account, choose \"enter a setup key\" (time-based), and type the key;\n\
         or scan a QR code of the address, made on this computer with\n\
         \x20 qrencode -t ansiutf8 '<the address>'\n\
         Then sign in once together to check. A lost phone: `caseclerk user totp {username}`\n\
         again (the old codes stop working) or `--remove`.\n\
         The secret is kept sealed with the key in {} — back that file up with the\n\
         database, or every second factor must be set up again after a restore.",
        grouped.join(" "),
        totp::otpauth_uri("caseclerk", username, &secret),
        key.display()
    );
    Ok(())
}

async fn user(
    store: &Store,
    database: &std::path::Path,
    clock: SharedClock,
    action: &UserAction,
) -> Result<(), Outcome> {
    match action {
        UserAction::Add {
            username,
            name,
            role,
            password_stdin,
        } => {
            let role = Role::parse(role)
                .ok_or_else(|| usage(accounts::AccountError::BadRole(role.clone())))?;
            let (password, made) = new_password(*password_stdin)?;
            accounts::add_user(store, username, name, role, &password, clock.now())
                .await
                .map_err(refused)?;
            println!("added {username} ({})", role.words());
            if made {
                println!("password (shown once; give it to {name} in person): {password}");
            }
            Ok(())
        }
        UserAction::Enable { username } => {
            accounts::enable_user(store, username, clock.now())
                .await
                .map_err(refused)?;
            println!("enabled {username}");
            Ok(())
        }
        UserAction::Password {
            username,
            password_stdin,
        } => {
            let (password, made) = new_password(*password_stdin)?;
            accounts::set_password(store, username, &password, clock.now())
                .await
                .map_err(refused)?;
            println!("new password set for {username}; their sessions have ended");
            if made {
                println!("password (shown once; give it to them in person): {password}");
            }
            Ok(())
        }
        UserAction::Disable { username } => {
            accounts::disable_user(store, username, clock.now())
                .await
                .map_err(refused)?;
            println!("disabled {username}; their sessions have ended");
            Ok(())
        }
        UserAction::List => {
            let now = clock.now();
            for a in accounts::users(store).await.map_err(refused)? {
                let state = if a.disabled {
                    "disabled".to_string()
                } else if crate::core::access::locked(a.locked_until, now) {
                    "locked after failed sign-ins".to_string()
                } else {
                    "active".to_string()
                };
                let code = if a.second_factor { "code" } else { "-" };
                let proxy = a.proxy_name.as_deref().unwrap_or("-");
                println!(
                    "{:<20} {:<14} {:<30} {state:<28} {code:<5} {proxy}",
                    a.username,
                    a.role.as_str(),
                    a.display_name
                );
            }
            Ok(())
        }
        UserAction::Signins { username: None, .. } => {
            let all = accounts::all_signins(store).await.map_err(refused)?;
            for (at, who, what, from) in all.into_iter().rev() {
                println!(
                    "{}  {:<20} {what:<40} from {from}",
                    crate::core::calendar::short_instant(at),
                    who.as_deref().unwrap_or("(no account)")
                );
            }
            Ok(())
        }
        UserAction::Signins {
            username: Some(username),
            ..
        } => {
            for (at, what, from) in accounts::signins(store, username).await.map_err(refused)? {
                println!(
                    "{}  {what:<24} from {from}",
                    crate::core::calendar::short_instant(at)
                );
            }
            Ok(())
        }
        UserAction::Reads { username, .. } => {
            let all = accounts::reads(store, username.as_deref())
                .await
                .map_err(refused)?;
            for (at, who, what) in all {
                println!(
                    "{}  {who:<20} {what}",
                    crate::core::calendar::short_instant(at)
                );
            }
            Ok(())
        }
        UserAction::Totp { username, remove } => totp(store, database, username, *remove).await,
        UserAction::Proxy {
            username,
            name,
            remove,
        } => proxy(store, username, name.as_deref().filter(|_| !*remove)).await,
    }
}

/// Where the workspace's health is kept beside the daemon (`web_failing`).
pub const WEB_HEALTH_KEY: &str = "<web>";

/// The daemon and, when `[web]` is configured, the workspace beside it; the daemon stopping
/// stops it. A workspace that cannot start or stops — its port taken, its certificate or key
/// unreadable after a renewal — is logged and raised (`web_failing`), and the daemon goes on:
/// the statutory letters do not wait for the business unit's screens.
pub async fn beside_daemon<E: std::fmt::Display>(
    cfg: Arc<Config>,
    store: Store,
    clock: SharedClock,
    daemon: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    let Some(settings) = cfg.web.clone() else {
        return daemon.await.map_err(|e| e.to_string());
    };
    let (health, when) = (store.clone(), clock.clone());
    let app = App {
        cfg,
        store,
        clock,
        https: false,
        pages: Default::default(),
    };
    let web = async move {
        let served = match tokio::net::TcpListener::bind(settings.listen).await {
            Ok(listener) => {
                let _ = health.record_mailbox_ok(WEB_HEALTH_KEY, when.now()).await;
                super::serve_on(listener, settings.tls.as_ref(), app, std::future::pending()).await
            }
            Err(source) => Err(WebError::Bind {
                addr: settings.listen,
                source,
            }),
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "the web workspace is not running; mail is read and letters go as usual");
            let said = "the web workspace could not start or stopped";
            if let Err(e) = health
                .record_mailbox_error(WEB_HEALTH_KEY, said, when.now())
                .await
            {
                tracing::error!(error = %e, "recording the web workspace's failure failed");
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = daemon => r.map_err(|e| e.to_string()),
        () = web => Ok(()),
    }
}
