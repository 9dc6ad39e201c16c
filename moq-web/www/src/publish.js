/**
 * The publisher half of a session: the tracks the application publishes, and
 * serving the peer's announce, subscribe and info streams for them with the
 * group streams we send (WIRE.md §4.3–§4.6).
 *
 * `TrackWriter` and `GroupWriter` keep their state in `#` fields. The
 * `Publisher` below reaches it through `trackOps` and `groupOps`, which their
 * static blocks fill in and this module does not export, so code outside it
 * sees only the public API.
 */
import { concatBytes, encode, pathHasPrefix, pathKey } from "./codec.js";
import { ErrorCode, MoqError } from "./error.js";
import { readAnnounceInterest, readInfoRequest, readSubscribe, readSubscribeUpdate, writeAnnounce, writeGroup, writeGroupDrop, writeInfo, } from "./message.js";
import { Deferred, Notify } from "./queue.js";
import { resetAndStop, Sender } from "./sender.js";
function bytesOf(payload) {
    return typeof payload === "string" ? new TextEncoder().encode(payload) : payload.slice();
}
/** Compare paths part by part (the order 0.5.0 uses for announce batches, §4.3). */
function comparePaths(a, b) {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
        if (a[i] < b[i])
            return -1;
        if (a[i] > b[i])
            return 1;
    }
    return a.length - b.length;
}
/** What the serving code reads of a group beyond its API (set by its static block). */
let groupOps;
/**
 * A group the application writes. Frames are cached until the track moves on
 * to a newer group, so a subscriber that joins late gets the latest group from
 * its first frame (WIRE.md §4.4).
 */
export class GroupWriter {
    sequence;
    #frames = [];
    #changed = new Notify();
    #finished = false;
    #failure;
    constructor(
    /** Group sequence number. */
    sequence) {
        this.sequence = sequence;
    }
    /** True once closed or aborted. */
    get done() {
        return this.#finished;
    }
    /** Set when the group was aborted. */
    get error() {
        return this.#failure;
    }
    /** Append a whole frame (a string is sent as UTF-8). The bytes are copied. */
    writeFrame(payload) {
        if (this.#finished)
            throw new Error(`group ${this.sequence} is closed`);
        this.#frames.push(bytesOf(payload));
        this.#changed.notify();
    }
    /** End the group cleanly: its streams get a FIN after the last frame. */
    close() {
        if (this.#finished)
            return;
        this.#finished = true;
        this.#changed.notify();
    }
    /** Abort the group: its streams are reset with `code` and a GroupDrop is sent. */
    abort(code) {
        if (this.#finished)
            return;
        this.#finished = true;
        this.#failure = new MoqError(code);
        this.#changed.notify();
    }
    static {
        groupOps = {
            create: (sequence) => new GroupWriter(sequence),
            frames: (group) => group.#frames,
            changed: (group) => group.#changed,
        };
    }
}
/** What the publisher half does to a track beyond its API (set by its static block). */
let trackOps;
/** A track the application publishes: a sequence of groups. */
export class TrackWriter {
    path;
    priority;
    order;
    expires;
    #changed = new Notify();
    #groupListeners = new Set();
    #unpublish;
    #current;
    #nextSequence = 0;
    #ended = false;
    #failure;
    constructor(
    /** Track path. */
    path, 
    /** Publisher priority sent in Info. */
    priority, 
    /** Publisher group order sent in Info. */
    order, 
    /** Publisher group expiry (ms) sent in Info. */
    expires, unpublish) {
        this.path = path;
        this.priority = priority;
        this.order = order;
        this.expires = expires;
        this.#unpublish = unpublish;
    }
    /** The newest group, if any. */
    get latest() {
        return this.#current;
    }
    /** True once closed or aborted. */
    get closed() {
        return this.#ended;
    }
    /** Set when the track was aborted. */
    get error() {
        return this.#failure;
    }
    /**
     * Start a new group (sequence: one past the previous one unless given; it must
     * increase). The previous group is closed: a track has one open group at a time.
     */
    appendGroup(sequence) {
        if (this.#ended)
            throw new Error("track is closed");
        const seq = sequence ?? this.#nextSequence;
        if (!Number.isSafeInteger(seq) || seq < 0)
            throw new RangeError(`group sequence ${seq} out of range`);
        if (this.#current && seq <= this.#current.sequence) {
            throw new RangeError(`group sequence ${seq} is not after ${this.#current.sequence}`);
        }
        this.#current?.close();
        this.#nextSequence = seq + 1;
        const group = groupOps.create(seq);
        this.#current = group;
        for (const listener of this.#groupListeners)
            listener(group);
        this.#changed.notify();
        return group;
    }
    /** A group of these frames, closed at once (e.g. one message per group). */
    writeGroup(...frames) {
        const g = this.appendGroup();
        for (const f of frames)
            g.writeFrame(f);
        g.close();
        return g;
    }
    /** Stop publishing: the path is announced as ended; subscriptions end after their open groups. */
    close() {
        if (this.#ended)
            return;
        this.#ended = true;
        this.#current?.close();
        this.#changed.notify();
        this.#unpublish(this);
    }
    /** Stop publishing with an error: subscribe streams are reset with `code`. */
    abort(code) {
        if (this.#ended)
            return;
        this.#failure = new MoqError(code);
        this.#current?.abort(code);
        this.close();
    }
    static {
        trackOps = {
            create: (path, priority, order, expires, unpublish) => new TrackWriter(path, priority, order, expires, unpublish),
            changed: (track) => track.#changed,
            onGroup: (track, listener) => {
                track.#groupListeners.add(listener);
                return () => track.#groupListeners.delete(listener);
            },
        };
    }
}
/**
 * The WebTransport `sendOrder` of a group stream (higher is sent first): the
 * subscriber's track priority first, then within the track the newest group
 * first for descending order or the oldest first for ascending order (the
 * drafts' meaning, §7.4). Purely local; nothing of it is on the wire.
 */
export function sendOrder(priority, order, sequence) {
    const seq = sequence % 0x1000000;
    return (priority + 128) * 0x1000000 + (order === "desc" ? seq : 0xffffff - seq);
}
function trackInfo(track) {
    return {
        priority: track.priority,
        groupOrder: track.order,
        groupExpires: track.expires,
        // 0 when there is no group yet (ambiguous with group 0, §5.8).
        groupLatest: track.latest?.sequence ?? 0,
    };
}
/**
 * The tracks published in one session, and the serving of the peer's announce,
 * subscribe and info streams for them. The session checks it is open before
 * calling in; not part of the public API.
 */
export class Publisher {
    #transport;
    #tracks = new Map();
    #announceWatchers = new Set();
    /** Run when the session closes: stops the subscriptions being served. */
    #closeHooks = new Set();
    #closed = false;
    constructor(transport) {
        this.#transport = transport;
    }
    /**
     * Publish a track at `path`: it is announced to the peer's announce streams
     * and served to its subscriptions. Publishing a path twice is an error.
     */
    publish(path, options) {
        const key = pathKey(path);
        if (this.#tracks.has(key))
            throw new MoqError(ErrorCode.Duplicate, `already published: ${path.join("/")}`);
        const priority = options.priority ?? 0;
        if (!Number.isInteger(priority) || priority < -128 || priority > 127)
            throw new RangeError(`priority ${priority}`);
        const unpublish = (t) => this.#unpublish(t);
        const track = trackOps.create([...path], priority, options.order ?? "desc", options.expires ?? 0, unpublish);
        this.#tracks.set(key, track);
        for (const w of this.#announceWatchers)
            w(track.path, true);
        return track;
    }
    #unpublish(track) {
        const key = pathKey(track.path);
        if (this.#tracks.get(key) !== track)
            return;
        this.#tracks.delete(key);
        for (const w of this.#announceWatchers)
            w(track.path, false);
    }
    /** Tracks published right now. */
    get published() {
        return [...this.#tracks.values()].map((t) => t.path);
    }
    /** The session is gone: stop serving. */
    close() {
        this.#closed = true;
        for (const hook of [...this.#closeHooks])
            hook();
    }
    /** An info stream: Info for a published track, then FIN (§4.6). */
    async serveInfo(reader, sender) {
        const req = await reader.read(readInfoRequest);
        const track = this.#tracks.get(pathKey(req.path));
        if (!track)
            throw new MoqError(ErrorCode.NotFound, "unknown track");
        await sender.write(encode((w) => writeInfo(w, trackInfo(track))));
        await sender.finish();
        await reader.cancel(ErrorCode.Cancel);
    }
    /** An announce stream: the published paths under its prefix, then every change (§4.3). */
    async serveAnnounce(reader, sender) {
        const { prefix } = await reader.read(readAnnounceInterest);
        const send = (path, active) => {
            const suffix = path.slice(prefix.length);
            sender
                .write(encode((w) => writeAnnounce(w, { status: active ? "active" : "ended", suffix })))
                .catch(() => stop());
        };
        const watcher = (path, active) => {
            if (pathHasPrefix(path, prefix))
                send(path, active);
        };
        const stop = () => {
            this.#announceWatchers.delete(watcher);
        };
        const current = [...this.#tracks.values()].map((t) => t.path).filter((p) => pathHasPrefix(p, prefix));
        current.sort(comparePaths);
        for (const p of current)
            send(p, true);
        this.#announceWatchers.add(watcher);
        // The subscriber sends nothing more; its FIN (or reset) ends the interest.
        try {
            while (!(await reader.atEnd()))
                await reader.bytes(Number.MAX_SAFE_INTEGER);
            stop();
            await sender.finish();
        }
        catch {
            stop();
            await sender.reset(ErrorCode.WebTransport);
        }
    }
    /** A subscribe stream: Info, then a group stream per group until either side ends it (§4.4). */
    async serveSubscribe(reader, sender) {
        const sub = await reader.read(readSubscribe);
        const track = this.#tracks.get(pathKey(sub.path));
        if (!track)
            throw new MoqError(ErrorCode.NotFound, "unknown track");
        // Join at the latest group (from its first frame), then every group appended
        // after it, in order: even several appended at once are all served (0.5.0
        // would skip the intermediate ones, §4.4).
        const pending = track.latest ? [track.latest] : [];
        const stopListening = trackOps.onGroup(track, (g) => pending.push(g));
        // Info before any group stream (§7.3).
        try {
            await sender.write(encode((w) => writeInfo(w, trackInfo(track))));
        }
        catch (e) {
            stopListening();
            throw e;
        }
        let active = true;
        // One promise raced against every wait: a Notify here would collect a waiter per wake-up.
        const stopped = new Deferred();
        const onSessionClose = () => {
            active = false;
            stopped.resolve();
        };
        this.#closeHooks.add(onSessionClose);
        const watch = (async () => {
            try {
                // SubscribeUpdate* (content ignored, like 0.5.0), then the subscriber's FIN.
                while ((await reader.readMaybe(readSubscribeUpdate)) !== undefined) {
                    // ignored
                }
            }
            catch {
                // reset by the subscriber or malformed: stop serving either way
            }
            active = false;
            stopped.resolve();
        })();
        const serving = [];
        const serveGroup = async (group) => {
            const frames = groupOps.frames(group);
            let stream;
            try {
                stream = new Sender(await this.#transport.createUnidirectionalStream({ sendOrder: sendOrder(sub.priority, sub.groupOrder, group.sequence) }));
                await stream.write(encode((w) => {
                    w.varint(0);
                    writeGroup(w, { subscribe: sub.id, sequence: group.sequence });
                }));
                let next = 0;
                for (;;) {
                    while (next < frames.length) {
                        const payload = frames[next++];
                        const header = encode((w) => w.varint(payload.length));
                        // Small frames go out in one write (one packet rather than two).
                        if (payload.length <= 16384)
                            await stream.write(concatBytes([header, payload]));
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
                    if (group.done)
                        break;
                    if (!active) {
                        await stream.reset(ErrorCode.Cancel);
                        return;
                    }
                    await Promise.race([groupOps.changed(group).wait(), stopped.promise]);
                }
                await stream.finish();
            }
            catch {
                // Writing failed (e.g. the subscriber stopped the stream): reset it and
                // account for the group with a GroupDrop carrying the transport code (§4.5).
                await stream?.reset(ErrorCode.WebTransport);
                if (active)
                    await sendDrop(group.sequence, ErrorCode.WebTransport);
            }
        };
        const sendDrop = async (sequence, code) => {
            try {
                await sender.write(encode((w) => writeGroupDrop(w, { sequence, count: 0, code })));
            }
            catch {
                // the subscribe stream is gone
            }
        };
        while (active && !this.#closed) {
            for (let g = pending.shift(); g !== undefined; g = pending.shift())
                serving.push(serveGroup(g));
            if (track.closed)
                break;
            await Promise.race([trackOps.changed(track).wait(), stopped.promise]);
        }
        stopListening();
        await Promise.all(serving);
        this.#closeHooks.delete(onSessionClose);
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
}
