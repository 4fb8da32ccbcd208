//! safetensors: a u64 LE header length N, N bytes of JSON, then the data;
//! each tensor's `data_offsets` are relative to the end of the header.

use super::{read_at, Dtype, Range, Source, MAX_HEADER};

/// safetensors: u64 LE header length N, N bytes of JSON, then the data;
/// each tensor's `data_offsets` are relative to the end of the header.
pub(super) fn ranges<S: Source + ?Sized>(file: &S, size: u64) -> Option<Vec<Range>> {
    let n = u64::from_le_bytes(read_at(file, 0, 8)?.try_into().ok()?);
    if n == 0 || n > MAX_HEADER || 8 + n > size || read_at(file, 8, 1)? != b"{" {
        return None;
    }
    let header = read_at(file, 8, n)?;
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header).ok()?;
    let base = 8 + n;
    let mut out = Vec::new();
    for (name, t) in &json {
        if name == "__metadata__" {
            continue;
        }
        let offs = t.get("data_offsets")?.as_array()?;
        let (b, e) = (offs.first()?.as_u64()?, offs.get(1)?.as_u64()?);
        let dtype = Dtype::of_name(t.get("dtype")?.as_str()?);
        out.push((base.checked_add(b)?, base.checked_add(e)?, dtype));
    }
    Some(out)
}
