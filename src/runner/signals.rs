//! Epoch signals as data: parsing `SNAP {...}` lines and metrics-file lines
//! into epoch events, and deciding which snapshot is best. Pure functions.

use std::collections::BTreeMap;

use serde_json::Value;

/// One epoch end reported by the training process.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochEvent {
    pub epoch: Option<u64>,
    pub metrics: BTreeMap<String, f64>,
    /// Where it came from: "stdout", "stderr", "watch PATH", "metrics-file".
    pub source: String,
}

/// The line prefix a training script prints at the end of an epoch.
pub const LINE_PREFIX: &str = "SNAP ";

/// Parses `SNAP {"epoch": 3, "metrics": {"val_accuracy": 0.67}}`. Numbers
/// at the top level other than `epoch` are taken as metrics too.
pub fn parse_line(line: &str, source: &str) -> Option<EpochEvent> {
    let json = line
        .trim_end_matches(['\r', '\n'])
        .strip_prefix(LINE_PREFIX)?;
    parse_json(json.trim(), source)
}

/// Parses one JSON object (a `SNAP` payload or a metrics-file line).
pub fn parse_json(json: &str, source: &str) -> Option<EpochEvent> {
    let Value::Object(map) = serde_json::from_str::<Value>(json).ok()? else {
        return None;
    };
    let epoch = map.get("epoch").and_then(Value::as_u64);
    let mut metrics = BTreeMap::new();
    let mut take = |k: &str, v: &Value| {
        if let Some(x) = v.as_f64().filter(|x| x.is_finite()) {
            metrics.insert(k.to_string(), x);
        }
    };
    for (k, v) in &map {
        match (k.as_str(), v) {
            ("epoch", _) => {}
            ("metrics", Value::Object(m)) => m.iter().for_each(|(k, v)| take(k, v)),
            _ => take(k, v),
        }
    }
    Some(EpochEvent {
        epoch,
        metrics,
        source: source.to_string(),
    })
}

/// Whether a larger or a smaller value of the best metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Max,
    Min,
}

/// `--best METRIC[:max|min]`. Without a suffix, names that look like a loss or
/// an error are minimised and everything else is maximised.
pub fn parse_best(spec: &str) -> Result<(String, Direction), String> {
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

/// The epoch number in a checkpoint's file name (`epoch_15.pt` -> 15): the
/// last run of digits in the name.
pub fn epoch_from_name(name: &str) -> Option<u64> {
    let stem = name.rsplit('/').next()?;
    let digits: String = stem
        .char_indices()
        .rev()
        .skip_while(|(_, c)| !c.is_ascii_digit())
        .take_while(|(_, c)| c.is_ascii_digit())
        .map(|(_, c)| c)
        .collect();
    digits.chars().rev().collect::<String>().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snap_lines() {
        let e = parse_line(
            "SNAP {\"epoch\": 3, \"metrics\": {\"val_accuracy\": 0.67}}\n",
            "stdout",
        )
        .unwrap();
        assert_eq!(e.epoch, Some(3));
        assert_eq!(e.metrics["val_accuracy"], 0.67);
        let e = parse_line(
            "SNAP {\"epoch\": 4, \"loss\": 0.5, \"note\": \"x\"}",
            "stdout",
        )
        .unwrap();
        assert_eq!(e.metrics.len(), 1);
        assert!(parse_line("epoch 3 done", "stdout").is_none());
        assert!(parse_line("SNAP not json", "stdout").is_none());
        assert!(parse_line("SNAP [1,2]", "stdout").is_none());
    }

    #[test]
    fn best_spec() {
        assert_eq!(
            parse_best("val_loss").unwrap(),
            ("val_loss".into(), Direction::Min)
        );
        assert_eq!(
            parse_best("val_accuracy").unwrap(),
            ("val_accuracy".into(), Direction::Max)
        );
        assert_eq!(
            parse_best("score:min").unwrap(),
            ("score".into(), Direction::Min)
        );
        assert!(parse_best("x:up").is_err());
        assert!(improves(Direction::Min, 0.1, Some(0.2)));
        assert!(!improves(Direction::Max, 0.1, Some(0.2)));
    }

    #[test]
    fn epochs_in_names() {
        assert_eq!(epoch_from_name("checkpoints/epoch_15.pt"), Some(15));
        assert_eq!(epoch_from_name("model-e3-step200.safetensors"), Some(200));
        assert_eq!(epoch_from_name("best.pt"), None);
    }
}
