//! Epoch signals as data: parsing `SNAP {...}` lines and metrics-file lines
//! into epoch events, and deciding which snapshot is best. Pure functions.

use std::collections::BTreeMap;

use serde_json::Value;

/// One epoch end (or checkpoint) reported by the training process.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochEvent {
    pub epoch: Option<u64>,
    /// The training step, when the signal names one.
    pub step: Option<u64>,
    pub metrics: BTreeMap<String, f64>,
    /// Where it came from: "stdout", "stderr", "watch PATH", "metrics-file".
    pub source: String,
}

/// The line prefix a training script prints at the end of an epoch.
pub const LINE_PREFIX: &str = "SNAP ";

/// Parses `SNAP {"epoch": 3, "step": 300, "metrics": {"val_accuracy": 0.67}}`.
/// Numbers at the top level other than `epoch` and `step` are taken as
/// metrics too.
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
    let step = map.get("step").and_then(Value::as_u64);
    let mut metrics = BTreeMap::new();
    let mut take = |k: &str, v: &Value| {
        if let Some(x) = v.as_f64().filter(|x| x.is_finite()) {
            metrics.insert(k.to_string(), x);
        }
    };
    for (k, v) in &map {
        match (k.as_str(), v) {
            ("epoch" | "step", _) => {}
            ("metrics", Value::Object(m)) => m.iter().for_each(|(k, v)| take(k, v)),
            _ => take(k, v),
        }
    }
    Some(EpochEvent {
        epoch,
        step,
        metrics,
        source: source.to_string(),
    })
}

/// Decided in `ops::metrics`, once for `snap run --best` and `snap best`.
pub use crate::ops::metrics::{improves, parse_best, Direction};

/// The epoch and the step a checkpoint's path names, `(epoch, step)`:
/// - a directory or file named `checkpoint-N` (the Hugging Face Trainer's
///   `checkpoint-500/`) is step N;
/// - in the file name, `epoch` or `step` followed by `=`, `_`, `-` or nothing
///   and digits gives the epoch or the step (Lightning's
///   `epoch=0-step=300.ckpt`, `epoch_15.pt`, `global_step1200.pt`);
/// - a name with neither has its last run of digits as its epoch
///   (`model-15.pt` is epoch 15).
pub fn position_from_name(path: &str) -> (Option<u64>, Option<u64>) {
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let mut epoch = keyed_number(name, "epoch");
    let mut step = keyed_number(name, "step");
    if step.is_none() {
        step = path
            .split('/')
            .rev()
            .find_map(|c| c.strip_prefix("checkpoint-").and_then(whole_number));
    }
    if epoch.is_none() && step.is_none() {
        epoch = last_number(name);
    }
    (epoch, step)
}

/// The number after the last `key` in `name` (ASCII case-insensitive) that is
/// not inside a longer word: `epoch=3`, `epoch_3`, `epoch-3`, `epoch3`.
fn keyed_number(name: &str, key: &str) -> Option<u64> {
    let lower = name.to_ascii_lowercase();
    lower
        .match_indices(key)
        .filter(|(at, _)| {
            !lower[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphabetic())
        })
        .filter_map(|(at, _)| {
            let rest = &lower[at + key.len()..];
            let rest = rest.strip_prefix(['=', '_', '-']).unwrap_or(rest);
            let digits: &str = &rest[..rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len())];
            digits.parse().ok()
        })
        .last()
}

/// `s` as a number if it is nothing but digits.
fn whole_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The last run of digits in `name`.
fn last_number(name: &str) -> Option<u64> {
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = name[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    name[start..end].parse().ok()
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
    fn epochs_and_steps_in_names() {
        let at = position_from_name;
        assert_eq!(at("checkpoints/epoch_15.pt"), (Some(15), None));
        assert_eq!(at("ckpt/model-15.pt"), (Some(15), None));
        assert_eq!(at("best.pt"), (None, None));
        // Lightning: not epoch 300.
        assert_eq!(
            at("lightning_logs/epoch=0-step=300.ckpt"),
            (Some(0), Some(300))
        );
        assert_eq!(at("epoch=2-step=900-v1.ckpt"), (Some(2), Some(900)));
        assert_eq!(at("epoch=4-val_loss=0.35.ckpt"), (Some(4), None));
        // Hugging Face: a directory, and files inside it.
        assert_eq!(at("out/checkpoint-500"), (None, Some(500)));
        assert_eq!(at("out/checkpoint-500/"), (None, Some(500)));
        assert_eq!(
            at("out/checkpoint-500/model.safetensors"),
            (None, Some(500))
        );
        assert_eq!(at("out/checkpoint-best"), (None, None));
        assert_eq!(at("model-e3-step200.safetensors"), (None, Some(200)));
        assert_eq!(at("Epoch3_Step40.pt"), (Some(3), Some(40)));
        assert_eq!(at("global_step1200.pt"), (None, Some(1200)));
        assert_eq!(at("model-step_200.pt"), (None, Some(200)));
        assert_eq!(at("epochs.pt"), (None, None));
        assert_eq!(at("nonstep5.pt"), (Some(5), None));
    }

    #[test]
    fn steps_in_snap_lines() {
        let e = parse_line("SNAP {\"step\": 300, \"loss\": 0.25}", "stdout").unwrap();
        assert_eq!((e.epoch, e.step), (None, Some(300)));
        assert_eq!(e.metrics.len(), 1, "step is not a metric");
        let e = parse_json("{\"epoch\": 1, \"step\": 300}", "metrics-file").unwrap();
        assert_eq!((e.epoch, e.step), (Some(1), Some(300)));
    }
}
