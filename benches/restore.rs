//! `Repo::restore` of a whole snapshot of the seeded ~36 MiB workspace into
//! a fresh directory: plan, read packs, decompress, verify BLAKE3, write.

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use snapstore::{ChunkerParams, CommitOptions, NoProgress, Repo, RestoreOptions};

use common::{quick, seed_workspace};

fn restore(c: &mut Criterion) {
    let base = tempfile::tempdir().expect("bench directory");
    let ws_root = base.path().join("ws");
    let bytes = seed_workspace(&ws_root);
    let repo_path = base.path().join("repo");
    let mut repo = Repo::init(&repo_path, ChunkerParams::default(), 0).expect("init repository");
    let ws = snapstore::workspace::discover(Some(&repo_path), None, &ws_root).expect("workspace");
    let opts = CommitOptions {
        now_ns: snapstore::ops::commit::now_ns(),
        ..CommitOptions::default()
    };
    repo.commit(&ws, opts, &NoProgress).expect("commit");

    let mut g = c.benchmark_group("restore");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("latest", |b| {
        b.iter_batched(
            || tempfile::tempdir_in(base.path()).expect("target directory"),
            |dir| {
                let opts = RestoreOptions {
                    paths: vec![],
                    target: dir.path().join("out"),
                    overwrite: false,
                    protect: None,
                };
                let summary = repo.restore("latest", opts, &NoProgress).expect("restore");
                assert_eq!(summary.bytes, bytes);
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! { name = benches; config = quick(); targets = restore }
criterion_main!(benches);
