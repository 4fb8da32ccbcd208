//! PyTorch `.pt` and NumPy `.npz` checkpoints, on files torch and numpy wrote
//! (tests/fixtures/, made by make_pt.py): tensor diffs and counts read from
//! the store, dedup of unchanged storages, the float codec for typed
//! storages, and damaged files stored as plain bytes.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use crate::delta::codec_chunks;
use crate::util::*;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// One entry of a zip, inflated (big.zip holds the large checkpoints).
fn zip_entry(zip: &[u8], name: &str) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a zip");
    let mut out = Vec::new();
    z.by_name(name)
        .expect("entry present")
        .read_to_end(&mut out)
        .expect("entry reads");
    out
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list of tensors")
        .iter()
        .map(|t| t["name"].as_str().expect("tensor name"))
        .collect()
}

/// Commits `files` one version after the other as the same path; returns
/// the snapshot JSON of each commit.
fn commit_versions(ws: &Ws, path: &str, versions: &[&[u8]]) -> Vec<Value> {
    versions
        .iter()
        .map(|v| {
            ws.write(path, v);
            ws.commit(&[])
        })
        .collect()
}

#[test]
fn pt_tensor_diff_names_exactly_the_changed_tensor() {
    let ws = Ws::new();
    let (v1, v2) = (fixture("small_v1.pt"), fixture("small_v2.pt"));
    let snaps = commit_versions(&ws, "ckpt.pt", &[&v1, &v2]);
    let (a, b) = (id_of(&snaps[0]), id_of(&snaps[1]));
    let d = ws.json(&["diff", &a, &b, "--tensors"]);
    let f = &d["changed"][0];
    assert_eq!(f["path"], "ckpt.pt");
    let t = &f["tensors"];
    assert_eq!(names(&t["changed"]), ["model.fc2.weight"]);
    assert_eq!(t["changed"][0]["dtype"], "F16");
    assert_eq!(t["changed"][0]["shape"], serde_json::json!([4, 16]));
    assert_eq!(t["changed"][0]["bytes"], 128);
    assert!(names(&t["added"]).is_empty() && names(&t["removed"]).is_empty());
    // fp32, bf16, int64, the view into fc1.weight and the optimizer state.
    assert_eq!(t["unchanged"], 12);
    let human = ws.ok(&["diff", &a, &b, "--tensors"]);
    assert!(
        human.contains("M model.fc2.weight F16 [4, 16] 128 B"),
        "{human}"
    );
    assert!(human.contains("12 tensors unchanged"), "{human}");
    // Both versions restore byte for byte.
    let dir = ws.restore_to(&a, "r1");
    assert_eq!(std::fs::read(dir.join("ckpt.pt")).unwrap(), v1);
    let dir = ws.restore_to(&b, "r2");
    assert_eq!(std::fs::read(dir.join("ckpt.pt")).unwrap(), v2);
}

#[test]
fn npz_tensor_diff_names_exactly_the_changed_array() {
    let ws = Ws::new();
    let (v1, v2) = (fixture("arrays.npz"), fixture("arrays_v2.npz"));
    let snaps = commit_versions(&ws, "arrays.npz", &[&v1, &v2]);
    let d = ws.json(&["diff", &id_of(&snaps[0]), &id_of(&snaps[1]), "--tensors"]);
    let t = &d["changed"][0]["tensors"];
    assert_eq!(names(&t["changed"]), ["weights"]);
    assert_eq!(t["changed"][0]["dtype"], "F32");
    assert_eq!(t["changed"][0]["shape"], serde_json::json!([3, 4]));
    assert_eq!(t["unchanged"], 3);
    // A stored npz replaced by a compressed one with the same arrays: the
    // names match and nothing is added or removed.
    ws.write("arrays.npz", &fixture("compressed.npz"));
    let c = ws.commit_id(&[]);
    let d = ws.json(&["diff", &id_of(&snaps[0]), &c, "--tensors"]);
    let t = &d["changed"][0]["tensors"];
    assert!(names(&t["added"]).is_empty() && names(&t["removed"]).is_empty());
    let dir = ws.restore_to(&c, "r");
    assert_eq!(
        std::fs::read(dir.join("arrays.npz")).unwrap(),
        fixture("compressed.npz")
    );
}

#[test]
fn show_json_counts_pt_and_npz_tensors() {
    let ws = Ws::new();
    ws.write("ckpt/model.pt", &fixture("small_v1.pt"));
    ws.write("ckpt/model.pth", &fixture("small_v2.pt"));
    ws.write("arrays.npz", &fixture("arrays.npz"));
    ws.write("compressed.npz", &fixture("compressed.npz"));
    ws.write("notes.pt", b"not a checkpoint, just named like one\n");
    let id = ws.commit_id(&[]);
    let files = ws.show_files(&id);
    // 13 tensors: 7 in the model (one a view), 6 in the Adam state.
    let model = 512 + 64 + 128 + 8 + 64 + 80 + 64;
    let adam = (4 + 512 + 512) + (4 + 64 + 64);
    for path in ["ckpt/model.pt", "ckpt/model.pth"] {
        assert_eq!(files[path]["tensors"]["count"], 13, "{path}");
        assert_eq!(files[path]["tensors"]["bytes"], model + adam, "{path}");
    }
    for path in ["arrays.npz", "compressed.npz"] {
        assert_eq!(files[path]["tensors"]["count"], 4, "{path}");
        assert_eq!(files[path]["tensors"]["bytes"], 12 + 40 + 3 + 48, "{path}");
    }
    assert!(files["notes.pt"].get("tensors").is_none());
    let dir = ws.restore_to(&id, "r");
    assert_same_tree(&ws.root, &dir, &[".snap"]);
}

#[test]
fn unchanged_tensors_of_a_rewritten_pt_dedup() {
    let ws = Ws::new();
    let big = fixture("big.zip");
    let (v1, v2) = (zip_entry(&big, "big_v1.pt"), zip_entry(&big, "big_v2.pt"));
    let snaps = commit_versions(&ws, "model.pt", &[&v1, &v2]);
    // v2 rewrote the file: a longer note in data.pkl shifts every storage,
    // and decoder.weight (512 x 1024 fp32, 2 MiB) changed.
    let changed = 512 * 1024 * 4;
    let new_raw = summary_u64(&snaps[1], "new_raw_bytes");
    assert!(
        new_raw >= changed,
        "new {new_raw} < changed tensor {changed}"
    );
    assert!(
        new_raw <= changed + 64 * 1024,
        "new {new_raw}: more than decoder.weight and the zip's headers"
    );
    assert!(new_raw * 2 < v2.len() as u64, "file {}", v2.len());
    let d = ws.json(&["diff", &id_of(&snaps[0]), &id_of(&snaps[1]), "--tensors"]);
    let t = &d["changed"][0]["tensors"];
    assert_eq!(names(&t["changed"]), ["model.decoder.weight"]);
    assert_eq!(t["unchanged"], 3);
    let dir = ws.restore_to(&id_of(&snaps[0]), "r1");
    assert_eq!(std::fs::read(dir.join("model.pt")).unwrap(), v1);
    let dir = ws.restore_to("latest", "r2");
    assert_eq!(std::fs::read(dir.join("model.pt")).unwrap(), v2);
    ws.ok(&["check", "--read-data"]);
}

/// Seeded fp32 values around N(0, 0.02), like trained weights.
fn weights(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|_| {
            let u: f64 = (0..4)
                .map(|_| rng.below(1 << 30) as f64 / (1u64 << 30) as f64)
                .sum();
            (((u - 2.0) * 0.035) as f32).to_le_bytes()
        })
        .collect()
}

#[test]
fn pt_float_storages_store_smaller_than_plain_zstd_would() {
    // big_v1.pt with realistic weights written over its fp32 storages
    // (the zip's CRCs no longer match, which snap does not look at).
    let mut pt = zip_entry(&fixture("big.zip"), "big_v1.pt");
    let mut rng = Rng::new(5);
    {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(pt.clone())).unwrap();
        for key in ["0", "2"] {
            let e = z.by_name(&format!("big_v1/data/{key}")).unwrap();
            let (start, len) = (e.data_start() as usize, e.size() as usize);
            pt[start..start + len].copy_from_slice(&weights(&mut rng, len / 4));
        }
    }
    let ws = Ws::new();
    ws.write("model.pt", &pt);
    let mut opaque = b"not a checkpoint".to_vec();
    opaque.extend_from_slice(&pt[4..]);
    ws.write("opaque.bin", &opaque);
    let ratio = |s: &Value| {
        summary_u64(s, "new_stored_bytes") as f64 / summary_u64(s, "new_raw_bytes") as f64
    };
    let first = ws.commit(&["model.pt"]);
    let typed = ratio(&first);
    let plain = ratio(&ws.commit(&["opaque.bin"]));
    assert!(typed < plain - 0.03, "typed {typed:.3} vs plain {plain:.3}");
    let dir = ws.restore_to(&id_of(&first), "r1");
    assert_eq!(std::fs::read(dir.join("model.pt")).unwrap(), pt);
    let dir = ws.restore_to("latest", "r2");
    assert_eq!(std::fs::read(dir.join("opaque.bin")).unwrap(), opaque);
}

#[test]
fn damaged_pt_files_commit_and_restore_as_plain_bytes() {
    let ws = Ws::new();
    let good = fixture("small_v1.pt");
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    // data.pkl's first opcode after PROTO 2 becomes one pickle does not have.
    let mut bad_pickle = good.clone();
    let at = good
        .windows(3)
        .position(|w| w == b"\x80\x02}")
        .expect("data.pkl is stored");
    bad_pickle[at + 2] = 0xff;
    // The end of central directory record.
    let mut bad_directory = good.clone();
    let n = bad_directory.len();
    bad_directory[n - 20..].fill(0xff);
    let files: [(&str, &[u8]); 4] = [
        ("good.pt", &good),
        ("truncated.pt", &truncated),
        ("bad_pickle.pt", &bad_pickle),
        ("bad_directory.pt", &bad_directory),
    ];
    for (name, data) in files {
        ws.write(name, data);
    }
    let a = ws.commit_id(&[]);
    let shown = ws.show_files(&a);
    assert_eq!(shown["good.pt"]["tensors"]["count"], 13);
    for name in ["truncated.pt", "bad_pickle.pt", "bad_directory.pt"] {
        assert!(shown[name].get("tensors").is_none(), "{name}");
    }
    let dir = ws.restore_to(&a, "r");
    for (name, data) in files {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), data, "{name}");
    }
    ws.ok(&["check", "--read-data"]);
    // A diff between a good and a damaged version lists the file, without tensors.
    ws.write("good.pt", &truncated);
    let b = ws.commit_id(&[]);
    let d = ws.json(&["diff", &a, &b, "--tensors"]);
    assert_eq!(d["changed"][0]["path"], "good.pt");
    assert!(d["changed"][0].get("tensors").is_none());
}

/// HF Trainer writes `optimizer.pt` into a new folder at every save. Its
/// fp32 storages are coded as deltas against the same storages (by the
/// tensor names in `data.pkl`) of the previous save's folder.
#[test]
fn a_pt_in_a_new_numbered_folder_deltas_against_the_previous_save() {
    let v1 = zip_entry(&fixture("big.zip"), "big_v1.pt");
    let mut rng = Rng::new(8);
    let storages: Vec<(usize, usize)> = {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(v1.clone())).unwrap();
        ["0", "2"]
            .iter()
            .map(|key| {
                let e = z.by_name(&format!("big_v1/data/{key}")).unwrap();
                (e.data_start() as usize, e.size() as usize)
            })
            .collect()
    };
    let (mut a, mut b) = (v1.clone(), v1);
    for &(start, len) in &storages {
        let w = weights(&mut rng, len / 4);
        a[start..start + len].copy_from_slice(&w);
        // One optimizer step later: every value moves by up to 1e-3.
        let moved: Vec<u8> = w
            .chunks_exact(4)
            .flat_map(|e| {
                let v = f32::from_le_bytes(e.try_into().unwrap());
                let d = (rng.below(2001) as f32 - 1000.0) * 1e-6;
                (v * (1.0 + d)).to_le_bytes()
            })
            .collect();
        b[start..start + len].copy_from_slice(&moved);
    }
    let ws = Ws::new();
    ws.write("out/checkpoint-500/optimizer.pt", &a);
    ws.commit(&[]);
    let keyframes = codec_chunks(&ws, "float");
    assert!(keyframes >= 2, "{keyframes} float chunks");
    ws.write("out/checkpoint-1000/optimizer.pt", &b);
    let s = ws.commit(&[]);
    // Every new chunk (the two moved storages; the others dedup) is a
    // delta, and pays like one (the float codec alone stores ~0.83 of raw).
    let deltas = codec_chunks(&ws, "float-delta");
    assert!(deltas >= 2, "{deltas} deltas");
    assert_eq!(summary_u64(&s, "new_chunks"), deltas, "{s}");
    assert!(summary_u64(&s, "new_stored_bytes") * 10 < summary_u64(&s, "new_raw_bytes") * 7);
    let dir = ws.restore_to("latest", "r");
    assert!(std::fs::read(dir.join("out/checkpoint-1000/optimizer.pt")).unwrap() == b);
    assert!(std::fs::read(dir.join("out/checkpoint-500/optimizer.pt")).unwrap() == a);
    ws.ok(&["check", "--read-data"]);
}
