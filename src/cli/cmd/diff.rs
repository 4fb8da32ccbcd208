//! `snap diff`: what changed between two snapshots.

use anyhow::Result;

use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Files added, removed and changed between two snapshots
///
/// With --tensors, for checkpoints (safetensors, PyTorch .pt/.pth/.ckpt
/// zips, NumPy .npz), which tensors were added, removed or changed (name,
/// dtype, shape, bytes), read from the stored chunks without restoring the
/// files.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older snapshot (REV).
    old: String,
    /// The newer snapshot (REV).
    new: String,
    /// Also compare tensors inside checkpoint files.
    #[arg(long)]
    tensors: bool,
    /// Output JSON ({"added": [...], "removed": [...], "changed": [...]}).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, _) = ctx.open()?;
    let d = repo.diff(&args.old, &args.new, args.tensors)?;
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
    if d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty() {
        println!("no differences");
    }
    Ok(0)
}
