//! Partial restores, `snap cat`, overwrite protection, and restores that
//! must never write outside their target.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use crate::util::*;

fn training_workspace() -> Ws {
    let ws = Ws::new();
    let mut rng = Rng::new(31);
    ws.write("config/train.yaml", b"lr: 0.001\n");
    ws.write("config/model.yaml", b"layers: 12\n");
    ws.write("logs/training.log", &rng.text(300_000));
    ws.write("logs/tb/events.out", &rng.bytes(50_000));
    ws.write("models/best.pt", &rng.bytes(5 * MIB + 3));
    ws.write("notes.txt", b"baseline\n");
    ws.commit(&["-m", "baseline"]);
    ws
}

#[test]
fn restore_one_file() {
    let ws = training_workspace();
    let out = ws.outside("out");
    let t = out.to_str().unwrap();
    ws.ok(&["restore", "latest", "models/best.pt", "--target", t]);
    assert_paths(&out, &["models", "models/best.pt"]);
    assert_eq!(
        fs::read(out.join("models/best.pt")).unwrap(),
        fs::read(ws.path("models/best.pt")).unwrap()
    );
}

#[test]
fn restore_one_directory() {
    let ws = training_workspace();
    let out = ws.outside("out");
    let t = out.to_str().unwrap();
    let v = ws.json(&["restore", "latest", "logs", "--target", t]);
    assert_eq!(v["files"], 2);
    assert_paths(
        &out,
        &["logs", "logs/training.log", "logs/tb", "logs/tb/events.out"],
    );
    assert_same_tree(&ws.path("logs"), &out.join("logs"), &[]);
}

#[test]
fn restore_several_paths() {
    let ws = training_workspace();
    let out = ws.outside("out");
    let t = out.to_str().unwrap();
    ws.ok(&[
        "restore",
        "latest",
        "config/train.yaml",
        "notes.txt",
        "--target",
        t,
    ]);
    assert_paths(&out, &["config", "config/train.yaml", "notes.txt"]);
}

#[test]
fn restore_unknown_path_fails_with_not_found() {
    let ws = training_workspace();
    let t = ws.outside("out");
    let o = ws.fails(
        &[
            "restore",
            "latest",
            "models/nope.pt",
            "--target",
            t.to_str().unwrap(),
        ],
        5,
    );
    assert!(stderr(&o).contains("models/nope.pt"), "{}", stderr(&o));
    assert!(!t.join("models").exists());
}

#[test]
fn restore_path_with_parent_component_is_refused() {
    let ws = training_workspace();
    let t = ws.outside("out");
    let o = ws.run(&[
        "restore",
        "latest",
        "../notes.txt",
        "--target",
        t.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(!ws.tmp.path().join("notes.txt").exists());
    assert_eq!(count_entries(&t), 0);
}

#[test]
fn cat_prints_exact_bytes() {
    let ws = training_workspace();
    let o = ws
        .cmd()
        .args(["cat", "latest:models/best.pt"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, fs::read(ws.path("models/best.pt")).unwrap());
    assert_eq!(ws.ok(&["cat", "latest:./config/train.yaml"]), "lr: 0.001\n");
}

#[test]
fn cat_errors() {
    let ws = training_workspace();
    ws.fails(&["cat", "latest:missing.txt"], 5);
    ws.fails(&["cat", "latest:../ws/notes.txt"], 5);
    let o = ws.fails(&["cat", "latest:logs"], 1);
    assert!(stderr(&o).contains("directory"), "{}", stderr(&o));
    let o = ws.fails(&["cat", "latest"], 1);
    assert!(stderr(&o).contains("REV:PATH"), "{}", stderr(&o));
    ws.fails(&["cat", "nosuchrev:notes.txt"], 5);
}

#[test]
fn cat_of_a_symlink_says_where_it_points() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    symlink("a.txt", ws.path("link")).unwrap();
    ws.commit(&[]);
    let o = ws.fails(&["cat", "latest:link"], 1);
    assert!(stderr(&o).contains("a.txt"), "{}", stderr(&o));
}

#[test]
fn restore_refuses_to_overwrite_without_flag() {
    let ws = training_workspace();
    let out = ws.restore_to("latest", "out");
    fs::write(out.join("config/train.yaml"), b"locally edited\n").unwrap();
    fs::remove_file(out.join("notes.txt")).unwrap();
    let before = walk(&out, &[]);

    let t = out.to_str().unwrap();
    let o = ws.run(&["restore", "latest", "--target", t]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    // Nothing changed, not even the missing file.
    assert_eq!(walk(&out, &[]), before);

    ws.ok(&["restore", "latest", "--target", t, "--overwrite"]);
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

#[test]
fn restore_into_non_empty_target_without_conflicts_is_allowed() {
    let ws = training_workspace();
    let out = ws.outside("out");
    write_file(&out.join("unrelated.txt"), b"keep me");
    let t = out.to_str().unwrap();
    ws.ok(&["restore", "latest", "config", "--target", t]);
    assert_eq!(fs::read(out.join("unrelated.txt")).unwrap(), b"keep me");
    assert!(out.join("config/train.yaml").is_file());
}

#[test]
fn overwrite_replaces_a_symlink_instead_of_writing_through_it() {
    let ws = training_workspace();
    let outside = ws.outside("victim");
    write_file(&outside.join("secret.yaml"), b"precious\n");
    let out = ws.outside("out");
    fs::create_dir_all(out.join("config")).unwrap();
    symlink(outside.join("secret.yaml"), out.join("config/train.yaml")).unwrap();

    let t = out.to_str().unwrap();
    ws.ok(&["restore", "latest", "config", "--target", t, "--overwrite"]);
    assert_eq!(
        fs::read(outside.join("secret.yaml")).unwrap(),
        b"precious\n"
    );
    let m = fs::symlink_metadata(out.join("config/train.yaml")).unwrap();
    assert!(m.is_file(), "the link was replaced by the restored file");
    assert_eq!(
        fs::read(out.join("config/train.yaml")).unwrap(),
        b"lr: 0.001\n"
    );
}

/// Asserts `dir` still holds exactly what `setup_outside` put there.
fn assert_outside_untouched(dir: &Path) {
    assert_paths(dir, &["keep.txt"]);
    assert_eq!(fs::read(dir.join("keep.txt")).unwrap(), b"untouched\n");
}

fn setup_outside(ws: &Ws) -> std::path::PathBuf {
    let dir = ws.outside("outside");
    write_file(&dir.join("keep.txt"), b"untouched\n");
    dir
}

#[test]
fn symlinked_directory_in_target_is_not_followed() {
    let ws = training_workspace();
    let outside = setup_outside(&ws);
    let out = ws.outside("out");
    fs::create_dir_all(&out).unwrap();
    symlink(&outside, out.join("models")).unwrap();
    let t = out.to_str().unwrap();

    for args in [
        vec!["restore", "latest", "--target", t],
        vec!["restore", "latest", "--target", t, "--overwrite"],
        vec!["restore", "latest", "models", "--target", t, "--overwrite"],
        vec!["restore", "latest", "models/best.pt", "--target", t],
        vec![
            "restore",
            "latest",
            "models/best.pt",
            "--target",
            t,
            "--overwrite",
        ],
    ] {
        let o = ws.run(&args);
        assert_ne!(o.status.code(), Some(0), "{args:?} succeeded");
        assert_outside_untouched(&outside);
        assert!(fs::symlink_metadata(out.join("models"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

#[test]
fn symlink_restored_by_an_earlier_snapshot_is_not_followed() {
    // Snapshot 1 has models -> outside dir; snapshot 2 has a real models/.
    let ws = Ws::new();
    let outside = setup_outside(&ws);
    symlink(&outside, ws.path("models")).unwrap();
    let first = ws.commit_id(&[]);
    fs::remove_file(ws.path("models")).unwrap();
    ws.write("models/best.pt", b"weights");
    let second = ws.commit_id(&[]);

    let out = ws.restore_to(&first, "out");
    assert!(fs::symlink_metadata(out.join("models"))
        .unwrap()
        .file_type()
        .is_symlink());
    let t = out.to_str().unwrap();
    let o = ws.run(&["restore", &second, "--target", t, "--overwrite"]);
    assert_ne!(o.status.code(), Some(0), "restore wrote through a symlink");
    assert_outside_untouched(&outside);
}

#[test]
fn planted_symlink_at_a_temporary_name_is_not_followed() {
    // Restore writes each file through a temporary beside it; a symlink
    // planted at that name must not redirect the write.
    let ws = training_workspace();
    let outside = setup_outside(&ws);
    let out = ws.outside("out");
    fs::create_dir_all(&out).unwrap();
    symlink(
        outside.join("keep.txt"),
        out.join(".notes.txt.snap-restore"),
    )
    .unwrap();
    fs::create_dir_all(out.join("config")).unwrap();
    symlink(
        outside.join("new.txt"),
        out.join("config/.train.yaml.snap-restore"),
    )
    .unwrap();
    let t = out.to_str().unwrap();
    let _ = ws.run(&["restore", "latest", "notes.txt", "config", "--target", t]);
    assert_outside_untouched(&outside);
}

#[test]
fn restore_never_writes_into_the_repository() {
    // A target that contains the repository itself.
    let ws = training_workspace();
    let before = walk(
        &ws.repo(),
        &[
            "index.sqlite",
            "index.sqlite-wal",
            "index.sqlite-shm",
            "locks",
            "tmp",
        ],
    );
    let t = ws.root.to_str().unwrap();
    ws.ok(&["restore", "latest", "--target", t, "--overwrite"]);
    let after = walk(
        &ws.repo(),
        &[
            "index.sqlite",
            "index.sqlite-wal",
            "index.sqlite-shm",
            "locks",
            "tmp",
        ],
    );
    assert_eq!(before, after);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn restore_json_summary_counts() {
    let ws = training_workspace();
    let out = ws.outside("out");
    let v = ws.json(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(v["files"], 6);
    assert_eq!(v["dirs"], 4);
    assert_eq!(v["symlinks"], 0);
    let bytes: u64 = walk(&ws.root, &[".snap"])
        .values()
        .map(|n| match n.kind {
            Kind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    assert_eq!(v["bytes"], bytes);
    assert!(v["failed"].as_array().unwrap().is_empty());
}

#[test]
fn overlapping_and_symlink_paths() {
    let ws = training_workspace();
    symlink("models/best.pt", ws.path("best.pt")).unwrap();
    ws.commit(&[]);
    let out = ws.outside("out");
    let t = out.to_str().unwrap();
    let v = ws.json(&[
        "restore",
        "latest",
        "logs",
        "logs/training.log",
        "best.pt",
        "--target",
        t,
    ]);
    assert_eq!(v["files"], 2);
    assert_eq!(v["symlinks"], 1);
    assert_eq!(
        fs::read_link(out.join("best.pt")).unwrap(),
        Path::new("models/best.pt")
    );
    assert!(
        !out.join("models").exists(),
        "the link's target was restored too"
    );
}

#[test]
fn target_inside_the_repository_is_refused() {
    let ws = training_workspace();
    let before = walk(
        &ws.repo(),
        &[
            "index.sqlite",
            "index.sqlite-wal",
            "index.sqlite-shm",
            "locks",
            "tmp",
        ],
    );
    let o = ws.run(&["restore", "latest", "--target", ".snap/restored"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("repository"), "{}", stderr(&o));
    let after = walk(
        &ws.repo(),
        &[
            "index.sqlite",
            "index.sqlite-wal",
            "index.sqlite-shm",
            "locks",
            "tmp",
        ],
    );
    assert_eq!(before, after);
}

#[test]
fn failed_restore_leaves_no_temporaries_behind() {
    // A directory where the snapshot has a file: restore fails, but must
    // not litter the target with half-restored temporaries.
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.write("m", b"m is a file here");
    ws.write("z.txt", b"z");
    ws.commit(&[]);
    let out = ws.outside("out");
    write_file(&out.join("m/inner"), b"keep");
    let o = ws.run(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--overwrite",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(fs::read(out.join("m/inner")).unwrap(), b"keep");
    let litter: Vec<_> = walk(&out, &[])
        .into_keys()
        .filter(|p| p.to_string_lossy().contains("snap-restore"))
        .collect();
    assert!(
        litter.is_empty(),
        "temporaries left in the target: {litter:?}"
    );
}

#[test]
fn temporaries_of_a_killed_restore_are_removed_by_the_next_one() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.write("sub/b.txt", b"b");
    ws.commit(&[]);
    let out = ws.outside("out");
    // What a restore killed on this machine leaves: temporaries named after
    // its host and its pid, which no longer runs.
    let host = blake3::hash(gethostname::gethostname().as_encoded_bytes()).to_hex();
    let host = &host[..8];
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = [
        out.join(format!(".snap-restore-{host}.{dead}.aB3xYz")),
        out.join(format!("sub/.snap-restore-{host}.{dead}.Q9w8e7")),
    ];
    for p in &stale {
        write_file(p, &vec![0u8; 1 << 20]);
    }
    // Left alone: a restore still running here (this test's pid), another
    // machine's, and names that only look alike.
    let kept = [
        out.join(format!(
            ".snap-restore-{host}.{}.running",
            std::process::id()
        )),
        out.join(format!(".snap-restore-0000ffff.{dead}.other-host")),
        out.join(format!(".snap-restore-{host}.x{dead}.not-a-pid")),
        out.join("sub/.snap-restore-old-style"),
    ];
    for p in &kept {
        write_file(p, b"keep");
    }
    let o = ws.json(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(o["stale_temporaries_removed"], 2, "{o}");
    for p in &stale {
        assert!(!p.exists(), "{} is still there", p.display());
    }
    for p in &kept {
        assert_eq!(fs::read(p).unwrap(), b"keep", "{}", p.display());
    }
    assert_eq!(fs::read(out.join("sub/b.txt")).unwrap(), b"b");
    // A restore into another directory touches nothing here.
    write_file(&stale[0], b"stale");
    let other = ws.outside("other");
    ws.ok(&[
        "restore",
        "latest",
        "sub",
        "--target",
        other.to_str().unwrap(),
    ]);
    assert!(stale[0].exists());
}

/// Files named like a restore's temporaries in `dir` (not recursive).
fn temporaries(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".snap-restore-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_restore_killed_after_creating_its_temporaries_is_cleaned_up_by_the_next() {
    let ws = Ws::new();
    ws.write("model.bin", &random_bytes(1, 3 << 20));
    ws.commit(&[]);
    let out = ws.outside("out");
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", "restore:after-temporaries")
        .args(["restore", "latest", "--target", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(
        temporaries(&out).len(),
        1,
        "the killed restore left no temporary"
    );
    assert!(!out.join("model.bin").exists());
    let o = ws.run(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("removed 1 temporary file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(temporaries(&out), Vec::<String>::new());
    assert_eq!(
        fs::read(out.join("model.bin")).unwrap(),
        fs::read(ws.path("model.bin")).unwrap()
    );
}

#[test]
fn ctrl_c_stops_a_restore_and_removes_its_temporaries() {
    let ws = Ws::new();
    ws.write("model.bin", &random_bytes(2, 3 << 20));
    ws.write("sub/notes.txt", b"notes");
    ws.commit(&[]);
    let out = ws.outside("out");
    // Pause after the temporaries exist, so the signal lands mid-restore.
    let mut cmd = snap_std(&ws.root);
    cmd.args(["restore", "latest", "--target", out.to_str().unwrap()]);
    let paused = Paused::at(cmd, "restore:after-temporaries");
    assert_eq!(temporaries(&out).len(), 1);
    assert_eq!(temporaries(&out.join("sub")).len(), 1);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(paused.pid(), libc::SIGINT) };
    let o = paused.finish();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("interrupted by signal 2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(temporaries(&out), Vec::<String>::new());
    assert_eq!(temporaries(&out.join("sub")), Vec::<String>::new());
    assert!(!out.join("model.bin").exists() && !out.join("sub/notes.txt").exists());
    // Nothing is in the way of the next restore.
    ws.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert_eq!(fs::read(out.join("sub/notes.txt")).unwrap(), b"notes");
}
