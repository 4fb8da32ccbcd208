//! The stat cache: unchanged files are not read again, changed ones always are.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::util::*;

/// More than the 50 ms racy-timestamp margin of the stat cache.
const SETTLE: Duration = Duration::from_millis(120);

fn workspace_with_files() -> Ws {
    let ws = Ws::new();
    let mut rng = Rng::new(21);
    ws.write("logs/train.log", &rng.text(100_000));
    ws.write("config/train.yaml", b"lr: 0.001\nbatch: 32\n");
    ws.write("checkpoints/epoch_1.pt", &rng.bytes(600_000));
    ws.write("checkpoints/epoch_2.pt", &rng.bytes(600_000));
    wait_until_settled(&ws.root, SETTLE);
    let first = ws.commit(&[]);
    assert_eq!(summary_u64(&first, "files_read"), 4);
    ws
}

#[test]
fn unchanged_workspace_reads_nothing() {
    let ws = workspace_with_files();
    let second = ws.commit(&[]);
    assert_eq!(summary_u64(&second, "files_read"), 0, "{second}");
    assert_eq!(summary_u64(&second, "bytes_read"), 0);
    assert_eq!(summary_u64(&second, "new_chunks"), 0);
    assert_eq!(summary_u64(&second, "files"), 4);
    // The cached entries still describe the right bytes.
    let out = ws.restore_to("latest", "out");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

#[test]
fn modified_file_is_read_again_and_only_it() {
    let ws = workspace_with_files();
    let log = ws.path("logs/train.log");
    let mut data = fs::read(&log).unwrap();
    data.extend_from_slice(b"step 999 loss 0.1\n");
    fs::write(&log, &data).unwrap();
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files_read"), 1, "{s}");
    assert_eq!(summary_u64(&s, "bytes_read"), data.len() as u64);
    assert_eq!(ws.ok(&["cat", "latest:logs/train.log"]).into_bytes(), data);
}

#[test]
fn same_size_rewrite_is_read_again() {
    let ws = workspace_with_files();
    let cfg = ws.path("config/train.yaml");
    let before = fs::metadata(&cfg).unwrap();
    fs::write(&cfg, b"lr: 0.002\nbatch: 64\n").unwrap();
    // Even with the old mtime put back, the ctime has moved.
    set_mtime_ns(&cfg, mtime_ns(&before));
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files_read"), 1, "{s}");
    assert_eq!(
        ws.ok(&["cat", "latest:config/train.yaml"]),
        "lr: 0.002\nbatch: 64\n"
    );
}

#[test]
fn touched_file_is_read_again_but_stores_nothing() {
    let ws = workspace_with_files();
    let ckpt = ws.path("checkpoints/epoch_2.pt");
    let m = fs::metadata(&ckpt).unwrap();
    set_mtime_ns(&ckpt, mtime_ns(&m) + 1_000_000_000);
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files_read"), 1, "{s}");
    assert_eq!(summary_u64(&s, "bytes_read"), 600_000);
    assert_eq!(summary_u64(&s, "new_chunks"), 0);
}

#[test]
fn replaced_file_with_same_size_and_mtime_is_read_again() {
    let ws = workspace_with_files();
    let ckpt = ws.path("checkpoints/epoch_1.pt");
    let old = fs::metadata(&ckpt).unwrap();
    // Same size, same mtime, different content, new inode (atomic save).
    let tmp = ws.path("checkpoints/.epoch_1.pt.tmp");
    let replacement = random_bytes(777, 600_000);
    fs::write(&tmp, &replacement).unwrap();
    set_mtime_ns(&tmp, mtime_ns(&old));
    fs::rename(&tmp, &ckpt).unwrap();
    let new = fs::metadata(&ckpt).unwrap();
    assert_eq!(new.len(), old.len());
    assert_eq!(mtime_ns(&new), mtime_ns(&old));
    assert_ne!(new.ino(), old.ino());

    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files_read"), 1, "{s}");
    assert!(summary_u64(&s, "new_raw_bytes") >= 600_000);
    let out = ws.restore_to("latest", "out");
    assert_eq!(
        fs::read(out.join("checkpoints/epoch_1.pt")).unwrap(),
        replacement
    );
}

#[test]
fn freshly_written_files_are_not_trusted_by_the_cache() {
    // A file changed right before the commit reads it may change again
    // within the same timestamp tick, so it is read again next time.
    let ws = Ws::new();
    ws.write("hot.log", b"line 1\n");
    let first = ws.commit(&[]);
    assert_eq!(summary_u64(&first, "files_read"), 1);
    let m = fs::metadata(ws.path("hot.log")).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(m.modified().unwrap())
        .unwrap_or_default();
    if age < Duration::from_millis(50) {
        // Still inside the margin: must be read again.
        let second = ws.commit(&[]);
        assert_eq!(summary_u64(&second, "files_read"), 1, "{second}");
    }
    // Once settled, it is read once more and then trusted.
    wait_until_settled(&ws.root, SETTLE);
    ws.commit(&[]);
    let last = ws.commit(&[]);
    assert_eq!(summary_u64(&last, "files_read"), 0, "{last}");
}

#[test]
fn deleted_and_recreated_file_is_read() {
    let ws = workspace_with_files();
    fs::remove_file(ws.path("checkpoints/epoch_2.pt")).unwrap();
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files"), 3);
    assert_eq!(summary_u64(&s, "files_read"), 0, "{s}");
    ws.write("checkpoints/epoch_2.pt", b"new");
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files_read"), 1, "{s}");
    assert_eq!(ws.ok(&["cat", "latest:checkpoints/epoch_2.pt"]), "new");
}

#[test]
fn lost_index_only_costs_a_re_read() {
    let ws = workspace_with_files();
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(ws.repo().join(format!("index.sqlite{suffix}")));
    }
    let s = ws.commit(&[]);
    assert_eq!(summary_u64(&s, "files_read"), 4, "{s}");
    assert_eq!(summary_u64(&s, "new_chunks"), 0);
}

/// A child process that appends a line to a file about every millisecond
/// until it is dropped.
struct Appender(std::process::Child);

impl Appender {
    fn start(ws: &Ws, rel: &str) -> Appender {
        let script = format!(
            "i=0; while :; do i=$((i+1)); echo \"step $i loss 0.$i\" >> '{rel}'; sleep 0.001; done"
        );
        let child = std::process::Command::new("sh")
            .args(["-c", &script])
            .current_dir(&ws.root)
            .spawn()
            .expect("start sh");
        let path = ws.path(rel);
        let start = fs::metadata(&path).expect("stat").len();
        wait_for("the appender", Duration::from_secs(10), || {
            fs::metadata(&path).expect("stat").len() > start + 200
        });
        Appender(child)
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_log_appended_to_during_the_commit_is_stored_as_a_prefix() {
    let ws = Ws::new();
    // Large enough that reading it spans many appends.
    let initial = Rng::new(5).text(8 * MIB);
    ws.write("logs/train.log", &initial);
    ws.write("config.yaml", b"lr: 1\n");
    let appender = Appender::start(&ws, "logs/train.log");
    let o = ws.run(&["commit", "--json"]);
    drop(appender);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("skipped"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("still being written"),
        "a growing log is normal, not a warning: {}",
        stderr(&o)
    );
    let snap: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let id = id_of(&snap);
    let full = fs::read(ws.path("logs/train.log")).unwrap();
    let stored = ws.run(&["cat", &format!("{id}:logs/train.log")]).stdout;
    assert!(
        stored.len() > initial.len(),
        "the appends before the commit are in"
    );
    assert!(
        full.starts_with(&stored),
        "stored {} bytes that are not a prefix of the final {} bytes",
        stored.len(),
        full.len()
    );
    let files = ws.show_files(&id);
    assert_eq!(files["logs/train.log"]["size"], stored.len() as u64);
    assert_eq!(summary_u64(&snap, "logical_bytes"), stored.len() as u64 + 6);

    // The stat cache does not take the stored prefix for the grown file:
    // the next commit reads it and stores all of it.
    wait_until_settled(&ws.root, SETTLE);
    let next = ws.commit(&[]);
    assert!(summary_u64(&next, "files_read") >= 1, "{next}");
    assert_eq!(ws.run(&["cat", "latest:logs/train.log"]).stdout, full);
}
