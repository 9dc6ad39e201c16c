/**
 * The subscriber half of a session: our subscribe, announce and info streams,
 * and the group streams the peer sends for our subscriptions (WIRE.md §4.3–§4.6).
 *
 * `Subscription` and `Announced` keep their state in `#` fields. The
 * `Subscriber` below drives them through `subscriptionOps` and `announcedOps`,
 * which their static blocks fill in and this module does not export, so code
 * outside it sees only the public API.
 */
import { encode, pathKey } from "./codec.js";
import { DecodeError, ErrorCode, MoqError } from "./error.js";
import { readAnnounceLive, readGroupDrop, readInfo, writeAnnounceInterest, writeBiStreamType, writeInfoRequest, writeSubscribe, } from "./message.js";
import { AsyncQueue, Deferred } from "./queue.js";
import { resetAndStop, Sender } from "./sender.js";
import { GroupReader, StreamReader } from "./stream.js";
import { streamError } from "./transport.js";
/** How long group streams are still accepted after the publisher ended a subscription. */
export const STRAGGLER_GRACE_MS = 200;
/** What the subscriber half does to a subscription beyond its API (set by its static block). */
let subscriptionOps;
/**
 * A subscription: an async iterator of the track's groups as their streams
 * arrive (in arrival order; each group's frames are read incrementally with
 * the {@link GroupReader}). Breaking out of a `for await` loop unsubscribes.
 */
export class Subscription {
    id;
    path;
    latestOnly;
    #groups = new AsyncQueue();
    #info = new Deferred();
    #end = new Deferred();
    #forget;
    #reader;
    #sender;
    #closedByUs = false;
    /** Highest group sequence delivered so far. */
    #newest = -1;
    /** GroupDrop messages received from the publisher (the most recent 1000). */
    drops = [];
    /** Groups stopped without being delivered (only with `latestOnly`). */
    skipped = 0;
    constructor(
    /** Subscribe id (unique in this session, from 0 upward). */
    id, 
    /** Track path. */
    path, 
    /** See {@link SubscribeOptions.latestOnly}. */
    latestOnly, forget) {
        this.id = id;
        this.path = path;
        this.latestOnly = latestOnly;
        this.#forget = forget;
    }
    /** The publisher's Info: resolves when it arrives; rejects if the subscription fails first. */
    get info() {
        return this.#info.promise;
    }
    /** Resolves when the subscription has ended cleanly; rejects with the error otherwise. */
    get ended() {
        return this.#end.promise;
    }
    /** Runs the subscribe stream. */
    async #run(transport, message) {
        try {
            const bidi = await transport.createBidirectionalStream();
            this.#sender = new Sender(bidi.writable);
            this.#reader = new StreamReader(bidi.readable);
            if (this.#closedByUs) {
                await this.#sender.reset(ErrorCode.Cancel);
                await this.#reader.cancel(ErrorCode.Cancel);
                return;
            }
            await this.#sender.write(encode((w) => {
                writeBiStreamType(w, "subscribe");
                writeSubscribe(w, message);
            }));
            const info = await this.#reader.read(readInfo);
            this.#info.resolve(info);
            for (;;) {
                const drop = await this.#reader.readMaybe(readGroupDrop);
                if (drop === undefined)
                    break;
                this.drops.push(drop);
                if (this.drops.length > 1000)
                    this.drops.shift();
            }
            // The publisher ended the subscription (FIN): finish our side too (§12).
            // Its last group streams may still be on the way (streams are not ordered
            // with each other), so keep accepting them for a moment.
            if (!this.#closedByUs)
                void this.#sender.finish();
            await new Promise((resolve) => setTimeout(resolve, STRAGGLER_GRACE_MS));
            this.#finish(undefined);
        }
        catch (e) {
            const err = streamError(e);
            if (err instanceof DecodeError) {
                await this.#sender?.reset(err.code);
                await this.#reader?.cancel(err.code);
            }
            this.#finish(err);
        }
    }
    /** A group stream for this subscription arrived. */
    #deliver(group) {
        if (this.latestOnly && group.sequence <= this.#newest) {
            this.#skip(group);
            return;
        }
        if (!this.#groups.push(group))
            void group.cancel(ErrorCode.Cancel);
    }
    #skip(group) {
        this.skipped++;
        void group.cancel(ErrorCode.Cancel);
    }
    async #nextResult() {
        for (;;) {
            const r = await this.#groups.next();
            if (r.done)
                return r;
            if (!this.latestOnly) {
                this.#newest = Math.max(this.#newest, r.value.sequence);
                return r;
            }
            // Skip ahead to the newest waiting group.
            let best = r.value;
            for (const g of this.#groups.drain()) {
                if (g.sequence > best.sequence) {
                    this.#skip(best);
                    best = g;
                }
                else
                    this.#skip(g);
            }
            if (best.sequence <= this.#newest) {
                this.#skip(best);
                continue;
            }
            this.#newest = best.sequence;
            return { value: best, done: false };
        }
    }
    #finish(error) {
        if (this.#closedByUs)
            error = undefined;
        this.#forget(this);
        if (!this.#info.settled)
            this.#info.reject(error ?? new MoqError(ErrorCode.Cancel, "subscription ended before Info"));
        if (error)
            this.#end.reject(error);
        else
            this.#end.resolve();
        if (!this.#closedByUs)
            void this.#sender?.finish();
        this.#groups.close(error);
    }
    /** The next group, or `undefined` when the subscription has ended. */
    async nextGroup() {
        const r = await this.#nextResult();
        return r.done ? undefined : r.value;
    }
    [Symbol.asyncIterator]() {
        return {
            next: () => this.#nextResult(),
            return: async () => {
                this.close();
                return { value: undefined, done: true };
            },
        };
    }
    /**
     * Unsubscribe: FIN our side of the subscribe stream and stop reading it
     * (STOP_SENDING 0); groups not yet taken are cancelled (§4.4).
     */
    close() {
        if (this.#closedByUs)
            return;
        this.#closedByUs = true;
        void this.#sender?.finish();
        void this.#reader?.cancel(ErrorCode.Cancel);
        for (const g of this.#groups.drain())
            void g.cancel(ErrorCode.Cancel);
        this.#finish(undefined);
    }
    /** The session is gone. */
    #fail(error) {
        if (this.#closedByUs || this.#groups.isClosed)
            return;
        this.#finish(error);
    }
    static {
        subscriptionOps = {
            create: (id, path, latestOnly, forget) => new Subscription(id, path, latestOnly, forget),
            run: (sub, transport, message) => sub.#run(transport, message),
            deliver: (sub, group) => sub.#deliver(group),
            fail: (sub, error) => sub.#fail(error),
        };
    }
}
/** What the subscriber half does to an announce interest beyond its API (set by its static block). */
let announcedOps;
/**
 * The set of paths a peer announces under a prefix, as an async iterator of
 * changes. Breaking out of a `for await` loop ends the interest.
 */
export class Announced {
    prefix;
    #changes = new AsyncQueue();
    #active = new Map();
    #live = new Deferred();
    #forget;
    #reader;
    #sender;
    #closedByUs = false;
    constructor(
    /** The prefix of interest. */
    prefix, forget) {
        this.prefix = prefix;
        this.#forget = forget;
    }
    /** Paths active right now. */
    get active() {
        return [...this.#active.values()];
    }
    /** Resolves if the peer marks the set as caught up (status "live", crates 0.7+ only). */
    get live() {
        return this.#live.promise;
    }
    /** Runs the announce stream. */
    async #run(transport) {
        try {
            const bidi = await transport.createBidirectionalStream();
            this.#sender = new Sender(bidi.writable);
            this.#reader = new StreamReader(bidi.readable);
            if (this.#closedByUs) {
                await this.#sender.reset(ErrorCode.Cancel);
                await this.#reader.cancel(ErrorCode.Cancel);
                return;
            }
            await this.#sender.write(encode((w) => {
                writeBiStreamType(w, "announce");
                writeAnnounceInterest(w, { prefix: this.prefix });
            }));
            for (;;) {
                const msg = await this.#reader.readMaybe(readAnnounceLive);
                if (msg === undefined)
                    break;
                if (msg.status === "live") {
                    this.#live.resolve();
                    continue;
                }
                const path = [...this.prefix, ...msg.suffix];
                const key = pathKey(path);
                // Duplicate / unknown statuses close the stream (§4.3).
                if (msg.status === "active") {
                    if (this.#active.has(key))
                        throw new MoqError(ErrorCode.Duplicate, `announced twice: ${path.join("/")}`);
                    this.#active.set(key, path);
                }
                else {
                    if (!this.#active.delete(key))
                        throw new MoqError(ErrorCode.NotFound, `ended but not active: ${path.join("/")}`);
                }
                this.#changes.push({ path, active: msg.status === "active" });
            }
            void this.#sender.finish();
            this.#changes.close();
        }
        catch (e) {
            const err = streamError(e);
            if (this.#closedByUs)
                return;
            if (err instanceof DecodeError || err.code === ErrorCode.Duplicate || err.code === ErrorCode.NotFound) {
                await this.#sender?.reset(err.code);
                await this.#reader?.cancel(err.code);
            }
            this.#changes.close(err);
        }
    }
    /** The next change, or `undefined` when the publisher ended the stream. */
    async next() {
        const r = await this.#changes.next();
        return r.done ? undefined : r.value;
    }
    [Symbol.asyncIterator]() {
        return {
            next: () => this.#changes.next(),
            return: async () => {
                this.close();
                return { value: undefined, done: true };
            },
        };
    }
    /** End the interest: FIN our side and stop reading (STOP_SENDING 0). */
    close() {
        if (this.#closedByUs)
            return;
        this.#closedByUs = true;
        void this.#sender?.finish();
        void this.#reader?.cancel(ErrorCode.Cancel);
        this.#changes.close();
        this.#forget(this);
    }
    /** The session is gone. */
    #fail(error) {
        if (!this.#closedByUs)
            this.#changes.close(error);
    }
    static {
        announcedOps = {
            create: (prefix, forget) => new Announced(prefix, forget),
            run: (a, transport) => a.#run(transport),
            fail: (a, error) => a.#fail(error),
        };
    }
}
/**
 * Our subscriptions and announce interests in one session, and the dispatch of
 * the peer's group streams to them. The session checks it is open before
 * calling in; not part of the public API.
 */
export class Subscriber {
    #transport;
    #nextSubscribeId = 0;
    #subscriptions = new Map();
    #announced = new Set();
    constructor(transport) {
        this.#transport = transport;
    }
    /**
     * Subscribe to the track at `path`. The id is registered before the
     * Subscribe is sent, so group streams that overtake the Info are accepted.
     */
    subscribe(path, options) {
        const id = this.#nextSubscribeId++;
        const forget = (s) => {
            if (this.#subscriptions.get(s.id) === s)
                this.#subscriptions.delete(s.id);
        };
        const sub = subscriptionOps.create(id, [...path], options.latestOnly ?? false, forget);
        this.#subscriptions.set(id, sub);
        void subscriptionOps.run(sub, this.#transport, {
            id,
            path: [...path],
            priority: options.priority ?? 0,
            groupOrder: options.order ?? "desc",
            groupExpires: options.expires ?? 0,
            groupMin: options.min ?? null,
            groupMax: options.max ?? null,
        });
        return sub;
    }
    /** Ask the peer about the track at `path` (info stream, §4.6). */
    async info(path) {
        const bidi = await this.#transport.createBidirectionalStream();
        const sender = new Sender(bidi.writable);
        const reader = new StreamReader(bidi.readable);
        try {
            await sender.write(encode((w) => {
                writeBiStreamType(w, "info");
                writeInfoRequest(w, { path });
            }));
            const info = await reader.read(readInfo);
            await sender.finish();
            await reader.cancel(ErrorCode.Cancel);
            return info;
        }
        catch (e) {
            const err = streamError(e);
            if (err instanceof DecodeError)
                await resetAndStop(reader, sender, err.code);
            throw err;
        }
    }
    /** Watch the paths the peer announces under `prefix`. */
    announced(prefix) {
        const a = announcedOps.create([...prefix], (gone) => this.#announced.delete(gone));
        this.#announced.add(a);
        void announcedOps.run(a, this.#transport);
        return a;
    }
    /** A group stream arrived: dispatch it by subscribe id, even before Info (§7.3). */
    async receiveGroup(stream) {
        const reader = new StreamReader(stream);
        let group;
        try {
            group = await GroupReader.open(reader);
        }
        catch (e) {
            const err = streamError(e);
            await reader.cancel(err instanceof DecodeError ? ErrorCode.Decode : err.code);
            return;
        }
        const sub = this.#subscriptions.get(group.subscribe);
        if (sub) {
            subscriptionOps.deliver(sub, group);
            return;
        }
        // An id we used and closed: Cancel; an id we never sent: NotFound (§4.5).
        await reader.cancel(group.subscribe < this.#nextSubscribeId ? ErrorCode.Cancel : ErrorCode.NotFound);
    }
    /** The session is gone: every subscription and interest fails with `reason`. */
    close(reason) {
        for (const sub of [...this.#subscriptions.values()])
            subscriptionOps.fail(sub, reason);
        this.#subscriptions.clear();
        for (const a of this.#announced)
            announcedOps.fail(a, reason);
        this.#announced.clear();
    }
}
