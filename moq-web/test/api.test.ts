/**
 * The public API shows nothing of the session's internals: the entry point
 * exports no internal class, and the objects a session hands out have only
 * their documented members, at run time as well as in the types.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import * as moq from "../src/index.js";
import { Announced, GroupWriter, LiveBroadcast, Session, Subscription, TrackWriter } from "../src/index.js";
import { fakePair } from "./fake.js";

/** Every property name reachable on `value` (own and inherited, up to Object.prototype). */
function members(value: object): string[] {
  const names = new Set<string>();
  for (let o: object | null = value; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const key of Reflect.ownKeys(o)) if (key !== "constructor") names.add(String(key));
  }
  return [...names].sort();
}

// Type-level: these fail to compile if a constructor or an internal becomes public again.
export function internalsDoNotTypecheck(session: Session, sub: Subscription, track: TrackWriter): void {
  // @ts-expect-error the constructor is private
  new Subscription(0, [], false, () => {});
  // @ts-expect-error the constructor is private
  new Announced([], () => {});
  // @ts-expect-error the constructor is private
  new TrackWriter([], 0, "desc", 0, () => {});
  // @ts-expect-error the constructor is private
  new GroupWriter(0);
  // @ts-expect-error internal
  sub.deliver;
  // @ts-expect-error internal
  track.onGroup;
  // @ts-expect-error internal
  session.unpublish;
}

describe("public API", () => {
  it("exports no internal class or helper", () => {
    for (const name of ["Publisher", "Subscriber", "Sender", "resetAndStop"]) {
      assert.equal(name in moq, false, name);
    }
  });

  it("objects have only their documented members", async () => {
    const [a, b] = fakePair();
    const [client, server] = await Promise.all([Session.connect(a), Session.accept(b)]);
    const track = client.publish(["t"]);
    const group = track.appendGroup();
    const sub = server.subscribe(["t"]);
    const announced = server.announced([]);

    assert.deepEqual(members(client), ["announced", "close", "closed", "info", "publish", "published", "subscribe", "transport"]);
    const statics = (c: object): string[] =>
      Reflect.ownKeys(c)
        .map(String)
        .filter((n) => !["length", "name", "prototype"].includes(n))
        .sort();
    assert.deepEqual(statics(Session), ["accept", "connect"]);
    for (const c of [Subscription, Announced, TrackWriter, GroupWriter]) assert.deepEqual(statics(c), [], c.name);
    assert.deepEqual(members(track), ["abort", "appendGroup", "close", "closed", "error", "expires", "latest", "order", "path", "priority", "writeGroup"]);
    assert.deepEqual(members(group), ["abort", "close", "done", "error", "sequence", "writeFrame"]);
    assert.deepEqual(members(sub), [
      "Symbol(Symbol.asyncIterator)",
      "close",
      "drops",
      "ended",
      "id",
      "info",
      "latestOnly",
      "nextGroup",
      "path",
      "skipped",
    ]);
    assert.deepEqual(members(announced), ["Symbol(Symbol.asyncIterator)", "active", "close", "live", "next", "prefix"]);
    assert.deepEqual(members(new LiveBroadcast(["live"])), ["live", "name", "update"]);

    await sub.info;
    sub.close();
    announced.close();
    client.close();
    await server.closed;
  });
});
