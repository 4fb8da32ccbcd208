//! One writer at a time; waiting writers get their turn; readers never block.

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use snapstore::store::lock::WriterLock;

use crate::util::*;

fn hold_lock(ws: &Ws) -> WriterLock {
    WriterLock::acquire(&ws.repo().join("locks"), "integration test", Duration::ZERO)
        .expect("take the writer lock")
}

#[test]
fn two_concurrent_commits_both_succeed() {
    let ws1 = Ws::new();
    let ws2_root = ws1.outside("ws2");
    let mut rng = Rng::new(81);
    let shared = rng.bytes(6 * MIB);
    ws1.write("shared.bin", &shared);
    ws1.write("one.bin", &rng.bytes(8 * MIB));
    write_file(&ws2_root.join("shared.bin"), &shared);
    write_file(&ws2_root.join("two.bin"), &rng.bytes(8 * MIB));
    let repo = ws1.repo();

    let spawn = |dir: &std::path::Path, msg: &str| {
        snap_std(dir)
            .env("SNAP_LOCK_WAIT", "120")
            .args([
                "--repo",
                repo.to_str().unwrap(),
                "commit",
                "--json",
                "-m",
                msg,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn(&ws1.root, "one");
    let b = spawn(&ws2_root, "two");
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(oa.status.success(), "first: {}", stderr(&oa));
    assert!(ob.status.success(), "second: {}", stderr(&ob));
    let ida = id_of(&serde_json::from_slice(&oa.stdout).unwrap());
    let idb = id_of(&serde_json::from_slice(&ob.stdout).unwrap());
    assert_ne!(ida, idb);

    let log = ws1.log();
    assert_eq!(log.len(), 2);
    ws1.ok(&["check", "--read-data"]);
    // The shared file's bytes are stored once.
    assert_eq!(ws1.json(&["stats"])["unique_bytes"], 22 * MIB as u64);

    let out_a = ws1.restore_to(&ida, "out_a");
    assert_same_tree(&ws1.root, &out_a, &[".snap"]);
    let out_b = ws1.restore_to(&idb, "out_b");
    assert_same_tree(&ws2_root, &out_b, &[]);
}

#[test]
fn many_concurrent_commits_of_one_workspace() {
    let ws = Ws::new();
    let mut rng = Rng::new(82);
    ws.write("data.bin", &rng.bytes(4 * MIB));
    let children: Vec<_> = (0..4)
        .map(|i| {
            snap_std(&ws.root)
                .env("SNAP_LOCK_WAIT", "120")
                .args(["commit", "-m", &format!("c{i}")])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let log = ws.log();
    assert_eq!(log.len(), 4);
    ws.ok(&["check", "--read-data"]);
    // Exactly one of them stored the data.
    let new: u64 = log
        .iter()
        .map(|s| s["summary"]["new_raw_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(new, 4 * MIB as u64);
}

#[test]
fn locked_repository_fails_fast_with_the_holder() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    let lock = hold_lock(&ws);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    for args in [vec!["commit"], vec!["tag", "x", "latest"], vec!["reindex"]] {
        let o = ws
            .cmd()
            .env("SNAP_LOCK_WAIT", "0")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&host), "{err}");
    }
    assert_eq!(ws.log().len(), 1);
    drop(lock);
    ws.ok(&["commit"]);
    assert_eq!(ws.log().len(), 2);
}

#[test]
fn readers_never_wait_for_the_writer() {
    let ws = Ws::new();
    ws.write("a.txt", b"alpha");
    ws.commit(&["--tag", "t"]);
    let _lock = hold_lock(&ws);
    let read = |args: &[&str]| {
        let o = ws
            .cmd()
            .env("SNAP_LOCK_WAIT", "0")
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?} blocked: {}", stderr(&o));
        o
    };
    read(&["log"]);
    read(&["show", "t"]);
    read(&["tags"]);
    read(&["stats"]);
    read(&["check", "--read-data"]);
    assert_eq!(read(&["cat", "t:a.txt"]).stdout, b"alpha");
    let out = ws.outside("out");
    read(&["restore", "t", "--target", out.to_str().unwrap()]);
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"alpha");
}

#[test]
fn a_waiting_writer_proceeds_when_the_lock_is_released() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let lock = hold_lock(&ws);
    let child = snap_std(&ws.root)
        .env("SNAP_LOCK_WAIT", "120")
        .args(["commit"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Whether the child is already waiting or not yet started, it must
    // succeed once the lock is free.
    drop(lock);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ws.log().len(), 1);
}

#[test]
fn lock_wait_zero_against_a_running_commit() {
    // A real holder: a commit of enough data to still be running.
    let ws = Ws::new();
    let mut rng = Rng::new(83);
    for i in 0..3 {
        ws.write(&format!("big{i}.bin"), &rng.bytes(12 * MIB));
    }
    let mut long = snap_std(&ws.root)
        .args(["commit"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock_file = ws.repo().join("locks/writer");
    // Wait (bounded) until the holder has written its name into the lock.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut saw_holder = false;
    while std::time::Instant::now() < deadline && long.try_wait().unwrap().is_none() {
        if fs::read_to_string(&lock_file).is_ok_and(|s| s.contains("pid")) {
            saw_holder = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let o = ws
        .cmd()
        .env("SNAP_LOCK_WAIT", "0")
        .args(["commit"])
        .output()
        .unwrap();
    // The holder clears the lock file before releasing the lock, so if its
    // name is still there, it held the lock for the whole second attempt.
    let holder = format!("pid {}", long.id());
    let held_throughout =
        saw_holder && fs::read_to_string(&lock_file).is_ok_and(|s| s.contains(&holder));
    assert!(long.wait().unwrap().success());
    if held_throughout {
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        assert!(stderr(&o).contains(&holder), "{}", stderr(&o));
    } else {
        // The holder finished first: the second commit may simply have run.
        assert!(matches!(o.status.code(), Some(0 | 4)), "{}", stderr(&o));
    }
    ws.ok(&["check", "--read-data"]);
}
