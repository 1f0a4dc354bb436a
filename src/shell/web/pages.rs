//! The workspace's pages: the cases list, one case (printable), a letter's exact text, triage,
//! held replies, undelivered letters, the next 15 working days and the tracker table.
//!
//! Owns the HTML (maud: every value escaped) and what each page reads: one case, one letter or
//! the triage list straight from the store; the list pages from every case's summary
//! ([`super::memo`], brought up to date at the start of each request, so a change shows at
//! once), a page at a time (the cases list and the tracker 50 cases, the next 15 working days
//! 200 letters; the filter and the search reach every case). The data is the core's:
//! [`crate::core::views`] (what the digest and the tracker read) and [`crate::core::workspace`].
//!
//! Must not: change anything (the forms post to [`super::actions`]); put a name, an address or a
//! subject in a link (case references, message and letter ids only).

use super::memo::Summaries;
use super::{App, Session, accounts, acts, failure, page, signed_in};
use crate::core::calendar::{short_date, short_instant};
use crate::core::case;
use crate::core::trust;
use crate::core::views::{CaseView, case_view, scrub};
use crate::core::workspace::{self, StatusFilter, Summary};
use crate::shell::snapshot;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use std::sync::Arc;

type Shared = State<Arc<App>>;

#[derive(serde::Deserialize, Default)]
pub(super) struct CasesQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    page: Option<String>,
    /// Set when a search was not a case reference (it is then neither searched nor kept).
    #[serde(default)]
    refused: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub(super) struct PageQuery {
    #[serde(default)]
    page: Option<String>,
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        page(
            "Not found",
            None,
            html! { h1 { "Not found" } p { (what) } p { a href="/cases" { "Back to the cases" } } },
        ),
    )
        .into_response()
}

/// Cases a page of the list shows, and tracker rows a page of the tracker.
const CASES_PER_PAGE: usize = 50;
/// Letters a page of the next 15 working days shows.
const LETTERS_PER_PAGE: usize = 200;
/// Messages a page of triage shows (each with its preview and forms).
const TRIAGE_PER_PAGE: usize = 25;

/// The person signed in and every case's summary, up to date at this instant ([`memo`]).
///
/// [`memo`]: super::memo
async fn with_summaries<'a>(
    app: &'a App,
    headers: &HeaderMap,
) -> Result<(Session, tokio::sync::MutexGuard<'a, Summaries>), Response> {
    let s = signed_in(app, headers).await?;
    match app.pages.at(&app.cfg, &app.store, app.clock.now()).await {
        Ok(memo) => Ok((s, memo)),
        Err(e) => Err(failure(&e)),
    }
}

/// Which page of `total` items to show (1-based, as asked, kept in range): its first item, its
/// number and the number of pages.
fn window(total: usize, asked: Option<&str>, per: usize) -> (std::ops::Range<usize>, usize, usize) {
    let pages = total.div_ceil(per).max(1);
    let page = asked
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let from = (page - 1) * per;
    (from..(from + per).min(total), page, pages)
}

/// "Page 2 of 7" with the links to the pages before and after (`query`: the page's other
/// parameters, already encoded, ending in `&` when not empty).
fn pager(path: &str, query: &str, page: usize, pages: usize) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a href={ (path) "?" (query) "page=" (page - 1) } rel="prev" { "Previous page" } " " }
                span { "Page " (page) " of " (pages) }
                @if page < pages { " " a href={ (path) "?" (query) "page=" (page + 1) } rel="next" { "Next page" } }
            }
        }
    }
}

/// `/cases`: every case, filtered by status and searched by reference, newest first, a page at a
/// time.
pub(super) async fn cases(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<CasesQuery>,
) -> Response {
    let (s, memo) = match with_summaries(&app, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let status = StatusFilter::parse(q.status.as_deref().unwrap_or(""));
    let typed = q.q.clone().unwrap_or_default();
    let refused = q.refused.is_some() || !workspace::searchable(&typed, &app.cfg.reference_prefix);
    let search = if refused { String::new() } else { typed };
    let needle = search.trim().to_uppercase();
    let mut found: Vec<&Summary> = memo
        .all()
        .filter(|c| workspace::keeps(&c.line, status, &needle))
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(c.line.received));
    let (shown, page, pages) = window(found.len(), q.page.as_deref(), CASES_PER_PAGE);
    let total = found.len();
    let lines: Vec<workspace::CaseLine> = found[shown]
        .iter()
        .map(|c| workspace::CaseLine {
            day: workspace::working_day(c.day0, &app.cfg.calendar, now),
            ..c.line.clone()
        })
        .collect();
    drop(memo);
    let options = [
        StatusFilter::Open,
        StatusFilter::Overdue,
        StatusFilter::Closed,
        StatusFilter::All,
    ];
    let query = format!(
        "status={}&q={}&",
        status.as_str(),
        url_encode(search.trim())
    );
    page_of_cases(
        &s,
        (status, &options),
        (&search, refused),
        total,
        &lines,
        pager("/cases", &query, page, pages),
    )
}

#[derive(serde::Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

/// `POST /cases/search`: the list's search, sent in the request's body so that what was typed
/// reaches no address (browser history, a proxy's log) unless it is a case reference: one is
/// shown at `/cases?q=…`; anything else (a child's name typed by mistake) is dropped, and the
/// list says only references are searched.
pub(super) async fn search_cases(
    State(app): Shared,
    headers: HeaderMap,
    Form(f): Form<SearchForm>,
) -> Response {
    if let Err(r) = signed_in(&app, &headers).await {
        return r;
    }
    let status = StatusFilter::parse(f.status.as_deref().unwrap_or(""));
    let typed = f.q.unwrap_or_default();
    let to = match workspace::searchable(&typed, &app.cfg.reference_prefix) {
        true => format!(
            "/cases?status={}&q={}",
            status.as_str(),
            url_encode(typed.trim())
        ),
        false => format!("/cases?status={}&refused=1", status.as_str()),
    };
    axum::response::Redirect::to(&to).into_response()
}

/// A search typed into the list, for the pages' links (a case reference: letters, digits, `-`).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn page_of_cases(
    s: &Session,
    (status, options): (StatusFilter, &[StatusFilter]),
    (search, refused): (&str, bool),
    total: usize,
    lines: &[workspace::CaseLine],
    pager: Markup,
) -> Response {
    page(
        "Cases",
        Some(s),
        html! {
            h1 { "Cases" }
            form.filter method="post" action="/cases/search" role="search" {
                label for="status" { "Show" }
                select #status name="status" {
                    @for o in options {
                        option value=(o.as_str()) selected[*o == status] { (o.as_str()) " cases" }
                    }
                }
                label for="q" { "Reference" }
                input #q type="search" name="q" value=(search) autocomplete="off" placeholder="e.g. RR-2026-0003";
                button type="submit" { "Show" }
            }
            @if refused {
                p.refusal role="alert" { "Only case references are searched (e.g. RR-2026-0003). What was typed was not searched and is not kept." }
            }
            p { (total) " case(s)." }
            table {
                caption.visually-hidden { "Cases, newest first" }
                thead { tr {
                    th scope="col" { "Reference" } th scope="col" { "Area" }
                    th scope="col" { "Received" } th scope="col" { "Working day" }
                    th scope="col" { "Where it stands" } th scope="col" { "Next step" }
                    th scope="col" { "Overdue" }
                } }
                tbody {
                    @for l in lines {
                        tr.overdue[!l.overdue.is_empty()] {
                            th scope="row" { a href={ "/cases/" (l.reference) } { (l.reference) } }
                            td { (l.area.as_deref().unwrap_or("—")) }
                            td { (short_instant(l.received)) }
                            td { @match l.day {
                                Some(n) => { "day " (n) " of " (workspace::RAPID_REVIEW_DAYS) }
                                None => { "—" }
                            } }
                            td { (l.stage) }
                            td { @match &l.next {
                                Some((name, date)) => { (name) ", " (short_date(*date)) }
                                None => { "—" }
                            } }
                            td { @if l.overdue.is_empty() { "—" } @else {
                                strong { "Overdue: " } (l.overdue.join("; "))
                            } }
                        }
                    }
                }
            }
            (pager)
        },
    )
    .into_response()
}

/// One case's view, from the store, at the request's instant.
async fn one_case(
    app: &App,
    reference: &str,
) -> Result<Option<(CaseView, Vec<case::Recorded>)>, Response> {
    let now = app.clock.now();
    let row = match app.store.case_by_ref(reference).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => return Err(failure(&e)),
    };
    let events = app.store.events(row.id).await.map_err(|e| failure(&e))?;
    let recorded = case::read_rows(&events).map_err(|e| failure(&e))?;
    let state = case::fold(&recorded).map_err(|e| failure(&e))?;
    let letters = app
        .store
        .letter_summaries(Some(row.id))
        .await
        .map_err(|e| failure(&e))?;
    let read = app
        .store
        .particulars(row.id)
        .await
        .map_err(|e| failure(&e))?;
    let ctx = snapshot::context(&app.cfg);
    let view = case_view(&ctx, row, state, &letters, now).with_particulars(read);
    Ok(Some((view, recorded)))
}

/// `/cases/{reference}`: everything about one case, printable.
pub(super) async fn case(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (c, recorded) = match one_case(&app, &reference).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found("There is no case with that reference."),
        Err(r) => return r,
    };
    let now = app.clock.now();
    recorded_read(&app, &s, &format!("{reference}: the case's page")).await;
    let line = workspace::case_line(&c, &app.cfg.process, &app.cfg.calendar, now);
    page(&reference, Some(&s), html! {
        h1 { "Case " (reference) }
        (particulars(&c, &line))
        (timeline(&c))
        (decisions(&app, &c))
        (agencies(&c, &return_files(&app, &c).await))
        (letters(&c))
        @if acts(&s) { (changes(&app, &s, &c)) }
        section aria-labelledby="history" {
            h2 #history { "History" }
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What happened" } } }
                tbody { @for r in &recorded {
                    tr { td { (short_instant(r.at)) } td { (who(&r.actor)) } td { (scrub(&r.event.describe())) } }
                } }
            }
        }
    })
    .into_response()
}

/// That `s`'s person read `what` now ([`accounts::record_read`]: a case reference and which part,
/// never content).
async fn recorded_read(app: &App, s: &Session, what: &str) {
    accounts::record_read(&app.store, s.user_id, what, app.clock.now()).await;
}

/// The files attached to each agency's return on the case, by stored message: each one's name,
/// and what it is when it is withheld (never offered: see `attachment`).
type ReturnFiles = std::collections::BTreeMap<i64, Vec<(String, Option<&'static str>)>>;

/// [`ReturnFiles`] of the case.
async fn return_files(app: &App, c: &CaseView) -> ReturnFiles {
    let mut out = std::collections::BTreeMap::new();
    for m in c
        .state
        .agencies
        .values()
        .flat_map(|a| a.returns.iter().copied())
    {
        if let Ok(Some(raw)) = app.store.message_raw(m).await {
            let names = crate::core::intake::parse(&raw)
                .attachments
                .into_iter()
                .map(|a| {
                    let risk = trust::attachment_risk(&a).map(|r| r.label());
                    (trust::shown_name(&a.filename), risk)
                });
            out.insert(m, names.collect());
        }
    }
    out
}

/// "caseclerk" for the daemon, the person for an operator command.
fn who(actor: &str) -> String {
    if let Some(p) = actor.strip_prefix("web:") {
        format!("{p} (web workspace)")
    } else if let Some(p) = actor.strip_prefix("operator:") {
        format!("{p} (command line)")
    } else {
        "caseclerk".into()
    }
}

fn particulars(c: &CaseView, line: &workspace::CaseLine) -> Markup {
    html! {
        section aria-labelledby="particulars" {
            h2 #particulars { "Particulars" }
            dl {
                dt { "Where it stands" } dd { (line.stage) }
                @if !line.overdue.is_empty() {
                    dt { "Overdue" } dd.overdue-text { strong { (line.overdue.join("; ")) } }
                }
                dt { "Area" } dd { (c.state.area.as_deref().unwrap_or("not known")) }
                dt { "Referred by" } dd { (c.referrer_agency.as_deref().unwrap_or("an agency outside the directory")) }
                dt { "Received" } dd { (short_instant(c.state.received_at)) }
                dt { "Day 0" } dd { (short_date(c.state.day0)) }
                dt { "Today" } dd { @match line.day { Some(n) => { "working day " (n) " of " (workspace::RAPID_REVIEW_DAYS) } None => { "—" } } }
                @if let Some(m) = c.meeting { dt { "Meeting" } dd { (short_instant(m)) } }
                @if let Some(h) = &c.state.hold { dt { "Legal hold" } dd { "since " (short_instant(h.since)) } }
            }
            (child(c))
        }
    }
}

/// What the referral says of the child, each with where it was read and whether a person has
/// checked it (`caseclerk particulars` confirms or corrects).
fn child(c: &CaseView) -> Markup {
    html! {
        h3 { "The child, as the referral gives it" }
        @if c.particulars.is_empty() {
            p { "Nothing was read from the referral: the business unit gives the particulars under " em { "Confirm or correct the child's particulars" } " below (or with " code { "caseclerk particulars" } ")." }
        } @else {
            table {
                thead { tr { th scope="col" { "Particular" } th scope="col" { "Value" } th scope="col" { "Read from" } th scope="col" { "Checked?" } } }
                tbody { @for p in &c.particulars {
                    tr {
                        td { (p.field.words()) }
                        td { (p.value) }
                        td { (p.source) @if !p.label.is_empty() { " (“" (p.label) "”)" } }
                        td { @if p.state.checked() { (p.state.as_str()) } @else { strong { "not yet checked" } " (" (p.confidence.as_str()) " confidence)" } }
                    }
                } }
            }
        }
    }
}

fn timeline(c: &CaseView) -> Markup {
    html! {
        section aria-labelledby="timeline" {
            h2 #timeline { "Timeline" }
            table {
                thead { tr { th scope="col" { "Date" } th scope="col" { "What" } th scope="col" { "To" } th scope="col" { "Done?" } th scope="col" { "How the date was worked out" } } }
                tbody { @for t in workspace::timeline(c) {
                    tr { td { (short_instant(t.at)) } td { (t.what) } td { (t.to) } td { @if t.done { "done" } @else { "planned" } } td { (t.explained) } }
                } }
            }
        }
    }
}

fn decisions(app: &App, c: &CaseView) -> Markup {
    html! {
        section aria-labelledby="decisions" {
            h2 #decisions { "Decisions" }
            @for d in &c.decisions {
                h3 { (d.name) }
                p { @match &d.outcome {
                    Some((o, at)) => { "Decided: " strong { (o.replace('_', " ")) } ", " (short_instant(*at)) "." }
                    None => { "Not decided yet." @if let Some(r) = &d.due { " Due " (short_instant(r.at)) "." } }
                } }
                @let votes = workspace::votes(c, &app.cfg.directory, &d.id);
                @if !votes.is_empty() {
                    table {
                        thead { tr { th scope="col" { "Member" } th scope="col" { "Vote" } th scope="col" { "When" } th scope="col" { "Evidence" } } }
                        tbody { @for v in &votes {
                            tr { td { (v.voter) } td { (v.outcome) } td { (short_instant(v.at)) } td { "reply stored as message " (v.message) } }
                        } }
                    }
                }
                @if !d.not_voted.is_empty() && d.outcome.is_none() {
                    p { "Not voted yet: " (d.not_voted.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")) }
                }
            }
        }
    }
}

fn agencies(c: &CaseView, files: &ReturnFiles) -> Markup {
    html! {
        section aria-labelledby="agencies" {
            h2 #agencies { "Agencies" }
            table {
                thead { tr { th scope="col" { "Agency" } th scope="col" { "Asked" } th scope="col" { "Return" } th scope="col" { "Attached to the return" } } }
                tbody { @for a in &c.agencies {
                    tr.overdue[a.overdue] {
                        td { (a.name) }
                        td { @match a.asked_at { Some(t) => { (short_instant(t)) } None => { "not yet" } } }
                        td { @match a.returned_at {
                            Some(t) => { @if a.nil { "nil return" } @else { "returned" } ", " (short_instant(t)) @if a.late { " (late)" } }
                            None => { @if a.overdue { strong { "overdue" } } @else { "awaited" } }
                        } }
                        td { @match c.state.agencies.get(&a.id).map(|s| &s.returns).filter(|r| !r.is_empty()) {
                            Some(returns) => { @for m in returns { @for (i, (name, risk)) in files.get(m).into_iter().flatten().enumerate() {
                                @match risk {
                                    None => { a href={ "/cases/" (c.reference()) "/messages/" (m) "/attachments/" (i) } { (name) } br; }
                                    Some(what) => { (name) " (a " (what) ": not offered)" br; }
                                }
                            } } }
                            None => { "—" }
                        } }
                    }
                } }
            }
        }
    }
}

fn letters(c: &CaseView) -> Markup {
    html! {
        section aria-labelledby="letters" {
            h2 #letters { "Letters" }
            table {
                thead { tr { th scope="col" { "Letter" } th scope="col" { "To" } th scope="col" { "Due" } th scope="col" { "State" } } }
                tbody { @for l in &c.letters {
                    tr {
                        td { a href={ "/cases/" (c.reference()) "/letters/" (l.outbox) } { (l.step_name) } }
                        td { (l.to) }
                        td { (short_instant(l.due_at)) }
                        td { (l.state) @if let Some(t) = l.sent_at { " " (short_instant(t)) } }
                    }
                } }
            }
        }
    }
}

/// The business unit's changes to a case: check the child's particulars, record a decision,
/// add or remove an agency, move a date, cancel the meeting, legal hold, close or reopen.
fn changes(app: &App, s: &Session, c: &CaseView) -> Markup {
    let r = c.reference();
    let on: Vec<&str> = c.agencies.iter().map(|a| a.id.as_str()).collect();
    html! {
        section.changes aria-labelledby="changes" {
            h2 #changes { "Change this case" }
            @if c.is_open() {
                form.action method="post" action={ "/cases/" (r) "/agencies" } {
                    fieldset {
                        legend { "Add an agency" }
                        p { label for="add-agency" { "Agency" }
                            select #add-agency name="agency" required {
                                @for a in app.cfg.directory.agencies.iter().filter(|a| !on.contains(&a.id.as_str())) {
                                    option value=(a.id) { (a.name) }
                                }
                            } }
                        (reason_and_token(s, "reason-agency"))
                        button type="submit" { "Add the agency" }
                    }
                }
                form.action method="post" action={ "/cases/" (r) "/reschedule" } {
                    fieldset {
                        legend { "Move a date (extend, adjourn)" }
                        p { label for="move-what" { "What" }
                            select #move-what name="what" required {
                                @for (key, name) in crate::shell::operator::movable(&app.cfg.process) {
                                    option value=(key) { (name) }
                                }
                            } }
                        p { label for="move-date" { "New date" } input #move-date type="date" name="date" required; }
                        p { label for="move-time" { "New time (London)" } input #move-time type="time" name="time" value="10:00" required; }
                        (reason_and_token(s, "reason-move"))
                        button type="submit" { "Move it" }
                    }
                }
            }
            @if c.is_open() { (check_child(s, c)) (decide(app, s, c)) (meeting_and_agency(app, s, c)) }
            (hold(s, c))
            (reviewer_and_publication(s, c))
            form.action method="post" action={ "/cases/" (r) "/status" } {
                fieldset {
                    @let (to, words) = if c.is_open() { ("close", "Close the case") } else { ("reopen", "Reopen the case") };
                    legend { (words) }
                    input type="hidden" name="to" value=(to);
                    (reason_and_token(s, "reason-status"))
                    button type="submit" { (words) }
                }
            }
        }
    }
}

/// Confirm or correct what the referral gives of the child (`caseclerk particulars`): tick what
/// is right as read, write the right value where it is wrong or missing. No value is put in the
/// form: the table above shows them, and an empty box changes nothing.
fn check_child(s: &Session, c: &CaseView) -> Markup {
    use crate::core::particulars::Field;
    let r = c.reference();
    html! {
        form.action method="post" action={ "/cases/" (r) "/particulars" } {
            fieldset {
                legend { "Confirm or correct the child's particulars" }
                p { "Tick each particular the referral has right; write the right value where it is wrong or missing (dates like 2019-03-12). Boxes left empty change nothing." }
                @for f in Field::ALL {
                    @let id = f.as_str();
                    @let read = c.particulars.iter().any(|p| p.field == f);
                    fieldset {
                        legend { (f.words()) }
                        @if read {
                            p { input type="checkbox" id={ "confirm-" (id) } name={ "confirm_" (id) } value="yes";
                                label for={ "confirm-" (id) } { "Right as read" } }
                        }
                        p { label for={ "set-" (id) } { @if read { "Correct it to" } @else { "Give it (nothing was read)" } }
                            input type="text" id={ "set-" (id) } name={ "set_" (id) } autocomplete="off"; }
                    }
                }
                (reason_and_token(s, "reason-particulars"))
                button type="submit" { "Record the check" }
            }
        }
    }
}

/// Record a decision taken outside the mailbox (`caseclerk decide`): one choice per decision
/// and outcome, so the form works without JavaScript.
fn decide(app: &App, s: &Session, c: &CaseView) -> Markup {
    let r = c.reference();
    html! {
        form.action method="post" action={ "/cases/" (r) "/decide" } {
            fieldset {
                legend { "Record a decision taken in a meeting or by phone" }
                p { label for="decide-choice" { "Decision and outcome" }
                    select #decide-choice name="choice" required {
                        @for d in &app.cfg.process.decisions {
                            optgroup label=(d.name) {
                                @for o in &d.outcomes { option value={ (d.id) "/" (o) } { (d.name) ": " (o.replace('_', " ")) } }
                            }
                        }
                    } }
                p { input #decide-replace type="checkbox" name="replace" value="yes";
                    label for="decide-replace" { "Replace the outcome already recorded for it" } }
                (reason_and_token(s, "reason-decide"))
                button type="submit" { "Record the decision" }
            }
        }
    }
}

/// Cancel the meeting (`caseclerk cancel-meeting`) and remove an agency (`caseclerk agencies
/// remove`).
fn meeting_and_agency(app: &App, s: &Session, c: &CaseView) -> Markup {
    let r = c.reference();
    html! {
        @if app.cfg.process.meeting.is_some() && c.meeting.is_some() {
            form.action method="post" action={ "/cases/" (r) "/cancel-meeting" } {
                fieldset {
                    legend { "Cancel the meeting" }
                    p { "Everyone sent the invitation is sent a cancellation on the next pass." }
                    (reason_and_token(s, "reason-cancel"))
                    button type="submit" { "Cancel the meeting" }
                }
            }
        }
        @if !c.agencies.is_empty() {
            form.action method="post" action={ "/cases/" (r) "/agencies/remove" } {
                fieldset {
                    legend { "Remove an agency (no longer asked or chased)" }
                    p { label for="remove-agency" { "Agency" }
                        select #remove-agency name="agency" required {
                            @for a in &c.agencies { option value=(a.id) { (a.name) } }
                        } }
                    (reason_and_token(s, "reason-remove"))
                    button type="submit" { "Remove the agency" }
                }
            }
        }
        @let returns: Vec<(&str, i64)> = c.agencies.iter().flat_map(|a| {
            c.state.agencies.get(&a.id).into_iter().flat_map(|s| s.returns.iter()).map(|m| (a.name.as_str(), *m))
        }).collect();
        @if !returns.is_empty() {
            form.action method="post" action={ "/cases/" (r) "/returns/withdraw" } {
                fieldset {
                    legend { "Take a return out of the collation pack (the wrong child's, or one a correction replaces)" }
                    p { label for="withdraw-return" { "Return" }
                        select #withdraw-return name="message" required {
                            @for (agency, m) in &returns { option value=(m) { (agency) ", message " (m) } }
                        } }
                    (reason_and_token(s, "reason-withdraw"))
                    button type="submit" { "Take it out of the pack" }
                }
            }
        }
    }
}

/// Name the reviewer (`caseclerk set-reviewer`, open or closed: the tracker's "Reviewer") and,
/// once an LCSPR is decided on an open case, plan its report's publication date (`caseclerk
/// publication`: the report goes to the National Panel, the Secretary of State and Ofsted 7
/// working days before).
fn reviewer_and_publication(s: &Session, c: &CaseView) -> Markup {
    let r = c.reference();
    let lcspr = c.state.decisions.values().any(|(o, _)| o == "lcspr");
    html! {
        form.action method="post" action={ "/cases/" (r) "/reviewer" } {
            fieldset {
                legend { @if c.state.reviewer.is_some() { "Name another reviewer" } @else { "Name the reviewer" } }
                @if let Some(now) = &c.state.reviewer { p { "The reviewer now: " (now) "." } }
                p { label for="reviewer" { "Reviewer's name, as the tracker shows it" }
                    input #reviewer type="text" name="reviewer" maxlength="80" autocomplete="off" required; }
                (reason_and_token(s, "reason-reviewer"))
                button type="submit" { "Name the reviewer" }
            }
        }
        @if lcspr && c.is_open() {
            form.action method="post" action={ "/cases/" (r) "/publication" } {
                fieldset {
                    legend { "Plan the LCSPR report's publication" }
                    @if let Some(d) = c.state.publication { p { "Planned now for " (short_date(d)) "." } }
                    p { "The report goes to the National Panel, the Secretary of State and Ofsted 7 working days before; a date beyond the six months sends the delay notice." }
                    p { label for="publication-date" { "Publication date" }
                        input #publication-date type="date" name="date" required; }
                    (reason_and_token(s, "reason-publication"))
                    button type="submit" { "Plan the publication" }
                }
            }
        }
    }
}

/// Place or release a legal hold (`caseclerk hold` / `release`), open or closed.
fn hold(s: &Session, c: &CaseView) -> Markup {
    let r = c.reference();
    let (to, words) = match c.state.hold {
        Some(_) => ("release", "Release the legal hold"),
        None => (
            "place",
            "Place a legal hold (nothing of the case is erased until released)",
        ),
    };
    html! {
        form.action method="post" action={ "/cases/" (r) "/hold" } {
            fieldset {
                legend { (words) }
                input type="hidden" name="to" value=(to);
                (reason_and_token(s, "reason-hold"))
                button type="submit" { (words) }
            }
        }
    }
}

/// `/cases/{reference}/letters/{letter}`: the exact text a letter was sent with.
pub(super) async fn letter(
    State(app): Shared,
    headers: HeaderMap,
    Path((reference, letter)): Path<(String, i64)>,
) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let case = match app.store.case_by_ref(&reference).await {
        Ok(Some(c)) => c,
        Ok(None) => return not_found("There is no case with that reference."),
        Err(e) => return failure(&e),
    };
    let row = match app.store.letter(letter).await {
        Ok(Some(l)) if l.case_id == Some(case.id) => l,
        Ok(_) => return not_found("This case has no such letter."),
        Err(e) => return failure(&e),
    };
    recorded_read(&app, &s, &format!("{reference}: letter {letter}")).await;
    let m = crate::core::intake::parse(&row.raw);
    let list = |a: &[crate::core::intake::Address]| {
        a.iter()
            .map(|a| a.email.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    page("Letter", Some(&s), html! {
        h1 { "Letter " (letter) " of case " (reference) }
        @if row.raw.is_empty() {
            p { "Its text was erased under the retention schedule; the copy in the shared mailbox's sent folder remains." }
        } @else {
            dl {
                dt { "Subject" } dd { (m.subject) }
                dt { "To" } dd { (list(&m.to)) }
                @if !m.cc.is_empty() { dt { "Copied to" } dd { (list(&m.cc)) } }
                dt { "State" } dd { (row.state) @if let Some(t) = row.sent_at { ", " (short_instant(t)) } }
                @if !m.attachments.is_empty() {
                    dt { "Attached" } dd { (m.attachments.iter().map(|a| trust::shown_name(&a.filename)).collect::<Vec<_>>().join(", ")) }
                }
            }
            pre.letter { (m.body_text) }
        }
        p { a href={ "/cases/" (reference) } { "Back to case " (reference) } }
    })
    .into_response()
}

/// The reasons box every action form carries, and its token.
pub(super) fn reason_and_token(s: &Session, id: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(s.csrf);
        p {
            label for=(id) { "Reason (recorded in the history)" }
            input id=(id) type="text" name="reason" autocomplete="off" required;
        }
    }
}

/// `/triage`: messages waiting for a person, with what they are and what can be done, oldest
/// first, [`TRIAGE_PER_PAGE`] at a time.
///
/// A page reads its messages one by one and lets each go once laid out: after a first run tens
/// of thousands may be waiting, some of them referrals of 20 MB, and the page is served by the
/// daemon.
pub(super) async fn triage(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let total = match app.store.triage_count().await {
        Ok(n) => n,
        Err(e) => return failure(&e),
    };
    let (shown, page_no, pages) = window(total, q.page.as_deref(), TRIAGE_PER_PAGE);
    recorded_read(&app, &s, &format!("the triage list, page {page_no}")).await;
    let rows = match app.store.triage_page(shown.start, shown.len()).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        // A message set aside because caseclerk stopped twice while deciding it is not read
        // here either: opening the page must not stop the daemon again.
        if r.rule.as_deref() == Some(crate::core::deciding::SET_ASIDE_RULE) {
            items.push(triage_item(&app, &s, r, None, page_no));
            continue;
        }
        match app.store.message_raw(r.id).await {
            Ok(raw) => {
                let m = crate::core::intake::parse(&raw.unwrap_or_default());
                items.push(triage_item(&app, &s, r, Some(&m), page_no));
            }
            Err(e) => return failure(&e),
        }
    }
    page("Triage", Some(&s), html! {
        h1 { "Triage" }
        @if items.is_empty() { p { "Nothing is waiting for a person." } }
        @else if pages > 1 { p { (total) " messages are waiting for a person, oldest first; these are " (shown.start + 1) " to " (shown.start + items.len()) "." } }
        @else { p { (items.len()) " waiting for a person, oldest first." } }
        @for item in &items { (item) }
        (pager("/triage", "", page_no, pages))
    })
    .into_response()
}

/// Why a message waits in triage: the rule that listed it and its reasons (a `dl` entry).
fn why_listed(r: &crate::shell::store::TriageRow) -> Markup {
    html! {
        dt { "Why it is here" } dd { (r.rule.as_deref().unwrap_or("not classified")) @for why in &r.reasons { br; (why) } }
    }
}

/// One message waiting in triage: what it is (`m`: as read; `None`: not read here), and a form
/// for each thing that can be done (on page `page_no`, where taking it off the list comes back
/// to).
fn triage_item(
    app: &App,
    s: &Session,
    r: &crate::shell::store::TriageRow,
    m: Option<&crate::core::intake::Message>,
    page_no: usize,
) -> Markup {
    let agencies = &app.cfg.directory.agencies;
    let areas = &app.cfg.process.areas;
    html! {
        article.message aria-labelledby={ "m" (r.id) } {
            @match m {
                Some(m) => {
                    h2 id={ "m" (r.id) } { "Message " (r.id) ": " (m.subject) }
                    dl {
                        dt { "From" } dd { @match &m.from { Some(a) => { (a.name.as_deref().unwrap_or("")) " <" (a.email) ">" } None => { "not known" } } }
                        dt { "Received" } dd { (short_instant(r.internal_date)) }
                        (why_listed(r))
                        dt { "Attachments" } dd { @if m.attachments.is_empty() { "none" } @for (i, a) in m.attachments.iter().enumerate() {
                            @match trust::attachment_risk(a) {
                                None => { a href={ "/triage/" (r.id) "/attachments/" (i) } { (trust::shown_name(&a.filename)) } " (" (a.size) " bytes)" br; }
                                Some(risk) => { (trust::shown_name(&a.filename)) " (" (a.size) " bytes; a " (risk.label()) ": not offered)" br; }
                            }
                        } }
                    }
                    details { summary { "Preview" } pre.letter { (m.body_text.chars().take(2000).collect::<String>()) } }
                }
                None => {
                    h2 id={ "m" (r.id) } { "Message " (r.id) ": set aside unread" }
                    dl {
                        dt { "Received" } dd { (short_instant(r.internal_date)) " (" (r.size) " bytes)" }
                        (why_listed(r))
                        dt { "Read it" } dd { "in the shared mailbox itself (Outlook): caseclerk does not open it here." }
                    }
                }
            }
            @if acts(s) {
                form.action method="post" action={ "/triage/" (r.id) "/attach" } {
                    fieldset {
                        legend { "Attach to a case" }
                        p { label for={ "case" (r.id) } { "Case reference" }
                            input id={ "case" (r.id) } type="text" name="case" autocomplete="off" required; }
                        p { label for={ "as" (r.id) } { "As" }
                            select id={ "as" (r.id) } name="as" {
                                option value="reply" { "a reply (filed on the case)" }
                                option value="return" { "an agency's return" }
                                option value="nil" { "an agency's nil return" }
                            } }
                        p { label for={ "agency" (r.id) } { "Agency (for a return)" }
                            select id={ "agency" (r.id) } name="agency" {
                                option value="" { "—" }
                                @for a in agencies { option value=(a.id) { (a.name) } }
                            } }
                        (reason_and_token(s, &format!("reason{}", r.id)))
                        button type="submit" { "Attach" }
                    }
                }
                form.action method="post" action={ "/triage/" (r.id) "/open" } {
                    fieldset {
                        legend { "Open as a new referral" }
                        p { "Opens a case as if the daemon had recognised the referral: day 0 from when it arrived, the acknowledgement and the screening letters on the next pass." }
                        @if !areas.is_empty() {
                            p { label for={ "area" (r.id) } { "Area (if the message names none)" }
                                select id={ "area" (r.id) } name="area" {
                                    option value="" { "as the message says" }
                                    @for a in areas { option value=(a) { (a) } }
                                } }
                        }
                        (reason_and_token(s, &format!("open{}", r.id)))
                        button type="submit" { "Open a case" }
                    }
                }
                form.action method="post" action={ "/triage/" (r.id) "/not-case-business" } {
                    fieldset {
                        legend { "Not case business" }
                        input type="hidden" name="page" value=(page_no);
                        (reason_and_token(s, &format!("dismiss{}", r.id)))
                        button type="submit" { "Take it off the list" }
                    }
                }
            }
        }
    }
}

/// `/held`: replies held for a person, with "count this vote as …" and "dismiss it".
pub(super) async fn held(State(app): Shared, headers: HeaderMap) -> Response {
    let (s, memo) = match with_summaries(&app, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut items = Vec::new();
    for c in memo.all() {
        for (h, view) in &c.held {
            let choices = view.as_ref().map(|v| v.choices.clone()).unwrap_or_default();
            items.push((c.line.reference.clone(), h.clone(), view.clone(), choices));
        }
    }
    drop(memo);
    page("Held replies", Some(&s), html! {
        h1 { "Held replies" }
        @if items.is_empty() { p { "No reply is held." } }
        @for (reference, h, v, choices) in &items {
            article.message aria-labelledby={ "h" (h.message) } {
                h2 id={ "h" (h.message) } { "Case " a href={ "/cases/" (reference) } { (reference) } ": reply " (h.message) }
                dl {
                    dt { "From" } dd { (v.as_ref().map_or("someone outside the directory", |v| v.from.as_str())) }
                    dt { "Received" } dd { (short_instant(h.at)) }
                    dt { "About" } dd { (v.as_ref().and_then(|v| v.decision.clone()).unwrap_or_else(|| "no decision".into())) }
                    dt { "Why it was held" } dd { (scrub(&h.reason)) }
                }
                @if acts(&s) {
                    // One form per decision it may count on: a reply held naming none offers
                    // each open decision its sender votes on, and its form says which.
                    @for c in choices {
                        @let id = match h.decision { Some(_) => h.message.to_string(), None => format!("{}-{}", h.message, c.id) };
                        form.action method="post" action="/held/confirm" {
                            input type="hidden" name="case" value=(reference);
                            input type="hidden" name="message" value=(h.message);
                            @if h.decision.is_none() { input type="hidden" name="decision" value=(c.id); }
                            fieldset {
                                legend {
                                    @if h.decision.is_none() { "Count this as a vote on " (c.name) " …" }
                                    @else { "Count this vote as …" }
                                }
                                @for (i, o) in c.outcomes.iter().enumerate() {
                                    p { input type="radio" name="outcome" id={ "o" (id) "-" (i) } value=(o) required;
                                        label for={ "o" (id) "-" (i) } { (o.replace('_', " ")) } }
                                }
                                (reason_and_token(&s, &format!("reason{id}")))
                                button type="submit" { "Count this vote" }
                            }
                        }
                    }
                    // A reply that cannot count (too late, overtaken by the member's later
                    // answer, from before a reopening) or is no vote at all.
                    form.action method="post" action="/held/dismiss" {
                        input type="hidden" name="case" value=(reference);
                        input type="hidden" name="message" value=(h.message);
                        fieldset {
                            legend { "Dismiss it: it counts as no vote" }
                            (reason_and_token(&s, &format!("dismiss-held{}", h.message)))
                            button type="submit" { "Dismiss" }
                        }
                    }
                }
            }
        }
    })
    .into_response()
}

/// The undelivered letters a page lists.
struct Undelivered {
    undelivered: Vec<crate::core::views::UndeliveredView>,
}

/// `/undelivered`: letters refused, bounced or given up on, with "resend to …".
pub(super) async fn undelivered(State(app): Shared, headers: HeaderMap) -> Response {
    let (s, memo) = match with_summaries(&app, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let mut undelivered: Vec<_> = memo.all().flat_map(|c| c.undelivered.clone()).collect();
    drop(memo);
    // A lost digest or tracker report matters for a week (as in the digest).
    let week = now - chrono::Duration::days(7);
    let lost = match app.store.undelivered_without_case(week).await {
        Ok(l) => l,
        Err(e) => return failure(&e),
    };
    let ctx = snapshot::context(&app.cfg);
    let none = std::collections::BTreeMap::new();
    undelivered.extend(crate::core::views::undelivered_letters(
        &ctx, &none, &lost, now,
    ));
    undelivered.sort_by_key(|u| u.outbox);
    let snap = Undelivered { undelivered };
    page("Undelivered letters", Some(&s), html! {
        h1 { "Undelivered letters" }
        @if snap.undelivered.is_empty() { p { "Every letter was delivered." } }
        @for u in &snap.undelivered {
            article.message aria-labelledby={ "u" (u.outbox) } {
                h2 id={ "u" (u.outbox) } { (u.step_name) " to " (u.to) }
                dl {
                    @if let Some(c) = &u.case { dt { "Case" } dd { a href={ "/cases/" (c) } { (c) } } }
                    dt { "What happened" } dd { (u.how) }
                    dt { "Queued" } dd { (short_instant(u.queued_at)) }
                }
                @if let (true, Some(c)) = (acts(&s), &u.case) {
                    form.action method="post" action="/undelivered/resend" {
                        input type="hidden" name="case" value=(c);
                        input type="hidden" name="letter" value=(u.outbox);
                        fieldset {
                            legend { "Resend" }
                            p { label for={ "to" (u.outbox) } { "Resend to (leave empty for the same recipient)" }
                                input id={ "to" (u.outbox) } type="email" name="to" autocomplete="off"; }
                            (reason_and_token(&s, &format!("reason{}", u.outbox)))
                            button type="submit" { "Resend" }
                        }
                    }
                }
            }
        }
    })
    .into_response()
}

/// `/coming`: every letter that will go on each of today and the next 15 working days if
/// nothing changes ([`workspace::coming_days`]), for everyone signed in; changes nothing.
pub(super) async fn coming(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let (s, memo) = match with_summaries(&app, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let going = memo.all().flat_map(|c| c.coming.iter());
    let days = workspace::by_day(going, &app.cfg.calendar, now, workspace::RAPID_REVIEW_DAYS);
    drop(memo);
    let total: usize = days.iter().map(|(_, g)| g.len()).sum();
    let (shown, page_no, pages) = window(total, q.page.as_deref(), LETTERS_PER_PAGE);
    // The page's letters, still under their days.
    let mut skip = shown.start;
    let mut left = shown.len();
    let mut days_shown = Vec::new();
    for (day, going) in days {
        let from = skip.min(going.len());
        skip -= from;
        let take: Vec<_> = going.into_iter().skip(from).take(left).collect();
        left -= take.len();
        if !take.is_empty() {
            days_shown.push((day, take));
        }
    }
    let days = days_shown;
    page("Next 15 working days", Some(&s), html! {
        h1 { "The next 15 working days" }
        p { "Every letter that will go from today through the next " (workspace::RAPID_REVIEW_DAYS) " working days if nothing changes: letters already decided and waiting to go, and the steps each open case's timeline plans (a reply, a vote or a date moved by hand changes them). A letter already due goes on the daemon's next pass and is listed under today." }
        @if days.is_empty() { p { "No letter will go in that time." } } @else { p { (total) " letter(s)." } }
        @for (day, going) in &days {
            section aria-labelledby={ "day-" (day) } {
                h2 id={ "day-" (day) } { (short_date(*day)) }
                table {
                    thead { tr { th scope="col" { "Case" } th scope="col" { "When" } th scope="col" { "Letter" } th scope="col" { "To" } th scope="col" { "State" } } }
                    tbody { @for g in going {
                        tr {
                            th scope="row" { a href={ "/cases/" (g.reference) } { (g.reference) } }
                            td { (short_instant(g.at)) } td { (g.what) } td { (g.to) }
                            td { @if g.decided { "decided, waiting to go" } @else { "planned" } }
                        }
                    } }
                }
            }
        }
        (pager("/coming", "", page_no, pages))
    })
    .into_response()
}

/// `/tracker`: the tracker as a table (what `caseclerk export` writes), by reference, a page at
/// a time, with its downloads (every case).
pub(super) async fn tracker(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let (s, memo) = match with_summaries(&app, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut rows: Vec<&Summary> = memo.all().collect();
    rows.sort_by(|a, b| a.line.reference.cmp(&b.line.reference));
    let (shown, page_no, pages) = window(rows.len(), q.page.as_deref(), CASES_PER_PAGE);
    recorded_read(&app, &s, &format!("the tracker, page {page_no}")).await;
    let total = rows.len();
    let t: Vec<Vec<crate::core::export::Cell>> =
        rows[shown].iter().map(|c| c.tracker.clone()).collect();
    drop(memo);
    page("Tracker", Some(&s), html! {
        h1 { "Tracker" }
        p {
            "Download every case: " a href="/tracker.xlsx" { "spreadsheet (XLSX)" } " · " a href="/tracker.csv" { "CSV" }
        }
        p { (total) " case(s), by reference." }
        div.scroll role="region" aria-label="The tracker, one row per case" tabindex="0" {
            table {
                thead { tr { @for c in crate::core::export::COLUMNS { th scope="col" { (c) } } } }
                tbody { @for row in &t {
                    tr { @for (i, cell) in row.iter().enumerate() {
                        @if i == 0 { th scope="row" { a href={ "/cases/" (cell.as_text()) } { (cell.as_text()) } } }
                        @else { td { (cell.as_text()) } }
                    } }
                } }
            }
        }
        (pager("/tracker", "", page_no, pages))
    })
    .into_response()
}

/// `/tracker.csv` and `/tracker.xlsx`: the tracker as `caseclerk export` writes it.
pub(super) async fn tracker_file(
    State(app): Shared,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    use axum::http::header;
    let name = uri.path().trim_start_matches('/').to_string();
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = app.clock.now();
    recorded_read(&app, &s, &format!("the tracker: {name}")).await;
    // A download of every case, as `caseclerk export` writes it: the whole snapshot.
    let snap = match snapshot::gather(&app.cfg, &app.store, now, now).await {
        Ok(snap) => snap,
        Err(e) => return failure(&e),
    };
    let t = crate::core::export::rows(&snap, &app.cfg.process, None);
    let (bytes, kind) = match name.as_str() {
        "tracker.csv" => (
            crate::core::export::csv(&t).into_bytes(),
            "text/csv; charset=utf-8",
        ),
        "tracker.xlsx" => match crate::core::export::xlsx(
            &t,
            &crate::shell::periodic::tracker_heading(&app.cfg, now),
            now,
        ) {
            Ok(b) => (
                b,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            Err(e) => return failure(&e),
        },
        _ => return not_found("There is no such file."),
    };
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// One attachment of a stored message, as a download (never shown in the browser).
async fn attachment_of(app: &App, message: i64, index: usize) -> Response {
    use axum::http::header;
    let raw = match app.store.message_raw(message).await {
        Ok(Some(raw)) if !raw.is_empty() => raw,
        Ok(_) => {
            return not_found(
                "That message is not stored (or was erased under the retention schedule).",
            );
        }
        Err(e) => return failure(&e),
    };
    let Some(a) = crate::core::intake::parse(&raw)
        .attachments
        .into_iter()
        .nth(index)
    else {
        return not_found("That message has no such attachment.");
    };
    // What the letters withhold is not handed out here either: a program or a web page from
    // outside the council stays in the shared mailbox, behind its own protections.
    if let Some(risk) = trust::attachment_risk(&a) {
        return super::refusal(
            StatusCode::FORBIDDEN,
            &format!(
                "This file is a {}: caseclerk does not hand out programs, scripts, web pages or \
                 macro-enabled documents received by email. If the case needs it, ask IT to \
                 check it in the shared mailbox.",
                risk.label()
            ),
        );
    }
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition(&a.filename)),
        ],
        a.data,
    )
        .into_response()
}

/// `Content-Disposition` for a download of a file called `name` (RFC 6266): its ASCII form, and
/// its whole name percent-encoded, both without invisible characters ([`trust::shown_name`]).
fn disposition(name: &str) -> String {
    let shown = trust::shown_name(name);
    let encoded: String = shown
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{encoded}",
        crate::core::case_export::safe_name(&shown)
    )
}

/// `/cases/{reference}/messages/{message}/attachments/{index}`: a file of a message filed on the
/// case (an agency's return).
pub(super) async fn case_attachment(
    State(app): Shared,
    headers: HeaderMap,
    Path((reference, message, index)): Path<(String, i64, usize)>,
) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match one_case(&app, &reference).await {
        Ok(Some((c, _))) if c.state.messages.contains(&message) => {
            recorded_read(
                &app,
                &s,
                &format!("{reference}: file {index} of message {message}"),
            )
            .await;
            attachment_of(&app, message, index).await
        }
        Ok(_) => not_found("That case has no such message."),
        Err(r) => r,
    }
}

/// `/triage/{message}/attachments/{index}`: a file of a message waiting in triage.
pub(super) async fn triage_attachment(
    State(app): Shared,
    headers: HeaderMap,
    Path((message, index)): Path<(i64, usize)>,
) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match app.store.message_state(message).await {
        Ok(Some((state, _))) if state == "triage" => {
            recorded_read(
                &app,
                &s,
                &format!("triage: file {index} of message {message}"),
            )
            .await;
            attachment_of(&app, message, index).await
        }
        Ok(_) => not_found("That message is not waiting in triage."),
        Err(e) => failure(&e),
    }
}
