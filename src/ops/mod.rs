//! Use cases, one module each. They receive the repository pieces they need,
//! the time, and a progress sink; they never print.

pub mod blobs;
pub mod check;
pub mod checkpoint;
pub mod commit;
pub mod diff;
pub mod import;
pub mod pathspec;
pub mod prune;
pub mod resolve;
pub mod restore;
pub mod retention;
pub mod stats;
pub mod suggest;
pub mod sync;
pub mod walk;
