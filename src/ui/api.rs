//! The JSON API of `snap ui` (docs/ui.md): one function per route, each a
//! pure function of a `Repo` opened for the request. Nothing here writes:
//! every call is one a reader makes (`log`, `resolve`, `files`, `diff_with`,
//! `forgotten`, `stats`, a prune dry run).
//!
//! Errors are JSON `{"status": N, "error": MESSAGE}`: 404 for a revision or
//! path that does not exist (or was forgotten, which the message says), 400
//! for a bad query (a missing or unknown parameter, an ambiguous revision),
//! 500 for anything else (damaged data, I/O), with the library's message.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{json, Value};
use snapstore::ops::confdiff;
use snapstore::ops::diff::DiffRequest;
use snapstore::ops::filediff::ContentDiff;
use snapstore::ops::metrics;
use snapstore::runner::signals::{parse_best, Direction};
use snapstore::runner::BEST_METRIC_LABEL;
use snapstore::{Error, LogEntry, PruneOptions, Repo};

use super::Reply;
use crate::cli::render::SnapshotJson;

/// The routes, for the message of an unknown one.
const ROUTES: &str = "/api/sessions, /api/snapshots[?session=NAME], /api/snapshot/REV, \
    /api/snapshot/REV/tensors?path=PATH, /api/diff?a=REV&b=REV, /api/metrics, /api/storage";

/// A route's failure: status and message.
struct Fail(u16, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::AmbiguousRev { .. } | Error::Invalid { .. } => 400,
            e if e.exit_code() == 5 => 404,
            _ => 500,
        };
        Fail(status, e.to_string())
    }
}

type Answer = Result<Value, Fail>;

fn bad(msg: impl Into<String>) -> Fail {
    Fail(400, msg.into())
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("plain data serializes")
}

/// Answers `/api/ROUTE?query`.
pub fn route(repo: &mut Repo, route: &str, query: &[(String, String)]) -> Reply {
    let parts: Vec<&str> = route.split('/').collect();
    let answer = match parts.as_slice() {
        ["sessions"] => only(query, &[]).and_then(|_| sessions(repo)),
        ["snapshots"] => {
            only(query, &["session"]).and_then(|_| snapshots(repo, param(query, "session")))
        }
        ["snapshot", rev] => only(query, &[]).and_then(|_| snapshot(repo, &decode(rev)?)),
        ["snapshot", rev, "tensors"] => only(query, &["path"]).and_then(|_| {
            let path = param(query, "path").ok_or_else(|| bad("give the file: ?path=PATH"))?;
            tensors(repo, &decode(rev)?, path)
        }),
        ["diff"] => only(query, &["a", "b"]).and_then(|_| {
            let need = |k| {
                param(query, k).filter(|v| !v.is_empty()).ok_or_else(|| {
                    bad(format!(
                        "give both snapshots: /api/diff?a=REV&b=REV ({k} is missing)"
                    ))
                })
            };
            diff(repo, need("a")?, need("b")?)
        }),
        ["metrics"] => only(query, &[]).and_then(|_| metrics(repo)),
        ["storage"] => only(query, &[]).and_then(|_| storage(repo)),
        _ => Err(Fail(
            404,
            format!("no API route /api/{route}; the routes are {ROUTES}"),
        )),
    };
    match answer {
        Ok(v) => Reply::json(200, &v),
        Err(Fail(status, msg)) => Reply::error(status, msg),
    }
}

/// Refuses query parameters a route does not take.
fn only(query: &[(String, String)], known: &[&str]) -> Result<(), Fail> {
    match query.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some((k, _)) if known.is_empty() => Err(bad(format!(
            "unknown query parameter '{k}': this route takes none"
        ))),
        Some((k, _)) => Err(bad(format!(
            "unknown query parameter '{k}': this route takes {}",
            known.join(", ")
        ))),
    }
}

fn param<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A percent-encoded path segment (a REV such as `run1@3` or a tag).
fn decode(segment: &str) -> Result<String, Fail> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| bad(format!("'{segment}' is not UTF-8 once percent-decoded")))
}

/// The direction a metric is ranked in: the session's `--best` when it
/// ranked by this metric, else as `snap run --best NAME` guesses it.
fn direction(metric: &str, best_spec: Option<&str>) -> Direction {
    if let Some((name, dir)) = best_spec.and_then(|s| parse_best(s).ok()) {
        if name == metric {
            return dir;
        }
    }
    parse_best(metric).map(|(_, d)| d).unwrap_or(Direction::Max)
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Max => "max",
        Direction::Min => "min",
    }
}

/// The snapshots of each session, sessions in order of their first
/// snapshot; `None` is the commits outside any session.
fn by_session(log: &[LogEntry]) -> Vec<(Option<&str>, Vec<&LogEntry>)> {
    let mut out: Vec<(Option<&str>, Vec<&LogEntry>)> = Vec::new();
    let mut at: HashMap<Option<&str>, usize> = HashMap::new();
    for e in log {
        let key = e.snapshot.session.as_deref();
        let i = *at.entry(key).or_insert_with(|| {
            out.push((key, Vec::new()));
            out.len() - 1
        });
        out[i].1.push(e);
    }
    out
}

#[derive(Serialize)]
struct Best {
    value: f64,
    direction: &'static str,
    snapshot: String,
    epoch: Option<u64>,
}

fn sessions(repo: &Repo) -> Answer {
    let log = repo.log()?;
    let rows: Vec<Value> = by_session(&log)
        .into_iter()
        .map(|(name, snaps)| {
            let first = snaps.first().expect("a session has a snapshot");
            let last = snaps.last().expect("a session has a snapshot");
            let spec = snaps
                .iter()
                .find_map(|e| e.snapshot.labels.get(BEST_METRIC_LABEL))
                .map(String::as_str);
            let mut best: BTreeMap<&str, Best> = BTreeMap::new();
            for e in &snaps {
                for (m, &v) in &e.snapshot.metrics {
                    if !v.is_finite() {
                        continue;
                    }
                    let dir = direction(m, spec);
                    let better = best.get(m.as_str()).is_none_or(|b| match dir {
                        Direction::Max => v > b.value,
                        Direction::Min => v < b.value,
                    });
                    if better {
                        best.insert(
                            m,
                            Best {
                                value: v,
                                direction: dir_name(dir),
                                snapshot: e.id.to_hex(),
                                epoch: e.snapshot.epoch,
                            },
                        );
                    }
                }
            }
            let epochs: BTreeSet<u64> = snaps.iter().filter_map(|e| e.snapshot.epoch).collect();
            let tags: Vec<&str> = snaps
                .iter()
                .flat_map(|e| e.tags.iter().map(String::as_str))
                .collect();
            let outcome = snaps.iter().rev().find_map(|e| e.snapshot.labels.get("outcome"));
            json!({
                "session": name,
                "snapshots": snaps.len(),
                "first_snapshot": first.id.to_hex(),
                "last_snapshot": last.id.to_hex(),
                "start_ns": first.snapshot.time_ns,
                "end_ns": last.snapshot.time_ns,
                "duration_s": (last.snapshot.time_ns - first.snapshot.time_ns) as f64 / 1e9,
                "epochs": epochs.len(),
                "last_epoch": epochs.last(),
                "outcome": outcome,
                "best_metric": spec,
                "best": best,
                "logical_bytes": last.snapshot.summary.logical_bytes,
                "new_raw_bytes": snaps.iter().map(|e| e.snapshot.summary.new_raw_bytes).sum::<u64>(),
                "new_stored_bytes": snaps.iter().map(|e| e.snapshot.summary.new_stored_bytes).sum::<u64>(),
                "tags": tags,
            })
        })
        .collect();
    Ok(json!({ "sessions": rows }))
}

fn snapshots(repo: &Repo, session: Option<&str>) -> Answer {
    let log = repo.log()?;
    let of: Vec<&LogEntry> = log
        .iter()
        .filter(|e| session.is_none_or(|s| e.snapshot.session.as_deref() == Some(s)))
        .collect();
    if let (Some(s), true) = (session, of.is_empty()) {
        return Err(Fail(
            404,
            format!("no snapshots in session '{s}'; /api/sessions lists them"),
        ));
    }
    let list: Vec<SnapshotJson> = of.into_iter().map(SnapshotJson::from_log).collect();
    Ok(json!({ "snapshots": list }))
}

fn tags_of(repo: &Repo, id: &snapstore::SnapshotId) -> Result<Vec<String>, Fail> {
    Ok(repo
        .tags()?
        .into_iter()
        .filter(|(_, t)| t == id)
        .map(|(n, _)| n)
        .collect())
}

fn snapshot(repo: &Repo, rev: &str) -> Answer {
    let (id, snap) = repo.resolve(rev)?;
    let tags = tags_of(repo, &id)?;
    let files = repo.files(&id, &snap)?;
    let mut storage: HashMap<String, snapstore::ops::inspect::FileStorage> = repo
        .file_storage(&id, &snap)?
        .into_iter()
        .map(|f| (f.path.clone(), f))
        .collect();
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            let mut v = to_json(f);
            if let Some(s) = storage.remove(&f.path) {
                v["codecs"] = to_json(&s.codecs);
                v["stored_bytes"] = s.codecs.iter().map(|c| c.stored_bytes).sum::<u64>().into();
                if s.missing_chunks > 0 {
                    v["missing_chunks"] = s.missing_chunks.into();
                }
            }
            v
        })
        .collect();
    let hex = id.to_hex();
    Ok(json!({
        "snapshot": SnapshotJson::new(&id, &snap, &tags),
        "files": files,
        "restore": format!("snap restore {hex}"),
    }))
}

fn tensors(repo: &Repo, rev: &str, path: &str) -> Answer {
    let (id, snap) = repo.resolve(rev)?;
    let tensors = repo.tensors(&id, &snap, path)?;
    Ok(json!({ "snapshot": id.to_hex(), "path": path, "tensors": tensors }))
}

/// A unified text diff longer than this many lines is cut for the page
/// (`truncated_lines` says how many were left out; `snap diff` has them all).
const MAX_UNIFIED_LINES: usize = 2000;

/// `snap diff --tensors --json` of two revisions: each changed file with its
/// tensors and what changed inside it (`ops::filediff`: config keys, each
/// also rendered as `snap diff` prints it, in `lines`; a unified text diff,
/// cut at `MAX_UNIFIED_LINES`; binary sizes).
fn diff(repo: &Repo, a: &str, b: &str) -> Answer {
    let (a_id, _) = repo.resolve(a)?;
    let (b_id, _) = repo.resolve(b)?;
    let req = DiffRequest {
        tensors: true,
        content: true,
        ..DiffRequest::default()
    };
    let d = repo.diff_with(&a_id.to_hex(), &b_id.to_hex(), &req)?;
    let mut v = to_json(&d);
    for (c, f) in d.changed.iter().zip(
        v["changed"]
            .as_array_mut()
            .expect("a Diff has a changed list"),
    ) {
        match &c.content {
            Some(ContentDiff::Keys { changes, .. }) => {
                let lines: Vec<String> = changes.iter().map(confdiff::render).collect();
                f["content"]["lines"] = to_json(&lines);
            }
            Some(ContentDiff::Text { unified, .. }) => {
                let total = unified.lines().count();
                if total > MAX_UNIFIED_LINES {
                    let kept: String = unified
                        .split_inclusive('\n')
                        .take(MAX_UNIFIED_LINES)
                        .collect();
                    f["content"]["unified"] = kept.into();
                    f["content"]["truncated_lines"] = (total - MAX_UNIFIED_LINES).into();
                }
            }
            _ => {}
        }
    }
    Ok(json!({ "a": a_id.to_hex(), "b": b_id.to_hex(), "diff": v }))
}

fn metrics(repo: &Repo) -> Answer {
    let log = repo.log()?;
    let journal = repo.forgotten()?;
    // The `--best` setting of each session, from its pre-run/final labels.
    let mut specs: HashMap<&str, &str> = HashMap::new();
    let live = log.iter().map(|e| &e.snapshot);
    for s in live.chain(journal.entries.iter().map(|(_, s)| s)) {
        if let (Some(name), Some(spec)) = (&s.session, s.labels.get(BEST_METRIC_LABEL)) {
            specs.insert(name, spec);
        }
    }
    // The rows `snap metrics` shows (ops::metrics), oldest first.
    let mut table = metrics::all_rows(&log, &journal.entries);
    table.sort_by_key(|r| r.time_ns);
    let names: BTreeSet<&str> = table
        .iter()
        .flat_map(|r| r.metrics.keys().map(String::as_str))
        .collect();
    let rows: Vec<Value> = table
        .iter()
        .map(|r| {
            json!({
                "session": (r.session != metrics::NO_SESSION).then_some(&r.session),
                "snapshot": r.id,
                "epoch": r.epoch,
                "step": r.step,
                "time_ns": r.time_ns,
                "metrics": r.metrics,
                "forgotten": !r.stored,
            })
        })
        .collect();
    let directions: BTreeMap<&str, &str> = names
        .iter()
        .map(|m| {
            let spec = specs
                .values()
                .find(|s| parse_best(s).is_ok_and(|(n, _)| n == *m));
            (*m, dir_name(direction(m, spec.copied())))
        })
        .collect();
    Ok(json!({
        "metrics": names,
        "directions": directions,
        "rows": rows,
        "unreadable_journal": journal.damaged,
    }))
}

fn storage(repo: &mut Repo) -> Answer {
    let log = repo.log()?;
    let sessions: Vec<Value> = by_session(&log)
        .into_iter()
        .map(|(name, snaps)| {
            let sum = |f: fn(&snapstore::format::snapshot::Summary) -> u64| {
                snaps.iter().map(|e| f(&e.snapshot.summary)).sum::<u64>()
            };
            json!({
                "session": name,
                "snapshots": snaps.len(),
                "logical_bytes": sum(|s| s.logical_bytes),
                "new_raw_bytes": sum(|s| s.new_raw_bytes),
                "new_stored_bytes": sum(|s| s.new_stored_bytes),
            })
        })
        .collect();
    let stats = repo.stats()?;
    let forgotten = repo.forgotten()?.entries.len();
    let mut opts = PruneOptions::new(snapstore::ops::commit::now_ns());
    opts.dry_run = true;
    // A prune that would refuse (an unreadable file) says why; the rest of
    // the page still shows.
    let prune = match repo.prune(&opts, &snapstore::NoProgress) {
        Ok(plan) => {
            let mut v = to_json(&plan);
            v["reclaimable_bytes"] = plan.bytes_removed.saturating_sub(plan.bytes_copied).into();
            v["bytes_freed_now"] = plan.bytes_freed().into();
            v
        }
        Err(e) => json!({ "error": e.to_string() }),
    };
    Ok(json!({
        "sessions": sessions,
        "repository": stats,
        "forgotten_snapshots": forgotten,
        "prune": prune,
    }))
}
