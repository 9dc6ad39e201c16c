/**
 * Error codes (WIRE.md §6), their WebTransport mapping (§2.4) and the error
 * classes this library throws.
 */
/** Named error codes of moqf-02 (WIRE.md §6). Application codes are `64 + n`. */
export const ErrorCode = {
    /** Cancelled: the peer ended the session stream, or a request was abandoned. */
    Cancel: 0,
    /** A required extension is missing (never raised by 0.5.0 peers). */
    RequiredExtension: 1,
    /** Any transport error: reset, stop, read/write failure, connection lost. */
    WebTransport: 4,
    /** Any decode failure (truncation, bad enum value, bad UTF-8, limits...). */
    Decode: 5,
    /** No common protocol version. */
    Version: 9,
    /** A stream of a type that is not allowed here (e.g. a second session stream). */
    UnexpectedStream: 10,
    /** An integer did not fit its type. */
    BoundsExceeded: 11,
    /** Something that must be unique was repeated (e.g. an announce for an active path). */
    Duplicate: 12,
    /** Unknown track, group, subscription or announced path. */
    NotFound: 13,
    /** A frame's payload length differs from its declared size. */
    WrongSize: 14,
    /** The peer broke a rule of the protocol. */
    ProtocolViolation: 15,
    /**
     * Access refused (this repository's relay, in the range WIRE.md §6 leaves
     * unassigned): a session without the token its URL path needs, with an
     * invalid or expired one, or publishing outside its grants is closed with it;
     * a subscription outside its grants is reset with it.
     */
    Unauthorized: 16,
};
/** First code of the application range: `App(n)` is `APP_BASE + n`. */
export const APP_BASE = 64;
/** The code for application error `n` (`64 + n`). */
export function appCode(n) {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff - APP_BASE) {
        throw new RangeError(`application error ${n} out of range`);
    }
    return APP_BASE + n;
}
/** A printable name for a code: `NotFound`, `App(3)`, or `Unknown(7)`. */
export function codeName(code) {
    for (const [name, value] of Object.entries(ErrorCode)) {
        if (value === code)
            return name;
    }
    if (code >= APP_BASE)
        return `App(${code - APP_BASE})`;
    return `Unknown(${code})`;
}
const WT_FIRST = 0x52e4a40fa8dbn;
const WT_LAST = 0x52e5ac983162n;
/**
 * The HTTP/3 error code a WebTransport stream error `code` (a u32) is carried in
 * on the wire (WIRE.md §2.4). Browsers apply this mapping themselves; it is
 * exported for tools and tests.
 */
export function toWebTransportCode(code) {
    if (!Number.isInteger(code) || code < 0 || code > 0xffffffff) {
        throw new RangeError(`error code ${code} is not a u32`);
    }
    const n = BigInt(code);
    return WT_FIRST + n + n / 0x1en;
}
/**
 * The inverse of {@link toWebTransportCode}: the u32 code carried by an HTTP/3
 * error code, or `undefined` when the value is outside the WebTransport range or
 * one of its reserved values.
 */
export function fromWebTransportCode(wire) {
    if (wire < WT_FIRST || wire > WT_LAST)
        return undefined;
    const s = wire - WT_FIRST;
    if (s % 0x1fn === 0x1en)
        return undefined;
    return Number(s - s / 0x1fn);
}
/** Any error that carries a moqf-02 error code. */
export class MoqError extends Error {
    /** The wire code (§6) of this error. */
    code;
    constructor(code, message) {
        super(message ?? codeName(code));
        this.name = "MoqError";
        this.code = code;
    }
}
/** Malformed input. Always reported to the peer as {@link ErrorCode.Decode} (5). */
export class DecodeError extends MoqError {
    /** Which kind of malformation. */
    kind;
    constructor(kind, message) {
        super(ErrorCode.Decode, `decode error (${kind}): ${message}`);
        this.name = "DecodeError";
        this.kind = kind;
    }
}
/**
 * The session ended with a WebTransport session close: the code and reason text
 * of its CLOSE_WEBTRANSPORT_SESSION, and which side sent it. A connection lost
 * without such a close (network failure, the peer vanished) is a plain
 * {@link MoqError} with code 4 (WebTransport) instead.
 */
export class SessionClosedError extends MoqError {
    /** The close's reason text as sent (may be empty). */
    reason;
    /** True if the peer closed the session, false if this side did. */
    remote;
    constructor(code, reason, remote) {
        super(code, reason !== "" ? reason : "session closed");
        this.name = "SessionClosedError";
        this.reason = reason;
        this.remote = remote;
    }
}
/**
 * The relay's reason if `e` says it refused this session: the peer closed it
 * with {@link ErrorCode.Unauthorized} (16). `undefined` for anything else (a
 * network failure, another code, a close by this side, a subscription reset
 * with 16, which refuses that subscription only).
 */
export function refusalReason(e) {
    if (!(e instanceof SessionClosedError) || !e.remote || e.code !== ErrorCode.Unauthorized)
        return undefined;
    return e.reason !== "" ? e.reason : "unauthorized";
}
