//! `Repo::restore` of a whole snapshot of the seeded ~36 MiB workspace into
//! a fresh directory: plan, read packs, decompress, verify BLAKE3, write.
//! `restore/locate`: the plan's chunk lookups in an index of 100,000 blobs,
//! one query per chunk against `Index::blobs`' batched queries.

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use snapstore::format::pack::{Codec, PackEntry, PackKind};
use snapstore::store::index::Index;
use snapstore::store::packs::FinishedPack;
use snapstore::{ChunkId, ChunkerParams, CommitOptions, NoProgress, PackId, Repo, RestoreOptions};

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
                    target: dir.path().join("out"),
                    ..RestoreOptions::default()
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

/// Chunks in the `locate` index: a snapshot of about 100 GiB at 1 MiB chunks.
const LOCATE_CHUNKS: u32 = 100_000;

fn locate(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("bench directory");
    let (mut index, _) = Index::open(&dir.path().join("index.sqlite")).expect("open index");
    let ids: Vec<ChunkId> = (0..LOCATE_CHUNKS)
        .map(|i| ChunkId::of(&i.to_le_bytes()))
        .collect();
    index
        .transaction(|tx| {
            for (p, part) in ids.chunks(2_000).enumerate() {
                let entries = part
                    .iter()
                    .enumerate()
                    .map(|(i, id)| PackEntry {
                        id: *id,
                        codec: Codec::Zstd,
                        offset: 8 + (i as u64) * 1_000_000,
                        stored_len: 1_000_000,
                        raw_len: 1_048_576,
                        base: None,
                    })
                    .collect();
                tx.insert_pack(&FinishedPack {
                    id: PackId([p as u8; 32]),
                    kind: PackKind::Data,
                    size: 0,
                    entries,
                })?;
            }
            Ok(())
        })
        .expect("fill index");

    let mut g = c.benchmark_group("restore/locate");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("query per chunk", |b| {
        b.iter(|| {
            let found = ids
                .iter()
                .filter_map(|id| index.blob(id, PackKind::Data).expect("query"))
                .count();
            assert_eq!(found, ids.len());
        })
    });
    g.bench_function("batched", |b| {
        b.iter(|| {
            let found = index.blobs(&ids, PackKind::Data).expect("query");
            assert_eq!(found.len(), ids.len());
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = quick(); targets = restore, locate }
criterion_main!(benches);
