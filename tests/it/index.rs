//! The index telling the truth (issue 11): a reader's sync never drops a
//! row for a file a concurrent commit just wrote, never deletes an index it
//! does not own, and works where it cannot write; `check` compares every
//! index row with its file; a damaged index is rebuilt; a tag replaced by a
//! directory, a session lock that cannot be checked and a damaged config
//! make snap refuse or advise rightly rather than lose or misname data.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::util::*;

/// A workspace whose retention keeps nothing but tags (as in `retention`),
/// with a tagged snapshot `keepme` in session a and one in session b.
fn keep_nothing_fixture() -> (Ws, String) {
    let ws = Ws::new();
    ws.write(
        "snap.toml",
        b"[retention]\nkeep_sessions = 0\nkeep_commits = 0\nkeep_commits_within = \"none\"\n",
    );
    ws.write("model.bin", &random_bytes(4101, 200_000));
    let kept = ws.commit_id(&["--session", "a", "--tag", "keepme"]);
    ws.write("model.bin", &random_bytes(4102, 200_000));
    ws.commit_id(&["--session", "b"]);
    (ws, kept)
}

/// Every file under `packs/`.
fn pack_files(ws: &Ws) -> Vec<String> {
    walk(&ws.repo().join("packs"), &[])
        .into_iter()
        .filter(|(_, n)| matches!(n.kind, Kind::File { .. }))
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect()
}

fn index_db(ws: &Ws) -> rusqlite::Connection {
    rusqlite::Connection::open(ws.repo().join("index.sqlite")).expect("open the index")
}

fn indexed_snapshots(ws: &Ws) -> Vec<String> {
    let db = index_db(ws);
    let mut stmt = db.prepare("SELECT hex(id) FROM snapshots").unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| r.unwrap().to_lowercase()).collect()
}

#[test]
fn a_tag_replaced_by_a_directory_makes_forget_and_prune_refuse() {
    let (ws, kept) = keep_nothing_fixture();
    let packs_before = pack_files(&ws);
    let tag = ws.repo().join("refs/tags/keepme");
    let good = fs::read(&tag).unwrap();
    fs::remove_file(&tag).unwrap();
    fs::create_dir(&tag).unwrap();

    for op in [
        &["forget"][..],
        &["prune"][..],
        &["forget", "--dry-run"][..],
    ] {
        let e = stderr(&ws.fails(op, 3));
        assert!(e.contains("refused") && e.contains("keepme"), "{op:?}: {e}");
        assert!(e.contains("nothing was deleted"), "{e}");
    }
    assert_eq!(ws.log().len(), 2, "a snapshot was forgotten");
    assert_eq!(pack_files(&ws), packs_before, "a pack was deleted");

    // Readers still work, warn, and the tag still names its snapshot.
    let o = ws.run(&["log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("tag keepme"), "{}", stderr(&o));
    let restored = ws.restore_to("keepme", "out");
    assert_eq!(
        fs::read(restored.join("model.bin")).unwrap(),
        random_bytes(4101, 200_000)
    );

    // `snap tag` puts the tag file back in the (empty) directory's place
    // in one step; then retention goes ahead and keeps it.
    ws.ok(&["tag", "keepme", &kept[..8]]);
    assert_eq!(fs::read(&tag).unwrap(), good);
    ws.ok(&["forget"]);
    ws.ok(&["prune"]);
    assert!(ws.log().iter().any(|s| s["id"] == kept.as_str()));
    ws.ok(&["check", "--read-data"]);
}

/// A reader (`snap log`) lists the files, then a commit lands, then the
/// reader's sync reads the index and writes: the new snapshot's row stays.
#[test]
fn a_reader_sync_across_a_commit_keeps_the_new_snapshot() {
    let ws = Ws::new();
    ws.write("a.bin", &random_bytes(4201, 100_000));
    ws.commit_id(&[]);
    let mut log = snap_std(&ws.root);
    log.arg("log");
    let reader = Paused::at(log, "sync:listed");
    ws.write("b.bin", &random_bytes(4202, 100_000));
    let new = ws.commit_id(&[]);
    assert!(indexed_snapshots(&ws).contains(&new));
    let o = reader.finish();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        indexed_snapshots(&ws).contains(&new),
        "the reader's sync dropped the snapshot committed while it ran"
    );
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn a_reader_never_deletes_an_index_of_another_schema() {
    let ws = Ws::new();
    ws.write("a.bin", &random_bytes(4301, 50_000));
    let id = ws.commit_id(&[]);
    index_db(&ws)
        .execute("UPDATE meta SET value='2' WHERE key='schema'", [])
        .unwrap();
    let schema = || -> String {
        index_db(&ws)
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .unwrap()
    };

    let o = ws.run(&["log", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&id), "{}", stdout(&o));
    assert!(stderr(&o).contains("schema"), "{}", stderr(&o));
    assert_eq!(schema(), "2", "a reader replaced the index");
    ws.restore_to("latest", "out");
    assert_eq!(schema(), "2", "a reader replaced the index");

    // A writer, holding the lock, rebuilds it (2 is older than the one
    // schema migrated in place; see smallfiles.rs for 3 and for newer ones).
    ws.write("b.bin", &random_bytes(4302, 50_000));
    ws.commit_id(&[]);
    assert_eq!(schema(), "4");
    assert_eq!(ws.log().len(), 2);
}

/// Makes `dir` and everything under it readable and not writable by the
/// user `readonly_cmd` runs as, and returns how a command runs as that user.
/// Not root: the files lose their write bits. Root ignores those bits, so
/// the command runs as `nobody` (uid 65534), to whom the repository (owned
/// by root, mode 0644/0755) is read-only.
fn make_unwritable(tree: &Path) {
    let root = unsafe { libc::geteuid() } == 0;
    for (path, node) in walk(tree, &[]) {
        let p = tree.join(&path);
        let dir = matches!(node.kind, Kind::Dir);
        if !dir && !matches!(node.kind, Kind::File { .. }) {
            continue;
        }
        let mode = if dir { 0o555 } else { 0o444 };
        fs::set_permissions(
            &p,
            fs::Permissions::from_mode(if root { mode | 0o200 } else { mode }),
        )
        .unwrap();
    }
    let top = if root { 0o755 } else { 0o555 };
    fs::set_permissions(tree, fs::Permissions::from_mode(top)).unwrap();
}

fn readonly_cmd(ws: &Ws, args: &[&str]) -> std::process::Output {
    let mut cmd = snap_std(&ws.root);
    cmd.args(args);
    if unsafe { libc::geteuid() } == 0 {
        cmd.uid(65534).gid(65534);
    }
    cmd.output().expect("run snap")
}

#[test]
fn readers_work_on_a_repository_they_cannot_write() {
    let ws = Ws::new();
    ws.write("a.bin", &random_bytes(4401, 120_000));
    let first = ws.commit_id(&[]);
    ws.write("b.bin", &random_bytes(4402, 120_000));
    let o = ws
        .cmd()
        .env("SNAP_FAILPOINT", "publish:before-index")
        .args(["commit"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "the failpoint did not abort the commit"
    );
    // The second snapshot is on disk but not in the index: stale.
    assert_eq!(indexed_snapshots(&ws).len(), 1);
    let target = ws.outside("out");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).unwrap();
    // The temporary directory's parents must be reachable as `nobody`.
    fs::set_permissions(ws.tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    make_unwritable(&ws.root);

    let log = readonly_cmd(&ws, &["log", "--json"]);
    assert!(log.status.success(), "log: {}", stderr(&log));
    let entries: serde_json::Value = serde_json::from_slice(&log.stdout).unwrap();
    assert_eq!(
        entries.as_array().unwrap().len(),
        2,
        "the stale snapshot is listed"
    );
    let t = target.join("r").to_str().unwrap().to_string();
    let o = readonly_cmd(&ws, &["restore", "latest", "--target", &t]);
    assert!(o.status.success(), "restore: {}", stderr(&o));
    assert_eq!(
        fs::read(target.join("r/b.bin")).unwrap(),
        random_bytes(4402, 120_000)
    );
    let o = readonly_cmd(&ws, &["check", "--read-data"]);
    assert!(o.status.success(), "check: {}{}", stdout(&o), stderr(&o));
    assert_eq!(
        indexed_snapshots(&ws).len(),
        1,
        "the index file was written"
    );

    // Without an index file at all (it cannot be created here).
    let index = ws.repo().join("index.sqlite");
    fs::set_permissions(ws.repo(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(&index).unwrap();
    make_unwritable(&ws.root);
    let o = readonly_cmd(&ws, &["show", &first]);
    assert!(o.status.success(), "show: {}", stderr(&o));
    assert!(stdout(&o).contains("a.bin"), "{}", stdout(&o));
    assert!(!index.exists());
    make_writable(&ws.root);
}

/// Undoes `make_unwritable`, so the temporary directory can be removed.
fn make_writable(tree: &Path) {
    fs::set_permissions(tree, fs::Permissions::from_mode(0o755)).unwrap();
    for (path, node) in walk(tree, &[]) {
        if matches!(node.kind, Kind::Dir) {
            fs::set_permissions(tree.join(path), fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

#[test]
fn check_compares_every_index_row_with_its_file() {
    let ws = Ws::new();
    ws.write("model.bin", &random_bytes(4501, 100_000));
    let old = ws.commit_id(&[]);
    ws.write("model.bin", &random_bytes(4502, 100_000));
    let new = ws.commit_id(&[]);
    let db = index_db(&ws);
    let old_blob = hex_blob(&old);

    // An old snapshot's time moved into the future: `latest` is still the
    // newest record, and check names the edited row.
    db.execute(
        "UPDATE snapshots SET time_ns = time_ns + 1000000000000000 WHERE id = ?1",
        [&old_blob],
    )
    .unwrap();
    let out = ws.restore_to("latest", "latest");
    assert_eq!(
        fs::read(out.join("model.bin")).unwrap(),
        random_bytes(4502, 100_000),
        "restore latest followed an edited index row"
    );
    let report = |ws: &Ws| {
        let o = ws.fails(&["check", "--read-data"], 3);
        format!("{}{}", stdout(&o), stderr(&o))
    };
    let r = report(&ws);
    assert!(r.contains(&old[..8]) && r.contains("snap reindex"), "{r}");
    ws.ok(&["reindex"]);
    ws.ok(&["check"]);

    // A snapshot row holding the other snapshot's record: no command
    // follows it, check names it.
    let db = index_db(&ws);
    db.execute(
        "UPDATE snapshots SET record = (SELECT record FROM snapshots WHERE id = ?2) WHERE id = ?1",
        [&old_blob, &hex_blob(&new)],
    )
    .unwrap();
    let o = ws.fails(&["restore", "latest", "--target", "x"], 3);
    assert!(stderr(&o).contains("snap reindex"), "{}", stderr(&o));
    let r = report(&ws);
    assert!(r.contains("another record"), "{r}");
    // The next writer finds the row and rebuilds the index.
    ws.write("other.bin", b"other");
    ws.commit_id(&[]);
    ws.ok(&["check"]);

    // A pack row with another size, a blob row at another offset.
    let db = index_db(&ws);
    db.execute("UPDATE packs SET size = size + 1 WHERE rowid = 1", [])
        .unwrap();
    let r = report(&ws);
    assert!(r.contains("kind or size"), "{r}");
    ws.ok(&["reindex"]);
    let db = index_db(&ws);
    db.execute(
        "UPDATE blobs SET offset = offset + 1 WHERE id = (SELECT max(id) FROM blobs)",
        [],
    )
    .unwrap();
    let r = report(&ws);
    assert!(r.contains("blob rows"), "{r}");
    ws.ok(&["reindex"]);
    ws.ok(&["check", "--read-data"]);
}

fn hex_blob(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_damaged_index_page_is_found_and_rebuilt() {
    let ws = Ws::new();
    for i in 0..40u64 {
        ws.write(&format!("d/f{i:02}.bin"), &random_bytes(4600 + i, 3_000));
    }
    ws.commit_id(&[]);
    for i in 0..40u64 {
        ws.write(&format!("d/g{i:02}.bin"), &random_bytes(4700 + i, 3_000));
    }
    ws.commit_id(&[]);
    let index = ws.repo().join("index.sqlite");
    let mut bytes = fs::read(&index).unwrap();
    let pages = bytes.len() / 4096;
    assert!(pages >= 4, "the index has {pages} pages");
    let mid = pages / 2 * 4096;
    for b in &mut bytes[mid..mid + 4096] {
        *b ^= 0x5a;
    }
    fs::write(&index, &bytes).unwrap();

    let o = ws.fails(&["check"], 3);
    let r = format!("{}{}", stdout(&o), stderr(&o));
    assert!(r.contains("damaged") && r.contains("snap reindex"), "{r}");

    // The next writer rebuilds it.
    ws.write("d/h.bin", &random_bytes(4800, 3_000));
    ws.commit_id(&[]);
    assert_eq!(ws.log().len(), 3);
    ws.ok(&["check", "--read-data"]);
    let out = ws.restore_to("latest", "out");
    assert_eq!(
        fs::read(out.join("d/h.bin")).unwrap(),
        random_bytes(4800, 3_000)
    );
}

/// A session lock that cannot be opened (here a symlink loop) may belong to
/// a live run: forget decides nothing and says which file to look at.
#[test]
fn forget_refuses_when_a_session_lock_cannot_be_checked() {
    let (ws, _) = keep_nothing_fixture();
    let lock = ws.repo().join("locks/session-0123456789abcdef");
    std::os::unix::fs::symlink("session-0123456789abcdef", &lock).unwrap();
    let e = stderr(&ws.fails(&["forget"], 3));
    assert!(
        e.contains("session-0123456789abcdef") && e.contains("nothing was forgotten"),
        "{e}"
    );
    assert_eq!(ws.log().len(), 2);
    fs::remove_file(&lock).unwrap();
    ws.ok(&["forget"]);
    assert_eq!(ws.log().len(), 1, "only the tagged snapshot stays");
}

#[test]
fn a_config_with_a_flipped_bit_is_reported_damaged() {
    let ws = Ws::new();
    ws.write("a.bin", &random_bytes(4901, 10_000));
    ws.commit_id(&[]);
    let config = ws.repo().join("config");
    let good = fs::read(&config).unwrap();
    for offset in [5u64, 20, good.len() as u64 - 1] {
        flip_byte(&config, offset);
        let e = stderr(&ws.fails(&["log"], 3));
        assert!(e.contains("is damaged") && e.contains("backup"), "{e}");
        assert!(!e.contains("create one with"), "{e}");
        fs::write(&config, &good).unwrap();
    }
    ws.ok(&["log"]);
}

#[test]
fn missing_locks_and_tmp_are_tolerated_by_readers_and_recreated_by_writers() {
    let ws = Ws::new();
    ws.write("a.bin", &random_bytes(5001, 10_000));
    ws.commit_id(&[]);
    fs::remove_dir_all(ws.repo().join("locks")).unwrap();
    fs::remove_dir_all(ws.repo().join("tmp")).unwrap();
    assert_eq!(ws.log().len(), 1);
    ws.ok(&["check"]);
    ws.restore_to("latest", "out");
    ws.write("b.bin", &random_bytes(5002, 10_000));
    ws.commit_id(&[]);
    assert!(ws.repo().join("locks").is_dir() && ws.repo().join("tmp").is_dir());
    ws.ok(&["forget", "--dry-run"]);
    assert_eq!(ws.log().len(), 2);
}

/// Readers on a full disk (a 9 MiB tmpfs, as in `diskfull`): the index is
/// stale (a commit died before its index transaction) and cannot be
/// written, yet log, restore and check work from a copy in memory.
#[test]
fn readers_work_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_file(&data.join("a.bin"), &random_bytes(5101, 100_000));
    write_file(&data.join("b.bin"), &random_bytes(5102, 100_000));
    let script = format!(
        r#"
D="$1"; OUT="$2"
mkdir "$D/ws" && cd "$D/ws"
snap init >/dev/null
cp {data}/a.bin .
snap commit -m one >/dev/null
cp {data}/b.bin .
set +e
SNAP_FAILPOINT=publish:before-index snap commit -m two >/dev/null 2>&1
dd if=/dev/zero of="$D/fill" bs=64k 2>/dev/null
dd if=/dev/zero of="$D/fill2" bs=512 2>/dev/null
snap log --json >"$OUT/log.json" 2>"$OUT/log.err"; echo $? >"$OUT/log.rc"
snap restore latest --target "$OUT/restored" 2>"$OUT/restore.err"; echo $? >"$OUT/restore.rc"
snap check --read-data >"$OUT/check.out" 2>&1; echo $? >"$OUT/check.rc"
"#,
        data = data.display()
    );
    let Some(o) = crate::diskfull::on_small_disk(dir.path(), &script) else {
        eprintln!("skipped: this machine cannot mount a tmpfs in a private namespace");
        return;
    };
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("log.rc").trim(), "0", "log: {}", read("log.err"));
    let log: serde_json::Value = serde_json::from_str(&read("log.json")).unwrap();
    assert_eq!(
        log.as_array().unwrap().len(),
        2,
        "the stale snapshot is listed"
    );
    assert_eq!(
        read("restore.rc").trim(),
        "0",
        "restore: {}",
        read("restore.err")
    );
    assert_eq!(
        fs::read(out.join("restored/b.bin")).unwrap(),
        random_bytes(5102, 100_000)
    );
    assert_eq!(read("check.rc").trim(), "0", "check: {}", read("check.out"));
}

#[test]
fn readers_work_on_a_read_only_mount() {
    // The repository bind-mounted read-only in a private mount namespace,
    // with its index gone: log, restore and check still work.
    let ws = Ws::new();
    ws.write("a.txt", b"on a read-only disk");
    let id = ws.commit_id(&[]);
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = fs::remove_file(ws.repo().join(f));
    }
    let repo = ws.repo();
    let out = ws.outside("out");
    let snap = env!("CARGO_BIN_EXE_snap");
    let script = format!(
        "mount --bind '{r}' '{r}' && mount -o remount,ro,bind '{r}' || exit 99\n\
         if touch '{r}/probe' 2>/dev/null; then exit 98; fi\n\
         cd '{w}' && '{s}' log --json >'{o}.log' && '{s}' restore latest --target '{o}' && '{s}' check",
        r = repo.display(),
        w = ws.root.display(),
        s = snap,
        o = out.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .output()
        .expect("run unshare");
    if o.status.code() == Some(99) || !o.status.success() && stderr(&o).contains("unshare") {
        eprintln!("skipped: this machine cannot make a read-only bind mount");
        return;
    }
    assert_ne!(o.status.code(), Some(98), "the mount was writable");
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("no problems found"), "{}", stdout(&o));
    let log = fs::read_to_string(ws.outside("out.log")).unwrap();
    assert!(log.contains(&id), "{log}");
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"on a read-only disk");
}
