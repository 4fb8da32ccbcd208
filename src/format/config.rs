//! The repository `config` file: format version, repository id, and the
//! chunker and codec parameters, fixed for the life of the repository so that
//! dedup never breaks silently because a default changed.
//!
//! Layout: envelope `SNPC` v1, bincode body, then a 32-byte BLAKE3 of all the
//! preceding bytes (the config is not content-addressed, so it carries its
//! own checksum).

use serde::{Deserialize, Serialize};

use super::{decode_body, encode_record, split_envelope, unsupported_version};
use crate::error::{Error, Result};

pub const MAGIC: &[u8; 4] = b"SNPC";
pub const VERSION: u16 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Random id of this repository, hex.
    pub repo_id: String,
    /// Creation time, Unix nanoseconds.
    pub created_ns: i64,
    pub chunker: ChunkerParams,
    /// zstd level used for new chunks.
    pub zstd_level: i32,
    /// Pack files are closed once they reach this many bytes.
    pub pack_target_size: u64,
}

/// FastCDC (2020) parameters. Part of the repository identity: changing them
/// would cut the same data differently and defeat dedup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// FastCDC normalization level (0..=3).
    pub normalization: u8,
    /// Seed of the gear table (0 = the published table).
    pub seed: u64,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 << 10,
            avg_size: 1 << 20,
            max_size: 4 << 20,
            normalization: 1,
            seed: 0,
        }
    }
}

impl ChunkerParams {
    /// Checks the parameters against FastCDC's accepted ranges.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020 as f;
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&self.min_size)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&self.avg_size)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(Error::corrupt(
                "config",
                format!("chunker parameters out of range: {self:?}"),
            ))
        }
    }
}

impl RepoConfig {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_record(MAGIC, VERSION, self);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "repository config";
        if bytes.len() < 32 {
            return Err(Error::corrupt(WHAT, "file too short"));
        }
        let (content, sum) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(content).as_bytes() != sum {
            return Err(Error::corrupt(WHAT, "checksum mismatch"));
        }
        let (version, body) = split_envelope(WHAT, MAGIC, content)?;
        if version != VERSION {
            return Err(unsupported_version(WHAT, version, VERSION));
        }
        let cfg: RepoConfig = decode_body(WHAT, body)?;
        cfg.chunker.validate()?;
        if !(1..=22).contains(&cfg.zstd_level) || cfg.pack_target_size == 0 {
            return Err(Error::corrupt(
                WHAT,
                "codec or pack parameters out of range",
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checksum() {
        let cfg = RepoConfig {
            repo_id: "ab".into(),
            created_ns: 5,
            chunker: ChunkerParams::default(),
            zstd_level: 3,
            pack_target_size: 32 << 20,
        };
        let mut bytes = cfg.encode();
        assert_eq!(RepoConfig::decode(&bytes).unwrap(), cfg);
        bytes[7] ^= 1;
        assert!(RepoConfig::decode(&bytes).is_err());
    }
}
