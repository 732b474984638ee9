#!/usr/bin/env bash
# Measures GET /v1/check over real HTTP with wrk (BENCHMARKS.md "The check endpoint"): starts
# `BINARY run` on 127.0.0.1:18080 with a throwaway config, revokes one opaque token, then runs
# the two cases (a 287-byte JWT that is allowed; the revoked opaque cookie) for 10 s each and
# prints requests/s, p50, p99 and the server-side handler mean from
# tokenwatch_check_duration_seconds. Stops the daemon when done.
#
#   scripts/bench-check.sh ./target/release/tokenwatch [LABEL]
#
# Needs curl, and wrk (installed with apt-get when missing). Traffic goes to 127.0.0.1 only;
# bounded to ~25 s.
set -euo pipefail
if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)" >&2
  sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
bin=$(realpath "$1")
label=${2:-$1}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/wrk.toml" <<'EOF'
[tokens]
pepper = "bench-pepper-test-fixture-not-a-secret"
session_cookie = "sid"
[denylist]
journal = "deny.journal"
[api]
listen = "127.0.0.1:18080"
EOF
admin=bench-admin-key-test-fixture
TOKENWATCH_ADMIN_KEY=$admin "$bin" run --config "$dir/wrk.toml" 2>"$dir/daemon.log" &
pid=$!
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:18080/readyz >/dev/null && break
  sleep 0.1
done
revoked=opaque-revoked-session-0123456789
curl -sf -X POST -H "Authorization: Bearer $admin" --data-urlencode "token=$revoked" \
  http://127.0.0.1:18080/v1/revoke >/dev/null
# An HS256-shaped JWT of 287 bytes (its signature is not checked by the check endpoint).
jwt=$(python3 - <<'EOF'
import base64, hashlib, hmac, json
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
h = b(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
p = b(json.dumps({"iss": "https://id.example.com", "aud": "api", "sub": "user-123",
                  "sid": "sid-123", "jti": "jti-1", "iat": 1796000000, "exp": 1896000000}).encode())
print(f"{h}.{p}.{b(hmac.new(b'k', f'{h}.{p}'.encode(), hashlib.sha256).digest())}")
EOF
)
summary() {
  awk '/Requests\/sec/{r=$2} /^ +50%/{p50=$2} /^ +99%/{p99=$2} END{printf "%s req/s, p50 %s, p99 %s", r, p50, p99}'
}
a=$(wrk -t2 -c32 -d10s --latency -H "Authorization: Bearer $jwt" http://127.0.0.1:18080/v1/check | summary)
r=$(wrk -t2 -c32 -d10s --latency -H "Cookie: sid=$revoked" http://127.0.0.1:18080/v1/check | summary)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: sid=$revoked" http://127.0.0.1:18080/v1/check)
handler=$(curl -s http://127.0.0.1:18080/metrics | awk '
  /^tokenwatch_check_duration_seconds_sum/{s=$2} /^tokenwatch_check_duration_seconds_count/{c=$2}
  END{printf "%.3f µs mean over %d checks", s / c * 1e6, c}')
echo "$label | JWT allowed: $a | opaque revoked ($code): $r | handler $handler"
