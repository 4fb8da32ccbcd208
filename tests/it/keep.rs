//! What retention keeps, through real `snap run`s of a real child process:
//! the rules a researcher replacing "zip before every run, keep five, copy
//! best by hand" relies on (docs/training.md, "Retention"), the journal of
//! what it forgot, and the flags and settings that change it.

use std::fs;

use serde_json::Value;

use crate::util::*;

/// Overwrites models/finetuned.bin first thing (the run's pre-run snapshot
/// is then the only copy of the original), then one epoch per loss given,
/// each with its own model bytes.
const TRAIN_PY: &str = r#"
import json, os, random, sys
losses = json.loads(sys.argv[1])
os.makedirs("models", exist_ok=True)
with open("models/finetuned.bin", "wb") as f:
    f.write(b"overwritten at start")
for epoch, loss in enumerate(losses, 1):
    with open("models/finetuned.bin", "wb") as f:
        f.write(random.Random(epoch).randbytes(50_000))
    print("SNAP " + json.dumps({"epoch": epoch, "val_loss": loss}), flush=True)
"#;

fn train(ws: &Ws, session: &str, flags: &[&str], losses: &str) -> (Value, String) {
    let py = ws.outside("train.py");
    if !py.exists() {
        write_file(&py, TRAIN_PY.as_bytes());
    }
    let mut args = vec!["run", "--session", session, "--json"];
    args.extend(flags);
    args.extend(["--", "python3", py.to_str().unwrap(), losses]);
    let o = ws
        .cmd()
        .env("PATH", path_with_snap())
        .args(&args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report = serde_json::from_str(stdout(&o).lines().last().unwrap()).expect("run report");
    (report, stderr(&o))
}

fn session_of<'a>(log: &'a [Value], name: &str) -> Vec<&'a Value> {
    log.iter().filter(|s| s["session"] == name).collect()
}

fn epochs(snaps: &[&Value]) -> Vec<u64> {
    snaps.iter().filter_map(|s| s["epoch"].as_u64()).collect()
}

#[test]
fn a_run_keeps_its_pre_run_best_final_and_last_five_epochs_and_journals_the_rest() {
    let ws = Ws::new();
    ws.write("models/finetuned.bin", b"the model before the run");
    ws.write("config/train.json", b"{\"lr\": 0.0003}");
    // Best (lowest) loss at epoch 1, beyond the last five of seven epochs.
    let (report, err) = train(
        &ws,
        "lr3e-4",
        &["--best", "val_loss"],
        "[0.2, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]",
    );
    let log = ws.log();
    let snaps = session_of(&log, "lr3e-4");
    let pre_run: Vec<&&Value> = snaps
        .iter()
        .filter(|s| s["labels"]["signal"] == "archive")
        .collect();
    assert_eq!(pre_run.len(), 1, "{log:#?}");
    assert!(snaps.iter().any(|s| s["labels"]["outcome"] == "exited 0"));
    // Epoch 1 is the best; epochs 3..7 are the last five; epoch 2 went.
    assert_eq!(epochs(&snaps), [1, 3, 4, 5, 6, 7], "{log:#?}");
    let best = ws.json(&["show", "lr3e-4/best"]);
    assert_eq!(best["snapshot"]["epoch"], 1);
    assert_eq!(ws.json(&["show", "best"])["snapshot"]["epoch"], 1);

    // The pre-run snapshot still holds the model as it was.
    let dir = ws.restore_to(pre_run[0]["id"].as_str().unwrap(), "pre-run");
    assert_eq!(
        fs::read(dir.join("models/finetuned.bin")).unwrap(),
        b"the model before the run"
    );

    // The report and the summary line name what went, in human units.
    assert_eq!(report["retention"], "applied");
    assert_eq!(report["forgotten"], 1);
    let gone = &report["forgotten_snapshots"][0];
    assert_eq!(gone["epoch"], 2);
    assert!(
        err.contains("retention forgot 1 snapshot (lr3e-4 epoch 2; ")
            && err.contains(" KiB of files"),
        "{err}"
    );

    // A forgotten revision says so, by SESSION@EPOCH and by id prefix.
    let id = gone["id"].as_str().unwrap().to_string();
    for rev in ["lr3e-4@2", &id[..10]] {
        let o = ws.fails(&["restore", rev, "--target", "/tmp/never-written"], 5);
        let e = stderr(&o);
        assert!(e.contains("was forgotten by retention on"), "{e}");
        assert!(e.contains("rule keep_epochs = 5"), "{e}");
        assert!(e.contains("snap log --session lr3e-4"), "{e}");
    }
    // An unknown revision stays unknown.
    let e = stderr(&ws.fails(&["restore", "lr3e-4@99"], 5));
    assert!(e.contains("unknown revision"), "{e}");

    // snap log --forgotten keeps its metrics.
    let f = ws.json(&["log", "--forgotten"]);
    let f = f.as_array().unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["id"], id);
    assert_eq!(f[0]["epoch"], 2);
    assert_eq!(f[0]["metrics"]["val_loss"], 0.9);
    assert_eq!(f[0]["forgotten"]["rule"], "keep_epochs = 5");
    let human = ws.ok(&["log", "--forgotten"]);
    assert!(
        human.contains(&id[..8]) && human.contains("keep_epochs = 5"),
        "{human}"
    );
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn a_run_keeps_its_own_even_when_told_to_keep_no_session() {
    let ws = Ws::new();
    ws.write("models/finetuned.bin", b"original");
    let (report, _) = train(
        &ws,
        "tiny",
        &[
            "--best",
            "val_loss",
            "--keep-sessions",
            "0",
            "--keep-epochs",
            "1",
        ],
        "[0.5, 0.1, 0.3]",
    );
    let log = ws.log();
    let snaps = session_of(&log, "tiny");
    // Pre-run, best (epoch 2), last epoch (3), final.
    assert_eq!(snaps.len(), 4, "{log:#?}");
    assert_eq!(epochs(&snaps), [2, 3]);
    assert_eq!(report["forgotten_snapshots"][0]["epoch"], 1);
}

#[test]
fn plain_commits_are_one_group_and_never_push_training_sessions_out() {
    let ws = Ws::new();
    for s in ["a", "b"] {
        ws.write("train.log", s.as_bytes());
        train(&ws, s, &[], "[0.5]");
    }
    for i in 0..12 {
        ws.write("notes.txt", format!("note {i}").as_bytes());
        ws.commit_id(&[]);
    }
    // keep_sessions = 1: six, or twelve, plain commits do not count.
    let f = ws.json(&["forget", "--keep-sessions", "1"]);
    let kept: Vec<&Value> = f["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .collect();
    let log = ws.log();
    assert_eq!(session_of(&log, "b").len(), 3, "{log:#?}");
    // Everything in the last 30 days is kept: all twelve plain commits.
    assert_eq!(log.iter().filter(|s| s["session"].is_null()).count(), 12);
    assert!(kept.iter().any(|d| d["reasons"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"reason": "commit_within"}))));
    // By count only: the newest ten stay, the two oldest go, sessions untouched.
    ws.ok(&["forget", "--keep-commits-within", "none"]);
    let after = ws.log();
    assert_eq!(after.iter().filter(|s| s["session"].is_null()).count(), 10);
    assert_eq!(session_of(&after, "b").len(), 3);
    let gone = ws.json(&["log", "--forgotten"]);
    let rules: Vec<&str> = gone
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["forgotten"]["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules
            .iter()
            .filter(|r| r.starts_with("keep_commits = 10"))
            .count()
            == 2,
        "{rules:?}"
    );
}

#[test]
fn keep_epochs_no_retention_and_snap_toml_settings() {
    let ws = Ws::new();
    ws.write("snap.toml", b"[retention]\nkeep_epochs = 1\n");
    ws.write("a.txt", b"a");
    // snap.toml: only the last epoch of the run stays.
    train(&ws, "toml", &[], "[0.5, 0.4, 0.3]");
    assert_eq!(epochs(&session_of(&ws.log(), "toml")), [3]);
    // --keep-epochs overrides it.
    train(&ws, "flag", &["--keep-epochs", "2"], "[0.5, 0.4, 0.3]");
    assert_eq!(epochs(&session_of(&ws.log(), "flag")), [2, 3]);
    // --no-retention keeps everything and says so.
    let (report, err) = train(&ws, "all", &["--no-retention"], "[0.5, 0.4, 0.3]");
    assert_eq!(epochs(&session_of(&ws.log(), "all")), [1, 2, 3]);
    assert_eq!(report["retention"], "skipped: --no-retention");
    assert!(err.contains("retention skipped: --no-retention"), "{err}");
    // A bad setting is an error naming it.
    ws.write(
        "snap.toml",
        b"[retention]\nkeep_commits_within = \"soon\"\n",
    );
    let e = stderr(&ws.fails(&["forget", "--dry-run"], 1));
    assert!(e.contains("keep_commits_within"), "{e}");
    // forget --dry-run shows every reason with its rule.
    ws.write("snap.toml", b"");
    let out = ws.ok(&["forget", "--dry-run"]);
    assert!(
        out.contains("pre-run snapshot of session #1 (keep_sessions = 5)"),
        "{out}"
    );
    assert!(out.contains("(keep_epochs = 5)"), "{out}");
}

#[test]
fn imported_archives_are_kept() {
    let ws = Ws::new();
    let zip = ws.outside("training_backup_20240102_030405.zip");
    write_zip(&zip, &[ZipItem::file("logs/a.log", b"old run".to_vec())]);
    ws.ok(&["import-zip", zip.to_str().unwrap()]);
    let f = ws.json(&["forget", "--keep-sessions", "0"]);
    let d = &f["decisions"][0];
    assert_eq!(d["keep"], true, "{f:#}");
    assert_eq!(d["reasons"][0]["reason"], "imported");
}
