/** The media format of moq-karp 0.10 (docs/media.md): catalog, frames, the live broadcast. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { DecodeError, LiveBroadcast, aacDescription, compareBroadcastIds, decodeMediaFrame, encodeMediaFrame, parseCatalog } from "../src/index.js";
import { hex, unhex } from "./helpers.js";

// The example of docs/media.md, as moq-media prints it.
const DOC_CATALOG =
  '{"video":[{"track":{"name":"video1","priority":2},"codec":"avc1.4d400c","description":"014d400cffe1","resolution":{"width":160,"height":120},"bitrate":100000}],' +
  '"audio":[{"track":{"name":"audio2","priority":1},"codec":"mp4a.40.2","sample_rate":48000,"channel_count":1,"bitrate":32000}]}';

describe("parseCatalog", () => {
  it("reads every field of the documented example", () => {
    const c = parseCatalog(new TextEncoder().encode(DOC_CATALOG));
    assert.equal(c.video.length, 1);
    const v = c.video[0]!;
    assert.deepEqual(v.track, { name: "video1", priority: 2 });
    assert.equal(v.codec, "avc1.4d400c");
    assert.equal(hex(v.description!), "014d400cffe1");
    assert.deepEqual(v.resolution, { width: 160, height: 120 });
    assert.equal(v.bitrate, 100000);
    assert.deepEqual(c.audio, [{ track: { name: "audio2", priority: 1 }, codec: "mp4a.40.2", sampleRate: 48000, channelCount: 1, bitrate: 32000 }]);
  });

  it("takes absent keys as empty, no description (VP9) as undefined, and ignores unknown keys", () => {
    assert.deepEqual(parseCatalog("{}"), { video: [], audio: [] });
    const c = parseCatalog('{"video":[{"track":{"name":"v","priority":-1},"codec":"vp09.00.10.08","resolution":{"width":1280,"height":720},"x":1}],"future":true}');
    assert.equal(c.video[0]!.description, undefined);
    assert.equal(c.video[0]!.bitrate, undefined);
    assert.equal(c.video[0]!.track.priority, -1);
    assert.deepEqual(c.audio, []);
  });

  it("accepts uppercase hex in the description", () => {
    const c = parseCatalog('{"video":[{"track":{"name":"v","priority":2},"codec":"av01.0.04M.08","description":"81AB","resolution":{"width":1,"height":1}}]}');
    assert.equal(hex(c.video[0]!.description!), "81ab");
  });

  it("refuses malformed catalogs with a DecodeError", () => {
    const video = (fields: string): string => `{"video":[{"track":{"name":"v","priority":2},"codec":"avc1.64001f",${fields}}]}`;
    for (const bad of [
      "",
      "not json",
      "[]",
      '{"video":{}}',
      '{"video":[1]}',
      video('"resolution":{"width":1}'),
      video('"resolution":{"width":70000,"height":1}'),
      video('"resolution":{"width":1,"height":1},"description":"abc"'),
      video('"resolution":{"width":1,"height":1},"description":"zz"'),
      '{"video":[{"track":{"name":"v","priority":200},"codec":"x","resolution":{"width":1,"height":1}}]}',
      '{"video":[{"track":{"name":"","priority":2},"codec":"x","resolution":{"width":1,"height":1}}]}',
      '{"audio":[{"track":{"name":"a","priority":1},"codec":"opus","sample_rate":96000,"channel_count":2}]}',
      '{"audio":[{"track":{"name":"a","priority":1},"codec":"opus","sample_rate":48000}]}',
    ]) {
      assert.throws(() => parseCatalog(bad), (e: unknown) => e instanceof DecodeError && e.kind === "invalid_value", bad);
    }
    assert.throws(() => parseCatalog(new Uint8Array([0x7b, 0xff, 0x7d])), DecodeError);
  });
});

describe("media frames", () => {
  it("reads the timestamp varint and hands out the payload as a view", () => {
    // The example of moq-media's Frame::decode: 0x4064 is 100 in two bytes.
    const bytes = unhex("4064aabb");
    const f = decodeMediaFrame(bytes);
    assert.equal(f.timestamp, 100);
    assert.equal(hex(f.payload), "aabb");
    assert.equal(f.payload.buffer, bytes.buffer);
    assert.deepEqual(decodeMediaFrame(unhex("25")), { timestamp: 37, payload: new Uint8Array(0) });
  });

  it("round-trips through encodeMediaFrame at every varint size", () => {
    for (const ts of [0, 63, 64, 16383, 16384, 2 ** 30 - 1, 2 ** 30, 1_765_000_000_000_000, Number.MAX_SAFE_INTEGER]) {
      const f = decodeMediaFrame(encodeMediaFrame(ts, unhex("0102")));
      assert.equal(f.timestamp, ts);
      assert.equal(hex(f.payload), "0102");
    }
  });

  it("refuses a frame that ends inside its timestamp, or a timestamp above 2^53 - 1", () => {
    assert.throws(() => decodeMediaFrame(new Uint8Array(0)), (e: unknown) => e instanceof DecodeError && e.kind === "need_more");
    assert.throws(() => decodeMediaFrame(unhex("40")), (e: unknown) => e instanceof DecodeError && e.kind === "need_more");
    assert.throws(() => decodeMediaFrame(unhex("ffffffffffffffff00")), (e: unknown) => e instanceof DecodeError && e.kind === "bounds_exceeded");
  });
});

describe("aacDescription", () => {
  it("builds the AudioSpecificConfig of AAC-LC at the usual rates", () => {
    assert.equal(hex(aacDescription({ codec: "mp4a.40.2", sampleRate: 48000, channelCount: 2 })!), "1190");
    assert.equal(hex(aacDescription({ codec: "mp4a.40.2", sampleRate: 44100, channelCount: 2 })!), "1210");
    assert.equal(hex(aacDescription({ codec: "mp4a.40.2", sampleRate: 48000, channelCount: 1 })!), "1188");
    // HE-AAC (object type 5) at 24 kHz, mono.
    assert.equal(hex(aacDescription({ codec: "mp4a.40.5", sampleRate: 24000, channelCount: 1 })!), "2b08");
  });

  it("writes a rate outside the table in 24 bits, and 8 channels as configuration 7", () => {
    // 00010 1111 <24 bits of 50000> 0010 000: 40 bits.
    assert.equal(hex(aacDescription({ codec: "mp4a.40.2", sampleRate: 50000, channelCount: 2 })!), "178061a810");
    assert.equal(hex(aacDescription({ codec: "mp4a.40.2", sampleRate: 48000, channelCount: 8 })!), "11b8");
  });

  it("is undefined for other codecs", () => {
    assert.equal(aacDescription({ codec: "opus", sampleRate: 48000, channelCount: 2 }), undefined);
    assert.equal(aacDescription({ codec: "mp4a.6b", sampleRate: 48000, channelCount: 2 }), undefined);
  });
});

describe("the live broadcast", () => {
  it("orders ids as moq-media does: numbers by value above anything else", () => {
    const sorted = ["b", "a", "1000", "999", "0999", "20000000000000000000000", "1000a"].sort(compareBroadcastIds);
    assert.deepEqual(sorted, ["1000a", "a", "b", "0999", "999", "1000", "20000000000000000000000"]);
  });

  it("follows the largest announced id, and falls back when it goes", () => {
    const live = new LiveBroadcast(["live", "cam"]);
    assert.equal(live.live, undefined);
    assert.equal(live.update({ path: ["live", "cam", "1000"], active: true }), true);
    // moq-karp announces every track too: the same id, no change.
    assert.equal(live.update({ path: ["live", "cam", "1000", "video1"], active: true }), false);
    assert.equal(live.update({ path: ["live", "other", "5000"], active: true }), false);
    assert.equal(live.update({ path: ["live", "cam"], active: true }), false);
    assert.equal(live.update({ path: ["live", "cam", "2000"], active: true }), true);
    assert.deepEqual(live.live, ["live", "cam", "2000"]);
    assert.equal(live.update({ path: ["live", "cam", "2000"], active: false }), true);
    assert.deepEqual(live.live, ["live", "cam", "1000"]);
    assert.equal(live.update({ path: ["live", "cam", "1000"], active: false }), false);
    assert.equal(live.update({ path: ["live", "cam", "1000", "video1"], active: false }), true);
    assert.equal(live.live, undefined);
  });
});
