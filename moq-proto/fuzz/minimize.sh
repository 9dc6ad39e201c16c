#!/usr/bin/env bash
# Merges what the campaign found (logs/work/<target>) into corpus/<target>, keeping only
# inputs that add edge coverage (-use_counters=0), so each corpus stays under 200 files.
# The vector-* seeds are always kept. Run after (or during) campaign.sh, for the targets
# given as arguments or for every target that has a finished log.
set -u
cd "$(dirname "$0")"
MAX_CORPUS=200
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for log in logs/*.log; do
        case "$log" in *.cmin.log) continue ;; esac
        grep -q 'stat::number_of_executed_units' "$log" && targets+=("$(basename "$log" .log)")
    done
fi
for t in "${targets[@]}"; do
    [ -d "logs/work/$t" ] || { echo "$t: no findings in logs/work/$t"; continue; }
    rm -rf "logs/min-$t" && mkdir -p "logs/min-$t"
    "logs/bin/$t" -merge=1 -use_counters=0 "logs/min-$t" "corpus/$t" "logs/work/$t" > "logs/$t.cmin.log" 2>&1
    count=$(ls "logs/min-$t" | wc -l)
    if [ "$count" -gt 0 ] && [ "$count" -lt "$MAX_CORPUS" ]; then
        find "corpus/$t" -type f ! -name 'vector-*' -delete
        cp -n "logs/min-$t"/* "corpus/$t/"
        echo "corpus/$t: $(ls "corpus/$t" | wc -l) files"
    else
        echo "corpus/$t: minimized set has $count files, left unchanged"
    fi
done
