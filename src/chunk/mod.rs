//! Content-defined chunking (FastCDC 2020) over a stream.
//!
//! Files are never read whole: the chunker keeps one window of at most
//! `WINDOW` bytes, cuts chunks from it, and refills. A cut is only searched
//! for when at least `max_size` bytes are buffered (or the stream ended), so
//! the boundaries are exactly those FastCDC finds over the whole file, and
//! independent of the window size and of how `read` splits the input.
//!
//! The window is the caller's buffer, reused from one stream to the next,
//! and a stream uses only as much of it as its length needs (one byte more,
//! to see the end): a commit of many small files grows it once to the
//! largest file and never zeroes it again, rather than zeroing a whole
//! window per file.
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

    /// Streams the first `len` bytes of `reader` through the chunker,
    /// calling `emit(offset, bytes)` for every chunk in order, with `buf` as
    /// the window (grown as needed, its contents ignored). Returns the
    /// number of bytes read: `len`, or fewer if the reader ended first.
    pub fn stream<R: Read, E>(
        &self,
        reader: R,
        len: u64,
        buf: &mut Vec<u8>,
        mut emit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, StreamError<E>> {
        let window = WINDOW.max(2 * self.max);
        // Room for all of a short stream and one more byte, so that its end
        // is seen without a cut ever being searched in fewer than `max`
        // bytes; a long stream gets the window, which always has room for
        // more once the chunks before its last `max` bytes are cut.
        let cap = match usize::try_from(len) {
            Ok(n) if n < window => n + 1,
            _ => window,
        };
        let buf = window_of(buf, cap);
        let mut reader = reader.take(len);
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
    /// Cuts the first `len` bytes of `reader` into fixed chunks of
    /// `avg_size` bytes (the last one shorter), with `buf` as the buffer
    /// (as in `stream`). Used inside tensor segments: their bytes never
    /// shift, so fixed chunks aligned to the segment start dedup as well as
    /// CDC, cost nothing to find, and stay aligned to whole elements.
    pub fn stream_fixed<R: Read, E>(
        &self,
        reader: R,
        len: u64,
        buf: &mut Vec<u8>,
        mut emit: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, StreamError<E>> {
        // A chunk is `avg` bytes or the rest of the stream: a shorter
        // stream needs no more than its length.
        let cap = usize::try_from(len).map_or(self.avg, |n| n.clamp(1, self.avg));
        let buf = window_of(buf, cap);
        let mut reader = reader.take(len);
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

/// The first `cap` bytes of `buf`, growing it (zeroing only the new part)
/// if it is shorter; it is never shrunk, so the next stream reuses it.
fn window_of(buf: &mut Vec<u8>, cap: usize) -> &mut [u8] {
    if buf.len() < cap {
        buf.resize(cap, 0);
    }
    &mut buf[..cap]
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

    /// A stream's buffer is never larger than its length (plus the one
    /// byte that shows the end), a buffer reused across streams of other
    /// lengths gives the same cuts as a fresh one, and a stream stops at
    /// its length even if the reader has more.
    #[test]
    fn buffer_sized_by_the_stream_and_reused() {
        let c = Chunker::new(&small_params());
        let mut buf = Vec::new();
        let cuts = |c: &Chunker, buf: &mut Vec<u8>, data: &[u8], len: u64, fixed: bool| {
            let mut got = Vec::new();
            let mut emit = |off: u64, b: &[u8]| {
                got.push((off, b.to_vec()));
                Ok::<(), ()>(())
            };
            let n = if fixed {
                c.stream_fixed(data, len, buf, &mut emit)
            } else {
                c.stream(data, len, buf, &mut emit)
            };
            assert_eq!(n.ok(), Some(len.min(data.len() as u64)));
            got
        };
        let small = seeded(4000, 9);
        let got = cuts(&c, &mut buf, &small, 4000, false);
        assert_eq!(got, vec![(0, small.clone())]);
        assert_eq!(buf.len(), 4001, "a 4000-byte stream used a larger buffer");
        let got = cuts(&c, &mut buf, &small, 4000, true);
        assert_eq!(got, vec![(0, small.clone())]);
        assert_eq!(buf.len(), 4001);

        let big = seeded(300_000, 10);
        let got = cuts(&c, &mut buf, &big, 300_000, false);
        let lens: Vec<usize> = got.iter().map(|(_, b)| b.len()).collect();
        assert_eq!(lens, c.cut_all(&big));
        assert_eq!(joined(&got), big);
        // Reused (now larger, holding old bytes) for short and fixed streams.
        let got = cuts(&c, &mut buf, &small, 1000, false);
        assert_eq!(got, vec![(0, small[..1000].to_vec())]);
        let got = cuts(&c, &mut buf, &big, 20_000, true);
        let fixed: Vec<(u64, usize)> = got.iter().map(|(o, b)| (*o, b.len())).collect();
        assert_eq!(fixed, vec![(0, 8192), (8192, 8192), (16384, 3616)]);
        assert_eq!(joined(&got), big[..20_000]);
        assert!(cuts(&c, &mut buf, &big, 0, false).is_empty());
        assert!(cuts(&c, &mut buf, &big, 0, true).is_empty());
    }

    fn joined(chunks: &[(u64, Vec<u8>)]) -> Vec<u8> {
        chunks.iter().flat_map(|(_, b)| b.iter().copied()).collect()
    }

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
            let mut buf = vec![7u8; read_size % 5000];
            let total = c.stream(Dribble(&data, read_size), len as u64, &mut buf, |off, bytes| {
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
