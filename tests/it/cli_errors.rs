//! What users see when something is wrong: clear messages and documented
//! exit codes (1 error, 2 usage, 3 damaged, 4 locked, 5 not found).

use std::fs;

use snapstore::format::snapshot::Snapshot;
use snapstore::store::{durable, Layout};
use snapstore::SnapshotId;

use crate::util::*;

#[test]
fn commands_outside_a_repository_say_how_to_create_one() {
    let ws = Ws::bare();
    for args in [
        vec!["log"],
        vec!["commit"],
        vec!["show", "latest"],
        vec!["restore", "latest"],
        vec!["cat", "latest:x"],
        vec!["check"],
        vec!["stats"],
        vec!["tags"],
        vec!["tag", "x"],
        vec!["reindex"],
    ] {
        let o = ws.fails(&args, 5);
        let err = stderr(&o);
        assert!(err.contains("snap init"), "{args:?}: {err}");
    }
    assert!(!ws.repo().exists(), "a failed command created a repository");
}

#[test]
fn repo_flag_pointing_at_a_non_repository() {
    let ws = Ws::bare();
    let dir = ws.outside("not-a-repo");
    fs::create_dir_all(&dir).unwrap();
    let o = ws.fails(&["--repo", dir.to_str().unwrap(), "log"], 5);
    assert!(stderr(&o).contains("snap init --repo"), "{}", stderr(&o));
    // SNAP_REPO works like --repo.
    let o = ws
        .cmd()
        .env("SNAP_REPO", &dir)
        .args(["log"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
}

#[test]
fn unknown_revision_lists_what_exists() {
    let ws = Ws::new();
    let o = ws.fails(&["show", "nosuchrev"], 5);
    assert!(stderr(&o).contains("no snapshots yet"), "{}", stderr(&o));

    ws.write("a.txt", b"a");
    let id = ws.commit_id(&["--tag", "baseline", "--session", "run1", "--epoch", "2"]);
    for rev in ["nosuchrev", "ffff0000", "run1@3", "ab"] {
        let o = ws.fails(&["show", rev], 5);
        let err = stderr(&o);
        assert!(err.contains(rev), "{err}");
        assert!(err.contains(&id[..8]), "recent ids not listed: {err}");
        assert!(err.contains("baseline"), "tags not listed: {err}");
        assert!(err.contains("SESSION@EPOCH"), "{err}");
    }
    ws.fails(&["restore", "nosuchrev", "--target", "x"], 5);
    ws.fails(&["cat", "nosuchrev:a.txt"], 5);
    ws.fails(&["tag", "t", "nosuchrev"], 5);
    // The good revisions do resolve.
    for rev in [
        "latest",
        "baseline",
        "run1@2",
        &id[..4],
        &id[..],
        &id.to_uppercase()[..12],
    ] {
        ws.ok(&["show", rev]);
    }
}

#[test]
fn ambiguous_prefix_names_the_candidates() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let id = ws.commit_id(&[]);
    // Craft records that differ only in their message until two ids share
    // a 4-character prefix, and add them to the repository.
    let layout = Layout::new(ws.repo());
    let base =
        Snapshot::decode(&fs::read(layout.snapshot(&SnapshotId::from_hex(&id).unwrap())).unwrap())
            .unwrap();
    let mut seen = std::collections::HashMap::new();
    seen.insert(id[..4].to_string(), id.clone());
    let mut pair = None;
    for i in 0.. {
        let mut s = base.clone();
        s.message = Some(format!("crafted {i}"));
        s.time_ns += i;
        let (sid, bytes) = s.encode();
        durable::write_atomic(&layout.tmp_dir(), &layout.snapshot(&sid), &bytes).unwrap();
        let hex = sid.to_hex();
        if let Some(other) = seen.insert(hex[..4].to_string(), hex.clone()) {
            pair = Some((other, hex));
            break;
        }
    }
    let (x, y) = pair.unwrap();
    let o = ws.fails(&["show", &x[..4]], 1);
    let err = stderr(&o);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains(&x[..8]) && err.contains(&y[..8]), "{err}");
    // A longer prefix that is unique resolves.
    let n = (4..64).find(|&n| x[..n] != y[..n]).unwrap() + 1;
    let v = ws.json(&["show", &x[..n]]);
    assert_eq!(v["snapshot"]["id"], x.as_str());
}

#[test]
fn init_twice_fails_and_keeps_the_repository() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    let config = fs::read(ws.repo().join("config")).unwrap();
    let o = ws.fails(&["init"], 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(fs::read(ws.repo().join("config")).unwrap(), config);
    assert_eq!(ws.log().len(), 1);
    let r = ws.repo();
    let o = ws.fails(&["--repo", r.to_str().unwrap(), "init"], 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn bad_metrics_are_refused_before_anything_is_stored() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    for bad in ["loss", "loss=abc", "=0.5", "loss=inf", "loss=NaN", "loss="] {
        let o = ws.fails(&["commit", "--metric", bad], 1);
        assert!(stderr(&o).contains("metric"), "{bad}: {}", stderr(&o));
    }
    assert!(ws.log().is_empty());
    let v = ws.commit(&["--metric", "val_loss=0.25", "--metric", "acc = 0.9"]);
    assert_eq!(v["metrics"]["val_loss"], 0.25);
    assert_eq!(v["metrics"]["acc"], 0.9);
}

#[test]
fn tag_names_are_validated() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    for bad in [
        "",
        "has space",
        "..",
        "a/../b",
        "a//b",
        "/abs",
        "trail/",
        "latest",
        "abcd",
        "deadbeef",
        "semi;colon",
        "new\nline",
        "ü",
        "run1@2",
    ] {
        let o = ws.run(&["tag", bad, "latest"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "tag {bad:?} accepted: {}",
            stdout(&o)
        );
        let o = ws.run(&["commit", "--tag", bad]);
        assert_ne!(o.status.code(), Some(0), "commit --tag {bad:?} accepted");
    }
    assert_eq!(ws.json(&["tags"]).as_array().unwrap().len(), 0);
    assert_eq!(ws.log().len(), 1, "a commit with a bad tag was stored");
    assert_eq!(count_entries(&ws.repo().join("refs/tags")), 0);

    for good in ["best", "run-7/best", "exp_2.v3", "a+c=d", "abc"] {
        ws.ok(&["tag", good, "latest"]);
    }
    assert_eq!(ws.json(&["tags"]).as_array().unwrap().len(), 5);
    ws.ok(&["show", "run-7/best"]);
    ws.ok(&["tag", "--delete", "run-7/best"]);
    let o = ws.fails(&["tag", "--delete", "nosuch"], 1);
    assert!(
        stderr(&o).contains("best"),
        "existing tags not listed: {}",
        stderr(&o)
    );
}

#[test]
fn moving_a_tag_replaces_it() {
    let ws = Ws::new();
    ws.write("a.txt", b"1");
    let first = ws.commit_id(&["--tag", "best"]);
    ws.write("a.txt", b"2");
    let second = ws.commit_id(&[]);
    assert_eq!(ws.json(&["show", "best"])["snapshot"]["id"], first.as_str());
    ws.ok(&["tag", "best", &second]);
    assert_eq!(
        ws.json(&["show", "best"])["snapshot"]["id"],
        second.as_str()
    );
    assert_eq!(ws.ok(&["cat", "best:a.txt"]), "2");
    let tags = ws.json(&["tags"]);
    assert_eq!(tags.as_array().unwrap().len(), 1);
    assert_eq!(tags[0]["snapshot"], second.as_str());
}

#[test]
fn usage_errors_exit_2() {
    let ws = Ws::new();
    ws.fails(&["frobnicate"], 2);
    ws.fails(&["show"], 2);
    ws.fails(&["commit", "--epoch", "-1"], 2);
    ws.fails(&["commit", "--epoch", "three"], 2);
    ws.fails(&["tag", "x", "latest", "--delete"], 2);
    assert!(ws.log().is_empty());
}

#[test]
fn bad_commit_paths_and_sessions() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let outside = ws.outside("elsewhere.txt");
    fs::write(&outside, b"x").unwrap();
    let o = ws.fails(&["commit", outside.to_str().unwrap()], 1);
    assert!(
        stderr(&o).contains("outside the workspace"),
        "{}",
        stderr(&o)
    );
    let o = ws.fails(&["commit", "missing.txt"], 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    ws.fails(&["commit", "--session", ""], 1);
    assert!(ws.log().is_empty());
    // SNAP_SESSION is the default session.
    let v = ws.json_env(&["commit"], "SNAP_SESSION", "from-env");
    assert_eq!(v["session"], "from-env");
}

#[test]
fn restore_and_show_of_an_empty_repository() {
    let ws = Ws::new();
    let o = ws.fails(&["restore", "latest", "--target", "out"], 5);
    assert!(stderr(&o).contains("snap commit"), "{}", stderr(&o));
    assert!(ws.log().is_empty());
    assert_eq!(ws.json(&["tags"]).as_array().unwrap().len(), 0);
    ws.ok(&["check", "--read-data"]);
    assert_eq!(ws.json(&["stats"])["snapshots"], 0);
}
