//! Damaged repositories: every flipped byte is found, named, and contained
//! to the files it hurts.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use snapstore::format::pack::PackEntry;
use snapstore::store::packs::read_pack_index;
use snapstore::ChunkId;

use crate::util::*;

struct Damaged {
    ws: Ws,
    s1: String,
    s2: String,
    /// Content of `a.bin` (one chunk, damaged).
    a: Vec<u8>,
}

/// Finds the data pack holding `chunk` and its entry.
fn locate(repo: &Path, chunk: &ChunkId) -> (PathBuf, PackEntry) {
    for p in packs_of_kind(repo, 0) {
        let (_, _, entries) = read_pack_index(&p).unwrap();
        if let Some(e) = entries.into_iter().find(|e| e.id == *chunk) {
            return (p, e);
        }
    }
    panic!("chunk {chunk:?} is in no data pack");
}

fn pack_short(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy()[..8].to_string()
}

/// Two snapshots sharing the chunk of `a.bin`; that chunk gets one byte flipped.
fn damaged_repo() -> Damaged {
    let ws = Ws::new();
    let mut rng = Rng::new(51);
    let a = rng.bytes(100_000);
    ws.write("a.bin", &a);
    ws.write("b.bin", &rng.bytes(100_000));
    ws.write("models/big.bin", &rng.bytes(12 * MIB));
    let s1 = ws.commit_id(&[]);
    ws.write("copies/copy_of_a.bin", &a);
    ws.write("c.txt", b"unrelated\n");
    let s2 = ws.commit_id(&[]);

    let (pack, entry) = locate(&ws.repo(), &ChunkId::of(&a));
    flip_byte(&pack, entry.offset + entry.stored_len as u64 / 2);
    Damaged { ws, s1, s2, a }
}

fn damaged_set(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["damaged_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["snapshot"].as_str().unwrap().to_string(),
                d["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn read_data_check_names_every_damaged_file_and_snapshot() {
    let d = damaged_repo();
    let o = d.ws.fails(&["check", "--read-data", "--json"], 3);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut want = vec![
        (d.s1[..8].to_string(), "a.bin".to_string()),
        (d.s2[..8].to_string(), "a.bin".to_string()),
        (d.s2[..8].to_string(), "copies/copy_of_a.bin".to_string()),
    ];
    want.sort();
    assert_eq!(damaged_set(&report), want, "{report}");
    let chunk = ChunkId::of(&d.a).short();
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains(&chunk)),
        "no error names chunk {chunk}: {report}"
    );

    // The human report says the same.
    let o = d.ws.fails(&["check", "--read-data"], 3);
    let text = stdout(&o);
    assert!(text.contains("copies/copy_of_a.bin"), "{text}");
    assert!(
        text.contains(&d.s1[..8]) && text.contains(&d.s2[..8]),
        "{text}"
    );
}

#[test]
fn restore_of_a_damaged_snapshot_restores_everything_else() {
    let d = damaged_repo();
    let out = d.ws.outside("out");
    let o =
        d.ws.fails(&["restore", &d.s2, "--target", out.to_str().unwrap()], 3);
    let err = stderr(&o);
    assert!(
        err.contains("a.bin") && err.contains("copies/copy_of_a.bin"),
        "{err}"
    );
    assert!(!err.contains("b.bin"), "{err}");

    for ok in ["b.bin", "models/big.bin", "c.txt"] {
        assert_eq!(
            fs::read(out.join(ok)).unwrap(),
            fs::read(d.ws.path(ok)).unwrap(),
            "{ok} was not restored"
        );
    }
    assert!(!out.join("a.bin").exists());
    assert!(!out.join("copies/copy_of_a.bin").exists());
    // No temporaries are left behind.
    let leftovers: Vec<_> = walk(&out, &[])
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("snap-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn cat_of_a_damaged_file_fails() {
    let d = damaged_repo();
    let o = d.ws.fails(&["cat", "latest:a.bin"], 3);
    assert!(stderr(&o).contains("a.bin"), "{}", stderr(&o));
    let o = d.ws.cmd().args(["cat", "latest:b.bin"]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, fs::read(d.ws.path("b.bin")).unwrap());
}

#[test]
fn corrupted_trailer_is_found_without_reading_data() {
    let ws = Ws::new();
    ws.write("x.bin", &random_bytes(61, 200_000));
    ws.write("y.txt", b"y");
    let s = ws.commit_id(&[]);
    ws.ok(&["check"]);
    let packs = packs_of_kind(&ws.repo(), 0);
    assert_eq!(packs.len(), 1);
    let len = fs::metadata(&packs[0]).unwrap().len();
    // Inside the trailer, just before the 48-byte footer.
    flip_byte(&packs[0], len - 48 - 3);

    let o = ws.fails(&["check", "--json"], 3);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let short = pack_short(&packs[0]);
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains(&short)),
        "pack {short} not named: {report}"
    );
    let mut hurt = damaged_set(&report);
    hurt.sort();
    assert_eq!(
        hurt,
        vec![
            (s[..8].to_string(), "x.bin".to_string()),
            (s[..8].to_string(), "y.txt".to_string())
        ]
    );
}

#[test]
fn truncated_pack_is_reported() {
    let ws = Ws::new();
    ws.write("x.bin", &random_bytes(62, 200_000));
    ws.commit(&[]);
    let pack = &packs_of_kind(&ws.repo(), 0)[0];
    let len = fs::metadata(pack).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(pack)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let o = ws.fails(&["check"], 3);
    assert!(stdout(&o).contains(&pack_short(pack)), "{}", stdout(&o));
    ws.fails(&["check", "--read-data"], 3);
}

#[test]
fn missing_pack_is_reported_with_the_files_it_held() {
    let ws = Ws::new();
    ws.write("keep/old.bin", &random_bytes(63, 100_000));
    ws.commit(&[]);
    ws.write("new.bin", &random_bytes(64, 100_000));
    let s2 = ws.commit_id(&[]);
    // The data pack of the second commit holds only new.bin's chunk.
    let chunk = ChunkId::of(&random_bytes(64, 100_000));
    let (pack, _) = locate(&ws.repo(), &chunk);
    fs::remove_file(&pack).unwrap();

    let o = ws.fails(&["check", "--json"], 3);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        damaged_set(&report),
        vec![(s2[..8].to_string(), "new.bin".to_string())]
    );
    let out = ws.outside("out");
    let o = ws.fails(&["restore", &s2, "--target", out.to_str().unwrap()], 3);
    assert!(stderr(&o).contains("new.bin"));
    assert!(out.join("keep/old.bin").is_file());
}

#[test]
fn damaged_tree_is_reported_by_check_show_and_restore() {
    let ws = Ws::new();
    ws.write("dir/file.txt", b"data");
    let s = ws.commit_id(&[]);
    for p in packs_of_kind(&ws.repo(), 1) {
        let (_, _, entries) = read_pack_index(&p).unwrap();
        for e in entries {
            flip_byte(&p, e.offset + e.stored_len as u64 / 2);
        }
    }
    let o = ws.fails(&["check"], 3);
    assert!(stdout(&o).contains(&s[..8]), "{}", stdout(&o));
    ws.fails(&["show", "latest"], 3);
    let out = ws.outside("out");
    ws.fails(&["restore", "latest", "--target", out.to_str().unwrap()], 3);
    ws.fails(&["cat", "latest:dir/file.txt"], 3);
}

#[test]
fn damaged_snapshot_record_is_reported() {
    let ws = Ws::new();
    ws.write("f.txt", b"f");
    let s = ws.commit_id(&[]);
    let rec = ws.repo().join("snapshots").join(&s);
    flip_byte(&rec, 10);
    let o = ws.fails(&["check"], 3);
    assert!(stdout(&o).contains(&s[..8]), "{}", stdout(&o));
}

#[test]
fn flipped_bit_anywhere_in_a_data_pack_is_found() {
    // Header, blob area, trailer and footer: every byte counts.
    let ws = Ws::new();
    ws.write("w.bin", &random_bytes(65, 300_000));
    ws.commit(&[]);
    let pack = packs_of_kind(&ws.repo(), 0).remove(0);
    let len = fs::metadata(&pack).unwrap().len();
    let original = fs::read(&pack).unwrap();
    for offset in [0, 7, 8, len / 2, len - 60, len - 47, len - 1] {
        flip_byte(&pack, offset);
        let o = ws.run(&["check", "--read-data"]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "flip at {offset} of {len} not found: {}",
            stdout(&o)
        );
        fs::write(&pack, &original).unwrap();
    }
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn one_unreadable_tag_file_does_not_lock_users_out() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let id = ws.commit_id(&["--tag", "good"]);
    fs::write(ws.repo().join("refs/tags/broken"), b"not a snapshot id\n").unwrap();
    // Everything else still works...
    assert_eq!(ws.log().len(), 1);
    assert_eq!(ws.ok(&["cat", &format!("{id}:a.txt")]), "a");
    assert_eq!(ws.ok(&["cat", "good:a.txt"]), "a");
    // ...check names the damage, and the tag can be deleted to repair it.
    let o = ws.fails(&["check"], 3);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(text.contains("broken"), "{text}");
    ws.ok(&["tag", "--delete", "broken"]);
    ws.ok(&["check"]);
}

#[test]
fn reindex_skips_and_reports_a_damaged_snapshot_record() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let s1 = ws.commit_id(&[]);
    ws.write("b.txt", b"b");
    let s2 = ws.commit_id(&[]);
    flip_byte(&ws.repo().join("snapshots").join(&s1), 12);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(ws.repo().join(format!("index.sqlite{suffix}")));
    }
    let o = ws.fails(&["reindex"], 3);
    assert!(stdout(&o).contains(&s1), "{}", stdout(&o));
    let log = ws.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["id"], s2.as_str());
}

#[test]
fn tag_naming_a_missing_snapshot_is_reported() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    let ghost = "ab".repeat(32);
    fs::write(ws.repo().join("refs/tags/ghost"), format!("{ghost}\n")).unwrap();
    let o = ws.fails(&["check"], 3);
    assert!(stdout(&o).contains("ghost"), "{}", stdout(&o));
    let o = ws.fails(&["show", "ghost"], 3);
    assert!(stderr(&o).contains(&ghost[..8]), "{}", stderr(&o));
}
