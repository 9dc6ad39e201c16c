#!/usr/bin/env bash
# The test command for everything:
#   1. cargo test --workspace --locked
#   2. the moq-web unit tests (npm ci && npm test in moq-web)
#   3. the browser end-to-end tests: the page served by the cargo-built moq-relay, in headless
#      Chromium, against `moq clock publish`, `moq pub` and `moq sub` (moq-web/e2e/relay.test.mjs),
#      and its media player against ffmpeg | `moq media publish` (moq-web/e2e/player.test.mjs);
#      first, that the committed moq-web/www is what `npm run build` makes
#   4. moq-media against real ffmpeg (its `ffmpeg::` tests, ignored by a plain cargo test)
#
# Usage: scripts/test.sh [--skip-cargo-test]   (--skip-cargo-test: steps 2 and 3 only)
# Needs: cargo, Node.js 20+ with npm, Chromium (Debian: apt-get install chromium chromium-driver),
# ffmpeg (Debian: apt-get install ffmpeg), etcd, protoc and the protobuf includes for the relay's
# cluster (Debian: apt-get install etcd-server protobuf-compiler libprotobuf-dev).
# Missing etcd/protoc packages are installed with apt-get (as root, or sudo -n); with CI=true,
# so are a missing Chromium or ffmpeg.
# Respects CARGO_TARGET_DIR; CHROMIUM=/path/to/chromium picks the browser.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

skip_cargo_test=false
for arg in "$@"; do
  case "$arg" in
    --skip-cargo-test) skip_cargo_test=true ;;
    -h | --help)
      sed -n '2,15p' "$0"
      exit 0
      ;;
    *)
      echo "scripts/test.sh: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

missing() {
  echo "scripts/test.sh: $1" >&2
  exit 1
}

# Check what the browser steps need before the long cargo step, so a missing tool fails fast.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing "Node.js 20 or newer with npm is needed for the moq-web tests: install the nodejs and npm packages (Node 20+)"
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  missing "Node.js $(node --version) is too old: the moq-web tests need Node.js 20 or newer"
fi

chromium_bin=${CHROMIUM:-}
if [ -z "$chromium_bin" ]; then
  chromium_bin=$(command -v chromium || command -v chromium-browser || true)
fi
if [ -z "$chromium_bin" ] && [ "${CI:-}" = "true" ] && command -v apt-get >/dev/null; then
  install_debian_packages chromium chromium-driver
  chromium_bin=$(command -v chromium || true)
fi
if [ -z "$chromium_bin" ]; then
  missing "no Chromium for the browser test: install it (Debian/Ubuntu: sudo apt-get install chromium chromium-driver) or set CHROMIUM=/path/to/chromium"
fi
export CHROMIUM="$chromium_bin"

if ! command -v ffmpeg >/dev/null && [ "${CI:-}" = "true" ] && command -v apt-get >/dev/null; then
  install_debian_packages ffmpeg
fi
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  missing "no ffmpeg for the moq-media tests: install it (Debian/Ubuntu: sudo apt-get install ffmpeg)"
fi

# The relay's feature `etcd` (on by default) needs protoc and the protobuf includes to build,
# and its cluster tests run a real etcd: install what is missing before cargo runs.
if ! command -v etcd >/dev/null || ! command -v protoc >/dev/null \
  || [ ! -e /usr/include/google/protobuf/timestamp.proto ]; then
  # Only when something is missing: a machine without apt-get may have them another way.
  install_debian_packages etcd-server protobuf-compiler libprotobuf-dev || true
fi
if ! command -v etcd >/dev/null || ! command -v protoc >/dev/null; then
  missing "no etcd or protoc for the relay's cluster: install them (Debian/Ubuntu: sudo apt-get install etcd-server protobuf-compiler libprotobuf-dev)"
fi

if [ "$skip_cargo_test" = false ]; then
  echo "== cargo test"
  cargo test --workspace --locked
fi

echo "== building moq-relay and moq for the browser test"
cargo build --locked --bin moq-relay --bin moq

echo "== moq-web unit tests"
cd moq-web
# playwright-core never downloads a browser; make sure nothing else tries either.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --no-audit --no-fund
npm test

echo "== moq-web end-to-end in headless Chromium ($("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"))"
npm run build
# www/ is committed (moq demo serves it with no build step): a fresh build must match it.
if [ -n "$(git status --porcelain -- www)" ]; then
  git status --short -- www >&2
  missing "moq-web/www is stale: commit what \`npm run build\` wrote there"
fi
node --test --test-concurrency=1 e2e/relay.test.mjs e2e/player.test.mjs
cd ..

echo "== moq-media against ffmpeg ($(ffmpeg -version | head -1))"
cargo test -p moq-media --locked --test integration ffmpeg:: -- --ignored
