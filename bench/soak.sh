#!/usr/bin/env bash
# Soak test of one expert worker: starts `moebench worker` on a loopback port, runs `moebench-bench soak` against
# it (valid EXPERT/PING/STATS traffic, malformed frames, connection churn) and prints the worker's RSS every few
# seconds and its trend after the warm-up (expected flat within 1 MB). Not part of CI or `swift test`.
#
#   bench/soak.sh [DURATION_S] [extra moebench-bench soak flags…]     default 600 s
#
# Run it in the background for the full 10 minutes:  nohup bench/soak.sh > soak.log 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-600}"; shift || true
CONFIG="${SOAK_CONFIG:-DiT-MoE-S/2-8E2A}"
PORT="${SOAK_PORT:-7391}"
DIR=.build/soak
mkdir -p "$DIR"
nice swift build --product moebench >/dev/null
nice swift build --product moebench-bench >/dev/null
BIN=$(swift build --show-bin-path)
head -c 32 /dev/urandom > "$DIR/secret"; chmod 600 "$DIR/secret"

"$BIN/moebench" worker --listen "127.0.0.1:$PORT" --numa-node=-1 --experts 0-7 --config "$CONFIG" \
    --secret-file "$DIR/secret" --name soak > "$DIR/worker.log" 2>&1 &
WPID=$!
trap 'kill "$WPID" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    grep -q "listening on" "$DIR/worker.log" && break
    kill -0 "$WPID" 2>/dev/null || { cat "$DIR/worker.log"; exit 1; }
    sleep 0.1
done
grep "listening on" "$DIR/worker.log"

set +e
nice -n 10 "$BIN/moebench-bench" soak --port "$PORT" --secret-file "$DIR/secret" --worker-pid "$WPID" \
    --config "$CONFIG" --duration "$DURATION" "$@"
rc=$?
set -e
kill -0 "$WPID" 2>/dev/null && echo "worker still alive after the soak" || { echo "worker died"; rc=1; }
echo "worker log ($DIR/worker.log):"; tail -5 "$DIR/worker.log"
exit $rc
