//! `snap man`: man pages, generated from the clap definition the parser
//! uses (like `snap completions`), so they never drift from `--help`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, Ctx};

/// Write man pages
///
/// Without --dir, prints snap(1) to stdout (`snap man | man -l -`). With
/// --dir, writes snap.1 and one page per command (snap-commit.1, ...) there:
///   snap man --dir ~/.local/share/man/man1
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Directory to write snap.1 and snap-COMMAND.1 into (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let cmd = Cli::command();
    let Some(dir) = args.dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .and_then(|()| out.flush())
            .context("write the man page to stdout")?;
        return Ok(0);
    };
    let dir = ctx.abs(&dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the man page directory {}", dir.display()))?;
    clap_mangen::generate_to(cmd, &dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == "snap.1" || (n.starts_with("snap-") && n.ends_with(".1")))
        .collect();
    pages.sort();
    println!("wrote {} man pages into {}", pages.len(), dir.display());
    println!(
        "read them with `man snap` once {} is on MANPATH (or: man -l {})",
        dir.parent().unwrap_or(&dir).display(),
        dir.join("snap.1").display()
    );
    Ok(0)
}
