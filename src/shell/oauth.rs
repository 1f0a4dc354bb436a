//! The OAuth2 token client: app-only (client credentials) access tokens for Microsoft 365's IMAP
//! and SMTP, shared by [`crate::shell::mailbox`] and [`crate::shell::outbox`].
//!
//! Owns the POST to `{authority}/{tenant}/oauth2/v2.0/token` (HTTP/1.1 over rustls with the ring
//! provider, written here: one form POST a token lifetime does not justify an HTTP client crate
//! and its dependency tree), the client credential (a client secret re-read from its file or
//! variable at each request, so a rotated secret works without a restart; or a certificate and its
//! private key, signing an RS256 client assertion with the certificate's `x5t` thumbprint, as
//! Microsoft recommends), and the one cached token: held in memory only, renewed once three
//! quarters of its life have passed ([`crate::core::oauth::renew_at`]) — not per connection — and
//! dropped when a server refuses it, so the next attempt asks for a new one.
//!
//! What a refusal means is decided by [`crate::core::oauth::diagnose`]; this module only carries
//! the status, the `error` field and the first `AADSTS` code to it.
//!
//! Must not: write a token or a secret anywhere (disk, database, log), or log anything but the
//! outcome, the expiry and the diagnosis.

use crate::core::oauth::{Diagnosis, diagnose, renew_at};
use crate::shell::clock::{Clock, SystemClock};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, NaiveDate, Utc};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The token client's health: a `mailbox_state` row (as `<smtp>`), failures counting the passes
/// in which no token could be had, `last_error` the diagnosis.
pub const OAUTH2_HEALTH_KEY: &str = "<oauth2>";
/// The credential's expiry warning (30 days ahead), recorded at most once a day.
pub const OAUTH2_EXPIRY_KEY: &str = "<oauth2-expiry>";

/// Microsoft's public cloud.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Exchange Online's IMAP/SMTP resource, all permissions granted to the app.
pub const DEFAULT_SCOPE: &str = "https://outlook.office365.com/.default";

/// How the app proves who it is.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A client secret, read at each token request from this file or environment variable.
    Secret(SecretSource),
    /// A certificate registered on the app and its private key (PEM files).
    Certificate {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
}

/// Where a client secret is read from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// `[oauth2]`, resolved.
#[derive(Debug, Clone)]
pub struct OAuth2Settings {
    /// `https://host[:port][/path]`, no trailing slash.
    pub authority: String,
    pub tenant: String,
    pub client_id: String,
    pub credential: Credential,
    pub scope: String,
    /// The client secret's expiry date as the operator wrote it (Entra ID shows it).
    pub secret_expires: Option<NaiveDate>,
    /// An extra CA for the authority (tests, a proxy); Microsoft needs none.
    pub ca_file: Option<PathBuf>,
    /// The council's outbound web proxy (`[oauth2] proxy`, host and port): the token endpoint is
    /// reached through it by HTTP `CONNECT`, TLS end to end; `None`: directly.
    pub proxy: Option<(String, u16)>,
    pub timeout: Duration,
}

impl OAuth2Settings {
    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant)
    }
}

/// Why no token could be had. Every message says which part is wrong and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    #[error(
        "cannot reach the token endpoint {url}: {detail} (check the network, a proxy, and [oauth2] authority)"
    )]
    Unreachable { url: String, detail: String },
    #[error("the token endpoint refused caseclerk ({status} {error}{}): {}", code.map(|c| format!(", AADSTS{c}")).unwrap_or_default(), diagnosis.advice)]
    Refused {
        status: u16,
        error: String,
        code: Option<u64>,
        diagnosis: Diagnosis,
    },
    #[error(
        "the token endpoint {url} answered something that is not a token ({detail}): check [oauth2] authority"
    )]
    BadResponse { url: String, detail: String },
    #[error("[oauth2] credential: {0}")]
    Credential(String),
}

pub use crate::shell::secret::Secret;

/// An access token and when it stops being used.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret,
    pub expires: DateTime<Utc>,
    /// When it is renewed: also the latest moment an IMAP session opened with it is kept.
    pub renew_at: DateTime<Utc>,
}

/// What the token client last saw, for `check`, the digest and the health row.
#[derive(Debug, Clone, Default)]
pub struct TokenStatus {
    pub last_ok: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The token client: one per configuration, shared by IMAP and SMTP (an `Arc` in both settings).
pub struct TokenSource {
    pub settings: OAuth2Settings,
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    status: Mutex<TokenStatus>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    pub fn new(settings: OAuth2Settings) -> TokenSource {
        TokenSource {
            settings,
            cache: tokio::sync::Mutex::new(None),
            status: Mutex::new(TokenStatus::default()),
        }
    }

    /// A token valid now: the cached one until its renewal time, else a new one.
    pub async fn token(&self) -> Result<AccessToken, OAuthError> {
        let mut cache = self.cache.lock().await;
        let now = SystemClock.now();
        if let Some(t) = cache.as_ref().filter(|t| now < t.renew_at) {
            return Ok(t.clone());
        }
        match self.request(now).await {
            Ok(t) => {
                tracing::info!(expires = %t.expires, renew_at = %t.renew_at, "access token obtained");
                *self.status.lock().expect("not poisoned") = TokenStatus {
                    last_ok: Some(now),
                    expires: Some(t.expires),
                    last_error: None,
                };
                *cache = Some(t.clone());
                Ok(t)
            }
            Err(e) => {
                tracing::error!(error = %e, "no access token");
                self.status.lock().expect("not poisoned").last_error = Some(e.to_string());
                // A still-valid older token keeps working while the renewal is retried, a
                // minute later (not at every connection).
                match cache.as_mut().filter(|t| now < t.expires) {
                    Some(t) => {
                        t.renew_at = crate::core::oauth::retry_renewal_at(now, t.expires);
                        Ok(t.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }

    /// A server refused `token`: forget it (if it is still the cached one), so the next login
    /// asks for a new one.
    pub async fn refused(&self, token: &AccessToken) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.token == token.token) {
            *cache = None;
        }
    }

    /// Forget the cached token whatever it is (a server said it expired).
    pub async fn forget(&self) {
        *self.cache.lock().await = None;
    }

    /// What the client last saw.
    pub fn status(&self) -> TokenStatus {
        self.status.lock().expect("not poisoned").clone()
    }

    async fn request(&self, now: DateTime<Utc>) -> Result<AccessToken, OAuthError> {
        let s = &self.settings;
        let url = s.token_url();
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", s.client_id.clone()),
            ("scope", s.scope.clone()),
        ];
        match &s.credential {
            Credential::Secret(src) => {
                form.push(("client_secret", read_secret(src)?.expose().to_string()))
            }
            Credential::Certificate {
                cert_file,
                key_file,
            } => {
                let assertion = client_assertion(cert_file, key_file, &s.client_id, &url, now)?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, reply) = tokio::time::timeout(s.timeout, post(s, &url, &body))
            .await
            .map_err(|_| OAuthError::Unreachable {
                url: url.clone(),
                detail: format!("no answer within {} s", s.timeout.as_secs()),
            })??;
        read_token_reply(&url, status, &reply, now)
    }
}

/// The secret as it is now in its file or variable.
fn read_secret(src: &SecretSource) -> Result<Secret, OAuthError> {
    let v = match src {
        SecretSource::File(p) => std::fs::read_to_string(p).map_err(|e| {
            OAuthError::Credential(format!(
                "client_secret_file {}: cannot read it: {e}",
                p.display()
            ))
        })?,
        SecretSource::Env(var) => std::env::var(var)
            .map_err(|_| OAuthError::Credential(format!("client_secret_env: {var} is not set")))?,
    };
    let v = v.trim_end_matches(['\n', '\r']).to_string();
    if v.is_empty() {
        return Err(OAuthError::Credential("the client secret is empty".into()));
    }
    Ok(Secret::new(v))
}

/// A token endpoint's answer → a token, or the refusal explained.
fn read_token_reply(
    url: &str,
    status: u16,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<AccessToken, OAuthError> {
    let bad = |detail: String| OAuthError::BadResponse {
        url: url.to_string(),
        detail,
    };
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        // An HTML error page from Microsoft's front end or a proxy while the service is busy or
        // down: the service's fault, tried again — not a wrong authority.
        Err(_) if status == 429 || (500..=599).contains(&status) => {
            return Err(OAuthError::Refused {
                status,
                diagnosis: diagnose(status, "", None),
                error: String::new(),
                code: None,
            });
        }
        Err(_) => return Err(bad(format!("HTTP {status}, not JSON"))),
    };
    if status != 200 {
        let error = json["error"].as_str().unwrap_or("").to_string();
        let code = json["error_codes"].get(0).and_then(|c| c.as_u64());
        return Err(OAuthError::Refused {
            status,
            diagnosis: diagnose(status, &error, code),
            error,
            code,
        });
    }
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty() && !t.contains(['\r', '\n']))
        .ok_or_else(|| bad("no access_token".into()))?;
    // v2.0 sends a number; v1 and some proxies a string.
    let lifetime = json["expires_in"]
        .as_i64()
        .or_else(|| json["expires_in"].as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| bad("no expires_in".into()))?;
    Ok(AccessToken {
        token: Secret::new(token),
        expires: now + chrono::Duration::seconds(lifetime),
        renew_at: renew_at(now, lifetime),
    })
}

fn form_encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `https://host[:port][/path]` → (host, port, path prefix).
pub fn split_https(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, 443),
    };
    (!host.is_empty()).then(|| (host.to_string(), port, path.to_string()))
}

/// `http://host:port` (a trailing `/` allowed) → the proxy's host and port; `None` for anything
/// else: another scheme, a path, no port, or credentials (`user:pass@`), which caseclerk does not
/// send.
pub fn split_proxy(url: &str) -> Option<(String, u16)> {
    let rest = url.trim().strip_prefix("http://")?;
    let hostport = rest.strip_suffix('/').unwrap_or(rest);
    if hostport.is_empty() || hostport.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = hostport.rsplit_once(':')?;
    // An IPv6 address only in brackets (`[fd00::5]:3128`): bare, its last group reads as a port.
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']').filter(|h| h.contains(':'))?,
        None if host.contains([':', '[', ']']) => return None,
        None => host,
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// A connection to `host:port`: direct, or a tunnel through the proxy (HTTP `CONNECT`, which
/// must answer 2xx; what it answered otherwise is the error).
async fn reach(
    proxy: Option<&(String, u16)>,
    host: &str,
    port: u16,
) -> Result<tokio::net::TcpStream, String> {
    let Some((phost, pport)) = proxy else {
        return crate::shell::dial::dial(host, port)
            .await
            .map_err(|e| e.to_string());
    };
    let mut tcp = crate::shell::dial::dial(phost, *pport)
        .await
        .map_err(|e| format!("the proxy {phost}:{pport}: {e}"))?;
    let target = match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    };
    tcp.write_all(
        format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: caseclerk\r\n\r\n")
            .as_bytes(),
    )
    .await
    .map_err(|e| format!("the proxy {phost}:{pport}: {e}"))?;
    // The proxy's answer, a byte at a time up to its blank line: what follows is the tunnel.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 16 * 1024 {
            return Err(format!(
                "the proxy {phost}:{pport} sent an answer too long to read"
            ));
        }
        let mut byte = [0u8; 1];
        match tcp.read(&mut byte).await {
            Ok(0) => {
                return Err(format!(
                    "the proxy {phost}:{pport} closed the connection when asked for {target}"
                ));
            }
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("the proxy {phost}:{pport}: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or_default().trim();
    let status: Option<u16> = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    match status {
        Some(200..=299) => Ok(tcp),
        Some(407) => Err(format!(
            "the proxy {phost}:{pport} wants a login (\"{status_line}\"): caseclerk sends none; ask \
             for its host to be let through to {host} without one"
        )),
        _ => Err(format!(
            "the proxy {phost}:{pport} refused to connect to {target} (\"{status_line}\")"
        )),
    }
}

/// POST a form over HTTPS; the status and body.
async fn post(s: &OAuth2Settings, url: &str, body: &str) -> Result<(u16, Vec<u8>), OAuthError> {
    let unreachable = |detail: String| OAuthError::Unreachable {
        url: url.to_string(),
        detail,
    };
    let (host, port, path) =
        split_https(url).ok_or_else(|| unreachable("not an https:// address".into()))?;
    let config = crate::shell::tls::client_config(s.ca_file.as_deref())
        .map_err(|e| unreachable(e.to_string()))?;
    let tcp = reach(s.proxy.as_ref(), &host, port)
        .await
        .map_err(unreachable)?;
    let name = ServerName::try_from(host.clone()).map_err(|e| unreachable(e.to_string()))?;
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| unreachable(format!("TLS: {e}")))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Accept: application/json\r\nUser-Agent: caseclerk\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let mut reply = Vec::new();
    // Read to the end (Connection: close); a server that closes without close_notify still
    // delivered what it sent.
    if let Err(e) = (&mut tls).take(1 << 20).read_to_end(&mut reply).await
        && reply.is_empty()
    {
        return Err(unreachable(e.to_string()));
    }
    parse_http_reply(&reply).ok_or_else(|| OAuthError::BadResponse {
        url: url.to_string(),
        detail: "not an HTTP reply".into(),
    })
}

/// An HTTP/1.1 reply's status and body (Content-Length, chunked, or to the end).
pub fn parse_http_reply(reply: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&reply[..end]).ok()?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = &reply[end + 4..];
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Some((status, out));
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    }
    let body = match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => body.get(..n)?,
        None => body,
    };
    Some((status, body.to_vec()))
}

/// The signed RS256 client assertion Microsoft accepts in place of a secret.
fn client_assertion(
    cert_file: &Path,
    key_file: &Path,
    client_id: &str,
    token_url: &str,
    now: DateTime<Utc>,
) -> Result<String, OAuthError> {
    let fail = |what: String| OAuthError::Credential(what);
    let cert = CertificateDer::from_pem_file(cert_file)
        .map_err(|e| fail(format!("certificate_file {}: {e}", cert_file.display())))?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| fail(format!("private_key_file {}: {e}", key_file.display())))?;
    let pair = match &key {
        PrivateKeyDer::Pkcs8(k) => ring::rsa::KeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => ring::rsa::KeyPair::from_der(k.secret_pkcs1_der()),
        _ => {
            return Err(fail(format!(
                "private_key_file {}: not an RSA key (Microsoft needs RSA)",
                key_file.display()
            )));
        }
    }
    .map_err(|e| fail(format!("private_key_file {}: {e}", key_file.display())))?;
    let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.as_ref());
    let header =
        serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": B64URL.encode(thumbprint)});
    let mut jti = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti)
        .map_err(|_| fail("no random source".into()))?;
    let t = now.timestamp();
    let claims = serde_json::json!({
        "aud": token_url, "iss": client_id, "sub": client_id, "jti": hex::encode(jti),
        "nbf": t, "iat": t, "exp": t + 600,
    });
    let signing_input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let mut sig = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut sig,
    )
    .map_err(|_| fail("signing the client assertion failed".into()))?;
    Ok(format!("{signing_input}.{}", B64URL.encode(sig)))
}

/// Record the token client's state where a read-only health check sees it: `<oauth2>` (the
/// last token request's outcome) and, once a day while it applies, `<oauth2-expiry>` (the
/// secret's `secret_expires` or the certificate's notAfter within 30 days; logged too).
pub async fn record_health(
    source: &TokenSource,
    store: &crate::shell::store::Store,
    now: DateTime<Utc>,
) -> Result<(), crate::shell::store::StoreError> {
    let status = source.status();
    match (&status.last_error, status.last_ok) {
        (Some(e), _) => {
            store
                .record_mailbox_error(OAUTH2_HEALTH_KEY, e, now)
                .await?
        }
        (None, Some(_)) => store.record_mailbox_ok(OAUTH2_HEALTH_KEY, now).await?,
        (None, None) => {}
    }
    let today = crate::core::calendar::london_date(now);
    let warning = match &source.settings.credential {
        Credential::Secret(_) => source
            .settings
            .secret_expires
            .and_then(|d| crate::core::oauth::expiry_warning("client secret", d, today)),
        Credential::Certificate { cert_file, .. } => certificate_not_after(cert_file)
            .and_then(|d| crate::core::oauth::expiry_warning("certificate", d, today)),
    };
    match warning {
        Some(w) => {
            let last = store.mailbox_state(OAUTH2_EXPIRY_KEY).await?;
            let warned_today = last
                .and_then(|s| s.last_error_at)
                .is_some_and(|at| crate::core::calendar::london_date(at) == today);
            if !warned_today {
                tracing::warn!(warning = %w, "[oauth2] credential expiry");
                store
                    .record_mailbox_error(OAUTH2_EXPIRY_KEY, &w, now)
                    .await?;
            }
        }
        None => store.record_mailbox_ok(OAUTH2_EXPIRY_KEY, now).await?,
    }
    Ok(())
}

/// The `notAfter` date of the first certificate in a PEM file, for the expiry warning.
pub fn certificate_not_after(cert_file: &Path) -> Option<NaiveDate> {
    let cert = CertificateDer::from_pem_file(cert_file).ok()?;
    not_after(cert.as_ref())
}

/// One DER element: (tag, content, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        let bytes = rest.get(..n)?;
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            &rest[n..],
        )
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// Certificate → tbsCertificate → validity → notAfter (UTCTime or GeneralizedTime).
fn not_after(cert: &[u8]) -> Option<NaiveDate> {
    let (_, cert, _) = der(cert)?;
    let (_, mut tbs, _) = der(cert)?;
    if tbs.first() == Some(&0xa0) {
        tbs = der(tbs)?.2; // version
    }
    let rest = der(tbs)?.2; // serial
    let rest = der(rest)?.2; // signature algorithm
    let rest = der(rest)?.2; // issuer
    let (_, validity, _) = der(rest)?;
    let (_, after) = der(validity).and_then(|(_, _, r)| der(r).map(|(t, c, _)| (t, c)))?;
    let text = std::str::from_utf8(after).ok()?;
    let full = match text.len() {
        13 => {
            let yy: i32 = text[..2].parse().ok()?;
            format!("{}{}", if yy >= 50 { 19 } else { 20 }, &text[..6])
        }
        _ => text.get(..8)?.to_string(),
    };
    NaiveDate::parse_from_str(&full, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reply_gives_a_token_renewed_after_three_quarters_of_its_life() {
        let now = DateTime::UNIX_EPOCH;
        let body = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ.x.y"}"#;
        let t = read_token_reply("u", 200, body, now).unwrap();
        assert_eq!(t.token.expose(), "eyJ.x.y");
        assert_eq!(t.expires, now + chrono::Duration::seconds(3599));
        assert!(t.renew_at < t.expires);
    }

    #[test]
    fn a_microsoft_error_body_is_explained_by_its_code() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        let e = read_token_reply("u", 401, body, DateTime::UNIX_EPOCH).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("AADSTS7000215"), "{text}");
        assert!(text.contains("client secret is wrong"), "{text}");
    }

    #[test]
    fn a_busy_service_s_html_error_page_is_the_service_s_fault_and_tried_again() {
        let body = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
        let e = read_token_reply("u", 502, body, DateTime::UNIX_EPOCH).unwrap_err();
        assert!(
            matches!(&e, OAuthError::Refused { diagnosis, .. } if diagnosis.retry),
            "{e}"
        );
        assert!(e.to_string().contains("busy or unavailable"), "{e}");
        // A 200 that is no JSON is still a wrong endpoint.
        let e = read_token_reply("u", 200, body, DateTime::UNIX_EPOCH).unwrap_err();
        assert!(e.to_string().contains("[oauth2] authority"), "{e}");
    }

    #[test]
    fn chunked_and_sized_http_replies_are_read() {
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra";
        assert_eq!(parse_http_reply(sized), Some((200, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(
            parse_http_reply(chunked),
            Some((400, b"{\"a\":1}".to_vec()))
        );
    }

    #[test]
    fn a_proxy_is_an_http_host_and_port_and_nothing_else() {
        let p = |h: &str, n| Some((h.to_string(), n));
        assert_eq!(
            split_proxy("http://proxy.council.local:3128"),
            p("proxy.council.local", 3128)
        );
        assert_eq!(split_proxy(" http://10.0.0.5:8080/ "), p("10.0.0.5", 8080));
        assert_eq!(split_proxy("http://[fd00::5]:3128"), p("fd00::5", 3128));
        for wrong in [
            "https://proxy:3128",
            "proxy:3128",
            "http://proxy",
            "http://proxy:0",
            "http://user:pass@proxy:3128",
            "http://proxy:3128/path",
            "http://:3128",
            "http://fd00::5",
            "http://fd00::5:3128",
            "http://[proxy]:3128",
        ] {
            assert_eq!(split_proxy(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn an_authority_is_split_into_host_port_and_path() {
        assert_eq!(
            split_https("https://login.microsoftonline.com/t/oauth2/v2.0/token"),
            Some((
                "login.microsoftonline.com".into(),
                443,
                "/t/oauth2/v2.0/token".into()
            ))
        );
        assert_eq!(
            split_https("https://127.0.0.1:8443"),
            Some(("127.0.0.1".into(), 8443, "".into()))
        );
        assert_eq!(split_https("http://x"), None);
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b/+=~"), "a%20b%2F%2B%3D~");
    }
}
