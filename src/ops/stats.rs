//! Repository statistics. Logical, unique and stored bytes are reported
//! separately because a single "size" number is easy to misread.

use crate::error::Result;
use crate::format::pack::PackKind;
use crate::store::index::Index;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub snapshots: usize,
    pub sessions: usize,
    pub tags: usize,
    /// Sum over snapshots of the bytes of the files they hold.
    pub logical_bytes: u64,
    /// Plain bytes of the distinct chunks stored.
    pub unique_bytes: u64,
    pub chunks: u64,
    /// Bytes of pack files (data and trees).
    pub stored_bytes: u64,
    pub data_pack_bytes: u64,
    pub tree_pack_bytes: u64,
    pub packs: usize,
    /// logical / unique.
    pub dedup_ratio: f64,
    /// unique / stored data.
    pub compression_ratio: f64,
    /// logical / stored.
    pub total_ratio: f64,
    /// The distinct chunks by the codec they are stored with.
    pub codecs: Vec<CodecTotal>,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CodecTotal {
    /// `Codec::name`: raw, zstd, float, float-delta, ...
    pub codec: String,
    pub chunks: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

pub fn stats(index: &Index) -> Result<Stats> {
    let snaps = index.snapshots()?;
    let mut sessions: Vec<&str> = snaps
        .iter()
        .filter_map(|(_, s)| s.session.as_deref())
        .collect();
    sessions.sort();
    sessions.dedup();
    let (chunks, unique, _) = index.data_totals()?;
    let packs = index.packs()?;
    let data: u64 = packs
        .iter()
        .filter(|p| p.1 == PackKind::Data)
        .map(|p| p.2)
        .sum();
    let trees: u64 = packs
        .iter()
        .filter(|p| p.1 == PackKind::Tree)
        .map(|p| p.2)
        .sum();
    let logical: u64 = snaps.iter().map(|(_, s)| s.summary.logical_bytes).sum();
    Ok(Stats {
        snapshots: snaps.len(),
        sessions: sessions.len(),
        tags: index.tags()?.len(),
        logical_bytes: logical,
        unique_bytes: unique,
        chunks,
        stored_bytes: data + trees,
        data_pack_bytes: data,
        tree_pack_bytes: trees,
        packs: packs.len(),
        dedup_ratio: ratio(logical, unique),
        compression_ratio: ratio(unique, data),
        total_ratio: ratio(logical, data + trees),
        codecs: index
            .data_totals_by_codec()?
            .into_iter()
            .map(|(codec, chunks, raw_bytes, stored_bytes)| CodecTotal {
                codec: codec.name().to_string(),
                chunks,
                raw_bytes,
                stored_bytes,
            })
            .collect(),
    })
}
