//! `snap init`: create a repository for a workspace.

use std::path::PathBuf;

use anyhow::Result;
use snapstore::workspace::{RepoPointer, CONFIG_FILE, REPO_DIR};
use snapstore::{ChunkerParams, Repo};

use crate::cli::Ctx;

/// Create a repository: DIR/.snap, or --repo PATH
///
/// The workspace is what `snap commit`, run anywhere below it, snapshots:
/// --workspace DIR, by default the current directory. With --repo (for
/// example on another disk), the workspace's snap.toml gets a `repo` line
/// naming it. The output says where the workspace and the repository are
/// and which file was written.
///
/// snap.toml (optional, in the workspace) may set:
///   repo = "/mnt/archive/snap"   repository elsewhere
///   track = ["logs", "*.pth"]    what to snapshot (default: everything);
///                                wildcards as in .gitignore, plain paths from the workspace root
///   ignore = ["*.tmp"]           gitignore-style patterns, like .snapignore
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The workspace directory (created if missing; default: the current directory).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let ws_root = args
        .workspace
        .as_deref()
        .map(|d| ctx.abs(d))
        .unwrap_or_else(|| ctx.cwd.clone());
    let path = match &ctx.repo_flag {
        Some(p) => ctx.abs(p),
        None => ws_root.join(REPO_DIR),
    };
    let (repo, report) = Repo::init_workspace(
        &path,
        &ws_root,
        ChunkerParams::default(),
        snapstore::ops::commit::now_ns(),
    )?;
    let ws = report.workspace.display();
    println!("created snap repository {}", repo.path().display());
    println!("workspace: {ws} (a commit anywhere below it snapshots this directory)");
    match (&report.wrote, report.pointer) {
        (Some(file), RepoPointer::AddKey) => println!(
            "added `repo` to {}: the workspace's snapshots go to that repository",
            file.display()
        ),
        (Some(file), _) => println!(
            "wrote {}: its `repo` sends the workspace's snapshots to that repository",
            file.display()
        ),
        (None, RepoPointer::Present) => {
            println!("{ws}/{CONFIG_FILE} already names that repository: left as it is")
        }
        (None, _) => {}
    }
    if let Some(why) = broad_workspace(&report.workspace) {
        eprintln!(
            "snap: warning: the workspace is {why}: every commit snapshots all of it\n  \
             to snapshot one project, run `snap init --workspace PROJECT_DIR`"
        );
    }
    if report.workspace == ctx.cwd {
        println!("next: `snap commit -m \"first snapshot\"`");
    } else {
        println!("next: `cd {ws} && snap commit -m \"first snapshot\"`");
    }
    Ok(0)
}

/// Names the workspace if it is the home directory or `/`, which a commit
/// would snapshot whole.
fn broad_workspace(ws: &std::path::Path) -> Option<String> {
    if ws.parent().is_none() {
        return Some(format!("the root directory {}", ws.display()));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let same =
        home == ws || matches!((home.canonicalize(), ws.canonicalize()), (Ok(a), Ok(b)) if a == b);
    same.then(|| format!("your home directory {}", ws.display()))
}
