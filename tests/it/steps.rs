//! Training steps beside epochs: `snap commit --step`, `snap log` and `snap
//! show` (human and --json), `SESSION@step=N`, and snapshot records of
//! version 1 (before steps) still read by this snap.

use serde_json::Value;
use snapstore::format::snapshot::{Snapshot, SnapshotV1};
use snapstore::store::{durable, Layout};
use snapstore::SnapshotId;

use crate::util::*;

#[test]
fn commit_step_shows_in_log_and_show() {
    let ws = Ws::new();
    ws.write("model.pt", &random_bytes(2001, 10_000));
    let a = ws.commit(&["--session", "hf", "--step", "500"]);
    assert_eq!(a["step"], 500);
    assert!(a["epoch"].is_null(), "a step says nothing about the epoch");
    ws.write("model.pt", &random_bytes(2002, 10_000));
    let b = ws.commit(&["--session", "hf", "--epoch", "2", "--step", "1000"]);
    assert_eq!(
        (b["epoch"].as_u64(), b["step"].as_u64()),
        (Some(2), Some(1000))
    );
    let plain = ws.commit(&["-m", "no position"]);
    assert!(plain["step"].is_null());

    let log = ws.log();
    let steps: Vec<Option<u64>> = log.iter().map(|s| s["step"].as_u64()).collect();
    assert_eq!(steps, [Some(500), Some(1000), None]);
    let shown = ws.json(&["show", id_of(&b).as_str()]);
    assert_eq!(shown["snapshot"]["step"], 1000);

    let human = ws.ok(&["log"]);
    let header = human.lines().next().unwrap();
    assert!(
        header.contains("EPOCH") && header.contains("STEP"),
        "{human}"
    );
    assert!(
        human.contains("== session hf: 2 snapshots, epoch 2, steps 500-1000 =="),
        "{human}"
    );
    let row = |id: &Value| {
        let short = &id_of(id)[..8];
        human
            .lines()
            .find(|l| l.starts_with(short))
            .unwrap_or_else(|| panic!("no row for {short}:\n{human}"))
            .split_whitespace()
            .skip(3)
            .take(2)
            .collect::<Vec<_>>()
    };
    assert_eq!(row(&a), ["-", "500"], "EPOCH and STEP columns");
    assert_eq!(row(&b), ["2", "1000"]);
    assert_eq!(row(&plain), ["-", "-"]);

    let show = ws.ok(&["show", id_of(&b).as_str()]);
    assert!(
        show.contains("session   hf  epoch 2  step 1000\n"),
        "{show}"
    );
    let show = ws.ok(&["show", id_of(&a).as_str()]);
    assert!(show.contains("session   hf  step 500\n"), "{show}");
}

#[test]
fn session_at_step_names_the_newest_snapshot_of_that_step() {
    let ws = Ws::new();
    ws.write("w.bin", b"one");
    ws.commit(&["--session", "s", "--step", "100"]);
    ws.write("w.bin", b"two");
    let second = ws.commit_id(&["--session", "s", "--step", "100"]);
    ws.write("w.bin", b"three");
    let other = ws.commit_id(&["--session", "s", "--epoch", "100"]);
    ws.write("w.bin", b"four");
    ws.commit(&["--session", "t", "--step", "200"]);

    let at = |rev: &str| id_of(&ws.json(&["show", rev])["snapshot"]);
    assert_eq!(at("s@step=100"), second, "the newest of step 100");
    assert_eq!(at("s@100"), other, "SESSION@N is still the epoch");
    let o = ws.run(&["cat", "s@step=100:w.bin"]);
    assert_eq!(o.stdout, b"two");

    let o = ws.fails(&["show", "s@step=200"], 5);
    let err = stderr(&o);
    assert!(err.contains("s@step=200"), "{err}");
    assert!(
        err.contains("SESSION@step=N"),
        "the hint names the form:\n{err}"
    );
}

#[test]
fn version_1_snapshot_records_are_still_read() {
    let ws = Ws::new();
    let weights = random_bytes(2003, 50_000);
    ws.write("ckpt/epoch_4.pt", &weights);
    let v2 = ws.commit(&["--session", "old", "--epoch", "4", "--metric", "acc=0.75"]);
    let layout = Layout::new(ws.repo());
    let v2_id = SnapshotId::from_hex(v2["id"].as_str().unwrap()).expect("hex id");
    let s = Snapshot::decode(&std::fs::read(layout.snapshot(&v2_id)).unwrap()).unwrap();

    // The same snapshot as snap wrote it before version 2, one second older.
    let v1 = SnapshotV1 {
        time_ns: s.time_ns - 1_000_000_000,
        host: s.host,
        workspace: s.workspace,
        paths: s.paths,
        session: s.session,
        epoch: s.epoch,
        metrics: s.metrics,
        message: Some("written by snap 0.1".into()),
        labels: s.labels,
        parent: None,
        root: s.root,
        summary: s.summary,
    };
    let bytes = v1.encode();
    let v1_id = SnapshotId::of(&bytes);
    durable::write_atomic(&layout.tmp_dir(), &layout.snapshot(&v1_id), &bytes).unwrap();

    let log = ws.log();
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(
        log[0]["id"],
        v1_id.to_hex(),
        "same id: the hash of its bytes"
    );
    assert_eq!(log[0]["message"], "written by snap 0.1");
    assert_eq!(log[0]["epoch"], 4);
    assert!(log[0]["step"].is_null());
    assert_eq!(log[0]["metrics"]["acc"], 0.75);
    let dir = ws.restore_to(&v1_id.to_hex(), "v1");
    assert_eq!(std::fs::read(dir.join("ckpt/epoch_4.pt")).unwrap(), weights);
    ws.ok(&["check"]);
    assert_eq!(
        std::fs::read(layout.snapshot(&v1_id)).unwrap(),
        bytes,
        "reading never rewrites a record"
    );
}
