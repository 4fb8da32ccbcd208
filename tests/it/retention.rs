//! Retention (`snap forget`) and space reclamation (`snap prune`): which
//! snapshots the policy keeps, that what it keeps restores byte for byte and
//! takes no more room than a fresh repository of just those snapshots, and
//! that a prune or forget crashed at any step (failpoints, kill -9) leaves a
//! repository that checks clean and converges on the next prune.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use snapstore::store::packs::read_pack_index;
use snapstore::ChunkId;

use crate::util::*;

type Files = BTreeMap<String, Vec<u8>>;

/// `forget --json` decisions: snapshot id -> (keep, reasons).
fn decisions(v: &Value) -> BTreeMap<String, (bool, Vec<Value>)> {
    v["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                (
                    d["keep"].as_bool().unwrap(),
                    d["reasons"].as_array().unwrap().clone(),
                ),
            )
        })
        .collect()
}

fn kept_ids(v: &Value) -> BTreeSet<String> {
    decisions(v)
        .into_iter()
        .filter(|(_, (keep, _))| *keep)
        .map(|(id, _)| id)
        .collect()
}

fn log_ids(ws: &Ws) -> BTreeSet<String> {
    ws.log()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn ids<'a>(list: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    list.into_iter().cloned().collect()
}

/// A fresh name for a restore target beside the workspace.
fn fresh_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{what}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Asserts that the repository checks clean, holds exactly `kept`, and that
/// each of them restores to exactly its files.
fn verify_kept(ws: &Ws, kept: &[(String, Files)]) {
    ws.ok(&["check", "--read-data"]);
    assert_eq!(log_ids(ws), ids(kept.iter().map(|(id, _)| id)));
    for (id, files) in kept {
        let dir = ws.restore_to(id, &fresh_name("verify"));
        let got = file_contents(&dir, &[]);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            files.keys().collect::<Vec<_>>(),
            "files of {id}"
        );
        for (path, data) in files {
            assert!(got[path] == *data, "{path} in {id} differs");
        }
    }
}

/// Commits one epoch of session `s{session}` with new checkpoint data.
fn commit_epoch(ws: &Ws, session: u64, epoch: u64, extra: &[&str]) -> (String, Files) {
    let seed = 2000 + 10 * session + epoch;
    ws.write("ckpt/model.pt", &random_bytes(seed, 256 << 10));
    ws.write("logs/train.log", &Rng::new(seed).text(8_000));
    let s = format!("s{session}");
    let e = epoch.to_string();
    let mut args = vec!["--session", s.as_str(), "--epoch", e.as_str()];
    args.extend_from_slice(extra);
    let id = ws.commit_id(&args);
    (id, file_contents(&ws.root, &[".snap"]))
}

#[test]
fn the_last_epochs_of_five_sessions_and_tags_are_kept_and_prune_shrinks_to_them() {
    let ws = Ws::new();
    let mut all: Vec<(u64, u64, String, Files)> = Vec::new();
    for session in 1..=7 {
        for epoch in 1..=3 {
            let extra: &[&str] = if (session, epoch) == (1, 2) {
                &["--tag", "keepme"]
            } else {
                &[]
            };
            let (id, files) = commit_epoch(&ws, session, epoch, extra);
            all.push((session, epoch, id, files));
        }
    }
    let id_of = |s: u64, e: u64| {
        all.iter()
            .find(|x| x.0 == s && x.1 == e)
            .map(|x| x.2.clone())
            .unwrap()
    };
    let kept: Vec<(String, Files)> = all
        .iter()
        .filter(|x| x.0 >= 3 && x.1 >= 2 || (x.0, x.1) == (1, 2))
        .map(|x| (x.2.clone(), x.3.clone()))
        .collect();
    assert_eq!(kept.len(), 11);

    let dry = ws.json(&["forget", "--dry-run", "--keep-epochs", "2"]);
    assert_eq!(dry["dry_run"], true);
    let d = decisions(&dry);
    assert_eq!(d.len(), 21);
    assert_eq!(kept_ids(&dry), ids(kept.iter().map(|(id, _)| id)));
    assert!(d[&id_of(1, 2)]
        .1
        .contains(&serde_json::json!({"reason": "tagged", "detail": "keepme"})));
    assert!(d[&id_of(7, 3)].1.contains(
        &serde_json::json!({"reason": "recent_session", "detail": {"rank": 1, "position": 1}})
    ));
    assert_eq!(
        d[&id_of(3, 2)].1,
        [serde_json::json!({"reason": "recent_epoch", "detail": {"rank": 5, "position": 2}})]
    );
    assert_eq!(
        d[&id_of(1, 3)].1,
        [serde_json::json!({"reason": "old_session", "detail": {"rank": 7}})]
    );
    assert_eq!(
        d[&id_of(7, 1)].1,
        [serde_json::json!({"reason": "older_epoch", "detail": {"rank": 1, "position": 3}})]
    );
    assert_eq!(ws.log().len(), 21, "a dry run forgets nothing");

    let before = pack_bytes(&ws.repo());
    let f = ws.json(&["forget", "--keep-epochs", "2"]);
    assert_eq!(kept_ids(&f), ids(kept.iter().map(|(id, _)| id)));
    assert_eq!(f["dropped_tags"], serde_json::json!([]));
    ws.ok(&["prune", "--delete-now"]);
    let after = pack_bytes(&ws.repo());
    verify_kept(&ws, &kept);
    assert_eq!(ws.json(&["show", "keepme"])["snapshot"]["id"], id_of(1, 2));

    // A fresh repository holding only the kept snapshots.
    let fresh = Ws::new();
    let fresh_repo = fresh.repo();
    for (id, files) in &kept {
        let dir = ws.restore_to(id, &fresh_name("fresh-src"));
        assert_eq!(&file_contents(&dir, &[]), files);
        let o = snap_in(&dir)
            .args(["--repo", fresh_repo.to_str().unwrap(), "commit"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let ideal = pack_bytes(&fresh_repo);
    eprintln!("pack bytes: {before} before prune, {after} after, {ideal} in a fresh repository");
    assert!(
        after as f64 <= 1.1 * ideal as f64,
        "after prune: {after} pack bytes; a fresh repository of the kept snapshots: {ideal}"
    );
    // 10 of 21 snapshots, each with its own 256 KiB checkpoint, are forgotten.
    assert!(
        before as f64 > 1.7 * after as f64,
        "prune freed too little: {before} -> {after}"
    );
}

const LIVE_PY: &str = r#"
import os, random, subprocess, sys, time
for e in (1, 2):
    with open("ckpt.bin", "wb") as f:
        f.write(random.Random(e).randbytes(100_000))
    subprocess.run(["snap", "commit", "--epoch", str(e)], check=True, stdout=subprocess.DEVNULL)
open(sys.argv[1], "w").close()
go = sys.argv[1] + ".go"
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists(go):
    time.sleep(0.02)
sys.exit(0 if os.path.exists(go) else 5)
"#;

#[test]
fn a_running_session_is_not_forgotten_by_a_concurrent_forget() {
    let ws = Ws::new();
    ws.write("config.yaml", b"lr: 1\n");
    let py = ws.outside("live.py");
    write_file(&py, LIVE_PY.as_bytes());
    let ready = ws.outside("ready");
    let mut run = snap_std(&ws.root)
        .env("PATH", path_with_snap())
        .args(["run", "--session", "live", "--", "python3"])
        .arg(&py)
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the training child", Duration::from_secs(60), || {
        if let Some(status) = run.try_wait().unwrap() {
            panic!("snap run ended early: {status}");
        }
        ready.exists()
    });
    let live: BTreeSet<String> = ws
        .log()
        .iter()
        .filter(|s| s["session"] == "live")
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(live.len(), 3, "archive and two epochs");

    // Two newer sessions, then a forget that keeps only one session.
    ws.write("other.txt", b"1");
    let other1 = ws.commit_id(&["--session", "other1"]);
    ws.write("other.txt", b"2");
    let other2 = ws.commit_id(&["--session", "other2"]);
    let f = ws.json(&["forget", "--keep-sessions", "1"]);
    let d = decisions(&f);
    for id in &live {
        assert!(d[id].0, "running session's {id} forgotten: {f:#}");
        assert!(d[id]
            .1
            .contains(&serde_json::json!({"reason": "running_session"})));
    }
    assert!(!d[&other1].0, "the policy was not applied: {f:#}");
    let mut expect = live.clone();
    expect.insert(other2.clone());
    assert_eq!(log_ids(&ws), expect);

    fs::write(ws.outside("ready.go"), b"").unwrap();
    let o = run.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // Over, the session is protected no longer.
    let dry = ws.json(&["forget", "--dry-run", "--keep-sessions", "0"]);
    assert!(kept_ids(&dry).is_empty(), "{dry:#}");
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn snap_toml_retention_and_forget_flags() {
    let ws = Ws::new();
    ws.write(
        "snap.toml",
        b"[retention]\nkeep_sessions = 2\nkeep_epochs = 0\n",
    );
    let mut by: BTreeMap<(char, u8), String> = BTreeMap::new();
    for s in ['a', 'b', 'c', 'd'] {
        for n in 1..=2u8 {
            ws.write("state.txt", format!("{s}{n}").as_bytes());
            by.insert((s, n), ws.commit_id(&["--session", &s.to_string()]));
        }
    }
    let set = |keys: &[(char, u8)]| ids(keys.iter().map(|k| &by[k]));

    let v = ws.json(&["forget", "--dry-run"]);
    assert_eq!(kept_ids(&v), set(&[('c', 2), ('d', 2)]), "snap.toml");
    let v = ws.json(&["forget", "--dry-run", "--keep-per-session", "2"]);
    assert_eq!(kept_ids(&v), set(&[('c', 1), ('c', 2), ('d', 1), ('d', 2)]));
    let v = ws.json(&["forget", "--dry-run", "--keep-epochs", "2"]);
    assert_eq!(kept_ids(&v), set(&[('c', 1), ('c', 2), ('d', 1), ('d', 2)]));
    let v = ws.json(&["forget", "--dry-run", "--keep-sessions", "3"]);
    assert_eq!(kept_ids(&v), set(&[('b', 2), ('c', 2), ('d', 2)]));
    let v = ws.json(&["forget", "--dry-run", "--keep-sessions", "0"]);
    assert!(kept_ids(&v).is_empty());
    let v = ws.json(&[
        "forget",
        "--dry-run",
        "--keep-sessions",
        "0",
        "--keep-within",
        "1h",
    ]);
    assert_eq!(kept_ids(&v).len(), 8);
    assert!(decisions(&v)
        .values()
        .all(|(_, r)| r == &[serde_json::json!({"reason": "within"})]));
    assert_eq!(ws.log().len(), 8);

    ws.ok(&["forget"]);
    assert_eq!(log_ids(&ws), set(&[('c', 2), ('d', 2)]));

    // The runner's retention reads snap.toml too.
    let o = ws
        .cmd()
        .args(["run", "--session", "e", "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let log = ws.log();
    let sessions: Vec<&str> = log.iter().map(|s| s["session"].as_str().unwrap()).collect();
    // The run keeps its own pre-run and final snapshots.
    assert_eq!(sessions, ["d", "e", "e"], "{log:#?}");
    ws.ok(&["prune"]);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn a_commit_after_prune_stores_again_what_prune_removed() {
    // The stat cache remembers a.bin's chunks; prune deletes them (the only
    // snapshot holding a.bin is forgotten). The next commit must not trust
    // the cache.
    let ws = Ws::new();
    let a = random_bytes(2100, MIB);
    ws.write("a.bin", &a);
    ws.write("b.txt", b"b1");
    wait_until_settled(&ws.root, Duration::from_millis(100));
    ws.commit(&["--session", "s1"]);
    ws.write("b.txt", b"b2");
    let b = ws.path("b.txt");
    ws.commit(&["--session", "s2", b.to_str().unwrap()]);
    ws.ok(&["forget", "--keep-sessions", "1"]);
    ws.ok(&["prune", "--delete-now"]);
    assert!(
        pack_bytes(&ws.repo()) < MIB as u64 / 2,
        "a.bin was not pruned"
    );
    let s3 = ws.commit(&["--session", "s3"]);
    assert_eq!(summary_u64(&s3, "new_raw_bytes"), MIB as u64);
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "out");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

#[test]
fn a_narrowed_keep_tag_forgets_the_other_tags_with_their_snapshots() {
    let ws = Ws::new();
    ws.write("f.txt", b"1");
    ws.commit(&["--session", "a", "--tag", "best"]);
    ws.write("f.txt", b"2");
    let t2 = ws.commit_id(&["--session", "b", "--tag", "keep/x"]);
    ws.write("f.txt", b"3");
    ws.commit(&["--session", "c"]);
    let v = ws.json(&["forget", "--keep-sessions", "0", "--keep-tag", "keep/*"]);
    assert_eq!(kept_ids(&v), ids([&t2]));
    assert_eq!(v["dropped_tags"], serde_json::json!(["best"]));
    let tags: Vec<String> = ws
        .json(&["tags"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["keep/x"]);
    assert_eq!(log_ids(&ws), ids([&t2]));
    ws.ok(&["prune"]);
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("keep/x", "out");
    assert_eq!(fs::read(out.join("f.txt")).unwrap(), b"2");
}

/// A repository where prune must repack: session s1 stores 40 files of
/// 200 KB in one pack, s2 deletes 35 of them, s3 changes a small file.
/// Forgetting all but two sessions leaves s1's pack 7/8 unused.
struct Fixture {
    ws: Ws,
    kept: Vec<(String, Files)>,
}

const FORGET: &[&str] = &["forget", "--keep-sessions", "2"];

fn repack_fixture() -> Fixture {
    let ws = Ws::new();
    let mut rng = Rng::new(3000);
    for i in 0..40 {
        ws.write(&format!("models/part_{i:02}.bin"), &rng.bytes(200_000));
    }
    ws.write("config.yaml", b"lr: 1\n");
    ws.commit(&["--session", "s1"]);
    for i in 5..40 {
        fs::remove_file(ws.path(&format!("models/part_{i:02}.bin"))).unwrap();
    }
    ws.write("models/extra.bin", &rng.bytes(100_000));
    let s2 = ws.commit_id(&["--session", "s2"]);
    let f2 = file_contents(&ws.root, &[".snap"]);
    ws.write("config.yaml", b"lr: 2\n");
    let s3 = ws.commit_id(&["--session", "s3"]);
    let f3 = file_contents(&ws.root, &[".snap"]);
    Fixture {
        ws,
        kept: vec![(s2, f2), (s3, f3)],
    }
}

/// A copy of a workspace and its repository in a new temporary directory.
fn copy_of(ws: &Ws) -> Ws {
    let c = Ws::bare();
    copy_tree(&ws.root, &c.root);
    c
}

/// Pack bytes after an uninterrupted forget + prune of a copy.
fn reference_size(fx: &Fixture) -> u64 {
    let ws = copy_of(&fx.ws);
    ws.ok(FORGET);
    let before = pack_files(&ws);
    let dry = ws.json(&["prune", "--dry-run", "--delete-now"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(pack_files(&ws), before, "a dry run changes nothing");
    let plan = ws.json(&["prune", "--delete-now"]);
    for k in ["delete", "repack", "bytes_freed"] {
        assert_eq!(dry[k], plan[k], "the dry run's {k}");
    }
    assert!(
        !plan["repack"].as_array().unwrap().is_empty(),
        "the fixture must make prune repack: {plan:#}"
    );
    assert!(!plan["delete"].as_array().unwrap().is_empty(), "{plan:#}");
    verify_kept(&ws, &fx.kept);
    pack_bytes(&ws.repo())
}

/// After an interrupted forget/prune: everything kept is intact, and one
/// more prune reaches the size of an uninterrupted one.
fn recovers(ws: &Ws, fx: &Fixture, reference: u64, what: &str) {
    verify_kept(ws, &fx.kept);
    ws.ok(&["prune", "--delete-now"]);
    verify_kept(ws, &fx.kept);
    let size = pack_bytes(&ws.repo());
    assert!(
        size.abs_diff(reference) <= 4096,
        "{what}: {size} pack bytes after the second prune, {reference} without the crash"
    );
    assert_eq!(count_entries(&ws.repo().join("tmp")), 0);
}

fn failpoint_test(point: &str) {
    let fx = repack_fixture();
    let reference = reference_size(&fx);
    let ws = copy_of(&fx.ws);
    let args: &[&str] = if point.starts_with("forget:") {
        FORGET
    } else {
        ws.ok(FORGET);
        &["prune", "--delete-now"]
    };
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", point)
        .args(args)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{point}: {args:?} did not crash");
    assert!(
        stderr(&o).contains(&format!("failpoint {point}")),
        "{point}: {}",
        stderr(&o)
    );
    recovers(&ws, &fx, reference, point);
}

#[test]
fn prune_crashed_before_its_index_transaction() {
    failpoint_test("prune:before-index");
}

#[test]
fn prune_crashed_before_deleting_old_packs() {
    failpoint_test("prune:before-delete");
}

#[test]
fn prune_crashed_after_deleting_one_pack() {
    failpoint_test("prune:after-one-delete");
}

#[test]
fn forget_crashed_before_its_index_transaction() {
    failpoint_test("forget:before-index");
}

/// Where to kill a running prune.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// As soon as a temporary file (the repacked pack) appears.
    TmpFile,
    /// As soon as a new pack file is in place.
    NewPack,
    /// As soon as one of the old packs is gone.
    OldPackGone,
    /// After a fixed delay.
    After(Duration),
}

fn pack_files(ws: &Ws) -> BTreeSet<String> {
    walk(&ws.repo().join("packs"), &[])
        .into_iter()
        .filter(|(_, n)| matches!(n.kind, Kind::File { .. }))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn prune_killed_at_random_points() {
    let fx = repack_fixture();
    let reference = reference_size(&fx);
    let mut rng = Rng::new(3100);
    let points = [
        KillAt::TmpFile,
        KillAt::NewPack,
        KillAt::OldPackGone,
        KillAt::After(Duration::from_millis(5 + rng.below(60))),
    ];
    for point in points {
        let ws = copy_of(&fx.ws);
        ws.ok(FORGET);
        let old = pack_files(&ws);
        let mut child = snap_std(&ws.root)
            .args(["prune", "--delete-now"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        // Best effort: the prune may finish before the point is seen.
        let killed = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            let now = match point {
                KillAt::TmpFile => count_entries(&ws.repo().join("tmp")) > 0,
                KillAt::NewPack => !pack_files(&ws).is_subset(&old),
                KillAt::OldPackGone => !old.is_subset(&pack_files(&ws)),
                KillAt::After(d) => start.elapsed() >= d,
            };
            if now {
                child.kill().unwrap();
                break true;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "prune hangs");
            std::thread::sleep(Duration::from_millis(1));
        };
        child.wait().unwrap();
        eprintln!("{point:?}: killed mid-prune: {killed}");
        recovers(&ws, &fx, reference, &format!("kill at {point:?}"));
    }
}

#[test]
fn prune_and_commit_at_the_same_time_both_succeed() {
    let fx = repack_fixture();
    let ws = &fx.ws;
    ws.ok(FORGET);
    ws.write("models/new.bin", &random_bytes(3200, 3 * MIB));
    ws.write("config.yaml", b"lr: 3\n");
    let spawn = |args: &[&str]| {
        snap_std(&ws.root)
            .env("SNAP_LOCK_WAIT", "120")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let prune = spawn(&["prune", "--json"]);
    let commit = spawn(&["commit", "--session", "s4", "--json"]);
    let (op, oc) = (
        prune.wait_with_output().unwrap(),
        commit.wait_with_output().unwrap(),
    );
    assert!(op.status.success(), "prune: {}", stderr(&op));
    assert!(oc.status.success(), "commit: {}", stderr(&oc));
    let new_id = id_of(&serde_json::from_slice(&oc.stdout).unwrap());

    let mut kept = fx.kept.clone();
    kept.push((new_id.clone(), file_contents(&ws.root, &[".snap"])));
    verify_kept(ws, &kept);
    let out = ws.restore_to(&new_id, "new");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

/// Prune copies only what it has read and verified: a damaged blob in a
/// pack it must repack stops it before anything is deleted, naming the chunk.
#[test]
fn prune_refuses_to_repack_a_damaged_blob_and_deletes_nothing() {
    let fx = repack_fixture();
    let ws = &fx.ws;
    ws.ok(FORGET);
    let kept = ChunkId::of(&fs::read(ws.path("models/part_00.bin")).unwrap());
    let (pack, entry) = packs_of_kind(&ws.repo(), 0)
        .into_iter()
        .find_map(|p| {
            let (_, _, entries) = read_pack_index(&p).unwrap();
            entries.into_iter().find(|e| e.id == kept).map(|e| (p, e))
        })
        .expect("part_00.bin's chunk is stored");
    let plan = ws.json(&["prune", "--dry-run"]);
    let short = &pack.file_stem().unwrap().to_string_lossy()[..8];
    assert!(
        plan["repack"]
            .as_array()
            .unwrap()
            .iter()
            .any(|id| id.as_str().unwrap().starts_with(short)),
        "the damaged blob's pack must be one prune repacks: {plan:#}"
    );
    flip_byte(&pack, entry.offset + entry.stored_len as u64 / 2);
    let before = pack_files(ws);
    let o = ws.fails(&["prune"], 3);
    let err = stderr(&o);
    assert!(err.contains(&format!("chunk {}", kept.short())), "{err}");
    assert_eq!(pack_files(ws), before, "prune deleted packs: {err}");
    let kept_ids = ids(fx.kept.iter().map(|(id, _)| id));
    assert_eq!(log_ids(ws), kept_ids);
}

/// Forget journals every snapshot before it deletes anything: a record it
/// cannot read stops it with nothing forgotten, no tag deleted, no journal.
#[test]
fn forget_that_cannot_journal_a_record_forgets_nothing() {
    let ws = Ws::new();
    ws.write("f.txt", b"1");
    let a = ws.commit_id(&["--session", "a", "--tag", "best"]);
    ws.write("f.txt", b"2");
    let b = ws.commit_id(&["--session", "b"]);
    ws.write("f.txt", b"3");
    let c = ws.commit_id(&["--session", "c"]);
    // b's record becomes unreadable (a directory where the file was).
    let record = ws.repo().join("snapshots").join(&b);
    fs::remove_file(&record).unwrap();
    fs::create_dir(&record).unwrap();
    // Refused before anything is journalled or deleted: the record is read
    // again under the lock (`store::sync::verify_complete`); the journal
    // step's own refusal ("cannot read ... to journal it") stays behind it.
    let o = ws.fails(
        &["forget", "--keep-sessions", "1", "--keep-tag", "keep/*"],
        3,
    );
    let err = stderr(&o);
    assert!(err.contains("forget refused"), "{err}");
    assert!(err.contains(&b), "names the record: {err}");
    assert!(err.contains("nothing was deleted"), "{err}");
    assert_eq!(log_ids(&ws), ids([&a, &b, &c]));
    assert!(ws.repo().join("snapshots").join(&a).is_file());
    assert_eq!(ws.json(&["tags"])[0]["name"], "best");
    assert!(!ws.repo().join("journal").exists());
    assert!(ws
        .json(&["log", "--forgotten"])
        .as_array()
        .unwrap()
        .is_empty());
}

/// Forget and prune decide only from complete knowledge: a tag file that
/// does not hold an id, a tag naming no snapshot, a snapshot record that
/// does not decode, or one of a newer version, makes both refuse, naming
/// the file, and nothing is deleted. `snap run` then skips its retention
/// and still exits with the command's status.
#[test]
fn forget_and_prune_refuse_on_an_unreadable_tag_or_snapshot() {
    let ws = Ws::new();
    ws.write(
        "snap.toml",
        b"[retention]\nkeep_sessions = 0\nkeep_commits = 0\nkeep_commits_within = \"none\"\n",
    );
    ws.write("model.bin", &random_bytes(2201, 200_000));
    let kept = ws.commit_id(&["--session", "a", "--tag", "keepme"]);
    ws.write("model.bin", &random_bytes(2202, 200_000));
    ws.commit_id(&["--session", "b"]);
    let packs_before = pack_files(&ws);
    let tag = ws.repo().join("refs/tags/keepme");
    let good_tag = fs::read(&tag).unwrap();

    let refused = |what: &str| {
        for op in [&["forget"][..], &["prune"][..]] {
            let o = ws.fails(op, 3);
            let e = stderr(&o);
            assert!(e.contains("refused") && e.contains(what), "{op:?}: {e}");
            assert!(e.contains("nothing was deleted"), "{e}");
        }
        assert_eq!(ws.log().len(), 2, "a snapshot was forgotten");
        assert_eq!(pack_files(&ws), packs_before, "a pack was deleted");
    };

    // One changed character: not hex any more.
    let mut bad = good_tag.clone();
    bad[0] = b'x';
    fs::write(&tag, &bad).unwrap();
    refused("keepme");
    // Still hex, but naming no snapshot.
    let mut other = good_tag.clone();
    other[0] = if other[0] == b'0' { b'1' } else { b'0' };
    fs::write(&tag, &other).unwrap();
    refused("names snapshot");
    fs::write(&tag, &good_tag).unwrap();

    // A snapshot record with a flipped byte, and one of a newer version.
    let record = ws.repo().join("snapshots").join(&kept);
    let original = fs::read(&record).unwrap();
    let mut flipped = original.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x40;
    fs::write(&record, &flipped).unwrap();
    refused(&kept);
    let mut newer = original.clone();
    newer[4] = 99;
    fs::write(&record, &newer).unwrap();
    refused(&kept);

    // The runner skips retention, says so, and exits with the command's status.
    let o = ws
        .cmd()
        .env("PATH", path_with_snap())
        .args(["run", "--session", "c", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("retention failed: forget refused"), "{e}");
    assert!(pack_files(&ws).is_superset(&packs_before));

    // Once the record is repaired, forget and prune go ahead.
    fs::write(&record, &original).unwrap();
    ws.ok(&["forget"]);
    ws.ok(&["prune"]);
    assert!(
        ws.log().iter().any(|s| s["id"] == kept),
        "the tagged snapshot stays"
    );
    ws.ok(&["check", "--read-data"]);
}
