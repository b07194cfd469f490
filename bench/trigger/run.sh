#!/usr/bin/env bash
# The trigger-path benchmark: pipehook's trigger URLs beside the peers (nginx `return 200`, adnanh/webhook)
# under the same wrk load with a real signed GitHub push, using ../shared/bench/baselines.sh.
#
#   bench/trigger/run.sh [-d SECONDS] [-r ROUNDS] [-D full|normal] [-b BINARY]
#
# -b runs a pipehook binary already built (e.g. an older commit's, for an A/B run) instead of building this one.
#
# pipehook runs from a release build with --role api (executions are recorded durably, as on the real
# path, but no worker runs them: the benchmark measures accepting deliveries, not running 10,000 builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=10 rounds=1 durability=full binary=""
while getopts "d:r:D:b:" o; do
  case $o in d) dur=$OPTARG ;; r) rounds=$OPTARG ;; D) durability=$OPTARG ;; b) binary=$OPTARG ;; *) exit 2 ;; esac
done
python3 -c 'import boto3' 2>/dev/null || pip install -q boto3
if [ -z "$binary" ]; then
  cargo build --release -p pipehook >/dev/null
  binary=./target/release/pipehook
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=AKIABENCHBENCHBENCH1 secret=benchsecretbenchsecretbenchsecret0000000
export PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID=$key PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY=$secret
export PIPEHOOK_BOOTSTRAP_TOKEN=phk_benchbenchbenchbenchbench PIPEHOOK_SQLITE_DURABILITY=$durability RUST_LOG=warn
"$binary" serve --role api --listen 127.0.0.1:$port --data-dir "$work" >"$work/out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
mapfile -t urls < <(python3 bench/trigger/setup.py "http://127.0.0.1:$port" $key $secret bench-secret)
echo "pipehook (SQLite synchronous=$durability) RSS before: $(ps -o rss= -p $pid) KiB" >&2
../shared/bench/baselines.sh -d "$dur" -r "$rounds" -s bench-secret -t triggered="${urls[0]}" -t filtered="${urls[1]}"
echo "pipehook RSS after: $(ps -o rss= -p $pid) KiB" >&2
