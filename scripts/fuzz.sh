#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails if any of them crashes
# (README "Fuzzing").
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      # default 300 (the security issue asks for >= 5 min)
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz from
# crates.io if it is missing. Builds every target once, then runs each with the committed seeds
# in fuzz/corpus/<target>/ (read only) and a working corpus outside the repository, so what the
# fuzzer finds never lands in the seed folders. A crash leaves its input in
# fuzz/artifacts/<target>/ and the log path in the summary; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<crash-file>
#
# Environment:
#   FUZZ_TARGETS     targets to run, space-separated (default: every target, `cargo fuzz list`)
#   FUZZ_JOBS        targets run at the same time (default 1; each uses one core)
#   FUZZ_PROFILE     release (default: optimized, fuzzes fastest) or dev (builds about twice as
#                    fast; what CI's short smoke run uses)
#   FUZZ_TARGET_DIR  build folder (default: $CARGO_TARGET_DIR/fuzz, or target/fuzz)
#   FUZZ_WORK_DIR    working corpora and logs (default: $FUZZ_TARGET_DIR/work)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi
jobs=${FUZZ_JOBS:-1}
profile=${FUZZ_PROFILE:-release}
case $profile in
  release) profile_flag=(--release) ;;
  dev) profile_flag=(--dev) ;;
  *) echo "FUZZ_PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac
target_dir=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}
work=${FUZZ_WORK_DIR:-$target_dir/work}

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  started=$(date +%s)
  # Its own build folder, not the project's (and not $CARGO_TARGET_DIR's).
  CARGO_TARGET_DIR="$target_dir/cargo-fuzz-install" cargo install cargo-fuzz --locked --quiet
  rm -rf "$target_dir/cargo-fuzz-install"
  echo "fuzz: cargo-fuzz installed in $(($(date +%s) - started)) s" >&2
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz: no targets" >&2
  exit 1
fi

started=$(date +%s)
echo "fuzz: building ${#targets[@]} targets ($profile profile) in $target_dir" >&2
cargo +nightly fuzz build "${profile_flag[@]}" --target-dir "$target_dir" >&2
echo "fuzz: built in $(($(date +%s) - started)) s; running each for $seconds s, $jobs at a time" >&2

mkdir -p "$work/logs" "$work/status"
rm -f "$work/status/"*

run_one() {
  local target=$1 log="$work/logs/$1.log" begin rc
  mkdir -p "$work/corpus/$target" "fuzz/corpus/$target"
  begin=$(date +%s)
  set +e
  cargo +nightly fuzz run "${profile_flag[@]}" --target-dir "$target_dir" "$target" \
    "$work/corpus/$target" "fuzz/corpus/$target" \
    -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  echo "$rc $(($(date +%s) - begin))" >"$work/status/$target"
}

for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  run_one "$target" &
done
wait

passed=0
failed=0
for target in "${targets[@]}"; do
  log="$work/logs/$target.log"
  read -r rc elapsed <"$work/status/$target"
  runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -n 1)
  corpus=$(find "$work/corpus/$target" -type f | wc -l)
  if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
    passed=$((passed + 1))
    printf 'fuzz: %-14s ok     %6s s  %12s runs  %6s/s  corpus %s\n' \
      "$target" "$elapsed" "$runs" "$((runs / (elapsed > 0 ? elapsed : 1)))" "$corpus"
  else
    failed=$((failed + 1))
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    printf 'fuzz: %-14s FAILED %6s s  exit %s  input %s  log %s\n' \
      "$target" "$elapsed" "$rc" "${artifact:-none}" "$log"
    grep -m 3 -E "panicked at|ERROR: |^thread '" "$log" | sed 's/^/      /' || true
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
