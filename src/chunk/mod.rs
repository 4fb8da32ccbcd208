//! Content-defined chunking (FastCDC 2020) over a stream.
//!
//! Files are never read whole: the chunker keeps one window of at most
//! `WINDOW` bytes, cuts chunks from it, and refills. A cut is only searched
//! for when at least `max_size` bytes are buffered (or the stream ended), so
//! the boundaries are exactly those FastCDC finds over the whole file, and
//! independent of the window size and of how `read` splits the input.
//!
//! The parameters come from the repository config, never from a global.

use std::io::Read;

use fastcdc::v2020::{cut_gear, get_gear_with_seed, logarithm2, MASKS};

use crate::format::config::ChunkerParams;

/// Bytes buffered per stream. Large enough that refills are rare, small
/// enough to bound memory per file being read.
pub const WINDOW: usize = 16 << 20;

/// A FastCDC cutter with its gear tables and masks precomputed.
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl Chunker {
    /// Builds a chunker. `params` must have passed `ChunkerParams::validate`.
    pub fn new(params: &ChunkerParams) -> Self {
        let bits = logarithm2(params.avg_size);
        let norm = params.normalization as u32;
        let (gear, gear_ls) = get_gear_with_seed(params.seed);
        Chunker {
            min: params.min_size as usize,
            avg: params.avg_size as usize,
            max: params.max_size as usize,
            mask_s: MASKS[(bits + norm) as usize],
            mask_l: MASKS[(bits - norm) as usize],
            gear,
            gear_ls,
        }
    }

    pub fn min_size(&self) -> usize {
        self.min
    }

    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Length of the next chunk at the start of `data`. `data` must hold at
    /// least `max_size` bytes unless it is the end of the stream.
    pub fn next_cut(&self, data: &[u8]) -> usize {
        let (_, n) = cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        n
    }

    /// Cuts an in-memory buffer; returns the chunk lengths in order.
    pub fn cut_all(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let n = self.next_cut(&data[pos..]);
            out.push(n);
            pos += n;
        }
        out
    }

    /// Streams `reader` through the chunker, calling `emit(offset, bytes)`
    /// for every chunk in order. Returns the number of bytes read.
    pub fn stream<R: Read, E>(
        &self,
        mut reader: R,
        mut emit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, StreamError<E>> {
        let window = WINDOW.max(2 * self.max);
        let mut buf = vec![0u8; window];
        let (mut start, mut end) = (0usize, 0usize);
        let mut offset = 0u64;
        let mut eof = false;
        loop {
            while !eof && end < buf.len() {
                match reader.read(&mut buf[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(StreamError::Io(e)),
                }
            }
            while end - start >= self.max || (eof && end > start) {
                let n = self.next_cut(&buf[start..end]);
                emit(offset, &buf[start..start + n]).map_err(StreamError::Emit)?;
                offset += n as u64;
                start += n;
            }
            if eof {
                return Ok(offset);
            }
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
    }
}

impl Chunker {
    /// Cuts `reader` into fixed chunks of `avg_size` bytes (the last one
    /// shorter). Used inside tensor segments: their bytes never shift, so
    /// fixed chunks aligned to the segment start dedup as well as CDC, cost
    /// nothing to find, and stay aligned to whole elements.
    pub fn stream_fixed<R: Read, E>(
        &self,
        mut reader: R,
        mut emit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, StreamError<E>> {
        let mut buf = vec![0u8; self.avg];
        let mut offset = 0u64;
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(StreamError::Io(e)),
                }
            }
            if filled == 0 {
                return Ok(offset);
            }
            emit(offset, &buf[..filled]).map_err(StreamError::Emit)?;
            offset += filled as u64;
            if filled < buf.len() {
                return Ok(offset);
            }
        }
    }
}

/// Failure while streaming: reading the input, or the caller's `emit`.
#[derive(Debug)]
pub enum StreamError<E> {
    Io(std::io::Error),
    Emit(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift), so boundaries are stable.
    fn seeded(len: usize, mut seed: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.extend_from_slice(&seed.to_le_bytes());
        }
        v.truncate(len);
        v
    }

    fn small_params() -> ChunkerParams {
        ChunkerParams {
            min_size: 2048,
            avg_size: 8192,
            max_size: 32768,
            normalization: 1,
            seed: 0,
        }
    }

    /// Golden boundaries: if this changes, every existing repository's dedup
    /// breaks. Never update these numbers without a new chunker version.
    #[test]
    fn golden_boundaries_default_params() {
        let data = seeded(8 << 20, 0x5eed);
        let c = Chunker::new(&ChunkerParams::default());
        let cuts = c.cut_all(&data);
        assert_eq!(cuts.iter().sum::<usize>(), data.len());
        assert_eq!(&cuts[..6], GOLDEN_FIRST, "chunker boundaries changed");
        assert_eq!(cuts.len(), 9);
    }

    const GOLDEN_FIRST: [usize; 6] = [770163, 854502, 359561, 1664372, 1296930, 924781];

    /// Small parameters exercise many cuts; pinned the same way.
    #[test]
    fn golden_boundaries_small_params() {
        let data = seeded(1 << 20, 42);
        let cuts = Chunker::new(&small_params()).cut_all(&data);
        assert_eq!(cuts.iter().sum::<usize>(), data.len());
        assert_eq!(
            (cuts.len(), &cuts[..5]),
            GOLDEN_SMALL,
            "chunker boundaries changed"
        );
    }

    const GOLDEN_SMALL: (usize, &[usize]) = (108, &[7284, 2108, 11848, 9422, 8725]);

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Streaming with any read size gives exactly the in-memory cuts.
        #[test]
        fn stream_matches_whole(len in 0usize..300_000, seed in 1u64.., read_size in 1usize..70_000) {
            let data = seeded(len, seed);
            let c = Chunker::new(&small_params());
            let whole = c.cut_all(&data);
            struct Dribble<'a>(&'a [u8], usize);
            impl std::io::Read for Dribble<'_> {
                fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                    let n = self.1.min(buf.len()).min(self.0.len());
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let mut got = Vec::new();
            let mut joined = Vec::new();
            let total = c.stream(Dribble(&data, read_size), |off, bytes| {
                proptest::prop_assert_eq!(off as usize, joined.len());
                got.push(bytes.len());
                joined.extend_from_slice(bytes);
                Ok(())
            }).map_err(|e| match e { StreamError::Emit(e) => e, StreamError::Io(e) => panic!("{e}") })?;
            proptest::prop_assert_eq!(total as usize, data.len());
            proptest::prop_assert_eq!(got, whole);
            proptest::prop_assert_eq!(joined, data);
        }
    }
}
