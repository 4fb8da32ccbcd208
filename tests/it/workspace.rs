//! What a commit tracks: `.snapignore`, snap.toml `track`/`ignore`/`repo`,
//! explicit paths, and the directories that are never stored.

use std::collections::BTreeSet;
use std::fs;

use crate::util::*;

fn paths(ws: &Ws) -> BTreeSet<String> {
    ws.show_files("latest").into_keys().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn snapignore_is_honoured_at_every_level() {
    let ws = Ws::new();
    ws.write(".snapignore", b"*.tmp\nwandb/\n!keep.tmp\n/rootonly.txt\n");
    ws.write("a.tmp", b"x");
    ws.write("keep.tmp", b"kept by negation");
    ws.write("rootonly.txt", b"x");
    ws.write(
        "sub/rootonly.txt",
        b"anchored pattern only matches at the root",
    );
    ws.write("wandb/run/log.txt", b"x");
    ws.write("logs/x.tmp", b"x");
    ws.write("logs/train.log", b"log");
    ws.write("models/.snapignore", b"cache/\n*.partial\n");
    ws.write("models/cache/blob", b"x");
    ws.write("models/best.pt", b"w");
    ws.write("models/best.pt.partial", b"x");
    ws.write("other/cache/blob", b"not ignored here");
    ws.commit(&[]);
    assert_eq!(
        paths(&ws),
        set(&[
            ".snapignore",
            "keep.tmp",
            "logs",
            "logs/train.log",
            "models",
            "models/.snapignore",
            "models/best.pt",
            "other",
            "other/cache",
            "other/cache/blob",
            "sub",
            "sub/rootonly.txt",
        ])
    );
}

#[test]
fn git_and_repository_directories_are_never_stored() {
    let ws = Ws::new();
    ws.write(".git/HEAD", b"ref: refs/heads/main\n");
    ws.write(".git/objects/ab/cdef", b"x");
    ws.write("vendor/lib/.git/config", b"x");
    ws.write("vendor/lib/src.py", b"print()");
    ws.write("nested/.snap/config", b"not ours, but still never stored");
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    assert_eq!(
        paths(&ws),
        set(&[
            "a.txt",
            "nested",
            "vendor",
            "vendor/lib",
            "vendor/lib/src.py"
        ])
    );
}

#[test]
fn explicit_git_or_repository_paths_are_not_stored() {
    let ws = Ws::new();
    ws.write(".git/HEAD", b"ref: refs/heads/main\n");
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    for p in [".git", ".snap", ".git/HEAD", ".snap/config"] {
        let o = ws.run(&["commit", p, "--json"]);
        if o.status.success() {
            let files = ws.show_files("latest");
            assert!(
                !files
                    .keys()
                    .any(|k| k.starts_with(".git") || k.starts_with(".snap")),
                "`snap commit {p}` stored {:?}",
                files.keys().collect::<Vec<_>>()
            );
        }
    }
    // Nor through snap.toml's track list.
    ws.write("snap.toml", b"track = [\".git\", \".snap\", \"a.txt\"]\n");
    let o = ws.run(&["commit", "--json"]);
    if o.status.success() {
        let files = ws.show_files("latest");
        assert!(
            !files
                .keys()
                .any(|k| k.starts_with(".git") || k.starts_with(".snap")),
            "track stored {:?}",
            files.keys().collect::<Vec<_>>()
        );
    }
}

#[test]
fn snap_toml_track_and_ignore() {
    let ws = Ws::new();
    ws.write(
        "snap.toml",
        b"track = [\"logs\", \"models\", \"config\", \"best.pt\", \"missing_dir\"]\nignore = [\"*.partial\", \"logs/tensorboard/\"]\n",
    );
    ws.write("logs/train.log", b"log");
    ws.write("logs/tensorboard/events", b"x");
    ws.write("models/a.pt", b"a");
    ws.write("models/a.pt.partial", b"x");
    ws.write("config/train.yaml", b"lr: 1");
    ws.write("best.pt", b"best");
    ws.write("data/huge_dataset.bin", b"untracked");
    ws.write("scratch.txt", b"untracked");
    let o = ws.run(&["commit", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: track entry 'missing_dir' in snap.toml matches nothing"),
        "{err}"
    );
    assert!(!err.contains("'logs'"), "{err}");
    assert_eq!(
        paths(&ws),
        set(&[
            "best.pt",
            "config",
            "config/train.yaml",
            "logs",
            "logs/train.log",
            "models",
            "models/a.pt",
        ])
    );
}

#[test]
fn track_patterns_match_like_gitignore() {
    let ws = Ws::new();
    ws.write(
        "snap.toml",
        b"track = [\"*.pth\", \"logs\", \"configs/*.yaml\", \"runs/*/best/\", \"*.safetensors\", \"gone/*.log\"]\n\
          ignore = [\"*.tmp.pth\"]\n",
    );
    ws.write("a.pth", b"root checkpoint");
    ws.write("models/deep/b.pth", b"deep checkpoint");
    ws.write("models/deep/c.tmp.pth", b"ignored");
    ws.write("models/c.pt", b"not a .pth");
    ws.write("logs/train.log", b"log");
    ws.write("logs/sub/x.txt", b"inside a tracked directory");
    ws.write("sub/logs/y.log", b"a plain path is from the root only");
    ws.write("configs/a.yaml", b"a");
    ws.write("configs/old/b.yaml", b"* does not cross /");
    ws.write("runs/1/best/w.bin", b"w");
    ws.write("runs/1/last/w.bin", b"not best");
    ws.write(
        "runs/2/best",
        b"a file, and the pattern asks for a directory",
    );
    ws.write("notes.txt", b"untracked");
    let o = ws.run(&["commit", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        paths(&ws),
        set(&[
            "a.pth",
            "configs",
            "configs/a.yaml",
            "logs",
            "logs/sub",
            "logs/sub/x.txt",
            "logs/train.log",
            "models",
            "models/deep",
            "models/deep/b.pth",
            "runs",
            "runs/1",
            "runs/1/best",
            "runs/1/best/w.bin",
        ])
    );
    // Each entry that selects nothing is named, once; the others are not.
    let err = stderr(&o);
    for missing in ["*.safetensors", "gone/*.log"] {
        let line = format!("track entry '{missing}' in snap.toml matches nothing");
        assert_eq!(err.matches(&line).count(), 1, "{err}");
    }
    assert_eq!(err.matches("matches nothing").count(), 2, "{err}");
    // The directories above a match keep their mode and mtime on restore.
    set_mode(&ws.path("models/deep"), 0o750);
    set_mtime_ns(&ws.path("models/deep"), 1_600_000_000_123_456_789);
    ws.commit(&[]);
    let files = ws.show_files("latest");
    assert_eq!(files["models/deep"]["mode"], 0o750);
    assert_eq!(
        files["models/deep"]["mtime_ns"],
        1_600_000_000_123_456_789i64
    );
    // A malformed pattern is an error naming it, before anything is stored.
    ws.write("snap.toml", b"track = [\"models/[deep\"]\n");
    let o = ws.fails(&["commit"], 1);
    assert!(stderr(&o).contains("models/[deep"), "{}", stderr(&o));
}

#[test]
fn bad_snap_toml_is_reported() {
    let ws = Ws::new();
    ws.write("snap.toml", b"trak = [\"logs\"]\n");
    let o = ws.fails(&["commit"], 1);
    assert!(stderr(&o).contains("snap.toml"), "{}", stderr(&o));
    assert!(stderr(&o).contains("trak"), "{}", stderr(&o));
}

#[test]
fn explicit_paths_restrict_the_snapshot() {
    let ws = Ws::new();
    ws.write("logs/train.log", b"log");
    ws.write("models/deep/a.pt", b"a");
    ws.write("models/deep/b.pt", b"b");
    ws.write("config.yaml", b"c");
    let v = ws.commit(&["models/deep/a.pt", "config.yaml"]);
    assert_eq!(
        v["paths"],
        serde_json::json!(["models/deep/a.pt", "config.yaml"])
    );
    assert_eq!(
        paths(&ws),
        set(&["config.yaml", "models", "models/deep", "models/deep/a.pt"])
    );
    // From a subdirectory, paths are relative to the current directory.
    let o = snap_in(&ws.path("models"))
        .args(["commit", "deep", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        paths(&ws),
        set(&[
            "models",
            "models/deep",
            "models/deep/a.pt",
            "models/deep/b.pt"
        ])
    );
}

#[test]
fn repository_on_another_disk_via_init_repo() {
    let ws = Ws::bare();
    let store = ws.outside("archive/store");
    ws.ok(&["init", "--repo", store.to_str().unwrap()]);
    assert!(store.join("config").is_file());
    let toml = fs::read_to_string(ws.path("snap.toml")).unwrap();
    assert!(toml.contains("repo"), "{toml}");
    ws.write("logs/a.log", b"hello");
    ws.commit(&[]);
    assert!(!ws.path(".snap").exists());
    assert_eq!(ws.ok(&["cat", "latest:logs/a.log"]), "hello");
    // From a subdirectory the workspace is still found.
    let o = snap_in(&ws.path("logs"))
        .args(["log", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    // The snapshot records which workspace it came from.
    let files = ws.show_files("latest");
    assert!(files.contains_key("snap.toml"));
    assert!(files.contains_key("logs/a.log"));
}

#[test]
fn workspace_is_found_from_a_subdirectory() {
    let ws = Ws::new();
    ws.write("a/b/c.txt", b"c");
    ws.write("top.txt", b"t");
    let o = snap_in(&ws.path("a/b"))
        .args(["commit", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The whole workspace, not just the subdirectory.
    assert_eq!(paths(&ws), set(&["a", "a/b", "a/b/c.txt", "top.txt"]));
    // Restore with a relative --target resolves against the current directory.
    let o = snap_in(&ws.path("a"))
        .args(["restore", "latest", "top.txt", "--target", "restored"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(ws.path("a/restored/top.txt")).unwrap(), b"t");
}

#[test]
fn fifos_and_sockets_are_skipped_without_blocking() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let fifo = ws.path("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(ws.path("sock")).unwrap();
    let o = ws.run(&["commit", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("pipe"), "no warning: {}", stderr(&o));
    assert_eq!(paths(&ws), set(&["a.txt"]));
}

#[test]
fn repo_flag_accepts_the_workspace_directory() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    let elsewhere = ws.outside("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    let o = snap_in(&elsewhere)
        .args(["--repo", ws.root.to_str().unwrap(), "cat", "latest:a.txt"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"a");
    let o = snap_in(&elsewhere)
        .env("SNAP_REPO", ws.repo())
        .args(["log", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_directory_moved_during_a_commit_is_one_warning_and_exit_6() {
    let ws = Ws::new();
    ws.write("keep.txt", b"keep");
    for i in 0..200 {
        ws.write(&format!("data/shard/{i:03}.bin"), &random_bytes(i, 64));
    }
    ws.write("data/top.txt", b"top");
    ws.write("lost.txt", b"lost");
    // Pause the commit between its scan and its reads, move the directory
    // and delete one file meanwhile.
    let mut cmd = snap_std(&ws.root);
    cmd.args(["commit", "-m", "moved"]);
    let paused = Paused::at(cmd, "commit:after-scan");
    fs::rename(ws.path("data"), ws.outside("data-moved")).unwrap();
    fs::remove_file(ws.path("lost.txt")).unwrap();
    let o = paused.finish();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(6), "{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("snap: warning:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "snap: warning: skipped 201 files under data/: the directory vanished (moved or deleted) while the commit read it",
            "snap: warning: skipped lost.txt: it vanished, or kept being rewritten while being read",
        ],
        "{err}"
    );
    assert!(err.contains("was stored without 202 entries"), "{err}");
    // What was there is stored; the next commit of a still workspace is clean.
    assert!(paths(&ws).contains("keep.txt"));
    let o = ws.run(&["commit"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Writes generation `sys.argv[2]` into every byte of the file `sys.argv[1]`
/// through a shared mmap, then, for each line on stdin, the next
/// generation, saying "ok" when done. Writes to pages already dirty do not
/// move the file's mtime, so a commit cannot see them in `fstat`.
const MMAP_WRITER_PY: &str = r#"
import mmap, sys
f = open(sys.argv[1], "r+b")
m = mmap.mmap(f.fileno(), 0)
gen = int(sys.argv[2])
while True:
    m[:] = bytes([gen]) * len(m)
    print("ok", flush=True)
    if not sys.stdin.readline():
        break
    gen += 1
"#;

#[test]
fn a_file_written_through_a_shared_mmap_during_its_read_is_not_stored_torn() {
    use std::io::{BufRead, Write};
    let ws = Ws::new();
    // Larger than the chunker's 16 MiB read window, so the pause below
    // falls between two reads of the same file.
    let size = 40 << 20;
    ws.write("state.bin", &vec![0u8; size]);
    let py = ws.outside("mmap_writer.py");
    write_file(&py, MMAP_WRITER_PY.as_bytes());
    let mut writer = std::process::Command::new("python3")
        .arg(&py)
        .arg(ws.path("state.bin"))
        .arg("1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = std::io::BufReader::new(writer.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ok"); // generation 1 is in place
    let mut cmd = snap_std(&ws.root);
    cmd.args(["commit", "--json"]);
    let paused = Paused::at(cmd, "commit:mid-file");
    // The commit holds the file's first bytes (generation 1); the rest now
    // becomes generation 2, with the mtime left as it was.
    let mut stdin = writer.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "ok");
    let o = paused.finish();
    drop(stdin);
    writer.wait().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = ws.restore_to("latest", "out");
    let stored = fs::read(out.join("state.bin")).unwrap();
    assert_eq!(stored.len(), size);
    let first = stored[0];
    let torn = stored.iter().position(|&b| b != first);
    assert_eq!(
        torn,
        None,
        "stored torn: generation {first} up to byte {torn:?}, then generation {}",
        torn.map_or(0, |i| stored[i])
    );
}
