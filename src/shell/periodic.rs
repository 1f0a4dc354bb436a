//! Periodic emails to people: the daily digest and the tracker report.
//!
//! Owns queueing them through the outbox, once each, when [`crate::core::timeline::periodic`]
//! says they are due:
//! - the **daily digest** (`[digest]` in the configuration): on each working day
//!   at `at` London time, to the `to` role (default
//!   `business_unit`), under the outbox key `digest/YYYY-MM-DD`. If caseclerk was not running at
//!   `at`, it goes as soon as it runs that day (late beats never). "Since the last digest" is since
//!   the previous digest was sent, or the last 24 hours for the first.
//! - the **tracker report** (`[tracker_report]` in the process file): once per period (month, or
//!   every N weeks) on its day at its time, to its roles, with the tracker spreadsheet attached,
//!   under `tracker-report/<period>`. A period whose report is missing is caught up the first time
//!   caseclerk runs on or after its day within that period.
//!
//! Both are letters with no case (`case_id` NULL), our own Message-ID and `Auto-Submitted`, sent
//! by [`crate::shell::outbox`] like every other letter (made by [`letters::people_letter`], queued by
//! [`crate::shell::outbox::enqueue`]). The engine calls [`queue_due`] once per pass,
//! after planning the cases (so the digest sees today's letters decided) and before sending; the
//! instant the next one falls due feeds the daemon's wake-up.
//!
//! Must not: decide anything about a case, or send by itself; log names or addresses.

use crate::core::digest;
use crate::core::export;
use crate::core::export::tracker_data;
use crate::core::letters::{self, LetterError, Letterhead, OutAttachment, Templates};
use crate::core::process::TrackerReport;
use crate::core::timeline::periodic::{digest_due, period_words, tracker_due};
use crate::core::views::{DIGEST_STEP, TRACKER_STEP};
use crate::shell::config::{Config, Contact};
use crate::shell::store::{NewLetter, Store, StoreError};
use chrono::{DateTime, Utc};

/// Queue whatever periodic email is due at `now`. Returns (letters queued, next due instant).
///
/// A date beyond the holiday data or a template that will not render is logged and skipped (the
/// cases' letters still go); a database error stops the pass like any other.
pub async fn queue_due(
    cfg: &Config,
    store: &Store,
    templates: &Templates,
    head: &Letterhead<'_>,
    now: DateTime<Utc>,
    unprepared: &mut Vec<String>,
) -> Result<(usize, Option<DateTime<Utc>>), StoreError> {
    let mut queued = 0;
    let mut wake: Option<DateTime<Utc>> = None;
    let mut wake_at = |t: DateTime<Utc>| {
        if t > now {
            wake = Some(wake.map_or(t, |w: DateTime<Utc>| w.min(t)));
        }
    };
    if let Some(settings) = &cfg.digest {
        match digest_due(&cfg.calendar, settings.at, now) {
            Err(e) => tracing::error!(error = %e, "the daily digest cannot be scheduled"),
            Ok(due) => {
                wake_at(due.next);
                if let Some((key, due_at)) = due.now
                    && !store.letter_exists(&key).await?
                {
                    let letter =
                        digest_letter(cfg, store, templates, head, &settings.to, &key, due_at, now)
                            .await?;
                    queued +=
                        queue_periodic(store, letter, DIGEST_STEP, &key, now, unprepared).await?;
                }
            }
        }
    }
    if let Some(t) = &cfg.process.tracker_report {
        match tracker_due(&cfg.calendar, t, now) {
            Err(e) => tracing::error!(error = %e, "the tracker report cannot be scheduled"),
            Ok(due) => {
                wake_at(due.next);
                for (key, due_at) in due.caught.into_iter().chain(due.now) {
                    if store.letter_exists(&key).await? {
                        continue;
                    }
                    let letter =
                        tracker_letter(cfg, store, templates, head, t, &key, due_at, now).await?;
                    queued +=
                        queue_periodic(store, letter, TRACKER_STEP, &key, now, unprepared).await?;
                }
            }
        }
    }
    Ok((queued, wake))
}

/// Queue a periodic letter through the outbox; one that could not be made is logged, added to
/// `unprepared` (the pass raises it: [`crate::shell::store::PREPARE_HEALTH_KEY`]) and skipped.
async fn queue_periodic(
    store: &Store,
    letter: Result<NewLetter, LetterError>,
    step: &str,
    key: &str,
    now: DateTime<Utc>,
    unprepared: &mut Vec<String>,
) -> Result<usize, StoreError> {
    let letter = match letter {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(step, error = %e.for_log(), "a periodic letter could not be prepared");
            unprepared.push(format!("{step}: {}", e.for_log()));
            return Ok(0);
        }
    };
    let mut tx = store.begin().await?;
    let id = crate::shell::outbox::enqueue(&mut tx, &letter, now).await?;
    Store::commit(tx).await?;
    if let Some(id) = id {
        tracing::info!(outbox = id, step, key, "periodic letter decided");
    }
    Ok(usize::from(id.is_some()))
}

/// The daily digest as a letter to the people in `role`.
#[allow(clippy::too_many_arguments)]
async fn digest_letter(
    cfg: &Config,
    store: &Store,
    templates: &Templates,
    head: &Letterhead<'_>,
    role: &str,
    key: &str,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Result<NewLetter, LetterError>, StoreError> {
    let since = crate::shell::snapshot::since_last(store, DIGEST_STEP, key, now).await?;
    let snap = crate::shell::snapshot::gather(cfg, store, now, since).await?;
    let d = match digest::build(&snap, &cfg.calendar).and_then(|d| digest::render(&d, templates)) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Err(LetterError::Compose(format!(
                "the daily digest cannot be built: {e}"
            ))));
        }
    };
    let people = cfg.people(role, None);
    Ok(letters::people_letter(
        head,
        people,
        DIGEST_STEP,
        &format!("role:{role}"),
        key,
        due_at,
        d,
        Vec::new(),
        now,
    ))
}

/// The tracker spreadsheet's printed heading: the partnership, the marking (`[letters] marking`)
/// and the date it is as at (London). `caseclerk export` and the tracker report use it.
pub fn tracker_heading(cfg: &Config, now: DateTime<Utc>) -> export::Heading<'_> {
    export::Heading {
        partnership: &cfg.partnership_name,
        marking: cfg.paperwork.marking.as_deref(),
        as_at: crate::core::calendar::london_date(now),
    }
}

/// The tracker report as a letter to its roles, with the spreadsheet attached.
#[allow(clippy::too_many_arguments)]
async fn tracker_letter(
    cfg: &Config,
    store: &Store,
    templates: &Templates,
    head: &Letterhead<'_>,
    t: &TrackerReport,
    key: &str,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Result<NewLetter, LetterError>, StoreError> {
    let snap = crate::shell::snapshot::gather(cfg, store, now, now).await?;
    let tracker = export::rows(&snap, &cfg.process, None);
    let xlsx = match export::xlsx(&tracker, &tracker_heading(cfg, now), now) {
        Ok(b) => b,
        Err(e) => {
            return Ok(Err(LetterError::Compose(format!(
                "the tracker spreadsheet cannot be built: {e}"
            ))));
        }
    };
    let slug: String = cfg
        .short_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let period = key.rsplit('/').next().unwrap_or_default();
    let filename = format!("{slug}-tracker-{period}.xlsx");
    let data = tracker_data(
        (&cfg.partnership_name, &cfg.short_name, &cfg.address),
        &period_words(key, t.every),
        &filename,
        &snap,
        &cfg.process,
    );
    let rendered = match templates.render(&t.template, &data) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let mut people: Vec<Contact> = Vec::new();
    for role in &t.to {
        for c in cfg.people(&role.to_string(), None) {
            if !people
                .iter()
                .any(|p| p.email.eq_ignore_ascii_case(&c.email))
            {
                people.push(c.clone());
            }
        }
    }
    let recipient = format!(
        "role:{}",
        t.to.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("+")
    );
    Ok(letters::people_letter(
        head,
        &people,
        TRACKER_STEP,
        &recipient,
        key,
        due_at,
        rendered,
        vec![OutAttachment {
            filename,
            content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                .into(),
            data: xlsx,
        }],
        now,
    ))
}
