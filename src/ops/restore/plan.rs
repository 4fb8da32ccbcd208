//! Computing a restore plan, writing nothing.
//!
//! The entries the paths select are checked against what is at their
//! destinations (`target`), then every chunk the files need becomes one job
//! with every place it goes (`chunk_places`), and the jobs are grouped:
//! plain chunks by pack, sorted by offset, so each pack range is read once;
//! float deltas by their base, so each base is decoded once
//! (`group_chunks`). A chunk that cannot be located, or whose base cannot,
//! is recorded with the reason: only the files that need it fail. A file
//! whose chunk list disagrees with its size, or with the length of a chunk
//! it names, is damaged and never created (`refuse_bad_chunk_lists`): a
//! crafted 3-byte chunk cannot become a 1 TiB sparse file.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::target::{check_destination, refuse_target_in_repository, resolve, Destination};
use super::{chunk_list_problem, restored_mode, PlannedDir};
use super::{ChunkJob, DeltaGroup, PlannedEntry, PlannedFile, RestoreOptions, RestorePlan};
use crate::error::Result;
use crate::format::tree::{Entry, EntryKind};
use crate::id::{ChunkId, TreeId};
use crate::ops::pathspec::{self, PathSpec};
use crate::ops::walk::WalkEntry;
use crate::store::index::{BlobLoc, Index};
use crate::store::read::{self, PackFiles};

/// Every place a chunk goes: (file index in the plan, offset in the file).
type Places = HashMap<ChunkId, Vec<(usize, u64)>>;

/// Computes what a restore will do, without writing anything.
pub fn plan(
    index: &Index,
    packs: &PackFiles,
    root: &TreeId,
    snapshot: &str,
    opts: &RestoreOptions,
) -> Result<RestorePlan> {
    let specs = opts
        .paths
        .iter()
        .map(|p| PathSpec::parse(&opts.base, p, snapshot))
        .collect::<Result<Vec<_>>>()?;
    let entries = pathspec::select(index, packs, root, &specs, snapshot)?;
    let protect = opts.protect.as_deref().map(resolve).transpose()?;
    let resolved = resolve(&opts.target)?;
    refuse_target_in_repository(&opts.target, &resolved, protect.as_deref())?;
    let mut plan = RestorePlan {
        target: opts.target.clone(),
        resolved,
        protect,
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
        by_pack: BTreeMap::new(),
        deltas: Vec::new(),
        missing: HashMap::new(),
        overwrite: opts.overwrite,
        cancel: opts.cancel.clone(),
        entries: Vec::new(),
        conflicts: Vec::new(),
        damaged: Vec::new(),
    };
    add_entries(&mut plan, entries, opts)?;
    let ids: Vec<ChunkId> = plan
        .files
        .iter()
        .flat_map(|f| f.chunks.iter().map(|c| c.id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    // Float deltas are decoded with their bases, which the snapshot may not
    // hold itself: those are located too (in packs marked for deletion as
    // well, for a snapshot forgotten and pruned since it was resolved).
    let locs = read::locate_chunks(index, packs, &ids)?;
    refuse_bad_chunk_lists(&mut plan, &locs);
    let places = chunk_places(&plan.files);
    group_chunks(&mut plan, places, &locs);
    Ok(plan)
}

/// Moves the files whose chunk list disagrees with their size, or names a
/// chunk with a length other than the stored one, to `plan.damaged`.
fn refuse_bad_chunk_lists(plan: &mut RestorePlan, locs: &HashMap<ChunkId, BlobLoc>) {
    let damaged = &mut plan.damaged;
    plan.files.retain(|f| {
        let raw_len = |id: &ChunkId| locs.get(id).map(|l| l.raw_len);
        match chunk_list_problem(f.size, &f.chunks, raw_len) {
            Some(why) => {
                damaged.push((f.rel.display().to_string(), why));
                false
            }
            None => true,
        }
    });
}

/// Adds the selected entries to the plan, each checked against its
/// destination: refused inside the repository and, for a file or symlink,
/// where a directory is; an existing non-directory is a conflict. Modes
/// lose their setuid, setgid and world-write bits unless `keep_setuid`.
fn add_entries(
    plan: &mut RestorePlan,
    entries: Vec<WalkEntry>,
    opts: &RestoreOptions,
) -> Result<()> {
    for WalkEntry { path, entry } in entries {
        let (mode, stripped) = restored_mode(entry.mode, opts.keep_setuid);
        let Destination {
            dest,
            action,
            conflict,
        } = check_destination(
            &plan.resolved,
            &plan.target,
            plan.protect.as_deref(),
            &path,
            &entry,
            mode,
        )?;
        if conflict {
            plan.conflicts.push(dest.clone());
        }
        plan.entries.push(PlannedEntry {
            path: path.display().to_string(),
            kind: kind_name(&entry),
            action,
            size: match &entry.kind {
                EntryKind::File { size, .. } => *size,
                _ => 0,
            },
            dest: dest.clone(),
        });
        match entry.kind {
            EntryKind::Dir { .. } => plan.dirs.push(PlannedDir {
                rel: path,
                mode,
                stripped,
                mtime_ns: entry.mtime_ns,
            }),
            EntryKind::File { size, chunks } => plan.files.push(PlannedFile {
                rel: path,
                tmp: None,
                size,
                mode,
                stripped,
                mtime_ns: entry.mtime_ns,
                chunks,
            }),
            EntryKind::Symlink { target } => plan.symlinks.push((path, target, entry.mtime_ns)),
        }
    }
    Ok(())
}

fn kind_name(entry: &Entry) -> &'static str {
    match entry.kind {
        EntryKind::File { .. } => "file",
        EntryKind::Dir { .. } => "dir",
        EntryKind::Symlink { .. } => "symlink",
    }
}

/// Every chunk of `files` with every place it goes, in file order: a chunk
/// shared by several files, or at several offsets of one, is read once.
fn chunk_places(files: &[PlannedFile]) -> Places {
    let mut places = Places::new();
    for (idx, f) in files.iter().enumerate() {
        let mut off = 0;
        for c in &f.chunks {
            places.entry(c.id).or_default().push((idx, off));
            off += c.len as u64;
        }
    }
    places
}

/// Turns the chunks and their places into the plan's jobs: by pack and
/// sorted by offset, float deltas grouped by base (a base the snapshot needs
/// itself is written by its group, not read twice), and the chunks that
/// `locs` cannot locate, or whose base is missing or a delta itself, as
/// missing with the reason.
fn group_chunks(plan: &mut RestorePlan, mut places: Places, locs: &HashMap<ChunkId, BlobLoc>) {
    let mut groups: BTreeMap<ChunkId, Vec<ChunkJob>> = BTreeMap::new();
    for (id, dests) in places.iter() {
        let Some(loc) = locs.get(id).copied() else {
            plan.missing
                .insert(*id, "chunk missing from every pack".to_string());
            continue;
        };
        let job = ChunkJob {
            id: *id,
            loc,
            dests: dests.clone(),
        };
        match loc.base {
            Some(base) => match locs.get(&base) {
                Some(b) if b.base.is_none() => groups.entry(base).or_default().push(job),
                found => {
                    let why = if found.is_some() {
                        "is itself a float delta"
                    } else {
                        "is missing from every pack"
                    };
                    plan.missing.insert(
                        *id,
                        format!(
                            "chunk {}: its base chunk {} {why}",
                            id.short(),
                            base.short()
                        ),
                    );
                }
            },
            None => plan.by_pack.entry(loc.pack).or_default().push(job),
        }
    }
    for (base, deltas) in groups {
        let dests = places.remove(&base).unwrap_or_default();
        if !dests.is_empty() {
            if let Some(jobs) = plan.by_pack.get_mut(&locs[&base].pack) {
                jobs.retain(|j| j.id != base);
            }
        }
        plan.deltas.push(DeltaGroup {
            base: ChunkJob {
                id: base,
                loc: locs[&base],
                dests,
            },
            deltas,
        });
    }
    plan.by_pack.retain(|_, jobs| !jobs.is_empty());
    for jobs in plan.by_pack.values_mut() {
        jobs.sort_by_key(|j| j.loc.offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::Codec;
    use crate::format::tree::ChunkRef;
    use crate::id::PackId;
    use std::path::PathBuf;

    fn empty_plan() -> RestorePlan {
        RestorePlan {
            target: PathBuf::from("/nowhere"),
            resolved: PathBuf::from("/nowhere"),
            protect: None,
            dirs: Vec::new(),
            files: Vec::new(),
            symlinks: Vec::new(),
            by_pack: BTreeMap::new(),
            deltas: Vec::new(),
            missing: HashMap::new(),
            overwrite: false,
            cancel: None,
            entries: Vec::new(),
            conflicts: Vec::new(),
            damaged: Vec::new(),
        }
    }

    fn id(name: &str) -> ChunkId {
        ChunkId::of(name.as_bytes())
    }

    fn file(name: &str, chunks: &[(&str, u32)]) -> PlannedFile {
        let chunks: Vec<ChunkRef> = chunks
            .iter()
            .map(|&(c, len)| ChunkRef { id: id(c), len })
            .collect();
        PlannedFile {
            rel: PathBuf::from(name),
            tmp: None,
            size: chunks.iter().map(|c| c.len as u64).sum(),
            mode: 0o644,
            stripped: false,
            mtime_ns: 0,
            chunks,
        }
    }

    fn loc(pack: u8, offset: u64, base: Option<&str>) -> BlobLoc {
        BlobLoc {
            pack: PackId([pack; 32]),
            codec: if base.is_some() {
                Codec::FloatDelta
            } else {
                Codec::Zstd
            },
            offset,
            stored_len: 10,
            raw_len: 10,
            base: base.map(id),
        }
    }

    /// The places of one chunk.
    type ChunkPlaces = Vec<(usize, u64)>;

    /// (chunk id, places) of a list of jobs, in order.
    fn jobs(list: &[ChunkJob]) -> Vec<(ChunkId, Vec<(usize, u64)>)> {
        list.iter().map(|j| (j.id, j.dests.clone())).collect()
    }

    #[test]
    fn chunks_are_grouped_by_pack_sorted_by_offset_and_each_read_once() {
        let mut plan = empty_plan();
        plan.files = vec![
            file("f0", &[("a", 10), ("b", 20), ("a", 10)]),
            file("f1", &[("c", 5), ("a", 10)]),
        ];
        let locs = HashMap::from([
            (id("a"), loc(1, 300, None)),
            (id("b"), loc(1, 100, None)),
            (id("c"), loc(2, 50, None)),
        ]);
        let places = chunk_places(&plan.files);
        group_chunks(&mut plan, places, &locs);
        let packs: Vec<&PackId> = plan.by_pack.keys().collect();
        assert_eq!(packs, [&PackId([1; 32]), &PackId([2; 32])]);
        assert_eq!(
            jobs(&plan.by_pack[&PackId([1; 32])]),
            [
                (id("b"), vec![(0, 10)]),
                (id("a"), vec![(0, 0), (0, 30), (1, 5)]),
            ]
        );
        assert_eq!(
            jobs(&plan.by_pack[&PackId([2; 32])]),
            [(id("c"), vec![(1, 0)])]
        );
        assert!(plan.deltas.is_empty());
        assert!(plan.missing.is_empty());
    }

    #[test]
    fn deltas_go_with_their_base_and_unreadable_chunks_are_named() {
        let mut plan = empty_plan();
        plan.files = vec![
            file("f0", &[("k", 10), ("d1", 10), ("x", 10)]),
            file(
                "f1",
                &[("d2", 10), ("d3", 10), ("e", 10), ("g", 10), ("p", 10)],
            ),
        ];
        let locs = HashMap::from([
            // A base the snapshot holds itself, alone in its pack.
            (id("k"), loc(1, 0, None)),
            (id("d1"), loc(3, 40, Some("k"))),
            (id("d2"), loc(3, 20, Some("k"))),
            // A base only the deltas need.
            (id("m"), loc(2, 0, None)),
            (id("d3"), loc(3, 60, Some("m"))),
            // A base that is gone, and one that is a delta itself.
            (id("e"), loc(3, 80, Some("n"))),
            (id("g"), loc(3, 90, Some("d1"))),
            (id("p"), loc(2, 70, None)),
        ]);
        let places = chunk_places(&plan.files);
        group_chunks(&mut plan, places, &locs);

        // The base k is read with its group only: pack 1 has nothing else.
        let packs: Vec<&PackId> = plan.by_pack.keys().collect();
        assert_eq!(packs, [&PackId([2; 32])]);
        assert_eq!(
            jobs(&plan.by_pack[&PackId([2; 32])]),
            [(id("p"), vec![(1, 40)])]
        );

        // (base, its places, its deltas) of each group.
        let mut groups: Vec<(ChunkId, ChunkPlaces, Vec<ChunkId>)> = plan
            .deltas
            .iter()
            .map(|g| {
                let mut deltas: Vec<ChunkId> = g.deltas.iter().map(|d| d.id).collect();
                deltas.sort();
                (g.base.id, g.base.dests.clone(), deltas)
            })
            .collect();
        groups.sort();
        let mut base_k = vec![id("d1"), id("d2")];
        base_k.sort();
        let mut expected = vec![
            (id("k"), vec![(0, 0)], base_k),
            (id("m"), vec![], vec![id("d3")]),
        ];
        expected.sort();
        assert_eq!(groups, expected);
        let delta_dests: Vec<(usize, u64)> = plan
            .deltas
            .iter()
            .flat_map(|g| &g.deltas)
            .flat_map(|d| d.dests.clone())
            .collect();
        assert_eq!(delta_dests.len(), 3);

        let missing = |name: &str| plan.missing.get(&id(name)).cloned();
        assert_eq!(
            missing("x").as_deref(),
            Some("chunk missing from every pack")
        );
        let e = missing("e").unwrap();
        assert!(
            e.ends_with(&format!(
                "base chunk {} is missing from every pack",
                id("n").short()
            )),
            "{e}"
        );
        let g = missing("g").unwrap();
        assert!(
            g.ends_with(&format!(
                "base chunk {} is itself a float delta",
                id("d1").short()
            )),
            "{g}"
        );
        assert_eq!(plan.missing.len(), 3);
    }
}
