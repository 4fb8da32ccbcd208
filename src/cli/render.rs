//! Human-readable formatting shared by the commands, and JSON views of
//! snapshots (the `--json` schema documented in docs/commands.md).

use std::collections::BTreeMap;

use serde::Serialize;
use snapstore::format::snapshot::{Snapshot, Summary};
pub use snapstore::units::{bytes, count};
use snapstore::{LogEntry, SnapshotId};

pub fn time(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub fn time_rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339()
}

pub fn metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={}", num(*v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A float with no more digits than it needs (at most 6 significant).
pub fn num(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The JSON view of one snapshot.
#[derive(Serialize)]
pub struct SnapshotJson<'a> {
    pub id: String,
    pub time: String,
    pub time_ns: i64,
    pub host: &'a str,
    pub workspace: &'a str,
    pub paths: &'a [String],
    pub session: Option<&'a str>,
    pub epoch: Option<u64>,
    pub step: Option<u64>,
    pub metrics: &'a BTreeMap<String, f64>,
    pub message: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    pub parent: Option<String>,
    pub root: String,
    pub tags: &'a [String],
    pub summary: &'a Summary,
}

impl<'a> SnapshotJson<'a> {
    pub fn new(id: &SnapshotId, s: &'a Snapshot, tags: &'a [String]) -> Self {
        SnapshotJson {
            id: id.to_hex(),
            time: time_rfc3339(s.time_ns),
            time_ns: s.time_ns,
            host: &s.host,
            workspace: &s.workspace,
            paths: &s.paths,
            session: s.session.as_deref(),
            epoch: s.epoch,
            step: s.step,
            metrics: &s.metrics,
            message: s.message.as_deref(),
            labels: &s.labels,
            parent: s.parent.map(|p| p.to_hex()),
            root: s.root.to_hex(),
            tags,
            summary: &s.summary,
        }
    }

    pub fn from_log(e: &'a LogEntry) -> Self {
        Self::new(&e.id, &e.snapshot, &e.tags)
    }
}

pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The JSON view of one note (`snap note`, and `"notes"` in log and show).
pub fn note_json(n: &snapstore::format::note::Note) -> serde_json::Value {
    serde_json::json!({
        "time": time_rfc3339(n.time_ns),
        "time_ns": n.time_ns,
        "host": n.host,
        "text": n.text,
    })
}

/// Reads every note, warning about each one that cannot be read (named, so
/// it can be repaired; the listing goes on without it).
pub fn notes_or_warn(repo: &snapstore::Repo) -> anyhow::Result<snapstore::store::notes::Notes> {
    let notes = repo.notes()?;
    for d in &notes.damaged {
        eprintln!("snap: warning: unreadable note {d}; it is not shown");
    }
    Ok(notes)
}

/// What a push or pull copied besides snapshots: a warning per record it
/// could not read (named), then, with `line`, a line when it copied any.
pub fn history(h: &snapstore::ops::remote::HistoryCopied, line: bool) {
    for d in &h.history_damaged {
        eprintln!("snap: warning: not copied: {d}");
    }
    if line && h.notes + h.journal_entries > 0 {
        println!(
            "  and {} and {} (the metrics of forgotten snapshots)",
            count(h.notes as u64, "note"),
            count(h.journal_entries as u64, "journal entry")
        );
    }
}
