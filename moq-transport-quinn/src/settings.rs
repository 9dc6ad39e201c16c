//! QUIC transport settings, sized for MoQ's one-stream-per-group traffic.

use std::sync::Arc;
use std::time::Duration;

use quinn::VarInt;
use quinn::congestion::{BbrConfig, CubicConfig};

use crate::credit::{Dir, StreamCredit};

/// The congestion controller of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Congestion {
    /// BBR (quinn's implementation, marked experimental by quinn): paces to the measured
    /// bottleneck bandwidth instead of filling buffers, which keeps queueing delay low for
    /// live media. The published relay uses it too.
    #[default]
    Bbr,
    /// CUBIC: the conservative loss-based choice (quinn's default).
    Cubic,
}

impl std::str::FromStr for Congestion {
    type Err = String;

    /// `bbr` or `cubic` (any case), as command-line flags spell them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "bbr" => Ok(Self::Bbr),
            "cubic" => Ok(Self::Cubic),
            _ => Err(format!(
                "unknown congestion controller {s:?} (expected bbr or cubic)"
            )),
        }
    }
}

impl std::fmt::Display for Congestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Bbr => "bbr",
            Self::Cubic => "cubic",
        })
    }
}

/// QUIC transport settings shared by [`ClientConfig`](crate::ClientConfig) and
/// [`ServerConfig`](crate::ServerConfig).
///
/// The defaults are sized for a session that opens one unidirectional stream per group
/// (WIRE.md §7.2) and may carry frames of up to 16 MiB; `docs/transport.md` explains each.
///
/// | setting | default | quinn's default |
/// |---|---|---|
/// | [`idle_timeout`](Self::idle_timeout) | 10 s | 30 s |
/// | [`keep_alive`](Self::keep_alive) | 4 s | none |
/// | [`max_concurrent_uni_streams`](Self::max_concurrent_uni_streams) | 1024 (from 64, see below) | 100 |
/// | [`max_concurrent_bidi_streams`](Self::max_concurrent_bidi_streams) | 256 (from 32) | 100 |
/// | [`stream_receive_window`](Self::stream_receive_window) | 16 MiB | 1.25 MB |
/// | [`receive_window`](Self::receive_window) | 64 MiB | unlimited |
/// | [`send_window`](Self::send_window) | 16 MiB | 10 MB |
/// | [`congestion`](Self::congestion) | BBR | CUBIC |
/// | [`mtu_discovery`](Self::mtu_discovery) | on | on |
/// | [`max_udp_payload`](Self::max_udp_payload) | 6000 | 1452 sent, 1472 accepted |
///
/// Connections of this crate's [`Client`](crate::Client) and [`Server`](crate::Server) give
/// the peer 64 unidirectional and 32 bidirectional streams at first and raise the limits
/// with use up to the two maximums: quinn keeps state for every stream the peer may open,
/// and most connections carry a handful. [`to_quinn`](Self::to_quinn) gives the maximums at
/// once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportSettings {
    /// Close the connection after this long without hearing from the peer. Also the bound
    /// on how long a vanished peer holds its subscriptions.
    pub idle_timeout: Duration,
    /// Send a PING this often when otherwise idle, so quiet tracks do not time out. Must be
    /// well below [`idle_timeout`](Self::idle_timeout); `None` disables it.
    pub keep_alive: Option<Duration>,
    /// How many unidirectional streams the peer may have open at once: one per group in
    /// flight, across all subscriptions. quinn's 100 stalls a busy session. The limit the
    /// peer starts with is lower and grows with use (see the type's docs).
    pub max_concurrent_uni_streams: u32,
    /// How many bidirectional streams the peer may have open at once: one per
    /// subscription, announcement interest, fetch and info request.
    pub max_concurrent_bidi_streams: u32,
    /// Bytes the peer may send on one stream ahead of what has been read: a 16 MiB frame
    /// can be in flight whole at high bandwidth-delay products.
    pub stream_receive_window: u32,
    /// Bytes the peer may send on all streams together ahead of what has been read: the
    /// memory one connection may make this side buffer.
    pub receive_window: u32,
    /// Bytes this side buffers for sending (written but not yet acknowledged) on one
    /// connection; writes wait when it is full.
    pub send_window: u32,
    /// The congestion controller.
    pub congestion: Congestion,
    /// Probe for a path MTU above QUIC's 1200 bytes (quinn detects black holes and falls
    /// back). Larger packets mean fewer packets and less CPU per byte of media.
    pub mtu_discovery: bool,
    /// The largest UDP datagram payload, in bytes: the top of MTU discovery's search when
    /// sending, and what this side accepts (announced to the peer as `max_udp_payload_size`).
    /// Clamped to 1200 ..= [`MAX_UDP_PAYLOAD_LIMIT`](Self::MAX_UDP_PAYLOAD_LIMIT).
    ///
    /// Packets only grow as large as the path carries: discovery starts at 1200 bytes and
    /// probes upwards, so on a 1500-byte Ethernet path this ends near 1452 as with quinn's
    /// default, after a few lost probes (lost probes do not count as congestion). Where the
    /// path carries more (loopback, jumbo-frame networks) fewer, larger packets take less
    /// CPU per byte: `docs/transport.md` has the numbers. Each endpoint's receive buffer
    /// grows in proportion (about 12 MiB of address space at 6000).
    pub max_udp_payload: u16,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
            keep_alive: Some(Duration::from_secs(4)),
            max_concurrent_uni_streams: 1024,
            max_concurrent_bidi_streams: 256,
            stream_receive_window: 16 << 20,
            receive_window: 64 << 20,
            send_window: 16 << 20,
            congestion: Congestion::Bbr,
            mtu_discovery: true,
            max_udp_payload: Self::DEFAULT_MAX_UDP_PAYLOAD,
        }
    }
}

impl TransportSettings {
    /// The default [`max_udp_payload`](Self::max_udp_payload).
    pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 6000;

    /// The largest [`max_udp_payload`](Self::max_udp_payload) used; larger values are
    /// lowered to it. quinn sends up to 10 datagrams in one segmentation-offload batch and
    /// such a batch may not exceed the 65,507 bytes of one UDP send; past 6550 bytes per
    /// datagram the kernel refuses the batch and quinn turns segmentation offload off for the
    /// socket, which then sends every datagram with its own system call (slower than 1452-byte
    /// packets with offload).
    pub const MAX_UDP_PAYLOAD_LIMIT: u16 = 6550;

    /// [`max_udp_payload`](Self::max_udp_payload) within 1200 ..=
    /// [`MAX_UDP_PAYLOAD_LIMIT`](Self::MAX_UDP_PAYLOAD_LIMIT).
    pub(crate) fn udp_payload(&self) -> u16 {
        self.max_udp_payload
            .clamp(1200, Self::MAX_UDP_PAYLOAD_LIMIT)
    }

    /// The quinn transport configuration for these settings.
    pub fn to_quinn(&self) -> quinn::TransportConfig {
        self.quinn_config(
            self.max_concurrent_uni_streams,
            self.max_concurrent_bidi_streams,
        )
    }

    /// The configuration of this crate's [`Client`](crate::Client) and
    /// [`Server`](crate::Server): the peer starts with a few streams and its connection
    /// raises the limit with use, up to the settings' maximum (`credit`).
    pub(crate) fn to_quinn_growing(&self) -> quinn::TransportConfig {
        self.quinn_config(
            StreamCredit::initial(Dir::Uni, self.max_concurrent_uni_streams),
            StreamCredit::initial(Dir::Bidi, self.max_concurrent_bidi_streams),
        )
    }

    /// The credit a connection made with [`to_quinn_growing`](Self::to_quinn_growing)
    /// raises its limits with.
    pub(crate) fn stream_credit(&self) -> Arc<StreamCredit> {
        StreamCredit::new(
            self.max_concurrent_uni_streams,
            self.max_concurrent_bidi_streams,
        )
    }

    fn quinn_config(&self, uni: u32, bidi: u32) -> quinn::TransportConfig {
        let mut config = quinn::TransportConfig::default();
        // An idle timeout above the QUIC maximum (2^62 ms) is clamped to it.
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .unwrap_or_else(|_| quinn::IdleTimeout::from(VarInt::MAX));
        config
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(self.keep_alive)
            .max_concurrent_uni_streams(uni.into())
            .max_concurrent_bidi_streams(bidi.into())
            .stream_receive_window(self.stream_receive_window.into())
            .receive_window(self.receive_window.into())
            .send_window(self.send_window.into());
        match self.congestion {
            Congestion::Bbr => config.congestion_controller_factory(Arc::new(BbrConfig::default())),
            Congestion::Cubic => {
                config.congestion_controller_factory(Arc::new(CubicConfig::default()))
            }
        };
        if self.mtu_discovery {
            let mut mtu = quinn::MtuDiscoveryConfig::default();
            mtu.upper_bound(self.udp_payload());
            config.mtu_discovery_config(Some(mtu));
        } else {
            config.mtu_discovery_config(None);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::Congestion;

    #[test]
    fn congestion_reads_what_it_prints() {
        for congestion in [Congestion::Bbr, Congestion::Cubic] {
            assert_eq!(congestion.to_string().parse::<Congestion>(), Ok(congestion));
        }
        assert_eq!("CUBIC".parse::<Congestion>(), Ok(Congestion::Cubic));
        let err = "reno".parse::<Congestion>().unwrap_err();
        assert!(err.contains("bbr or cubic"), "{err}");
    }
}
