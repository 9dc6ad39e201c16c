//! The MoQ Transfork session (in progress).
