#!/usr/bin/env bash
# Prints a markdown table of the fuzz campaign from logs/<target>.log (see campaign.sh).
cd "$(dirname "$0")"
echo "| target | seconds | execs | execs/s | crashes | corpus files |"
echo "|---|---:|---:|---:|---:|---:|"
for log in logs/*.log; do
    case "$log" in *.cmin.log) continue ;; esac
    t=$(basename "$log" .log)
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1 | awk '{print $5}')
    crashes=$(find "artifacts/$t" -type f 2>/dev/null | wc -l)
    files=$(find "corpus/$t" -type f 2>/dev/null | wc -l)
    if [ -z "$execs" ]; then
        echo "| $t | running | - | - | $crashes | $files |"
        continue
    fi
    rate="-"
    [ -n "$secs" ] && [ "$secs" -gt 0 ] && rate=$((execs / secs))
    echo "| $t | ${secs:-?} | $execs | $rate | $crashes | $files |"
done
