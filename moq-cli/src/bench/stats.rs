//! What `moq bench` measures: a latency histogram, per-receiver counters, and the CPU time
//! and memory of a process read from `/proc`.

use std::time::{Duration, Instant};

/// Bytes at the start of every frame: the send time (nanoseconds since the run's epoch) and
/// the frame's index in its track, both little-endian `u64`.
pub(crate) const STAMP_LEN: usize = 16;

/// Writes the stamp for frame `index`, sent now, into the first [`STAMP_LEN`] bytes of `out`.
pub(crate) fn stamp(out: &mut [u8], epoch: Instant, index: u64) {
    let nanos = epoch.elapsed().as_nanos() as u64;
    out[..8].copy_from_slice(&nanos.to_le_bytes());
    out[8..STAMP_LEN].copy_from_slice(&index.to_le_bytes());
}

/// Reads a stamp: (send time in nanoseconds since the epoch, frame index).
pub(crate) fn read_stamp(bytes: &[u8; STAMP_LEN]) -> (u64, u64) {
    let mut nanos = [0; 8];
    let mut index = [0; 8];
    nanos.copy_from_slice(&bytes[..8]);
    index.copy_from_slice(&bytes[8..]);
    (u64::from_le_bytes(nanos), u64::from_le_bytes(index))
}

/// Collects the first [`STAMP_LEN`] bytes of a frame that may arrive in several chunks.
#[derive(Default)]
pub(crate) struct StampReader {
    bytes: [u8; STAMP_LEN],
    filled: usize,
}

impl StampReader {
    /// Feeds a chunk; returns the stamp once all of it has arrived (once per frame).
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Option<(u64, u64)> {
        if self.filled == STAMP_LEN {
            return None;
        }
        let take = (STAMP_LEN - self.filled).min(chunk.len());
        self.bytes[self.filled..self.filled + take].copy_from_slice(&chunk[..take]);
        self.filled += take;
        (self.filled == STAMP_LEN).then(|| read_stamp(&self.bytes))
    }

    /// Starts the next frame.
    pub(crate) fn reset(&mut self) {
        self.filled = 0;
    }
}

/// Sub-buckets per power of two: 32, so a recorded value is within about 3% of the truth.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A log-linear histogram of nanosecond values (the shape of HDR histograms, fixed at 5 bits
/// of precision): constant memory, O(1) recording, mergeable.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

fn bucket(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros(); // >= SUB_BITS
    let shift = magnitude - SUB_BITS;
    let sub = ((value >> shift) as usize) & (SUB - 1);
    ((magnitude - SUB_BITS + 1) as usize) * SUB + sub
}

/// The largest value that falls in bucket `index`.
fn bucket_high(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let magnitude = (index / SUB) as u32 + SUB_BITS - 1;
    let sub = (index % SUB) as u64;
    let shift = magnitude - SUB_BITS;
    let low = ((SUB as u64) | sub) << shift;
    low.saturating_add((1u64 << shift) - 1)
}

impl Histogram {
    pub(crate) fn record(&mut self, value: u64) {
        self.counts[bucket(value)] += 1;
        self.total += 1;
        self.sum += u128::from(value);
        self.max = self.max.max(value);
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    pub(crate) fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The value at quantile `q` (0..=1): the top of the bucket holding it, never above the
    /// maximum recorded, so quantiles are ordered and `<= max`.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_high(index).min(self.max);
            }
        }
        self.max
    }
}

/// What one receiver (a subscriber, or the raw QUIC receiver) saw during the measured
/// window.
#[derive(Clone, Default)]
pub(crate) struct ReceiverStats {
    pub frames: u64,
    pub bytes: u64,
    pub groups: u64,
    /// Group sequence numbers jumped over (groups that never reached this subscriber).
    pub skipped: u64,
    /// Groups that ended in an error (reset, aborted) before all their frames arrived.
    pub dropped: u64,
    /// One-way latency in nanoseconds: from the publisher stamping the frame to the
    /// subscriber having the whole frame.
    pub latency: Histogram,
}

impl ReceiverStats {
    pub(crate) fn merge(&mut self, other: &ReceiverStats) {
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.groups += other.groups;
        self.skipped += other.skipped;
        self.dropped += other.dropped;
        self.latency.merge(&other.latency);
    }
}

/// CPU time and resident memory of a process, from `/proc/PID/stat` and
/// `/proc/PID/status` (Linux only; `None` elsewhere or if the process is gone).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcessSample {
    pub user: Duration,
    pub system: Duration,
    pub rss_kib: u64,
}

/// `USER_HZ`, the unit of the times in `/proc/PID/stat`: 100 on every Linux architecture
/// (fixed by the kernel's ABI, whatever the kernel's internal tick rate).
const USER_HZ: u64 = 100;

impl ProcessSample {
    /// This process (`pid` = `None`) or another one.
    pub(crate) fn read(pid: Option<u32>) -> Option<Self> {
        let dir = match pid {
            Some(pid) => format!("/proc/{pid}"),
            None => "/proc/self".to_string(),
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 (utime, stime) are at 11 and 12 counting from field 3.
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let user = ticks(11)?;
        let system = ticks(12)?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let tick = |t: u64| Duration::from_micros(t * 1_000_000 / USER_HZ);
        Some(Self {
            user: tick(user),
            system: tick(system),
            rss_kib,
        })
    }

    pub(crate) fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// CPU time of the whole machine (every core, every process), from `/proc/stat`: what was
/// busy besides the bench and the relay tells whether a run had the machine to itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MachineSample {
    /// Time all cores spent not idle (user, nice, system, irq, softirq, steal).
    pub busy: Duration,
}

impl MachineSample {
    pub(crate) fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = line
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal ...
        let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
        Some(Self {
            busy: Duration::from_micros(busy * 1_000_000 / USER_HZ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for value in (0..200_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let index = bucket(value);
            assert!(index >= last, "{value}");
            last = index;
            let high = bucket_high(index);
            assert!(high >= value, "{value} above its bucket's top {high}");
            assert!(high - value <= value / 16 + 1, "{value} -> {high}");
        }
        assert!(bucket(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_are_ordered() {
        let mut histogram = Histogram::default();
        for value in 1..=1000u64 {
            histogram.record(value * 1000);
        }
        let (p50, p90, p99, max) = (
            histogram.quantile(0.5),
            histogram.quantile(0.9),
            histogram.quantile(0.99),
            histogram.max(),
        );
        assert!(
            p50 <= p90 && p90 <= p99 && p99 <= max,
            "{p50} {p90} {p99} {max}"
        );
        assert!((480_000..=520_000).contains(&p50), "{p50}");
        assert!((980_000..=1_000_000).contains(&p99), "{p99}");
        assert_eq!(max, 1_000_000);
        assert_eq!(histogram.count(), 1000);
    }

    #[test]
    fn stamps_round_trip_across_chunks() {
        let epoch = Instant::now();
        let mut frame = vec![0; 40];
        stamp(&mut frame, epoch, 7);
        let mut reader = StampReader::default();
        assert_eq!(reader.feed(&frame[..3]), None);
        let (_, index) = reader.feed(&frame[3..]).unwrap();
        assert_eq!(index, 7);
        assert_eq!(reader.feed(&frame), None);
    }

    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            let sample = ProcessSample::read(None).unwrap();
            assert!(sample.rss_kib > 0);
            assert!(MachineSample::read().is_some());
        }
    }
}
