//! `[web]`: where the web workspace listens, and the certificate it serves HTTPS with.
//!
//! Owns the rule the mail connections follow too: plain HTTP only on a loopback address (a
//! reverse proxy on the same machine terminating TLS, or a person's own browser on it); any other
//! address needs `certificate` and `key`.
//!
//! Also owns the check of sign-in through a trusted reverse proxy (`trusted_proxy_header` and
//! `trusted_proxies`, see [`crate::shell::web::proxy`]): a header without the proxy's addresses
//! is refused (anyone who reached caseclerk could name themselves in it), as are addresses that
//! are not addresses, an address that cannot reach a loopback listener, and a header name that
//! is not one. Every problem is reported at once.
//!
//! Must not: open the certificate's files (the server reads them when it starts).

use super::Resolver;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
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
    /// Sign-in delegated to the council's identity provider through a reverse proxy.
    pub proxy: Option<TrustedProxy>,
}

/// The reverse proxy whose header names the signed-in person (`[web] trusted_proxy_header` and
/// `trusted_proxies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxy {
    /// The header's name, lowercase (e.g. `x-forwarded-email`).
    pub header: String,
    /// The proxy's addresses: the header is believed from these peers only.
    pub from: Vec<IpAddr>,
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
    #[serde(default)]
    trusted_proxy_header: Option<String>,
    #[serde(default)]
    trusted_proxies: Option<Vec<String>>,
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
        let proxy = self.trusted_proxy(raw, listen);
        WebSettings { listen, tls, proxy }
    }

    /// `trusted_proxy_header` with `trusted_proxies`: both or neither, each address an IP
    /// address (that can reach `listen`), the header a header name.
    fn trusted_proxy(&mut self, raw: &RawWeb, listen: SocketAddr) -> Option<TrustedProxy> {
        let addresses = raw.trusted_proxies.as_deref().unwrap_or_default();
        let header = match (&raw.trusted_proxy_header, addresses.is_empty()) {
            (None, true) => return None,
            (None, false) => {
                self.problems.push(
                    "[web] trusted_proxies is given without trusted_proxy_header: name the \
                     header the proxy puts the signed-in person's name in (e.g. \
                     trusted_proxy_header = \"X-Forwarded-Email\"), or remove trusted_proxies"
                        .into(),
                );
                None
            }
            (Some(h), true) => {
                self.problems.push(format!(
                    "[web] trusted_proxy_header = \"{h}\" needs trusted_proxies = [\"<the \
                     proxy's address>\", …]: without the proxy's addresses anyone who can reach \
                     caseclerk could sign in as anybody by sending that header"
                ));
                None
            }
            (Some(h), false) => Some(h),
        };
        if let Some(h) = &raw.trusted_proxy_header
            && axum::http::HeaderName::from_bytes(h.trim().as_bytes()).is_err()
        {
            self.problems.push(format!(
                "[web] trusted_proxy_header = \"{h}\" is not an HTTP header name (letters, \
                 digits and dashes, like \"X-Forwarded-Email\")"
            ));
        }
        let mut from = Vec::new();
        for a in addresses {
            match a.trim().parse::<IpAddr>() {
                Err(_) => self.problems.push(format!(
                    "[web] trusted_proxies: \"{a}\" is not an IP address (give the proxy's \
                     address as the connection comes from it, like \"10.1.2.3\" or \"127.0.0.1\")"
                )),
                Ok(ip) if listen.ip().is_loopback() && !ip.is_loopback() => {
                    self.problems.push(format!(
                        "[web] trusted_proxies: {ip} cannot reach caseclerk listening on \
                         {listen} (loopback): run the proxy on this machine (127.0.0.1), or \
                         listen on an address it reaches, with a certificate"
                    ))
                }
                Ok(ip) => from.push(ip),
            }
        }
        Some(TrustedProxy {
            header: header?.trim().to_ascii_lowercase(),
            from,
        })
        .filter(|p| !p.from.is_empty())
    }
}
