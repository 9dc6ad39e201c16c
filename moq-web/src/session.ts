/**
 * A moqf-02 session over WebTransport: the handshake, then subscribing,
 * announcements and publishing, both directions at once (WIRE.md §4).
 */

import { concatBytes, encode, pathHasPrefix, pathKey, type Path } from "./codec.js";
import { DecodeError, ErrorCode, MoqError, SessionClosedError } from "./error.js";
import {
  VERSION,
  readAnnounceInterest,
  readBiStreamType,
  readInfo,
  readInfoRequest,
  readSessionClient,
  readSessionServer,
  readSubscribe,
  readSubscribeUpdate,
  writeAnnounce,
  writeBiStreamType,
  writeGroup,
  writeGroupDrop,
  writeInfo,
  writeSessionClient,
  writeSessionServer,
  type GroupOrder,
  type Info,
} from "./message.js";
import { Deferred, Notify, within } from "./queue.js";
import { resetAndStop, Sender } from "./sender.js";
import { StreamReader } from "./stream.js";
import { Subscriber, type Announced, type SubscribeOptions, type Subscription } from "./subscribe.js";
import { StreamResetError, sessionEnd, streamError, type BidiStream, type WebTransportLike } from "./transport.js";
import { sessionUrl } from "./url.js";

/** Options of {@link Session.publish}. */
export interface PublishOptions {
  /** Track priority, −128..127 (default 0). */
  priority?: number;
  /** Preferred group order (default "desc"). */
  order?: GroupOrder;
  /** Group expiry in ms (default 0 = none). */
  expires?: number;
}

function bytesOf(payload: Uint8Array | string): Uint8Array {
  return typeof payload === "string" ? new TextEncoder().encode(payload) : payload.slice();
}

/** Compare paths part by part (the order 0.5.0 uses for announce batches, §4.3). */
function comparePaths(a: Path, b: Path): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i]! < b[i]!) return -1;
    if (a[i]! > b[i]!) return 1;
  }
  return a.length - b.length;
}

/**
 * A group the application writes. Frames are cached until the track moves on
 * to a newer group, so a subscriber that joins late gets the latest group from
 * its first frame (WIRE.md §4.4).
 */
export class GroupWriter {
  /** Frames written so far. */
  readonly frames: Uint8Array[] = [];
  /** Wakes the streams serving this group. */
  readonly changed = new Notify();
  private finished = false;
  private failure: MoqError | undefined;

  constructor(
    /** Group sequence number. */
    readonly sequence: number,
  ) {}

  /** True once closed or aborted. */
  get done(): boolean {
    return this.finished;
  }

  /** Set when the group was aborted. */
  get error(): MoqError | undefined {
    return this.failure;
  }

  /** Append a whole frame (a string is sent as UTF-8). The bytes are copied. */
  writeFrame(payload: Uint8Array | string): void {
    if (this.finished) throw new Error(`group ${this.sequence} is closed`);
    this.frames.push(bytesOf(payload));
    this.changed.notify();
  }

  /** End the group cleanly: its streams get a FIN after the last frame. */
  close(): void {
    if (this.finished) return;
    this.finished = true;
    this.changed.notify();
  }

  /** Abort the group: its streams are reset with `code` and a GroupDrop is sent. */
  abort(code: number): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = new MoqError(code);
    this.changed.notify();
  }
}

/** A track the application publishes: a sequence of groups. */
export class TrackWriter {
  /** Wakes the subscriptions serving this track. */
  readonly changed = new Notify();
  private readonly groupListeners = new Set<(group: GroupWriter) => void>();
  private current: GroupWriter | undefined;
  private nextSequence = 0;
  private ended = false;
  private failure: MoqError | undefined;

  constructor(
    private readonly session: Session,
    /** Track path. */
    readonly path: Path,
    /** Publisher priority sent in Info. */
    readonly priority: number,
    /** Publisher group order sent in Info. */
    readonly order: GroupOrder,
    /** Publisher group expiry (ms) sent in Info. */
    readonly expires: number,
  ) {}

  /** The newest group, if any. */
  get latest(): GroupWriter | undefined {
    return this.current;
  }

  /** True once closed or aborted. */
  get closed(): boolean {
    return this.ended;
  }

  /** Set when the track was aborted. */
  get error(): MoqError | undefined {
    return this.failure;
  }

  /**
   * Start a new group (sequence: one past the previous one unless given; it must
   * increase). The previous group is closed: a track has one open group at a time.
   */
  appendGroup(sequence?: number): GroupWriter {
    if (this.ended) throw new Error("track is closed");
    const seq = sequence ?? this.nextSequence;
    if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`group sequence ${seq} out of range`);
    if (this.current && seq <= this.current.sequence) {
      throw new RangeError(`group sequence ${seq} is not after ${this.current.sequence}`);
    }
    this.current?.close();
    this.nextSequence = seq + 1;
    const group = new GroupWriter(seq);
    this.current = group;
    for (const listener of this.groupListeners) listener(group);
    this.changed.notify();
    return group;
  }

  /** @internal Call `listener` with every group appended from now on; returns the unsubscribe function. */
  onGroup(listener: (group: GroupWriter) => void): () => void {
    this.groupListeners.add(listener);
    return () => this.groupListeners.delete(listener);
  }

  /** A group with one frame, closed at once (e.g. one message per group). */
  writeGroup(...frames: (Uint8Array | string)[]): GroupWriter {
    const g = this.appendGroup();
    for (const f of frames) g.writeFrame(f);
    g.close();
    return g;
  }

  /** Stop publishing: the path is announced as ended; subscriptions end after their open groups. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.current?.close();
    this.changed.notify();
    this.session.unpublish(this);
  }

  /** Stop publishing with an error: subscribe streams are reset with `code`. */
  abort(code: number): void {
    if (this.ended) return;
    this.failure = new MoqError(code);
    this.current?.abort(code);
    this.close();
  }
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /**
   * SHA-256 fingerprints of the server's certificate (lowercase hex, as the
   * relay prints it, or raw bytes), for self-signed development certificates.
   */
  serverCertificateHashes?: (string | Uint8Array)[];
  /**
   * The access token, sent as the URL's `?jwt=` (replacing one there), as
   * `moq --jwt` does. The URL's path is the session's root.
   */
  jwt?: string | undefined;
}

/**
 * How long a failed stream waits for the session close that may have caused it
 * (the close carries the code and reason; a browser may report the stream's
 * failure first).
 */
const CLOSE_GRACE_MS = 100;

function hexToBytes(hex: string): Uint8Array {
  const clean = hex.replace(/[^0-9a-fA-F]/g, "");
  if (clean.length % 2 !== 0) throw new Error("odd number of hex digits");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Open a WebTransport session to `url` (an `https://` URL; its path is the
 * session's root, `?jwt=` its token) and run the moqf-02 handshake as the client.
 *
 * Rejects with a {@link SessionClosedError} when the peer closed the session
 * (a relay refusing it: code 16, Unauthorized, and its reason, see
 * {@link refusalReason}), a {@link MoqError} with code 4 when the connection
 * failed or was lost, 9 when there is no common version.
 */
export async function connect(url: string | URL, options: ConnectOptions = {}): Promise<Session> {
  type Ctor = new (url: string, options?: unknown) => WebTransportLike;
  const WebTransportCtor = (globalThis as { WebTransport?: Ctor }).WebTransport;
  if (!WebTransportCtor) throw new Error("this environment has no WebTransport");
  const wtOptions: { serverCertificateHashes?: { algorithm: string; value: Uint8Array }[] } = {};
  if (options.serverCertificateHashes && options.serverCertificateHashes.length > 0) {
    wtOptions.serverCertificateHashes = options.serverCertificateHashes.map((h) => ({
      algorithm: "sha-256",
      value: typeof h === "string" ? hexToBytes(h) : h,
    }));
  }
  const target = options.jwt !== undefined ? sessionUrl(url, { jwt: options.jwt }) : String(url);
  const transport = new WebTransportCtor(target, wtOptions);
  try {
    return await Session.connect(transport);
  } catch (e) {
    if (!(e instanceof SessionClosedError)) {
      try {
        transport.close({ closeCode: e instanceof MoqError ? e.code : ErrorCode.WebTransport, reason: "handshake failed" });
      } catch {
        // already closed
      }
    }
    throw e;
  }
}

/**
 * What a failed handshake step reports: the session's end when it ended (the
 * peer's close carries the code and reason that failed the stream), else the
 * step's own error.
 */
async function failure(e: unknown, ended: Promise<MoqError>): Promise<MoqError> {
  const err = streamError(e);
  if (err instanceof SessionClosedError) return err;
  // Our own verdict on what the peer sent (its version, a decode error) stands.
  const fromTransport = err.code === ErrorCode.WebTransport || err instanceof StreamResetError;
  const end = fromTransport ? await within(ended, CLOSE_GRACE_MS) : undefined;
  return end instanceof SessionClosedError ? end : err;
}

/** An established moqf-02 session. Both sides may publish and subscribe. */
export class Session {
  private readonly subscriber: Subscriber;
  private readonly tracks = new Map<string, TrackWriter>();
  private readonly announceWatchers = new Set<(path: Path, active: boolean) => void>();
  private readonly closedDeferred = new Deferred<MoqError>();
  private readonly closeHooks = new Set<() => void>();
  private isClosed = false;

  private constructor(
    /** The underlying WebTransport session. */
    readonly transport: WebTransportLike,
    private readonly control: { reader: StreamReader; sender: Sender },
    private readonly incomingBidi: ReadableStreamDefaultReader<BidiStream>,
    /** How the transport ends (see {@link sessionEnd}). */
    private readonly ended: Promise<MoqError>,
  ) {
    this.subscriber = new Subscriber(transport);
  }

  /**
   * Run the client handshake on an open WebTransport session: the first bidi
   * stream carries `00 | 01 c0000000ff0bad02 | 00` (type 0 + SessionClient),
   * then the server's SessionServer is read (§4.2).
   *
   * A session the peer closes before the handshake completes (a relay refusing
   * it) fails with that close: a {@link SessionClosedError} with its code and
   * reason. A connection that fails or is lost fails with code 4.
   */
  static async connect(transport: WebTransportLike): Promise<Session> {
    const ended = sessionEnd(transport);
    // The end, as a rejection: the handshake stops at the session's close.
    const closing = ended.then((end) => Promise.reject(end));
    closing.catch(() => {});
    let bidi: BidiStream;
    try {
      await Promise.race([transport.ready, closing]);
      bidi = await Promise.race([transport.createBidirectionalStream(), closing]);
    } catch (e) {
      throw await failure(e, ended);
    }
    const sender = new Sender(bidi.writable);
    const reader = new StreamReader(bidi.readable);
    try {
      await sender.write(
        encode((w) => {
          writeBiStreamType(w, "session");
          writeSessionClient(w, { versions: [VERSION], extensions: new Map() });
        }),
      );
      const server = await Promise.race([reader.read(readSessionServer), closing]);
      if (server.version !== VERSION) {
        throw new MoqError(ErrorCode.Version, `server chose version 0x${server.version.toString(16)}`);
      }
    } catch (e) {
      const err = await failure(e, ended);
      if (!(err instanceof SessionClosedError)) {
        // A reset by the server is a transport error (4) for our side (§4.2).
        await resetAndStop(reader, sender, err instanceof StreamResetError ? ErrorCode.WebTransport : err.code);
      }
      throw err;
    }
    const session = new Session(transport, { reader, sender }, transport.incomingBidirectionalStreams.getReader(), ended);
    session.run();
    return session;
  }

  /**
   * Run the server handshake: the first incoming bidi stream must be the
   * session stream; answer SessionServer if the client offers 0xff0bad02,
   * otherwise reset it with Version (9). Used by tests and peer-to-peer setups.
   */
  static async accept(transport: WebTransportLike): Promise<Session> {
    await transport.ready;
    const incoming = transport.incomingBidirectionalStreams.getReader();
    const next = await incoming.read();
    if (next.done) throw new MoqError(ErrorCode.WebTransport, "session closed before the handshake");
    const reader = new StreamReader(next.value.readable);
    const sender = new Sender(next.value.writable);
    try {
      const type = await reader.read(readBiStreamType);
      if (type !== "session") throw new MoqError(ErrorCode.UnexpectedStream, `first stream is ${type}`);
      const client = await reader.read(readSessionClient);
      if (!client.versions.includes(VERSION)) throw new MoqError(ErrorCode.Version, "no common version");
      await sender.write(encode((w) => writeSessionServer(w, { version: VERSION, extensions: new Map() })));
    } catch (e) {
      const err = streamError(e);
      await resetAndStop(reader, sender, err.code);
      throw err;
    }
    const session = new Session(transport, { reader, sender }, incoming, sessionEnd(transport));
    session.run();
    return session;
  }

  /**
   * Resolves with the reason once the session is closed: a
   * {@link SessionClosedError} for a session close (the peer's, `remote`, or
   * ours), with its code and reason; a {@link MoqError} with code 4 for a
   * connection lost without one.
   */
  get closed(): Promise<MoqError> {
    return this.closedDeferred.promise;
  }

  private run(): void {
    void this.watchControl();
    void this.acceptBidi();
    void this.acceptUni();
    void this.ended.then((end) => this.shutdown(end));
  }

  /**
   * After the handshake nothing more is ever written on the session stream
   * (§4.2, §8.3); bytes from the peer are parsed as Info (what 0.5.0 does) and
   * ignored. A FIN ends the session with Cancel, a decode error with Decode.
   */
  private async watchControl(): Promise<void> {
    try {
      while ((await this.control.reader.readMaybe(readInfo)) !== undefined) {
        // ignored
      }
      this.close(ErrorCode.Cancel, "cancelled");
    } catch (e) {
      // The peer's session close fails this stream too: let the close say why.
      if (!this.isClosed) await within(this.ended, CLOSE_GRACE_MS);
      if (this.isClosed) return;
      const err = streamError(e);
      this.close(err instanceof DecodeError ? ErrorCode.Decode : ErrorCode.WebTransport, err.message);
    }
  }

  private async acceptBidi(): Promise<void> {
    try {
      for (;;) {
        const next = await this.incomingBidi.read();
        if (next.done) break;
        void this.handleBidi(next.value);
      }
    } catch {
      // the session is closing
    }
  }

  private async acceptUni(): Promise<void> {
    const incoming = this.transport.incomingUnidirectionalStreams.getReader();
    try {
      for (;;) {
        const next = await incoming.read();
        if (next.done) break;
        void this.subscriber.receiveGroup(next.value);
      }
    } catch {
      // the session is closing
    }
  }

  private async handleBidi(bidi: BidiStream): Promise<void> {
    const reader = new StreamReader(bidi.readable);
    const sender = new Sender(bidi.writable);
    try {
      const type = await reader.read(readBiStreamType);
      switch (type) {
        case "session":
          throw new MoqError(ErrorCode.UnexpectedStream, "second session stream");
        case "announce":
          return await this.serveAnnounce(reader, sender);
        case "subscribe":
          return await this.serveSubscribe(reader, sender);
        case "info":
          return await this.serveInfo(reader, sender);
        case "fetch":
          // Not served (0.5.0 never completes a fetch either, §4.7).
          throw new MoqError(ErrorCode.NotFound, "fetch is not served");
      }
    } catch (e) {
      const err = streamError(e);
      await resetAndStop(reader, sender, err.code);
    }
  }

  private async serveInfo(reader: StreamReader, sender: Sender): Promise<void> {
    const req = await reader.read(readInfoRequest);
    const track = this.tracks.get(pathKey(req.path));
    if (!track) throw new MoqError(ErrorCode.NotFound, "unknown track");
    await sender.write(encode((w) => writeInfo(w, trackInfo(track))));
    await sender.finish();
    await reader.cancel(ErrorCode.Cancel);
  }

  private async serveAnnounce(reader: StreamReader, sender: Sender): Promise<void> {
    const { prefix } = await reader.read(readAnnounceInterest);
    const send = (path: Path, active: boolean): void => {
      const suffix = path.slice(prefix.length);
      sender
        .write(encode((w) => writeAnnounce(w, { status: active ? "active" : "ended", suffix })))
        .catch(() => stop());
    };
    const watcher = (path: Path, active: boolean): void => {
      if (pathHasPrefix(path, prefix)) send(path, active);
    };
    const stop = (): void => {
      this.announceWatchers.delete(watcher);
    };
    const current = [...this.tracks.values()].map((t) => t.path).filter((p) => pathHasPrefix(p, prefix));
    current.sort(comparePaths);
    for (const p of current) send(p, true);
    this.announceWatchers.add(watcher);
    // The subscriber sends nothing more; its FIN (or reset) ends the interest.
    try {
      while (!(await reader.atEnd())) await reader.bytes(Number.MAX_SAFE_INTEGER);
      stop();
      await sender.finish();
    } catch {
      stop();
      await sender.reset(ErrorCode.WebTransport);
    }
  }

  private async serveSubscribe(reader: StreamReader, sender: Sender): Promise<void> {
    const sub = await reader.read(readSubscribe);
    const track = this.tracks.get(pathKey(sub.path));
    if (!track) throw new MoqError(ErrorCode.NotFound, "unknown track");
    // Join at the latest group (from its first frame), then every group appended
    // after it, in order: even several appended at once are all served (0.5.0
    // would skip the intermediate ones, §4.4).
    const pending: GroupWriter[] = track.latest ? [track.latest] : [];
    const stopListening = track.onGroup((g) => pending.push(g));
    // Info before any group stream (§7.3).
    try {
      await sender.write(encode((w) => writeInfo(w, trackInfo(track))));
    } catch (e) {
      stopListening();
      throw e;
    }

    let active = true;
    // One promise raced against every wait: a Notify here would collect a waiter per wake-up.
    const stopped = new Deferred<void>();
    const onSessionClose = (): void => {
      active = false;
      stopped.resolve();
    };
    this.closeHooks.add(onSessionClose);
    const watch = (async () => {
      try {
        // SubscribeUpdate* (content ignored, like 0.5.0), then the subscriber's FIN.
        while ((await reader.readMaybe(readSubscribeUpdate)) !== undefined) {
          // ignored
        }
      } catch {
        // reset by the subscriber or malformed: stop serving either way
      }
      active = false;
      stopped.resolve();
    })();

    const serving: Promise<void>[] = [];
    const serveGroup = async (group: GroupWriter): Promise<void> => {
      let stream: Sender | undefined;
      try {
        stream = new Sender(
          await this.transport.createUnidirectionalStream({ sendOrder: sendOrder(sub.priority, sub.groupOrder, group.sequence) }),
        );
        await stream.write(
          encode((w) => {
            w.varint(0);
            writeGroup(w, { subscribe: sub.id, sequence: group.sequence });
          }),
        );
        let next = 0;
        for (;;) {
          while (next < group.frames.length) {
            const payload = group.frames[next++]!;
            const header = encode((w) => w.varint(payload.length));
            // Small frames go out in one write (one packet rather than two).
            if (payload.length <= 16384) await stream.write(concatBytes([header, payload]));
            else {
              await stream.write(header);
              await stream.write(payload);
            }
          }
          if (group.error) {
            await stream.reset(group.error.code);
            await sendDrop(group.sequence, group.error.code);
            return;
          }
          if (group.done) break;
          if (!active) {
            await stream.reset(ErrorCode.Cancel);
            return;
          }
          await Promise.race([group.changed.wait(), stopped.promise]);
        }
        await stream.finish();
      } catch {
        // Writing failed (e.g. the subscriber stopped the stream): reset it and
        // account for the group with a GroupDrop carrying the transport code (§4.5).
        await stream?.reset(ErrorCode.WebTransport);
        if (active) await sendDrop(group.sequence, ErrorCode.WebTransport);
      }
    };
    const sendDrop = async (sequence: number, code: number): Promise<void> => {
      try {
        await sender.write(encode((w) => writeGroupDrop(w, { sequence, count: 0, code })));
      } catch {
        // the subscribe stream is gone
      }
    };

    while (active && !this.isClosed) {
      for (let g = pending.shift(); g !== undefined; g = pending.shift()) serving.push(serveGroup(g));
      if (track.closed) break;
      await Promise.race([track.changed.wait(), stopped.promise]);
    }
    stopListening();
    await Promise.all(serving);
    this.closeHooks.delete(onSessionClose);
    if (!active) {
      // The subscriber unsubscribed: FIN our side too.
      await sender.finish();
      return;
    }
    if (track.error) {
      await resetAndStop(reader, sender, track.error.code);
      return;
    }
    await sender.finish();
    await watch;
  }

  /**
   * Subscribe to the track at `path`. The id is registered before the
   * Subscribe is sent, so group streams that overtake the Info are accepted.
   */
  subscribe(path: Path, options: SubscribeOptions = {}): Subscription {
    if (this.isClosed) throw new MoqError(ErrorCode.Cancel, "session is closed");
    return this.subscriber.subscribe(path, options);
  }

  /**
   * Ask the peer about the track at `path` (info stream, §4.6): its priority,
   * order, expiry and latest group. Rejects with NotFound (13) for an unknown
   * track. 0.5.0 peers answer this, though they never send it themselves.
   */
  async info(path: Path): Promise<Info> {
    if (this.isClosed) throw new MoqError(ErrorCode.Cancel, "session is closed");
    return await this.subscriber.info(path);
  }

  /** Watch the paths the peer announces under `prefix` (default: everything). */
  announced(prefix: Path = []): Announced {
    if (this.isClosed) throw new MoqError(ErrorCode.Cancel, "session is closed");
    return this.subscriber.announced(prefix);
  }

  /**
   * Publish a track at `path`: it is announced to the peer's announce streams
   * and served to its subscriptions. Publishing a path twice is an error.
   */
  publish(path: Path, options: PublishOptions = {}): TrackWriter {
    if (this.isClosed) throw new MoqError(ErrorCode.Cancel, "session is closed");
    const key = pathKey(path);
    if (this.tracks.has(key)) throw new MoqError(ErrorCode.Duplicate, `already published: ${path.join("/")}`);
    const priority = options.priority ?? 0;
    if (!Number.isInteger(priority) || priority < -128 || priority > 127) throw new RangeError(`priority ${priority}`);
    const track = new TrackWriter(this, [...path], priority, options.order ?? "desc", options.expires ?? 0);
    this.tracks.set(key, track);
    for (const w of this.announceWatchers) w(track.path, true);
    return track;
  }

  /** @internal */
  unpublish(track: TrackWriter): void {
    const key = pathKey(track.path);
    if (this.tracks.get(key) !== track) return;
    this.tracks.delete(key);
    for (const w of this.announceWatchers) w(track.path, false);
  }

  /** Tracks published in this session right now. */
  get published(): Path[] {
    return [...this.tracks.values()].map((t) => t.path);
  }

  /** Close the session with `code` (default 0) and a reason text. */
  close(code: number = ErrorCode.Cancel, reason = ""): void {
    if (this.isClosed) return;
    try {
      this.transport.close({ closeCode: code, reason });
    } catch {
      // already closed
    }
    this.shutdown(new SessionClosedError(code, reason, false));
  }

  private shutdown(reason: MoqError): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closedDeferred.resolve(reason);
    this.subscriber.close(reason);
    for (const hook of [...this.closeHooks]) hook();
  }
}

/**
 * The WebTransport `sendOrder` of a group stream (higher is sent first): the
 * subscriber's track priority first, then within the track the newest group
 * first for descending order or the oldest first for ascending order (the
 * drafts' meaning, §7.4). Purely local; nothing of it is on the wire.
 */
export function sendOrder(priority: number, order: GroupOrder, sequence: number): number {
  const seq = sequence % 0x1000000;
  return (priority + 128) * 0x1000000 + (order === "desc" ? seq : 0xffffff - seq);
}

function trackInfo(track: TrackWriter): Info {
  return {
    priority: track.priority,
    groupOrder: track.order,
    groupExpires: track.expires,
    // 0 when there is no group yet (ambiguous with group 0, §5.8).
    groupLatest: track.latest?.sequence ?? 0,
  };
}
