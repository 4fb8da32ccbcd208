//! REV syntax: `SESSION`, `SESSION@start`, `SESSION@end`, `SESSION@EPOCH`,
//! the order forms are tried in, and "did you mean" for unknown names.

use std::process::Stdio;

use crate::util::*;

/// Keep every snapshot at the end of a run (the default keeps a session's last).
const KEEP_ALL: &[u8] = b"[retention]\nkeep_per_session = 1000\n";

/// `snap run --session SESSION FLAGS -- sh -c SCRIPT`, run to its end.
fn run_sh(ws: &Ws, session: &str, flags: &[&str], script: &str) {
    let mut args = vec!["run", "--session", session];
    args.extend(flags);
    args.extend(["--", "sh", "-c", script]);
    let o = ws.cmd().args(&args).output().expect("run snap run");
    assert!(o.status.success(), "snap {args:?}: {}", stderr(&o));
}

fn id_of_rev(ws: &Ws, rev: &str) -> String {
    ws.json(&["show", rev])["snapshot"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[test]
fn session_start_and_end_name_a_runs_first_and_final_snapshots() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    ws.write("config.yaml", b"lr: 1\n");
    run_sh(&ws, "s1", &[], "echo trained > out.txt");

    // Before the run out.txt did not exist; at its end it does.
    let o = ws.fails(&["cat", "s1@start:out.txt"], 5);
    assert!(stderr(&o).contains("out.txt"), "{}", stderr(&o));
    assert_eq!(ws.ok(&["cat", "s1@start:config.yaml"]), "lr: 1\n");
    assert_eq!(ws.ok(&["cat", "s1@end:out.txt"]), "trained\n");
    let end = ws.json(&["show", "s1@end"]);
    assert!(end["snapshot"]["labels"]["outcome"].is_string(), "{end}");
    let start = ws.json(&["show", "s1@start"]);
    assert_eq!(start["snapshot"]["labels"]["signal"], "archive");
    // SESSION alone: its newest snapshot, here the final one.
    assert_eq!(
        id_of_rev(&ws, "s1"),
        end["snapshot"]["id"].as_str().unwrap()
    );

    // A run without the archive snapshot has no @start, and says why.
    run_sh(&ws, "s2", &["--no-archive"], "true");
    let o = ws.fails(&["show", "s2@start"], 5);
    let err = stderr(&o);
    assert!(err.contains("no pre-run snapshot"), "{err}");
    assert!(err.contains("--no-archive"), "{err}");
    ws.ok(&["show", "s2@end"]);

    // A session of plain commits has neither.
    ws.commit(&["--session", "s3", "--epoch", "1"]);
    let o = ws.fails(&["show", "s3@end"], 5);
    let err = stderr(&o);
    assert!(err.contains("no final snapshot"), "{err}");
    assert!(err.contains("`s3` alone"), "{err}");
    ws.fails(&["show", "s3@start"], 5);
    ws.ok(&["show", "s3@1"]);
    ws.ok(&["show", "s3"]);

    // An epoch the session lacks, and a form that is not one.
    let o = ws.fails(&["show", "s3@7"], 5);
    assert!(stderr(&o).contains("epochs: 1 to 1"), "{}", stderr(&o));
    let o = ws.fails(&["show", "s3@finish"], 5);
    assert!(
        stderr(&o).contains("start, end, an epoch number or step=N"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn end_of_a_session_whose_latest_run_has_not_ended_is_refused() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    ws.write("a.txt", b"a");
    run_sh(&ws, "s1", &[], "echo first > out.txt");
    let first_end = id_of_rev(&ws, "s1@end");

    // A second run of s1 that waits for a file before it ends.
    let ready = ws.outside("ready");
    let go = ws.outside("go");
    let script = format!(
        "echo second > out.txt; touch '{}'; while [ ! -e '{}' ]; do sleep 0.05; done",
        ready.display(),
        go.display()
    );
    let mut run = snap_std(&ws.root)
        .args(["run", "--session", "s1", "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn snap run");
    wait_for(
        "the second run to start",
        std::time::Duration::from_secs(60),
        || ready.exists(),
    );

    let o = ws.fails(&["show", "s1@end"], 5);
    let err = stderr(&o);
    assert!(err.contains("latest run of session s1"), "{err}");
    assert!(err.contains("still running"), "{err}");
    let second_start = id_of_rev(&ws, "s1@start");
    assert_ne!(second_start, first_end);
    assert_eq!(ws.ok(&["cat", &format!("{second_start}:a.txt")]), "a");

    write_file(&go, b"");
    assert!(run.wait().expect("wait for snap run").success());
    assert_eq!(ws.ok(&["cat", "s1@end:out.txt"]), "second\n");
    assert_ne!(id_of_rev(&ws, "s1@end"), first_end);
}

#[test]
fn tags_and_ids_come_before_sessions_and_a_clash_is_ambiguous() {
    let ws = Ws::new();
    ws.write("a.txt", b"1");
    let tagged = ws.commit_id(&["--tag", "best"]);
    ws.write("a.txt", b"2");
    // A session named like the tag: the tag wins.
    let in_best = ws.commit_id(&["--session", "best"]);
    assert_eq!(id_of_rev(&ws, "best"), tagged);
    assert_eq!(id_of_rev(&ws, &in_best), in_best);

    // A session named like a prefix of another snapshot's id: ambiguous,
    // with both meanings listed.
    let prefix = &tagged[..6];
    ws.write("a.txt", b"3");
    let in_hex = ws.commit_id(&["--session", prefix]);
    let o = ws.fails(&["show", prefix], 1);
    let err = stderr(&o);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(err.contains(&format!("session {prefix}")), "{err}");
    assert!(err.contains(&tagged[..8]), "{err}");
    assert!(err.contains(&in_hex[..8]), "{err}");
    // More characters name the snapshot; the full id always does.
    assert_eq!(id_of_rev(&ws, &tagged[..12]), tagged);
    assert_eq!(id_of_rev(&ws, &in_hex), in_hex);
}

#[test]
fn unknown_revisions_suggest_the_nearest_tag_or_session() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[
        "--tag",
        "best",
        "--session",
        "resnet-lr3e-4",
        "--epoch",
        "1",
    ]);

    let o = ws.fails(&["restore", "bset", "--target", "x"], 5);
    let err = stderr(&o);
    assert!(err.contains("did you mean 'best'?"), "{err}");
    // The general hint is still there.
    assert!(err.contains("SESSION@EPOCH"), "{err}");

    let o = ws.fails(&["show", "resnet-lr3e4"], 5);
    assert!(
        stderr(&o).contains("did you mean 'resnet-lr3e-4'?"),
        "{}",
        stderr(&o)
    );
    let o = ws.fails(&["show", "resnet_lr3e-4@1"], 5);
    assert!(
        stderr(&o).contains("did you mean 'resnet-lr3e-4@1'?"),
        "{}",
        stderr(&o)
    );
    let o = ws.fails(&["show", "lastest"], 5);
    assert!(
        stderr(&o).contains("did you mean 'latest'?"),
        "{}",
        stderr(&o)
    );
    let o = ws.fails(&["show", "zzzzzz"], 5);
    assert!(!stderr(&o).contains("did you mean"), "{}", stderr(&o));
}

#[test]
fn unknown_paths_suggest_the_nearest_paths() {
    let ws = Ws::new();
    ws.write("checkpoints/model.pt", b"m");
    ws.write("config/train.yaml", b"lr: 1\n");
    ws.commit(&["--tag", "best"]);

    let o = ws.fails(&["cat", "best:config/trian.yaml"], 5);
    let err = stderr(&o);
    assert!(
        err.contains("'config/trian.yaml' is not in snapshot"),
        "{err}"
    );
    assert!(err.contains("did you mean 'config/train.yaml'?"), "{err}");
    let t = ws.outside("out");
    let o = ws.fails(
        &[
            "restore",
            "best",
            "model.pt",
            "--target",
            t.to_str().unwrap(),
        ],
        5,
    );
    assert!(
        stderr(&o).contains("did you mean 'checkpoints/model.pt'?"),
        "{}",
        stderr(&o)
    );
    assert!(!t.exists());
    // From a subdirectory, suggestions are written from there too.
    let o = snap_in(&ws.path("config"))
        .args(["cat", "best:trian.yaml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5));
    assert!(
        stderr(&o).contains("did you mean 'train.yaml'?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_misspelt_tag_or_session_gets_the_nearest_name() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&["--session", "lr3e-4", "--epoch", "1", "--tag", "best"]);
    let e = stderr(&ws.fails(&["tag", "--delete", "bset"], 1));
    assert!(
        e.contains("no such tag") && e.contains("did you mean 'best'?"),
        "{e}"
    );
    let out = ws.ok(&["log", "--session", "lr3e-5"]);
    assert!(out.contains("did you mean 'lr3e-4'?"), "{out}");
}
