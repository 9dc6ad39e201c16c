// The media player end to end, in real headless Chromium (node --test e2e/player.test.mjs):
//
//   ffmpeg (test pattern + tone, live) | moq media publish ─ moq-relay ─ the page's player
//
// 1. H.264 720p30 + AAC: the page lists the broadcast by name; clicked, it plays it: decodes
//    at least 5 s of video at 1280×720 with WebCodecs, draws it (the canvas is not blank),
//    and decodes and plays audio in sync with it (the audio playing when a frame is drawn is
//    within 50 ms of the frame's time). With MOQ_WEB_PLAYER_SCREENSHOT=FILE it saves a PNG of
//    the player, showing the end-to-end latency from the publisher's --latency-log.
// 2. The publisher restarts under the same name with VP9 + Opus: the page switches to the
//    new broadcast id (new subscriptions, new decoders) and decodes 5 s of it too.
//
// Needs `npm run build` (www/), the cargo-built `moq-relay` and `moq`, ffmpeg and Chromium
// (see harness.mjs). Environment as relay.test.mjs's; MOQ_WEB_PLAYER_TIMEOUT (seconds for the
// whole file, default 150).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { AAC, H264, Harness, OPUS, VP9, binaries, chromiumBinary, findOnPath, publishMedia, readLatencyLog, stop, www } from "./harness.mjs";

const h = new Harness({ timeoutSeconds: Number(process.env.MOQ_WEB_PLAYER_TIMEOUT ?? 150) });
const name = `e2e-${randomBytes(4).toString("hex")}/cam`;
let relay;
let moqBin;
let page;
let logDir;

/** The player's stats on the page. */
const stats = () => page.evaluate(() => globalThis.moqPage.player?.stats);

before(
  async () => {
    if (!existsSync(path.join(www, "index.html")) || !existsSync(path.join(www, "page", "player.js"))) {
      throw new Error(`${www} is not built: run \`npm run build\` in moq-web first`);
    }
    if (!findOnPath("ffmpeg")) throw new Error("no ffmpeg: install it (Debian: apt-get install ffmpeg)");
    const browserBin = chromiumBinary();
    const bins = binaries();
    moqBin = bins.moqBin;
    logDir = h.tempDir("moq-web-player-");
    relay = await h.startRelay("moq-relay", bins.relayBin);
    h.watched.push(relay.proc);
    // Headless: no click will ever come, so let the AudioContext start on its own.
    await h.launch(browserBin, ["--autoplay-policy=no-user-gesture-required"]);
    page = await h.newPage();
  },
  { timeout: 120000 },
);

after(() => h.cleanup(), { timeout: 30000 });

/** Waits until the player has decoded `frames` more video frames of the broadcast numbered `broadcasts`. */
async function decodes(what, { broadcasts, frames, procs }) {
  const start = await h.waitFor(`the player to open broadcast #${broadcasts} (${what})`, async () => {
    const s = await stats();
    return s && s.broadcasts === broadcasts && s.video.decoded > 0 ? s : undefined;
  }, { timeout: 30000, procs });
  return h.waitFor(`${frames} decoded frames of ${what}`, async () => {
    const s = await stats();
    return s.broadcasts === broadcasts && s.video.decoded - start.video.decoded >= frames ? s : undefined;
  }, { timeout: 30000, procs });
}

test("H.264 720p + AAC: at least 5 s of video decoded at 1280x720 and drawn, audio decoded and played", { timeout: 90000 }, async () => {
  const latencyLog = path.join(logDir, "h264.log");
  const pub = publishMedia(h, {
    moqBin,
    fingerprint: relay.fingerprint,
    url: relay.url,
    name,
    latencyLog,
    ffmpeg: { seconds: 20, video: H264, audio: AAC },
  });
  // The broadcast appears by its name in the player's list (from the announcements); a click plays it.
  await page.goto(`http://127.0.0.1:${relay.port}/`, { timeout: 15000 });
  const item = `#broadcasts li[data-name="${name}"]`;
  await h.waitFor(`${name} in the player's list of broadcasts`, async () => (await page.$(item)) !== null, { procs: [pub.ffmpeg, pub.publish] });
  await page.click(item);
  const s = await decodes("the H.264 broadcast", { broadcasts: 1, frames: 150, procs: [pub.ffmpeg, pub.publish] });
  assert.match(s.broadcast, new RegExp(`^${name}/\\d+$`));
  assert.match(s.video.codec, /^avc1\./);
  assert.deepEqual([s.video.width, s.video.height, s.video.decodedWidth, s.video.decodedHeight], [1280, 720, 1280, 720]);
  assert.equal(s.video.errors, 0);
  assert.ok(s.video.drawn > 0, "frames drawn on the canvas");
  assert.equal(s.audio.codec, "mp4a.40.2");
  assert.ok(s.audio.decoded > 0 && s.audio.samples > 0, `audio decoded: ${JSON.stringify(s.audio)}`);
  assert.equal(s.audio.context, "running");
  assert.ok(s.audio.scheduled > 0, `audio played: ${JSON.stringify(s.audio)}`);
  assert.equal(s.audio.errors, 0);
  // Audio and video in sync: the audio playing when a frame is drawn is that frame's time,
  // give or take a frame interval (33 ms) and an animation frame (16 ms).
  const sync = [];
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    sync.push((await stats()).avSyncMs);
  }
  assert.ok(sync.every((v) => typeof v === "number"), `audio ahead of video: ${sync}`);
  const median = [...sync].sort((a, b) => a - b)[2];
  assert.ok(Math.abs(median) < 50, `audio ahead of video by ${median} ms (samples ${sync.map((v) => v.toFixed(1))})`);
  // The canvas shows the test pattern: not one flat colour.
  const colours = await page.evaluate(() => {
    const c = document.getElementById("video");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const seen = new Set();
    for (let i = 0; i < data.length; i += 4 * 997) seen.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
    return [c.width, c.height, seen.size];
  });
  assert.deepEqual(colours.slice(0, 2), [1280, 720]);
  assert.ok(colours[2] > 10, `the canvas has ${colours[2]} colours`);

  // Every decoded frame's timestamp is one the publisher read (same timeline, same units).
  const log = readLatencyLog(readFileSync(latencyLog, "utf8"));
  const outputs = await page.evaluate(() => globalThis.moqPage.player.outputs);
  const joined = outputs.filter((o) => log.has(`video1 ${o.timestamp}`));
  assert.ok(joined.length >= 150 && joined.length === outputs.length, `${joined.length} of ${outputs.length} outputs in the publisher's log`);

  // The publisher's clock track gives the page its reference: a frame of the first video
  // rendition and the wall clock when the publisher read it, which its log has too; with it
  // the page shows the end-to-end latency by itself.
  const reference = await h.waitFor("the clock track's reference on the page", () => page.evaluate(() => globalThis.moqPage.player.reference));
  const logNow = readLatencyLog(readFileSync(latencyLog, "utf8"));
  assert.equal(reference.wall, logNow.get(`video1 ${reference.timestamp}`), `${JSON.stringify(reference)} is not in the publisher's log`);
  await h.waitFor("the latency on the page", async () => /end-to-end latency \d+ ms/.test((await page.textContent("#player-stats")) ?? ""));
  if (process.env.MOQ_WEB_PLAYER_SCREENSHOT) {
    await page.setViewportSize({ width: 900, height: 1000 });
    await page.locator("#player").screenshot({ path: path.resolve(process.env.MOQ_WEB_PLAYER_SCREENSHOT) });
    await page.setViewportSize({ width: 1100, height: 900 });
  }
  await stop(pub.ffmpeg.child);
  await stop(pub.publish.child);
});

test("a restarted publisher (VP9 + Opus, a new id) is followed: new decoders, 5 s decoded", { timeout: 90000 }, async () => {
  const before = await stats();
  assert.equal(before.broadcasts, 1);
  const pub = publishMedia(h, {
    moqBin,
    fingerprint: relay.fingerprint,
    url: relay.url,
    name,
    ffmpeg: { size: "640x360", seconds: 20, video: VP9, audio: OPUS },
  });
  const s = await decodes("the VP9 broadcast", { broadcasts: 2, frames: 150, procs: [pub.ffmpeg, pub.publish] });
  assert.notEqual(s.broadcast, before.broadcast);
  assert.match(s.video.codec, /^vp09\./);
  assert.deepEqual([s.video.width, s.video.height, s.video.decodedWidth, s.video.decodedHeight], [640, 360, 640, 360]);
  assert.equal(s.audio.codec, "opus");
  assert.ok(s.audio.decoded > before.audio.decoded, "Opus decoded");
  assert.equal(s.video.errors + s.audio.errors, 0);
  await stop(pub.ffmpeg.child);
  await stop(pub.publish.child);
});
