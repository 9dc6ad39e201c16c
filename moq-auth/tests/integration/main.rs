//! Tokens and keys through the public API: one test binary, one module per subject.

mod tokens;
