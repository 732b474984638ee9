#!/usr/bin/env bash
# Fetch ip-location-db's IP-to-ASN table (CSV) into a cache folder outside the repository and
# print the path of its IPv4 file, asn-ipv4.csv, on stdout.
#
#   scripts/fetch-asn.sh [CACHE_DIR]
#
# CACHE_DIR defaults to ${TOKENWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch}. The
# package is `@ip-location-db/asn` from the npm registry (about 18 MB packed, 65 MB unpacked).
# Lines are `start_ip,end_ip,asn,org` (inclusive ranges; an org with a comma is quoted).
# Idempotent: when the file is already cached nothing is downloaded. scripts/test.sh runs it
# before `cargo test` and passes the path to tests/geoip_real.rs as TOKENWATCH_ASN_CSV; the
# simulator reads it with `tokenwatch simulate --geoip CITY_MMDB --asn-csv ASN_CSV`.
#
# Licence: CC BY 4.0. The table merges RouteViews (https://www.routeviews.org), the five RIRs'
# statistics published by the NRO (https://www.nro.net) and DB-IP's IP to ASN Lite database
# (https://db-ip.com; most organisation names come from it). Attribution: "IP to ASN data by
# RouteViews, NRO and DB-IP (https://db-ip.com), via ip-location-db".
#
# Exit status: 0 with the path on stdout; 2 if npm is missing; 3 if the registry cannot be
# reached or the download fails; 4 if the package does not contain the expected file.
# Progress and errors go to stderr only, so `csv=$(scripts/fetch-asn.sh)` is safe.
set -euo pipefail

exec "$(dirname "$0")/fetch-npm-data.sh" fetch-asn "@ip-location-db/asn" \
    asn-ipv4.csv ip-location-db-asn ${1:+"$1"}
