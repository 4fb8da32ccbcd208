//! `snap check --repair`: orphan temporaries go, the index is rebuilt,
//! unreferenced packs are marked (deleted only after the grace period), and
//! what cannot be repaired is named; a snapshot record is never deleted.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// Every `.pack` and `.doomed` file under `packs/`.
fn pack_dir_files(repo: &Path) -> BTreeSet<PathBuf> {
    let packs = repo.join("packs");
    walk(&packs, &[])
        .into_iter()
        .filter(|(_, n)| matches!(n.kind, Kind::File { .. }))
        .map(|(p, _)| packs.join(p))
        .collect()
}

fn hexes(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn pack_path(repo: &Path, hex: &str) -> PathBuf {
    repo.join("packs")
        .join(&hex[..2])
        .join(format!("{hex}.pack"))
}

/// A repository with a forgotten session, a crashed commit's pack, and
/// leftovers in `tmp/`.
fn broken() -> (Ws, String) {
    let ws = Ws::new();
    let mut rng = Rng::new(6100);
    ws.write("a.bin", &rng.bytes(300_000));
    ws.commit(&["--session", "s1"]);
    fs::remove_file(ws.path("a.bin")).unwrap();
    ws.write("b.txt", b"b\n");
    let kept = ws.commit_id(&["--session", "s2"]);
    ws.ok(&["forget", "--keep-sessions", "1"]);
    ws.write("c.bin", &rng.bytes(200_000));
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", "commit:before-trees")
        .args(["commit", "--session", "s3"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the commit did not crash");
    fs::remove_file(ws.path("c.bin")).unwrap();
    fs::write(ws.repo().join("tmp/pack-0000.tmp"), b"half a pack").unwrap();
    fs::write(ws.repo().join("tmp/rec-0000.tmp"), b"half a record").unwrap();
    (ws, kept)
}

#[test]
fn repair_removes_temporaries_rebuilds_the_index_and_marks_unreferenced_packs() {
    let (ws, kept) = broken();
    let before = pack_dir_files(&ws.repo());
    let r = ws.json(&["check", "--repair"]);
    assert!(r["unrepaired"].as_array().unwrap().is_empty(), "{r:#}");
    assert!(r["temporaries_removed"].as_u64().unwrap() >= 2, "{r:#}");
    assert_eq!(count_entries(&ws.repo().join("tmp")), 0);
    assert_eq!(r["reindex"]["snapshots_added"], 1, "{r:#}");
    // s1's data and tree packs and the crashed commit's pack: marked, kept.
    let marked = hexes(&r["prune"]["delete"]);
    assert!(marked.len() >= 3, "{r:#}");
    assert_eq!(r["prune"]["due"], serde_json::json!([]), "{r:#}");
    for h in &marked {
        let p = pack_path(&ws.repo(), h);
        assert!(p.exists() && p.with_extension("doomed").exists(), "{h}");
    }
    assert!(
        before.is_subset(&pack_dir_files(&ws.repo())),
        "repair deleted a pack"
    );
    assert_eq!(r["check"]["errors"], serde_json::json!([]), "{r:#}");
    assert_eq!(ws.json(&["check"])["unreferenced_bytes"], 0);
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to(&kept, "out");
    assert_eq!(fs::read(out.join("b.txt")).unwrap(), b"b\n");

    // Once the grace period has passed, a repair deletes them.
    let r = ws.json(&["check", "--repair", "--grace", "0s"]);
    assert_eq!(hexes(&r["prune"]["due"]), marked, "{r:#}");
    assert!(marked.iter().all(|h| !pack_path(&ws.repo(), h).exists()));
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn repair_keeps_a_damaged_snapshot_record_and_names_what_it_could_not_repair() {
    let (ws, kept) = broken();
    let record = ws.repo().join("snapshots").join(&kept);
    flip_byte(&record, 20);
    let damaged = fs::read(&record).unwrap();
    let before = pack_dir_files(&ws.repo());
    let o = ws.fails(&["check", "--repair", "--grace", "0s"], 3);
    let out = stdout(&o);
    assert_eq!(
        fs::read(&record).unwrap(),
        damaged,
        "the record was touched"
    );
    assert_eq!(pack_dir_files(&ws.repo()), before, "{out}");
    assert!(out.contains("could not be repaired"), "{out}");
    assert!(out.contains(record.to_str().unwrap()), "{out}");
    assert!(out.contains("unreferenced packs were not marked"), "{out}");
    assert_eq!(count_entries(&ws.repo().join("tmp")), 0, "{out}");
}
