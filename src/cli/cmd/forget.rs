//! `snap forget`: apply the retention policy to snapshot records.

use anyhow::Result;
use snapstore::ops::retention::{parse_duration, Policy};

use crate::cli::render;
use crate::cli::Ctx;

/// Apply the retention policy to snapshot records
///
/// Apply the retention policy: keep every tagged snapshot and the last snapshot
/// of each of the most recent sessions; forget the rest. Prints every snapshot
/// with the reason it is kept or forgotten. Forgotten snapshots' data is
/// reclaimed by `snap prune`. Defaults come from snap.toml `[retention]`, else
/// 5 sessions, 1 snapshot each, every tag.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the last snapshots of this many most recent sessions.
    #[arg(long)]
    keep_sessions: Option<usize>,
    /// Keep this many of the newest snapshots of each of those sessions.
    #[arg(long)]
    keep_per_session: Option<usize>,
    /// Keep snapshots with a tag matching GLOB (repeatable; default: every tag).
    #[arg(long = "keep-tag", value_name = "GLOB")]
    keep_tags: Vec<String>,
    /// Keep every snapshot younger than this (e.g. 12h, 7d, 2w).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Only show what would be forgotten.
    #[arg(long)]
    dry_run: bool,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, ws) = ctx.open()?;
    let cfg = &ws.config.retention;
    let defaults = Policy::default();
    let keep_within = args.keep_within.as_deref().or(cfg.keep_within.as_deref());
    let policy = Policy {
        keep_sessions: args
            .keep_sessions
            .or(cfg.keep_sessions)
            .unwrap_or(defaults.keep_sessions),
        keep_per_session: args
            .keep_per_session
            .or(cfg.keep_per_session)
            .unwrap_or(defaults.keep_per_session),
        keep_tags: if !args.keep_tags.is_empty() {
            args.keep_tags
        } else {
            cfg.keep_tags.clone().unwrap_or(defaults.keep_tags)
        },
        keep_within_ns: keep_within.map(parse_duration).transpose()?,
    };
    let r = repo.forget(&policy, args.dry_run, snapstore::ops::commit::now_ns())?;
    if args.json {
        let decisions: Vec<_> = r
            .decisions
            .iter()
            .map(|d| serde_json::json!({ "id": d.id.to_hex(), "keep": d.keep, "reasons": d.reasons }))
            .collect();
        let v = serde_json::json!({ "dry_run": r.dry_run, "decisions": decisions, "dropped_tags": r.dropped_tags });
        return render::print_json(&v).map(|_| 0);
    }
    let mut forgotten = 0;
    for (id, s) in &r.snapshots {
        let d = r
            .decisions
            .iter()
            .find(|d| d.id == *id)
            .expect("one decision per snapshot");
        forgotten += usize::from(!d.keep);
        let why: Vec<String> = d.reasons.iter().map(|x| x.to_string()).collect();
        println!(
            "{:<6} {}  {}  {:<16} {:>5}  {}",
            if d.keep { "keep" } else { "forget" },
            id.short(),
            render::time(s.time_ns),
            s.session.as_deref().unwrap_or("-"),
            s.epoch.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            why.join("; ")
        );
    }
    for t in &r.dropped_tags {
        println!("tag {t} deleted with its snapshot");
    }
    let verb = if r.dry_run { "would forget" } else { "forgot" };
    println!(
        "{verb} {forgotten} of {} snapshots; `snap prune` reclaims their data",
        r.snapshots.len()
    );
    Ok(0)
}
