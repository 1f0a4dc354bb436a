//! The web workspace in a real browser: Debian's headless Chromium driven over WebDriver
//! (`chromedriver`, spoken to as plain JSON over HTTP — no client crate), on a case prepared by
//! the server-free review harness.
//!
//! A business support officer signs in, finds the case by its reference, attaches a triaged
//! return to it, counts a held reply as the vote it meant, and sees the case move on once the
//! daemon's next pass has run. Chromium and chromedriver come from `scripts/install-mailstack.sh`;
//! when they are missing the test fails and says so (it never skips).

use super::{CLERK, PASSWORD, VIEWER, Workspace};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver and one headless Chromium session; both end when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium (the session), then chromedriver (our own child, by its handle).
        let _ = std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(call(
                    self.addr,
                    "DELETE",
                    &format!("/session/{}", self.session),
                    None,
                ))
            })
            .join()
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One WebDriver command; its `value`. chromedriver keeps connections open whatever the request
/// says, so the answer is read to its Content-Length; a command that takes over a minute fails.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    tokio::time::timeout(Duration::from_secs(60), exchange(addr, method, path, body))
        .await
        .map_err(|_| format!("{method} {path}: no answer in 60 s"))?
}

async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let (head_end, length) = loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed before the answer".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("no Content-Length in {head}"))?;
            break (i + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the connection closed in the middle of the answer".into());
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let rest = String::from_utf8_lossy(&raw[head_end..head_end + length]).to_string();
    let v: Value = serde_json::from_str(&rest).map_err(|e| format!("{e}: {rest}"))?;
    if let Some(err) = v["value"]["error"].as_str() {
        return Err(format!("{err}: {}", v["value"]["message"]));
    }
    Ok(v["value"].clone())
}

impl Browser {
    pub async fn start() -> Browser {
        for f in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(f).is_file(),
                "{f} is missing: run scripts/install-mailstack.sh (it installs chromium and chromium-driver)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(v) = call(addr, "GET", "/status", None).await
                && v["ready"] == json!(true)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile =
            std::env::temp_dir().join(format!("caseclerk-chromium-{}-{port}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = call(addr, "POST", "/session", Some(caps))
            .await
            .expect("a Chromium session");
        let session = v["sessionId"].as_str().expect("a session id").to_string();
        // Finding an element waits up to 10 s for it (a page still loading on a busy machine).
        call(
            addr,
            "POST",
            &format!("/session/{session}/timeouts"),
            Some(json!({"implicit": 10000})),
        )
        .await
        .expect("the implicit wait is set");
        Browser {
            driver,
            addr,
            session,
            profile,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        call(self.addr, method, &full, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub async fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Wait (at most 20 s) until the page shown is one whose address ends with `suffix`: a form's
    /// submission may still be loading when the click returns.
    pub async fn wait_for_page(&self, suffix: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.url().await;
            if url.ends_with(suffix) {
                return;
            }
            assert!(Instant::now() < deadline, "still at {url}, not …{suffix}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait (at most 20 s) until the page shows an element `css` selects.
    pub async fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let query = json!({"using": "css selector", "value": css});
        while self.cmd("POST", "/element", Some(query.clone())).await[ELEMENT].is_null() {
            assert!(
                Instant::now() < deadline,
                "no {css} at {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn find(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    pub async fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd("GET", &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page printed as the browser prints it (A4 portrait, the page's print styles): a PDF.
    pub async fn print(&self) -> Vec<u8> {
        use base64::Engine;
        let page = json!({"page": {"width": 21.0, "height": 29.7}});
        let v = self.cmd("POST", "/print", Some(page)).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    /// The page as a PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }
}

/// The review, the server and the browser session together need more than a debug build's 2 MiB
/// test-thread stack: run them on a thread of their own with 16 MiB.
fn on_a_large_stack<F: std::future::Future<Output = ()> + 'static>(test: fn() -> F) {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(test())
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn a_business_support_officer_attaches_a_return_confirms_a_held_vote_and_sees_the_case_move_on() {
    on_a_large_stack(officer_at_work);
}

async fn officer_at_work() {
    let mut w = Workspace::start().await;
    let b = Browser::start().await;
    let base = format!("http://{}", w.addr);
    let case = w.case.clone();

    // Sign in: the workspace sends a stranger to the sign-in page first.
    b.go(&format!("{base}/cases")).await;
    assert!(b.url().await.ends_with("/sign-in"), "{}", b.url().await);
    b.type_in("#username", CLERK).await;
    b.type_in("#password", PASSWORD).await;
    b.click("form[action='/sign-in'] button").await;
    b.wait_for_page("/cases").await;

    // Find the case by (part of) its reference.
    let tail = &case[case.len() - 4..];
    b.type_in("#q", tail).await;
    b.click("form.filter button").await;
    b.wait_for_page(&format!("q={tail}")).await;
    let listed = b.text("main table tbody").await;
    assert!(
        listed.contains(&case) && listed.to_lowercase().contains("screening"),
        "{listed}"
    );
    b.click(&format!("a[href='/cases/{case}']")).await;
    b.wait_for_page(&format!("/cases/{case}")).await;
    assert_eq!(b.text("h1").await, format!("Case {case}"));
    let letters_before = b
        .text("section[aria-labelledby=letters] tbody")
        .await
        .lines()
        .count();

    // Attach the triaged message as the police return.
    b.click("nav a[href='/triage']").await;
    b.wait_for_page("/triage").await;
    let m = w.triaged;
    b.type_in(&format!("#case{m}"), &case).await;
    b.click(&format!("#as{m} option[value=return]")).await;
    b.click(&format!("#agency{m} option[value=police]")).await;
    b.type_in(&format!("#reason{m}"), "phoned the police to confirm")
        .await;
    b.click(&format!("form[action='/triage/{m}/attach'] button"))
        .await;
    b.wait_for_page(&format!("/cases/{case}")).await;
    let agencies = b.text("section[aria-labelledby=agencies]").await;
    assert!(
        agencies.contains("returned"),
        "the return shows at once: {agencies}"
    );

    // Count the held reply as the vote it meant.
    b.click("nav a[href='/held']").await;
    b.wait_for_page("/held").await;
    let h = w.held;
    b.click(&format!("label[for='o{h}-0']")).await;
    b.type_in(
        &format!("#reason{h}"),
        "the member confirmed by phone: meets",
    )
    .await;
    b.click("form[action='/held/confirm'] button").await;
    b.wait_for_page(&format!("/cases/{case}")).await;
    let decisions = b.text("section[aria-labelledby=decisions]").await;
    assert!(
        decisions.contains("Local Authority representative meets"),
        "{decisions}"
    );

    // The daemon's next pass sends what the decision opened; the case has moved on.
    w.review.at("2026-08-20 12:10").await;
    w.clock.set(crate::review::london("2026-08-20 12:10"));
    b.go(&format!("{base}/cases/{case}")).await;
    let stands = b.text("section[aria-labelledby=particulars]").await;
    assert!(
        !stands.to_lowercase().contains("screening\n")
            && stands.to_lowercase().contains("rapid review"),
        "{stands}"
    );
    let letters_after = b
        .text("section[aria-labelledby=letters] tbody")
        .await
        .lines()
        .count();
    assert!(
        letters_after > letters_before,
        "letters went: {letters_before} → {letters_after}"
    );
    let decisions = b.text("section[aria-labelledby=decisions]").await;
    assert!(
        decisions.contains("Decided: meets"),
        "the votes were counted: {decisions}"
    );
    let history = b.text("section[aria-labelledby=history]").await;
    assert!(history.contains("clerk (web workspace)"), "{history}");
    let _ = b.screenshot().await;
}

/// axe-core, vendored (tests/fixtures/axe-core): never served by caseclerk, only run by this test.
const AXE: &str = include_str!("../../fixtures/axe-core/axe.min.js");

impl Browser {
    /// axe-core's WCAG 2.x A and AA violations on the page shown, one line each.
    pub async fn axe(&self) -> Vec<String> {
        let script = format!(
            "{AXE}\n;const done = arguments[arguments.length - 1];\
             axe.run(document, {{runOnly: {{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}}}})\
             .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
             .catch(e => done(['axe failed: ' + e]));"
        );
        let v = self
            .cmd(
                "POST",
                "/execute/async",
                Some(json!({"script": script, "args": []})),
            )
            .await;
        v.as_array()
            .expect("a list of violations")
            .iter()
            .map(|s| s.as_str().unwrap_or_default().to_string())
            .collect()
    }
}

#[test]
fn every_page_passes_axe_cores_wcag_2_2_a_and_aa_checks() {
    on_a_large_stack(audit_every_page);
}

/// The screening decided (over plain HTTP, finished before the next page is asked for), so the
/// coming days have letters to show.
async fn decide_screening(w: &Workspace) {
    let mut c = w.signed_in(CLERK).await;
    let page = format!("/cases/{}", w.case);
    let csrf = c.get(&page).await.csrf();
    let fields = [
        ("csrf", csrf.as_str()),
        ("choice", "screening/meets"),
        ("reason", "by phone"),
    ];
    assert_eq!(c.post(&format!("{page}/decide"), &fields).await.status, 303);
}

/// The page asking an account with a second factor for its code (the answer to the password
/// form's POST, so audited where the form leads): what axe-core finds there.
async fn code_page_audited(
    w: &Workspace,
    b: &Browser,
    shots: Option<&std::path::Path>,
) -> Vec<String> {
    use caseclerk::shell::web::second_factor;
    let key = second_factor::key_path(&w.review.engine.cfg.database);
    second_factor::enrol(&w.review.engine.store, &key, VIEWER)
        .await
        .unwrap();
    b.go(&format!("http://{}/sign-in", w.addr)).await;
    b.type_in("#username", VIEWER).await;
    b.type_in("#password", PASSWORD).await;
    b.click("form[action='/sign-in'] button").await;
    b.wait_for("#code").await;
    if let Some(dir) = shots {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("code.png"), b.screenshot().await).unwrap();
    }
    let found = b.axe().await;
    found
        .into_iter()
        .map(|v| format!("/sign-in/code: {v}"))
        .collect()
}

/// Every page, audited; with `CASECLERK_SCREENSHOTS=<folder>` each is also saved as a PNG there
/// (the README's screenshots).
async fn audit_every_page() {
    let w = Workspace::start().await;
    let b = Browser::start().await;
    let base = format!("http://{}", w.addr);
    let shots = std::env::var_os("CASECLERK_SCREENSHOTS").map(std::path::PathBuf::from);
    let mut found = code_page_audited(&w, &b, shots.as_deref()).await;
    let mut visit = async |name: &str, path: &str| {
        b.go(&format!("{base}{path}")).await;
        for v in b.axe().await {
            found.push(format!("{path}: {v}"));
        }
        if let Some(dir) = &shots {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), b.screenshot().await).unwrap();
        }
    };
    visit("sign-in", "/sign-in").await;
    b.type_in("#username", CLERK).await;
    b.type_in("#password", PASSWORD).await;
    b.click("form[action='/sign-in'] button").await;
    b.wait_for_page("/cases").await;
    let case = w.case.clone();
    let letter = {
        b.go(&format!("{base}/cases/{case}")).await;
        let e = b.find("section[aria-labelledby=letters] a").await;
        let href = b
            .cmd("GET", &format!("/element/{e}/attribute/href"), None)
            .await;
        href.as_str().unwrap().to_string()
    };
    visit("cases", "/cases").await;
    visit("case", &format!("/cases/{case}")).await;
    visit("letter", &letter).await;
    visit("triage", "/triage").await;
    visit("held", "/held").await;
    visit("undelivered", "/undelivered").await;
    visit("tracker", "/tracker").await;
    decide_screening(&w).await;
    visit("coming", "/coming").await;
    assert!(found.is_empty(), "axe-core found:\n{}", found.join("\n"));
}

#[test]
fn a_case_page_prints_its_particulars_timeline_letters_and_history_without_its_forms() {
    on_a_large_stack(print_a_case);
}

/// The case page as Chromium prints it, read back as text (the same PDF reader the referral
/// forms go through).
async fn print_a_case() {
    let w = Workspace::start().await;
    let b = Browser::start().await;
    let base = format!("http://{}", w.addr);
    b.go(&format!("{base}/sign-in")).await;
    b.type_in("#username", CLERK).await;
    b.type_in("#password", PASSWORD).await;
    b.click("form[action='/sign-in'] button").await;
    b.wait_for_page("/cases").await;
    b.go(&format!("{base}/cases/{}", w.case)).await;
    let printed = caseclerk::core::particulars::pdf_text(&b.print().await).unwrap();
    let on_paper = |s: &str| printed.contains(s);
    assert!(on_paper(&w.case), "{printed}");
    for heading in [
        "Particulars",
        "Timeline",
        "Decisions",
        "Agencies",
        "Letters",
        "History",
    ] {
        assert!(on_paper(heading), "no {heading} on paper:\n{printed}");
    }
    // The forms are for the screen: no button, reason box or sign-out on paper.
    for screen_only in ["Change this case", "Add the agency", "Reason", "Sign out"] {
        assert!(!on_paper(screen_only), "{screen_only} printed:\n{printed}");
    }
}
