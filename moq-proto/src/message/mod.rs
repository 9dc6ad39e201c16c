//! The messages of `moqf-02` (WIRE.md §5): plain structs with public fields.
//!
//! Messages carry no type id and no length; the stream type and the position in the stream say
//! which one comes next (WIRE.md §1).

mod announce;
mod fetch;
mod group;
mod info;
mod session;
mod subscribe;

pub use announce::{Announce, AnnounceInterest};
pub use fetch::Fetch;
pub use group::{Frame, Group, GroupDrop};
pub use info::{Info, InfoRequest};
pub use session::{SessionClient, SessionServer, SessionUpdate};
pub use subscribe::{Subscribe, SubscribeUpdate};
