//! Float deltas: a checkpoint whose tensors moved a little since the
//! previous epoch is stored as its XOR with that epoch's chunks. Restore,
//! check, reindex and prune must all follow the base.

use std::fs;

use serde_json::Value;

use crate::checkpoint::{safetensors, weights};
use crate::util::*;

/// One epoch of training: every weight moves by a relative step of up to
/// 1e-3, so most signs, exponents and high mantissa bits stay.
fn step(rng: &mut Rng, w: &[u8]) -> Vec<u8> {
    w.chunks_exact(4)
        .flat_map(|e| {
            let v = f32::from_le_bytes(e.try_into().unwrap());
            let d = (rng.below(2001) as f32 - 1000.0) * 1e-6;
            (v * (1.0 + d)).to_le_bytes()
        })
        .collect()
}

/// Six fp32 tensors of fresh random weights (~4.6 MiB).
fn fresh_model(rng: &mut Rng) -> Vec<(String, &'static str, Vec<u8>)> {
    (0..6)
        .map(|i| (format!("layer{i}.weight"), "F32", weights(rng, 200_000)))
        .collect()
}

/// Epoch 1 and 2 of a six-tensor model (~4.6 MiB). The metadata of epoch 2
/// is longer, so every tensor sits a few bytes later in the file.
fn two_epochs() -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(5);
    let t1 = fresh_model(&mut rng);
    let t2: Vec<(String, &str, Vec<u8>)> = t1
        .iter()
        .map(|(n, d, w)| (n.clone(), *d, step(&mut rng, w)))
        .collect();
    (
        safetensors(&t1, "epoch 1"),
        safetensors(&t2, "epoch 2 of a longer run"),
    )
}

fn stored(s: &Value) -> u64 {
    summary_u64(s, "new_stored_bytes")
}

#[test]
fn the_next_epoch_is_stored_as_a_delta_and_restores_exactly() {
    let (e1, e2) = two_epochs();
    // Epoch 2 alone, in a repository of its own.
    let alone = Ws::new();
    alone.write("models/epoch_02.safetensors", &e2);
    let alone_bytes = stored(&alone.commit(&[]));

    let ws = Ws::new();
    ws.write("models/epoch_01.safetensors", &e1);
    let s1 = ws.commit_id(&[]);
    // A new file beside the old one: its previous version is the newest
    // file with the same extension in the directory.
    ws.write("models/epoch_02.safetensors", &e2);
    let s2 = ws.commit(&[]);
    let delta_bytes = stored(&s2);
    assert!(
        delta_bytes * 10 < alone_bytes * 7,
        "as a delta {delta_bytes} B, alone {alone_bytes} B"
    );
    // Epoch 2's tensor chunks are stored as float deltas (stats by codec).
    let codecs = |ws: &Ws| -> Vec<(String, u64)> {
        ws.json(&["stats"])["codecs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["codec"].as_str().unwrap().to_string(),
                    c["chunks"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let by = codecs(&ws);
    let n = |name: &str| by.iter().find(|c| c.0 == name).map_or(0, |c| c.1);
    assert!(n("float-delta") >= 4 && n("float") >= 4, "{by:?}");
    assert_eq!(
        n("float-delta"),
        n("float"),
        "one delta per epoch-1 chunk: {by:?}"
    );
    assert!(codecs(&alone).iter().all(|c| c.0 != "float-delta"));

    let check = |ws: &Ws, name: &str| {
        let r1 = ws.restore_to(&s1, &format!("{name}1"));
        assert_eq!(
            fs::read(r1.join("models/epoch_01.safetensors")).unwrap(),
            e1
        );
        let r2 = ws.restore_to(&id_of(&s2), &format!("{name}2"));
        assert_eq!(
            fs::read(r2.join("models/epoch_01.safetensors")).unwrap(),
            e1
        );
        assert_eq!(
            fs::read(r2.join("models/epoch_02.safetensors")).unwrap(),
            e2
        );
        let spec = format!("{}:models/epoch_02.safetensors", id_of(&s2));
        let cat = ws.cmd().args(["cat", &spec]).output().unwrap();
        assert!(cat.status.success(), "{}", stderr(&cat));
        assert_eq!(cat.stdout, e2);
        ws.ok(&["check", "--read-data"]);
    };
    check(&ws, "r");
    // The bases come back from the pack trailers alone.
    fs::remove_file(ws.repo().join("index.sqlite")).unwrap();
    check(&ws, "x");
    let d = ws.json(&["diff", &s1, &id_of(&s2), "--tensors"]);
    assert_eq!(d["added"][0]["path"], "models/epoch_02.safetensors");

    // The same file overwritten in place deltas against itself too.
    let ws = Ws::new();
    ws.write("model.safetensors", &e1);
    ws.commit(&[]);
    ws.write("model.safetensors", &e2);
    let s = ws.commit(&[]);
    assert!(stored(&s) * 10 < alone_bytes * 7);
    let r = ws.restore_to("latest", "r");
    assert_eq!(fs::read(r.join("model.safetensors")).unwrap(), e2);
}

/// Chunks by codec, from `snap stats --json`.
pub(crate) fn codec_chunks(ws: &Ws, codec: &str) -> u64 {
    ws.json(&["stats"])["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["codec"] == codec)
        .map_or(0, |c| c["chunks"].as_u64().unwrap())
}

/// HF Trainer's layout: every save goes into a new folder
/// (`checkpoints/checkpoint-500/`, `checkpoint-1000/`). A tensor of the new
/// save is coded against the same tensor of the nearest lower-numbered
/// folder, found by name, even when a tensor added in front moved every
/// other tensor of the file.
#[test]
fn a_save_in_a_new_numbered_folder_deltas_against_the_same_tensors_of_the_last_one() {
    let (e1, _) = two_epochs();
    let mut rng = Rng::new(21);
    let t1 = fresh_model(&mut Rng::new(5));
    // The next save: every tensor stepped, and a new head of another size
    // in front, so every old tensor sits ~400 KB later in the file.
    let head = ("head.weight".to_string(), "F32", weights(&mut rng, 100_000));
    let mut t2 = vec![head.clone()];
    t2.extend(
        t1.iter()
            .map(|(n, d, w)| (n.clone(), *d, step(&mut rng, w))),
    );
    let e2 = safetensors(&t2, "step 1000");
    let alone = |data: &[u8]| {
        let ws = Ws::new();
        ws.write("x.safetensors", data);
        stored(&ws.commit(&[]))
    };
    let head_alone = alone(&safetensors(&[head], "step 1000"));
    let e2_alone = alone(&e2);

    let ws = Ws::new();
    ws.write("checkpoints/checkpoint-500/model.safetensors", &e1);
    ws.write(
        "checkpoints/checkpoint-500/trainer_state.json",
        b"{\"step\": 500}",
    );
    let s1 = ws.commit_id(&[]);
    let keyframes = codec_chunks(&ws, "float");
    assert!(keyframes >= 6, "{keyframes} float chunks");
    ws.write("checkpoints/checkpoint-1000/model.safetensors", &e2);
    ws.write(
        "checkpoints/checkpoint-1000/trainer_state.json",
        b"{\"step\": 1000}",
    );
    let s2 = ws.commit(&[]);
    // Every chunk of the six old tensors is a delta against its own past
    // (a delta against another tensor's bytes would not pay, and the chunk
    // would be stored alone as "float"); only the new head is stored alone.
    assert_eq!(codec_chunks(&ws, "float-delta"), keyframes);
    let new = stored(&s2);
    assert!(
        (new - head_alone) * 10 < (e2_alone - head_alone) * 7,
        "{new} B stored, {e2_alone} B alone, of which the head {head_alone} B"
    );
    for (rev, path, data) in [
        (s1.clone(), "checkpoint-500", &e1),
        (id_of(&s2), "checkpoint-500", &e1),
        (id_of(&s2), "checkpoint-1000", &e2),
    ] {
        let r = ws.restore_to(&rev, &format!("r-{}-{path}", &rev[..8]));
        let got = fs::read(r.join(format!("checkpoints/{path}/model.safetensors"))).unwrap();
        assert!(got == *data, "{path} of {rev} differs");
    }
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn deltas_are_one_level_deep_and_unrelated_tensors_are_stored_alone() {
    let (e1, e2) = two_epochs();
    let mut rng = Rng::new(77);
    let ws = Ws::new();
    ws.write("m/epoch_01.safetensors", &e1);
    ws.commit(&[]);
    ws.write("m/epoch_02.safetensors", &e2);
    ws.commit(&[]);
    // Epoch 3 codes against epoch 1's chunks (epoch 2's are deltas), and
    // still saves.
    let t3: Vec<(String, &str, Vec<u8>)> = {
        let header = u64::from_le_bytes(e2[..8].try_into().unwrap()) as usize + 8;
        e2[header..]
            .chunks(800_000)
            .enumerate()
            .map(|(i, w)| (format!("layer{i}.weight"), "F32", step(&mut rng, w)))
            .collect()
    };
    let e3 = safetensors(&t3, "epoch 3");
    ws.write("m/epoch_03.safetensors", &e3);
    let s3 = ws.commit(&[]);
    assert!(stored(&s3) * 10 < summary_u64(&s3, "new_raw_bytes") * 6);
    // A checkpoint of fresh random weights gains nothing from a delta and
    // is stored alone, like any new model.
    let fresh = fresh_model(&mut rng);
    let e4 = safetensors(&fresh, "epoch 4");
    ws.write("m/epoch_04.safetensors", &e4);
    let s4 = ws.commit(&[]);
    let alone = Ws::new();
    alone.write("m/x.safetensors", &e4);
    let alone_bytes = stored(&alone.commit(&[]));
    assert!(
        stored(&s4) <= alone_bytes + 4096,
        "{} vs {alone_bytes}",
        stored(&s4)
    );
    let r = ws.restore_to("latest", "r");
    for (name, data) in [("01", &e1), ("02", &e2), ("03", &e3), ("04", &e4)] {
        assert_eq!(
            &fs::read(r.join(format!("m/epoch_{name}.safetensors"))).unwrap(),
            data
        );
    }
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn prune_keeps_the_bases_that_kept_deltas_need() {
    let (e1, e2) = two_epochs();
    let mut rng = Rng::new(9);
    let ws = Ws::new();
    // Each session also holds a file of its own, so that prune has waste to
    // remove in the packs that hold the bases and the deltas.
    ws.write("models/epoch_01.safetensors", &e1);
    ws.write("scratch_a.bin", &rng.bytes(3 << 20));
    ws.commit(&["--session", "a"]);
    ws.write("models/epoch_02.safetensors", &e2);
    fs::remove_file(ws.path("scratch_a.bin")).unwrap();
    ws.write("scratch_b.bin", &rng.bytes(3 << 20));
    ws.commit(&["--session", "b"]);
    fs::remove_file(ws.path("models/epoch_01.safetensors")).unwrap();
    fs::remove_file(ws.path("scratch_b.bin")).unwrap();
    ws.commit(&["--session", "c"]);

    ws.ok(&["forget", "--keep-sessions", "1"]);
    let reclaimable = ws.json(&["check"])["unreferenced_bytes"].as_u64().unwrap();
    let before = pack_bytes(&ws.repo());
    let p = ws.json(&["prune", "--delete-now"]);
    let after = pack_bytes(&ws.repo());
    assert!(
        before - after >= 5 << 20,
        "prune freed {} B: {p}",
        before - after
    );
    // epoch_01 is in no kept snapshot, but its chunks are epoch_02's bases.
    let r = ws.restore_to("latest", "r");
    assert_eq!(fs::read(r.join("models/epoch_02.safetensors")).unwrap(), e2);
    assert_paths(&r, &["models", "models/epoch_02.safetensors"]);
    ws.ok(&["check", "--read-data"]);
    // A second prune finds nothing more to remove, and check agrees: the
    // bases are in use, not reclaimable.
    ws.ok(&["prune", "--delete-now"]);
    assert_eq!(pack_bytes(&ws.repo()), after);
    assert_eq!(ws.json(&["check"])["unreferenced_bytes"], 0);
    // Before the prune, check counted as reclaimable only what was freed
    // (the two scratch files), not epoch 1's chunks.
    assert!(
        reclaimable < 7 << 20 && reclaimable + (64 << 10) >= before - after,
        "check said {reclaimable} B reclaimable, prune freed {} B",
        before - after
    );
}

#[test]
fn a_damaged_base_fails_the_files_that_need_it_and_nothing_else() {
    let (e1, e2) = two_epochs();
    let ws = Ws::new();
    ws.write("models/epoch_01.safetensors", &e1);
    ws.commit(&[]);
    let base_packs = packs_of_kind(&ws.repo(), 0);
    assert_eq!(base_packs.len(), 1);
    ws.write("models/epoch_02.safetensors", &e2);
    ws.write("notes.txt", b"lr 3e-4\n");
    let s2 = id_of(&ws.commit(&[]));
    // Damage the middle of the pack holding epoch 1 (the bases).
    let len = fs::metadata(&base_packs[0]).unwrap().len();
    flip_byte(&base_packs[0], len / 2);

    let out = ws.outside("out");
    let o = ws.fails(&["restore", &s2, "--target", out.to_str().unwrap()], 3);
    let err = stderr(&o);
    assert!(err.contains("models/epoch_02.safetensors"), "{err}");
    assert!(err.contains("base"), "{err}");
    assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"lr 3e-4\n");
    assert!(!out.join("models/epoch_02.safetensors").exists());

    let o = ws.fails(&["check", "--read-data", "--json"], 3);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let damaged: Vec<&str> = report["damaged_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(damaged.contains(&"models/epoch_02.safetensors"), "{report}");
    assert!(!damaged.contains(&"notes.txt"), "{report}");
}
