//! The memory allocator's one setting: a large buffer, once freed, goes back to the system.
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
//! Must not: change anything else about the process, or run once threads have started.

/// The environment variable glibc reads the threshold from.
pub const THRESHOLD_VAR: &str = "MALLOC_MMAP_THRESHOLD_";

/// glibc's own default threshold (128 KiB), made fixed.
pub const THRESHOLD: &str = "131072";

/// Whether the allocator is already set (by us, or deliberately by the operator).
pub fn is_set(threshold: Option<&std::ffi::OsStr>, tunables: Option<&std::ffi::OsStr>) -> bool {
    threshold.is_some()
        || tunables.is_some_and(|t| t.to_string_lossy().contains("glibc.malloc.mmap_threshold"))
}

/// Re-execute this process with the threshold fixed, unless it is already set. Returns only if it
/// is set, or the re-execution failed. Call before anything else (no threads yet).
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
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // `exec` returns only when it failed: then carry on as we are.
    let _ = command.args(args).env(THRESHOLD_VAR, THRESHOLD).exec();
}

/// Other platforms' allocators are left as they are.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn ensure_fixed_threshold() {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

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
