//! The page's files, embedded in the binary (rust-embed with `debug-embed`,
//! so debug builds embed them too and the binary never reads them from the
//! source tree). `vendor/uplot/` is uPlot 1.6.32 from npm (`npm pack
//! uplot@1.6.32`: `dist/uPlot.iife.min.js`, `dist/uPlot.min.css`,
//! `LICENSE`, MIT), committed as published.

use rust_embed::RustEmbed;

use super::Reply;

#[derive(RustEmbed)]
#[folder = "src/ui/assets/"]
struct Assets;

/// The file at URL path `path` (`/` is `index.html`), or 404.
pub fn get(path: &str) -> Reply {
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    match Assets::get(name) {
        Some(file) => Reply {
            status: 200,
            content_type: content_type(name),
            body: file.data.into_owned(),
        },
        None => Reply::error(404, format!("no page file '{path}'; the page is at /")),
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "text/plain; charset=utf-8",
    }
}
