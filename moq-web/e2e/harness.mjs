// What the browser end-to-end tests and the media latency script share: the cargo-built
// binaries, Chromium, child processes that never outlive the test (even on failure or a
// signal), polling with a useful message, and a relay serving the page on port 0.

import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const webRoot = path.resolve(here, "..");
export const repoRoot = path.resolve(webRoot, "..");
export const www = path.join(webRoot, "www");

export function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findOnPath(name) {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir !== "" && executable(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** The cargo-built binaries: $MOQ_RELAY / $MOQ, else $CARGO_TARGET_DIR (or target/)/debug; built when missing. */
export function binaries() {
  const targetDir = process.env.CARGO_TARGET_DIR ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR) : path.join(repoRoot, "target");
  const relayBin = process.env.MOQ_RELAY ?? path.join(targetDir, "debug", "moq-relay");
  const moqBin = process.env.MOQ ?? path.join(targetDir, "debug", "moq");
  if (!executable(relayBin) || !executable(moqBin)) {
    if (process.env.MOQ_RELAY || process.env.MOQ) {
      throw new Error(`MOQ_RELAY=${relayBin} / MOQ=${moqBin}: not executable`);
    }
    console.log("# building moq-relay and moq (cargo build --locked --bin moq-relay --bin moq)");
    const built = spawnSync("cargo", ["build", "--locked", "--bin", "moq-relay", "--bin", "moq"], {
      cwd: repoRoot,
      stdio: "inherit",
      timeout: 30 * 60 * 1000,
    });
    if (built.status !== 0) throw new Error(`cargo build failed (${built.error?.message ?? `exit ${built.status}`})`);
  }
  return { relayBin, moqBin };
}

export function chromiumBinary() {
  const found = process.env.CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(executable) ?? findOnPath("chromium");
  if (!found || !executable(found)) {
    throw new Error("no Chromium: install it (Debian: apt-get install chromium chromium-driver) or set CHROMIUM=/path/to/chromium");
  }
  return found;
}

/**
 * The processes and the browser of one test file. Everything started through it is ended
 * by `cleanup()`, and killed when the node process exits or gets SIGINT/SIGTERM.
 */
export class Harness {
  /** Every child process still running. */
  children = new Set();
  /** Processes whose state a timeout message shows (e.g. the relay). */
  watched = [];
  /** The page's console lines. */
  consoleLines = [];
  context = undefined;
  #profile = undefined;
  #dirs = [];

  constructor({ timeoutSeconds }) {
    process.on("exit", () => {
      for (const child of this.children) child.kill("SIGKILL");
    });
    for (const signal of ["SIGINT", "SIGTERM"]) {
      process.once(signal, () => {
        void this.cleanup().finally(() => process.exit(130));
      });
    }
    const limit = timeoutSeconds * 1000;
    const watchdog = setTimeout(() => {
      console.error(`# e2e: still running after ${limit / 1000} s; giving up`);
      for (const proc of this.watched) console.error(describe(proc));
      void this.cleanup().finally(() => process.exit(1));
    }, limit);
    watchdog.unref();
  }

  /** A temporary directory removed by `cleanup()`. */
  tempDir(prefix) {
    const dir = mkdtempSync(path.join(tmpdir(), prefix));
    this.#dirs.push(dir);
    return dir;
  }

  /**
   * Starts a process whose output is kept (the last 64 KiB of each stream, unless `stdout`
   * is "pipe-raw": then its stdout is left to the caller) and which `cleanup()` ends.
   */
  start(name, file, args, { stdin = "ignore", stdout = "keep" } = {}) {
    const child = spawn(file, args, { stdio: [stdin, "pipe", "pipe"], env: { ...process.env, RUST_BACKTRACE: "1" } });
    const proc = { name, child, stdout: Buffer.alloc(0), stderr: "", exit: undefined };
    proc.exited = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        proc.exit = { code, signal };
        this.children.delete(child);
        resolve(proc.exit);
      });
      child.on("error", (err) => {
        proc.exit = { code: null, signal: null, error: err.message };
        this.children.delete(child);
        resolve(proc.exit);
      });
    });
    if (stdout === "keep") child.stdout.on("data", (chunk) => (proc.stdout = Buffer.concat([proc.stdout, chunk]).subarray(-65536)));
    child.stderr.on("data", (chunk) => (proc.stderr = (proc.stderr + chunk).slice(-65536)));
    this.children.add(child);
    return proc;
  }

  /** Polls `probe` until it returns a truthy value, or fails saying what it waited for. */
  async waitFor(what, probe, { timeout = 20000, every = 100, procs = [] } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
      try {
        const value = await probe();
        if (value) return value;
      } catch (e) {
        last = e;
      }
      if (Date.now() > deadline) {
        const details = [last ? `last error: ${last.message ?? last}` : "", ...[...this.watched, ...procs].map(describe)];
        if (this.consoleLines.length) details.push(`page console:\n  ${this.consoleLines.slice(-20).join("\n  ")}`);
        throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}\n${details.filter(Boolean).join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, every));
    }
  }

  /**
   * Starts `moq-relay` on port 0 serving the page, with `extra` arguments; waits for its port
   * (the UDP port it prints, HTTP on the same TCP port) and reads /info.json.
   * Returns `{ proc, port, url, fingerprint, printed }` (`printed`: the fingerprint it printed).
   */
  async startRelay(name, relayBin, extra = []) {
    const proc = this.start(name, relayBin, ["--bind", "127.0.0.1:0", "--tls-self-sign", "127.0.0.1,localhost", "--web", www, "--stats-interval", "0", ...extra]);
    const port = await this.waitFor(
      `${name} to listen (its \`listening on 127.0.0.1:PORT\` and \`HTTP:\` lines)`,
      () => {
        if (proc.exit) throw new Error(`${name} exited`);
        const out = proc.stdout.toString();
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
        return m && /HTTP:/.test(out) ? Number(m[1]) : undefined;
      },
      { timeout: 15000, procs: [proc] },
    );
    const printed = /fingerprint \(SHA-256\): ([0-9a-f]{64})/.exec(proc.stdout.toString())?.[1];
    const info = await this.waitFor(`GET /info.json of ${name}`, async () => (await fetch(`http://127.0.0.1:${port}/info.json`)).json(), {
      timeout: 10000,
      procs: [proc],
    });
    return { proc, port, url: info.url, fingerprint: info.fingerprint, printed };
  }

  /** Launches headless Chromium with a fresh profile; `args` are added to the usual ones. */
  async launch(browserBin, args = []) {
    const { chromium } = await import("playwright-core");
    this.#profile = mkdtempSync(path.join(tmpdir(), "moq-web-e2e-profile-"));
    this.context = await chromium.launchPersistentContext(this.#profile, {
      executablePath: browserBin,
      headless: true,
      timeout: 30000,
      viewport: { width: 1100, height: 900 },
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", ...args],
    });
    return this.context;
  }

  /** A page whose console and errors go to `consoleLines` (with `tag` in front). */
  async newPage(tag = "") {
    const page = this.context.pages().find((p) => p.url() === "about:blank") ?? (await this.context.newPage());
    page.on("console", (msg) => this.consoleLines.push(`${tag}${msg.type()}: ${msg.text()}`));
    page.on("pageerror", (err) => this.consoleLines.push(`${tag}pageerror: ${err.message}`));
    return page;
  }

  /** Closes the browser, ends every process, removes the temporary directories. */
  async cleanup() {
    if (this.context) {
      const closing = this.context.close().catch(() => {});
      this.context = undefined;
      await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5000))]);
    }
    await Promise.all([...this.children].map((child) => stop(child)));
    for (const dir of [this.#profile, ...this.#dirs.splice(0)].filter(Boolean)) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      } catch {
        // a leftover temporary directory is harmless
      }
    }
    this.#profile = undefined;
  }
}

export function describe(proc) {
  const exit = proc.exit ? ` (exited: ${JSON.stringify(proc.exit)})` : " (running)";
  return `${proc.name}${exit}\n  stdout: ${proc.stdout.toString().slice(-1500)}\n  stderr: ${proc.stderr.slice(-1500)}`;
}

/** SIGTERM, then SIGKILL after `grace` ms. */
export async function stop(child, grace = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = new Promise((resolve) => setTimeout(() => resolve("timeout"), grace));
  if ((await Promise.race([gone, timer])) === "timeout") {
    child.kill("SIGKILL");
    await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 2000))]);
  }
}

/**
 * ffmpeg's lavfi test pattern and a 440 Hz tone, encoded live (`-re`) as the fragmented MP4
 * `moq media publish` reads. `video`/`audio` are the codec arguments.
 */
export function ffmpegArgs({ size = "1280x720", rate = 30, seconds, video, audio }) {
  return [
    "-hide_banner",
    "-loglevel",
    "error",
    "-nostdin",
    "-re",
    "-f",
    "lavfi",
    "-i",
    `testsrc2=size=${size}:rate=${rate}`,
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=48000",
    "-t",
    String(seconds),
    ...video,
    ...audio,
    "-f",
    "mp4",
    "-movflags",
    "cmaf+separate_moof+delay_moov+skip_trailer+frag_every_frame",
    "-",
  ];
}

export const H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-pix_fmt", "yuv420p"];
export const AAC = ["-c:a", "aac", "-b:a", "64k", "-ac", "1"];
export const VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1", "-g", "30", "-b:v", "800k", "-pix_fmt", "yuv420p"];
export const OPUS = ["-c:a", "libopus", "-b:a", "48k", "-ac", "2"];

/**
 * `ffmpeg ... | moq media publish URL --path NAME [--latency-log FILE]`, both tracked by
 * the harness. Returns `{ ffmpeg, publish }`.
 */
export function publishMedia(h, { moqBin, ffmpegBin = "ffmpeg", fingerprint, url, name, latencyLog, ffmpeg }) {
  const publish = h.start(
    `moq media publish ${name}`,
    moqBin,
    ["--fingerprint", fingerprint, "media", "publish", url, "--path", name, "--linger", "0", ...(latencyLog ? ["--latency-log", latencyLog] : [])],
    { stdin: "pipe" },
  );
  const enc = h.start(`ffmpeg for ${name}`, ffmpegBin, ffmpegArgs(ffmpeg), { stdout: "pipe-raw" });
  enc.child.stdout.pipe(publish.child.stdin);
  // A publisher that exits first must not make ffmpeg's write fail loudly: ffmpeg ends on EPIPE.
  publish.child.stdin.on("error", () => {});
  return { ffmpeg: enc, publish };
}

/** Reads a `--latency-log` file: a map "track timestamp" → wall µs. */
export function readLatencyLog(text) {
  const map = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const [track, ts, wall] = line.split(" ");
    map.set(`${track} ${ts}`, Number(wall));
  }
  return map;
}

/** The p-th percentile (0..100) of sorted numbers, nearest rank. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}
