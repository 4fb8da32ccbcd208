//! `snap ui`: the local, read-only web page (`crate::ui`).

use std::net::SocketAddr;

use anyhow::{Context, Result};

use crate::cli::Ctx;
use crate::ui::{self, ServeOptions};

/// Serve a read-only web page of sessions, metric curves, snapshots, diffs
/// and storage
///
/// A small HTTP server in this process, bound to 127.0.0.1 unless --addr
/// says otherwise, serving the page (its files and chart library are inside
/// the binary) and a JSON API (/api/sessions, /api/snapshots,
/// /api/snapshot/REV, /api/diff?a=REV&b=REV, /api/metrics, /api/storage;
/// docs/ui.md). It reads the repository as `snap log` does and never writes
/// to it. The bound address is printed on stdout. Ctrl-C stops it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0: any free port). Anything but a
    /// loopback address lets other machines read the repository's metadata
    /// and files list: a warning is printed.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8765")]
    addr: String,
    /// Open the page in a browser (xdg-open), if there is one.
    #[arg(long)]
    open: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let addr: SocketAddr = args.addr.parse().with_context(|| {
        format!(
            "--addr '{}' is not IP:PORT, e.g. 127.0.0.1:8765 (port 0 picks a free one)",
            args.addr
        )
    })?;
    // Opened once now, so that a missing or damaged repository is reported
    // before the server starts; each request opens it again (new snapshots
    // of a running `snap run` show up on reload).
    let (repo, ws) = ctx.open()?;
    drop(repo);
    let root = ws.repo.clone();
    ui::serve(
        ServeOptions {
            addr,
            open: args.open,
        },
        move || Ok(snapstore::Repo::open(&root)?),
    )
}
