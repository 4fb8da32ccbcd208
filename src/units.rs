//! Human-readable quantities for messages, shared by the library (the
//! runner's notes) and the CLI: sizes in binary units and counted nouns.

/// A size in bytes with a binary unit: `512 B`, `1.5 KiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `n` and an English noun in the right number: `1 snapshot`, `2 snapshots`,
/// `0 files`, `3 entries`. For the regular nouns snap uses (a consonant and
/// `y` become `ies`; `s`, `x`, `ch`, `sh` take `es`).
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let consonant_y = noun
        .strip_suffix('y')
        .is_some_and(|stem| stem.chars().last().is_some_and(|c| !"aeiou".contains(c)));
    if consonant_y {
        format!("{n} {}ies", &noun[..noun.len() - 1])
    } else if ["s", "x", "ch", "sh"].iter().any(|s| noun.ends_with(s)) {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1_288_490_189), "1.2 GiB");
        assert_eq!(bytes(u64::MAX), "16777216.0 TiB");
    }

    #[test]
    fn plurals() {
        assert_eq!(count(1, "snapshot"), "1 snapshot");
        assert_eq!(count(2, "snapshot"), "2 snapshots");
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(3, "entry"), "3 entries");
        assert_eq!(count(2, "key"), "2 keys");
        assert_eq!(count(2, "pass"), "2 passes");
    }
}
