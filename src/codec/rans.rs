//! A static rANS entropy coder for one plane of byte symbols: the exponent
//! bytes of float tensors, whose skewed distribution (about 2.6 bits of
//! entropy per symbol on trained weights) Huffman coding, as in zstd, serves
//! badly: zstd -1 spends about 3.07 bits per exponent on all-MiniLM-L6-v2,
//! this coder 2.61 (docs/performance.md, "Float codec").
//!
//! Why by hand: the `constriction` crate codes the same plane about as
//! small, but encodes at a third of the speed (`cargo bench --bench float
//! -- exponent`: 56 vs 169 Msymbols/s in one run), which alone would hold
//! fp32 compression under the 300 MB/s per core that snap aims for.
//!
//! The coder is the textbook one (Duda's rANS as in ryg_rans): 32-bit
//! states renormalised by 16-bit words, probabilities quantised to
//! `PROB_BITS` bits, four interleaved states so that the CPU can overlap
//! their dependency chains. The stream is
//!
//! ```text
//! first: u8, count-1: u8, freq: u16 LE x count,
//! state: u32 LE x 4, words: u16 LE x k
//! ```
//!
//! `freq[i]` is the quantised probability of symbol `first + i`; they sum
//! to `2^PROB_BITS`. Decoding checks that every state ends where encoding
//! began and that every word is consumed, so a damaged stream is reported,
//! never silently decoded to other bytes (the chunk's BLAKE3 is checked on
//! top of that).

/// Probability precision: at 14 bits the quantisation costs about 0.01 bit
/// per symbol on real exponent planes, and the decoder's slot table (16 KiB)
/// stays in L1 cache.
const PROB_BITS: u32 = 14;
const M: u32 = 1 << PROB_BITS;
/// Lower bound of a normalised state.
const L: u32 = 1 << 16;
const LANES: usize = 4;

/// Why a stream does not decode.
pub type Damage = &'static str;

/// Symbol counts of a plane.
pub fn histogram(symbols: &[u8]) -> [u32; 256] {
    // Four tables so that runs of one symbol do not serialise on one counter.
    let mut h = [[0u32; 256]; 4];
    let mut quads = symbols.chunks_exact(4);
    for q in &mut quads {
        h[0][q[0] as usize] += 1;
        h[1][q[1] as usize] += 1;
        h[2][q[2] as usize] += 1;
        h[3][q[3] as usize] += 1;
    }
    for &s in quads.remainder() {
        h[0][s as usize] += 1;
    }
    let mut out = [0u32; 256];
    for (i, o) in out.iter_mut().enumerate() {
        *o = h[0][i] + h[1][i] + h[2][i] + h[3][i];
    }
    out
}

/// A plane's symbol probabilities, quantised once for both `estimate` and
/// `encode`.
pub struct Model {
    freq: [u32; 256],
}

impl Model {
    /// The model of a plane with these counts (`histogram`).
    pub fn of(counts: &[u32; 256]) -> Model {
        Model {
            freq: quantize(counts),
        }
    }
}

/// Probabilities quantised to sum to `M`, every present symbol at least 1.
fn quantize(counts: &[u32; 256]) -> [u32; 256] {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let mut freq = [0u32; 256];
    if total == 0 {
        return freq;
    }
    let mut sum: i64 = 0;
    for (f, &c) in freq.iter_mut().zip(counts) {
        if c > 0 {
            *f = ((u64::from(c) * u64::from(M) / total) as u32).max(1);
            sum += i64::from(*f);
        }
    }
    // Rounding left the sum off by at most one per symbol: take from or give
    // to the most probable symbols, where a unit costs the least.
    let mut excess = sum - i64::from(M);
    while excess != 0 {
        let (top, _) = freq
            .iter()
            .enumerate()
            .max_by_key(|&(_, &f)| f)
            .expect("256 entries");
        if excess < 0 {
            freq[top] += (-excess) as u32;
            excess = 0;
        } else {
            let take = excess.min(i64::from(freq[top] / 2).max(1)) as u32;
            freq[top] -= take;
            excess -= i64::from(take);
        }
    }
    freq
}

/// Estimated size in bytes of `encode` for a plane with these counts and
/// their model.
pub fn estimate(counts: &[u32; 256], model: &Model) -> usize {
    let bits: f64 = counts
        .iter()
        .zip(&model.freq)
        .filter(|(&c, _)| c > 0)
        .map(|(&c, &f)| f64::from(c) * (f64::from(PROB_BITS) - f64::from(f).log2()))
        .sum();
    (bits / 8.0) as usize + 2 + 2 * 256 + 4 * LANES
}

/// Appends the rANS stream of `symbols` to `out`. `model` must be
/// `Model::of(&histogram(symbols))`.
pub fn encode(symbols: &[u8], model: &Model, out: &mut Vec<u8>) {
    let freq = &model.freq;
    let first = freq.iter().position(|&f| f > 0).unwrap_or(0);
    let last = freq.iter().rposition(|&f| f > 0).unwrap_or(0);
    // Per symbol: frequency, start, the largest state that stays below 2^32
    // after coding it (a u64: a lone symbol's bound is 2^32), and
    // ceil(2^48 / freq), which turns x / freq into a multiply: for x < 2^32
    // and freq <= 2^14 the error stays under 2^-16 while the fraction of
    // x / freq is at most 1 - 2^-14, so the quotient is exact.
    let mut table = [(1u32, 0u32, 0u64, 0u64); 256];
    let mut acc = 0;
    for s in 0..256 {
        if freq[s] > 0 {
            let f = u64::from(freq[s]);
            table[s] = (
                freq[s],
                acc,
                f << (32 - PROB_BITS),
                (1u64 << 48).div_ceil(f),
            );
        }
        acc += freq[s];
    }

    out.push(first as u8);
    out.push((last - first) as u8);
    for f in &freq[first..=last] {
        // A lone symbol has probability M, stored as 0 (it fits no u16).
        out.extend_from_slice(&((*f % M) as u16).to_le_bytes());
    }

    // Symbols are coded last to first; each emits at most one word, written
    // back to front so that the decoder reads them front to back.
    let mut words = vec![0u16; symbols.len()];
    let mut pos = words.len();
    let mut put = |x: &mut u32, s: u8| {
        let (f, start, x_max, rcp) = table[s as usize];
        debug_assert!(freq[s as usize] > 0, "counts do not match symbols");
        if u64::from(*x) >= x_max {
            pos -= 1;
            words[pos] = *x as u16;
            *x >>= 16;
        }
        let q = ((u128::from(*x) * u128::from(rcp)) >> 48) as u32;
        debug_assert_eq!(q, *x / f);
        *x = (q << PROB_BITS) + (*x - q * f) + start;
    };
    let (mut x0, mut x1, mut x2, mut x3) = (L, L, L, L);
    let whole = symbols.len() / LANES * LANES;
    // Symbol i belongs to lane i % 4; the tail first, as it is coded first.
    let tail = &symbols[whole..];
    for (i, &s) in tail.iter().enumerate().rev() {
        match i {
            0 => put(&mut x0, s),
            1 => put(&mut x1, s),
            _ => put(&mut x2, s),
        }
    }
    for q in symbols[..whole].chunks_exact(LANES).rev() {
        put(&mut x3, q[3]);
        put(&mut x2, q[2]);
        put(&mut x1, q[1]);
        put(&mut x0, q[0]);
    }
    for x in [x0, x1, x2, x3] {
        out.extend_from_slice(&x.to_le_bytes());
    }
    let words = &words[pos..];
    out.reserve(words.len() * 2);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Decodes `n` symbols from a stream made by `encode`.
pub fn decode(stream: &[u8], n: usize) -> Result<Vec<u8>, Damage> {
    let (&first, rest) = stream.split_first().ok_or("rANS stream is empty")?;
    let (&span, rest) = rest.split_first().ok_or("rANS stream is truncated")?;
    let count = usize::from(span) + 1;
    if usize::from(first) + count > 256 {
        return Err("rANS symbol range exceeds a byte");
    }
    let table_len = 2 * count + 4 * LANES;
    if rest.len() < table_len {
        return Err("rANS stream is truncated");
    }
    let mut freq = [0u32; 256];
    for (i, f) in rest[..2 * count].chunks_exact(2).enumerate() {
        let v = u32::from(u16::from_le_bytes([f[0], f[1]]));
        freq[usize::from(first) + i] = if count == 1 && v == 0 { M } else { v };
    }
    if freq.iter().sum::<u32>() != M {
        return Err("rANS frequencies do not sum to the precision");
    }
    // Per slot its symbol; per symbol (frequency << 16 | start).
    let mut sym = vec![0u8; M as usize];
    let mut fs = [0u32; 256];
    let mut acc = 0u32;
    for (s, &f) in freq.iter().enumerate() {
        sym[acc as usize..(acc + f) as usize].fill(s as u8);
        fs[s] = (f << 16) | acc;
        acc += f;
    }
    let mut state = [0u32; LANES];
    for (x, b) in state
        .iter_mut()
        .zip(rest[2 * count..table_len].chunks_exact(4))
    {
        *x = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if *x < L {
            return Err("rANS state out of range");
        }
    }
    let words = &rest[table_len..];
    if words.len() % 2 != 0 {
        return Err("rANS word stream has an odd length");
    }
    // Reads past the end yield 0 and are caught by the final check.
    let mut pos = 0usize;
    let mut get = |x: &mut u32| -> u8 {
        let slot = *x & (M - 1);
        let s = sym[slot as usize];
        let e = fs[s as usize];
        *x = (e >> 16) * (*x >> PROB_BITS) + slot - (e & 0xffff);
        if *x < L {
            let w = words
                .get(pos..pos + 2)
                .map_or(0, |w| u32::from(u16::from_le_bytes([w[0], w[1]])));
            *x = (*x << 16) | w;
            pos += 2;
        }
        s
    };
    let [mut x0, mut x1, mut x2, mut x3] = state;
    let mut out = vec![0u8; n];
    let whole = n / LANES * LANES;
    for q in out[..whole].chunks_exact_mut(LANES) {
        q[0] = get(&mut x0);
        q[1] = get(&mut x1);
        q[2] = get(&mut x2);
        q[3] = get(&mut x3);
    }
    for (i, o) in out[whole..].iter_mut().enumerate() {
        *o = match i {
            0 => get(&mut x0),
            1 => get(&mut x1),
            _ => get(&mut x2),
        };
    }
    if pos != words.len() || [x0, x1, x2, x3].iter().any(|&x| x != L) {
        return Err("rANS stream does not end where it should");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(symbols: &[u8]) -> usize {
        let mut out = Vec::new();
        encode(symbols, &Model::of(&histogram(symbols)), &mut out);
        assert_eq!(decode(&out, symbols.len()).unwrap(), symbols);
        out.len()
    }

    #[test]
    fn skewed_plane_codes_near_its_entropy() {
        // Symbols 100..110 with geometric probabilities: entropy ~1.9 bits.
        let mut s = 12345u64;
        let plane: Vec<u8> = (0..200_000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                100 + (s.trailing_zeros().min(9) as u8)
            })
            .collect();
        let counts = histogram(&plane);
        let n = plane.len() as f64;
        let entropy: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| -f64::from(c) * (f64::from(c) / n).log2())
            .sum::<f64>()
            / 8.0;
        let size = round_trip(&plane);
        assert!(
            (size as f64) < entropy * 1.01 + 64.0,
            "{size} bytes vs entropy {entropy}"
        );
        let est = estimate(&counts, &Model::of(&counts)) as f64;
        assert!((est - size as f64).abs() < 0.01 * size as f64 + 600.0);
    }

    #[test]
    fn edge_cases_round_trip() {
        round_trip(&[]);
        round_trip(&[7]);
        round_trip(&[7; 1000]);
        round_trip(&[0, 255, 0, 255, 1]);
        let all: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        round_trip(&all);
    }

    #[test]
    fn damage_is_reported() {
        let plane: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 13) as u8).collect();
        let mut out = Vec::new();
        encode(&plane, &Model::of(&histogram(&plane)), &mut out);
        assert!(decode(&out[..out.len() - 2], plane.len()).is_err());
        assert!(decode(&out, plane.len() + 1).is_err());
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            // Either an error or different bytes: never a panic. (The chunk's
            // BLAKE3 catches the rest.)
            if let Ok(d) = decode(&bad, plane.len()) {
                assert_ne!(d, plane, "flip at {i} went unnoticed");
            }
        }
    }

    #[test]
    fn reciprocal_division_is_exact() {
        for f in (1u64..=16).chain([255, 256, 1000, 4095, 8191, 16383, 16384]) {
            let rcp = (1u64 << 48).div_ceil(f);
            let mut x = 0xffff_ffffu64;
            // The largest states, and multiples of f and their neighbours.
            for _ in 0..20_000 {
                for y in [x, x / f * f, (x / f * f).saturating_sub(1)] {
                    assert_eq!(
                        ((u128::from(y) * u128::from(rcp)) >> 48) as u64,
                        y / f,
                        "{y} / {f}"
                    );
                }
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    >> 32;
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_plane_round_trips(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            round_trip(&data);
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), n in 0usize..2000) {
            let _ = decode(&data, n);
        }
    }
}
