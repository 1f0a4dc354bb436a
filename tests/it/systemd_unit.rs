//! The systemd unit an operator installs, and the daemon's side of it: the unit scores "OK" on
//! systemd's own security analysis, does not restart for ever on a configuration error (exit 2),
//! and the daemon tells systemd it is ready, pings the watchdog after passes that worked with a
//! one-line status, and says when it is stopping.

use crate::support::{Harness, REFERRER, SHARED, referral};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/caseclerk.service");

#[test]
fn the_unit_scores_ok_on_systemds_security_analysis() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", UNIT])
        .output()
        .expect("systemd-analyze runs (Debian's systemd package; scripts/install-mailstack.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for caseclerk.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{text}"));
    assert!(
        score <= 2.0,
        "exposure {score} (2.0 or less is OK):\n{text}"
    );
}

#[test]
fn a_configuration_error_exits_2_and_the_unit_does_not_restart_on_it() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    assert!(
        !lines.iter().any(|l| l.starts_with("ExecStartPre=")),
        "nothing runs before the daemon: systemd restarts a failed ExecStartPre for ever, and \
         `check` refuses what `run` starts with (a missing [attachments] file)"
    );
    for wanted in [
        "ExecStart=/usr/local/bin/caseclerk --config /etc/caseclerk/caseclerk.toml run",
        "Type=notify",
        "RestartPreventExitStatus=2",
        "Restart=on-failure",
        "WatchdogSec=10min",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
    ] {
        assert!(lines.contains(&wanted), "the unit lacks {wanted}");
    }
    let dir = std::env::temp_dir().join(format!("caseclerk-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "[partnership]\nname = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(&broken)
        .arg("run")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The next notification the daemon sends, waiting at most 30 s for it.
async fn next(socket: &tokio::net::UnixDatagram, log: impl Fn() -> String) -> String {
    let mut buf = vec![0u8; 1024];
    match tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        other => panic!("no notification from the daemon ({other:?}):\n{}", log()),
    }
}

#[tokio::test]
async fn the_daemon_says_ready_pings_the_watchdog_after_each_pass_and_says_when_it_stops() {
    let h = Harness::start("bury").await;
    let path = Path::new(&std::env::temp_dir())
        .join(format!("caseclerk-notify-it-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
    let socket_var = path.display().to_string();
    let daemon = h.daemon_with_env(&[
        ("NOTIFY_SOCKET", &socket_var),
        ("WATCHDOG_USEC", "600000000"),
    ]);
    let log = || daemon.log();

    assert_eq!(
        next(&socket, log).await,
        "READY=1\nSTATUS=started; first pass"
    );
    let first = next(&socket, log).await;
    assert!(
        first.starts_with("WATCHDOG=1\nSTATUS=last pass "),
        "{first}"
    );

    h.deliver(
        REFERRER,
        SHARED,
        &referral("notify-1@hospital.test", "Rapid review referral"),
    )
    .await;
    let mut seen = Vec::new();
    loop {
        let n = next(&socket, log).await;
        assert!(n.starts_with("WATCHDOG=1\nSTATUS="), "{n}");
        assert!(!n.contains('@'), "a status names no one: {n}");
        seen.push(n.clone());
        if n.contains("1 message(s) processed") {
            break;
        }
        assert!(
            seen.len() < 20,
            "the referral's pass was never reported: {seen:?}"
        );
    }

    let log = daemon.terminate().await;
    let mut buf = vec![0u8; 1024];
    let mut stopping = false;
    while let Ok(n) = socket.try_recv(&mut buf) {
        stopping |= &buf[..n] == b"STOPPING=1";
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM:\n{log}");
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_the_first_pass_lets_it_end_and_the_daemon_exits_cleanly() {
    // A mail server that answers nothing for three seconds, then hangs up: the first pass is
    // still waiting for it when systemd (here, the test) stops the daemon.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3)).await;
                drop(s);
            });
        }
    });
    let h = Harness::start_with("bury", |c| {
        c["mailbox"]["port"] = toml::Value::Integer(port.into());
    })
    .await;
    let path = Path::new(&std::env::temp_dir())
        .join(format!("caseclerk-notify-term-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
    let socket_var = path.display().to_string();
    let daemon = h.daemon_with_env(&[("NOTIFY_SOCKET", &socket_var)]);
    assert_eq!(
        next(&socket, || daemon.log()).await,
        "READY=1\nSTATUS=started; first pass"
    );
    let (status, log) = daemon.terminated().await;
    assert_eq!(status.code(), Some(0), "{status:?}:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    std::fs::remove_file(&path).unwrap();
}

/// The package's postinst, run with every command it calls replaced by one that logs its
/// arguments, and systemd's "running" directory pointed at `systemd` (present or not).
fn postinst(args: &[&str], systemd: bool) -> String {
    let dir = std::env::temp_dir().join(format!(
        "caseclerk-postinst-{}-{}",
        std::process::id(),
        args.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let (bin, run) = (dir.join("bin"), dir.join("run-systemd"));
    std::fs::create_dir_all(&bin).unwrap();
    if systemd {
        std::fs::create_dir_all(&run).unwrap();
    }
    let log = dir.join("calls");
    for tool in [
        "getent",
        "adduser",
        "install",
        "chgrp",
        "chmod",
        "systemctl",
    ] {
        let stub = bin.join(tool);
        std::fs::write(
            &stub,
            format!("#!/bin/sh\necho \"{tool} $*\" >> {}\n", log.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/postinst"))
            .unwrap()
            .replace("/run/systemd/system", run.to_str().unwrap());
    let copy = dir.join("postinst");
    std::fs::write(&copy, script).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("sh")
        .arg(&copy)
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    calls
}

#[test]
fn an_upgrade_restarts_a_running_daemon_and_a_first_install_starts_nothing() {
    let upgrade = postinst(&["configure", "0.9.0"], true);
    assert!(
        upgrade.contains("systemctl try-restart caseclerk.service"),
        "{upgrade}"
    );
    let first = postinst(&["configure"], true);
    assert!(
        first.contains("systemctl enable caseclerk.service"),
        "{first}"
    );
    assert!(
        !first.contains("restart") && !first.contains("start caseclerk"),
        "{first}"
    );
    let no_systemd = postinst(&["configure", "0.9.0"], false);
    assert!(!no_systemd.contains("systemctl"), "{no_systemd}");
}
