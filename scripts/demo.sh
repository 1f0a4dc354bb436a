#!/usr/bin/env bash
# The README's first command: install the local mail stack if missing, then run caseclerk against
# it with config/example.toml (Bury), send a sample referral and show the acknowledgement arriving.
# Extra arguments go to `caseclerk demo` (e.g. --once to exit after the acknowledgement).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-mailstack.sh
exec cargo run --locked --quiet -- --config config/example.toml demo "$@"
