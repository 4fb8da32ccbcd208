//! Turning a REV into a snapshot: `latest`, a tag, `SESSION@EPOCH`,
//! `SESSION@step=N`, or a snapshot id or unique hex prefix (at least 4
//! characters).

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::{is_hex_prefix, SnapshotId};

/// Resolves `rev` against `snapshots` (oldest first) and `tags`.
pub fn resolve(
    rev: &str,
    snapshots: &[(SnapshotId, Snapshot)],
    tags: &[(String, SnapshotId)],
) -> Result<(SnapshotId, Snapshot)> {
    let by_id = |id: &SnapshotId| snapshots.iter().find(|(s, _)| s == id).cloned();
    if rev == "latest" {
        if let Some(last) = snapshots.last() {
            return Ok(last.clone());
        }
    }
    if let Some((_, id)) = tags.iter().find(|(name, _)| name == rev) {
        return by_id(id).ok_or_else(|| {
            Error::corrupt(
                format!("tag {rev}"),
                format!("names snapshot {} which does not exist", id.short()),
            )
        });
    }
    if let Some((session, epoch)) = rev.rsplit_once('@') {
        if let Ok(epoch) = epoch.parse::<u64>() {
            if let Some(found) = snapshots
                .iter()
                .rev()
                .find(|(_, s)| s.session.as_deref() == Some(session) && s.epoch == Some(epoch))
            {
                return Ok(found.clone());
            }
        }
    }
    if let Some(found) = session_at_step(rev, snapshots) {
        return Ok(found.clone());
    }
    if is_hex_prefix(rev) && rev.len() >= 4 {
        let lower = rev.to_ascii_lowercase();
        let matches: Vec<_> = snapshots
            .iter()
            .filter(|(id, _)| id.to_hex().starts_with(&lower))
            .collect();
        match matches.len() {
            1 => return Ok(matches[0].clone()),
            0 => {}
            _ => {
                return Err(Error::AmbiguousRev {
                    rev: rev.into(),
                    candidates: matches
                        .iter()
                        .map(|(id, _)| id.short())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        }
    }
    Err(Error::UnknownRev {
        rev: rev.into(),
        hint: hint(snapshots, tags),
    })
}

/// `SESSION@step=N`: the newest snapshot of the session with step N.
fn session_at_step<'a>(
    rev: &str,
    snapshots: &'a [(SnapshotId, Snapshot)],
) -> Option<&'a (SnapshotId, Snapshot)> {
    let (session, step) = rev.rsplit_once("@step=")?;
    let step: u64 = step.parse().ok()?;
    snapshots
        .iter()
        .rev()
        .find(|(_, s)| s.session.as_deref() == Some(session) && s.step == Some(step))
}

fn hint(snapshots: &[(SnapshotId, Snapshot)], tags: &[(String, SnapshotId)]) -> String {
    if snapshots.is_empty() {
        return "the repository has no snapshots yet; create one with `snap commit`".into();
    }
    let recent: Vec<String> = snapshots
        .iter()
        .rev()
        .take(5)
        .map(|(id, _)| id.short())
        .collect();
    let mut h = format!(
        "revisions are: latest, a snapshot id or prefix (recent: {})",
        recent.join(", ")
    );
    if !tags.is_empty() {
        let names: Vec<&str> = tags.iter().take(8).map(|(n, _)| n.as_str()).collect();
        h.push_str(&format!(", a tag ({})", names.join(", ")));
    }
    if snapshots
        .iter()
        .any(|(_, s)| s.session.is_some() && s.epoch.is_some())
    {
        h.push_str(", or SESSION@EPOCH");
    }
    if snapshots
        .iter()
        .any(|(_, s)| s.session.is_some() && s.step.is_some())
    {
        h.push_str(", SESSION@step=N");
    }
    h.push_str("; `snap log` lists them all");
    h
}
