//! The paths `snap restore` and `snap cat` take: globs, relative to the
//! current directory inside the workspace (to the snapshot root elsewhere),
//! `restore --dry-run`, and `--force` pointing to `--overwrite`.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

/// A workspace with checkpoints, a directory matched by name, logs and a
/// config, committed and tagged `best`.
fn models_workspace() -> Ws {
    let ws = Ws::new();
    ws.write("checkpoints/epoch_1.pt", &random_bytes(1, 3000));
    ws.write("checkpoints/epoch_2_best.pt", &random_bytes(2, 3000));
    ws.write("checkpoints/best/weights.bin", &random_bytes(3, 2000));
    ws.write("models/model.pt", b"the model\n");
    ws.write("config/train.yaml", b"lr: 0.001\n");
    ws.write("logs/train.log", b"epoch 1\n");
    ws.commit(&["--tag", "best"]);
    ws
}

fn target(ws: &Ws, name: &str) -> String {
    ws.outside(name)
        .to_str()
        .expect("utf-8 temp path")
        .to_string()
}

/// Runs snap with the current directory `rel` inside the workspace.
fn run_in(ws: &Ws, rel: &str, args: &[&str]) -> std::process::Output {
    snap_in(&ws.path(rel))
        .args(args)
        .output()
        .expect("run snap")
}

#[test]
fn restore_globs_match_files_and_directories_within_a_component() {
    let ws = models_workspace();
    let t = target(&ws, "ckpt");
    ws.ok(&["restore", "best", "checkpoints/*best*", "--target", &t]);
    // The file and the directory whose names match, the directory whole.
    assert_paths(
        Path::new(&t),
        &[
            "checkpoints",
            "checkpoints/best",
            "checkpoints/best/weights.bin",
            "checkpoints/epoch_2_best.pt",
        ],
    );
    assert_eq!(
        fs::read(Path::new(&t).join("checkpoints/best/weights.bin")).unwrap(),
        random_bytes(3, 2000)
    );

    // `*` does not cross `/`; `**` does.
    let t = target(&ws, "star");
    ws.fails(&["restore", "best", "*.log", "--target", &t], 5);
    ws.ok(&["restore", "best", "**/*.log", "--target", &t]);
    assert_paths(Path::new(&t), &["logs", "logs/train.log"]);

    // A glob that matches nothing is an error naming it, and writes nothing.
    let t = target(&ws, "none");
    let o = ws.fails(
        &["restore", "best", "checkpoints/*bset*", "--target", &t],
        5,
    );
    let err = stderr(&o);
    assert!(err.contains("'checkpoints/*bset*'"), "{err}");
    assert!(err.contains("no path matches it"), "{err}");
    assert!(
        err.contains("'checkpoints/' holds: best/, epoch_1.pt"),
        "{err}"
    );
    assert!(!Path::new(&t).exists());
    let o = ws.fails(&["restore", "best", "checkpoint/*.pt", "--target", &t], 5);
    assert!(
        stderr(&o).contains("did you mean 'checkpoints'?"),
        "{}",
        stderr(&o)
    );
    let o = ws.fails(&["restore", "best", "Logs/*.log", "--target", &t], 5);
    assert!(
        stderr(&o).contains("did you mean 'logs/train.log'?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cat_takes_a_glob_that_names_exactly_one_file() {
    let ws = models_workspace();
    assert_eq!(ws.ok(&["cat", "best:logs/*.log"]), "epoch 1\n");
    // The directory checkpoints/best matches too, but only files count.
    let o = ws.run(&["cat", "best:checkpoints/*best*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, random_bytes(2, 3000));

    let o = ws.fails(&["cat", "best:checkpoints/*.pt"], 1);
    let err = stderr(&o);
    assert!(err.contains("matches 2 files"), "{err}");
    assert!(err.contains("checkpoints/epoch_1.pt"), "{err}");
    assert!(err.contains("checkpoints/epoch_2_best.pt"), "{err}");
    assert!(o.stdout.is_empty());
    ws.fails(&["cat", "best:logs/*.txt"], 5);
}

#[test]
fn inside_the_workspace_paths_are_relative_to_the_current_directory() {
    let ws = models_workspace();
    let o = run_in(&ws, "models", &["cat", "best:model.pt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"the model\n");
    let o = run_in(&ws, "models", &["cat", "best:../config/train.yaml"]);
    assert_eq!(o.stdout, b"lr: 0.001\n", "{}", stderr(&o));
    // Above the snapshot root is nowhere.
    let o = run_in(&ws, "models", &["cat", "best:../../ws/config/train.yaml"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    // A miss says how the path was read.
    let o = run_in(&ws, "models", &["cat", "best:config/train.yaml"]);
    assert_eq!(o.status.code(), Some(5));
    assert!(
        stderr(&o).contains("this is 'models/config/train.yaml' in the snapshot"),
        "{}",
        stderr(&o)
    );

    // Restore into the workspace from models/: model.pt is models/model.pt.
    ws.write("models/model.pt", b"overwritten\n");
    ws.write("logs/train.log", b"changed too\n");
    let o = run_in(
        &ws,
        "models",
        &["restore", "best", "model.pt", "--overwrite"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        fs::read(ws.path("models/model.pt")).unwrap(),
        b"the model\n"
    );
    assert_eq!(
        fs::read(ws.path("logs/train.log")).unwrap(),
        b"changed too\n"
    );
    assert!(!ws.path("models/models").exists());
    // `.` is the current directory's subtree.
    let o = run_in(
        &ws,
        "checkpoints",
        &["restore", "best", ".", "--overwrite", "--json"],
    );
    let done: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(done["files"], 3, "{}", stderr(&o));

    // With --target elsewhere, paths are relative to the snapshot root.
    let t = target(&ws, "elsewhere");
    let o = run_in(
        &ws,
        "models",
        &["restore", "best", "model.pt", "--target", &t],
    );
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let o = run_in(
        &ws,
        "models",
        &["restore", "best", "models/model.pt", "--target", &t],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_paths(Path::new(&t), &["models", "models/model.pt"]);

    // Outside the workspace too.
    let repo = ws.repo();
    let o = snap_in(ws.tmp.path())
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "cat",
            "best:models/model.pt",
        ])
        .output()
        .unwrap();
    assert_eq!(o.stdout, b"the model\n", "{}", stderr(&o));
}

#[test]
fn dry_run_lists_new_replaced_and_unchanged_and_writes_nothing() {
    let ws = models_workspace();
    ws.write("models/model.pt", b"edited\n");
    fs::remove_file(ws.path("logs/train.log")).unwrap();
    let before = (
        walk(&ws.root, &[".snap"]),
        file_contents(&ws.root, &[".snap"]),
    );

    let out = ws.ok(&["restore", "best", "--dry-run"]);
    let line = |path: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(path))
            .unwrap_or_else(|| panic!("no line for {path}:\n{out}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(line("models/model.pt"), "replace");
    assert_eq!(line("logs/train.log"), "new");
    assert_eq!(line("config/train.yaml"), "unchanged");
    assert_eq!(line("checkpoints/best/"), "unchanged");
    assert!(out.contains("nothing written"), "{out}");
    assert!(
        out.contains("without --overwrite the restore would refuse"),
        "{out}"
    );
    let after = (
        walk(&ws.root, &[".snap"]),
        file_contents(&ws.root, &[".snap"]),
    );
    assert_eq!(after, before, "a dry run changed the workspace");

    let records = ws.json(&["restore", "best", "logs", "models/*.pt", "--dry-run"]);
    let records = records.as_array().expect("an array of records");
    let summary: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
                r["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("logs", "dir", "unchanged"),
            ("logs/train.log", "file", "new"),
            ("models/model.pt", "file", "replace"),
        ]
    );
    assert_eq!(records[1]["size"], 8);
    assert_eq!(
        records[2]["dest"].as_str().unwrap(),
        ws.path("models/model.pt").to_str().unwrap()
    );

    // Into a new directory: everything new, and the directory not created.
    let t = target(&ws, "fresh");
    let out = ws.ok(&["restore", "best", "--dry-run", "--target", &t]);
    assert!(out.contains("(11 new, 0 to replace, 0 unchanged"), "{out}");
    assert!(!out.contains("would refuse"), "{out}");
    assert!(!Path::new(&t).exists());
}

#[test]
fn force_is_refused_pointing_to_overwrite() {
    let ws = models_workspace();
    ws.write("models/model.pt", b"edited\n");
    let o = ws.fails(&["restore", "best", "--force"], 2);
    let err = stderr(&o);
    assert!(err.contains("--overwrite"), "{err}");
    assert!(err.contains("Usage: snap restore"), "{err}");
    assert_eq!(fs::read(ws.path("models/model.pt")).unwrap(), b"edited\n");
    // Not listed as an option.
    assert!(!ws.ok(&["restore", "--help"]).contains("--force"));
}
