//! Restore and its target under attack (issue 11): a target reached through
//! a symlink, a file or directory swapped in while the restore runs (each
//! race held open at a failpoint barrier), setuid and world-write bits from
//! a snapshot, and chunk lists that disagree with the file's size.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use snapstore::format::tree::{ChunkRef, EntryKind, Tree};
use snapstore::ChunkId;

use crate::escape::{craft, dir_entry, file_entry, PAYLOAD};
use crate::util::*;

/// What a restore must never change in a repository: everything but the
/// index (a cache readers may rebuild), the locks and `tmp/`.
fn repo_files(ws: &Ws) -> std::collections::BTreeMap<PathBuf, Node> {
    walk(
        &ws.repo(),
        &[
            "index.sqlite",
            "index.sqlite-wal",
            "index.sqlite-shm",
            "locks",
            "tmp",
        ],
    )
}

/// Names of a restore's temporaries in `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".snap-restore-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn restore_cmd(ws: &Ws, args: &[&str]) -> std::process::Command {
    let mut cmd = snap_std(&ws.root);
    cmd.arg("restore").args(args);
    cmd
}

#[test]
fn a_target_that_is_a_symlink_to_the_workspace_cannot_replace_the_repository_config() {
    let ws = Ws::new();
    ws.write("legit.txt", b"legit");
    ws.commit(&[]);
    // A crafted snapshot whose tree holds `.snap/config`.
    let inner = Tree {
        entries: vec![file_entry(b"config")],
    };
    let (inner_id, _) = inner.encode();
    let root = Tree {
        entries: vec![dir_entry(b".snap", inner_id)],
    };
    let id = craft(&ws.repo(), vec![inner, root]);
    let config = fs::read(ws.repo().join("config")).unwrap();
    let before = repo_files(&ws);
    let link = ws.outside("link");
    symlink(&ws.root, &link).unwrap();
    for target in [link.clone(), link.join("."), ws.outside("link/../ws")] {
        let t = target.to_str().unwrap();
        for extra in [&[][..], &["--overwrite"][..]] {
            let mut args = vec!["restore", &id, "--target", t];
            args.extend_from_slice(extra);
            let o = ws.run(&args);
            assert_ne!(o.status.code(), Some(0), "{args:?} succeeded");
            assert!(stderr(&o).contains("repository"), "{}", stderr(&o));
            assert_eq!(fs::read(ws.repo().join("config")).unwrap(), config);
            assert_eq!(repo_files(&ws), before);
        }
    }
    ws.ok(&["log"]);
}

#[test]
fn a_target_through_a_symlink_into_the_repository_is_refused() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    let before = repo_files(&ws);
    let link = ws.outside("repo-link");
    symlink(ws.repo(), &link).unwrap();
    for target in [link.clone(), link.join("restored"), link.join("packs")] {
        let o = ws.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
        assert_ne!(
            o.status.code(),
            Some(0),
            "restored into {}",
            target.display()
        );
        assert!(stderr(&o).contains("repository"), "{}", stderr(&o));
        assert_eq!(repo_files(&ws), before);
    }
    // The same repository through a symlinked --repo: still protected.
    let o = snap_in(&ws.root)
        .args(["--repo", link.to_str().unwrap(), "restore", "latest"])
        .args(["--target", ws.repo().join("x").to_str().unwrap()])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(repo_files(&ws), before);
}

#[test]
fn a_file_that_appears_before_the_rename_is_not_replaced() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.write("notes.txt", b"from the snapshot");
    ws.write("sub/b.txt", b"b");
    ws.commit(&[]);
    let out = ws.outside("out");
    let t = out.to_str().unwrap();
    // Planned when nothing was there; someone writes notes.txt meanwhile.
    let paused = Paused::at(
        restore_cmd(&ws, &["latest", "--target", t]),
        "restore:before-rename",
    );
    fs::write(out.join("notes.txt"), b"mine").unwrap();
    let o = paused.finish();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("notes.txt"), "{err}");
    assert!(err.contains("appeared"), "{err}");
    assert_eq!(fs::read(out.join("notes.txt")).unwrap(), b"mine");
    // Every other file was restored, and no temporary is left.
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"a");
    assert_eq!(fs::read(out.join("sub/b.txt")).unwrap(), b"b");
    assert_eq!(temporaries(&out), Vec::<String>::new());
    assert_eq!(temporaries(&out.join("sub")), Vec::<String>::new());
}

#[test]
fn a_symlink_that_appears_before_the_rename_is_not_replaced() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    symlink("a.txt", ws.path("link")).unwrap();
    ws.commit(&[]);
    let out = ws.outside("out");
    let t = out.to_str().unwrap();
    let paused = Paused::at(
        restore_cmd(&ws, &["latest", "--target", t]),
        "restore:before-rename",
    );
    symlink("elsewhere", out.join("link")).unwrap();
    let o = paused.finish();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("link") && err.contains("appeared"), "{err}");
    assert_eq!(
        fs::read_link(out.join("link")).unwrap(),
        Path::new("elsewhere")
    );
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"a");
}

/// A workspace with `sub/notes.txt` and `sub/more.txt`, `sub` of mode 0700.
fn workspace_with_sub() -> Ws {
    let ws = Ws::new();
    ws.write("top.txt", b"top");
    ws.write("sub/notes.txt", b"notes");
    ws.write("sub/more.txt", b"more");
    set_mode(&ws.path("sub"), 0o700);
    ws.commit(&[]);
    ws
}

/// Replaces `out/sub` by a symlink to `outside` (the real directory moves to
/// `out/moved`), as another user with write access to the target could.
fn swap_for_symlink(out: &Path, outside: &Path) {
    fs::rename(out.join("sub"), out.join("moved")).unwrap();
    symlink(outside, out.join("sub")).unwrap();
}

#[test]
fn a_directory_swapped_for_a_symlink_while_writing_cannot_redirect_the_writes() {
    let ws = workspace_with_sub();
    let out = ws.outside("out");
    let outside = ws.outside("outside");
    fs::create_dir(&outside).unwrap();
    let t = out.to_str().unwrap();
    let paused = Paused::at(
        restore_cmd(&ws, &["latest", "--target", t]),
        "restore:after-temporaries",
    );
    let names = temporaries(&out.join("sub"));
    assert_eq!(names.len(), 2);
    // Files at the temporaries' names outside: a restore that opens its
    // temporaries by path would now write there.
    for n in &names {
        fs::write(outside.join(n), b"").unwrap();
    }
    swap_for_symlink(&out, &outside);
    let o = paused.finish();
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
    expected.sort();
    assert_paths(&outside, &expected);
    for n in &names {
        assert_eq!(
            fs::metadata(outside.join(n)).unwrap().len(),
            0,
            "{n} written"
        );
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_before_its_mode_is_set_is_not_followed() {
    let ws = workspace_with_sub();
    let out = ws.outside("out");
    let outside = ws.outside("outside");
    fs::create_dir(&outside).unwrap();
    set_mode(&outside, 0o755);
    set_mtime_ns(&outside, 1_000_000_000_123);
    let t = out.to_str().unwrap();
    let paused = Paused::at(
        restore_cmd(&ws, &["latest", "--target", t]),
        "restore:before-dir-modes",
    );
    swap_for_symlink(&out, &outside);
    let o = paused.finish();
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    let m = fs::metadata(&outside).unwrap();
    assert_eq!(
        m.mode() & 0o7777,
        0o755,
        "the mode was set through the link"
    );
    assert_eq!(
        mtime_ns(&m),
        1_000_000_000_123,
        "the mtime was set through the link"
    );
    assert_eq!(count_entries(&outside), 0);
}

#[test]
fn setuid_setgid_and_world_write_bits_are_stripped_unless_kept() {
    let ws = Ws::new();
    for (name, mode) in [
        ("tool", 0o4755),
        ("group-tool", 0o2755),
        ("open.txt", 0o666),
        ("plain.txt", 0o640),
    ] {
        ws.write(name, name.as_bytes());
        set_mode(&ws.path(name), mode);
    }
    ws.write("shared/x", b"x");
    set_mode(&ws.path("shared"), 0o777);
    ws.write("drop/y", b"y");
    set_mode(&ws.path("drop"), 0o1777);
    ws.commit(&[]);

    let out = ws.outside("out");
    let o = ws.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("tool"), 0o755);
    assert_eq!(mode("group-tool"), 0o755);
    assert_eq!(mode("open.txt"), 0o664);
    assert_eq!(mode("plain.txt"), 0o640);
    assert_eq!(mode("shared"), 0o775);
    // The sticky bit only restricts; it is kept.
    assert_eq!(mode("drop"), 0o1775);
    let err = stderr(&o);
    assert_eq!(
        err.lines().filter(|l| l.contains("--keep-setuid")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("5 "), "{err}");

    // --keep-setuid restores every bit as stored, and says nothing.
    let kept = ws.outside("kept");
    let o = ws.run(&[
        "restore",
        "latest",
        "--target",
        kept.to_str().unwrap(),
        "--keep-setuid",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("stripped"), "{}", stderr(&o));
    assert_same_tree(&ws.root, &kept, &[".snap"]);
}

/// A snapshot with `ok.txt` (the payload) and `bad.bin`, whose entry names
/// the payload's chunk `count` times with length `len`, the lengths adding
/// up to its size (the tree decoder refuses a list that does not).
fn snapshot_with_bad_file(ws: &Ws, count: usize, len: u32) -> String {
    let mut bad = file_entry(b"bad.bin");
    let chunk = ChunkRef {
        id: ChunkId::of(PAYLOAD),
        len,
    };
    bad.kind = EntryKind::File {
        size: count as u64 * len as u64,
        chunks: vec![chunk; count],
    };
    let root = Tree {
        entries: vec![bad, file_entry(b"ok.txt")],
    };
    craft(&ws.repo(), vec![root])
}

#[test]
fn a_chunk_list_that_disagrees_with_its_chunks_is_refused_as_damaged() {
    for (case, count, len) in [
        // 65,536 chunks of 16 MiB (the most a chunk may hold; the tree
        // decoder refuses more) from one 41-byte chunk: 1 TiB, sparse.
        ("1 TiB from a small chunk", 65536, 16 << 20),
        // A list shorter than the chunk: the write would run past the size.
        ("chunk longer than listed", 1, 10),
    ] {
        let ws = Ws::new();
        let id = snapshot_with_bad_file(&ws, count, len);
        let out = ws.outside("out");
        let o = ws.run(&["restore", &id, "--target", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(3), "{case}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("bad.bin") && err.contains(&id[..8]),
            "{case}: {err}"
        );
        assert!(err.contains("chunk list"), "{case}: {err}");
        assert!(!out.join("bad.bin").exists(), "{case}: bad.bin was written");
        assert_eq!(fs::read(out.join("ok.txt")).unwrap(), PAYLOAD, "{case}");
        assert_eq!(temporaries(&out), Vec::<String>::new(), "{case}");

        // check names the file too, as a damaged file of that snapshot.
        let o = ws.fails(&["check"], 3);
        assert!(stdout(&o).contains("bad.bin"), "{case}: {}", stdout(&o));
        let o = ws.cmd().args(["check", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let damaged = v["damaged_files"].as_array().unwrap();
        assert!(
            damaged
                .iter()
                .any(|d| d["path"] == "bad.bin" && d["snapshot"] == id[..8]),
            "{case}: {v}"
        );
    }
}
