//! Tags: `refs/tags/NAME` holds one snapshot id in hex. Names may contain `/`
//! (`run-7/best`), stored as nested directories; every component is checked
//! so a tag can never point outside `refs/tags`.

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::store::backend::Kind;
use crate::store::Layout;

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

/// Points tag `name` at `id`, replacing it atomically and durably. An empty
/// directory where the tag file goes (see `store::sync` on tags replaced by
/// directories) is removed first: it holds nothing, and this is the one
/// step that puts the tag back without a moment in which it is missing.
pub fn write_tag(layout: &Layout, name: &str, id: &SnapshotId) -> Result<()> {
    validate_tag(name)?;
    let path = locate(layout, name);
    if path.is_dir() {
        // Fails, and the write below then reports it, unless it is empty.
        let _ = std::fs::remove_dir(&path);
    }
    layout
        .backend()
        .replace(Kind::Tag, name, format!("{}\n", id.to_hex()).as_bytes())
}

/// Deletes a tag, durably; returns false if it did not exist.
pub fn delete_tag(layout: &Layout, name: &str) -> Result<bool> {
    validate_tag(name)?;
    let existed = layout.backend().delete(Kind::Tag, name)?;
    if existed {
        layout.backend().sync()?;
    }
    Ok(existed)
}

/// The bytes of tag file `name`, unchecked (to tell a gone tag, `NotFound`,
/// from one that is there but cannot be read).
pub fn read_tag_file(layout: &Layout, name: &str) -> Result<Vec<u8>> {
    layout.backend().read(Kind::Tag, name)
}

/// Where tag `name` is kept, for messages.
pub fn locate(layout: &Layout, name: &str) -> std::path::PathBuf {
    layout.backend().locate(Kind::Tag, name)
}

/// Tag names with the snapshots they name.
pub type Tags = Vec<(String, SnapshotId)>;

/// Every readable tag, sorted by name, and a sentence for each tag that
/// cannot be read (so one bad file never locks users out: `check` reports
/// it and `snap tag --delete NAME` removes it).
pub fn list_tags(layout: &Layout) -> Result<(Tags, Vec<String>)> {
    let backend = layout.backend();
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for name in backend.list(Kind::Tag)? {
        let id = backend
            .read(Kind::Tag, &name)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| SnapshotId::from_hex(t.trim()));
        match id {
            Some(id) => out.push((name, id)),
            None => bad.push(format!(
                "tag {name} ({}) does not hold a snapshot id; remove it with `snap tag --delete {name}`",
                backend.locate(Kind::Tag, &name).display()
            )),
        }
    }
    out.sort();
    Ok((out, bad))
}
