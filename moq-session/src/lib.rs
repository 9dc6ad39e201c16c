//! The MoQ Transfork session (`moqf-02`), over any QUIC-like transport.
//!
//! A [`Session`] is one connection on which both sides may publish and subscribe to
//! tracks of the object model ([`moq_model`]). It speaks the wire of `moq-transfork` 0.4 to
//! 0.8 (version `0xff0bad02`): every control transaction on its own bidirectional stream,
//! every group on its own unidirectional stream.
//!
//! # What it does
//!
//! * The handshake ([`Session::connect`] / [`Session::accept`]), and nothing on the session
//!   stream after it.
//! * Publishing: [`Session::publish`] (a track), [`Session::publish_broadcast`],
//!   [`Session::announce`] (forward announcements), [`Session::route`] (answer
//!   subscriptions to unpublished paths). The peer's subscriptions get Info, then the
//!   latest group from its first frame and every newer group, each group on its own stream
//!   with a QUIC priority from the subscription's priority and group order
//!   ([`group_priority`]); a SubscribeUpdate changes them (and the expiry) for later groups
//!   and for those in flight. Info and Fetch requests are answered.
//! * Subscribing: [`Session::subscribe`] returns a [`moq_model::TrackConsumer`] at once,
//!   identical subscriptions share one upstream subscription, and dropping the last
//!   consumer unsubscribes; [`Session::update_subscription`] changes a subscription's
//!   priority, order and expiry. [`Session::announced`] follows the peer's announcements;
//!   [`Session::info`] asks for a track's description, and [`Session::fetch`] for the
//!   bytes of one group from an offset.
//! * Limits on everything the peer controls ([`SessionConfig`]); a peer that exceeds them
//!   gets a protocol error code, never a panic or unbounded memory.
//!
//! # What it does not
//!
//! It never picks a runtime or spawns a task: all the work happens in the
//! [`SessionDriver`] future, which the application runs on its executor. It knows no
//! sockets, TLS or QUIC library: a transport implements the traits of [`transport`].
//!
//! # Layers
//!
//! ```text
//!   application          TrackProducer / TrackConsumer ... (moq-model)
//!        |
//!   Session + SessionDriver     this crate: streams <-> model
//!        |  transport::{Connection, SendStream, RecvStream}
//!   adapter              quinn, WebTransport, or transport::memory (tests)
//! ```
//!
//! # Example
//!
//! A client publishes a track, a server subscribes to it and reads a frame, over the
//! in-memory transport (feature `memory`).
//!
#![cfg_attr(
    feature = "memory",
    doc = r#"
```
# #[tokio::main(flavor = "current_thread")]
# async fn main() -> Result<(), Box<dyn std::error::Error>> {
use moq_model::Track;
use moq_session::Session;
use moq_session::transport::memory;

let (client, server) = memory::pair(memory::Config::default());

// Handshake: the client connects while the server accepts.
let (connected, accepted) = tokio::join!(Session::connect(client), Session::accept(server));
let (publisher, driver) = connected?;
tokio::spawn(driver);
let (subscriber, driver) = accepted?;
tokio::spawn(driver);

// The client publishes a track and writes a group with one frame.
let (mut track, consumer) = Track::new(["room", "clock"]).produce();
publisher.publish(consumer)?;
let mut group = track.append_group();
group.write_frame("12:00")?;

// The server subscribes and reads it.
let mut subscription = subscriber.subscribe(Track::new(["room", "clock"]));
let mut received = subscription.next_group().await?.expect("a group");
assert_eq!(received.read_frame().await?.unwrap(), "12:00");
# Ok(())
# }
```
"#
)]
//!
//! # Cancel safety and drops
//!
//! Every async method documents its cancel safety. Dropping the last [`Session`] handle,
//! or the driver, closes the connection with code 0.
//!
//! `docs/session.md` in the repository describes the architecture, the limits and the
//! interoperability notes.
#![forbid(unsafe_code)]

mod config;
mod error;
mod publish;
mod session;
mod state;
mod stream;
mod subscribe;
pub mod transport;

pub use config::{SessionConfig, SharedLimit, SharedPermit, Sleep};
pub use error::Error;
pub use publish::group_priority;
pub use session::{Session, SessionDriver, SessionStats};
pub use subscribe::fetch::Fetched;
