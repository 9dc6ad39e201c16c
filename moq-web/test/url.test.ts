/** Session URLs: the root in the path, the token in `?jwt=`, and the token kept out of texts. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { redactUrl, sessionUrl, splitToken } from "../src/index.js";

const token = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJyb290Ijoicm9vbSIsImdldCI6WyIiXX0.c2lnbmF0dXJl";

describe("sessionUrl", () => {
  it("puts the root in the path and the token in ?jwt=", () => {
    assert.equal(sessionUrl("https://relay:4443/", { root: "room", jwt: token }), `https://relay:4443/room?jwt=${token}`);
    assert.equal(sessionUrl("https://relay:4443", { root: "/room/alice/" }), "https://relay:4443/room/alice");
  });

  it("leaves the URL's own path and token when the parts are empty or absent", () => {
    const url = "https://relay:4443/lobby?jwt=abc";
    assert.equal(sessionUrl(url), url);
    assert.equal(sessionUrl(url, { root: "", jwt: "" }), url);
    assert.equal(sessionUrl(url, { root: "  ", jwt: undefined }), url);
  });

  it("replaces the URL's path and token, keeping other parameters", () => {
    assert.equal(sessionUrl("https://relay/lobby?x=1&jwt=old", { root: "room", jwt: "new" }), "https://relay/room?x=1&jwt=new");
  });

  it("drops empty path parts and percent-encodes each part, as the relay reads them back", () => {
    assert.equal(sessionUrl("https://relay/", { root: "a//b c/?/#" }), "https://relay/a/b%20c/%3F/%23");
    assert.equal(sessionUrl("https://relay/", { root: "caf\u00e9" }), "https://relay/caf%C3%A9");
  });

  it("throws on text that is not a URL", () => {
    assert.throws(() => sessionUrl("relay room"), TypeError);
  });
});

describe("splitToken", () => {
  it("takes the token out of a URL", () => {
    assert.deepEqual(splitToken(`https://relay:4443/room?jwt=${token}`), { url: "https://relay:4443/room", jwt: token });
    assert.deepEqual(splitToken("https://relay/room?a=1&jwt=t.o.k&b=2"), { url: "https://relay/room?a=1&b=2", jwt: "t.o.k" });
  });

  it("a URL without a token, or with an empty one, has none", () => {
    assert.deepEqual(splitToken("https://relay/room"), { url: "https://relay/room", jwt: undefined });
    assert.deepEqual(splitToken("https://relay/room?jwt="), { url: "https://relay/room", jwt: undefined });
  });
});

describe("redactUrl", () => {
  it("hides every jwt= value, in URLs and in text around them", () => {
    assert.equal(redactUrl(`https://relay:4443/room?jwt=${token}&x=1`), "https://relay:4443/room?jwt=<redacted>&x=1");
    // The value runs to the next `&`, `#`, space or quote: nothing of a token is left.
    assert.equal(redactUrl(`failed to reach https://r/a?x=1&jwt=${token}: refused`), "failed to reach https://r/a?x=1&jwt=<redacted> refused");
    assert.equal(redactUrl(`"https://r/?JWT=${token}"`), '"https://r/?JWT=<redacted>"');
  });

  it("leaves other text alone and is idempotent", () => {
    assert.equal(redactUrl("https://relay:4443/room?x=jwt"), "https://relay:4443/room?x=jwt");
    const once = redactUrl(`https://r/?jwt=${token}`);
    assert.equal(redactUrl(once), once);
  });
});
