//! The retention policy: a pure function from the snapshot list to a
//! keep/forget decision with reasons for every snapshot. No I/O, no clock:
//! time comes in as `now_ns`, running sessions as a set, the run applying
//! retention (if any) by name, so the policy is easy to test and to print
//! with `--dry-run`.
//!
//! Snapshots fall into groups:
//! - **Training sessions**: snapshots sharing a session id (a `snap run`, or
//!   a manual series of `snap commit --session`). Ranked by their newest
//!   snapshot; the `keep_sessions` most recent keep their pre-run snapshot
//!   (label `signal=archive`), their final snapshot (label `outcome`), their
//!   `SESSION/best`, their last `keep_epochs` other snapshots and their
//!   newest `keep_per_session`. Older sessions keep only tagged snapshots.
//! - **Plain commits**: snapshots without a session, and the snapshots of a
//!   run whose command could not be started (label `started=false`). One
//!   group, never a session each, so they never push training sessions out:
//!   the newest `keep_commits` plus all younger than `keep_commits_within`.
//! - **Imported archives** (`snap import-zip`, label `imported_from`): the
//!   user brought them in on purpose, so they are kept.
//!
//! Always kept: tagged snapshots (tags matching `keep_tags`), every snapshot
//! of a running session, snapshots younger than `keep_within`, and the pre-run,
//! final and best snapshots of the run applying retention. Ties in time are
//! broken by id, so the result never depends on input order.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::workspace::RetentionConfig;

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Most recent training sessions whose pre-run, final, best and last
    /// epochs are kept.
    pub keep_sessions: usize,
    /// Epoch (and other mid-run) snapshots kept in each of those sessions.
    pub keep_epochs: usize,
    /// Newest snapshots of each kept session kept whatever their kind (the
    /// head of a manual series of `snap commit --session`).
    pub keep_per_session: usize,
    /// Newest plain commits (no session) kept.
    pub keep_commits: usize,
    /// Plain commits younger than this many nanoseconds are kept.
    pub keep_commits_within_ns: Option<i64>,
    /// Keep snapshots with a tag matching any of these globs.
    pub keep_tags: Vec<String>,
    /// Keep every snapshot younger than this many nanoseconds.
    pub keep_within_ns: Option<i64>,
}

const DAY_NS: i64 = 86_400 * 1_000_000_000;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_sessions: 5,
            keep_epochs: 5,
            keep_per_session: 1,
            keep_commits: 10,
            keep_commits_within_ns: Some(30 * DAY_NS),
            keep_tags: vec!["*".into()],
            keep_within_ns: None,
        }
    }
}

impl Policy {
    /// The defaults, overridden by `snap.toml`'s `[retention]` keys.
    pub fn from_config(cfg: &RetentionConfig) -> Result<Policy> {
        let d = Policy::default();
        let within = |key: &str, v: &Option<String>, default: Option<i64>| match v.as_deref() {
            None => Ok(default),
            Some("") | Some("0") | Some("none") => Ok(None),
            Some(s) => parse_duration(s)
                .map(Some)
                .map_err(|e| Error::invalid("retention setting", key, e.to_string())),
        };
        Ok(Policy {
            keep_sessions: cfg.keep_sessions.unwrap_or(d.keep_sessions),
            keep_epochs: cfg.keep_epochs.unwrap_or(d.keep_epochs),
            keep_per_session: cfg.keep_per_session.unwrap_or(d.keep_per_session),
            keep_commits: cfg.keep_commits.unwrap_or(d.keep_commits),
            keep_commits_within_ns: within(
                "keep_commits_within",
                &cfg.keep_commits_within,
                d.keep_commits_within_ns,
            )?,
            keep_tags: cfg.keep_tags.clone().unwrap_or(d.keep_tags),
            keep_within_ns: within("keep_within", &cfg.keep_within, d.keep_within_ns)?,
        })
    }
}

/// Label of a `snap run` archive snapshot taken before `--clean` emptied
/// directories: the only copy of what was deleted, kept while its session is.
pub const CLEANED_LABEL: &str = "cleaned";
/// Label `signal=archive`: the pre-run snapshot of a `snap run`.
pub const SIGNAL_LABEL: &str = "signal";
pub const ARCHIVE_SIGNAL: &str = "archive";
/// Label of a run's final snapshot: how the command ended.
pub const OUTCOME_LABEL: &str = "outcome";
/// Label `started=false`: the run's command could not be started.
pub const STARTED_LABEL: &str = "started";
/// Label of an imported zip archive.
pub const IMPORTED_LABEL: &str = "imported_from";

/// Why a snapshot is kept or forgotten.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Reason {
    Tagged(String),
    RunningSession,
    /// The run applying retention: its pre-run, final or best snapshot.
    ThisRun(&'static str),
    /// The pre-run snapshot of one of the most recent sessions.
    PreRun {
        rank: usize,
    },
    /// The final snapshot of one of the most recent sessions.
    Final {
        rank: usize,
    },
    /// Tagged `SESSION/best` in one of the most recent sessions.
    SessionBest {
        rank: usize,
    },
    /// Among the last `keep_epochs` snapshots of a recent session.
    RecentEpoch {
        rank: usize,
        position: usize,
    },
    /// Among the newest `keep_per_session` snapshots of a recent session.
    RecentSession {
        rank: usize,
        position: usize,
    },
    /// The pre-run archive of a kept session that emptied directories.
    CleanedArchive,
    /// A plain commit among the newest `keep_commits`.
    RecentCommit {
        position: usize,
    },
    /// A plain commit younger than `keep_commits_within`.
    CommitWithin,
    Imported,
    Within,
    /// Forgotten: a snapshot of a recent session beyond its last `keep_epochs`.
    OlderEpoch {
        rank: usize,
        position: usize,
    },
    /// Forgotten: its session is not among the most recent.
    OldSession {
        rank: usize,
    },
    /// Forgotten: a plain commit beyond the newest `keep_commits` and older
    /// than `keep_commits_within`.
    OldCommit {
        position: usize,
    },
}

impl Reason {
    /// The setting that made this decision, as `snap.toml` spells it.
    pub fn rule(&self, p: &Policy) -> String {
        match self {
            Reason::Tagged(_) => format!("keep_tags = {:?}", p.keep_tags),
            Reason::RunningSession => "running sessions are kept".into(),
            Reason::ThisRun(_) => "a run never forgets its own pre-run, best and final".into(),
            Reason::PreRun { .. }
            | Reason::Final { .. }
            | Reason::SessionBest { .. }
            | Reason::CleanedArchive
            | Reason::OldSession { .. } => format!("keep_sessions = {}", p.keep_sessions),
            Reason::RecentEpoch { .. } | Reason::OlderEpoch { .. } => {
                format!("keep_epochs = {}", p.keep_epochs)
            }
            Reason::RecentSession { .. } => format!("keep_per_session = {}", p.keep_per_session),
            Reason::RecentCommit { .. } | Reason::CommitWithin | Reason::OldCommit { .. } => {
                format!(
                    "keep_commits = {}, keep_commits_within = {}",
                    p.keep_commits,
                    show_duration(p.keep_commits_within_ns)
                )
            }
            Reason::Imported => "imported archives are kept".into(),
            Reason::Within => format!("keep_within = {}", show_duration(p.keep_within_ns)),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Tagged(t) => write!(f, "tagged {t}"),
            Reason::RunningSession => write!(f, "session still running"),
            Reason::ThisRun(what) => write!(f, "this run's {what}"),
            Reason::PreRun { rank } => write!(f, "pre-run snapshot of session #{rank}"),
            Reason::Final { rank } => write!(f, "final snapshot of session #{rank}"),
            Reason::SessionBest { rank } => write!(f, "best of session #{rank}"),
            Reason::RecentEpoch { rank, position } => {
                write!(f, "epoch snapshot #{position} newest of session #{rank}")
            }
            Reason::RecentSession { rank, position } => {
                write!(f, "snapshot #{position} newest of session #{rank}")
            }
            Reason::CleanedArchive => {
                write!(f, "archive of what --clean deleted, in a kept session")
            }
            Reason::RecentCommit { position } => {
                write!(f, "plain commit #{position} newest")
            }
            Reason::CommitWithin => write!(f, "plain commit within keep_commits_within"),
            Reason::Imported => write!(f, "imported archive"),
            Reason::Within => write!(f, "within keep_within"),
            Reason::OlderEpoch { rank, position } => write!(
                f,
                "epoch snapshot #{position} newest of session #{rank}, beyond keep_epochs"
            ),
            Reason::OldSession { rank } => {
                write!(f, "session #{rank} most recent, beyond keep_sessions")
            }
            Reason::OldCommit { position } => write!(
                f,
                "plain commit #{position} newest, beyond keep_commits and keep_commits_within"
            ),
        }
    }
}

fn show_duration(ns: Option<i64>) -> String {
    match ns {
        None => "none".into(),
        Some(ns) => {
            let s = ns / 1_000_000_000;
            for (unit, len) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
                if s >= len && s % len == 0 {
                    return format!("{}{unit}", s / len);
                }
            }
            format!("{s}s")
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub id: SnapshotId,
    pub keep: bool,
    /// Every reason to keep, or the one reason to forget.
    pub reasons: Vec<Reason>,
}

fn globs(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| Error::invalid("tag pattern", p, e.to_string()))?);
    }
    b.build()
        .map_err(|e| Error::invalid("tag pattern", patterns.join(","), e.to_string()))
}

/// Which group a snapshot belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Session(String),
    Plain,
    Imported,
}

/// What a snapshot is within its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    PreRun,
    Final,
    /// An epoch snapshot, or any other snapshot taken during a session.
    Step,
}

fn role(s: &Snapshot) -> Role {
    if s.labels.get(SIGNAL_LABEL).map(String::as_str) == Some(ARCHIVE_SIGNAL) {
        Role::PreRun
    } else if s.labels.contains_key(OUTCOME_LABEL) {
        Role::Final
    } else {
        Role::Step
    }
}

/// The group of each snapshot. A session any of whose snapshots records
/// that its command could not be started is no session: plain commits.
fn groups(snapshots: &[(SnapshotId, Snapshot)]) -> Vec<Group> {
    let not_started: HashSet<&str> = snapshots
        .iter()
        .filter(|(_, s)| s.labels.get(STARTED_LABEL).map(String::as_str) == Some("false"))
        .filter_map(|(_, s)| s.session.as_deref())
        .collect();
    snapshots
        .iter()
        .map(|(_, s)| match &s.session {
            _ if s.labels.contains_key(IMPORTED_LABEL) => Group::Imported,
            Some(name) if !not_started.contains(name.as_str()) => Group::Session(name.clone()),
            _ => Group::Plain,
        })
        .collect()
}

/// Positions (1 = newest) of the snapshots `which` selects, newest first by
/// (time, id).
fn newest_first(
    snapshots: &[(SnapshotId, Snapshot)],
    which: impl Fn(usize) -> bool,
) -> BTreeMap<&SnapshotId, usize> {
    let mut v: Vec<(i64, &SnapshotId)> = snapshots
        .iter()
        .enumerate()
        .filter(|(i, _)| which(*i))
        .map(|(_, (id, s))| (s.time_ns, id))
        .collect();
    v.sort_by_key(|&(t, id)| Reverse((t, *id)));
    v.into_iter()
        .enumerate()
        .map(|(i, (_, id))| (id, i + 1))
        .collect()
}

/// Decides, for every snapshot, whether the policy keeps it. `this_run` is
/// the session of the `snap run` applying retention, if any. The output is
/// sorted by snapshot id.
pub fn plan(
    snapshots: &[(SnapshotId, Snapshot)],
    tags: &[(String, SnapshotId)],
    running: &HashSet<String>,
    this_run: Option<&str>,
    policy: &Policy,
    now_ns: i64,
) -> Result<Vec<Decision>> {
    let tag_globs = globs(&policy.keep_tags)?;
    let group = groups(snapshots);

    // Training sessions ranked by their newest snapshot.
    let mut newest: BTreeMap<&str, (i64, SnapshotId)> = BTreeMap::new();
    for ((id, s), g) in snapshots.iter().zip(&group) {
        if let Group::Session(name) = g {
            let e = newest.entry(name.as_str()).or_insert((s.time_ns, *id));
            *e = (*e).max((s.time_ns, *id));
        }
    }
    let mut ranked: Vec<(&str, (i64, SnapshotId))> = newest.into_iter().collect();
    ranked.sort_by_key(|&(_, head)| Reverse(head));
    let rank_of: BTreeMap<&str, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (*name, i + 1))
        .collect();

    // Positions within each session (all snapshots, and steps only) and
    // among plain commits.
    let in_session = |name: &str, steps_only: bool| {
        newest_first(snapshots, |i| {
            group[i] == Group::Session(name.to_string())
                && (!steps_only || role(&snapshots[i].1) == Role::Step)
        })
    };
    let mut position: BTreeMap<&str, BTreeMap<&SnapshotId, usize>> = BTreeMap::new();
    let mut step_position: BTreeMap<&str, BTreeMap<&SnapshotId, usize>> = BTreeMap::new();
    for (name, _) in &ranked {
        position.insert(name, in_session(name, false));
        step_position.insert(name, in_session(name, true));
    }
    let plain_position = newest_first(snapshots, |i| group[i] == Group::Plain);

    let mut out: Vec<Decision> = snapshots
        .iter()
        .zip(&group)
        .map(|((id, s), g)| {
            let mut keep = Vec::new();
            let tagged: Vec<&String> = tags
                .iter()
                .filter(|(_, t)| t == id)
                .map(|(n, _)| n)
                .collect();
            for name in &tagged {
                if tag_globs.is_match(name.as_str()) {
                    keep.push(Reason::Tagged((*name).clone()));
                }
            }
            if s.session
                .as_ref()
                .is_some_and(|name| running.contains(name))
            {
                keep.push(Reason::RunningSession);
            }
            if policy
                .keep_within_ns
                .is_some_and(|w| now_ns.saturating_sub(s.time_ns) <= w)
            {
                keep.push(Reason::Within);
            }
            let forget = match g {
                Group::Imported => {
                    keep.push(Reason::Imported);
                    None
                }
                Group::Plain => {
                    let position = plain_position[id];
                    if position <= policy.keep_commits {
                        keep.push(Reason::RecentCommit { position });
                    }
                    if policy
                        .keep_commits_within_ns
                        .is_some_and(|w| now_ns.saturating_sub(s.time_ns) <= w)
                    {
                        keep.push(Reason::CommitWithin);
                    }
                    Some(Reason::OldCommit { position })
                }
                Group::Session(name) => {
                    let rank = rank_of[name.as_str()];
                    let recent = rank <= policy.keep_sessions;
                    let is_best = tagged.iter().any(|t| **t == format!("{name}/best"));
                    let role = role(s);
                    if this_run == Some(name.as_str()) {
                        match role {
                            Role::PreRun => keep.push(Reason::ThisRun("pre-run snapshot")),
                            Role::Final => keep.push(Reason::ThisRun("final snapshot")),
                            Role::Step => {}
                        }
                        if is_best {
                            keep.push(Reason::ThisRun("best"));
                        }
                    }
                    if recent {
                        match role {
                            Role::PreRun => keep.push(Reason::PreRun { rank }),
                            Role::Final => keep.push(Reason::Final { rank }),
                            Role::Step => {}
                        }
                        if is_best {
                            keep.push(Reason::SessionBest { rank });
                        }
                        if s.labels.contains_key(CLEANED_LABEL) {
                            keep.push(Reason::CleanedArchive);
                        }
                        let p = position[name.as_str()][id];
                        if p <= policy.keep_per_session {
                            keep.push(Reason::RecentSession { rank, position: p });
                        }
                    }
                    let step = step_position[name.as_str()].get(id).copied();
                    match step {
                        Some(position)
                            if position <= policy.keep_epochs
                                && (recent || this_run == Some(name.as_str())) =>
                        {
                            keep.push(Reason::RecentEpoch { rank, position });
                            None
                        }
                        Some(position) if recent => Some(Reason::OlderEpoch { rank, position }),
                        _ => Some(Reason::OldSession { rank }),
                    }
                }
            };
            match (keep.is_empty(), forget) {
                (false, _) | (true, None) => Decision {
                    id: *id,
                    keep: true,
                    reasons: keep,
                },
                (true, Some(why)) => Decision {
                    id: *id,
                    keep: false,
                    reasons: vec![why],
                },
            }
        })
        .collect();
    out.sort_by_key(|d| d.id);
    Ok(out)
}

/// Parses durations like `30m`, `12h`, `7d`, `2w` into nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = || {
        Error::invalid(
            "duration",
            s,
            "use a number and a unit: 90s, 30m, 12h, 7d, 2w",
        )
    };
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(secs * 1_000_000_000).ok_or_else(bad)
}

#[cfg(test)]
mod tests;
