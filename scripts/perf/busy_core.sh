#!/usr/bin/env bash
# 1 track to 500 subscribers at 500 frames/s of 1 KB, with one core held busy by a spin
# loop: how each relay sheds load when it and the readers run short of CPU. Alternates our
# relay and the published moq-relay 0.6.10, each fresh per run, with the same bench, and
# prints delivered frames/s, p50 and p99 per run (docs/benchmarks.md, "1→500 at 500
# frames/s with a busy core").
#
# usage: scripts/perf/busy_core.sh [--repeat N] [--duration S] [--their-relay PATH]
#   --repeat N          runs of each relay (default 3)
#   --duration S        measured seconds per run (default 5)
#   --their-relay PATH  the published relay (default: where scripts/interop.sh installs it,
#                       ${TMPDIR:-/tmp}/moq-interop/bin/moq-relay)
#
# Needs: cargo, openssl, python3. Talks only to 127.0.0.1; kills what it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

repeat=3
duration=5
their_relay="$INTEROP_ROOT/bin/moq-relay"
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) repeat="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --their-relay) their_relay="$2"; shift 2 ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[ -x "$their_relay" ] || { echo "no published relay at $their_relay (run scripts/interop.sh once, or pass --their-relay)" >&2; exit 1; }

cargo build --locked --release -p moq-relay -p moq-cli --bin moq-relay --bin moq
target="${CARGO_TARGET_DIR:-target}/release"
scratch=$(mktemp -d)
trap 'kill_tracked; rm -rf "$scratch"' EXIT
make_cert "$scratch"

run() { # which
    local port relay spin
    port=$(free_port)
    # A relay that does not start makes its bench fail, which prints "WHICH failed".
    case "$1" in
        ours) start_our_relay "$target/moq-relay" "$port" /dev/null --stats-interval 0 -q ;;
        theirs) start_their_relay "$their_relay" "$port" /dev/null "$scratch" ;;
    esac || true
    relay=$relay_pid
    spawn /dev/null timeout 120 sh -c 'while :; do :; done'
    spin=$last_pid
    "$target/moq" --bind 127.0.0.1:0 --tls-disable-verify bench "moqf://127.0.0.1:$port/" \
        --relay-pid "$relay" --json --subscribers 500 --rate 500 --frame-size 1024 \
        --duration "$duration" 2>/dev/null |
        python3 -c 'import json, sys
r = json.load(sys.stdin); l = r["latency_us"]
print("%-6s %7.1f k frames/s  p50 %7.1f ms  p99 %7.1f ms  subscribers %d/%d" % (sys.argv[1], r["frames_per_s"] / 1000, l["p50"] / 1000, l["p99"] / 1000, r["subscribers_connected"], r["subscribers"]))' "$1" ||
        echo "$1 failed"
    stop_pids "$spin" "$relay"
}

for _ in $(seq "$repeat"); do
    run ours
    run theirs
done
