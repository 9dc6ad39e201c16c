/**
 * The part of the browser's WebTransport API this library uses, so that tests
 * (and other environments) can supply their own implementation.
 */
import { ErrorCode, MoqError, SessionClosedError } from "./error.js";
/** An error reported by a stream the peer reset or stopped. */
export class StreamResetError extends MoqError {
    constructor(code, message) {
        super(code, message ?? `stream reset by the peer with code ${code}`);
        this.name = "StreamResetError";
    }
}
/**
 * Convert whatever a stream operation rejected with into a {@link MoqError}:
 * our own errors pass through; a `WebTransportError` that carries a
 * `streamErrorCode` (a peer reset / stop, already un-mapped by the browser)
 * becomes a {@link StreamResetError} with that code; anything else is a
 * transport error (code 4).
 */
export function streamError(e) {
    if (e instanceof MoqError)
        return e;
    const code = e?.streamErrorCode;
    if (typeof code === "number")
        return new StreamResetError(code);
    const text = e instanceof Error ? e.message : String(e);
    return new MoqError(ErrorCode.WebTransport, `transport error: ${text}`);
}
/**
 * How `transport` ends, once it does: the peer's session close (what `closed`
 * resolves with: `{closeCode, reason}`, the plain u32 code, WIRE.md §2.4) as a
 * {@link SessionClosedError}, or a {@link MoqError} with code 4 when the
 * connection was lost or failed without one (`closed` rejects). Never rejects.
 * Only meaningful while this side has not closed the session itself.
 */
export function sessionEnd(transport) {
    return transport.closed.then((info) => {
        const ci = info;
        const code = typeof ci?.closeCode === "number" ? ci.closeCode : ErrorCode.Cancel;
        const reason = typeof ci?.reason === "string" ? ci.reason : "";
        return new SessionClosedError(code, reason, true);
    }, (e) => {
        const text = e instanceof Error ? e.message : String(e);
        return new MoqError(ErrorCode.WebTransport, `connection lost: ${text}`);
    });
}
/**
 * The reason object to pass to `abort()` / `cancel()` so the browser puts
 * `code` in the RESET_STREAM / STOP_SENDING frame (mapped as WIRE.md §2.4 by
 * the browser itself).
 *
 * Browsers take the code from a `WebTransportError`'s `streamErrorCode`. The
 * W3C constructor is `new WebTransportError(message, {streamErrorCode})`, but
 * current Chrome and Firefox only implement the earlier
 * `new WebTransportError({streamErrorCode, message})` form, and their
 * `streamErrorCode` is an octet (0..255, clamped). We try the older form, then
 * the newer one; codes above 255 are sent as 0 (Cancel) rather than being
 * clamped to 255, which would name a different error. Outside a browser (no
 * `WebTransportError`) a plain `Error` with a `streamErrorCode` property is used.
 */
export function makeAbortReason(code, message) {
    const wire = code >= 0 && code <= 255 ? code : ErrorCode.Cancel;
    const text = message ?? `moq error ${code}`;
    const Ctor = globalThis.WebTransportError;
    if (Ctor) {
        try {
            const e = new Ctor({ streamErrorCode: wire, message: text });
            if (e.streamErrorCode === wire)
                return e;
        }
        catch {
            // fall through to the newer constructor form
        }
        try {
            return new Ctor(text, { streamErrorCode: wire });
        }
        catch {
            // fall through
        }
    }
    const e = new Error(text);
    e.name = "WebTransportError";
    e.streamErrorCode = wire;
    return e;
}
