//! The per-chunk codec at the repository's zstd level: encode and decode of
//! 1 MiB chunks, on fp32 tensor-like data (barely compressible) and on
//! training logs (very compressible). Each iteration handles 16 chunks so
//! the input is not all in L2 cache. Prints the ratio each input gets.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapstore::codec;

use common::{quick, tensor, text_log, MIB};

const CHUNKS: usize = 16;
/// The level `Repo::init` writes into a new repository's config.
const LEVEL: i32 = 3;

fn compress(c: &mut Criterion) {
    let inputs = [
        ("tensor", tensor(CHUNKS * MIB, 31)),
        ("text", text_log(CHUNKS * MIB, 32)),
    ];
    let mut g = c.benchmark_group("compress");
    g.throughput(Throughput::Bytes((CHUNKS * MIB) as u64));
    for (name, data) in &inputs {
        let encoded: Vec<_> = data
            .chunks(MIB)
            .map(|chunk| codec::encode(chunk, LEVEL))
            .collect();
        let stored: usize = encoded.iter().map(|(_, bytes)| bytes.len()).sum();
        eprintln!(
            "compress/{name}: stored/raw = {:.3} ({:?})",
            stored as f64 / data.len() as f64,
            encoded[0].0
        );
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                data.chunks(MIB)
                    .map(|chunk| codec::encode(black_box(chunk), LEVEL).1.len())
                    .sum::<usize>()
            })
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                encoded
                    .iter()
                    .map(|(codec, bytes)| {
                        codec::decode(*codec, black_box(bytes), MIB)
                            .expect("decoding what encode produced")
                            .len()
                    })
                    .sum::<usize>()
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = quick(); targets = compress }
criterion_main!(benches);
