//! Crash injection for tests: `SNAP_FAILPOINT=NAME` makes the process abort
//! (no destructors, no flushing, like `kill -9`) when it reaches the point
//! `NAME`. Points sit between the steps of every durability sequence, so the
//! tests can crash a commit or a prune at each step and check that nothing
//! already stored is lost. `SNAP_FAILPOINT_SLEEP=NAME` pauses there for two
//! seconds instead, so a test can send a signal at that step. Costs two
//! environment lookups per point.

use std::time::Duration;

/// Aborts the process if `SNAP_FAILPOINT` names this point; sleeps if
/// `SNAP_FAILPOINT_SLEEP` does.
pub fn hit(name: &str) {
    if std::env::var_os("SNAP_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("snap: failpoint {name}: aborting");
        std::process::abort();
    }
    if std::env::var_os("SNAP_FAILPOINT_SLEEP").is_some_and(|v| v == name) {
        eprintln!("snap: failpoint {name}: sleeping");
        std::thread::sleep(Duration::from_secs(2));
    }
}
