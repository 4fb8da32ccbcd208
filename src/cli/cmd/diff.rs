//! `snap diff`: what changed between two snapshots.

use anyhow::Result;
use snapstore::ops::confdiff;
use snapstore::ops::diff::DiffRequest;
use snapstore::ops::filediff::ContentDiff;
use snapstore::workspace;

use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Files added, removed and changed between two snapshots, and what changed inside them
///
/// For each changed file: JSON, YAML and TOML configs key by key
/// (`optimizer.lr: 0.001 -> 0.003`, `model.layers: added (3)`, list
/// elements by index, type changes), other text as a unified diff, binary
/// files as their sizes. A config over 1 MiB or that does not parse gets the
/// text diff with a note; text over 4 MiB only its sizes. With --name-only,
/// just the file list. With --tensors, for checkpoints (safetensors, PyTorch .pt/.pth/.ckpt
/// zips, NumPy .npz), which tensors were added, removed or changed (name,
/// dtype, shape, bytes), read from the stored chunks without restoring the
/// files.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older snapshot (REV).
    old: String,
    /// The newer snapshot (REV).
    new: String,
    /// Only these paths (relative to the current directory inside the
    /// workspace; globs allowed).
    paths: Vec<String>,
    /// Also compare tensors inside checkpoint files.
    #[arg(long)]
    tensors: bool,
    /// Only list the files, not what changed inside them.
    #[arg(long)]
    name_only: bool,
    /// Output JSON ({"added": [...], "removed": [...], "changed": [...]}; a
    /// changed file's "content" is {"kind": "keys" | "text" | "binary" |
    /// "too_large", ...}).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, ws) = ctx.open()?;
    let req = DiffRequest {
        tensors: args.tensors,
        content: !args.name_only,
        base: workspace::snapshot_dir(&ws, &ctx.cwd),
        paths: args.paths.clone(),
    };
    let d = repo.diff_with(&args.old, &args.new, &req)?;
    if args.json {
        return render::print_json(&d).map(|_| 0);
    }
    for f in &d.added {
        println!(
            "+ {}{}",
            f.path,
            f.new_size
                .map(|s| format!("  ({})", bytes(s)))
                .unwrap_or_default()
        );
    }
    for f in &d.removed {
        println!(
            "- {}{}",
            f.path,
            f.old_size
                .map(|s| format!("  ({})", bytes(s)))
                .unwrap_or_default()
        );
    }
    for f in &d.changed {
        let sizes = match (f.old_size, f.new_size) {
            (Some(a), Some(b)) if a != b => format!("  ({} -> {})", bytes(a), bytes(b)),
            _ => String::new(),
        };
        println!("M {}  [{}]{sizes}", f.path, f.what.join(", "));
        if let Some(t) = &f.tensors {
            for x in &t.changed {
                println!(
                    "    M {} {} {:?} {}",
                    x.name,
                    x.dtype,
                    x.shape,
                    bytes(x.bytes)
                );
            }
            for x in &t.added {
                println!(
                    "    + {} {} {:?} {}",
                    x.name,
                    x.dtype,
                    x.shape,
                    bytes(x.bytes)
                );
            }
            for x in &t.removed {
                println!(
                    "    - {} {} {:?} {}",
                    x.name,
                    x.dtype,
                    x.shape,
                    bytes(x.bytes)
                );
            }
            println!("    {} tensors unchanged", t.unchanged);
        }
    }
    for f in &d.changed {
        if let Some(c) = &f.content {
            print_content(&f.path, c);
        }
    }
    if d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty() {
        println!("no differences");
    }
    Ok(0)
}

/// What changed inside one file, after the file list.
fn print_content(path: &str, c: &ContentDiff) {
    match c {
        ContentDiff::Keys { format, changes } => {
            println!("\n{path} ({}, by key):", format.name());
            if changes.is_empty() {
                println!("    same keys and values (only formatting differs)");
            }
            for k in changes {
                println!("    {}", confdiff::render(k));
            }
        }
        ContentDiff::Text { unified, note } => {
            println!();
            if let Some(n) = note {
                println!("{path}: {n}");
            }
            print!("{unified}");
        }
        ContentDiff::Binary { old_size, new_size } => {
            println!(
                "\n{path}: binary, sizes {} -> {}",
                bytes(*old_size),
                bytes(*new_size)
            );
        }
        ContentDiff::TooLarge {
            old_size,
            new_size,
            limit,
        } => println!(
            "\n{path}: text too large to compare line by line (over {}), sizes {} -> {}",
            bytes(*limit),
            bytes(*old_size),
            bytes(*new_size)
        ),
    }
}
