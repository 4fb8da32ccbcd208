//! Remotes: moving snapshots between the local repository and a remote one
//! on object storage (`store::backend::remote`). The remote is read through
//! its cache (`store::remotes::cache_dir`): an index of the remote's
//! objects kept beside the local repository, brought up to date by the same
//! `store::sync` as the local one (a listing, and the trailers of packs it
//! has not seen), so `log --from`, `show --from` and `restore --from` read
//! the remote with the local code paths, and every blob read from it is
//! verified by `store::read` as a local one is.
//!
//! `push` and `pull` keep the durability order of `store::publish` on the
//! side they write: packs, then records, then tags.

pub mod pull;
pub mod push;

pub use pull::PullReport;
pub use push::PushReport;
