#!/usr/bin/env bash
# Cluster numbers (docs/cluster.md, "Numbers"): relays of ours on 127.0.0.1 around one etcd,
# measured with `moq bench` and the relays' /metrics. Short runs on purpose: the machine may be
# shared, so each part takes seconds, not minutes.
#
#   latency  added latency per relay hop: 1 publisher -> 1 subscriber at --rate, p50/p99,
#            through one relay and through two (publisher on A, subscriber on B), alternated
#            ROUNDS times
#   dedup    1 publisher on A, SUBS subscribers on each of B and C: frames A sends per frame it
#            receives (A's moq_relay_frames_sent_total / moq_relay_frames_received_total)
#   expiry   TRIALS times: a relay X with a clock publisher joins, B routes its path, X is
#            SIGKILLed; the time until B's moq_relay_cluster_remote_routes drops to 0
#   capacity fan-out capacity: 1 publisher on A, 2 x SUBS subscribers, `--max` (1 KiB
#            frames): all on A, against half on B and half on C, alternated ROUNDS times.
#            Every relay shares this machine's cores, so it shows the cost of the hops, not
#            what more machines would add
#
# usage: scripts/perf/cluster.sh [latency|dedup|expiry|capacity]...   (default: all four)
# env:   DURATION (bench window, s; default 10)  ROUNDS (default 2)  RATE (frames/s; 100)
#        SUBS (per relay in dedup; 100)  TRIALS (default 20)  LEASE (s; default 3)
#        OUT (logs; default ${TMPDIR:-/tmp}/moq-cluster-perf)
# Needs: cargo, python3, curl, etcd (Debian: etcd-server). Builds release binaries.
# The links between the relays use --tls-disable-verify: loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then parts=(latency dedup expiry capacity); fi
for part in "${parts[@]}"; do
    case "$part" in
        latency | dedup | expiry | capacity) ;;
        -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "scripts/perf/cluster.sh: unknown part $part (see --help)" >&2; exit 2 ;;
    esac
done
duration=${DURATION:-10}
rounds=${ROUNDS:-2}
rate=${RATE:-100}
subs=${SUBS:-100}
trials=${TRIALS:-20}
lease=${LEASE:-3}
out=${OUT:-${TMPDIR:-/tmp}/moq-cluster-perf}
command -v etcd >/dev/null || { echo "no etcd: apt-get install etcd-server" >&2; exit 1; }
command -v curl >/dev/null || { echo "no curl" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
trap kill_tracked EXIT

echo "== building release binaries"
cargo build --release --locked --bin moq-relay --bin moq
target=${CARGO_TARGET_DIR:-target}
relay_bin=$target/release/moq-relay
moq_bin=$target/release/moq

# free_tcp_port: a TCP port of 127.0.0.1 that is free now (etcd, the metrics listeners).
free_tcp_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# metric PORT NAME: the value of NAME on the /metrics of the relay whose metrics are at PORT.
metric() {
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# wait_metric PORT NAME VALUE [SECONDS]: until NAME is VALUE (default bound 30 s).
wait_metric() {
    local tenths=$((${4:-30} * 10))
    while [ "$(metric "$1" "$2")" != "$3" ]; do
        tenths=$((tenths - 1))
        if [ "$tenths" -le 0 ]; then
            echo "$2 on :$1 never became $3" >&2
            return 1
        fi
        sleep 0.1
    done
}

etcd_port=$(free_tcp_port)
etcd_peer=$(free_tcp_port)
etcd_url=http://127.0.0.1:$etcd_port
spawn "$out/etcd.log" etcd --name perf --data-dir "$out/etcd-data" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "perf=http://127.0.0.1:$etcd_peer"
for _ in $(seq 100); do
    curl -sf "$etcd_url/health" | grep -q true && break
    sleep 0.1
done
curl -sf "$etcd_url/health" | grep -q true || { echo "etcd did not start; see $out/etcd.log" >&2; exit 1; }

# start_member NAME: a relay in the cluster, logging to OUT/NAME.log; sets member_port,
# member_metrics (its metrics port) and member_pid.
start_member() {
    member_port=$(free_port)
    member_metrics=$(free_tcp_port)
    start_our_relay "$relay_bin" "$member_port" "$out/$1.log" -q --stats-interval 0 \
        --cluster-etcd "$etcd_url" --cluster-node "moqf://127.0.0.1:$member_port/" \
        --cluster-lease "$lease" --tls-disable-verify --metrics-bind "127.0.0.1:$member_metrics"
    member_pid=$relay_pid
    wait_metric "$member_metrics" moq_relay_cluster_registered 1
}

# bench ARGS...: one `moq bench` run, its JSON on stdout (its warnings in OUT/bench.log).
bench() {
    "$moq_bin" --tls-disable-verify bench "$@" --duration "$duration" --json 2>>"$out/bench.log"
}

# latency_of JSON: "p50 p99" in microseconds.
latency_of() {
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); l=r["latency_us"]; print(l["p50"], l["p99"], r["frames_delivered"])' "$1"
}

start_member a
a_port=$member_port a_metrics=$member_metrics
start_member b
b_port=$member_port b_metrics=$member_metrics
start_member c
c_port=$member_port

if [[ " ${parts[*]} " == *" latency "* ]]; then
    echo "== latency: 1 -> 1 at $rate frames/s, ${duration} s windows, $rounds rounds"
    echo "| path | round | p50 (us) | p99 (us) | frames |"
    echo "|---|---:|---:|---:|---:|"
    for round in $(seq "$rounds"); do
        read -r p50 p99 n < <(latency_of "$(bench "moqf://127.0.0.1:$a_port/" --rate "$rate")")
        echo "| one relay (A) | $round | $p50 | $p99 | $n |"
        read -r p50 p99 n < <(latency_of "$(bench "moqf://127.0.0.1:$a_port/" \
            --subscribe-url "moqf://127.0.0.1:$b_port/" --rate "$rate")")
        echo "| two relays (A -> B) | $round | $p50 | $p99 | $n |"
    done
fi

if [[ " ${parts[*]} " == *" dedup "* ]]; then
    echo "== dedup: 1 publisher on A, $subs subscribers on each of B and C, 30 frames/s"
    wait_metric "$a_metrics" moq_relay_group_streams 0
    in0=$(metric "$a_metrics" moq_relay_frames_received_total)
    out0=$(metric "$a_metrics" moq_relay_frames_sent_total)
    bout0=$(metric "$b_metrics" moq_relay_frames_sent_total)
    # 30 frames a group, 30 frames/s: one group a second; each group counts once it ends.
    result=$(bench "moqf://127.0.0.1:$a_port/" --subscribe-url "moqf://127.0.0.1:$b_port/" \
        --subscribe-url "moqf://127.0.0.1:$c_port/" --subscribers $((2 * subs)) --rate 30)
    wait_metric "$a_metrics" moq_relay_group_streams 0
    wait_metric "$b_metrics" moq_relay_group_streams 0
    in1=$(metric "$a_metrics" moq_relay_frames_received_total)
    out1=$(metric "$a_metrics" moq_relay_frames_sent_total)
    bout1=$(metric "$b_metrics" moq_relay_frames_sent_total)
    python3 - "$result" "$in0" "$in1" "$out0" "$out1" "$bout0" "$bout1" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
i0, i1, o0, o1, b0, b1 = map(int, sys.argv[2:])
received, sent, b_sent = i1 - i0, o1 - o0, b1 - b0
print("| A: frames received | A: frames sent | sent per frame | B: frames sent | subscribers receiving | p99 (us) |")
print("|---:|---:|---:|---:|---:|---:|")
print(f"| {received} | {sent} | {sent / max(received, 1):.2f} | {b_sent} | {r['subscribers_connected']} | {r['latency_us']['p99']} |")
EOF
fi

if [[ " ${parts[*]} " == *" capacity "* ]]; then
    echo "== capacity: 1 publisher on A, $((2 * subs)) subscribers, --max, 1 KiB frames, $rounds rounds"
    echo "| subscribers on | round | delivered frames/s | p50 (us) | p99 (us) | subscribers receiving |"
    echo "|---|---:|---:|---:|---:|---:|"
    capacity_row() { # label round JSON
        python3 -c 'import json,sys; r=json.loads(sys.argv[3]); l=r["latency_us"]
print("| %s | %s | %.0f | %s | %s | %s |" % (sys.argv[1], sys.argv[2], r["frames_per_s"], l["p50"], l["p99"], r["subscribers_connected"]))' "$@"
    }
    for round in $(seq "$rounds"); do
        capacity_row "A (one relay)" "$round" "$(bench "moqf://127.0.0.1:$a_port/" \
            --subscribers $((2 * subs)) --max --frame-size 1024)"
        capacity_row "B and C (A fans out twice)" "$round" "$(bench "moqf://127.0.0.1:$a_port/" \
            --subscribe-url "moqf://127.0.0.1:$b_port/" --subscribe-url "moqf://127.0.0.1:$c_port/" \
            --subscribers $((2 * subs)) --max --frame-size 1024)"
    done
fi

if [[ " ${parts[*]} " == *" expiry "* ]]; then
    echo "== expiry: relay X SIGKILLed, until B drops its route; lease ${lease} s, $trials trials"
    times=()
    for trial in $(seq "$trials"); do
        start_member "x-$trial"
        x_port=$member_port x_pid=$member_pid
        spawn "$out/clock-$trial.log" "$moq_bin" --tls-disable-verify clock publish \
            "moqf://127.0.0.1:$x_port/" --path "expiry/$trial"
        clock_pid=$last_pid
        wait_metric "$b_metrics" moq_relay_cluster_remote_routes 1
        start=$(date +%s%N)
        kill -9 "$x_pid"
        wait_metric "$b_metrics" moq_relay_cluster_remote_routes 0 60
        end=$(date +%s%N)
        times+=($(((end - start) / 1000000)))
        # Reaped quietly (no "Killed" line from the shell), then untracked.
        wait "$x_pid" 2>/dev/null || true
        stop_pids "$x_pid" "$clock_pid"
        # The next X only once B forgot this one entirely (its node key expired too).
        wait_metric "$b_metrics" moq_relay_cluster_peers 2 60
    done
    python3 - "${times[@]}" <<'EOF'
import sys
t = sorted(int(x) for x in sys.argv[1:])
q = lambda p: t[min(len(t) - 1, int(p * len(t)))]
print("| trials | min (ms) | p50 (ms) | p90 (ms) | max (ms) |")
print("|---:|---:|---:|---:|---:|")
print(f"| {len(t)} | {t[0]} | {q(0.5)} | {q(0.9)} | {t[-1]} |")
EOF
fi
echo "logs in $out"
