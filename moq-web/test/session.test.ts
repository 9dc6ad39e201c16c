/**
 * The session over an in-memory WebTransport. The far side is driven by hand
 * at the byte level, so these tests check the exact bytes on every stream.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  ErrorCode,
  MoqError,
  Session,
  SessionClosedError,
  StreamResetError,
  StreamReader,
  encode,
  refusalReason,
  sendOrder,
  writeAnnounce,
  type BidiStream,
} from "../src/index.js";
import { fakePair, rejectionCode, sleep, take, within, type FakeTransport } from "./fake.js";
import { hex, loadVectors, unhex } from "./helpers.js";

const vectors = loadVectors();
function vectorHex(message: string): string {
  const v = vectors.find((x) => x.message === message);
  assert.ok(v, `vector ${message}`);
  return v.hex;
}

interface RawPeer {
  session: Session;
  client: FakeTransport;
  server: FakeTransport;
  /** The server's end of the session stream. */
  control: { reader: StreamReader; writer: WritableStreamDefaultWriter<Uint8Array> };
  /** Bidi streams the client opens, as the server sees them. */
  bidi: ReadableStreamDefaultReader<BidiStream>;
  /** Uni streams the client opens, as the server sees them. */
  uni: ReadableStreamDefaultReader<ReadableStream<Uint8Array>>;
}

/** A client Session against a hand-driven server; checks the handshake bytes. */
async function rawServer(): Promise<RawPeer> {
  const [client, server] = fakePair();
  const bidi = server.incomingBidirectionalStreams.getReader();
  const uni = server.incomingUnidirectionalStreams.getReader();
  const connecting = Session.connect(client);
  const first = await bidi.read();
  assert.ok(!first.done);
  const reader = new StreamReader(first.value.readable);
  assert.equal(await take(reader, 11), "0001c0000000ff0bad0200");
  assert.equal(hex(unhex(vectorHex("stream:session(client->server)"))), "0001c0000000ff0bad0200");
  const writer = first.value.writable.getWriter();
  await writer.write(unhex("c0000000ff0bad0200"));
  const session = await connecting;
  return { session, client, server, control: { reader, writer }, bidi, uni };
}

async function nextBidi(peer: RawPeer): Promise<{ reader: StreamReader; writer: WritableStreamDefaultWriter<Uint8Array> }> {
  const next = await peer.bidi.read();
  assert.ok(!next.done);
  return { reader: new StreamReader(next.value.readable), writer: next.value.writable.getWriter() };
}

async function openBidi(peer: RawPeer, bytes: string): Promise<{ reader: StreamReader; writer: WritableStreamDefaultWriter<Uint8Array> }> {
  const s = await peer.server.createBidirectionalStream();
  const writer = s.writable.getWriter();
  await writer.write(unhex(bytes.replace(/ /g, "")));
  return { reader: new StreamReader(s.readable), writer };
}

async function nextUni(peer: RawPeer): Promise<StreamReader> {
  const next = await peer.uni.read();
  assert.ok(!next.done);
  return new StreamReader(next.value);
}

/** Nothing more ever arrives on the session stream after the handshake. */
async function assertControlQuiet(peer: RawPeer): Promise<void> {
  assert.equal(await within(peer.control.reader.bytes(1), 30), "timeout");
}

describe("handshake", () => {
  it("sends 00 01 c0000000ff0bad02 00 on the first bidi stream and accepts SessionServer", async () => {
    const peer = await rawServer();
    assert.equal(peer.client.openedBidi.length, 1);
    await assertControlQuiet(peer);
    peer.session.close();
  });

  it("fails with Version (9) when the server picks another version, resetting the session stream", async () => {
    const [client, server] = fakePair();
    const bidi = server.incomingBidirectionalStreams.getReader();
    const connecting = Session.connect(client);
    const first = await bidi.read();
    assert.ok(!first.done);
    const reader = new StreamReader(first.value.readable);
    await take(reader, 11);
    await first.value.writable.getWriter().write(unhex("c0000000ff0bad0400"));
    await assert.rejects(connecting, (e: unknown) => e instanceof MoqError && e.code === ErrorCode.Version);
    assert.equal(await rejectionCode(reader.bytes(1)), ErrorCode.Version);
  });

  it("closes the session with Cancel (0) when the peer ends the session stream", async () => {
    const peer = await rawServer();
    await peer.control.writer.close();
    const reason = await peer.session.closed;
    assert.equal(reason.code, ErrorCode.Cancel);
    assert.equal(peer.client.closeInfo?.closeCode, 0);
  });

  it("closes the session with Decode (5) on garbage on the session stream", async () => {
    const peer = await rawServer();
    await peer.control.writer.write(unhex("802625a0"));
    const reason = await peer.session.closed;
    assert.equal(reason.code, ErrorCode.Decode);
    assert.equal(peer.client.closeInfo?.closeCode, 5);
  });

  it("tolerates well-formed Info bytes on the session stream", async () => {
    const peer = await rawServer();
    await peer.control.writer.write(unhex("80010000"));
    assert.equal(await within(peer.session.closed, 30), "timeout");
    peer.session.close();
  });
});

describe("subscriber", () => {
  it("sends the subscribe vector bytes and reads a group that arrives before Info", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["meeting", "1234", "alice"]);
    assert.equal(sub.id, 0);
    const s = await nextBidi(peer);
    const expected = vectorHex("stream:subscribe(sub->pub)");
    assert.equal(await take(s.reader, expected.length / 2), expected);

    // The group stream overtakes the Info (§7.3): it must still be delivered.
    const uni = (await peer.server.createUnidirectionalStream()).getWriter();
    const groupVector = vectorHex("stream:group(pub->sub)");
    await uni.write(unhex(groupVector));
    await uni.close();
    const group = await sub.nextGroup();
    assert.ok(group);
    assert.equal(group.sequence, 7);
    assert.equal(group.subscribe, 0);
    const frames: string[] = [];
    for await (const f of group.frames()) frames.push(hex(f));
    assert.deepEqual(frames, ["68656c6c6f", "", "deadbf"]);

    await s.writer.write(unhex("810147d005"));
    assert.deepEqual(await sub.info, { priority: 1, groupOrder: "desc", groupExpires: 2000, groupLatest: 5 });

    // GroupDrop on the subscribe stream.
    await s.writer.write(unhex("0c000e"));
    await sleep(5);
    assert.deepEqual(sub.drops, [{ sequence: 12, count: 0, code: 14 }]);
    await assertControlQuiet(peer);
    peer.session.close();
  });

  it("numbers subscriptions from 0 upward and sends the options", async () => {
    const peer = await rawServer();
    peer.session.subscribe(["a"]);
    const s0 = await nextBidi(peer);
    assert.equal(await take(s0.reader, 10), "0200010161" + "8001000000");
    const sub1 = peer.session.subscribe(["meeting", "1234", "alice"], { priority: -2, order: "desc", expires: 1500, max: 99 });
    assert.equal(sub1.id, 1);
    const s1 = await nextBidi(peer);
    // Same fields as the Subscribe vector with id 300, but id 1.
    assert.equal(await take(s1.reader, 29), "0201" + "03076d656574696e67043132333405616c696365" + "7e0145dc004064");
    peer.session.close();
  });

  it("reads frames incrementally as they arrive", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"]);
    const s = await nextBidi(peer);
    await take(s.reader, 10);
    await s.writer.write(unhex("80010000"));
    const uni = (await peer.server.createUnidirectionalStream()).getWriter();
    await uni.write(unhex("000003")); // type, id 0, group 3
    await uni.write(unhex("0a6162")); // frame of 10 bytes, first 2 arrive
    const group = await sub.nextGroup();
    assert.ok(group);
    assert.equal(group.sequence, 3);
    assert.equal(await group.nextFrame(), 10);
    assert.equal(hex((await group.chunk())!), "6162");
    const pending = group.chunk();
    assert.equal(await within(pending, 20), "timeout");
    await uni.write(unhex("6364656667686970"));
    assert.equal(hex((await pending)!), "6364656667686970");
    assert.equal(await group.chunk(), undefined);
    await uni.close();
    assert.equal(await group.nextFrame(), undefined);
    peer.session.close();
  });

  it("unsubscribes with FIN and STOP_SENDING 0, and stops late group streams", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"]);
    const s = await nextBidi(peer);
    await take(s.reader, 10);
    await s.writer.write(unhex("80010000"));
    await sub.info;
    sub.close();
    assert.equal(await s.reader.atEnd(), true, "subscriber FIN");
    assert.equal(await rejectionCode(s.writer.closed), ErrorCode.Cancel);
    await sub.ended;
    // A group for the closed id: stopped with Cancel (0).
    const late = (await peer.server.createUnidirectionalStream()).getWriter();
    await late.write(unhex("000001"));
    assert.equal(await rejectionCode(late.closed), ErrorCode.Cancel);
    // A group for an id never used: stopped with NotFound (13).
    const stray = (await peer.server.createUnidirectionalStream()).getWriter();
    await stray.write(unhex("000905"));
    assert.equal(await rejectionCode(stray.closed), ErrorCode.NotFound);
    await assertControlQuiet(peer);
    peer.session.close();
  });

  it("reports a publisher reset as an error with its code", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["nope"]);
    const s = await nextBidi(peer);
    await take(s.reader, 13);
    await s.writer.abort(Object.assign(new Error("not found"), { streamErrorCode: 13 }));
    await assert.rejects(sub.info, (e: unknown) => e instanceof MoqError && e.code === ErrorCode.NotFound);
    await assert.rejects(sub.nextGroup(), (e: unknown) => e instanceof MoqError && e.code === ErrorCode.NotFound);
    peer.session.close();
  });

  it("a subscription refused with Unauthorized (16) fails with that code; the session goes on", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["secret"]);
    const s = await nextBidi(peer);
    await take(s.reader, 15);
    await s.writer.abort(Object.assign(new Error("unauthorized"), { streamErrorCode: 16 }));
    await assert.rejects(sub.info, (e: unknown) => e instanceof StreamResetError && e.code === ErrorCode.Unauthorized);
    // A refused subscription is not a refused session.
    const err = await sub.ended.catch((e: unknown) => e);
    assert.equal(refusalReason(err), undefined);
    assert.equal(await within(peer.session.closed, 30), "timeout");
    peer.session.close();
  });

  it("ends the subscription when the publisher FINs", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"]);
    const s = await nextBidi(peer);
    await take(s.reader, 10);
    await s.writer.write(unhex("80010000"));
    await s.writer.close();
    assert.equal(await s.reader.atEnd(), true, "our side is finished too");
    // A group stream that arrives just after the FIN is still delivered.
    const uni = (await peer.server.createUnidirectionalStream()).getWriter();
    await uni.write(unhex("000009"));
    await uni.close();
    assert.equal((await sub.nextGroup())?.sequence, 9);
    await sub.ended;
    assert.equal(await sub.nextGroup(), undefined);
    peer.session.close();
  });
});

describe("announced", () => {
  it("sends AnnounceInterest and yields full paths", async () => {
    const peer = await rawServer();
    const ann = peer.session.announced(["meeting"]);
    const s = await nextBidi(peer);
    const expected = vectorHex("stream:announce(sub->pub)");
    assert.equal(await take(s.reader, expected.length / 2), expected);
    await s.writer.write(encode((w) => writeAnnounce(w, { status: "active", suffix: ["alice", "video"] })));
    assert.deepEqual(await ann.next(), { path: ["meeting", "alice", "video"], active: true });
    await s.writer.write(unhex("0100")); // active, empty suffix = the prefix itself
    assert.deepEqual(await ann.next(), { path: ["meeting"], active: true });
    await s.writer.write(unhex("02")); // live (0.7+): accepted, not a path change
    await ann.live;
    await s.writer.write(encode((w) => writeAnnounce(w, { status: "ended", suffix: ["alice", "video"] })));
    assert.deepEqual(await ann.next(), { path: ["meeting", "alice", "video"], active: false });
    assert.deepEqual(ann.active, [["meeting"]]);
    await s.writer.close();
    assert.equal(await ann.next(), undefined);
    peer.session.close();
  });

  it("resets with Duplicate (12) on a repeated active and NotFound (13) on an unknown ended", async () => {
    const peer = await rawServer();
    const dup = peer.session.announced([]);
    const s = await nextBidi(peer);
    await take(s.reader, 2);
    await s.writer.write(unhex("01010178" + "01010178"));
    await assert.rejects(
      (async () => {
        for await (const _ of dup) {
          // the first active is fine
        }
      })(),
      (e: unknown) => e instanceof MoqError && e.code === ErrorCode.Duplicate,
    );
    assert.equal(await rejectionCode(s.reader.bytes(1)), ErrorCode.Duplicate);

    const unknown = peer.session.announced([]);
    const s2 = await nextBidi(peer);
    await take(s2.reader, 2);
    await s2.writer.write(unhex("00010178"));
    await assert.rejects(unknown.next(), (e: unknown) => e instanceof MoqError && e.code === ErrorCode.NotFound);
    assert.equal(await rejectionCode(s2.reader.bytes(1)), ErrorCode.NotFound);
    peer.session.close();
  });
});

describe("publisher", () => {
  async function clockPeer() {
    const peer = await rawServer();
    const track = peer.session.publish(["demo", "clock"], { priority: 1, order: "desc", expires: 2000 });
    const g5 = track.appendGroup(5);
    g5.writeFrame("hello");
    g5.writeFrame(new Uint8Array(0));
    return { peer, track, g5 };
  }

  it("answers a subscribe with Info, then the latest group from its first frame, then newer groups (§9)", async () => {
    const { peer, track, g5 } = await clockPeer();
    const s = await openBidi(peer, "02 07 02 0464656d6f 05636c6f636b 80 01 00 00 00");
    assert.equal(await take(s.reader, 5), "810147d005");
    const first = await nextUni(peer);
    assert.equal(await take(first, 10), "0007050568656c6c6f00");
    g5.writeFrame("x");
    assert.equal(await take(first, 2), "0178");
    const g6 = track.appendGroup(); // closes group 5
    assert.equal(await first.atEnd(), true, "group 5 FIN");
    g6.writeFrame("world");
    const second = await nextUni(peer);
    assert.equal(await take(second, 9), "00070605776f726c64");
    g6.close();
    assert.equal(await second.atEnd(), true, "group 6 FIN");

    // Descending order: the newer group is sent first.
    const orders = peer.client.uniOptions.map((o) => o?.sendOrder ?? -1);
    assert.equal(orders.length, 2);
    assert.ok(orders[1]! > orders[0]!, `sendOrder ${orders.join(",")}`);

    // Unsubscribe (FIN): the publisher FINs its side and opens no more groups.
    await s.writer.close();
    assert.equal(await s.reader.atEnd(), true);
    track.writeGroup("late");
    assert.equal(await within(peer.uni.read(), 30), "timeout");
    await assertControlQuiet(peer);
    peer.session.close();
  });

  it("sends Info with latest 0 and waits for the first group of an empty track", async () => {
    const peer = await rawServer();
    const track = peer.session.publish(["empty"]);
    const s = await openBidi(peer, "02 00 01 05 656d707479 80 01 00 00 00");
    assert.equal(await take(s.reader, 4), "80010000");
    track.writeGroup(new Uint8Array([1, 2, 3]));
    const g = await nextUni(peer);
    assert.equal(await take(g, 7), "000000" + "03010203");
    assert.equal(await g.atEnd(), true);
    track.close();
    assert.equal(await s.reader.atEnd(), true, "track end: FIN after the open groups");
    peer.session.close();
  });

  it("resets an unknown subscribe with NotFound (13), both directions", async () => {
    const peer = await rawServer();
    const s = await openBidi(peer, "02 08 01 04 6e6f7065 80 01 00 00 00");
    assert.equal(await rejectionCode(s.reader.bytes(1)), ErrorCode.NotFound);
    assert.equal(await rejectionCode(s.writer.closed), ErrorCode.NotFound);
    peer.session.close();
  });

  it("resets bad streams: type 9 with Decode (5), a second session stream with UnexpectedStream (10)", async () => {
    const peer = await rawServer();
    const bad = await openBidi(peer, "09");
    assert.equal(await rejectionCode(bad.reader.bytes(1)), ErrorCode.Decode);
    const again = await openBidi(peer, "00");
    assert.equal(await rejectionCode(again.reader.bytes(1)), ErrorCode.UnexpectedStream);
    const order = await openBidi(peer, "02 4007 02 0464656d6f 05636c6f636b 80 02 00 00 00");
    assert.equal(await rejectionCode(order.reader.bytes(1)), ErrorCode.Decode);
    peer.session.close();
  });

  it("aborted groups are reset and reported with GroupDrop", async () => {
    const { peer, track, g5 } = await clockPeer();
    const s = await openBidi(peer, "02 07 02 0464656d6f 05636c6f636b 80 01 00 00 00");
    await take(s.reader, 5);
    const first = await nextUni(peer);
    await take(first, 10);
    g5.abort(ErrorCode.WrongSize);
    assert.equal(await rejectionCode(first.bytes(1)), ErrorCode.WrongSize);
    assert.equal(await take(s.reader, 3), "05000e");
    track.abort(64 + 3);
    assert.equal(await rejectionCode(s.reader.bytes(1)), 67);
    peer.session.close();
  });

  it("answers announce interest with actives, then changes", async () => {
    const { peer, track } = await clockPeer();
    const s = await openBidi(peer, "01 01 04 64656d6f");
    assert.equal(await take(s.reader, 8), "010105636c6f636b");
    const other = peer.session.publish(["demo", "other"]);
    peer.session.publish(["else"]);
    assert.equal(await take(s.reader, 8), "0101056f74686572");
    other.close();
    assert.equal(await take(s.reader, 8), "0001056f74686572");
    track.close();
    assert.equal(await take(s.reader, 8), "000105636c6f636b");
    await s.writer.close();
    assert.equal(await s.reader.atEnd(), true);
    peer.session.close();
  });

  it("answers info requests with Info then FIN, unknown paths with NotFound", async () => {
    const { peer } = await clockPeer();
    const s = await openBidi(peer, "04 02 0464656d6f 05636c6f636b");
    assert.equal(await take(s.reader, 5), "810147d005");
    assert.equal(await s.reader.atEnd(), true);
    const missing = await openBidi(peer, "04 01 04 6e6f7065");
    assert.equal(await rejectionCode(missing.reader.bytes(1)), ErrorCode.NotFound);
    peer.session.close();
  });

  it("asks for info with 04 + InfoRequest and reads the answer", async () => {
    const peer = await rawServer();
    const asking = peer.session.info(["demo", "clock"]);
    const s = await nextBidi(peer);
    assert.equal(await take(s.reader, 13), "04020464656d6f05636c6f636b");
    await s.writer.write(unhex("810147d005"));
    await s.writer.close();
    assert.deepEqual(await asking, { priority: 1, groupOrder: "desc", groupExpires: 2000, groupLatest: 5 });
    const missing = peer.session.info(["nope"]);
    const m = await nextBidi(peer);
    await take(m.reader, 7);
    await m.writer.abort(Object.assign(new Error("not found"), { streamErrorCode: 13 }));
    await assert.rejects(missing, (e: unknown) => e instanceof MoqError && e.code === ErrorCode.NotFound);
    peer.session.close();
  });
});

describe("lifecycle", () => {
  it("a closed session fails pending subscriptions and announcements, and refuses new ones", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"]);
    const ann = peer.session.announced([]);
    await nextBidi(peer);
    await nextBidi(peer);
    peer.session.close(64 + 7, "going away");
    await assert.rejects(sub.nextGroup(), (e: unknown) => e instanceof MoqError && e.code === 71);
    await assert.rejects(sub.info, (e: unknown) => e instanceof MoqError && e.code === 71);
    await assert.rejects(ann.next(), (e: unknown) => e instanceof MoqError && e.code === 71);
    assert.equal(peer.client.closeInfo?.closeCode, 71);
    assert.equal(peer.client.closeInfo?.reason, "going away");
    assert.throws(() => peer.session.subscribe(["t"]), MoqError);
    assert.throws(() => peer.session.publish(["t"]), MoqError);
  });

  it("the peer's close with 16 ends the session as a refusal, with its reason", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"]);
    await nextBidi(peer);
    peer.server.close({ closeCode: 16, reason: 'not allowed to publish "x"' });
    const reason = await peer.session.closed;
    assert.ok(reason instanceof SessionClosedError);
    assert.equal(reason.code, ErrorCode.Unauthorized);
    assert.equal(reason.remote, true);
    assert.equal(refusalReason(reason), 'not allowed to publish "x"');
    await assert.rejects(sub.info, (e: unknown) => e === reason);
  });

  it("our own close is not the peer's: no refusal, remote false", async () => {
    const peer = await rawServer();
    peer.session.close(16, "testing");
    const reason = await peer.session.closed;
    assert.ok(reason instanceof SessionClosedError);
    assert.equal(reason.remote, false);
    assert.equal(reason.reason, "testing");
    assert.equal(refusalReason(reason), undefined);
  });

  it("a connection lost without a close ends the session with WebTransport (4)", async () => {
    const peer = await rawServer();
    peer.server.lose();
    const reason = await peer.session.closed;
    assert.ok(!(reason instanceof SessionClosedError));
    assert.equal(reason.code, ErrorCode.WebTransport);
    assert.equal(refusalReason(reason), undefined);
  });

  it("a session stream that fails just before the peer's close reports the close", async () => {
    const peer = await rawServer();
    // A browser may error the streams before it resolves `closed` with the code and reason.
    await peer.control.writer.abort(new Error("session is closing"));
    setTimeout(() => peer.server.close({ closeCode: 16, reason: "token expired" }), 20);
    const reason = await peer.session.closed;
    assert.equal(reason.code, 16);
    assert.equal(refusalReason(reason), "token expired");
  });

  it("ending an announce interest sends FIN and STOP_SENDING 0", async () => {
    const peer = await rawServer();
    const ann = peer.session.announced(["x"]);
    const s = await nextBidi(peer);
    await take(s.reader, 4);
    await s.writer.write(unhex("010101" + "79"));
    assert.deepEqual(await ann.next(), { path: ["x", "y"], active: true });
    ann.close();
    assert.equal(await s.reader.atEnd(), true);
    assert.equal(await rejectionCode(s.writer.closed), ErrorCode.Cancel);
    assert.equal(await ann.next(), undefined);
    peer.session.close();
  });

  it("breaking out of for-await unsubscribes", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"]);
    const s = await nextBidi(peer);
    await take(s.reader, 10);
    await s.writer.write(unhex("80010000"));
    const uni = (await peer.server.createUnidirectionalStream()).getWriter();
    await uni.write(unhex("0000010161"));
    await uni.close();
    for await (const group of sub) {
      assert.equal(group.sequence, 1);
      break;
    }
    assert.equal(await s.reader.atEnd(), true, "FIN after break");
    peer.session.close();
  });

  it("refuses to publish a path twice and to go back in sequence", async () => {
    const peer = await rawServer();
    const track = peer.session.publish(["a", "b"]);
    assert.throws(() => peer.session.publish(["a", "b"]), (e: unknown) => e instanceof MoqError && e.code === ErrorCode.Duplicate);
    track.appendGroup(10);
    assert.throws(() => track.appendGroup(10), RangeError);
    assert.equal(track.appendGroup().sequence, 11);
    track.close();
    // Once closed, the path may be published again.
    peer.session.publish(["a", "b"]).close();
    peer.session.close();
  });
});

describe("publisher, more", () => {
  it("a group stream stopped by the subscriber is reported with GroupDrop code 4", async () => {
    const peer = await rawServer();
    const track = peer.session.publish(["t"]);
    const s = await openBidi(peer, "02 00 01 01 74 80 01 00 00 00");
    assert.equal(await take(s.reader, 4), "80010000");
    const g = track.appendGroup(3);
    g.writeFrame("a");
    const uni = await nextUni(peer);
    assert.equal(await take(uni, 5), "0000030161");
    await uni.cancel(ErrorCode.NotFound);
    g.writeFrame("b"); // the write fails on the stopped stream
    assert.equal(await take(s.reader, 3), "030004");
    peer.session.close();
  });

  it("serves two subscriptions of one track independently", async () => {
    const peer = await rawServer();
    const track = peer.session.publish(["t"]);
    const g0 = track.appendGroup();
    g0.writeFrame("first");
    const a = await openBidi(peer, "02 05 01 01 74 80 01 00 00 00");
    assert.equal(await take(a.reader, 4), "80010000");
    const ua = await nextUni(peer);
    assert.equal(await take(ua, 9), "000500" + "056669727374");
    const b = await openBidi(peer, "02 06 01 01 74 80 00 00 00 00");
    assert.equal(await take(b.reader, 4), "80010000");
    const ub = await nextUni(peer);
    assert.equal(await take(ub, 9), "000600" + "056669727374");
    g0.writeFrame("x");
    assert.equal(await take(ua, 2), "0178");
    assert.equal(await take(ub, 2), "0178");
    // One unsubscribes; the other keeps getting groups.
    await a.writer.close();
    assert.equal(await a.reader.atEnd(), true);
    assert.equal(await rejectionCode(ua.bytes(1)), ErrorCode.Cancel, "open group reset with Cancel");
    track.writeGroup("next");
    assert.equal(await ub.atEnd(), true, "group 0 closed by the new group");
    const ub2 = await nextUni(peer);
    assert.equal(await take(ub2, 8), "000601" + "046e657874");
    assert.equal(await ub2.atEnd(), true);
    assert.equal(await within(peer.uni.read(), 30), "timeout", "nothing for the unsubscribed one");
    peer.session.close();
  });
});

describe("publisher, bursts", () => {
  it("serves every group appended after the subscription, even several at once", async () => {
    const peer = await rawServer();
    const track = peer.session.publish(["t"]);
    track.writeGroup("old");
    track.writeGroup("latest");
    const s = await openBidi(peer, "02 00 01 01 74 80 01 00 00 00");
    assert.equal(await take(s.reader, 4), "80010001");
    const joined = await nextUni(peer);
    assert.equal(await take(joined, 10), "000001" + "066c6174657374");
    for (const text of ["a", "b", "c"]) track.writeGroup(text);
    const got: string[] = [];
    for (let i = 0; i < 3; i++) got.push(await take(await nextUni(peer), 5));
    assert.deepEqual(got, ["0000020161", "0000030162", "0000040163"]);
    peer.session.close();
  });
});

describe("latestOnly", () => {
  it("skips ahead to the newest waiting group and stops older ones", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"], { latestOnly: true });
    const s = await nextBidi(peer);
    await take(s.reader, 10);
    await s.writer.write(unhex("80010000"));
    const open = async (seq: number) => {
      const w = (await peer.server.createUnidirectionalStream()).getWriter();
      await w.write(unhex("0000" + seq.toString(16).padStart(2, "0") + "0161"));
      await w.close();
      return w;
    };
    const w3 = await open(3);
    const w5 = await open(5);
    const w4 = await open(4);
    await sleep(10);
    const g = await sub.nextGroup();
    assert.equal(g?.sequence, 5);
    assert.equal(sub.skipped, 2);
    // These streams were complete (FIN) before they were stopped.
    await Promise.all([w3.closed, w4.closed, w5.closed]);
    // Older than what was delivered: stopped on arrival.
    const late = (await peer.server.createUnidirectionalStream()).getWriter();
    await late.write(unhex("000002"));
    assert.equal(await rejectionCode(late.closed), ErrorCode.Cancel);
    assert.equal(sub.skipped, 3);
    await open(9);
    assert.equal((await sub.nextGroup())?.sequence, 9);
    peer.session.close();
  });

  it("delivers every group in arrival order by default", async () => {
    const peer = await rawServer();
    const sub = peer.session.subscribe(["t"]);
    const s = await nextBidi(peer);
    await take(s.reader, 10);
    for (const seq of [3, 5, 4]) {
      const w = (await peer.server.createUnidirectionalStream()).getWriter();
      await w.write(unhex("0000" + seq.toString(16).padStart(2, "0")));
      await w.close();
    }
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await sub.nextGroup())?.sequence);
    assert.deepEqual(got, [3, 5, 4]);
    assert.equal(sub.skipped, 0);
    peer.session.close();
  });
});

describe("sendOrder", () => {
  it("puts priority first, then the group order", () => {
    assert.ok(sendOrder(1, "desc", 0) > sendOrder(0, "desc", 1000));
    assert.ok(sendOrder(0, "desc", 6) > sendOrder(0, "desc", 5));
    assert.ok(sendOrder(0, "asc", 5) > sendOrder(0, "asc", 6));
    assert.ok(sendOrder(-128, "asc", 0) >= 0);
    assert.ok(Number.isSafeInteger(sendOrder(127, "desc", 2 ** 40)));
  });
});

describe("two sessions", () => {
  it("publish on one side, announce and subscribe on the other", async () => {
    const [a, b] = fakePair();
    const [client, server] = await Promise.all([Session.connect(a), Session.accept(b)]);
    const ann = server.announced(["room"]);
    const track = client.publish(["room", "alice"], { priority: 2 });
    assert.deepEqual(await ann.next(), { path: ["room", "alice"], active: true });

    const sub = server.subscribe(["room", "alice"]);
    assert.deepEqual(await sub.info, { priority: 2, groupOrder: "desc", groupExpires: 0, groupLatest: 0 });
    const big = new Uint8Array(100_000).map((_, i) => i % 251);
    for (let i = 0; i < 3; i++) {
      const g = track.appendGroup();
      g.writeFrame(`frame ${i}`);
      g.writeFrame(big);
      g.close();
      const got = await sub.nextGroup();
      assert.ok(got);
      assert.equal(got.sequence, i);
      assert.equal(new TextDecoder().decode((await got.readFrame())!), `frame ${i}`);
      assert.deepEqual(await got.readFrame(), big);
      assert.equal(await got.readFrame(), undefined);
    }
    track.close();
    assert.deepEqual(await ann.next(), { path: ["room", "alice"], active: false });
    await sub.ended;
    client.close(64 + 1, "bye");
    const reason = await server.closed;
    assert.equal(reason.code, 65);
    assert.equal(reason.message, "bye");
  });
});
