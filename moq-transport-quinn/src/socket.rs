//! The UDP socket under an endpoint, with kernel buffers sized for many busy connections.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::spread::{CidKey, OwnedCids, RoutedSocket, Router};

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
    let socket = bind(addr)?;
    quinn::Endpoint::new(
        endpoint_config(max_udp_payload)?,
        server,
        socket,
        runtime()?,
    )
}

/// Binds a UDP socket at `addr` with [`SOCKET_BUFFER`]s.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    enlarge_buffers(&socket);
    Ok(socket)
}

/// Asks for [`SOCKET_BUFFER`] bytes of kernel buffer each way, best effort.
fn enlarge_buffers(socket: &std::net::UdpSocket) {
    match quinn::udp::UdpSocketState::new(socket.into()) {
        Ok(state) => {
            for result in [
                state.set_recv_buffer_size(socket.into(), SOCKET_BUFFER),
                state.set_send_buffer_size(socket.into(), SOCKET_BUFFER),
            ] {
                if let Err(err) = result {
                    tracing::debug!(%err, "cannot enlarge the UDP socket's buffers");
                }
            }
        }
        Err(err) => tracing::debug!(%err, "cannot inspect the UDP socket"),
    }
}

fn runtime() -> std::io::Result<Arc<dyn quinn::Runtime>> {
    quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime found"))
}

fn endpoint_config(max_udp_payload: u16) -> std::io::Result<quinn::EndpointConfig> {
    let mut config = quinn::EndpointConfig::default();
    config
        .max_udp_payload_size(max_udp_payload)
        .map_err(std::io::Error::other)?;
    Ok(config)
}

/// `count` server endpoints on one address (see [`crate::spread`]): with one, [`endpoint`];
/// with more (Linux only), as many sockets bound with `SO_REUSEPORT` to the same address
/// (a port 0 resolved once, so all share it), each an endpoint whose connection IDs name it,
/// and the router that passes datagrams between them.
pub(crate) fn endpoints(
    addr: SocketAddr,
    server: quinn::ServerConfig,
    max_udp_payload: u16,
    count: usize,
) -> std::io::Result<(Vec<quinn::Endpoint>, Option<Arc<Router>>)> {
    if count <= 1 {
        return Ok((vec![endpoint(addr, Some(server), max_udp_payload)?], None));
    }
    // A port 0 is resolved by a probe that is then released: another process may take it
    // in between, so a few tries.
    let tries = if addr.port() == 0 { 5 } else { 1 };
    let mut tried = 0;
    loop {
        tried += 1;
        match reuse_port_group(addr, count) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tried < tries => continue,
            Err(e) => return Err(e),
            Ok(sockets) => {
                let runtime = runtime()?;
                let key = CidKey::generate()?;
                let router = Router::new(count, key.clone());
                let mut endpoints = Vec::with_capacity(count);
                for (index, socket) in sockets.into_iter().enumerate() {
                    enlarge_buffers(&socket);
                    let socket = Arc::new(RoutedSocket::new(
                        runtime.wrap_udp_socket(socket)?,
                        index,
                        router.clone(),
                    ));
                    let mut config = endpoint_config(max_udp_payload)?;
                    let owner = u8::try_from(index).map_err(std::io::Error::other)?;
                    let key = key.clone();
                    config.cid_generator(move || Box::new(OwnedCids::new(owner, key.clone())));
                    endpoints.push(quinn::Endpoint::new_with_abstract_socket(
                        config,
                        Some(server.clone()),
                        socket,
                        runtime.clone(),
                    )?);
                }
                return Ok((endpoints, Some(router)));
            }
        }
    }
}

/// `count` sockets bound to `addr` with `SO_REUSEPORT`. The address is bound first without
/// it, and released: that fails if anything holds the address (another process's reuse-port
/// group would otherwise silently share our traffic), and resolves a port 0 for the group.
fn reuse_port_group(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::UdpSocket>> {
    let addr = std::net::UdpSocket::bind(addr)?.local_addr()?;
    (0..count).map(|_| bind_reuse_port(addr)).collect()
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_reuse_port(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Elsewhere `SO_REUSEPORT` does not spread datagrams over the sockets (BSDs and macOS give
/// them all to one), so several endpoints would gain nothing.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_reuse_port(_: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "several endpoints on one port need Linux (SO_REUSEPORT)",
    ))
}
