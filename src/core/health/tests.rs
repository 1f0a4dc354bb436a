//! The health rules, one behaviour each: a healthy daemon is OK; each fault raises its own rule
//! at the level an on-call operator should see; the plugin line follows the Nagios convention.

use super::*;
use chrono::TimeZone;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, h, m, 0).unwrap()
}

fn read_at(t: DateTime<Utc>) -> Connection {
    Connection {
        last_ok_at: Some(t),
        last_error_at: None,
        failures: 0,
        last_error: None,
    }
}

/// A daemon that read the mailbox a minute ago, with nothing due.
fn healthy() -> Facts {
    Facts {
        now: at(10, 0),
        installed_at: Some(at(9, 0)),
        mailbox: Some(read_at(at(9, 59))),
        watcher: Some(read_at(at(9, 59))),
        smtp: None,
        token: None,
        credential_expiry: None,
        sent_folder: None,
        web: None,
        unprepared: None,
        pass: None,
        retention: None,
        unfetched: None,
        set_aside: None,
        notices: None,
        pending_due: 0,
        oldest_pending_due: None,
        retrying: 0,
        undelivered_recent: 0,
        in_flight_since: None,
        in_doubt_recent: 0,
        undecided_since: None,
        last_sent_at: Some(at(9, 30)),
        holidays_until: NaiveDate::from_ymd_opt(2028, 12, 31).unwrap(),
        disk_free: Some(10 << 30),
        database_writable: Some(true),
        last_backup: None,
    }
}

fn rules(f: &Facts) -> Vec<(Level, &'static str)> {
    assess(f, &Thresholds::default())
        .into_iter()
        .map(|x| (x.level, x.rule.name()))
        .collect()
}

#[test]
fn a_daemon_that_read_the_mailbox_a_minute_ago_with_nothing_late_is_ok() {
    let f = healthy();
    assert_eq!(rules(&f), []);
    assert_eq!(level(&assess(&f, &Thresholds::default())).exit_code(), 0);
    let line = plugin_line(&f, &[]);
    assert!(line.starts_with("CASECLERK OK - "), "{line}");
    assert!(
        line.contains("| last_fetch_age=60s;last_send_age=1800s;letters_due=0"),
        "{line}"
    );
}

#[test]
fn a_mailbox_not_read_for_a_quarter_of_an_hour_warns_and_for_an_hour_is_critical() {
    let mut f = healthy();
    f.mailbox = Some(read_at(at(9, 45)));
    assert_eq!(rules(&f), [(Level::Warning, "mailbox_stale")]);
    f.mailbox = Some(read_at(at(9, 0)));
    assert_eq!(rules(&f), [(Level::Critical, "mailbox_stale")]);
}

#[test]
fn a_new_install_that_never_read_the_mailbox_warns_then_becomes_critical() {
    let mut f = healthy();
    f.mailbox = None;
    f.installed_at = Some(at(9, 55));
    assert_eq!(rules(&f), [(Level::Warning, "mailbox_never_read")]);
    f.installed_at = Some(at(8, 0));
    assert_eq!(rules(&f), [(Level::Critical, "mailbox_never_read")]);
}

#[test]
fn a_mailbox_failing_since_its_last_success_is_named_as_failing_not_just_stale() {
    let mut f = healthy();
    f.mailbox = Some(Connection {
        last_ok_at: Some(at(9, 55)),
        last_error_at: Some(at(9, 58)),
        failures: 2,
        last_error: None,
    });
    assert_eq!(rules(&f), [(Level::Warning, "mailbox_failing")]);
    f.mailbox = Some(Connection {
        last_ok_at: Some(at(9, 0)),
        last_error_at: Some(at(9, 58)),
        failures: 30,
        last_error: None,
    });
    assert_eq!(rules(&f), [(Level::Critical, "mailbox_failing")]);
}

#[test]
fn an_error_cleared_by_a_later_success_is_not_failing() {
    let c = Connection {
        last_ok_at: Some(at(9, 59)),
        last_error_at: Some(at(9, 58)),
        failures: 0,
        last_error: None,
    };
    assert!(!c.failing());
    let mut f = healthy();
    f.mailbox = Some(c);
    assert_eq!(rules(&f), []);
}

#[test]
fn a_watcher_that_cannot_reach_the_server_warns_then_is_critical_after_five_minutes() {
    let mut f = healthy();
    f.watcher = Some(Connection {
        last_ok_at: Some(at(9, 58)),
        last_error_at: Some(at(9, 59)),
        failures: 1,
        last_error: None,
    });
    assert_eq!(rules(&f), [(Level::Warning, "watcher_failing")]);
    f.watcher = Some(Connection {
        last_ok_at: Some(at(9, 50)),
        last_error_at: Some(at(9, 59)),
        failures: 9,
        last_error: None,
    });
    assert_eq!(rules(&f), [(Level::Critical, "watcher_failing")]);
}

#[test]
fn a_watcher_gone_quiet_without_an_error_is_a_hung_daemon() {
    let mut f = healthy();
    f.watcher = Some(read_at(at(9, 56)));
    assert_eq!(rules(&f), [(Level::Warning, "watcher_silent")]);
    f.watcher = Some(read_at(at(9, 50)));
    assert_eq!(rules(&f), [(Level::Critical, "watcher_silent")]);
    f.watcher = None;
    assert_eq!(rules(&f), [], "a tick from cron has no watcher");
}

#[test]
fn the_thresholds_for_the_default_intervals_are_the_defaults() {
    use std::time::Duration as Std;
    assert_eq!(
        Thresholds::for_intervals(Std::from_secs(300), Std::from_secs(60)),
        Thresholds::default()
    );
    // Shorter intervals never make the rules more eager than the defaults.
    assert_eq!(
        Thresholds::for_intervals(Std::from_secs(1), Std::from_secs(1)),
        Thresholds::default()
    );
}

#[test]
fn a_quiet_mailbox_read_hourly_as_configured_is_raised_only_when_fetches_are_missed() {
    use std::time::Duration as Std;
    let t = Thresholds::for_intervals(Std::from_secs(3600), Std::from_secs(600));
    let found = |f: &Facts| -> Vec<(Level, &'static str)> {
        assess(f, &t)
            .into_iter()
            .map(|x| (x.level, x.rule.name()))
            .collect()
    };
    let mut f = healthy();
    // Fetched 59 minutes ago and watched 9 minutes ago: as configured, nothing to say.
    f.mailbox = Some(read_at(at(9, 1)));
    f.watcher = Some(read_at(at(9, 51)));
    assert_eq!(found(&f), []);
    // Two hourly fetches missed; then three.
    f.mailbox = Some(read_at(at(7, 50)));
    assert_eq!(found(&f), [(Level::Warning, "mailbox_stale")]);
    f.mailbox = Some(read_at(at(6, 50)));
    assert_eq!(found(&f), [(Level::Critical, "mailbox_stale")]);
    // The watcher: late after three of its checks, silent after five.
    f.mailbox = Some(read_at(at(9, 1)));
    f.watcher = Some(read_at(at(9, 20)));
    assert_eq!(found(&f), [(Level::Warning, "watcher_silent")]);
    f.watcher = Some(read_at(at(9, 9)));
    assert_eq!(found(&f), [(Level::Critical, "watcher_silent")]);
}

#[test]
fn a_refused_smtp_login_is_critical_because_every_letter_is_held() {
    let mut f = healthy();
    f.smtp = Some(Connection {
        last_ok_at: None,
        last_error_at: Some(at(9, 59)),
        failures: 1,
        last_error: None,
    });
    let found = assess(&f, &Thresholds::default());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].level, Level::Critical);
    assert_eq!(found[0].rule, Rule::SmtpLoginRefused);
    assert!(found[0].text.contains("every letter is held"), "{found:?}");
}

#[test]
fn a_notice_that_could_not_be_prepared_warns_for_a_day_after_its_last_failure() {
    let mut f = healthy();
    f.notices = Some(Connection {
        last_ok_at: None,
        last_error_at: Some(at(9, 0)),
        failures: 1,
        last_error: Some("a letter could not be prepared: RR-2026-0001 vote-confirmed: x".into()),
    });
    assert_eq!(rules(&f), [(Level::Warning, "notices_unprepared")]);
    f.now = at(9, 0) + Duration::hours(25);
    f.mailbox = Some(read_at(f.now));
    f.watcher = Some(read_at(f.now));
    f.last_sent_at = Some(f.now);
    assert_eq!(rules(&f), [], "a day later");
}

#[test]
fn messages_the_server_lists_and_will_not_give_are_critical_until_they_arrive() {
    let mut f = healthy();
    f.unfetched = failing(
        2,
        Some(
            "1 message(s) the mail server lists in INBOX were not handed over when asked (UID 105)",
        ),
    );
    let found = assess(&f, &Thresholds::default());
    assert_eq!(rules(&f), [(Level::Critical, "messages_unfetched")]);
    assert!(found[0].text.contains("UID 105"), "{found:?}");
    f.unfetched = Some(read_at(at(9, 59)));
    assert_eq!(rules(&f), []);
}

#[test]
fn retention_that_cannot_run_warns_after_ten_passes_in_a_row() {
    let mut f = healthy();
    let failing = |failures| {
        Some(Connection {
            last_ok_at: Some(at(9, 0) - Duration::days(1)),
            last_error_at: Some(at(9, 59)),
            failures,
            last_error: Some("retention could not run".into()),
        })
    };
    f.retention = failing(9);
    assert_eq!(rules(&f), []);
    f.retention = failing(10);
    assert_eq!(rules(&f), [(Level::Warning, "retention_failing")]);
    f.retention = Some(read_at(at(9, 59)));
    assert_eq!(rules(&f), []);
}

#[test]
fn a_backup_job_that_stopped_warns_after_two_days_and_none_recorded_is_no_finding() {
    let mut f = healthy();
    assert_eq!(rules(&f), [], "backups taken otherwise");
    f.last_backup = Some(f.now - Duration::hours(30));
    assert_eq!(rules(&f), []);
    f.last_backup = Some(f.now - Duration::hours(50));
    assert_eq!(rules(&f), [(Level::Warning, "backup_stale")]);
}

#[test]
fn passes_that_fail_after_the_fetch_warn_then_are_critical_after_ten_minutes() {
    let mut f = healthy();
    f.pass = Some(Connection {
        last_ok_at: Some(at(9, 55)),
        last_error_at: Some(at(9, 59)),
        failures: 4,
        last_error: Some("pass failed".into()),
    });
    assert_eq!(rules(&f), [(Level::Warning, "pass_failing")]);
    f.pass.as_mut().unwrap().last_ok_at = Some(at(9, 45));
    assert_eq!(rules(&f), [(Level::Critical, "pass_failing")]);
    f.pass.as_mut().unwrap().last_ok_at = None;
    assert_eq!(rules(&f), [(Level::Critical, "pass_failing")]);
    f.pass = Some(read_at(at(9, 59)));
    assert_eq!(rules(&f), [], "the last pass worked");
}

#[test]
fn a_letter_that_could_not_be_prepared_is_critical_until_a_pass_prepares_it() {
    let mut f = healthy();
    let said = "a letter could not be prepared: RR-2026-0001 agency-request: attachment \
                agency_template (/etc/caseclerk/template.docx) cannot be read";
    f.unprepared = failing(1, Some(said));
    let found = assess(&f, &Thresholds::default());
    assert_eq!(rules(&f), [(Level::Critical, "letters_unprepared")]);
    assert!(found[0].text.starts_with(said), "{found:?}");
    f.unprepared = Some(read_at(at(9, 59)));
    assert_eq!(rules(&f), [], "prepared again");
}

#[test]
fn an_smtp_server_that_is_not_trusted_is_critical_on_its_own_rule_and_names_the_ca_file() {
    let mut f = healthy();
    f.smtp = failing(2, Some(SmtpHold::CertificateNotTrusted.recorded()));
    let found = assess(&f, &Thresholds::default());
    assert_eq!(rules(&f), [(Level::Critical, "smtp_certificate_untrusted")]);
    assert!(found[0].text.contains("every letter is held"), "{found:?}");
    assert!(found[0].text.contains("[smtp] ca_file"), "{found:?}");
    f.smtp = failing(2, Some(SmtpHold::LoginRefused.recorded()));
    assert_eq!(rules(&f), [(Level::Critical, "smtp_login_refused")]);
    f.smtp = failing(1, Some(SmtpHold::SenderRefused.recorded()));
    let found = assess(&f, &Thresholds::default());
    assert_eq!(rules(&f), [(Level::Critical, "smtp_sender_refused")]);
    assert!(found[0].text.contains("Send As"), "{found:?}");
    f.smtp = failing(1, Some(SmtpHold::MailboxRefused.recorded()));
    let found = assess(&f, &Thresholds::default());
    assert_eq!(rules(&f), [(Level::Critical, "smtp_mailbox_refused")]);
    assert!(found[0].text.contains("free space"), "{found:?}");
    f.smtp = failing(1, Some(SmtpHold::ConnectionRefused.recorded()));
    let found = assess(&f, &Thresholds::default());
    assert_eq!(rules(&f), [(Level::Critical, "smtp_connection_refused")]);
    assert!(found[0].text.contains("ask IT"), "{found:?}");
}

fn failing(failures: i64, said: Option<&str>) -> Option<Connection> {
    Some(Connection {
        last_ok_at: Some(at(9, 0)),
        last_error_at: Some(at(9, 59)),
        failures,
        last_error: said.map(str::to_string),
    })
}

#[test]
fn a_token_refused_once_warns_and_five_passes_in_a_row_are_critical() {
    let mut f = healthy();
    f.token = failing(1, None);
    assert_eq!(rules(&f), [(Level::Warning, "token_failing")]);
    f.token = failing(5, None);
    assert_eq!(rules(&f), [(Level::Critical, "token_failing")]);
}

#[test]
fn a_secret_expiring_soon_warns_and_an_expired_one_is_critical_in_its_own_words() {
    let mut f = healthy();
    let soon = "the client secret expires on 2026-12-10 (14 day(s)): add a new one";
    f.credential_expiry = failing(1, Some(soon));
    let found = assess(&f, &Thresholds::default());
    assert_eq!(
        (found[0].level, found[0].text.as_str()),
        (Level::Warning, soon)
    );
    f.credential_expiry = failing(
        2,
        Some("the client secret expired on 2026-11-20: sign-in will fail"),
    );
    assert_eq!(rules(&f), [(Level::Critical, "credential_expiring")]);
}

#[test]
fn letters_that_cannot_be_filed_in_sent_items_warn() {
    let mut f = healthy();
    f.sent_folder = failing(3, None);
    assert_eq!(rules(&f), [(Level::Warning, "sent_folder_failing")]);
}

#[test]
fn a_letter_two_hours_late_warns_and_five_hours_late_is_critical() {
    let mut f = healthy();
    f.pending_due = 3;
    f.retrying = 1;
    f.oldest_pending_due = Some(at(9, 30));
    assert_eq!(rules(&f), [], "half an hour late is within a retry or two");
    f.oldest_pending_due = Some(at(8, 0));
    assert_eq!(rules(&f), [(Level::Warning, "letters_overdue")]);
    f.oldest_pending_due = Some(at(5, 0));
    assert_eq!(rules(&f), [(Level::Critical, "letters_overdue")]);
    let text = &assess(&f, &Thresholds::default())[0].text;
    assert!(
        text.starts_with("3 letter(s) due and not sent (1 retrying)"),
        "{text}"
    );
}

#[test]
fn a_letter_with_the_server_and_no_recorded_outcome_for_ten_minutes_warns_and_thirty_is_critical() {
    let mut f = healthy();
    f.in_flight_since = Some(at(9, 59));
    assert_eq!(rules(&f), [], "a letter being sent now");
    f.in_flight_since = Some(at(9, 45));
    assert_eq!(rules(&f), [(Level::Warning, "letter_in_flight")]);
    f.in_flight_since = Some(at(9, 15));
    assert_eq!(rules(&f), [(Level::Critical, "letter_in_flight")]);
}

#[test]
fn letters_re_sent_in_doubt_warn_and_undecided_mail_is_stuck_processing() {
    let mut f = healthy();
    f.in_doubt_recent = 1;
    assert_eq!(rules(&f), [(Level::Warning, "letters_in_doubt")]);
    f.in_doubt_recent = 0;
    f.undecided_since = Some(at(9, 40));
    assert_eq!(rules(&f), [(Level::Warning, "messages_undecided")]);
    f.undecided_since = Some(at(8, 30));
    assert_eq!(rules(&f), [(Level::Critical, "messages_undecided")]);
}

#[test]
fn a_message_set_aside_after_two_stops_warns_for_a_week_naming_only_its_id() {
    let mut f = healthy();
    f.set_aside = Some(Connection {
        last_ok_at: None,
        last_error_at: Some(at(9, 0)),
        failures: 1,
        last_error: Some("message 42 was set aside unread".into()),
    });
    assert_eq!(rules(&f), [(Level::Warning, "messages_set_aside")]);
    let text = &assess(&f, &Thresholds::default())[0].text;
    assert!(
        text.contains("message 42") && text.contains("Triage"),
        "{text}"
    );
    f.now = at(9, 0) + chrono::Duration::days(8);
    f.installed_at = None;
    f.mailbox = Some(read_at(f.now - chrono::Duration::minutes(1)));
    f.watcher = Some(read_at(f.now - chrono::Duration::minutes(1)));
    assert_eq!(rules(&f), [], "spoken of for a week, then not");
}

#[test]
fn undelivered_letters_warn_so_someone_resends_them() {
    let mut f = healthy();
    f.undelivered_recent = 2;
    assert_eq!(rules(&f), [(Level::Warning, "letters_undelivered")]);
}

#[test]
fn holiday_data_ending_within_six_months_warns_and_ended_data_is_critical() {
    let mut f = healthy();
    f.holidays_until = NaiveDate::from_ymd_opt(2027, 3, 31).unwrap();
    assert_eq!(rules(&f), [(Level::Warning, "holiday_data_ending")]);
    f.holidays_until = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    assert_eq!(rules(&f), [(Level::Critical, "holiday_data_ending")]);
    f.holidays_until = NaiveDate::from_ymd_opt(2027, 12, 31).unwrap();
    assert_eq!(rules(&f), []);
}

#[test]
fn little_disk_space_beside_the_database_warns_and_almost_none_is_critical() {
    let mut f = healthy();
    f.disk_free = Some(200 << 20);
    assert_eq!(rules(&f), [(Level::Warning, "disk_low")]);
    f.disk_free = Some(10 << 20);
    assert_eq!(rules(&f), [(Level::Critical, "disk_low")]);
    f.disk_free = None;
    assert_eq!(rules(&f), [], "unmeasured space is not a finding");
}

#[test]
fn a_database_this_user_cannot_write_is_critical() {
    let mut f = healthy();
    f.database_writable = Some(false);
    assert_eq!(rules(&f), [(Level::Critical, "database_read_only")]);
    f.database_writable = None;
    assert_eq!(rules(&f), []);
}

#[test]
fn the_worst_finding_decides_the_exit_code_and_leads_the_first_line() {
    let mut f = healthy();
    f.undelivered_recent = 1;
    f.smtp = Some(Connection {
        last_ok_at: None,
        last_error_at: Some(at(9, 59)),
        failures: 4,
        last_error: None,
    });
    let found = assess(&f, &Thresholds::default());
    assert_eq!(level(&found), Level::Critical);
    assert_eq!(level(&found).exit_code(), 2);
    let line = plugin_line(&f, &found);
    let first = line.lines().next().unwrap();
    assert!(
        first.starts_with("CASECLERK CRITICAL - the mail server refuses"),
        "{first}"
    );
    assert!(first.contains("(and 1 more)"), "{first}");
    assert_eq!(line.lines().count(), 3, "{line}");
    assert!(line.contains("WARNING: 1 letter(s) undelivered"), "{line}");
}

#[test]
fn the_levels_exit_with_the_monitoring_plugin_codes() {
    let codes: Vec<u8> = [Level::Ok, Level::Warning, Level::Critical, Level::Unknown]
        .into_iter()
        .map(Level::exit_code)
        .collect();
    assert_eq!(codes, [0, 1, 2, 3]);
}

#[test]
fn the_bank_holiday_warning_starts_six_months_before_the_data_runs_out_counted_in_london_dates() {
    let until = NaiveDate::from_ymd_opt(2028, 12, 31).unwrap();
    let t = Thresholds::default();
    let judge =
        |now: &str| holiday_data(until, now.parse().unwrap(), &t).map(|f| (f.level, f.rule.name()));
    // 184 days left on Fri 30 Jun 2028 in London: nothing yet.
    assert_eq!(judge("2028-06-30T22:59:59Z"), None);
    // 23:00 UTC is already Sat 1 Jul in London (BST): 183 days left, the warning starts.
    assert_eq!(
        judge("2028-06-30T23:00:00Z"),
        Some((Level::Warning, "holiday_data_ending"))
    );
    assert_eq!(
        judge("2028-12-31T12:00:00Z"),
        Some((Level::Warning, "holiday_data_ending"))
    );
    assert_eq!(
        judge("2029-01-01T00:00:00Z"),
        Some((Level::Critical, "holiday_data_ending"))
    );
}

#[test]
fn failures_after_the_clock_was_set_back_are_still_failures() {
    // The machine's clock ran a day fast, the login worked, the clock was corrected, and the
    // login has failed three times since: each failure is stamped before the success.
    let mut f = healthy();
    let mut smtp = failing(3, Some(SmtpHold::LoginRefused.recorded())).unwrap();
    smtp.last_ok_at = Some(f.now + chrono::Duration::days(1));
    f.smtp = Some(smtp);
    assert_eq!(rules(&f), [(Level::Critical, "smtp_login_refused")]);
}
