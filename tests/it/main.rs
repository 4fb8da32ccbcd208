//! The integration suite: one binary that drives the real `snap` binary on
//! real files in temporary directories, one module per area. Test data comes
//! from seeded generators (`util::Rng`), so every run sees the same bytes and
//! the same chunk boundaries.

mod util;

mod checkpoint;
mod cli_errors;
mod compare;
mod concurrency;
mod corruption;
mod crash;
mod dedup;
mod delta;
mod diskfull;
mod escape;
mod hostile;
mod import;
mod index;
mod keep;
mod paths;
mod powerloss;
mod prune;
mod pt;
mod records;
mod reindex;
mod remote;
mod remote_cloud;
mod remote_profile;
mod remote_prune;
mod remote_push;
mod remote_run;
mod repair;
mod restore;
mod restore_target;
mod retention;
mod revs;
mod roundtrip;
mod run;
mod setup;
mod smallfiles;
mod statcache;
mod steps;
mod ui;
mod workspace;
