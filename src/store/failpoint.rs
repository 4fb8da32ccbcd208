//! Crash injection for tests: `SNAP_FAILPOINT=NAME` makes the process abort
//! (no destructors, no flushing, like `kill -9`) when it reaches the point
//! `NAME`. Points sit between the steps of every durability sequence, so the
//! tests can crash a commit or a prune at each step and check that nothing
//! already stored is lost. `SNAP_FAILPOINT_SLEEP=NAME` pauses there for two
//! seconds instead, so a test can send a signal at that step.
//!
//! `SNAP_FAILPOINT_WAIT=NAME` with `SNAP_FAILPOINT_DIR=DIR` is a barrier for
//! race tests that must not depend on timing: at `NAME` the process creates
//! `DIR/NAME.reached` and waits until `DIR/NAME.go` exists (a test runs the
//! competing command in between), then goes on. It gives up and aborts after
//! two minutes so that a broken test cannot hang. Costs three environment
//! lookups per point.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Aborts the process if `SNAP_FAILPOINT` names this point; sleeps if
/// `SNAP_FAILPOINT_SLEEP` does; waits for the test's go-ahead if
/// `SNAP_FAILPOINT_WAIT` does.
pub fn hit(name: &str) {
    if std::env::var_os("SNAP_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("snap: failpoint {name}: aborting");
        std::process::abort();
    }
    if std::env::var_os("SNAP_FAILPOINT_SLEEP").is_some_and(|v| v == name) {
        eprintln!("snap: failpoint {name}: sleeping");
        std::thread::sleep(Duration::from_secs(2));
    }
    if std::env::var_os("SNAP_FAILPOINT_WAIT").is_some_and(|v| v == name) {
        wait(name);
    }
}

fn wait(name: &str) {
    let dir = PathBuf::from(std::env::var_os("SNAP_FAILPOINT_DIR").unwrap_or_else(|| ".".into()));
    let file = |suffix: &str| dir.join(format!("{}.{suffix}", name.replace([':', '/'], "-")));
    if let Err(e) = std::fs::write(file("reached"), b"") {
        eprintln!("snap: failpoint {name}: cannot signal arrival: {e}; aborting");
        std::process::abort();
    }
    eprintln!("snap: failpoint {name}: waiting");
    let start = Instant::now();
    while !file("go").exists() {
        if start.elapsed() > Duration::from_secs(120) {
            eprintln!("snap: failpoint {name}: no go-ahead in two minutes; aborting");
            std::process::abort();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
