//! The sign-in's second step: the page asking for the code of an account with a second factor,
//! and checking it ([`super::second_factor::second_step`]).
//!
//! Owns the step's cookie (`__Host-caseclerk_step`: the random token of a half-done sign-in, five
//! minutes, Secure, HttpOnly, SameSite=Strict) and the answers: a session, the code asked again,
//! or back to the sign-in page. The form carries the sign-in form's own token, as the password
//! form does.
//!
//! Must not: put the code or the step's token in a URL or the log; give a session without a
//! right code.

use super::second_factor::{self, Step};
use super::{
    Remote, SESSION_COOKIE, Shared, accounts, cookie, failure, page, set_cookie, sign_in_form,
};
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

/// The cookie holding a half-done sign-in's token.
const STEP_COOKIE: &str = "__Host-caseclerk_step";

/// `r` with one more cookie set.
pub(super) fn with_cookie(mut r: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The answer to a sign-in that gave a session: its cookie, and the cases.
pub(super) fn signed_in_now(new: &accounts::NewSession) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/cases".to_string()),
            (
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &new.token, None),
            ),
        ],
    )
        .into_response()
}

/// The page asking for the code; `step`: the second step's token, to set as its cookie.
pub(super) fn code_form(csrf: &str, step: Option<&str>, message: Option<&str>) -> Response {
    let body = page(
        "Your code",
        None,
        html! {
            h1 { "Your code" }
            @if let Some(m) = message { p.refusal role="alert" { (m) } }
            p { "Open the authenticator app on your phone and type the 6-digit code it shows for caseclerk." }
            form method="post" action="/sign-in/code" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="code" { "Code" }
                    input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus;
                }
                button type="submit" { "Sign in" }
            }
            p { a href="/sign-in" { "Start again" } }
        },
    );
    let mut r = body.into_response();
    if let Some(token) = step {
        let age = second_factor::SECOND_STEP_MINUTES * 60;
        r = with_cookie(r, &set_cookie(STEP_COOKIE, token, Some(age)));
    }
    r
}

#[derive(serde::Deserialize)]
pub(super) struct Code {
    csrf: String,
    code: String,
}

/// `POST /sign-in/code`: the code after the password.
pub(super) async fn sign_in_code(
    State(app): Shared,
    ConnectInfo(Remote(remote)): ConnectInfo<Remote>,
    headers: HeaderMap,
    Form(f): Form<Code>,
) -> Response {
    if let Some(stale) = super::stale_sign_in_form(&headers, &f.csrf) {
        return stale;
    }
    let again = |why: &str| {
        let mut r = sign_in_form(Some(why));
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        with_cookie(r, &set_cookie(STEP_COOKIE, "", Some(0)))
    };
    let Some(step) = cookie(&headers, STEP_COOKIE) else {
        return again("Sign in again: the code must follow the password within 5 minutes.");
    };
    let key = second_factor::key_path(&app.cfg.database);
    let now = app.clock.now();
    match second_factor::second_step(&app.store, &key, step, &f.code, &remote.to_string(), now)
        .await
    {
        Ok(Step::Session(new)) => {
            with_cookie(signed_in_now(&new), &set_cookie(STEP_COOKIE, "", Some(0)))
        }
        Ok(Step::WrongCode) => {
            let mut r = code_form(
                &f.csrf,
                None,
                Some("That code is wrong, or was used already. Type the code your app shows now."),
            );
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Ok(Step::Over) => again(
            "Sign in again: the code came more than 5 minutes after the password, or the account is locked (after 5 failed sign-ins, for 15 minutes) or disabled.",
        ),
        Err(e) => failure(&e),
    }
}
