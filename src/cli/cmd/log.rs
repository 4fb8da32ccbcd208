//! `snap log`: list snapshots.

use anyhow::Result;

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
    /// Output JSON (an array of snapshots).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, _) = ctx.open()?;
    let mut entries = repo.log()?;
    if let Some(s) = &args.session {
        entries.retain(|e| e.snapshot.session.as_deref() == Some(s.as_str()));
    }
    if args.json {
        let v: Vec<SnapshotJson> = entries.iter().map(SnapshotJson::from_log).collect();
        return render::print_json(&v).map(|_| 0);
    }
    if entries.is_empty() {
        println!("no snapshots yet; create one with `snap commit`");
        return Ok(0);
    }
    println!(
        "{:<8}  {:<19}  {:<16} {:>5}  {:>10}  {:>10}  METRICS / TAGS / MESSAGE",
        "ID", "TIME", "SESSION", "EPOCH", "SIZE", "NEW"
    );
    for e in &entries {
        let s = &e.snapshot;
        let mut extra = render::metrics(&s.metrics);
        if !e.tags.is_empty() {
            extra.push_str(&format!(
                "{}[{}]",
                if extra.is_empty() { "" } else { "  " },
                e.tags.join(", ")
            ));
        }
        if let Some(o) = s.labels.get("outcome") {
            extra.push_str(&format!(
                "{}run {o}",
                if extra.is_empty() { "" } else { "  " }
            ));
        } else if let Some(m) = &s.message {
            extra.push_str(&format!("{}{m}", if extra.is_empty() { "" } else { "  " }));
        }
        println!(
            "{:<8}  {:<19}  {:<16} {:>5}  {:>10}  {:>10}  {}",
            e.id.short(),
            render::time(s.time_ns),
            s.session.as_deref().unwrap_or("-"),
            s.epoch.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            render::bytes(s.summary.logical_bytes),
            render::bytes(s.summary.new_stored_bytes),
            extra
        );
    }
    Ok(0)
}
