//! Readers and prune: deletion in two phases (mark, then delete after the
//! grace period), readers that re-resolve a pack gone under them, and marked
//! packs that are needed again. Races are decided by failpoint barriers.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// Forgetting every session but the last one.
const FORGET: &[&str] = &["forget", "--keep-sessions", "1"];

/// A workspace where prune must repack: session s1 stores 8 files of 200 KB
/// in one pack, s2 keeps 2 of them and adds a small file. After `FORGET`,
/// s1's data pack is 3/4 unused and its tree pack unused.
fn fixture() -> Ws {
    let ws = Ws::new();
    let mut rng = Rng::new(5100);
    for i in 0..8 {
        ws.write(&format!("models/part_{i}.bin"), &rng.bytes(200_000));
    }
    ws.commit(&["--session", "s1"]);
    for i in 2..8 {
        fs::remove_file(ws.path(&format!("models/part_{i}.bin"))).unwrap();
    }
    ws.write("notes.txt", b"kept\n");
    ws.commit(&["--session", "s2"]);
    ws
}

/// Every file under `packs/` with the given extension (`pack`, `doomed`).
fn files_with(repo: &Path, ext: &str) -> BTreeSet<PathBuf> {
    let packs = repo.join("packs");
    walk(&packs, &[])
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .map(|p| packs.join(p))
        .collect()
}

/// The pack file of a pack id given in hex.
fn pack_path(repo: &Path, hex: &str) -> PathBuf {
    repo.join("packs")
        .join(&hex[..2])
        .join(format!("{hex}.pack"))
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

fn restore_cmd(ws: &Ws, target: &Path) -> std::process::Command {
    let mut cmd = snap_std(&ws.root);
    cmd.args(["restore", "latest", "--target", target.to_str().unwrap()]);
    cmd
}

#[test]
fn prune_marks_packs_and_deletes_them_only_after_the_grace_period() {
    let ws = fixture();
    ws.ok(FORGET);
    let p = ws.json(&["prune"]);
    let mut dropped = ids(&p["delete"]);
    dropped.extend(ids(&p["repack"]));
    dropped.sort();
    assert!(!ids(&p["repack"]).is_empty(), "{p:#}");
    assert!(!ids(&p["delete"]).is_empty(), "{p:#}");
    assert_eq!(p["due"], serde_json::json!([]), "{p:#}");
    assert_eq!(p["waiting"], dropped.len(), "{p:#}");
    assert_eq!(p["bytes_freed"], 0, "{p:#}");
    // Marked, not deleted: each pack is still there, with its mark.
    for hex in &dropped {
        let pack = pack_path(&ws.repo(), hex);
        assert!(pack.exists(), "{} deleted at once", pack.display());
        assert!(pack.with_extension("doomed").exists(), "no mark for {hex}");
    }
    // The index no longer has them, and nothing is lost or damaged.
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "out");
    assert_same_tree(&ws.root, &out, &[".snap"]);

    // Within the grace period a prune deletes nothing.
    let again = ws.json(&["prune"]);
    assert_eq!(again["due"], serde_json::json!([]), "{again:#}");
    assert_eq!(files_with(&ws.repo(), "doomed").len(), dropped.len());
    assert!(dropped.iter().all(|h| pack_path(&ws.repo(), h).exists()));

    // Once it has passed (here: a grace of zero), they go, marks and all.
    let later = ws.json(&["prune", "--grace", "0s"]);
    assert_eq!(ids(&later["due"]), dropped, "{later:#}");
    assert!(
        later["bytes_freed"].as_u64().unwrap() > 1_000_000,
        "{later:#}"
    );
    assert!(dropped.iter().all(|h| !pack_path(&ws.repo(), h).exists()));
    assert!(files_with(&ws.repo(), "doomed").is_empty());
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "out2");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

/// A restore that planned before a prune reads the packs it planned with:
/// prune only marks them.
#[test]
fn a_restore_that_planned_before_a_prune_finishes() {
    let ws = fixture();
    ws.ok(FORGET);
    let out = ws.outside("out");
    let paused = Paused::at(restore_cmd(&ws, &out), "restore:after-temporaries");
    let p = ws.json(&["prune"]);
    assert!(!ids(&p["repack"]).is_empty(), "{p:#}");
    let o = paused.finish();
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

/// With `--delete-now` the packs a restore planned with are gone when it
/// reads them: it finds the blobs again through the index, in the packs the
/// prune copied them to.
#[test]
fn a_restore_whose_packs_are_deleted_under_it_re_resolves_them() {
    let ws = fixture();
    ws.ok(FORGET);
    let out = ws.outside("out");
    let paused = Paused::at(restore_cmd(&ws, &out), "restore:after-temporaries");
    let p = ws.json(&["prune", "--delete-now"]);
    let repacked = ids(&p["repack"]);
    assert!(!repacked.is_empty(), "{p:#}");
    assert!(repacked.iter().all(|h| !pack_path(&ws.repo(), h).exists()));
    let o = paused.finish();
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

/// `check --read-data` that listed the snapshots and packs before a forget
/// and a prune that deleted at once: the packs gone and the snapshot
/// forgotten under it are not damage, and the packs the prune wrote are
/// read too.
#[test]
fn check_while_forget_and_prune_delete_reports_no_damage() {
    let ws = fixture();
    for args in [
        &["check", "--read-data", "--json"][..],
        &["check", "--json"],
    ] {
        let mut cmd = snap_std(&ws.root);
        cmd.args(args);
        let paused = Paused::at(cmd, "check:after-listing");
        ws.ok(FORGET);
        let p = ws.json(&["prune", "--delete-now"]);
        assert!(!ids(&p["due"]).is_empty(), "{p:#}");
        let o = paused.finish();
        assert!(o.status.success(), "{args:?}: {}", stdout(&o));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(r["errors"], serde_json::json!([]), "{r:#}");
        assert_eq!(r["snapshots"], 1, "{r:#}");
        if args.contains(&"--read-data") {
            assert!(r["chunks_checked"].as_u64().unwrap() >= 3, "{r:#}");
        }
        // The next round starts from two sessions again.
        ws.write("notes.txt", format!("{args:?}").as_bytes());
        ws.commit(&["--session", "s3"]);
    }
}

/// A crashed commit's pack: data no snapshot uses, on disk, in no index.
fn crash_a_commit_of(ws: &Ws, data: &[u8]) {
    ws.write("big.bin", data);
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", "commit:before-trees")
        .args(["commit", "--session", "s2"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the commit did not crash");
}

/// A reader's index sync read the trailer of a pack no snapshot used (a
/// crashed commit's) before prune marked it, and writes its transaction
/// after: it must not put the pack back in the index, or a commit would
/// deduplicate against a pack on its way out (today's prune deletes it at
/// once, and the reader's rows then point at nothing).
#[test]
fn a_readers_racing_sync_does_not_take_a_marked_pack_back() {
    let ws = Ws::new();
    ws.write("a.txt", b"a\n");
    ws.commit(&["--session", "s1"]);
    let data = random_bytes(5200, 300_000);
    crash_a_commit_of(&ws, &data);
    let mut cmd = snap_std(&ws.root);
    cmd.args(["log", "--json"]);
    let reader = Paused::at(cmd, "sync:before-transaction");
    let p = ws.json(&["prune"]);
    let marked = ids(&p["delete"]);
    assert_eq!(marked.len(), 1, "{p:#}");
    let pack = pack_path(&ws.repo(), &marked[0]);
    assert!(pack.with_extension("doomed").exists());
    let o = reader.finish();
    assert!(o.status.success(), "{}", stderr(&o));

    // big.bin's chunks are not in the index: the commit stores them anew
    // (in a pack of its own, with another file).
    ws.write("extra.bin", &random_bytes(5202, 100_000));
    let c = ws.commit(&["--session", "s3"]);
    assert!(summary_u64(&c, "new_chunks") > 0, "{c}");
    let p = ws.json(&["prune", "--delete-now"]);
    assert_eq!(ids(&p["due"]), marked, "{p:#}");
    assert!(!pack.exists());
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "out");
    assert_eq!(fs::read(out.join("big.bin")).unwrap(), data);
}

/// A commit that writes a pack a prune marked (the same blobs in the same
/// order: the same content, so the same name) makes it live again: the
/// mark goes at once, before the commit's index transaction.
#[test]
fn a_commit_that_writes_a_marked_pack_again_removes_its_mark() {
    let ws = Ws::new();
    ws.write("a.txt", b"a\n");
    ws.commit(&["--session", "s1"]);
    let data = random_bytes(5203, 300_000);
    crash_a_commit_of(&ws, &data);
    let p = ws.json(&["prune"]);
    let marked = ids(&p["delete"]);
    assert_eq!(marked.len(), 1, "{p:#}");
    let pack = pack_path(&ws.repo(), &marked[0]);
    assert!(pack.with_extension("doomed").exists());
    let c = ws.commit(&["--session", "s3"]);
    assert!(summary_u64(&c, "new_chunks") > 0, "{c}");
    assert!(pack.exists() && !pack.with_extension("doomed").exists());
    let p = ws.json(&["prune", "--delete-now"]);
    assert_eq!(p["due"], serde_json::json!([]), "{p:#}");
    assert!(pack.exists());
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "out");
    assert_eq!(fs::read(out.join("big.bin")).unwrap(), data);
}

/// A rebuilt index takes marked packs back in (it cannot know which were
/// dropped on purpose); a commit may then deduplicate against one. Prune
/// decides from the snapshots: the pack is used, so it stays and loses its
/// mark, with `--delete-now` too.
#[test]
fn a_marked_pack_a_commit_deduplicated_against_is_kept() {
    let ws = Ws::new();
    ws.write("a.txt", b"a\n");
    ws.commit(&["--session", "s1"]);
    let data = random_bytes(5201, 300_000);
    crash_a_commit_of(&ws, &data);
    let p = ws.json(&["prune"]);
    let marked = ids(&p["delete"]);
    assert_eq!(marked.len(), 1, "{p:#}");
    let pack = pack_path(&ws.repo(), &marked[0]);
    ws.ok(&["reindex"]);
    let c = ws.commit(&["--session", "s3"]);
    assert_eq!(summary_u64(&c, "new_chunks"), 0, "{c}");
    let p = ws.json(&["prune", "--delete-now"]);
    assert_eq!(ids(&p["resurrect"]), marked, "{p:#}");
    assert!(pack.exists(), "a pack a snapshot needs was deleted");
    assert!(!pack.with_extension("doomed").exists());
    ws.json(&["prune", "--delete-now"]);
    assert!(pack.exists());
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "out");
    assert_eq!(fs::read(out.join("big.bin")).unwrap(), data);
}

/// A restore that resolved its snapshot before a forget and a prune took it
/// away plans from the packs prune only marked: it restores it whole.
#[test]
fn a_restore_of_a_snapshot_forgotten_and_pruned_after_it_was_resolved() {
    let ws = fixture();
    let first = ws.log()[0]["id"].as_str().unwrap().to_string();
    let expected = ws.outside("expected");
    ws.ok(&["restore", &first, "--target", expected.to_str().unwrap()]);
    let out = ws.outside("out");
    let mut cmd = snap_std(&ws.root);
    cmd.args(["restore", &first, "--target", out.to_str().unwrap()]);
    let paused = Paused::at(cmd, "restore:after-resolve");
    ws.ok(FORGET);
    let p = ws.json(&["prune"]);
    assert!(!ids(&p["delete"]).is_empty(), "{p:#}");
    let o = paused.finish();
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert_same_tree(&expected, &out, &[]);
}

/// A reader's index sync that listed a pack it had not indexed yet (a
/// crashed commit's) before a prune deleted it finds it gone: that is not a
/// damaged file, and `check` is clean.
#[test]
fn a_pack_deleted_between_a_readers_listing_and_its_read_is_not_damage() {
    let ws = fixture();
    ws.write("c.bin", &random_bytes(5300, 200_000));
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", "commit:before-trees")
        .args(["commit", "--session", "s3"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the commit did not crash");
    let mut cmd = snap_std(&ws.root);
    cmd.args(["check", "--json"]);
    let check = Paused::at(cmd, "sync:after-listing");
    let p = ws.json(&["prune", "--delete-now"]);
    assert_eq!(ids(&p["due"]).len(), 1, "{p:#}");
    let o = check.finish();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(!stderr(&o).contains("damaged"), "{}", stderr(&o));
}

/// `check` while a commit has its pack and record in place but not yet its
/// index transaction (paused there, holding the writer lock): the files
/// without rows are the running commit's, not index damage.
#[test]
fn check_during_a_commit_reports_no_index_damage() {
    let ws = fixture();
    let mut cmd = snap_std(&ws.root);
    cmd.args(["check", "--json"]);
    let check = Paused::at(cmd, "check:before-audit");
    ws.write("new.bin", &random_bytes(5400, 200_000));
    let mut cmd = snap_std(&ws.root);
    cmd.args(["commit", "--session", "s3"]);
    let commit = Paused::at(cmd, "publish:before-index");
    let o = check.finish();
    assert!(o.status.success(), "{}", stdout(&o));
    let o = commit.finish();
    assert!(o.status.success(), "{}", stderr(&o));
    ws.ok(&["check", "--read-data"]);
}
