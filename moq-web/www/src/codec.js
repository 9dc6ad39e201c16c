/**
 * Primitive encodings of moqf-02 (WIRE.md §3): QUIC varints, biased i8, u8,
 * strings, paths, durations, offset-by-one optionals and extensions.
 *
 * Decoding works on partial input. A decoder either succeeds and says how many
 * bytes it used, or reports that it needs more bytes (and consumed nothing), or
 * throws a {@link DecodeError} for malformed input. Every length or count the
 * peer declares is checked against {@link Limits} before anything is allocated.
 *
 * Numbers: varints are read as JavaScript `number`s. Values above
 * `Number.MAX_SAFE_INTEGER` (2^53 − 1) cannot be represented exactly and are
 * rejected with `bounds_exceeded`, except through the explicit bigint readers
 * ({@link Cursor.varintBig}, {@link decodeVarintBig}). The encoder accepts a
 * `number` up to 2^53 − 1 or a `bigint` up to 2^62 − 1.
 */
import { DecodeError } from "./error.js";
/** Caps on peer-declared sizes and counts (WIRE.md §3.11 recommends having them). */
export const Limits = {
    /** Bytes in one string (a path part). */
    maxStringLength: 4096,
    /** Parts in one path. */
    maxPathParts: 64,
    /** Bytes of all parts of one path together (length prefixes not counted). */
    maxPathBytes: 4096,
    /** Versions offered in one SessionClient. */
    maxVersions: 64,
    /** Entries in one extension map. */
    maxExtensions: 64,
    /** Bytes of one extension payload. */
    maxExtensionSize: 4096,
    /** Default cap on the encoded size of one control message in a stream reader. */
    maxMessageSize: 64 * 1024,
    /** Default cap on the declared size of one frame in a group reader. */
    maxFrameSize: 64 * 1024 * 1024,
};
/** Largest value a varint can hold: 2^62 − 1. */
export const MAX_VARINT = (1n << 62n) - 1n;
/** Thrown inside a decoder when the input ends early; never escapes {@link decode}. */
export class NeedMore {
    needed;
    constructor(needed) {
        this.needed = needed;
    }
}
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();
/** A read position in a byte array. Reads throw {@link NeedMore} past the end. */
export class Cursor {
    buf;
    pos;
    constructor(buf, start = 0) {
        this.buf = buf;
        this.pos = start;
    }
    /** Bytes left after the read position. */
    get remaining() {
        return this.buf.length - this.pos;
    }
    need(n) {
        if (this.remaining < n)
            throw new NeedMore(n - this.remaining);
    }
    /** One raw byte (§3.2). */
    u8() {
        this.need(1);
        return this.buf[this.pos++];
    }
    /** One biased byte holding `value + 128` (§3.3). */
    i8() {
        return this.u8() - 128;
    }
    /** A varint as a bigint, any value up to 2^62 − 1 (§3.1); non-minimal forms accepted. */
    varintBig() {
        this.need(1);
        const first = this.buf[this.pos];
        const len = 1 << (first >> 6);
        this.need(len);
        let v = BigInt(first & 0x3f);
        for (let i = 1; i < len; i++)
            v = (v << 8n) | BigInt(this.buf[this.pos + i]);
        this.pos += len;
        return v;
    }
    /** A varint as a number; values above 2^53 − 1 are `bounds_exceeded`. */
    varint(field = "varint") {
        this.need(1);
        const first = this.buf[this.pos];
        const len = 1 << (first >> 6);
        this.need(len);
        let v = first & 0x3f;
        if (len === 8) {
            // The top 32 bits must leave the value within 2^53 − 1.
            const hi = (v * 2 ** 24 + this.buf[this.pos + 1] * 2 ** 16 + this.buf[this.pos + 2] * 2 ** 8 + this.buf[this.pos + 3]);
            if (hi > 0x1fffff) {
                const big = this.varintBig();
                throw new DecodeError("bounds_exceeded", `${field} ${big} exceeds 2^53-1`);
            }
        }
        for (let i = 1; i < len; i++)
            v = v * 256 + this.buf[this.pos + i];
        this.pos += len;
        return v;
    }
    /** A varint that must fit in a u32 (§3.1: GroupDrop.code). */
    varintU32(field) {
        const v = this.varint(field);
        if (v > 0xffffffff)
            throw new DecodeError("bounds_exceeded", `${field} ${v} exceeds u32`);
        return v;
    }
    /** A varint-prefixed count, checked against `max` before anything is allocated. */
    count(what, max) {
        const n = this.varint(what);
        if (n > max)
            throw new DecodeError("limit_exceeded", `${what} ${n} over the limit of ${max}`);
        return n;
    }
    /** `n` raw bytes as a view into the input (no copy). */
    bytes(n) {
        this.need(n);
        const out = this.buf.subarray(this.pos, this.pos + n);
        this.pos += n;
        return out;
    }
    /** A string (§3.5): varint byte length, then valid UTF-8. */
    string() {
        const len = this.count("string length", Limits.maxStringLength);
        const raw = this.bytes(len);
        try {
            return utf8Decoder.decode(raw);
        }
        catch {
            throw new DecodeError("invalid_string", "string is not valid UTF-8");
        }
    }
    /** A path (§3.7): varint part count, then that many strings. */
    path() {
        const n = this.count("path parts", Limits.maxPathParts);
        const parts = [];
        let total = 0;
        for (let i = 0; i < n; i++) {
            const start = this.pos;
            const len = this.count("string length", Limits.maxStringLength);
            this.pos = start;
            total += len;
            if (total > Limits.maxPathBytes) {
                throw new DecodeError("limit_exceeded", `path bytes ${total} over the limit of ${Limits.maxPathBytes}`);
            }
            parts.push(this.string());
        }
        return parts;
    }
    /** A duration in milliseconds (§3.8). */
    duration() {
        return this.varint("duration");
    }
    /** An offset-by-one optional (§3.9): 0 = absent, v + 1 = v. */
    optional(field) {
        const v = this.varint(field);
        return v === 0 ? null : v - 1;
    }
    /** Extensions (§3.10): count, then (id, payload) pairs; a repeated id is an error. */
    extensions() {
        const n = this.count("extension count", Limits.maxExtensions);
        const out = new Map();
        for (let i = 0; i < n; i++) {
            const id = this.varint("extension id");
            const size = this.count("extension size", Limits.maxExtensionSize);
            const payload = this.bytes(size);
            if (out.has(id))
                throw new DecodeError("duplicate_parameter", `extension ${id} appears twice`);
            out.set(id, payload.slice());
        }
        return out;
    }
}
/** A growable byte buffer for encoding. */
export class Writer {
    buf;
    len = 0;
    constructor(capacity = 64) {
        this.buf = new Uint8Array(capacity);
    }
    reserve(n) {
        if (this.len + n <= this.buf.length)
            return;
        let cap = this.buf.length * 2;
        while (cap < this.len + n)
            cap *= 2;
        const next = new Uint8Array(cap);
        next.set(this.buf.subarray(0, this.len));
        this.buf = next;
    }
    /** The bytes written so far (a copy-free view). */
    finish() {
        return this.buf.subarray(0, this.len);
    }
    u8(v) {
        if (!Number.isInteger(v) || v < 0 || v > 255)
            throw new RangeError(`u8 ${v} out of range`);
        this.reserve(1);
        this.buf[this.len++] = v;
        return this;
    }
    i8(v) {
        if (!Number.isInteger(v) || v < -128 || v > 127)
            throw new RangeError(`i8 ${v} out of range`);
        return this.u8(v + 128);
    }
    /** A varint in its shortest form (§3.1). */
    varint(v) {
        if (typeof v === "number") {
            if (!Number.isSafeInteger(v) || v < 0)
                throw new RangeError(`varint ${v} is not a safe non-negative integer`);
            if (v < 0x40)
                return this.u8(v);
            if (v < 0x4000) {
                this.reserve(2);
                this.buf[this.len++] = 0x40 | (v >> 8);
                this.buf[this.len++] = v & 0xff;
                return this;
            }
            if (v < 0x40000000) {
                this.reserve(4);
                this.buf[this.len++] = 0x80 | (v >>> 24);
                this.buf[this.len++] = (v >>> 16) & 0xff;
                this.buf[this.len++] = (v >>> 8) & 0xff;
                this.buf[this.len++] = v & 0xff;
                return this;
            }
            return this.varint(BigInt(v));
        }
        if (v < 0n || v > MAX_VARINT)
            throw new RangeError(`varint ${v} out of range`);
        if (v < 0x40000000n)
            return this.varint(Number(v));
        this.reserve(8);
        const hi = Number(v >> 32n);
        const lo = Number(v & 0xffffffffn);
        this.buf[this.len++] = 0xc0 | (hi >>> 24);
        this.buf[this.len++] = (hi >>> 16) & 0xff;
        this.buf[this.len++] = (hi >>> 8) & 0xff;
        this.buf[this.len++] = hi & 0xff;
        this.buf[this.len++] = lo >>> 24;
        this.buf[this.len++] = (lo >>> 16) & 0xff;
        this.buf[this.len++] = (lo >>> 8) & 0xff;
        this.buf[this.len++] = lo & 0xff;
        return this;
    }
    bytes(b) {
        this.reserve(b.length);
        this.buf.set(b, this.len);
        this.len += b.length;
        return this;
    }
    string(s) {
        const raw = utf8Encoder.encode(s);
        return this.varint(raw.length).bytes(raw);
    }
    path(p) {
        this.varint(p.length);
        for (const part of p)
            this.string(part);
        return this;
    }
    /** Milliseconds; fractions are truncated (§3.8). */
    duration(ms) {
        if (!(ms >= 0))
            throw new RangeError(`duration ${ms} out of range`);
        return this.varint(Math.trunc(ms));
    }
    optional(v) {
        return this.varint(v === null || v === undefined ? 0 : v + 1);
    }
    extensions(ext) {
        if (!ext)
            return this.varint(0);
        this.varint(ext.size);
        for (const [id, payload] of ext)
            this.varint(id).varint(payload.length).bytes(payload);
        return this;
    }
}
/**
 * Run `read` on `buf` from `offset`: the value and how many bytes it used, or
 * how many more bytes are needed (at least 1; nothing consumed). Malformed input
 * throws {@link DecodeError}.
 */
export function decode(buf, read, offset = 0) {
    const c = new Cursor(buf, offset);
    try {
        const value = read(c);
        return { ok: true, value, size: c.pos - offset };
    }
    catch (e) {
        if (e instanceof NeedMore)
            return { ok: false, needed: Math.max(1, e.needed) };
        throw e;
    }
}
/** Encode with `write` into a fresh byte array. */
export function encode(write) {
    const w = new Writer();
    write(w);
    return w.finish();
}
/** Decode one varint as a number (values above 2^53 − 1 throw `bounds_exceeded`). */
export function decodeVarint(buf, offset = 0) {
    return decode(buf, (c) => c.varint(), offset);
}
/** Decode one varint as a bigint (any value up to 2^62 − 1). */
export function decodeVarintBig(buf, offset = 0) {
    return decode(buf, (c) => c.varintBig(), offset);
}
/** Encode one varint in its shortest form. */
export function encodeVarint(v) {
    return encode((w) => w.varint(v));
}
/** True when `prefix` is a part-wise prefix of `path` (§4.3). */
export function pathHasPrefix(path, prefix) {
    if (prefix.length > path.length)
        return false;
    return prefix.every((p, i) => path[i] === p);
}
/** Part-wise equality of two paths. */
export function pathEquals(a, b) {
    return a.length === b.length && pathHasPrefix(a, b);
}
/** A map key for a path (parts are length-prefixed so distinct paths never collide). */
export function pathKey(p) {
    return p.map((s) => `${s.length}:${s}`).join("/");
}
/** Concatenate byte arrays. */
export function concatBytes(parts) {
    let n = 0;
    for (const p of parts)
        n += p.length;
    const out = new Uint8Array(n);
    let at = 0;
    for (const p of parts) {
        out.set(p, at);
        at += p.length;
    }
    return out;
}
