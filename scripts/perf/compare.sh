#!/usr/bin/env bash
# End-to-end comparison on loopback, all in one run (docs/benchmarks.md, "End to end"):
#   (a) raw QUIC: `moq bench --raw-quic`, two quinn endpoints with no MoQ, the ceiling;
#   (b) our moq-relay under `moq bench`;
#   (c) the published moq-relay 0.6.10 under the same `moq bench` load.
# The rows of (b) and (c) alternate, so both see the same machine. Each relay is started
# fresh for each row and killed after it. Writes one JSON object per row to OUT/results.jsonl
# and a summary with ratios (and a plot, if matplotlib is importable) via report.py.
#
# usage: scripts/perf/compare.sh [--out DIR] [--duration S] [--subs "1 10 100 500"]
#                                [--their-relay PATH] [--root DIR] [--repeat N]
#                                [--groups-in-flight K] [--max-udp-payload BYTES] [--rows REGEX]
#        scripts/perf/compare.sh --churn SECONDS [--out DIR] [--relay ours|theirs]
#   --out DIR          results and logs (default: ${TMPDIR:-/tmp}/moq-perf)
#   --duration S       measured seconds per row (default 5)
#   --subs LIST        subscriber counts of the fan-out sweep (default "1 10 100 500")
#   --their-relay PATH the published relay's binary; default: DIR/bin/moq-relay, installed
#                      there with `cargo install --locked --root DIR moq-relay@0.6.10` if
#                      missing (DIR from --root, default ${TMPDIR:-/tmp}/moq-interop, shared
#                      with scripts/interop.sh)
#   --repeat N         run the whole comparison N times (default 1)
#   --groups-in-flight K  also run every `--max` row with `moq bench --groups-in-flight K`
#                      (rows labelled ...-max-kK, right after the row with the default 1)
#   --max-udp-payload BYTES  our relay's and the bench's largest UDP datagram (default:
#                      the flag's own, 6000; 1452 keeps every packet within Ethernet's size, as on
#                      a 1500-byte path). The published relay keeps its own (MTU discovery off).
#   --rows REGEX       only the rows whose label matches REGEX (bash extended regular
#                      expression), e.g. '^paced-' for the paced fan-out rows, which are
#                      paced-100x500 (1 track, 100 subscribers, 500 frames/s) and
#                      paced-500x30 (500 subscribers, 30 frames/s), 1 KB frames;
#                      media-3mbit-100 is a 3 Mbit/s video-like feed to 100 subscribers;
#                      floor-100x500 and floor-500x30 are `moq bench --floor`, no relay
#   --churn SECONDS    instead: one relay, publishers and subscribers connecting and leaving
#                      for SECONDS (bounded by a count too), VmRSS sampled every 5 s into
#                      OUT/churn-RELAY.csv
#
# Environment: CARGO_TARGET_DIR (where our release build goes), PYTHON (for report.py).
# Needs: cargo, openssl, python3. Talks only to 127.0.0.1; kills what it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

out="${TMPDIR:-/tmp}/moq-perf"
duration=5
subs="1 10 100 500"
their_relay=""
root="$INTEROP_ROOT"
repeat=1
churn=0
churn_relay=ours
in_flight=1
udp_payload=""
rows=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --subs) subs="$2"; shift 2 ;;
        --their-relay) their_relay="$2"; shift 2 ;;
        --root) root="$2"; shift 2 ;;
        --repeat) repeat="$2"; shift 2 ;;
        --groups-in-flight) in_flight="$2"; shift 2 ;;
        --max-udp-payload) udp_payload="$2"; shift 2 ;;
        --churn) churn="$2"; shift 2 ;;
        --relay) churn_relay="$2"; shift 2 ;;
        --rows) rows="$2"; shift 2 ;;
        -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
# Passed to our relay and to every `moq bench` (empty: their defaults).
udp_flag=()
if [ -n "$udp_payload" ]; then
    udp_flag=(--max-udp-payload "$udp_payload")
fi

echo "== building ours (release)"
cargo build --release --locked -p moq-relay -p moq-cli
target="${CARGO_TARGET_DIR:-target}"
our_relay="$target/release/moq-relay"
moq="$target/release/moq"

# The published relay, where scripts/interop.sh installs it too (built once for both); only
# when a row or the churn runs it.
if [ -z "$their_relay" ] && { [ "$churn" -eq 0 ] || [ "$churn_relay" = theirs ]; }; then
    their_relay="$root/bin/moq-relay"
    install_published "$root" "$PUBLISHED_RELAY"
fi
# A certificate for the published relay (it has no self-signing option).
make_cert "$out"

relay_pid=""
cleanup() {
    # Our background jobs (churn loops, sampler), then the relay.
    for job in $(jobs -p); do kill "$job" 2>/dev/null || true; done
    kill_tracked
}
trap cleanup EXIT

# Starts a relay and waits until it listens; the comparison is void without it.
start_relay() { # which port log
    case "$1" in
        ours) start_our_relay "$our_relay" "$2" "$3" "${udp_flag[@]}" --stats-interval 0 -q ;;
        theirs) start_their_relay "$their_relay" "$2" "$3" "$out" -q ;;
    esac || exit 1
}

stop_relay() {
    stop_pids "$relay_pid"
    relay_pid=""
}

# Whether a row is run: every row, or those --rows matches.
wanted() {
    [ -z "$rows" ] || [[ $1 =~ $rows ]]
}

# One row: `bench_row LABEL RELAY ARGS...` appends {"label":..,"relay":..,"run":..,...}.
bench_row() {
    local label="$1" which="$2"; shift 2
    local port log json
    wanted "$label" || return 0
    port=$(free_port)
    log="$out/logs/$label-$which.run$run"
    start_relay "$which" "$port" "$log.relay.log"
    json=$(timeout 180 "$moq" "${udp_flag[@]}" --bind 127.0.0.1:0 --tls-disable-verify bench \
        "moqf://127.0.0.1:$port/" --relay-pid "$relay_pid" --json "$@" 2>"$log.err" || true)
    stop_relay
    if [ -z "$json" ]; then
        json='{"error":"no result"}'
        echo "   $label $which: no result (see $log.err)" >&2
    fi
    echo "{\"label\":\"$label\",\"relay\":\"$which\",\"run\":$run,\"bench\":$json}" >>"$out/results.jsonl"
    python3 - "$label" "$which" "$json" <<'EOF'
import json, sys
label, which, raw = sys.argv[1:4]
r = json.loads(raw)
if "frames_per_s" in r:
    l = r["latency_us"]
    print(f"   {label:<16} {which:<7} {r['frames_per_s']:>11.0f} frames/s {r['mb_per_s']:>8.1f} MB/s"
          f"  p50 {l['p50']/1e3:7.2f} ms  p99 {l['p99']/1e3:7.2f} ms  skipped {r['groups_skipped']}"
          f"  dropped {r['groups_dropped']}  subs {r['subscribers_connected']}/{r['subscribers']}")
    relay = r.get("relay") or {}
    if relay.get("cpu_us_per_frame") is not None:
        per_sub = relay.get("kib_per_subscriber")
        print(f"   {'':<16} {'':<7} relay {relay['cpu_percent']:.0f}% cpu, {relay['cpu_us_per_frame']:.2f} us"
              f" per delivered frame, {relay['rss_kib'] // 1024} MiB rss"
              + (f", {per_sub:.0f} KiB per subscriber" if per_sub is not None else ""))
EOF
}

# floor_row LABEL FLAG...: `moq bench --floor` (no relay) with FLAGs, recorded as relay
# "floor" (report.py: "floor (no relay)").
floor_row() {
    local label="$1" json
    shift
    wanted "$label" || return 0
    json=$(timeout 180 "$moq" "${udp_flag[@]}" --bind 127.0.0.1:0 bench --floor --json "$@" \
        2>"$out/logs/$label.run$run.err" || true)
    [ -n "$json" ] || json='{"error":"no result"}'
    echo "{\"label\":\"$label\",\"relay\":\"floor\",\"run\":$run,\"bench\":$json}" >>"$out/results.jsonl"
    echo "   $label floor: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); s=r.get("relay") or {}; print("%.0f frames/s, p99 %.2f ms, sender %.2f us per delivered frame" % (r["frames_per_s"], r["latency_us"]["p99"]/1e3, s.get("cpu_us_per_frame") or 0)) if "frames_per_s" in r else print("no result")' "$json")"
}

if [ "$churn" -gt 0 ]; then
    run=0
    port=$(free_port)
    start_relay "$churn_relay" "$port" "$out/logs/churn-$churn_relay.relay.log"
    csv="$out/churn-$churn_relay.csv"
    echo "seconds,vmrss_kib,bench_runs" >"$csv"
    echo "== churn: $churn_relay relay (pid $relay_pid) for $churn s; VmRSS into $csv"
    start=$(date +%s)
    results="$out/churn-$churn_relay.jsonl"
    : >"$results"
    sample() {
        local rss
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$relay_pid/status" 2>/dev/null || echo 0)
        echo "$(( $(date +%s) - start )),$rss,$(wc -l <"$results")" >>"$csv"
    }
    # Sampler in the background (bounded by the same deadline).
    (
        while [ $(( $(date +%s) - start )) -lt "$churn" ]; do
            sample
            sleep 5
        done
    ) &
    sampler=$!
    # Sessions come and go: each bench run connects its publishers and subscribers, loads
    # the relay for 2 to 4 s and leaves; shapes vary so tracks, groups and sessions churn.
    # Two loops run at once, out of step, so sessions leave while others are busy.
    shapes=("--tracks 4 --subscribers 10 --rate 200"
            "--tracks 1 --subscribers 50 --rate 500"
            "--tracks 8 --subscribers 2 --max --frame-size 16384"
            "--tracks 2 --subscribers 20 --rate 100 --group-frames 1")
    churn_loop() { # offset
        local i=$1
        sleep "$1"
        while [ $(( $(date +%s) - start )) -lt "$churn" ] && [ "$i" -lt 1000 ]; do
            shape=${shapes[$(( i % ${#shapes[@]} ))]}
            # shellcheck disable=SC2086
            timeout 60 "$moq" "${udp_flag[@]}" --bind 127.0.0.1:0 --tls-disable-verify bench \
                "moqf://127.0.0.1:$port/" --duration $(( 2 + i % 3 )) --json $shape \
                >>"$results" 2>>"$out/logs/churn-$churn_relay.err" || true
            i=$((i + 1))
        done
    }
    churn_loop 0 &
    loop_a=$!
    churn_loop 1 &
    loop_b=$!
    wait "$loop_a" "$loop_b" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sample
    stop_relay
    echo "== $(wc -l <"$results") bench runs; VmRSS (KiB) first / after 60 s / max / last:"
    awk -F, 'NR==2 {first=$2} NR>1 && $1>=60 && !m {at60=$2; m=1} NR>1 && $2>max {max=$2} NR>1 {last=$2}
             END {print "   " first " / " at60 " / " max " / " last}' "$csv"
    exit 0
fi

for run in $(seq 1 "$repeat"); do
    echo "== run $run of $repeat ($(date -u +%H:%M:%S) UTC, load: $(cut -d' ' -f1-3 /proc/loadavg))"
    # (a) the ceiling: with the relays' congestion control (BBR) and with CUBIC.
    for cc in bbr cubic; do
        wanted "raw-64k-$cc" || continue
        json=$(timeout 120 "$moq" "${udp_flag[@]}" --congestion "$cc" bench --raw-quic --frame-size 65536 --duration "$duration" --json)
        echo "{\"label\":\"raw-64k-$cc\",\"relay\":\"none\",\"run\":$run,\"bench\":$json}" >>"$out/results.jsonl"
        echo "   raw-64k-$cc    quic    $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("%11.0f frames/s %8.1f MB/s" % (r["frames_per_s"], r["mb_per_s"]))' "$json")"
    done
    # (b) and (c), alternating.
    for which in ours theirs; do
        bench_row "1to1-64k-max" "$which" --subscribers 1 --max --frame-size 65536 --duration "$duration"
    done
    if [ "$in_flight" -gt 1 ]; then
        for which in ours theirs; do
            bench_row "1to1-64k-max-k$in_flight" "$which" --subscribers 1 --max \
                --groups-in-flight "$in_flight" --frame-size 65536 --duration "$duration"
        done
    fi
    for n in $subs; do
        for which in ours theirs; do
            bench_row "fanout-$n-max" "$which" --subscribers "$n" --max --frame-size 1024 --duration "$duration"
        done
        if [ "$in_flight" -gt 1 ]; then
            for which in ours theirs; do
                bench_row "fanout-$n-max-k$in_flight" "$which" --subscribers "$n" --max \
                    --groups-in-flight "$in_flight" --frame-size 1024 --duration "$duration"
            done
        fi
        for which in ours theirs; do
            bench_row "fanout-$n-500fps" "$which" --subscribers "$n" --rate 500 --frame-size 1024 --duration "$duration"
        done
    done
    # Paced fan-out: live loads (a 500 frames/s feed to 100, video's 30 frames/s to 500).
    for shape in "100 500" "500 30"; do
        read -r n rate <<<"$shape"
        for which in ours theirs; do
            bench_row "paced-${n}x$rate" "$which" --subscribers "$n" --rate "$rate" --frame-size 1024 --duration "$duration"
        done
    done
    # The floor under the paced rows: the same packets sent straight from one thread to
    # every subscriber (`moq bench --floor`), no relay; its CPU per delivered frame is the
    # least any relay on quinn can pay.
    for shape in "100 500" "500 30"; do
        read -r n rate <<<"$shape"
        floor_row "floor-${n}x$rate" --subscribers "$n" --rate "$rate" --frame-size 1024 --duration "$duration"
    done
    # A live video feed: about 3 Mbit/s (30 frames/s of 12,500 bytes, a group a second) to
    # 100 subscribers; the relay's CPU per delivered megabit is 10x its µs per frame.
    for which in ours theirs; do
        bench_row "media-3mbit-100" "$which" --subscribers 100 --rate 30 --frame-size 12500 \
            --group-frames 30 --duration "$duration"
    done
done

"${PYTHON:-python3}" scripts/perf/report.py "$out/results.jsonl" --plot "$out/perf-fanout.png"
