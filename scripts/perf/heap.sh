#!/usr/bin/env bash
# What each subscriber costs our relay in heap, and where (docs/benchmarks.md, "Memory per
# subscriber"): our relay built with jemalloc's profiler (feature `heap-profile`, in its own
# target directory), every allocation sampled, `moq bench` run against it, the heap dumped
# while the load runs, and scripts/perf/heap.py summing it by allocation site and by crate.
#
# usage: scripts/perf/heap.sh [--out DIR] [--keep] [-- BENCH-ARGS...]
#   --out DIR     where the dumps and the summary go (default: ${TMPDIR:-/tmp}/moq-heap)
#   BENCH-ARGS    passed to `moq bench` (default: --subscribers 100 --rate 100
#                 --frame-size 1024 --duration 8); the relay and the bench send datagrams
#                 of at most 1452 bytes, as on a 1500-byte path
#
# Sampling every allocation slows the relay several times over: its CPU and latency in this
# run mean nothing, and a load it cannot keep up with leaves data queued in the heap.
# Environment: HEAP_TARGET_DIR (the profiling build; default target/heap-profile).
# Needs: cargo, python3, addr2line. Talks only to 127.0.0.1; kills what it starts.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

out="${TMPDIR:-/tmp}/moq-heap"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --) shift; break ;;
        -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (bench arguments go after --)" >&2; exit 2 ;;
    esac
done
bench_args=("$@")
if [ ${#bench_args[@]} -eq 0 ]; then
    bench_args=(--subscribers 100 --rate 100 --frame-size 1024 --duration 8)
fi
subs=1
duration=5
for ((i = 0; i < ${#bench_args[@]}; i++)); do
    case "${bench_args[$i]}" in
        --subscribers) subs="${bench_args[$((i + 1))]}" ;;
        --duration) duration="${bench_args[$((i + 1))]}" ;;
    esac
done

target="${HEAP_TARGET_DIR:-target/heap-profile}"
echo "== building the relay with the heap profiler (into $target) and moq"
CARGO_TARGET_DIR="$target" cargo build --release --locked -q -p moq-relay --features heap-profile
cargo build --release --locked -q -p moq-cli
relay_bin="$(cd "$target/release" && pwd)/moq-relay"
moq="${CARGO_TARGET_DIR:-target}/release/moq"

rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
trap kill_tracked EXIT

port=$(free_port)
# Every allocation sampled; a dump each time 16 MiB more have been allocated, so several
# fall inside the measured seconds.
export _RJEM_MALLOC_CONF="prof:true,lg_prof_sample:0,lg_prof_interval:24,prof_prefix:$out/relay"
start_our_relay "$relay_bin" "$port" "$out/relay.log" --max-udp-payload 1452 --stats-interval 0 -q
unset _RJEM_MALLOC_CONF
"$moq" --max-udp-payload 1452 --bind 127.0.0.1:0 --tls-disable-verify bench \
    "moqf://127.0.0.1:$port/" --relay-pid "$relay_pid" "${bench_args[@]}" >"$out/bench.txt" 2>&1 &
bench=$!
track "$bench"
# The dump written last before the middle of the measured seconds (after about a second of
# connecting): every subscriber connected, none gone yet.
sleep "$(python3 -c "print($duration / 2 + 1.5)")"
dump="$(ls -t "$out"/relay.*.heap 2>/dev/null | head -n 1 || true)"
if [ -z "$dump" ]; then
    echo "no heap dump was written (see $out/relay.log)" >&2
    exit 1
fi
cp "$dump" "$out/loaded.heap"
wait "$bench" || true
stop_pids "$relay_pid"
rm -f "$out"/relay.*.heap

cat "$out/bench.txt"
echo
python3 scripts/perf/heap.py "$out/loaded.heap" "$relay_bin" --per "$subs" | tee "$out/summary.txt"
echo
echo "dump: $out/loaded.heap, summary: $out/summary.txt"
