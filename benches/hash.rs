//! BLAKE3 chunk ids on 1 MiB chunks (the default average chunk size), the
//! way commit hashes every chunk it reads: one chunk per call, one thread.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapstore::ChunkId;

use common::{quick, tensor, MIB};

fn hash(c: &mut Criterion) {
    let data = tensor(MIB, 21);
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("chunk_id/1MiB", |b| {
        b.iter(|| ChunkId::of(black_box(&data)))
    });
    g.finish();
}

criterion_group! { name = benches; config = quick(); targets = hash }
criterion_main!(benches);
