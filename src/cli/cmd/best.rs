//! `snap best`: the best snapshot on one metric, over every session.

use anyhow::Result;
use snapstore::ops::metrics;

use crate::cli::{render, usage_error, Ctx};

/// The best snapshot on a metric over all sessions, stored or forgotten
///
/// METRIC:min or METRIC:max; without the suffix the direction is the one
/// `snap run --best` takes: names with loss, err, perplexity, ppl, mse or
/// mae are minimised, others maximised. Forgotten snapshots (the retention
/// journal) count too: the output says when the winner can no longer be
/// restored. Ties go to the earliest snapshot.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// METRIC[:min|max], e.g. val_loss or val_accuracy:max.
    metric: String,
    /// Only sessions matching this glob (e.g. 'lr-*').
    #[arg(long, value_name = "GLOB")]
    session: Option<String>,
    /// Output JSON ({"metric", "direction", "value", "id", "session", "epoch", "stored", ...}).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (name, dir) = metrics::parse_best(&args.metric)
        .map_err(|why| usage_error("best", &format!("invalid METRIC '{}': {why}", args.metric)))?;
    let (repo, _) = ctx.open()?;
    let (best, damaged) = repo.best(&name, dir, args.session.as_deref())?;
    for d in &damaged {
        eprintln!(
            "snap: warning: unreadable retention journal entry {d}; its metrics are not ranked"
        );
    }
    if args.json {
        return render::print_json(&best).map(|_| 0);
    }
    let r = &best.row;
    let mut at = vec![format!("session {}", r.session)];
    at.extend(r.epoch.map(|e| format!("epoch {e}")));
    at.extend(r.step.map(|s| format!("step {s}")));
    println!(
        "best {} ({}): {} at {}  {}",
        best.metric,
        best.direction.name(),
        render::num(best.value),
        &r.id[..8],
        at.join(", ")
    );
    println!(
        "  ranked {} over {}",
        render::count(best.candidates as u64, "snapshot"),
        args.session
            .as_deref()
            .map(|g| format!("sessions matching '{g}'"))
            .unwrap_or_else(|| "every session".into())
    );
    match r.forgotten_ns {
        None => println!("  stored: `snap restore {}` brings it back", &r.id[..8]),
        Some(ns) => println!(
            "  forgotten by retention on {}: its files cannot be restored; only its record remains (`snap log --forgotten`)",
            render::time(ns)
        ),
    }
    Ok(0)
}
