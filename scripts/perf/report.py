#!/usr/bin/env python3
"""Summarise scripts/perf/compare.sh results: a Markdown table per run, the ratios the
targets in docs/benchmarks.md ("End to end") are about, and optionally a plot of delivered
throughput and p99 latency against the number of subscribers.

usage: report.py RESULTS.jsonl [--plot OUT.png]
       report.py --churn CHURN.csv [--plot OUT.png]   (relay VmRSS over a churn run)
"""

import json
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def others_cpu(b):
    """CPU (percent of one core) used by processes other than the bench and the relay over
    the measured window, when the bench reported the machine's total."""
    if "machine_cpu_percent" not in b:
        return None
    # With --floor the "relay" is a thread of the bench, counted in its cpu_percent already.
    relay = 0 if b.get("mode") == "floor" else b.get("relay", {}).get("cpu_percent", 0)
    return max(0.0, b["machine_cpu_percent"] - b["cpu_percent"] - relay)


def fmt_rate(v):
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k"


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    plot = None
    if "--plot" in args:
        i = args.index("--plot")
        plot = args[i + 1]
        del args[i : i + 2]
    if args[0] == "--churn":
        return churn(args[1], plot)
    rows = load(args[0])
    by = defaultdict(list)  # (label, relay) -> [bench]
    runs = sorted({r["run"] for r in rows})
    for r in rows:
        if "frames_per_s" in r["bench"]:
            by[(r["label"], r["relay"])].append(r["bench"])

    def med(label, relay, key, sub=None):
        vals = []
        for b in by.get((label, relay), []):
            v = b[key] if sub is None else b[key][sub]
            vals.append(v)
        return statistics.median(vals) if vals else None

    labels = []
    for r in rows:
        if r["label"] not in labels:
            labels.append(r["label"])
    print(f"runs: {len(runs)} (medians over runs where there are several)\n")
    print("| row | relay | delivered frames/s | MB/s | p50 ms | p99 ms | max ms | skipped | dropped | subs | bench CPU % | relay CPU % | others CPU % | relay RSS MiB | relay µs/frame | relay KiB/subscriber |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label in labels:
        for relay in ["none", "floor", "ours", "theirs"]:
            benches = by.get((label, relay))
            if not benches:
                continue
            b = benches[len(benches) // 2]
            fps = med(label, relay, "frames_per_s")
            mbs = med(label, relay, "mb_per_s")
            lat = lambda q: med(label, relay, "latency_us", q) / 1e3
            relay_cpu = statistics.median([x.get("relay", {}).get("cpu_percent", 0) for x in benches])
            rss = max(x.get("relay", {}).get("rss_kib", 0) for x in benches) / 1024
            others = [others_cpu(x) for x in benches if others_cpu(x) is not None]
            others = f"{statistics.median(others):.0f}" if others else ""
            def relay_med(key, fmt):
                vals = [x.get("relay", {}).get(key) for x in benches]
                vals = [v for v in vals if v is not None]
                return fmt.format(statistics.median(vals)) if vals else ""
            name = {"none": "raw QUIC", "floor": "floor (no relay)", "ours": "ours", "theirs": "0.6.10"}[relay]
            print(
                f"| {label} | {name} | {fmt_rate(fps)} | {mbs:.1f} | {lat('p50'):.2f} | {lat('p99'):.2f} | {lat('max'):.2f} "
                f"| {sum(x['groups_skipped'] for x in benches)} | {sum(x['groups_dropped'] for x in benches)} "
                f"| {b['subscribers_connected']}/{b['subscribers']} | {statistics.median([x['cpu_percent'] for x in benches]):.0f} "
                f"| {relay_cpu:.0f} | {others} | {rss:.1f} "
                f"| {relay_med('cpu_us_per_frame', '{:.2f}')} | {relay_med('kib_per_subscriber', '{:.0f}')} |"
            )

    print("\nPer run (delivered frames/s and MB/s; ours / 0.6.10 where both ran):\n")
    print("| row | " + " | ".join(f"run {run}" for run in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for label in labels:
        cells = []
        for run in runs:
            got = {r["relay"]: r["bench"] for r in rows if r["run"] == run and r["label"] == label}
            if "none" in got and "mb_per_s" in got["none"]:
                busy = others_cpu(got["none"])
                busy = f", others {busy:.0f}%" if busy is not None else ""
                cells.append(f"{got['none']['mb_per_s']:.0f} MB/s{busy}")
            elif "frames_per_s" in got.get("floor", {}):
                f = got["floor"]
                busy = others_cpu(f)
                busy = f", others {busy:.0f}%" if busy is not None else ""
                cells.append(f"sender {f['relay']['cpu_us_per_frame']:.2f} µs/frame{busy}")
            elif "mb_per_s" in got.get("ours", {}) and "mb_per_s" in got.get("theirs", {}):
                o, t = got["ours"], got["theirs"]
                unit = "MB/s" if "64k" in label else "frames/s"
                key = "mb_per_s" if "64k" in label else "frames_per_s"
                fmt = (lambda v: f"{v:.0f}") if "64k" in label else fmt_rate
                ratio = f" ({o[key] / t[key]:.2f}x)" if t[key] > 0 else ""
                skipped = ""
                if o["groups_skipped"] or t["groups_skipped"]:
                    skipped = f", skipped {o['groups_skipped']} / {t['groups_skipped']}"
                busy = ""
                if others_cpu(o) is not None and others_cpu(t) is not None:
                    busy = f", others {others_cpu(o):.0f}% / {others_cpu(t):.0f}%"
                cells.append(f"{fmt(o[key])} / {fmt(t[key])} {unit}{ratio}{skipped}{busy}")
            else:
                cells.append("")
        print(f"| {label} | " + " | ".join(cells) + " |")

    print("\nTargets (ratios from the same run(s)):")

    def per_run_ratio(label_a, relay_a, label_b, relay_b, key):
        out = []
        for run in runs:
            a = [r["bench"] for r in rows if r["run"] == run and r["label"] == label_a and r["relay"] == relay_a and key in r["bench"]]
            b = [r["bench"] for r in rows if r["run"] == run and r["label"] == label_b and r["relay"] == relay_b and key in r["bench"]]
            if a and b and b[0][key] > 0:
                out.append(a[0][key] / b[0][key])
        return out

    for label in [l for l in labels if l.startswith("fanout-100-max")]:
        r = per_run_ratio(label, "ours", label, "theirs", "frames_per_s")
        if r:
            print(f"- 1->100 delivered throughput ({label}), ours / 0.6.10: {', '.join(f'{x:.2f}x' for x in r)} "
                  f"(target >= 2x): {'met' if min(r) >= 2 else 'NOT met'}")

    def cpu_per_frame(b):
        relay = b.get("relay")
        if not relay or not b["frames_delivered"]:
            return None
        return relay["cpu_s"] * 1e6 / b["frames_delivered"]

    for label in [l for l in labels if l.startswith("fanout-100-max")]:
        for run in runs:
            pair = {}
            for row in rows:
                if row["run"] == run and row["label"] == label and "frames_per_s" in row["bench"]:
                    pair[row["relay"]] = cpu_per_frame(row["bench"])
            if pair.get("ours") and pair.get("theirs"):
                print(f"  relay CPU per delivered frame ({label}, run {run}): ours {pair['ours']:.2f} us, "
                      f"0.6.10 {pair['theirs']:.2f} us ({pair['theirs'] / pair['ours']:.2f}x)")
    for label in [l for l in labels if l.startswith("1to1-64k-max")]:
        for cc in ["cubic", "bbr"]:
            r = per_run_ratio(label, "ours", f"raw-64k-{cc}", "none", "mb_per_s")
            if r:
                print(f"- 1->1 64 KB ({label}) through ours / raw QUIC ({cc}): {', '.join(f'{100 * x:.0f}%' for x in r)} "
                      f"(target >= 70%): {'met' if min(r) >= 0.7 else 'NOT met'}")
            r = per_run_ratio(label, "theirs", f"raw-64k-{cc}", "none", "mb_per_s")
            if r:
                print(f"  (0.6.10 / raw QUIC ({cc}): {', '.join(f'{100 * x:.0f}%' for x in r)})")
        r = per_run_ratio(label, "ours", label, "theirs", "mb_per_s")
        if r:
            print(f"- 1->1 64 KB ({label}), ours / 0.6.10: {', '.join(f'{x:.2f}x' for x in r)}")
    p99 = [b["latency_us"]["p99"] / 1e3 for b in by.get(("fanout-100-500fps", "ours"), [])]
    if p99:
        print(f"- p99 at 1->100, 500 frames/s of 1 KB, ours: {', '.join(f'{x:.2f} ms' for x in p99)} (target <= 5 ms): "
              f"{'met' if max(p99) <= 5 else 'NOT met'}")
    theirs99 = [b["latency_us"]["p99"] / 1e3 for b in by.get(("fanout-100-500fps", "theirs"), [])]
    if theirs99:
        print(f"  (0.6.10: {', '.join(f'{x:.2f} ms' for x in theirs99)})")

    if plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print(f"\n(no matplotlib: no plot written to {plot})")
            return 0
        counts = sorted({int(l.split("-")[1]) for l in labels if l.startswith("fanout-")})
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        for relay, name, style in [("ours", "our moq-relay", "o-"), ("theirs", "moq-relay 0.6.10", "s--")]:
            xs, fps, xs2, p99s = [], [], [], []
            for n in counts:
                v = med(f"fanout-{n}-max", relay, "frames_per_s")
                if v is not None:
                    xs.append(n)
                    fps.append(v / 1e3)
                w = med(f"fanout-{n}-500fps", relay, "latency_us", "p99")
                if w is not None:
                    xs2.append(n)
                    p99s.append(w / 1e3)
            left.plot(xs, fps, style, label=name)
            right.plot(xs2, p99s, style, label=name)
        from matplotlib.ticker import FuncFormatter

        plain = FuncFormatter(lambda v, _: f"{v:g}")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("subscribers (one track)")
        left.set_ylabel("delivered frames/s (thousands)")
        left.set_title("throughput, 1 KB frames, as fast as read")
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("subscribers (one track)")
        right.set_ylabel("p99 one-way latency (ms)")
        right.set_title("p99 latency, 500 frames/s of 1 KB")
        right.axhline(5, color="grey", linewidth=0.8, linestyle=":", label="5 ms target (at 100)")
        for ax in (left, right):
            ax.set_xticks(counts)
            ax.set_xticklabels([str(c) for c in counts])
            ax.yaxis.set_major_formatter(plain)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        # Minor labels only on the throughput axis (about one decade; on the latency axis,
        # which spans several, they collide).
        left.yaxis.set_minor_formatter(plain)
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        print(f"\nplot: {plot}")
    return 0


def churn(path, plot):
    import csv

    rows = [(int(r["seconds"]), int(r["vmrss_kib"]), int(r["bench_runs"])) for r in csv.DictReader(open(path))]
    print("| minute | VmRSS min MiB | mean | max | bench runs finished |")
    print("|---:|---:|---:|---:|---:|")
    for lo in range(0, rows[-1][0] + 1, 60):
        sel = [r for r in rows if lo <= r[0] < lo + 60]
        if sel:
            v = [r[1] / 1024 for r in sel]
            print(f"| {lo // 60 + 1} | {min(v):.1f} | {sum(v) / len(v):.1f} | {max(v):.1f} | {sel[-1][2]} |")
    if plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print(f"(no matplotlib: no plot written to {plot})")
            return 0
        fig, ax = plt.subplots(figsize=(8, 3.2))
        ax.plot([r[0] for r in rows], [r[1] / 1024 for r in rows], "-")
        ax.set_xlabel("seconds")
        ax.set_ylabel("relay VmRSS (MiB)")
        ax.set_title(f"our moq-relay under churn ({rows[-1][2]} moq bench runs coming and going)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        print(f"plot: {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
