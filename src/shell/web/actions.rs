//! The workspace's actions: each one an operator command of [`crate::shell::operator`] (the code
//! `caseclerk attach`, `confirm` and `resend` run), recorded as the signed-in person with their
//! reason, refused with the same reasons.
//!
//! Owns reading the form, checking the session, its CSRF token and its role ([`super::may_act`]),
//! and answering: to the case page on success (the change shows at once), or a page with the
//! command's own refusal.
//!
//! Must not: change a case any other way than through the operator commands; put what a form
//! carried (an address, a reason) in a URL or the log.

use super::{App, failure, may_act, refusal};
use crate::shell::operator::{self, AttachAs, OperatorError};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;

type Shared = State<Arc<App>>;

/// Done: to the case's page. Refused: the command's reason.
fn answer(result: Result<(), OperatorError>, reference: &str) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/cases/{reference}")).into_response(),
        Err(OperatorError::Store(e)) => failure(&e),
        Err(e) => refusal(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

/// The session may act and its form is this session's: run the command as the person, log the
/// outcome (ids only) and answer.
async fn run<F, Fut>(
    app: &App,
    headers: &HeaderMap,
    csrf: &str,
    reference: &str,
    action: &'static str,
    command: F,
) -> Response
where
    F: FnOnce(String, chrono::DateTime<chrono::Utc>) -> Fut,
    Fut: std::future::Future<Output = Result<(), OperatorError>>,
{
    let s = match may_act(app, headers, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let result = command(super::actor(&s), app.clock.now()).await;
    tracing::info!(user = s.user_id, action, ok = result.is_ok(), "web action");
    answer(result, reference)
}

/// A case reference as typed: trimmed, capitals (references are `RR-2026-0001`).
fn reference(typed: &str) -> String {
    typed.trim().to_uppercase()
}

#[derive(serde::Deserialize)]
pub(super) struct AttachForm {
    csrf: String,
    case: String,
    #[serde(rename = "as")]
    how: String,
    #[serde(default)]
    agency: String,
    reason: String,
}

/// `POST /triage/{message}/attach`: `caseclerk attach`.
pub(super) async fn attach(
    State(app): Shared,
    headers: HeaderMap,
    Path(message): Path<i64>,
    Form(f): Form<AttachForm>,
) -> Response {
    let r = reference(&f.case);
    let (app, f, r) = (&app, &f, &r);
    run(
        app,
        &headers,
        &f.csrf,
        r,
        "attach",
        |actor, now| async move {
            let agency = f.agency.trim().to_string();
            let how = match (f.how.as_str(), agency.is_empty()) {
                ("reply", _) => AttachAs::Note,
                ("return" | "nil", true) => {
                    return Err(OperatorError::Case(
                        "choose the agency whose return this is".into(),
                    ));
                }
                ("return", false) => AttachAs::Return { agency, nil: false },
                ("nil", false) => AttachAs::Return { agency, nil: true },
                _ => return Err(OperatorError::Case("choose how to attach it".into())),
            };
            let (cfg, store) = (&app.cfg, &app.store);
            operator::attach(cfg, store, r, message, how, &f.reason, &actor, now).await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct ConfirmForm {
    csrf: String,
    case: String,
    message: i64,
    /// Sent only for a reply held naming no decision: the one its form confirms it on.
    #[serde(default)]
    decision: Option<String>,
    outcome: String,
    reason: String,
}

/// `POST /held/confirm`: `caseclerk confirm`, a held reply counted as a vote.
pub(super) async fn confirm(
    State(app): Shared,
    headers: HeaderMap,
    Form(f): Form<ConfirmForm>,
) -> Response {
    let r = reference(&f.case);
    let (app, f, r) = (&app, &f, &r);
    run(
        app,
        &headers,
        &f.csrf,
        r,
        "confirm",
        |actor, now| async move {
            let (cfg, store) = (&app.cfg, &app.store);
            let decision = f.decision.as_deref();
            operator::confirm_held(
                cfg, store, r, f.message, decision, &f.outcome, &f.reason, &actor, now,
            )
            .await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct DismissHeldForm {
    csrf: String,
    case: String,
    message: i64,
    reason: String,
}

/// `POST /held/dismiss`: `caseclerk dismiss`, a held reply that counts as no vote.
pub(super) async fn dismiss_held(
    State(app): Shared,
    headers: HeaderMap,
    Form(f): Form<DismissHeldForm>,
) -> Response {
    let r = reference(&f.case);
    let (app, f, r) = (&app, &f, &r);
    run(
        app,
        &headers,
        &f.csrf,
        r,
        "dismiss",
        |actor, now| async move {
            operator::dismiss_held(&app.store, r, f.message, &f.reason, &actor, now).await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct ResendForm {
    csrf: String,
    case: String,
    letter: i64,
    #[serde(default)]
    to: String,
    reason: String,
}

/// `POST /undelivered/resend`: `caseclerk resend`, to the same recipient or another address.
pub(super) async fn resend(
    State(app): Shared,
    headers: HeaderMap,
    Form(f): Form<ResendForm>,
) -> Response {
    let r = reference(&f.case);
    let (app, f, r) = (&app, &f, &r);
    run(
        app,
        &headers,
        &f.csrf,
        r,
        "resend",
        |actor, now| async move {
            let to = Some(f.to.trim()).filter(|t| !t.is_empty());
            let (cfg, store) = (&app.cfg, &app.store);
            let sent = operator::resend(cfg, store, r, f.letter, to, &f.reason, &actor, now).await;
            sent.map(|_| ())
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct AgencyForm {
    csrf: String,
    agency: String,
    reason: String,
}

/// `POST /cases/{reference}/agencies`: `caseclerk agencies add` (asked at once if the request
/// day has passed).
pub(super) async fn add_agency(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<AgencyForm>,
) -> Response {
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "add agency",
        |actor, now| async move {
            if f.reason.trim().is_empty() {
                return Err(OperatorError::NoReason);
            }
            let names = std::slice::from_ref(&f.agency);
            let reason = Some(f.reason.trim());
            let added =
                operator::add_agencies(&app.cfg, &app.store, reference, names, reason, &actor, now);
            added.await.map(|_| ())
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct MoveForm {
    csrf: String,
    what: String,
    date: String,
    time: String,
    reason: String,
}

/// `POST /cases/{reference}/reschedule`: `caseclerk reschedule` (extend, adjourn) to a London
/// date and time.
pub(super) async fn reschedule(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<MoveForm>,
) -> Response {
    let (Ok(date), Ok(time)) = (
        chrono::NaiveDate::parse_from_str(f.date.trim(), "%Y-%m-%d"),
        chrono::NaiveTime::parse_from_str(f.time.trim(), "%H:%M"),
    ) else {
        return refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Give the new date (like 2026-09-03) and time (like 14:00), London time.",
        );
    };
    let at = crate::core::calendar::london_instant(date, time);
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "reschedule",
        |actor, now| async move {
            let (cfg, store) = (&app.cfg, &app.store);
            operator::reschedule(cfg, store, reference, &f.what, at, &f.reason, &actor, now).await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct StatusForm {
    csrf: String,
    /// `close` or `reopen`.
    to: String,
    reason: String,
}

/// `POST /cases/{reference}/status`: `caseclerk close` / `reopen`.
pub(super) async fn set_status(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<StatusForm>,
) -> Response {
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "case status",
        |actor, now| async move {
            let close = f.to == "close";
            operator::set_status(&app.store, reference, close, &f.reason, &actor, now).await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct DismissForm {
    csrf: String,
    reason: String,
    /// The triage page the form was on, to go back to it (anything but a number: the first).
    #[serde(default)]
    page: String,
}

/// `POST /triage/{message}/not-case-business`: `caseclerk not-case-business`; back to the
/// triage page it was on, so someone working through a first run's backlog keeps their place.
pub(super) async fn not_case_business(
    State(app): Shared,
    headers: HeaderMap,
    Path(message): Path<i64>,
    Form(f): Form<DismissForm>,
) -> Response {
    let s = match may_act(&app, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let result =
        operator::not_case_business(&app.store, message, &f.reason, &super::actor(&s), now).await;
    triage_answer(
        &s,
        "not case business",
        result.map(|()| match f.page.trim().parse::<usize>() {
            Ok(page) if page > 1 => format!("/triage?page={page}"),
            _ => "/triage".to_string(),
        }),
    )
}

/// A triage action done (to the page `to`) or refused, logged with ids only.
fn triage_answer(
    s: &super::Session,
    action: &'static str,
    result: Result<String, OperatorError>,
) -> Response {
    tracing::info!(user = s.user_id, action, ok = result.is_ok(), "web action");
    match result {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(OperatorError::Store(e)) => failure(&e),
        Err(e) => refusal(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    }
}

/// `POST /cases/{reference}/particulars`: `caseclerk particulars --confirm … --set …`. The form
/// names each field (`confirm_date_of_birth=yes`, `set_initials=AB`); an empty box is no change.
/// The values go to the command only: never into the answer's address or the log.
pub(super) async fn check_particulars(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let given = |name: &str| {
        let found = fields.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.as_str()).unwrap_or_default()
    };
    let (csrf, reason) = (given("csrf").to_string(), given("reason").to_string());
    let mut checks = operator::ParticularChecks::default();
    for (key, value) in &fields {
        if let Some(f) = key.strip_prefix("confirm_") {
            checks.confirm.push(f.to_string());
        } else if let Some(f) = key
            .strip_prefix("set_")
            .filter(|_| !value.trim().is_empty())
        {
            checks.set.push((f.to_string(), value.trim().to_string()));
        }
    }
    let (app, checks, reference, reason) = (&app, &checks, &reference, &reason);
    run(
        app,
        &headers,
        &csrf,
        reference,
        "check particulars",
        |actor, now| async move {
            let checked =
                operator::check_particulars(&app.store, reference, checks, reason, &actor, now);
            checked.await.map(|_| ())
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct DecideForm {
    csrf: String,
    /// `decision/outcome`.
    choice: String,
    #[serde(default)]
    replace: String,
    reason: String,
}

/// `POST /cases/{reference}/decide`: `caseclerk decide` (with `--replace` when ticked).
pub(super) async fn decide(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<DecideForm>,
) -> Response {
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "decide",
        |actor, now| async move {
            let (decision, outcome) = f.choice.split_once('/').unwrap_or((&f.choice, ""));
            let replace = f.replace == "yes";
            let (cfg, store, reason) = (&app.cfg, &app.store, &f.reason);
            operator::decide(
                cfg, store, reference, decision, outcome, reason, replace, &actor, now,
            )
            .await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct ReasonForm {
    csrf: String,
    reason: String,
}

/// `POST /cases/{reference}/cancel-meeting`: `caseclerk cancel-meeting`.
pub(super) async fn cancel_meeting(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "cancel meeting",
        |actor, now| async move {
            let (cfg, store) = (&app.cfg, &app.store);
            operator::cancel_meeting(cfg, store, reference, &f.reason, &actor, now).await
        },
    )
    .await
}

/// `POST /cases/{reference}/agencies/remove`: `caseclerk agencies remove`.
pub(super) async fn remove_agency(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<AgencyForm>,
) -> Response {
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "remove agency",
        |actor, now| async move {
            let (cfg, store, agency) = (&app.cfg, &app.store, &f.agency);
            let removed =
                operator::remove_agency(cfg, store, reference, agency, &f.reason, &actor, now);
            removed.await.map(|_| ())
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct WithdrawForm {
    csrf: String,
    message: i64,
    reason: String,
}

/// `POST /cases/{reference}/returns/withdraw`: `caseclerk agencies withdraw`.
pub(super) async fn withdraw_return(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<WithdrawForm>,
) -> Response {
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "withdraw return",
        |actor, now| async move {
            let store = &app.store;
            let taken =
                operator::withdraw_return(store, reference, f.message, &f.reason, &actor, now);
            taken.await.map(|_| ())
        },
    )
    .await
}

/// `POST /cases/{reference}/hold`: `caseclerk hold` (`to=place`) or `caseclerk release`.
pub(super) async fn hold(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<StatusForm>,
) -> Response {
    use crate::shell::retention::{HoldError, set_hold};
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "legal hold",
        |actor, now| async move {
            let place = f.to == "place";
            let held = set_hold(&app.store, reference, place, &f.reason, &actor, now).await;
            held.map_err(|e| match e {
                HoldError::Store(e) => OperatorError::Store(e),
                e => OperatorError::Case(e.to_string()),
            })
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct OpenForm {
    csrf: String,
    #[serde(default)]
    area: String,
    reason: String,
}

/// `POST /triage/{message}/open`: `caseclerk open-referral`; to the new case's page.
pub(super) async fn open_referral(
    State(app): Shared,
    headers: HeaderMap,
    Path(message): Path<i64>,
    Form(f): Form<OpenForm>,
) -> Response {
    let s = match may_act(&app, &headers, &f.csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (now, actor) = (app.clock.now(), super::actor(&s));
    let area = Some(f.area.as_str()).filter(|a| !a.is_empty());
    let result =
        operator::open_referral(&app.cfg, &app.store, message, area, &f.reason, &actor, now).await;
    triage_answer(&s, "open referral", result.map(|r| format!("/cases/{r}")))
}

#[derive(serde::Deserialize)]
pub(super) struct ReviewerForm {
    csrf: String,
    reviewer: String,
    reason: String,
}

/// `POST /cases/{reference}/reviewer`: `caseclerk set-reviewer` (the tracker's "Reviewer").
pub(super) async fn set_reviewer(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<ReviewerForm>,
) -> Response {
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "reviewer",
        |actor, now| async move {
            let (store, name) = (&app.store, &f.reviewer);
            operator::set_reviewer(store, reference, name, &f.reason, &actor, now).await
        },
    )
    .await
}

#[derive(serde::Deserialize)]
pub(super) struct PublicationForm {
    csrf: String,
    date: String,
    reason: String,
}

/// `POST /cases/{reference}/publication`: `caseclerk publication` (an LCSPR report's planned
/// publication date).
pub(super) async fn plan_publication(
    State(app): Shared,
    headers: HeaderMap,
    Path(reference): Path<String>,
    Form(f): Form<PublicationForm>,
) -> Response {
    let Ok(date) = chrono::NaiveDate::parse_from_str(f.date.trim(), "%Y-%m-%d") else {
        return refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Give the planned publication date, like 2027-03-01.",
        );
    };
    let (app, f, reference) = (&app, &f, &reference);
    run(
        app,
        &headers,
        &f.csrf,
        reference,
        "publication",
        |actor, now| async move {
            let (cfg, store) = (&app.cfg, &app.store);
            operator::plan_publication(cfg, store, reference, date, &f.reason, &actor, now).await
        },
    )
    .await
}
