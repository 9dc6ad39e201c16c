/**
 * Incremental readers over a `ReadableStream<Uint8Array>` (a WebTransport
 * receive stream).
 *
 * - {@link StreamReader} decodes control messages one at a time, buffering only
 *   the bytes of the message that is still incomplete (WIRE.md §3.11).
 * - {@link GroupReader} reads a group stream (§4.5): the Group header, then each
 *   frame's size and its payload as the chunks arrive (views into what the
 *   stream delivered; a whole group is never buffered).
 */
import { Limits, concatBytes, decode } from "./codec.js";
import { DecodeError, ErrorCode, MoqError } from "./error.js";
import { readFrame, readGroup } from "./message.js";
import { makeAbortReason, streamError } from "./transport.js";
const EMPTY = new Uint8Array(0);
/**
 * Reads messages and raw bytes from a stream, a chunk at a time.
 *
 * Chunks are kept as the stream delivered them. A message is decoded in place
 * when it lies inside one chunk; only a message that straddles chunks is copied,
 * and then only the bytes it needs (grown geometrically), so raw bytes after it
 * (frame payloads) are still handed out as views of the delivered chunks.
 */
export class StreamReader {
    reader;
    /** The unconsumed start of the data: a view of a chunk, or a small copy. */
    buf = EMPTY;
    /** Later chunks, untouched. */
    queue = [];
    finished = false;
    maxMessageSize;
    constructor(stream, options = {}) {
        this.reader = stream.getReader();
        this.maxMessageSize = options.maxMessageSize ?? Limits.maxMessageSize;
    }
    /** Bytes received but not consumed yet. */
    get buffered() {
        let n = this.buf.length;
        for (const c of this.queue)
            n += c.length;
        return n;
    }
    /** Read one more non-empty chunk into the queue; false when the stream has ended (FIN). */
    async pull() {
        if (this.finished)
            return false;
        for (;;) {
            let result;
            try {
                result = await this.reader.read();
            }
            catch (e) {
                throw streamError(e);
            }
            if (result.done) {
                this.finished = true;
                return false;
            }
            if (result.value.length === 0)
                continue;
            this.queue.push(result.value);
            return true;
        }
    }
    /**
     * Move queued bytes into `buf`: a whole chunk when `buf` is empty (no copy),
     * otherwise at least `want` bytes (and at least as many as `buf` holds).
     * False when nothing is queued.
     */
    grow(want) {
        const next = this.queue[0];
        if (next === undefined)
            return false;
        if (this.buf.length === 0) {
            this.buf = next;
            this.queue.shift();
            return true;
        }
        const n = Math.min(next.length, Math.max(want, this.buf.length));
        this.buf = concatBytes([this.buf, next.subarray(0, n)]);
        if (n === next.length)
            this.queue.shift();
        else
            this.queue[0] = next.subarray(n);
        return true;
    }
    /**
     * Decode the next message with `read`. Throws a {@link DecodeError} when the
     * input is malformed, when the message grows beyond the size limit, or when
     * the stream ends inside it (or before it).
     */
    async read(read) {
        const v = await this.readMaybe(read);
        if (v === undefined)
            throw new DecodeError("need_more", "stream ended before a required message");
        return v;
    }
    /**
     * Like {@link read}, but a stream that ends cleanly where the message would
     * start gives `undefined` (an optional trailing message, §3.11).
     */
    async readMaybe(read) {
        let needed = 1;
        for (;;) {
            if (this.buf.length > 0) {
                const r = decode(this.buf, read);
                if (r.ok) {
                    this.buf = this.buf.subarray(r.size);
                    return r.value;
                }
                if (this.buf.length >= this.maxMessageSize) {
                    throw new DecodeError("limit_exceeded", `message larger than ${this.maxMessageSize} bytes`);
                }
                needed = r.needed;
            }
            if (this.grow(needed))
                continue;
            if (!(await this.pull())) {
                if (this.buf.length === 0)
                    return undefined;
                throw new DecodeError("need_more", "stream ended inside a message");
            }
        }
    }
    /**
     * Up to `max` raw bytes, as a view of what the stream delivered (no copy);
     * `undefined` at the end of the stream.
     */
    async bytes(max) {
        if (this.buf.length === 0 && !this.grow(1)) {
            if (!(await this.pull()))
                return undefined;
            this.grow(1);
        }
        const n = Math.min(max, this.buf.length);
        const out = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        return out;
    }
    /** True once the stream has ended and every byte was consumed. */
    async atEnd() {
        if (this.buffered > 0)
            return false;
        return !(await this.pull());
    }
    /** Stop reading: cancel the stream (STOP_SENDING with `code`). */
    async cancel(code = ErrorCode.Cancel, reason) {
        this.buf = EMPTY;
        this.queue.length = 0;
        this.finished = true;
        try {
            await this.reader.cancel(makeAbortReason(code, reason));
        }
        catch {
            // already errored or closed
        }
    }
}
/**
 * Reads one group stream (§4.5) frame by frame. The stream type and Group
 * header are read by {@link GroupReader.open}; then either use
 * {@link nextFrame} + {@link chunk} (payload pieces as they arrive) or the
 * whole-frame convenience {@link readFrame}.
 */
export class GroupReader {
    stream;
    group;
    /** Payload bytes of the current frame still to be read. */
    left = 0;
    ended = false;
    maxFrameSize;
    constructor(stream, 
    /** The Group header of this stream. */
    group, options = {}) {
        this.stream = stream;
        this.group = group;
        this.maxFrameSize = options.maxFrameSize ?? Limits.maxFrameSize;
    }
    /** Read the stream type (must be group) and the Group header, then return a reader. */
    static async open(stream, options = {}) {
        const reader = stream instanceof StreamReader ? stream : new StreamReader(stream);
        const header = await reader.read((c) => {
            const t = c.varint("stream type");
            if (t !== 0)
                throw new DecodeError("invalid_value", `uni stream type ${t}`);
            return readGroup(c);
        });
        return new GroupReader(reader, header, options);
    }
    /** Subscribe id from the header. */
    get subscribe() {
        return this.group.subscribe;
    }
    /** Group sequence from the header. */
    get sequence() {
        return this.group.sequence;
    }
    /**
     * Start the next frame and return its declared size, or `undefined` when the
     * stream ended cleanly after the previous frame. Unread payload of the
     * current frame is skipped.
     */
    async nextFrame() {
        while (this.left > 0) {
            if ((await this.chunk()) === undefined)
                break;
        }
        if (this.ended)
            return undefined;
        const header = await this.stream.readMaybe(readFrame);
        if (header === undefined) {
            this.ended = true;
            return undefined;
        }
        if (header.size > this.maxFrameSize) {
            throw new DecodeError("limit_exceeded", `frame size ${header.size} over the limit of ${this.maxFrameSize}`);
        }
        this.left = header.size;
        return header.size;
    }
    /**
     * The next piece of the current frame's payload, as a view of the bytes the
     * stream delivered; `undefined` once the frame is complete. A stream that ends
     * inside the payload throws {@link ErrorCode.WrongSize}.
     */
    async chunk() {
        if (this.left === 0)
            return undefined;
        const piece = await this.stream.bytes(this.left);
        if (piece === undefined) {
            this.ended = true;
            throw new MoqError(ErrorCode.WrongSize, `group stream ended ${this.left} bytes short of the frame`);
        }
        this.left -= piece.length;
        return piece;
    }
    /** The whole next frame, or `undefined` at the end of the group. */
    async readFrame() {
        const size = await this.nextFrame();
        if (size === undefined)
            return undefined;
        if (size === 0)
            return EMPTY;
        const first = await this.chunk();
        if (first === undefined)
            return EMPTY;
        if (first.length === size)
            return first;
        const parts = [first];
        for (let p = await this.chunk(); p !== undefined; p = await this.chunk())
            parts.push(p);
        return concatBytes(parts);
    }
    /** Every remaining frame, whole. */
    async *frames() {
        for (let f = await this.readFrame(); f !== undefined; f = await this.readFrame())
            yield f;
    }
    /** Stop reading this group (STOP_SENDING with `code`). */
    async cancel(code = ErrorCode.Cancel) {
        this.ended = true;
        this.left = 0;
        await this.stream.cancel(code);
    }
}
