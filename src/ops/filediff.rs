//! What changed inside one file between two snapshots, for `snap diff`
//! (and `snap ui`'s `/api/diff`): a key-level diff for JSON, YAML and TOML
//! configs (`ops::confdiff`), a unified diff for other text (the `similar`
//! crate), and for binary files only their sizes. Pure: the caller reads
//! the bytes (`ops::diff`), at most `MAX_TEXT_BYTES` of each version.
//!
//! A file is binary when its first 8 KiB hold a NUL byte (git's test) or it
//! is not UTF-8. A config that does not parse, or is over
//! `confdiff::MAX_CONFIG_BYTES`, gets the text diff with a note saying why.

use std::time::Duration;

use serde::Serialize;

use crate::ops::confdiff::{self, Format, KeyChange};

/// Text files larger than this (either version) are not line-diffed: their
/// sizes are reported instead, so a diff never holds more than twice this.
pub const MAX_TEXT_BYTES: u64 = 4 << 20;

/// How much of a file is enough to tell binary from text.
pub const SNIFF_BYTES: u64 = 8 << 10;

/// How long the line diff may search for a minimal diff before it settles
/// for a longer one (`similar`'s deadline), so a pathological pair of files
/// cannot stall `snap diff`.
const LINE_DIFF_DEADLINE: Duration = Duration::from_secs(2);

/// The content part of a changed file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContentDiff {
    /// A config, key by key.
    Keys {
        format: Format,
        changes: Vec<KeyChange>,
    },
    /// A unified diff (`--- a/PATH`, `+++ b/PATH`, hunks with 3 lines of
    /// context); `note` says why a config got this instead of keys.
    Text {
        unified: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    Binary {
        old_size: u64,
        new_size: u64,
    },
    /// Text over `MAX_TEXT_BYTES`: not compared line by line.
    TooLarge {
        old_size: u64,
        new_size: u64,
        limit: u64,
    },
}

/// True if these (leading) bytes look binary.
pub fn looks_binary(head: &[u8]) -> bool {
    head[..head.len().min(SNIFF_BYTES as usize)].contains(&0)
}

/// The diff of a file too large to read whole: `head`s are its first
/// `SNIFF_BYTES`, enough to say binary.
pub fn too_large(old_head: &[u8], new_head: &[u8], old_size: u64, new_size: u64) -> ContentDiff {
    if looks_binary(old_head) || looks_binary(new_head) {
        ContentDiff::Binary { old_size, new_size }
    } else {
        ContentDiff::TooLarge {
            old_size,
            new_size,
            limit: MAX_TEXT_BYTES,
        }
    }
}

/// The diff of `path` from `old` to `new` (each at most `MAX_TEXT_BYTES`).
pub fn content(path: &str, old: &[u8], new: &[u8]) -> ContentDiff {
    let sizes = ContentDiff::Binary {
        old_size: old.len() as u64,
        new_size: new.len() as u64,
    };
    if looks_binary(old) || looks_binary(new) {
        return sizes;
    }
    let (Ok(a), Ok(b)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return sizes;
    };
    let mut note = None;
    if let Some(format) = Format::of_path(path) {
        match (confdiff::parse(format, old), confdiff::parse(format, new)) {
            (Ok(x), Ok(y)) => {
                return ContentDiff::Keys {
                    format,
                    changes: confdiff::diff(&x, &y),
                }
            }
            (Err(why), _) => {
                note = Some(format!(
                    "the old version is not compared key by key: {} ({why}); a text diff instead",
                    format.name()
                ))
            }
            (_, Err(why)) => {
                note = Some(format!(
                    "the new version is not compared key by key: {} ({why}); a text diff instead",
                    format.name()
                ))
            }
        }
    }
    ContentDiff::Text {
        unified: unified(path, a, b),
        note,
    }
}

/// A unified diff of two texts, headed `a/PATH` and `b/PATH`.
pub fn unified(path: &str, a: &str, b: &str) -> String {
    let diff = similar::TextDiff::configure()
        .timeout(LINE_DIFF_DEADLINE)
        .diff_lines(a, b);
    diff.unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_gets_a_unified_diff_and_binary_only_sizes() {
        let d = content("notes.txt", b"one\ntwo\nthree\n", b"one\n2\nthree\n");
        let ContentDiff::Text { unified, note } = d else {
            panic!("{d:?}")
        };
        assert!(
            unified.contains("--- a/notes.txt\n+++ b/notes.txt\n"),
            "{unified}"
        );
        assert!(unified.contains("-two\n+2\n"), "{unified}");
        assert_eq!(note, None);
        assert_eq!(
            content("w.bin", b"\0\x01", b"\0\x01\x02"),
            ContentDiff::Binary {
                old_size: 2,
                new_size: 3
            }
        );
        assert!(matches!(
            content("x.txt", b"ok", &[0xff, 0xfe]),
            ContentDiff::Binary { .. }
        ));
    }

    #[test]
    fn malformed_yaml_falls_back_to_text_with_a_note() {
        let d = content("c.yaml", b"lr: 1\n", b"lr: [2\n");
        let ContentDiff::Text { unified, note } = d else {
            panic!("{d:?}")
        };
        assert!(unified.contains("+lr: [2"), "{unified}");
        let note = note.unwrap();
        assert!(
            note.contains("new version") && note.contains("YAML"),
            "{note}"
        );
    }
}
