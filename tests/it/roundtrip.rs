//! Commit then restore odd trees: everything must come back byte for byte,
//! with kinds, symlink targets, modes and nanosecond mtimes.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::util::*;

/// A fixed base time with a non-zero nanosecond part.
const T0: i64 = 1_700_000_000_123_456_789;

/// Builds a tree with the awkward cases a training workspace can hold.
pub fn odd_tree(root: &Path) {
    let mut rng = Rng::new(7);
    let w = |rel: &str, data: &[u8]| write_file(&root.join(rel), data);

    w("empty.txt", b"");
    fs::create_dir_all(root.join("empty_dir")).unwrap();
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    w("données/模型 ✓.json", br#"{"lr": 0.001}"#);
    w("emoji 🚀 name.txt", b"rocket\n");
    w("spaces and\nnewline", b"odd name\n");
    w("logs/a:b colon.txt", b"colon in name\n");
    fs::write(root.join(raw_name(b"latin1-\xe9.txt")), b"not utf-8 name\n").unwrap();
    let mut deep = PathBuf::new();
    for i in 0..40 {
        deep.push(format!("d{i}"));
    }
    w(&deep.join("leaf.txt").to_string_lossy(), b"deep leaf\n");

    // Larger than the 4 MiB maximum chunk: several chunks.
    w("checkpoints/large.bin", &rng.bytes(12 * MIB + 12345));
    // Identical chunks inside one file (restored at two offsets).
    w("checkpoints/zeros.bin", &vec![0u8; 2 * MAX_CHUNK + 1000]);
    w("checkpoints/epoch_3.pt", &rng.bytes(300_000));
    w("logs/train.log", &rng.text(200_000));
    fs::hard_link(
        root.join("checkpoints/epoch_3.pt"),
        root.join("checkpoints/hard.pt"),
    )
    .unwrap();

    w("run.sh", b"#!/bin/sh\necho train\n");
    set_mode(&root.join("run.sh"), 0o755);
    w("readonly.txt", b"read only\n");
    set_mode(&root.join("readonly.txt"), 0o444);
    w("private.key", b"secret\n");
    set_mode(&root.join("private.key"), 0o600);
    w("setuid.bin", b"suid\n");
    set_mode(&root.join("setuid.bin"), 0o4750);
    fs::create_dir(root.join("sticky")).unwrap();
    set_mode(&root.join("sticky"), 0o1777);
    fs::create_dir(root.join("private_dir")).unwrap();
    w("private_dir/x", b"x");
    set_mode(&root.join("private_dir"), 0o700);

    symlink("checkpoints/epoch_3.pt", root.join("latest.pt")).unwrap();
    symlink("does/not/exist", root.join("dangling")).unwrap();
    symlink("/nonexistent/absolute/target", root.join("absolute")).unwrap();
    symlink("checkpoints", root.join("ckdir")).unwrap();
    symlink("../..", root.join("logs/up")).unwrap();

    set_distinct_mtimes(root);
}

/// Gives every entry a distinct mtime with nanoseconds, deepest first so a
/// directory's time is set after its contents.
pub fn set_distinct_mtimes(root: &Path) {
    let mut paths: Vec<PathBuf> = walk(root, &[".snap"]).into_keys().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in paths.iter().enumerate() {
        set_mtime_ns(&root.join(p), T0 + i as i64 * 1_000_003_777);
    }
}

#[test]
fn odd_tree_round_trips_exactly() {
    let ws = Ws::new();
    odd_tree(&ws.root);
    let snap = ws.commit(&["-m", "odd"]);
    assert_eq!(summary_u64(&snap, "symlinks"), 5);

    // With --keep-setuid every mode comes back as stored.
    let out = ws.outside("out");
    ws.ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--keep-setuid",
    ]);
    assert_same_tree(&ws.root, &out, &[".snap"]);
    // By default only the setuid and world-write bits differ.
    let plain = ws.restore_to("latest", "plain");
    let mut expected = walk(&ws.root, &[".snap"]);
    expected.get_mut(Path::new("setuid.bin")).unwrap().mode = 0o750;
    expected.get_mut(Path::new("sticky")).unwrap().mode = 0o1775;
    assert_eq!(walk(&plain, &[]), expected);

    // Symlinks are links, never followed: the directory link is not a dir.
    let m = fs::symlink_metadata(out.join("ckdir")).unwrap();
    assert!(m.file_type().is_symlink());
    assert_eq!(
        fs::read_link(out.join("absolute")).unwrap(),
        Path::new("/nonexistent/absolute/target")
    );
    // A hard link comes back as an independent file with the same bytes.
    assert_eq!(
        fs::read(out.join("checkpoints/hard.pt")).unwrap(),
        fs::read(ws.path("checkpoints/epoch_3.pt")).unwrap()
    );
}

#[test]
fn show_lists_kinds_modes_and_targets() {
    let ws = Ws::new();
    odd_tree(&ws.root);
    ws.commit(&[]);
    let files = ws.show_files("latest");
    assert_eq!(files["run.sh"]["kind"], "file");
    assert_eq!(files["run.sh"]["mode"], 0o755);
    assert_eq!(files["sticky"]["kind"], "dir");
    assert_eq!(files["sticky"]["mode"], 0o1777);
    assert_eq!(files["dangling"]["kind"], "symlink");
    assert_eq!(files["dangling"]["target"], "does/not/exist");
    assert_eq!(
        files["checkpoints/large.bin"]["size"],
        12 * MIB as u64 + 12345
    );
    assert!(files["checkpoints/large.bin"]["chunks"].as_u64().unwrap() >= 3);
    assert!(files.contains_key("empty_dir"));
    assert!(!files.keys().any(|p| p.starts_with(".snap")));
}

#[test]
fn restore_into_workspace_repairs_it() {
    let ws = Ws::new();
    odd_tree(&ws.root);
    ws.commit(&[]);
    let before = walk(&ws.root, &[".snap"]);

    fs::remove_file(ws.path("logs/train.log")).unwrap();
    fs::write(ws.path("checkpoints/epoch_3.pt"), b"clobbered").unwrap();
    fs::remove_dir_all(ws.path("a")).unwrap();
    fs::remove_file(ws.path("dangling")).unwrap();

    // Without --overwrite the changed files block the restore.
    ws.fails(&["restore", "latest"], 1);
    ws.ok(&["restore", "latest", "--overwrite", "--keep-setuid"]);
    let after = walk(&ws.root, &[".snap"]);
    assert_eq!(before, after);
}

#[test]
fn every_snapshot_restores_its_own_state() {
    let ws = Ws::new();
    let mut rng = Rng::new(99);
    let mut ids = Vec::new();
    let mut states = Vec::new();
    for epoch in 0..3u64 {
        ws.write(
            &format!("checkpoints/epoch_{epoch}.pt"),
            &rng.bytes(200_000),
        );
        ws.write("logs/train.log", &rng.text(50_000 * (epoch as usize + 1)));
        ws.write("config.json", format!("{{\"epoch\": {epoch}}}").as_bytes());
        set_distinct_mtimes(&ws.root);
        ids.push(ws.commit_id(&["--session", "s1", "--epoch", &epoch.to_string()]));
        let copy = ws.outside(&format!("state{epoch}"));
        copy_tree(&ws.root, &copy);
        states.push(copy);
    }
    for (i, id) in ids.iter().enumerate() {
        let out = ws.restore_to(id, &format!("r{i}"));
        assert_same_tree(&states[i], &out, &[".snap"]);
    }
    // SESSION@EPOCH, a prefix and `latest` resolve to the right snapshots.
    let out = ws.restore_to("s1@1", "by_epoch");
    assert_same_tree(&states[1], &out, &[".snap"]);
    let out = ws.restore_to(&ids[0][..10], "by_prefix");
    assert_same_tree(&states[0], &out, &[".snap"]);
}

/// Copies regular files, dirs and symlinks with modes and mtimes.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let nodes = walk(from, &[".snap"]);
    for (rel, node) in &nodes {
        let (src, dst) = (from.join(rel), to.join(rel));
        match &node.kind {
            Kind::Dir => fs::create_dir_all(&dst).unwrap(),
            Kind::File { .. } => {
                fs::copy(&src, &dst).unwrap();
            }
            Kind::Symlink(t) => symlink(t, &dst).unwrap(),
        }
    }
    let mut rels: Vec<_> = nodes.keys().collect();
    rels.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for rel in rels {
        let n = &nodes[rel];
        if !matches!(n.kind, Kind::Symlink(_)) {
            set_mode(&to.join(rel), n.mode);
        }
        set_mtime_ns(&to.join(rel), n.mtime_ns);
    }
}

#[test]
fn pre_epoch_mtimes_round_trip() {
    let ws = Ws::new();
    ws.write("old/file.txt", b"from 1969\n");
    symlink("file.txt", ws.path("old/link")).unwrap();
    // 1969-12-31 23:59:58.25 and earlier: negative Unix times.
    set_mtime_ns(&ws.path("old/file.txt"), -1_750_000_000);
    set_mtime_ns(&ws.path("old/link"), -2_000_000_001);
    set_mtime_ns(&ws.path("old"), -86_400_000_000_000);
    ws.commit(&[]);
    let files = ws.show_files("latest");
    assert_eq!(files["old/file.txt"]["mtime_ns"], -1_750_000_000i64);
    let out = ws.restore_to("latest", "out");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

#[test]
fn names_that_look_like_restore_temporaries() {
    // A file named like the temporary another file is restored through.
    let ws = Ws::new();
    ws.write("model.pt", b"the real model");
    ws.write(".model.pt.snap-restore", b"an unrelated file");
    ws.commit(&[]);
    let out = ws.restore_to("latest", "out");
    assert_eq!(fs::read(out.join("model.pt")).unwrap(), b"the real model");
    assert_eq!(
        fs::read(out.join(".model.pt.snap-restore")).unwrap(),
        b"an unrelated file"
    );
}

#[test]
fn non_utf8_names_that_differ_only_in_invalid_bytes() {
    // Lossy UTF-8 conversion maps both names to the same string.
    let ws = Ws::new();
    fs::write(ws.path("").join(raw_name(b"w\xff.bin")), b"first").unwrap();
    fs::write(ws.path("").join(raw_name(b"w\xfe.bin")), b"second").unwrap();
    ws.commit(&[]);
    let out = ws.restore_to("latest", "out");
    assert_eq!(
        fs::read(out.join(raw_name(b"w\xff.bin"))).unwrap(),
        b"first"
    );
    assert_eq!(
        fs::read(out.join(raw_name(b"w\xfe.bin"))).unwrap(),
        b"second"
    );
}

#[test]
fn longest_file_name_round_trips() {
    // NAME_MAX is 255 bytes: the longest name a file can have.
    let ws = Ws::new();
    let name = "n".repeat(255);
    ws.write(&format!("models/{name}"), b"longest name");
    ws.commit(&[]);
    let out = ws.restore_to("latest", "out");
    assert_eq!(
        fs::read(out.join("models").join(&name)).unwrap(),
        b"longest name"
    );
}

#[test]
fn empty_workspace_round_trips() {
    let ws = Ws::new();
    let snap = ws.commit(&[]);
    assert_eq!(summary_u64(&snap, "files"), 0);
    let out = ws.restore_to("latest", "out");
    assert_paths(&out, &[]);
}

#[test]
fn many_small_files_round_trip() {
    let ws = Ws::new();
    let mut rng = Rng::new(17);
    for d in 0..30 {
        for f in 0..50 {
            // Every fifth file repeats an earlier one's bytes.
            let data = if f % 5 == 0 {
                format!("shared {}", f % 3).into_bytes()
            } else {
                let len = rng.below(3000) as usize;
                rng.bytes(len)
            };
            ws.write(&format!("runs/r{d:02}/f{f:03}.bin"), &data);
        }
    }
    set_distinct_mtimes(&ws.root);
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files"), 1500);
    let out = ws.restore_to("latest", "out");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}
