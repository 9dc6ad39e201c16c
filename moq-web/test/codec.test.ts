/** Codec behaviour beyond the vectors: varint edges, limits, error codes. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  DecodeError,
  ErrorCode,
  Limits,
  codeName,
  appCode,
  decode,
  decodeVarint,
  decodeVarintBig,
  encode,
  encodeVarint,
  fromWebTransportCode,
  readAnnounceLive,
  readAnnounce,
  readSessionClient,
  readSubscribe,
  toWebTransportCode,
  writeAnnounce,
  type DecodeErrorKind,
} from "../src/index.js";
import { hex, unhex } from "./helpers.js";

function throwsKind(f: () => unknown, kind: DecodeErrorKind): void {
  assert.throws(f, (e: unknown) => e instanceof DecodeError && e.kind === kind);
}

describe("varint", () => {
  it("uses the shortest form at every boundary", () => {
    const cases: [number | bigint, number][] = [
      [0, 1], [63, 1], [64, 2], [16383, 2], [16384, 4], [1073741823, 4], [1073741824, 8],
      [Number.MAX_SAFE_INTEGER, 8], [(1n << 62n) - 1n, 8],
    ];
    for (const [v, len] of cases) {
      const b = encodeVarint(v);
      assert.equal(b.length, len, `length of ${v}`);
      const r = decodeVarintBig(b);
      assert.ok(r.ok);
      assert.equal(r.value, BigInt(v));
    }
  });

  it("accepts non-minimal encodings (§3.1)", () => {
    const r = decodeVarint(unhex("4009"));
    assert.ok(r.ok);
    assert.equal(r.value, 9);
    assert.equal(r.size, 2);
    const r8 = decodeVarint(unhex("c000000000000005"));
    assert.ok(r8.ok);
    assert.equal(r8.value, 5);
  });

  it("reads 2^53-1 as a number and rejects 2^53 (documented)", () => {
    const max = decodeVarint(encodeVarint(Number.MAX_SAFE_INTEGER));
    assert.ok(max.ok);
    assert.equal(max.value, Number.MAX_SAFE_INTEGER);
    throwsKind(() => decodeVarint(encodeVarint(2n ** 53n)), "bounds_exceeded");
  });

  it("refuses to encode what a varint cannot hold", () => {
    assert.throws(() => encodeVarint(1n << 62n), RangeError);
    assert.throws(() => encodeVarint(-1), RangeError);
    assert.throws(() => encodeVarint(1.5), RangeError);
    assert.throws(() => encodeVarint(2 ** 60), RangeError); // not a safe integer as a number
  });

  it("reports need-more with a positive count and consumes nothing", () => {
    const r = decodeVarint(unhex("c000"));
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.needed, 6);
    const empty = decodeVarint(new Uint8Array(0));
    assert.equal(empty.ok, false);
  });
});

describe("limits are checked before allocation", () => {
  it("string length", () => {
    // Declares a 4097-byte string but carries none of it: a limit error, not need-more.
    const b = encode((w) => w.varint(1).varint(Limits.maxStringLength + 1));
    throwsKind(() => decode(b, (c) => c.path()), "limit_exceeded");
    const ok = encode((w) => w.varint(1).varint(Limits.maxStringLength));
    assert.equal(decode(ok, (c) => c.path()).ok, false); // within the limit: just need more
  });

  it("path parts and path bytes", () => {
    throwsKind(() => decode(encode((w) => w.varint(Limits.maxPathParts + 1)), (c) => c.path()), "limit_exceeded");
    const parts = Array.from({ length: 2 }, () => "x".repeat(Limits.maxStringLength));
    throwsKind(() => decode(encode((w) => w.path(parts)), (c) => c.path()), "limit_exceeded");
    const fine = Array.from({ length: Limits.maxPathParts }, () => "ab");
    const r = decode(encode((w) => w.path(fine)), (c) => c.path());
    assert.ok(r.ok);
    assert.deepEqual(r.value, fine);
  });

  it("extension count and size", () => {
    const many = encode((w) => w.varint(1).varint(1).varint(Limits.maxExtensions + 1));
    throwsKind(() => decode(many, readSessionClient), "limit_exceeded");
    const big = encode((w) => w.varint(1).varint(1).varint(1).varint(7).varint(Limits.maxExtensionSize + 1));
    throwsKind(() => decode(big, readSessionClient), "limit_exceeded");
  });

  it("version count", () => {
    throwsKind(() => decode(encode((w) => w.varint(Limits.maxVersions + 1)), readSessionClient), "limit_exceeded");
  });
});

describe("messages", () => {
  it("rejects invalid UTF-8 inside a message", () => {
    throwsKind(() => decode(unhex("00 01 02 c328 80 01 00 00 00".replace(/ /g, "")), readSubscribe), "invalid_string");
  });

  it("accepts announce status 2 (live) only in the live decoder", () => {
    const live = decode(unhex("02"), readAnnounceLive);
    assert.ok(live.ok);
    assert.deepEqual(live.value, { status: "live" });
    assert.equal(live.size, 1);
    throwsKind(() => decode(unhex("02"), readAnnounce), "invalid_value");
    throwsKind(() => decode(unhex("03"), readAnnounceLive), "invalid_value");
    assert.equal(hex(encode((w) => writeAnnounce(w, { status: "live" }))), "02");
  });

  it("encodes i8 priorities as biased bytes and rejects out-of-range ones", () => {
    assert.equal(hex(encode((w) => w.i8(-128).i8(0).i8(127))), "0080ff");
    assert.throws(() => encode((w) => w.i8(128)), RangeError);
  });
});

describe("error codes", () => {
  it("maps codes into the WebTransport space as the table of §2.4", () => {
    const table: [number, bigint][] = [
      [0, 0x52e4a40fa8dbn], [1, 0x52e4a40fa8dcn], [4, 0x52e4a40fa8dfn], [5, 0x52e4a40fa8e0n],
      [9, 0x52e4a40fa8e4n], [10, 0x52e4a40fa8e5n], [11, 0x52e4a40fa8e6n], [12, 0x52e4a40fa8e7n],
      [13, 0x52e4a40fa8e8n], [14, 0x52e4a40fa8e9n], [15, 0x52e4a40fa8ean], [16, 0x52e4a40fa8ebn], [64, 0x52e4a40fa91dn],
      [164, 0x52e4a40fa984n],
    ];
    for (const [code, wire] of table) {
      assert.equal(toWebTransportCode(code), wire, `code ${code}`);
      assert.equal(fromWebTransportCode(wire), code);
    }
    assert.equal(toWebTransportCode(0xffffffff), 0x52e5ac983162n);
    assert.equal(fromWebTransportCode(0x52e5ac983162n), 0xffffffff);
  });

  it("inverts the mapping for every code around the reserved gaps", () => {
    for (let n = 0; n < 2000; n++) assert.equal(fromWebTransportCode(toWebTransportCode(n)), n);
    // Every 0x1f-th value is reserved (an HTTP/3 GREASE codepoint).
    assert.equal(fromWebTransportCode(0x52e4a40fa8dbn + 0x1en), undefined);
    assert.equal(fromWebTransportCode(0x52e4a40fa8dan), undefined);
    assert.equal(fromWebTransportCode(0x52e5ac983163n), undefined);
  });

  it("names codes", () => {
    assert.equal(ErrorCode.NotFound, 13);
    assert.equal(codeName(13), "NotFound");
    assert.equal(ErrorCode.Unauthorized, 16);
    assert.equal(codeName(16), "Unauthorized");
    assert.equal(codeName(appCode(100)), "App(100)");
    assert.equal(codeName(7), "Unknown(7)");
    assert.equal(new DecodeError("invalid_value", "x").code, ErrorCode.Decode);
  });
});
