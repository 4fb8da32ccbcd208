//! Crash injection for tests: `SNAP_FAILPOINT=NAME` makes the process abort
//! (no destructors, no flushing, like `kill -9`) when it reaches the point
//! `NAME`. Points sit between the steps of every durability sequence, so the
//! tests can crash a commit or a prune at each step and check that nothing
//! already stored is lost. Costs one environment lookup per point.

/// Aborts the process if `SNAP_FAILPOINT` names this point.
pub fn hit(name: &str) {
    if std::env::var_os("SNAP_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("snap: failpoint {name}: aborting");
        std::process::abort();
    }
}
