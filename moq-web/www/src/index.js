/**
 * moq-web: a browser client for MoQ Transfork (wire version moqf-02) over
 * WebTransport. See README.md for a guide.
 */
export * from "./error.js";
export * from "./codec.js";
export * from "./message.js";
export * from "./stream.js";
export * from "./transport.js";
export * from "./url.js";
export * from "./media.js";
export { Session, connect } from "./session.js";
export { GroupWriter, TrackWriter, sendOrder } from "./publish.js";
export { Announced, STRAGGLER_GRACE_MS, Subscription, } from "./subscribe.js";
