//! Whether a run's best snapshot takes over the repository-wide `best` tag:
//! only when it beats the snapshot `best` names now, on the same metric and
//! direction. A trivial test run with another metric, or a worse value,
//! leaves `best` where it is (it keeps `SESSION/best`). Pure: decided from
//! the log.

use super::signals::{improves, Direction};
use super::BEST_METRIC_LABEL;
use crate::repo::LogEntry;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Move,
    /// `best` stays; why, in words.
    Keep(String),
}

/// `spec` is this run's `--best` as labelled (`val_loss:min`); `value` its
/// session's best value of `metric`.
pub fn decide(
    log: &[LogEntry],
    session: &str,
    spec: &str,
    dir: Direction,
    metric: &str,
    value: f64,
) -> Verdict {
    let Some(current) = log.iter().find(|e| e.tags.iter().any(|t| t == "best")) else {
        return Verdict::Move;
    };
    let theirs = current.snapshot.session.as_deref();
    if theirs == Some(session) {
        return Verdict::Move;
    }
    let at = match theirs {
        Some(name) => format!("{} (session {name})", current.id.short()),
        None => current.id.short(),
    };
    // The metric and direction the current best was chosen on, if a run chose it.
    let chosen_on = theirs.and_then(|name| {
        log.iter()
            .filter(|e| e.snapshot.session.as_deref() == Some(name))
            .find_map(|e| e.snapshot.labels.get(BEST_METRIC_LABEL))
    });
    if let Some(other) = chosen_on.filter(|c| c.as_str() != spec) {
        return Verdict::Keep(format!(
            "it names {at}, chosen on {other}, and this run ranks by {spec}"
        ));
    }
    match current.snapshot.metrics.get(metric) {
        None => Verdict::Keep(format!("it names {at}, which has no {metric}")),
        Some(&theirs) if improves(dir, value, Some(theirs)) => Verdict::Move,
        Some(&theirs) => Verdict::Keep(format!("{metric} = {theirs} at {at} is at least as good")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::format::snapshot::{Snapshot, Summary};
    use crate::id::{SnapshotId, TreeId};

    fn entry(
        n: u8,
        session: &str,
        loss: Option<f64>,
        labels: &[(&str, &str)],
        tags: &[&str],
    ) -> LogEntry {
        LogEntry {
            id: SnapshotId([n; 32]),
            snapshot: Snapshot {
                time_ns: n as i64,
                host: "h".into(),
                workspace: "/w".into(),
                paths: vec![],
                session: Some(session.into()),
                epoch: None,
                step: None,
                metrics: loss
                    .map(|l| ("val_loss".to_string(), l))
                    .into_iter()
                    .collect(),
                message: None,
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
                parent: None,
                root: TreeId([0; 32]),
                summary: Summary::default(),
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn decide_min(log: &[LogEntry], value: f64) -> Verdict {
        decide(
            log,
            "new",
            "val_loss:min",
            Direction::Min,
            "val_loss",
            value,
        )
    }

    #[test]
    fn moves_only_when_it_beats_the_current_best_on_the_same_metric() {
        let spec = [(BEST_METRIC_LABEL, "val_loss:min")];
        let log = vec![entry(1, "old", Some(0.3), &spec, &["best"])];
        assert_eq!(decide_min(&log, 0.2), Verdict::Move);
        assert!(matches!(decide_min(&log, 0.3), Verdict::Keep(_)));
        assert!(matches!(decide_min(&log, 0.9), Verdict::Keep(_)));
        // No best yet, or best already in this session: move.
        assert_eq!(decide_min(&[], 0.9), Verdict::Move);
        let mine = vec![entry(2, "new", Some(0.5), &spec, &["best"])];
        assert_eq!(decide_min(&mine, 0.4), Verdict::Move);
        // Chosen on another metric or direction, or without the metric: stays.
        let acc = vec![entry(
            3,
            "old",
            Some(0.3),
            &[(BEST_METRIC_LABEL, "val_loss:max")],
            &["best"],
        )];
        assert!(matches!(decide_min(&acc, 0.01), Verdict::Keep(w) if w.contains("val_loss:max")));
        let none = vec![entry(4, "old", None, &[], &["best"])];
        assert!(matches!(decide_min(&none, 0.01), Verdict::Keep(w) if w.contains("no val_loss")));
    }
}
