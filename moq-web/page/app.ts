/**
 * The relay's web page: connect, watch announced tracks, subscribe to one,
 * publish one. Served next to the compiled library (see README.md).
 */

import {
  connect,
  sessionUrl,
  splitToken,
  type Announced,
  type GroupReader,
  type GroupWriter,
  type Session,
  type Subscription,
  type TrackWriter,
} from "../src/index.js";
import { Player, type PlayerStats } from "./player.js";
import { closedStatus, connectFailedStatus, describeError as describe, subscriptionFailure, type Status } from "./status.js";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

const ui = {
  url: $<HTMLInputElement>("url"),
  root: $<HTMLInputElement>("root"),
  token: $<HTMLInputElement>("token"),
  fingerprint: $<HTMLInputElement>("fingerprint"),
  connect: $<HTMLButtonElement>("connect"),
  disconnect: $<HTMLButtonElement>("disconnect"),
  status: $<HTMLSpanElement>("status"),
  prefix: $<HTMLInputElement>("prefix"),
  watch: $<HTMLButtonElement>("watch"),
  tracks: $<HTMLUListElement>("tracks"),
  tracksEmpty: $<HTMLParagraphElement>("tracks-empty"),
  subPath: $<HTMLInputElement>("sub-path"),
  subscribe: $<HTMLButtonElement>("subscribe"),
  unsubscribe: $<HTMLButtonElement>("unsubscribe"),
  subInfo: $<HTMLDivElement>("sub-info"),
  subStats: $<HTMLDivElement>("sub-stats"),
  subLog: $<HTMLDivElement>("sub-log"),
  subLatest: $<HTMLDivElement>("sub-latest"),
  pubPath: $<HTMLInputElement>("pub-path"),
  publish: $<HTMLButtonElement>("publish"),
  unpublish: $<HTMLButtonElement>("unpublish"),
  pubText: $<HTMLInputElement>("pub-text"),
  pubLines: $<HTMLInputElement>("pub-lines"),
  send: $<HTMLButtonElement>("send"),
  clock: $<HTMLInputElement>("clock"),
  pubLog: $<HTMLDivElement>("pub-log"),
  playName: $<HTMLInputElement>("play-name"),
  play: $<HTMLButtonElement>("play"),
  stop: $<HTMLButtonElement>("stop"),
  audioOn: $<HTMLButtonElement>("audio-on"),
  broadcasts: $<HTMLUListElement>("broadcasts"),
  broadcastsEmpty: $<HTMLParagraphElement>("broadcasts-empty"),
  video: $<HTMLCanvasElement>("video"),
  playerStatus: $<HTMLDivElement>("player-status"),
  playerStats: $<HTMLDivElement>("player-stats"),
};

interface PageState {
  session: Session | undefined;
  announced: Announced | undefined;
  subscription: Subscription | undefined;
  track: TrackWriter | undefined;
  clockTimer: ReturnType<typeof setInterval> | undefined;
  /** The group typed lines go into when several lines make a group. */
  lineGroup: { group: GroupWriter; lines: number } | undefined;
  /** The media player, while one plays. */
  player: Player | undefined;
  /** Where the relay URL and fingerprint came from: "query", "info.json" or "default". */
  source: string;
}

const state: PageState = {
  session: undefined,
  announced: undefined,
  subscription: undefined,
  track: undefined,
  clockTimer: undefined,
  lineGroup: undefined,
  player: undefined,
  source: "default",
};
// For scripted end-to-end tests.
(globalThis as { moqPage?: PageState }).moqPage = state;

function parsePath(text: string): string[] {
  return text
    .split("/")
    .map((p) => p.trim())
    .filter((p) => p !== "");
}

/** An error as one line, the token masked. */
function describeError(e: unknown): string {
  return describe(e, ui.token.value);
}

function setStatus({ text, kind }: Status): void {
  ui.status.textContent = text;
  ui.status.dataset.state = kind;
}

function log(el: HTMLElement, line: string): void {
  const div = document.createElement("div");
  div.textContent = line;
  el.appendChild(div);
  while (el.childElementCount > 300) el.firstElementChild?.remove();
  el.scrollTop = el.scrollHeight;
}

const textDecoder = new TextDecoder("utf-8", { fatal: true });
function asText(bytes: Uint8Array): string | undefined {
  try {
    return textDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

function showPayload(bytes: Uint8Array): string {
  const text = asText(bytes);
  if (text !== undefined) return JSON.stringify(text);
  const head = Array.from(bytes.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join(" ");
  return `${bytes.length} bytes: ${head}${bytes.length > 24 ? " …" : ""}`;
}

function setConnected(connected: boolean): void {
  ui.connect.disabled = connected;
  ui.disconnect.disabled = !connected;
  ui.watch.disabled = !connected;
  ui.subscribe.disabled = !connected;
  ui.publish.disabled = !connected;
  ui.play.disabled = !connected;
  if (!connected) {
    stopPlayer();
    ui.unsubscribe.disabled = true;
    ui.unpublish.disabled = true;
    ui.send.disabled = true;
    ui.clock.disabled = true;
  }
}

/** A relay started with `--dev` serves its certificate fingerprint over HTTP on the same port. */
async function guessFingerprint(): Promise<void> {
  if (ui.fingerprint.value !== "" || location.protocol !== "http:") return;
  try {
    const res = await fetch("/fingerprint");
    if (res.ok) ui.fingerprint.value = (await res.text()).trim();
  } catch {
    // not served by a relay in development mode
  }
}

/**
 * Dial 127.0.0.1 rather than "localhost": the name may resolve to ::1 first while the relay
 * listens on IPv4 only, and the certificate of `--dev` / `--tls-self-sign` covers the address.
 */
function preferLoopbackAddress(url: string): string {
  try {
    const u = new URL(url);
    if (u.hostname === "localhost") u.hostname = "127.0.0.1";
    return u.toString();
  } catch {
    return url;
  }
}

/**
 * A relay started with `--web DIR` (or `--dev`) serves GET /info.json beside the page:
 * `{"url": "https://HOST:PORT/", "fingerprint": "<sha-256 hex>"}`.
 */
async function relayInfo(): Promise<{ url: string; fingerprint: string } | undefined> {
  if (location.protocol !== "http:" && location.protocol !== "https:") return undefined;
  try {
    const res = await fetch("/info.json", { cache: "no-store" });
    if (!res.ok) return undefined;
    const info = (await res.json()) as { url?: unknown; fingerprint?: unknown };
    if (typeof info.url !== "string" || typeof info.fingerprint !== "string") return undefined;
    return { url: info.url, fingerprint: info.fingerprint };
  } catch {
    return undefined;
  }
}

/** Fills the form; true if the relay described itself (then the page connects at once). */
async function initFields(): Promise<boolean> {
  const params = new URLSearchParams(location.search);
  const host = location.hostname === "" || location.hostname === "localhost" ? "127.0.0.1" : location.hostname;
  const port = location.port || "4443";
  ui.url.value = `https://${host}:${port}/`;
  ui.fingerprint.value = "";
  const info = params.has("url") ? undefined : await relayInfo();
  if (info) {
    ui.url.value = preferLoopbackAddress(info.url);
    ui.fingerprint.value = info.fingerprint;
    state.source = "info.json";
  }
  const url = params.get("url");
  if (url !== null) {
    // A token in the relay URL goes to the token field, which masks it.
    let split: { url: string; jwt: string | undefined } = { url, jwt: undefined };
    try {
      split = splitToken(url);
    } catch {
      // not a URL: left as typed, connecting will say so
    }
    ui.url.value = split.url;
    if (split.jwt !== undefined) ui.token.value = split.jwt;
    state.source = "query";
  }
  // The session's root and token: `?root=room&jwt=TOKEN` on the page's own address.
  ui.root.value = params.get("root") ?? "";
  const jwt = params.get("jwt");
  if (jwt !== null) ui.token.value = jwt;
  const fingerprint = params.get("fingerprint");
  if (fingerprint !== null) ui.fingerprint.value = fingerprint;
  ui.prefix.value = params.get("prefix") ?? "";
  ui.subPath.value = params.get("track") ?? "";
  ui.playName.value = params.get("play") ?? "";
  ui.pubPath.value = params.get("publish") ?? `web/${Math.random().toString(36).slice(2, 8)}`;
  const lines = Number(params.get("lines") ?? "1");
  ui.pubLines.value = String(Number.isSafeInteger(lines) && lines >= 1 ? lines : 1);
  return info !== undefined && params.get("connect") !== "0";
}

async function doConnect(): Promise<void> {
  setStatus({ text: "connecting…", kind: "connecting" });
  ui.connect.disabled = true;
  try {
    await guessFingerprint();
    const hashes = ui.fingerprint.value.trim() === "" ? [] : [ui.fingerprint.value.trim()];
    // The root is the URL's path; the token goes into its query (`?jwt=`).
    const url = sessionUrl(ui.url.value.trim(), { root: ui.root.value });
    const session = await connect(url, { serverCertificateHashes: hashes, jwt: ui.token.value.trim() });
    state.session = session;
    setStatus({ text: "connected", kind: "connected" });
    setConnected(true);
    void session.closed.then((reason) => {
      if (state.session !== session) return;
      state.session = undefined;
      stopClock();
      setConnected(false);
      setStatus(closedStatus(reason, ui.token.value));
    });
    watchTracks();
    // `?connect&track=a/b` subscribes at once, `?connect&publish=a/b&clock` publishes a
    // clock at once (handy for links and scripted tests).
    const params = new URLSearchParams(location.search);
    if (params.has("track") && ui.subPath.value !== "") void doSubscribe();
    if (params.has("play") && ui.playName.value !== "") startPlayer();
    if (params.has("publish") && params.has("clock")) {
      doPublish();
      ui.clock.checked = true;
      startClock();
    }
  } catch (e) {
    setStatus(connectFailedStatus(e, ui.token.value));
    ui.connect.disabled = false;
  }
}

function renderTracks(): void {
  ui.tracks.replaceChildren();
  const paths = state.announced?.active ?? [];
  const sorted = paths.map((p) => p.join("/")).sort();
  for (const name of sorted) {
    const li = document.createElement("li");
    li.textContent = name;
    li.dataset.path = name;
    li.setAttribute("aria-selected", String(name === ui.subPath.value));
    li.addEventListener("click", () => {
      ui.subPath.value = name;
      void doSubscribe();
    });
    ui.tracks.appendChild(li);
  }
  ui.tracksEmpty.hidden = sorted.length > 0;
  renderBroadcasts(paths);
}

/**
 * The media broadcasts among the announced paths: a broadcast is `name/<id>` with a numeric
 * id (docs/media.md), so a path's parts before its first all-digit part name one.
 */
function broadcastNames(paths: string[][]): string[] {
  const names = new Set<string>();
  for (const p of paths) {
    const i = p.findIndex((part, index) => index > 0 && /^\d+$/.test(part));
    if (i > 0) names.add(p.slice(0, i).join("/"));
  }
  return [...names].sort();
}

function renderBroadcasts(paths: string[][]): void {
  ui.broadcasts.replaceChildren();
  const names = broadcastNames(paths);
  for (const name of names) {
    const li = document.createElement("li");
    li.textContent = name;
    li.dataset.name = name;
    li.setAttribute("aria-selected", String(state.player !== undefined && state.player.name.join("/") === name));
    li.addEventListener("click", () => {
      ui.playName.value = name;
      startPlayer();
    });
    ui.broadcasts.appendChild(li);
  }
  ui.broadcastsEmpty.hidden = names.length > 0;
}

const ms = (v: number | undefined): string => (v === undefined ? "–" : `${v.toFixed(0)} ms`);

/** The player's numbers as a few lines of text. */
function describePlayer(s: PlayerStats): string {
  const v = s.video;
  const a = s.audio;
  const latency =
    s.latencyMs !== undefined
      ? `end-to-end latency ${ms(s.latencyMs)}`
      : "end-to-end latency unknown (media timestamps carry no wall clock; see docs/benchmarks.md)";
  return [
    `broadcast ${s.broadcast || "–"}${s.broadcasts > 1 ? ` (${s.broadcasts - 1} restart${s.broadcasts > 2 ? "s" : ""} followed)` : ""}`,
    `video ${v.codec || "–"} ${v.width}×${v.height}, decoded ${v.decodedWidth}×${v.decodedHeight}: ${v.decoded} decoded, ${v.drawn} drawn, ${v.dropped} dropped; ${v.groups} groups (${v.skippedGroups} overtaken by a newer one)${v.errors ? `, ${v.errors} errors` : ""}`,
    `audio ${a.codec || "–"} ${a.sampleRate} Hz × ${a.channels}: ${a.decoded} decoded, ${a.scheduled} played, ${a.late} late; audio ${a.context}${a.errors ? `, ${a.errors} errors` : ""}`,
    `${latency}; drawn ${ms(s.behindMs)} after the fastest frames; audio ahead of video ${ms(s.avSyncMs)}`,
  ].join("\n");
}

function startPlayer(): void {
  const session = state.session;
  const name = parsePath(ui.playName.value);
  if (!session || name.length === 0) return;
  stopPlayer();
  const player = new Player(session, name, {
    canvas: ui.video,
    render: (stats) => {
      if (state.player !== player) return;
      ui.playerStatus.textContent = stats.status;
      ui.playerStats.textContent = describePlayer(stats);
      ui.audioOn.hidden = stats.audio.context !== "suspended";
    },
  });
  state.player = player;
  ui.stop.disabled = false;
  renderBroadcasts(state.announced?.active ?? []);
}

function stopPlayer(): void {
  state.player?.close();
  state.player = undefined;
  ui.stop.disabled = true;
}

function watchTracks(): void {
  const session = state.session;
  if (!session) return;
  state.announced?.close();
  const announced = session.announced(parsePath(ui.prefix.value));
  state.announced = announced;
  renderTracks();
  void (async () => {
    try {
      for (let change = await announced.next(); change; change = await announced.next()) {
        if (state.announced !== announced) return;
        renderTracks();
      }
    } catch (e) {
      if (state.announced === announced) ui.tracksEmpty.textContent = `announcements failed: ${describeError(e)}`;
    }
  })();
}

interface SubStats {
  groups: number;
  frames: number;
  bytes: number;
  newest: number;
}

async function readGroup(group: GroupReader, stats: SubStats): Promise<void> {
  let index = 0;
  let first: string | undefined;
  for (let frame = await group.readFrame(); frame !== undefined; frame = await group.readFrame()) {
    stats.frames++;
    stats.bytes += frame.length;
    const text = asText(frame);
    // A clock's group starts with "YYYY-MM-DD HH:MM:" and each later frame is "SS": the
    // group's first frame followed by its latest one reads as the current time.
    if (index === 0) first = text;
    if (text !== undefined && group.sequence >= stats.newest) {
      stats.newest = group.sequence;
      ui.subLatest.textContent = index > 0 && first !== undefined ? first + text : text;
    }
    log(ui.subLog, `group ${group.sequence} frame ${index++}: ${showPayload(frame)}`);
    ui.subStats.textContent = `${stats.groups} groups, ${stats.frames} frames, ${stats.bytes} bytes`;
  }
}

async function doSubscribe(): Promise<void> {
  const session = state.session;
  if (!session) return;
  doUnsubscribe();
  const path = parsePath(ui.subPath.value);
  const sub = session.subscribe(path);
  state.subscription = sub;
  ui.unsubscribe.disabled = false;
  ui.subLog.replaceChildren();
  ui.subInfo.textContent = `subscribing to ${path.join("/")}…`;
  renderTracks();
  const stats: SubStats = { groups: 0, frames: 0, bytes: 0, newest: 0 };
  ui.subLatest.textContent = "";
  sub.info.then(
    (info) => {
      if (state.subscription === sub) {
        ui.subInfo.textContent = `priority ${info.priority}, order ${info.groupOrder}, expires ${info.groupExpires} ms, latest group ${info.groupLatest}`;
      }
    },
    (e) => {
      if (state.subscription === sub) ui.subInfo.textContent = subscriptionFailure(path.join("/"), e, ui.token.value);
    },
  );
  try {
    for (let group = await sub.nextGroup(); group; group = await sub.nextGroup()) {
      stats.groups++;
      // Groups are independent streams: read them concurrently.
      readGroup(group, stats).catch((e) => log(ui.subLog, `group ${group.sequence}: ${describeError(e)}`));
    }
    if (state.subscription === sub) log(ui.subLog, "subscription ended");
  } catch (e) {
    if (state.subscription === sub) log(ui.subLog, subscriptionFailure(path.join("/"), e, ui.token.value));
  }
}

function doUnsubscribe(): void {
  state.subscription?.close();
  state.subscription = undefined;
  ui.unsubscribe.disabled = true;
}

function doPublish(): void {
  const session = state.session;
  if (!session) return;
  doUnpublish();
  const path = parsePath(ui.pubPath.value);
  try {
    state.track = session.publish(path);
  } catch (e) {
    log(ui.pubLog, `publish failed: ${describeError(e)}`);
    return;
  }
  log(ui.pubLog, `publishing ${path.join("/")}`);
  ui.unpublish.disabled = false;
  ui.send.disabled = false;
  ui.clock.disabled = false;
}

function doUnpublish(): void {
  stopClock();
  state.lineGroup = undefined;
  if (state.track) {
    state.track.close();
    log(ui.pubLog, `stopped ${state.track.path.join("/")}`);
  }
  state.track = undefined;
  ui.unpublish.disabled = true;
  ui.send.disabled = true;
  ui.clock.disabled = true;
  ui.clock.checked = false;
}

/** Each typed line is a frame; a group holds one line, or `lines per group` lines. */
function doSend(): void {
  const track = state.track;
  if (!track) return;
  const text = ui.pubText.value;
  const perGroup = Math.max(1, Math.floor(Number(ui.pubLines.value)) || 1);
  if (perGroup === 1) {
    state.lineGroup = undefined;
    const group = track.writeGroup(text);
    log(ui.pubLog, `group ${group.sequence}: ${JSON.stringify(text)}`);
  } else {
    let open = state.lineGroup;
    if (!open || open.group.done || track.latest !== open.group) {
      open = { group: track.appendGroup(), lines: 0 };
      state.lineGroup = open;
    }
    open.group.writeFrame(text);
    log(ui.pubLog, `group ${open.group.sequence} frame ${open.lines}: ${JSON.stringify(text)}`);
    open.lines++;
    if (open.lines >= perGroup) {
      open.group.close();
      state.lineGroup = undefined;
    }
  }
  ui.pubText.value = "";
}

const pad = (n: number): string => String(n).padStart(2, "0");

/** The clock format of the published clock tool: a group a minute; "date hh:mm:" then "ss" frames. */
function startClock(): void {
  const track = state.track;
  if (!track) return;
  let minute = -1;
  let group = track.latest && !track.latest.done ? track.latest : undefined;
  const tick = (): void => {
    const now = new Date();
    if (now.getMinutes() !== minute || !group) {
      minute = now.getMinutes();
      group = track.appendGroup();
      const base = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())} ${pad(now.getHours())}:${pad(minute)}:`;
      group.writeFrame(base);
      log(ui.pubLog, `group ${group.sequence}: ${base}`);
    }
    group.writeFrame(pad(now.getSeconds()));
  };
  tick();
  state.clockTimer = setInterval(tick, 1000);
}

function stopClock(): void {
  if (state.clockTimer !== undefined) clearInterval(state.clockTimer);
  state.clockTimer = undefined;
}

ui.connect.addEventListener("click", () => void doConnect());
ui.disconnect.addEventListener("click", () => {
  stopPlayer();
  doUnsubscribe();
  doUnpublish();
  state.announced?.close();
  state.session?.close(0, "closed by the user");
});
ui.watch.addEventListener("click", () => watchTracks());
ui.play.addEventListener("click", () => startPlayer());
ui.stop.addEventListener("click", () => stopPlayer());
ui.audioOn.addEventListener("click", () => void state.player?.resumeAudio());
ui.subscribe.addEventListener("click", () => void doSubscribe());
ui.unsubscribe.addEventListener("click", () => doUnsubscribe());
ui.publish.addEventListener("click", () => doPublish());
ui.unpublish.addEventListener("click", () => doUnpublish());
ui.send.addEventListener("click", () => doSend());
ui.pubText.addEventListener("keydown", (e) => {
  if (e.key === "Enter") doSend();
});
ui.clock.addEventListener("change", () => (ui.clock.checked ? startClock() : stopClock()));

setConnected(false);
void initFields().then((described) => {
  const connectParam = new URLSearchParams(location.search).get("connect");
  if (described || (connectParam !== null && connectParam !== "0")) void doConnect();
});
