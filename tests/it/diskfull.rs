//! A repository on a full disk: a commit that runs out of space says so,
//! names the file and how much it needed, leaves no temporary behind, and
//! every earlier snapshot stays restorable. The disk is a real 9 MiB tmpfs,
//! mounted in a private mount namespace (`unshare -m`, or `unshare -rm` for
//! a user without root), so it disappears with the test's shell.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Runs `script` (sh) with `$1` = a fresh 9 MiB tmpfs mount point and `$2` =
/// `out`, in a private mount namespace. None if this machine cannot mount
/// one (no root and no user namespaces).
pub(crate) fn on_small_disk(dir: &Path, script: &str) -> Option<std::process::Output> {
    let mnt = dir.join("mnt");
    let out = dir.join("out");
    fs::create_dir_all(&mnt).unwrap();
    fs::create_dir_all(&out).unwrap();
    let full = format!("set -e\nmount -t tmpfs -o size=9m tmpfs \"$1\"\n{script}");
    for flags in ["-m", "-rm"] {
        let probe = Command::new("unshare")
            .args([
                flags,
                "sh",
                "-c",
                "mount -t tmpfs -o size=1m tmpfs \"$1\"",
                "sh",
            ])
            .arg(&mnt)
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            continue;
        }
        let o = Command::new("unshare")
            .args([flags, "sh", "-c", &full, "sh"])
            .arg(&mnt)
            .arg(&out)
            .env("PATH", path_with_snap())
            .output()
            .expect("run unshare");
        return Some(o);
    }
    None
}

#[test]
fn a_commit_on_a_full_disk_says_so_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    write_file(&data.join("small.bin"), &random_bytes(1, 100_000));
    // Incompressible, and more than the disk has left after the copies.
    write_file(&data.join("big.bin"), &random_bytes(2, 6_000_000));
    write_file(&data.join("big2.bin"), &random_bytes(3, 2_000_000));
    let script = format!(
        r#"
D="$1"; OUT="$2"
mkdir "$D/ws" && cd "$D/ws"
snap init >/dev/null
cp {data}/small.bin .
snap commit -m one >/dev/null
cp {data}/big.bin {data}/big2.bin .
set +e
snap commit -m two 2>"$OUT/commit.err"; echo $? >"$OUT/commit.rc"
ls -A .snap/tmp >"$OUT/tmp.ls"
snap log --json >"$OUT/log.json"
snap check --read-data >"$OUT/check.out" 2>&1; echo $? >"$OUT/check.rc"
snap restore latest --target "$OUT/restored" 2>"$OUT/restore.err"
rm big.bin
snap commit -m three >/dev/null 2>"$OUT/again.err"; echo $? >"$OUT/again.rc"
"#,
        data = data.display()
    );
    let Some(o) = on_small_disk(dir.path(), &script) else {
        eprintln!("skipped: this machine cannot mount a tmpfs in a private namespace");
        return;
    };
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();

    let err = read("commit.err");
    assert_eq!(read("commit.rc").trim(), "1", "{err}");
    assert!(
        err.contains("no space left on device: write pack") && err.contains("/.snap/tmp/pack-"),
        "{err}"
    );
    assert!(
        err.contains("this commit had up to 7.7 MiB of changed files"),
        "{err}"
    );
    assert!(err.contains("free there now"), "{err}");
    assert!(!err.contains("pack writer stopped"), "{err}");
    assert_eq!(
        read("tmp.ls"),
        "",
        "the failed commit left its temporary pack"
    );

    let log: serde_json::Value = serde_json::from_str(&read("log.json")).unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["message"], "one");
    assert_eq!(read("check.rc").trim(), "0", "{}", read("check.out"));
    assert_eq!(
        fs::read(out.join("restored/small.bin")).unwrap(),
        random_bytes(1, 100_000),
        "{}",
        read("restore.err")
    );
    // With room again, the next commit goes through.
    assert_eq!(read("again.rc").trim(), "0", "{}", read("again.err"));
}
