//! Checkpoint-aware storage: tensor-boundary chunking (safetensors, npy,
//! zip-based .pt), the float codecs, tensor diffs, and malformed files.

use std::io::Write;

use crate::util::*;

/// Seeded fp32 values around N(0, 0.02), like trained weights.
pub fn weights(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 4);
    for _ in 0..n {
        let u: f64 = (0..4)
            .map(|_| rng.below(1 << 30) as f64 / (1u64 << 30) as f64)
            .sum();
        out.extend_from_slice(&(((u - 2.0) * 0.035) as f32).to_le_bytes());
    }
    out
}

/// A safetensors file: `(name, dtype, bytes)` tensors in order, plus metadata.
pub fn safetensors(tensors: &[(String, &str, Vec<u8>)], meta: &str) -> Vec<u8> {
    let mut header = format!(r#"{{"__metadata__":{{"note":"{meta}"}}"#);
    let mut off = 0;
    for (name, dtype, data) in tensors {
        let elem = if dtype == &"F32" { 4 } else { 2 };
        header.push_str(&format!(
            r#","{name}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{off},{}]}}"#,
            data.len() / elem,
            off + data.len()
        ));
        off += data.len();
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (_, _, data) in tensors {
        out.extend_from_slice(data);
    }
    out
}

/// Twelve tensors of ~600 KiB; the odd ones are "trained" (change per epoch).
fn model(epoch: u64) -> (Vec<u8>, u64) {
    let mut changed = 0;
    let tensors: Vec<(String, &str, Vec<u8>)> = (0..12u64)
        .map(|i| {
            let trained = i % 2 == 1;
            let mut rng = Rng::new(if trained { 1000 * epoch + i } else { i + 7 });
            let data = weights(&mut rng, 150_000 + i as usize * 3);
            if trained {
                changed += data.len() as u64;
            }
            (
                format!("layer{i}.{}", if trained { "trained" } else { "frozen" }),
                "F32",
                data,
            )
        })
        .collect();
    (safetensors(&tensors, &format!("epoch {epoch}")), changed)
}

#[test]
fn unchanged_tensors_dedup_whatever_changed_before_them() {
    let ws = Ws::new();
    let (m1, _) = model(1);
    ws.write("model.safetensors", &m1);
    ws.commit(&[]);
    let (m2, changed) = model(2);
    ws.write("model.safetensors", &m2);
    let s = ws.commit(&[]);
    let new_raw = summary_u64(&s, "new_raw_bytes");
    // The header changed size (metadata), shifting every tensor; still only
    // the trained tensors and the header are new.
    let header = u64::from_le_bytes(m2[..8].try_into().unwrap()) + 8;
    assert!(
        new_raw >= changed,
        "new {new_raw} < changed tensors {changed}"
    );
    assert!(
        new_raw <= changed + header,
        "new {new_raw} > changed tensors {changed} + header {header}"
    );
    let dir = ws.restore_to("latest", "r");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), m2);
    let first = ws.log()[0]["id"].as_str().unwrap().to_string();
    let dir = ws.restore_to(&first, "r1");
    assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), m1);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn float_tensors_store_smaller_than_plain_zstd_would() {
    let ws = Ws::new();
    let (m, _) = model(1);
    ws.write("model.safetensors", &m);
    // The same bytes in a file snap does not recognise get plain zstd.
    let mut opaque = b"not a checkpoint".to_vec();
    opaque.extend_from_slice(&m[8..]);
    ws.write("opaque.bin", &opaque);
    let s = ws.commit(&["model.safetensors"]);
    let grouped =
        summary_u64(&s, "new_stored_bytes") as f64 / summary_u64(&s, "new_raw_bytes") as f64;
    let s = ws.commit(&["opaque.bin"]);
    let plain =
        summary_u64(&s, "new_stored_bytes") as f64 / summary_u64(&s, "new_raw_bytes") as f64;
    assert!(
        grouped < plain - 0.03,
        "grouped {grouped:.3} vs plain {plain:.3}"
    );
    let dir = ws.restore_to("latest", "r");
    assert_eq!(std::fs::read(dir.join("opaque.bin")).unwrap(), opaque);
    let files = ws.show_files(ws.log()[0]["id"].as_str().unwrap());
    assert_eq!(files["model.safetensors"]["tensors"]["count"], 12);
}

#[test]
fn bf16_round_trips_through_the_grouped_codec() {
    let ws = Ws::new();
    let mut rng = Rng::new(3);
    let fp32 = weights(&mut rng, 400_000);
    let bf16: Vec<u8> = fp32.chunks_exact(4).flat_map(|e| [e[2], e[3]]).collect();
    let file = safetensors(&[("w".into(), "BF16", bf16)], "bf16");
    ws.write("m.safetensors", &file);
    let s = ws.commit(&[]);
    assert!(summary_u64(&s, "new_stored_bytes") * 100 < summary_u64(&s, "new_raw_bytes") * 80);
    let dir = ws.restore_to("latest", "r");
    assert_eq!(std::fs::read(dir.join("m.safetensors")).unwrap(), file);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn tensor_diff_names_exactly_the_changed_tensors() {
    let ws = Ws::new();
    ws.write("model.safetensors", &model(1).0);
    ws.write("notes.txt", b"a");
    let a = ws.commit_id(&[]);
    ws.write("model.safetensors", &model(2).0);
    std::fs::remove_file(ws.path("notes.txt")).unwrap();
    let b = ws.commit_id(&[]);
    let d = ws.json(&["diff", &a, &b, "--tensors"]);
    assert_eq!(d["removed"][0]["path"], "notes.txt");
    let m = &d["changed"][0];
    assert_eq!(m["path"], "model.safetensors");
    let changed: Vec<&str> = m["tensors"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(changed.len(), 6);
    assert!(
        changed.iter().all(|n| n.ends_with(".trained")),
        "{changed:?}"
    );
    assert_eq!(m["tensors"]["unchanged"], 6);
    assert_eq!(m["tensors"]["changed"][0]["dtype"], "F32");
    // Without --tensors: files only.
    let d = ws.json(&["diff", &a, &b]);
    assert!(d["changed"][0].get("tensors").is_none());
}

#[test]
fn npy_and_pt_zip_are_cut_at_tensor_boundaries() {
    let ws = Ws::new();
    let mut rng = Rng::new(11);
    // npy v1: header padded to 64 bytes, then float32 data.
    let npy = |data: &[u8]| {
        let dict = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
            data.len() / 4
        );
        let mut h = dict.into_bytes();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out
    };
    let a = weights(&mut rng, 300_000);
    let b1 = weights(&mut rng, 300_000);
    let b2 = weights(&mut rng, 300_000);
    // A torch.save-like zip: stored entries, one per storage.
    let pt = |b: &[u8]| {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", opts).unwrap();
        z.write_all(b"pickle bytes").unwrap();
        z.start_file("archive/data/0", opts).unwrap();
        z.write_all(&a).unwrap();
        z.start_file("archive/data/1", opts).unwrap();
        z.write_all(b).unwrap();
        z.finish().unwrap();
        buf.into_inner()
    };
    ws.write("ckpt.pt", &pt(&b1));
    ws.write("a.npy", &npy(&a));
    ws.commit(&[]);
    ws.write("ckpt.pt", &pt(&b2));
    let mut a2 = a.clone();
    let n = a2.len();
    a2[n - 4..].copy_from_slice(&1.5f32.to_le_bytes());
    ws.write("a.npy", &npy(&a2));
    let s = ws.commit(&[]);
    let new_raw = summary_u64(&s, "new_raw_bytes");
    // data/1 changed (1.2 MB) plus the zip's central directory and headers;
    // in a.npy only the last fixed chunk changed (at most 1 MiB).
    let limit = b2.len() as u64 + (1 << 20) + 64 * 1024;
    assert!(new_raw <= limit, "new {new_raw} > {limit}");
    assert!(new_raw >= b2.len() as u64);
    let dir = ws.restore_to("latest", "r");
    assert_eq!(std::fs::read(dir.join("ckpt.pt")).unwrap(), pt(&b2));
    assert_eq!(std::fs::read(dir.join("a.npy")).unwrap(), npy(&a2));
}

#[test]
fn malformed_checkpoints_are_stored_as_plain_files() {
    let ws = Ws::new();
    let (m, _) = model(1);
    let mut truncated = m.clone();
    truncated.truncate(m.len() / 2);
    let mut bad_json = m.clone();
    bad_json[9] = b'!';
    let huge_header = [u64::MAX.to_le_bytes().to_vec(), b"{}".to_vec()].concat();
    ws.write("truncated.safetensors", &truncated);
    ws.write("bad.safetensors", &bad_json);
    ws.write("huge.safetensors", &huge_header);
    ws.write("bad.npy", b"\x93NUMPY\x09\x00garbage");
    ws.write("bad.pt", b"PK\x03\x04 not really a zip");
    ws.commit(&[]);
    let dir = ws.restore_to("latest", "r");
    assert_eq!(
        std::fs::read(dir.join("truncated.safetensors")).unwrap(),
        truncated
    );
    assert_eq!(
        std::fs::read(dir.join("bad.safetensors")).unwrap(),
        bad_json
    );
    assert_eq!(
        std::fs::read(dir.join("huge.safetensors")).unwrap(),
        huge_header
    );
    assert_eq!(
        std::fs::read(dir.join("bad.pt")).unwrap(),
        b"PK\x03\x04 not really a zip"
    );
    ws.ok(&["check", "--read-data"]);
}

/// A safetensors file from a raw JSON header and `data` bytes of tensor data.
fn raw_safetensors(header: &str, data: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(3u8, data));
    out
}

/// `snap show` and `snap diff --tensors` read safetensors headers with the
/// parser commit segments with: a header it would not cut at (offsets that
/// overflow or leave the file, overlapping tensors, no dtype, a byte 8 that
/// is not `{`) lists no tensors, and nothing panics.
#[test]
fn show_and_diff_refuse_the_headers_commit_refuses() {
    let ws = Ws::new();
    let w = |offs: &str| format!(r#""w":{{"dtype":"F32","shape":[2],"data_offsets":{offs}}}"#);
    let hostile = [
        ("overflow", format!("{{{}}}", w("[0,18446744073709551615]"))),
        ("beyond", format!("{{{}}}", w("[0,20]"))),
        ("reversed", format!("{{{}}}", w("[8,0]"))),
        (
            "overlap",
            format!(
                r#"{{{},"v":{{"dtype":"F32","shape":[2],"data_offsets":[4,8]}}}}"#,
                w("[0,8]")
            ),
        ),
        (
            "nodtype",
            r#"{"w":{"shape":[2],"data_offsets":[0,8]}}"#.to_string(),
        ),
        ("space", format!(" {{{}}}", w("[0,8]"))),
    ];
    let good = format!("{{{}}}", w("[0,8]"));
    let write_all = |extra: usize| {
        ws.write("good.safetensors", &raw_safetensors(&good, 8 + extra));
        for (name, header) in &hostile {
            ws.write(
                &format!("{name}.safetensors"),
                &raw_safetensors(header, 8 + extra),
            );
        }
    };
    write_all(0);
    let a = ws.commit_id(&[]);
    write_all(1);
    let b = ws.commit_id(&[]);
    let files = ws.show_files(&b);
    assert_eq!(files["good.safetensors"]["tensors"]["count"], 1);
    for (name, _) in &hostile {
        let f = &files[format!("{name}.safetensors").as_str()];
        assert!(f.get("tensors").is_none(), "{name}: {f}");
    }
    let d = ws.json(&["diff", &a, &b, "--tensors"]);
    let changed = d["changed"].as_array().unwrap();
    assert_eq!(changed.len(), hostile.len() + 1);
    for c in changed {
        let has = c.get("tensors").is_some();
        assert_eq!(has, c["path"] == "good.safetensors", "{c}");
    }
}
