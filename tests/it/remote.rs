//! Remotes against a real S3-compatible server (`moto_server` on
//! 127.0.0.1) and `file://` directories: push, pull, clone and restore
//! --from round trips, dedup on transfer, partial restores that fetch only
//! what the files need, an interrupted push resumed, a tag two repositories
//! race for, and a hostile object on the server.
//!
//! The server: `.ci/run` starts one and exports `SNAP_TEST_S3_ENDPOINT`
//! (and stops it by pid at exit). Without it, the first test that needs it
//! starts `moto_server` on a free port under a small shell watchdog that
//! stops it once this test process is gone (a `Drop` on a static never
//! runs). Each test has its own bucket, created with one plain HTTP request.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::util::{assert_same_tree, random_bytes, stderr, stdout, Ws};

/// The moto server's address, `127.0.0.1:PORT`.
pub(crate) fn server() -> &'static str {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("SNAP_TEST_S3_ENDPOINT") {
        Ok(e) => e
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string(),
        Err(_) => start_moto(),
    })
}

fn start_moto() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = std::env::temp_dir().join(format!("snap-it-moto-{port}.log"));
    // The watchdog ends moto_server when this process is gone; the outer
    // shell returns at once, leaving both in the background.
    let script = format!(
        "( moto_server -H 127.0.0.1 -p {port} >{log} 2>&1 & m=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; \
         kill $m 2>/dev/null ) </dev/null >/dev/null 2>&1 &",
        log = log.display(),
        me = std::process::id()
    );
    let started = std::process::Command::new("sh")
        .args(["-c", &script])
        .status()
        .expect("start moto_server through sh");
    assert!(started.success(), "sh could not start moto_server");
    let addr = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto_server did not start on {addr} (log: {}); install it with pip install 'moto[server]'",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    addr
}

/// One plain HTTP/1.1 request to the server: the status and the body.
/// Moto checks no signature, but treats a request without an
/// `Authorization` header as anonymous (refused on private objects).
pub(crate) fn http(method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(server()).expect("connect to moto");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=snap-test/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nConnection: close\r\n\r\n",
        server(),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let status_line = String::from_utf8_lossy(&out[..split]).into_owned();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (status, out[split + 4..].to_vec())
}

/// A fresh bucket for one test; its `s3://` URL (with a prefix).
pub(crate) fn bucket(test: &str) -> String {
    let name = format!("snap-{}-{}", test.replace('_', "-"), std::process::id());
    let (status, body) = http("PUT", &format!("/{name}"), b"");
    assert_eq!(
        status,
        200,
        "create bucket: {}",
        String::from_utf8_lossy(&body)
    );
    format!("s3://{name}/team/runs")
}

/// A snap command in `dir` with the S3 settings of the test server.
pub(crate) fn snap(dir: &Path) -> Command {
    Command::from_std(snap_at(dir, server()))
}

/// `snap` as a `std::process::Command` (for `Paused`), with the test
/// credentials and the S3 endpoint `endpoint` (the server, or a proxy to it).
pub(crate) fn snap_at(dir: &Path, endpoint: &str) -> std::process::Command {
    let mut c = crate::util::snap_std(dir);
    c.env("AWS_ENDPOINT_URL", format!("http://{endpoint}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "snap-test")
        .env("AWS_SECRET_ACCESS_KEY", "snap-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    c
}

pub(crate) fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    snap(dir).args(args).output().expect("run snap")
}

pub(crate) fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "snap {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

pub(crate) fn json(dir: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    let out = ok(dir, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("snap {a:?}: bad JSON ({e}):\n{out}"))
}

pub(crate) fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// A workspace with checkpoints and logs, two snapshots (the first tagged
/// `best`), and remote `origin` at `url`.
pub(crate) fn training_ws(url: &str) -> Ws {
    let ws = Ws::new();
    ws.write("checkpoints/epoch_1.pt", &random_bytes(1, 3_000_000));
    ws.write("checkpoints/model_best.pt", &random_bytes(2, 2_500_000));
    ws.write("logs/training.log", &b"epoch 1 loss 0.9\n".repeat(500));
    ws.write("config/train.yaml", b"lr: 0.001\nbatch: 32\n");
    ws.commit(&["-m", "epoch 1", "--tag", "best"]);
    ws.write("checkpoints/epoch_2.pt", &random_bytes(3, 3_000_000));
    ws.write("logs/training.log", &b"epoch 2 loss 0.7\n".repeat(500));
    ws.commit(&["-m", "epoch 2"]);
    ok(&ws.root, &["remote", "add", "origin", url]);
    ws
}

/// A new empty repository (another machine) with remote `origin` at `url`.
pub(crate) fn other_machine(url: &str) -> Ws {
    let ws = Ws::new();
    ok(&ws.root, &["remote", "add", "origin", url]);
    ws
}

pub(crate) fn restore_local(ws: &Ws, rev: &str, name: &str) -> PathBuf {
    let target = ws.outside(name);
    ok(
        &ws.root,
        &["restore", rev, "--target", target.to_str().unwrap()],
    );
    target
}

#[test]
fn s3_push_pull_clone_and_restore_from_round_trip() {
    let url = bucket("roundtrip");
    let ws = training_ws(&url);
    let pushed = json(&ws.root, &["push"]);
    assert_eq!(n(&pushed, "snapshots"), 2, "{pushed}");
    assert!(n(&pushed, "packs") >= 2, "{pushed}");
    assert_eq!(pushed["tags"], serde_json::json!(["best"]));
    assert_eq!(n(&pushed, "unneeded_bytes"), 0, "{pushed}");

    // Clone: a workspace with the latest snapshot restored.
    let clone_dir = ws.outside("clone");
    let cloned = json(ws.tmp.path(), &["clone", &url, clone_dir.to_str().unwrap()]);
    assert_eq!(n(&cloned, "snapshots"), 2, "{cloned}");
    let latest = restore_local(&ws, "latest", "latest");
    assert_same_tree(&latest, &clone_dir, &[".snap"]);
    // The clone is a repository of its own, with the tag and origin.
    let best_here = restore_local(&ws, "best", "best-here");
    let clone_best = ws.outside("clone-best");
    ok(
        &clone_dir,
        &["restore", "best", "--target", clone_best.to_str().unwrap()],
    );
    assert_same_tree(&best_here, &clone_best, &[]);
    assert!(ok(&clone_dir, &["remote", "list"]).contains(&url));
    let check = run(&clone_dir, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", stderr(&check));

    // Pull into another repository: every snapshot, its tag, its data.
    let other = other_machine(&url);
    let pulled = json(&other.root, &["pull"]);
    assert_eq!(n(&pulled, "snapshots"), 2, "{pulled}");
    assert_eq!(pulled["tags"], serde_json::json!(["best"]));
    let other_best = restore_local(&other, "best", "other-best");
    assert_same_tree(&best_here, &other_best, &[]);
    // A second pull brings nothing.
    let again = json(&other.root, &["pull"]);
    assert_eq!(
        (n(&again, "snapshots"), n(&again, "packs")),
        (0, 0),
        "{again}"
    );

    // log --from and show --from read the remote.
    let log = json(&other.root, &["log", "--from", "origin"]);
    assert_eq!(log.as_array().unwrap().len(), 2, "{log}");
    let show = json(&other.root, &["show", "--from", "origin", "best"]);
    let paths: Vec<&str> = show["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(paths.contains(&"checkpoints/model_best.pt"), "{paths:?}");
    assert!(!paths.contains(&"checkpoints/epoch_2.pt"), "{paths:?}");
}

#[test]
fn a_second_push_of_the_same_data_uploads_no_pack() {
    let url = bucket("dedup");
    let ws = training_ws(&url);
    let first = json(&ws.root, &["push"]);
    assert!(n(&first, "packs") > 0);
    let second = json(&ws.root, &["push"]);
    assert_eq!(
        (
            n(&second, "snapshots"),
            n(&second, "packs"),
            n(&second, "chunks")
        ),
        (0, 0, 0),
        "{second}"
    );
    assert_eq!(n(&second, "snapshots_present"), 2);
    // Only listings and reads: nothing but nothing is sent.
    assert_eq!(n(&second, "bytes_uploaded"), 0, "{second}");

    // A new epoch that changes one small file sends only its chunks.
    ws.write("logs/training.log", &b"epoch 3 loss 0.5\n".repeat(500));
    ws.commit(&["-m", "epoch 3"]);
    let third = json(&ws.root, &["push"]);
    assert_eq!(n(&third, "snapshots"), 1, "{third}");
    assert!(
        n(&third, "pack_bytes") < 100_000,
        "an epoch that changed a log sent {third}"
    );

    // Another machine holding the same data pushes no chunk either: it
    // pulled the packs, so the remote's listing says it has them all.
    let other = other_machine(&url);
    ok(&other.root, &["pull"]);
    let from_other = json(&other.root, &["push"]);
    assert_eq!(
        (n(&from_other, "packs"), n(&from_other, "snapshots")),
        (0, 0),
        "{from_other}"
    );
}

#[test]
fn restore_from_fetches_only_the_chunks_the_chosen_files_need() {
    let url = bucket("partial");
    let ws = training_ws(&url);
    let pushed = json(&ws.root, &["push"]);
    let pack_bytes = n(&pushed, "pack_bytes");

    // The laptop: an empty repository that knows the remote.
    let laptop = other_machine(&url);
    let target = laptop.outside("ckpt");
    let r = json(
        &laptop.root,
        &[
            "restore",
            "--from",
            "origin",
            "best",
            "checkpoints/*best*",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(n(&r, "files"), 1, "{r}");
    let size = 2_500_000u64;
    assert_eq!(
        std::fs::read(target.join("checkpoints/model_best.pt")).unwrap(),
        random_bytes(2, size as usize)
    );
    // Random bytes are stored raw: the file's stored size is its size. What
    // else is fetched is the remote's listing, pack trailers, the snapshot
    // records and the trees: a few KiB.
    let fetched = n(&r, "bytes_fetched");
    assert!(fetched >= size, "fetched {fetched} for a {size}-byte file");
    assert!(
        fetched < size + 64 * 1024,
        "fetched {fetched} bytes for one {size}-byte file (packs hold {pack_bytes})"
    );
    assert!(fetched * 3 < pack_bytes, "{fetched} vs {pack_bytes}");
    // Nothing was stored in the laptop's repository.
    assert!(json(&laptop.root, &["log"]).as_array().unwrap().is_empty());
}

#[test]
fn an_interrupted_push_resumes_and_the_remote_never_names_missing_data() {
    let url = bucket("resume");
    let ws = training_ws(&url);
    let o = snap(&ws.root)
        .args(["push"])
        .env("SNAP_FAILPOINT", "push:before-records")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the failpoint stops the push");
    assert!(stderr(&o).contains("push:before-records"), "{}", stderr(&o));

    // The packs are there, but the remote names no snapshot and no tag.
    let other = other_machine(&url);
    assert!(json(&other.root, &["log", "--from", "origin"])
        .as_array()
        .unwrap()
        .is_empty());

    // Pushing again, with the remote's cache gone so that only the
    // remote's listing can tell what it has, sends no pack again.
    std::fs::remove_dir_all(ws.repo().join("remotes/origin")).unwrap();
    let resumed = json(&ws.root, &["push"]);
    assert_eq!(
        (n(&resumed, "packs"), n(&resumed, "snapshots")),
        (0, 2),
        "{resumed}"
    );
    assert_eq!(resumed["tags"], serde_json::json!(["best"]));
    let pulled = json(&other.root, &["pull"]);
    assert_eq!(n(&pulled, "snapshots"), 2);
    assert_same_tree(
        &restore_local(&ws, "latest", "a"),
        &restore_local(&other, "latest", "b"),
        &[],
    );
}

#[test]
fn a_tag_another_machine_moved_is_not_overwritten() {
    let url = bucket("tagrace");
    let a = training_ws(&url);
    ok(&a.root, &["push"]);
    // B never saw A's snapshots: its own `best` must not replace A's.
    let b = Ws::new();
    b.write("model.safetensors", &random_bytes(9, 100_000));
    b.commit(&["--tag", "best"]);
    ok(&b.root, &["remote", "add", "origin", &url]);
    let o = snap(&b.root).args(["push", "--json"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(n(&r, "snapshots"), 1, "B's snapshot itself is pushed: {r}");
    assert!(r["tags"].as_array().unwrap().is_empty(), "{r}");
    assert!(stderr(&o).contains("tag best"), "{}", stderr(&o));
    let remote_best = json(&a.root, &["show", "--from", "origin", "best"]);
    let local_best = a.json(&["show", "best"]);
    assert_eq!(remote_best["snapshot"]["id"], local_best["snapshot"]["id"]);

    // After pulling, B has seen A's tag: it keeps its own, and moving it
    // on the remote is now an informed choice, made with If-Match.
    let pulled = json(&b.root, &["pull"]);
    assert_eq!(
        pulled["tag_conflicts"].as_array().unwrap().len(),
        1,
        "{pulled}"
    );
    let moved = json(&b.root, &["push"]);
    assert_eq!(moved["tags"], serde_json::json!(["best"]), "{moved}");
}

#[test]
fn a_pack_changed_on_the_server_is_damage_named_by_restore_and_pull() {
    let url = bucket("hostile");
    let ws = training_ws(&url);
    ok(&ws.root, &["push"]);
    // The largest local pack holds the checkpoints: change one byte of a
    // blob in its copy on the server.
    let pack = largest_pack(&ws.repo());
    let id = pack.file_stem().unwrap().to_str().unwrap().to_string();
    let key = format!(
        "/{}/team/runs/packs/{}/{id}.pack",
        url.trim_start_matches("s3://").split('/').next().unwrap(),
        &id[..2]
    );
    let (status, mut bytes) = http("GET", &key, b"");
    assert_eq!(status, 200);
    assert_eq!(bytes, std::fs::read(&pack).unwrap());
    bytes[100_000] ^= 0x40;
    let (status, _) = http("PUT", &key, &bytes);
    assert_eq!(status, 200);

    let laptop = other_machine(&url);
    let target = laptop.outside("out");
    let o = run(
        &laptop.root,
        &[
            "restore",
            "--from",
            "origin",
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let short = &id[..8];
    assert!(
        stderr(&o).contains(short),
        "names pack {short}: {}",
        stderr(&o)
    );

    // A pull refuses the pack before it is stored.
    let o = run(&laptop.root, &["pull"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(short),
        "names pack {short}: {}",
        stderr(&o)
    );
    assert!(!laptop
        .repo()
        .join(format!("packs/{}/{id}.pack", &id[..2]))
        .exists());
    assert!(json(&laptop.root, &["log"]).as_array().unwrap().is_empty());
}

fn largest_pack(repo: &Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for sub in std::fs::read_dir(repo.join("packs")).unwrap() {
        for p in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let p = p.unwrap().path();
            let len = std::fs::metadata(&p).unwrap().len();
            if best.as_ref().is_none_or(|(l, _)| len > *l) {
                best = Some((len, p));
            }
        }
    }
    best.expect("a pack").1
}

#[test]
fn refusals_fail_at_once_and_say_what_to_check() {
    let ws = Ws::new();
    ok(
        &ws.root,
        &["remote", "add", "gone", "s3://snap-no-such-bucket/x"],
    );
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    let o = run(&ws.root, &["push", "gone"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("snap-test-secret"), "{}", stderr(&o));

    let o = run(
        &ws.root,
        &["remote", "add", "g", "abfs://c@a.dfs.core.windows.net/p"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("az://CONTAINER"), "{}", stderr(&o));
    let o = run(&ws.root, &["push", "nope"]);
    assert!(stderr(&o).contains("known remotes: gone"), "{}", stderr(&o));
    // No secret is stored with the remotes.
    let remotes = std::fs::read_to_string(ws.repo().join("remotes.toml")).unwrap();
    assert!(!remotes.contains("secret"), "{remotes}");
    ok(&ws.root, &["remote", "remove", "gone"]);
    assert!(ok(&ws.root, &["remote", "list"]).contains("no remotes"));
}

#[test]
fn file_remote_round_trip_and_resume() {
    let ws = Ws::new();
    ws.write("checkpoints/best.pt", &random_bytes(5, 1_200_000));
    ws.write("config.json", b"{\"lr\": 0.1}");
    ws.commit(&["--tag", "best"]);
    let dir = ws.outside("remote");
    let url = format!("file://{}", dir.display());
    ok(&ws.root, &["remote", "add", "backup", &url]);
    let pushed = json(&ws.root, &["push", "backup"]);
    assert_eq!(n(&pushed, "snapshots"), 1);
    // Same object names as a local repository.
    assert!(dir.join("config").is_file());
    assert!(dir.join("refs/tags/best").is_file());
    assert_eq!(std::fs::read_dir(dir.join("snapshots")).unwrap().count(), 1);
    let again = json(&ws.root, &["push", "backup"]);
    assert_eq!(
        (n(&again, "packs"), n(&again, "bytes_uploaded")),
        (0, 0),
        "{again}"
    );

    let clone_dir = ws.outside("clone");
    ok(ws.tmp.path(), &["clone", &url, clone_dir.to_str().unwrap()]);
    assert_same_tree(&ws.root, &clone_dir, &[".snap"]);
}

/// A session of epochs with a val_loss each; their snapshot ids.
fn epochs(ws: &Ws, session: &str, losses: &[f64]) -> Vec<String> {
    losses
        .iter()
        .enumerate()
        .map(|(i, loss)| {
            ws.write("ckpt/model.bin", &random_bytes(70 + i as u64, 20_000));
            let (e, m) = ((i + 1).to_string(), format!("val_loss={loss}"));
            ws.commit_id(&["--session", session, "--epoch", &e, "--metric", &m])
        })
        .collect()
}

fn metric_rows(dir: &Path) -> Vec<(String, bool)> {
    json(dir, &["metrics"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["stored"] == true))
        .collect()
}

#[test]
fn notes_and_the_journal_travel_with_push_pull_and_clone() {
    let ws = Ws::new();
    let old = epochs(&ws, "old", &[0.9, 0.8]);
    let new = epochs(&ws, "new", &[0.7, 0.5]);
    ws.ok(&["note", &new[1], "lr 3e-4 from here"]);
    ws.ok(&["note", &old[0], "diverged at step 900"]);
    // The older session is forgotten: its metrics live in the journal only.
    ws.ok(&["forget", "--keep-sessions", "1"]);
    let here = metric_rows(&ws.root);
    assert_eq!(here.len(), 4, "{here:?}");
    assert!(here.iter().any(|(id, stored)| id == &old[0] && !stored));

    let dir = ws.outside("remote");
    let url = format!("file://{}", dir.display());
    ok(&ws.root, &["remote", "add", "origin", &url]);
    let pushed = json(&ws.root, &["push"]);
    assert_eq!(
        (n(&pushed, "notes"), n(&pushed, "journal_entries")),
        (2, 2),
        "both notes (one of a journalled snapshot) and both journal entries: {pushed}"
    );
    let again = json(&ws.root, &["push"]);
    assert_eq!(
        (n(&again, "notes"), n(&again, "journal_entries")),
        (0, 0),
        "{again}"
    );

    // Another machine sees the same history.
    let clone_dir = ws.outside("clone");
    ok(ws.tmp.path(), &["clone", &url, clone_dir.to_str().unwrap()]);
    assert_eq!(metric_rows(&clone_dir), here);
    let shown = json(&clone_dir, &["show", &new[1]]);
    assert_eq!(shown["notes"][0]["text"], "lr 3e-4 from here", "{shown}");

    // A note added there comes back with a pull; nothing else is new.
    ok(&clone_dir, &["note", &new[0], "warmup 500"]);
    let back = json(&clone_dir, &["push"]);
    assert_eq!(n(&back, "notes"), 1, "{back}");
    let pulled = json(&ws.root, &["pull"]);
    assert_eq!(
        (n(&pulled, "notes"), n(&pulled, "journal_entries")),
        (1, 0),
        "{pulled}"
    );
    assert_eq!(
        ws.json(&["show", &new[0]])["notes"][0]["text"],
        "warmup 500"
    );

    // A hostile or damaged note on the remote is named and not copied.
    let notes = dir.join("notes");
    let bad = format!("{}.{}", new[0], "ab".repeat(32));
    std::fs::write(notes.join(&bad), b"SNPN garbage").unwrap();
    let o = run(&ws.root, &["pull", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let damaged = v["history_damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{v}");
    assert!(damaged[0].as_str().unwrap().contains(&bad), "{v}");
    assert!(stderr(&o).contains(&bad), "{}", stderr(&o));
    assert!(!ws.root.join(".snap/notes").join(&bad).exists());
}
