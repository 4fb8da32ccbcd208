//! `snap locate` (hidden): where the repository and the workspace are, as
//! the other commands find them. The Python package asks this once in
//! `Repo.open()` instead of copying the discovery rules.

use anyhow::Result;

use crate::cli::render;
use crate::cli::Ctx;

/// Print the repository and workspace directories a command here would use.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output JSON ({"repository": PATH, "workspace": PATH}).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    // Opening checks that the repository exists and is one snap can read.
    let (repo, ws) = ctx.open()?;
    let repository = repo.path().display().to_string();
    let workspace = ws.root.display().to_string();
    if args.json {
        let v = serde_json::json!({ "repository": repository, "workspace": workspace });
        return render::print_json(&v).map(|_| 0);
    }
    println!("repository  {repository}");
    println!("workspace   {workspace}");
    Ok(0)
}
