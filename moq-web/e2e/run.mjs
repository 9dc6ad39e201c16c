#!/usr/bin/env node
// End-to-end check in headless Chromium: serves this package, opens e2e/scenario.html against a
// relay and waits for its report. Needs `npm run build` first and a Chromium binary.
//
//   node e2e/run.mjs --url https://127.0.0.1:4443/ [--fingerprint HEX] [--track demo/clock]
//                    [--chromium /usr/bin/chromium] [--timeout 120]
//
// Exit code 0 when every step passed, 1 otherwise.

import { spawn } from "node:child_process";
import { mkdtempSync, readFile, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i].replace(/^--/, ""), process.argv[i + 1]);
const relay = args.get("url");
if (!relay) {
  console.error("usage: node e2e/run.mjs --url https://host:port/ [--fingerprint HEX] [--track a/b]");
  process.exit(2);
}
const chromium = args.get("chromium") ?? process.env.CHROMIUM ?? "chromium";
const limit = Number(args.get("timeout") ?? 120) * 1000;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const types = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

let finish;
const reported = new Promise((resolve) => (finish = resolve));
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (req.method === "POST" && url.pathname === "/report") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      res.end("ok");
      finish(JSON.parse(body));
    });
    return;
  }
  const file = path.join(root, path.normalize(decodeURIComponent(url.pathname)));
  if (!file.startsWith(root)) {
    res.writeHead(403).end();
    return;
  }
  readFile(file, (err, data) => {
    if (err) res.writeHead(404).end();
    else res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" }).end(data);
  });
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;

const query = new URLSearchParams({ url: relay });
if (args.get("fingerprint")) query.set("fingerprint", args.get("fingerprint"));
if (args.get("track")) query.set("track", args.get("track"));
const page = `http://127.0.0.1:${port}/e2e/scenario.html?${query}`;

const profile = mkdtempSync(path.join(tmpdir(), "moq-web-e2e-"));
const browser = spawn(chromium, ["--headless", "--no-sandbox", "--disable-gpu", `--user-data-dir=${profile}`, page], {
  stdio: ["ignore", "ignore", "pipe"],
});
let browserLog = "";
browser.stderr.on("data", (c) => (browserLog = (browserLog + c).slice(-4000)));
const exited = new Promise((resolve) => browser.on("exit", (code) => resolve({ exited: code })));

const result = await Promise.race([
  reported,
  exited,
  new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), limit)),
]);
browser.kill();
await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
server.close();
try {
  rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
} catch {
  // a leftover temporary profile is harmless
}

if (result.timeout || result.exited !== undefined) {
  console.error(result.timeout ? "no report before the timeout" : `chromium exited with ${result.exited}`);
  console.error(browserLog);
  process.exit(1);
}
for (const s of result.steps) console.log(`ok   ${s}`);
if (!result.ok) {
  console.log(`FAIL ${result.error}`);
  process.exit(1);
}
console.log("all steps passed");
