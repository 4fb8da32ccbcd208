//! `snap tag` and `snap tags`.

use anyhow::{bail, Result};

use crate::cli::render;
use crate::cli::Ctx;

/// Name a snapshot (`snap tag NAME REV`), or remove a name (`--delete NAME`).
///
/// Tags may contain '/', e.g. `run-7/best`. Moving a tag replaces it
/// atomically.
#[derive(Debug, clap::Args)]
pub struct Args {
    name: String,
    /// Snapshot to tag (default: latest).
    rev: Option<String>,
    /// Delete the tag instead.
    #[arg(long, conflicts_with = "rev")]
    delete: bool,
    /// Output JSON ({"name": NAME, "snapshot": ID}; "snapshot" is null after --delete).
    #[arg(long)]
    json: bool,
}

/// List tags.
#[derive(Debug, clap::Args)]
pub struct TagsArgs {
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (mut repo, _) = ctx.open()?;
    if args.delete {
        repo.delete_tag(&args.name)?;
        if args.json {
            let v = serde_json::json!({ "name": args.name, "snapshot": null });
            return render::print_json(&v).map(|_| 0);
        }
        println!("deleted tag {}", args.name);
        return Ok(0);
    }
    let rev = args.rev.as_deref().unwrap_or("latest");
    if rev == args.name {
        bail!("a tag cannot name itself");
    }
    let id = repo.tag(&args.name, rev)?;
    if args.json {
        let v = serde_json::json!({ "name": args.name, "snapshot": id.to_hex() });
        return render::print_json(&v).map(|_| 0);
    }
    println!("tag {} -> {}", args.name, id.short());
    Ok(0)
}

pub fn run_list(ctx: &Ctx, args: TagsArgs) -> Result<u8> {
    let (repo, _) = ctx.open()?;
    let log = repo.log()?;
    let tags = repo.tags()?;
    if args.json {
        let v: Vec<_> = tags
            .iter()
            .map(|(n, id)| {
                let time = log
                    .iter()
                    .find(|e| e.id == *id)
                    .map(|e| render::time_rfc3339(e.snapshot.time_ns));
                serde_json::json!({ "name": n, "snapshot": id.to_hex(), "time": time })
            })
            .collect();
        return render::print_json(&v).map(|_| 0);
    }
    if tags.is_empty() {
        println!("no tags; add one with `snap tag NAME REV`");
    }
    for (name, id) in &tags {
        let when = log
            .iter()
            .find(|e| e.id == *id)
            .map(|e| render::time(e.snapshot.time_ns))
            .unwrap_or_default();
        println!("{name:<32} {}  {when}", id.short());
    }
    Ok(0)
}
