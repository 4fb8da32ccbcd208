//! `snap note`: add a note to a snapshot after the fact.

use anyhow::Result;

use crate::cli::{render, Ctx};

/// Add a note to an existing snapshot
///
/// The snapshot itself never changes (its id is its hash): the note is a
/// small record of its own, shown by `snap log` and `snap show` (and their
/// --json). Several notes per snapshot are kept, oldest first.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshot (REV): `latest`, a tag, an id or prefix, SESSION@EPOCH...
    rev: String,
    /// The note (quote it: "lr 1e-3 diverged after epoch 4").
    text: String,
    /// Output JSON ({"snapshot": ID, "note": {"time", "time_ns", "host", "text"}}).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, _) = ctx.open()?;
    let (id, note) = repo.note(&args.rev, &args.text, snapstore::ops::commit::now_ns())?;
    if args.json {
        let v = serde_json::json!({ "snapshot": id.to_hex(), "note": render::note_json(&note) });
        return render::print_json(&v).map(|_| 0);
    }
    println!("note added to {}", id.short());
    Ok(0)
}
