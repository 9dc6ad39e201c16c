/**
 * What the page says about its session and subscriptions, and how it keeps the
 * access token out of every text it shows. No DOM here, so the unit tests run it.
 */
import { ErrorCode, MoqError, SessionClosedError, StreamResetError, codeName, redactUrl, refusalReason } from "../src/index.js";
/**
 * `text` with `token` replaced by `<token>` wherever it appears (only a token
 * long enough not to be an ordinary word).
 */
export function maskToken(text, token) {
    const t = token?.trim() ?? "";
    return t.length >= 8 ? text.split(t).join("<token>") : text;
}
/**
 * The relay's reason for a refusal, as sent (the relay never quotes a token in
 * it, and its `?jwt=TOKEN` is advice, not a URL), with the token masked should
 * it appear.
 */
function refusalText(reason, token) {
    return `refused by the relay: ${maskToken(reason, token)}`;
}
/** An error as one line: `Name (code): message`, every `jwt=` value and the token masked. */
export function describeError(e, token) {
    const text = e instanceof MoqError ? `${codeName(e.code)} (${e.code}): ${e.message}` : e instanceof Error ? e.message : String(e);
    return maskToken(redactUrl(text), token);
}
/** The status after connecting failed: a refusal by the relay says so, with its reason. */
export function connectFailedStatus(e, token) {
    const refusal = refusalReason(e);
    if (refusal !== undefined)
        return { text: refusalText(refusal, token), kind: "refused" };
    return { text: `failed: ${describeError(e, token)}`, kind: "error" };
}
/**
 * The status once the session has ended (`reason` is what `session.closed`
 * resolved with): refused by the relay (a close with 16, e.g. publishing outside
 * the token's grants or the token expired), closed by the user or the peer, or
 * the connection lost.
 */
export function closedStatus(reason, token) {
    const refusal = refusalReason(reason);
    if (refusal !== undefined)
        return { text: refusalText(refusal, token), kind: "refused" };
    if (reason instanceof SessionClosedError && reason.code === ErrorCode.Cancel) {
        return { text: `closed: ${maskToken(redactUrl(reason.message), token)}`, kind: "idle" };
    }
    if (reason instanceof SessionClosedError)
        return { text: `closed: ${describeError(reason, token)}`, kind: "error" };
    return { text: `disconnected: ${describeError(reason, token)}`, kind: "error" };
}
/**
 * Why a subscription to `path` failed: a subscribe stream reset with 16 is a
 * path outside the token's grants; anything else is described as it is.
 */
export function subscriptionFailure(path, e, token) {
    if (e instanceof StreamResetError && e.code === ErrorCode.Unauthorized)
        return `not allowed to subscribe to ${path}`;
    return `subscription failed: ${describeError(e, token)}`;
}
