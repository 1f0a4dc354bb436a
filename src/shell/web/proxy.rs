//! Sign-in delegated to the council's identity provider through a trusted reverse proxy (Entra
//! ID Application Proxy with header-based single sign-on, oauth2-proxy, …): the proxy signs the
//! person in and names them in a header (`[web] trusted_proxy_header`) on every request it
//! passes on.
//!
//! Owns believing that header, and only from the proxy: a request whose peer address is one of
//! `[web] trusted_proxies` and carries the header is signed in as the local account linked to
//! that name (`caseclerk user proxy <user> <name>`) — a session and its cookie as after a
//! password, so sessions, expiry and CSRF work the same, and the role is the local account's. The
//! header from any other peer is removed before any page sees it, and the attempt is recorded. A
//! name linked to no account, or to a disabled one, gets a page saying so. Every sign-in this way
//! is recorded in `web_signins`. The lockout after failed passwords does not apply (the identity
//! provider has its own); a disabled account is refused.
//!
//! Must not: believe the header from a peer not listed; log the name it carries (account ids
//! only); create an account (accounts are made on the command line, with their role).

use super::{App, Remote, SESSION_COOKIE, accounts, cookie, failure, refusal};
use crate::shell::store::Store;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::sync::Arc;

/// The name in the proxy's header, as stored: trimmed and lowercased (an email address or UPN).
pub fn normalise(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Link an account to the name the proxy gives its person (`None`: unlink).
pub async fn link(
    store: &Store,
    username: &str,
    name: Option<&str>,
) -> Result<(), accounts::AccountError> {
    let name = name.map(normalise).filter(|n| !n.is_empty());
    let r = sqlx::query("UPDATE web_users SET proxy_name = ? WHERE username = ?")
        .bind(&name)
        .bind(username)
        .execute(store.pool())
        .await;
    match r {
        Ok(done) if done.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(accounts::AccountError::NoUser(username.to_string())),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(
            accounts::AccountError::Exists(format!("linked to that proxy name ({username}'s)")),
        ),
        Err(e) => Err(e.into()),
    }
}

/// What the proxy's name leads to.
enum ByProxy {
    Session(accounts::NewSession),
    Unknown,
    Disabled,
}

/// Sign in the account linked to `name`, recorded.
async fn sign_in(
    store: &Store,
    name: &str,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<ByProxy, accounts::AccountError> {
    let row = sqlx::query("SELECT id, disabled_at FROM web_users WHERE proxy_name = ?")
        .bind(normalise(name))
        .fetch_optional(store.pool())
        .await?;
    let Some(row) = row else {
        accounts::record_signin(store, None, "proxy: no account for that name", remote, now)
            .await?;
        return Ok(ByProxy::Unknown);
    };
    let id: i64 = row.get(0);
    if row.get::<Option<String>, _>(1).is_some() {
        accounts::record_signin(store, Some(id), "proxy: refused: disabled", remote, now).await?;
        return Ok(ByProxy::Disabled);
    }
    let new = accounts::start_session(store, id, now).await?;
    accounts::record_signin(store, Some(id), "signed in by the proxy", remote, now).await?;
    Ok(ByProxy::Session(new))
}

/// The proxy name of the account a live session cookie belongs to (`Some(None)`: a session
/// of an account with no proxy name; `None`: no live session).
async fn session_name(
    app: &App,
    token: &str,
) -> Result<Option<Option<String>>, accounts::AccountError> {
    let Some(s) = accounts::session(&app.store, token, app.clock.now()).await? else {
        return Ok(None);
    };
    let name: Option<String> = sqlx::query_scalar("SELECT proxy_name FROM web_users WHERE id = ?")
        .bind(s.user_id)
        .fetch_one(app.store.pool())
        .await?;
    Ok(Some(name))
}

/// Before every route: believe the header from the listed proxies only, and sign its person in.
pub(super) async fn middleware(
    State(app): State<Arc<App>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(proxy) = app.cfg.web.as_ref().and_then(|w| w.proxy.clone()) else {
        return next.run(req).await;
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<Remote>>()
        // An IPv4 peer of a dual-stack listener shows as ::ffff:a.b.c.d: compared as a.b.c.d.
        .map(|ConnectInfo(Remote(ip))| ip.to_canonical());
    let named = req
        .headers()
        .get(proxy.header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(normalise)
        .filter(|n| !n.is_empty());
    let trusted = peer.is_some_and(|p| proxy.from.contains(&p));
    let remote = peer.map(|p| p.to_string()).unwrap_or_default();
    let Some(name) = named else {
        return next.run(req).await;
    };
    if !trusted {
        req.headers_mut().remove(proxy.header.as_str());
        if req.method() == Method::GET && req.uri().path() == "/sign-in" {
            let now = app.clock.now();
            let r = accounts::record_signin(
                &app.store,
                None,
                "proxy header from an address not trusted: ignored",
                &remote,
                now,
            )
            .await;
            if let Err(e) = r {
                return failure(&e);
            }
            tracing::warn!(
                "the sign-in proxy's header came from an address not in [web] trusted_proxies: ignored"
            );
        }
        return next.run(req).await;
    }
    let current = cookie(req.headers(), SESSION_COOKIE).map(str::to_string);
    let token = match signed_in_as(&app, current.as_deref(), &name, &remote).await {
        Ok(Proxied::Already) if req.uri().path() == "/sign-in" => {
            return Redirect::to("/cases").into_response();
        }
        Ok(Proxied::Already) => return next.run(req).await,
        Ok(Proxied::Refused(r)) => return r,
        Ok(Proxied::New(token)) => token,
        Err(e) => return failure(&e),
    };
    let set = super::set_cookie(SESSION_COOKIE, &token, None);
    if req.uri().path() == "/sign-in" {
        return super::signin::with_cookie(Redirect::to("/cases").into_response(), &set);
    }
    // The page asked for is served at once, as the new session's.
    let others: Vec<String> = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with(&format!("{SESSION_COOKIE}=")))
        .map(str::to_string)
        .chain([format!("{SESSION_COOKIE}={token}")])
        .collect();
    req.headers_mut().remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&others.join("; ")) {
        req.headers_mut().insert(header::COOKIE, v);
    }
    super::signin::with_cookie(next.run(req).await, &set)
}

/// What the proxy's header means for a request from a trusted proxy.
enum Proxied {
    /// The request's session is already this person's.
    Already,
    /// Signed in now: the new session's token.
    New(String),
    /// No account, or a disabled one: the page saying so.
    Refused(Response),
}

async fn signed_in_as(
    app: &App,
    current: Option<&str>,
    name: &str,
    remote: &str,
) -> Result<Proxied, accounts::AccountError> {
    let now = app.clock.now();
    if let Some(token) = current {
        match session_name(app, token).await? {
            Some(Some(n)) if n == name => return Ok(Proxied::Already),
            // Another person's session in this browser: it ends before this one begins.
            Some(_) => accounts::sign_out(&app.store, token, remote, now).await?,
            None => {}
        }
    }
    Ok(match sign_in(&app.store, name, remote, now).await? {
        ByProxy::Session(new) => Proxied::New(new.token),
        ByProxy::Unknown => Proxied::Refused(refusal(
            StatusCode::FORBIDDEN,
            &format!(
                "The council's sign-in says you are {name}, but no caseclerk account is linked \
                 to that name. Ask whoever runs caseclerk to link yours: caseclerk user proxy \
                 <your user name> {name}"
            ),
        )),
        ByProxy::Disabled => Proxied::Refused(refusal(
            StatusCode::FORBIDDEN,
            "Your caseclerk account is disabled. Ask the business manager if you need it again.",
        )),
    })
}
