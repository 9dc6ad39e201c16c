#!/usr/bin/env bash
# A relay behind a rate-limited link, in two network namespaces made here (docs/benchmarks.md,
# "Behind a bottleneck link"): the relay in one, `moq bench` in the other, joined by a veth
# pair whose two ends are shaped by a token bucket (tbf: RATE, a queue of BUFFER_MS). Rows
# alternate between relays or congestion controllers under the same load.
#
# usage: scripts/perf/bottleneck.sh [--rate 50mbit] [--buffer-ms 200] [--relay ours|theirs]
#                                   [--relay-bin PATH] [--moq-bin PATH] [--congestion bbr|cubic]
#                                   -- BENCH-ARGS...
#   --relay theirs   the published relay: THEIR_RELAY (default: where scripts/interop.sh
#                    installs it, ${TMPDIR:-/tmp}/moq-interop/bin/moq-relay)
#   --relay-bin PATH run this build of our relay instead of the one built here (to compare
#                    two commits with the same bench)
#   --moq-bin PATH   run this build of `moq` for the bench (its publisher is our session too)
#   BENCH-ARGS       passed to `moq bench`, e.g. --subscribers 5 --rate 2000 --frame-size 1024
#
# Needs root, iproute2 and the kernel's tbf qdisc; the addresses are 10.77.0.1 (relay) and
# 10.77.0.2 (bench), inside the namespaces only. Deletes the namespaces and stops the relay
# on exit. Builds ours with cargo (CARGO_TARGET_DIR respected).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rate=50mbit
buffer_ms=200
relay=ours
congestion=bbr
relay_bin=""
moq_bin=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rate) rate="$2"; shift 2 ;;
        --buffer-ms) buffer_ms="$2"; shift 2 ;;
        --relay) relay="$2"; shift 2 ;;
        --congestion) congestion="$2"; shift 2 ;;
        --relay-bin) relay_bin="$2"; shift 2 ;;
        --moq-bin) moq_bin="$2"; shift 2 ;;
        --) shift; break ;;
        -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (bench arguments go after --)" >&2; exit 2 ;;
    esac
done

cargo build --release --locked -q -p moq-relay -p moq-cli
target="${CARGO_TARGET_DIR:-target}"
moq="${moq_bin:-$target/release/moq}"
relay_bin="${relay_bin:-$target/release/moq-relay}"
their_relay="${THEIR_RELAY:-$INTEROP_ROOT/bin/moq-relay}"

a="moqbn-relay-$$"
b="moqbn-bench-$$"
work="$(mktemp -d)"
cleanup() {
    set +e
    # The relay first: the namespaces go once nothing runs in them.
    kill_tracked
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$a"
ip netns add "$b"
ip link add "va$$" type veth peer name "vb$$"
ip link set "va$$" netns "$a"
ip link set "vb$$" netns "$b"
ip -n "$a" addr add 10.77.0.1/24 dev "va$$"
ip -n "$b" addr add 10.77.0.2/24 dev "vb$$"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "va$$" up
ip -n "$b" link set "vb$$" up
ip netns exec "$a" tc qdisc add dev "va$$" root tbf rate "$rate" burst 32kbit latency "${buffer_ms}ms"
ip netns exec "$b" tc qdisc add dev "vb$$" root tbf rate "$rate" burst 32kbit latency "${buffer_ms}ms"

case "$relay" in
    ours)
        spawn "$work/relay.log" ip netns exec "$a" "$relay_bin" --congestion "$congestion" \
            --bind 10.77.0.1:4443 --tls-self-sign localhost,10.77.0.1 --stats-interval 0 -q
        ;;
    theirs)
        make_cert "$work" 10.77.0.1
        spawn "$work/relay.log" ip netns exec "$a" "$their_relay" --bind 10.77.0.1:4443 \
            --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" -q
        ;;
    *) echo "--relay ours or theirs" >&2; exit 2 ;;
esac
relay_pid=$last_pid
# `ip netns exec` execs the relay, so this pid is the relay's, and its /proc shows namespace a.
wait_relay 4443 "$work/relay.log" || { cat "$work/relay.log" >&2; exit 1; }
ip netns exec "$b" timeout 120 "$moq" --congestion "$congestion" --bind 10.77.0.2:0 \
    --tls-disable-verify bench moqf://10.77.0.1:4443/ "$@" 2>"$work/bench.err" \
    || { cat "$work/bench.err" >&2; exit 1; }
