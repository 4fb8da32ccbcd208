//! Typed object ids: every object in a repository is named by a BLAKE3 hash.
//!
//! A chunk id is the plain BLAKE3 hash of the chunk's bytes (so `b3sum` of a
//! single-chunk file equals its chunk id). Trees, snapshots and packs are hashed
//! with BLAKE3 in key-derivation mode under a context per kind, so two kinds of
//! object can never share an id even with identical bytes, and the type system
//! keeps a `TreeId` from being used where a `ChunkId` is meant.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Length in bytes of every id.
pub const ID_LEN: usize = 32;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The id as lowercase hex (64 characters).
            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }

            /// The first `n` hex characters, for display.
            pub fn short(&self) -> String {
                let mut h = self.to_hex();
                h.truncate(8);
                h
            }

            /// Parses a full 64-character hex id.
            pub fn from_hex(s: &str) -> Option<Self> {
                parse_hex(s).map(Self)
            }

            /// Builds an id from a 32-byte slice, as stored in the index.
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                <[u8; ID_LEN]>::try_from(b).ok().map(Self)
            }

            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

define_id!(
    /// The BLAKE3 hash of a chunk's plain (uncompressed) bytes.
    ChunkId
);
define_id!(
    /// The keyed BLAKE3 hash of an encoded tree record.
    TreeId
);
define_id!(
    /// The keyed BLAKE3 hash of an encoded snapshot record.
    SnapshotId
);
define_id!(
    /// The keyed BLAKE3 hash of a whole pack file.
    PackId
);

const TREE_CONTEXT: &str = "snap 2026 tree v1";
const SNAPSHOT_CONTEXT: &str = "snap 2026 snapshot v1";
const PACK_CONTEXT: &str = "snap 2026 pack v1";

impl ChunkId {
    pub fn of(data: &[u8]) -> Self {
        ChunkId(*blake3::hash(data).as_bytes())
    }
}

impl TreeId {
    pub fn of(encoded: &[u8]) -> Self {
        TreeId(blake3::derive_key(TREE_CONTEXT, encoded))
    }
}

impl SnapshotId {
    pub fn of(encoded: &[u8]) -> Self {
        SnapshotId(blake3::derive_key(SNAPSHOT_CONTEXT, encoded))
    }
}

impl PackId {
    /// A streaming hasher whose output is a pack id.
    pub fn hasher() -> blake3::Hasher {
        blake3::Hasher::new_derive_key(PACK_CONTEXT)
    }

    pub fn from_hasher(h: &blake3::Hasher) -> Self {
        PackId(*h.finalize().as_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn parse_hex(s: &str) -> Option<[u8; ID_LEN]> {
    if s.len() != ID_LEN * 2 {
        return None;
    }
    let mut out = [0u8; ID_LEN];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// True if `s` could be the start of a hex id (used to resolve prefixes).
pub fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_LEN * 2 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.to_hex(), blake3::hash(b"hello").to_hex().to_string());
        assert_eq!(ChunkId::from_hex("zz"), None);
    }

    #[test]
    fn kinds_never_collide() {
        assert_ne!(TreeId::of(b"x").0, SnapshotId::of(b"x").0);
        assert_ne!(TreeId::of(b"x").0, ChunkId::of(b"x").0);
    }
}
