/**
 * The send half of a WebTransport stream, as both halves of a session write
 * to it; not part of the public API (index.ts does not export it).
 */

import type { StreamReader } from "./stream.js";
import { makeAbortReason, streamError } from "./transport.js";

/** Writes to one WebTransport send stream. */
export class Sender {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #done = false;

  constructor(stream: WritableStream<Uint8Array>) {
    this.#writer = stream.getWriter();
  }

  /** Write bytes (queued in order); rejects with a `MoqError` if the stream failed. */
  async write(bytes: Uint8Array): Promise<void> {
    try {
      await this.#writer.write(bytes);
    } catch (e) {
      throw streamError(e);
    }
  }

  /** End the stream cleanly (FIN). */
  async finish(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#writer.close();
    } catch {
      // already reset by us or stopped by the peer
    }
  }

  /** Abort the stream (RESET_STREAM with `code`). */
  async reset(code: number, reason?: string): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    try {
      await this.#writer.abort(makeAbortReason(code, reason));
    } catch {
      // already closed
    }
  }
}

/** Give up a bidi stream in both directions: RESET_STREAM and STOP_SENDING with `code`. */
export async function resetAndStop(reader: StreamReader, sender: Sender, code: number): Promise<void> {
  await Promise.all([sender.reset(code), reader.cancel(code)]);
}
