//! `snap run --push`: a real training child process, a real `moto_server`
//! (through the helpers of `remote.rs`). Epochs reach the remote while the
//! child still trains, the final snapshot is there when `snap run` returns,
//! and an unreachable remote never changes the run's outcome.

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::remote::{bucket, json, ok, snap};
use crate::util::{path_with_snap, stderr, stdout, Ws};

/// Writes the training script beside the workspace; returns its path.
fn script(ws: &Ws, body: &str) -> String {
    let p = ws.outside("train.sh");
    std::fs::write(&p, body).unwrap();
    p.to_str().unwrap().to_string()
}

/// The run report: the last line of stdout.
fn report(o: &Output) -> Value {
    let out = stdout(o);
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{out}\nstderr:\n{}", stderr(o)))
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|e| e["id"].as_str().or(e.as_str()).unwrap().to_string())
        .collect();
    out.sort();
    out
}

/// One checkpoint per epoch (seeded: the epoch number), then a SNAP line.
const EPOCH: &str = r#"epoch() {
  yes "epoch $1 weights" | head -c 400000 > checkpoints/epoch_$1.pt
  echo "SNAP {\"epoch\": $1, \"metrics\": {\"val_loss\": $2}}"
}
"#;

#[test]
fn run_push_sends_epochs_while_training_and_the_final_snapshot_before_returning() {
    let url = bucket("runpush");
    let ws = Ws::new();
    ws.write("config/train.yaml", b"lr: 0.001\n");
    ws.write("checkpoints/.keep", b"");
    ok(&ws.root, &["remote", "add", "origin", &url]);
    // A second repository that reads the remote, for the child to look.
    let other = Ws::new();
    ok(&other.root, &["remote", "add", "origin", &url]);
    let train = script(
        &ws,
        &format!(
            "{EPOCH}
epoch 1 0.9
# Training goes on only once epoch 1 is on the remote: the push ran while
# this process was still training, not at the end.
i=0
until snap --repo {other} log --from origin --json 2>/dev/null | grep -q '\"epoch\": 1,'; do
  i=$((i+1))
  if [ $i -gt 600 ]; then echo 'epoch 1 never reached the remote' >&2; exit 42; fi
  sleep 0.1
done
epoch 2 0.5
epoch 3 0.7
exit 3
",
            other = other.repo().display()
        ),
    );
    let o = snap(&ws.root)
        .env("PATH", path_with_snap())
        .args(["run", "--session", "s1", "--best", "val_loss", "--push"])
        .args(["origin", "--no-retention", "--json", "--", "sh", &train])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(3),
        "the child's status\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    let r = report(&o);
    let push = &r["push"];
    assert_eq!(push["final_pushed"], true, "{r}");
    assert_eq!(push["failed_attempts"], 0, "{r}");
    assert!(push["pushes"].as_u64().unwrap() >= 2, "{r}");
    // Archive, three epochs, final.
    let ran = ids(&r["snapshots"]);
    assert_eq!(ran.len(), 5, "{r}");
    // When snap run has returned, every one of them is on the remote, and
    // the best tag names the best epoch there too.
    let remote_log = json(&other.root, &["log", "--from", "origin"]);
    assert_eq!(ids(&remote_log), ran);
    let best = json(&other.root, &["show", "--from", "origin", "best"]);
    let best_id = r["best"][0].as_str().unwrap();
    assert_eq!(best["snapshot"]["id"].as_str(), Some(best_id), "{best}");
    assert!(stderr(&o).contains("pushed to origin"), "{}", stderr(&o));
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn run_unreachable(ws: &Ws, train: &str) -> Output {
    snap(&ws.root)
        .env("PATH", path_with_snap())
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", closed_port()),
        )
        .args(["run", "--session", "s2", "--push", "origin", "--json"])
        .args(["--no-retention", "--", "sh", train])
        .output()
        .unwrap()
}

#[test]
fn an_unreachable_remote_never_fails_training_and_is_reported() {
    let ws = Ws::new();
    ws.write("checkpoints/.keep", b"");
    ok(
        &ws.root,
        &["remote", "add", "origin", "s3://snap-unreachable/x"],
    );
    let train = script(&ws, &format!("{EPOCH}epoch 1 0.9\nepoch 2 0.8\nexit 0\n"));
    let o = run_unreachable(&ws, &train);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(&o);
    let push = &r["push"];
    assert_eq!(push["final_pushed"], false, "{r}");
    assert_eq!(push["pushes"], 0, "{r}");
    // The final push was tried three times (and the ones during the run).
    assert!(push["failed_attempts"].as_u64().unwrap() >= 3, "{r}");
    let errors = r["errors"].to_string();
    assert!(errors.contains("push later with `snap push origin`"), "{r}");
    let err = stderr(&o);
    assert!(err.contains("retrying in"), "{err}");
    assert!(err.contains("NOT pushed to origin"), "{err}");
    assert!(!err.contains("snap-test-secret"), "{err}");
    // Training was recorded in full here: archive, two epochs, final.
    assert_eq!(ids(&r["snapshots"]).len(), 4, "{r}");
    let log = json(&ws.root, &["log"]);
    assert_eq!(ids(&log).len(), 4);
    check_clean(&ws.root);
}

fn check_clean(root: &Path) {
    let o = snap(root).args(["check"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}
