/**
 * Every message and stream header of moqf-02 (WIRE.md §4.1, §5). Messages have
 * no type id and no length prefix; which one comes next is implied by the
 * stream type and the position in the stream.
 *
 * Each message `X` has `readX(cursor)` / `writeX(writer, value)` plus the
 * convenience functions `decodeX(bytes)` (a {@link Decoded} result) and
 * `encodeX(value)` (a fresh byte array).
 */

import { Cursor, Writer, decode, encode, type Decoded, type Extensions, type Path, Limits } from "./codec.js";
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
} as const;

/** Group order (§5.6): 0 = ascending, 1 = descending. */
export type GroupOrder = "asc" | "desc";

export function readGroupOrder(c: Cursor): GroupOrder {
  const v = c.varint("group order");
  if (v === 0) return "asc";
  if (v === 1) return "desc";
  throw new DecodeError("invalid_value", `group order ${v}`);
}

export function writeGroupOrder(w: Writer, o: GroupOrder): void {
  w.varint(o === "asc" ? 0 : 1);
}

/** Bidirectional stream types (§4.1). */
export type BiStreamType = "session" | "announce" | "subscribe" | "fetch" | "info";
/** Unidirectional stream types (§4.1). */
export type UniStreamType = "group";

const BI_TYPES: readonly BiStreamType[] = ["session", "announce", "subscribe", "fetch", "info"];

export function readBiStreamType(c: Cursor): BiStreamType {
  const v = c.varint("stream type");
  const t = BI_TYPES[v];
  if (t === undefined) throw new DecodeError("invalid_value", `bidi stream type ${v}`);
  return t;
}

export function writeBiStreamType(w: Writer, t: BiStreamType): void {
  w.varint(BI_TYPES.indexOf(t));
}

export function readUniStreamType(c: Cursor): UniStreamType {
  const v = c.varint("stream type");
  if (v !== 0) throw new DecodeError("invalid_value", `uni stream type ${v}`);
  return "group";
}

export function writeUniStreamType(w: Writer, _t: UniStreamType): void {
  w.varint(0);
}

// §5.1
export interface SessionClient {
  versions: number[];
  extensions: Extensions;
}

export function readSessionClient(c: Cursor): SessionClient {
  const n = c.count("version count", Limits.maxVersions);
  const versions: number[] = [];
  for (let i = 0; i < n; i++) versions.push(c.varint("version"));
  return { versions, extensions: c.extensions() };
}

export function writeSessionClient(w: Writer, m: SessionClient): void {
  w.varint(m.versions.length);
  for (const v of m.versions) w.varint(v);
  w.extensions(m.extensions);
}

// §5.2
export interface SessionServer {
  version: number;
  extensions: Extensions;
}

export function readSessionServer(c: Cursor): SessionServer {
  const version = c.varint("version");
  return { version, extensions: c.extensions() };
}

export function writeSessionServer(w: Writer, m: SessionServer): void {
  w.varint(m.version).extensions(m.extensions);
}

// §5.3 (zero means unknown; never sent by this library, see §4.2)
export interface SessionUpdate {
  bitrate: number | null;
}

export function readSessionUpdate(c: Cursor): SessionUpdate {
  const v = c.varint("bitrate");
  return { bitrate: v === 0 ? null : v };
}

export function writeSessionUpdate(w: Writer, m: SessionUpdate): void {
  w.varint(m.bitrate ?? 0);
}

// §5.4
export interface AnnounceInterest {
  prefix: Path;
}

export function readAnnounceInterest(c: Cursor): AnnounceInterest {
  return { prefix: c.path() };
}

export function writeAnnounceInterest(w: Writer, m: AnnounceInterest): void {
  w.path(m.prefix);
}

// §5.5: status is one raw byte. 0 = ended, 1 = active. Status 2 ("live", no
// suffix) exists only in crates 0.7+; the 0.5.0 decoder rejects it, and so does
// `readAnnounce` (byte-exact with the vectors). `readAnnounceLive` accepts it;
// the session uses that one, so announce streams from newer relays work too.
export type Announce =
  | { status: "active" | "ended"; suffix: Path }
  | { status: "live" };

/** Announce as 0.5.0 decodes it: status 2 is `invalid_value`. */
export function readAnnounce(c: Cursor): Announce {
  return readAnnounceWith(c, false);
}

/** Announce accepting status 2 ("live") with no suffix. */
export function readAnnounceLive(c: Cursor): Announce {
  return readAnnounceWith(c, true);
}

function readAnnounceWith(c: Cursor, allowLive: boolean): Announce {
  const status = c.u8();
  switch (status) {
    case 0:
      return { status: "ended", suffix: c.path() };
    case 1:
      return { status: "active", suffix: c.path() };
    default:
      if (status === 2 && allowLive) return { status: "live" };
      throw new DecodeError("invalid_value", `announce status ${status}`);
  }
}

export function writeAnnounce(w: Writer, m: Announce): void {
  if (m.status === "live") {
    w.u8(2);
    return;
  }
  w.u8(m.status === "active" ? 1 : 0).path(m.suffix);
}

// §5.6
export interface Subscribe {
  id: number;
  path: Path;
  /** i8, biased byte on the wire. */
  priority: number;
  groupOrder: GroupOrder;
  /** Milliseconds; 0 = no expiry requested. */
  groupExpires: number;
  /** null = none (start at the latest). */
  groupMin: number | null;
  /** null = none (open-ended). */
  groupMax: number | null;
}

export function readSubscribe(c: Cursor): Subscribe {
  const id = c.varint("subscribe id");
  const path = c.path();
  const priority = c.i8();
  const groupOrder = readGroupOrder(c);
  const groupExpires = c.duration();
  const groupMin = c.optional("group min");
  const groupMax = c.optional("group max");
  return { id, path, priority, groupOrder, groupExpires, groupMin, groupMax };
}

export function writeSubscribe(w: Writer, m: Subscribe): void {
  w.varint(m.id).path(m.path).i8(m.priority);
  writeGroupOrder(w, m.groupOrder);
  w.duration(m.groupExpires).optional(m.groupMin).optional(m.groupMax);
}

// §5.7: the five-field layout the 0.5.0 *decoder* expects; priority is a varint.
export interface SubscribeUpdate {
  priority: number;
  groupOrder: GroupOrder;
  groupExpires: number;
  groupMin: number | null;
  groupMax: number | null;
}

export function readSubscribeUpdate(c: Cursor): SubscribeUpdate {
  const priority = c.varint("priority");
  const groupOrder = readGroupOrder(c);
  const groupExpires = c.duration();
  const groupMin = c.optional("group min");
  const groupMax = c.optional("group max");
  return { priority, groupOrder, groupExpires, groupMin, groupMax };
}

export function writeSubscribeUpdate(w: Writer, m: SubscribeUpdate): void {
  w.varint(m.priority);
  writeGroupOrder(w, m.groupOrder);
  w.duration(m.groupExpires).optional(m.groupMin).optional(m.groupMax);
}

// §5.8
export interface Info {
  /** i8, biased byte on the wire. */
  priority: number;
  groupOrder: GroupOrder;
  groupExpires: number;
  /** Latest group sequence; 0 also when there is none yet. */
  groupLatest: number;
}

export function readInfo(c: Cursor): Info {
  const priority = c.i8();
  const groupOrder = readGroupOrder(c);
  const groupExpires = c.duration();
  const groupLatest = c.varint("group latest");
  return { priority, groupOrder, groupExpires, groupLatest };
}

export function writeInfo(w: Writer, m: Info): void {
  w.i8(m.priority);
  writeGroupOrder(w, m.groupOrder);
  w.duration(m.groupExpires).varint(m.groupLatest);
}

// §5.9
export interface InfoRequest {
  path: Path;
}

export function readInfoRequest(c: Cursor): InfoRequest {
  return { path: c.path() };
}

export function writeInfoRequest(w: Writer, m: InfoRequest): void {
  w.path(m.path);
}

// §5.10
export interface Fetch {
  path: Path;
  priority: number;
  group: number;
  offset: number;
}

export function readFetch(c: Cursor): Fetch {
  const path = c.path();
  const priority = c.i8();
  const group = c.varint("group");
  const offset = c.varint("offset");
  return { path, priority, group, offset };
}

export function writeFetch(w: Writer, m: Fetch): void {
  w.path(m.path).i8(m.priority).varint(m.group).varint(m.offset);
}

// §5.11
export interface GroupDrop {
  sequence: number;
  count: number;
  /** Must fit a u32. */
  code: number;
}

export function readGroupDrop(c: Cursor): GroupDrop {
  const sequence = c.varint("sequence");
  const count = c.varint("count");
  const code = c.varintU32("group drop code");
  return { sequence, count, code };
}

export function writeGroupDrop(w: Writer, m: GroupDrop): void {
  if (m.code > 0xffffffff) throw new RangeError(`code ${m.code} is not a u32`);
  w.varint(m.sequence).varint(m.count).varint(m.code);
}

// §5.12
export interface Group {
  subscribe: number;
  sequence: number;
}

export function readGroup(c: Cursor): Group {
  const subscribe = c.varint("subscribe id");
  const sequence = c.varint("sequence");
  return { subscribe, sequence };
}

export function writeGroup(w: Writer, m: Group): void {
  w.varint(m.subscribe).varint(m.sequence);
}

// §5.13: header only; `size` payload bytes follow.
export interface Frame {
  size: number;
}

export function readFrame(c: Cursor): Frame {
  return { size: c.varint("frame size") };
}

export function writeFrame(w: Writer, m: Frame): void {
  w.varint(m.size);
}

type Reader<T> = (c: Cursor) => T;
type WriteFn<T> = (w: Writer, m: T) => void;

function pair<T>(read: Reader<T>, write: WriteFn<T>) {
  return {
    decode: (buf: Uint8Array, offset = 0): Decoded<T> => decode(buf, read, offset),
    encode: (m: T): Uint8Array => encode((w) => write(w, m)),
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
} as const;
