//! Checkpoint formats (moved here from `chunk/`; split up in the next commits).

pub mod pickle;
pub mod segment;
pub mod zip;
