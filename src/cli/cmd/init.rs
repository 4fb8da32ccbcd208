//! `snap init`: create a repository.

use anyhow::Result;
use snapstore::workspace::{self, REPO_DIR};
use snapstore::{ChunkerParams, Repo};

use crate::cli::Ctx;

/// Create a repository: ./.snap, or --repo PATH
///
/// With --repo (for example on another disk), a snap.toml pointing to it is
/// written in the current directory.
///
/// snap.toml (optional, beside .snap/) may set:
///   repo = "/mnt/archive/snap"   repository elsewhere
///   track = ["logs", "models"]   what to snapshot (default: everything)
///   ignore = ["*.tmp"]           gitignore-style patterns, like .snapignore
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {}

pub fn run(ctx: &Ctx, _args: Args) -> Result<u8> {
    let (path, external) = match &ctx.repo_flag {
        Some(p) => (ctx.abs(p), true),
        None => (ctx.cwd.join(REPO_DIR), false),
    };
    let repo = Repo::init(
        &path,
        ChunkerParams::default(),
        snapstore::ops::commit::now_ns(),
    )?;
    println!("created snap repository {}", repo.path().display());
    if external && path != ctx.cwd.join(REPO_DIR) && workspace::write_repo_pointer(&ctx.cwd, &path)?
    {
        println!("wrote snap.toml: this directory's snapshots go to that repository");
    }
    println!("next: `snap commit -m \"first snapshot\"`");
    Ok(0)
}
