#!/usr/bin/env bash
# Tokens across implementations: keys and tokens made by the MoQ ecosystem's `moq-token`
# tool (moq-token-cli 0.5.48, library moq-token 0.7.4) verify with `moq token verify`,
# and ours verify with its `moq-token verify`, for HS256, ES256 and EdDSA. Prints a
# PASS/FAIL table; exits non-zero if any row fails. See docs/auth.md.
#
# usage: scripts/auth-interop.sh [--root DIR] [--mint]
#   --root DIR   where moq-token-cli is installed and scratch files go
#                (default: ${TMPDIR:-/tmp}/moq-auth-interop); installed once, then reused
#   --mint       also rewrite moq-auth/tests/fixtures/moq-token with fresh keys and tokens
#                from the published tool (the files the unit tests verify)
#
# Needs: cargo (moq-token-cli builds aws-lc-sys: a C compiler and cmake or its bundled
# build, a few minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

root="${TMPDIR:-/tmp}/moq-auth-interop"
mint=false
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root="$2"; shift 2 ;;
        --mint) mint=true; shift ;;
        -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$root"
root="$(cd "$root" && pwd)"

install_published "$root" "$PUBLISHED_TOKEN"
theirs="$root/bin/moq-token"

echo "== building ours"
cargo build --locked -p moq-cli
ours="${CARGO_TARGET_DIR:-target}/debug/moq"

work="$root/work"
rm -rf "$work"
mkdir -p "$work"
failed=0
row() { # name status
    printf '%-44s %s\n' "$1" "$2"
    [ "$2" = PASS ] || failed=1
}

for alg in HS256 ES256 EdDSA; do
    d="$work/$alg"
    mkdir -p "$d"
    # Theirs -> ours.
    if [ "$alg" = HS256 ]; then
        "$theirs" generate --algorithm "$alg" --id "their-$alg" --out "$d/their.jwk"
        their_public="$d/their.jwk"
    else
        "$theirs" generate --algorithm "$alg" --id "their-$alg" --out "$d/their.jwk" \
            --public "$d/their.pub.jwk"
        their_public="$d/their.pub.jwk"
    fi
    "$theirs" sign --key "$d/their.jwk" --root demo --publish alice --subscribe "" >"$d/their.jwt"
    if "$ours" token verify --key "$their_public" "$(cat "$d/their.jwt")" >"$d/ours.out" 2>&1 &&
        grep -q '"root": "demo"' "$d/ours.out"; then
        row "$alg: moq-token's token, moq token verify" PASS
    else
        row "$alg: moq-token's token, moq token verify" FAIL
        cat "$d/ours.out"
    fi
    # Ours -> theirs.
    if [ "$alg" = HS256 ]; then
        "$ours" token generate --algorithm "$alg" --id "our-$alg" --out "$d/our.jwk" 2>/dev/null
        our_public="$d/our.jwk"
    else
        "$ours" token generate --algorithm "$alg" --id "our-$alg" --out "$d/our.jwk" \
            --public "$d/our.pub.jwk" 2>/dev/null
        our_public="$d/our.pub.jwk"
    fi
    "$ours" token sign --key "$d/our.jwk" --root demo --put alice --get "" --expires 1h >"$d/our.jwt"
    if "$theirs" verify --key "$our_public" <"$d/our.jwt" >"$d/theirs.out" 2>&1 &&
        grep -q 'demo' "$d/theirs.out"; then
        row "$alg: moq token's token, moq-token verify" PASS
    else
        row "$alg: moq token's token, moq-token verify" FAIL
        cat "$d/theirs.out"
    fi
done

if [ "$mint" = true ]; then
    fixtures=moq-auth/tests/fixtures/moq-token
    echo "== minting $fixtures"
    "$theirs" generate --algorithm HS256 --id demo-hs256 --out "$fixtures/hs256.jwk"
    "$theirs" sign --key "$fixtures/hs256.jwk" --root demo --publish alice --subscribe "" \
        >"$fixtures/hs256.jwt"
    "$theirs" sign --key "$fixtures/hs256.jwk" --root demo --publish alice --subscribe "" \
        --issued 1700000000 --expires 4102444800 >"$fixtures/hs256-exp.jwt"
    for alg in ES256 EdDSA; do
        name=$(echo "$alg" | tr '[:upper:]' '[:lower:]')
        "$theirs" generate --algorithm "$alg" --id "demo-$name" --out "$fixtures/$name.jwk" \
            --public "$fixtures/$name.pub.jwk"
        "$theirs" sign --key "$fixtures/$name.jwk" --root demo --publish alice --subscribe "" \
            >"$fixtures/$name.jwt"
    done
    echo "now run: cargo test -p moq-auth --test integration tokens::"
fi

exit $failed
