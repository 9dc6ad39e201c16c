/**
 * A moqf-02 session over WebTransport (WIRE.md §4): the handshake, the loops
 * that accept the peer's streams and hand them to the publisher half
 * (publish.ts) or the subscriber half (subscribe.ts), and the close. Both
 * halves run at once: either side may publish and subscribe.
 */
import { encode } from "./codec.js";
import { DecodeError, ErrorCode, MoqError, SessionClosedError } from "./error.js";
import { VERSION, readBiStreamType, readInfo, readSessionClient, readSessionServer, writeBiStreamType, writeSessionClient, writeSessionServer, } from "./message.js";
import { Publisher } from "./publish.js";
import { Deferred, within } from "./queue.js";
import { resetAndStop, Sender } from "./sender.js";
import { StreamReader } from "./stream.js";
import { Subscriber } from "./subscribe.js";
import { StreamResetError, sessionEnd, streamError } from "./transport.js";
import { sessionUrl } from "./url.js";
/**
 * How long a failed stream waits for the session close that may have caused it
 * (the close carries the code and reason; a browser may report the stream's
 * failure first).
 */
const CLOSE_GRACE_MS = 100;
function hexToBytes(hex) {
    const clean = hex.replace(/[^0-9a-fA-F]/g, "");
    if (clean.length % 2 !== 0)
        throw new Error("odd number of hex digits");
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++)
        out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
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
export async function connect(url, options = {}) {
    const WebTransportCtor = globalThis.WebTransport;
    if (!WebTransportCtor)
        throw new Error("this environment has no WebTransport");
    const wtOptions = {};
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
    }
    catch (e) {
        if (!(e instanceof SessionClosedError)) {
            try {
                transport.close({ closeCode: e instanceof MoqError ? e.code : ErrorCode.WebTransport, reason: "handshake failed" });
            }
            catch {
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
async function failure(e, ended) {
    const err = streamError(e);
    if (err instanceof SessionClosedError)
        return err;
    // Our own verdict on what the peer sent (its version, a decode error) stands.
    const fromTransport = err.code === ErrorCode.WebTransport || err instanceof StreamResetError;
    const end = fromTransport ? await within(ended, CLOSE_GRACE_MS) : undefined;
    return end instanceof SessionClosedError ? end : err;
}
/** An established moqf-02 session. Both sides may publish and subscribe. */
export class Session {
    transport;
    #control;
    #incomingBidi;
    /** How the transport ends (see {@link sessionEnd}). */
    #ended;
    #subscriber;
    #publisher;
    #closed = new Deferred();
    #isClosed = false;
    constructor(
    /** The underlying WebTransport session. */
    transport, control, incomingBidi, ended) {
        this.transport = transport;
        this.#control = control;
        this.#incomingBidi = incomingBidi;
        this.#ended = ended;
        this.#subscriber = new Subscriber(transport);
        this.#publisher = new Publisher(transport);
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
    static async connect(transport) {
        const ended = sessionEnd(transport);
        // The end, as a rejection: the handshake stops at the session's close.
        const closing = ended.then((end) => Promise.reject(end));
        closing.catch(() => { });
        let bidi;
        try {
            await Promise.race([transport.ready, closing]);
            bidi = await Promise.race([transport.createBidirectionalStream(), closing]);
        }
        catch (e) {
            throw await failure(e, ended);
        }
        const sender = new Sender(bidi.writable);
        const reader = new StreamReader(bidi.readable);
        try {
            await sender.write(encode((w) => {
                writeBiStreamType(w, "session");
                writeSessionClient(w, { versions: [VERSION], extensions: new Map() });
            }));
            const server = await Promise.race([reader.read(readSessionServer), closing]);
            if (server.version !== VERSION) {
                throw new MoqError(ErrorCode.Version, `server chose version 0x${server.version.toString(16)}`);
            }
        }
        catch (e) {
            const err = await failure(e, ended);
            if (!(err instanceof SessionClosedError)) {
                // A reset by the server is a transport error (4) for our side (§4.2).
                await resetAndStop(reader, sender, err instanceof StreamResetError ? ErrorCode.WebTransport : err.code);
            }
            throw err;
        }
        const session = new Session(transport, { reader, sender }, transport.incomingBidirectionalStreams.getReader(), ended);
        session.#run();
        return session;
    }
    /**
     * Run the server handshake: the first incoming bidi stream must be the
     * session stream; answer SessionServer if the client offers 0xff0bad02,
     * otherwise reset it with Version (9). Used by tests and peer-to-peer setups.
     */
    static async accept(transport) {
        await transport.ready;
        const incoming = transport.incomingBidirectionalStreams.getReader();
        const next = await incoming.read();
        if (next.done)
            throw new MoqError(ErrorCode.WebTransport, "session closed before the handshake");
        const reader = new StreamReader(next.value.readable);
        const sender = new Sender(next.value.writable);
        try {
            const type = await reader.read(readBiStreamType);
            if (type !== "session")
                throw new MoqError(ErrorCode.UnexpectedStream, `first stream is ${type}`);
            const client = await reader.read(readSessionClient);
            if (!client.versions.includes(VERSION))
                throw new MoqError(ErrorCode.Version, "no common version");
            await sender.write(encode((w) => writeSessionServer(w, { version: VERSION, extensions: new Map() })));
        }
        catch (e) {
            const err = streamError(e);
            await resetAndStop(reader, sender, err.code);
            throw err;
        }
        const session = new Session(transport, { reader, sender }, incoming, sessionEnd(transport));
        session.#run();
        return session;
    }
    /**
     * Resolves with the reason once the session is closed: a
     * {@link SessionClosedError} for a session close (the peer's, `remote`, or
     * ours), with its code and reason; a {@link MoqError} with code 4 for a
     * connection lost without one.
     */
    get closed() {
        return this.#closed.promise;
    }
    #run() {
        void this.#watchControl();
        void this.#acceptBidi();
        void this.#acceptUni();
        void this.#ended.then((end) => this.#shutdown(end));
    }
    /**
     * After the handshake nothing more is ever written on the session stream
     * (§4.2, §8.3); bytes from the peer are parsed as Info (what 0.5.0 does) and
     * ignored. A FIN ends the session with Cancel, a decode error with Decode.
     */
    async #watchControl() {
        try {
            while ((await this.#control.reader.readMaybe(readInfo)) !== undefined) {
                // ignored
            }
            this.close(ErrorCode.Cancel, "cancelled");
        }
        catch (e) {
            // The peer's session close fails this stream too: let the close say why.
            if (!this.#isClosed)
                await within(this.#ended, CLOSE_GRACE_MS);
            if (this.#isClosed)
                return;
            const err = streamError(e);
            this.close(err instanceof DecodeError ? ErrorCode.Decode : ErrorCode.WebTransport, err.message);
        }
    }
    async #acceptBidi() {
        try {
            for (;;) {
                const next = await this.#incomingBidi.read();
                if (next.done)
                    break;
                void this.#handleBidi(next.value);
            }
        }
        catch {
            // the session is closing
        }
    }
    async #acceptUni() {
        const incoming = this.transport.incomingUnidirectionalStreams.getReader();
        try {
            for (;;) {
                const next = await incoming.read();
                if (next.done)
                    break;
                void this.#subscriber.receiveGroup(next.value);
            }
        }
        catch {
            // the session is closing
        }
    }
    async #handleBidi(bidi) {
        const reader = new StreamReader(bidi.readable);
        const sender = new Sender(bidi.writable);
        try {
            const type = await reader.read(readBiStreamType);
            switch (type) {
                case "session":
                    throw new MoqError(ErrorCode.UnexpectedStream, "second session stream");
                case "announce":
                    return await this.#publisher.serveAnnounce(reader, sender);
                case "subscribe":
                    return await this.#publisher.serveSubscribe(reader, sender);
                case "info":
                    return await this.#publisher.serveInfo(reader, sender);
                case "fetch":
                    // Not served (0.5.0 never completes a fetch either, §4.7).
                    throw new MoqError(ErrorCode.NotFound, "fetch is not served");
            }
        }
        catch (e) {
            const err = streamError(e);
            await resetAndStop(reader, sender, err.code);
        }
    }
    /**
     * Subscribe to the track at `path`. The id is registered before the
     * Subscribe is sent, so group streams that overtake the Info are accepted.
     */
    subscribe(path, options = {}) {
        if (this.#isClosed)
            throw new MoqError(ErrorCode.Cancel, "session is closed");
        return this.#subscriber.subscribe(path, options);
    }
    /**
     * Ask the peer about the track at `path` (info stream, §4.6): its priority,
     * order, expiry and latest group. Rejects with NotFound (13) for an unknown
     * track. 0.5.0 peers answer this, though they never send it themselves.
     */
    async info(path) {
        if (this.#isClosed)
            throw new MoqError(ErrorCode.Cancel, "session is closed");
        return await this.#subscriber.info(path);
    }
    /** Watch the paths the peer announces under `prefix` (default: everything). */
    announced(prefix = []) {
        if (this.#isClosed)
            throw new MoqError(ErrorCode.Cancel, "session is closed");
        return this.#subscriber.announced(prefix);
    }
    /**
     * Publish a track at `path`: it is announced to the peer's announce streams
     * and served to its subscriptions. Publishing a path twice is an error.
     */
    publish(path, options = {}) {
        if (this.#isClosed)
            throw new MoqError(ErrorCode.Cancel, "session is closed");
        return this.#publisher.publish(path, options);
    }
    /** Tracks published in this session right now. */
    get published() {
        return this.#publisher.published;
    }
    /** Close the session with `code` (default 0) and a reason text. */
    close(code = ErrorCode.Cancel, reason = "") {
        if (this.#isClosed)
            return;
        try {
            this.transport.close({ closeCode: code, reason });
        }
        catch {
            // already closed
        }
        this.#shutdown(new SessionClosedError(code, reason, false));
    }
    #shutdown(reason) {
        if (this.#isClosed)
            return;
        this.#isClosed = true;
        this.#closed.resolve(reason);
        this.#subscriber.close(reason);
        this.#publisher.close();
    }
}
