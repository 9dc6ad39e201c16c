//! The model through its public API: one test binary, one module per subject.

mod data;
mod registry;
mod stress;
mod support;
