//! Turning a REV into a snapshot. The forms, tried in this order:
//!
//! 1. `latest`: the newest snapshot;
//! 2. a tag (tags cannot be `latest`, hex of 4+ characters, or hold `@`);
//! 3. a full snapshot id (64 hex characters);
//! 4. `SESSION@FORM` for a session that exists: `@start` (the pre-run
//!    snapshot `snap run` labels `signal=archive`), `@end` (its final one,
//!    labelled `outcome`), `@EPOCH` (the newest snapshot with that epoch),
//!    `@step=N` (the newest snapshot with that step);
//! 5. a session name alone (its newest snapshot), and a unique hex prefix of
//!    at least 4 characters. When both match different snapshots the REV is
//!    ambiguous: a session named `2024` does not silently hide snapshot
//!    `2024ab..`, nor the other way round.
//!
//! `resolve` is a pure function of the REV, the snapshots and the tags, so
//! callers can wrap its errors (e.g. with what retention forgot).

use crate::error::{Error, Result};
use crate::format::journal::Forgotten;
use crate::format::snapshot::Snapshot;
use crate::id::{is_hex_prefix, SnapshotId};
use crate::ops::suggest;

/// A snapshot and its id, as the index lists them.
type Found = (SnapshotId, Snapshot);

/// The label of the pre-run snapshot `snap run` takes (value `archive`).
pub const START_LABEL: (&str, &str) = ("signal", "archive");
/// The label of the final snapshot of a `snap run` (value: how it ended).
pub const END_LABEL: &str = "outcome";

/// `err`, the error of a REV no snapshot answers, or, when the REV names
/// only snapshots retention forgot (`entries`, the journal), what became of
/// them: when, by which rule, and what is still there.
pub fn forgotten(rev: &str, err: Error, entries: &[(Forgotten, Snapshot)]) -> Error {
    let gone: Vec<Found> = entries.iter().map(|(f, s)| (f.id, s.clone())).collect();
    let gone_tags: Vec<(String, SnapshotId)> = entries
        .iter()
        .flat_map(|(f, _)| f.tags.iter().map(|t| (t.clone(), f.id)))
        .collect();
    let Ok((id, s)) = resolve(rev, &gone, &gone_tags) else {
        return err;
    };
    let (f, _) = entries
        .iter()
        .find(|(f, _)| f.id == id)
        .expect("resolved among these entries");
    let when = chrono::DateTime::from_timestamp_nanos(f.forgotten_ns)
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M");
    let kept = match &s.session {
        Some(name) => format!("`snap log --session {name}` lists what is kept of its session"),
        None => "`snap log` lists what is kept".into(),
    };
    Error::Forgotten {
        rev: rev.to_string(),
        detail: format!(
            "{when}: snapshot {} (rule {}: {})\n  its files are gone once `snap prune` has run; \
             {kept}; `snap log --forgotten` lists what retention forgot",
            id.short(),
            f.rule,
            f.reason
        ),
    }
}

/// Resolves `rev` against `snapshots` (oldest first) and `tags`.
pub fn resolve(rev: &str, snapshots: &[Found], tags: &[(String, SnapshotId)]) -> Result<Found> {
    if rev == "latest" {
        if let Some(last) = snapshots.last() {
            return Ok(last.clone());
        }
    }
    if let Some(found) = by_tag(rev, snapshots, tags)? {
        return Ok(found);
    }
    if let Some(found) = by_full_id(rev, snapshots) {
        return Ok(found);
    }
    if let Some(found) = by_session_form(rev, snapshots, tags)? {
        return Ok(found);
    }
    if let Some(found) = by_session_or_prefix(rev, snapshots)? {
        return Ok(found);
    }
    Err(unknown(rev, None, snapshots, tags))
}

fn by_tag(rev: &str, snapshots: &[Found], tags: &[(String, SnapshotId)]) -> Result<Option<Found>> {
    let Some((_, id)) = tags.iter().find(|(name, _)| name == rev) else {
        return Ok(None);
    };
    match snapshots.iter().find(|(s, _)| s == id) {
        Some(found) => Ok(Some(found.clone())),
        None => Err(Error::corrupt(
            format!("tag {rev}"),
            format!("names snapshot {} which does not exist", id.short()),
        )),
    }
}

fn by_full_id(rev: &str, snapshots: &[Found]) -> Option<Found> {
    let id = SnapshotId::from_hex(rev)?;
    snapshots.iter().find(|(s, _)| *s == id).cloned()
}

/// The snapshots of `session`, oldest first.
fn of_session<'a>(session: &'a str, snapshots: &'a [Found]) -> impl Iterator<Item = &'a Found> {
    snapshots
        .iter()
        .filter(move |(_, s)| s.session.as_deref() == Some(session))
}

/// `SESSION@FORM`. `None` when no session has that name (a session name
/// may itself hold `@`: step 5 then finds it); an error when the session
/// exists but has no such snapshot.
fn by_session_form(
    rev: &str,
    snapshots: &[Found],
    tags: &[(String, SnapshotId)],
) -> Result<Option<Found>> {
    let Some((session, form)) = rev.rsplit_once('@') else {
        return Ok(None);
    };
    if of_session(session, snapshots).next().is_none() {
        return Ok(None);
    }
    let found = match form {
        "start" => at_start(session, snapshots),
        "end" => at_end(session, snapshots),
        _ if form.bytes().all(|b| b.is_ascii_digit()) && !form.is_empty() => {
            at_number(session, form, snapshots, "epoch", |s| s.epoch)
        }
        _ if form.starts_with("step=") => {
            at_number(session, &form["step=".len()..], snapshots, "step", |s| {
                s.step
            })
        }
        // A session whose own name holds `@`: step 5.
        _ if of_session(rev, snapshots).next().is_some() => return Ok(None),
        _ => Err(format!(
            "after SESSION@ comes start, end, an epoch number or step=N, not '{form}'"
        )),
    };
    match found {
        Ok(found) => Ok(Some(found.clone())),
        Err(why) => Err(unknown(rev, Some(why), snapshots, tags)),
    }
}

/// `SESSION@start`: the pre-run snapshot of the session's latest run.
fn at_start<'a>(session: &'a str, snapshots: &'a [Found]) -> Result<&'a Found, String> {
    of_session(session, snapshots)
        .filter(|(_, s)| is_start(s))
        .last()
        .ok_or_else(|| {
            format!(
                "session {session} has no pre-run snapshot (label {}={}): it was run with \
                 --no-archive or not by `snap run`; `snap log --session {session}` lists its snapshots",
                START_LABEL.0, START_LABEL.1
            )
        })
}

/// `SESSION@end`: the final snapshot of the session's latest run, which
/// must have ended (no pre-run snapshot after it).
fn at_end<'a>(session: &'a str, snapshots: &'a [Found]) -> Result<&'a Found, String> {
    let ofs: Vec<&Found> = of_session(session, snapshots).collect();
    let end = ofs
        .iter()
        .rposition(|(_, s)| s.labels.contains_key(END_LABEL));
    let start = ofs.iter().rposition(|(_, s)| is_start(s));
    match (end, start) {
        (Some(e), s) if s.is_none_or(|s| s < e) => Ok(ofs[e]),
        (_, Some(s)) => Err(format!(
            "the latest run of session {session} (pre-run snapshot {}) has no final snapshot: \
             it is still running, or `snap run` was killed before its end; \
             `{session}` alone names its newest snapshot",
            ofs[s].0.short()
        )),
        _ => Err(format!(
            "session {session} has no final snapshot (label {END_LABEL}): it is still running, \
             `snap run` was killed before its end, or it was not made by `snap run`; \
             `{session}` alone names its newest snapshot"
        )),
    }
}

/// `SESSION@EPOCH` and `SESSION@step=N`: the newest snapshot of the
/// session whose `what` (read by `get`) is `value`.
fn at_number<'a>(
    session: &'a str,
    value: &str,
    snapshots: &'a [Found],
    what: &str,
    get: fn(&Snapshot) -> Option<u64>,
) -> Result<&'a Found, String> {
    if let Ok(n) = value.parse::<u64>() {
        if let Some(found) = of_session(session, snapshots)
            .filter(|(_, s)| get(s) == Some(n))
            .last()
        {
            return Ok(found);
        }
    }
    let known: Vec<u64> = of_session(session, snapshots)
        .filter_map(|(_, s)| get(s))
        .collect();
    Err(match (known.iter().min(), known.iter().max()) {
        (Some(lo), Some(hi)) => {
            format!(
                "session {session} has no snapshot of {what} {value} (its {what}s: {lo} to {hi})"
            )
        }
        _ => format!("session {session} has no snapshot with a {what}"),
    })
}

fn is_start(s: &Snapshot) -> bool {
    s.labels.get(START_LABEL.0).map(String::as_str) == Some(START_LABEL.1)
}

/// A session name (its newest snapshot) or a unique hex prefix.
fn by_session_or_prefix(rev: &str, snapshots: &[Found]) -> Result<Option<Found>> {
    let session = of_session(rev, snapshots).last();
    let prefixed: Vec<&Found> = if is_hex_prefix(rev) && rev.len() >= 4 {
        let lower = rev.to_ascii_lowercase();
        snapshots
            .iter()
            .filter(|(id, _)| id.to_hex().starts_with(&lower))
            .collect()
    } else {
        Vec::new()
    };
    let others: Vec<&&Found> = prefixed
        .iter()
        .filter(|(id, _)| session.is_none_or(|(s, _)| s != id))
        .collect();
    match (session, others.as_slice()) {
        (Some(found), []) => Ok(Some(found.clone())),
        (None, []) => Ok(None),
        (None, [one]) => Ok(Some((**one).clone())),
        (None, many) => Err(Error::AmbiguousRev {
            rev: rev.into(),
            candidates: many
                .iter()
                .map(|(id, _)| format!("snapshot {}", id.short()))
                .collect::<Vec<_>>()
                .join(", "),
            hint: "give more characters of the id".into(),
        }),
        (Some((sid, _)), many) => Err(Error::AmbiguousRev {
            rev: rev.into(),
            candidates: std::iter::once(format!("session {rev} (newest snapshot {})", sid.short()))
                .chain(
                    many.iter()
                        .map(|(id, _)| format!("snapshot {}", id.short())),
                )
                .collect::<Vec<_>>()
                .join(", "),
            hint: format!(
                "for a snapshot, give more characters of its id; \
                 for the session, name its snapshot by id (`snap log --session {rev}`) or {rev}@end"
            ),
        }),
    }
}

/// The error for a REV that names nothing: `why` when its form was
/// recognised, else the nearest names; then the forms with examples.
fn unknown(
    rev: &str,
    why: Option<String>,
    snapshots: &[Found],
    tags: &[(String, SnapshotId)],
) -> Error {
    let mut lines: Vec<String> = Vec::new();
    match why {
        Some(why) => lines.push(why),
        None => lines.extend(suggest::did_you_mean(&suggestions(rev, snapshots, tags))),
    }
    lines.push(forms(snapshots, tags));
    Error::UnknownRev {
        rev: rev.into(),
        hint: lines.join("\n  "),
    }
}

/// Names near `rev`: for `SESSION@FORM`, sessions near `SESSION` with the
/// same `@FORM`; else (or if there are none) tags, sessions and `latest`.
fn suggestions(rev: &str, snapshots: &[Found], tags: &[(String, SnapshotId)]) -> Vec<String> {
    let mut sessions: Vec<&str> = Vec::new();
    for (_, s) in snapshots {
        if let Some(name) = s.session.as_deref() {
            if !sessions.contains(&name) {
                sessions.push(name);
            }
        }
    }
    if let Some((session, form)) = rev.rsplit_once('@') {
        let near: Vec<String> = suggest::nearest(session, sessions.iter().copied())
            .into_iter()
            .map(|s| format!("{s}@{form}"))
            .collect();
        if !near.is_empty() {
            return near;
        }
    }
    suggest::nearest(
        rev,
        std::iter::once("latest")
            .chain(tags.iter().map(|(n, _)| n.as_str()))
            .chain(sessions.iter().copied()),
    )
}

/// The accepted forms, with this repository's recent ids and tags.
fn forms(snapshots: &[Found], tags: &[(String, SnapshotId)]) -> String {
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
    if snapshots.iter().any(|(_, s)| s.session.is_some()) {
        h.push_str(", SESSION, SESSION@start, SESSION@end, SESSION@EPOCH, or SESSION@step=N");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TreeId;

    fn snap(hex_start: &str, session: Option<&str>, labels: &[(&str, &str)]) -> Found {
        let hex = format!("{hex_start:0<64}");
        let snapshot = Snapshot {
            time_ns: 0,
            host: String::new(),
            workspace: String::new(),
            paths: Vec::new(),
            session: session.map(String::from),
            epoch: None,
            step: None,
            metrics: Default::default(),
            message: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            parent: None,
            root: TreeId::from_slice(&[0; 32]).expect("32 bytes"),
            summary: Default::default(),
        };
        (SnapshotId::from_hex(&hex).expect("hex id"), snapshot)
    }

    fn id(rev: &str, snaps: &[Found]) -> Result<String> {
        resolve(rev, snaps, &[]).map(|(id, _)| id.to_hex()[..4].to_string())
    }

    #[test]
    fn a_session_named_like_its_own_snapshots_prefix_is_no_clash() {
        let snaps = [snap("abcd1", Some("abcd"), &[]), snap("ffff", None, &[])];
        assert_eq!(id("abcd", &snaps).unwrap(), "abcd");
        let snaps = [snap("abcd1", None, &[]), snap("abcd2", None, &[])];
        let err = id("abcd", &snaps).unwrap_err().to_string();
        assert!(err.contains("give more characters"), "{err}");
    }

    #[test]
    fn end_is_the_final_snapshot_of_the_latest_run() {
        let start = [START_LABEL];
        let end = [(END_LABEL, "exited 0")];
        let snaps = [
            snap("a1", Some("s"), &start),
            snap("a2", Some("s"), &end),
            snap("b1", Some("s"), &start),
            snap("b2", Some("s"), &[]),
        ];
        assert_eq!(id("s@start", &snaps).unwrap(), "b100");
        assert_eq!(id("s", &snaps).unwrap(), "b200");
        let err = id("s@end", &snaps).unwrap_err().to_string();
        assert!(
            err.contains("latest run of session s (pre-run snapshot b1"),
            "{err}"
        );
        assert_eq!(id("s@end", &snaps[..2]).unwrap(), "a200");
    }

    #[test]
    fn a_session_name_holding_an_at_sign_resolves() {
        let snaps = [
            snap("a1", Some("me@host"), &[]),
            snap("b1", Some("me"), &[]),
        ];
        assert_eq!(id("me@host", &snaps).unwrap(), "a100");
        assert_eq!(id("me", &snaps).unwrap(), "b100");
    }
}
