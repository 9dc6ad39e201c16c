/**
 * Live media in the format of moq-karp 0.10, as the Rust crate moq-media reads
 * and writes it (docs/media.md): the catalog JSON, the media frame (timestamp
 * varint + codec payload), and which broadcast under a name is the live one.
 * No DOM and no WebCodecs here, so it runs (and is tested) anywhere.
 *
 * ```text
 *  <name>/<id>          catalog track: a group per catalog version, one frame of JSON
 *  <name>/<id>/video1   a track per rendition: a group per keyframe,
 *  <name>/<id>/audio2     frame = varint(timestamp in µs) ++ codec payload
 * ```
 */
import { Writer, decode } from "./codec.js";
import { DecodeError } from "./error.js";
const bad = (what) => new DecodeError("invalid_value", `catalog: ${what}`);
function object(v, what) {
    if (typeof v !== "object" || v === null || Array.isArray(v))
        throw bad(`${what} is not an object`);
    return v;
}
function integer(v, what, min, max) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
        throw bad(`${what} is not an integer in ${min}..${max}`);
    return v;
}
function string(v, what) {
    if (typeof v !== "string" || v === "")
        throw bad(`${what} is not a non-empty string`);
    return v;
}
function optionalBitrate(v, what) {
    return v === undefined || v === null ? undefined : integer(v, `${what}.bitrate`, 0, 0xffffffff);
}
function list(v, what) {
    if (v === undefined || v === null)
        return [];
    if (!Array.isArray(v))
        throw bad(`${what} is not an array`);
    return v;
}
function track(v, what) {
    const t = object(v, `${what}.track`);
    return { name: string(t.name, `${what}.track.name`), priority: integer(t.priority, `${what}.track.priority`, -128, 127) };
}
/** Lowercase or uppercase hex to bytes. */
function fromHex(text, what) {
    if (text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text))
        throw bad(`${what} is not hex`);
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++)
        out[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
    return out;
}
/**
 * Parses a catalog (one frame of the catalog track), as moq-media and moq-karp
 * 0.10 print it: `video` and `audio` arrays, each optional; unknown keys are
 * ignored (either side may add fields). Malformed JSON or fields throw a
 * {@link DecodeError} (`invalid_value`).
 */
export function parseCatalog(json) {
    let value;
    try {
        value = JSON.parse(typeof json === "string" ? json : new TextDecoder("utf-8", { fatal: true }).decode(json));
    }
    catch (e) {
        throw bad(`not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    const root = object(value, "the catalog");
    const video = list(root.video, "video").map((v, i) => {
        const what = `video[${i}]`;
        const r = object(v, what);
        const res = object(r.resolution, `${what}.resolution`);
        const description = r.description === undefined || r.description === null ? undefined : fromHex(string(r.description, `${what}.description`), `${what}.description`);
        return {
            track: track(r.track, what),
            codec: string(r.codec, `${what}.codec`),
            description,
            resolution: { width: integer(res.width, `${what}.resolution.width`, 0, 0xffff), height: integer(res.height, `${what}.resolution.height`, 0, 0xffff) },
            bitrate: optionalBitrate(r.bitrate, what),
        };
    });
    const audio = list(root.audio, "audio").map((v, i) => {
        const what = `audio[${i}]`;
        const r = object(v, what);
        return {
            track: track(r.track, what),
            codec: string(r.codec, `${what}.codec`),
            sampleRate: integer(r.sample_rate, `${what}.sample_rate`, 1, 0xffff),
            channelCount: integer(r.channel_count, `${what}.channel_count`, 1, 0xffff),
            bitrate: optionalBitrate(r.bitrate, what),
        };
    });
    return { video, audio };
}
/**
 * Reads a media frame: the timestamp varint, then the payload (a view, no copy).
 * Throws a {@link DecodeError} (`need_more`) when the bytes end inside the varint,
 * or `bounds_exceeded` for a timestamp above 2^53 − 1 µs.
 */
export function decodeMediaFrame(bytes) {
    const r = decode(bytes, (c) => c.varint("timestamp"));
    if (!r.ok)
        throw new DecodeError("need_more", "media frame shorter than its timestamp");
    return { timestamp: r.value, payload: bytes.subarray(r.size) };
}
/** The bytes of a media frame: the timestamp (µs) as a varint, then the payload. */
export function encodeMediaFrame(timestamp, payload) {
    const w = new Writer();
    w.varint(timestamp);
    w.bytes(payload);
    return w.finish();
}
/** The AAC sampling frequency table (ISO/IEC 14496-3 §1.6.3.4), indexed by its 4-bit code. */
const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
/**
 * WebCodecs' `description` for an AAC rendition: an AudioSpecificConfig built
 * from the codec string's object type (`mp4a.40.<type>`), the sample rate and
 * the channel count, which is all the catalog carries. Without a description
 * WebCodecs takes AAC frames as ADTS, and ours are raw access units. Undefined
 * for a codec that is not `mp4a.40.*`.
 */
export function aacDescription(rendition) {
    const m = /^mp4a\.40\.(\d+)$/i.exec(rendition.codec);
    if (!m)
        return undefined;
    const objectType = Number(m[1]);
    if (objectType < 1 || objectType > 30)
        return undefined;
    // Channel configurations 1..6 are that many channels, 7 is 8 channels; 0 = in the stream.
    const channels = rendition.channelCount <= 6 ? rendition.channelCount : rendition.channelCount === 8 ? 7 : 0;
    const index = AAC_RATES.indexOf(rendition.sampleRate);
    // 5 bits object type, 4 bits rate index (15: a 24-bit rate follows), 4 bits channels, 3 zero bits.
    const bits = [[objectType, 5]];
    if (index >= 0)
        bits.push([index, 4]);
    else
        bits.push([15, 4], [rendition.sampleRate, 24]);
    bits.push([channels, 4], [0, 3]);
    const total = bits.reduce((n, [, width]) => n + width, 0);
    const out = new Uint8Array(Math.ceil(total / 8));
    let pos = 0;
    for (const [value, width] of bits) {
        for (let b = width - 1; b >= 0; b--, pos++) {
            if ((value >>> b) & 1)
                out[pos >> 3] |= 0x80 >> (pos & 7);
        }
    }
    return out;
}
/**
 * Orders broadcast ids as moq-media does: decimal numbers by value, above any id
 * that is not a number; ties (and two non-numbers) by the string.
 */
export function compareBroadcastIds(a, b) {
    const num = (s) => (/^\d+$/.test(s) ? s.replace(/^0+(?=.)/, "") : undefined);
    const [na, nb] = [num(a), num(b)];
    if (na !== undefined && nb !== undefined && na !== nb) {
        return na.length !== nb.length ? na.length - nb.length : na < nb ? -1 : 1;
    }
    if (na !== undefined && nb === undefined)
        return 1;
    if (na === undefined && nb !== undefined)
        return -1;
    return a < b ? -1 : a > b ? 1 : 0;
}
/**
 * Follows the announcements under a broadcast name and says which broadcast is
 * live: the largest id with an announced path. A path `name/<id>/...` counts for
 * `<id>` (a publisher may announce the broadcast path, each track path, or both), so
 * a restarted publisher (a larger id) takes over, and when it goes the older one
 * is live again. The same rule as moq-media's `LiveBroadcast`.
 */
export class LiveBroadcast {
    name;
    #ids = new Map();
    constructor(
    /** The name the broadcasts are under. */
    name) {
        this.name = name;
    }
    /** Applies an announcement (of a full path; paths not below the name are ignored). True if {@link live} changed. */
    update(change) {
        const { path, active } = change;
        if (path.length <= this.name.length || this.name.some((part, i) => path[i] !== part))
            return false;
        const id = path[this.name.length];
        const before = this.#liveId();
        const count = (this.#ids.get(id) ?? 0) + (active ? 1 : -1);
        if (count > 0)
            this.#ids.set(id, count);
        else
            this.#ids.delete(id);
        return this.#liveId() !== before;
    }
    /** The live broadcast's path (name + id), if any is announced. */
    get live() {
        const id = this.#liveId();
        return id === undefined ? undefined : [...this.name, id];
    }
    #liveId() {
        let best;
        for (const id of this.#ids.keys())
            if (best === undefined || compareBroadcastIds(id, best) > 0)
                best = id;
        return best;
    }
}
