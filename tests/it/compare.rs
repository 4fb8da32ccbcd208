//! Comparing runs (issue 14, in the terminal): `snap metrics` across
//! sessions, also after `forget` (rows from the retention journal), its
//! --csv and --json shapes; `snap best` by direction and session glob, and
//! whether the winner is still stored; `snap diff` key by key for JSON, YAML
//! and TOML, unified for text, sizes for binary files.

use serde_json::{json, Value};

use crate::util::*;

/// Three epochs of session `name` with `val_loss` and `acc`.
fn session(ws: &Ws, name: &str, losses: [f64; 3]) -> Vec<String> {
    losses
        .iter()
        .enumerate()
        .map(|(i, loss)| {
            let epoch = (i + 1).to_string();
            ws.write(
                "ckpt/model.bin",
                &random_bytes(i as u64 + name.len() as u64, 4096),
            );
            let l = format!("val_loss={loss}");
            let a = format!("acc={}", 1.0 - loss);
            ws.commit_id(&[
                "--session",
                name,
                "--epoch",
                &epoch,
                "--metric",
                &l,
                "--metric",
                &a,
            ])
        })
        .collect()
}

fn rows(ws: &Ws, args: &[&str]) -> Vec<Value> {
    let mut a = vec!["metrics"];
    a.extend_from_slice(args);
    ws.json(&a)
        .as_array()
        .expect("metrics --json is an array")
        .clone()
}

#[test]
fn metrics_span_sessions_and_survive_forget_with_the_forgotten_rows_marked() {
    let ws = Ws::new();
    let a = session(&ws, "lr-1e-3", [0.9, 0.5, 0.4]);
    let b = session(&ws, "lr-3e-3", [0.8, 0.3, 0.35]);
    ws.write("notes.txt", b"no metrics");
    ws.commit(&[]);

    let all = rows(&ws, &[]);
    assert_eq!(all.len(), 6, "one row per snapshot with metrics: {all:#?}");
    assert_eq!(all[0]["session"], "lr-1e-3");
    assert_eq!(all[0]["epoch"], 1);
    assert_eq!(
        all[0]["metrics"],
        json!({"acc": 0.09999999999999998, "val_loss": 0.9})
    );
    assert_eq!(all[3]["session"], "lr-3e-3");
    assert!(all.iter().all(|r| r["stored"] == true));

    // Forget the older session: its rows come from the journal, marked.
    ws.ok(&["forget", "--keep-sessions", "1"]);
    let live: Vec<String> = ws.log().iter().map(id_of).collect();
    assert!(!live.contains(&a[1]), "forget kept {live:?}");
    let after = rows(&ws, &["lr-1e-3", "--metric", "val_loss"]);
    let ids: Vec<&str> = after.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(after
        .iter()
        .any(|r| r["stored"] == false && r["forgotten_ns"].is_i64()));
    assert_eq!(
        after[1]["metrics"],
        json!({"val_loss": 0.5}),
        "only the asked metric"
    );

    let table = ws.ok(&["metrics"]);
    assert!(table.contains("== session lr-1e-3: 3 rows =="), "{table}");
    assert!(table.contains("forgotten"), "{table}");
    let header = table.lines().nth(1).unwrap();
    assert!(header.starts_with("ID") && header.contains("acc") && header.contains("val_loss"));
    // Aligned: each value ends where its column's header ends.
    let block: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.starts_with("== session lr-3e-3"))
        .collect();
    let (head, line) = (block[1], block[2]);
    assert!(line.starts_with(&b[0][..8]), "{table}");
    let end = |l: &str, word: &str| l.find(word).map(|i| i + word.len());
    assert_eq!(end(line, "0.8"), end(head, "val_loss"), "{table}");
    assert_eq!(end(line, "0.2"), end(head, "acc"), "{table}");

    let csv = ws.ok(&["metrics", "--csv", "--metric", "val_loss"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("session,id,epoch,step,stored,val_loss"));
    assert_eq!(
        lines.next(),
        Some(format!("lr-1e-3,{},1,,{},0.9", a[0], after[0]["stored"]).as_str())
    );
    assert_eq!(csv.lines().count(), 7);
    assert!(
        csv.contains(&format!("lr-3e-3,{},2,,true,0.3", b[1])),
        "{csv}"
    );
}

#[test]
fn unknown_sessions_and_metrics_say_what_exists() {
    let ws = Ws::new();
    session(&ws, "base", [0.5, 0.4, 0.3]);
    let o = ws.fails(&["metrics", "bsae"], 1);
    let e = stderr(&o);
    assert!(
        e.contains("invalid session 'bsae'")
            && e.contains("base")
            && e.contains("did you mean 'base'"),
        "{e}"
    );
    let o = ws.fails(&["metrics", "--metric", "val_los"], 1);
    let e = stderr(&o);
    assert!(
        e.contains("acc, val_loss") && e.contains("did you mean 'val_loss'"),
        "{e}"
    );
    let o = ws.fails(&["best", "val_loss:up"], 2);
    assert!(
        stderr(&o).contains("'up' must be max or min"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn best_takes_the_direction_from_the_name_filters_by_glob_and_says_if_it_was_forgotten() {
    let ws = Ws::new();
    let a = session(&ws, "old-run", [0.9, 0.1, 0.4]);
    let b = session(&ws, "new-run", [0.8, 0.3, 0.2]);

    let best = ws.json(&["best", "val_loss"]);
    assert_eq!(
        (best["id"].as_str(), best["direction"].as_str()),
        (Some(a[1].as_str()), Some("min"))
    );
    assert_eq!(
        (best["session"].as_str(), best["epoch"].as_u64()),
        (Some("old-run"), Some(2))
    );
    assert_eq!(
        (best["value"].as_f64(), best["candidates"].as_u64()),
        (Some(0.1), Some(6))
    );
    assert_eq!(best["stored"], true);
    // acc is maximised by default; :min reverses it.
    assert_eq!(ws.json(&["best", "acc"])["id"], a[1].as_str());
    assert_eq!(ws.json(&["best", "acc:min"])["id"], a[0].as_str());
    assert_eq!(
        ws.json(&["best", "val_loss", "--session", "new-*"])["id"],
        b[2].as_str()
    );
    let o = ws.fails(&["best", "val_loss", "--session", "x*"], 1);
    assert!(stderr(&o).contains("new-run, old-run"), "{}", stderr(&o));

    let text = ws.ok(&["best", "val_loss"]);
    assert!(text.contains("stored: `snap restore"), "{text}");
    ws.ok(&["forget", "--keep-sessions", "1"]);
    let best = ws.json(&["best", "val_loss"]);
    assert_eq!(
        (best["id"].as_str(), &best["stored"]),
        (Some(a[1].as_str()), &json!(false))
    );
    let text = ws.ok(&["best", "val_loss"]);
    assert!(
        text.contains("forgotten by retention") && text.contains("cannot be restored"),
        "{text}"
    );
}

/// A path with its old and new bytes (None: absent).
type Version<'a> = (&'a str, Option<&'a [u8]>, Option<&'a [u8]>);

/// Two snapshots: `old` files, then `new` files.
fn two(ws: &Ws, files: &[Version]) -> (String, String) {
    for (p, old, _) in files {
        if let Some(d) = old {
            ws.write(p, d);
        }
    }
    let a = ws.commit_id(&[]);
    for (p, old, new) in files {
        match new {
            Some(d) => ws.write(p, d),
            None if old.is_some() => std::fs::remove_file(ws.path(p)).unwrap(),
            None => {}
        }
    }
    let b = ws.commit_id(&[]);
    (a, b)
}

fn content_of(d: &Value, path: &str) -> Value {
    d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not changed: {d:#}"))["content"]
        .clone()
}

fn keys(c: &Value) -> Vec<String> {
    c["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                k["key"].as_str().unwrap(),
                k["change"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn configs_diff_key_by_key_in_json_yaml_and_toml_text_unified_binary_by_size() {
    let ws = Ws::new();
    let json_old = br#"{"optimizer": {"lr": 0.001}, "layers": [{"units": 32}, {"units": 64}], "a": {"b": 1}, "x": 1}"#;
    let json_new = br#"{"optimizer": {"lr": 0.003}, "layers": [{"units": 32}, {"units": 128}], "a": {}, "x": "1", "model": {"layers": 4}}"#;
    let yaml_old = b"optimizer:\n  lr: 0.001\nlayers:\n  - units: 32\n  - units: 64\n";
    let yaml_new = b"optimizer:\n  lr: 0.003\n  betas: [0.9, 0.99]\nlayers:\n  - units: 32\n";
    let toml_old = b"[train]\nepochs = 10\nname = \"base\"\n";
    let toml_new = b"[train]\nepochs = 20.0\nname = \"base\"\n";
    let (a, b) = two(
        &ws,
        &[
            ("config/train.json", Some(json_old), Some(json_new)),
            ("config/model.yaml", Some(yaml_old), Some(yaml_new)),
            ("snap-run.toml", Some(toml_old), Some(toml_new)),
            ("config/broken.yml", Some(b"lr: 1\n"), Some(b"lr: [2\n")),
            (
                "notes.txt",
                Some(b"one\ntwo\nthree\n"),
                Some(b"one\n2\nthree\n"),
            ),
            (
                "weights.bin",
                Some(b"\0\x01\x02"),
                Some(b"\0\x01\x02\x03\x04"),
            ),
            ("config/old.yaml", Some(b"k: 1\n"), None),
            ("config/new.json", None, Some(b"{}")),
        ],
    );
    let d = ws.json(&["diff", &a, &b]);
    assert_eq!(d["added"][0]["path"], "config/new.json");
    assert_eq!(d["removed"][0]["path"], "config/old.yaml");

    let j = content_of(&d, "config/train.json");
    assert_eq!(
        (j["kind"].as_str(), j["format"].as_str()),
        (Some("keys"), Some("json"))
    );
    assert_eq!(
        keys(&j),
        [
            "a.b removed",
            "layers[1].units changed",
            "model added",
            "optimizer.lr changed",
            "x changed"
        ]
    );
    let x = &j["changes"][4];
    assert_eq!((&x["old"], &x["new"]), (&json!(1), &json!("1")));
    assert_eq!(
        (x["old_type"].as_str(), x["new_type"].as_str()),
        (Some("integer"), Some("string"))
    );

    let y = content_of(&d, "config/model.yaml");
    assert_eq!(y["format"], "yaml");
    assert_eq!(
        keys(&y),
        [
            "layers[1] removed",
            "optimizer.betas added",
            "optimizer.lr changed"
        ]
    );
    let t = content_of(&d, "snap-run.toml");
    assert_eq!(keys(&t), ["train.epochs changed"]);
    assert_eq!(t["changes"][0]["new_type"], "float");

    let broken = content_of(&d, "config/broken.yml");
    assert_eq!(broken["kind"], "text");
    assert!(broken["note"]
        .as_str()
        .unwrap()
        .contains("new version is not compared key by key: YAML"));
    assert!(broken["unified"]
        .as_str()
        .unwrap()
        .contains("-lr: 1\n+lr: [2\n"));
    let notes = content_of(&d, "notes.txt");
    assert_eq!(notes["kind"], "text");
    assert!(notes["unified"]
        .as_str()
        .unwrap()
        .contains("--- a/notes.txt\n+++ b/notes.txt\n"));
    assert_eq!(
        content_of(&d, "weights.bin"),
        json!({"kind": "binary", "old_size": 3, "new_size": 5})
    );

    let text = ws.ok(&["diff", &a, &b]);
    for line in [
        "    optimizer.lr: 0.001 -> 0.003",
        "    layers[1].units: 64 -> 128",
        "    model: added ({\"layers\":4})",
        "    a.b: removed (was 1)",
        "    x: 1 (integer) -> \"1\" (string)",
        "    train.epochs: 10 (integer) -> 20.0 (float)",
        "weights.bin: binary, sizes 3 B -> 5 B",
        "-two\n+2\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    // PATH narrows the diff; --name-only drops the contents.
    let only = ws.json(&["diff", &a, &b, "config/*.yaml"]);
    let changed: Vec<&str> = only["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["config/model.yaml"]);
    assert_eq!(only["removed"][0]["path"], "config/old.yaml");
    assert_eq!(only["added"], json!([]));
    let names = ws.json(&["diff", &a, &b, "--name-only"]);
    assert!(names["changed"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f.get("content").is_none()));
    let o = ws.fails(&["diff", &a, &b, "config/nope.json"], 5);
    assert!(stderr(&o).contains("config/nope.json"), "{}", stderr(&o));
}

#[test]
fn a_config_over_the_limit_falls_back_to_text_and_huge_text_to_sizes() {
    let ws = Ws::new();
    let big = |v: u32| {
        let mut s = String::from("{\"pad\": \"");
        s.push_str(&"x".repeat((1 << 20) + 10));
        s.push_str(&format!("\", \"v\": {v}}}\n"));
        s.into_bytes()
    };
    let log = |n: u64| Rng::new(n).text((4 << 20) + 100);
    let (a, b) = two(
        &ws,
        &[
            ("big.json", Some(&big(1)), Some(&big(2))),
            ("train.log", Some(&log(1)), Some(&log(2))),
        ],
    );
    let d = ws.json(&["diff", &a, &b]);
    let j = content_of(&d, "big.json");
    assert_eq!(j["kind"], "text");
    assert!(
        j["note"]
            .as_str()
            .unwrap()
            .contains("byte limit of a key-level diff"),
        "{j}"
    );
    let l = content_of(&d, "train.log");
    assert_eq!(l["kind"], "too_large");
    assert_eq!(l["limit"], 4 << 20);
}

#[test]
fn notes_are_added_after_the_fact_and_shown_in_log_and_show() {
    let ws = Ws::new();
    ws.write("a.txt", b"1");
    let id = ws.commit_id(&["--session", "s1", "--epoch", "1"]);
    let before = ws.json(&["show", &id]);
    ws.ok(&["note", "s1@1", "lr 1e-3 diverged after epoch 4"]);
    let added = ws.json(&["note", &id[..8], "second, with \"quotes\""]);
    assert_eq!(added["snapshot"], id.as_str());
    assert_eq!(added["note"]["text"], "second, with \"quotes\"");

    // The snapshot record is unchanged; the notes sit beside it.
    let show = ws.json(&["show", &id]);
    assert_eq!(show["snapshot"], before["snapshot"]);
    let texts: Vec<&str> = show["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["lr 1e-3 diverged after epoch 4", "second, with \"quotes\""]
    );
    assert_eq!(ws.log()[0]["notes"].as_array().unwrap().len(), 2);
    assert_eq!(ws.log()[0]["id"], id.as_str());
    assert!(ws
        .ok(&["log"])
        .contains("note: lr 1e-3 diverged after epoch 4"));
    assert!(ws
        .ok(&["show", &id])
        .contains("note      second, with \"quotes\""));
    let files: Vec<_> = std::fs::read_dir(ws.repo().join("notes"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 2);
    assert!(files
        .iter()
        .all(|f| f.to_str().unwrap().starts_with(&format!("{id}."))));
    ws.ok(&["check"]);

    // Bad input: unknown rev, empty note; nothing written.
    let o = ws.fails(&["note", "nosuch", "x"], 5);
    assert!(
        stderr(&o).contains("unknown revision 'nosuch'"),
        "{}",
        stderr(&o)
    );
    let o = ws.fails(&["note", &id, "  "], 1);
    assert!(stderr(&o).contains("it is empty"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(ws.repo().join("notes")).unwrap().count(),
        2
    );

    // An unreadable note is named in a warning; the rest is still shown.
    std::fs::write(
        ws.repo()
            .join("notes")
            .join(format!("{id}.{}", "0".repeat(64))),
        b"junk",
    )
    .unwrap();
    let o = ws.run(&["show", &id]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("unreadable note") && stderr(&o).contains(&"0".repeat(64)),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("note      lr 1e-3"));
}
