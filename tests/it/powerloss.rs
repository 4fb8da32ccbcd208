//! Power loss at every write of a commit, a forget and a prune (issue 10).
//!
//! These tests drive the library (`Repo`) rather than the binary: the
//! binary always stores its objects in the local directory, and only a
//! `MemoryBackend` can lose power on cue. Each test runs its operation once
//! to count the backend's write calls, then, for every one of them, rebuilds
//! the same repository, cuts the power at that call, "reboots" (keeps only
//! what the backend had made durable), reopens, and checks that every
//! snapshot committed before still restores byte for byte and that `check
//! --read-data` finds nothing wrong. The index stays a local SQLite file
//! across the reboot, as it would on a real machine.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use snapstore::format::config::RepoConfig;
use snapstore::ops::retention::Policy;
use snapstore::store::backend::MemoryBackend;
use snapstore::store::{config as store_config, Layout};
use snapstore::workspace::{Workspace, WorkspaceConfig};
use snapstore::{
    ChunkerParams, CommitOptions, NoProgress, PruneOptions, Repo, RestoreOptions, SnapshotId,
};

use crate::util::Rng;

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// What a snapshot holds: relative path -> bytes.
type Files = BTreeMap<String, Vec<u8>>;

/// A repository in memory, its local files and a workspace on disk.
struct Lab {
    dir: tempfile::TempDir,
    backend: MemoryBackend,
    /// Snapshots committed so far, with what each holds.
    committed: Vec<(SnapshotId, Files)>,
    /// What the commit under test holds (its id is known only if it
    /// returned).
    pending: Option<Files>,
    rng: Rng,
}

impl Lab {
    /// An empty repository with small chunks and packs, so a commit of a
    /// few dozen KiB writes several packs.
    fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
            backend: MemoryBackend::new(),
            committed: Vec::new(),
            pending: None,
            rng: Rng::new(7),
        };
        let layout = lab.layout();
        let config = RepoConfig {
            repo_id: "0".repeat(32),
            created_ns: 0,
            chunker: ChunkerParams {
                min_size: 1024,
                avg_size: 4096,
                max_size: 16384,
                ..ChunkerParams::default()
            },
            zstd_level: 3,
            pack_target_size: 16 << 10,
        };
        store_config::create(&layout, &config).unwrap();
        lab
    }

    fn layout(&self) -> Layout {
        Layout::with_backend(
            self.dir.path().join("local"),
            Arc::new(self.backend.clone()),
        )
    }

    fn ws_root(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn open(&self) -> Repo {
        Repo::open_in(self.layout()).unwrap()
    }

    fn workspace(&self) -> Workspace {
        Workspace {
            repo: self.dir.path().join("local"),
            root: self.ws_root(),
            config: WorkspaceConfig::default(),
        }
    }

    /// Rewrites one file and adds another, so each commit has new chunks
    /// and shares some with the one before.
    fn change_files(&mut self) -> Files {
        let n = self.committed.len();
        let root = self.ws_root();
        fs::create_dir_all(root.join("ckpt")).unwrap();
        let len = 20_000 + self.rng.below(20_000) as usize;
        fs::write(root.join("ckpt/model.bin"), self.rng.bytes(len)).unwrap();
        fs::write(root.join(format!("log-{n}.txt")), self.rng.text(3000)).unwrap();
        read_tree(&root)
    }

    /// Changes the workspace, then commits it at day `n` (tagged `tag`).
    fn commit_opts(&mut self, tag: Option<&str>) -> (CommitOptions, Files) {
        let files = self.change_files();
        let opts = CommitOptions {
            now_ns: (self.committed.len() as i64 + 1) * DAY_NS,
            tags: tag.map(String::from).into_iter().collect(),
            ..CommitOptions::default()
        };
        (opts, files)
    }

    fn commit(&mut self, tag: Option<&str>) {
        let (opts, files) = self.commit_opts(tag);
        let done = self
            .open()
            .commit(&self.workspace(), opts, &NoProgress)
            .unwrap();
        self.committed.push((done.id, files));
    }

    /// After a reboot: `check --read-data` is clean, and every snapshot the
    /// repository lists restores to exactly what was committed. Returns
    /// the ids it lists.
    fn verify(&self, when: &str) -> Vec<SnapshotId> {
        let repo = self.open();
        let report = repo.check(true, &NoProgress).unwrap();
        assert!(
            report.errors.is_empty(),
            "{when}: check: {:?}",
            report.errors
        );
        assert!(
            report.damaged_files.is_empty(),
            "{when}: {:?}",
            report.damaged_files
        );
        let listed: Vec<SnapshotId> = repo.log().unwrap().into_iter().map(|e| e.id).collect();
        for id in &listed {
            let files = self
                .committed
                .iter()
                .find(|(c, _)| c == id)
                .map(|(_, f)| f)
                .or(self.pending.as_ref())
                .unwrap_or_else(|| panic!("{when}: snapshot {} was never committed", id.short()));
            let target = self.dir.path().join(format!("restored-{}", id.to_hex()));
            let opts = RestoreOptions {
                target: target.clone(),
                ..RestoreOptions::default()
            };
            repo.restore(&id.to_hex(), opts, &NoProgress)
                .unwrap_or_else(|e| panic!("{when}: restore {}: {e}", id.short()));
            assert!(
                read_tree(&target) == *files,
                "{when}: {} restored differently",
                id.short()
            );
            fs::remove_dir_all(&target).unwrap();
        }
        listed
    }
}

/// Every regular file under `root`, by its path relative to `root`.
fn read_tree(root: &Path) -> Files {
    let mut out = Files::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Runs `op` on a lab built by `setup` once to count its writes, then once
/// per write with the power cut there, handing each rebooted lab to
/// `after` with the crash point. Returns the number of write points.
fn at_every_write(
    setup: impl Fn() -> Lab,
    op: impl Fn(&mut Lab) -> snapstore::Result<()>,
    after: impl Fn(&Lab, &str),
) -> u64 {
    let mut lab = setup();
    let before = lab.backend.writes();
    op(&mut lab).unwrap();
    let points = lab.backend.writes() - before;
    after(&lab, "without a crash");
    let mut crashed = 0;
    for k in 1..=points {
        let mut lab = setup();
        lab.backend.crash_at(k);
        let when = format!("power lost at write {k} of {points}");
        match op(&mut lab) {
            Err(_) => {
                assert!(lab.backend.is_down(), "{when}: failed without a crash");
                lab.backend.reboot();
                crashed += 1;
            }
            // Parallel compression may finish chunks in another order, so
            // a run can pack them into fewer packs and make fewer writes
            // than the counting run: it then never reaches write k.
            Ok(()) => assert!(!lab.backend.is_down(), "{when}: succeeded after a crash"),
        }
        after(&lab, &when);
    }
    assert!(
        crashed * 2 >= points,
        "only {crashed} of {points} runs reached their crash point"
    );
    points
}

#[test]
fn a_commit_that_loses_power_at_any_write_loses_no_earlier_snapshot() {
    let setup = || {
        let mut lab = Lab::new();
        lab.commit(Some("best"));
        lab.commit(None);
        lab
    };
    let op = |lab: &mut Lab| {
        let (opts, files) = lab.commit_opts(Some("best"));
        lab.pending = Some(files.clone());
        let done = lab.open().commit(&lab.workspace(), opts, &NoProgress)?;
        lab.committed.push((done.id, files));
        Ok(())
    };
    let points = at_every_write(setup, op, |lab, when| {
        let listed = lab.verify(when);
        for (id, _) in &lab.committed[..2] {
            assert!(listed.contains(id), "{when}: lost snapshot {}", id.short());
        }
        // The new snapshot is there whole, or not at all.
        assert!(listed.len() <= 3, "{when}: {listed:?}");
    });
    // Several data packs, the tree pack, the record and the tag.
    assert!(points >= 8, "only {points} write points");
}

#[test]
fn a_forget_that_loses_power_at_any_write_forgets_nothing_silently() {
    let setup = || {
        let mut lab = Lab::new();
        lab.commit(Some("old"));
        lab.commit(None);
        lab.commit(Some("new"));
        lab
    };
    let policy = Policy {
        keep_commits: 1,
        keep_commits_within_ns: None,
        keep_tags: Vec::new(),
        ..Policy::default()
    };
    let op = |lab: &mut Lab| {
        lab.open()
            .forget(&policy, None, false, 10 * DAY_NS)
            .map(|_| ())
    };
    let points = at_every_write(setup, op, |lab, when| {
        let listed = lab.verify(when);
        let repo = lab.open();
        let journal = repo.forgotten().unwrap();
        assert!(journal.damaged.is_empty(), "{when}: {:?}", journal.damaged);
        // Every snapshot is still there or journalled, never gone without
        // a word; the newest is kept.
        for (id, _) in &lab.committed {
            let journalled = journal.entries.iter().any(|(f, _)| f.id == *id);
            assert!(
                listed.contains(id) || journalled,
                "{when}: snapshot {} vanished",
                id.short()
            );
        }
        assert!(listed.contains(&lab.committed[2].0), "{when}");
        // A tag never names a snapshot that is gone (check says so too).
        for (name, id) in repo.tags().unwrap() {
            assert!(listed.contains(&id), "{when}: tag {name} dangles");
        }
    });
    // Two journal entries, a tag, two snapshot records and the barriers.
    assert!(points >= 5, "only {points} write points");
}

/// A prune that deletes what it marks at once, so that every deletion is
/// among the write points.
fn delete_now() -> PruneOptions {
    PruneOptions {
        delete_now: true,
        ..PruneOptions::new(10 * DAY_NS)
    }
}

#[test]
fn a_prune_that_loses_power_at_any_write_keeps_every_snapshot_whole() {
    let setup = || {
        let mut lab = Lab::new();
        for _ in 0..4 {
            lab.commit(None);
        }
        let policy = Policy {
            keep_commits: 2,
            keep_commits_within_ns: None,
            ..Policy::default()
        };
        lab.open()
            .forget(&policy, None, false, 10 * DAY_NS)
            .unwrap();
        lab
    };
    let op = |lab: &mut Lab| lab.open().prune(&delete_now(), &NoProgress).map(|_| ());
    let points = at_every_write(setup, op, |lab, when| {
        let kept: Vec<SnapshotId> = lab.committed[2..].iter().map(|(id, _)| *id).collect();
        assert_eq!(lab.verify(when), kept, "{when}");
        // The next prune finishes the job and leaves a clean repository.
        lab.open().prune(&delete_now(), &NoProgress).unwrap();
        assert_eq!(lab.verify(&format!("{when}, pruned again")), kept);
    });
    // New packs written, old ones deleted, the barrier.
    assert!(points >= 4, "only {points} write points");
}
