//! Hostile repositories: packs and trees built by hand that declare huge
//! lengths, nest 20,000 deep or share subtrees into 2^40 paths. Every
//! command must refuse them with an error (exit 3) in bounded memory, never
//! abort, overflow its stack or allocate what the repository merely
//! declares. Commands run under an address-space limit (`RLIMIT_AS`), so an
//! unbounded allocation is a clean test failure, not a machine out of
//! memory. And a commit never writes what readers would refuse.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Output;

use snapstore::codec;
use snapstore::format::pack::{Codec, PackKind};
use snapstore::format::tree::{ChunkRef, Entry, EntryKind, Tree};
use snapstore::store::packs::PackWriter;
use snapstore::store::Layout;
use snapstore::{ChunkId, TreeId};

use crate::escape::write_snapshot;
use crate::util::*;

/// Address space a command may use: several times what snap needs on these
/// small repositories, less than the allocations the crafted lengths ask.
const ADDRESS_SPACE: u64 = 256 << 20;

const PAYLOAD: &[u8] = b"a small honest chunk\n";

/// Runs snap in `ws` with its address space capped at `ADDRESS_SPACE`.
fn capped(ws: &Ws, args: &[&str]) -> Output {
    let mut cmd = snap_std(&ws.root);
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run snap")
}

/// Asserts `args` ended with exit 3 (damaged data, not a signal) and an
/// error that contains every one of `needles`.
fn refused(ws: &Ws, args: &[&str], needles: &[&str]) -> Output {
    let o = capped(ws, args);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        o.status.code(),
        Some(3),
        "snap {args:?}: {:?}\n{all}",
        o.status
    );
    for n in needles {
        assert!(all.contains(n), "snap {args:?}: no {n:?} in:\n{all}");
    }
    o
}

/// One blob of a crafted pack: id, codec, stored bytes, declared length.
type Blob = (ChunkId, Codec, Vec<u8>, u32);

fn write_pack(repo: &Path, kind: PackKind, blobs: &[Blob]) {
    let layout = Layout::new(repo);
    let mut w = PackWriter::create(&layout, kind).unwrap();
    for (id, codec, stored, raw_len) in blobs {
        w.add(*id, *codec, stored, *raw_len, None).unwrap();
    }
    w.finish(&layout).unwrap();
}

/// Trees stored raw, as their records, under their ids.
fn tree_blobs(trees: &[Tree]) -> Vec<Blob> {
    trees
        .iter()
        .map(|t| {
            let (id, bytes) = t.encode();
            let len = bytes.len() as u32;
            (ChunkId(id.0), Codec::Raw, bytes, len)
        })
        .collect()
}

fn file(name: &str, chunks: &[(ChunkId, u32)]) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        mode: 0o644,
        mtime_ns: 1_700_000_000_000_000_000,
        kind: EntryKind::File {
            size: chunks.iter().map(|c| c.1 as u64).sum(),
            chunks: chunks
                .iter()
                .map(|&(id, len)| ChunkRef { id, len })
                .collect(),
        },
    }
}

fn dir(name: &str, tree: TreeId) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        mode: 0o755,
        mtime_ns: 1_700_000_000_000_000_000,
        kind: EntryKind::Dir { tree },
    }
}

fn payload_file() -> Entry {
    file("w", &[(ChunkId::of(PAYLOAD), PAYLOAD.len() as u32)])
}

/// A workspace with one honest snapshot and the payload chunk stored.
fn honest() -> Ws {
    let ws = Ws::new();
    ws.write("legit.txt", b"legit");
    ws.commit(&[]);
    let p = PAYLOAD.to_vec();
    write_pack(
        &ws.repo(),
        PackKind::Data,
        &[(ChunkId::of(PAYLOAD), Codec::Raw, p, PAYLOAD.len() as u32)],
    );
    ws
}

/// A chain of `depth` directories `d/d/d/...` with the payload file at the
/// bottom: the trees, root last.
fn chain(depth: usize) -> Vec<Tree> {
    let mut trees = vec![Tree {
        entries: vec![payload_file()],
    }];
    for _ in 0..depth {
        let below = trees.last().unwrap().encode().0;
        trees.push(Tree {
            entries: vec![dir("d", below)],
        });
    }
    trees
}

/// `levels` trees each holding two directories, `a` and `b`, that are the
/// same tree below: 2^levels paths to the payload file at the bottom.
fn doubling(levels: usize) -> Vec<Tree> {
    let mut trees = vec![Tree {
        entries: vec![payload_file()],
    }];
    for _ in 0..levels {
        let below = trees.last().unwrap().encode().0;
        trees.push(Tree {
            entries: vec![dir("a", below), dir("b", below)],
        });
    }
    trees
}

fn craft_trees(ws: &Ws, trees: &[Tree]) -> String {
    write_pack(&ws.repo(), PackKind::Tree, &tree_blobs(trees));
    write_snapshot(&ws.repo(), trees.last().unwrap().encode().0)
}

#[test]
fn chunks_declaring_huge_lengths_are_refused_before_allocating() {
    let ws = honest();
    let (codec, zeros) = codec::encode(&[0u8; 65536], 3);
    assert_eq!(codec, Codec::Zstd);
    // A float blob whose exponent plane is that zstd frame, rest raw.
    let mut float = vec![1u8, 1, 0];
    float.extend_from_slice(&(zeros.len() as u32).to_le_bytes());
    float.extend_from_slice(&zeros);
    let declared = [
        // Over what any zstd blob may hold: the trailer is damaged.
        ("trailer.bin", Codec::Zstd, zeros.clone(), 3u32 << 30),
        // Within a tree record's limit, over a chunk's: refused on decode.
        ("decode.bin", Codec::Zstd, zeros.clone(), 250 << 20),
        // A float blob over a chunk's limit: the trailer is damaged.
        ("float.bin", Codec::Float, float, 2 << 30),
    ];
    let mut entries = Vec::new();
    for (name, codec, stored, raw_len) in declared {
        let id = ChunkId::of(name.as_bytes());
        write_pack(&ws.repo(), PackKind::Data, &[(id, codec, stored, raw_len)]);
        entries.push(file(name, &[(id, 65536)]));
    }
    let root = Tree { entries };
    let id = craft_trees(&ws, &[root]);
    let short = &id[..8];
    let target = ws.outside("out");
    let t = target.to_str().unwrap();
    let o = refused(&ws, &["restore", short, "--target", t], &["decode.bin"]);
    assert!(stderr(&o).contains("declares"), "{}", stderr(&o));
    refused(&ws, &["cat", &format!("{short}:decode.bin")], &["declares"]);
    let o = refused(&ws, &["check", "--read-data"], &["declares"]);
    assert!(stdout(&o).contains("trailer.bin") || stdout(&o).contains(short));
    // The honest snapshot still restores.
    let out = ws.restore_to(ws.log()[0]["id"].as_str().unwrap(), "fine");
    assert_paths(&out, &["legit.txt"]);
}

#[test]
fn a_tree_declaring_a_huge_length_is_refused_before_allocating() {
    let ws = honest();
    let tree = Tree {
        entries: vec![payload_file()],
    };
    let (tid, bytes) = tree.encode();
    let (codec, frame) = codec::encode(&bytes.repeat(8), 3);
    assert_eq!(codec, Codec::Zstd);
    write_pack(
        &ws.repo(),
        PackKind::Tree,
        &[(ChunkId(tid.0), Codec::Zstd, frame, 250 << 20)],
    );
    let id = write_snapshot(&ws.repo(), tid);
    let short = &id[..8];
    let t = ws.outside("out");
    refused(&ws, &["show", short], &[&tid.short()]);
    refused(
        &ws,
        &["restore", short, "--target", t.to_str().unwrap()],
        &[],
    );
    refused(&ws, &["check"], &[short]);
}

#[test]
fn trees_nested_20000_deep_are_refused_without_recursion() {
    let ws = honest();
    let id = craft_trees(&ws, &chain(20_000));
    let short = &id[..8];
    let limit = ["snapshot", short, "deeper than 1024"];
    refused(&ws, &["show", short], &limit);
    let t = ws.outside("out");
    refused(
        &ws,
        &["restore", short, "--target", t.to_str().unwrap()],
        &limit,
    );
    let honest_id = ws.log()[0]["id"].as_str().unwrap().to_string();
    refused(&ws, &["diff", &honest_id[..8], short], &limit);
    refused(&ws, &["check"], &limit);
    assert!(!t.join("d").exists(), "restore wrote part of the tree");
}

#[test]
fn nesting_up_to_the_limit_is_walked() {
    let ws = honest();
    let at = craft_trees(&ws, &chain(1024));
    let files = ws.show_files(&at[..8]);
    assert_eq!(files.len(), 1025);
    let over = craft_trees(&ws, &chain(1025));
    refused(&ws, &["show", &over[..8]], &["deeper than 1024"]);
    let o = refused(&ws, &["check"], &[&over[..8]]);
    assert!(!stdout(&o).contains(&at[..8]), "{}", stdout(&o));
}

#[test]
fn subtrees_shared_into_2_to_the_40_paths_are_refused_in_bounded_memory() {
    let ws = honest();
    let id = craft_trees(&ws, &doubling(40));
    let short = &id[..8];
    let limit = ["snapshot", short, "more than 100000000 entries"];
    refused(&ws, &["show", short], &limit);
    let t = ws.outside("out");
    refused(
        &ws,
        &["restore", short, "--target", t.to_str().unwrap()],
        &limit,
    );
    refused(
        &ws,
        &["restore", short, "a/a", "--target", t.to_str().unwrap()],
        &limit,
    );
    refused(&ws, &["check"], &limit);
    assert!(!t.exists() || count_entries(&t) == 0, "restore wrote files");
}

#[test]
fn shared_subtrees_within_the_limits_expand_to_every_path() {
    let ws = honest();
    let id = craft_trees(&ws, &doubling(10));
    let short = &id[..8];
    let files = ws.show_files(short);
    // 2 + 4 + ... + 1024 directories, and 1024 files.
    assert_eq!(files.len(), 2046 + 1024);
    assert!(files.contains_key("a/b/a/b/a/b/a/b/a/b/w"));
    let out = ws.restore_to(short, "out");
    assert_eq!(walk(&out, &[]).len(), 2046 + 1024);
    assert_eq!(
        std::fs::read(out.join("b/b/b/b/b/b/b/b/b/b/w")).unwrap(),
        PAYLOAD
    );
    ws.ok(&["check"]);
    // Without its chunk, check names every path that needs it, visiting the
    // shared trees once each.
    let pack = packs_of_kind(&ws.repo(), 0)
        .into_iter()
        .find(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(PAYLOAD.len()).any(|w| w == PAYLOAD)
        })
        .expect("the payload's own pack");
    std::fs::remove_file(pack).unwrap();
    ws.ok(&["reindex"]);
    let o = ws.fails(&["check", "--json"], 3);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let damaged = report["damaged_files"].as_array().unwrap();
    assert_eq!(damaged.len(), 1024, "{damaged:?}");
    assert_eq!(damaged[0]["path"], "a/a/a/a/a/a/a/a/a/a/w");
    assert_eq!(damaged[1023]["path"], "b/b/b/b/b/b/b/b/b/b/w");
}

#[test]
fn a_directory_over_the_record_limit_is_refused_at_commit() {
    let ws = Ws::new();
    for i in 0..40 {
        ws.write(&format!("big/{i:02}-{}", "n".repeat(60)), b"x");
    }
    ws.write("small/a", b"y");
    let o = ws
        .cmd()
        .env("SNAP_TEST_RECORD_LIMIT", "2048")
        .args(["commit"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("directory big cannot be committed"), "{err}");
    assert!(err.contains("over the 2048 bytes"), "{err}");
    assert!(err.contains("split it into subdirectories"), "{err}");
    assert!(ws.log().is_empty(), "a snapshot was written");
    // Under the real limit the same directory commits.
    ws.commit(&[]);
    assert_eq!(ws.log().len(), 1);
}

#[test]
fn a_workspace_nested_deeper_than_the_limit_is_refused_at_commit() {
    let ws = Ws::new();
    let deep = vec!["d"; 1025].join("/");
    ws.write(&format!("{deep}/f"), b"bottom");
    let o = ws.fails(&["commit"], 1);
    let err = stderr(&o);
    assert!(err.contains("nested more than 1024"), "{err}");
    assert!(ws.log().is_empty());
    // At the limit it commits and restores.
    std::fs::remove_dir_all(ws.path("d")).unwrap();
    let deep = vec!["d"; 1024].join("/");
    ws.write(&format!("{deep}/f"), b"bottom");
    let id = ws.commit_id(&[]);
    assert_eq!(ws.show_files(&id[..8]).len(), 1025);
}
