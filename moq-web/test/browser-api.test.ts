/** The glue to the browser's WebTransport API: abort reasons and connect(). */

import assert from "node:assert/strict";
import { afterEach, describe, it } from "node:test";

import { ErrorCode, MoqError, StreamReader, connect, makeAbortReason } from "../src/index.js";
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

  it("fails clearly where there is no WebTransport", async () => {
    await assert.rejects(connect("https://relay.example/"), /no WebTransport/);
  });
});
