#!/usr/bin/env bash
# The latency our stack adds to live video (docs/benchmarks.md, "Live media to the browser"):
# ffmpeg -re (720p30 H.264 + AAC) | moq media publish --latency-log → moq-relay → the page's
# player in headless Chromium, all on loopback. Per video frame: from when `moq media publish`
# read its last byte to when the page's VideoDecoder output it; p50/p90/p99/max, and the same
# split where the page has read the frame (moq-web/e2e/latency.mjs does the measuring).
#
# usage: scripts/perf/media_latency.sh [--debug] [--seconds S] [--warmup S] [--json]
#   --debug      use the debug build (as the e2e tests do) instead of building release
#   --seconds S  measured seconds (default 20), after --warmup S (default 3)
#   --json       one JSON object instead of the table
# Environment: CARGO_TARGET_DIR, CHROMIUM. Needs cargo, Node 20+, ffmpeg, Chromium.
# Talks only to 127.0.0.1; every process it starts ends with it.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=release
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --debug) profile=debug ;;
        --seconds | --warmup) args+=("$1" "$2"); shift ;;
        --json) args+=("$1") ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "media_latency.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

target="${CARGO_TARGET_DIR:-target}"
if [ "$profile" = release ]; then
    echo "== building moq-relay and moq (release)" >&2
    cargo build --release --locked -p moq-relay -p moq-cli >&2
else
    cargo build --locked --bin moq-relay --bin moq >&2
fi
MOQ_RELAY="$(cd "$target/$profile" && pwd)/moq-relay"
MOQ="$(cd "$target/$profile" && pwd)/moq"
export MOQ_RELAY MOQ PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

cd moq-web
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund >&2
npm run build >&2
node e2e/latency.mjs "${args[@]}"
