#!/usr/bin/env bash
# The README's second command: everything the tests need, then the whole test suite.
# Installs Dovecot + Postfix from Debian's packages if missing (the integration tests start them
# from a temporary directory themselves), then checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-mailstack.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
