//! `snap stats`: sizes and ratios.

use anyhow::Result;

use crate::cli::render::{self, bytes};
use crate::cli::Ctx;

/// Repository sizes and dedup/compression ratios
///
/// Repository sizes: logical bytes (what the snapshots hold), unique bytes
/// (after dedup), stored bytes (after compression), and the ratios.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, _) = ctx.open()?;
    let s = repo.stats()?;
    if args.json {
        return render::print_json(&s).map(|_| 0);
    }
    println!(
        "snapshots      {} ({} sessions, {} tags)",
        s.snapshots, s.sessions, s.tags
    );
    println!(
        "logical        {}  (sum of all snapshots' files)",
        bytes(s.logical_bytes)
    );
    println!(
        "unique         {}  in {} chunks (after dedup)",
        bytes(s.unique_bytes),
        s.chunks
    );
    println!(
        "stored         {}  in {} packs ({} data, {} trees)",
        bytes(s.stored_bytes),
        s.packs,
        bytes(s.data_pack_bytes),
        bytes(s.tree_pack_bytes)
    );
    println!("dedup          {:.2}x", s.dedup_ratio);
    println!("compression    {:.2}x", s.compression_ratio);
    println!("overall        {:.2}x", s.total_ratio);
    for c in &s.codecs {
        println!(
            "  {:<12} {} -> {} ({:.3}) in {} chunks",
            c.codec,
            bytes(c.raw_bytes),
            bytes(c.stored_bytes),
            c.stored_bytes as f64 / c.raw_bytes.max(1) as f64,
            c.chunks
        );
    }
    Ok(0)
}
