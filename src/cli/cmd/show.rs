//! `snap show`: one snapshot's metadata and files.

use anyhow::Result;

use crate::cli::render::{self, SnapshotJson};
use crate::cli::Ctx;

/// Show one snapshot: its metadata and every file, directory and symlink.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshot: `latest`, a tag, an id or prefix, SESSION (its newest),
    /// SESSION@start, SESSION@end or SESSION@EPOCH.
    rev: String,
    /// Read remote NAME instead of this repository.
    #[arg(long, value_name = "NAME")]
    from: Option<String>,
    /// Output JSON ({"snapshot": ..., "files": [...]}).
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let reading = ctx.open_reading(args.from.as_deref())?;
    let repo = reading.repo();
    let (id, snap) = repo.resolve(&args.rev)?;
    let tags: Vec<String> = repo
        .tags()?
        .into_iter()
        .filter(|(_, t)| *t == id)
        .map(|(n, _)| n)
        .collect();
    let files = repo.files(&id, &snap)?;
    let notes = render::notes_or_warn(repo)?;
    let notes = notes.of(&id);
    if args.json {
        let n: Vec<_> = notes.iter().map(render::note_json).collect();
        let v = serde_json::json!({
            "snapshot": SnapshotJson::new(&id, &snap, &tags),
            "notes": n,
            "files": files,
        });
        return render::print_json(&v).map(|_| 0);
    }
    println!("snapshot  {}", id.to_hex());
    println!("time      {}", render::time(snap.time_ns));
    println!("host      {}  workspace {}", snap.host, snap.workspace);
    let mut at: Vec<String> = snap.session.iter().cloned().collect();
    at.extend(snap.epoch.map(|e| format!("epoch {e}")));
    at.extend(snap.step.map(|s| format!("step {s}")));
    if !at.is_empty() {
        let label = if snap.session.is_some() {
            "session"
        } else {
            "at"
        };
        println!("{label:<9} {}", at.join("  "));
    }
    if !snap.metrics.is_empty() {
        println!("metrics   {}", render::metrics(&snap.metrics));
    }
    if !tags.is_empty() {
        println!("tags      {}", tags.join(", "));
    }
    if let Some(m) = &snap.message {
        println!("message   {m}");
    }
    for n in notes {
        println!(
            "note      {}  ({}, {})",
            n.text,
            render::time(n.time_ns),
            n.host
        );
    }
    for (k, v) in &snap.labels {
        println!("{k:<9} {v}");
    }
    let s = &snap.summary;
    println!(
        "contents  {}, {}, {}, {}; new data {} ({} stored)",
        render::count(s.files, "file"),
        render::count(s.dirs, "dir"),
        render::count(s.symlinks, "symlink"),
        render::bytes(s.logical_bytes),
        render::bytes(s.new_raw_bytes),
        render::bytes(s.new_stored_bytes)
    );
    println!();
    for f in &files {
        match f.kind {
            "dir" => println!("{:o}  {:>10}  {}/", f.mode, "", f.path),
            "symlink" => println!(
                "{:o}  {:>10}  {} -> {}",
                f.mode,
                "",
                f.path,
                f.target.as_deref().unwrap_or("")
            ),
            _ => println!("{:o}  {:>10}  {}", f.mode, render::bytes(f.size), f.path),
        }
    }
    Ok(0)
}
