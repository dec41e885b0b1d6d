#!/bin/sh
# GET /api/v1/flags under wrk (64 connections), jido-system against a bare
# axum handler sending the same body, alternating, in one run.
# Needs wrk (Debian: apt-get install wrk). Not part of .ci/run: it is a
# measurement, run by hand on a quiet machine.
#
# Usage: benches/wrk_flags.sh [SECONDS] [ROUNDS]
set -eu
seconds=${1:-10}
rounds=${2:-3}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet -p jido-system -p benches --example bare_axum_flags
work=$(mktemp -d)
trap 'kill $system $bare 2>/dev/null || true; rm -rf "$work"' EXIT INT TERM
./target/release/jido-system serve --data-dir "$work/data" --listen 127.0.0.1:4591 >"$work/serve.log" 2>&1 &
system=$!
bare=
for _ in $(seq 1 100); do
    curl -sf http://127.0.0.1:4591/api/v1/flags >"$work/body.json" && break
    sleep 0.1
done
[ -s "$work/body.json" ] || { echo "jido-system did not answer; its log:" >&2; cat "$work/serve.log" >&2; exit 1; }
./target/release/examples/bare_axum_flags 127.0.0.1:4592 "$work/body.json" &
bare=$!
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:4592/api/v1/flags >/dev/null && break; sleep 0.1; done
for round in $(seq 1 "$rounds"); do
    for target in "bare axum:4592" "jido-system:4591"; do
        name=${target%:*}
        port=${target##*:}
        echo "== round $round: $name"
        wrk -t2 -c64 -d"${seconds}s" --latency "http://127.0.0.1:$port/api/v1/flags" |
            grep -E '^ +(50|99)%|Requests/sec'
    done
done
