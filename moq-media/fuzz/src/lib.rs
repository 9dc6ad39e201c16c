//! Fuzz targets for `moq-media`; the shared properties live in [`checks`].
#![forbid(unsafe_code)]

pub mod checks;
