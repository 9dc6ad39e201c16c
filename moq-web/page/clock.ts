/**
 * The publisher's clock track (`clock` below a broadcast): our extension to moq-karp
 * 0.10's layout, written by `moq media publish` (moq-media's `CLOCK_TRACK`, docs/media.md),
 * from which the player tells the end-to-end latency.
 */

/** The clock track's name below a broadcast's path. */
export const CLOCK_TRACK = "clock";

/**
 * A frame of the clock track, `{"timestamp":T,"wall":W}`: the publisher read media time T
 * (µs) at wall clock W (µs since the Unix epoch). Undefined if it is not that.
 */
export function parseClock(bytes: Uint8Array): { timestamp: number; wall: number } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const { timestamp, wall } = value as { timestamp?: unknown; wall?: unknown };
  if (typeof timestamp !== "number" || !Number.isFinite(timestamp) || timestamp < 0) return undefined;
  if (typeof wall !== "number" || !Number.isFinite(wall) || wall < 0) return undefined;
  return { timestamp, wall };
}
