//! `snap forget`: apply the retention policy to snapshot records.

use anyhow::Result;
use snapstore::ops::retention::Policy;

use crate::cli::render;
use crate::cli::Ctx;

/// Apply the retention policy to snapshot records
///
/// Apply the retention policy and print every snapshot with the reasons it is
/// kept or forgotten. By default it keeps every tagged snapshot; for each of
/// the 5 most recent training sessions its pre-run snapshot, final snapshot,
/// best and last 5 epochs; plain commits (no session) as one group, the newest
/// 10 plus everything younger than 30 days; imported archives; and every
/// snapshot of a running session. What it forgets is journalled (`snap log
/// --forgotten`); the data is reclaimed by `snap prune`. Defaults come from
/// snap.toml `[retention]`; flags override them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Training sessions whose pre-run, final, best and last epochs are kept.
    #[arg(long, value_name = "N")]
    keep_sessions: Option<usize>,
    /// Epoch snapshots kept in each of those sessions.
    #[arg(long, value_name = "N")]
    keep_epochs: Option<usize>,
    /// Newest snapshots of each of those sessions kept whatever their kind.
    #[arg(long, value_name = "N")]
    keep_per_session: Option<usize>,
    /// Newest plain commits (no session) kept.
    #[arg(long, value_name = "N")]
    keep_commits: Option<usize>,
    /// Plain commits younger than this are kept (e.g. 30d; `none`).
    #[arg(long, value_name = "DURATION")]
    keep_commits_within: Option<String>,
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
    let mut cfg = ws.config.retention.clone();
    cfg.keep_sessions = args.keep_sessions.or(cfg.keep_sessions);
    cfg.keep_epochs = args.keep_epochs.or(cfg.keep_epochs);
    cfg.keep_per_session = args.keep_per_session.or(cfg.keep_per_session);
    cfg.keep_commits = args.keep_commits.or(cfg.keep_commits);
    cfg.keep_commits_within = args.keep_commits_within.or(cfg.keep_commits_within);
    cfg.keep_within = args.keep_within.or(cfg.keep_within);
    if !args.keep_tags.is_empty() {
        cfg.keep_tags = Some(args.keep_tags);
    }
    let policy = Policy::from_config(&cfg)?;
    let r = repo.forget(
        &policy,
        None,
        args.dry_run,
        snapstore::ops::commit::now_ns(),
    )?;
    if args.json {
        let decisions: Vec<_> = r
            .decisions
            .iter()
            .map(|d| {
                let rules: Vec<String> = d.reasons.iter().map(|x| x.rule(&policy)).collect();
                serde_json::json!({ "id": d.id.to_hex(), "keep": d.keep, "reasons": d.reasons, "rules": rules })
            })
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
        let why: Vec<String> = d
            .reasons
            .iter()
            .map(|x| format!("{x} ({})", x.rule(&policy)))
            .collect();
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
