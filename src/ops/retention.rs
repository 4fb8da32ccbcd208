//! The retention policy: a pure function from the snapshot list to a
//! keep/forget decision with reasons for every snapshot. No I/O, no clock:
//! time comes in as `now_ns`, running sessions as a set, so the policy is
//! easy to test and to print with `--dry-run`.
//!
//! A session is one training run: the snapshots that share a session id.
//! A snapshot without a session id is a session of its own. Sessions are
//! ranked by their newest snapshot (ties broken by id, so the result never
//! depends on input order).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;

#[derive(Clone, Debug)]
pub struct Policy {
    /// Keep the last snapshots of this many most recent sessions.
    pub keep_sessions: usize,
    /// How many of the newest snapshots to keep in each of those sessions.
    pub keep_per_session: usize,
    /// Keep snapshots with a tag matching any of these globs.
    pub keep_tags: Vec<String>,
    /// Keep every snapshot younger than this many nanoseconds.
    pub keep_within_ns: Option<i64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_sessions: 5,
            keep_per_session: 1,
            keep_tags: vec!["*".into()],
            keep_within_ns: None,
        }
    }
}

/// Label of a `snap run` archive snapshot taken before `--clean` emptied
/// directories: the only copy of what was deleted, kept while its session is.
pub const CLEANED_LABEL: &str = "cleaned";

/// Why a snapshot is kept or forgotten.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Reason {
    Tagged(String),
    RunningSession,
    RecentSession {
        rank: usize,
        position: usize,
    },
    /// The pre-run archive of a kept session that emptied directories.
    CleanedArchive,
    Within,
    /// Forgotten: older than the kept snapshots of its session.
    OlderInSession,
    /// Forgotten: its session is not among the most recent.
    OldSession {
        rank: usize,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Tagged(t) => write!(f, "tagged {t}"),
            Reason::RunningSession => write!(f, "session still running"),
            Reason::RecentSession { rank, position } => {
                write!(
                    f,
                    "session #{rank} most recent, its snapshot #{position} newest"
                )
            }
            Reason::Within => write!(f, "within --keep-within"),
            Reason::CleanedArchive => {
                write!(f, "archive of what --clean deleted, in a kept session")
            }
            Reason::OlderInSession => write!(f, "older snapshot of a kept session"),
            Reason::OldSession { rank } => {
                write!(f, "session #{rank} most recent is beyond --keep-sessions")
            }
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

/// The session key of a snapshot: its session id, or its own id.
fn session_key(id: &SnapshotId, s: &Snapshot) -> String {
    match &s.session {
        Some(name) => format!("s:{name}"),
        None => format!("x:{}", id.to_hex()),
    }
}

/// Decides, for every snapshot, whether the policy keeps it. The output is
/// sorted by snapshot id.
pub fn plan(
    snapshots: &[(SnapshotId, Snapshot)],
    tags: &[(String, SnapshotId)],
    running: &HashSet<String>,
    policy: &Policy,
    now_ns: i64,
) -> Result<Vec<Decision>> {
    let tag_globs = globs(&policy.keep_tags)?;
    // Sessions, each with its snapshots newest first.
    let mut sessions: BTreeMap<String, Vec<(i64, SnapshotId)>> = BTreeMap::new();
    for (id, s) in snapshots {
        sessions
            .entry(session_key(id, s))
            .or_default()
            .push((s.time_ns, *id));
    }
    for list in sessions.values_mut() {
        list.sort_by_key(|&(t, id)| Reverse((t, id)));
    }
    let mut ranked: Vec<(&String, (i64, SnapshotId))> =
        sessions.iter().map(|(k, v)| (k, v[0])).collect();
    ranked.sort_by_key(|&(_, newest)| Reverse(newest));
    let rank_of: BTreeMap<&String, usize> = ranked
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, i + 1))
        .collect();

    let mut out: Vec<Decision> = snapshots
        .iter()
        .map(|(id, s)| {
            let key = session_key(id, s);
            let rank = rank_of[&key];
            let position = sessions[&key]
                .iter()
                .position(|(_, i)| i == id)
                .expect("listed above")
                + 1;
            let mut keep = Vec::new();
            for (name, _) in tags.iter().filter(|(_, t)| t == id) {
                if tag_globs.is_match(name) {
                    keep.push(Reason::Tagged(name.clone()));
                }
            }
            if s.session
                .as_ref()
                .is_some_and(|name| running.contains(name))
            {
                keep.push(Reason::RunningSession);
            }
            if rank <= policy.keep_sessions && position <= policy.keep_per_session {
                keep.push(Reason::RecentSession { rank, position });
            }
            if rank <= policy.keep_sessions && s.labels.contains_key(CLEANED_LABEL) {
                keep.push(Reason::CleanedArchive);
            }
            if policy
                .keep_within_ns
                .is_some_and(|w| now_ns.saturating_sub(s.time_ns) <= w)
            {
                keep.push(Reason::Within);
            }
            if keep.is_empty() {
                let why = if rank <= policy.keep_sessions {
                    Reason::OlderInSession
                } else {
                    Reason::OldSession { rank }
                };
                Decision {
                    id: *id,
                    keep: false,
                    reasons: vec![why],
                }
            } else {
                Decision {
                    id: *id,
                    keep: true,
                    reasons: keep,
                }
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
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::format::snapshot::Summary;
    use crate::id::TreeId;

    fn snap(session: Option<&str>, time_ns: i64) -> Snapshot {
        Snapshot {
            time_ns,
            host: "h".into(),
            workspace: "/w".into(),
            paths: vec![],
            session: session.map(str::to_string),
            epoch: None,
            step: None,
            metrics: BTreeMap::new(),
            message: None,
            labels: BTreeMap::new(),
            parent: None,
            root: TreeId([0; 32]),
            summary: Summary::default(),
        }
    }

    fn id(n: u8) -> SnapshotId {
        SnapshotId([n; 32])
    }

    #[test]
    fn default_keeps_last_of_five_sessions_and_tags() {
        // Seven sessions of three snapshots each, times increasing.
        let mut snaps = Vec::new();
        for s in 0..7u8 {
            for e in 0..3u8 {
                let n = s * 3 + e + 1;
                snaps.push((id(n), snap(Some(&format!("run{s}")), n as i64)));
            }
        }
        let tags = vec![("best".to_string(), id(2))];
        let d = plan(&snaps, &tags, &HashSet::new(), &Policy::default(), 100).unwrap();
        let kept: Vec<u8> = d.iter().filter(|d| d.keep).map(|d| d.id.0[0]).collect();
        // last of run2..run6 (ids 9, 12, 15, 18, 21) and the tagged id 2
        assert_eq!(kept, vec![2, 9, 12, 15, 18, 21]);
        let running: HashSet<String> = ["run0".to_string()].into();
        let d = plan(&snaps, &tags, &running, &Policy::default(), 100).unwrap();
        assert!(d.iter().filter(|d| d.id.0[0] <= 3).all(|d| d.keep));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h").unwrap(), 7_200_000_000_000);
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("3y").is_err());
    }

    fn arb_snaps() -> impl Strategy<Value = Vec<(SnapshotId, Snapshot)>> {
        prop::collection::vec(
            (any::<[u8; 32]>(), prop::option::of(0u8..6), 0i64..50),
            0..30,
        )
        .prop_map(|v| {
            let mut seen = HashSet::new();
            v.into_iter()
                .filter(|(i, _, _)| seen.insert(*i))
                .map(|(i, s, t)| {
                    (
                        SnapshotId(i),
                        snap(s.map(|s| format!("s{s}")).as_deref(), t),
                    )
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn policy_properties(
            snaps in arb_snaps(),
            tag_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            keep_sessions in 0usize..7,
            keep_per_session in 1usize..3,
            rotate in any::<prop::sample::Index>(),
        ) {
            let tags: Vec<(String, SnapshotId)> = if snaps.is_empty() { vec![] } else {
                tag_picks.iter().enumerate().map(|(i, p)| (format!("t{i}"), snaps[p.index(snaps.len())].0)).collect()
            };
            let policy = Policy { keep_sessions, keep_per_session, ..Policy::default() };
            let d = plan(&snaps, &tags, &HashSet::new(), &policy, 1000).unwrap();
            prop_assert_eq!(d.len(), snaps.len());
            // A tagged snapshot is never forgotten.
            for (_, t) in &tags {
                prop_assert!(d.iter().find(|x| x.id == *t).unwrap().keep);
            }
            // The newest N sessions always keep their last snapshot.
            let mut newest: BTreeMap<String, (i64, SnapshotId)> = BTreeMap::new();
            for (i, s) in &snaps {
                let k = session_key(i, s);
                let e = newest.entry(k).or_insert((s.time_ns, *i));
                if (s.time_ns, *i) > *e { *e = (s.time_ns, *i); }
            }
            let mut heads: Vec<(i64, SnapshotId)> = newest.into_values().collect();
            heads.sort_by_key(|&h| Reverse(h));
            for (_, head) in heads.iter().take(keep_sessions) {
                prop_assert!(d.iter().find(|x| x.id == *head).unwrap().keep);
            }
            // The result never depends on input order.
            let mut shuffled = snaps.clone();
            if !shuffled.is_empty() {
                let k = rotate.index(shuffled.len());
                shuffled.rotate_left(k);
                shuffled.reverse();
            }
            prop_assert_eq!(plan(&shuffled, &tags, &HashSet::new(), &policy, 1000).unwrap(), d);
        }
    }
}
