/**
 * The send half of a WebTransport stream, as both halves of a session write
 * to it; not part of the public API (index.ts does not export it).
 */
import { makeAbortReason, streamError } from "./transport.js";
/** Writes to one WebTransport send stream. */
export class Sender {
    #writer;
    #done = false;
    constructor(stream) {
        this.#writer = stream.getWriter();
    }
    /** Write bytes (queued in order); rejects with a `MoqError` if the stream failed. */
    async write(bytes) {
        try {
            await this.#writer.write(bytes);
        }
        catch (e) {
            throw streamError(e);
        }
    }
    /** End the stream cleanly (FIN). */
    async finish() {
        if (this.#done)
            return;
        this.#done = true;
        try {
            await this.#writer.close();
        }
        catch {
            // already reset by us or stopped by the peer
        }
    }
    /** Abort the stream (RESET_STREAM with `code`). */
    async reset(code, reason) {
        if (this.#done)
            return;
        this.#done = true;
        try {
            await this.#writer.abort(makeAbortReason(code, reason));
        }
        catch {
            // already closed
        }
    }
}
/** Give up a bidi stream in both directions: RESET_STREAM and STOP_SENDING with `code`. */
export async function resetAndStop(reader, sender, code) {
    await Promise.all([sender.reset(code), reader.cancel(code)]);
}
