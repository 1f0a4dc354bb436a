//! `[web]`: where the web workspace listens, and the certificate it serves HTTPS with.
//!
//! Owns the rule the mail connections follow too: plain HTTP only on a loopback address (a
//! reverse proxy on the same machine terminating TLS, or a person's own browser on it); any other
//! address needs `certificate` and `key`.
//!
//! Must not: open the certificate's files (the server reads them when it starts).

use super::Resolver;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The address the workspace listens on when `[web] listen` is not given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// [`DEFAULT_LISTEN`] as an address.
pub fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("the default is an address")
}

/// The web workspace (`[web]`): `caseclerk serve`, and the daemon serves it too when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: HTTPS. `None`: plain HTTP, on loopback only.
    pub tls: Option<(PathBuf, PathBuf)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    certificate: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

impl Resolver {
    /// `[web]`: an address and port, and a certificate with its key (both or neither) unless the
    /// address is loopback.
    pub(super) fn web(&mut self, raw: &RawWeb) -> WebSettings {
        let text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = text.parse::<SocketAddr>().unwrap_or_else(|_| {
            self.problems.push(format!(
                "[web] listen = \"{text}\" is not an address and port like \"127.0.0.1:8080\""
            ));
            default_listen()
        });
        let tls = match (&raw.certificate, &raw.key) {
            (Some(c), Some(k)) => {
                let (c, k) = (self.path(c), self.path(k));
                for f in [&c, &k] {
                    if !f.is_file() {
                        self.problems
                            .push(format!("[web]: {} is not a file", f.display()));
                    }
                }
                Some((c, k))
            }
            (None, None) => None,
            _ => {
                self.problems.push(
                    "[web] certificate and key go together: give both (PEM files) or neither"
                        .into(),
                );
                None
            }
        };
        if tls.is_none() && !listen.ip().is_loopback() {
            self.problems.push(format!(
                "[web] listen = \"{listen}\" is not a loopback address: plain HTTP is allowed on \
                 loopback only (children's data). Give [web] certificate and key, or listen on \
                 127.0.0.1 behind a reverse proxy that terminates TLS"
            ));
        }
        WebSettings { listen, tls }
    }
}
