//! Metrics across runs: the rows `snap metrics` prints and `snap best` ranks
//! (and `snap ui` charts), one per snapshot that carries a metric, from the
//! stored snapshot records and from the retention journal, so a run's
//! history survives `forget`. Pure: decided from the log and the journal
//! the caller read (`Repo::metrics`, `Repo::best`).
//!
//! Sessions are named as `snap log` names them: by the snapshot's session;
//! snapshots outside any session form the group `NO_SESSION`.
//!
//! Which direction is better (`--best val_loss` minimises) is decided here,
//! once, for `snap run --best` and `snap best` alike (`parse_best`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::journal::Forgotten;
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::ops::suggest;
use crate::repo::LogEntry;

/// How `snap metrics` and `snap best` name the snapshots outside any session.
pub const NO_SESSION: &str = "(no session)";

/// Whether a larger or a smaller value of a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Max,
    Min,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Max => "max",
            Direction::Min => "min",
        }
    }
}

/// `METRIC[:max|min]`. Without a suffix, names that look like a loss or an
/// error (`loss`, `err`, `perplexity`, `ppl`, `mse`, `mae`) are minimised and
/// everything else is maximised.
pub fn parse_best(spec: &str) -> std::result::Result<(String, Direction), String> {
    let (name, dir) = match spec.rsplit_once(':') {
        Some((n, "max")) => (n, Some(Direction::Max)),
        Some((n, "min")) => (n, Some(Direction::Min)),
        Some((_, other)) => return Err(format!("'{other}' must be max or min")),
        None => (spec, None),
    };
    if name.is_empty() {
        return Err("the metric name is empty".into());
    }
    let lower = name.to_ascii_lowercase();
    let guess = if ["loss", "err", "perplexity", "ppl", "mse", "mae"]
        .iter()
        .any(|w| lower.contains(w))
    {
        Direction::Min
    } else {
        Direction::Max
    };
    Ok((name.to_string(), dir.unwrap_or(guess)))
}

/// True if `candidate` is strictly better than `current`.
pub fn improves(dir: Direction, candidate: f64, current: Option<f64>) -> bool {
    match (dir, current) {
        (_, None) => true,
        (Direction::Max, Some(c)) => candidate > c,
        (Direction::Min, Some(c)) => candidate < c,
    }
}

/// One snapshot's metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricRow {
    /// The snapshot id, hex.
    pub id: String,
    /// As `snap log` names it; `NO_SESSION` outside any session.
    pub session: String,
    pub epoch: Option<u64>,
    pub step: Option<u64>,
    pub time_ns: i64,
    /// The selected metrics this snapshot has (all of them when none was
    /// selected).
    pub metrics: BTreeMap<String, f64>,
    /// Still stored (restorable), or only in the retention journal.
    pub stored: bool,
    /// When retention forgot it, Unix nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forgotten_ns: Option<i64>,
    /// Tags naming it now (forgotten: the tags deleted with it).
    pub tags: Vec<String>,
}

/// `snap metrics`: rows per session, oldest first within each session,
/// sessions in the order they started.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MetricsTable {
    pub sessions: Vec<String>,
    /// The metric columns, sorted.
    pub metrics: Vec<String>,
    pub rows: Vec<MetricRow>,
}

fn session_of(s: &Snapshot) -> String {
    s.session.clone().unwrap_or_else(|| NO_SESSION.to_string())
}

fn row(id: &SnapshotId, s: &Snapshot, tags: &[String], forgotten: Option<&Forgotten>) -> MetricRow {
    MetricRow {
        id: id.to_hex(),
        session: session_of(s),
        epoch: s.epoch,
        step: s.step,
        time_ns: s.time_ns,
        metrics: s.metrics.clone(),
        stored: forgotten.is_none(),
        forgotten_ns: forgotten.map(|f| f.forgotten_ns),
        tags: tags.to_vec(),
    }
}

/// Every snapshot with a metric, stored or forgotten, sorted by session
/// start, then epoch, step and time. A journal entry whose snapshot is
/// still stored (a forget that stopped midway) is the stored one.
pub fn all_rows(live: &[LogEntry], forgotten: &[(Forgotten, Snapshot)]) -> Vec<MetricRow> {
    let stored: BTreeSet<SnapshotId> = live.iter().map(|e| e.id).collect();
    let mut rows: Vec<MetricRow> = live
        .iter()
        .map(|e| row(&e.id, &e.snapshot, &e.tags, None))
        .chain(
            forgotten
                .iter()
                .filter(|(f, _)| !stored.contains(&f.id))
                .map(|(f, s)| row(&f.id, s, &f.tags, Some(f))),
        )
        .filter(|r| !r.metrics.is_empty())
        .collect();
    let mut start: BTreeMap<String, i64> = BTreeMap::new();
    for r in &rows {
        let t = start.entry(r.session.clone()).or_insert(r.time_ns);
        *t = (*t).min(r.time_ns);
    }
    rows.sort_by(|a, b| {
        (
            start[&a.session],
            &a.session,
            a.epoch,
            a.step,
            a.time_ns,
            &a.id,
        )
            .cmp(&(
                start[&b.session],
                &b.session,
                b.epoch,
                b.step,
                b.time_ns,
                &b.id,
            ))
    });
    rows
}

fn unknown(what: &'static str, value: &str, known: &BTreeSet<&str>) -> Error {
    let list: Vec<&str> = known.iter().copied().collect();
    let mut why = if list.is_empty() {
        "no snapshot has any metric yet; record them with `snap commit --metric K=V` or `snap run`"
            .to_string()
    } else {
        format!("the {what}s with metrics are: {}", list.join(", "))
    };
    if let Some(line) = suggest::did_you_mean(&suggest::nearest(value, list.iter().copied())) {
        why.push_str(&format!("; {line}"));
    }
    Error::Invalid {
        what,
        value: value.to_string(),
        why,
    }
}

/// The table of `sessions` (empty: every session) and `metrics` (empty:
/// every metric they have). An unknown session or metric is an error that
/// lists what exists.
pub fn table(
    rows: Vec<MetricRow>,
    sessions: &[String],
    metrics: &[String],
) -> Result<MetricsTable> {
    let known: BTreeSet<&str> = rows.iter().map(|r| r.session.as_str()).collect();
    for s in sessions {
        if !known.contains(s.as_str()) {
            return Err(unknown("session", s, &known));
        }
    }
    let mut rows: Vec<MetricRow> = rows
        .into_iter()
        .filter(|r| sessions.is_empty() || sessions.contains(&r.session))
        .collect();
    let have: BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.metrics.keys().map(String::as_str))
        .collect();
    for m in metrics {
        if !have.contains(m.as_str()) {
            return Err(unknown("metric", m, &have));
        }
    }
    let columns: Vec<String> = if metrics.is_empty() {
        have.iter().map(|m| m.to_string()).collect()
    } else {
        let mut seen = BTreeSet::new();
        metrics
            .iter()
            .filter(|m| seen.insert(m.as_str()))
            .cloned()
            .collect()
    };
    if !metrics.is_empty() {
        for r in &mut rows {
            r.metrics.retain(|k, _| columns.contains(k));
        }
        rows.retain(|r| !r.metrics.is_empty());
    }
    let mut order: Vec<String> = Vec::new();
    for r in &rows {
        if order.last() != Some(&r.session) && !order.contains(&r.session) {
            order.push(r.session.clone());
        }
    }
    Ok(MetricsTable {
        sessions: order,
        metrics: columns,
        rows,
    })
}

/// `snap best`: the winning snapshot and how it was chosen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Best {
    pub metric: String,
    pub direction: Direction,
    pub value: f64,
    /// How many snapshots had the metric (within the sessions chosen).
    pub candidates: usize,
    #[serde(flatten)]
    pub row: MetricRow,
}

/// The best snapshot on `metric` in `dir` over the sessions `session_glob`
/// matches (globset syntax; `None`: every session). Ties go to the earliest
/// (the first to reach the value). NaN values never win. An unknown metric,
/// or a glob that matches no session with metrics, is an error naming what
/// exists.
pub fn best(
    rows: &[MetricRow],
    metric: &str,
    dir: Direction,
    session_glob: Option<&str>,
) -> Result<Best> {
    let matcher = session_glob
        .map(|g| {
            globset::Glob::new(g)
                .map(|g| g.compile_matcher())
                .map_err(|e| Error::Invalid {
                    what: "session glob",
                    value: g.to_string(),
                    why: e.kind().to_string(),
                })
        })
        .transpose()?;
    let sessions: BTreeSet<&str> = rows.iter().map(|r| r.session.as_str()).collect();
    let chosen: Vec<&MetricRow> = rows
        .iter()
        .filter(|r| matcher.as_ref().is_none_or(|m| m.is_match(&r.session)))
        .collect();
    if let (Some(g), true) = (session_glob, chosen.is_empty()) {
        return Err(unknown("session glob", g, &sessions));
    }
    let mut winner: Option<(&MetricRow, f64)> = None;
    let mut candidates = 0;
    for r in &chosen {
        let Some(&v) = r.metrics.get(metric) else {
            continue;
        };
        if v.is_nan() {
            continue;
        }
        candidates += 1;
        if improves(dir, v, winner.map(|(_, w)| w)) {
            winner = Some((r, v));
        }
    }
    let Some((r, value)) = winner else {
        let have: BTreeSet<&str> = chosen
            .iter()
            .flat_map(|r| r.metrics.keys().map(String::as_str))
            .collect();
        return Err(unknown("metric", metric, &have));
    };
    Ok(Best {
        metric: metric.to_string(),
        direction: dir,
        value,
        candidates,
        row: r.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(session: &str, epoch: u64, loss: f64, stored: bool) -> MetricRow {
        MetricRow {
            id: format!("{session}{epoch}"),
            session: session.into(),
            epoch: Some(epoch),
            step: None,
            time_ns: epoch as i64,
            metrics: BTreeMap::from([("val_loss".to_string(), loss)]),
            stored,
            forgotten_ns: (!stored).then_some(99),
            tags: vec![],
        }
    }

    #[test]
    fn best_ranks_by_direction_and_glob_and_ties_go_to_the_first() {
        let rows = vec![
            r("a", 1, 0.5, false),
            r("a", 2, 0.2, false),
            r("b", 1, 0.3, true),
            r("b", 2, 0.2, true),
            r("b", 3, f64::NAN, true),
        ];
        let b = best(&rows, "val_loss", Direction::Min, None).unwrap();
        assert_eq!(
            (b.row.id.as_str(), b.value, b.row.stored),
            ("a2", 0.2, false)
        );
        assert_eq!(b.candidates, 4);
        let b = best(&rows, "val_loss", Direction::Max, None).unwrap();
        assert_eq!(b.row.id, "a1");
        let b = best(&rows, "val_loss", Direction::Min, Some("b*")).unwrap();
        assert_eq!(b.row.id, "b2");
        let e = best(&rows, "val_los", Direction::Min, None).unwrap_err();
        assert!(e.to_string().contains("did you mean 'val_loss'"), "{e}");
        let e = best(&rows, "val_loss", Direction::Min, Some("c*")).unwrap_err();
        assert!(e.to_string().contains("a, b"), "{e}");
    }

    #[test]
    fn table_selects_sessions_and_metrics_and_names_what_exists() {
        let mut rows = vec![r("a", 1, 0.5, true), r("b", 1, 0.3, true)];
        rows[1].metrics.insert("acc".into(), 0.9);
        let t = table(rows.clone(), &["b".into()], &[]).unwrap();
        assert_eq!(t.sessions, ["b"]);
        assert_eq!(t.metrics, ["acc", "val_loss"]);
        let t = table(rows.clone(), &[], &["acc".into()]).unwrap();
        assert_eq!(t.rows.len(), 1, "rows without the metric are left out");
        let e = table(rows.clone(), &["c".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("a, b"), "{e}");
        let e = table(rows, &["a".into()], &["acc".into()]).unwrap_err();
        assert!(e.to_string().contains("val_loss"), "{e}");
    }

    #[test]
    fn parse_best_guesses_the_direction_from_the_name() {
        assert_eq!(parse_best("val_loss").unwrap().1, Direction::Min);
        assert_eq!(parse_best("val_accuracy").unwrap().1, Direction::Max);
        assert_eq!(parse_best("score:min").unwrap().1, Direction::Min);
        assert!(parse_best("x:up").is_err());
        assert!(parse_best(":max").is_err());
    }
}
