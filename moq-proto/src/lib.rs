//! The MoQ Transfork (`moqf-02`) wire codec.
#![forbid(unsafe_code)]

mod error_code;
mod order;
mod path;

pub use error_code::ErrorCode;
pub use order::GroupOrder;
pub use path::Path;
