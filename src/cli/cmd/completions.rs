//! `snap completions`: shell completion scripts, generated from the clap
//! definition the parser uses, so they never drift from the real options.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, Ctx};

/// Print a shell completion script
///
/// Install it where your shell looks for completions, for example:
///   snap completions bash > ~/.local/share/bash-completion/completions/snap
///   snap completions zsh  > ~/.zfunc/_snap      (with fpath+=(~/.zfunc) before compinit)
///   snap completions fish > ~/.config/fish/completions/snap.fish
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn run(_ctx: &Ctx, args: Args) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "snap", &mut out);
    out.flush()
        .context("write the completion script to stdout")?;
    Ok(0)
}
