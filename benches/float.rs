//! The float codec on real or seeded weights, against plain zstd on the same
//! bytes in the same run.
//!
//! `SNAP_BENCH_MODEL=path/model.safetensors cargo bench --bench float` runs
//! on the fp32 tensors of a real model (benches/codec.sh fetches
//! all-MiniLM-L6-v2 and sets it); without it, on seeded N(0, 0.02) fp32.
//! bf16 data is the same values rounded to bf16.
//!
//! Prints stored/raw for the float codec and for zstd -3 per 1 MiB chunk,
//! then times, on one thread:
//! - `float/encode|decode/{fp32,bf16}`: the codec (`encode_tensor`, which
//!   also samples plain zstd to choose), next to `zstd3/encode|decode`;
//! - `exponent/*`: the exponent plane alone, coded by snap's rANS, by the
//!   `constriction` crate's rANS (the crate the hand-written coder replaces;
//!   its size is printed for the 12-bit model its fast decoder needs, its
//!   encode timed with its 24-bit default model) and by zstd -1.

mod common;

use std::hint::black_box;

use constriction::stream::model::{
    DefaultContiguousCategoricalEntropyModel, SmallContiguousCategoricalEntropyModel,
};
use constriction::stream::stack::{DefaultAnsCoder, SmallAnsCoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use snapstore::codec::{self, float::Layout, rans};

use common::{quick, tensor, MIB};

/// fp32 values of the model named by SNAP_BENCH_MODEL, else seeded weights.
fn fp32_weights() -> (String, Vec<u8>) {
    let Ok(path) = std::env::var("SNAP_BENCH_MODEL") else {
        return ("seeded".into(), tensor(32 * MIB, 41));
    };
    let file = std::fs::read(&path).expect("SNAP_BENCH_MODEL is readable");
    let n = u64::from_le_bytes(file[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&file[8..8 + n]).expect("a safetensors header");
    let mut out = Vec::new();
    for (name, t) in &header {
        if name == "__metadata__" || t["dtype"] != "F32" {
            continue;
        }
        let off = &t["data_offsets"];
        let (s, e) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        out.extend_from_slice(&file[8 + n + s..8 + n + e]);
    }
    (path, out)
}

/// fp32 rounded to nearest-even bf16.
fn to_bf16(fp32: &[u8]) -> Vec<u8> {
    fp32.chunks_exact(4)
        .flat_map(|e| {
            let u = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let r = ((u64::from(u) + 0x7fff + u64::from((u >> 16) & 1)) >> 16) as u16;
            r.to_le_bytes()
        })
        .collect()
}

fn ratio(chunks: &[&[u8]], f: impl Fn(&[u8]) -> usize) -> f64 {
    let raw: usize = chunks.iter().map(|c| c.len()).sum();
    chunks.iter().map(|c| f(c)).sum::<usize>() as f64 / raw as f64
}

fn float(c: &mut Criterion) {
    let (source, fp32) = fp32_weights();
    let bf16 = to_bf16(&fp32);
    let mut g = c.benchmark_group("float");
    for (name, data, layout) in [("fp32", &fp32, Layout::F32), ("bf16", &bf16, Layout::BF16)] {
        let chunks: Vec<&[u8]> = data.chunks(MIB).collect();
        let encoded: Vec<_> = chunks
            .iter()
            .map(|c| codec::encode_tensor(c, 3, layout))
            .collect();
        let zstd3: Vec<_> = chunks.iter().map(|c| codec::encode(c, 3)).collect();
        eprintln!(
            "float/{name} ({source}, {} MiB): float codec {:.4} of raw, zstd -3 {:.4}",
            data.len() / MIB,
            ratio(&chunks, |c| codec::encode_tensor(c, 3, layout).1.len()),
            ratio(&chunks, |c| codec::encode(c, 3).1.len()),
        );
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|c| codec::encode_tensor(black_box(c), 3, layout).1.len())
                    .sum::<usize>()
            })
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                encoded
                    .iter()
                    .zip(&chunks)
                    .map(|((k, bytes), c)| {
                        codec::decode(*k, black_box(bytes), c.len()).unwrap().len()
                    })
                    .sum::<usize>()
            })
        });
        g.bench_function(format!("zstd3-encode/{name}"), |b| {
            b.iter(|| {
                chunks
                    .iter()
                    .map(|c| codec::encode(black_box(c), 3).1.len())
                    .sum::<usize>()
            })
        });
        g.bench_function(format!("zstd3-decode/{name}"), |b| {
            b.iter(|| {
                zstd3
                    .iter()
                    .zip(&chunks)
                    .map(|((k, bytes), c)| {
                        codec::decode(*k, black_box(bytes), c.len()).unwrap().len()
                    })
                    .sum::<usize>()
            })
        });
    }
    g.finish();

    // The exponent plane of every 1 MiB fp32 chunk.
    let planes: Vec<Vec<u8>> = fp32
        .chunks(MIB)
        .map(|c| {
            c.chunks_exact(4)
                .map(|e| (u32::from_le_bytes([e[0], e[1], e[2], e[3]]) >> 23) as u8)
                .collect()
        })
        .collect();
    let symbols: usize = planes.iter().map(Vec::len).sum();
    let ours: Vec<Vec<u8>> = planes
        .iter()
        .map(|p| {
            let mut out = Vec::new();
            rans::encode(p, &rans::Model::of(&rans::histogram(p)), &mut out);
            out
        })
        .collect();
    let probs: Vec<Vec<u16>> = planes
        .iter()
        .map(|p| quantize12(&rans::histogram(p)))
        .collect();
    let theirs: Vec<Vec<u16>> = planes
        .iter()
        .zip(&probs)
        .map(|(p, q)| {
            let model =
                SmallContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(
                    q, false,
                )
                .unwrap();
            let mut coder = SmallAnsCoder::new();
            coder
                .encode_iid_symbols_reverse(p.iter().map(|&s| usize::from(s)), &model)
                .unwrap();
            coder.into_compressed().unwrap()
        })
        .collect();
    let bits = |bytes: usize| 8.0 * bytes as f64 / symbols as f64;
    eprintln!(
        "exponent ({source}): snap rANS {:.3} bits/symbol, constriction 12-bit {:.3}, zstd -1 {:.3}",
        bits(ours.iter().map(Vec::len).sum()),
        bits(2 * theirs.iter().map(Vec::len).sum::<usize>()),
        bits(planes.iter().map(|p| codec::encode(p, 1).1.len()).sum()),
    );
    let mut g = c.benchmark_group("exponent");
    g.throughput(Throughput::Elements(symbols as u64));
    g.bench_function("encode/snap-rans", |b| {
        b.iter(|| {
            planes
                .iter()
                .map(|p| {
                    let mut out = Vec::new();
                    rans::encode(
                        black_box(p),
                        &rans::Model::of(&rans::histogram(p)),
                        &mut out,
                    );
                    out.len()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("decode/snap-rans", |b| {
        b.iter(|| {
            ours.iter()
                .zip(&planes)
                .map(|(s, p)| rans::decode(black_box(s), p.len()).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("encode/constriction", |b| {
        b.iter(|| {
            planes
                .iter()
                .map(|p| {
                    let q = quantize12(&rans::histogram(p));
                    let model = DefaultContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(
                        q.iter().map(|&x| u32::from(x) << 12).collect::<Vec<_>>(),
                        false,
                    )
                    .unwrap();
                    let mut coder = DefaultAnsCoder::new();
                    coder.encode_iid_symbols_reverse(black_box(p).iter().map(|&s| usize::from(s)), &model).unwrap();
                    coder.into_compressed().unwrap().len()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("encode/zstd1", |b| {
        b.iter(|| {
            planes
                .iter()
                .map(|p| codec::encode(black_box(p), 1).1.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

/// Counts quantised to 12-bit probabilities (constriction's lookup decoder
/// works at 12 bits), every present symbol at least 1.
fn quantize12(counts: &[u32; 256]) -> Vec<u16> {
    let last = counts.iter().rposition(|&c| c > 0).unwrap_or(0);
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let mut p: Vec<u16> = counts[..=last]
        .iter()
        .map(|&c| {
            if c == 0 {
                0
            } else {
                ((u64::from(c) << 12) / total).max(1) as u16
            }
        })
        .collect();
    let sum: i64 = p.iter().map(|&x| i64::from(x)).sum();
    let top = (0..p.len()).max_by_key(|&i| p[i]).unwrap_or(0);
    p[top] = (i64::from(p[top]) + (1 << 12) - sum) as u16;
    // Zero entries are not allowed by the nonzero constructor: give them the
    // smallest probability, taken from the top symbol.
    let zeros = p.iter().filter(|&&x| x == 0).count() as u16;
    for x in p.iter_mut().filter(|x| **x == 0) {
        *x = 1;
    }
    p[top] -= zeros;
    p
}

criterion_group! { name = benches; config = quick(); targets = float }
criterion_main!(benches);
