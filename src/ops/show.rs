//! `snap show`: the entries of a snapshot with their sizes, modes and
//! chunk counts, and for checkpoint files how many tensors they hold (read
//! from the stored chunks by `ops::checkpoint`).

use crate::ckpt::CHECKPOINT_EXTENSIONS;
use crate::error::Result;
use crate::format::tree::EntryKind;
use crate::id::TreeId;
use crate::ops::{checkpoint, walk};
use crate::store::index::Index;
use crate::store::read::PackFiles;

/// One entry of `snap show`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileInfo {
    pub path: String,
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    pub chunks: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For checkpoints (`CHECKPOINT_EXTENSIONS`): how many tensors and their bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tensors: Option<TensorCount>,
}

#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TensorCount {
    pub count: usize,
    /// The tensors' sizes added up (views sharing a storage count each).
    pub bytes: u64,
}

/// Every entry below the snapshot root `root`, in walk order; `snapshot`
/// (its short id) names it in errors. A snapshot over the walk's limits is
/// refused before any entry is listed (`ops::walk`).
pub fn files(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    snapshot: &str,
) -> Result<Vec<FileInfo>> {
    let mut out = Vec::new();
    for w in walk::walk_all(index, packs, root, &format!("snapshot {snapshot}"))? {
        let path = w.path.display().to_string();
        let (kind, size, chunks, target, tensors) = match &w.entry.kind {
            EntryKind::File { size, chunks } => {
                let tensors = if CHECKPOINT_EXTENSIONS.iter().any(|x| path.ends_with(x)) {
                    checkpoint::tensors(index, packs, chunks, *size, false)?.map(|t| TensorCount {
                        count: t.len(),
                        bytes: t.iter().map(|x| x.bytes).sum(),
                    })
                } else {
                    None
                };
                ("file", *size, chunks.len(), None, tensors)
            }
            EntryKind::Dir { .. } => ("dir", 0, 0, None, None),
            EntryKind::Symlink { target } => (
                "symlink",
                0,
                0,
                Some(String::from_utf8_lossy(target).into_owned()),
                None,
            ),
        };
        out.push(FileInfo {
            path,
            kind,
            size,
            mode: w.entry.mode,
            mtime_ns: w.entry.mtime_ns,
            chunks,
            target,
            tensors,
        });
    }
    Ok(out)
}
