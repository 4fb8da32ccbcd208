//! `snap push`: send snapshots to a remote.

use anyhow::Result;

use crate::cli::progress::Bar;
use crate::cli::render;
use crate::cli::Ctx;

/// Send snapshots, the data they need and their tags to a remote.
///
/// Only what the remote lacks is sent: packs first, then snapshot records,
/// then tags, so the remote never names data it does not hold. An
/// interrupted push is resumed by pushing again. A remote tag that another
/// machine moved to a snapshot this repository does not have is left as it
/// is and reported (exit 1); pull first.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remote (default: origin).
    remote: Option<String>,
    /// Snapshots to push (default: all).
    revs: Vec<String>,
    /// Output JSON: snapshots, packs, chunks and bytes uploaded.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, _) = ctx.open()?;
    let name = args.remote.as_deref().unwrap_or("origin");
    // A bar on a terminal only (`Bar`), never with --json.
    let r = match args.json {
        true => repo.push(name, &args.revs)?,
        false => repo.push_with(name, &args.revs, &Bar::new())?,
    };
    for c in &r.tag_conflicts {
        eprintln!("snap: warning: {c}");
    }
    let code = u8::from(!r.tag_conflicts.is_empty());
    if args.json {
        render::history(&r.history, false);
        return render::print_json(&r).map(|_| code);
    }
    let copied = r.history.notes + r.history.journal_entries;
    if r.snapshots == 0 && r.packs == 0 && r.tags.is_empty() && copied == 0 {
        render::history(&r.history, true);
        println!("{name} ({}) is up to date", r.url);
        return Ok(code);
    }
    println!(
        "pushed {} ({} already there), {} with {} new chunks ({}), {} to {name} ({})",
        render::count(r.snapshots as u64, "snapshot"),
        r.snapshots_present,
        render::count(r.packs as u64, "pack"),
        r.chunks,
        render::bytes(r.pack_bytes),
        render::count(r.tags.len() as u64, "tag"),
        r.url
    );
    render::history(&r.history, true);
    if r.unneeded_bytes > 0 {
        println!(
            "  {} of that is data no pushed snapshot needs, sent because packs go whole; `snap prune` before pushing avoids it",
            render::bytes(r.unneeded_bytes)
        );
    }
    Ok(code)
}
