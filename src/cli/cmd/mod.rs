//! One module per verb.

pub mod best;
pub mod cat;
pub mod check;
pub mod clone;
pub mod commit;
pub mod completions;
pub mod diff;
pub mod forget;
pub mod import_zip;
pub mod init;
pub mod locate;
pub mod log;
pub mod man;
pub mod metrics;
pub mod note;
pub mod prune;
pub mod pull;
pub mod push;
pub mod reindex;
pub mod remote;
pub mod restore;
pub mod run;
pub mod show;
pub mod stats;
pub mod tag;
pub mod ui;
