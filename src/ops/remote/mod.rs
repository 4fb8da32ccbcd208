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

pub mod prune;
pub mod pull;
pub mod push;

pub use prune::RemotePruneReport;
pub use pull::PullReport;
pub use push::PushReport;

use std::collections::HashSet;

use crate::error::Result;
use crate::id::SnapshotId;
use crate::store::backend::Kind;
use crate::store::{journal, notes, Layout};

/// The history that travels beside snapshots: notes (`snap note`) and
/// retention journal entries (the metrics of forgotten snapshots).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HistoryCopied {
    /// Notes written to the other side.
    pub notes: usize,
    /// Journal entries written to the other side.
    pub journal_entries: usize,
    /// Records of the sending side that could not be read, named with why:
    /// not copied.
    pub history_damaged: Vec<String>,
}

/// Copies the journal entries `from` holds and `to` lacks, and the notes of
/// `snaps` (the snapshots pushed or pulled) and of journalled snapshots
/// that `to` lacks (by name: both are write-once), each read and checked through its reader
/// (a remote can be hostile) and written durably through the receiving
/// side's writer, which names it by its content: a record whose name its
/// content does not give is refused as damaged, so it can never be copied
/// twice under two names. One listing per kind on each side, one read per
/// record copied.
pub fn copy_history(
    from: &Layout,
    to: &Layout,
    snaps: &HashSet<SnapshotId>,
    out: &mut HistoryCopied,
) -> Result<()> {
    let (src, dst) = (from.backend(), to.backend());
    let journalled: HashSet<String> = src.list(Kind::Journal)?.into_iter().collect();
    let have: HashSet<String> = dst.list(Kind::Note)?.into_iter().collect();
    for name in src.list(Kind::Note)? {
        let Some(id) = notes::snapshot_of(&name) else {
            continue;
        };
        if have.contains(&name) || !(snaps.contains(&id) || journalled.contains(&id.to_hex())) {
            continue;
        }
        let damaged = |why: String| format!("{}: {why}", src.locate(Kind::Note, &name).display());
        match notes::read_one(from, &name, &id)? {
            Ok(n) if n.encode().0 == name => {
                notes::write(to, &n)?;
                out.notes += 1;
            }
            Ok(_) => out
                .history_damaged
                .push(damaged("its name is not the hash of its bytes".into())),
            Err(why) => out.history_damaged.push(damaged(why)),
        }
    }
    let have: HashSet<String> = dst.list(Kind::Journal)?.into_iter().collect();
    for name in &journalled {
        let Some(id) = SnapshotId::from_hex(name) else {
            continue;
        };
        if have.contains(name) {
            continue;
        }
        match journal::read_one(from, name, &id) {
            Ok((entry, _)) => {
                journal::write(to, std::slice::from_ref(&entry))?;
                out.journal_entries += 1;
            }
            Err(why) => out.history_damaged.push(format!(
                "{}: {why}",
                src.locate(Kind::Journal, name).display()
            )),
        }
    }
    Ok(())
}
