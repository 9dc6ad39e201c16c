/**
 * An in-memory stand-in for the browser's WebTransport: two connected
 * endpoints whose streams are TransformStream pairs. Aborting a writable
 * errors the peer's readable with the same reason (like RESET_STREAM), and
 * cancelling a readable errors the peer's writable (like STOP_SENDING), so the
 * `streamErrorCode` of the reason reaches the other side.
 */

import type { BidiStream, WebTransportLike } from "../src/index.js";
import { StreamReader } from "../src/index.js";
import { hex } from "./helpers.js";

function pipe(): TransformStream<Uint8Array, Uint8Array> {
  // Generous buffers on both sides, like a network stack's flow-control window.
  const strategy: QueuingStrategy<Uint8Array> = { highWaterMark: 1 << 20, size: (c) => c.byteLength };
  return new TransformStream<Uint8Array, Uint8Array>({}, strategy, strategy);
}

export interface CloseInfo {
  closeCode: number;
  reason: string;
}

export class FakeTransport implements WebTransportLike {
  peer!: FakeTransport;
  readonly ready = Promise.resolve();
  readonly closed: Promise<CloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<BidiStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  /** Bidi streams this endpoint opened, in order. */
  readonly openedBidi: BidiStream[] = [];
  closeInfo: CloseInfo | undefined;
  /** Set when the connection was lost without a close (see {@link lose}). */
  lost: string | undefined;
  private bidiController!: ReadableStreamDefaultController<BidiStream>;
  private uniController!: ReadableStreamDefaultController<ReadableStream<Uint8Array>>;
  private resolveClosed!: (info: CloseInfo) => void;
  private rejectClosed!: (e: Error) => void;

  constructor() {
    this.closed = new Promise((resolve, reject) => {
      this.resolveClosed = resolve;
      this.rejectClosed = reject;
    });
    this.closed.catch(() => {});
    this.incomingBidirectionalStreams = new ReadableStream<BidiStream>({
      start: (c) => {
        this.bidiController = c;
      },
    });
    this.incomingUnidirectionalStreams = new ReadableStream<ReadableStream<Uint8Array>>({
      start: (c) => {
        this.uniController = c;
      },
    });
  }

  async createBidirectionalStream(): Promise<BidiStream> {
    if (this.closeInfo || this.lost !== undefined) throw new Error("session closed");
    const up = pipe();
    const down = pipe();
    const mine = { readable: down.readable, writable: up.writable };
    this.openedBidi.push(mine);
    this.peer.bidiController.enqueue({ readable: up.readable, writable: down.writable });
    return mine;
  }

  /** The options of every uni stream this endpoint opened, in order. */
  readonly uniOptions: ({ sendOrder?: number } | undefined)[] = [];

  async createUnidirectionalStream(options?: { sendOrder?: number }): Promise<WritableStream<Uint8Array>> {
    if (this.closeInfo || this.lost !== undefined) throw new Error("session closed");
    this.uniOptions.push(options);
    const p = pipe();
    this.peer.uniController.enqueue(p.readable);
    return p.writable;
  }

  close(info: { closeCode?: number; reason?: string } = {}): void {
    const ci = { closeCode: info.closeCode ?? 0, reason: info.reason ?? "" };
    this.shut(ci);
    this.peer.shut(ci);
  }

  /**
   * The connection is lost without a session close (both sides): `closed`
   * rejects, as a browser's does, with a WebTransportError-like error.
   */
  lose(message = "Connection lost."): void {
    this.shut(undefined, message);
    this.peer.shut(undefined, message);
  }

  private shut(info: CloseInfo | undefined, lost?: string): void {
    if (this.closeInfo || this.lost !== undefined) return;
    if (info) {
      this.closeInfo = info;
      this.resolveClosed(info);
    } else {
      this.lost = lost ?? "";
      this.rejectClosed(Object.assign(new Error(lost), { name: "WebTransportError", source: "session", streamErrorCode: null }));
    }
    try {
      this.bidiController.close();
      this.uniController.close();
    } catch {
      // already closed
    }
  }
}

/** Two connected endpoints: [client, server]. */
export function fakePair(): [FakeTransport, FakeTransport] {
  const a = new FakeTransport();
  const b = new FakeTransport();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** Read exactly `n` bytes (hex) from a stream reader; fails if the stream ends first. */
export async function take(reader: StreamReader, n: number): Promise<string> {
  let out = "";
  let left = n;
  while (left > 0) {
    const piece = await reader.bytes(left);
    if (piece === undefined) throw new Error(`stream ended ${left} bytes early (got ${out})`);
    out += hex(piece);
    left -= piece.length;
  }
  return out;
}

/** Resolves after `ms` milliseconds with `undefined`. */
export function sleep(ms: number): Promise<undefined> {
  return new Promise((resolve) => setTimeout(() => resolve(undefined), ms));
}

/** The first value of `p`, or "timeout" if it takes longer than `ms`. */
export async function within<T>(p: Promise<T>, ms = 50): Promise<T | "timeout"> {
  return Promise.race([p, sleep(ms).then(() => "timeout" as const)]);
}

/** The streamErrorCode a rejected stream operation carried. */
export async function rejectionCode(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (e) {
    const code = (e as { streamErrorCode?: unknown; code?: unknown } | null)?.streamErrorCode ?? (e as { code?: unknown })?.code;
    return typeof code === "number" ? code : undefined;
  }
  throw new Error("expected a rejection");
}
