//! The Debian package, installed as an operator installs it: `scripts/package-deb.sh` builds it
//! around this build's binary, `dpkg -i` installs it on this (throwaway) machine, and then: the
//! files are where Debian puts them, `caseclerk check` works with no `--config` (the installed
//! default), the state directory is 0700 and the daemon's own, and purging removes what the
//! package added (and the password file: no secret left behind) but keeps the case data in
//! `/var/lib/caseclerk`.
//!
//! This test changes the machine it runs on (a system user, files under /etc, /usr, /lib), as CI's
//! fresh machine allows; it refuses to run over a caseclerk package someone installed for real.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn installed_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", "caseclerk"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.starts_with("install ok installed").then_some(text)
}

#[test]
fn the_package_installs_checks_its_configuration_and_purges_without_touching_case_data() {
    assert_eq!(
        installed_version(),
        None,
        "a caseclerk package is installed on this machine; this test installs and purges its own — \
         remove that one first (dpkg --purge caseclerk)"
    );
    let out_dir = std::env::temp_dir().join(format!("caseclerk-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/package-deb.sh");
    let built = run(
        "bash",
        &[
            script,
            "--binary",
            env!("CARGO_BIN_EXE_caseclerk"),
            "--out",
            out_dir.to_str().unwrap(),
            "--uncompressed",
        ],
    );
    let deb = String::from_utf8_lossy(&built.stdout).trim().to_string();
    assert!(deb.ends_with(".deb"), "{deb}");

    let conffiles =
        String::from_utf8_lossy(&run("dpkg-deb", &["--info", &deb, "conffiles"]).stdout)
            .into_owned();
    for c in [
        "/etc/caseclerk/caseclerk.toml",
        "/etc/caseclerk/processes/bury.toml",
        "/etc/caseclerk/processes/tameside.toml",
    ] {
        assert!(
            conffiles.lines().any(|l| l == c),
            "{c} is a conffile:\n{conffiles}"
        );
    }

    run("dpkg", &["-i", &deb]);
    let installed = std::panic::catch_unwind(|| {
        for f in [
            "/usr/bin/caseclerk",
            "/usr/share/caseclerk/mail-templates/acknowledge.text.hbs",
            "/usr/share/caseclerk/bank-holidays.json",
            "/lib/systemd/system/caseclerk.service",
            "/usr/share/man/man1/caseclerk.1.gz",
            "/usr/share/man/man1/caseclerk-health.1.gz",
            "/usr/share/bash-completion/completions/caseclerk",
            "/usr/share/zsh/vendor-completions/_caseclerk",
            "/usr/share/fish/vendor_completions.d/caseclerk.fish",
        ] {
            assert!(Path::new(f).is_file(), "{f} installed");
        }
        let unit = std::fs::read_to_string("/lib/systemd/system/caseclerk.service").unwrap();
        assert!(unit.contains("ExecStart=/usr/bin/caseclerk "), "{unit}");
        let state = std::fs::metadata("/var/lib/caseclerk").unwrap();
        assert_eq!(state.permissions().mode() & 0o777, 0o700);
        let uid = String::from_utf8_lossy(&run("id", &["-u", "caseclerk"]).stdout)
            .trim()
            .parse::<u32>()
            .unwrap();
        assert_eq!(state.uid(), uid, "the daemon's user owns its state");
        let conf = std::fs::metadata("/etc/caseclerk/caseclerk.toml").unwrap();
        assert_eq!(
            conf.permissions().mode() & 0o007,
            0,
            "the configuration is not world-readable"
        );

        // No --config: the installed default, from a folder with no config/example.toml. Fresh
        // from the package, the one thing missing is the secret only the council has: every
        // process file, template and the holiday data are found.
        let first = Command::new("/usr/bin/caseclerk")
            .arg("check")
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&first.stderr);
        assert_eq!(first.status.code(), Some(2), "{said}");
        assert!(
            said.contains("/etc/caseclerk/caseclerk.toml has 2 problem(s)"),
            "{said}"
        );
        assert_eq!(
            said.matches("password_file /etc/caseclerk/mailbox.password: cannot read it")
                .count(),
            2,
            "{said}"
        );
        std::fs::write("/etc/caseclerk/mailbox.password", "secret\n").unwrap();
        std::os::unix::fs::chown("/etc/caseclerk/mailbox.password", Some(uid), None).unwrap();
        std::fs::set_permissions(
            "/etc/caseclerk/mailbox.password",
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let check = run("/usr/bin/caseclerk", &["check"]);
        let said = String::from_utf8_lossy(&check.stdout);
        assert!(said.contains("/etc/caseclerk/caseclerk.toml"), "{said}");
        // Microsoft 365's client secret and certificate key, where the example puts them.
        for secret in ["/etc/caseclerk/client-secret", "/etc/caseclerk/app.key"] {
            std::fs::write(secret, "secret\n").unwrap();
        }
        // The case data a partnership must keep: planted before the purge.
        std::fs::write("/var/lib/caseclerk/caseclerk.db", b"case records").unwrap();
    });

    let purge = run("dpkg", &["--purge", "caseclerk"]);
    let said = String::from_utf8_lossy(&purge.stderr).into_owned();
    let kept = std::fs::read("/var/lib/caseclerk/caseclerk.db");
    let _ = std::fs::remove_dir_all("/var/lib/caseclerk");
    let _ = std::fs::remove_dir_all(&out_dir);
    if let Err(panic) = installed {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(
        kept.ok().as_deref(),
        Some(&b"case records"[..]),
        "the purge kept the case data"
    );
    assert!(
        said.contains("/var/lib/caseclerk (the case database) was kept"),
        "{said}"
    );
    assert!(
        !Path::new("/etc/caseclerk").exists(),
        "the configuration is purged, the password, client secret and key files with it"
    );
    assert!(
        !Path::new("/usr/bin/caseclerk").exists(),
        "the binary is removed"
    );
    assert_eq!(installed_version(), None);
}
