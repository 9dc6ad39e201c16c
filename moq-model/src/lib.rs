//! The MoQ Transfork object model (in progress).
