#!/usr/bin/env node
// The latency our stack adds to live video, measured (a benchmark, not a test):
//
//   ffmpeg -re (720p30 H.264 + AAC) | moq media publish --latency-log ─ moq-relay ─ the page's player
//
// For each video frame: from the wall clock when `moq media publish` read its last byte (its
// --latency-log) to the wall clock when the page's VideoDecoder output it (the player's
// `outputs`). Same machine, so the clocks agree. Also split at the moment the page had read
// the frame's last byte: publish → page (publisher, relay, QUIC, WebTransport, the library)
// and page → decoded (WebCodecs). The first --warmup seconds are left out.
//
// Usage: node e2e/latency.mjs [--seconds 20] [--warmup 3] [--json]
// Needs what the e2e tests need (harness.mjs): www/, moq-relay and moq (MOQ_RELAY, MOQ or
// CARGO_TARGET_DIR), ffmpeg, Chromium. scripts/perf/media_latency.sh builds and runs it.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import { AAC, H264, Harness, binaries, chromiumBinary, percentile, publishMedia, readLatencyLog } from "./harness.mjs";

const { values: opts } = parseArgs({
  options: {
    seconds: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
    json: { type: "boolean", default: false },
  },
});
const seconds = Number(opts.seconds);
const warmup = Number(opts.warmup);

const h = new Harness({ timeoutSeconds: seconds + warmup + 120 });
const name = `latency-${randomBytes(4).toString("hex")}/cam`;

/** p50 / p90 / p99 / max of a list of ms values, as a line. */
function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const f = (v) => v.toFixed(1);
  return { p50: f(percentile(sorted, 50)), p90: f(percentile(sorted, 90)), p99: f(percentile(sorted, 99)), max: f(sorted[sorted.length - 1]) };
}

try {
  const bins = binaries();
  const relay = await h.startRelay("moq-relay", bins.relayBin);
  h.watched.push(relay.proc);
  await h.launch(chromiumBinary(), ["--autoplay-policy=no-user-gesture-required"]);
  const page = await h.newPage();
  const logFile = path.join(h.tempDir("moq-media-latency-"), "publish.log");
  const pub = publishMedia(h, {
    moqBin: bins.moqBin,
    fingerprint: relay.fingerprint,
    url: relay.url,
    name,
    latencyLog: logFile,
    ffmpeg: { seconds: seconds + warmup + 10, video: H264, audio: AAC },
  });
  h.watched.push(pub.ffmpeg, pub.publish);
  await page.goto(`http://127.0.0.1:${relay.port}/?play=${encodeURIComponent(name)}`, { timeout: 15000 });
  await h.waitFor("the first decoded frame", async () => (await page.evaluate(() => globalThis.moqPage.player?.stats.video.decoded ?? 0)) > 0, {
    timeout: 30000,
  });
  await new Promise((resolve) => setTimeout(resolve, (warmup + seconds) * 1000));
  const outputs = await page.evaluate(() => globalThis.moqPage.player.outputs);
  const stats = await page.evaluate(() => globalThis.moqPage.player.stats);
  const log = readLatencyLog(readFileSync(logFile, "utf8"));

  const start = outputs[0].wall + warmup * 1e6;
  const total = [];
  const network = [];
  const decode = [];
  let missing = 0;
  for (const o of outputs) {
    if (o.wall < start) continue;
    const read = log.get(`video1 ${o.timestamp}`);
    if (read === undefined) {
      missing++;
      continue;
    }
    total.push((o.wall - read) / 1000);
    if (Number.isFinite(o.received)) {
      network.push((o.received - read) / 1000);
      decode.push((o.wall - o.received) / 1000);
    }
  }
  if (total.length === 0) throw new Error("no decoded frame matched the publisher's log");
  // Frames the publisher read within the measured span of timestamps that never came out.
  const measured = outputs.filter((o) => o.wall >= start).map((o) => o.timestamp);
  const [lo, hi] = [Math.min(...measured), Math.max(...measured)];
  const decoded = new Set(measured);
  let lost = 0;
  for (const key of log.keys()) {
    const [track, ts] = key.split(" ");
    if (track === "video1" && Number(ts) >= lo && Number(ts) <= hi && !decoded.has(Number(ts))) lost++;
  }
  const result = {
    frames: total.length,
    missing,
    lost,
    dropped: stats.video.dropped,
    skippedGroups: stats.video.skippedGroups,
    total: summary(total),
    publishToPage: summary(network),
    pageToDecoded: summary(decode),
  };
  if (opts.json) console.log(JSON.stringify(result));
  else {
    console.log(`frames measured: ${result.frames} (${seconds} s after ${warmup} s warm-up; ${lost} published but not decoded, ${missing} not in the log, ${result.skippedGroups} groups overtaken by a newer one)`);
    console.log("                      p50     p90     p99     max   (ms)");
    for (const [label, s] of [
      ["publish read -> decoded", result.total],
      ["  publish -> page read", result.publishToPage],
      ["  page read -> decoded", result.pageToDecoded],
    ]) {
      console.log(`${label.padEnd(24)}${s.p50.padStart(6)}  ${s.p90.padStart(6)}  ${s.p99.padStart(6)}  ${s.max.padStart(6)}`);
    }
  }
} finally {
  await h.cleanup();
}
