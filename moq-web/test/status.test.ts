/** The page's status texts (page/status.ts): refusals said as such, the token never shown. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ErrorCode, MoqError, SessionClosedError, StreamResetError, refusalReason } from "../src/index.js";
import { closedStatus, connectFailedStatus, describeError, maskToken, subscriptionFailure } from "../page/status.js";

const token = "eyJhbGciOiJFUzI1NiJ9.eyJyb290Ijoicm9vbSJ9.c2lnbmF0dXJl";

describe("refusalReason", () => {
  it("is the reason of a close with 16 by the peer, and nothing else", () => {
    assert.equal(refusalReason(new SessionClosedError(16, "token expired", true)), "token expired");
    assert.equal(refusalReason(new SessionClosedError(16, "", true)), "unauthorized");
    assert.equal(refusalReason(new SessionClosedError(16, "ours", false)), undefined);
    assert.equal(refusalReason(new SessionClosedError(0, "bye", true)), undefined);
    assert.equal(refusalReason(new StreamResetError(16)), undefined);
    assert.equal(refusalReason(new MoqError(ErrorCode.WebTransport, "connection lost: Connection lost.")), undefined);
    assert.equal(refusalReason(new Error("Opening handshake failed.")), undefined);
    assert.equal(refusalReason(undefined), undefined);
  });
});

describe("maskToken", () => {
  it("hides the token wherever it appears", () => {
    assert.equal(maskToken(`https://r/room?jwt=${token}`, token), "https://r/room?jwt=<token>");
    assert.equal(maskToken(`bad token ${token} here`, token), "bad token <token> here");
    assert.equal(maskToken(`bad token ${token} here`, undefined), `bad token ${token} here`);
  });

  it("does not garble text with a short token", () => {
    assert.equal(maskToken("a token is needed", "a"), "a token is needed");
  });
});

describe("status texts", () => {
  it("a refusal at connect says so, with the relay's reason", () => {
    const e = new SessionClosedError(16, 'a token is needed for "/room" (pass ?jwt=TOKEN)', true);
    assert.deepEqual(connectFailedStatus(e), { text: 'refused by the relay: a token is needed for "/room" (pass ?jwt=TOKEN)', kind: "refused" });
  });

  it("a failure that is not a refusal is a failure", () => {
    const lost = new MoqError(ErrorCode.WebTransport, "transport error: Opening handshake failed.");
    assert.deepEqual(connectFailedStatus(lost), { text: "failed: WebTransport (4): transport error: Opening handshake failed.", kind: "error" });
    assert.deepEqual(connectFailedStatus(new TypeError("Invalid URL")), { text: "failed: Invalid URL", kind: "error" });
  });

  it("a session closed by the relay with 16 is refused; other ends are said apart", () => {
    assert.deepEqual(closedStatus(new SessionClosedError(16, 'not allowed to publish "room/x"', true)), {
      text: 'refused by the relay: not allowed to publish "room/x"',
      kind: "refused",
    });
    assert.deepEqual(closedStatus(new SessionClosedError(16, "token expired", true)).text, "refused by the relay: token expired");
    assert.deepEqual(closedStatus(new SessionClosedError(0, "closed by the user", false)), { text: "closed: closed by the user", kind: "idle" });
    assert.deepEqual(closedStatus(new SessionClosedError(9, "handshake failed", true)), { text: "closed: Version (9): handshake failed", kind: "error" });
    assert.deepEqual(closedStatus(new MoqError(4, "connection lost: Connection lost.")), {
      text: "disconnected: WebTransport (4): connection lost: Connection lost.",
      kind: "error",
    });
  });

  it("a subscription reset with 16 is not allowed; other failures are described", () => {
    assert.equal(subscriptionFailure("secret/x", new StreamResetError(16)), "not allowed to subscribe to secret/x");
    assert.equal(subscriptionFailure("a", new StreamResetError(13)), "subscription failed: NotFound (13): stream reset by the peer with code 13");
    assert.equal(
      subscriptionFailure("a", new SessionClosedError(16, "token expired", true)),
      "subscription failed: Unauthorized (16): token expired",
    );
  });

  it("never shows the token", () => {
    const other = "eyJvdGhlciI6MX0.eyJyb290IjoiIn0.b3RoZXJzaWc";
    const e = new MoqError(4, `transport error: could not reach https://r/room?jwt=${other} (${token})`);
    const refused = new SessionClosedError(16, `invalid token: ${token}`, true);
    const texts = [
      describeError(e, token),
      connectFailedStatus(e, token).text,
      closedStatus(e, token).text,
      subscriptionFailure("a", e, token),
      connectFailedStatus(refused, token).text,
      closedStatus(refused, token).text,
    ];
    for (const text of texts) {
      assert.ok(!text.includes(token) && !text.includes(other), text);
      assert.ok(!text.includes("c2lnbmF0dXJl") && !text.includes("b3RoZXJzaWc"), text);
    }
    assert.equal(describeError(e, token), "WebTransport (4): transport error: could not reach https://r/room?jwt=<redacted> (<token>)");
  });
});
