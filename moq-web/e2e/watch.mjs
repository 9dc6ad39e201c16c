#!/usr/bin/env node
// Plays a live broadcast in the page's player, in headless Chromium, for a while, and prints
// the player's stats (`moqPage.player.stats`) as one JSON line: a check that a publisher we
// did not write (scripts/media-interop.sh: the published moq-karp CLI) plays in our page.
//
// Usage: node e2e/watch.mjs --page http://127.0.0.1:PORT/ --play NAME [--seconds 6]
//   --page      where a relay serves the page (`moq-relay --web moq-web/www`)
//   --play      the broadcast's name (the player follows its newest id)
//   --seconds   how long to watch once the first frame is decoded (default 6)
// Exits 1 if nothing was decoded within 20 s. CHROMIUM=/path picks the browser.

import { parseArgs } from "node:util";

import { Harness, chromiumBinary } from "./harness.mjs";

const { values: opts } = parseArgs({
  options: {
    page: { type: "string" },
    play: { type: "string" },
    seconds: { type: "string", default: "6" },
  },
});
if (!opts.page || !opts.play) {
  console.error("usage: node e2e/watch.mjs --page URL --play NAME [--seconds N]");
  process.exit(2);
}
const seconds = Number(opts.seconds);
const h = new Harness({ timeoutSeconds: seconds + 90 });
let code = 0;
try {
  // Headless: no click will come, so the AudioContext may start on its own.
  await h.launch(chromiumBinary(), ["--autoplay-policy=no-user-gesture-required"]);
  const page = await h.newPage();
  const url = new URL(opts.page);
  url.searchParams.set("play", opts.play);
  await page.goto(url.toString(), { timeout: 15000 });
  const stats = () => page.evaluate(() => globalThis.moqPage.player?.stats);
  await h.waitFor("the first decoded video frame", async () => (await stats())?.video.decoded > 0, { timeout: 20000 });
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  console.log(JSON.stringify(await stats()));
} catch (err) {
  console.error(`watch: ${err.message ?? err}`);
  for (const line of h.consoleLines.slice(-10)) console.error(`  ${line}`);
  code = 1;
} finally {
  await h.cleanup();
}
process.exit(code);
