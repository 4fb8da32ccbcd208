//! One module per verb.

pub mod cat;
pub mod check;
pub mod commit;
pub mod completions;
pub mod diff;
pub mod forget;
pub mod import_zip;
pub mod init;
pub mod locate;
pub mod log;
pub mod man;
pub mod prune;
pub mod reindex;
pub mod restore;
pub mod run;
pub mod show;
pub mod stats;
pub mod tag;
