//! Many small files (issue 15 item 4): thousands of files of a few KB go
//! through the batched pipeline and come back byte for byte, an unchanged
//! recommit stores nothing, and an index of the previous schema (3) is
//! migrated in place, keeping every snapshot restorable and the stat cache;
//! a newer snap's index is refused and kept.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::util::*;

/// More than the 50 ms racy-timestamp margin of the stat cache.
const SETTLE: Duration = Duration::from_millis(120);

/// Writes `n` small files in 20 folders: log text and JSON lines of 0 bytes
/// to 70 KB (most ~4 KB, some around the 64 KiB batching threshold), every
/// 10th a copy of an earlier one. Returns how many distinct non-empty
/// contents they hold (each file is under the 256 KiB minimum chunk, so one
/// chunk each).
fn small_files(ws: &Ws, n: usize, seed: u64) -> usize {
    let mut rng = Rng::new(seed);
    let mut written: Vec<Vec<u8>> = Vec::new();
    for i in 0..n {
        let data = match i % 10 {
            9 => written[rng.below(written.len() as u64) as usize].clone(),
            _ if i % 97 == 0 => Vec::new(),
            _ if i % 89 == 0 => {
                let len = 64 * 1024 - 3000 + rng.below(6000) as usize;
                rng.text(len)
            }
            _ if i % 2 == 0 => {
                let len = 2048 + rng.below(4096) as usize;
                let mut v = Vec::new();
                while v.len() < len {
                    v.extend_from_slice(
                        format!(
                            "{{\"step\": {i}, \"loss\": 0.{:05}, \"acc\": 0.{:04}}}\n",
                            rng.below(100_000),
                            rng.below(10_000)
                        )
                        .as_bytes(),
                    );
                }
                v.truncate(len);
                v
            }
            _ => {
                let len = 1 + rng.below(8192) as usize;
                rng.text(len)
            }
        };
        let ext = if i % 2 == 0 { "json" } else { "log" };
        ws.write(&format!("run_{:02}/f{i:05}.{ext}", i % 20), &data);
        written.push(data);
    }
    let distinct: HashSet<&Vec<u8>> = written.iter().filter(|d| !d.is_empty()).collect();
    distinct.len()
}

fn pack_count(ws: &Ws) -> usize {
    packs_of_kind(&ws.repo(), 0).len() + packs_of_kind(&ws.repo(), 1).len()
}

#[test]
fn many_small_files_round_trip() {
    let ws = Ws::new();
    let distinct = small_files(&ws, 3000, 1501);
    let first = ws.commit(&[]);
    assert_eq!(summary_u64(&first, "files"), 3000);
    assert_eq!(summary_u64(&first, "files_read"), 3000);
    // One chunk per distinct content: copies in the same batch, in another
    // batch or in another commit are stored once.
    assert_eq!(
        summary_u64(&first, "new_chunks"),
        distinct as u64,
        "{first}"
    );
    let out = ws.restore_to("latest", "first");
    assert_same_tree(&ws.root, &out, &[".snap"]);

    // Small files among large ones (tasks of their own, several chunks),
    // a few small files changed.
    let mut rng = Rng::new(1502);
    ws.write("big/a.bin", &rng.bytes(3 * MIB + 12_345));
    ws.write("big/b.log", &rng.text(2 * MIB));
    for i in (0..3000).step_by(301) {
        let ext = if i % 2 == 0 { "json" } else { "log" };
        ws.write(&format!("run_{:02}/f{i:05}.{ext}", i % 20), &rng.text(5000));
    }
    let first_id = id_of(&first);
    let second = ws.commit(&[]);
    assert_eq!(summary_u64(&second, "files"), 3002);
    let out = ws.restore_to("latest", "second");
    assert_same_tree(&ws.root, &out, &[".snap"]);
    let out = ws.restore_to(&first_id, "first-again");
    assert_same_tree(&ws.outside("first"), &out, &[]);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn an_unchanged_recommit_of_many_small_files_stores_nothing() {
    let ws = Ws::new();
    small_files(&ws, 2000, 1511);
    wait_until_settled(&ws.root, SETTLE);
    ws.commit(&[]);
    let packs = pack_count(&ws);
    let bytes = pack_bytes(&ws.repo());
    let data_packs = packs_of_kind(&ws.repo(), 0);
    let again = ws.commit(&[]);
    assert_eq!(summary_u64(&again, "files_read"), 0, "{again}");
    assert_eq!(summary_u64(&again, "new_chunks"), 0);
    assert_eq!(summary_u64(&again, "files"), 2000);
    assert_eq!(pack_count(&ws), packs, "an unchanged recommit wrote a pack");
    assert_eq!(pack_bytes(&ws.repo()), bytes);

    // Rewritten with the same bytes: read again, nothing new stored.
    let p = ws.path("run_03/f00003.log");
    let same = fs::read(&p).unwrap();
    fs::remove_file(&p).unwrap();
    fs::write(&p, &same).unwrap();
    wait_until_settled(&ws.root, SETTLE);
    let touched = ws.commit(&[]);
    assert_eq!(summary_u64(&touched, "files_read"), 1, "{touched}");
    assert_eq!(summary_u64(&touched, "new_chunks"), 0);
    // Its directory's tree changed (the file's times), no data was stored.
    assert_eq!(packs_of_kind(&ws.repo(), 0), data_packs);
    let out = ws.restore_to("latest", "out");
    assert_same_tree(&ws.root, &out, &[".snap"]);
}

/// The schema 3 index (snap before the small-files work), as it created it.
const SCHEMA_V3: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs(id BLOB PRIMARY KEY, kind INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE TABLE blobs(id BLOB NOT NULL, kind INTEGER NOT NULL, pack BLOB NOT NULL, codec INTEGER NOT NULL,
                   offset INTEGER NOT NULL, stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL,
                   base BLOB, PRIMARY KEY(id, kind, pack));
CREATE INDEX blobs_by_pack ON blobs(pack);
CREATE TABLE snapshots(id BLOB PRIMARY KEY, time_ns INTEGER NOT NULL, session TEXT, epoch INTEGER,
                       workspace TEXT NOT NULL, record BLOB NOT NULL);
CREATE INDEX snapshots_by_time ON snapshots(time_ns);
CREATE TABLE tags(name TEXT PRIMARY KEY, snapshot BLOB NOT NULL);
CREATE TABLE statcache(workspace TEXT NOT NULL, path BLOB NOT NULL, size INTEGER NOT NULL,
                       mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL,
                       dev INTEGER NOT NULL, mode INTEGER NOT NULL, chunks BLOB NOT NULL,
                       PRIMARY KEY(workspace, path));
";

/// Replaces the repository's index with a schema 3 file holding the same
/// rows (pack ids instead of pack numbers, workspace paths instead of
/// workspace numbers), as snap 3 would have left it.
fn downgrade_index_to_v3(repo: &Path) {
    let live = repo.join("index.sqlite");
    let old = repo.join("index-v3.sqlite");
    let db = rusqlite::Connection::open(&old).unwrap();
    db.execute_batch(SCHEMA_V3).unwrap();
    db.execute(
        "ATTACH DATABASE ?1 AS cur",
        [live.to_str().expect("utf-8 temp path")],
    )
    .unwrap();
    db.execute_batch(
        "INSERT INTO meta VALUES('schema', '3');
         INSERT INTO packs SELECT id, kind, size FROM cur.packs;
         INSERT INTO blobs SELECT b.id, b.kind, p.id, b.codec, b.offset, b.stored_len, b.raw_len, b.base
                           FROM cur.blobs b JOIN cur.packs p ON p.num = b.pack;
         INSERT INTO snapshots SELECT * FROM cur.snapshots;
         INSERT INTO tags SELECT * FROM cur.tags;
         INSERT INTO statcache SELECT w.path, s.path, s.size, s.mtime_ns, s.ctime_ns, s.inode, s.dev,
                                      s.mode, s.chunks
                               FROM cur.statcache s JOIN cur.workspaces w ON w.num = s.workspace;
         DETACH DATABASE cur;",
    )
    .unwrap();
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(repo.join(format!("index.sqlite{suffix}")));
    }
    fs::rename(&old, &live).unwrap();
}

fn index_schema(repo: &Path) -> String {
    rusqlite::Connection::open(repo.join("index.sqlite"))
        .unwrap()
        .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
            r.get(0)
        })
        .unwrap()
}

fn count_rows(repo: &Path, table: &str) -> i64 {
    rusqlite::Connection::open(repo.join("index.sqlite"))
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Two snapshots of 300 small files and a larger one, tagged; settled, so
/// the stat cache holds every file.
fn two_snapshots() -> (Ws, String, String) {
    let ws = Ws::new();
    small_files(&ws, 300, 1521);
    ws.write("model.bin", &random_bytes(1522, 700_000));
    let first = ws.commit_id(&["--tag", "one"]);
    ws.restore_to(&first, "first");
    ws.write("model.bin", &random_bytes(1523, 700_000));
    ws.write("run_00/f00000.json", b"{\"step\": 0}\n");
    wait_until_settled(&ws.root, SETTLE);
    let second = ws.commit_id(&[]);
    (ws, first, second)
}

#[test]
fn an_index_of_schema_3_is_migrated_in_place() {
    let (ws, first, second) = two_snapshots();
    let repo = ws.repo();
    let blobs = count_rows(&repo, "blobs");
    let stat_rows = count_rows(&repo, "statcache");
    assert_eq!(stat_rows, 301);
    downgrade_index_to_v3(&repo);
    assert_eq!(index_schema(&repo), "3");

    // A reader that can write the index migrates it, and keeps every row.
    let log = ws.log();
    assert_eq!(log.len(), 2);
    assert_eq!(index_schema(&repo), "4");
    assert_eq!(count_rows(&repo, "blobs"), blobs);
    assert_eq!(count_rows(&repo, "statcache"), stat_rows);
    let out = ws.restore_to(&first, "first-again");
    assert_same_tree(&ws.outside("first"), &out, &[]);
    let out = ws.restore_to(&second, "second");
    assert_same_tree(&ws.root, &out, &[".snap"]);
    let tagged = ws.restore_to("one", "tagged");
    assert_same_tree(&ws.outside("first"), &tagged, &[]);

    // The stat cache came through: an unchanged commit reads nothing.
    let again = ws.commit(&[]);
    assert_eq!(summary_u64(&again, "files_read"), 0, "{again}");
    assert_eq!(summary_u64(&again, "new_chunks"), 0);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn a_crash_mid_migration_leaves_schema_3_and_the_next_open_migrates() {
    let (ws, first, _) = two_snapshots();
    let repo = ws.repo();
    downgrade_index_to_v3(&repo);
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", "index:mid-migration")
        .args(["commit"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the failpoint did not abort the open");
    assert!(stderr(&o).contains("index:mid-migration"), "{}", stderr(&o));
    assert_eq!(index_schema(&repo), "3", "a half migration was committed");

    let again = ws.commit(&[]);
    assert_eq!(index_schema(&repo), "4");
    assert_eq!(summary_u64(&again, "files_read"), 0, "{again}");
    let out = ws.restore_to(&first, "first-again");
    assert_same_tree(&ws.outside("first"), &out, &[]);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn a_newer_snaps_index_is_refused_and_kept() {
    let (ws, first, _) = two_snapshots();
    let repo = ws.repo();
    let db = rusqlite::Connection::open(repo.join("index.sqlite")).unwrap();
    db.execute("UPDATE meta SET value='99' WHERE key='schema'", [])
        .unwrap();
    drop(db);
    let bytes = fs::read(repo.join("index.sqlite")).unwrap();

    // Readers work from memory and say why; the file is untouched.
    let o = ws.run(&["log", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&first), "{}", stdout(&o));
    assert!(stderr(&o).contains("newer"), "{}", stderr(&o));
    let out = ws.restore_to(&first, "first-again");
    assert_same_tree(&ws.outside("first"), &out, &[]);

    // Writers refuse, naming the versions and what to do; nothing deleted.
    for op in [&["commit"][..], &["reindex"][..]] {
        let e = stderr(&ws.fails(op, 1));
        assert!(
            e.contains("schema version 99") && e.contains("newer than this snap's 4"),
            "{op:?}: {e}"
        );
        assert!(e.contains("delete"), "{e}");
        assert_eq!(index_schema(&repo), "99", "{op:?} replaced the index");
        assert_eq!(fs::read(repo.join("index.sqlite")).unwrap(), bytes);
    }

    // Deleted by hand (it is a cache), the next writer rebuilds it.
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(repo.join(format!("index.sqlite{suffix}")));
    }
    ws.write("late.log", b"after\n");
    ws.commit_id(&[]);
    assert_eq!(index_schema(&repo), "4");
    assert_eq!(ws.log().len(), 3);
}
