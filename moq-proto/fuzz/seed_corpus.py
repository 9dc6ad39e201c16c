#!/usr/bin/env python3
"""Writes the seed corpus (corpus/<target>/vector-*) from tests/data/vectors.json.

Each message vector seeds the target of its message type; the whole-stream vectors (and a
few streams assembled from message vectors) seed the two stream targets. Malformed vectors
are included too: they are good starting points for the mutator.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "data", "vectors.json")

TARGETS = {
    "SessionClient": "session_client",
    "SessionServer": "session_server",
    "SessionUpdate": "session_update",
    "AnnounceInterest": "announce_interest",
    "Announce": "announce",
    "Subscribe": "subscribe",
    "SubscribeUpdate": "subscribe_update",
    "Info": "info",
    "InfoRequest": "info_request",
    "Fetch": "fetch",
    "Group": "group",
    "GroupDrop": "group_drop",
    "Frame": "frame",
}


def main():
    vectors = json.load(open(VECTORS))
    seeds = {}

    def add(target, data):
        seeds.setdefault(target, []).append(data)

    by_message = {}
    for v in vectors:
        data = bytes.fromhex(v["hex"])
        name = v["message"]
        by_message.setdefault(name, []).append(data)
        if name in TARGETS:
            add(TARGETS[name], data)
        elif name.startswith("stream:group"):
            add("group_stream", data)
        elif name.startswith("stream:"):
            add("control_stream", data)

    # Control streams of every type, from the message vectors (stream type byte first).
    for kind, name in [(0, "SessionClient"), (1, "AnnounceInterest"), (2, "Subscribe"), (3, "Fetch"), (4, "InfoRequest")]:
        for msg in by_message[name][:2]:
            add("control_stream", bytes([kind]) + msg)
    announces = b"".join(by_message["Announce"][:3])
    add("control_stream", bytes([1]) + by_message["AnnounceInterest"][0] + announces)
    # A subscribe stream with a 5-field SubscribeUpdate (priority 3, asc, 250 ms, min 10, none).
    add("control_stream", bytes([2]) + by_message["Subscribe"][0] + bytes.fromhex("0300" + "40fa" + "0b00"))
    # Group streams: header only, and header + frames of several sizes.
    for group in by_message["Group"]:
        add("group_stream", bytes([0]) + group)
        add("group_stream", bytes([0]) + group + bytes([5]) + b"hello" + bytes([0]) + bytes.fromhex("4080") + bytes(128))

    for target, items in seeds.items():
        out = os.path.join(HERE, "corpus", target)
        os.makedirs(out, exist_ok=True)
        for i, data in enumerate(items):
            with open(os.path.join(out, "vector-%02d" % i), "wb") as f:
                f.write(data)
        print(target, len(items))


if __name__ == "__main__":
    main()
