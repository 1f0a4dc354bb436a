//! The command line of the web workspace: `caseclerk serve`, `caseclerk user add | disable |
//! list | signins`, and serving beside the daemon when `[web]` is configured.
//!
//! Owns turning those commands into calls of [`super::serve`] and [`super::accounts`], and what
//! they print. A new account's password is made here (20 random characters, printed once) unless
//! one is given on standard input.
//!
//! Must not: print or log a password other than the one it just made, once, to the terminal.

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
    /// Personal accounts of the web workspace: add, disable, list, signins.
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
    /// Every account, its role, and whether it is disabled or locked.
    List,
    /// An account's sign-ins (and failed attempts), newest first.
    Signins { username: String },
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
            let settings = cfg.web.clone().unwrap_or_else(|| WebSettings {
                listen: crate::shell::config::web_default_listen(),
                tls: None,
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
            super::serve(&settings, app, shutdown).await.map_err(work)
        }
        WebCommand::User { action } => user(&store, clock, action).await,
    }
}

async fn user(store: &Store, clock: SharedClock, action: &UserAction) -> Result<(), Outcome> {
    let refused = |e: accounts::AccountError| match e {
        accounts::AccountError::Store(_) | accounts::AccountError::Hash(_) => work(e),
        _ => usage(e),
    };
    match action {
        UserAction::Add {
            username,
            name,
            role,
            password_stdin,
        } => {
            let role = Role::parse(role)
                .ok_or_else(|| usage(accounts::AccountError::BadRole(role.clone())))?;
            let (password, made) = if *password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map_err(work)?;
                (line.trim_end_matches(['\r', '\n']).to_string(), false)
            } else {
                (accounts::random_token()[..20].to_string(), true)
            };
            accounts::add_user(store, username, name, role, &password, clock.now())
                .await
                .map_err(refused)?;
            println!("added {username} ({})", role.words());
            if made {
                println!("password (shown once; give it to {name} in person): {password}");
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
                println!(
                    "{:<20} {:<14} {:<30} {state}",
                    a.username,
                    a.role.as_str(),
                    a.display_name
                );
            }
            Ok(())
        }
        UserAction::Signins { username } => {
            for (at, what, from) in accounts::signins(store, username).await.map_err(refused)? {
                println!(
                    "{}  {what:<24} from {from}",
                    crate::core::calendar::short_instant(at)
                );
            }
            Ok(())
        }
    }
}

/// The daemon and, when `[web]` is configured, the workspace beside it: the address is taken
/// before the daemon starts (a busy port stops `run` at once), and the daemon stopping stops it.
pub async fn beside_daemon<E: std::fmt::Display>(
    cfg: Arc<Config>,
    store: Store,
    clock: SharedClock,
    daemon: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    let Some(settings) = cfg.web.clone() else {
        return daemon.await.map_err(|e| e.to_string());
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: settings.listen,
            source,
        })
        .map_err(|e| e.to_string())?;
    let app = App {
        cfg,
        store,
        clock,
        https: false,
        pages: Default::default(),
    };
    let web = super::serve_on(listener, settings.tls.as_ref(), app, std::future::pending());
    tokio::select! {
        r = daemon => r.map_err(|e| e.to_string()),
        r = web => r.map_err(|e| e.to_string()),
    }
}
