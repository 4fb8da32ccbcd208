//! FastCDC throughput with the default repository parameters (1 MiB average
//! chunks): `cut_all` over a buffer, and `stream`, which adds the copy
//! through the chunker's read window that commit pays for every file.

mod common;

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapstore::chunk::Chunker;
use snapstore::ChunkerParams;

use common::{quick, tensor, text_log, MIB};

const LEN: usize = 64 * MIB;

fn chunk(c: &mut Criterion) {
    let chunker = Chunker::new(&ChunkerParams::default());
    let inputs = [("tensor", tensor(LEN, 11)), ("text", text_log(LEN, 12))];
    let mut g = c.benchmark_group("chunk");
    g.throughput(Throughput::Bytes(LEN as u64));
    for (name, data) in &inputs {
        g.bench_function(format!("cut_all/{name}"), |b| {
            b.iter(|| black_box(chunker.cut_all(black_box(data))).len())
        });
        g.bench_function(format!("stream/{name}"), |b| {
            let mut buf = Vec::new();
            b.iter(|| {
                let mut chunks = 0usize;
                chunker
                    .stream(
                        black_box(&data[..]),
                        data.len() as u64,
                        &mut buf,
                        |_, bytes| {
                            chunks += black_box(bytes).len().min(1);
                            Ok::<(), Infallible>(())
                        },
                    )
                    .expect("reading a slice cannot fail");
                chunks
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = quick(); targets = chunk }
criterion_main!(benches);
