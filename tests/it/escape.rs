//! Crafted snapshots whose trees try to leave the restore target. The tree
//! encoder does not validate names (so it can build them); the decoder must
//! refuse them, and restore must write nothing anywhere.

use std::collections::BTreeMap;
use std::path::Path;

use snapstore::format::pack::{Codec, PackKind};
use snapstore::format::snapshot::{Snapshot, Summary};
use snapstore::format::tree::{ChunkRef, Entry, EntryKind, Tree};
use snapstore::store::packs::PackWriter;
use snapstore::store::{durable, Layout};
use snapstore::{ChunkId, TreeId};

use crate::util::*;

pub(crate) const PAYLOAD: &[u8] = b"this must never land outside the target\n";

pub(crate) fn file_entry(name: &[u8]) -> Entry {
    Entry {
        name: name.to_vec(),
        mode: 0o644,
        mtime_ns: 1_700_000_000_000_000_000,
        kind: EntryKind::File {
            size: PAYLOAD.len() as u64,
            chunks: vec![ChunkRef {
                id: ChunkId::of(PAYLOAD),
                len: PAYLOAD.len() as u32,
            }],
        },
    }
}

pub(crate) fn dir_entry(name: &[u8], tree: TreeId) -> Entry {
    Entry {
        name: name.to_vec(),
        mode: 0o755,
        mtime_ns: 1_700_000_000_000_000_000,
        kind: EntryKind::Dir { tree },
    }
}

/// Writes `trees` (the last one is the root) and the payload chunk into
/// packs, and a snapshot naming the root; returns the snapshot id in hex.
pub(crate) fn craft(repo: &Path, trees: Vec<Tree>) -> String {
    let layout = Layout::new(repo);
    let mut data = PackWriter::create(&layout, PackKind::Data).unwrap();
    data.add(
        ChunkId::of(PAYLOAD),
        Codec::Raw,
        PAYLOAD,
        PAYLOAD.len() as u32,
        None,
    )
    .unwrap();
    data.finish(&layout).unwrap();
    let mut tw = PackWriter::create(&layout, PackKind::Tree).unwrap();
    let mut root = None;
    for t in &trees {
        let (id, bytes) = t.encode();
        tw.add(ChunkId(id.0), Codec::Raw, &bytes, bytes.len() as u32, None)
            .unwrap();
        root = Some(id);
    }
    tw.finish(&layout).unwrap();
    write_snapshot(repo, root.expect("at least one tree"))
}

/// Writes a snapshot record naming `root`; returns its id in hex.
pub(crate) fn write_snapshot(repo: &Path, root: TreeId) -> String {
    let layout = Layout::new(repo);
    let snap = Snapshot {
        time_ns: 1_800_000_000_000_000_000,
        host: "attacker".into(),
        workspace: "/nowhere".into(),
        paths: vec![],
        session: None,
        epoch: None,
        step: None,
        metrics: BTreeMap::new(),
        message: Some("crafted".into()),
        labels: BTreeMap::new(),
        parent: None,
        root,
        summary: Summary::default(),
    };
    let (id, bytes) = snap.encode();
    durable::write_atomic(&layout.tmp_dir(), &layout.snapshot(&id), &bytes).unwrap();
    id.to_hex()
}

/// Restores `rev` into `box/out` and asserts it failed and wrote nothing
/// anywhere in `box` (the target's parent) or beside the workspace.
fn assert_refused(ws: &Ws, rev: &str) {
    let sandbox = ws.outside("box");
    std::fs::create_dir_all(sandbox.join("out")).unwrap();
    let before_tmp = walk(ws.tmp.path(), &["ws", "box"]);
    let t = sandbox.join("out");
    for args in [
        vec!["restore", rev, "--target", t.to_str().unwrap()],
        vec![
            "restore",
            rev,
            "--target",
            t.to_str().unwrap(),
            "--overwrite",
        ],
    ] {
        let o = ws.run(&args);
        assert_ne!(o.status.code(), Some(0), "crafted snapshot restored");
        assert_paths(&sandbox, &["out"]);
    }
    assert_eq!(walk(ws.tmp.path(), &["ws", "box"]), before_tmp);
    // Nothing beside the workspace either.
    assert!(!ws.root.join("escaped.txt").exists());
}

fn init_with_one_snapshot() -> Ws {
    let ws = Ws::new();
    ws.write("legit.txt", b"legit");
    ws.commit(&[]);
    ws
}

#[test]
fn dot_dot_directory_entry_is_refused() {
    let ws = init_with_one_snapshot();
    let sub = Tree {
        entries: vec![file_entry(b"escaped.txt")],
    };
    let (sub_id, _) = sub.encode();
    let root = Tree {
        entries: vec![dir_entry(b"..", sub_id)],
    };
    let id = craft(&ws.repo(), vec![sub, root]);
    ws.ok(&["reindex"]);
    assert_refused(&ws, &id);
    // check reports the bad tree.
    let o = ws.fails(&["check"], 3);
    assert!(stdout(&o).contains(&id[..8]), "{}", stdout(&o));
    // The legitimate snapshot is unaffected.
    let out = ws.restore_to(ws.log()[0]["id"].as_str().unwrap(), "fine");
    assert_paths(&out, &["legit.txt"]);
}

#[test]
fn names_with_slashes_are_refused() {
    let ws = init_with_one_snapshot();
    for name in [
        &b"../escaped.txt"[..],
        b"../../escaped.txt",
        b"a/../../escaped.txt",
        b"/tmp/escaped.txt",
    ] {
        let root = Tree {
            entries: vec![file_entry(name)],
        };
        let id = craft(&ws.repo(), vec![root]);
        assert_refused(&ws, &id);
        let o = ws.run(&["cat", &format!("{id}:escaped.txt")]);
        assert_ne!(o.status.code(), Some(0));
        assert!(o.stdout.is_empty(), "cat printed data of a refused tree");
    }
}

#[test]
fn dot_nul_and_empty_names_are_refused() {
    let ws = init_with_one_snapshot();
    for name in [&b"."[..], b"", b"nul\0byte", b".."] {
        let root = Tree {
            entries: vec![file_entry(name)],
        };
        let id = craft(&ws.repo(), vec![root]);
        assert_refused(&ws, &id);
    }
}

#[test]
fn duplicate_names_are_refused() {
    // Two entries named alike could make restore write one path twice,
    // e.g. a symlink to the outside and then a file through it.
    let ws = init_with_one_snapshot();
    let outside = ws.outside("victim");
    std::fs::create_dir_all(&outside).unwrap();
    let sub = Tree {
        entries: vec![file_entry(b"escaped.txt")],
    };
    let (sub_id, _) = sub.encode();
    let root = Tree {
        entries: vec![
            dir_entry(b"models", sub_id),
            Entry {
                name: b"models".to_vec(),
                mode: 0o777,
                mtime_ns: 0,
                kind: EntryKind::Symlink {
                    target: outside.to_str().unwrap().as_bytes().to_vec(),
                },
            },
        ],
    };
    let id = craft(&ws.repo(), vec![sub, root]);
    assert_refused(&ws, &id);
    assert_eq!(count_entries(&outside), 0);
}

#[test]
fn restore_and_cat_refuse_parent_paths_in_arguments() {
    let ws = init_with_one_snapshot();
    let t = ws.outside("box/out");
    std::fs::create_dir_all(&t).unwrap();
    for p in ["..", "../legit.txt", "/legit.txt", "a/../../legit.txt"] {
        let o = ws.run(&["restore", "latest", p, "--target", t.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(0), "restore of {p:?} succeeded");
        assert_ne!(
            ws.run(&["cat", &format!("latest:{p}")]).status.code(),
            Some(0)
        );
    }
    assert_paths(&ws.outside("box"), &["out"]);
}
