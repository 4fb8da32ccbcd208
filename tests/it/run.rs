//! `snap run`: a real child process (python3 or sh scripts written by the
//! test) reports epochs, commits by itself, prints, fails and gets signals;
//! the runner turns that into snapshots, tags, exit codes and a final record.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// Keep every snapshot at the end of a run, so the test can look at all of
/// them (the default policy keeps only each session's last).
const KEEP_ALL: &[u8] = b"[retention]\nkeep_per_session = 1000\n";

/// Writes a script beside the workspace (so it is not part of snapshots);
/// returns its path.
fn script(ws: &Ws, name: &str, body: &str) -> String {
    let p = ws.outside(name);
    write_file(&p, body.as_bytes());
    p.to_str().expect("utf-8 temp path").to_string()
}

/// The arguments of `snap run --session SESSION FLAGS -- COMMAND`.
fn run_args<'a>(session: &'a str, flags: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--session", session];
    args.extend(flags);
    args.push("--");
    args.extend(command);
    args
}

/// `snap run --session SESSION FLAGS -- COMMAND` with the snap binary on
/// PATH for the child, for a test to add environment or stdin to.
fn run_cmd(ws: &Ws, session: &str, flags: &[&str], command: &[&str]) -> assert_cmd::Command {
    let mut cmd = ws.cmd();
    cmd.env("PATH", path_with_snap())
        .args(run_args(session, flags, command));
    cmd
}

/// The same, run to its end.
fn snap_run(ws: &Ws, session: &str, flags: &[&str], command: &[&str]) -> Output {
    run_cmd(ws, session, flags, command)
        .output()
        .expect("run snap run")
}

fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "snap run: expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// The same as a `std::process::Command` (for spawning and signals).
fn run_std(ws: &Ws, session: &str, flags: &[&str], command: &[&str]) -> std::process::Command {
    let mut cmd = snap_std(&ws.root);
    cmd.env("PATH", path_with_snap())
        .args(run_args(session, flags, command));
    cmd
}

/// `snap run` as a spawned process (for signals), its output piped.
fn spawn_run(ws: &Ws, session: &str, flags: &[&str], command: &[&str]) -> Child {
    run_std(ws, session, flags, command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn snap run")
}

/// The snapshots of one session, oldest first.
fn session(ws: &Ws, name: &str) -> Vec<Value> {
    ws.log()
        .into_iter()
        .filter(|s| s["session"] == name)
        .collect()
}

fn label<'a>(s: &'a Value, key: &str) -> Option<&'a str> {
    s["labels"][key].as_str()
}

/// The session's final snapshot (the one with an `outcome` label); there
/// must be exactly one, and it must be the newest.
fn final_of(snaps: &[Value]) -> &Value {
    let finals: Vec<&Value> = snaps
        .iter()
        .filter(|s| label(s, "outcome").is_some())
        .collect();
    assert_eq!(finals.len(), 1, "one final snapshot in {snaps:#?}");
    assert_eq!(
        finals[0]["id"],
        snaps.last().expect("snapshots")["id"],
        "the final snapshot is the newest"
    );
    finals[0]
}

/// The final snapshot of session `name` (see `final_of`).
fn final_in(ws: &Ws, name: &str) -> Value {
    final_of(&session(ws, name)).clone()
}

/// Asserts the labels in which a final snapshot records how the run ended.
#[track_caller]
fn assert_ended(fin: &Value, outcome: &str, exit_code: &str, interrupted: &str) {
    assert_eq!(label(fin, "outcome"), Some(outcome), "outcome");
    assert_eq!(label(fin, "exit_code"), Some(exit_code), "exit_code");
    assert_eq!(label(fin, "interrupted"), Some(interrupted), "interrupted");
}

fn archives_of(snaps: &[Value]) -> Vec<&Value> {
    snaps
        .iter()
        .filter(|s| label(s, "signal") == Some("archive"))
        .collect()
}

/// The one snapshot of `snaps` with this epoch.
fn epoch_of(snaps: &[Value], epoch: u64) -> &Value {
    let found: Vec<&Value> = snaps.iter().filter(|s| s["epoch"] == epoch).collect();
    assert_eq!(
        found.len(),
        1,
        "one snapshot of epoch {epoch} in {snaps:#?}"
    );
    found[0]
}

fn cat(ws: &Ws, spec: &str) -> Vec<u8> {
    let o = ws.run(&["cat", spec]);
    assert!(o.status.success(), "snap cat {spec}: {}", stderr(&o));
    o.stdout
}

/// The bytes of `rel` in snapshot `snap`.
fn cat_in(ws: &Ws, snap: &Value, rel: &str) -> Vec<u8> {
    let id = snap["id"].as_str().expect("snapshot id");
    cat(ws, &format!("{id}:{rel}"))
}

/// The snapshot a tag names.
fn tagged(ws: &Ws, tag: &str) -> Value {
    ws.json(&["show", tag])["snapshot"].clone()
}

/// True once process `pid` has handlers installed for every signal in `sigs`
/// (Linux: the SigCgt mask in /proc/PID/status).
fn catches(pid: u32, sigs: &[i32]) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    sigs.iter().all(|s| mask & (1 << (s - 1)) != 0)
}

/// Waits until the child of `snap run` wrote its ready marker and the runner
/// forwards signals.
fn wait_ready(run: &mut Child, ready: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !(ready.exists() && catches(run.id(), &[libc::SIGINT, libc::SIGTERM])) {
        if let Some(status) = run.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = run.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).unwrap();
            }
            panic!("snap run ended ({status}) before the child was ready:\n{err}");
        }
        if std::time::Instant::now() > deadline {
            let _ = run.kill();
            let _ = run.wait();
            panic!("the child never became ready");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` to the runner (not to its child).
fn send(run: &Child, sig: i32) {
    // SAFETY: kill(2) on a child process we spawned and have not reaped.
    assert_eq!(unsafe { libc::kill(run.id() as i32, sig) }, 0, "kill");
}

const EPOCHS_PY: &str = r#"
import json, os, random, sys

def checkpoint(epoch):
    os.makedirs("ckpt", exist_ok=True)
    with open(f"ckpt/epoch_{epoch}.pt", "wb") as f:
        f.write(random.Random(epoch).randbytes(150_000))

checkpoint(1)
print("SNAP " + json.dumps({"epoch": 1, "metrics": {"val_loss": 0.9, "acc": 0.5}}), flush=True)
checkpoint(2)
print("SNAP " + json.dumps({"epoch": 2, "val_loss": 0.7, "acc": 0.625}), file=sys.stderr, flush=True)
checkpoint(3)
sys.stdout.write("SNAP " + json.dumps({"epoch": 3, "metrics": {"val_loss": 0.8}, "note": "last"}) + "\r\n")
sys.stdout.flush()
print("training done", flush=True)
"#;

#[test]
fn snap_lines_become_epoch_snapshots_between_archive_and_final() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    ws.write("config/train.yaml", b"lr: 3e-4\nepochs: 3\n");
    let train_bin = random_bytes(1001, 300_000);
    ws.write("data/train.bin", &train_bin);
    let py = script(&ws, "epochs.py", EPOCHS_PY);

    let o = snap_run(&ws, "s1", &["--json"], &["python3", &py]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("training done\n"), "{out}");
    let report: Value = serde_json::from_str(out.lines().last().expect("report line"))
        .unwrap_or_else(|e| panic!("the last stdout line is the JSON report ({e}):\n{out}"));
    assert_eq!(report["session"], "s1");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["interrupted"], false);
    assert_eq!(report["errors"], serde_json::json!([]));

    let snaps = session(&ws, "s1");
    assert_eq!(snaps.len(), 5, "archive, three epochs, final: {snaps:#?}");
    let mut reported: Vec<&str> = report["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut logged: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    reported.sort();
    logged.sort();
    assert_eq!(reported, logged);

    // The archive comes first and holds exactly the pre-run workspace.
    let archive = archives_of(&snaps);
    assert_eq!(archive.len(), 1);
    assert_eq!(archive[0]["id"], snaps[0]["id"]);
    assert!(archive[0]["epoch"].is_null());
    let dir = ws.restore_to(archive[0]["id"].as_str().unwrap(), "archive");
    let files = file_contents(&dir, &[]);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["config/train.yaml", "data/train.bin", "snap.toml"]
    );
    assert_eq!(files["data/train.bin"], train_bin);

    // One snapshot per epoch with its metrics and where the signal came from.
    let e1 = epoch_of(&snaps, 1);
    assert_eq!(
        e1["metrics"],
        serde_json::json!({"val_loss": 0.9, "acc": 0.5})
    );
    assert_eq!(label(e1, "signal"), Some("stdout"));
    let e2 = epoch_of(&snaps, 2);
    assert_eq!(
        e2["metrics"],
        serde_json::json!({"val_loss": 0.7, "acc": 0.625})
    );
    assert_eq!(label(e2, "signal"), Some("stderr"));
    let e3 = epoch_of(&snaps, 3);
    assert_eq!(e3["metrics"], serde_json::json!({"val_loss": 0.8}));
    for s in [e1, e2, e3] {
        assert_eq!(s["session"], "s1");
    }

    // Each epoch's checkpoint (and the earlier ones) is in its snapshot,
    // reachable as SESSION@EPOCH.
    for e in 1..=3u64 {
        for k in 1..=e {
            let rel = format!("ckpt/epoch_{k}.pt");
            assert_eq!(
                cat(&ws, &format!("s1@{e}:{rel}")),
                fs::read(ws.path(&rel)).unwrap(),
                "s1@{e}:{rel}"
            );
        }
    }
    assert_eq!(
        ws.json(&["show", "s1@2"])["snapshot"]["id"],
        e2["id"],
        "SESSION@EPOCH names the epoch's snapshot"
    );

    // The final snapshot records the outcome and holds everything.
    let fin = final_of(&snaps);
    assert_ended(fin, "exited 0", "0", "false");
    assert!(label(fin, "command").is_some_and(|c| c.contains("python3")));
    let dir = ws.restore_to(fin["id"].as_str().unwrap(), "final");
    assert_eq!(
        file_contents(&dir, &[]),
        file_contents(&ws.root, &[".snap"])
    );
}

#[test]
fn a_child_that_commits_itself_gets_exactly_its_epoch_files() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    let src = ws.outside("src");
    let mut rng = Rng::new(1002);
    let ckpts: Vec<Vec<u8>> = (1..=3).map(|_| rng.bytes(400_000)).collect();
    for (i, c) in ckpts.iter().enumerate() {
        write_file(&src.join(format!("ckpt_{}.bin", i + 1)), c);
    }
    // The same path is overwritten every epoch: only a commit that waits
    // for the files gets each epoch's bytes.
    let sh = script(
        &ws,
        "train.sh",
        r#"set -e
mkdir -p ckpt
for e in 1 2 3; do
  cp "$CKPT_SRC/ckpt_$e.bin" ckpt/model.pt
  snap commit --epoch "$e" --metric "val_loss=0.$((9 - e))" -m "epoch $e" >/dev/null
done
echo "session was $SNAP_SESSION"
"#,
    );
    let o = run_cmd(
        &ws,
        "self",
        &["--no-archive", "--best", "val_loss"],
        &["sh", &sh],
    )
    .env("CKPT_SRC", &src)
    .output()
    .unwrap();
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "session was self\n");

    let snaps = session(&ws, "self");
    assert_eq!(snaps.len(), 4, "three epochs and the final: {snaps:#?}");
    assert!(archives_of(&snaps).is_empty());
    for e in 1..=3u64 {
        let s = epoch_of(&snaps, e);
        assert_eq!(s["session"], "self", "joined through SNAP_SESSION");
        assert_eq!(s["message"], format!("epoch {e}"));
        assert_eq!(
            s["metrics"]["val_loss"].as_f64(),
            Some(format!("0.{}", 9 - e).parse().unwrap())
        );
        let dir = ws.restore_to(&format!("self@{e}"), &format!("epoch{e}"));
        let files = file_contents(&dir, &[]);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["ckpt/model.pt", "snap.toml"]
        );
        assert!(
            files["ckpt/model.pt"] == ckpts[e as usize - 1],
            "self@{e}: ckpt/model.pt is not epoch {e}'s checkpoint"
        );
    }
    // Snapshots the child committed count for --best.
    let best = tagged(&ws, "self/best");
    assert_eq!(best["epoch"], 3);
    assert_eq!(tagged(&ws, "best")["id"], best["id"]);
}

/// Commits epoch after epoch with `val_loss` from argv, and after each one
/// waits (up to 60 s) for `self/best` to name the best so far, printing
/// `ranked N` when it does: the runner must rank a command's own commit
/// while the command runs, not only at the end.
const SELF_RANKED_PY: &str = r#"
import json, subprocess, sys, time
def snap(*args):
    return json.loads(subprocess.run(["snap", *args, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
best = None
for epoch, loss in enumerate(map(float, sys.argv[1:]), start=1):
    sid = snap("commit", "--epoch", str(epoch), "--metric", f"val_loss={loss}")["id"]
    if best is None or loss < best[1]:
        best = (sid, loss)
    deadline = time.time() + 60
    while time.time() < deadline:
        tags = {t["name"]: t["snapshot"] for t in snap("tags")}
        if tags.get("self/best") == best[0]:
            print(f"ranked {epoch}", flush=True)
            break
        time.sleep(0.05)
    else:
        sys.exit(f"epoch {epoch}: self/best is {tags.get('self/best')}, not {best[0]}")
"#;

#[test]
fn a_commit_the_command_makes_itself_moves_best_while_it_runs() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    ws.write("model.pt", b"weights");
    let py = script(&ws, "self_ranked.py", SELF_RANKED_PY);
    let o = snap_run(
        &ws,
        "self",
        &["--no-archive", "--best", "val_loss"],
        &["python3", &py, "0.5", "0.3", "0.4"],
    );
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        "ranked 1\nranked 2\nranked 3\n",
        "{}",
        stderr(&o)
    );
    let best = tagged(&ws, "self/best");
    assert_eq!(best["epoch"], 2);
    assert_eq!(tagged(&ws, "best")["id"], best["id"]);
}

const EMIT_PY: &str = r#"
import json, sys
for payload in json.loads(sys.argv[1]):
    print("SNAP " + json.dumps(payload), flush=True)
"#;

#[test]
fn best_tags_follow_min_and_max_metrics_per_session() {
    let ws = Ws::new();
    ws.write("notes.txt", b"notes");
    let py = script(&ws, "emit.py", EMIT_PY);
    let run = |session: &str, best: &str, payloads: &str| {
        let o = snap_run(
            &ws,
            session,
            &["--best", best, "--json"],
            &["python3", &py, payloads],
        );
        assert_exit(&o, 0);
        let out = stdout(&o);
        serde_json::from_str::<Value>(out.lines().last().unwrap()).expect("report")
    };

    // val_loss has no suffix: minimised.
    let ra = run(
        "exp-a",
        "val_loss",
        r#"[{"epoch": 1, "val_loss": 0.9}, {"epoch": 2, "val_loss": 0.5},
            {"epoch": 3, "val_loss": 0.7}, {"epoch": 4, "val_loss": 0.6}]"#,
    );
    let a_best = tagged(&ws, "exp-a/best");
    assert_eq!(a_best["session"], "exp-a");
    assert_eq!(a_best["epoch"], 2);
    assert_eq!(a_best["metrics"]["val_loss"], 0.5);
    assert_eq!(tagged(&ws, "best")["id"], a_best["id"]);
    assert_eq!(ra["best"][0], a_best["id"]);
    assert_eq!(ra["best"][1], 0.5);

    let rb = run(
        "exp-b",
        "acc:max",
        r#"[{"epoch": 1, "acc": 0.2}, {"epoch": 2, "acc": 0.8}, {"epoch": 3, "acc": 0.5}]"#,
    );
    let b_best = tagged(&ws, "exp-b/best");
    assert_eq!(b_best["session"], "exp-b");
    assert_eq!(b_best["epoch"], 2);
    assert_eq!(rb["best"][1], 0.8);
    // `best` was chosen on val_loss:min; a run ranked by acc does not take it.
    assert_eq!(tagged(&ws, "best")["id"], a_best["id"], "best stayed");
    assert_eq!(rb["global_best"], false);
    assert_eq!(
        tagged(&ws, "exp-a/best")["id"],
        a_best["id"],
        "exp-a keeps its own best"
    );

    // An explicit suffix overrides the guess from the name.
    run(
        "exp-c",
        "val_loss:max",
        r#"[{"epoch": 1, "val_loss": 0.3}, {"epoch": 2, "val_loss": 0.1},
            {"epoch": 3, "val_loss": 0.4}, {"epoch": 4, "val_loss": 0.2}]"#,
    );
    let c_best = tagged(&ws, "exp-c/best");
    assert_eq!(c_best["epoch"], 3);
    // Same metric, other direction: `best` stays too.
    assert_eq!(tagged(&ws, "best")["id"], a_best["id"]);
    assert_eq!(tagged(&ws, "exp-a/best")["id"], a_best["id"]);
    assert_eq!(tagged(&ws, "exp-b/best")["id"], b_best["id"]);

    // Same metric and direction: a worse run leaves `best`, a better one takes it.
    let rd = run(
        "exp-d",
        "val_loss",
        r#"[{"epoch": 1, "val_loss": 0.8}, {"epoch": 2, "val_loss": 0.6}]"#,
    );
    assert_eq!(rd["global_best"], false);
    assert_eq!(tagged(&ws, "best")["id"], a_best["id"], "a worse run");
    assert_eq!(tagged(&ws, "exp-d/best")["epoch"], 2);
    let re = run(
        "exp-e",
        "val_loss",
        r#"[{"epoch": 1, "val_loss": 0.7}, {"epoch": 2, "val_loss": 0.25}]"#,
    );
    assert_eq!(re["global_best"], true);
    let e_best = tagged(&ws, "exp-e/best");
    assert_eq!(e_best["metrics"]["val_loss"], 0.25);
    assert_eq!(tagged(&ws, "best")["id"], e_best["id"], "a better run");
    ws.ok(&["check"]);
}

const WATCH_PY: &str = r#"
import json, os, subprocess, sys, time

session = os.environ["SNAP_SESSION"]

def wait_for_epoch(n):
    deadline = time.time() + 30
    while time.time() < deadline:
        out = subprocess.run(["snap", "log", "--session", session, "--json"],
                             check=True, capture_output=True).stdout
        if any(s["epoch"] == n for s in json.loads(out)):
            return
        time.sleep(0.1)
    sys.exit(f"no snapshot of epoch {n} appeared")

with open(sys.argv[1], "rb") as f:
    data = f.read()
with open("ckpt/epoch_7.pt", "wb") as f:
    f.write(data)
wait_for_epoch(7)
with open("metrics.jsonl", "a") as f:
    f.write(json.dumps({"epoch": 8, "metrics": {"val_loss": 0.25}}) + "\n")
wait_for_epoch(8)
with open("metrics.jsonl", "a") as f:
    f.write(json.dumps({"val_loss": 0.125}) + "\n")
wait_for_epoch(9)
"#;

#[test]
fn watched_checkpoints_and_metrics_lines_become_epochs() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    // Present before the run and never changed: not an epoch signal.
    ws.write("ckpt/epoch_1.pt", &random_bytes(1003, 10_000));
    // Lines already in the metrics file belong to an earlier run.
    ws.write("metrics.jsonl", b"{\"epoch\": 99, \"val_loss\": 0.5}\n");
    let ckpt = random_bytes(1004, MIB);
    let src = ws.outside("epoch_7.src");
    write_file(&src, &ckpt);
    let py = script(&ws, "watch.py", WATCH_PY);

    let o = snap_run(
        &ws,
        "w",
        &["--watch", "ckpt/*.pt", "--metrics", "metrics.jsonl"],
        &["python3", &py, src.to_str().unwrap()],
    );
    assert_exit(&o, 0);

    let snaps = session(&ws, "w");
    let epochs: Vec<u64> = snaps.iter().filter_map(|s| s["epoch"].as_u64()).collect();
    assert_eq!(epochs, [7, 8, 9], "{snaps:#?}");
    let e7 = epoch_of(&snaps, 7);
    assert_eq!(label(e7, "signal"), Some("watch ckpt/epoch_7.pt"));
    assert_eq!(cat(&ws, "w@7:ckpt/epoch_7.pt"), ckpt);
    let e8 = epoch_of(&snaps, 8);
    assert_eq!(label(e8, "signal"), Some("metrics-file"));
    assert_eq!(e8["metrics"], serde_json::json!({"val_loss": 0.25}));
    // A line without an epoch is the previous epoch + 1.
    let e9 = epoch_of(&snaps, 9);
    assert_eq!(e9["metrics"], serde_json::json!({"val_loss": 0.125}));
    assert_eq!(label(final_of(&snaps), "outcome"), Some("exited 0"));
}

/// Issue 9: a `--metrics` file that does not exist when the run starts, and a
/// command that writes its only epoch line and exits before the next poll.
#[test]
fn a_metrics_file_the_command_creates_counts_from_its_first_line() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    let o = snap_run(
        &ws,
        "mf",
        &["--metrics", "logs/metrics.jsonl"],
        &[
            "sh",
            "-c",
            r#"mkdir -p logs && echo '{"epoch": 1, "val_loss": 0.5}' > logs/metrics.jsonl"#,
        ],
    );
    assert_exit(&o, 0);
    let snaps = session(&ws, "mf");
    let e1 = epoch_of(&snaps, 1);
    assert_eq!(label(e1, "signal"), Some("metrics-file"));
    assert_eq!(e1["metrics"], serde_json::json!({"val_loss": 0.5}));
    assert_eq!(
        cat_in(&ws, e1, "logs/metrics.jsonl"),
        b"{\"epoch\": 1, \"val_loss\": 0.5}\n"
    );

    // The same for a watched checkpoint written just before the command exits.
    let o = snap_run(
        &ws,
        "wf",
        &["--watch", "ckpt/*.pt"],
        &[
            "sh",
            "-c",
            "mkdir -p ckpt && echo weights > ckpt/epoch_1.pt",
        ],
    );
    assert_exit(&o, 0);
    let snaps = session(&ws, "wf");
    let e1 = epoch_of(&snaps, 1);
    assert_eq!(label(e1, "signal"), Some("watch ckpt/epoch_1.pt"));
    assert_eq!(cat_in(&ws, e1, "ckpt/epoch_1.pt"), b"weights\n");
}

/// Issue 9: a metric lost its last digit (one ULP) on the way from a `SNAP`
/// line to the snapshot.
#[test]
fn metrics_keep_every_digit_from_snap_lines_and_the_command_line() {
    const EXACT: &str = "0.9289565118673777";
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    let line = format!(r#"echo 'SNAP {{"epoch": 1, "val_acc": {EXACT}}}'"#);
    let commit = format!("snap commit --epoch 2 --metric val_acc={EXACT} >/dev/null");
    let o = snap_run(&ws, "ulp", &[], &["sh", "-c", &format!("{line}; {commit}")]);
    assert_exit(&o, 0);
    let log = ws.ok(&["log", "--json"]);
    assert_eq!(
        log.matches(&format!("\"val_acc\": {EXACT}\n")).count(),
        2,
        "both snapshots hold {EXACT} exactly:\n{log}"
    );
    let want: f64 = EXACT.parse().unwrap();
    let snaps = session(&ws, "ulp");
    for e in [1, 2] {
        let got = epoch_of(&snaps, e)["metrics"]["val_acc"].as_f64().unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "epoch {e}");
    }
}

const STEPS_PY: &str = r#"
import json, os, subprocess, sys, time

session = os.environ["SNAP_SESSION"]

def wait_for(what, pred):
    deadline = time.time() + 30
    while time.time() < deadline:
        out = subprocess.run(["snap", "log", "--session", session, "--json"],
                             check=True, capture_output=True).stdout
        if any(pred(s) for s in json.loads(out)):
            return
        time.sleep(0.1)
    sys.exit(f"no snapshot of {what} appeared")

def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)

write("lightning/epoch=0-step=300.ckpt", b"lightning weights")
wait_for("step 300", lambda s: s["step"] == 300)
os.makedirs("out/checkpoint-500")
write("out/checkpoint-500/model.safetensors", b"hf weights")
write("out/checkpoint-500/trainer_state.json", b"{}")
wait_for("step 500", lambda s: s["step"] == 500)
print("SNAP " + json.dumps({"step": 700, "loss": 0.5}), flush=True)
wait_for("step 700", lambda s: s["step"] == 700)
write("ckpt/epoch_15.pt", b"plain")
wait_for("epoch 15", lambda s: s["epoch"] == 15)
print("SNAP " + json.dumps({"loss": 0.25}), flush=True)
wait_for("epoch 16", lambda s: s["epoch"] == 16)
subprocess.run(["snap", "commit", "--epoch", "16", "--step", "800"], check=True,
               capture_output=True)
"#;

#[test]
fn lightning_and_hugging_face_checkpoints_give_epochs_and_steps() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    let py = script(&ws, "steps.py", STEPS_PY);
    let o = snap_run(
        &ws,
        "st",
        &[
            "--json",
            "--watch",
            "lightning/*.ckpt",
            "--watch",
            "out/checkpoint-*",
            "--watch",
            "ckpt/*.pt",
        ],
        &["python3", &py],
    );
    assert_exit(&o, 0);
    let snaps = session(&ws, "st");
    let one = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        let found: Vec<&Value> = snaps.iter().filter(|s| pred(s)).collect();
        assert_eq!(found.len(), 1, "one snapshot of {what} in {snaps:#?}");
        found[0].clone()
    };

    // Lightning's epoch=0-step=300 is epoch 0, step 300 (not epoch 300).
    let l = one("step 300", &|s| s["step"] == 300);
    assert_eq!(l["epoch"], 0);
    assert_eq!(
        label(&l, "signal"),
        Some("watch lightning/epoch=0-step=300.ckpt")
    );
    // A Hugging Face checkpoint directory is one signal, step 500, no epoch,
    // once all its files are written.
    let hf = one("step 500", &|s| s["step"] == 500);
    assert!(hf["epoch"].is_null(), "no epoch is invented: {hf:#?}");
    assert_eq!(label(&hf, "signal"), Some("watch out/checkpoint-500/"));
    assert_eq!(
        cat(&ws, "st@step=500:out/checkpoint-500/model.safetensors"),
        b"hf weights"
    );
    assert_eq!(
        cat(&ws, "st@step=500:out/checkpoint-500/trainer_state.json"),
        b"{}"
    );
    one("a watch signal under out/", &|s| {
        label(s, "signal").is_some_and(|l| l.starts_with("watch out/"))
    });
    // A SNAP line with a step only: no epoch either.
    let line = one("step 700", &|s| s["step"] == 700);
    assert!(line["epoch"].is_null());
    assert_eq!(line["metrics"], serde_json::json!({"loss": 0.5}));
    // A plain name is still an epoch, and a signal without any number counts
    // on from the last epoch (15), not from the step-only snapshots.
    let e15 = one("epoch 15", &|s| s["epoch"] == 15);
    assert!(e15["step"].is_null());
    let e16 = one("the runner's epoch 16", &|s| {
        s["epoch"] == 16 && label(s, "signal") == Some("stdout")
    });
    assert_eq!(e16["metrics"], serde_json::json!({"loss": 0.25}));
    let own = one("the command's commit", &|s| s["step"] == 800);
    assert_eq!(own["epoch"], 16);
    let epochs: Vec<u64> = snaps.iter().filter_map(|s| s["epoch"].as_u64()).collect();
    assert_eq!(epochs, [0, 15, 16, 16], "{snaps:#?}");

    // The report lists every snapshot of the run, the command's own included.
    let out = stdout(&o);
    let report: Value = serde_json::from_str(out.lines().last().unwrap()).expect("report");
    let mut reported: Vec<&str> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut logged: Vec<&str> = snaps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    reported.sort();
    logged.sort();
    assert_eq!(reported, logged);
    assert_eq!(
        reported.len(),
        8,
        "archive, 5 signals, the command's, final"
    );
}

#[test]
fn the_run_counts_the_commands_own_commits_and_says_sizes_plainly() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    ws.write("w.bin", &random_bytes(1010, MIB));
    ws.write("out/old.bin", b"old");
    let o = snap_run(
        &ws,
        "r",
        &["--clean", "out", "--json"],
        &["sh", "-c", "snap commit --epoch 1 >/dev/null"],
    );
    assert_exit(&o, 0);
    let err = stderr(&o);
    let archive = id_of(archives_of(&session(&ws, "r"))[0]);
    assert!(
        err.contains(&format!(
            "snap: snapshot {}: 3 files, 1.0 MiB new\n",
            &archive[..8]
        )),
        "{err}"
    );
    assert!(
        err.contains("out: deleted 1 file, all held by the archive snapshot\n"),
        "{err}"
    );
    assert!(!err.contains("new bytes stored"), "{err}");
    assert!(
        !err.contains("commit ["),
        "no progress bar off a terminal: {err}"
    );
    let report: Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(
        report["snapshots"].as_array().unwrap().len(),
        3,
        "archive, the command's epoch 1, final: {report}"
    );

    // A second run of the same session counts its own snapshots only.
    let o = snap_run(
        &ws,
        "r",
        &["--no-archive", "--json"],
        &[
            "sh",
            "-c",
            "snap commit --step 5 >/dev/null; snap commit --step 6 >/dev/null",
        ],
    );
    assert_exit(&o, 0);
    let report: Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    let ids: Vec<&str> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let snaps = session(&ws, "r");
    assert_eq!(snaps.len(), 6);
    let newest: Vec<&str> = snaps[3..]
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, newest, "steps 5, 6 and the final, oldest first");
}

#[test]
fn the_archive_snapshot_shows_a_progress_bar_on_a_terminal() {
    let ws = Ws::new();
    ws.write("big.bin", &random_bytes(1011, 16 * MIB));
    let pty = Pty::open();
    let slave = pty.open_slave();
    let reader = pty.read_master();
    let mut cmd = run_std(&ws, "bar", &[], &["true"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    pty.attach_stderr(&mut cmd);
    assert!(cmd.status().expect("snap run").success());
    drop(slave);
    let out = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(
        out.contains("commit ["),
        "a bar for the archive commit on the terminal:\n{out:?}"
    );
    assert!(out.contains("snap: session bar exited 0"), "{out:?}");
}

const OUTPUT_PY: &str = r#"
import os, sys, time

chunks = [
    b"plain line\n",
    b"progress  10%\rprogress  55%\rprogress 100%\n",
    b"\xff\xfe not utf-8 \x00 bytes\n",
    b'SNAP {"epoch": 1, "loss": 0.5}\r\n',
    b"tail without newline",
]
out = sys.stdout.buffer
for c in chunks:
    out.write(c)
    out.flush()
# Wait until the capture holds all of stdout, so that stderr follows it there.
want = sum(len(c) for c in chunks)
deadline = time.time() + 30
while os.path.getsize(sys.argv[1]) < want:
    if time.time() > deadline:
        sys.exit("the capture file never got stdout")
    time.sleep(0.01)
sys.stderr.buffer.write(b"warning: on stderr\nstderr tail")
sys.stderr.buffer.flush()
"#;

#[test]
fn output_passes_through_byte_for_byte_and_is_captured() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    fs::create_dir(ws.path("logs")).unwrap();
    let py = script(&ws, "output.py", OUTPUT_PY);
    let capture = ws.path("logs/run.out");
    let o = snap_run(
        &ws,
        "out",
        &["--capture", "logs/run.out"],
        &["python3", &py, capture.to_str().unwrap()],
    );
    assert_exit(&o, 0);
    let want_out: &[u8] = b"plain line\nprogress  10%\rprogress  55%\rprogress 100%\n\
        \xff\xfe not utf-8 \x00 bytes\nSNAP {\"epoch\": 1, \"loss\": 0.5}\r\ntail without newline";
    let want_err: &[u8] = b"warning: on stderr\nstderr tail";
    assert!(
        o.stdout == want_out,
        "stdout differs:\n{:?}\nwant:\n{:?}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(want_out)
    );
    let err = stderr(&o);
    assert!(err.contains("warning: on stderr\n"), "{err}");
    assert!(err.contains("stderr tail"), "{err}");

    let captured = fs::read(&capture).unwrap();
    assert!(
        captured == [want_out, want_err].concat(),
        "capture differs: {:?}",
        String::from_utf8_lossy(&captured)
    );
    let snaps = session(&ws, "out");
    let e1 = epoch_of(&snaps, 1);
    assert_eq!(e1["metrics"], serde_json::json!({"loss": 0.5}));
    let fin = final_of(&snaps);
    assert_eq!(cat_in(&ws, fin, "logs/run.out"), captured);
}

#[test]
fn the_json_report_is_a_line_of_its_own() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let o = snap_run(
        &ws,
        "nl",
        &["--json"],
        &["sh", "-c", "printf 'epoch 1 done\\nprogress 100%%'"],
    );
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("epoch 1 done\nprogress 100%"), "{out:?}");
    // docs/training.md: the report is "one JSON line, the last line of stdout".
    let last = out.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line is not the JSON report ({e}): {last:?}"));
    assert_eq!(report["session"], "nl");
}

#[test]
fn exit_code_and_death_by_signal_are_passed_on() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");

    let o = snap_run(&ws, "fails", &[], &["sh", "-c", "echo bye; exit 3"]);
    assert_exit(&o, 3);
    assert_eq!(stdout(&o), "bye\n");
    let fin = final_in(&ws, "fails");
    assert_ended(&fin, "failed with exit code 3", "3", "false");

    let o = snap_run(&ws, "killed", &[], &["sh", "-c", "kill -9 $$"]);
    assert_exit(&o, 137);
    let fin = final_in(&ws, "killed");
    assert_ended(&fin, "killed by signal 9", "137", "false");

    let o = snap_run(
        &ws,
        "py-killed",
        &[],
        &["python3", "-c", "import os; os.kill(os.getpid(), 9)"],
    );
    assert_exit(&o, 137);
    ws.ok(&["check"]);
}

const SIGNAL_PY: &str = r#"
import os, signal, sys, time

ready, mode = sys.argv[1], sys.argv[2]

def on_int(sig, frame):
    os.makedirs("saved", exist_ok=True)
    with open("saved/interrupted.txt", "w") as f:
        f.write("saved on SIGINT\n")
    sys.exit(130)

def on_term(sig, frame):
    os.makedirs("saved", exist_ok=True)
    with open("saved/term.txt", "w") as f:
        f.write("got SIGTERM, carrying on\n")

if mode == "int":
    signal.signal(signal.SIGINT, on_int)
elif mode == "term-carry-on":
    signal.signal(signal.SIGTERM, on_term)
elif mode == "worker":
    # A worker in the child's process group, as a data loader starts them.
    import subprocess
    w = subprocess.Popen(["sleep", "120"])
    with open(ready + ".worker", "w") as f:
        f.write(str(w.pid))
open(ready, "w").close()
go = ready + ".go"
deadline = time.time() + 60
while time.time() < deadline and not os.path.exists(go):
    time.sleep(0.02)
sys.exit(0 if os.path.exists(go) else 5)
"#;

/// `snap run --session SESSION -- python3 SIGNAL_PY READY MODE`, returned
/// once the child is ready and the runner forwards signals.
fn spawn_signal_child(ws: &Ws, session: &str, mode: &str) -> Child {
    let py = script(ws, "sig_child.py", SIGNAL_PY);
    let ready = ws.outside("ready");
    let ready_arg = ready.to_str().expect("utf-8 temp path");
    let mut run = spawn_run(ws, session, &[], &["python3", &py, ready_arg, mode]);
    wait_ready(&mut run, &ready);
    run
}

/// Lets a waiting SIGNAL_PY child exit 0.
fn release_signal_child(ws: &Ws) {
    fs::write(ws.outside("ready.go"), b"").unwrap();
}

#[test]
fn sigint_is_forwarded_and_the_final_snapshot_has_what_the_child_saved() {
    let ws = Ws::new();
    ws.write("config.yaml", b"lr: 1\n");
    let run = spawn_signal_child(&ws, "int", "int");
    send(&run, libc::SIGINT);
    let o = run.wait_with_output().unwrap();
    assert_exit(&o, 130);

    let fin = final_in(&ws, "int");
    assert_ended(
        &fin,
        "interrupted, failed with exit code 130",
        "130",
        "true",
    );
    assert_eq!(
        cat_in(&ws, &fin, "saved/interrupted.txt"),
        b"saved on SIGINT\n"
    );
}

#[test]
fn sigterm_is_forwarded_to_a_child_that_carries_on() {
    let ws = Ws::new();
    ws.write("config.yaml", b"lr: 1\n");
    let mut run = spawn_signal_child(&ws, "term", "term-carry-on");
    send(&run, libc::SIGTERM);
    wait_for("the child to get SIGTERM", Duration::from_secs(30), || {
        ws.path("saved/term.txt").exists()
    });
    // The child is still running, so the runner must be too.
    assert!(run.try_wait().unwrap().is_none(), "snap run ended early");
    release_signal_child(&ws);
    let o = run.wait_with_output().unwrap();
    assert_exit(&o, 0);
    let fin = final_in(&ws, "term");
    assert_ended(&fin, "interrupted, exited 0", "0", "true");
    assert_eq!(
        cat_in(&ws, &fin, "saved/term.txt"),
        b"got SIGTERM, carrying on\n"
    );
}

#[test]
fn sigterm_kills_a_child_without_a_handler() {
    let ws = Ws::new();
    ws.write("config.yaml", b"lr: 1\n");
    let run = spawn_signal_child(&ws, "term-default", "default");
    send(&run, libc::SIGTERM);
    let o = run.wait_with_output().unwrap();
    assert_exit(&o, 143);
    let fin = final_in(&ws, "term-default");
    assert_eq!(label(&fin, "interrupted"), Some("true"));
    assert_eq!(
        label(&fin, "outcome"),
        Some("interrupted, killed by signal 15")
    );
}

/// True while process `pid` runs (not a zombie).
fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| st.rsplit(") ").next().map(|rest| !rest.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn sigterm_reaches_the_processes_the_child_started() {
    let ws = Ws::new();
    ws.write("config.yaml", b"lr: 1\n");
    let run = spawn_signal_child(&ws, "workers", "worker");
    let worker: i32 = fs::read_to_string(ws.outside("ready.worker"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(running(worker), "the worker did not start");
    send(&run, libc::SIGTERM);
    let o = run.wait_with_output().unwrap();
    assert_exit(&o, 143);
    // The worker got the SIGTERM too, not only the command.
    wait_for("the worker to end", Duration::from_secs(30), || {
        !running(worker)
    });
    let fin = final_in(&ws, "workers");
    assert_ended(&fin, "interrupted, killed by signal 15", "143", "true");
}

#[test]
fn sighup_is_forwarded_and_the_runner_still_takes_its_final_snapshot() {
    let ws = Ws::new();
    ws.write("config.yaml", b"lr: 1\n");
    let run = spawn_signal_child(&ws, "hup", "default");
    send(&run, libc::SIGHUP);
    let o = run.wait_with_output().unwrap();
    assert_exit(&o, 129);
    let fin = final_in(&ws, "hup");
    assert_ended(&fin, "interrupted, killed by signal 1", "129", "true");
    assert_eq!(cat_in(&ws, &fin, "config.yaml"), b"lr: 1\n");
}

#[test]
fn a_session_cannot_run_twice_at_once() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let first = spawn_signal_child(&ws, "dup", "default");
    let before = ws.log().len();
    let o = snap_run(&ws, "dup", &[], &["sh", "-c", "touch ran"]);
    assert!(!o.status.success(), "a second run of session dup started");
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));
    assert!(!ws.path("ran").exists());
    assert_eq!(ws.log().len(), before, "the refused run committed");
    // Another session may run meanwhile; its retention spares the running one.
    let o = snap_run(&ws, "other", &[], &["true"]);
    assert_exit(&o, 0);
    assert!(!session(&ws, "dup").is_empty());

    release_signal_child(&ws);
    let o = first.wait_with_output().unwrap();
    assert_exit(&o, 0);
    assert_eq!(label(&final_in(&ws, "dup"), "outcome"), Some("exited 0"));
}

/// A workspace with `out/` holding files to be cleaned.
fn workspace_with_output_dir(keep_all: bool) -> (Ws, Vec<u8>) {
    let ws = Ws::new();
    if keep_all {
        ws.write("snap.toml", KEEP_ALL);
    }
    let old = random_bytes(1005, 200_000);
    ws.write("out/old_model.bin", &old);
    ws.write("out/sub/old.log", b"old log\n");
    ws.write("keep.txt", b"kept");
    (ws, old)
}

/// A shell command that leaves a marker beside the workspace, and the
/// marker's path: whether it exists tells if the command ran.
fn touch_marker(ws: &Ws) -> (PathBuf, String) {
    let marker = ws.outside("command-ran");
    let touch = format!("touch {}", marker.display());
    (marker, touch)
}

#[test]
fn clean_empties_the_directory_after_the_archive_holds_it() {
    let (ws, old) = workspace_with_output_dir(true);
    let o = snap_run(
        &ws,
        "c",
        &["--clean", "out"],
        &["sh", "-c", "ls -A out > listing.txt"],
    );
    assert_exit(&o, 0);
    // The command saw it empty, and it stays there, empty.
    assert_eq!(fs::read(ws.path("listing.txt")).unwrap(), b"");
    assert!(ws.path("out").is_dir());
    assert_eq!(count_entries(&ws.path("out")), 0);
    assert_eq!(fs::read(ws.path("keep.txt")).unwrap(), b"kept");

    let snaps = session(&ws, "c");
    let archive = archives_of(&snaps);
    assert_eq!(archive.len(), 1);
    assert_eq!(cat_in(&ws, archive[0], "out/old_model.bin"), old);
    assert_eq!(cat_in(&ws, archive[0], "out/sub/old.log"), b"old log\n");
    let fin = final_of(&snaps)["id"].as_str().unwrap().to_string();
    assert!(!ws.show_files(&fin).contains_key("out/old_model.bin"));
}

#[test]
fn clean_does_not_lose_data_under_the_default_retention() {
    let (ws, old) = workspace_with_output_dir(false);
    let o = snap_run(&ws, "c", &["--clean", "out"], &["true"]);
    assert_exit(&o, 0);
    assert_eq!(count_entries(&ws.path("out")), 0);
    // docs/training.md: "--clean ... happens only after the archive snapshot
    // is durable, so nothing is lost". Some snapshot must still hold it.
    let holders: Vec<String> = ws
        .log()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .filter(|id| ws.show_files(id).contains_key("out/old_model.bin"))
        .collect();
    assert!(
        !holders.is_empty(),
        "no snapshot holds the cleaned out/old_model.bin any more"
    );
    assert_eq!(cat(&ws, &format!("{}:out/old_model.bin", holders[0])), old);
    // Kept because its session is; not forever.
    let dry = ws.json(&["forget", "--dry-run", "--keep-sessions", "0"]);
    let keeps: Vec<&Value> = dry["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .collect();
    assert!(keeps.is_empty(), "{dry:#}");
}

#[test]
fn clean_outside_the_workspace_or_of_the_repository_is_refused() {
    let (ws, _) = workspace_with_output_dir(true);
    let elsewhere = ws.outside("elsewhere");
    write_file(&elsewhere.join("precious.txt"), b"precious");
    let (marker, touch) = touch_marker(&ws);
    std::os::unix::fs::symlink("../elsewhere", ws.path("linked")).unwrap();
    for dir in [
        elsewhere.to_str().unwrap(),
        "../elsewhere",
        ".",
        ".snap",
        "linked",
    ] {
        let o = snap_run(&ws, "bad", &["--clean", dir], &["sh", "-c", &touch]);
        assert_eq!(o.status.code(), Some(1), "--clean {dir}: {}", stderr(&o));
        assert!(stderr(&o).contains("--clean"), "{}", stderr(&o));
        assert!(!marker.exists(), "--clean {dir}: the command ran");
        // Refused before anything happened: not even the archive snapshot.
        assert!(ws.log().is_empty(), "--clean {dir}: a snapshot was taken");
    }
    assert_eq!(
        fs::read(elsewhere.join("precious.txt")).unwrap(),
        b"precious"
    );
    assert!(ws.path("keep.txt").exists());
    assert!(ws.path("out/old_model.bin").exists());
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn clean_through_a_symlink_does_not_empty_a_directory_outside() {
    let (ws, _) = workspace_with_output_dir(true);
    let elsewhere = ws.outside("elsewhere");
    write_file(&elsewhere.join("precious.txt"), b"precious");
    std::os::unix::fs::symlink("../elsewhere", ws.path("linked")).unwrap();
    let o = snap_run(&ws, "link", &["--clean", "linked"], &["true"]);
    // Nothing but the link itself would be in any snapshot: the files
    // would be gone for good.
    assert_eq!(
        fs::read(elsewhere.join("precious.txt")).ok().as_deref(),
        Some(&b"precious"[..]),
        "snap run exited {:?} and deleted a file outside the workspace:\n{}",
        o.status.code(),
        stderr(&o)
    );
}

#[test]
fn a_refused_clean_empties_nothing() {
    let (ws, _) = workspace_with_output_dir(true);
    let o = snap_run(
        &ws,
        "bad",
        &["--clean", "out", "--clean", "../elsewhere"],
        &["true"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        ws.path("out/old_model.bin").exists(),
        "the run was refused but out/ was emptied"
    );
    assert!(ws.log().is_empty(), "the refused run took a snapshot");
}

#[test]
fn no_archive_means_no_archive_snapshot() {
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    ws.write("a.txt", b"a");
    let o = snap_run(&ws, "na", &["--no-archive"], &["true"]);
    assert_exit(&o, 0);
    let snaps = session(&ws, "na");
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    assert!(archives_of(&snaps).is_empty());
    assert_eq!(label(final_of(&snaps), "outcome"), Some("exited 0"));
    // The same run without the flag has one.
    let o = snap_run(&ws, "with", &[], &["true"]);
    assert_exit(&o, 0);
    assert_eq!(archives_of(&session(&ws, "with")).len(), 1);
}

#[test]
fn an_unknown_command_is_recorded_runs_no_retention_and_is_no_session() {
    let ws = Ws::new();
    // With keep_epochs = 1, retention would forget epoch 1 of session "old".
    ws.write("snap.toml", b"[retention]\nkeep_epochs = 1\n");
    ws.write("a.txt", b"a");
    let old1 = ws.commit_id(&["--session", "old", "--epoch", "1"]);
    ws.write("a.txt", b"b");
    ws.commit_id(&["--session", "old", "--epoch", "2"]);
    let o = snap_run(
        &ws,
        "nope",
        &["--json"],
        &["no-such-command-snap-it", "--flag"],
    );
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("no-such-command-snap-it"), "{err}");
    assert!(err.contains("cannot start"), "{err}");
    let report: Value = serde_json::from_str(stdout(&o).lines().last().unwrap()).unwrap();
    assert_eq!(report["retention"], "skipped: the command did not start");
    let snaps = session(&ws, "nope");
    assert_eq!(snaps.len(), 2, "{snaps:#?}");
    let last = final_of(&snaps);
    assert!(label(last, "outcome")
        .unwrap()
        .starts_with("could not start"));
    assert_eq!(label(last, "started"), Some("false"));
    assert_eq!(label(last, "exit_code"), Some("127"));
    assert!(
        ws.log().iter().any(|s| s["id"] == old1),
        "retention ran after a command that did not start"
    );
    // Its snapshots are plain commits for retention, not a session.
    let dry = ws.json(&["forget", "--dry-run"]);
    for s in &snaps {
        let d = dry["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == s["id"])
            .unwrap();
        assert_eq!(d["reasons"][0]["reason"], "recent_commit", "{d}");
    }
    // "old" is still training session #1: the failed run does not count.
    let d = dry["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == old1)
        .unwrap()
        .clone();
    assert_eq!(
        d["reasons"][0],
        serde_json::json!({"reason": "older_epoch", "detail": {"rank": 1, "position": 2}})
    );
    // No command at all is a usage error.
    let o = ws
        .cmd()
        .env("PATH", path_with_snap())
        .args(["run", "--session", "nope"])
        .output()
        .expect("run snap run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    ws.ok(&["check"]);
}

/// `snap forget` probing which sessions run (here: threads calling the
/// same function in a loop) must not make a starting `snap run` think its
/// session is already running. The session's lock file is left over from
/// a killed runner, so every probe finds it.
#[test]
fn probing_running_sessions_does_not_refuse_a_starting_run() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let locks = ws.repo().join("locks");
    let o = snap_run(&ws, "p", &[], &["sh", "-c", "kill -9 $PPID"]);
    assert_eq!(o.status.signal(), Some(libc::SIGKILL), "{}", stderr(&o));
    let stale: Vec<_> = fs::read_dir(&locks)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("session-"))
        .map(|e| (e.path(), fs::read(e.path()).unwrap()))
        .collect();
    assert_eq!(stale.len(), 1, "the killed runner left its lock file");
    let (stale_path, stale_bytes) = stale[0].clone();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probers: Vec<_> = (0..4)
        .map(|_| {
            let (locks, stop) = (locks.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let _ = snapstore::store::lock::running_sessions(&locks);
                }
            })
        })
        .collect();
    let mut refused = Vec::new();
    for _ in 0..40 {
        fs::write(&stale_path, &stale_bytes).unwrap();
        let o = snap_run(&ws, "p", &["--no-archive"], &["true"]);
        if !o.status.success() {
            refused.push(stderr(&o));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in probers {
        p.join().unwrap();
    }
    assert!(
        refused.is_empty(),
        "{} runs refused: {refused:#?}",
        refused.len()
    );
}

/// Paths under `dir` (relative to the workspace), directories included.
fn paths_under(ws: &Ws, dir: &str) -> Vec<String> {
    walk(&ws.path(dir), &[])
        .keys()
        .map(|p| format!("{dir}/{}", p.display()))
        .collect()
}

#[test]
fn clean_deletes_only_what_the_archive_holds_and_says_what_it_kept() {
    let ws = Ws::new();
    ws.write(
        "snap.toml",
        b"ignore = [\"out/wandb/\"]\n[retention]\nkeep_per_session = 1000\n",
    );
    ws.write(".snapignore", b"debug.bin\n");
    let model = random_bytes(1006, 100_000);
    ws.write("out/model.pt", &model);
    ws.write("out/sub/old.log", b"old log\n");
    ws.write("out/nested/ok.txt", b"archived\n");
    // Not in the archive snapshot: ignored by .snapignore, by snap.toml.
    ws.write("out/debug.bin", b"debug bytes");
    ws.write("out/nested/debug.bin", b"nested debug");
    ws.write("out/wandb/run.json", b"{}");
    ws.write("out/wandb/files/a.txt", b"a");
    std::os::unix::fs::symlink("model.pt", ws.path("out/link")).unwrap();

    let o = snap_run(
        &ws,
        "c",
        &["--clean", "out"],
        &["sh", "-c", "find out | sort > listing.txt"],
    );
    assert_exit(&o, 0);
    let err = stderr(&o);
    let kept = [
        "snap: warning: --clean kept out/debug.bin: ignored by .snapignore, not in the archive snapshot",
        "snap: warning: --clean kept out/nested/debug.bin: ignored by .snapignore, not in the archive snapshot",
        "snap: warning: --clean kept out/wandb/ (2 files): ignored by the ignore list of snap.toml, not in the archive snapshot",
    ];
    for line in kept {
        assert!(err.contains(&format!("{line}\n")), "no {line:?} in:\n{err}");
    }
    // Exactly the unarchived entries are left, with their bytes; the command saw that.
    let left = [
        "out/debug.bin",
        "out/nested",
        "out/nested/debug.bin",
        "out/wandb",
        "out/wandb/files",
        "out/wandb/files/a.txt",
        "out/wandb/run.json",
    ];
    assert_eq!(paths_under(&ws, "out"), left);
    let listing = fs::read_to_string(ws.path("listing.txt")).unwrap();
    assert_eq!(listing.lines().skip(1).collect::<Vec<_>>(), left);
    assert_eq!(fs::read(ws.path("out/debug.bin")).unwrap(), b"debug bytes");
    assert_eq!(fs::read(ws.path("out/wandb/files/a.txt")).unwrap(), b"a");

    // What was deleted is in the archive snapshot.
    let snaps = session(&ws, "c");
    let archive = archives_of(&snaps)[0];
    assert_eq!(cat_in(&ws, archive, "out/model.pt"), model);
    assert_eq!(cat_in(&ws, archive, "out/sub/old.log"), b"old log\n");
    assert_eq!(cat_in(&ws, archive, "out/nested/ok.txt"), b"archived\n");
    assert_eq!(
        ws.show_files(&id_of(archive))["out/link"]["target"],
        "model.pt"
    );
}

#[test]
fn clean_keeps_files_outside_track() {
    let ws = Ws::new();
    ws.write("snap.toml", b"track = [\"out/models\", \"config\"]\n");
    ws.write("config/a.yaml", b"a: 1\n");
    ws.write("out/models/m.pt", b"model");
    ws.write("out/scratch.npy", b"scratch");
    let o = snap_run(&ws, "t", &["--clean", "out"], &["true"]);
    assert_exit(&o, 0);
    let err = stderr(&o);
    let line =
        "kept out/scratch.npy: outside the track list of snap.toml, not in the archive snapshot";
    assert!(err.contains(line), "{err}");
    assert_eq!(paths_under(&ws, "out"), ["out/scratch.npy"]);
    let snaps = session(&ws, "t");
    assert_eq!(
        cat_in(&ws, archives_of(&snaps)[0], "out/models/m.pt"),
        b"model"
    );
}

#[test]
fn clean_with_no_archive_is_refused_before_anything_happens() {
    let (ws, old) = workspace_with_output_dir(true);
    let (marker, touch) = touch_marker(&ws);
    let o = snap_run(
        &ws,
        "na",
        &["--no-archive", "--clean", "out"],
        &["sh", "-c", &touch],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("--clean") && err.contains("--no-archive"),
        "{err}"
    );
    assert!(!marker.exists(), "the command ran");
    assert_eq!(fs::read(ws.path("out/old_model.bin")).unwrap(), old);
    assert!(ws.path("out/sub/old.log").exists());
    assert!(ws.log().is_empty(), "a snapshot was taken");
}

#[test]
fn clean_of_a_missing_directory_is_refused_with_a_clear_message() {
    let (ws, _) = workspace_with_output_dir(true);
    let (marker, touch) = touch_marker(&ws);
    let o = snap_run(
        &ws,
        "m",
        &["--clean", "out", "--clean", "no-such-dir"],
        &["sh", "-c", &touch],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("no-such-dir") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!marker.exists(), "the command ran");
    assert!(ws.path("out/old_model.bin").exists(), "out/ was cleaned");
    assert!(ws.log().is_empty(), "a snapshot was taken");
}

/// True if process `pid` has `path` open (Linux: /proc/PID/fd).
fn has_open(pid: u32, path: &Path) -> bool {
    let want = path.canonicalize().expect("canonical path");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .any(|e| fs::read_link(e.path()).ok() == Some(want.clone()))
        })
        .unwrap_or(false)
}

#[test]
fn a_signal_during_the_archive_does_not_kill_the_runner() {
    for (sig, name) in [(libc::SIGINT, "int"), (libc::SIGTERM, "term")] {
        let (ws, old) = workspace_with_output_dir(true);
        let (marker, touch) = touch_marker(&ws);
        // Holding the writer lock keeps the runner in its archive commit.
        let writer = snapstore::store::lock::WriterLock::acquire(
            &ws.repo().join("locks"),
            "test",
            Duration::from_secs(5),
        )
        .unwrap();
        let run = spawn_run(&ws, name, &["--clean", "out"], &["sh", "-c", &touch]);
        // The archive commit is waiting for the writer lock: past the
        // session lock, before anything was committed.
        let writer_path = ws.repo().join("locks/writer");
        wait_for("the archive commit", Duration::from_secs(30), || {
            has_open(run.id(), &writer_path)
        });
        send(&run, sig);
        // Time for the runner to take note of the signal (no way to observe it).
        std::thread::sleep(Duration::from_millis(500));
        drop(writer);
        let o = run.wait_with_output().unwrap();
        assert_exit(&o, 128 + sig);
        assert!(stderr(&o).contains("not starting it"), "{}", stderr(&o));
        // The command never started and nothing was deleted.
        assert!(!marker.exists(), "signal {sig}: the command ran");
        assert_eq!(fs::read(ws.path("out/old_model.bin")).unwrap(), old);
        let snaps = session(&ws, name);
        assert_eq!(archives_of(&snaps).len(), 1, "{snaps:#?}");
        let code = (128 + sig).to_string();
        assert_ended(
            final_of(&snaps),
            "interrupted before the command started",
            &code,
            "true",
        );
    }
}

#[test]
fn a_command_reading_a_terminal_stdin_gets_end_of_file_instead_of_hanging() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let pty = Pty::open();
    let read = "if read line; then echo \"read: $line\"; else echo 'stdin: end of file'; fi";
    let mut cmd = run_std(&ws, "tty", &[], &["sh", "-c", read]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    pty.attach_stdin(&mut cmd);
    let mut run = cmd.spawn().expect("spawn snap run on a terminal");
    let Some(status) = wait_timeout(&mut run, Duration::from_secs(60)) else {
        let _ = run.kill();
        let _ = run.wait();
        panic!("snap run hung: the command was stopped reading the terminal");
    };
    let o = Output {
        status,
        stdout: read_all(run.stdout.take()),
        stderr: read_all(run.stderr.take()),
    };
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "stdin: end of file\n");
    drop(pty);
}

fn read_all(r: Option<impl std::io::Read>) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(mut r) = r {
        r.read_to_end(&mut v).unwrap();
    }
    v
}

#[test]
fn a_piped_stdin_reaches_the_command() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    let o = run_cmd(
        &ws,
        "pipe",
        &[],
        &["sh", "-c", "read line; echo \"read: $line\""],
    )
    .write_stdin("hello\n")
    .output()
    .unwrap();
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "read: hello\n");
}

#[test]
fn a_run_whose_output_reader_goes_away_still_takes_its_snapshots() {
    // `snap run ... 2>&1 | head -1`: the reader closes the pipe after one
    // line, the command goes on printing. The run must not die of SIGPIPE
    // (or panic on a failed write) before its epoch and final snapshots.
    let ws = Ws::new();
    ws.write("snap.toml", KEEP_ALL);
    ws.write("a.txt", b"a");
    let go = ws.outside("go");
    let body = format!(
        "echo first\nwhile [ ! -e '{go}' ]; do sleep 0.01; done\n\
         i=0; while [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done\n\
         echo 'SNAP {{\"epoch\": 1, \"loss\": 0.5}}'\necho done >&2\n",
        go = go.display()
    );
    let sh = script(&ws, "chatty.sh", &body);
    let mut run = spawn_run(&ws, "pipe", &[], &["sh", &sh]);
    let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert_eq!(first, "first\n");
    drop(out);
    drop(run.stderr.take());
    write_file(&go, b"");
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(0), "snap run ended with {status}");
    let snaps = session(&ws, "pipe");
    assert_eq!(
        epoch_of(&snaps, 1)["metrics"],
        serde_json::json!({"loss": 0.5})
    );
    assert_ended(final_of(&snaps), "exited 0", "0", "false");
}
