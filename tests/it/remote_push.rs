//! Push and pull under stress, against the real moto server of
//! `remote.rs`: a push killed with SIGKILL after some packs, the server
//! going away mid-push and mid-pull (a TCP proxy in the test that drops
//! every connection and refuses new ones), two machines pushing at once, a
//! tag two pushes race for, and a push that repacks what a forget left
//! behind. Races are decided by failpoint barriers (`Paused::at`), not by
//! timing.

use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::remote::{
    bucket, json, n, ok, other_machine, restore_local, run, server, snap, snap_at, training_ws,
};
use crate::util::{assert_same_tree, random_bytes, stderr, wait_for, Paused, Ws};

/// Local pack files of a repository: (count, bytes).
fn local_packs(repo: &Path) -> (u64, u64) {
    let mut count = 0;
    let mut bytes = 0;
    for sub in std::fs::read_dir(repo.join("packs")).unwrap() {
        for p in std::fs::read_dir(sub.unwrap().path()).unwrap() {
            let p = p.unwrap().path();
            if p.extension().is_some_and(|e| e == "pack") {
                count += 1;
                bytes += std::fs::metadata(&p).unwrap().len();
            }
        }
    }
    (count, bytes)
}

/// Snapshot ids of `log --json` output.
fn ids(log: &Value) -> Vec<String> {
    log.as_array()
        .expect("log --json is an array")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

/// Every snapshot the remote lists restores from it (`restore --from`)
/// byte-identical to the same snapshot restored from `source`.
fn every_remote_snapshot_restores(reader: &Ws, source: &Ws) {
    let listed = ids(&json(&reader.root, &["log", "--from", "origin"]));
    for (i, id) in listed.iter().enumerate() {
        let target = reader.outside(&format!("from-remote-{i}"));
        ok(
            &reader.root,
            &[
                "restore",
                "--from",
                "origin",
                id,
                "--target",
                target.to_str().unwrap(),
            ],
        );
        assert_same_tree(
            &restore_local(source, id, &format!("here-{i}")),
            &target,
            &[],
        );
    }
}

#[test]
fn a_push_killed_after_some_packs_resumes_with_only_the_rest() {
    let url = bucket("killed");
    let ws = training_ws(&url);
    let (packs, pack_bytes) = local_packs(&ws.repo());
    assert!(packs >= 3, "the test needs several packs, has {packs}");

    // SIGKILL once the first pack is up.
    let mut cmd = snap_at(&ws.root, server());
    cmd.args(["push", "--json"]);
    let killed = Paused::at(cmd, "push:between-packs").kill();
    assert!(!killed.status.success());

    // The remote names nothing it does not hold: it lists no snapshot, a
    // clone of it is an empty, clean repository.
    let other = other_machine(&url);
    assert!(ids(&json(&other.root, &["log", "--from", "origin"])).is_empty());
    let clone_dir = ws.outside("clone-after-kill");
    let cloned = json(ws.tmp.path(), &["clone", &url, clone_dir.to_str().unwrap()]);
    assert_eq!(n(&cloned, "snapshots"), 0, "{cloned}");
    let check = run(&clone_dir, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", stderr(&check));

    // The next push sends every pack but the one already up.
    let resumed = json(&ws.root, &["push"]);
    assert_eq!(n(&resumed, "packs"), packs - 1, "{resumed}");
    assert!(n(&resumed, "pack_bytes") < pack_bytes, "{resumed}");
    assert_eq!(n(&resumed, "snapshots"), 2, "{resumed}");
    assert_eq!(resumed["tags"], serde_json::json!(["best"]));
    every_remote_snapshot_restores(&other, &ws);

    // And the remote's cache gone (the killed push had entered the first
    // pack): its listing alone tells a third push there is nothing to send.
    std::fs::remove_dir_all(ws.repo().join("remotes/origin")).unwrap();
    let third = json(&ws.root, &["push"]);
    assert_eq!(
        (n(&third, "packs"), n(&third, "bytes_uploaded")),
        (0, 0),
        "{third}"
    );
}

/// A TCP proxy to the moto server that can be cut (every connection
/// dropped, new ones refused: the port is closed) and restored on the same
/// port, standing for a server that goes away and comes back with its data.
struct Proxy {
    addr: String,
    want_up: Arc<AtomicBool>,
    is_up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let want_up = Arc::new(AtomicBool::new(true));
        let is_up = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, u, s, a) = (want_up.clone(), is_up.clone(), stop.clone(), addr.clone());
        std::thread::spawn(move || {
            let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
            let mut listener = Some(listener);
            while !s.load(Ordering::SeqCst) {
                if !w.load(Ordering::SeqCst) {
                    listener = None;
                    for c in conns.lock().unwrap().drain(..) {
                        let _ = c.shutdown(Shutdown::Both);
                    }
                    u.store(false, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                if listener.is_none() {
                    listener = TcpListener::bind(&a).ok();
                }
                let Some(l) = &listener else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                l.set_nonblocking(true).unwrap();
                u.store(true, Ordering::SeqCst);
                match l.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(upstream) = TcpStream::connect(server()) else {
                            continue;
                        };
                        let mut list = conns.lock().unwrap();
                        list.push(client.try_clone().unwrap());
                        list.push(upstream.try_clone().unwrap());
                        pump(client.try_clone().unwrap(), upstream.try_clone().unwrap());
                        pump(upstream, client);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => {}
                }
            }
        });
        Proxy {
            addr,
            want_up,
            is_up,
            stop,
        }
    }

    /// Drops every connection and closes the port.
    fn cut(&self) {
        self.want_up.store(false, Ordering::SeqCst);
        wait_for("the proxy to go down", Duration::from_secs(10), || {
            !self.is_up.load(Ordering::SeqCst)
        });
        assert!(
            TcpStream::connect(&self.addr).is_err(),
            "the port still answers"
        );
    }

    /// Opens the port again.
    fn restore(&self) {
        self.want_up.store(true, Ordering::SeqCst);
        wait_for("the proxy to come back", Duration::from_secs(10), || {
            self.is_up.load(Ordering::SeqCst)
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The retry budget a test cutting the server gives snap: two retries
/// within three seconds (`SNAP_REMOTE_RETRIES`, `SNAP_REMOTE_RETRY_SECS`).
fn short_retries(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("SNAP_REMOTE_RETRIES", "2")
        .env("SNAP_REMOTE_RETRY_SECS", "3")
}

/// What a command that lost its server must say: which remote, that it did
/// not answer, and that running again resumes.
fn says_server_gone(o: &std::process::Output, url: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(url), "names the remote: {err}");
    assert!(err.contains("did not answer"), "{err}");
    assert!(err.contains("run the command again"), "{err}");
}

#[test]
fn a_server_gone_mid_push_or_pull_fails_clearly_and_the_next_run_sends_the_rest() {
    let url = bucket("cut");
    let ws = training_ws(&url);
    let (packs, _) = local_packs(&ws.repo());
    let proxy = Proxy::start();

    let mut cmd = snap_at(&ws.root, &proxy.addr);
    short_retries(&mut cmd).args(["push", "--json"]);
    let paused = Paused::at(cmd, "push:between-packs");
    proxy.cut();
    let failed = paused.finish();
    says_server_gone(&failed, &url);
    let other = other_machine(&url);
    assert!(ids(&json(&other.root, &["log", "--from", "origin"])).is_empty());

    proxy.restore();
    let mut again = snap_at(&ws.root, &proxy.addr);
    let o = short_retries(&mut again)
        .args(["push", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(n(&resumed, "packs"), packs - 1, "{resumed}");
    assert_eq!(n(&resumed, "snapshots"), 2, "{resumed}");

    // The same for a pull: cut after its first pack.
    let mut cmd = snap_at(&other.root, &proxy.addr);
    short_retries(&mut cmd).args(["pull", "--json"]);
    let paused = Paused::at(cmd, "pull:between-packs");
    proxy.cut();
    let failed = paused.finish();
    says_server_gone(&failed, &url);
    assert!(
        ids(&other.json(&["log"])).is_empty(),
        "no snapshot before its data"
    );
    proxy.restore();
    let mut again = snap_at(&other.root, &proxy.addr);
    let o = short_retries(&mut again)
        .args(["pull", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let pulled: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(n(&pulled, "packs"), packs - 1, "{pulled}");
    assert_eq!(n(&pulled, "snapshots"), 2, "{pulled}");
    for rev in ["latest", "best"] {
        assert_same_tree(
            &restore_local(&ws, rev, &format!("a-{rev}")),
            &restore_local(&other, rev, &format!("b-{rev}")),
            &[],
        );
    }
    let check = run(&other.root, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", stderr(&check));
}

/// A machine's workspace: its own checkpoints, and a config every machine
/// shares (the same bytes: the same chunks).
fn machine(seed: u64, url: &str) -> Ws {
    let ws = Ws::new();
    ws.write("config/shared.yaml", &random_bytes(99, 200_000));
    ws.write("checkpoints/a.pt", &random_bytes(seed, 2_000_000));
    ws.commit(&["-m", "first"]);
    ws.write("checkpoints/b.pt", &random_bytes(seed + 1, 1_500_000));
    ws.commit(&["-m", "second"]);
    ok(&ws.root, &["remote", "add", "origin", url]);
    ws
}

#[test]
fn two_machines_pushing_at_once_both_land() {
    let url = bucket("concurrent");
    let a = machine(10, &url);
    let b = machine(20, &url);
    // A stops after its first pack; B pushes all of it meanwhile; A goes on.
    let mut cmd = snap_at(&a.root, server());
    cmd.args(["push", "--json"]);
    let paused = Paused::at(cmd, "push:between-packs");
    let from_b = json(&b.root, &["push"]);
    assert_eq!(n(&from_b, "snapshots"), 2, "{from_b}");
    let o = paused.finish();
    assert!(o.status.success(), "{}", stderr(&o));
    let from_a: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(n(&from_a, "snapshots"), 2, "{from_a}");

    let laptop = other_machine(&url);
    let mut listed = ids(&json(&laptop.root, &["log", "--from", "origin"]));
    let mut mine: Vec<String> = ids(&a.json(&["log"]));
    mine.extend(ids(&b.json(&["log"])));
    listed.sort();
    mine.sort();
    assert_eq!(listed, mine, "every snapshot of both machines, once");
    let pulled = json(&laptop.root, &["pull"]);
    assert_eq!(n(&pulled, "snapshots"), 4, "{pulled}");
    for (src, name) in [(&a, "a"), (&b, "b")] {
        for id in ids(&src.json(&["log"])) {
            assert_same_tree(
                &restore_local(src, &id, &format!("{name}-{}", &id[..8])),
                &restore_local(&laptop, &id, &format!("laptop-{}", &id[..8])),
                &[],
            );
        }
    }
    let check = run(&laptop.root, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", stderr(&check));
}

/// Both machines move tag `best` (which both have seen) and create tag
/// `fresh`, each to its own snapshot, at once: the push that writes first
/// wins both, the other is refused by the server's conditional put
/// (`If-Match` for the move, `If-None-Match: *` for the creation; moto
/// honours both) and told, with exit 1.
#[test]
fn a_tag_race_has_one_winner_and_the_loser_is_told() {
    let url = bucket("tagrace2");
    let a = training_ws(&url);
    ok(&a.root, &["push"]);
    let b = other_machine(&url);
    ok(&b.root, &["pull"]);

    a.write("checkpoints/epoch_3.pt", &random_bytes(31, 300_000));
    let sa = a.commit_id(&["-m", "a's epoch 3"]);
    b.write("checkpoints/epoch_3.pt", &random_bytes(32, 300_000));
    let sb = b.commit_id(&["-m", "b's epoch 3"]);
    for (ws, id) in [(&a, &sa), (&b, &sb)] {
        ok(&ws.root, &["tag", "best", id]);
        ok(&ws.root, &["tag", "fresh", id]);
    }

    // A has read both tags (best: S0 with its e-tag; fresh: absent) when B
    // pushes.
    let mut cmd = snap_at(&a.root, server());
    cmd.args(["push", "--json"]);
    let paused = Paused::at(cmd, "push:tags-read");
    let from_b = json(&b.root, &["push"]);
    let mut won: Vec<&str> = from_b["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    won.sort();
    assert_eq!(won, ["best", "fresh"], "{from_b}");
    let o = paused.finish();
    assert_eq!(
        o.status.code(),
        Some(1),
        "the loser is told: {}",
        stderr(&o)
    );
    let from_a: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        n(&from_a, "snapshots"),
        1,
        "A's snapshot itself lands: {from_a}"
    );
    assert!(from_a["tags"].as_array().unwrap().is_empty(), "{from_a}");
    let err = stderr(&o);
    for tag in ["tag best", "tag fresh"] {
        assert!(err.contains(tag), "names {tag}: {err}");
    }
    assert!(err.contains("snap pull"), "says what to do: {err}");

    // No silent overwrite: the remote's tags are B's, both snapshots are
    // there.
    for tag in ["best", "fresh"] {
        let shown = json(&a.root, &["show", "--from", "origin", tag]);
        assert_eq!(shown["snapshot"]["id"].as_str(), Some(sb.as_str()), "{tag}");
    }
    let listed = ids(&json(&a.root, &["log", "--from", "origin"]));
    assert!(listed.contains(&sa) && listed.contains(&sb), "{listed:?}");
}

#[test]
fn a_push_after_forget_repacks_and_sends_only_the_kept_data() {
    let url = bucket("repack");
    let ws = Ws::new();
    // One commit, one pack: a checkpoint that will be dropped (4 MB) and
    // data that stays (1 MB). Random bytes are stored raw.
    ws.write("checkpoints/old.pt", &random_bytes(41, 4_000_000));
    ws.write("checkpoints/keep.pt", &random_bytes(42, 1_000_000));
    ws.commit(&["-m", "first"]);
    std::fs::remove_file(ws.root.join("checkpoints/old.pt")).unwrap();
    ws.write("logs/new.bin", &random_bytes(43, 500_000));
    ws.commit(&["-m", "second"]);
    let forgot = ws.json(&[
        "forget",
        "--keep-commits",
        "1",
        "--keep-commits-within",
        "none",
    ]);
    assert_eq!(
        ids(&ws.json(&["log"])).len(),
        1,
        "forgot the first: {forgot}"
    );
    ok(&ws.root, &["remote", "add", "origin", &url]);

    let pushed = json(&ws.root, &["push"]);
    let kept = 1_500_000u64;
    assert!(n(&pushed, "repacked") >= 1, "{pushed}");
    assert_eq!(n(&pushed, "unneeded_bytes"), 0, "{pushed}");
    let up = n(&pushed, "bytes_uploaded");
    assert!(up >= kept, "{pushed}");
    assert!(
        up < kept + 64 * 1024,
        "uploaded {up} bytes for {kept} bytes of kept data: {pushed}"
    );

    // Everything restores from the remote, straight and through a clone,
    // and the clone checks clean.
    let laptop = other_machine(&url);
    every_remote_snapshot_restores(&laptop, &ws);
    let clone_dir = ws.outside("clone");
    ok(ws.tmp.path(), &["clone", &url, clone_dir.to_str().unwrap()]);
    assert_same_tree(&ws.root, &clone_dir, &[".snap"]);
    let check = snap(&clone_dir)
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    // A second push has nothing to send.
    let again = json(&ws.root, &["push"]);
    assert_eq!(n(&again, "bytes_uploaded"), 0, "{again}");
}
