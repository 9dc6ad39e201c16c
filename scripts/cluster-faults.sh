#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run through the exit trap and wait_for
# A real network partition between two relays of a cluster, with network namespaces (root
# needed): three namespaces it creates and deletes, no change outside them.
#
#   moqc-hub  etcd, and the router between the two others (10.77.1.1, 10.77.2.1)
#   moqc-a    relay A (10.77.1.2) and a `moq clock publish` on it
#   moqc-b    relay B (10.77.2.2) and `moq clock subscribe` through it
#
# Processes are started with `ip netns exec` (which becomes the program), so their pids are
# the programs' and the exit trap stops them before deleting the namespaces.
# Steps, each checked with a bound: B routes A's clock and its subscriber prints lines; the
# path between A and B is cut (a blackhole route in each, etcd still reachable from both):
# within about a lease B withdraws A's route and the subscriber's track ends, and both stay
# registered; the cut is healed: B's link comes back by itself and a new subscriber on B
# prints lines again, nothing restarted. Prints PASS or FAIL per step and the times; exits 1
# on any FAIL. docs/cluster.md records a run.
#
# usage: sudo scripts/cluster-faults.sh     env: LEASE (s, default 3), OUT (logs directory)
# Needs: root, iproute2 (ip netns, veth), etcd (Debian: etcd-server), curl, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

case "${1:-}" in
    -h | --help) sed -n '3,20p' "$0"; exit 0 ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "scripts/cluster-faults.sh needs root (network namespaces)" >&2
    exit 1
fi
for tool in ip etcd curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
lease=${LEASE:-3}
out=${OUT:-${TMPDIR:-/tmp}/moq-cluster-faults}
rm -rf "$out"
mkdir -p "$out"

echo "== building moq-relay and moq (release, as scripts/perf/cluster.sh)"
cargo build --release --locked --bin moq-relay --bin moq
target=${CARGO_TARGET_DIR:-target}
relay_bin=$(realpath "$target/release/moq-relay")
moq_bin=$(realpath "$target/release/moq")

namespaces=(moqc-hub moqc-a moqc-b)
cleanup() {
    kill_tracked
    for ns in "${namespaces[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
}
trap cleanup EXIT
for ns in "${namespaces[@]}"; do
    ip netns del "$ns" 2>/dev/null || true
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}
# link SIDE NUMBER: a veth pair between the hub (10.77.N.1) and moqc-SIDE (10.77.N.2).
link() {
    local side=$1 n=$2
    ip link add "moqc-h$side" netns moqc-hub type veth peer name "moqc-$side" netns "moqc-$side"
    ip -n moqc-hub addr add "10.77.$n.1/24" dev "moqc-h$side"
    ip -n "moqc-$side" addr add "10.77.$n.2/24" dev "moqc-$side"
    ip -n moqc-hub link set "moqc-h$side" up
    ip -n "moqc-$side" link set "moqc-$side" up
    ip -n "moqc-$side" route add default via "10.77.$n.1"
}
link a 1
link b 2
# Forwarding inside the hub namespace only (the setting is per namespace).
in_ns moqc-hub sysctl -qw net.ipv4.ip_forward=1

spawn "$out/etcd.log" ip netns exec moqc-hub etcd --name faults --data-dir "$out/etcd-data" \
    --listen-client-urls http://127.0.0.1:2379,http://10.77.1.1:2379,http://10.77.2.1:2379 \
    --advertise-client-urls http://10.77.1.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster faults=http://127.0.0.1:2380
for _ in $(seq 100); do
    in_ns moqc-hub curl -sf http://127.0.0.1:2379/health | grep -q true && break
    sleep 0.1
done

# metric SIDE NAME: the value of NAME on relay SIDE's metrics listener.
metric() {
    in_ns "moqc-$1" curl -sf "http://127.0.0.1:9090/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
# wait_for DESCRIPTION SECONDS COMMAND...: until COMMAND succeeds; prints PASS/FAIL and the
# time it took; returns 1 on FAIL.
failed=0
wait_for() {
    local what=$1 bound=$2 start end
    shift 2
    start=$(date +%s%N)
    while ! "$@"; do
        if [ $(($(date +%s%N) - start)) -gt $((bound * 1000000000)) ]; then
            echo "FAIL  $what (not within $bound s)"
            failed=1
            return 1
        fi
        sleep 0.1
    done
    end=$(date +%s%N)
    echo "PASS  $what ($(((end - start) / 1000000)) ms)"
}
is() { [ "$(metric "$1" "$2")" = "$3" ]; }
# gone PID: the process exited (a zombie not yet waited for counts as exited).
gone() { ! kill -0 "$1" 2>/dev/null || grep -q ') Z ' "/proc/$1/stat" 2>/dev/null; }
lines() { [ "$(wc -l <"$1" 2>/dev/null || echo 0)" -ge "$2" ]; }

# relay SIDE N: relay moqc-SIDE on 10.77.N.2:4443 in the cluster.
relay() {
    local side=$1 n=$2
    spawn "$out/relay-$side.log" ip netns exec "moqc-$side" "$relay_bin" --bind "10.77.$n.2:4443" \
        --tls-self-sign "10.77.$n.2" --cluster-etcd "http://10.77.$n.1:2379" \
        --cluster-node "moqf://10.77.$n.2:4443/" --cluster-lease "$lease" \
        --tls-disable-verify --metrics-bind 127.0.0.1:9090 --stats-interval 0
}
relay a 1
relay b 2
wait_for "A registered" 30 is a moq_relay_cluster_registered 1
wait_for "B registered" 30 is b moq_relay_cluster_registered 1

spawn "$out/publisher.log" ip netns exec moqc-a "$moq_bin" --tls-disable-verify clock publish \
    moqf://10.77.1.2:4443/ --path faults/clock
wait_for "B routes A's clock" 30 is b moq_relay_cluster_remote_routes 1
spawn "$out/subscriber-1.log" ip netns exec moqc-b "$moq_bin" --tls-disable-verify clock subscribe \
    moqf://10.77.2.2:4443/ --path faults/clock
subscriber=$last_pid
wait_for "B's subscriber prints the clock" 30 lines "$out/subscriber-1.log" 2

echo "== partition: blackhole routes between 10.77.1.2 and 10.77.2.2"
in_ns moqc-a ip route add blackhole 10.77.2.2/32
in_ns moqc-b ip route add blackhole 10.77.1.2/32
wait_for "B withdraws A's route" $((lease * 5)) is b moq_relay_cluster_remote_routes 0
wait_for "B's subscriber stops (track ended)" $((lease * 5)) \
    gone "$subscriber"
if is a moq_relay_cluster_registered 1 && is b moq_relay_cluster_registered 1; then
    echo "PASS  both relays stay registered in etcd"
else
    echo "FAIL  a relay lost its registration"
    failed=1
fi

echo "== heal"
in_ns moqc-a ip route del blackhole 10.77.2.2/32
in_ns moqc-b ip route del blackhole 10.77.1.2/32
wait_for "B routes A's clock again" 30 is b moq_relay_cluster_remote_routes 1
wait_for "B's link is up" 30 is b moq_relay_cluster_links 1
spawn "$out/subscriber-2.log" ip netns exec moqc-b "$moq_bin" --tls-disable-verify clock subscribe \
    moqf://10.77.2.2:4443/ --path faults/clock
wait_for "a new subscriber on B prints the clock" 30 lines "$out/subscriber-2.log" 2
echo "B's link failures: $(metric b moq_relay_cluster_link_failures_total); logs in $out"
if [ "$failed" = 0 ]; then echo "cluster-faults: PASS"; else echo "cluster-faults: FAIL"; fi
exit "$failed"
