//! The memory allocator's one setting: a large buffer, once freed, goes back to the system —
//! except in a first run, which trades some memory for speed ([`BACKLOG_THRESHOLD`]).
//!
//! Owns how caseclerk's process is set up for glibc's `malloc`. caseclerk handles a few large
//! buffers at a time — a 20 MB referral as fetched, stored, parsed, and forwarded in a letter —
//! and glibc serves each from a fresh mapping that it returns to the system on `free`. But after
//! the first such `free`, glibc raises its threshold for that to the freed size (its "dynamic
//! mmap threshold"), so every later buffer up to that size comes from its per-thread arenas,
//! which keep freed memory and fragment: measured with `caseclerk bench --burst 2`, the daemon's
//! peak was 252 MiB with the dynamic threshold and 102 MiB with it fixed, for the same work.
//!
//! glibc reads the setting (`MALLOC_MMAP_THRESHOLD_`, here its default of 128 KiB, made fixed)
//! only when a process starts, and setting it from inside needs `mallopt`, which is `unsafe`. So
//! the binary re-executes itself once, first thing, with the variable set: the same pid,
//! arguments and environment (systemd and a shell see one process; only the variable is added).
//! A value the operator set (or `GLIBC_TUNABLES` naming the threshold) is kept as it is, and if
//! the re-execution fails (the binary was replaced meanwhile) caseclerk carries on unchanged.
//!
//! The other setting is not a setting: memory freed inside glibc's arenas stays with the process
//! until `malloc_trim` walks them and gives the free pages back. After 1,000 referrals the daemon
//! held 38–45 MiB, of which heaptrack found 3.7 MiB in use; so the daemon calls [`give_back`] after
//! its passes, at most once per [`GIVE_BACK_EVERY`] ([`GiveBack`] decides when). It is this
//! crate's one `unsafe` call, allowed in this file alone (the architecture test holds that).
//!
//! A first run over a mailbox's backlog (`caseclerk tick --process-existing`, a process that ends
//! when the backlog is done) is re-executed with a higher threshold and a trim threshold instead
//! ([`BACKLOG_THRESHOLD`], [`BACKLOG_TRIM`]): over 10,000 messages a sixth faster for 12–16 MiB
//! more at its peak, over 50,000 a twentieth faster for 33 MiB more (README, *Session 16*).
//!
//! Must not: change anything else about the process, or re-execute once threads have started.

use std::time::{Duration, Instant};

/// The environment variable glibc reads the threshold from.
pub const THRESHOLD_VAR: &str = "MALLOC_MMAP_THRESHOLD_";

/// glibc's own default threshold (128 KiB), made fixed.
pub const THRESHOLD: &str = "131072";

/// Whether the allocator is already set (by us, or deliberately by the operator).
pub fn is_set(threshold: Option<&std::ffi::OsStr>, tunables: Option<&std::ffi::OsStr>) -> bool {
    threshold.is_some()
        || tunables.is_some_and(|t| t.to_string_lossy().contains("glibc.malloc.mmap_threshold"))
}

/// The environment variable glibc reads its trim threshold from: how much free memory at the top
/// of a heap it keeps rather than give back at once.
pub const TRIM_VAR: &str = "MALLOC_TRIM_THRESHOLD_";

/// The threshold for a first run (`caseclerk tick --process-existing`, a process that fetches a
/// mailbox's backlog and ends): 4 MiB. Then a file's buffer (the bench mix's 200 KB attachment,
/// an ordinary form or report of a megabyte or two) is taken from the heap and reused once freed,
/// not mapped afresh and faulted in a page at a time — a quarter of the first run's page faults
/// were the packer's decoding buffers and a third the reading's copies of files. Measured over
/// 10,000 messages: 1.7–1.9 s against 2.1–2.2 s, peak 68–73 MiB against 56–57 MiB (two sets of
/// three passes each); over 50,000, one pass each: 9.5 s against 10.0 s, 163 against 130 MiB. A
/// larger message (a 20 MB referral) is still mapped and given back whole. The daemon keeps
/// [`THRESHOLD`]: its memory between bursts is what an operator watches, and a first run's extra
/// memory goes when the process ends.
pub const BACKLOG_THRESHOLD: &str = "4194304";

/// The trim threshold for a first run: 16 MiB kept free at a heap's top, so the batches that
/// follow each other reuse it rather than give it back and fault it in again.
pub const BACKLOG_TRIM: &str = "16777216";

/// Whether these arguments start a first run over a backlog (`tick --process-existing`): a
/// process that ends once the backlog is done, so its memory after does not matter.
pub fn is_first_run(args: &[std::ffi::OsString]) -> bool {
    args.iter().any(|a| a == "tick") && args.iter().any(|a| a == "--process-existing")
}

/// Re-execute this process with the threshold fixed, unless it is already set. Returns only if it
/// is set, or the re-execution failed. Call before anything else (no threads yet). A first run
/// ([`is_first_run`]) gets [`BACKLOG_THRESHOLD`] and [`BACKLOG_TRIM`] instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn ensure_fixed_threshold() {
    use std::os::unix::process::CommandExt;
    if is_set(
        std::env::var_os(THRESHOLD_VAR).as_deref(),
        std::env::var_os("GLIBC_TUNABLES").as_deref(),
    ) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first_run = is_first_run(&args);
    let mut command = std::process::Command::new(exe);
    if !args.is_empty() {
        command.arg0(args.remove(0));
    }
    command.args(args);
    if first_run {
        command.env(THRESHOLD_VAR, BACKLOG_THRESHOLD);
        // A trim threshold the operator set is theirs.
        if std::env::var_os(TRIM_VAR).is_none() {
            command.env(TRIM_VAR, BACKLOG_TRIM);
        }
    } else {
        command.env(THRESHOLD_VAR, THRESHOLD);
    }
    // `exec` returns only when it failed: then carry on as we are.
    let _ = command.exec();
}

/// `command` (another caseclerk started by this one: the benchmarks' daemon and first runs)
/// without the settings this process's own re-execution added, so it sets itself up as it does
/// when an operator starts it. A value the operator set is left as it is.
pub fn as_started_by_an_operator(command: &mut tokio::process::Command) {
    for (var, ours) in [
        (THRESHOLD_VAR, THRESHOLD),
        (THRESHOLD_VAR, BACKLOG_THRESHOLD),
        (TRIM_VAR, BACKLOG_TRIM),
    ] {
        if std::env::var_os(var).is_some_and(|v| v == ours) {
            command.env_remove(var);
        }
    }
}

/// Other platforms' allocators are left as they are.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn ensure_fixed_threshold() {}

/// How often, at most, the daemon gives back free memory: during a burst, passes follow each other
/// with no pause and each would grow the heap again; once a burst is over, the next pass (within a
/// minute, [`crate::shell::engine::RESCAN`]) gives it back.
pub const GIVE_BACK_EVERY: Duration = Duration::from_secs(10);

/// When the daemon next gives back free memory: the first time it is asked, then no sooner than
/// [`GIVE_BACK_EVERY`] after the last time.
#[derive(Debug, Default)]
pub struct GiveBack {
    last: Option<Instant>,
}

impl GiveBack {
    /// Whether to give back now; if so, `now` is remembered as the last time.
    pub fn due(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= GIVE_BACK_EVERY);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// Give the system back the memory glibc holds free in its arenas (`malloc_trim(0)`). Returns
/// whether glibc gave anything back. It walks and locks each arena in turn (milliseconds for the
/// daemon's heap), so call it from a blocking thread between passes, not in the middle of one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn give_back() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and reads no memory of ours; glibc takes each
    // arena's lock itself, so it is safe beside other threads' allocations at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other platforms' allocators return memory themselves or have no such call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn only_a_tick_over_existing_mail_is_a_first_run() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(is_first_run(&args(&[
            "caseclerk",
            "--config",
            "/etc/caseclerk/caseclerk.toml",
            "tick",
            "--process-existing"
        ])));
        assert!(is_first_run(&args(&[
            "caseclerk",
            "tick",
            "--process-existing",
            "--since",
            "2026-01-01"
        ])));
        assert!(!is_first_run(&args(&["caseclerk", "tick"])));
        assert!(!is_first_run(&args(&[
            "caseclerk",
            "run",
            "--process-existing"
        ])));
        assert!(!is_first_run(&args(&["caseclerk", "run"])));
    }

    #[test]
    fn free_memory_is_given_back_at_the_first_pass_then_at_most_every_ten_seconds() {
        let start = Instant::now();
        let mut g = GiveBack::default();
        assert!(g.due(start), "the first pass after a start gives back");
        assert!(
            !g.due(start + Duration::from_secs(1)),
            "a burst's next pass"
        );
        assert!(!g.due(start + Duration::from_millis(9_999)));
        assert!(g.due(start + GIVE_BACK_EVERY));
        assert!(!g.due(start + GIVE_BACK_EVERY + Duration::from_secs(9)));
        assert!(
            g.due(start + Duration::from_secs(70)),
            "the pass after a quiet minute"
        );
    }

    /// The resident memory of this process, in MiB (`VmRSS`).
    fn resident_mib() -> f64 {
        crate::dev::bench::proc_status_mib(std::process::id(), "VmRSS")
            .expect("VmRSS in /proc/self/status")
    }

    const CHILD: &str = "CASECLERK_GIVE_BACK_CHILD";

    /// Run in a process of its own by the test below (other tests' allocations would blur the
    /// figures): a thread fills 24 MiB in 64 KiB pieces — under glibc's 128 KiB threshold, so
    /// they come from the thread's arena — keeps one small piece after them so the arena's top
    /// cannot shrink by itself, and frees the rest; then prints the resident memory before and
    /// after [`give_back`].
    #[test]
    #[ignore = "run by free_memory_held_by_a_threads_arena_is_given_back_to_the_system"]
    fn give_back_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let pin = std::thread::spawn(|| {
            let pieces: Vec<Vec<u8>> = (0..384).map(|i| vec![i as u8 | 1; 64 * 1024]).collect();
            let pin = vec![7u8; 64];
            drop(pieces);
            pin
        })
        .join()
        .expect("allocating thread");
        let before = resident_mib();
        let gave = give_back();
        let after = resident_mib();
        println!(
            "give-back: before={before} after={after} gave={gave} pin={}",
            pin[0]
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn free_memory_held_by_a_threads_arena_is_given_back_to_the_system() {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args(["--exact", "shell::allocator::tests::give_back_child"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("running the child test");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.find("give-back:").map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("the child printed no figures: {stdout}"));
        let figure = |name: &str| -> f64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in {line}"))
        };
        let (before, after) = (figure("before"), figure("after"));
        // 24 MiB were freed; at least 16 MiB of it must leave the process.
        assert!(
            before >= after + 16.0,
            "resident {before} MiB before, {after} MiB after giving back: {line}"
        );
        assert!(line.contains("gave=true"), "{line}");
    }

    #[test]
    fn an_operators_own_setting_is_kept_and_nothing_is_re_executed_twice() {
        assert!(!is_set(None, None));
        assert!(!is_set(None, Some(OsStr::new("glibc.malloc.arena_max=2"))));
        assert!(is_set(Some(OsStr::new(THRESHOLD)), None));
        assert!(is_set(
            None,
            Some(OsStr::new("glibc.malloc.mmap_threshold=262144"))
        ));
    }
}
