//! Deletion marks: the first phase of deleting a pack. `prune` marks a pack
//! it no longer needs (and drops it from the index) instead of deleting it;
//! only a later prune, once the grace period has passed since the mark, deletes
//! the pack and then its mark. Meanwhile the pack file stays where it was, so a
//! reader that located a blob in it before the prune still reads it.
//!
//! Layout: envelope `SNPD` v1, bincode `PackMark`.

use serde::{Deserialize, Serialize};

use super::{decode_body, encode_record, split_envelope, unsupported_version};
use crate::error::{Error, Result};
use crate::id::PackId;

pub const MAGIC: &[u8; 4] = b"SNPD";
pub const VERSION: u16 = 1;

/// A mark is a few dozen bytes; anything much larger is not one.
pub const MAX_LEN: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackMark {
    /// The pack it marks (also its file name: a mark beside another pack
    /// is refused).
    pub pack: PackId,
    /// When prune marked it, Unix nanoseconds.
    pub marked_ns: i64,
}

impl PackMark {
    pub fn encode(&self) -> Vec<u8> {
        encode_record(MAGIC, VERSION, self)
    }

    /// Decodes a mark and checks that it is the mark of `pack`.
    pub fn decode(bytes: &[u8], pack: &PackId) -> Result<Self> {
        const WHAT: &str = "pack deletion mark";
        if bytes.len() > MAX_LEN {
            return Err(Error::corrupt(
                WHAT,
                format!("{} bytes is too long for a mark", bytes.len()),
            ));
        }
        let (version, body) = split_envelope(WHAT, MAGIC, bytes)?;
        if version != VERSION {
            return Err(unsupported_version(WHAT, version, VERSION));
        }
        let mark: PackMark = decode_body(WHAT, body)?;
        if mark.pack != *pack {
            return Err(Error::corrupt(
                WHAT,
                format!("it marks pack {}, not {}", mark.pack.short(), pack.short()),
            ));
        }
        Ok(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let mark = PackMark {
            pack: PackId([7; 32]),
            marked_ns: 1_700_000_000_000_000_000,
        };
        let bytes = mark.encode();
        assert_eq!(PackMark::decode(&bytes, &PackId([7; 32])).unwrap(), mark);
        let err = PackMark::decode(&bytes, &PackId([8; 32])).unwrap_err();
        assert!(err.to_string().contains("marks pack"), "{err}");
        let mut newer = bytes.clone();
        newer[4] = 2;
        let err = PackMark::decode(&newer, &PackId([7; 32])).unwrap_err();
        assert!(err.to_string().contains("upgrade snap"), "{err}");
        assert!(PackMark::decode(&bytes[..bytes.len() - 1], &PackId([7; 32])).is_err());
        assert!(PackMark::decode(&vec![0; MAX_LEN + 1], &PackId([7; 32])).is_err());
    }
}
