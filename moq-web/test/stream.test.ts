/** The incremental stream readers, fed arbitrary chunkings. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  DecodeError,
  ErrorCode,
  GroupReader,
  MoqError,
  StreamReader,
  encode,
  readAnnounce,
  readGroupDrop,
  readInfo,
  writeAnnounce,
  writeGroup,
  writeGroupDrop,
  writeInfo,
  type Announce,
  type GroupDrop,
} from "../src/index.js";
import { chunkedStream, hex, rng, unhex } from "./helpers.js";

const CHUNKINGS: number[][] = [[1], [2], [3], [5, 1, 7], [1000]];
function randomChunkings(seed: number, count: number, max: number): number[][] {
  const r = rng(seed);
  return Array.from({ length: count }, () => Array.from({ length: 16 }, () => 1 + Math.floor(r() * max)));
}

describe("StreamReader (control messages)", () => {
  const info = { priority: 1, groupOrder: "desc" as const, groupExpires: 2000, groupLatest: 5 };
  const drops: GroupDrop[] = [
    { sequence: 12, count: 0, code: 14 },
    { sequence: 1_000_000, count: 3, code: 164 },
    { sequence: 0, count: 0, code: 4 },
  ];
  const bytes = encode((w) => {
    writeInfo(w, info);
    for (const d of drops) writeGroupDrop(w, d);
  });

  for (const sizes of [...CHUNKINGS, ...randomChunkings(7, 20, 6)]) {
    it(`reads Info then GroupDrop* to a clean FIN, chunks ${sizes.join(",")}`, async () => {
      const reader = new StreamReader(chunkedStream(bytes, sizes));
      assert.deepEqual(await reader.read(readInfo), info);
      const got: GroupDrop[] = [];
      for (let d = await reader.readMaybe(readGroupDrop); d !== undefined; d = await reader.readMaybe(readGroupDrop)) {
        got.push(d);
        // Only the incomplete message is ever buffered.
        assert.ok(reader.buffered < 16);
      }
      assert.deepEqual(got, drops);
    });
  }

  it("reports a FIN inside a message as a decode error", async () => {
    const cut = bytes.subarray(0, bytes.length - 1);
    const reader = new StreamReader(chunkedStream(cut, [2]));
    await reader.read(readInfo);
    await reader.readMaybe(readGroupDrop);
    await reader.readMaybe(readGroupDrop);
    await assert.rejects(reader.readMaybe(readGroupDrop), (e: unknown) => e instanceof DecodeError && e.code === ErrorCode.Decode);
  });

  it("reports a missing required message at FIN as a decode error", async () => {
    const reader = new StreamReader(chunkedStream(new Uint8Array(0), [1]));
    await assert.rejects(reader.read(readInfo), (e: unknown) => e instanceof DecodeError && e.kind === "need_more");
  });

  it("rejects a control message larger than the configured cap", async () => {
    // An announce whose path is long but within the codec limits.
    const big: Announce = { status: "active", suffix: Array.from({ length: 40 }, () => "p".repeat(100)) };
    const b = encode((w) => writeAnnounce(w, big));
    const small = new StreamReader(chunkedStream(b, [64]), { maxMessageSize: 1024 });
    await assert.rejects(small.read(readAnnounce), (e: unknown) => e instanceof DecodeError && e.kind === "limit_exceeded");
    const fine = new StreamReader(chunkedStream(b, [64]));
    assert.deepEqual(await fine.read(readAnnounce), big);
  });

  it("passes malformed input on as a decode error", async () => {
    const reader = new StreamReader(chunkedStream(unhex("0200"), [1]));
    await assert.rejects(reader.read(readAnnounce), (e: unknown) => e instanceof DecodeError && e.kind === "invalid_value");
  });
});

function groupBytes(subscribe: number, sequence: number, frames: Uint8Array[]): Uint8Array {
  return encode((w) => {
    w.varint(0);
    writeGroup(w, { subscribe, sequence });
    for (const f of frames) w.varint(f.length).bytes(f);
  });
}

function payload(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

describe("GroupReader", () => {
  const frames = [payload(0, 1), payload(1, 2), payload(300, 3), payload(5000, 4), payload(0, 5), payload(64, 6)];
  const bytes = groupBytes(300, 70000, frames);

  for (const sizes of [...CHUNKINGS, ...randomChunkings(11, 20, 700)]) {
    it(`yields whole frames, chunks ${sizes.slice(0, 4).join(",")}...`, async () => {
      const reader = await GroupReader.open(chunkedStream(bytes, sizes));
      assert.equal(reader.subscribe, 300);
      assert.equal(reader.sequence, 70000);
      const got: string[] = [];
      for await (const f of reader.frames()) got.push(hex(f));
      assert.deepEqual(got, frames.map(hex));
    });

    it(`yields payload pieces incrementally, chunks ${sizes.slice(0, 4).join(",")}...`, async () => {
      const reader = await GroupReader.open(chunkedStream(bytes, sizes));
      let index = 0;
      const maxChunk = Math.max(...sizes);
      for (let size = await reader.nextFrame(); size !== undefined; size = await reader.nextFrame()) {
        const expected = frames[index++]!;
        assert.equal(size, expected.length);
        let at = 0;
        for (let piece = await reader.chunk(); piece !== undefined; piece = await reader.chunk()) {
          // A view of what arrived: never larger than one delivered chunk.
          assert.ok(piece.length <= maxChunk);
          assert.ok(piece.length > 0);
          assert.equal(hex(piece), hex(expected.subarray(at, at + piece.length)));
          at += piece.length;
        }
        assert.equal(at, expected.length);
      }
      assert.equal(index, frames.length);
    });
  }

  it("serves payload as subarrays of the delivered chunks (no copy)", async () => {
    const frame = payload(100, 9);
    const b = groupBytes(0, 1, [frame]);
    const delivered: Uint8Array[] = [];
    const source = chunkedStream(b, [10]);
    const tapped = source.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          delivered.push(chunk);
          controller.enqueue(chunk);
        },
      }),
    );
    const reader = await GroupReader.open(tapped);
    assert.equal(await reader.nextFrame(), 100);
    for (let piece = await reader.chunk(); piece !== undefined; piece = await reader.chunk()) {
      assert.ok(delivered.some((d) => d.buffer === piece.buffer), "piece is a view of a delivered chunk");
    }
  });

  it("copies at most a few bytes when a frame header straddles two chunks", async () => {
    const frame = payload(5000, 10);
    const b = groupBytes(0, 1, [frame, frame]);
    // Cut inside the first frame's 2-byte size, and inside the second's.
    const cut1 = 4;
    const cut2 = 3 + 2 + 5000 + 1;
    for (const sizes of [[cut1, cut2 - cut1, 100_000], [cut1, 7, 100_000]]) {
      const delivered: Uint8Array[] = [];
      const tapped = chunkedStream(b, sizes).pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            delivered.push(chunk);
            controller.enqueue(chunk);
          },
        }),
      );
      const reader = await GroupReader.open(tapped);
      let copied = 0;
      let total = 0;
      while ((await reader.nextFrame()) !== undefined) {
        for (let piece = await reader.chunk(); piece !== undefined; piece = await reader.chunk()) {
          total += piece.length;
          if (!delivered.some((d) => d.buffer === piece.buffer)) copied += piece.length;
        }
      }
      assert.equal(total, 10_000);
      assert.ok(copied <= 4, `copied ${copied} payload bytes`);
    }
  });

  it("skips the unread rest of a frame on nextFrame", async () => {
    const reader = await GroupReader.open(chunkedStream(bytes, [7]));
    assert.equal(await reader.nextFrame(), 0);
    assert.equal(await reader.nextFrame(), 1);
    assert.equal(await reader.nextFrame(), 300);
    await reader.chunk();
    assert.equal(await reader.nextFrame(), 5000);
    assert.equal(await reader.nextFrame(), 0);
    assert.equal(hex((await reader.readFrame())!), hex(frames[5]!));
    assert.equal(await reader.readFrame(), undefined);
  });

  it("reads a group with no frames", async () => {
    const reader = await GroupReader.open(chunkedStream(unhex("000507"), [1]));
    assert.equal(reader.subscribe, 5);
    assert.equal(reader.sequence, 7);
    assert.equal(await reader.readFrame(), undefined);
  });

  it("reports a FIN inside a payload as WrongSize (14)", async () => {
    const reader = await GroupReader.open(chunkedStream(bytes.subarray(0, bytes.length - 10), [33]));
    await assert.rejects(
      (async () => {
        for await (const _ of reader.frames()) {
          // drain
        }
      })(),
      (e: unknown) => e instanceof MoqError && e.code === ErrorCode.WrongSize,
    );
  });

  it("reports a FIN inside a frame header as a decode error (5)", async () => {
    const b = encode((w) => {
      w.bytes(groupBytes(0, 0, [])).bytes(unhex("45"));
    });
    const reader = await GroupReader.open(chunkedStream(b, [1]));
    await assert.rejects(reader.nextFrame(), (e: unknown) => e instanceof DecodeError && e.code === ErrorCode.Decode);
  });

  it("rejects a wrong stream type and oversized frames", async () => {
    await assert.rejects(GroupReader.open(chunkedStream(unhex("010000"), [1])), (e: unknown) => e instanceof DecodeError && e.kind === "invalid_value");
    const b = encode((w) => w.bytes(groupBytes(0, 0, [])).varint(1_000_001));
    const reader = await GroupReader.open(chunkedStream(b, [4]), { maxFrameSize: 1_000_000 });
    await assert.rejects(reader.nextFrame(), (e: unknown) => e instanceof DecodeError && e.kind === "limit_exceeded");
  });
});
