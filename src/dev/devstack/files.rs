//! The run directory: its layout, the system accounts it is owned by, and the text of every
//! generated file (Dovecot, Postfix, OpenSSL). Config text is built by pure functions so it can be
//! checked without starting anything.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{DevstackError, Ports};

/// Longest run directory path accepted, in bytes. The deepest unix socket below it
/// (`postfix/queue/private/trivial-rewrite`, Dovecot's `run/token-login/…`) adds about 45 bytes,
/// and the kernel limit for a socket path is 107.
pub(super) const MAX_DIR_LEN: usize = 60;

/// Where everything lives under the run directory.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }
    pub fn ca_pem(&self) -> PathBuf {
        self.tls().join("ca.pem")
    }
    pub fn server_pem(&self) -> PathBuf {
        self.tls().join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.tls().join("server.key")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("log")
    }
    pub fn dovecot_log(&self) -> PathBuf {
        self.logs().join("dovecot.log")
    }
    pub fn dovecot_stderr(&self) -> PathBuf {
        self.logs().join("dovecot.stderr")
    }
    pub fn maillog(&self) -> PathBuf {
        self.logs().join("maillog")
    }
    pub fn postfix_stderr(&self) -> PathBuf {
        self.logs().join("postfix.stderr")
    }
    pub fn dovecot(&self) -> PathBuf {
        self.root.join("dovecot")
    }
    pub fn dovecot_conf(&self) -> PathBuf {
        self.dovecot().join("dovecot.conf")
    }
    /// The stand-in issuer's signing keys, read by Dovecot's `oauth2` passdb.
    pub fn oauth2_keys(&self) -> PathBuf {
        self.dovecot().join("oauth2-keys")
    }
    pub fn oauth2_ext(&self) -> PathBuf {
        self.dovecot().join("dovecot-oauth2.conf.ext")
    }
    /// Mailboxes whose tokens are refused (the app's permission removed), read live.
    pub fn oauth2_revoked(&self) -> PathBuf {
        self.dovecot().join("oauth-revoked")
    }
    pub fn dovecot_users(&self) -> PathBuf {
        self.dovecot().join("users")
    }
    /// Dovecot's `base_dir` (its internal sockets and `master.pid`).
    pub fn dovecot_base(&self) -> PathBuf {
        self.dovecot().join("run")
    }
    pub fn dovecot_state(&self) -> PathBuf {
        self.dovecot().join("state")
    }
    /// Dovecot's LMTP socket, Postfix's `virtual_transport`.
    pub fn lmtp_socket(&self) -> PathBuf {
        self.dovecot().join("lmtp")
    }
    /// Dovecot's auth socket, Postfix's `smtpd_sasl_path`.
    pub fn auth_socket(&self) -> PathBuf {
        self.dovecot().join("auth")
    }
    pub fn postfix_etc(&self) -> PathBuf {
        self.root.join("postfix").join("etc")
    }
    pub fn postfix_queue(&self) -> PathBuf {
        self.root.join("postfix").join("queue")
    }
    pub fn postfix_data(&self) -> PathBuf {
        self.root.join("postfix").join("data")
    }
    pub fn mail(&self) -> PathBuf {
        self.root.join("mail")
    }
    /// A user's Dovecot home; the Maildir is `Maildir/` inside it.
    pub fn home(&self, user: &User) -> PathBuf {
        self.mail().join(&user.domain).join(&user.local)
    }
}

/// A validated, lower-cased mail address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct User {
    pub address: String,
    pub local: String,
    pub domain: String,
}

impl User {
    /// Accepts `local@domain` with a conservative character set: these strings end up in
    /// Dovecot's passwd-file, Postfix's tables and directory names.
    pub fn parse(address: &str) -> Result<User, DevstackError> {
        let bad = |why: &str| DevstackError::Options(format!("user {address:?}: {why}"));
        let lower = address.to_ascii_lowercase();
        let (local, domain) = lower
            .split_once('@')
            .ok_or_else(|| bad("not a full address (local@domain)"))?;
        let local_ok = |c: char| c.is_ascii_alphanumeric() || "._+-".contains(c);
        let domain_ok = |c: char| c.is_ascii_alphanumeric() || ".-".contains(c);
        if local.is_empty() || !local.chars().all(local_ok) || local.starts_with('.') {
            return Err(bad("local part must be letters, digits and . _ + -"));
        }
        if domain.is_empty()
            || !domain.chars().all(domain_ok)
            || !domain.contains('.')
            || domain.starts_with(['.', '-'])
            || domain.ends_with(['.', '-'])
            || domain.contains("..")
        {
            return Err(bad("domain must be a dotted name of letters, digits and -"));
        }
        Ok(User {
            address: lower.clone(),
            local: local.to_string(),
            domain: domain.to_string(),
        })
    }
}

/// Validated users (sorted, de-duplicated) and their domains.
pub(super) fn parse_users(users: &[String]) -> Result<Vec<User>, DevstackError> {
    if users.is_empty() {
        return Err(DevstackError::Options(
            "at least one user is needed (StackOptions::users)".into(),
        ));
    }
    let set: BTreeSet<User> = users
        .iter()
        .map(|u| User::parse(u))
        .collect::<Result<_, _>>()?;
    Ok(set.into_iter().collect())
}

pub(super) fn domains(users: &[User]) -> Vec<String> {
    let set: BTreeSet<&str> = users.iter().map(|u| u.domain.as_str()).collect();
    set.into_iter().map(str::to_string).collect()
}

/// The test password goes into Dovecot's passwd-file as `{PLAIN}…`: no field separator, no
/// line breaks.
pub(super) fn check_password(password: &str) -> Result<(), DevstackError> {
    if password.is_empty() {
        return Err(DevstackError::Options(
            "the password must not be empty".into(),
        ));
    }
    if password.chars().any(|c| c == ':' || c.is_control()) {
        return Err(DevstackError::Options(
            "the password must not contain ':' or control characters (it goes into a passwd-file)"
                .into(),
        ));
    }
    Ok(())
}

/// The run directory ends up unquoted in Dovecot and Postfix settings (where `%`, `$`, `,` and
/// spaces mean something) and in socket paths (≤ 107 bytes).
pub(super) fn check_dir(dir: &Path) -> Result<(), DevstackError> {
    let s = dir.to_str().ok_or_else(|| {
        DevstackError::Options(format!("run directory {dir:?} is not valid UTF-8"))
    })?;
    if !dir.is_absolute() {
        return Err(DevstackError::Options(format!(
            "run directory {s} must be absolute"
        )));
    }
    if s.len() > MAX_DIR_LEN {
        return Err(DevstackError::Options(format!(
            "run directory {s} is {} bytes long; at most {MAX_DIR_LEN} are allowed because unix \
             socket paths below it are limited to 107 bytes (use a short path under /tmp)",
            s.len()
        )));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        return Err(DevstackError::Options(format!(
            "run directory {s} may contain only letters, digits and / . _ - \
             (it is written unquoted into Dovecot and Postfix settings)"
        )));
    }
    Ok(())
}

/// Numeric ids of the system accounts the stack runs as.
#[derive(Debug, Clone, Copy)]
pub(super) struct SystemIds {
    /// `mail` user: owns the Maildirs (Dovecot's `mail_uid`). A non-root, non-Dovecot-internal
    /// account that exists on every Debian system (uid 8).
    pub mail_uid: u32,
    pub mail_gid: u32,
    /// `postfix` user: Postfix's `mail_owner`, owns the queue and data directories.
    pub postfix_uid: u32,
    pub postfix_gid: u32,
    /// `postdrop` group: Postfix's `setgid_group`.
    pub postdrop_gid: u32,
    /// `dovecot` group: may read the passwd-file.
    pub dovecot_gid: u32,
}

impl SystemIds {
    /// Reads `/etc/passwd` and `/etc/group` (where Debian's packages create these system
    /// accounts) rather than calling the non-thread-safe `getpwnam`.
    pub fn lookup() -> Result<SystemIds, DevstackError> {
        let passwd = read_system_file("/etc/passwd")?;
        let group = read_system_file("/etc/group")?;
        let user = |name: &str| -> Result<(u32, u32), DevstackError> {
            passwd
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 4 && f[0] == name)
                .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .ok_or_else(|| missing_account("user", name))
        };
        let group_id = |name: &str| -> Result<u32, DevstackError> {
            group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == name)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| missing_account("group", name))
        };
        let (mail_uid, mail_gid) = user("mail")?;
        let (postfix_uid, postfix_gid) = user("postfix")?;
        Ok(SystemIds {
            mail_uid,
            mail_gid,
            postfix_uid,
            postfix_gid,
            postdrop_gid: group_id("postdrop")?,
            dovecot_gid: group_id("dovecot")?,
        })
    }
}

fn read_system_file(path: &str) -> Result<String, DevstackError> {
    std::fs::read_to_string(path).map_err(|source| DevstackError::Io {
        what: format!("reading {path}"),
        source,
    })
}

fn missing_account(kind: &str, name: &str) -> DevstackError {
    DevstackError::NotInstalled {
        what: format!("system {kind} '{name}' (created by the dovecot/postfix packages)"),
    }
}

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DevstackError {
    let what = what.into();
    move |source| DevstackError::Io { what, source }
}

pub(super) fn mkdir(
    path: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), DevstackError> {
    std::fs::create_dir_all(path).map_err(io_err(format!("creating {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("setting the mode of {}", path.display())))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(io_err(format!("changing the owner of {}", path.display())))?;
    }
    Ok(())
}

/// Creates (or repairs) every directory with the owner and mode its daemon expects. The root
/// must be traversable (0755): Dovecot's mail processes run as `mail` and Postfix's as `postfix`.
pub(super) fn create_dirs(layout: &Layout, ids: &SystemIds) -> Result<(), DevstackError> {
    let root = Some((0, 0));
    mkdir(&layout.root, 0o755, root)?;
    mkdir(&layout.tls(), 0o755, root)?;
    mkdir(&layout.logs(), 0o755, root)?;
    mkdir(&layout.dovecot(), 0o755, root)?;
    mkdir(&layout.dovecot_state(), 0o755, root)?;
    mkdir(&layout.mail(), 0o755, Some((ids.mail_uid, ids.mail_gid)))?;
    mkdir(&layout.postfix_etc(), 0o755, root)?;
    mkdir(
        &layout.postfix_data(),
        0o700,
        Some((ids.postfix_uid, ids.postfix_gid)),
    )?;
    // What `postfix check` (post-install create-missing) would make; doing it here is faster
    // and does not need /etc/postfix.
    let queue = layout.postfix_queue();
    mkdir(&queue, 0o755, root)?;
    mkdir(&queue.join("pid"), 0o755, root)?;
    for d in [
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private",
        "saved", "trace",
    ] {
        mkdir(&queue.join(d), 0o700, Some((ids.postfix_uid, 0)))?;
    }
    mkdir(
        &queue.join("maildrop"),
        0o730,
        Some((ids.postfix_uid, ids.postdrop_gid)),
    )?;
    mkdir(
        &queue.join("public"),
        0o710,
        Some((ids.postfix_uid, ids.postdrop_gid)),
    )?;
    Ok(())
}

/// Writes a file with a mode and (optionally) an owner.
pub(super) fn write_file(
    path: &Path,
    text: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), DevstackError> {
    std::fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("setting the mode of {}", path.display())))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(io_err(format!("changing the owner of {}", path.display())))?;
    }
    Ok(())
}

/// Postfix re-reads (and waits ~2 s for) configuration files whose mtime is the current second;
/// back-dating them by a minute removes that delay. Relative to the file's own mtime, so no
/// clock read is needed.
pub(super) fn backdate(path: &Path) -> Result<(), DevstackError> {
    let what = || format!("back-dating {}", path.display());
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .map_err(io_err(what()))?;
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(io_err(what()))?;
    let earlier = modified
        .checked_sub(Duration::from_secs(60))
        .unwrap_or(modified);
    file.set_times(
        std::fs::FileTimes::new()
            .set_modified(earlier)
            .set_accessed(earlier),
    )
    .map_err(io_err(what()))
}

/// Dovecot's passwd-file: `user:{PLAIN}password:uid:gid::home::`.
pub(super) fn dovecot_users(
    layout: &Layout,
    users: &[User],
    password: &str,
    ids: &SystemIds,
) -> String {
    let mut out = String::new();
    for u in users {
        let _ = writeln!(
            out,
            "{}:{{PLAIN}}{password}:{}:{}::{}::",
            u.address,
            ids.mail_uid,
            ids.mail_gid,
            layout.home(u).display()
        );
    }
    out
}

/// A Dovecot `instance_name` unique to this run directory.
fn instance_name(layout: &Layout) -> String {
    let tail: String = layout
        .root
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("caseclerk-devstack{tail}")
}

/// The complete Dovecot configuration. Nothing is included from /etc/dovecot.
pub(super) fn dovecot_conf(
    layout: &Layout,
    ports: &Ports,
    ids: &SystemIds,
    without_idle: bool,
    oauth: bool,
    sent_copies: bool,
) -> String {
    let d = |p: PathBuf| p.display().to_string();
    // The server's own copy of what a user submits (see [`postfix_sent_copies`]): Postfix adds
    // `user+Sent@domain` as a recipient, and LMTP files it in the folder the detail names.
    let sent_copies = if sent_copies {
        "  mailbox Sent {\n    auto = create\n  }\n}\nrecipient_delimiter = +\n\
         lda_mailbox_autocreate = yes\nprotocol lmtp {\n  lmtp_save_to_detail_mailbox = yes\n"
    } else {
        ""
    };
    let (mechanisms, oauth_passdbs, password_mechanisms) = if oauth {
        (
            "plain login xoauth2 oauthbearer",
            format!(
                "\
# OAuth mode: a mailbox listed here refuses every token (the app's permission removed).
passdb {{
  driver = passwd-file
  mechanisms = xoauth2 oauthbearer
  deny = yes
  args = username_format=%Lu {revoked}
}}
# Tokens from the stand-in issuer, validated locally (signature, exp, iss, email, scope).
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {ext}
}}
",
                revoked = d(layout.oauth2_revoked()),
                ext = d(layout.oauth2_ext()),
            ),
            // Without this a password sent as a "token" would log in.
            "  mechanisms = plain login\n",
        )
    } else {
        ("plain login", String::new(), "")
    };
    let capability = if without_idle {
        "# A server without IDLE (the polling fallback's test).\n\
         imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ NAMESPACE UIDPLUS\n"
    } else {
        ""
    };
    format!(
        "\
# Generated by caseclerk's devstack for a throwaway test stack. Do not use in production.
instance_name = {instance}
base_dir = {base}
state_dir = {state}
protocols = imap lmtp
listen = 127.0.0.1
log_path = {log}

ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2

# The test client logs in over plain IMAP on loopback.
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_verbose = yes
# No growing slow-down after failed logins (tests provoke them). 2.3.19 still answers a
# failure on its next 500 ms timer tick.
auth_failure_delay = 0
auth_cache_size = 0
mail_max_userip_connections = 1000
{capability}
# Virtual users owned by the `mail` account.
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
# A throwaway stack: no fsync per message, so a test can append a year's mailbox in seconds.
mail_fsync = never
# Exchange's sent folder, where caseclerk files what it sends.
namespace inbox {{
  inbox = yes
  mailbox \"Sent Items\" {{
    auto = create
    special_use = \\Sent
  }}
{sent_copies}}}

{oauth_passdbs}passdb {{
  driver = passwd-file
{password_mechanisms}  args = scheme=PLAIN username_format=%Lu {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%Lu {users}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service lmtp {{
  unix_listener {lmtp} {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener {auth} {{
    mode = 0666
  }}
}}
# Without this socket Dovecot's auth process disables its per-IP failure penalty.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
",
        instance = instance_name(layout),
        base = d(layout.dovecot_base()),
        state = d(layout.dovecot_state()),
        log = d(layout.dovecot_log()),
        cert = d(layout.server_pem()),
        key = d(layout.server_key()),
        uid = ids.mail_uid,
        gid = ids.mail_gid,
        users = d(layout.dovecot_users()),
        imap = ports.imap,
        imaps = ports.imaps,
        lmtp = d(layout.lmtp_socket()),
        auth = d(layout.auth_socket()),
    )
}

/// Postfix's `main.cf`.
pub(super) fn postfix_main_cf(layout: &Layout, domains: &[String]) -> String {
    let d = |p: PathBuf| p.display().to_string();
    format!(
        "\
# Generated by caseclerk's devstack for a throwaway test stack. Do not use in production.
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.devstack.invalid
mydomain = devstack.invalid
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtpd_banner = $myhostname ESMTP caseclerk devstack

# No syslog here: postlogd writes this file.
maillog_file = {maillog}
maillog_file_prefixes = {logs}

# Every user's domain is local; mail is handed to Dovecot over LMTP.
virtual_mailbox_domains = {domains}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_transport = lmtp:unix:{lmtp}
# Nothing is ever relayed or sent out.
relay_domains =
virtual_alias_domains =
virtual_alias_maps =
alias_maps =
alias_database =
local_recipient_maps =
default_transport = error:the devstack delivers only to its local domains
relay_transport = error:the devstack delivers only to its local domains
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient
smtpd_error_sleep_time = 0
message_size_limit = 52428800
# AUTH XOAUTH2's initial response carries the whole token (Microsoft's are 1.5-3 KB): the
# default 2048 would cut it.
line_length_limit = 12288

smtpd_tls_security_level = may
smtpd_tls_chain_files = {key}, {cert}
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth}
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = yes

# Retry deferred mail (say, while Dovecot is down) within seconds, not minutes.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
delay_warning_time = 0
biff = no
",
        etc = d(layout.postfix_etc()),
        queue = d(layout.postfix_queue()),
        data = d(layout.postfix_data()),
        maillog = d(layout.maillog()),
        logs = d(layout.logs()),
        domains = domains.join(" "),
        lmtp = d(layout.lmtp_socket()),
        key = d(layout.server_key()),
        cert = d(layout.server_pem()),
        auth = d(layout.auth_socket()),
    )
}

/// Postfix's `master.cf`: the three loopback listeners and the internal services, none chrooted
/// (a chroot would hide the sockets in the run directory).
pub(super) fn postfix_master_cf(ports: &Ports) -> String {
    format!(
        "\
# Generated by caseclerk's devstack. chroot is 'n' everywhere.
# service type  private unpriv  chroot  wakeup  maxproc command
# Inbound \"MX\": no AUTH, accepts mail for the local domains only.
127.0.0.1:{smtp} inet n - n - - smtpd
# Submission: STARTTLS required, then AUTH (Dovecot SASL); only authenticated clients send.
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=reject_unlisted_recipient,permit_sasl_authenticated,reject
# Submissions: the same over implicit TLS (TLS from the first byte).
127.0.0.1:{submissions} inet n - n - - smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=reject_unlisted_recipient,permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
",
        smtp = ports.smtp,
        submission = ports.submission,
        submissions = ports.submissions,
    )
}

/// The server keeps its own copy of what each user submits, as Exchange Online does for SMTP
/// AUTH client submission: the submission listener's cleanup adds `local+Sent@domain` for the
/// envelope sender (`sender_bcc_maps`), *in the queue file, before Postfix answers `250`*, and
/// Dovecot's LMTP files that recipient in the user's "Sent" folder. So "Postfix accepted the
/// letter" implies "a copy will appear in Sent". Returns `(main.cf lines, master.cf)` from the
/// plain `master.cf`; only submission gets the copy (port 25 mail is not the user's own).
pub(super) fn postfix_sent_copies(layout: &Layout, master_cf: &str) -> (String, String) {
    let map = layout.postfix_etc().join("sender_bcc");
    let main = "recipient_delimiter = +\n".to_string();
    let master = master_cf
        .replace(
            "  -o syslog_name=postfix/submission\n",
            "  -o syslog_name=postfix/submission\n  -o cleanup_service_name=sentcopy\n",
        )
        .replace(
            "  -o syslog_name=postfix/submissions\n",
            "  -o syslog_name=postfix/submissions\n  -o cleanup_service_name=sentcopy\n",
        )
        + &format!(
            "sentcopy  unix  n       -       n       -       0       cleanup\n  -o sender_bcc_maps=texthash:{}\n",
            map.display()
        );
    (main, master)
}

/// `sender_bcc_maps` for [`postfix_sent_copies`]: each user → `local+Sent@domain`.
pub(super) fn postfix_sender_bcc(users: &[User]) -> String {
    let mut out = String::new();
    for u in users {
        let _ = writeln!(out, "{} {}+Sent@{}", u.address, u.local, u.domain);
    }
    out
}

/// Postfix's `virtual_mailbox_maps` (texthash: read directly, no `postmap` needed).
pub(super) fn postfix_vmailbox(layout: &Layout, users: &[User]) -> String {
    let mut out = String::new();
    for u in users {
        let _ = writeln!(out, "{} {}/Maildir/", u.address, layout.home(u).display());
    }
    out
}

/// OpenSSL configuration for the throwaway CA and the server certificate. Written to a file so
/// the system's openssl.cnf (whose `v3_ca` defaults differ between distributions) plays no part.
pub(super) const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = caseclerk devstack throwaway CA

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            root: PathBuf::from("/tmp/ccds-1-1"),
        }
    }

    #[test]
    fn addresses_are_lower_cased_and_split() {
        let u = User::parse("BSP@Bury.Test").unwrap();
        assert_eq!(u.address, "bsp@bury.test");
        assert_eq!((u.local.as_str(), u.domain.as_str()), ("bsp", "bury.test"));
    }

    #[test]
    fn addresses_that_would_break_the_generated_files_are_refused() {
        for bad in [
            "bsp",
            "@bury.test",
            "bsp@",
            "a b@x.test",
            "a:b@x.test",
            "a@localhost",
        ] {
            assert!(User::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn users_are_deduplicated_and_their_domains_collected() {
        let users = parse_users(&[
            "referrer@hospital.test".into(),
            "bsp@bury.test".into(),
            "BSP@bury.test".into(),
        ])
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(domains(&users), ["bury.test", "hospital.test"]);
    }

    #[test]
    fn a_password_with_a_colon_is_refused() {
        assert!(check_password("a:b").is_err());
        assert!(check_password("").is_err());
        assert!(check_password("s3cret pass").is_ok());
    }

    #[test]
    fn long_or_odd_run_directories_are_refused() {
        assert!(check_dir(Path::new("/tmp/ccds-1-1")).is_ok());
        assert!(check_dir(Path::new("relative")).is_err());
        assert!(check_dir(Path::new("/tmp/with space")).is_err());
        assert!(check_dir(Path::new(&format!("/tmp/{}", "x".repeat(60)))).is_err());
    }

    #[test]
    fn postfix_lists_every_domain_and_user_and_hands_mail_to_dovecot() {
        let users = parse_users(&["bsp@bury.test".into(), "r@hospital.test".into()]).unwrap();
        let main = postfix_main_cf(&layout(), &domains(&users));
        assert!(main.contains("virtual_mailbox_domains = bury.test hospital.test\n"));
        assert!(main.contains("virtual_transport = lmtp:unix:/tmp/ccds-1-1/dovecot/lmtp\n"));
        let vmailbox = postfix_vmailbox(&layout(), &users);
        assert!(vmailbox.starts_with("bsp@bury.test /tmp/ccds-1-1/mail/bury.test/bsp/Maildir/\n"));
    }

    /// The listeners on ports 1 to 5, in the order of [`Ports`]'s fields.
    fn ports() -> Ports {
        Ports {
            imap: 1,
            imaps: 2,
            smtp: 3,
            submission: 4,
            submissions: 5,
        }
    }

    #[test]
    fn both_submission_listeners_keep_a_copy_in_sent_and_port_25_does_not() {
        let ports = ports();
        let (_, master) = postfix_sent_copies(&layout(), &postfix_master_cf(&ports));
        // A listener's line and its `-o` lines after it.
        let service = |port: u16| -> String {
            let mut lines = master
                .lines()
                .skip_while(|l| !l.starts_with(&format!("127.0.0.1:{port} ")));
            let first = lines.next().unwrap_or_default().to_string();
            lines
                .take_while(|l| l.starts_with("  -o"))
                .fold(first, |all, l| all + "\n" + l)
        };
        for port in [4, 5] {
            assert!(
                service(port).contains("cleanup_service_name=sentcopy"),
                "{}",
                service(port)
            );
        }
        assert!(service(5).contains("smtpd_tls_wrappermode=yes"));
        assert!(!service(3).contains("sentcopy"), "{}", service(3));
    }

    #[test]
    fn nothing_in_master_cf_is_chrooted() {
        let ports = ports();
        for line in postfix_master_cf(&ports).lines() {
            let fields: Vec<_> = line.split_whitespace().collect();
            if fields.len() >= 8 && !line.starts_with('#') {
                assert_eq!(fields[4], "n", "{line}");
            }
        }
    }
}
