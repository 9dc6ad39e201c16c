#!/usr/bin/env python3
"""Count the `lock`-prefixed (atomic read-modify-write) instructions a callgrind run
executed inside one executable: for `Bytes`, each is a reference count increment or
decrement. docs/benchmarks.md ("moq-proto") uses it on `proto/group_stream`.

usage: callgrind_locked.py CALLGRIND_OUT EXECUTABLE

The callgrind run must use --dump-instr=yes. Only the executable's own code is searched for
`lock` instructions (objdump), not shared libraries.
"""

import re
import subprocess
import sys

COST = re.compile(r"^([+-]?(?:0x[0-9a-fA-F]+|\d+)|\*)\s+\S+\s+(\d+)")


def locked_addresses(executable):
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", executable],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = set()
    for line in out.splitlines():
        m = re.match(r"^\s+([0-9a-f]+):\s+lock\b", line)
        if m:
            found.add(int(m.group(1), 16))
    return found


def parse_position(text, last):
    """A callgrind instruction position: absolute, relative (+/-) or unchanged (*)."""
    if text == "*":
        return last
    if text[0] in "+-":
        delta = int(text[1:], 0)
        return last + delta if text[0] == "+" else last - delta
    return int(text, 0)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    locks = locked_addresses(sys.argv[2])
    total = 0
    last = 0
    after_calls = False
    with open(sys.argv[1]) as f:
        for line in f:
            if line.startswith("calls="):
                # The next cost line is the call's inclusive cost, not an executed instruction.
                after_calls = True
                continue
            m = COST.match(line)
            if not m:
                continue
            last = parse_position(m.group(1), last)
            if after_calls:
                after_calls = False
                continue
            if last in locks:
                total += int(m.group(2))
    print(total)


if __name__ == "__main__":
    main()
