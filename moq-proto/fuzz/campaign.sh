#!/usr/bin/env bash
# Fuzzes every target for SECONDS each (default 600), one after another, then merges what
# each run found into a minimized corpus/<target>/ (the vector-* seeds are always kept).
#
#   nohup nice -n 19 moq-proto/fuzz/campaign.sh 600 > moq-proto/fuzz/logs/campaign.out 2>&1 &
#
# Logs go to logs/<target>.log (libFuzzer output with -print_final_stats=1); summarize.sh
# turns them into a table. The binaries are built once and copied to logs/bin/, so editing
# the sources while the campaign runs does not change what it fuzzes.
set -u
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-600}
TARGETS=${TARGETS:-"control_stream group_stream session_client subscribe announce fetch subscribe_update info info_request session_server announce_interest group_drop session_update group frame"}
MAX_CORPUS=200

mkdir -p logs/bin logs/work
RUSTC_BOOTSTRAP=1 cargo fuzz build || exit 1
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN_DIR="${CARGO_TARGET_DIR:-target}/$HOST/release"
for t in $TARGETS; do cp "$BIN_DIR/$t" "logs/bin/$t" || exit 1; done

for t in $TARGETS; do
    echo "$(date -u +%FT%TZ) start $t"
    mkdir -p "logs/work/$t" "artifacts/$t"
    "logs/bin/$t" -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "logs/work/$t" "corpus/$t" > "logs/$t.log" 2>&1
    echo "$(date -u +%FT%TZ) end $t (exit $?)"

    # Minimize seeds + findings into a fresh directory (what `cargo fuzz cmin` does).
    rm -rf "logs/min-$t" && mkdir -p "logs/min-$t"
    "logs/bin/$t" -merge=1 "logs/min-$t" "corpus/$t" "logs/work/$t" > "logs/$t.cmin.log" 2>&1
    count=$(ls "logs/min-$t" | wc -l)
    if [ "$count" -gt 0 ] && [ "$count" -lt "$MAX_CORPUS" ]; then
        find "corpus/$t" -type f ! -name 'vector-*' -delete
        cp "logs/min-$t"/* "corpus/$t/"
        echo "corpus/$t: $(ls "corpus/$t" | wc -l) files"
    else
        echo "corpus/$t: minimized set has $count files, left unchanged"
    fi
done
echo "$(date -u +%FT%TZ) campaign done"
