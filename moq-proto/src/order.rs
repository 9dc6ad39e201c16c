//! [`GroupOrder`]: which groups of a track to send first when bandwidth is short.

/// The order in which a publisher should deliver the groups of a track (WIRE.md §5.6).
///
/// On the wire `0` is ascending and `1` descending; anything else is a decode error.
/// The default is [`Descending`](GroupOrder::Descending), what live tracks want and what
/// `moq-transfork` 0.5.0 sends for a default track.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GroupOrder {
    /// Oldest group first: every group matters (video on demand, reliable delivery).
    Ascending = 0,
    /// Newest group first: freshness matters more than completeness (live media).
    #[default]
    Descending = 1,
}

impl GroupOrder {
    /// The wire value.
    pub const fn to_wire(self) -> u64 {
        self as u64
    }

    /// The order for a wire value, or `None` if it is not 0 or 1.
    pub const fn from_wire(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::Ascending),
            1 => Some(Self::Descending),
            _ => None,
        }
    }
}
