#!/usr/bin/env bash
# Our relay with one endpoint against several on the same port (`moq-relay --endpoints N`,
# docs/relay.md "Cores"), alternating, under the same `moq bench` loads: relay CPU per
# delivered frame, latency, delivered frames/s. One line per run, then the medians.
#
# usage: scripts/perf/endpoints.sh [--endpoints N] [--repeat R] [--duration S]
#                                  [--max-udp-payload BYTES] [--out DIR]
#   --endpoints N   the relay under test (default 2) against --endpoints 1
#   --repeat R      alternating pairs per load (default 3)
#   --duration S    measured seconds per run (default 5)
#   --max-udp-payload BYTES  for the relay and the bench (default 1452, Ethernet's size)
#   --out DIR       JSON of each run and logs (default: ${TMPDIR:-/tmp}/moq-endpoints)
#
# Loads: 1 KB frames from one publisher to 100 subscribers at 500 frames/s, to 500 at 30,
# and to 100 as fast as they go (`--max`).
# Environment: CARGO_TARGET_DIR. Talks only to 127.0.0.1; kills what it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

endpoints=2
repeat=3
duration=5
payload=1452
out="${TMPDIR:-/tmp}/moq-endpoints"
while [ $# -gt 0 ]; do
    case "$1" in
        --endpoints) endpoints="$2"; shift 2 ;;
        --repeat) repeat="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --max-udp-payload) payload="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
: >"$out/results.jsonl"

cargo build --release --locked -p moq-relay -p moq-cli
target="${CARGO_TARGET_DIR:-target}"
relay_pid=""
trap kill_tracked EXIT

loads=(
    "100x500|--subscribers 100 --rate 500"
    "500x30|--subscribers 500 --rate 30"
    "100-max|--subscribers 100 --max"
)
for load in "${loads[@]}"; do
    label=${load%%|*}
    read -r -a flags <<<"${load#*|}"
    for run in $(seq "$repeat"); do
        for n in 1 "$endpoints"; do
            port=$(free_port)
            log="$out/$label-e$n.run$run"
            start_our_relay "$target/release/moq-relay" "$port" "$log.relay.log" \
                --max-udp-payload "$payload" --endpoints "$n" --stats-interval 0 -q
            json=$(timeout 180 "$target/release/moq" --max-udp-payload "$payload" \
                --bind 127.0.0.1:0 --tls-disable-verify bench "moqf://127.0.0.1:$port/" \
                --relay-pid "$relay_pid" --json --frame-size 1024 --duration "$duration" \
                "${flags[@]}" 2>"$log.err" || echo '{}')
            stop_pids "$relay_pid"
            echo "{\"load\":\"$label\",\"endpoints\":$n,\"run\":$run,\"bench\":$json}" >>"$out/results.jsonl"
        done
    done
done

python3 - "$out/results.jsonl" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    b = r["bench"]
    if "frames_per_s" not in b:
        print(f"{r['load']} endpoints {r['endpoints']} run {r['run']}: no result")
        continue
    cpu = (b.get("relay") or {}).get("cpu_us_per_frame")
    p99 = b["latency_us"]["p99"] / 1e3
    print(f"{r['load']:<8} endpoints {r['endpoints']:>3} run {r['run']}: {b['frames_per_s']:>9.0f} frames/s"
          f"  relay {cpu:6.2f} us/frame  p50 {b['latency_us']['p50']/1e3:6.2f}  p99 {p99:6.2f} ms")
    rows.setdefault((r["load"], r["endpoints"]), []).append((b["frames_per_s"], cpu, p99))
print()
print("medians: load, endpoints, frames/s, relay us per delivered frame, p99 ms")
for (load, n), v in rows.items():
    med = [statistics.median(x[i] for x in v) for i in range(3)]
    print(f"{load:<8} {n:>3}  {med[0]:>9.0f}  {med[1]:6.2f}  {med[2]:6.2f}")
EOF
