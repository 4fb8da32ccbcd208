//! `snap commit`: snapshot the workspace (or some paths of it).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use snapstore::CommitOptions;

use crate::cli::progress::Bar;
use crate::cli::render::{self, SnapshotJson};
use crate::cli::Ctx;

/// Snapshot the workspace.
///
/// Unchanged files are not read again; only new chunks are stored. With PATHs,
/// the snapshot holds just those paths.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Paths to snapshot (default: the whole workspace, or snap.toml's `track`).
    paths: Vec<PathBuf>,
    /// Message describing the snapshot.
    #[arg(short, long)]
    message: Option<String>,
    /// Session (training run) this snapshot belongs to.
    #[arg(long, env = "SNAP_SESSION")]
    session: Option<String>,
    /// Epoch number.
    #[arg(long)]
    epoch: Option<u64>,
    /// Training step (optimizer steps so far), with or without --epoch.
    #[arg(long)]
    step: Option<u64>,
    /// A metric, e.g. --metric val_loss=0.31 (repeatable).
    #[arg(long = "metric", value_name = "K=V")]
    metrics: Vec<String>,
    /// Tag the new snapshot (repeatable).
    #[arg(long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// Print the new snapshot as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_metrics(raw: &[String]) -> Result<BTreeMap<String, f64>> {
    let mut out = BTreeMap::new();
    for m in raw {
        let Some((k, v)) = m.split_once('=') else {
            bail!("metric '{m}' must look like NAME=VALUE, e.g. val_loss=0.31");
        };
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("metric '{m}': '{v}' is not a number"))?;
        if k.trim().is_empty() || !v.is_finite() {
            bail!("metric '{m}' needs a name and a finite value");
        }
        out.insert(k.trim().to_string(), v);
    }
    Ok(out)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, ws) = ctx.open()?;
    if let Some(s) = &args.session {
        if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) {
            bail!("session '{s}' must be 1 to 200 printable characters");
        }
    }
    let opts = CommitOptions {
        paths: args.paths.iter().map(|p| ctx.abs(p)).collect(),
        message: args.message,
        session: args.session,
        epoch: args.epoch,
        step: args.step,
        metrics: parse_metrics(&args.metrics)?,
        labels: BTreeMap::new(),
        tags: args.tags,
        now_ns: snapstore::ops::commit::now_ns(),
        ..CommitOptions::default()
    };
    let session = opts.session.clone();
    let done = repo.commit(&ws, opts, &Bar::new())?;
    snapstore::runner::notify::committed(session.as_deref(), &done.id.to_hex());
    for w in &done.warnings {
        eprintln!("snap: warning: {w}");
    }
    let s = &done.snapshot;
    if args.json {
        let tags: Vec<String> = repo
            .tags()?
            .into_iter()
            .filter(|(_, id)| *id == done.id)
            .map(|(n, _)| n)
            .collect();
        render::print_json(&SnapshotJson::new(&done.id, s, &tags))?;
        return Ok(skipped_code(&done));
    }
    let m = &s.summary;
    println!(
        "snapshot {}  {}, {} ({} read, {} unchanged)",
        done.id.short(),
        render::count(m.files, "file"),
        render::bytes(m.logical_bytes),
        m.files_read,
        m.files - m.files_read
    );
    println!(
        "  new data: {} in {}, {} stored",
        render::bytes(m.new_raw_bytes),
        render::count(m.new_chunks, "chunk"),
        render::bytes(m.new_stored_bytes)
    );
    Ok(skipped_code(&done))
}

/// Exit code 6 when the snapshot was stored without some entries (each
/// named by a warning above), so a script notices; 0 otherwise.
fn skipped_code(done: &snapstore::ops::commit::CommitSummary) -> u8 {
    if done.skipped == 0 {
        return 0;
    }
    eprintln!(
        "snap: snapshot {} was stored without {} (see the warnings above); commit again once they are back",
        done.id.short(),
        render::count(done.skipped, "entry")
    );
    6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_parse() {
        let m = parse_metrics(&["a=1.5".into(), "b = 2".into()]).unwrap();
        assert_eq!(m["a"], 1.5);
        assert_eq!(m["b"], 2.0);
        assert!(parse_metrics(&["a".into()]).is_err());
        assert!(parse_metrics(&["a=x".into()]).is_err());
        assert!(parse_metrics(&["a=inf".into()]).is_err());
    }
}
