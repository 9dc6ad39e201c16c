//! Fuzz targets for `moq-proto`; the shared properties live in [`checks`].
#![forbid(unsafe_code)]

pub mod checks;
