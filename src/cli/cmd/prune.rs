//! `snap prune`: reclaim the space of forgotten snapshots.

use anyhow::Result;
use snapstore::ops::retention::parse_duration;
use snapstore::PruneOptions;

use crate::cli::progress::Bar;
use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Reclaim the space of forgotten snapshots
///
/// Packs no snapshot needs, and packs that are mostly unused (more than 30%
/// waste; their used blobs are first copied into new packs), are marked for
/// deletion and deleted by a later prune once the grace period has passed, so
/// that a restore or check running meanwhile never loses a pack it is reading.
/// Safe against crashes: new copies are durable before anything is marked,
/// and a marked pack a snapshot needs again is kept.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only show what would be done.
    #[arg(long)]
    dry_run: bool,
    /// How long a marked pack stays before a prune deletes it (30m, 1h, 2d).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    grace: String,
    /// Delete every marked pack now, those this prune marks included, without
    /// waiting for the grace period. A restore or check running at the same
    /// time may then report a pack gone.
    #[arg(long)]
    delete_now: bool,
    /// Prune remote NAME instead of this repository: its packs no snapshot
    /// on it needs, under the remote's prune lock (packs written within the
    /// grace period are left alone: a push may be about to name them).
    #[arg(long, value_name = "NAME")]
    remote: Option<String>,
    /// With --remote: remove the remote's prune lock first. Only when the
    /// prune that holds it is no longer running (the refusal names its host
    /// and pid).
    #[arg(long, requires = "remote")]
    break_lock: bool,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let now_ns = snapstore::ops::commit::now_ns();
    let opts = PruneOptions {
        dry_run: args.dry_run,
        grace_ns: parse_duration(&args.grace)?,
        delete_now: args.delete_now,
        repack: true,
        now_ns,
    };
    let (mut repo, _) = ctx.open()?;
    if let Some(name) = &args.remote {
        let report = repo.prune_remote(name, &opts, args.break_lock, &Bar::new())?;
        if args.json {
            let mut v = serde_json::to_value(&report)?;
            v["bytes_freed"] = report.bytes_freed().into();
            v["dry_run"] = args.dry_run.into();
            return render::print_json(&v).map(|_| 0);
        }
        if let Some(h) = &report.lock_broken {
            eprintln!("warning: removed the remote's prune lock held by {h}");
        }
        println!("remote {name} ({}):", report.url);
        print_plan(&report.plan, args.dry_run, "snap prune --remote");
        let would = if args.dry_run { "would " } else { "" };
        if report.plan.spared > 0 {
            println!(
                "{} packs ({}) are newer than the grace period and were left alone (a push may be about to name them)",
                report.plan.spared,
                bytes(report.plan.bytes_spared)
            );
        }
        if report.temporaries_deleted + report.temporaries_waiting > 0 {
            println!(
                "{would}delete {} unfinished upload temporaries; {} newer than the grace period left",
                report.temporaries_deleted, report.temporaries_waiting
            );
        }
        println!(
            "{} requests, {} fetched, {} sent",
            report.requests,
            bytes(report.bytes_fetched),
            bytes(report.bytes_uploaded)
        );
        return Ok(0);
    }
    let plan = repo.prune(&opts, &Bar::new())?;
    if args.json {
        let mut v = serde_json::to_value(&plan)?;
        v["bytes_freed"] = plan.bytes_freed().into();
        v["dry_run"] = args.dry_run.into();
        return render::print_json(&v).map(|_| 0);
    }
    print_plan(&plan, args.dry_run, "snap prune");
    Ok(0)
}

/// The human summary of a prune plan.
fn print_plan(plan: &snapstore::PrunePlan, dry_run: bool, again: &str) {
    let would = if dry_run { "would " } else { "" };
    println!(
        "{would}mark {} of {} packs for deletion ({}), {would}repack {} of them ({} copied)",
        plan.delete.len() + plan.repack.len(),
        plan.packs_total,
        bytes(plan.bytes_removed),
        plan.repack.len(),
        bytes(plan.bytes_copied),
    );
    println!(
        "{would}delete {} marked packs whose grace period has passed: {} freed",
        plan.due.len(),
        bytes(plan.bytes_freed()),
    );
    if plan.waiting > 0 {
        println!(
            "{} marked packs ({}) wait for the grace period: deleted by `{again}` after {} \
             (or now with --delete-now)",
            plan.waiting,
            bytes(plan.bytes_waiting),
            plan.next_delete_ns.map(render::time).unwrap_or_default()
        );
    }
    if !plan.resurrect.is_empty() {
        println!(
            "{} marked packs are needed again and were kept",
            plan.resurrect.len()
        );
    }
    for u in &plan.unreadable {
        eprintln!("warning: {u}");
    }
}
