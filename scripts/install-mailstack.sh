#!/usr/bin/env bash
# Installs what caseclerk's throwaway mail stack (src/devstack) needs on Debian 12:
# Dovecot (IMAP + LMTP), Postfix, openssl, and swaks for hand tests; and the few other programs
# the tests run (listed with PACKAGES below), LibreOffice's spreadsheet converter among them.
#
# - Idempotent: installs only the packages that are missing (apt-get update only then).
# - Postfix is preseeded to "No configuration": no /etc/postfix/main.cf, so the system Postfix
#   never starts; the devstack runs its own from a temporary directory.
# - A system-wide dovecot/postfix left running (a package's postinst may start one) would hold
#   ports such as 143/993/25: it is stopped, and disabled under systemd if this run installed it.
# - Uses sudo only when not root. Prints one or two lines; apt's output goes to a log file that is
#   shown only on failure.
set -euo pipefail

# systemd: its systemd-analyze scores the unit file (tests/it/systemd_unit.rs); adduser: the
# Debian package's postinst, installed by tests/it/package.rs.
# sqlite3: the history tests edit an event as an attacker with the file would (tests/it/history.rs);
# age: an encrypted backup is made and opened again (tests/it/backup.rs).
# libreoffice-calc-nogui: the tracker spreadsheet is printed to PDF headless once, to count its
# pages (tests/it/tracker.rs); the smallest set that converts XLSX to PDF (Calc and the core
# without a GUI: 57 packages, 90 MB to fetch, 276 MB installed, about a minute on Debian 12).
# chromium, chromium-driver: the web workspace is driven in a real headless browser
# (tests/it/web/browser.rs).
PACKAGES=(dovecot-imapd dovecot-lmtpd postfix openssl swaks libnet-ssleay-perl libio-socket-ssl-perl systemd adduser sqlite3 age libreoffice-calc-nogui chromium chromium-driver)

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
else
    command -v sudo >/dev/null || { echo "install-mailstack: not root and no sudo" >&2; exit 1; }
    SUDO=(sudo)
fi

LOG="$(mktemp /tmp/install-mailstack.XXXXXX.log)"
trap 'rm -f "$LOG"' EXIT
run_logged() {
    if ! "$@" >>"$LOG" 2>&1; then
        echo "install-mailstack: failed: $*" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

did=()
if [ "${#missing[@]}" -gt 0 ]; then
    echo "postfix postfix/main_mailer_type select No configuration" \
        | run_logged "${SUDO[@]}" debconf-set-selections
    run_logged "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    run_logged "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    did+=("installed ${missing[*]}")
else
    did+=("all packages already installed")
fi

# A pid from a pid file, if that process is running (not a zombie waiting to be reaped).
running_pid() {
    local file="$1" pid state
    [ -r "$file" ] || return 1
    pid="$(tr -dc '0-9' <"$file")"
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)"
    [ "$state" != Z ] && echo "$pid"
}

stopped=()
under_systemd=false
[ -d /run/systemd/system ] && under_systemd=true
for svc in dovecot postfix; do
    case $svc in
        dovecot) pidfile=/run/dovecot/master.pid ;;
        postfix) pidfile=/var/spool/postfix/pid/master.pid ;;
    esac
    if $under_systemd; then
        if systemctl is-active --quiet "$svc"; then
            run_logged "${SUDO[@]}" systemctl stop "$svc"
            stopped+=("$svc")
        fi
        # Keep a service this run installed from coming back at boot.
        if [ "${#missing[@]}" -gt 0 ] && systemctl is-enabled --quiet "$svc" 2>/dev/null; then
            run_logged "${SUDO[@]}" systemctl disable "$svc"
        fi
    elif pid="$(running_pid "$pidfile")"; then
        case $svc in
            dovecot) run_logged "${SUDO[@]}" doveadm stop ;;
            postfix) run_logged "${SUDO[@]}" postfix stop ;;
        esac
        # Both stop within a second or two; do not leave before the ports are free.
        for _ in $(seq 1 50); do
            running_pid "$pidfile" >/dev/null || break
            sleep 0.1
        done
        if running_pid "$pidfile" >/dev/null; then
            "${SUDO[@]}" kill -KILL "$pid" 2>/dev/null || true
        fi
        stopped+=("$svc")
    fi
done

echo "install-mailstack: ${did[*]}."
if [ "${#stopped[@]}" -gt 0 ]; then
    echo "install-mailstack: stopped the system-wide ${stopped[*]} service(s) so they hold no ports."
fi
