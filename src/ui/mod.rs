//! `snap ui`: a local, read-only web page over a repository.
//!
//! A tiny_http server on one thread: the library is synchronous and a
//! `Repo` holds a SQLite connection (`Send`, not `Sync`), and a page for one
//! person needs no concurrency, so requests are served in turn, each on a
//! `Repo` opened for it (readers never write; new snapshots show up on
//! reload). tiny_http brings four small crates; axum would bring hyper and
//! tower, and a tokio runtime the rest of the binary keeps private to the
//! remote backend.
//!
//! - `api`: the JSON routes (docs/ui.md), pure functions of a `Repo`;
//! - `assets`: the page's files, embedded in the binary (rust-embed), with
//!   uPlot vendored under `assets/vendor/`.
//!
//! Only GET and HEAD are served. When bound to a loopback address, a request
//! whose `Host` is not that address (or `localhost`) is refused, so a web
//! page elsewhere cannot read the repository through DNS rebinding.

mod api;
mod assets;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use snapstore::Repo;
use tiny_http::{Header, Method, Request, Response, Server};

pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Run `xdg-open` on the page's address once bound.
    pub open: bool,
}

/// A response before it is sent: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, v: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).expect("a JSON value serializes"),
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(
            status,
            &serde_json::json!({ "status": status, "error": message.into() }),
        )
    }
}

/// Serves until Ctrl-C (SIGINT) or SIGTERM; returns the exit code.
/// `open_repo` opens the repository for one request.
pub fn serve(opts: ServeOptions, open_repo: impl Fn() -> Result<Repo>) -> Result<u8> {
    let server = Server::http(opts.addr).map_err(|e| {
        let in_use = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::AddrInUse);
        if in_use {
            anyhow!(
                "cannot listen on {}: the address is in use (another `snap ui`?); \
                 choose another port with --addr 127.0.0.1:PORT, or port 0 for any free one",
                opts.addr
            )
        } else {
            anyhow!("cannot listen on {}: {e}", opts.addr)
        }
    })?;
    let bound = server
        .server_addr()
        .to_ip()
        .context("the server is not bound to an IP address")?;
    let loopback = bound.ip().is_loopback();
    if !loopback {
        eprintln!(
            "snap: warning: listening on {bound}, not on a loopback address: anyone who can \
             reach it can read this repository's snapshots, file lists and metrics \
             (there is no authentication)"
        );
    }
    let url = format!("http://{bound}/");
    // The first line of stdout is the address (tests and scripts read it).
    println!("snap ui: serving {url} (read-only; Ctrl-C stops)");
    std::io::stdout().flush().ok();
    if opts.open {
        open_browser(&url);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install the Ctrl-C handler")?;
    }
    let hosts = allowed_hosts(bound);
    while !stop.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("the HTTP server failed"),
        };
        let reply = handle(&request, loopback, &hosts, &open_repo);
        respond(request, reply);
    }
    eprintln!("snap ui: stopped");
    Ok(0)
}

/// The `Host` values a loopback-bound server answers.
fn allowed_hosts(bound: SocketAddr) -> Vec<String> {
    let port = bound.port();
    vec![
        format!("{bound}"),
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ]
}

fn handle(
    request: &Request,
    loopback: bool,
    hosts: &[String],
    open_repo: &impl Fn() -> Result<Repo>,
) -> Reply {
    if !matches!(request.method(), Method::Get | Method::Head) {
        return Reply::error(405, "snap ui is read-only: only GET and HEAD are served");
    }
    if loopback {
        let host = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Host"))
            .map(|h| h.value.as_str().to_ascii_lowercase());
        if !host.is_some_and(|h| hosts.contains(&h)) {
            return Reply::error(
                403,
                "the Host header does not name this server; open the address `snap ui` printed",
            );
        }
    }
    let (path, query) = match request.url().split_once('?') {
        Some((p, q)) => (p, q),
        None => (request.url(), ""),
    };
    if let Some(route) = path.strip_prefix("/api/") {
        let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        return match open_repo() {
            Ok(mut repo) => api::route(&mut repo, route, &query),
            Err(e) => Reply::error(500, format!("cannot open the repository: {e:#}")),
        };
    }
    assets::get(path)
}

fn respond(request: Request, reply: Reply) {
    let mut response = Response::from_data(reply.body).with_status_code(reply.status);
    for (k, v) in [
        ("Content-Type", reply.content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        (
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
        ),
    ] {
        let header = Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("a valid header");
        response.add_header(header);
    }
    // A client that went away is not the server's problem.
    let _ = request.respond(response);
}

/// Runs `xdg-open URL` when there is one; says so when there is not.
fn open_browser(url: &str) {
    match std::process::Command::new("xdg-open")
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(e) => eprintln!("snap: warning: cannot run xdg-open ({e}); open {url} in a browser"),
    }
}
