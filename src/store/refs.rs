//! Tags: `refs/tags/NAME` holds one snapshot id in hex. Names may contain `/`
//! (`run-7/best`), stored as nested directories; every component is checked
//! so a tag can never point outside `refs/tags`.

use std::fs;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::id::SnapshotId;
use crate::store::{durable, Layout};

/// Checks a tag name: components of `[A-Za-z0-9._-]`, not `.`/`..`, joined by `/`.
pub fn validate_tag(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid("tag name", name, why));
    if name.is_empty() || name.len() > 200 {
        return bad("must be 1 to 200 characters");
    }
    for comp in name.split('/') {
        if comp.is_empty() || comp == "." || comp == ".." {
            return bad("empty, '.' or '..' component");
        }
        if !comp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+=".contains(&b))
        {
            return bad("use letters, digits and . _ - + = separated by /");
        }
    }
    if name == "latest" || crate::id::is_hex_prefix(name) && name.len() >= 4 {
        return bad("would be confused with a revision (latest or a hex id)");
    }
    Ok(())
}

pub fn write_tag(layout: &Layout, name: &str, id: &SnapshotId) -> Result<()> {
    validate_tag(name)?;
    durable::write_atomic(
        &layout.tmp_dir(),
        &layout.tag(name),
        format!("{}\n", id.to_hex()).as_bytes(),
    )
}

/// Deletes a tag; returns false if it did not exist.
pub fn delete_tag(layout: &Layout, name: &str) -> Result<bool> {
    validate_tag(name)?;
    let path = layout.tag(name);
    match fs::remove_file(&path) {
        Ok(()) => {
            durable::sync_dir(path.parent().expect("tag has a parent"))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("delete tag", &path, e)),
    }
}

/// Tag names with the snapshots they name.
pub type Tags = Vec<(String, SnapshotId)>;

/// Every readable tag on disk, sorted by name, and a sentence for each tag
/// file that cannot be read (so one bad file never locks users out: `check`
/// reports it and `snap tag --delete NAME` removes it).
pub fn list_tags(layout: &Layout) -> Result<(Tags, Vec<String>)> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    walk(&layout.tags_dir(), String::new(), &mut out, &mut bad)?;
    out.sort();
    Ok((out, bad))
}

fn walk(
    dir: &Path,
    prefix: String,
    out: &mut Vec<(String, SnapshotId)>,
    bad: &mut Vec<String>,
) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list tags in", dir, e)),
    };
    for entry in rd {
        let entry = entry.ctx("list tags in", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let ft = entry.file_type().ctx("stat", &path)?;
        if ft.is_dir() {
            walk(&path, full, out, bad)?;
        } else if ft.is_file() {
            let id = fs::read_to_string(&path)
                .ok()
                .and_then(|t| SnapshotId::from_hex(t.trim()));
            match id {
                Some(id) => out.push((full, id)),
                None => bad.push(format!(
                    "tag {full} ({}) does not hold a snapshot id; remove it with `snap tag --delete {full}`",
                    path.display()
                )),
            }
        }
    }
    Ok(())
}
