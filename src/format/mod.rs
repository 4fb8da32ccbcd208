//! Pure encode/decode of every on-disk record. Nothing here touches the file
//! system: each decoder is a function of bytes that validates magic, version
//! and bounds before trusting anything, and never allocates more than the
//! input length can justify (bincode decoding is capped by `MAX_RECORD`).
//!
//! Every record is an envelope `magic (4 bytes) | version (u16 LE) | body`,
//! where the body is bincode 2 (standard config, varint integers) of a serde
//! struct. The byte-level layout is specified in `docs/format.md`.

pub mod config;
pub mod journal;
pub mod mark;
pub mod note;
pub mod pack;
pub mod snapshot;
pub mod tree;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// Upper bound on any single record body, on decode (bincode's allocation
/// accounting, which counts every integer at its full width) and, for tree
/// records, on write (`ops::commit::trees`): a directory whose record would
/// not decode is refused by the commit, never stored.
pub const MAX_RECORD: usize = 256 << 20;

/// Upper bound on a data chunk's plain length: FastCDC's largest accepted
/// `max_size` (16 MiB). No chunker configuration can cut a longer chunk, so
/// a blob declaring more is damaged, and is refused before anything of that
/// size is allocated.
pub const MAX_CHUNK: u32 = fastcdc::v2020::MAXIMUM_MAX;

/// Upper bound on an encoded record: `MAX_RECORD` and the envelope.
pub const MAX_RECORD_BYTES: usize = MAX_RECORD + ENVELOPE_LEN;

const ENVELOPE_LEN: usize = 6;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD>()
}

/// Encodes `value` as `magic | version | bincode(value)`.
pub fn encode_record<T: Serialize>(magic: &[u8; 4], version: u16, value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    bincode::serde::encode_into_std_write(value, &mut out, bincode_config())
        .expect("encoding into a Vec cannot fail and records are below MAX_RECORD");
    out
}

/// Checks the envelope and returns `(version, body)`.
pub fn split_envelope<'a>(what: &str, magic: &[u8; 4], bytes: &'a [u8]) -> Result<(u16, &'a [u8])> {
    if bytes.len() < ENVELOPE_LEN {
        return Err(Error::corrupt(
            what,
            format!("{} bytes is too short for a record", bytes.len()),
        ));
    }
    if &bytes[..4] != magic {
        return Err(Error::corrupt(
            what,
            format!(
                "bad magic {:?}, expected {:?}",
                String::from_utf8_lossy(&bytes[..4]),
                String::from_utf8_lossy(magic)
            ),
        ));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    Ok((version, &bytes[ENVELOPE_LEN..]))
}

/// Whether `bytes`, an encoded record of type `T`, decodes within the
/// limits: its body is at most `limit` bytes and, when it is large enough
/// that bincode's accounting (at most 8 counted bytes per encoded byte)
/// could pass `MAX_RECORD`, it decodes. For writers, before they store a
/// record that readers would refuse.
pub fn fits_limit<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> bool {
    let body = bytes.len().saturating_sub(ENVELOPE_LEN);
    if body > limit.min(MAX_RECORD) {
        return false;
    }
    body <= MAX_RECORD / 8 || decode_body::<T>("record", &bytes[ENVELOPE_LEN..]).is_ok()
}

/// Decodes a bincode body, requiring that it consumes every byte.
pub fn decode_body<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T> {
    if body.len() > MAX_RECORD {
        return Err(Error::corrupt(what, "record larger than the format allows"));
    }
    let (value, used) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| Error::corrupt(what, e.to_string()))?;
    if used != body.len() {
        return Err(Error::corrupt(
            what,
            format!("{} trailing bytes", body.len() - used),
        ));
    }
    Ok(value)
}

/// Returns an error for a version this build does not know.
pub fn unsupported_version(what: &str, version: u16, supported: u16) -> Error {
    Error::corrupt(
        what,
        format!("record version {version} is not supported (this snap reads up to {supported}); upgrade snap"),
    )
}
