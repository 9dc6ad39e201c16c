#!/usr/bin/env bash
# Live media against the published moq-karp 0.10 (the media layer of moq-transfork 0.6, the
# same moqf-02 wire), on loopback, through our relay and the published moq-relay 0.6.10:
#
#   karp->ours   ffmpeg | moq-karp publish (the published CLI)  ->  relay  ->
#                `moq media info` and `moq media subscribe` > out.mp4, checked with ffprobe
#   ours->karp   ffmpeg | `moq media publish`  ->  relay  ->  karp-read (moq-karp 0.10's
#                library subscribes; scripts/karp-read) > out.mp4, checked with ffprobe
#   karp->page   ffmpeg | moq-karp publish  ->  our relay  ->  our page's player in headless
#                Chromium (moq-web/e2e/watch.mjs), its decoded frames and audio counted
#
# Prints a PASS/FAIL table; exits non-zero if any row fails. See docs/interop.md.
#
# usage: scripts/media-interop.sh [--root DIR] [--seconds N]
#   --root DIR    where the published tools are installed and scratch files go
#                 (default: ${TMPDIR:-/tmp}/moq-interop); installed once, then reused
#   --seconds N   how long ffmpeg encodes for each row (default 8)
#
# Needs: cargo, ffmpeg and ffprobe (Debian: apt-get install ffmpeg), openssl, python3; for
# the page row Node.js 20+ and Chromium (CHROMIUM=/path, else chromium on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

root="$INTEROP_ROOT"
seconds=8
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
for tool in ffmpeg ffprobe python3 openssl node npm; do
    command -v "$tool" >/dev/null || { echo "media-interop: $tool is missing" >&2; exit 1; }
done
mkdir -p "$root"
root="$(cd "$root" && pwd)"

install_published "$root" "$PUBLISHED_RELAY" "$PUBLISHED_KARP"
their_relay="$root/bin/moq-relay"
karp="$root/bin/moq-karp"

echo "== building ours, and karp-read (moq-karp 0.10's library, its own lock file)"
cargo build --locked -p moq-relay -p moq-cli
target="${CARGO_TARGET_DIR:-target}"
our_relay="$target/debug/moq-relay"
our_moq="$target/debug/moq"
CARGO_TARGET_DIR="$root/karp-read-target" nice cargo build --locked --release \
    --manifest-path scripts/karp-read/Cargo.toml
karp_read="$root/karp-read-target/release/karp-read"

# The page's player is driven by playwright-core (moq-web's dev dependency).
[ -d moq-web/node_modules/playwright-core ] || (cd moq-web && npm ci --no-audit --no-fund)

make_cert "$root"
logs="$root/logs/media"
mkdir -p "$logs"
trap kill_tracked EXIT

# ffmpeg's test pattern and tone as fragmented MP4 into the FIFO $1, in real time. H.264
# (ultrafast makes it Constrained Baseline) and AAC: moq-karp 0.10's import takes avc1 and
# mp4a, and its box parser refuses the avcC of High profile. Written to stdout (pipe:1):
# ffmpeg treats a named output as a file and does not flush it fragment by fragment.
start_encoder() { # fifo log
    ffmpeg -hide_banner -nostdin -re \
        -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
        -t "$seconds" -c:v libx264 -preset ultrafast -tune zerolatency -g 30 \
        -c:a aac -b:a 128k -f mp4 \
        -movflags cmaf+separate_moof+delay_moov+skip_trailer+frag_every_frame pipe:1 \
        >"$1" 2>"$2" &
    encoder_pid=$!
    track "$encoder_pid"
}

# ffprobe's view of $1: "type codec size packets" per stream, one line each (size: WxH for
# video, the sample rate for audio).
probe() {
    ffprobe -v error -count_packets -show_entries \
        stream=codec_type,codec_name,width,height,sample_rate,nb_read_packets -of json "$1" \
        | python3 -c '
import json, sys
for s in json.load(sys.stdin).get("streams", []):
    if s["codec_type"] == "video":
        size = "%sx%s" % (s.get("width"), s.get("height"))
    else:
        size = "%sHz" % s.get("sample_rate")
    print(s["codec_type"], s["codec_name"], size, s.get("nb_read_packets", 0))
'
}

# PASS when ffprobe reads $1 without error, with H.264 1280x720 video and AAC audio, and at
# least 3 s of each (90 video and 140 audio packets: 30 frames/s, 48000/1024 frames/s).
check_mp4() { # file -> sets verdict, detail
    local lines err
    err=$(ffprobe -v error -i "$1" 2>&1 >/dev/null | head -1 || true)
    lines=$(probe "$1" 2>/dev/null || true)
    detail=$(tr '\n' ';' <<<"$lines" | sed 's/;$//; s/;/; /')
    [ -n "$err" ] && detail="$detail; ffprobe: $err"
    verdict=FAIL
    if [ -z "$err" ] && python3 -c '
import sys
video = audio = False
for line in sys.argv[1].splitlines():
    kind, codec, size, packets = line.split()
    if kind == "video" and codec == "h264" and size == "1280x720" and int(packets) >= 90:
        video = True
    if kind == "audio" and codec == "aac" and size == "48000Hz" and int(packets) >= 140:
        audio = True
sys.exit(0 if video and audio else 1)
' "$lines"; then
        verdict=PASS
    fi
}

start_relay() { # which port log
    case "$1" in
        ours) start_our_relay "$our_relay" "$2" "$3" --stats-interval 0 -v ;;
        theirs) start_their_relay "$their_relay" "$2" "$3" "$root" ;;
    esac
}

results=()
failures=0
row() { # verdict name detail
    [ "$1" = FAIL ] && failures=$((failures + 1))
    results+=("$(printf '%-4s  %-36s %s' "$1" "$2" "$3")")
}

for relay in ours theirs; do
    # moq-karp's CLI publishes; our tool reads. moq-karp speaks WebTransport (https://).
    name="karp->ours relay=$relay"
    file="$logs/karp-ours-$relay"
    port=$(free_port)
    rm -f "$file.fifo" "$file.mp4"
    mkfifo "$file.fifo"
    if start_relay "$relay" "$port" "$file.relay.log"; then
        start_encoder "$file.fifo" "$file.ffmpeg.log"
        # Not through spawn: a command put in the background inside a function reads
        # /dev/null unless the redirection is its own.
        "$karp" --tls-disable-verify --server "https://localhost:$port/" \
            --room media --broadcast karp publish <"$file.fifo" >"$file.pub.log" 2>&1 &
        pub_pid=$!
        track "$pub_pid"
        info=$(timeout 15 "$our_moq" --tls-disable-verify media info "moqf://127.0.0.1:$port/" \
            --path media/karp 2>"$file.info.err" || true)
        timeout $((seconds + 15)) "$our_moq" --tls-disable-verify media subscribe \
            "moqf://127.0.0.1:$port/" --path media/karp >"$file.mp4" 2>"$file.sub.err" || true
        stop_pids "$encoder_pid" "$pub_pid" "$relay_pid"
        check_mp4 "$file.mp4"
        if ! grep -q '"avc1\.' <<<"$info"; then
            verdict=FAIL
            detail="moq media info printed no H.264 catalog; $detail"
        fi
        row "$verdict" "$name" "$detail"
    else
        row FAIL "$name" "relay did not start; see $file.relay.log"
    fi

    # Our tool publishes; moq-karp's library reads.
    name="ours->karp relay=$relay"
    file="$logs/ours-karp-$relay"
    port=$(free_port)
    rm -f "$file.fifo" "$file.mp4"
    mkfifo "$file.fifo"
    if start_relay "$relay" "$port" "$file.relay.log"; then
        start_encoder "$file.fifo" "$file.ffmpeg.log"
        "$our_moq" --tls-disable-verify media publish "moqf://127.0.0.1:$port/" \
            --path media/ours <"$file.fifo" >"$file.pub.log" 2>&1 &
        pub_pid=$!
        track "$pub_pid"
        timeout $((seconds + 15)) "$karp_read" --tls-disable-verify --seconds $((seconds - 3)) \
            "https://localhost:$port/" media/ours "$file.mp4" >"$file.read.out" 2>"$file.read.err" || true
        stop_pids "$encoder_pid" "$pub_pid" "$relay_pid"
        check_mp4 "$file.mp4"
        row "$verdict" "$name" "$detail"
    else
        row FAIL "$name" "relay did not start; see $file.relay.log"
    fi
done

# moq-karp's CLI publishes; our page plays it (served by our relay).
name="karp->page relay=ours"
file="$logs/karp-page"
port=$(free_port)
rm -f "$file.fifo"
mkfifo "$file.fifo"
if start_our_relay "$our_relay" "$port" "$file.relay.log" --stats-interval 0 --web moq-web/www; then
    start_encoder "$file.fifo" "$file.ffmpeg.log"
    "$karp" --tls-disable-verify --server "https://localhost:$port/" \
        --room media --broadcast karp publish <"$file.fifo" >"$file.pub.log" 2>&1 &
    pub_pid=$!
    track "$pub_pid"
    stats=$(node moq-web/e2e/watch.mjs --page "http://127.0.0.1:$port/" --play media/karp \
        --seconds $((seconds - 4)) 2>"$file.watch.err" || true)
    stop_pids "$encoder_pid" "$pub_pid" "$relay_pid"
    # PASS: at least 3 s of 1280x720 video decoded (90 frames) and AAC decoded.
    verdict=FAIL
    detail=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1]); v, a = s["video"], s["audio"]
print("video %s %dx%d %d decoded, %d drawn; audio %s %d decoded" % (v["codec"], v["decodedWidth"],
      v["decodedHeight"], v["decoded"], v["drawn"], a["codec"], a["decoded"]))
ok = v["decodedWidth"] == 1280 and v["decodedHeight"] == 720 and v["decoded"] >= 90 and a["decoded"] > 0
sys.exit(0 if ok else 3)
' "$stats" 2>/dev/null) && verdict=PASS
    [ -n "$detail" ] || detail="no stats; see $file.watch.err"
    row "$verdict" "$name" "$detail"
else
    row FAIL "$name" "relay did not start; see $file.relay.log"
fi

echo
printf '%s\n' "${results[@]}"
echo "logs: $logs"
if [ "$failures" -gt 0 ]; then
    echo "$failures row(s) failed" >&2
    exit 1
fi
