//! The UDP socket under an endpoint, with kernel buffers sized for many busy connections.

use std::net::SocketAddr;

/// Kernel socket buffer size asked for, both directions (Linux caps it at
/// `net.core.rmem_max` / `wmem_max`).
///
/// One socket carries the packets and ACKs of every connection of its endpoint. At the usual
/// 208 KiB default it overflows in any scheduling hiccup and the kernel drops datagrams,
/// which QUIC then has to detect and resend: a relay fanning out to hundreds of subscribers
/// (`moq bench` at 1→500 on a busy 2-core machine: 60,000 drops in 4 s; 44,000 with this,
/// as the relay then simply cannot keep up), and as much a client endpoint receiving for
/// several busy connections (`moq bench` at 1→100, 8 subscribers per socket: about 500
/// drops per socket in 7 s, each a retransmission and a group arriving late).
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;

/// Binds a UDP socket at `addr`, asks for [`SOCKET_BUFFER`] bytes of kernel buffer each way
/// (best effort: a refusal is logged at debug level), and makes a quinn endpoint of it: a
/// server with `server`, a client only without. `max_udp_payload` (1200 to 65527) is the
/// largest datagram the endpoint accepts.
pub(crate) fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
    max_udp_payload: u16,
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    match quinn::udp::UdpSocketState::new((&socket).into()) {
        Ok(state) => {
            for result in [
                state.set_recv_buffer_size((&socket).into(), SOCKET_BUFFER),
                state.set_send_buffer_size((&socket).into(), SOCKET_BUFFER),
            ] {
                if let Err(err) = result {
                    tracing::debug!(%err, "cannot enlarge the UDP socket's buffers");
                }
            }
        }
        Err(err) => tracing::debug!(%err, "cannot inspect the UDP socket"),
    }
    let runtime =
        quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime found"))?;
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(max_udp_payload)
        .map_err(std::io::Error::other)?;
    quinn::Endpoint::new(config, server, socket, runtime)
}
