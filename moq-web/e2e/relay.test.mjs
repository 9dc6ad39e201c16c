// End to end through our relay in real headless Chromium (node --test e2e/relay.test.mjs):
//
//   moq-relay --bind 127.0.0.1:0 --tls-self-sign 127.0.0.1,localhost --web www
//   moq clock publish  ─┐
//   moq pub / moq sub   ├─ the relay ─ the page (www/index.html) in Chromium
//
// The page is served by the relay and dials https://127.0.0.1:PORT/ with the certificate's
// SHA-256 from /info.json (serverCertificateHashes). Checks: the page receives clock frames;
// a line typed in the page reaches `moq sub` byte for byte; a track of `moq pub` appears in
// the page's list and goes when that publisher exits; a wrong fingerprint is refused.
//
// Access control, against a second relay that checks tokens (`--auth-key pub.jwk
// --auth-public-subscribe demo`, the key made with `moq token generate`): without a token the
// page is refused at a private root and says why, and at the public root its subscription and
// its publication under a private path are refused; with a token passed through the page's own
// `?jwt=`, it subscribes to a track `moq pub --jwt` publishes and sees its frames, and a
// subscription outside the token's grant says it is not allowed. The token never shows on the
// page.
//
// Needs `npm run build` (www/), the cargo-built `moq-relay` and `moq` (built here with
// `cargo build --locked` when missing), and Chromium. Environment: MOQ_RELAY, MOQ (binaries),
// CARGO_TARGET_DIR, CHROMIUM (browser binary), MOQ_WEB_SCREENSHOT (write a PNG of the page),
// MOQ_WEB_E2E_TIMEOUT (seconds for the whole file, default 240).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";

import { Harness, binaries, chromiumBinary, describe, stop, www } from "./harness.mjs";

const h = new Harness({ timeoutSeconds: Number(process.env.MOQ_WEB_E2E_TIMEOUT ?? 240) });
const run = randomBytes(4).toString("hex");
const clockPath = `e2e-${run}/clock`;
const webPath = `e2e-${run}/web`;
const cliPath = `e2e-${run}/cli`;

let keysDir; // the access-control keys of the second relay
let page;
let url; // https://127.0.0.1:PORT/
let fingerprint;
let authRelay; // the relay that checks tokens: { proc, port, url, fingerprint }
const consoleLines = h.consoleLines;
const start = (...args) => h.start(...args);
const waitFor = (...args) => h.waitFor(...args);

// ---------------------------------------------------------------- the page

const trackItems = () => page.$$eval("#tracks li", (items) => items.map((li) => li.dataset.path));
const subLog = () => page.$$eval("#sub-log div", (lines) => lines.map((line) => line.textContent ?? ""));

// ---------------------------------------------------------------- setup

let moqBin;
const clientArgs = () => ["--fingerprint", fingerprint];

/** Starts `moq-relay` on port 0 serving the page; checks /info.json against what it printed. */
async function startRelay(name, relayBin, extra = []) {
  const relay = await h.startRelay(name, relayBin, extra);
  h.watched.push(relay.proc);
  assert.ok(relay.printed, `${name} prints its certificate fingerprint`);
  assert.equal(relay.url, `https://127.0.0.1:${relay.port}/`);
  assert.equal(relay.fingerprint, relay.printed);
  return relay;
}

/** Runs `moq` to completion (a `moq token` command) and returns its stdout, trimmed. */
function moqOutput(args) {
  const done = spawnSync(moqBin, args, { encoding: "utf8", timeout: 20000 });
  if (done.status !== 0) throw new Error(`moq ${args.join(" ")}: ${done.error?.message ?? `exit ${done.status}`}\n${done.stderr}`);
  return done.stdout.trim();
}

before(
  async () => {
    if (!existsSync(path.join(www, "index.html")) || !existsSync(path.join(www, "page", "app.js"))) {
      throw new Error(`${www} is not built: run \`npm run build\` in moq-web first`);
    }
    const browserBin = chromiumBinary();
    const bins = binaries();
    moqBin = bins.moqBin;

    // An open relay, and one that checks tokens signed with a key made here.
    keysDir = h.tempDir("moq-web-e2e-keys-");
    moqOutput(["token", "generate", "--algorithm", "ES256", "--out", path.join(keysDir, "key.jwk"), "--public", path.join(keysDir, "pub.jwk")]);
    const relays = await Promise.all([
      startRelay("moq-relay", bins.relayBin),
      startRelay("moq-relay (tokens)", bins.relayBin, ["--auth-key", path.join(keysDir, "pub.jwk"), "--auth-public-subscribe", "demo"]),
    ]);
    const port = relays[0].port;
    url = relays[0].url;
    fingerprint = relays[0].fingerprint;
    authRelay = relays[1];

    start("moq clock publish", moqBin, [...clientArgs(), "clock", "publish", url, "--path", clockPath]);

    await h.launch(browserBin);
    page = await h.newPage();
    await page.goto(`http://127.0.0.1:${port}/`, { timeout: 15000 });
  },
  { timeout: 120000 },
);

after(() => h.cleanup(), { timeout: 30000 });

// ---------------------------------------------------------------- the checks

test("the page served by the relay connects with the pinned certificate from /info.json", { timeout: 30000 }, async () => {
  await waitFor("the page to connect", async () => (await page.textContent("#status")) === "connected");
  assert.equal(await page.inputValue("#url"), url);
  assert.equal(await page.inputValue("#fingerprint"), fingerprint);
  assert.equal(await page.evaluate(() => globalThis.moqPage.source), "info.json");
});

test("the page receives at least five clock frames from `moq clock publish` through the relay", { timeout: 60000 }, async () => {
  // The clock appears in the announced list; clicking it subscribes.
  await waitFor(`${clockPath} in the page's track list`, async () => (await trackItems()).includes(clockPath));
  await page.click(`#tracks li[data-path="${clockPath}"]`);
  // Five seconds' frames, whatever the minute groups' first frames among them (a clock
  // started a few seconds before a minute boundary sends a new group's first frame early).
  const frames = await waitFor(
    "five clock frames in the subscriber view",
    async () => {
      const lines = await subLog();
      const frames = lines.map((line) => /^group (\d+) frame (\d+): (".*")$/.exec(line)).filter(Boolean);
      const ticks = frames.filter((m) => Number(m[2]) !== 0).length;
      return ticks >= 5 ? frames.map((m) => ({ group: Number(m[1]), index: Number(m[2]), text: JSON.parse(m[3]) })) : undefined;
    },
    { timeout: 30000 },
  );
  const seconds = new Set();
  for (const f of frames) {
    if (f.index === 0) assert.match(f.text, /^\d{4}-\d\d-\d\d \d\d:\d\d:$/, `first frame of group ${f.group}`);
    else {
      assert.match(f.text, /^[0-5]\d$/, `frame ${f.index} of group ${f.group}`);
      seconds.add(`${f.group}:${f.text}`);
    }
  }
  assert.ok(seconds.size >= 5, `at least five distinct seconds, got ${[...seconds].join(" ")}`);
  assert.match((await page.textContent("#sub-latest")) ?? "", /^\d{4}-\d\d-\d\d \d\d:\d\d:[0-5]\d$/);
  // A late joiner gets the current minute's group from the relay's cache at once; the
  // clock must also go on ticking live: two more seconds after those.
  const times = new Set();
  await waitFor(
    "the clock to tick twice more in the page",
    async () => {
      times.add(await page.textContent("#sub-latest"));
      return times.size >= 3;
    },
    { timeout: 10000, every: 200 },
  );
});

test("lines typed in the page reach `moq sub` byte for byte", { timeout: 60000 }, async () => {
  await page.fill("#pub-path", webPath);
  await page.click("#publish");
  // The relay announces every path to every session, the page's own included.
  await waitFor(`${webPath} announced back to the page`, async () => (await trackItems()).includes(webPath));

  const sub = start("moq sub", moqBin, [...clientArgs(), "sub", url, "--path", webPath]);
  const send = async (line) => {
    await page.fill("#pub-text", line);
    await page.press("#pub-text", "Enter");
  };
  const lines = [`hello from the page ${run}`, "UTF-8: h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c \ud83d\ude80", "  two spaces\tand a tab  ", "", "last"];
  // The first line is the latest group when `moq sub` joins, so it arrives however late.
  await send(lines[0]);
  const first = Buffer.from(`${lines[0]}\n`);
  await waitFor("the first line at `moq sub`", () => sub.stdout.length >= first.length, { timeout: 20000, procs: [sub] });
  assert.deepEqual(sub.stdout.subarray(0, first.length), first);
  // The rest: one line per group, then two lines per group. Each group once the one before
  // has arrived: the track is newest first, so two groups that start a keystroke apart may
  // reach `moq sub` newest first, and a subscriber moves past the older one by design
  // (docs/session.md, "Subscriber side"). What this test checks is the bytes.
  const upTo = (count) => Buffer.from(lines.slice(0, count).map((line) => `${line}\n`).join(""), "utf8");
  const arrived = (count) =>
    waitFor(`the first ${count} lines at \`moq sub\``, () => sub.stdout.length >= upTo(count).length, { timeout: 20000, procs: [sub] });
  await send(lines[1]);
  await arrived(2);
  await send(lines[2]);
  await arrived(3);
  await page.fill("#pub-lines", "2");
  await send(lines[3]);
  await send(lines[4]);
  const expected = upTo(lines.length);
  await arrived(lines.length);
  await new Promise((resolve) => setTimeout(resolve, 300)); // nothing more may follow
  assert.equal(sub.stdout.toString("hex"), expected.toString("hex"));
  await stop(sub.child);
});

test("a track of `moq pub` appears in the page's list and goes when the publisher exits", { timeout: 60000 }, async () => {
  const pub = start("moq pub", moqBin, [...clientArgs(), "pub", url, "--path", cliPath, "--linger", "0"], { stdin: "pipe" });
  pub.child.stdin.write("a line from moq pub\n");
  await waitFor(`${cliPath} in the page's track list`, async () => (await trackItems()).includes(cliPath), { timeout: 20000, procs: [pub] });
  if (process.env.MOQ_WEB_SCREENSHOT) {
    await page.screenshot({ path: path.resolve(process.env.MOQ_WEB_SCREENSHOT), fullPage: true });
  }
  pub.child.stdin.end();
  const exit = await Promise.race([pub.exited, new Promise((resolve) => setTimeout(() => resolve("timeout"), 15000))]);
  assert.notEqual(exit, "timeout", `moq pub did not exit after its input ended\n${describe(pub)}`);
  assert.equal(exit.code, 0, describe(pub));
  await waitFor(`${cliPath} to leave the page's track list`, async () => !(await trackItems()).includes(cliPath), { timeout: 20000 });
  // The clock is still there: only the ended track went.
  assert.ok((await trackItems()).includes(clockPath));
});

test("a page given the wrong certificate fingerprint cannot connect", { timeout: 30000 }, async () => {
  const other = await h.context.newPage();
  try {
    const port = new URL(url).port;
    await other.goto(`http://127.0.0.1:${port}/?fingerprint=${"00".repeat(32)}`, { timeout: 15000 });
    const status = await waitFor("the connection attempt to fail", async () => {
      const text = (await other.textContent("#status")) ?? "";
      return text.startsWith("failed") || text === "connected" ? text : undefined;
    });
    assert.match(status, /^failed/);
  } finally {
    await other.close();
  }
});

// ---------------------------------------------------------------- access control

/** Opens the page of the relay that checks tokens, with `query`; its console goes to `consoleLines`. */
async function openAuthPage(query) {
  const other = await h.context.newPage();
  other.on("console", (msg) => consoleLines.push(`(tokens) ${msg.type()}: ${msg.text()}`));
  other.on("pageerror", (err) => consoleLines.push(`(tokens) pageerror: ${err.message}`));
  await other.goto(`http://127.0.0.1:${authRelay.port}/${query}`, { timeout: 15000 });
  return other;
}

/** The page's status once it leaves "connecting…": `{ text, state }`. */
async function settledStatus(p, what, accept = () => true) {
  return waitFor(what, async () => {
    const status = await p.$eval("#status", (el) => ({ text: el.textContent ?? "", state: el.dataset.state }));
    return status.state !== "connecting" && status.text !== "not connected" && accept(status) ? status : undefined;
  });
}

/** Everything the page shows as text, and every field but the (masked) token field. */
async function shownText(p) {
  return p.evaluate(() => {
    const fields = [...document.querySelectorAll("input")].filter((el) => el.id !== "token").map((el) => el.value);
    return [document.body.innerText, ...fields].join("\n");
  });
}

function sign(...args) {
  return moqOutput(["token", "sign", "--key", path.join(keysDir, "key.jwk"), ...args]);
}


test("without a token, a private root is refused and the page says why", { timeout: 30000 }, async () => {
  const other = await openAuthPage("?root=room");
  try {
    assert.equal(await other.inputValue("#root"), "room");
    const status = await settledStatus(other, "the refused connection's status");
    assert.equal(status.text, 'refused by the relay: a token is needed for "/room" (pass ?jwt=TOKEN)');
    assert.equal(status.state, "refused");
  } finally {
    await other.close();
  }
});

test("without a token, publishing under a private path ends the session as refused", { timeout: 30000 }, async () => {
  // The root "/" is public to subscribe under demo/ only: the session is accepted.
  const other = await openAuthPage("");
  try {
    assert.equal((await settledStatus(other, "the page to connect at the public root")).text, "connected");
    await other.fill("#pub-path", "room/page");
    await other.click("#publish");
    const status = await settledStatus(other, "the session to be closed for publishing", (s) => s.text !== "connected");
    assert.equal(status.text, 'refused by the relay: not allowed to publish "room/page"');
    assert.equal(status.state, "refused");
  } finally {
    await other.close();
  }
});

test("without a token, a subscription under a private path is not allowed; the session goes on", { timeout: 30000 }, async () => {
  const other = await openAuthPage("?track=room/cli");
  try {
    assert.equal((await settledStatus(other, "the page to connect at the public root")).text, "connected");
    await waitFor("the subscription's refusal", async () => (await other.textContent("#sub-info")) === "not allowed to subscribe to room/cli");
    assert.equal(await other.textContent("#status"), "connected");
  } finally {
    await other.close();
  }
});

test("with a token in the page's ?jwt=, the page subscribes to a track of `moq pub --jwt`; outside its grant it may not", { timeout: 60000 }, async () => {
  // The page may subscribe under room/cli; `moq pub` may publish there.
  const pageToken = sign("--root", "room", "--get", "cli", "--expires", "1h");
  const pubToken = sign("--root", "room", "--put", "cli", "--expires", "1h");
  const pub = start(
    "moq pub --jwt",
    moqBin,
    ["--fingerprint", authRelay.fingerprint, "--jwt", pubToken, "pub", `${authRelay.url}room`, "--path", "cli", "--linger", "0"],
    { stdin: "pipe" },
  );
  pub.child.stdin.write(`first line ${run}\n`);
  const other = await openAuthPage(`?root=room&jwt=${encodeURIComponent(pageToken)}`);
  try {
    assert.equal((await settledStatus(other, "the page to connect with its token")).text, "connected");
    assert.equal(await other.inputValue("#token"), pageToken);
    assert.equal(await other.getAttribute("#token", "type"), "password");
    // Announced relative to the session's root, and only what the token lets it subscribe to.
    await waitFor("cli in the page's track list", async () => {
      const items = await other.$$eval("#tracks li", (lis) => lis.map((li) => li.dataset.path));
      return items.includes("cli");
    }, { procs: [pub] });
    await other.click('#tracks li[data-path="cli"]');
    const frames = () => other.$$eval("#sub-log div", (lines) => lines.map((line) => line.textContent ?? ""));
    await waitFor("moq pub's first frame in the page", async () => (await frames()).includes(`group 0 frame 0: "first line ${run}"`), { procs: [pub] });
    pub.child.stdin.write(`second line ${run}\n`);
    await waitFor("moq pub's next frame in the page", async () => (await frames()).includes(`group 0 frame 1: "second line ${run}"`), { procs: [pub] });

    // A path the token does not grant: that subscription is refused, the session goes on.
    await other.fill("#sub-path", "secret");
    await other.click("#subscribe");
    await waitFor("the subscription's refusal", async () => (await other.textContent("#sub-info")) === "not allowed to subscribe to secret");
    assert.equal(await other.textContent("#status"), "connected");

    const shown = await shownText(other);
    for (const token of [pageToken, pubToken]) {
      const signature = token.split(".")[2];
      assert.ok(!shown.includes(signature), "the page shows no token");
      assert.ok(!consoleLines.some((line) => line.includes(signature)), "the page's console shows no token");
    }
  } finally {
    await other.close();
    pub.child.stdin.end();
    await stop(pub.child);
  }
});
