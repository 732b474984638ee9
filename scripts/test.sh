#!/usr/bin/env bash
# The README's test command (and CI's): installs what the tests need, checks formatting and
# lints, validates the alert rules with promtool, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --locked --all-targets -- -D warnings
echo "== promtool (deploy/alerts.yml)" >&2
promtool check rules deploy/alerts.yml
(cd deploy && promtool test rules alerts.test.yml)
echo "== cargo test" >&2
# Doc tests are left out: there are none, and an empty run would close the log on "0 passed".
cargo test --locked --lib --bins --tests
