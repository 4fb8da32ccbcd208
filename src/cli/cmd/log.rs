//! `snap log`: list snapshots.

use anyhow::Result;
use snapstore::LogEntry;

use crate::cli::render::{self, SnapshotJson};
use crate::cli::Ctx;

/// List snapshots with sessions, epochs, metrics and tags
///
/// List snapshots, oldest first: id, time, session, epoch, metrics, tags and
/// the new data each one stored.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only snapshots of this session.
    #[arg(long)]
    session: Option<String>,
    /// List the snapshots retention forgot instead: when, by which rule, and
    /// their session, epoch and metrics.
    #[arg(long)]
    forgotten: bool,
    /// Read remote NAME instead of this repository.
    #[arg(long, value_name = "NAME")]
    from: Option<String>,
    /// Output JSON (an array of snapshots).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let reading = ctx.open_reading(args.from.as_deref())?;
    let repo = reading.repo();
    if args.forgotten {
        return forgotten(repo, &args);
    }
    let mut entries = repo.log()?;
    let mut near = Vec::new();
    if let Some(s) = &args.session {
        near = snapstore::ops::suggest::nearest(
            s,
            entries.iter().filter_map(|e| e.snapshot.session.as_deref()),
        );
        entries.retain(|e| e.snapshot.session.as_deref() == Some(s.as_str()));
    }
    let notes = render::notes_or_warn(repo)?;
    if args.json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut j = serde_json::to_value(SnapshotJson::from_log(e)).expect("plain data");
                let n: Vec<_> = notes.of(&e.id).iter().map(render::note_json).collect();
                if !n.is_empty() {
                    j["notes"] = serde_json::Value::Array(n);
                }
                j
            })
            .collect();
        return render::print_json(&v).map(|_| 0);
    }
    if entries.is_empty() {
        match &args.session {
            Some(s) => {
                println!("no snapshots in session '{s}'; `snap log` lists every session");
                if let Some(line) = snapstore::ops::suggest::did_you_mean(&near) {
                    println!("{line}");
                }
            }
            None => println!("no snapshots yet; create one with `snap commit`"),
        }
        return Ok(0);
    }
    println!(
        "{:<8}  {:<19}  {:>5}  {:>7}  {:>10}  {:>10}  METRICS / TAGS / MESSAGE",
        "ID", "TIME", "EPOCH", "STEP", "SIZE", "NEW"
    );
    let mut current: Option<Option<&str>> = None;
    for e in &entries {
        let s = &e.snapshot;
        if current != Some(s.session.as_deref()) {
            current = Some(s.session.as_deref());
            println!("{}", session_header(&entries, s.session.as_deref()));
        }
        let mut extra: Vec<String> = Vec::new();
        if !s.metrics.is_empty() {
            extra.push(render::metrics(&s.metrics));
        }
        if !e.tags.is_empty() {
            extra.push(format!("[{}]", e.tags.join(", ")));
        }
        match (s.labels.get("outcome"), &s.message) {
            (Some(o), _) => extra.push(format!("run {o}")),
            (None, Some(m)) => extra.push(m.clone()),
            (None, None) => {}
        }
        let or_dash = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<8}  {:<19}  {:>5}  {:>7}  {:>10}  {:>10}  {}",
            e.id.short(),
            render::time(s.time_ns),
            or_dash(s.epoch),
            or_dash(s.step),
            render::bytes(s.summary.logical_bytes),
            render::bytes(s.summary.new_stored_bytes),
            extra.join("  ")
        );
        for n in notes.of(&e.id) {
            println!("{:<8}  note: {}", "", n.text);
        }
    }
    Ok(0)
}

/// `== session NAME: N snapshots, epochs A-B, steps C-D, run OUTCOME ==`,
/// or a plain separator for snapshots outside any session.
fn session_header(entries: &[LogEntry], session: Option<&str>) -> String {
    let Some(name) = session else {
        return "-- (no session) --".into();
    };
    let of: Vec<&LogEntry> = entries
        .iter()
        .filter(|e| e.snapshot.session.as_deref() == Some(name))
        .collect();
    let mut parts = vec![render::count(of.len() as u64, "snapshot")];
    let epochs = of.iter().filter_map(|e| e.snapshot.epoch);
    parts.extend(range("epoch", epochs));
    parts.extend(range("step", of.iter().filter_map(|e| e.snapshot.step)));
    if let Some(o) = of
        .iter()
        .rev()
        .find_map(|e| e.snapshot.labels.get("outcome"))
    {
        parts.push(format!("run {o}"));
    }
    format!("== session {name}: {} ==", parts.join(", "))
}

/// `epoch 3` or `epochs 1-4`; None without any.
fn range(noun: &str, values: impl Iterator<Item = u64> + Clone) -> Option<String> {
    let (lo, hi) = (values.clone().min()?, values.max()?);
    Some(if lo == hi {
        format!("{noun} {lo}")
    } else {
        format!("{noun}s {lo}-{hi}")
    })
}

/// `snap log --forgotten`: the retention journal, oldest forgotten first.
fn forgotten(repo: &snapstore::Repo, args: &Args) -> Result<u8> {
    let snapstore::store::journal::Journal {
        mut entries,
        damaged,
    } = repo.forgotten()?;
    for d in &damaged {
        eprintln!("snap: warning: unreadable retention journal entry {d}");
    }
    if let Some(s) = &args.session {
        entries.retain(|(_, snap)| snap.session.as_deref() == Some(s.as_str()));
    }
    if args.json {
        let v: Vec<serde_json::Value> = entries
            .iter()
            .map(|(f, snap)| {
                let mut j = serde_json::to_value(SnapshotJson::new(&f.id, snap, &f.tags))
                    .expect("plain data");
                j["forgotten"] = serde_json::json!({
                    "time": render::time_rfc3339(f.forgotten_ns),
                    "time_ns": f.forgotten_ns,
                    "rule": f.rule,
                    "reason": f.reason,
                });
                j
            })
            .collect();
        return render::print_json(&v).map(|_| 0);
    }
    if entries.is_empty() {
        println!("retention has forgotten nothing");
        return Ok(0);
    }
    println!(
        "{:<8}  {:<16}  {:<16}  {:>5}  {:>10}  RULE / METRICS",
        "ID", "FORGOTTEN", "SESSION", "EPOCH", "SIZE"
    );
    for (f, s) in &entries {
        let mut extra = vec![f.rule.clone()];
        if !s.metrics.is_empty() {
            extra.push(render::metrics(&s.metrics));
        }
        if !f.tags.is_empty() {
            extra.push(format!("[tags deleted: {}]", f.tags.join(", ")));
        }
        println!(
            "{:<8}  {:<16}  {:<16}  {:>5}  {:>10}  {}",
            f.id.short(),
            &render::time(f.forgotten_ns)[..16],
            s.session.as_deref().unwrap_or("-"),
            s.epoch.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            render::bytes(s.summary.logical_bytes),
            extra.join("  ")
        );
    }
    Ok(0)
}
