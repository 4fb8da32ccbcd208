//! `Repo::commit` end to end on a seeded ~36 MiB workspace (a tensor file, a
//! log, a config): the first commit into a fresh repository (scan, chunk,
//! hash, compress, pack, fsync, index), and a second commit of the unchanged
//! workspace, which the stat cache should make nearly free. Throughput is the
//! workspace's logical size in both cases, so the two compare directly.

mod common;

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use snapstore::workspace::{self, Workspace};
use snapstore::{ChunkerParams, CommitOptions, NoProgress, Repo};
use tempfile::TempDir;

use common::{quick, seed_workspace};

/// A new, empty repository beside the workspace. The directory is returned
/// so that deleting it happens outside the timed routine.
fn fresh_repo(base: &Path, ws_root: &Path) -> (TempDir, Repo, Workspace) {
    let dir = tempfile::tempdir_in(base).expect("create repository directory");
    let path = dir.path().join("repo");
    let repo = Repo::init(&path, ChunkerParams::default(), 0).expect("init repository");
    let ws = workspace::discover(Some(&path), None, ws_root).expect("workspace");
    (dir, repo, ws)
}

fn commit_once(repo: &mut Repo, ws: &Workspace) {
    let opts = CommitOptions {
        now_ns: snapstore::ops::commit::now_ns(),
        ..CommitOptions::default()
    };
    repo.commit(ws, opts, &NoProgress).expect("commit");
}

fn commit(c: &mut Criterion) {
    let base = tempfile::tempdir().expect("bench directory");
    let ws_root = base.path().join("ws");
    let bytes = seed_workspace(&ws_root);

    let mut g = c.benchmark_group("commit");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("first", |b| {
        b.iter_batched(
            || fresh_repo(base.path(), &ws_root),
            |(dir, mut repo, ws)| {
                commit_once(&mut repo, &ws);
                (dir, repo)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("second_unchanged", |b| {
        b.iter_batched(
            || {
                let (dir, mut repo, ws) = fresh_repo(base.path(), &ws_root);
                commit_once(&mut repo, &ws);
                (dir, repo, ws)
            },
            |(dir, mut repo, ws)| {
                commit_once(&mut repo, &ws);
                (dir, repo)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! { name = benches; config = quick(); targets = commit }
criterion_main!(benches);
