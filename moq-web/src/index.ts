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
export {
  Announced,
  GroupWriter,
  STRAGGLER_GRACE_MS,
  Session,
  Subscription,
  TrackWriter,
  connect,
  sendOrder,
  type Announcement,
  type ConnectOptions,
  type PublishOptions,
  type SubscribeOptions,
} from "./session.js";
