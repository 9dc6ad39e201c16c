//! [`Error`]: what can go wrong reading or writing a broadcast's catalog and frames.

/// An error of the media layer (the CMAF import and export have their own,
/// [`ImportError`](crate::cmaf::ImportError) and [`ExportError`](crate::cmaf::ExportError)).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The track, group or frame underneath failed (an abort, a lost connection, a
    /// duplicate track name, ...).
    #[error("track error: {0}")]
    Model(#[from] moq_model::Error),
    /// The catalog track carried something that is not a catalog.
    #[error("invalid catalog: {0}")]
    Catalog(String),
    /// A catalog group ended without a frame.
    #[error("a catalog group had no frame")]
    EmptyCatalogGroup,
    /// A media frame ended before its timestamp did.
    #[error("a frame is shorter than its timestamp")]
    FrameTooShort,
}
