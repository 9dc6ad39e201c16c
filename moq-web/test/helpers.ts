/** Shared test helpers: hex, the vectors file, chunked streams. */

import { readFileSync } from "node:fs";

export function unhex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  if (clean.length % 2 !== 0) throw new Error(`odd hex: ${s}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    const byte = Number.parseInt(clean.slice(2 * i, 2 * i + 2), 16);
    if (Number.isNaN(byte)) throw new Error(`bad hex: ${s}`);
    out[i] = byte;
  }
  return out;
}

export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export interface Vector {
  message: string;
  fields?: Record<string, unknown>;
  hex: string;
  error?: string;
  roundtrip?: boolean;
  note?: string;
}

/**
 * The byte-exact vectors shared with the Rust crates. Integers too large for a
 * double are turned into strings before parsing so no precision is lost.
 */
export function loadVectors(): Vector[] {
  const url = new URL("../../../moq-proto/tests/data/vectors.json", import.meta.url);
  const text = readFileSync(url, "utf8").replace(/(:\s*)(\d{16,})(\s*[,}\]])/g, '$1"$2"$3');
  return JSON.parse(text) as Vector[];
}

/** A ReadableStream delivering `data` in chunks of the given sizes (cycled), then FIN. */
export function chunkedStream(data: Uint8Array, sizes: number[]): ReadableStream<Uint8Array> {
  let at = 0;
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= data.length) {
        controller.close();
        return;
      }
      const n = Math.max(1, sizes[i++ % sizes.length]!);
      // A copy, like a network stack would hand out.
      controller.enqueue(data.slice(at, at + n));
      at += n;
    },
  });
}

/** A deterministic pseudo-random generator (xorshift32) for reproducible chunkings. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Read a whole stream into one byte array. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    parts.push(r.value);
    n += r.value.length;
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
