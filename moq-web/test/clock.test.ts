/** The clock track's frames (page/clock.ts), as `moq media publish` writes them. */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { parseClock } from "../page/clock.js";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("parseClock", () => {
  it("reads the publisher's frame", () => {
    assert.deepEqual(parseClock(bytes('{"timestamp":1000000,"wall":1796544848000123}')), {
      timestamp: 1000000,
      wall: 1796544848000123,
    });
  });

  it("ignores keys it does not know", () => {
    assert.deepEqual(parseClock(bytes('{"wall":5,"timestamp":0,"x":[1]}')), { timestamp: 0, wall: 5 });
  });

  it("refuses what is not that", () => {
    for (const text of ["", "not json", "null", "[1,2]", '{"timestamp":1}', '{"timestamp":"1","wall":2}', '{"timestamp":-1,"wall":2}', '{"timestamp":1,"wall":1e999}']) {
      assert.equal(parseClock(bytes(text)), undefined, text);
    }
  });
});
