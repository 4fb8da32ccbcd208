//! `snap import-zip`: real zip archives (written with the zip crate, deflate)
//! in the layout of the old backup script become dated snapshots, one
//! session each, deduplicated; damaged or unsafe archives import nothing.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{FixedOffset, NaiveDate, TimeZone};
use serde_json::Value;

use crate::util::*;

/// The time zone snap runs in: UTC+5:30 as a POSIX TZ string (no time zone
/// database needed), so that "local time" differs from UTC.
const TZ: &str = "XYZ-5:30";

/// Unix nanoseconds of a wall-clock time in `TZ`.
fn local_ns(t: (u16, u8, u8, u8, u8, u8)) -> i64 {
    let (y, mo, d, h, mi, s) = t;
    let naive = NaiveDate::from_ymd_opt(y as i32, mo as u32, d as u32)
        .unwrap()
        .and_hms_opt(h as u32, mi as u32, s as u32)
        .unwrap();
    FixedOffset::east_opt(5 * 3600 + 30 * 60)
        .unwrap()
        .from_local_datetime(&naive)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

fn import(ws: &Ws, zips: &[&Path], json: bool) -> Output {
    let mut cmd = ws.cmd();
    cmd.env("TZ", TZ).arg("import-zip").args(zips);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run snap import-zip")
}

fn log_ids(ws: &Ws) -> Vec<String> {
    ws.log()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every file name anywhere below the test's temporary directory.
fn names_below(root: &Path) -> BTreeSet<String> {
    walk(root, &[])
        .keys()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

/// The archive of one training backup, as the old script zipped it.
struct Backup {
    path: PathBuf,
    stem: String,
    time: (u16, u8, u8, u8, u8, u8),
    items: Vec<ZipItem>,
}

fn backups(ws: &Ws, shared: &[u8]) -> Vec<Backup> {
    let dir = ws.outside("archives");
    fs::create_dir_all(&dir).unwrap();
    let specs = [
        ("training_backup_20240314_093000", (2024, 3, 14, 9, 30, 0)),
        ("training_backup_20240315_104512", (2024, 3, 15, 10, 45, 12)),
        ("training_backup_20240316-235958", (2024, 3, 16, 23, 59, 58)),
    ];
    specs
        .iter()
        .enumerate()
        .map(|(k, (stem, time))| {
            let k = k as u64;
            let entry_time = (2024, 3, 14 + k as u8, 9, 29, 58);
            let items = vec![
                ZipItem::dir("logs/"),
                ZipItem::file("logs/train.log", Rng::new(4000 + k).text(60_000)),
                ZipItem::dir("models/"),
                ZipItem::file("models/head.bin", random_bytes(4010 + k, 120_000)),
                ZipItem::dir("config/"),
                ZipItem::file("config/train.yaml", format!("lr: 0.00{k}\n").into_bytes())
                    .at(entry_time),
                ZipItem::file("config/run.sh", b"#!/bin/sh\npython train.py\n".to_vec())
                    .mode(0o755),
                ZipItem::dir("root_checkpoints/"),
                ZipItem::file("root_checkpoints/model.pt", shared.to_vec()),
                ZipItem::file(
                    "root_checkpoints/optimizer.pt",
                    random_bytes(4020 + k, 50_000),
                ),
            ];
            let path = dir.join(format!("{stem}.zip"));
            write_zip(&path, &items);
            Backup {
                path,
                stem: stem.to_string(),
                time: *time,
                items,
            }
        })
        .collect()
}

#[test]
fn three_backups_become_three_dated_sessions_sharing_one_checkpoint() {
    let ws = Ws::new();
    let shared = random_bytes(4100, 3 * MIB);
    let zips = backups(&ws, &shared);
    // Not in date order: sessions rank by their dates anyway.
    let o = import(&ws, &[&zips[2].path, &zips[0].path, &zips[1].path], true);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Vec<Value> = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(report.len(), 3);
    assert!(
        report.iter().all(|r| r.get("error").is_none()),
        "{report:#?}"
    );

    let log = ws.log();
    assert_eq!(log.len(), 3);
    for (b, s) in zips.iter().zip(&log) {
        // One session per archive, named after it, dated from its name.
        assert_eq!(s["session"], b.stem.as_str());
        assert_eq!(s["time_ns"], local_ns(b.time), "{}", b.stem);
        let t = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap()).unwrap();
        assert_eq!(t.timestamp_nanos_opt(), Some(local_ns(b.time)));
        let r = report
            .iter()
            .find(|r| r["session"] == b.stem.as_str())
            .unwrap();
        assert_eq!(r["snapshot"], s["id"]);

        // root_checkpoints/ goes back to the workspace root.
        let id = s["id"].as_str().unwrap();
        let files = ws.show_files(id);
        let paths: Vec<&str> = files
            .iter()
            .filter(|(_, f)| f["kind"] == "file")
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "config/run.sh",
                "config/train.yaml",
                "logs/train.log",
                "model.pt",
                "models/head.bin",
                "optimizer.pt"
            ]
        );
        assert_eq!(
            files["config/run.sh"]["mode"].as_u64().unwrap() & 0o7777,
            0o755
        );
        assert_eq!(
            files["config/train.yaml"]["mode"].as_u64().unwrap() & 0o7777,
            0o644
        );
        let entry_time = b.items[5].time;
        assert_eq!(files["config/train.yaml"]["mtime_ns"], local_ns(entry_time));

        // Byte for byte.
        for it in &b.items {
            let Some(data) = &it.data else { continue };
            let rel = it.name.trim_start_matches("root_checkpoints/");
            let o = ws.run(&["cat", &format!("{id}:{rel}")]);
            assert!(o.status.success(), "cat {rel}: {}", stderr(&o));
            assert!(o.stdout == *data, "{}: {rel} differs", b.stem);
        }
    }

    // The shared checkpoint is stored once.
    let distinct: BTreeSet<&Vec<u8>> = zips
        .iter()
        .flat_map(|b| b.items.iter().filter_map(|it| it.data.as_ref()))
        .collect();
    let unique: u64 = distinct.iter().map(|d| d.len() as u64).sum();
    assert_eq!(ws.json(&["stats"])["unique_bytes"], unique);
    let stored_model: Vec<u64> = report
        .iter()
        .map(|r| r["summary"]["new_raw_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(
        stored_model
            .iter()
            .filter(|n| **n >= 3 * MIB as u64)
            .count(),
        1,
        "{stored_model:?}"
    );

    // Retention keeps imported archives (they were brought in on purpose),
    // whatever the session settings, and dates them from their names: a
    // fresh commit is "within 7d" while the 2024 backups are not.
    ws.write("notes.txt", b"now");
    let now = ws.commit_id(&[]);
    let dry = ws.json(&[
        "forget",
        "--dry-run",
        "--keep-sessions",
        "0",
        "--keep-within",
        "7d",
    ]);
    let reasons = |id: &Value| -> Vec<String> {
        dry["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| &d["id"] == id)
            .unwrap()["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reason"].as_str().unwrap().to_string())
            .collect()
    };
    for s in &log {
        assert_eq!(reasons(&s["id"]), ["imported"], "{dry:#}");
    }
    assert!(reasons(&Value::from(now.as_str())).contains(&"within".to_string()));
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn an_archive_without_a_date_in_its_name_is_dated_from_its_newest_entry() {
    let ws = Ws::new();
    let zip = ws.outside("old_backup.zip");
    write_zip(
        &zip,
        &[
            ZipItem::dir("config/").at((2023, 4, 1, 8, 0, 0)),
            ZipItem::file("config/a.yaml", b"a: 1\n".to_vec()).at((2023, 5, 1, 10, 0, 0)),
            ZipItem::file("logs/b.log", b"newest\n".to_vec()).at((2023, 6, 2, 11, 22, 34)),
            ZipItem::file("models/c.bin", random_bytes(4200, 10_000)).at((2023, 5, 20, 1, 2, 4)),
        ],
    );
    let o = import(&ws, &[&zip], false);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = ws.log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["session"], "old_backup");
    assert_eq!(log[0]["time_ns"], local_ns((2023, 6, 2, 11, 22, 34)));
    let id = log[0]["id"].as_str().unwrap();
    let o = ws.run(&["cat", &format!("{id}:logs/b.log")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(o.stdout, b"newest\n");
}

#[test]
fn root_checkpoints_leaves_no_empty_directory_behind() {
    let ws = Ws::new();
    let zip = ws.outside("training_backup_20240310_120000.zip");
    write_zip(
        &zip,
        &[
            ZipItem::dir("config/"),
            ZipItem::file("config/a.yaml", b"a: 1\n".to_vec()),
            ZipItem::dir("root_checkpoints/"),
            ZipItem::file("root_checkpoints/model.pt", random_bytes(4150, 10_000)),
        ],
    );
    let o = import(&ws, &[&zip], false);
    assert!(o.status.success(), "{}", stderr(&o));
    // What the live workspace looked like when the script zipped it.
    let files = ws.show_files("latest");
    let paths: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(paths, ["config", "config/a.yaml", "model.pt"]);
}

/// A zip with one entry's compressed bytes damaged (a byte flipped in the
/// middle of the last entry's data).
fn flipped_zip(path: &Path) {
    write_zip(
        path,
        &[
            ZipItem::file("config/a.yaml", b"a: 1\n".to_vec()),
            ZipItem::file("logs/x.log", Rng::new(4300).text(20_000)),
            ZipItem::file("models/big.bin", random_bytes(4301, 300_000)),
        ],
    );
    let (start, len) = {
        let mut z = zip::ZipArchive::new(fs::File::open(path).unwrap()).unwrap();
        let e = z.by_name("models/big.bin").unwrap();
        (e.data_start(), e.compressed_size())
    };
    flip_byte(path, start + len / 2);
}

/// A valid zip cut off at 60% of its length (no central directory).
fn truncated_zip(path: &Path) {
    write_zip(
        path,
        &[
            ZipItem::file("config/a.yaml", b"a: 2\n".to_vec()),
            ZipItem::file("models/m.bin", random_bytes(4302, 200_000)),
        ],
    );
    let len = fs::metadata(path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len * 6 / 10)
        .unwrap();
}

fn good_zip(path: &Path, seed: u64) {
    write_zip(
        path,
        &[
            ZipItem::file("config/train.yaml", format!("seed: {seed}\n").into_bytes()),
            ZipItem::file("root_checkpoints/model.pt", random_bytes(seed, 200_000)),
        ],
    );
}

#[test]
fn damaged_truncated_and_non_zip_archives_import_nothing() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    let before = log_ids(&ws);
    let dir = ws.outside("archives");
    fs::create_dir_all(&dir).unwrap();
    let flipped = dir.join("training_backup_20240103_000000.zip");
    flipped_zip(&flipped);
    let truncated = dir.join("training_backup_20240104_000000.zip");
    truncated_zip(&truncated);
    let notzip = dir.join("training_backup_20240105_000000.zip");
    fs::write(&notzip, b"PK\x03\x04 this is not a zip archive\n").unwrap();

    let o = import(&ws, &[&flipped, &truncated, &notzip], false);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    for z in [&flipped, &truncated, &notzip] {
        let name = z.file_name().unwrap().to_str().unwrap();
        let line = err
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no error names {name}:\n{err}"));
        assert!(line.contains("nothing was imported"), "{line}");
    }
    // The damaged entry is named.
    assert!(
        err.lines()
            .any(|l| l.contains("training_backup_20240103_000000") && l.contains("models/big.bin")),
        "{err}"
    );
    assert_eq!(log_ids(&ws), before);
    assert_eq!(
        count_entries(&ws.repo().join("tmp")),
        0,
        "staging left behind"
    );

    // --json: one error object per archive.
    let o = import(&ws, &[&flipped, &truncated, &notzip], true);
    assert_eq!(o.status.code(), Some(1));
    let v: Vec<Value> = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v.len(), 3);
    for (r, z) in v.iter().zip([&flipped, &truncated, &notzip]) {
        assert!(r["error"].is_string(), "{r}");
        assert!(r.get("snapshot").is_none(), "{r}");
        assert_eq!(r["zip"], z.to_str().unwrap());
    }
    assert_eq!(log_ids(&ws), before);
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn the_good_archives_of_a_call_go_in_beside_the_damaged_ones() {
    let ws = Ws::new();
    let dir = ws.outside("archives");
    fs::create_dir_all(&dir).unwrap();
    let good_a = dir.join("training_backup_20240101_000000.zip");
    good_zip(&good_a, 4400);
    let flipped = dir.join("training_backup_20240103_000000.zip");
    flipped_zip(&flipped);
    let truncated = dir.join("training_backup_20240104_000000.zip");
    truncated_zip(&truncated);
    let good_b = dir.join("training_backup_20240102_000000.zip");
    good_zip(&good_b, 4401);

    let o = import(&ws, &[&good_a, &flipped, &truncated, &good_b], false);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let sessions: Vec<String> = ws
        .log()
        .iter()
        .map(|s| s["session"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sessions,
        [
            "training_backup_20240101_000000",
            "training_backup_20240102_000000"
        ]
    );
    for (s, seed) in [
        ("training_backup_20240101_000000", 4400),
        ("training_backup_20240102_000000", 4401),
    ] {
        let id = ws.log().into_iter().find(|x| x["session"] == s).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let o = ws.run(&["cat", &format!("{id}:model.pt")]);
        assert!(o.stdout == random_bytes(seed, 200_000), "{s}");
    }
    ws.ok(&["check", "--read-data"]);
}

#[test]
fn entries_pointing_outside_the_archive_are_refused() {
    let ws = Ws::new();
    let before = log_ids(&ws);
    let abs_target = ws.outside("abs_evil.txt");
    let zip = ws.outside("training_backup_20240106_000000.zip");
    write_zip(
        &zip,
        &[
            ZipItem::file("config/ok.yaml", b"ok\n".to_vec()),
            ZipItem::file("../evil.txt", b"evil\n".to_vec()),
            ZipItem::file("../../evil.txt", b"evil\n".to_vec()),
            ZipItem::file(abs_target.to_str().unwrap(), b"evil\n".to_vec()),
        ],
    );
    let o = import(&ws, &[&zip], false);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("training_backup_20240106_000000.zip"), "{err}");
    assert!(err.contains("../evil.txt"), "{err}");
    assert_eq!(log_ids(&ws), before);
    let names = names_below(ws.tmp.path());
    assert!(!names.contains("evil.txt"), "written outside: {names:?}");
    assert!(!abs_target.exists());
    assert_eq!(count_entries(&ws.repo().join("tmp")), 0);
}

#[test]
fn a_symlink_entry_cannot_carry_later_entries_outside() {
    let ws = Ws::new();
    let target = ws.outside("target");
    fs::create_dir_all(&target).unwrap();
    let zip = ws.outside("training_backup_20240107_000000.zip");
    write_zip(
        &zip,
        &[
            ZipItem::symlink("models", target.to_str().unwrap()),
            ZipItem::file("models/escaped.bin", b"escaped\n".to_vec()),
            ZipItem::symlink("up", "../../.."),
            ZipItem::file("up/escaped_up.bin", b"escaped\n".to_vec()),
        ],
    );
    let o = import(&ws, &[&zip], false);
    let names = names_below(ws.tmp.path());
    assert!(
        !names.contains("escaped.bin") && !names.contains("escaped_up.bin"),
        "import-zip (exit {:?}) wrote outside its staging directory: {names:?}\n{}",
        o.status.code(),
        stderr(&o)
    );
    assert_eq!(count_entries(&target), 0);
}
