//! Key-level differences between two versions of a config file (JSON, YAML,
//! TOML): `optimizer.lr: 0.001 -> 0.003`, `model.layers: added`, list
//! elements by index (`layers[2].units`), and type changes
//! (`x: 1 (integer) -> "1" (string)`). Pure: bytes in, changes out.
//!
//! The three formats are parsed by their maintained crates (serde_json,
//! toml, and yaml_serde, the YAML organization's continuation of the
//! archived serde_yaml) into one tree, `serde_json::Value`: YAML keys that
//! are not strings become their YAML text (`1`, `true`), YAML tags are
//! dropped, TOML datetimes become strings, and floats JSON cannot hold
//! (NaN, infinities) become the strings `nan`, `inf`, `-inf`.
//!
//! Memory is bounded by `MAX_CONFIG_BYTES`: a larger file is not parsed (the
//! caller falls back to a text diff). The parsers bound nesting (serde_json
//! and yaml_serde at 128 levels; YAML alias expansion is bounded by
//! yaml_serde's repetition limit) and the conversion refuses anything
//! deeper than `MAX_DEPTH`, so no input overflows the stack.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

/// A config file larger than this (either version) is diffed as text.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Deeper nesting than this is refused (falls back to a text diff).
pub const MAX_DEPTH: usize = 128;

/// The config formats with a key-level diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Yaml,
    Toml,
}

impl Format {
    /// By extension: `.json`, `.yaml` / `.yml`, `.toml` (any case).
    pub fn of_path(path: &str) -> Option<Format> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
        }
    }
}

/// One key that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyChange {
    /// `optimizer.lr`, `layers[2].units`, `"a.b".c`; empty for the whole
    /// document (a scalar or differently typed top level).
    pub key: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// The value's type (`integer`, `float`, `string`, `boolean`, `null`,
    /// `list`, `map`), old and new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_type: Option<&'static str>,
}

impl KeyChange {
    /// True when a changed value also changed its type.
    pub fn type_changed(&self) -> bool {
        self.change == "changed" && self.old_type != self.new_type
    }
}

/// The type name of a value, as `KeyChange` reports it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// Parses one version. The error says what is wrong, for the note shown
/// beside the text diff it falls back to.
pub fn parse(format: Format, bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "{} bytes is over the {} byte limit of a key-level diff",
            bytes.len(),
            MAX_CONFIG_BYTES
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let v = match format {
        Format::Json => serde_json::from_str::<Value>(text).map_err(|e| e.to_string())?,
        Format::Yaml => {
            let y: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
            from_yaml(y, 0)?
        }
        Format::Toml => {
            let t: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| e.to_string().trim_end().replace('\n', " "))?;
            from_toml(toml::Value::Table(t), 0)?
        }
    };
    check_depth(&v)?;
    Ok(v)
}

fn too_deep() -> String {
    format!("nested deeper than {MAX_DEPTH} levels")
}

fn float(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("nan".into()),
        None if f > 0.0 => Value::String("inf".into()),
        None => Value::String("-inf".into()),
    }
}

fn from_yaml(y: yaml_serde::Value, depth: usize) -> Result<Value, String> {
    use yaml_serde::Value as Y;
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match y {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(|i| from_yaml(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    other => yaml_serde::to_string(&other)
                        .map_err(|e| e.to_string())?
                        .trim_end()
                        .to_string(),
                };
                out.insert(key, from_yaml(v, depth + 1)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => from_yaml(t.value, depth + 1)?,
    })
}

fn from_toml(t: toml::Value, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match t {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => float(f),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| from_toml(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k, from_toml(v, depth + 1)?);
            }
            Value::Object(out)
        }
    })
}

/// Refuses a tree deeper than `MAX_DEPTH`, without recursion.
fn check_depth(v: &Value) -> Result<(), String> {
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        if d > MAX_DEPTH {
            return Err(too_deep());
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// How a key is written in a path: bare when it is a plain identifier,
/// else quoted as a JSON string (`"a.b"`).
fn key_segment(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key_segment(key)
    } else {
        format!("{path}.{}", key_segment(key))
    }
}

/// Every key that differs from `old` to `new`, in key order (maps by key,
/// lists by index). Depth is bounded by `parse`.
pub fn diff(old: &Value, new: &Value) -> Vec<KeyChange> {
    let mut out = Vec::new();
    walk(String::new(), old, new, &mut out);
    out
}

fn added(key: String, v: &Value) -> KeyChange {
    KeyChange {
        key,
        change: "added",
        old: None,
        new: Some(v.clone()),
        old_type: None,
        new_type: Some(type_name(v)),
    }
}

fn removed(key: String, v: &Value) -> KeyChange {
    KeyChange {
        key,
        change: "removed",
        old: Some(v.clone()),
        new: None,
        old_type: Some(type_name(v)),
        new_type: None,
    }
}

fn walk(path: String, a: &Value, b: &Value, out: &mut Vec<KeyChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = join(&path, k);
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => walk(p, va, vb, out),
                    (Some(va), None) => out.push(removed(p, va)),
                    (None, Some(vb)) => out.push(added(p, vb)),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{path}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => walk(p, va, vb, out),
                    (Some(va), None) => out.push(removed(p, va)),
                    (None, Some(vb)) => out.push(added(p, vb)),
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(KeyChange {
            key: path,
            change: "changed",
            old: Some(a.clone()),
            new: Some(b.clone()),
            old_type: Some(type_name(a)),
            new_type: Some(type_name(b)),
        }),
    }
}

/// One line per change, as `snap diff` prints it:
/// `optimizer.lr: 0.001 -> 0.003`, `model.layers: added (3)`,
/// `x: 1 (integer) -> "1" (string)`. Long values are cut at 80 characters.
pub fn render(c: &KeyChange) -> String {
    let key = if c.key.is_empty() {
        "(document)"
    } else {
        &c.key
    };
    let show = |v: &Option<Value>| {
        let s = v.as_ref().map(Value::to_string).unwrap_or_default();
        if s.chars().count() > 80 {
            format!("{}...", s.chars().take(77).collect::<String>())
        } else {
            s
        }
    };
    match c.change {
        "added" => format!("{key}: added ({})", show(&c.new)),
        "removed" => format!("{key}: removed (was {})", show(&c.old)),
        _ if c.type_changed() => format!(
            "{key}: {} ({}) -> {} ({})",
            show(&c.old),
            c.old_type.unwrap_or("?"),
            show(&c.new),
            c.new_type.unwrap_or("?")
        ),
        _ => format!("{key}: {} -> {}", show(&c.old), show(&c.new)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(f: Format, a: &str, b: &str) -> Vec<String> {
        let (a, b) = (
            parse(f, a.as_bytes()).unwrap(),
            parse(f, b.as_bytes()).unwrap(),
        );
        diff(&a, &b).iter().map(render).collect()
    }

    #[test]
    fn nested_keys_lists_and_types_in_all_three_formats() {
        let want = [
            "a.b: removed (was 1)",
            "layers[1].units: 64 -> 128",
            "layers[2]: added ({\"units\":10})",
            "model.depth: added (3)",
            "optimizer.lr: 0.001 -> 0.003",
            "x: 1 (integer) -> \"1\" (string)",
        ];
        let json = lines(
            Format::Json,
            r#"{"a":{"b":1},"layers":[{"units":32},{"units":64}],"model":{},"optimizer":{"lr":0.001},"x":1}"#,
            r#"{"a":{},"layers":[{"units":32},{"units":128},{"units":10}],"model":{"depth":3},"optimizer":{"lr":0.003},"x":"1"}"#,
        );
        assert_eq!(json, want);
        let yaml = lines(
            Format::Yaml,
            "a: {b: 1}\nlayers:\n  - units: 32\n  - units: 64\nmodel: {}\noptimizer:\n  lr: 0.001\nx: 1\n",
            "a: {}\nlayers:\n  - units: 32\n  - units: 128\n  - units: 10\nmodel:\n  depth: 3\noptimizer:\n  lr: 0.003\nx: '1'\n",
        );
        assert_eq!(yaml, want);
        let toml = lines(
            Format::Toml,
            "x = 1\n[a]\nb = 1\n[model]\n[optimizer]\nlr = 0.001\n[[layers]]\nunits = 32\n[[layers]]\nunits = 64\n",
            "x = \"1\"\n[a]\n[model]\ndepth = 3\n[optimizer]\nlr = 0.003\n[[layers]]\nunits = 32\n[[layers]]\nunits = 128\n[[layers]]\nunits = 10\n",
        );
        assert_eq!(toml, want);
    }

    #[test]
    fn odd_keys_are_quoted_and_equal_documents_have_no_changes() {
        let c = lines(Format::Json, r#"{"a.b":1}"#, r#"{"a.b":2}"#);
        assert_eq!(c, [r#""a.b": 1 -> 2"#]);
        assert!(lines(Format::Yaml, "k: [1, 2]", "k: [1, 2]\n").is_empty());
        assert_eq!(lines(Format::Json, "1", "2"), ["(document): 1 -> 2"]);
    }

    #[test]
    fn malformed_too_large_and_too_deep_inputs_are_refused_with_a_reason() {
        assert!(parse(Format::Yaml, b"a: [1, 2\n").is_err());
        assert!(parse(Format::Toml, b"a = \n").is_err());
        let big = vec![b' '; MAX_CONFIG_BYTES as usize + 1];
        assert!(parse(Format::Json, &big).unwrap_err().contains("limit"));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(Format::Json, deep.as_bytes()).is_err());
        assert!(parse(Format::Yaml, deep.as_bytes()).is_err());
        // A billion-laughs document is refused, not expanded.
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = (b'a' + i - 1) as char;
            let c = (b'a' + i) as char;
            laughs.push_str(&format!(
                "{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            ));
        }
        let e = parse(Format::Yaml, laughs.as_bytes()).unwrap_err();
        assert!(e.contains("repetition limit"), "{e}");
    }
}
