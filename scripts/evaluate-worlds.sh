#!/usr/bin/env bash
# Reproduce EVALUATION.md: simulate evaluation worlds built from real network data (DB-IP Lite
# city blocks, ip-location-db ASNs) whose parameters and seeds were never used in training or
# tuning, then evaluate the shipped model against the published rules, world by world.
#
#   scripts/evaluate-worlds.sh [OUT_DIR]
#
# Environment: WORLDS (world seeds; default "9401 9402 9403 9404 9405 9406"), EVENTS per world
# (default 1000000), ATTACK_FRACTION (default 0.05), MODEL (default models/session-risk.json),
# TOKENWATCH (the binary; default ./target/release/tokenwatch, built when missing).
# Each world's parameters are drawn from its seed (`simulate --world-seed`); the traffic seed
# is the same number. Training uses seeds 1–4 and holds out 101–112 (`tokenwatch train`);
# keep WORLDS away from those. The report lands in OUT_DIR/report (evaluation.md, report.html);
# the per-world and targets tables are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/tokenwatch-worlds}"
worlds="${WORLDS:-9401 9402 9403 9404 9405 9406}"
events="${EVENTS:-1000000}"
fraction="${ATTACK_FRACTION:-0.05}"
model="${MODEL:-models/session-risk.json}"
bin="${TOKENWATCH:-./target/release/tokenwatch}"
[[ -x "$bin" ]] || cargo build --release --locked
city_db="$(scripts/fetch-dbip.sh)"
asn_csv="$(scripts/fetch-asn.sh)"
args=()
for w in $worlds; do
    for reserved in 1 2 3 4 $(seq 101 112); do
        if [[ "$w" == "$reserved" ]]; then
            echo "evaluate-worlds: world $w is a training or held-out world" >&2
            exit 2
        fi
    done
    "$bin" simulate --out "$out/$w/access.jsonl" --seed "$w" --world-seed "$w" \
        --events "$events" --attack-fraction "$fraction" --geoip "$city_db" --asn-csv "$asn_csv" \
        >&2
    args+=(--logs "$out/$w/access.jsonl" --labels "$out/$w/labels.jsonl"
           --config "$out/$w/tokenwatch.toml")
done
"$bin" evaluate "${args[@]}" --model "$model" --out "$out/report" \
    --title "tokenwatch evaluation: real-data worlds ${worlds// /, } (never used in training or tuning)"
