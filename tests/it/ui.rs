//! `snap ui`: every route of the JSON API and the page's files, against a
//! repository made by `snap run`, with the server a real child process
//! (`snap ui --addr 127.0.0.1:0`, the address read from its stdout) and
//! plain HTTP/1.1 over a TcpStream. Also: errors (404 and 400 with
//! messages, 405, a foreign Host), a port in use, a warning for a
//! non-loopback address, Ctrl-C, and that serving every route leaves every
//! file of the repository as it was.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::checkpoint::safetensors;
use crate::util::*;

/// A `snap ui` child and the address it serves.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(ws: &Ws, addr: &str) -> Server {
        let mut child = snap_std(&ws.root)
            .args(["ui", "--addr", addr])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn snap ui");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the first line of snap ui");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in snap ui's first line: {line:?}"))
            .to_string();
        Server { child, addr }
    }

    /// `GET path` with this server's address as Host: status and body.
    fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.request("GET", path, &self.addr.clone())
    }

    fn request(&self, method: &str, path: &str, host: &str) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(&self.addr).expect("connect to snap ui");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read the response");
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let mut body = raw[end + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = unchunk(&body);
        }
        (status, body)
    }

    /// `GET path`, expecting `status` and a JSON body.
    fn json(&self, path: &str, status: u16) -> Value {
        let (got, body) = self.get(path);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(got, status, "GET {path}: {text}");
        serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }

    /// An error response: its status and message.
    fn error(&self, path: &str, status: u16) -> String {
        let v = self.json(path, status);
        assert_eq!(v["status"], status, "GET {path}: {v}");
        v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("GET {path}: no error message in {v}"))
            .to_string()
    }

    /// Ctrl-C; the server says it stopped and exits 0.
    fn stop(mut self) -> String {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).expect("read snap ui's stderr");
        }
        let status = self.child.wait().expect("wait for snap ui");
        assert_eq!(status.code(), Some(0), "snap ui after SIGINT: {err}");
        assert!(err.contains("stopped"), "{err}");
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave the server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unchunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// A repository with two `snap run` sessions of three epochs each
/// (metrics `loss` and `acc`, a checkpoint and a log that change every
/// epoch), and the losses each run printed.
fn two_runs() -> (Ws, Vec<Vec<f64>>) {
    let ws = Ws::new();
    ws.write("config/train.json", br#"{"lr": 0.001, "layers": [64, 64]}"#);
    let mut losses = Vec::new();
    for (run, seed) in [("run-a", 1u64), ("run-b", 2)] {
        let mut rng = Rng::new(seed);
        let mut script = String::from("set -e\n");
        let mut mine = Vec::new();
        for epoch in 1..=3u64 {
            let w: Vec<u8> = (0..256)
                .flat_map(|i| ((i as f32 + rng.below(100) as f32) / 7.0).to_le_bytes())
                .collect();
            let b: Vec<u8> = (0..16).flat_map(|i| (i as f32).to_le_bytes()).collect();
            let ckpt = safetensors(
                &[
                    ("fc.weight".to_string(), "F32", w),
                    ("fc.bias".to_string(), "F32", b),
                ],
                "",
            );
            let staged = ws.outside(&format!("{run}-{epoch}.safetensors"));
            write_file(&staged, &ckpt);
            let loss = 1.0 / (epoch as f64 + seed as f64) + rng.below(100) as f64 / 10_000.0;
            mine.push(loss);
            script.push_str(&format!(
                "cp {} model.safetensors\necho 'epoch {epoch} loss {loss}' >> train.log\n\
                 printf 'train:\\n  epoch: {epoch}\\n  lr: 0.00{seed}\\n' > state.yaml\n\
                 echo 'SNAP {{\"epoch\": {epoch}, \"metrics\": {{\"loss\": {loss}, \"acc\": 0.{epoch}{seed}}}}}'\n\
                 sleep 0.2\n",
                staged.display()
            ));
        }
        let path = ws.outside(&format!("{run}.sh"));
        write_file(&path, script.as_bytes());
        ws.cmd()
            .env("PATH", path_with_snap())
            .args(["run", "--session", run, "--best", "loss:min", "--", "sh"])
            .arg(&path)
            .assert()
            .success();
        losses.push(mine);
    }
    (ws, losses)
}

/// Every file and directory of the repository with its bytes' hash, mode
/// and mtime; SQLite's `-wal`/`-shm` companions (present only while a
/// connection is open) left out.
fn repo_state(ws: &Ws) -> Vec<(std::path::PathBuf, Node)> {
    walk(&ws.repo(), &[])
        .into_iter()
        .filter(|(p, _)| {
            let s = p.to_string_lossy();
            !(s.ends_with("-wal") || s.ends_with("-shm"))
        })
        .collect()
}

#[test]
fn every_route_answers_and_serving_writes_nothing() {
    let (ws, losses) = two_runs();
    let before = repo_state(&ws);
    let log = ws.log();
    let server = Server::start(&ws, "127.0.0.1:0");

    // The page and its files, embedded in the binary.
    let (status, page) = server.get("/");
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("/vendor/uplot/uPlot.iife.min.js") && page.contains("/app.js"));
    for f in [
        "/app.js",
        "/style.css",
        "/vendor/uplot/uPlot.iife.min.js",
        "/vendor/uplot/uPlot.min.css",
    ] {
        let (status, body) = server.get(f);
        assert_eq!(status, 200, "{f}");
        assert!(body.len() > 500, "{f}: {} bytes", body.len());
    }
    assert!(server.error("/nothing.js", 404).contains("no page file"));

    // Sessions: both runs, their epochs, outcome, best loss (min) and bytes.
    let sessions = server.json("/api/sessions", 200)["sessions"].clone();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    for (s, (name, mine)) in sessions
        .iter()
        .zip([("run-a", &losses[0]), ("run-b", &losses[1])])
    {
        assert_eq!(s["session"], name);
        assert_eq!(s["epochs"], 3);
        assert_eq!(s["outcome"], "exited 0", "{s}");
        let best = mine.iter().cloned().fold(f64::INFINITY, f64::min);
        assert_eq!(s["best"]["loss"]["direction"], "min");
        assert!(
            (s["best"]["loss"]["value"].as_f64().unwrap() - best).abs() < 1e-12,
            "{s}"
        );
        assert_eq!(s["best"]["acc"]["direction"], "max");
        assert!(s["new_stored_bytes"].as_u64().unwrap() > 0);
        assert!(s["logical_bytes"].as_u64().unwrap() > 0);
        assert!(
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == &format!("{name}/best")),
            "{s}"
        );
    }

    // Snapshots: the same as `snap log`, oldest first; filtered by session.
    let snaps = server.json("/api/snapshots", 200)["snapshots"].clone();
    let ids: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let log_ids: Vec<&str> = log.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, log_ids);
    let of_b = server.json("/api/snapshots?session=run-b", 200)["snapshots"].clone();
    assert!(of_b
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["session"] == "run-b"));
    assert_eq!(
        of_b.as_array().unwrap().len(),
        log.iter().filter(|s| s["session"] == "run-b").count()
    );

    // One snapshot: metadata, files with codecs, the restore command.
    let epoch2 = log
        .iter()
        .find(|s| s["session"] == "run-a" && s["epoch"] == 2)
        .expect("epoch 2 of run-a");
    let id = epoch2["id"].as_str().unwrap();
    let one = server.json(&format!("/api/snapshot/{id}"), 200);
    assert_eq!(one["snapshot"]["id"], id);
    assert_eq!(one["snapshot"]["epoch"], 2);
    assert_eq!(one["restore"], format!("snap restore {id}"));
    let files = one["files"].as_array().unwrap();
    let model = files
        .iter()
        .find(|f| f["path"] == "model.safetensors")
        .expect("the checkpoint");
    assert_eq!(model["tensors"]["count"], 2, "{model}");
    let codecs = model["codecs"].as_array().unwrap();
    assert!(!codecs.is_empty(), "{model}");
    let chunks: u64 = codecs.iter().map(|c| c["chunks"].as_u64().unwrap()).sum();
    assert_eq!(chunks, model["chunks"].as_u64().unwrap(), "{model}");
    let stored: u64 = codecs
        .iter()
        .map(|c| c["stored_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(model["stored_bytes"], stored);
    assert!(files.iter().any(|f| f["path"] == "config/train.json"));
    // A REV other than an id: SESSION@EPOCH, percent-encoded.
    assert_eq!(
        server.json("/api/snapshot/run-a%402", 200)["snapshot"]["id"],
        id
    );

    // The tensors of the checkpoint.
    let t = server.json(
        &format!("/api/snapshot/{id}/tensors?path=model.safetensors"),
        200,
    );
    let names: Vec<&str> = t["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fc.bias", "fc.weight"], "{t}");
    assert_eq!(t["tensors"][1]["shape"], serde_json::json!([256]));
    let t = server.json(&format!("/api/snapshot/{id}/tensors?path=train.log"), 200);
    assert!(t["tensors"].is_null(), "{t}");

    // Diff against the parent: the log and the checkpoint changed, and
    // inside the checkpoint fc.weight, not fc.bias.
    let parent = one["snapshot"]["parent"].as_str().expect("a parent");
    let d = server.json(&format!("/api/diff?a={parent}&b={id}"), 200);
    assert_eq!(d["a"], parent);
    assert_eq!(d["b"], id);
    let changed = d["diff"]["changed"].as_array().unwrap();
    let paths: Vec<&str> = changed
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"train.log") && paths.contains(&"model.safetensors"),
        "{d}"
    );
    let m = changed
        .iter()
        .find(|c| c["path"] == "model.safetensors")
        .unwrap();
    assert_eq!(m["tensors"]["changed"][0]["name"], "fc.weight", "{m}");
    assert_eq!(m["tensors"]["unchanged"], 1, "{m}");
    assert_eq!(m["content"]["kind"], "binary", "{m}");
    // Inside the files: the YAML state key by key (as `snap diff` renders
    // each key, and the same keys as `snap diff --json`), the log as a
    // unified diff.
    let state = changed
        .iter()
        .find(|c| c["path"] == "state.yaml")
        .unwrap_or_else(|| panic!("state.yaml changed: {d}"));
    assert_eq!(state["content"]["kind"], "keys", "{state}");
    assert_eq!(state["content"]["format"], "yaml", "{state}");
    assert_eq!(
        state["content"]["changes"],
        serde_json::json!([{"key": "train.epoch", "change": "changed", "old": 1, "new": 2,
            "old_type": "integer", "new_type": "integer"}]),
        "only the epoch changed, not lr: {state}"
    );
    assert_eq!(
        state["content"]["lines"],
        serde_json::json!(["train.epoch: 1 -> 2"]),
        "{state}"
    );
    let cli: Value = serde_json::from_slice(
        &ws.cmd()
            .args(["diff", "--json", parent, id])
            .output()
            .unwrap()
            .stdout,
    )
    .expect("snap diff --json");
    let cli_state = cli["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "state.yaml")
        .expect("snap diff has state.yaml");
    assert_eq!(cli_state["content"]["changes"], state["content"]["changes"]);
    let log_diff = changed.iter().find(|c| c["path"] == "train.log").unwrap();
    assert_eq!(log_diff["content"]["kind"], "text", "{log_diff}");
    let unified = log_diff["content"]["unified"].as_str().unwrap();
    assert!(
        unified.contains("+++ b/train.log") && unified.contains("\n+epoch 2 loss "),
        "{unified}"
    );

    // Metrics: one row per snapshot with metrics, both sessions, in time order.
    let metrics = server.json("/api/metrics", 200);
    assert_eq!(metrics["metrics"], serde_json::json!(["acc", "loss"]));
    assert_eq!(metrics["directions"]["loss"], "min");
    let rows = metrics["rows"].as_array().unwrap();
    let with_metrics = log
        .iter()
        .filter(|s| !s["metrics"].as_object().unwrap().is_empty())
        .count();
    assert_eq!(rows.len(), with_metrics);
    let a_losses: Vec<f64> = rows
        .iter()
        .filter(|r| r["session"] == "run-a")
        .map(|r| r["metrics"]["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(a_losses, losses[0]);
    assert!(rows.iter().all(|r| r["forgotten"] == false));

    // Storage: logical vs stored per session, what prune would free.
    let st = server.json("/api/storage", 200);
    assert_eq!(st["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(st["repository"]["snapshots"], log.len());
    assert!(st["prune"]["error"].is_null(), "{st}");
    assert_eq!(
        st["prune"]["reclaimable_bytes"], 0,
        "nothing forgotten yet: {st}"
    );

    server.stop();
    let after = repo_state(&ws);
    assert_eq!(before.len(), after.len(), "files appeared or vanished");
    for ((pa, na), (pb, nb)) in before.iter().zip(&after) {
        assert_eq!(pa, pb);
        assert_eq!(na, nb, "{} changed while serving", pa.display());
    }
}

#[test]
fn bad_requests_get_json_errors_with_messages() {
    let (ws, _) = two_runs();
    let server = Server::start(&ws, "127.0.0.1:0");
    let msg = server.error("/api/snapshot/ffffffffffff", 404);
    assert!(msg.contains("unknown revision 'ffffffffffff'"), "{msg}");
    let msg = server.error("/api/snapshot/run-a@9", 404);
    assert!(msg.contains("run-a@9"), "{msg}");
    let msg = server.error("/api/snapshot/latest/tensors?path=no/such.pt", 404);
    assert!(msg.contains("no/such.pt"), "{msg}");
    let msg = server.error("/api/snapshot/latest/tensors", 400);
    assert!(msg.contains("?path="), "{msg}");
    let msg = server.error("/api/diff?a=latest", 400);
    assert!(msg.contains("b is missing"), "{msg}");
    let msg = server.error("/api/diff?a=latest&b=nope", 404);
    assert!(msg.contains("'nope'"), "{msg}");
    let msg = server.error("/api/sessions?sort=x", 400);
    assert!(msg.contains("'sort'"), "{msg}");
    let msg = server.error("/api/snapshots?session=run-z", 404);
    assert!(msg.contains("run-z"), "{msg}");
    let msg = server.error("/api/nope", 404);
    assert!(
        msg.contains("/api/sessions"),
        "the routes are listed: {msg}"
    );

    // Read-only: no other method; and a loopback server answers only its own
    // name (a page on another site reaching it through DNS rebinding).
    let (status, body) = server.request("POST", "/api/sessions", &server.addr.clone());
    assert_eq!(status, 405, "{}", String::from_utf8_lossy(&body));
    let (status, body) = server.request("GET", "/api/sessions", "evil.example:80");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let (status, _) = server.request("GET", "/api/sessions", &format!("localhost:{port}"));
    assert_eq!(status, 200);
    server.stop();
}

#[test]
fn new_snapshots_show_without_a_restart_and_forgotten_metrics_stay() {
    let (ws, _) = two_runs();
    let server = Server::start(&ws, "127.0.0.1:0");
    let n = server.json("/api/snapshots", 200)["snapshots"]
        .as_array()
        .unwrap()
        .len();
    ws.write("notes.txt", b"more");
    ws.ok(&["commit", "-m", "by hand", "--metric", "loss=0.01"]);
    let n2 = server.json("/api/snapshots", 200)["snapshots"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n2, n + 1);
    // Retention forgets run-a's middle epochs (keep one session); their
    // metrics are still rows, marked forgotten, and opening one says so.
    ws.ok(&["forget", "--keep-sessions", "1"]);
    let rows = server.json("/api/metrics", 200)["rows"].clone();
    let gone: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["forgotten"] == true)
        .collect();
    assert!(!gone.is_empty(), "{rows}");
    let id = gone[0]["snapshot"].as_str().unwrap();
    let msg = server.error(&format!("/api/snapshot/{id}"), 404);
    assert!(msg.contains("forgotten"), "{msg}");
    server.stop();
}

#[test]
fn a_port_in_use_and_a_bad_address_are_clear_errors() {
    let ws = Ws::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = ws.fails(&["ui", "--addr", &addr], 1);
    let err = stderr(&out);
    assert!(err.contains("in use") && err.contains("--addr"), "{err}");
    let out = ws.fails(&["ui", "--addr", "localhost"], 1);
    assert!(stderr(&out).contains("IP:PORT"), "{}", stderr(&out));
    let out = snap_in(&ws.outside("")).args(["ui"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "no repository: {}",
        stderr(&out)
    );
}

#[test]
fn a_non_loopback_address_is_served_with_a_warning() {
    let ws = Ws::new();
    let mut server = Server::start(&ws, "0.0.0.0:0");
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    server.addr = format!("127.0.0.1:{port}");
    assert_eq!(
        server.json("/api/sessions", 200)["sessions"],
        serde_json::json!([])
    );
    let err = server.stop();
    assert!(err.contains("not on a loopback address"), "{err}");
}
