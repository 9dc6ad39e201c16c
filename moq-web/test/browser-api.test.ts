/** The glue to the browser's WebTransport API: abort reasons and connect(). */

import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import {
  ErrorCode,
  MoqError,
  SessionClosedError,
  StreamReader,
  connect,
  makeAbortReason,
  refusalReason,
  type Session,
} from "../src/index.js";
import { fakePair, take, type FakeTransport } from "./fake.js";
import { unhex } from "./helpers.js";

const g = globalThis as Record<string, unknown>;

afterEach(() => {
  delete g.WebTransportError;
  delete g.WebTransport;
});

describe("makeAbortReason", () => {
  it("without WebTransportError: an Error carrying streamErrorCode", () => {
    const r = makeAbortReason(ErrorCode.NotFound, "nope") as Error & { streamErrorCode: number };
    assert.equal(r.streamErrorCode, 13);
    assert.equal(r.message, "nope");
  });

  it("uses the init-dictionary constructor that current browsers implement", () => {
    class InitForm extends Error {
      streamErrorCode: number | null;
      constructor(init: unknown = {}) {
        if (typeof init !== "object" || init === null) throw new TypeError("not a WebTransportErrorInit");
        const i = init as { streamErrorCode?: number; message?: string };
        super(i.message ?? "");
        // octet, clamped, like the browsers
        this.streamErrorCode = i.streamErrorCode === undefined ? null : Math.min(255, Math.max(0, i.streamErrorCode));
      }
    }
    g.WebTransportError = InitForm;
    const r = makeAbortReason(ErrorCode.Decode, "bad");
    assert.ok(r instanceof InitForm);
    assert.equal((r as InitForm).streamErrorCode, 5);
    // Codes beyond an octet are sent as Cancel rather than clamped to another code.
    assert.equal((makeAbortReason(64 + 300) as InitForm).streamErrorCode, 0);
  });

  it("falls back to the (message, options) constructor of the current specification", () => {
    class TwoArgForm extends Error {
      streamErrorCode: number | null;
      constructor(message = "", options: { streamErrorCode?: number } = {}) {
        if (typeof message !== "string") throw new TypeError("message must be a string");
        super(message);
        this.streamErrorCode = options.streamErrorCode ?? null;
      }
    }
    g.WebTransportError = TwoArgForm;
    const r = makeAbortReason(ErrorCode.WrongSize, "short");
    assert.ok(r instanceof TwoArgForm);
    assert.equal((r as TwoArgForm).streamErrorCode, 14);
    assert.equal(r.message, "short");
  });
});

describe("connect", () => {
  it("creates a WebTransport with the certificate hashes and runs the handshake", async () => {
    const [client, server] = fakePair();
    const seen: { url?: string; options?: unknown } = {};
    g.WebTransport = function (this: unknown, url: string, options: unknown): FakeTransport {
      seen.url = url;
      seen.options = options;
      return client;
    };
    const bidi = server.incomingBidirectionalStreams.getReader();
    const connecting = connect("https://relay.example:4443/room", { serverCertificateHashes: ["0a:FF 10", Uint8Array.of(1, 2)] });
    const first = await bidi.read();
    assert.ok(!first.done);
    assert.equal(await take(new StreamReader(first.value.readable), 11), "0001c0000000ff0bad0200");
    await first.value.writable.getWriter().write(unhex("c0000000ff0bad0200"));
    const session = await connecting;
    assert.equal(seen.url, "https://relay.example:4443/room");
    assert.deepEqual(seen.options, {
      serverCertificateHashes: [
        { algorithm: "sha-256", value: Uint8Array.of(0x0a, 0xff, 0x10) },
        { algorithm: "sha-256", value: Uint8Array.of(1, 2) },
      ],
    });
    session.close();
  });

  it("closes the WebTransport when the handshake fails", async () => {
    const [client, server] = fakePair();
    g.WebTransport = function (): FakeTransport {
      return client;
    };
    const bidi = server.incomingBidirectionalStreams.getReader();
    const connecting = connect("https://relay.example/");
    const first = await bidi.read();
    assert.ok(!first.done);
    await first.value.writable.getWriter().abort(Object.assign(new Error("version"), { streamErrorCode: 9 }));
    await assert.rejects(connecting, (e: unknown) => e instanceof MoqError && e.code === 9);
    assert.equal(client.closeInfo?.closeCode, 9);
  });

  /** A fake WebTransport constructor that records the URL it was given. */
  function fakeWebTransport(client: FakeTransport): { url?: string } {
    const seen: { url?: string } = {};
    g.WebTransport = function (this: unknown, url: string): FakeTransport {
      seen.url = url;
      return client;
    };
    return seen;
  }

  /** The server side of the handshake: read SessionClient, answer SessionServer. */
  async function serveHandshake(server: FakeTransport): Promise<void> {
    const first = await server.incomingBidirectionalStreams.getReader().read();
    assert.ok(!first.done);
    assert.equal(await take(new StreamReader(first.value.readable), 11), "0001c0000000ff0bad0200");
    await first.value.writable.getWriter().write(unhex("c0000000ff0bad0200"));
  }

  it("passes the URL's path (the root) and ?jwt= (the token) through unchanged", async () => {
    const [client, server] = fakePair();
    const seen = fakeWebTransport(client);
    const url = "https://relay.example:4443/room/alice?jwt=eyJhbGciOiJFUzI1NiJ9.eyJyb290Ijoicm9vbSJ9.c2ln";
    const [session] = await Promise.all([connect(url), serveHandshake(server)]);
    assert.equal(seen.url, url);
    session.close();
  });

  it("puts the jwt option into the URL's query, replacing a token there", async () => {
    const [client, server] = fakePair();
    const seen = fakeWebTransport(client);
    const [session] = await Promise.all([connect("https://relay.example:4443/room?jwt=old&x=1", { jwt: "eyJ.new.sig" }), serveHandshake(server)]);
    assert.equal(seen.url, "https://relay.example:4443/room?jwt=eyJ.new.sig&x=1");
    session.close();
  });

  it("a relay refusing the session (closed with 16 after the CONNECT) rejects with its code and reason", async () => {
    const [client, server] = fakePair();
    fakeWebTransport(client);
    const reason = 'a token is needed for "/room" (pass ?jwt=TOKEN)';
    const connecting = connect("https://relay.example/room");
    // The relay reads nothing: it closes the session as soon as it has accepted it.
    const first = await server.incomingBidirectionalStreams.getReader().read();
    assert.ok(!first.done);
    server.close({ closeCode: ErrorCode.Unauthorized, reason });
    const err = await connecting.then(
      () => assert.fail("connected"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof SessionClosedError);
    assert.equal(err.code, 16);
    assert.equal(err.reason, reason);
    assert.equal(err.remote, true);
    assert.equal(refusalReason(err), reason);
  });

  it("a session closed before the handshake's stream opens rejects with the close", async () => {
    const [client, server] = fakePair();
    fakeWebTransport(client);
    server.close({ closeCode: ErrorCode.Unauthorized, reason: "invalid token: the signature does not verify" });
    const err = await connect("https://relay.example/room?jwt=x.y.z").catch((e: unknown) => e);
    assert.equal(refusalReason(err), "invalid token: the signature does not verify");
  });

  it("a connection lost during the handshake is a transport error (4), not a refusal", async () => {
    const [client, server] = fakePair();
    fakeWebTransport(client);
    const connecting = connect("https://relay.example/");
    await server.incomingBidirectionalStreams.getReader().read();
    server.lose();
    const err = await connecting.then(
      (s: Session) => s,
      (e: unknown) => e,
    );
    assert.ok(err instanceof MoqError && !(err instanceof SessionClosedError));
    assert.equal(err.code, ErrorCode.WebTransport);
    assert.match(err.message, /Connection lost/);
    assert.equal(refusalReason(err), undefined);
  });

  it("fails clearly where there is no WebTransport", async () => {
    await assert.rejects(connect("https://relay.example/"), /no WebTransport/);
  });
});
