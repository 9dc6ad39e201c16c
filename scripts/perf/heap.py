#!/usr/bin/env python3
"""What a relay's heap holds, by allocation site, from one jemalloc heap profile.

usage: heap.py PROFILE BINARY [--per N] [--top K] [--json]

PROFILE is a `heap_v2` dump written by jemalloc's profiler (`scripts/perf/heap.sh` makes
one under load); BINARY the relay that wrote it (its symbols are read with addr2line). Each
sampled stack is charged to its allocation site: the first frame, from the allocator down,
that is not the allocator, the standard library or a container's growth. Sites are summed
and printed largest first, with the crate that owns them and, with --per N, bytes per
subscriber (N: the subscriber count), where sites with fewer live objects than N / 2 (the
endpoint's receive buffer, caches, tables) are counted apart as shared. The profile's own
estimate of live bytes is used, so with `lg_prof_sample:0` (every allocation sampled) the
numbers are exact.
"""
import argparse
import collections
import json
import re
import subprocess
import sys

# Frames that are not a site: the allocator, the profiler, std/core/alloc, containers
# growing, and frames without a path (C functions of the C library or jemalloc).
NOT_A_SITE = re.compile(
    r"^(<?alloc::|<?core::|<?std::|<?hashbrown::|<?bytes::bytes_mut::|<?tikv_jemalloc|"
    r"<[^ ]+ as (alloc|core)::|<\[T\]|<&|<Vec<|__rust|_rjem|rust_alloc)"
)


def parse(path):
    """(stacks, mappings): stacks as (addresses, objects, bytes), mappings as (lo, hi, offset, file)."""
    stacks, maps, current, in_maps = [], [], None, False
    with open(path) as f:
        for line in f:
            if line.startswith("MAPPED_LIBRARIES"):
                in_maps = True
                continue
            if in_maps:
                m = re.match(r"([0-9a-f]+)-([0-9a-f]+) \S+ ([0-9a-f]+) \S+ \S+\s*(.*)", line)
                if m:
                    maps.append((int(m[1], 16), int(m[2], 16), int(m[3], 16), m[4].strip()))
            elif line.startswith("@"):
                current = [int(a, 16) for a in line[1:].split()]
            elif current is not None and line.strip().startswith("t*:"):
                m = re.match(r"\s*t\*: (\d+): (\d+)", line)
                stacks.append((current, int(m[1]), int(m[2])))
                current = None
    return stacks, maps


def symbolize(addresses, maps, binary):
    """Frames (innermost first, inlined ones included) for each address in the binary."""
    name = binary.rsplit("/", 1)[-1]
    ours = [m for m in maps if m[3].endswith("/" + name) or m[3] == name]
    if not ours:
        sys.exit(f"heap.py: {binary} is not mapped in the profile (wrong binary?)")
    base = min(lo - off for lo, _, off, _ in ours)
    inside = [a for a in addresses if any(lo <= a < hi for lo, hi, _, _ in ours)]
    # A return address points after the call; one byte back is inside it.
    query = "\n".join(hex(a - base - 1) for a in inside) + "\n"
    out = subprocess.run(
        ["addr2line", "-a", "-f", "-C", "-i", "-e", binary],
        input=query, capture_output=True, text=True, check=True,
    ).stdout
    frames, current = {}, None
    for line in out.splitlines():
        if line.startswith("0x"):
            current = int(line, 16) + base + 1
            frames[current] = []
        elif current is not None and line and not line.startswith(("/", "??")):
            frames[current].append(re.sub(r"::h[0-9a-f]{16}$", "", line))
    return frames


def site_of(stack, frames):
    for address in stack:
        for frame in frames.get(address, []):
            if "::" in frame and not NOT_A_SITE.match(frame):
                return frame
    return "(allocator or C library)"


def owner(site):
    m = re.match(r"^<?(?:<)?([a-z_0-9]+)::", site)
    return m[1] if m else "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("profile")
    ap.add_argument("binary")
    ap.add_argument("--per", type=int, default=0, help="subscribers, for bytes per subscriber")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    stacks, maps = parse(args.profile)
    addresses = sorted({a for stack, _, _ in stacks for a in stack})
    frames = symbolize(addresses, maps, args.binary)
    sites = collections.defaultdict(lambda: [0, 0])
    for stack, objects, size in stacks:
        s = sites[site_of(stack, frames)]
        s[0] += size
        s[1] += objects
    per = args.per or None
    # With --per: what scales with subscribers, by crate; the rest is shared.
    shared = lambda objects: per is not None and objects < per / 2
    owners = collections.Counter()
    shared_bytes = 0
    for site, (size, objects) in sites.items():
        if shared(objects):
            shared_bytes += size
        else:
            owners[owner(site)] += size
    total = sum(size for size, _ in sites.values())
    ranked = sorted(sites.items(), key=lambda kv: -kv[1][0])

    if args.json:
        print(json.dumps({
            "total_bytes": total,
            "shared_bytes": shared_bytes,
            "subscribers": per,
            "owners": dict(owners.most_common()),
            "sites": [{"site": k, "bytes": v[0], "objects": v[1]} for k, v in ranked],
        }))
        return
    unit = lambda b: f"{b / 1024:9.1f}" + (f" {b / 1024 / per:7.2f}" if per else "")
    head = "     KiB" + ("  KiB/sub" if per else "")
    print(f"live heap in the profile: {total / 1024:.0f} KiB" + (f", {per} subscribers" if per else ""))
    print(f"\nby crate" + (" (sites with at least N / 2 objects)" if per else "") + f"\n{head}")
    for name, size in owners.most_common():
        print(f"{unit(size)}  {name}")
    if per:
        print(f"{unit(sum(owners.values()))}  all of these")
        print(f"{shared_bytes / 1024:9.1f}          shared (sites with fewer objects)")
    print(f"\nby site (objects in brackets)\n{head}")
    for site, (size, objects) in ranked[: args.top]:
        amount = f"{size / 1024:9.1f}   shared" if shared(objects) else unit(size)
        print(f"{amount}  [{objects}] {site[:150]}")


if __name__ == "__main__":
    main()
