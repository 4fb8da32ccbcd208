//! The policy's rules as properties over generated snapshot lists.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::format::snapshot::Summary;
use crate::id::TreeId;

const NOW: i64 = 1_000 * DAY_NS;

#[derive(Clone, Copy, Debug)]
enum Kind {
    PreRun,
    Epoch,
    Final,
    NotStarted,
}

fn snap(session: Option<&str>, time_ns: i64, kind: Kind) -> Snapshot {
    let mut labels = BTreeMap::new();
    match kind {
        Kind::PreRun => {
            labels.insert(SIGNAL_LABEL.into(), ARCHIVE_SIGNAL.into());
        }
        Kind::Epoch => {
            labels.insert(SIGNAL_LABEL.into(), "stdout".into());
        }
        Kind::Final => {
            labels.insert(OUTCOME_LABEL.into(), "exited 0".into());
        }
        Kind::NotStarted => {
            labels.insert(OUTCOME_LABEL.into(), "could not start".into());
            labels.insert(STARTED_LABEL.into(), "false".into());
        }
    }
    Snapshot {
        time_ns,
        host: "h".into(),
        workspace: "/w".into(),
        paths: vec![],
        session: session.map(str::to_string),
        epoch: matches!(kind, Kind::Epoch).then_some(1),
        step: None,
        metrics: BTreeMap::new(),
        message: None,
        labels,
        parent: None,
        root: TreeId([0; 32]),
        summary: Summary::default(),
    }
}

fn id(n: u8) -> SnapshotId {
    SnapshotId([n; 32])
}

fn kept(d: &[Decision]) -> Vec<u8> {
    d.iter().filter(|d| d.keep).map(|d| d.id.0[0]).collect()
}

/// `runs` sessions run0.. of a pre-run, `epochs` epochs and a final, in time order.
fn runs(runs: u8, epochs: u8) -> Vec<(SnapshotId, Snapshot)> {
    let mut v = Vec::new();
    let mut n = 0u8;
    for r in 0..runs {
        let name = format!("run{r}");
        for e in 0..epochs + 2 {
            n += 1;
            let kind = match e {
                0 => Kind::PreRun,
                e if e == epochs + 1 => Kind::Final,
                _ => Kind::Epoch,
            };
            v.push((id(n), snap(Some(&name), NOW - 500 + n as i64, kind)));
        }
    }
    v
}

#[test]
fn default_keeps_pre_run_final_best_and_last_five_epochs_of_five_sessions() {
    // Seven runs of a pre-run, 7 epochs and a final (9 snapshots each).
    let snaps = runs(7, 7);
    let tags = vec![("run6/best".to_string(), id(56)), ("keep".into(), id(2))];
    let d = plan(
        &snaps,
        &tags,
        &HashSet::new(),
        None,
        &Policy::default(),
        NOW,
    )
    .unwrap();
    let mut want = vec![2];
    for r in 2..7u8 {
        let base = r * 9;
        want.push(base + 1); // pre-run
        want.extend(base + 4..=base + 9); // epochs 3..7 and the final
    }
    want.push(56);
    want.sort();
    want.dedup();
    assert_eq!(kept(&d), want);
    let why = |n: u8| d.iter().find(|d| d.id == id(n)).unwrap().reasons.clone();
    assert_eq!(
        why(21),
        vec![Reason::OlderEpoch {
            rank: 5,
            position: 6
        }]
    );
    assert_eq!(why(1), vec![Reason::OldSession { rank: 7 }]);
}

#[test]
fn a_run_keeps_its_own_pre_run_final_and_best_whatever_the_policy() {
    let snaps = runs(1, 8);
    let tags = vec![("run0/best".to_string(), id(2))];
    let none = Policy {
        keep_sessions: 0,
        keep_epochs: 0,
        keep_per_session: 0,
        keep_tags: vec![],
        ..Policy::default()
    };
    let d = plan(&snaps, &tags, &HashSet::new(), Some("run0"), &none, NOW).unwrap();
    assert_eq!(kept(&d), vec![1, 2, 10]);
    // Without `this_run` the same policy forgets them all.
    let d = plan(&snaps, &tags, &HashSet::new(), None, &none, NOW).unwrap();
    assert_eq!(kept(&d), Vec::<u8>::new());
}

#[test]
fn plain_commits_are_one_group_and_never_push_sessions_out() {
    let mut snaps = runs(5, 1);
    // Twelve plain commits after the runs: 100 days old and newer.
    for i in 0..12u8 {
        let t = NOW - (100 - i as i64 * 7) * DAY_NS;
        snaps.push((id(100 + i), snap(None, t, Kind::Epoch)));
    }
    let d = plan(&snaps, &[], &HashSet::new(), None, &Policy::default(), NOW).unwrap();
    let k = kept(&d);
    // Every run snapshot is kept.
    assert!((1..=15).all(|n| k.contains(&n)), "{k:?}");
    // The two oldest plain commits are beyond the newest 10 and 30 days.
    assert!(!k.contains(&100) && !k.contains(&101));
    assert!((102..112).all(|n| k.contains(&n)));
}

#[test]
fn a_run_that_did_not_start_is_no_session() {
    let mut snaps = runs(5, 1);
    snaps.push((id(50), snap(Some("typo"), NOW - 10, Kind::PreRun)));
    snaps.push((id(51), snap(Some("typo"), NOW - 9, Kind::NotStarted)));
    let p = Policy {
        keep_commits: 1,
        keep_commits_within_ns: None,
        ..Policy::default()
    };
    let d = plan(&snaps, &[], &HashSet::new(), None, &p, NOW).unwrap();
    let k = kept(&d);
    // run0 stays one of the five most recent training sessions.
    assert!(k.contains(&1) && k.contains(&3), "{k:?}");
    // The failed run is two plain commits: the newest is kept.
    assert!(k.contains(&51) && !k.contains(&50));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("2h").unwrap(), 7_200_000_000_000);
    assert!(parse_duration("2").is_err());
    assert!(parse_duration("h").is_err());
    assert!(parse_duration("3y").is_err());
    assert_eq!(show_duration(Some(30 * DAY_NS)), "30d");
}

fn arb_snaps() -> impl Strategy<Value = Vec<(SnapshotId, Snapshot)>> {
    prop::collection::vec(
        (
            any::<[u8; 32]>(),
            prop::option::of(0u8..6),
            0i64..(60 * DAY_NS),
            0u8..4,
        ),
        0..40,
    )
    .prop_map(|v| {
        let mut seen = HashSet::new();
        v.into_iter()
            .filter(|(i, ..)| seen.insert(*i))
            .map(|(i, s, t, k)| {
                let kind = [Kind::PreRun, Kind::Epoch, Kind::Epoch, Kind::Final][k as usize];
                let session = s.map(|s| format!("s{s}"));
                (SnapshotId(i), snap(session.as_deref(), NOW - t, kind))
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (0usize..7, 0usize..4, 0usize..3, 0usize..12, any::<bool>()).prop_map(
        |(keep_sessions, keep_epochs, keep_per_session, keep_commits, within)| Policy {
            keep_sessions,
            keep_epochs,
            keep_per_session,
            keep_commits,
            keep_commits_within_ns: within.then_some(30 * DAY_NS),
            ..Policy::default()
        },
    )
}

/// Training sessions, most recent first.
fn sessions_by_recency(snaps: &[(SnapshotId, Snapshot)]) -> Vec<String> {
    let mut newest: BTreeMap<String, (i64, SnapshotId)> = BTreeMap::new();
    for (i, s) in snaps {
        if let Some(name) = &s.session {
            let e = newest.entry(name.clone()).or_insert((s.time_ns, *i));
            *e = (*e).max((s.time_ns, *i));
        }
    }
    let mut v: Vec<(String, (i64, SnapshotId))> = newest.into_iter().collect();
    v.sort_by_key(|(_, h)| Reverse(*h));
    v.into_iter().map(|(n, _)| n).collect()
}

fn is_kept(d: &[Decision], id: &SnapshotId) -> bool {
    d.iter()
        .find(|x| x.id == *id)
        .expect("one decision each")
        .keep
}

proptest! {
    #[test]
    fn policy_properties(
        snaps in arb_snaps(),
        tag_picks in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        policy in arb_policy(),
        rotate in any::<prop::sample::Index>(),
    ) {
        let mut tags: Vec<(String, SnapshotId)> = Vec::new();
        if !snaps.is_empty() {
            for (i, p) in tag_picks.iter().enumerate() {
                tags.push((format!("t{i}"), snaps[p.index(snaps.len())].0));
            }
        }
        let d = plan(&snaps, &tags, &HashSet::new(), None, &policy, NOW).unwrap();
        prop_assert_eq!(d.len(), snaps.len());
        // A tagged snapshot is never forgotten.
        for (_, t) in &tags {
            prop_assert!(is_kept(&d, t));
        }
        // Rule 2: the keep_sessions most recent sessions keep their pre-run,
        // final and last keep_epochs epoch snapshots.
        for name in sessions_by_recency(&snaps).iter().take(policy.keep_sessions) {
            let mut steps: Vec<&(SnapshotId, Snapshot)> = snaps
                .iter()
                .filter(|(_, s)| s.session.as_ref() == Some(name) && role(s) == Role::Step)
                .collect();
            steps.sort_by_key(|(i, s)| Reverse((s.time_ns, *i)));
            for (i, _) in steps.iter().take(policy.keep_epochs) {
                prop_assert!(is_kept(&d, i));
            }
            for (i, s) in &snaps {
                if s.session.as_ref() == Some(name) && role(s) != Role::Step {
                    prop_assert!(is_kept(&d, i));
                }
            }
        }
        // Rule 3: beyond keep_sessions only tagged snapshots stay.
        for name in sessions_by_recency(&snaps).iter().skip(policy.keep_sessions) {
            for (i, s) in &snaps {
                if s.session.as_ref() == Some(name) {
                    prop_assert_eq!(is_kept(&d, i), tags.iter().any(|(_, t)| t == i));
                }
            }
        }
        // The result never depends on input order.
        let mut shuffled = snaps.clone();
        if !shuffled.is_empty() {
            let k = rotate.index(shuffled.len());
            shuffled.rotate_left(k);
            shuffled.reverse();
        }
        prop_assert_eq!(plan(&shuffled, &tags, &HashSet::new(), None, &policy, NOW).unwrap(), d);
    }

    /// Rule 1: whatever the policy and the other sessions, the run applying
    /// retention keeps its pre-run, final and best snapshots.
    #[test]
    fn a_run_never_forgets_its_own(
        snaps in arb_snaps(),
        policy in arb_policy(),
        best in any::<prop::sample::Index>(),
        narrow_tags in any::<bool>(),
    ) {
        let mut policy = policy;
        if narrow_tags {
            policy.keep_tags = vec![];
        }
        let mine: Vec<&(SnapshotId, Snapshot)> =
            snaps.iter().filter(|(_, s)| s.session.as_deref() == Some("s0")).collect();
        let tags: Vec<(String, SnapshotId)> = if mine.is_empty() {
            vec![]
        } else {
            vec![("s0/best".into(), mine[best.index(mine.len())].0)]
        };
        let d = plan(&snaps, &tags, &HashSet::new(), Some("s0"), &policy, NOW).unwrap();
        for (i, s) in &mine {
            if role(s) != Role::Step || tags.iter().any(|(_, t)| t == i) {
                prop_assert!(is_kept(&d, i));
            }
        }
    }

    /// Rule 4: plain commits never change what happens to training sessions,
    /// and the newest keep_commits of them are kept.
    #[test]
    fn plain_commits_never_push_sessions_out(
        snaps in arb_snaps(),
        policy in arb_policy(),
        plain in prop::collection::vec((any::<[u8; 32]>(), 0i64..(90 * DAY_NS)), 0..20),
    ) {
        let sessions: Vec<(SnapshotId, Snapshot)> =
            snaps.into_iter().filter(|(_, s)| s.session.is_some()).collect();
        let before = plan(&sessions, &[], &HashSet::new(), None, &policy, NOW).unwrap();
        let mut all = sessions.clone();
        let known: HashSet<SnapshotId> = all.iter().map(|(i, _)| *i).collect();
        for (i, t) in plain {
            if !known.contains(&SnapshotId(i)) && all.iter().all(|(x, _)| x.0 != i) {
                all.push((SnapshotId(i), snap(None, NOW - t, Kind::Epoch)));
            }
        }
        let after = plan(&all, &[], &HashSet::new(), None, &policy, NOW).unwrap();
        for b in &before {
            prop_assert_eq!(after.iter().find(|a| a.id == b.id).unwrap(), b);
        }
        let mut plain: Vec<&(SnapshotId, Snapshot)> =
            all.iter().filter(|(_, s)| s.session.is_none()).collect();
        plain.sort_by_key(|(i, s)| Reverse((s.time_ns, *i)));
        for (n, (i, s)) in plain.iter().enumerate() {
            let young = policy.keep_commits_within_ns.is_some_and(|w| NOW - s.time_ns <= w);
            prop_assert_eq!(is_kept(&after, i), n < policy.keep_commits || young);
        }
    }
}
