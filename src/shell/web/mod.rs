//! The business unit's web workspace: `caseclerk serve`, and the daemon when `[web]` is set.
//!
//! Owns the HTTP side: listening (plain HTTP on loopback, else HTTPS with the configured
//! certificate), signing in and out, the session cookie (Secure, HttpOnly, SameSite=Strict), the
//! CSRF token every form carries, the security headers of every answer, and the routes. Pages are
//! in [`pages`] (server-rendered HTML, no JavaScript), actions in [`actions`] (each one an
//! operator command of [`crate::shell::operator`], the code the command line runs), accounts and
//! sessions in [`accounts`], the optional second factor in [`second_factor`] (its page in
//! `signin`), sign-in through a trusted reverse proxy in [`proxy`].
//!
//! Must not: put personal data in a URL (case references, message and letter ids only) or in the
//! log (account ids only); decide anything about a case (that is the core, through the operator
//! commands); serve anything to a request without a live session but the sign-in page and the
//! style sheet.

pub mod accounts;
mod actions;
pub mod command;
pub mod memo;
mod pages;
pub mod proxy;
pub mod second_factor;
mod signin;
mod tls;

use crate::core::access::Role;
use crate::shell::clock::SharedClock;
use crate::shell::config::{Config, WebSettings};
use crate::shell::store::Store;
use accounts::Session;
use axum::Router;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};
use std::net::SocketAddr;
use std::sync::Arc;

/// The session cookie's name. Every cookie's name starts `__Host-`: a browser takes it only from
/// this host over HTTPS, with `Path=/` and no `Domain` (as [`set_cookie`] writes it), so a page on
/// a sibling subdomain of the council's domain cannot plant one (sign a person in as another
/// account, or out). Renamed in session 26: a session from before it signs in again.
pub const SESSION_COOKIE: &str = "__Host-caseclerk_session";
/// The sign-in form's own token cookie (the form carries the same value back).
const SIGNIN_COOKIE: &str = "__Host-caseclerk_signin";

/// Why the workspace could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "cannot listen on {addr}: {source} (is another caseclerk serving there? change [web] listen)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("[web] certificate: {0}")]
    Certificate(String),
    #[error("the web workspace stopped: {0}")]
    Serve(std::io::Error),
}

/// What every request reads: the configuration, the store, the clock and whether it is HTTPS.
pub struct App {
    pub cfg: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    /// Served over TLS by caseclerk itself (then HSTS is sent).
    pub https: bool,
    /// What the list pages read, kept between requests ([`memo`]).
    pub pages: memo::PageMemo,
}

type Shared = State<Arc<App>>;

/// The address a request came from (recorded with each sign-in), over HTTP or HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub std::net::IpAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Remote
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Remote {
        Remote(s.remote_addr().ip())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tls::TlsListener>>
    for Remote
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tls::TlsListener>) -> Remote {
        Remote(s.remote_addr().ip())
    }
}

/// The routes of the workspace.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/cases") }))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-in/code", post(signin::sign_in_code))
        .route("/sign-out", post(sign_out))
        .route("/static/style.css", get(style))
        .route("/cases", get(pages::cases))
        .route("/cases/search", post(pages::search_cases))
        .route("/cases/{reference}", get(pages::case))
        .route("/cases/{reference}/letters/{letter}", get(pages::letter))
        .route("/cases/{reference}/agencies", post(actions::add_agency))
        .route("/cases/{reference}/reschedule", post(actions::reschedule))
        .route("/cases/{reference}/status", post(actions::set_status))
        .route(
            "/cases/{reference}/particulars",
            post(actions::check_particulars),
        )
        .route("/cases/{reference}/decide", post(actions::decide))
        .route(
            "/cases/{reference}/cancel-meeting",
            post(actions::cancel_meeting),
        )
        .route(
            "/cases/{reference}/agencies/remove",
            post(actions::remove_agency),
        )
        .route("/cases/{reference}/hold", post(actions::hold))
        .route(
            "/cases/{reference}/returns/withdraw",
            post(actions::withdraw_return),
        )
        .route("/cases/{reference}/reviewer", post(actions::set_reviewer))
        .route(
            "/cases/{reference}/publication",
            post(actions::plan_publication),
        )
        .route("/triage/{message}/open", post(actions::open_referral))
        .route("/triage", get(pages::triage))
        .route("/triage/{message}/attach", post(actions::attach))
        .route(
            "/triage/{message}/not-case-business",
            post(actions::not_case_business),
        )
        .route(
            "/triage/{message}/attachments/{index}",
            get(pages::triage_attachment),
        )
        .route(
            "/cases/{reference}/messages/{message}/attachments/{index}",
            get(pages::case_attachment),
        )
        .route("/held", get(pages::held))
        .route("/held/confirm", post(actions::confirm))
        .route("/held/dismiss", post(actions::dismiss_held))
        .route("/undelivered", get(pages::undelivered))
        .route("/undelivered/resend", post(actions::resend))
        .route("/coming", get(pages::coming))
        .route("/tracker", get(pages::tracker))
        .route("/tracker.csv", get(pages::tracker_file))
        .route("/tracker.xlsx", get(pages::tracker_file))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            proxy::middleware,
        ))
        .layer(axum::middleware::map_response_with_state(
            app.clone(),
            security_headers,
        ))
        .with_state(app)
}

/// Listen where `[web]` says (HTTPS when it names a certificate), serve until `shutdown`.
pub async fn serve(
    settings: &WebSettings,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: settings.listen,
            source,
        })?;
    serve_on(listener, settings.tls.as_ref(), app, shutdown).await
}

/// Serve on a listener already bound (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    tls: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    mut app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WebError> {
    let addr = listener.local_addr().map_err(WebError::Serve)?;
    app.https = tls.is_some();
    let app = Arc::new(app);
    // The list pages' summaries read once now, not on the first person's request.
    let warm = app.clone();
    tokio::spawn(async move {
        let now = warm.clock.now();
        if let Err(e) = warm.pages.at(&warm.cfg, &warm.store, now).await {
            tracing::warn!(error = %crate::core::views::scrub(&e.to_string()), "reading the cases for the workspace's lists failed; the first list page tries again");
        }
    });
    let routes = router(app).into_make_service_with_connect_info::<Remote>();
    tracing::info!(
        port = addr.port(),
        https = tls.is_some(),
        "web workspace listening"
    );
    match tls {
        None => axum::serve(listener, routes)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(WebError::Serve),
        Some((cert, key)) => {
            let listener = tls::TlsListener::new(listener, tls::server_config(cert, key)?);
            axum::serve(listener, routes)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(WebError::Serve)
        }
    }
}

async fn security_headers(State(app): Shared, mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // Children's data: no copy in a shared computer's cache or a proxy's.
    set(h, header::CACHE_CONTROL, "no-store");
    if app.https {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
    r
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("style.css"),
    )
        .into_response()
}

/// A cookie's value from the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A cookie only this site's own pages send back, never readable by script.
fn set_cookie(name: &str, value: &str, max_age: Option<i64>) -> String {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}")
}

/// The person a request comes from, or the way to the sign-in page.
pub(crate) async fn signed_in(app: &App, headers: &HeaderMap) -> Result<Session, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(Redirect::to("/sign-in").into_response());
    };
    match accounts::session(&app.store, token, app.clock.now()).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Redirect::to("/sign-in?ended=1").into_response()),
        Err(e) => Err(failure(&e)),
    }
}

/// A person allowed to change cases, whose form carries their session's token.
pub(crate) async fn may_act(
    app: &App,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Session, Response> {
    let s = signed_in(app, headers).await?;
    if !accounts::same(csrf, &s.csrf) {
        tracing::warn!(
            user = s.user_id,
            "web form refused: its CSRF token does not match"
        );
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "This form is out of date or did not come from this workspace. Go back, reload the page and try again.",
        ));
    }
    if !s.role.may_act() {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "Your account is read-only: it can see every case but change none. Ask the business manager for a business-unit account.",
        ));
    }
    Ok(s)
}

/// An error page for a failure of caseclerk itself (no detail to the browser; the log has it).
fn failure(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %crate::core::views::scrub(&e.to_string()), "web request failed");
    refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong reading the database. Try again; if it goes on, tell whoever runs caseclerk (the log says what).",
    )
}

/// A page saying why something was refused.
fn refusal(status: StatusCode, why: &str) -> Response {
    (
        status,
        page(
            "Not done",
            None,
            html! {
                h1 { "Not done" }
                p.refusal role="alert" { (why) }
                p { a href="/cases" { "Back to the cases" } }
            },
        ),
    )
        .into_response()
}

/// The page frame: landmarks, a skip link, the navigation and who is signed in.
pub(crate) fn page(title: &str, who: Option<&Session>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — caseclerk" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                a.skip href="#main" { "Skip to the main content" }
                header {
                    p.brand { "caseclerk" }
                    @if let Some(s) = who {
                        nav aria-label="Main" {
                            ul {
                                li { a href="/cases" { "Cases" } }
                                li { a href="/triage" { "Triage" } }
                                li { a href="/held" { "Held replies" } }
                                li { a href="/undelivered" { "Undelivered letters" } }
                                li { a href="/coming" { "Next 15 working days" } }
                                li { a href="/tracker" { "Tracker" } }
                            }
                        }
                        form.signout method="post" action="/sign-out" {
                            span { "Signed in as " (s.display_name) " (" (s.role.words()) ")" }
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (main) }
            }
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct Ended {
    #[serde(default)]
    ended: Option<String>,
}

async fn sign_in_page(
    State(app): Shared,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    axum::extract::Query(q): axum::extract::Query<Ended>,
) -> Response {
    if passwords_refused(&app, remote) {
        return through_the_proxy();
    }
    sign_in_form(
        q.ended
            .is_some()
            .then_some("Your session ended. Sign in again."),
    )
}

/// With a trusted proxy configured, people sign in through the council's identity provider: a
/// password is taken only from the proxy's own addresses (a request that came through it, after
/// the provider's sign-in and its second factor). One made straight to the workspace — from
/// anywhere else on the network — would pass by the provider's conditional access and MFA.
fn passwords_refused(app: &App, remote: std::net::IpAddr) -> bool {
    app.cfg
        .web
        .as_ref()
        .and_then(|w| w.proxy.as_ref())
        .is_some_and(|p| !p.from.contains(&remote.to_canonical()))
}

fn through_the_proxy() -> Response {
    refusal(
        StatusCode::FORBIDDEN,
        "This workspace signs people in through the council's sign-in: open it at the address \
         your IT team gave you. A password is not taken here directly.",
    )
}

fn sign_in_form(message: Option<&str>) -> Response {
    let token = accounts::random_token();
    let body = page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message { p.refusal role="alert" { (m) } }
            form method="post" action="/sign-in" {
                input type="hidden" name="csrf" value=(token);
                p {
                    label for="username" { "User name" }
                    input #username type="text" name="username" autocomplete="username" required autofocus;
                }
                p {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                }
                button type="submit" { "Sign in" }
            }
        },
    );
    (
        [(
            header::SET_COOKIE,
            set_cookie(SIGNIN_COOKIE, &token, Some(3600)),
        )],
        body,
    )
        .into_response()
}

#[derive(serde::Deserialize)]
struct SignIn {
    csrf: String,
    username: String,
    password: String,
}

/// The refusal of a sign-in form (password or code) whose token is not the one its cookie holds.
fn stale_sign_in_form(headers: &HeaderMap, csrf: &str) -> Option<Response> {
    let fresh = cookie(headers, SIGNIN_COOKIE).is_some_and(|c| accounts::same(c, csrf));
    (!fresh).then(|| {
        refusal(
            StatusCode::FORBIDDEN,
            "This sign-in form is out of date or did not come from this workspace. Reload the sign-in page and try again.",
        )
    })
}

async fn sign_in(
    State(app): Shared,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    if let Some(stale) = stale_sign_in_form(&headers, &f.csrf) {
        return stale;
    }
    let now = app.clock.now();
    if passwords_refused(&app, remote) {
        let why = "password refused: not through the trusted proxy";
        if let Err(e) =
            accounts::record_signin(&app.store, None, why, &remote.to_string(), now).await
        {
            return failure(&e);
        }
        return through_the_proxy();
    }
    // Past `passwords_refused`, a configured proxy means the request came through it. A request
    // from a loopback address came through a reverse proxy on this machine (plain HTTP is only
    // served on loopback, for one): everybody shares that address too.
    let through_proxy = app.cfg.web.as_ref().is_some_and(|w| w.proxy.is_some())
        || remote.to_canonical().is_loopback();
    let (name, address) = (&f.username, remote.to_string());
    let checked = if through_proxy {
        accounts::sign_in_through_proxy(&app.store, name, &f.password, &address, now).await
    } else {
        accounts::sign_in(&app.store, name, &f.password, &address, now).await
    };
    match checked {
        Ok(accounts::SignIn::Session(new)) => signin::signed_in_now(&new),
        Ok(accounts::SignIn::CodeAsked(step)) => signin::code_form(&f.csrf, Some(&step), None),
        Ok(accounts::SignIn::Refused) => {
            let mut r = sign_in_form(Some(
                "The user name or password is wrong, or the account is locked (after 5 failed sign-ins, for 15 minutes) or disabled.",
            ));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(accounts::AccountError::Busy) => {
            tracing::warn!("a sign-in refused: too many at once");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins are being checked at this moment. Wait a minute and sign in again.",
            )
        }
        Err(accounts::AccountError::BusyFromAddress) => {
            tracing::warn!("a sign-in refused: too many at once from one address");
            refusal(
                StatusCode::TOO_MANY_REQUESTS,
                "Sign-ins from this computer are already being checked. Wait a moment and sign in again.",
            )
        }
        Err(e) => failure(&e),
    }
}

#[derive(serde::Deserialize)]
struct CsrfOnly {
    csrf: String,
}

async fn sign_out(
    State(app): Shared,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !accounts::same(&f.csrf, &s.csrf) {
        return refusal(
            StatusCode::FORBIDDEN,
            "This form is out of date. Reload the page and try again.",
        );
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) =
            accounts::sign_out(&app.store, token, &remote.to_string(), app.clock.now()).await
    {
        return failure(&e);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/sign-in".to_string()),
            (header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0))),
        ],
    )
        .into_response()
}

/// Who an operator command run from the workspace is recorded as.
pub(crate) fn actor(s: &Session) -> String {
    format!("web:{}", s.username)
}

/// Used by the pages to show only the actions a role may take.
pub(crate) fn acts(s: &Session) -> bool {
    s.role == Role::BusinessUnit
}
