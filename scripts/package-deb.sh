#!/usr/bin/env bash
# Build caseclerk's Debian package with dpkg-deb (no cargo-deb: one script, nothing to install).
#
#   bash scripts/package-deb.sh                  # release build → target/debian/caseclerk_<v>_<arch>.deb
#   bash scripts/package-deb.sh --binary <file> --out <dir> --uncompressed
#                                                # a given binary, quickly (the tests)
#
# What goes where (Debian's layout):
#   /usr/bin/caseclerk                           the binary
#   /etc/caseclerk/caseclerk.toml                the configuration (conffile; the example's
#                                                partnership with installed paths — edit it)
#   /etc/caseclerk/processes/*.toml              the five partnerships' process files (conffiles)
#   /etc/caseclerk/attachments/…                 the agency template (conffile)
#   /usr/share/caseclerk/mail-templates/         the letter templates
#   /usr/share/caseclerk/bank-holidays.json      GOV.UK's bank holidays (holidays_file)
#   /lib/systemd/system/caseclerk.service        the unit (ExecStart=/usr/bin/caseclerk)
#   /usr/share/man/man1/caseclerk*.1.gz          man pages, generated from the CLI definition
#   /usr/share/bash-completion/completions/caseclerk, zsh and fish completions
#   /usr/share/doc/caseclerk/                    README, copyright
#   /var/lib/caseclerk (0700, created by postinst for the system user `caseclerk`)
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
out="target/debian"
compress=(-Zxz)
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --uncompressed) compress=(-Znone); shift ;;
        *) echo "package-deb: unknown option $1 (use --binary <file> --out <dir> --uncompressed)" >&2; exit 2 ;;
    esac
done
if [ -z "$binary" ]; then
    cargo build --release --locked --quiet
    binary="target/release/caseclerk"
fi
[ -x "$binary" ] || { echo "package-deb: no executable at $binary" >&2; exit 1; }

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
arch="$(dpkg --print-architecture)"
mkdir -p "$out"
stage="$(mktemp -d "${TMPDIR:-/tmp}/caseclerk-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
root="$stage/caseclerk_${version}_${arch}"

install -D -m 0755 "$binary" "$root/usr/bin/caseclerk"
install -d "$root/etc/caseclerk/processes" "$root/etc/caseclerk/attachments"
install -m 0640 config/processes/*.toml "$root/etc/caseclerk/processes/"
install -m 0640 config/attachments/* "$root/etc/caseclerk/attachments/"
# The configuration: the example's partnership, roles and agencies, with the installed paths and a
# real server's settings in place of the demo stack's.
sed -e '1,3c\
# caseclerk configuration (installed by the Debian package). Replace the example partnership\
# (Bury), its mail servers, roles and agencies with your own, then `caseclerk check`.' \
    -e 's|^host = "127.0.0.1"|host = "mail.example.gov.uk"|' \
    -e 's|^port = 10993|port = 993|' \
    -e 's|^port = 10587|port = 587|' \
    -e 's|^password_file = .*|password_file = "/etc/caseclerk/mailbox.password"|' \
    -e '/^# Trust the local stack/d' \
    -e '/^ca_file = /d' \
    -e 's|^database = .*|database = "/var/lib/caseclerk/caseclerk.db"|' \
    -e 's|^# holidays_file = .*|holidays_file = "/usr/share/caseclerk/bank-holidays.json"|' \
    -e 's|^dir = "../mail-templates"|dir = "/usr/share/caseclerk/mail-templates"|' \
    config/example.toml > "$root/etc/caseclerk/caseclerk.toml"
chmod 0640 "$root/etc/caseclerk/caseclerk.toml"
install -d "$root/usr/share/caseclerk"
cp -r mail-templates "$root/usr/share/caseclerk/mail-templates"
install -m 0644 data/bank-holidays.json "$root/usr/share/caseclerk/bank-holidays.json"
sed -e 's|/usr/local/bin/caseclerk|/usr/bin/caseclerk|g' systemd/caseclerk.service \
    | install -D -m 0644 /dev/stdin "$root/lib/systemd/system/caseclerk.service"

gen="$stage/generated"
"$binary" generate --out "$gen"
install -d "$root/usr/share/man/man1"
for page in "$gen"/*.1; do
    gzip -9n < "$page" > "$root/usr/share/man/man1/$(basename "$page").gz"
done
install -D -m 0644 "$gen/caseclerk.bash" "$root/usr/share/bash-completion/completions/caseclerk"
install -D -m 0644 "$gen/_caseclerk" "$root/usr/share/zsh/vendor-completions/_caseclerk"
install -D -m 0644 "$gen/caseclerk.fish" "$root/usr/share/fish/vendor_completions.d/caseclerk.fish"
install -D -m 0644 README.md "$root/usr/share/doc/caseclerk/README.md"
printf 'caseclerk\nCopyright: the caseclerk authors\nLicense: see the source repository\n' \
    | install -D -m 0644 /dev/stdin "$root/usr/share/doc/caseclerk/copyright"

install -d "$root/DEBIAN"
install -m 0755 packaging/postinst packaging/prerm packaging/postrm "$root/DEBIAN/"
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: caseclerk
Version: $version
Architecture: $arch
Maintainer: caseclerk maintainers <caseclerk@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), adduser
Recommends: systemd
Section: mail
Priority: optional
Description: clerical half of a safeguarding partnership's rapid reviews
 caseclerk watches a safeguarding children partnership's shared mailbox, opens a
 rapid review case for each referral with its working-day timeline, sends each
 letter on its day, chases agencies, takes panel decisions from email replies
 and keeps the tracker. It runs as the systemd service caseclerk.
CONTROL
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$out/" >/dev/null
echo "$out/caseclerk_${version}_${arch}.deb"
