/**
 * The relay's web page: connect, watch announced tracks, subscribe to one,
 * publish one. Served next to the compiled library (see README.md).
 */

import { MoqError, codeName, connect, type Announced, type GroupReader, type Session, type Subscription, type TrackWriter } from "../src/index.js";

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

const ui = {
  url: $<HTMLInputElement>("url"),
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
  pubPath: $<HTMLInputElement>("pub-path"),
  publish: $<HTMLButtonElement>("publish"),
  unpublish: $<HTMLButtonElement>("unpublish"),
  pubText: $<HTMLInputElement>("pub-text"),
  send: $<HTMLButtonElement>("send"),
  clock: $<HTMLInputElement>("clock"),
  pubLog: $<HTMLDivElement>("pub-log"),
};

interface PageState {
  session: Session | undefined;
  announced: Announced | undefined;
  subscription: Subscription | undefined;
  track: TrackWriter | undefined;
  clockTimer: ReturnType<typeof setInterval> | undefined;
}

const state: PageState = { session: undefined, announced: undefined, subscription: undefined, track: undefined, clockTimer: undefined };
// For scripted end-to-end tests.
(globalThis as { moqPage?: PageState }).moqPage = state;

function parsePath(text: string): string[] {
  return text
    .split("/")
    .map((p) => p.trim())
    .filter((p) => p !== "");
}

function describeError(e: unknown): string {
  if (e instanceof MoqError) return `${codeName(e.code)} (${e.code}): ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

function setStatus(text: string, kind: "idle" | "connecting" | "connected" | "error"): void {
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
function showPayload(bytes: Uint8Array): string {
  try {
    return JSON.stringify(textDecoder.decode(bytes));
  } catch {
    const head = Array.from(bytes.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join(" ");
    return `${bytes.length} bytes: ${head}${bytes.length > 24 ? " …" : ""}`;
  }
}

function setConnected(connected: boolean): void {
  ui.connect.disabled = connected;
  ui.disconnect.disabled = !connected;
  ui.watch.disabled = !connected;
  ui.subscribe.disabled = !connected;
  ui.publish.disabled = !connected;
  if (!connected) {
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

function initFields(): void {
  const params = new URLSearchParams(location.search);
  const host = location.hostname || "localhost";
  const port = location.port || "4443";
  ui.url.value = params.get("url") ?? `https://${host}:${port}/`;
  ui.fingerprint.value = params.get("fingerprint") ?? "";
  ui.prefix.value = params.get("prefix") ?? "";
  ui.subPath.value = params.get("track") ?? "";
  ui.pubPath.value = params.get("publish") ?? `web/${Math.random().toString(36).slice(2, 8)}`;
}

async function doConnect(): Promise<void> {
  setStatus("connecting…", "connecting");
  ui.connect.disabled = true;
  try {
    await guessFingerprint();
    const hashes = ui.fingerprint.value.trim() === "" ? [] : [ui.fingerprint.value.trim()];
    const session = await connect(ui.url.value.trim(), { serverCertificateHashes: hashes });
    state.session = session;
    setStatus("connected", "connected");
    setConnected(true);
    void session.closed.then((reason) => {
      if (state.session !== session) return;
      state.session = undefined;
      stopClock();
      setConnected(false);
      setStatus(`closed: ${describeError(reason)}`, reason.code === 0 ? "idle" : "error");
    });
    watchTracks();
    // `?connect&track=a/b` subscribes at once, `?connect&publish=a/b&clock` publishes a
    // clock at once (handy for links and scripted tests).
    const params = new URLSearchParams(location.search);
    if (params.has("track") && ui.subPath.value !== "") void doSubscribe();
    if (params.has("publish") && params.has("clock")) {
      doPublish();
      ui.clock.checked = true;
      startClock();
    }
  } catch (e) {
    setStatus(`failed: ${describeError(e)}`, "error");
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

async function readGroup(group: GroupReader, stats: { groups: number; frames: number; bytes: number }): Promise<void> {
  let index = 0;
  for (let frame = await group.readFrame(); frame !== undefined; frame = await group.readFrame()) {
    stats.frames++;
    stats.bytes += frame.length;
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
  const stats = { groups: 0, frames: 0, bytes: 0 };
  sub.info.then(
    (info) => {
      if (state.subscription === sub) {
        ui.subInfo.textContent = `priority ${info.priority}, order ${info.groupOrder}, expires ${info.groupExpires} ms, latest group ${info.groupLatest}`;
      }
    },
    (e) => {
      if (state.subscription === sub) ui.subInfo.textContent = `subscription failed: ${describeError(e)}`;
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
    if (state.subscription === sub) log(ui.subLog, `subscription failed: ${describeError(e)}`);
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

function doSend(): void {
  const track = state.track;
  if (!track) return;
  const text = ui.pubText.value;
  const group = track.writeGroup(text);
  log(ui.pubLog, `group ${group.sequence}: ${JSON.stringify(text)}`);
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
  doUnsubscribe();
  doUnpublish();
  state.announced?.close();
  state.session?.close(0, "closed by the user");
});
ui.watch.addEventListener("click", () => watchTracks());
ui.subscribe.addEventListener("click", () => void doSubscribe());
ui.unsubscribe.addEventListener("click", () => doUnsubscribe());
ui.publish.addEventListener("click", () => doPublish());
ui.unpublish.addEventListener("click", () => doUnpublish());
ui.send.addEventListener("click", () => doSend());
ui.pubText.addEventListener("keydown", (e) => {
  if (e.key === "Enter") doSend();
});
ui.clock.addEventListener("change", () => (ui.clock.checked ? startClock() : stopClock()));

initFields();
setConnected(false);
if (new URLSearchParams(location.search).has("connect")) void doConnect();
