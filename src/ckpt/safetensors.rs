//! safetensors: a u64 LE header length N, N bytes of JSON, then the data;
//! each tensor's `data_offsets` are relative to the end of the header.
//!
//! The one reader of the format: commit segments with it, and `snap diff
//! --tensors` and `snap show` list tensors with it, so a file is a
//! safetensors checkpoint for all three or for none. What it accepts: N is
//! 1..=`MAX_HEADER` and the header fits in the file; byte 8 is `{`; the
//! header is a JSON object; every entry but `__metadata__` has a string
//! `dtype` and `data_offsets` `[begin, end]` of unsigned integers with
//! `begin <= end`, the range (computed without overflow) inside the file;
//! no two tensors overlap. Anything else is not a checkpoint (`None`). At
//! most the N header bytes are read and allocated, and only once N is
//! known to fit in the file.

use super::{read_at, Dtype, Range, Source, Tensor, MAX_HEADER};

/// The tensors of a safetensors file of `size` bytes, in header order (by
/// name), each located; None if it is not one.
pub(super) fn tensors<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<Tensor>> {
    let n = u64::from_le_bytes(read_at(file, 0, 8)?.try_into().ok()?);
    if n == 0 || n > MAX_HEADER || 8 + n > size || read_at(file, 8, 1)? != b"{" {
        return None;
    }
    let header = read_at(file, 8, n)?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header).ok()?;
    let base = 8 + n;
    let mut out = Vec::with_capacity(json.len());
    for (name, t) in &json {
        if name == "__metadata__" {
            continue;
        }
        let offs = t.get("data_offsets")?.as_array()?;
        let (b, e) = (offs.first()?.as_u64()?, offs.get(1)?.as_u64()?);
        let dtype = t.get("dtype")?.as_str()?;
        let (start, end) = (base.checked_add(b)?, base.checked_add(e)?);
        if b > e || end > size {
            return None;
        }
        out.push(Tensor {
            name: name.clone(),
            dtype: dtype.to_string(),
            shape: t
                .get("shape")
                .and_then(|s| s.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
                .unwrap_or_default(),
            bytes: e - b,
            offset: start,
            len: e - b,
        });
    }
    let mut spans: Vec<(u64, u64)> = out.iter().map(|t| (t.offset, t.offset + t.len)).collect();
    spans.sort_unstable();
    spans.windows(2).all(|w| w[0].1 <= w[1].0).then_some(out)
}

/// Tensor ranges for segmenting.
pub(super) fn ranges<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<Range>> {
    let ts = tensors(file, size)?;
    Some(
        ts.iter()
            .map(|t| (t.offset, t.offset + t.len, Dtype::of_name(&t.dtype)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(1u8, data));
        out
    }

    #[test]
    fn tensors_are_located_after_the_header() {
        let h = r#"{"__metadata__":{"a":"b"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let f = file(h, 12);
        let ts = tensors(&f[..], f.len() as u64).expect("parses");
        let base = 8 + h.len() as u64;
        let got: Vec<(&str, &str, u64, u64)> = ts
            .iter()
            .map(|t| (t.name.as_str(), t.dtype.as_str(), t.offset, t.len))
            .collect();
        assert_eq!(got, [("a", "F32", base, 8), ("b", "BF16", base + 8, 4)]);
        assert_eq!(ts[0].shape, [2]);
        let r = ranges(&f[..], f.len() as u64).unwrap();
        assert_eq!(
            r,
            [
                (base, base + 8, Dtype::F32),
                (base + 8, base + 12, Dtype::BF16)
            ]
        );
    }

    #[test]
    fn hostile_headers_are_not_checkpoints() {
        let t = |offs: &str| format!(r#"{{"w":{{"dtype":"F32","data_offsets":{offs}}}}}"#);
        for h in [
            t("[0,18446744073709551615]"),
            t("[18446744073709551615,18446744073709551615]"),
            t("[0,9]"),
            t("[8,0]"),
            t("[0]"),
            t(r#"["0","8"]"#),
            r#"{"w":{"data_offsets":[0,8]}}"#.to_string(),
            r#"{"w":{"dtype":"F32","data_offsets":[0,8]},"v":{"dtype":"F32","data_offsets":[4,8]}}"#
                .to_string(),
            format!(" {}", t("[0,8]")),
            "[]".to_string(),
        ] {
            let f = file(&h, 8);
            assert_eq!(tensors(&f[..], f.len() as u64), None, "{h}");
        }
        // A header length beyond the file or the limit is not read at all.
        for n in [u64::MAX, MAX_HEADER + 1, 100] {
            let mut f = n.to_le_bytes().to_vec();
            f.extend_from_slice(b"{}");
            assert_eq!(tensors(&f[..], f.len() as u64), None);
        }
    }
}
