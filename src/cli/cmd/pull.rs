//! `snap pull`: bring snapshots from a remote.

use anyhow::Result;

use crate::cli::progress::Bar;
use crate::cli::render;
use crate::cli::Ctx;

/// Bring snapshots, the data they need and their tags from a remote.
///
/// Every pack fetched is verified (each chunk against its BLAKE3 id, the
/// pack against its name) before it is stored. A tag that names another
/// snapshot here is kept and reported.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remote (default: origin).
    remote: Option<String>,
    /// Snapshots to pull, as the remote names them (default: all).
    revs: Vec<String>,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, _) = ctx.open()?;
    let name = args.remote.as_deref().unwrap_or("origin");
    // A bar on a terminal only (`Bar`), never with --json.
    let r = match args.json {
        true => repo.pull(name, &args.revs)?,
        false => repo.pull_with(name, &args.revs, &Bar::new())?,
    };
    for c in &r.tag_conflicts {
        eprintln!("snap: note: {c}");
    }
    if args.json {
        render::history(&r.history, false);
        return render::print_json(&r).map(|_| 0);
    }
    println!(
        "pulled {} ({} already here), {} ({}), {} from {name} ({}); fetched {} in {} requests",
        render::count(r.snapshots as u64, "snapshot"),
        r.snapshots_present,
        render::count(r.packs as u64, "pack"),
        render::bytes(r.pack_bytes),
        render::count(r.tags.len() as u64, "tag"),
        r.url,
        render::bytes(r.bytes_fetched),
        r.requests
    );
    render::history(&r.history, true);
    Ok(0)
}
