//! `snap prune --remote` against the real moto server of `remote.rs`: the
//! two phases with their grace period, packs younger than it left alone,
//! a push that counted on a pack a prune deleted while it ran, the remote
//! lock, and a prune that cannot read a snapshot record refusing.
//!
//! Grace periods are a few seconds so that the tests can wait them out;
//! which command runs when is decided by failpoint barriers (`Paused::at`).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::remote::{bucket, http, json, n, ok, other_machine, run, server, snap_at};
use crate::util::{assert_same_tree, random_bytes, stderr, Paused, Ws};

const GRACE: &str = "2s";

/// Longer than `GRACE`.
fn wait_grace() {
    std::thread::sleep(Duration::from_millis(2600));
}

/// The bucket and key prefix of an `s3://BUCKET/PREFIX` URL.
fn split(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("s3://");
    let (b, p) = rest.split_once('/').expect("a prefix");
    (b.to_string(), format!("{p}/"))
}

/// Every key under the remote's prefix, relative to it.
fn keys(url: &str) -> BTreeSet<String> {
    let (b, prefix) = split(url);
    let (status, body) = http("GET", &format!("/{b}?list-type=2&prefix={prefix}"), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let xml = String::from_utf8(body).unwrap();
    assert!(
        !xml.contains("<IsTruncated>true"),
        "listing truncated: {xml}"
    );
    xml.split("<Key>")
        .skip(1)
        .map(|k| k.split("</Key>").next().unwrap())
        .map(|k| {
            k.strip_prefix(&prefix)
                .expect("under the prefix")
                .to_string()
        })
        .collect()
}

fn count(keys: &BTreeSet<String>, suffix: &str) -> usize {
    keys.iter().filter(|k| k.ends_with(suffix)).count()
}

fn put_object(url: &str, rel: &str, body: &[u8]) {
    let (b, prefix) = split(url);
    let (status, out) = http("PUT", &format!("/{b}/{prefix}{rel}"), body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&out));
}

fn object_status(url: &str, rel: &str) -> u16 {
    let (b, prefix) = split(url);
    http("GET", &format!("/{b}/{prefix}{rel}"), b"").0
}

/// A machine's workspace: a config every machine shares (the same chunks)
/// and its own checkpoint, one snapshot, remote `origin` at `url`.
fn machine(seed: u64, url: &str) -> Ws {
    let ws = Ws::new();
    ws.write("config/shared.bin", &random_bytes(77, 1_500_000));
    ws.write("checkpoints/own.pt", &random_bytes(seed, 1_000_000));
    ws.commit(&["-m", "first"]);
    ok(&ws.root, &["remote", "add", "origin", url]);
    ws
}

/// A push that dies (like `kill -9`) after its packs, before any record:
/// the remote holds packs nothing names.
fn push_killed_before_records(ws: &Ws) {
    let o = snap_at(&ws.root, server())
        .args(["push"])
        .env("SNAP_FAILPOINT", "push:before-records")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the failpoint should abort the push");
}

fn prune(ws: &Ws, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["prune", "--remote", "origin", "--grace", GRACE];
    args.extend_from_slice(extra);
    json(&ws.root, &args)
}

/// A new machine clones the remote; `check --read-data` finds it whole and
/// its latest snapshot is `source`'s.
fn clone_is_whole(url: &str, source: &Ws) {
    let laptop = other_machine(url);
    let pulled = json(&laptop.root, &["pull"]);
    assert!(n(&pulled, "snapshots") >= 1, "{pulled}");
    let check = run(&laptop.root, &["check", "--read-data"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let target = laptop.outside("latest");
    ok(
        &laptop.root,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&source.root, &target, &[".snap"]);
}

#[test]
fn a_remote_prune_marks_orphans_then_deletes_them_a_grace_period_later() {
    let url = bucket("prune-phases");
    let ws = machine(1, &url);
    push_killed_before_records(&ws);
    put_object(&url, "tmp/upload-leftover", b"half a pack");
    let before = keys(&url);
    let packs = count(&before, ".pack");
    assert!(packs >= 2, "the killed push left packs: {before:?}");
    assert_eq!(count(&before, ".doomed"), 0);

    // Within the grace period nothing is touched: a push may still name them.
    let young = prune(&ws, &[]);
    assert_eq!(n(&young, "spared") as usize, packs, "{young}");
    assert_eq!(young["delete"].as_array().unwrap().len(), 0, "{young}");
    assert_eq!(n(&young, "temporaries_waiting"), 1, "{young}");
    assert_eq!(keys(&url), before);

    wait_grace();
    let dry = prune(&ws, &["--dry-run"]);
    assert_eq!(dry["delete"].as_array().unwrap().len(), packs, "{dry}");
    assert_eq!(keys(&url), before, "a dry run changes nothing");

    let marked = prune(&ws, &[]);
    assert_eq!(
        marked["delete"].as_array().unwrap().len(),
        packs,
        "{marked}"
    );
    assert_eq!(n(&marked, "waiting") as usize, packs, "{marked}");
    assert_eq!(n(&marked, "temporaries_deleted"), 1, "{marked}");
    let after_mark = keys(&url);
    assert_eq!(count(&after_mark, ".pack"), packs, "marked, not deleted");
    assert_eq!(count(&after_mark, ".doomed"), packs);
    assert_eq!(object_status(&url, "tmp/upload-leftover"), 404);
    assert!(!after_mark.contains("locks/prune"), "the lock is released");

    wait_grace();
    let deleted = prune(&ws, &[]);
    assert_eq!(deleted["due"].as_array().unwrap().len(), packs, "{deleted}");
    assert!(n(&deleted, "bytes_freed") > 0, "{deleted}");
    let after = keys(&url);
    assert_eq!(count(&after, ".pack"), 0, "{after:?}");
    assert_eq!(count(&after, ".doomed"), 0, "{after:?}");

    // The next push sends everything again and the remote is whole.
    let pushed = json(&ws.root, &["push"]);
    assert_eq!(n(&pushed, "snapshots"), 1, "{pushed}");
    clone_is_whole(&url, &ws);
    // Nothing a snapshot names is ever marked.
    wait_grace();
    let kept = prune(&ws, &[]);
    assert_eq!(kept["delete"].as_array().unwrap().len(), 0, "{kept}");
    assert_eq!(kept["repack"].as_array().unwrap().len(), 0, "{kept}");
}

/// Machine B's push counts on a pack A's killed push left (the shared
/// config's chunks). While B is paused before its records, a prune marks
/// that pack and a later prune deletes it. B must not then name it: it
/// stops before its records, and its next push sends the chunks itself.
#[test]
fn a_push_that_counted_on_a_pack_pruned_meanwhile_sends_no_record_and_the_next_push_lands() {
    let url = bucket("prune-race");
    let a = machine(1, &url);
    push_killed_before_records(&a);
    wait_grace();
    let b = machine(2, &url);
    let mut cmd = snap_at(&b.root, server());
    cmd.args(["push", "--json"]);
    let paused = Paused::at(cmd, "push:before-records");

    let marked = prune(&a, &[]);
    assert!(!marked["delete"].as_array().unwrap().is_empty(), "{marked}");
    // B's own packs are young: left alone.
    assert!(n(&marked, "spared") >= 1, "{marked}");
    wait_grace();
    let deleted = prune(&a, &[]);
    assert!(!deleted["due"].as_array().unwrap().is_empty(), "{deleted}");

    let o = paused.finish();
    assert!(!o.status.success(), "B's push must stop: {}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("prune of the remote deleted") && err.contains("run the push again"),
        "{err}"
    );
    let listed = keys(&url);
    assert!(
        !listed.iter().any(|k| k.starts_with("snapshots/")),
        "no record was sent: {listed:?}"
    );

    let again = json(&b.root, &["push"]);
    assert_eq!(n(&again, "snapshots"), 1, "{again}");
    clone_is_whole(&url, &b);
}

#[test]
fn a_held_remote_lock_refuses_and_break_lock_takes_it() {
    let url = bucket("prune-lock");
    let ws = machine(1, &url);
    ok(&ws.root, &["push"]);
    put_object(
        &url,
        "locks/prune",
        b"snap prune --remote on host elsewhere, pid 4242, since 2026-12-01T10:00:00Z\n",
    );
    let o = run(&ws.root, &["prune", "--remote", "origin"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("host elsewhere, pid 4242") && err.contains("--break-lock"),
        "{err}"
    );
    assert_eq!(object_status(&url, "locks/prune"), 200, "the lock stays");
    // A dry run takes no lock.
    let dry = prune(&ws, &["--dry-run"]);
    assert!(dry["lock_broken"].is_null(), "{dry}");

    let broke = prune(&ws, &["--break-lock"]);
    assert!(
        broke["lock_broken"].as_str().unwrap().contains("elsewhere"),
        "{broke}"
    );
    assert_eq!(
        object_status(&url, "locks/prune"),
        404,
        "released at the end"
    );
    clone_is_whole(&url, &ws);
}

#[test]
fn a_remote_prune_that_cannot_read_a_snapshot_record_refuses_and_deletes_nothing() {
    let url = bucket("prune-unreadable");
    let ws = machine(1, &url);
    ok(&ws.root, &["push"]);
    ws.write("checkpoints/orphan.pt", &random_bytes(9, 800_000));
    ws.commit(&["-m", "second"]);
    push_killed_before_records(&ws);
    let bogus = "ab".repeat(32);
    put_object(&url, &format!("snapshots/{bogus}"), b"SNPS not a record");
    wait_grace();
    let before = keys(&url);
    let o = run(&ws.root, &["prune", "--remote", "origin", "--grace", GRACE]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&bogus) && err.contains("nothing was deleted"),
        "{err}"
    );
    assert_eq!(keys(&url), before, "nothing marked or deleted");
}
