/**
 * The page's media player: a live broadcast in the format of moq-karp 0.10
 * (docs/media.md) decoded with WebCodecs, video drawn on a canvas and audio
 * played with Web Audio, both against one playout clock.
 *
 * - Follows the announcements under a broadcast name and plays the largest id
 *   (`LiveBroadcast`); a restarted publisher (a new id) is switched to, with new
 *   subscriptions and decoders.
 * - Reads the catalog track (the broadcast's own path), subscribes to the first
 *   video and the first audio rendition the browser can decode, starting at their
 *   latest group (low latency) and moving to a newer group whenever one arrives.
 * - Reads the publisher's clock track (`clock`, our extension: docs/media.md), when
 *   the broadcast has one, for the end-to-end latency it shows.
 * - The playout clock maps a media timestamp to a time on `performance.now()`:
 *   per track, the smallest "arrival − timestamp" seen (the fastest frame), the
 *   largest of those over the tracks (so every track can keep up), plus a small
 *   buffer. Video frames are drawn when their time comes; audio buffers are
 *   scheduled on the AudioContext at the same times.
 */
import { CLOCK_TRACK, parseClock } from "./clock.js";
import { LiveBroadcast, aacDescription, decodeMediaFrame, parseCatalog, pathKey, } from "../src/index.js";
/** How far after its track's fastest frame a frame is played: room for jitter and audio scheduling. */
const BUFFER_MS = 50;
/** A frame this much later than its track's fastest one counts as late... */
const LATE_MS = 150;
/** ...and this many late frames in a row move that track's clock later (the path got slower). */
const LATE_STREAK = 5;
/** Decoded video frames kept waiting for their time at most (older ones are dropped). */
const MAX_QUEUED_FRAMES = 30;
/** Decoder outputs kept for latency measurements (`Player.outputs`). */
const MAX_OUTPUTS = 20000;
/** The wall clock in µs since the Unix epoch, as precisely as the page can tell. */
const wallMicros = () => (performance.timeOrigin + performance.now()) * 1000;
/** Maps media timestamps (µs) to `performance.now()` times (ms); see the module comment. */
class PlayoutClock {
    /** Per track: the smallest arrival − timestamp seen (ms), and its run of late frames. */
    #tracks = new Map();
    /** Called when the clock moves earlier by more than a few ms (scheduled audio is then stale). */
    onJump = () => { };
    /** A frame of `track` with `timestamp` (µs) arrived at `now` (ms). */
    observe(track, timestamp, now) {
        const o = now - timestamp / 1000;
        const before = this.offset;
        const t = this.#tracks.get(track);
        if (t === undefined || o < t.offset)
            this.#tracks.set(track, { offset: o, late: 0 });
        else if (o > t.offset + LATE_MS) {
            if (++t.late >= LATE_STREAK)
                this.#tracks.set(track, { offset: o, late: 0 });
        }
        else
            t.late = 0;
        const after = this.offset;
        if (before !== undefined && after !== undefined && after < before - 5)
            this.onJump();
    }
    /** The offset shared by every track: the largest of theirs, so that each can keep up. */
    get offset() {
        let max;
        for (const t of this.#tracks.values())
            max = max === undefined ? t.offset : Math.max(max, t.offset);
        return max;
    }
    /** When (on `performance.now()`) the frame with `timestamp` plays; undefined before any frame. */
    playout(timestamp) {
        const offset = this.offset;
        return offset === undefined ? undefined : timestamp / 1000 + offset + BUFFER_MS;
    }
}
/**
 * Reads a media track's frames: the current group's in order, moving to a newer
 * group as soon as one arrives (what is left of the older one is late). Ends when
 * the subscription does or `stopped()` says so.
 */
async function readTrack(sub, onFrame, onGroup, stopped) {
    let group = await sub.nextGroup();
    while (group !== undefined && !stopped()) {
        onGroup(false);
        const next = sub.nextGroup();
        let index = 0;
        let newer = null; // null: the current group is still being read
        for (;;) {
            const frame = group.readFrame().then((f) => ({ frame: f }), (e) => ({ error: e }));
            const r = await Promise.race([frame, next.then((g) => ({ group: g }))]);
            if (stopped())
                return;
            if ("group" in r) {
                // A newer group exists: leave this one (its frames would only be late).
                void group.cancel();
                onGroup(true);
                newer = r.group;
                break;
            }
            if ("error" in r || r.frame === undefined)
                break; // a failed group is skipped; an ended one is done
            let media;
            try {
                media = decodeMediaFrame(r.frame);
            }
            catch {
                // A frame shorter than its timestamp: the rest of this group cannot be trusted.
                void group.cancel();
                onGroup(true);
                break;
            }
            onFrame({ timestamp: media.timestamp, payload: media.payload, keyframe: index++ === 0 });
        }
        group = newer === null ? await next : newer;
    }
}
/** The playback of one broadcast (one id): its subscriptions and decoders. */
class Playback {
    session;
    path;
    player;
    #subs = [];
    #clockSub;
    #video;
    #audio;
    #closed = false;
    clock = new PlayoutClock();
    /** The audio renditions' next contiguous start on the AudioContext, and the sources scheduled. */
    #audioNext = 0;
    #sources = new Map();
    /** The selected renditions, as JSON, to tell whether a new catalog changes them. */
    #selected = "";
    /** When each video frame still in the decoder was read (timestamp → wall µs). */
    received = new Map();
    constructor(session, path, player) {
        this.session = session;
        this.path = path;
        this.player = player;
        this.clock.onJump = () => this.#flushAudio();
    }
    get closed() {
        return this.#closed;
    }
    /** Reads catalogs until the broadcast ends; each one that changes the renditions restarts them. */
    async run() {
        void this.#readClock();
        const catalogSub = this.session.subscribe(this.path, { priority: -1, order: "desc", latestOnly: true });
        this.#subs.push(catalogSub);
        for (let group = await catalogSub.nextGroup(); group !== undefined && !this.#closed; group = await catalogSub.nextGroup()) {
            const json = await group.readFrame();
            void group.cancel();
            if (json === undefined || this.#closed)
                continue;
            const catalog = parseCatalog(json);
            await this.#start(catalog);
        }
    }
    /**
     * Reads the publisher's clock track, if the broadcast has one (moq-karp's publishers do
     * not): each update becomes the player's `reference`, for the latency it shows.
     */
    async #readClock() {
        const sub = this.session.subscribe([...this.path, CLOCK_TRACK], { priority: -1, order: "desc", latestOnly: true });
        this.#clockSub = sub;
        try {
            for (let group = await sub.nextGroup(); group !== undefined && !this.#closed; group = await sub.nextGroup()) {
                const bytes = await group.readFrame();
                void group.cancel();
                const reference = bytes === undefined ? undefined : parseClock(bytes);
                if (reference !== undefined && !this.#closed)
                    this.player.reference = reference;
            }
        }
        catch {
            // No clock track (refused as not found) or the broadcast ended: the latency stays unknown.
        }
    }
    /** Subscribes to the first decodable video and audio renditions of `catalog`, and sets up their decoders. */
    async #start(catalog) {
        const video = await firstSupported(catalog.video, videoConfig);
        const audio = await firstSupported(catalog.audio, audioConfig);
        const selected = JSON.stringify([video?.track, video?.codec, audio?.track, audio?.codec]);
        if (selected === this.#selected || this.#closed)
            return;
        this.#selected = selected;
        this.#stopMedia();
        const stats = this.player.stats;
        if (video) {
            stats.video.codec = video.codec;
            stats.video.width = video.resolution.width;
            stats.video.height = video.resolution.height;
            this.#startVideo(video);
        }
        if (audio) {
            stats.audio.codec = audio.codec;
            stats.audio.sampleRate = audio.sampleRate;
            stats.audio.channels = audio.channelCount;
            this.#startAudio(audio);
        }
        if (!video && !audio)
            this.player.setStatus(`nothing this browser can decode in ${this.path.join("/")}`);
        else
            this.player.setStatus(`playing ${this.path.join("/")}`);
    }
    #startVideo(r) {
        const stats = this.player.stats.video;
        let needKey = true;
        const decoder = new VideoDecoder({
            output: (frame) => {
                if (this.#closed || decoder !== this.#video) {
                    frame.close();
                    return;
                }
                stats.decoded++;
                stats.decodedWidth = frame.displayWidth;
                stats.decodedHeight = frame.displayHeight;
                this.player.videoOutput(this, frame);
            },
            error: (e) => {
                stats.errors++;
                this.player.setStatus(`video decoder: ${e.message}`);
            },
        });
        decoder.configure(videoConfig(r));
        this.#video = decoder;
        const sub = this.session.subscribe([...this.path, r.track.name], { priority: r.track.priority, order: "desc", latestOnly: true });
        this.#subs.push(sub);
        const track = `video:${r.track.name}`;
        void readTrack(sub, (f) => {
            stats.received++;
            this.clock.observe(track, f.timestamp, performance.now());
            if (decoder.state !== "configured")
                return;
            // After a skipped group or a decoder reset only a keyframe can start decoding again.
            if (needKey && !f.keyframe)
                return;
            needKey = false;
            this.received.set(f.timestamp, wallMicros());
            // Frames the decoder never outputs (it failed) must not pile up here.
            if (this.received.size > 300)
                this.received.delete(this.received.keys().next().value);
            decoder.decode(new EncodedVideoChunk({ type: f.keyframe ? "key" : "delta", timestamp: f.timestamp, data: f.payload }));
        }, (skipped) => {
            if (skipped) {
                stats.skippedGroups++;
                needKey = true;
            }
            else
                stats.groups++;
        }, () => this.#closed || decoder !== this.#video).catch((e) => this.player.setStatus(`video track: ${e instanceof Error ? e.message : String(e)}`));
    }
    #startAudio(r) {
        const stats = this.player.stats.audio;
        const decoder = new AudioDecoder({
            output: (data) => {
                if (this.#closed || decoder !== this.#audio) {
                    data.close();
                    return;
                }
                stats.decoded++;
                stats.samples += data.numberOfFrames;
                this.#play(data);
            },
            error: (e) => {
                stats.errors++;
                this.player.setStatus(`audio decoder: ${e.message}`);
            },
        });
        decoder.configure(audioConfig(r));
        this.#audio = decoder;
        const sub = this.session.subscribe([...this.path, r.track.name], { priority: r.track.priority, order: "desc", latestOnly: true });
        this.#subs.push(sub);
        const track = `audio:${r.track.name}`;
        void readTrack(sub, (f) => {
            stats.received++;
            this.clock.observe(track, f.timestamp, performance.now());
            if (decoder.state === "configured")
                decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: f.timestamp, data: f.payload }));
        }, () => { }, () => this.#closed || decoder !== this.#audio).catch((e) => this.player.setStatus(`audio track: ${e instanceof Error ? e.message : String(e)}`));
    }
    /** Schedules decoded audio at its playout time, back to back with the previous buffer when they touch. */
    #play(data) {
        const stats = this.player.stats.audio;
        const ctx = this.player.audioContext;
        const at = this.clock.playout(data.timestamp);
        if (!ctx || ctx.state !== "running" || at === undefined) {
            data.close();
            return;
        }
        const buffer = ctx.createBuffer(data.numberOfChannels, data.numberOfFrames, data.sampleRate);
        for (let ch = 0; ch < data.numberOfChannels; ch++) {
            data.copyTo(buffer.getChannelData(ch), { planeIndex: ch, format: "f32-planar" });
        }
        data.close();
        const timestamp = data.timestamp;
        let when = ctx.currentTime + (at - performance.now()) / 1000;
        // Within 10 ms of the end of the previous buffer: play it right after, without a gap or a click.
        if (Math.abs(when - this.#audioNext) < 0.01)
            when = this.#audioNext;
        if (when < ctx.currentTime) {
            stats.late++;
            return;
        }
        const source = ctx.createBufferSource();
        source.buffer = buffer;
        source.connect(ctx.destination);
        source.onended = () => this.#sources.delete(source);
        source.start(when);
        this.#sources.set(source, { when, timestamp, duration: buffer.duration });
        this.#audioNext = when + buffer.duration;
        stats.scheduled++;
    }
    /** The media time (µs) of the audio playing now, if any: the buffer under the AudioContext's clock. */
    audioPlaying() {
        const ctx = this.player.audioContext;
        if (!ctx || ctx.state !== "running")
            return undefined;
        const now = ctx.currentTime;
        for (const b of this.#sources.values()) {
            if (b.when <= now && now < b.when + b.duration)
                return b.timestamp + (now - b.when) * 1e6;
        }
        return undefined;
    }
    /** Stops the scheduled audio (the clock moved earlier: those buffers would overlap the next ones). */
    #flushAudio() {
        for (const s of this.#sources.keys()) {
            try {
                s.stop();
            }
            catch {
                // not started yet or already stopped
            }
        }
        this.#sources.clear();
        this.#audioNext = 0;
    }
    /** Ends the media subscriptions and decoders (the catalog subscription stays). */
    #stopMedia() {
        for (const sub of this.#subs.splice(1))
            sub.close();
        for (const d of [this.#video, this.#audio])
            if (d && d.state !== "closed")
                d.close();
        this.#video = undefined;
        this.#audio = undefined;
        this.#flushAudio();
    }
    close() {
        if (this.#closed)
            return;
        this.#closed = true;
        this.#stopMedia();
        for (const sub of this.#subs.splice(0))
            sub.close();
        this.#clockSub?.close();
    }
}
function videoConfig(r) {
    const config = { codec: r.codec, codedWidth: r.resolution.width, codedHeight: r.resolution.height, optimizeForLatency: true };
    if (r.description !== undefined)
        config.description = r.description;
    return config;
}
function audioConfig(r) {
    const config = { codec: r.codec, sampleRate: r.sampleRate, numberOfChannels: r.channelCount };
    const description = aacDescription(r);
    if (description !== undefined)
        config.description = description;
    return config;
}
/** The first rendition whose decoder configuration this browser supports. */
async function firstSupported(renditions, config) {
    for (const r of renditions) {
        try {
            const c = config(r);
            const support = "resolution" in r ? await VideoDecoder.isConfigSupported(c) : await AudioDecoder.isConfigSupported(c);
            if (support.supported)
                return r;
        }
        catch {
            // a malformed configuration: not this one
        }
    }
    return undefined;
}
function newStats() {
    return {
        broadcast: "",
        broadcasts: 0,
        status: "",
        video: { codec: "", width: 0, height: 0, decodedWidth: 0, decodedHeight: 0, received: 0, decoded: 0, drawn: 0, dropped: 0, groups: 0, skippedGroups: 0, errors: 0 },
        audio: { codec: "", sampleRate: 0, channels: 0, received: 0, decoded: 0, samples: 0, scheduled: 0, late: 0, errors: 0, context: "none" },
        latencyMs: undefined,
        behindMs: undefined,
        avSyncMs: undefined,
    };
}
/**
 * Plays the live broadcast under a name, following the announcements to the
 * newest id. `close()` stops everything.
 */
export class Player {
    stats = newStats();
    /** Every video frame out of the decoder (the last 20000), for latency measurements. */
    outputs = [];
    /**
     * The publisher's clock, when known: the wall clock (µs since the Unix epoch) at which
     * media time `timestamp` (µs) was read by the publisher. With it the player shows the
     * end-to-end latency. Media timestamps carry no wall clock, so it comes from outside
     * (e.g. `moq media publish --latency-log`, read by the latency script).
     */
    get reference() {
        return this.#reference;
    }
    set reference(ref) {
        this.#reference = ref;
        this.#latencies.length = 0;
        this.stats.latencyMs = undefined;
        // The frames already out of the decoder count at once.
        for (const o of this.outputs.slice(-30))
            this.#addLatency(o);
        this.#changed();
    }
    #reference;
    audioContext;
    #session;
    #name;
    #view;
    #playback;
    #closed = false;
    /** Decoded frames waiting for their time, oldest first. */
    #queue = [];
    #raf = 0;
    #renderPending = false;
    /** The last 30 latencies (ms), for the median shown. */
    #latencies = [];
    constructor(session, name, view) {
        this.#session = session;
        this.#name = name;
        this.#view = view;
        try {
            // Created in the click that starts playing, so that the browser lets it run.
            this.audioContext = new AudioContext({ latencyHint: "interactive" });
            this.stats.audio.context = this.audioContext.state;
            this.audioContext.onstatechange = () => {
                this.stats.audio.context = this.audioContext?.state ?? "none";
                this.#changed();
            };
        }
        catch {
            this.audioContext = undefined;
        }
        this.setStatus(`waiting for a broadcast under ${name.join("/")}`);
        void this.#follow();
        const tick = () => {
            if (this.#closed)
                return;
            this.#draw();
            this.#raf = requestAnimationFrame(tick);
        };
        this.#raf = requestAnimationFrame(tick);
    }
    /** The name followed. */
    get name() {
        return this.#name;
    }
    setStatus(text) {
        this.stats.status = text;
        this.#changed();
    }
    /** Resumes audio (browsers start an AudioContext suspended without a click). */
    async resumeAudio() {
        await this.audioContext?.resume();
    }
    /** Follows the announcements under the name; switches to a newer id when one appears. */
    async #follow() {
        const announced = this.#session.announced(this.#name);
        const live = new LiveBroadcast(this.#name);
        try {
            for (let change = await announced.next(); change && !this.#closed; change = await announced.next()) {
                if (!live.update(change))
                    continue;
                const path = live.live;
                if (path === undefined) {
                    this.setStatus(`${this.stats.broadcast} ended; waiting for a broadcast under ${this.#name.join("/")}`);
                    continue;
                }
                if (this.#playback && pathKey(this.#playback.path) === pathKey(path))
                    continue;
                this.#switchTo(path);
            }
        }
        catch (e) {
            if (!this.#closed)
                this.setStatus(`announcements failed: ${e instanceof Error ? e.message : String(e)}`);
        }
        finally {
            announced.close();
        }
    }
    #switchTo(path) {
        this.#playback?.close();
        for (const q of this.#queue.splice(0))
            q.frame.close();
        // A new broadcast has a timeline of its own: its clock track tells it anew.
        this.reference = undefined;
        const playback = new Playback(this.#session, path, this);
        this.#playback = playback;
        this.stats.broadcast = path.join("/");
        this.stats.broadcasts++;
        this.setStatus(`opening ${path.join("/")}`);
        playback.run().catch((e) => {
            if (!playback.closed)
                this.setStatus(`${path.join("/")}: ${e instanceof Error ? e.message : String(e)}`);
        });
    }
    /** A decoded video frame of `playback`: recorded, then queued for its time. */
    videoOutput(playback, frame) {
        const wall = wallMicros();
        const received = playback.received.get(frame.timestamp) ?? NaN;
        playback.received.delete(frame.timestamp);
        const output = { timestamp: frame.timestamp, received, wall };
        this.outputs.push(output);
        if (this.outputs.length > MAX_OUTPUTS)
            this.outputs.splice(0, this.outputs.length - MAX_OUTPUTS);
        this.#addLatency(output);
        this.#queue.push({ frame, playback });
        while (this.#queue.length > MAX_QUEUED_FRAMES) {
            this.#queue.shift().frame.close();
            this.stats.video.dropped++;
        }
        this.#changed();
    }
    /** With the publisher's clock known: `output`'s end-to-end latency joins the median shown. */
    #addLatency(output) {
        const ref = this.#reference;
        if (!ref)
            return;
        this.#latencies.push((output.wall - (ref.wall + output.timestamp - ref.timestamp)) / 1000);
        if (this.#latencies.length > 30)
            this.#latencies.shift();
        const sorted = [...this.#latencies].sort((a, b) => a - b);
        this.stats.latencyMs = sorted[Math.floor(sorted.length / 2)];
    }
    /** Draws the newest frame whose time has come; frames it passes over are dropped. */
    #draw() {
        const now = performance.now();
        let due;
        while (this.#queue.length > 0) {
            const head = this.#queue[0];
            const at = head.playback.clock.playout(head.frame.timestamp);
            if (at !== undefined && at > now)
                break;
            this.#queue.shift();
            if (due) {
                due.frame.close();
                this.stats.video.dropped++;
            }
            due = head;
        }
        if (due) {
            const { canvas } = this.#view;
            const frame = due.frame;
            if (canvas.width !== frame.displayWidth || canvas.height !== frame.displayHeight) {
                canvas.width = frame.displayWidth;
                canvas.height = frame.displayHeight;
            }
            canvas.getContext("2d")?.drawImage(frame, 0, 0);
            const offset = due.playback.clock.offset;
            if (offset !== undefined)
                this.stats.behindMs = now - (frame.timestamp / 1000 + offset);
            const audio = due.playback.audioPlaying();
            if (audio !== undefined)
                this.stats.avSyncMs = (audio - frame.timestamp) / 1000;
            frame.close();
            this.stats.video.drawn++;
            this.#changed();
        }
        if (this.#renderPending) {
            this.#renderPending = false;
            this.#view.render(this.stats);
        }
    }
    #changed() {
        this.#renderPending = true;
    }
    close() {
        if (this.#closed)
            return;
        this.#closed = true;
        cancelAnimationFrame(this.#raf);
        this.#playback?.close();
        this.#playback = undefined;
        for (const q of this.#queue.splice(0))
            q.frame.close();
        void this.audioContext?.close();
        this.setStatus("stopped");
        this.#view.render(this.stats);
    }
}
