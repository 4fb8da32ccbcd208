//! kill -9 in the middle of a commit: every earlier snapshot survives, the
//! repository checks clean, and the next writer recovers by itself.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::util::*;

#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// As soon as the commit has a temporary file (a pack being written).
    FirstTmpFile,
    /// Once a new data pack is in place (before the snapshot is published).
    NewPackInPlace,
    /// Once the tree pack is in place.
    TreePackInPlace,
    /// Once the snapshot record exists (before or during the index update).
    SnapshotWritten,
    /// Right after the process started.
    Immediately,
    /// After a fixed delay into the commit.
    After(Duration),
}

fn count_packs(repo: &Path) -> usize {
    packs_of_kind(repo, 0).len() + packs_of_kind(repo, 1).len()
}

/// Starts `snap commit` and kills it with SIGKILL at `point`. Returns true if
/// the kill landed while the commit was still running.
fn commit_and_kill(ws: &Ws, point: KillPoint) -> bool {
    let packs_before = count_packs(&ws.repo());
    let trees_before = packs_of_kind(&ws.repo(), 1).len();
    let snaps_before = count_entries(&ws.repo().join("snapshots"));
    let mut child = snap_std(&ws.root)
        .args(["commit", "-m", "doomed"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn snap commit");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(60);
    let killed = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        let now_ready = match point {
            KillPoint::FirstTmpFile => count_entries(&ws.repo().join("tmp")) > 0,
            KillPoint::NewPackInPlace => count_packs(&ws.repo()) > packs_before,
            KillPoint::TreePackInPlace => packs_of_kind(&ws.repo(), 1).len() > trees_before,
            KillPoint::SnapshotWritten => {
                count_entries(&ws.repo().join("snapshots")) > snaps_before
            }
            KillPoint::Immediately => true,
            KillPoint::After(d) => start.elapsed() >= d,
        };
        if now_ready {
            child.kill().expect("SIGKILL");
            break true;
        }
        assert!(
            Instant::now() < deadline,
            "commit neither finished nor reached {point:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    child.wait().expect("reap the child");
    killed
}

fn crash_test(point: KillPoint, seed: u64) {
    let ws = Ws::new();
    let mut rng = Rng::new(seed);
    ws.write("config.yaml", b"lr: 0.1\n");
    ws.write("ckpt/epoch_0.pt", &rng.bytes(2 * MIB));
    ws.write("logs/train.log", &rng.text(300_000));
    let s0 = ws.commit_id(&["--tag", "safe"]);
    let state0 = ws.outside("state0");
    fs::create_dir_all(&state0).unwrap();
    for f in ["config.yaml", "ckpt/epoch_0.pt", "logs/train.log"] {
        write_file(&state0.join(f), &fs::read(ws.path(f)).unwrap());
    }

    // Tens of MB of new data, so the commit takes a while.
    for i in 1..=3 {
        ws.write(&format!("ckpt/epoch_{i}.pt"), &rng.bytes(12 * MIB));
    }
    ws.write("logs/train.log", &rng.text(400_000));
    let killed = commit_and_kill(&ws, point);
    eprintln!("{point:?}: killed mid-commit: {killed}");

    // The repository is consistent and the earlier snapshot intact.
    ws.ok(&["check", "--read-data"]);
    let log = ws.log();
    assert_eq!(log[0]["id"], s0.as_str());
    assert!(log.len() <= 2, "{log:?}");
    let out = ws.restore_to("safe", "restored0");
    for f in ["config.yaml", "ckpt/epoch_0.pt", "logs/train.log"] {
        assert_eq!(
            fs::read(out.join(f)).unwrap(),
            fs::read(state0.join(f)).unwrap(),
            "{f}"
        );
    }

    // The next commit needs no waiting (the lock died with its holder),
    // cleans up the orphans, and stores everything.
    let o = ws
        .cmd()
        .env("SNAP_LOCK_WAIT", "0")
        .args(["commit", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "commit after crash: {}", stderr(&o));
    assert_eq!(
        count_entries(&ws.repo().join("tmp")),
        0,
        "orphan temporaries left"
    );
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "restored_latest");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

#[test]
fn kill_when_first_temporary_file_appears() {
    crash_test(KillPoint::FirstTmpFile, 71);
}

#[test]
fn kill_once_a_data_pack_is_in_place() {
    crash_test(KillPoint::NewPackInPlace, 72);
}

#[test]
fn kill_once_the_tree_pack_is_in_place() {
    crash_test(KillPoint::TreePackInPlace, 75);
}

#[test]
fn kill_once_the_snapshot_record_exists() {
    crash_test(KillPoint::SnapshotWritten, 76);
}

#[test]
fn kill_immediately() {
    crash_test(KillPoint::Immediately, 73);
}

#[test]
fn kill_after_short_delays() {
    for (i, ms) in [20u64, 60].into_iter().enumerate() {
        crash_test(
            KillPoint::After(Duration::from_millis(ms)),
            74 + 10 * i as u64,
        );
    }
}

#[test]
fn orphans_in_tmp_are_removed_by_the_next_writer() {
    let ws = Ws::new();
    let tmp = ws.repo().join("tmp");
    write_file(&tmp.join("pack-orphan.tmp"), &random_bytes(1, 10_000));
    write_file(&tmp.join("rec-orphan.tmp"), b"half a record");
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    assert_eq!(count_entries(&tmp), 0);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn stale_lock_file_of_a_dead_process_does_not_block() {
    let ws = Ws::new();
    fs::write(
        ws.repo().join("locks/writer"),
        "pid 999999 on host elsewhere (commit) since 2020-01-01 00:00:00\n",
    )
    .unwrap();
    ws.write("a.txt", b"a");
    let o = ws
        .cmd()
        .env("SNAP_LOCK_WAIT", "0")
        .args(["commit"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Crashes a commit (abort, like kill -9) at each failpoint between its
/// durability steps, then checks recovery. `durable` says whether the
/// snapshot must survive the crash.
fn failpoint_test(point: &str, new_bytes: usize, durable: bool) {
    let ws = Ws::new();
    let mut rng = Rng::new(90);
    ws.write("old.bin", &rng.bytes(300_000));
    let s0 = ws.commit_id(&["--tag", "old"]);
    ws.write("new/data.bin", &rng.bytes(new_bytes));
    ws.write("new/notes.txt", b"notes");
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", point)
        .args(["commit", "--tag", "fresh"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "{point}: commit did not crash");
    assert!(stderr(&o).contains(point), "{point}: {}", stderr(&o));

    ws.ok(&["check", "--read-data"]);
    let log = ws.log();
    assert_eq!(log[0]["id"], s0.as_str());
    assert_eq!(log.len(), if durable { 2 } else { 1 }, "{point}: {log:?}");
    let out = ws.restore_to("old", "old");
    assert_eq!(
        fs::read(out.join("old.bin")).unwrap(),
        fs::read(ws.path("old.bin")).unwrap()
    );
    if durable {
        // The snapshot's files were durable before the crash: it is whole.
        let out = ws.restore_to(log[1]["id"].as_str().unwrap(), "crashed");
        assert_same_tree(&ws.root, &out, &[".snap"]);
    }
    let o = ws
        .cmd()
        .env("SNAP_LOCK_WAIT", "0")
        .args(["commit", "--tag", "fresh"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{point}: {}", stderr(&o));
    assert_eq!(count_entries(&ws.repo().join("tmp")), 0);
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("fresh", "fresh");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

#[test]
fn crash_after_the_first_full_pack() {
    // Packs close at 32 MiB: the data must exceed that.
    failpoint_test("commit:after-first-pack", 34 * MIB, false);
}

#[test]
fn crash_before_the_trees_are_written() {
    failpoint_test("commit:before-trees", MIB, false);
}

#[test]
fn crash_before_the_snapshot_record() {
    failpoint_test("publish:before-record", MIB, false);
}

#[test]
fn crash_before_the_index_transaction() {
    failpoint_test("publish:before-index", MIB, true);
}

#[test]
fn crash_before_the_tags() {
    failpoint_test("publish:before-tags", MIB, true);
}
