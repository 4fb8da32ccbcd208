//! `snap clone`: a new workspace from a remote.

use std::path::PathBuf;

use anyhow::{Context, Result};
use snapstore::Repo;

use crate::cli::progress::Bar;
use crate::cli::render;
use crate::cli::Ctx;

/// Create a workspace and its repository from a remote, with the latest
/// snapshot restored.
///
/// The remote is remembered as `origin`. DIR defaults to the last
/// component of the URL.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// s3://BUCKET/PREFIX or file:///PATH.
    url: String,
    /// New (or empty) directory for the workspace.
    dir: Option<PathBuf>,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct CloneJson<'a> {
    workspace: String,
    repository: String,
    snapshots: usize,
    packs: usize,
    bytes_fetched: u64,
    restored: Option<String>,
    files: u64,
    tags: &'a [String],
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let dir = match args.dir {
        Some(d) => ctx.abs(&d),
        None => {
            let last = args
                .url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty() && !s.contains(':'))
                .context("cannot name a directory after this URL; give DIR")?;
            ctx.abs(std::path::Path::new(last))
        }
    };
    // A bar on a terminal only, never with --json.
    let r = match args.json {
        true => Repo::clone_remote(&args.url, &dir, &snapstore::NoProgress)?,
        false => Repo::clone_remote(&args.url, &dir, &Bar::new())?,
    };
    let restored = r.restored.as_ref();
    render::history(&r.pull.history, false);
    if args.json {
        return render::print_json(&CloneJson {
            workspace: r.workspace.display().to_string(),
            repository: r.repository.display().to_string(),
            snapshots: r.pull.snapshots,
            packs: r.pull.packs,
            bytes_fetched: r.pull.bytes_fetched,
            restored: restored.map(|(id, _)| id.to_hex()),
            files: restored.map(|(_, s)| s.files).unwrap_or(0),
            tags: &r.pull.tags,
        })
        .map(|_| 0);
    }
    println!(
        "cloned {} into {} ({}, {})",
        args.url,
        r.workspace.display(),
        render::count(r.pull.snapshots as u64, "snapshot"),
        render::bytes(r.pull.pack_bytes)
    );
    match restored {
        Some((id, s)) => println!(
            "restored snapshot {} ({}, {})",
            id.short(),
            render::count(s.files, "file"),
            render::bytes(s.bytes)
        ),
        None => println!("the remote has no snapshots yet"),
    }
    Ok(0)
}
