/**
 * Every message and stream header of moqf-02 (WIRE.md §4.1, §5). Messages have
 * no type id and no length prefix; which one comes next is implied by the
 * stream type and the position in the stream.
 *
 * Each message `X` has `readX(cursor)` / `writeX(writer, value)` plus the
 * convenience functions `decodeX(bytes)` (a {@link Decoded} result) and
 * `encodeX(value)` (a fresh byte array).
 */
import { decode, encode, Limits } from "./codec.js";
import { DecodeError } from "./error.js";
/** The protocol version of moqf-02 (§5.1). */
export const VERSION = 0xff0bad02;
/** Known version numbers (§5.1). */
export const Versions = {
    DRAFT_00: 0xff000000,
    DRAFT_01: 0xff000001,
    DRAFT_02: 0xff000002,
    DRAFT_03: 0xff000003,
    DRAFT_04: 0xff000004,
    FORK_00: 0xff0bad00,
    FORK_01: 0xff0bad01,
    FORK_02: 0xff0bad02,
};
export function readGroupOrder(c) {
    const v = c.varint("group order");
    if (v === 0)
        return "asc";
    if (v === 1)
        return "desc";
    throw new DecodeError("invalid_value", `group order ${v}`);
}
export function writeGroupOrder(w, o) {
    w.varint(o === "asc" ? 0 : 1);
}
const BI_TYPES = ["session", "announce", "subscribe", "fetch", "info"];
export function readBiStreamType(c) {
    const v = c.varint("stream type");
    const t = BI_TYPES[v];
    if (t === undefined)
        throw new DecodeError("invalid_value", `bidi stream type ${v}`);
    return t;
}
export function writeBiStreamType(w, t) {
    w.varint(BI_TYPES.indexOf(t));
}
export function readUniStreamType(c) {
    const v = c.varint("stream type");
    if (v !== 0)
        throw new DecodeError("invalid_value", `uni stream type ${v}`);
    return "group";
}
export function writeUniStreamType(w, _t) {
    w.varint(0);
}
export function readSessionClient(c) {
    const n = c.count("version count", Limits.maxVersions);
    const versions = [];
    for (let i = 0; i < n; i++)
        versions.push(c.varint("version"));
    return { versions, extensions: c.extensions() };
}
export function writeSessionClient(w, m) {
    w.varint(m.versions.length);
    for (const v of m.versions)
        w.varint(v);
    w.extensions(m.extensions);
}
export function readSessionServer(c) {
    const version = c.varint("version");
    return { version, extensions: c.extensions() };
}
export function writeSessionServer(w, m) {
    w.varint(m.version).extensions(m.extensions);
}
export function readSessionUpdate(c) {
    const v = c.varint("bitrate");
    return { bitrate: v === 0 ? null : v };
}
export function writeSessionUpdate(w, m) {
    w.varint(m.bitrate ?? 0);
}
export function readAnnounceInterest(c) {
    return { prefix: c.path() };
}
export function writeAnnounceInterest(w, m) {
    w.path(m.prefix);
}
/** Announce as 0.5.0 decodes it: status 2 is `invalid_value`. */
export function readAnnounce(c) {
    return readAnnounceWith(c, false);
}
/** Announce accepting status 2 ("live") with no suffix. */
export function readAnnounceLive(c) {
    return readAnnounceWith(c, true);
}
function readAnnounceWith(c, allowLive) {
    const status = c.u8();
    switch (status) {
        case 0:
            return { status: "ended", suffix: c.path() };
        case 1:
            return { status: "active", suffix: c.path() };
        default:
            if (status === 2 && allowLive)
                return { status: "live" };
            throw new DecodeError("invalid_value", `announce status ${status}`);
    }
}
export function writeAnnounce(w, m) {
    if (m.status === "live") {
        w.u8(2);
        return;
    }
    w.u8(m.status === "active" ? 1 : 0).path(m.suffix);
}
export function readSubscribe(c) {
    const id = c.varint("subscribe id");
    const path = c.path();
    const priority = c.i8();
    const groupOrder = readGroupOrder(c);
    const groupExpires = c.duration();
    const groupMin = c.optional("group min");
    const groupMax = c.optional("group max");
    return { id, path, priority, groupOrder, groupExpires, groupMin, groupMax };
}
export function writeSubscribe(w, m) {
    w.varint(m.id).path(m.path).i8(m.priority);
    writeGroupOrder(w, m.groupOrder);
    w.duration(m.groupExpires).optional(m.groupMin).optional(m.groupMax);
}
export function readSubscribeUpdate(c) {
    const priority = c.varint("priority");
    const groupOrder = readGroupOrder(c);
    const groupExpires = c.duration();
    const groupMin = c.optional("group min");
    const groupMax = c.optional("group max");
    return { priority, groupOrder, groupExpires, groupMin, groupMax };
}
export function writeSubscribeUpdate(w, m) {
    w.varint(m.priority);
    writeGroupOrder(w, m.groupOrder);
    w.duration(m.groupExpires).optional(m.groupMin).optional(m.groupMax);
}
export function readInfo(c) {
    const priority = c.i8();
    const groupOrder = readGroupOrder(c);
    const groupExpires = c.duration();
    const groupLatest = c.varint("group latest");
    return { priority, groupOrder, groupExpires, groupLatest };
}
export function writeInfo(w, m) {
    w.i8(m.priority);
    writeGroupOrder(w, m.groupOrder);
    w.duration(m.groupExpires).varint(m.groupLatest);
}
export function readInfoRequest(c) {
    return { path: c.path() };
}
export function writeInfoRequest(w, m) {
    w.path(m.path);
}
export function readFetch(c) {
    const path = c.path();
    const priority = c.i8();
    const group = c.varint("group");
    const offset = c.varint("offset");
    return { path, priority, group, offset };
}
export function writeFetch(w, m) {
    w.path(m.path).i8(m.priority).varint(m.group).varint(m.offset);
}
export function readGroupDrop(c) {
    const sequence = c.varint("sequence");
    const count = c.varint("count");
    const code = c.varintU32("group drop code");
    return { sequence, count, code };
}
export function writeGroupDrop(w, m) {
    if (m.code > 0xffffffff)
        throw new RangeError(`code ${m.code} is not a u32`);
    w.varint(m.sequence).varint(m.count).varint(m.code);
}
export function readGroup(c) {
    const subscribe = c.varint("subscribe id");
    const sequence = c.varint("sequence");
    return { subscribe, sequence };
}
export function writeGroup(w, m) {
    w.varint(m.subscribe).varint(m.sequence);
}
export function readFrame(c) {
    return { size: c.varint("frame size") };
}
export function writeFrame(w, m) {
    w.varint(m.size);
}
function pair(read, write) {
    return {
        decode: (buf, offset = 0) => decode(buf, read, offset),
        encode: (m) => encode((w) => write(w, m)),
        read,
        write,
    };
}
/** Decode/encode helpers for each message, keyed by message name. */
export const Messages = {
    SessionClient: pair(readSessionClient, writeSessionClient),
    SessionServer: pair(readSessionServer, writeSessionServer),
    SessionUpdate: pair(readSessionUpdate, writeSessionUpdate),
    AnnounceInterest: pair(readAnnounceInterest, writeAnnounceInterest),
    Announce: pair(readAnnounce, writeAnnounce),
    AnnounceLive: pair(readAnnounceLive, writeAnnounce),
    Subscribe: pair(readSubscribe, writeSubscribe),
    SubscribeUpdate: pair(readSubscribeUpdate, writeSubscribeUpdate),
    Info: pair(readInfo, writeInfo),
    InfoRequest: pair(readInfoRequest, writeInfoRequest),
    Fetch: pair(readFetch, writeFetch),
    Group: pair(readGroup, writeGroup),
    GroupDrop: pair(readGroupDrop, writeGroupDrop),
    Frame: pair(readFrame, writeFrame),
    GroupOrder: pair(readGroupOrder, writeGroupOrder),
    BiStreamType: pair(readBiStreamType, writeBiStreamType),
    UniStreamType: pair(readUniStreamType, writeUniStreamType),
};
