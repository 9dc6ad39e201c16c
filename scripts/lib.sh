# shellcheck shell=bash disable=SC2034  # its variables are read by the scripts that source it
# Helpers shared by the scripts: free ports, a certificate for the published relay, the
# published tools, relays started and awaited, processes killed on exit, Debian packages.
#
# Sourced, not executed, from the repository's root (the scripts cd there first):
#     # shellcheck source=scripts/lib.sh
#     source scripts/lib.sh
# Safe under `set -euo pipefail`; sets no shell option and no trap of its own.
# Functions that start processes must run in the script's own shell (not in `$(...)` or a
# pipeline), so that the pids they record are its children and can be waited for.

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "scripts/lib.sh is sourced by the other scripts, not run" >&2
    exit 2
fi

# The published versions the scripts compare against (docs/interop.md), named once here.
PUBLISHED_RELAY=moq-relay@0.6.10
PUBLISHED_CLOCK=moq-clock@0.5.14
PUBLISHED_TOKEN=moq-token-cli@0.5.48
PUBLISHED_KARP=moq-karp@0.10.0
# Where scripts/interop.sh installs the published relay and clock; the perf scripts look
# for the relay there too, so it is built once.
INTEROP_ROOT="${TMPDIR:-/tmp}/moq-interop"

# Pids that kill_tracked stops; track and spawn add to it, stop_pids removes from it.
tracked_pids=()

# free_port: prints a UDP port of 127.0.0.1 that is free now (the OS picks it), for a relay
# to bind (QUIC is UDP, so that is the kind of port checked).
free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# make_cert DIR [IP]: a self-signed P-256 certificate for localhost and IP (default
# 127.0.0.1) in DIR/cert.pem and DIR/key.pem, for the published relay, which cannot
# self-sign. An existing pair is kept unless it expires within a day.
make_cert() {
    local dir=$1 ip=${2:-127.0.0.1}
    if [ -f "$dir/cert.pem" ] && [ -f "$dir/key.pem" ] &&
        openssl x509 -checkend 86400 -noout -in "$dir/cert.pem" >/dev/null 2>&1; then
        return 0
    fi
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 10 \
        -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:$ip" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
}

# install_published ROOT CRATE@VERSION...: `cargo install --locked` of each crate whose
# binary is missing from ROOT/bin (a crate's binary is its name less a `-cli` suffix:
# moq-token-cli installs moq-token), with ROOT/target as the target directory so that it
# neither uses nor disturbs the workspace's lock file and build. Once: later runs reuse
# ROOT/bin.
install_published() {
    local root=$1 spec bin missing=()
    shift
    for spec in "$@"; do
        bin=${spec%@*}
        bin=${bin%-cli}
        [ -x "$root/bin/$bin" ] || missing+=("$spec")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    local list=${missing[0]} i
    for ((i = 1; i < ${#missing[@]}; i++)); do list="$list and ${missing[i]}"; done
    echo "== installing $list into $root (once)"
    # nice: the build takes minutes on two cores and should not starve whatever else runs.
    CARGO_TARGET_DIR="$root/target" nice cargo install --locked --root "$root" "${missing[@]}"
}

# track PID...: adds processes the script started itself (`cmd &`) to those kill_tracked
# stops, for commands whose output spawn cannot place.
track() {
    tracked_pids+=("$@")
}

# spawn LOG CMD...: runs CMD in the background with its stdout and stderr in LOG, sets
# last_pid to its pid and tracks it, so that kill_tracked stops it if the script exits.
spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    last_pid=$!
    track "$last_pid"
}

# wait_listening PID PORT [SECONDS]: waits until a UDP socket is bound to PORT (any address)
# in process PID's network namespace, at most SECONDS (default 10), so that clients start
# only once a relay can take their packets; fails if PID exits or the time runs out.
# Without /proc it sleeps 1 s instead.
wait_listening() {
    local pid=$1 port=$2 tenths=$((${3:-10} * 10)) hex
    if [ ! -r /proc/self/net/udp ]; then
        sleep 1
        kill -0 "$pid" 2>/dev/null
        return
    fi
    # /proc/PID/net/udp{,6} list local addresses as HEXADDR:HEXPORT in the second column;
    # udp6 is absent where IPv6 is off, hence each read on its own.
    hex=$(printf '%04X' "$port")
    while [ "$tenths" -gt 0 ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        if {
            cat "/proc/$pid/net/udp" 2>/dev/null
            cat "/proc/$pid/net/udp6" 2>/dev/null
            true
        } | awk -v p=":$hex" 'substr($2, length($2) - 4) == p { found = 1 } END { exit !found }'; then
            return 0
        fi
        sleep 0.1
        tenths=$((tenths - 1))
    done
    return 1
}

# start_our_relay BIN PORT LOG [FLAG...]: our relay on 127.0.0.1:PORT with a self-signed
# certificate (localhost, 127.0.0.1) and FLAGs, output in LOG; sets relay_pid and waits
# until it listens. Fails, saying so, if it does not.
start_our_relay() {
    local bin=$1 port=$2 log=$3
    shift 3
    spawn "$log" "$bin" --bind "127.0.0.1:$port" --tls-self-sign localhost,127.0.0.1 "$@"
    relay_pid=$last_pid
    wait_relay "$port" "$log"
}

# start_their_relay BIN PORT LOG CERTDIR [FLAG...]: the published relay on 127.0.0.1:PORT
# with CERTDIR/cert.pem and key.pem (make_cert) and FLAGs, output in LOG; sets relay_pid
# and waits until it listens. Fails, saying so, if it does not.
start_their_relay() {
    local bin=$1 port=$2 log=$3 certs=$4
    shift 4
    spawn "$log" "$bin" --bind "127.0.0.1:$port" --tls-cert "$certs/cert.pem" \
        --tls-key "$certs/key.pem" "$@"
    relay_pid=$last_pid
    wait_relay "$port" "$log"
}

# wait_relay PORT LOG: wait_listening for relay_pid, with a message naming LOG if it fails
# (the relay's own error is there).
wait_relay() {
    wait_listening "$relay_pid" "$1" && return 0
    if [ "$2" = /dev/null ]; then
        echo "relay (pid $relay_pid) is not listening on port $1" >&2
    else
        echo "relay (pid $relay_pid) is not listening on port $1; see $2" >&2
    fi
    return 1
}

# stop_pids PID...: sends each PID SIGTERM, waits for it (its exit is settled before the
# next step reuses its port) and stops tracking it. Empty and finished pids are fine.
stop_pids() {
    local pid p keep=()
    for pid in "$@"; do
        if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    done
    for pid in "$@"; do
        if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
    done
    for p in ${tracked_pids[@]+"${tracked_pids[@]}"}; do
        for pid in "$@"; do
            [ "$p" = "$pid" ] && continue 2
        done
        keep+=("$p")
    done
    tracked_pids=(${keep[@]+"${keep[@]}"})
}

# kill_tracked: stop_pids on every tracked pid; for `trap kill_tracked EXIT`, so that a
# script leaves none of what it started running, however it ends.
kill_tracked() {
    stop_pids ${tracked_pids[@]+"${tracked_pids[@]}"}
}

# install_debian_packages PKG...: installs with apt-get those of the Debian packages PKG
# that are not installed (non-interactive, no recommends; through `sudo -n` when not root,
# which fails rather than prompts). Does nothing when all are there.
install_debian_packages() {
    local pkg status missing=() sudo=()
    for pkg in "$@"; do
        # One line per installed architecture; none (and an error) for an unknown package.
        status=$(dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null || true)
        grep -qx 'install ok installed' <<<"$status" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null; then
        echo "missing ${missing[*]}, and no apt-get to install them: install them by hand" >&2
        return 1
    fi
    if [ "$(id -u)" != 0 ]; then
        if ! command -v sudo >/dev/null; then
            echo "missing ${missing[*]}: install them as root (apt-get install ${missing[*]})" >&2
            return 1
        fi
        sudo=(sudo -n)
    fi
    echo "== installing ${missing[*]} (apt-get)"
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}
