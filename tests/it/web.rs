//! The web workspace without a browser: plain HTTP requests against the running server, in this
//! process, on a case prepared by the server-free review harness (no mail server).
//!
//! Sign-in and its cookie, CSRF on every form, session expiry, lockout after failed sign-ins and
//! its record, the read-only role refused, a command's own refusal shown, and no address in any
//! link. The same workspace is driven in a real browser in [`browser`].

mod browser;
mod signin;
mod trace;

use crate::review::{Review, london};
use caseclerk::core::access::Role;
use caseclerk::shell::clock::ManualClock;
use caseclerk::shell::web::{self, App, accounts};
use chrono::Duration;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const LA: &str = "la.rep@bury.test";
pub const POLICE: &str = "police.rep@police.test";
pub const ICB: &str = "icb.rep@icb.test";
pub const CLERK: &str = "clerk";
pub const VIEWER: &str = "viewer";
pub const PASSWORD: &str = "correct horse battery";

/// A case waiting on the business unit, served: screening has two votes counted and one reply
/// held (unclear), police is on the case, and a stray return from an unknown address is in triage.
pub struct Workspace {
    pub review: Review,
    pub clock: Arc<ManualClock>,
    pub addr: SocketAddr,
    pub case: String,
    pub triaged: i64,
    pub held: i64,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Workspace {
    pub async fn start() -> Workspace {
        Workspace::start_with(|_| {}).await
    }

    /// As [`Workspace::start`], with the configuration changed first (e.g. a `[web]` section).
    pub async fn start_with(edit: impl Fn(&mut toml::Table)) -> Workspace {
        let mut r = Review::with("bury", edit).await;
        let case = r.referral_at("2026-08-20 10:00").await;
        r.vote_all(
            "screening-request",
            &[POLICE, ICB],
            "MEETS",
            "2026-08-20 11:00",
        )
        .await;
        let ask = r.last_about(&case, LA, "screening-request");
        r.reply(&ask, LA, "MEETS or NFA - not sure", "2026-08-20 11:30")
            .await;
        r.add_agencies(&case, &["police"], "2026-08-20 11:40").await;
        let stray = b"From: Someone Unknown <someone@elsewhere.test>\r\nTo: bsp@bury.test\r\nSubject: Information for the review\r\nMessage-ID: <stray-1@elsewhere.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nOur summary of involvement.\r\n--b1\r\nContent-Type: text/plain; name=\"chronology.txt\"\r\nContent-Disposition: attachment; filename=\"chronology.txt\"\r\n\r\nChronology of police involvement.\r\n--b1--\r\n";
        r.receive(stray, "2026-08-20 12:00").await;
        let triaged = r.engine.store.triage().await.unwrap()[0].id;
        let held = r.state(&case).await.held[0].message;
        let clock = Arc::new(ManualClock::new(london("2026-08-20 12:05")));
        for (name, display, role) in [
            (CLERK, "Casey Clerk", Role::BusinessUnit),
            (VIEWER, "Vic Viewer", Role::ReadOnly),
        ] {
            accounts::add_user(
                &r.engine.store,
                name,
                display,
                role,
                PASSWORD,
                clock.now_utc(),
            )
            .await
            .unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = App {
            cfg: r.engine.cfg.clone(),
            store: r.engine.store.clone(),
            clock: clock.clone(),
            https: false,
            pages: Default::default(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(web::serve_on(listener, None, app, async {
            let _ = stopped.await;
        }));
        Workspace {
            review: r,
            clock,
            addr,
            case,
            triaged,
            held,
            _stop: stop,
        }
    }

    pub fn client(&self) -> Client {
        Client {
            addr: self.addr,
            cookies: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    /// A client signed in as `who`.
    pub async fn signed_in(&self, who: &str) -> Client {
        let mut c = self.client();
        let a = c.sign_in(who, PASSWORD).await;
        assert_eq!(a.status, 303, "{who} signs in: {}", a.body);
        c
    }

    /// A second case, opened by a referral whose form gives the child's particulars.
    pub async fn referral_with_form(&mut self, from: &str) -> String {
        let form = crate::particulars::referral_with_form(from);
        self.review.receive(&form, "2026-08-20 12:02").await;
        let opened = self.review.last.opened.first().cloned();
        opened.expect("a case opened")
    }

    /// The events recorded on the case, as `caseclerk case` lists them.
    pub async fn history(&self) -> String {
        self.review.report(&self.case).await
    }
}

/// `ManualClock::now` without importing the trait everywhere.
trait Now {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc>;
}

impl Now for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        caseclerk::shell::clock::Clock::now(self)
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("a form with a token in:\n{}", self.body))
            + "name=\"csrf\" value=\"".len();
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A plain HTTP/1.1 client with a cookie jar: one connection per request.
pub struct Client {
    addr: SocketAddr,
    pub cookies: BTreeMap<String, String>,
    /// Headers sent with every request (as a reverse proxy adds them).
    pub headers: Vec<(String, String)>,
}

impl Client {
    pub async fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        self.send("POST", path, Some(form_encode(fields))).await
    }

    /// The sign-in page, then the form with its token.
    pub async fn sign_in(&mut self, user: &str, password: &str) -> Answer {
        let form = self.get("/sign-in").await;
        let csrf = form.csrf();
        self.post(
            "/sign-in",
            &[("csrf", &csrf), ("username", user), ("password", password)],
        )
        .await
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<String>) -> Answer {
        let mut s = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let cookies = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if !cookies.is_empty() {
            req.push_str(&format!("Cookie: {cookies}\r\n"));
        }
        for (k, v) in &self.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or_default();
        if method == "POST" {
            req.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, rest) = text.split_once("\r\n\r\n").expect("a complete answer");
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
        let body = if chunked {
            unchunk(rest)
        } else {
            rest.to_string()
        };
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                if v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
        Answer {
            status,
            headers,
            body,
        }
    }
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
}

#[tokio::test]
async fn signing_in_sets_a_secure_http_only_strict_host_only_cookie_and_opens_the_cases() {
    let w = Workspace::start().await;
    let mut c = w.client();
    let first = c.get("/cases").await;
    assert_eq!(first.status, 303, "no session: to the sign-in page");
    assert_eq!(first.header("location"), Some("/sign-in"));
    let form = c.get("/sign-in").await;
    let signed = c.sign_in(CLERK, PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    // `__Host-`: a browser takes such a cookie only from this host itself, over HTTPS, for every
    // path and without a `Domain`, so a page on a sibling subdomain cannot plant one.
    for (cookie, name) in [
        (
            signed.header("set-cookie").unwrap(),
            "__Host-caseclerk_session=",
        ),
        (
            form.header("set-cookie").unwrap(),
            "__Host-caseclerk_signin=",
        ),
    ] {
        assert!(cookie.starts_with(name), "{name} in {cookie}");
        for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(part), "{part} in {cookie}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    let cases = c.get("/cases").await;
    assert_eq!(cases.status, 200);
    assert!(cases.body.contains(&w.case), "{}", cases.body);
    assert!(cases.body.contains("Signed in as Casey Clerk"));
    for (h, v) in [
        ("content-security-policy", "default-src 'none'"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert!(
            cases.header(h).is_some_and(|x| x.contains(v)),
            "{h}: {:?}",
            cases.header(h)
        );
    }
}

#[tokio::test]
async fn a_form_without_its_session_token_is_refused_and_changes_nothing() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let before = w.history().await;
    let held = w.held.to_string();
    for token in ["", "0000", &"a".repeat(64)] {
        let a = c
            .post(
                "/held/confirm",
                &[
                    ("csrf", token),
                    ("case", &w.case),
                    ("message", &held),
                    ("outcome", "meets"),
                    ("reason", "phoned"),
                ],
            )
            .await;
        assert_eq!(a.status, 403, "token `{token}`: {}", a.body);
        assert!(a.body.contains("did not come from this workspace"));
    }
    assert_eq!(w.history().await, before, "nothing was recorded");
    // The sign-in form has its own token: one posted from elsewhere is refused.
    let mut other = w.client();
    let a = other
        .post(
            "/sign-in",
            &[
                ("csrf", "forged"),
                ("username", CLERK),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(!other.cookies.contains_key(web::SESSION_COOKIE));
}

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes_and_at_sign_out() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    w.clock.set(w.clock.now_utc() + Duration::minutes(29));
    assert_eq!(
        c.get("/cases").await.status,
        200,
        "still in use at 29 minutes"
    );
    w.clock.set(w.clock.now_utc() + Duration::minutes(30));
    let ended = c.get("/cases").await;
    assert_eq!(ended.status, 303);
    assert_eq!(ended.header("location"), Some("/sign-in?ended=1"));

    let mut d = w.signed_in(CLERK).await;
    let page = d.get("/cases").await;
    let token = d.cookies[web::SESSION_COOKIE].clone();
    assert_eq!(
        d.post("/sign-out", &[("csrf", &page.csrf())]).await.status,
        303
    );
    // The old cookie, replayed, opens nothing.
    d.cookies.insert(web::SESSION_COOKIE.into(), token);
    assert_eq!(d.get("/cases").await.status, 303);
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_for_fifteen_minutes_and_every_attempt_is_recorded() {
    let w = Workspace::start().await;
    let mut c = w.client();
    for _ in 0..5 {
        let a = c.sign_in(CLERK, "not the password").await;
        assert_eq!(a.status, 401);
        assert!(a.body.contains("The user name or password is wrong"));
    }
    let locked = c.sign_in(CLERK, PASSWORD).await;
    assert_eq!(
        locked.status, 401,
        "the right password is refused while locked"
    );
    w.clock.set(w.clock.now_utc() + Duration::minutes(15));
    assert_eq!(
        c.sign_in(CLERK, PASSWORD).await.status,
        303,
        "open again after 15 minutes"
    );
    let record: Vec<String> = accounts::signins(&w.review.engine.store, CLERK)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, what, from)| format!("{what} from {from}"))
        .collect();
    assert_eq!(
        record,
        [
            "signed in from 127.0.0.1",
            "refused: locked from 127.0.0.1",
            "wrong password: locked from 127.0.0.1",
            "wrong password from 127.0.0.1",
            "wrong password from 127.0.0.1",
            "wrong password from 127.0.0.1",
            "wrong password from 127.0.0.1",
        ]
    );
}

#[tokio::test]
async fn a_read_only_account_sees_every_page_without_actions_and_its_posts_are_refused() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(VIEWER).await;
    for page in [
        "/cases",
        &format!("/cases/{}", w.case),
        "/triage",
        "/held",
        "/undelivered",
    ] {
        let a = c.get(page).await;
        assert_eq!(a.status, 200, "{page}");
        assert!(
            !a.body.contains("name=\"reason\""),
            "{page} offers no action to a read-only account"
        );
    }
    let csrf = c.get("/held").await.csrf();
    let before = w.history().await;
    let a = c
        .post(
            "/held/confirm",
            &[
                ("csrf", &csrf),
                ("case", &w.case),
                ("message", &w.held.to_string()),
                ("outcome", "meets"),
                ("reason", "phoned"),
            ],
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("Your account is read-only"), "{}", a.body);
    assert_eq!(w.history().await, before);
}

#[tokio::test]
async fn an_action_is_the_operator_command_recorded_as_the_person_or_refused_in_its_own_words() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let csrf = c.get("/triage").await.csrf();
    let path = format!("/triage/{}/attach", w.triaged);
    let refused = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("case", "RR-2099-9999"),
                ("as", "reply"),
                ("agency", ""),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("there is no case RR-2099-9999"),
        "{}",
        refused.body
    );
    let no_reason = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("case", &w.case),
                ("as", "return"),
                ("agency", "police"),
                ("reason", " "),
            ],
        )
        .await;
    assert!(
        no_reason.body.contains("give a reason"),
        "{}",
        no_reason.body
    );
    let done = c
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("case", &w.case),
                ("as", "return"),
                ("agency", "police"),
                ("reason", "phoned to confirm"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("/cases/{}", w.case).as_str())
    );
    let history = w.history().await;
    assert!(
        history.contains("web:clerk"),
        "recorded as the signed-in person:\n{history}"
    );
    let page = c.get(&format!("/cases/{}", w.case)).await;
    assert!(page.body.contains("clerk (web workspace)"), "{}", page.body);
    assert!(page.body.contains("returned"), "the return shows at once");
    // And it can be taken out of the collation pack again (another child's, say).
    let withdraw = format!("/cases/{}/returns/withdraw", w.case);
    assert!(page.body.contains(&withdraw), "{}", page.body);
    let csrf = page.csrf();
    let why = "another child's summary";
    let form = |m: &'static str| [("csrf", csrf.as_str()), ("message", m), ("reason", why)];
    let not_a_return = c.post(&withdraw, &form("999999")).await;
    assert_eq!(not_a_return.status, 422);
    assert!(
        not_a_return.body.contains("is not a return"),
        "{}",
        not_a_return.body
    );
    let m = w.triaged.to_string();
    let fields = [
        ("csrf", csrf.as_str()),
        ("message", m.as_str()),
        ("reason", why),
    ];
    let done = c.post(&withdraw, &fields).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let history = w.history().await;
    assert!(
        history.contains("taken out of the pack (another child's summary)"),
        "{history}"
    );
}

#[tokio::test]
async fn a_held_reply_counted_from_the_workspace_is_the_members_vote() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let csrf = c.get("/held").await.csrf();
    let held = w.held.to_string();
    let form = [
        ("csrf", csrf.as_str()),
        ("case", &w.case),
        ("message", &held),
        ("outcome", "meets"),
        ("reason", "confirmed by phone"),
    ];
    let done = c.post("/held/confirm", &form).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let page = c.get(&format!("/cases/{}", w.case)).await.body;
    assert!(page.contains("Local Authority representative"), "{page}");
    let again = c.post("/held/confirm", &form).await;
    assert_eq!(again.status, 422);
    assert!(
        again.body.contains("was already confirmed"),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn a_held_reply_dismissed_from_the_workspace_leaves_the_held_page() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let page = c.get("/held").await;
    assert!(
        page.body.contains("action=\"/held/dismiss\""),
        "{}",
        page.body
    );
    let held = w.held.to_string();
    let csrf = page.csrf();
    let form = [
        ("csrf", csrf.as_str()),
        ("case", &w.case),
        ("message", &held),
        ("reason", "an out-of-office, no vote"),
    ];
    let done = c.post("/held/dismiss", &form).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let page = c.get("/held").await.body;
    assert!(page.contains("No reply is held."), "{page}");
    assert!(
        w.history().await.contains("an out-of-office, no vote"),
        "the reason is in the history"
    );
    let again = c.post("/held/dismiss", &form).await;
    assert_eq!(again.status, 422);
    assert!(again.body.contains("was dismissed"), "{}", again.body);
}

#[tokio::test]
async fn the_tracker_is_a_table_and_downloads_as_csv_and_xlsx_for_a_signed_in_person_only() {
    let w = Workspace::start().await;
    let mut stranger = w.client();
    assert_eq!(
        stranger.get("/tracker.csv").await.status,
        303,
        "no session, no tracker"
    );
    let mut c = w.signed_in(VIEWER).await;
    let page = c.get("/tracker").await;
    assert!(
        page.body.contains("<th scope=\"col\">Reference</th>"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&w.case));
    let csv = c.get("/tracker.csv").await;
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"tracker.csv\"")
    );
    assert!(
        csv.body
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with(&w.case)),
        "{}",
        csv.body
    );
    let xlsx = c.get("/tracker.xlsx").await;
    assert_eq!(xlsx.status, 200);
    assert!(
        xlsx.header("content-type")
            .is_some_and(|t| t.contains("spreadsheetml"))
    );
}

#[tokio::test]
async fn the_business_unit_adds_an_agency_moves_a_date_and_closes_a_case_from_its_page() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let page = format!("/cases/{}", w.case);
    let csrf = c.get(&page).await.csrf();
    let post = async |c: &mut Client, what: &str, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        c.post(&format!("{page}/{what}"), &all).await
    };
    let added = post(
        &mut c,
        "agencies",
        &[("agency", "gp"), ("reason", "named at the meeting")],
    )
    .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let again = post(&mut c, "agencies", &[("agency", "gp"), ("reason", "twice")]).await;
    assert!(
        again.body.contains("agency gp is already on case"),
        "{}",
        again.body
    );
    let moved = post(
        &mut c,
        "reschedule",
        &[
            ("what", "decision:screening"),
            ("date", "2026-08-25"),
            ("time", "17:00"),
            ("reason", "chair away"),
        ],
    )
    .await;
    assert_eq!(moved.status, 303, "{}", moved.body);
    let past = post(
        &mut c,
        "reschedule",
        &[
            ("what", "decision:screening"),
            ("date", "2026-08-19"),
            ("time", "17:00"),
            ("reason", "x"),
        ],
    )
    .await;
    assert!(past.body.contains("is in the past"), "{}", past.body);
    let closed = post(
        &mut c,
        "status",
        &[("to", "close"), ("reason", "referred in error")],
    )
    .await;
    assert_eq!(closed.status, 303, "{}", closed.body);
    let shown = c.get(&page).await.body;
    assert!(
        shown.contains("Reopen the case") && !shown.contains("Add the agency"),
        "{shown}"
    );
    let history = w.history().await;
    for done in ["gp", "Tue 25 Aug 2026 17:00", "closed"] {
        assert!(history.contains(done), "{done} in:\n{history}");
    }
    assert_eq!(history.matches("web:clerk").count(), 3, "{history}");
}

#[tokio::test]
async fn triage_shows_twenty_five_messages_a_page_oldest_first() {
    let mut w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let one = c.get("/triage").await;
    assert!(
        one.body.contains("1 waiting for a person, oldest first."),
        "{}",
        one.body
    );
    assert!(!one.body.contains("Page 1 of"), "{}", one.body);
    for i in 0..30 {
        let raw = format!(
            "From: Sender {i} <sender{i}@elsewhere.test>\r\nTo: bsp@bury.test\r\n\
             Subject: Information {i}\r\nMessage-ID: <more-{i}@elsewhere.test>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nOur summary {i}.\r\n"
        );
        let at = format!("2026-08-20 12:{:02}", 1 + i);
        w.review.receive(raw.as_bytes(), &at).await;
    }
    let waiting = w.review.engine.store.triage().await.unwrap();
    assert_eq!(waiting.len(), 31, "the stray and thirty more");
    let first = c.get("/triage").await;
    assert_eq!(first.body.matches("<article").count(), 25, "{}", first.body);
    assert!(
        first
            .body
            .contains("31 messages are waiting for a person, oldest first; these are 1 to 25.")
    );
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    assert!(
        first.body.contains("href=\"/triage?page=2\""),
        "{}",
        first.body
    );
    // The oldest, the stray from 12:00, opens the first page; the 25th is "Information 23".
    let stray = format!("Message {}:", w.triaged);
    assert!(first.body.contains(&stray), "{}", first.body);
    assert!(first.body.contains(": Information 23<"), "{}", first.body);
    assert!(!first.body.contains(": Information 24<"), "{}", first.body);
    let second = c.get("/triage?page=2").await;
    assert_eq!(
        second.body.matches("<article").count(),
        6,
        "{}",
        second.body
    );
    assert!(second.body.contains(": Information 24<"), "{}", second.body);
    assert!(second.body.contains(": Information 29<"), "{}", second.body);
    assert!(!second.body.contains(&stray), "{}", second.body);
    // A page past the end shows the last one.
    let past = c.get("/triage?page=9").await;
    assert!(past.body.contains("Page 2 of 2"), "{}", past.body);
    // Taken off the list from page 2, the clerk is back on page 2.
    let last = waiting.last().unwrap().id;
    let csrf = second.csrf();
    let path = format!("/triage/{last}/not-case-business");
    let page = [
        ("csrf", csrf.as_str()),
        ("reason", "a newsletter"),
        ("page", "2"),
    ];
    let done = c.post(&path, &page).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/triage?page=2"));
}

/// `raw` received at 12:03 and listed for a person (a stranger's message): its id.
async fn listed_for_a_person(w: &mut Workspace, raw: &str) -> i64 {
    w.review.receive(raw.as_bytes(), "2026-08-20 12:03").await;
    w.review
        .engine
        .store
        .triage()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .find(|id| *id != w.triaged)
        .expect("listed for a person")
}

#[tokio::test]
async fn a_program_is_never_handed_out_and_no_file_name_hides_what_it_is() {
    let mut w = Workspace::start().await;
    // A right-to-left override makes "…\u{202E}fdp.exe" read as "…exe.pdf"; a web page; and a
    // document whose name is not ASCII.
    let raw = "From: Someone Else <other@elsewhere.test>\r\nTo: bsp@bury.test\r\nSubject: Some documents\r\nMessage-ID: <stray-2@elsewhere.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nSome papers for you.\r\n--b2\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''Summary%20form%E2%80%AEfdp.exe\r\n\r\nMZ\r\n--b2\r\nContent-Type: text/html; name=\"notes.html\"\r\nContent-Disposition: attachment; filename=\"notes.html\"\r\n\r\n<script>alert(1)</script>\r\n--b2\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename*=UTF-8''Caf%C3%A9%20notes.txt\r\n\r\nNotes.\r\n--b2--\r\n";
    let m = listed_for_a_person(&mut w, raw).await;
    let mut c = w.signed_in(CLERK).await;
    let triage = c.get("/triage").await.body;
    assert!(!triage.contains('\u{202E}'), "{triage}");
    assert!(triage.contains("Summary form_fdp.exe"), "{triage}");
    for i in [0, 1] {
        let link = format!("/triage/{m}/attachments/{i}");
        assert!(!triage.contains(&link), "{link} offered: {triage}");
        let refused = c.get(&link).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(
            refused.body.contains("does not hand out"),
            "{}",
            refused.body
        );
    }
    let file = c.get(&format!("/triage/{m}/attachments/2")).await;
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename=\"Caf__notes.txt\"; filename*=UTF-8''Caf%C3%A9%20notes.txt")
    );
}

/// Message `m` attached from the triage page to `case` as the police's return.
async fn attach_as_the_police_return(c: &mut Client, case: &str, m: i64, csrf: &str) {
    let fields = [
        ("csrf", csrf),
        ("case", case),
        ("as", "return"),
        ("agency", "police"),
        ("reason", "police return"),
    ];
    assert_eq!(
        c.post(&format!("/triage/{m}/attach"), &fields).await.status,
        303
    );
}

#[tokio::test]
async fn a_returns_attachment_downloads_from_triage_and_then_from_its_case_and_nowhere_else() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let m = w.triaged;
    let triage = c.get("/triage").await;
    let link = format!("/triage/{m}/attachments/0");
    assert!(triage.body.contains(&link), "{}", triage.body);
    let file = c.get(&link).await;
    assert_eq!(
        file.header("content-disposition"),
        Some("attachment; filename=\"chronology.txt\"; filename*=UTF-8''chronology.txt")
    );
    assert_eq!(
        file.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        file.body.contains("Chronology of police involvement."),
        "{}",
        file.body
    );
    let on_case = format!("/cases/{}/messages/{m}/attachments/0", w.case);
    assert_eq!(
        c.get(&on_case).await.status,
        404,
        "not the case's until it is attached"
    );
    attach_as_the_police_return(&mut c, &w.case, m, &triage.csrf()).await;
    let page = c.get(&format!("/cases/{}", w.case)).await.body;
    assert!(
        page.contains(&on_case),
        "the return's file is on the case page: {page}"
    );
    assert!(
        c.get(&on_case)
            .await
            .body
            .contains("Chronology of police involvement.")
    );
    assert_eq!(c.get(&link).await.status, 404, "no longer in triage");
    assert_eq!(
        w.client().get(&on_case).await.status,
        303,
        "a stranger gets the sign-in page"
    );
}

#[tokio::test]
async fn a_message_that_is_not_case_business_leaves_the_triage_list_with_who_and_why() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let m = w.triaged;
    let csrf = c.get("/triage").await.csrf();
    let path = format!("/triage/{m}/not-case-business");
    let no_reason = c.post(&path, &[("csrf", &csrf), ("reason", "")]).await;
    assert!(
        no_reason.body.contains("give a reason"),
        "{}",
        no_reason.body
    );
    let done = c
        .post(&path, &[("csrf", &csrf), ("reason", "a newsletter")])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        c.get("/triage")
            .await
            .body
            .contains("Nothing is waiting for a person.")
    );
    assert!(w.review.engine.store.triage().await.unwrap().is_empty());
    let again = c.post(&path, &[("csrf", &csrf), ("reason", "again")]).await;
    assert!(
        again
            .body
            .contains("is not waiting for a person (it is ignored)"),
        "{}",
        again.body
    );
}

/// The case page says what the referral's form gives of the child, where each was read, and
/// that a person has still to check it; a referral without a form says nothing was read.
#[tokio::test]
async fn the_case_page_shows_the_childs_particulars_from_the_form_and_that_they_are_unchecked() {
    let mut w = Workspace::start().await;
    let reference = w.referral_with_form("form.web@hospital.test").await;
    let mut c = w.signed_in(CLERK).await;
    let page = c.get(&format!("/cases/{reference}")).await.body;
    for shown in [
        "<td>date of birth</td><td>2019-05-17</td>",
        "attachment 1 (bury-referral-form.docx)",
        "<strong>not yet checked</strong>",
    ] {
        assert!(page.contains(shown), "`{shown}` in:\n{page}");
    }
    let without = c.get(&format!("/cases/{}", w.case)).await.body;
    assert!(
        without.contains("Nothing was read from the referral"),
        "{without}"
    );
}

/// The digest asks the business unit every day to check the child's particulars: the case page
/// confirms what is right and corrects what is wrong, through `caseclerk particulars`, with the
/// person and the reason in the history and no value there or in the answer's address.
#[tokio::test]
async fn the_business_unit_confirms_and_corrects_the_childs_particulars_from_the_case_page() {
    let mut w = Workspace::start().await;
    let reference = w.referral_with_form("check.web@hospital.test").await;
    let mut c = w.signed_in(CLERK).await;
    let page = format!("/cases/{reference}");
    let csrf = c.get(&page).await.csrf();
    let check = async |c: &mut Client, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str()), ("reason", "read against the form")];
        all.extend_from_slice(fields);
        c.post(&format!("{page}/particulars"), &all).await
    };
    let bad = check(&mut c, &[("set_incident_date", "last Tuesday")]).await;
    assert!(
        bad.body.contains("is not a date like 2019-03-12"),
        "{}",
        bad.body
    );
    let nothing = check(&mut c, &[("set_initials", "  ")]).await;
    assert!(
        nothing.body.contains("say which particulars"),
        "{}",
        nothing.body
    );
    let done = check(
        &mut c,
        &[
            ("confirm_date_of_birth", "yes"),
            ("set_incident_date", "2026-08-01"),
        ],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some(page.as_str()));
    let shown = c.get(&page).await.body;
    for seen in [
        "<td>date of birth</td><td>2019-05-17</td>",
        "<td>incident date</td><td>2026-08-01</td>",
        "<td>confirmed</td>",
        "<td>corrected</td>",
    ] {
        assert!(shown.contains(seen), "`{seen}` in:\n{shown}");
    }
    let history = w.review.report(&reference).await;
    assert_eq!(history.matches("web:clerk").count(), 2, "{history}");
    assert!(
        !history.contains("2026-08-01") && !history.contains("2019-05-17"),
        "{history}"
    );
}

/// A decision taken in a meeting, cancelling the meeting, removing an agency and legal hold are
/// each the operator command, done once and refused the second time in the command's words.
#[tokio::test]
async fn the_business_unit_decides_cancels_the_meeting_removes_an_agency_and_holds_a_case() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let page = format!("/cases/{}", w.case);
    let csrf = c.get(&page).await.csrf();
    let twice = [
        (
            "decide",
            ("choice", "screening/meets"),
            "was already taken (meets)",
        ),
        ("cancel-meeting", ("x", ""), "is already cancelled"),
        (
            "agencies/remove",
            ("agency", "police"),
            "agency police is not on case",
        ),
        ("hold", ("to", "place"), "is already under legal hold"),
    ];
    for (what, field, refused) in twice {
        let fields = [
            ("csrf", csrf.as_str()),
            ("reason", "agreed at the meeting"),
            field,
        ];
        let first = c.post(&format!("{page}/{what}"), &fields).await;
        assert_eq!(first.status, 303, "{what}: {}", first.body);
        let again = c.post(&format!("{page}/{what}"), &fields).await;
        assert!(again.body.contains(refused), "{what}: {}", again.body);
    }
    let shown = c.get(&page).await.body;
    assert!(shown.contains("Release the legal hold"), "{shown}");
    let history = w.history().await;
    for done in [
        "meets",
        "meeting cancelled",
        "agency police removed",
        "LEGAL HOLD placed",
    ] {
        assert!(history.contains(done), "{done} in:\n{history}");
    }
    assert_eq!(history.matches("web:clerk").count(), 5, "{history}");
}

/// Every letter that will go, by day, over the coming 15 working days: the steps a decision
/// opens appear on their days; a closed case's go from the page.
#[tokio::test]
async fn the_next_fifteen_working_days_list_every_letter_by_day_for_a_read_only_account_too() {
    let w = Workspace::start().await;
    let (mut clerk, mut viewer) = (w.signed_in(CLERK).await, w.signed_in(VIEWER).await);
    let page = format!("/cases/{}", w.case);
    let csrf = clerk.get(&page).await.csrf();
    let decide = [
        ("csrf", csrf.as_str()),
        ("choice", "screening/meets"),
        ("reason", "met by phone"),
    ];
    assert_eq!(
        clerk.post(&format!("{page}/decide"), &decide).await.status,
        303
    );
    let coming = viewer.get("/coming").await.body;
    for shown in [
        "<h2 id=\"day-2026-08-24\">Mon 24 Aug 2026</h2>",
        "<td>Mon 24 Aug 2026 10:00</td><td>Agency summary and chronology template to each agency</td>",
        "<td>Wed 9 Sep 2026 09:00</td><td>Ask the three statutory partners",
    ] {
        assert!(coming.contains(shown), "`{shown}` in:\n{coming}");
    }
    assert!(!coming.contains("class=\"action\""), "{coming}");
    let close = [
        ("csrf", csrf.as_str()),
        ("to", "close"),
        ("reason", "in error"),
    ];
    assert_eq!(
        clerk.post(&format!("{page}/status"), &close).await.status,
        303
    );
    let after = viewer.get("/coming").await.body;
    assert!(after.contains("No letter will go in that time."), "{after}");
}

#[tokio::test]
async fn no_link_or_form_carries_an_address() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let case = c.get(&format!("/cases/{}", w.case)).await.body;
    let letter = case
        .split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .find(|h| h.contains("/letters/"))
        .expect("a letter link");
    for page in [
        "/cases",
        &format!("/cases/{}", w.case),
        &letter,
        "/triage",
        "/held",
        "/undelivered",
    ] {
        let body = c.get(page).await.body;
        for attr in ["href=\"", "action=\""] {
            for target in body
                .split(attr)
                .skip(1)
                .map(|s| s.split('"').next().unwrap())
            {
                assert!(
                    (target.starts_with('/') || target.starts_with('#'))
                        && !target.contains('@')
                        && !target.contains(' '),
                    "{page}: {attr}{target}"
                );
            }
        }
    }
}

#[tokio::test]
async fn plain_http_is_allowed_on_loopback_only() {
    let dir = std::env::temp_dir().join(format!("caseclerk-web-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = crate::support::config_for("bury", &dir);
    let mut web = toml::Table::new();
    web.insert("listen".into(), "0.0.0.0:8443".into());
    cfg.insert("web".into(), web.into());
    let path = dir.join("caseclerk.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let e = caseclerk::shell::config::load(&path, caseclerk::shell::config::Needs::NoSecrets)
        .expect_err("a public address without a certificate");
    assert!(
        e.to_string()
            .contains("plain HTTP is allowed on loopback only"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn with_a_certificate_the_workspace_speaks_only_https_and_asks_browsers_to_keep_to_it() {
    let w = Workspace::start().await;
    let dir = std::env::temp_dir().join(format!("caseclerk-web-tls-{}", std::process::id()));
    let (ca, cert, key) = caseclerk::dev::devstack::throwaway_certificates(&dir)
        .await
        .expect("openssl makes a certificate (run scripts/install-mailstack.sh)");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = App {
        cfg: w.review.engine.cfg.clone(),
        store: w.review.engine.store.clone(),
        clock: w.clock.clone(),
        https: false,
        pages: Default::default(),
    };
    let tls = (cert, key);
    tokio::spawn(
        async move { web::serve_on(listener, Some(&tls), app, std::future::pending()).await },
    );

    let config = caseclerk::shell::tls::client_config(Some(&ca)).unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = connector.connect(name, tcp).await.expect("a TLS handshake");
    s.write_all(b"GET /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        text.contains("strict-transport-security: max-age=31536000"),
        "{text}"
    );

    // Plain HTTP to the same port gets no page.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("Sign in"),
        "no page over plain HTTP"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_daemon_serves_the_workspace_when_web_is_configured_to_an_account_made_on_the_command_line()
 {
    let port = free_port();
    let h = crate::support::Harness::start_with("bury", |cfg| {
        let mut web = toml::Table::new();
        web.insert("listen".into(), format!("127.0.0.1:{port}").into());
        cfg.insert("web".into(), web.into());
    })
    .await;
    let made = h.ok(&[
        "user",
        "add",
        "casey",
        "--name",
        "Casey Clerk",
        "--role",
        "business-unit",
    ]);
    let password = made
        .split("password (shown once; give it to Casey Clerk in person): ")
        .nth(1)
        .expect("the made password is printed")
        .trim()
        .to_string();
    let mut daemon = h.daemon();
    daemon
        .wait_log(&["web workspace listening", &format!("port={port}")], 1)
        .await;
    let mut c = Client {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        cookies: BTreeMap::new(),
        headers: Vec::new(),
    };
    assert_eq!(c.sign_in("casey", &password).await.status, 303);
    assert_eq!(c.get("/cases").await.status, 200);
    let listed = h.ok(&["user", "list"]);
    assert!(
        listed.contains("casey") && listed.contains("business-unit") && listed.contains("active"),
        "{listed}"
    );
    assert!(h.ok(&["user", "signins", "casey"]).contains("signed in"));
    h.ok(&["user", "disable", "casey"]);
    assert_eq!(
        c.get("/cases").await.status,
        303,
        "a disabled account's session ends at once"
    );
    let log = daemon.stop().await;
    assert!(
        !log.contains("casey") && !log.contains(&password),
        "no user name or password in the log:\n{log}"
    );
}

/// A loopback port nobody listens on now.
/// A free loopback port for a daemon to listen on, taken from below the kernel's ephemeral range
/// (32768 and up on Linux): a port bound with `:0` by another test in the moment between this
/// check and the daemon's own bind would otherwise take it ("address already in use").
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let offset = (std::process::id() % 500) as u16 * 20;
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (offset + n) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[tokio::test]
async fn a_workspace_whose_key_cannot_be_read_is_raised_and_the_daemon_still_reads_mail() {
    // A certificate renewal left a key caseclerk cannot read: the screens are down, the
    // statutory letters must not be.
    let port = free_port();
    let h = crate::support::Harness::start_with("bury", |cfg| {
        let mut web = toml::Table::new();
        web.insert("listen".into(), format!("127.0.0.1:{port}").into());
        web.insert("certificate".into(), "web.pem".into());
        web.insert("key".into(), "web.key".into());
        cfg.insert("web".into(), web.into());
    })
    .await;
    for f in ["web.pem", "web.key"] {
        std::fs::write(h.config.parent().unwrap().join(f), "not PEM\n").unwrap();
    }
    let mut daemon = h.daemon();
    daemon.wait_log(&["web workspace is not running"], 1).await;
    daemon.wait_log(&["first pass done"], 1).await;
    h.deliver(
        crate::support::REFERRER,
        crate::support::SHARED,
        &crate::support::referral("webdown@hospital.test", "Referral for a rapid review"),
    )
    .await;
    daemon.wait_log(&["referral opened a case"], 1).await;
    let health = h.caseclerk(&["health"]);
    let said = String::from_utf8_lossy(&health.stdout);
    assert!(said.contains("[web_failing]"), "{said}");
    daemon.stop().await;
}

/// Triage's *open as a new referral*: `caseclerk open-referral` as the signed-in person, to the
/// new case's page; sent again (a second click, the back button) it opens nothing more.
#[tokio::test]
async fn a_message_in_triage_opens_a_new_case_once_recorded_as_the_person() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let m = w.triaged;
    let triage = c.get("/triage").await;
    let path = format!("/triage/{m}/open");
    assert!(
        triage.body.contains(&format!("action=\"{path}\"")),
        "{}",
        triage.body
    );
    let csrf = triage.csrf();
    let opened = c
        .post(
            &path,
            &[("csrf", &csrf), ("reason", "a referral from a new address")],
        )
        .await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let to = opened.header("location").unwrap_or_default().to_string();
    assert!(
        to.starts_with("/cases/RR-") && !to.ends_with(&w.case),
        "{to}"
    );
    let page = c.get(&to).await.body;
    for shown in [
        "clerk (web workspace)",
        "opened by hand from message",
        "a referral from a new address",
    ] {
        assert!(page.contains(shown), "`{shown}` in:\n{page}");
    }
    assert!(
        c.get("/triage")
            .await
            .body
            .contains("Nothing is waiting for a person.")
    );
    let again = c.post(&path, &[("csrf", &csrf), ("reason", "again")]).await;
    assert_eq!(again.status, 422);
    assert!(
        again.body.contains("is already on case RR-"),
        "{}",
        again.body
    );
    assert_eq!(w.review.engine.store.case_refs().await.unwrap().len(), 2);
}

/// The case page names the reviewer and, once an LCSPR is decided, plans the publication date:
/// each through its command, as the person, with the reason; refused for a read-only account.
#[tokio::test]
async fn the_case_page_names_the_reviewer_and_plans_the_publication_once_an_lcspr_is_decided() {
    let w = Workspace::start().await;
    let (mut clerk, mut viewer) = (w.signed_in(CLERK).await, w.signed_in(VIEWER).await);
    let page = format!("/cases/{}", w.case);
    let csrf = clerk.get(&page).await.csrf();
    let shown = clerk.get(&page).await.body;
    assert!(shown.contains("Name the reviewer") && !shown.contains("Plan the publication"));
    let name = [
        ("csrf", csrf.as_str()),
        ("reviewer", "Jo Bloggs"),
        ("reason", "appointed by the chair"),
    ];
    let viewer_csrf = viewer.get(&page).await.csrf();
    let refused = viewer
        .post(
            &format!("{page}/reviewer"),
            &[("csrf", &viewer_csrf), ("reviewer", "X"), ("reason", "x")],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        clerk.post(&format!("{page}/reviewer"), &name).await.status,
        303
    );
    assert!(
        clerk
            .get(&page)
            .await
            .body
            .contains("The reviewer now: Jo Bloggs.")
    );
    let too_early = [
        ("csrf", csrf.as_str()),
        ("date", "2026-09-01"),
        ("reason", "agreed"),
    ];
    let no_lcspr = clerk.post(&format!("{page}/publication"), &too_early).await;
    assert!(
        no_lcspr.body.contains("has no LCSPR decision"),
        "{}",
        no_lcspr.body
    );
    for choice in ["screening/meets", "sign_off/lcspr"] {
        let decide = [
            ("csrf", csrf.as_str()),
            ("choice", choice),
            ("reason", "met"),
        ];
        assert_eq!(
            clerk.post(&format!("{page}/decide"), &decide).await.status,
            303
        );
    }
    assert!(clerk.get(&page).await.body.contains("Plan the publication"));
    let soon = clerk.post(&format!("{page}/publication"), &too_early).await;
    assert!(
        soon.body.contains("leaves less than 7 working days"),
        "{}",
        soon.body
    );
    let planned = [
        ("csrf", csrf.as_str()),
        ("date", "2027-01-15"),
        ("reason", "agreed with the reviewer"),
    ];
    assert_eq!(
        clerk
            .post(&format!("{page}/publication"), &planned)
            .await
            .status,
        303
    );
    assert!(
        clerk
            .get(&page)
            .await
            .body
            .contains("Planned now for Fri 15 Jan 2027.")
    );
    let history = w.history().await;
    for done in [
        "reviewer",
        "Jo Bloggs",
        "publication planned for",
        "agreed with the reviewer",
    ] {
        assert!(history.contains(done), "{done} in:\n{history}");
    }
}

/// The list pages keep what they read between requests; a date passing with nothing recorded
/// (the screening decision's due time) still shows at once: the case turns overdue in the list
/// and under the overdue filter, and its working day moves on.
#[tokio::test]
async fn a_case_turns_overdue_in_the_list_when_its_decision_falls_due_with_nothing_recorded() {
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let list = c.get("/cases").await.body;
    assert!(
        list.contains("day 0 of 15") && !list.contains("Overdue: "),
        "{list}"
    );
    assert!(
        c.get("/cases?status=overdue")
            .await
            .body
            .contains("0 case(s).")
    );
    w.clock.set(london("2026-08-21 17:30"));
    let mut c = w.signed_in(CLERK).await;
    let list = c.get("/cases").await.body;
    for shown in ["day 1 of 15", "Overdue: </strong>Screening panel decision"] {
        assert!(list.contains(shown), "`{shown}` in:\n{list}");
    }
    let overdue = c.get("/cases?status=overdue").await.body;
    assert!(
        overdue.contains("1 case(s).") && overdue.contains(&w.case),
        "{overdue}"
    );
}

/// Fifty cases a page, newest first; the status filter and the reference search reach every
/// case, not only the page shown.
#[tokio::test]
async fn the_cases_list_and_the_tracker_go_fifty_a_page_and_the_search_finds_a_case_on_any_page() {
    let mut w = Workspace::start().await;
    for i in 0..50 {
        w.review
            .referral_from(
                &format!("gp{i}@surgery.test"),
                "Referral for a rapid review",
                "2026-08-20 12:01",
            )
            .await;
    }
    let mut c = w.signed_in(CLERK).await;
    let first = c.get("/cases").await.body;
    assert!(
        first.contains("51 case(s).") && first.contains("Page 1 of 2"),
        "{first}"
    );
    assert_eq!(first.matches("<th scope=\"row\">").count(), 50);
    assert!(
        !first.contains(&format!(">{}<", w.case)),
        "the oldest is on page 2"
    );
    let second = c.get("/cases?status=open&q=&page=2").await.body;
    assert!(
        second.contains(&format!(">{}<", w.case)) && second.contains("Previous page"),
        "{second}"
    );
    let found = c.get(&format!("/cases?q={}", w.case)).await.body;
    assert!(
        found.contains("1 case(s).") && found.contains(&format!(">{}<", w.case)),
        "{found}"
    );
    // The search goes in the request's body: a reference is shown at its own address, a name
    // typed by mistake reaches no address (history, a proxy's log) and is not searched.
    let to_ref = c
        .post("/cases/search", &[("status", "all"), ("q", &w.case)])
        .await;
    assert_eq!(to_ref.status, 303);
    assert_eq!(
        to_ref.header("location"),
        Some(format!("/cases?status=all&q={}", w.case).as_str())
    );
    let named = c
        .post("/cases/search", &[("status", "open"), ("q", "Jane Doe")])
        .await;
    assert_eq!(named.status, 303);
    assert_eq!(
        named.header("location"),
        Some("/cases?status=open&refused=1")
    );
    let refused = c.get("/cases?status=open&refused=1").await.body;
    assert!(
        refused.contains("Only case references are searched"),
        "{refused}"
    );
    let typed = c.get("/cases?q=Smith").await.body;
    assert!(
        !typed.contains("Smith") && typed.contains("Only case references are searched"),
        "{typed}"
    );
    let tracker = c.get("/tracker").await.body;
    assert!(
        tracker.contains("51 case(s), by reference.") && tracker.contains(&format!(">{}<", w.case))
    );
    assert_eq!(tracker.matches("<th scope=\"row\">").count(), 50);
    assert!(c.get("/tracker?page=2").await.body.contains("Page 2 of 2"));
}

#[tokio::test]
async fn no_box_a_person_types_a_case_detail_into_is_kept_in_the_browsers_form_history() {
    // A reason often names someone; the next person at a shared computer would be offered it.
    let w = Workspace::start().await;
    let mut c = w.signed_in(CLERK).await;
    let mut typed = 0;
    for path in [
        format!("/cases/{}", w.case),
        "/cases".into(),
        "/triage".into(),
        "/undelivered".into(),
        "/held".into(),
    ] {
        let page = c.get(&path).await;
        for input in page.body.split("<input").skip(1) {
            let tag = input.split('>').next().unwrap_or_default();
            if ["text", "email", "search"]
                .iter()
                .any(|t| tag.contains(&format!("type=\"{t}\"")))
            {
                typed += 1;
                assert!(
                    tag.contains("autocomplete=\"off\""),
                    "{path}: <input{tag}> keeps what is typed in the browser's form history"
                );
            }
        }
    }
    assert!(typed > 3, "the pages have boxes to type in: {typed}");
}

#[tokio::test]
async fn a_program_attached_to_a_return_is_named_on_the_case_page_as_not_offered_with_no_link() {
    let mut w = Workspace::start().await;
    let raw = "From: Someone Else <other@elsewhere.test>\r\nTo: bsp@bury.test\r\nSubject: Police return\r\nMessage-ID: <stray-3@elsewhere.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b3\"\r\n\r\n--b3\r\nContent-Type: text/plain\r\n\r\nOur return.\r\n--b3\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"return.exe\"\r\n\r\nMZ\r\n--b3\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"chronology.txt\"\r\n\r\nNotes.\r\n--b3--\r\n";
    let m = listed_for_a_person(&mut w, raw).await;
    let mut c = w.signed_in(CLERK).await;
    let csrf = c.get("/triage").await.csrf();
    attach_as_the_police_return(&mut c, &w.case, m, &csrf).await;
    let page = c.get(&format!("/cases/{}", w.case)).await.body;
    let base = format!("/cases/{}/messages/{m}/attachments", w.case);
    assert!(
        page.contains("return.exe (a program: not offered)"),
        "{page}"
    );
    assert!(
        !page.contains(&format!("{base}/0")),
        "no link to it: {page}"
    );
    assert!(
        page.contains(&format!("{base}/1")),
        "the chronology is offered"
    );
}
