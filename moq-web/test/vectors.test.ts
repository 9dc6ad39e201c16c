/**
 * The codec against every entry of the shared vectors.json: decoding gives the
 * stated fields, encoding the fields gives the same bytes, malformed inputs
 * give the stated error class; plus a split-at-every-offset test with a
 * sentinel byte.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  Cursor,
  DecodeError,
  GroupReader,
  StreamReader,
  Writer,
  decode,
  decodeVarint,
  decodeVarintBig,
  encode,
  encodeVarint,
  readAnnounce,
  readAnnounceInterest,
  readBiStreamType,
  readFetch,
  readFrame,
  readGroup,
  readGroupDrop,
  readGroupOrder,
  readInfo,
  readInfoRequest,
  readSessionClient,
  readSessionServer,
  readSessionUpdate,
  readSubscribe,
  readSubscribeUpdate,
  readUniStreamType,
  writeAnnounce,
  writeAnnounceInterest,
  writeBiStreamType,
  writeFetch,
  writeFrame,
  writeGroup,
  writeGroupDrop,
  writeGroupOrder,
  writeInfo,
  writeInfoRequest,
  writeSessionClient,
  writeSessionServer,
  writeSessionUpdate,
  writeSubscribe,
  writeSubscribeUpdate,
  writeUniStreamType,
  type BiStreamType,
  type Extensions,
  type GroupOrder,
} from "../src/index.js";
import { chunkedStream, hex, loadVectors, unhex, type Vector } from "./helpers.js";

type F = Record<string, unknown>;

function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "string") return Number(BigInt(v));
  throw new Error(`not a number: ${String(v)}`);
}

function exts(v: unknown): Extensions {
  const out: Extensions = new Map();
  for (const [k, payload] of Object.entries(v as Record<string, string>)) out.set(num(k), unhex(payload));
  return out;
}

function strs(v: unknown): string[] {
  return v as string[];
}

function opt(v: unknown): number | null {
  return v === null ? null : num(v);
}

/** How to decode and encode one kind of vector, and the value its fields describe. */
interface Codec {
  read: (c: Cursor) => unknown;
  write: (w: Writer, v: never) => void;
  expected: (f: F) => unknown;
}

function codec<T>(read: (c: Cursor) => T, write: (w: Writer, v: T) => void, expected: (f: F) => T): Codec {
  return { read, write: write as (w: Writer, v: never) => void, expected };
}

const subscribeFields = (f: F) => ({
  id: num(f.id),
  path: strs(f.path),
  priority: num(f.priority),
  groupOrder: f.group_order as GroupOrder,
  groupExpires: num(f.group_expires_ms),
  groupMin: opt(f.group_min),
  groupMax: opt(f.group_max),
});

const CODECS: Record<string, Codec> = {
  i8: codec((c) => c.i8(), (w, v) => w.i8(v), (f) => num(f.value)),
  u8: codec((c) => c.u8(), (w, v) => w.u8(v), (f) => num(f.value)),
  string: codec((c) => c.string(), (w, v) => w.string(v), (f) => f.value as string),
  duration_ms: codec((c) => c.duration(), (w, v) => w.duration(v), (f) => num(f.millis)),
  path: codec((c) => c.path(), (w, v) => w.path(v), (f) => strs(f.parts)),
  group_order: codec(readGroupOrder, writeGroupOrder, (f) => f.order as GroupOrder),
  stream_type_bi: codec(readBiStreamType, writeBiStreamType, (f) => f.type as BiStreamType),
  stream_type_uni: codec(readUniStreamType, writeUniStreamType, (f) => f.type as "group"),
  SessionClient: codec(readSessionClient, writeSessionClient, (f) => ({
    versions: (f.versions as string[]).map(num),
    extensions: exts(f.extensions),
  })),
  SessionServer: codec(readSessionServer, writeSessionServer, (f) => ({
    version: num(f.version),
    extensions: exts(f.extensions),
  })),
  SessionUpdate: codec(readSessionUpdate, writeSessionUpdate, (f) => ({ bitrate: opt(f.bitrate) })),
  AnnounceInterest: codec(readAnnounceInterest, writeAnnounceInterest, (f) => ({ prefix: strs(f.prefix) })),
  Announce: codec(readAnnounce, writeAnnounce, (f) => ({
    status: f.status as "active" | "ended",
    suffix: strs(f.suffix),
  })),
  Subscribe: codec(readSubscribe, writeSubscribe, subscribeFields),
  Info: codec(readInfo, writeInfo, (f) => ({
    priority: num(f.track_priority),
    groupOrder: f.group_order as GroupOrder,
    groupExpires: num(f.group_expires_ms),
    groupLatest: num(f.group_latest),
  })),
  InfoRequest: codec(readInfoRequest, writeInfoRequest, (f) => ({ path: strs(f.path) })),
  Fetch: codec(readFetch, writeFetch, (f) => ({
    path: strs(f.path),
    priority: num(f.priority),
    group: num(f.group),
    offset: num(f.offset),
  })),
  Group: codec(readGroup, writeGroup, (f) => ({ subscribe: num(f.subscribe), sequence: num(f.sequence) })),
  GroupDrop: codec(readGroupDrop, writeGroupDrop, (f) => ({
    sequence: num(f.sequence),
    count: num(f.count),
    code: num(f.code),
  })),
  Frame: codec(readFrame, writeFrame, (f) => ({ size: num(f.size) })),
  "stream:session(client->server)": codec(
    (c) => ({ type: readBiStreamType(c), ...readSessionClient(c) }),
    (w, v: { type: BiStreamType; versions: number[]; extensions: Extensions }) => {
      writeBiStreamType(w, v.type);
      writeSessionClient(w, v);
    },
    (f) => ({ type: "session" as BiStreamType, versions: (f.versions as string[]).map(num), extensions: exts(f.extensions) }),
  ),
  "stream:subscribe(sub->pub)": codec(
    (c) => ({ type: readBiStreamType(c), ...readSubscribe(c) }),
    (w, v: ReturnType<typeof subscribeFields> & { type: BiStreamType }) => {
      writeBiStreamType(w, v.type);
      writeSubscribe(w, v);
    },
    (f) => ({ type: "subscribe" as BiStreamType, ...subscribeFields(f) }),
  ),
  "stream:announce(sub->pub)": codec(
    (c) => ({ type: readBiStreamType(c), ...readAnnounceInterest(c) }),
    (w, v: { type: BiStreamType; prefix: string[] }) => {
      writeBiStreamType(w, v.type);
      writeAnnounceInterest(w, v);
    },
    (f) => ({ type: "announce" as BiStreamType, prefix: strs(f.prefix) }),
  ),
};

const STREAM_TYPE_NUMBERS: Record<string, number> = { session: 0, announce: 1, subscribe: 2, fetch: 3, info: 4 };

const vectors = loadVectors();
const good = vectors.filter((v) => v.error === undefined);
const bad = vectors.filter((v) => v.error !== undefined);

function checkVarint(v: Vector): void {
  const value = BigInt(v.fields!.value as number | string);
  const bytes = unhex(v.hex);
  const big = decodeVarintBig(bytes);
  assert.ok(big.ok);
  assert.equal(big.value, value);
  assert.equal(big.size, bytes.length);
  assert.equal(hex(encodeVarint(value)), v.hex);
  if (value <= BigInt(Number.MAX_SAFE_INTEGER)) {
    const n = decodeVarint(bytes);
    assert.ok(n.ok);
    assert.equal(n.value, Number(value));
    assert.equal(hex(encodeVarint(Number(value))), v.hex);
  } else {
    // Documented: a number cannot hold it exactly, so the number reader rejects it.
    assert.throws(() => decodeVarint(bytes), (e: unknown) => e instanceof DecodeError && e.kind === "bounds_exceeded");
  }
}

async function checkGroupStream(v: Vector): Promise<void> {
  const f = v.fields!;
  const frames = (f.frames_hex as string[]).map(unhex);
  const bytes = encode((w) => {
    w.varint(num(f.type));
    writeGroup(w, { subscribe: num(f.subscribe), sequence: num(f.sequence) });
    for (const p of frames) w.varint(p.length).bytes(p);
  });
  assert.equal(hex(bytes), v.hex);
  for (const size of [1, 2, 3, 100]) {
    const reader = await GroupReader.open(chunkedStream(unhex(v.hex), [size]));
    assert.equal(reader.subscribe, num(f.subscribe));
    assert.equal(reader.sequence, num(f.sequence));
    const got: string[] = [];
    for await (const frame of reader.frames()) got.push(hex(frame));
    assert.deepEqual(got, f.frames_hex);
  }
}

describe("vectors.json", () => {
  it("has entries", () => {
    assert.ok(vectors.length >= 70, `only ${vectors.length} vectors`);
    assert.ok(bad.length >= 10);
  });

  for (const v of good) {
    const label = `${v.message} ${v.hex || "(empty)"}`;
    it(`decodes and encodes ${label}`, async () => {
      if (v.message === "varint") return checkVarint(v);
      if (v.message === "stream:group(pub->sub)") return checkGroupStream(v);
      const bytes = unhex(v.hex);
      if (v.message === "SubscribeUpdate") {
        // These bytes come from the 0.5.0 *encoder* (no group_expires); the
        // five-field decoder layout (§5.7) needs more input for them.
        const r = decode(bytes, readSubscribeUpdate);
        assert.equal(r.ok, false);
        const f = v.fields!;
        const five = encode((w) =>
          writeSubscribeUpdate(w, {
            priority: num(f.priority),
            groupOrder: f.group_order as GroupOrder,
            groupExpires: num(f.group_expires_ms),
            groupMin: opt(f.group_min),
            groupMax: opt(f.group_max),
          }),
        );
        const expires = encodeVarint(num(f.group_expires_ms));
        // Same bytes with group_expires inserted after the order.
        assert.equal(hex(five), v.hex.slice(0, 4) + hex(expires) + v.hex.slice(4));
        const back = decode(five, readSubscribeUpdate);
        assert.ok(back.ok);
        assert.equal(back.size, five.length);
        assert.equal(back.value.groupExpires, num(f.group_expires_ms));
        return;
      }
      const c = CODECS[v.message];
      assert.ok(c, `no codec for ${v.message}`);
      const expected = c.expected(v.fields!);
      const r = decode(bytes, c.read);
      assert.ok(r.ok, `${label}: need more`);
      assert.equal(r.size, bytes.length);
      if (v.message === "duration_ms" && v.fields!.input !== undefined) {
        // Encoding a fractional duration truncates sub-millisecond parts.
        const seconds = Number.parseFloat(String(v.fields!.input));
        assert.equal(hex(encode((w) => w.duration(seconds * 1000))), v.hex);
      }
      assert.deepEqual(r.value, expected);
      assert.equal(hex(encode((w) => c.write(w, expected as never))), v.hex);
      if (v.roundtrip) assert.equal(hex(encode((w) => c.write(w, r.value as never))), v.hex);
      if (v.message.startsWith("stream:")) assert.equal(bytes[0], num(v.fields!.type));
      if (v.message === "stream_type_bi") assert.equal(bytes[0], STREAM_TYPE_NUMBERS[v.fields!.type as string]);
    });
  }

  const ERROR_READERS: Record<string, (c: Cursor) => unknown> = {
    Subscribe: readSubscribe,
    Announce: readAnnounce,
    group_order: readGroupOrder,
    stream_type_bi: readBiStreamType,
    path: (c) => c.path(),
    SessionClient: readSessionClient,
    GroupDrop: readGroupDrop,
    varint: (c) => c.varintBig(),
  };

  for (const v of bad) {
    it(`rejects ${v.message} ${v.hex || "(empty)"} as ${v.error}`, () => {
      const read = ERROR_READERS[v.message];
      assert.ok(read, `no reader for ${v.message}`);
      const bytes = unhex(v.hex);
      if (v.error === "need_more") {
        const r = decode(bytes, read);
        assert.equal(r.ok, false);
        if (!r.ok) assert.ok(r.needed >= 1);
      } else {
        assert.throws(
          () => decode(bytes, read),
          (e: unknown) => e instanceof DecodeError && e.kind === v.error && e.code === 5,
        );
      }
    });
  }
});

describe("split at every offset with a sentinel", () => {
  const SENTINEL = 0xa5;
  for (const v of good) {
    const c = CODECS[v.message];
    const read: ((cur: Cursor) => unknown) | undefined = v.message === "varint" ? (cur: Cursor) => cur.varintBig() : c?.read;
    if (!read) continue;
    it(`${v.message} ${v.hex}`, async () => {
      const bytes = unhex(v.hex);
      const whole = new Uint8Array(bytes.length + 1);
      whole.set(bytes);
      whole[bytes.length] = SENTINEL;
      const full = decode(whole, read);
      assert.ok(full.ok);
      assert.equal(full.size, bytes.length, "the sentinel must not be consumed");
      for (let k = 0; k < bytes.length; k++) {
        const part: { ok: boolean } = decode(whole.subarray(0, k), read);
        assert.equal(part.ok, false, `prefix of ${k} bytes decoded`);
        // Fed through a stream reader as two chunks split at k: the same value,
        // and the sentinel is still there afterwards.
        if (k > 0) {
          const reader = new StreamReader(chunkedStream(whole, [k, whole.length]));
          const value: unknown = await reader.read(read);
          assert.deepEqual(value, full.value);
          assert.equal(reader.buffered, 1);
          assert.deepEqual(await reader.bytes(10), Uint8Array.of(SENTINEL));
        }
      }
      // Decoding from an offset inside a larger buffer works the same.
      const shifted = new Uint8Array(whole.length + 3);
      shifted.set(whole, 3);
      const at = decode(shifted, read, 3);
      assert.ok(at.ok);
      assert.equal(at.size, bytes.length);
      assert.deepEqual(at.value, full.value);
    });
  }
});
