//! "Did you mean ...?": the known names nearest to a misspelt one.
//!
//! Nearness is the optimal-string-alignment edit distance over characters
//! (an insertion, a deletion, a substitution or a swap of two neighbours
//! costs 1), ignoring case. A name is suggested only when it is within a
//! third of the query's length (at least 1 edit) so that short queries do
//! not pull in every short name.

/// How many suggestions a message shows.
pub const MAX_SUGGESTIONS: usize = 3;

/// Edit distance between `a` and `b` (see the module comment).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before the previous (for swaps), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The most edits a suggestion for `query` may be away from it.
fn reach(query: &str) -> usize {
    (query.chars().count() / 3).max(1)
}

/// Candidates within reach of `query`, nearest first (ties in the order
/// given), without duplicates and without `query` itself, at most
/// `MAX_SUGGESTIONS`.
pub fn nearest<'a>(query: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let q = query.to_lowercase();
    rank(query, candidates, |c| distance(&q, &c.to_lowercase()))
}

/// Like `nearest`, for paths of a snapshot: a query without a `/` is also
/// compared with each path's last component (one edit more), so `model.pt`
/// finds `checkpoints/model.pt`.
pub fn nearest_paths<'a>(query: &str, paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let q = query.trim_end_matches('/').to_lowercase();
    rank(query, paths, |p| {
        let p = p.to_lowercase();
        let whole = distance(&q, &p);
        match p.rsplit_once('/') {
            Some((_, name)) if !q.contains('/') => whole.min(distance(&q, name) + 1),
            _ => whole,
        }
    })
}

fn rank<'a>(
    query: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    score: impl Fn(&str) -> usize,
) -> Vec<String> {
    let reach = reach(query);
    let mut scored: Vec<(usize, &str)> = Vec::new();
    for c in candidates {
        if c == query || scored.iter().any(|(_, s)| *s == c) {
            continue;
        }
        let d = score(c);
        if d <= reach {
            scored.push((d, c));
        }
    }
    scored.sort_by_key(|(d, _)| *d);
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// "did you mean 'a' or 'b'?", or `None` when there is nothing to suggest.
pub fn did_you_mean(names: &[String]) -> Option<String> {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean {one}?")),
        [rest @ .., last] => Some(format!("did you mean {} or {last}?", rest.join(", "))),
    }
}

/// The error for `snap tag --delete NAME` of a tag that does not exist: the
/// tags there are, and the nearest one.
pub fn no_such_tag(name: &str, known: &[String]) -> crate::error::Error {
    let near = nearest(name, known.iter().map(String::as_str));
    let mut why = format!(
        "no such tag (tags: {})",
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        }
    );
    if let Some(line) = did_you_mean(&near) {
        why = format!("{why}\n  {line}");
    }
    crate::error::Error::invalid("tag", name, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_edits_and_swaps() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("best", "best"), 0);
        assert_eq!(distance("bset", "best"), 1);
        assert_eq!(distance("bes", "best"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("épo", "epo"), 1);
    }

    #[test]
    fn nearest_stays_within_reach_and_ignores_case() {
        let names = ["best", "baseline", "run-7/best", "BEST2"];
        assert_eq!(nearest("bset", names), vec!["best"]);
        assert_eq!(nearest("Best", names), vec!["best", "BEST2"]);
        assert!(nearest("zzzz", names).is_empty());
        assert!(nearest("best", ["best"]).is_empty());
    }

    #[test]
    fn paths_match_by_last_component() {
        let paths = ["checkpoints", "checkpoints/model.pt", "config/train.yaml"];
        assert_eq!(
            nearest_paths("model.pt", paths),
            vec!["checkpoints/model.pt"]
        );
        assert_eq!(nearest_paths("checkpoint/", paths), vec!["checkpoints"]);
        assert_eq!(
            nearest_paths("config/trian.yaml", paths),
            vec!["config/train.yaml"]
        );
    }

    #[test]
    fn did_you_mean_lists_names() {
        assert_eq!(did_you_mean(&[]), None);
        assert_eq!(did_you_mean(&["a".into()]).unwrap(), "did you mean 'a'?");
        assert_eq!(
            did_you_mean(&["a".into(), "b".into(), "c".into()]).unwrap(),
            "did you mean 'a', 'b' or 'c'?"
        );
    }
}
