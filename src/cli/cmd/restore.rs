//! `snap restore`: a snapshot (or some of its paths) back on disk.

use std::path::PathBuf;

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use anyhow::Result;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use snapstore::workspace;
use snapstore::{Action, RestoreOptions, RestorePlan};

use crate::cli::progress::Bar;
use crate::cli::{render, usage_error, Ctx};

/// Restore a snapshot, whole or some paths, byte for byte with modes, mtimes
/// and symlinks.
///
/// Existing files are never replaced without --overwrite (not even one
/// that appears while the restore runs), nothing is written outside the
/// target or into the repository, and setuid, setgid and world-write bits
/// are stripped unless --keep-setuid.
///
/// PATHs may be globs (`'checkpoints/*best*'`; `*` stays within one
/// directory, `**` crosses them). Restoring into the workspace, they are
/// relative to the current directory, as in git; with a --target elsewhere,
/// or run outside the workspace, relative to the snapshot root.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot: `latest`, a tag, an id or prefix, SESSION (its newest),
    /// SESSION@start, SESSION@end or SESSION@EPOCH.
    rev: String,
    /// Paths or globs inside the snapshot (default: all of it).
    paths: Vec<String>,
    /// Directory to restore into (default: the workspace).
    #[arg(long, short)]
    target: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long)]
    overwrite: bool,
    /// Restore setuid, setgid and world-write bits as stored (by default
    /// they are stripped, with one warning saying how many).
    #[arg(long)]
    keep_setuid: bool,
    /// List what would be written (new, replace, unchanged) and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the summary (with --dry-run: the list) as JSON.
    #[arg(long)]
    json: bool,
    /// Restore from remote NAME instead, fetching only the chunks the chosen
    /// files need (range reads of its packs, each chunk verified); the
    /// JSON summary adds bytes_fetched.
    #[arg(long, value_name = "NAME")]
    from: Option<String>,
    /// Not an option: refused, pointing to --overwrite.
    #[arg(long, hide = true)]
    force: bool,
}

/// `restore --from --json`: the summary and what was fetched.
#[derive(serde::Serialize)]
struct FromJson<'a> {
    #[serde(flatten)]
    summary: &'a snapstore::RestoreSummary,
    remote: &'a str,
    bytes_fetched: u64,
    requests: u64,
}

/// The first Ctrl-C or SIGTERM sets the returned value to its number, and
/// the restore stops cleanly (temporaries removed, nothing replaced); a
/// second one ends the process at once.
fn stop_on_signals() -> Result<Arc<AtomicUsize>> {
    let signal = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        flag::register_conditional_shutdown(sig, 128 + sig, stopping.clone())?;
        flag::register(sig, stopping.clone())?;
        flag::register_usize(sig, signal.clone(), sig as usize)?;
    }
    Ok(signal)
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    if args.force {
        return Err(usage_error(
            "restore",
            "snap restore has no --force: pass --overwrite to replace existing files \
             (try --dry-run first to see which ones)",
        )
        .into());
    }
    let (repo, ws) = ctx.open()?;
    let target = args
        .target
        .map(|t| ctx.abs(&t))
        .unwrap_or_else(|| ws.root.clone());
    // Paths follow the current directory only when the restore writes into
    // the workspace itself, where the snapshot's layout is the directory's.
    let base = if target == ws.root {
        workspace::snapshot_dir(&ws, &ctx.cwd)
    } else {
        PathBuf::new()
    };
    let mut opts = RestoreOptions {
        paths: args.paths,
        base,
        target: target.clone(),
        overwrite: args.overwrite,
        keep_setuid: args.keep_setuid,
        ..RestoreOptions::default()
    };
    let remote = args
        .from
        .as_deref()
        .map(|name| ctx.open_remote(&repo, name))
        .transpose()?;
    if args.dry_run {
        let plan = match &remote {
            Some(r) => {
                opts.protect = Some(repo.path().to_path_buf());
                r.repo().restore_plan(&args.rev, opts)?
            }
            None => repo.restore_plan(&args.rev, opts)?,
        };
        return dry_run(&plan, args.overwrite, args.json);
    }
    opts.cancel = Some(stop_on_signals()?);
    let s = match &remote {
        Some(r) => repo.restore_from(r, &args.rev, opts, &Bar::new())?,
        None => repo.restore(&args.rev, opts, &Bar::new())?,
    };
    if s.modes_stripped > 0 {
        eprintln!(
            "snap: warning: restored {} without their setuid, setgid or world-write bits; \
             pass --keep-setuid to restore them as stored",
            render::count(s.modes_stripped, "entry")
        );
    }
    if args.json {
        if let Some(r) = &remote {
            return render::print_json(&FromJson {
                summary: &s,
                remote: &r.name,
                bytes_fetched: r.bytes_fetched(),
                requests: r.requests(),
            })
            .map(|_| 0);
        }
        return render::print_json(&s).map(|_| 0);
    }
    if let Some(r) = &remote {
        println!(
            "fetched {} from {} in {} requests",
            render::bytes(r.bytes_fetched()),
            r.url,
            r.requests()
        );
    }
    println!(
        "restored {} ({}), {}, {} into {}",
        render::count(s.files as u64, "file"),
        render::bytes(s.bytes),
        render::count(s.dirs as u64, "dir"),
        render::count(s.symlinks as u64, "symlink"),
        target.display()
    );
    if s.stale_temporaries_removed > 0 {
        eprintln!(
            "snap: removed {} temporary file(s) left by an earlier restore that was killed",
            s.stale_temporaries_removed
        );
    }
    Ok(0)
}

/// `--dry-run`: one line per entry, then what the restore would do.
fn dry_run(plan: &RestorePlan, overwrite: bool, json: bool) -> Result<u8> {
    if json {
        return render::print_json(&plan.entries()).map(|_| 0);
    }
    let count = |action: Action| plan.entries().iter().filter(|e| e.action == action).count();
    let (new, replace, unchanged) = (
        count(Action::New),
        count(Action::Replace),
        count(Action::Unchanged),
    );
    for e in plan.entries() {
        let suffix = match e.kind {
            "dir" => "/",
            _ => "",
        };
        let size = match e.kind {
            "file" => format!("  ({})", render::bytes(e.size)),
            _ => String::new(),
        };
        println!("{:<9}  {}{suffix}{size}", e.action.name(), e.path);
    }
    println!(
        "dry run: {} entries into {} ({new} new, {replace} to replace, {unchanged} unchanged, {}); nothing written",
        plan.entries().len(),
        plan.target().display(),
        render::bytes(plan.total_bytes()),
    );
    let conflicts = plan.conflicts();
    if !conflicts.is_empty() && !overwrite {
        println!(
            "without --overwrite the restore would refuse: {} existing path(s), first: {}",
            conflicts.len(),
            conflicts[0].display()
        );
    }
    Ok(0)
}
