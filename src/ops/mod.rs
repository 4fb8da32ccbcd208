//! Use cases, one module each. They receive the repository pieces they need,
//! the time, and a progress sink; they never print. Repository files are
//! reached only through `store` (by id, never by path).

pub mod cat;
pub mod check;
pub mod checkpoint;
pub mod commit;
pub mod confdiff;
pub mod diff;
pub mod filediff;
pub mod forget;
pub mod import;
pub mod inspect;
pub mod metrics;
pub mod pathspec;
pub mod prune;
pub mod remote;
pub mod repair;
pub mod resolve;
pub mod restore;
pub mod retention;
pub mod show;
pub mod stats;
pub mod suggest;
pub mod walk;
