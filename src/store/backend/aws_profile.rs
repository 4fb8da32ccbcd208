//! AWS profiles for `s3://` remotes: `AWS_PROFILE`, `~/.aws/credentials`
//! and `~/.aws/config`, which object_store 0.14 does not read.
//!
//! A small reader of the shared-file format, not aws-config's
//! `ProfileFileCredentialsProvider` behind an object_store
//! `CredentialProvider`: that one crate brings the AWS SDK's runtime (its
//! own HTTP client and TLS stack besides object_store's), a large build on
//! a two-core machine, for features a static profile does not use
//! (docs/remotes.md, "AWS profiles"). What this reads: `aws_access_key_id`,
//! `aws_secret_access_key`, `aws_session_token`, `region`, `endpoint_url`.
//! A profile that gets its credentials another way (`credential_process`,
//! `sso_*`, `role_arn`, `source_profile`, `web_identity_token_file`) is
//! refused with a message saying so, never silently used without them.
//!
//! The environment wins over the files, as for the AWS CLI. Secrets are
//! never shown: `Debug` of a profile and every message name the file and
//! the profile, never a value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// At most this many bytes of a profile file are read (it is a few lines).
const MAX_FILE: u64 = 1 << 20;

/// Settings of one profile, from both files.
#[derive(Clone, Default, PartialEq)]
pub struct Profile {
    pub name: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("has_credentials", &self.access_key_id.is_some())
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// Keys that mean "credentials come from elsewhere", which this reader
/// does not follow.
const UNSUPPORTED: &[&str] = &[
    "credential_process",
    "role_arn",
    "source_profile",
    "web_identity_token_file",
    "sso_session",
    "sso_start_url",
    "sso_account_id",
];

/// The profile to use, read from the shared files, given the environment
/// (`env`): `AWS_PROFILE` (else `default`), `AWS_SHARED_CREDENTIALS_FILE`
/// and `AWS_CONFIG_FILE` (else `$HOME/.aws/credentials` and
/// `$HOME/.aws/config`). None when no profile was named and neither file
/// has a `default` one. An error when the named profile is in neither
/// file, a file cannot be read, or the profile needs what is not supported.
pub fn load(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Profile>> {
    let named = env("AWS_PROFILE").filter(|p| !p.is_empty());
    let name = named.clone().unwrap_or_else(|| "default".to_string());
    let home = env("HOME").map(PathBuf::from);
    let file = |var: &str, leaf: &str| {
        env(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(leaf)))
    };
    let creds_path = file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_path = file("AWS_CONFIG_FILE", "config");
    let mut found = false;
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut sources: Vec<PathBuf> = Vec::new();
    // config first, so that credentials (which the AWS tools prefer) win.
    for (path, section) in [
        (&config_path, config_section(&name)),
        (&creds_path, name.clone()),
    ] {
        let Some(path) = path else { continue };
        let Some(text) = read(path)? else { continue };
        sources.push(path.clone());
        if let Some(s) = parse(&text, path)?.remove(&section) {
            found = true;
            keys.extend(s);
        }
    }
    if !found {
        return match named {
            None => Ok(None),
            Some(p) => Err(Error::invalid(
                "AWS_PROFILE",
                p,
                format!(
                    "no such profile in {}; check the name, or unset AWS_PROFILE",
                    shown(&sources, &creds_path, &config_path)
                ),
            )),
        };
    }
    // Keys in the environment make the profile's way to credentials moot.
    let env_keys = env("AWS_ACCESS_KEY_ID").is_some();
    if let Some(k) = UNSUPPORTED
        .iter()
        .find(|k| !env_keys && keys.contains_key(**k))
    {
        return Err(Error::invalid(
            "AWS profile",
            &name,
            format!(
                "uses `{k}`, which snap does not follow (it reads keys, a session token, region and endpoint_url); \
                 export AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (e.g. from \
                 `aws configure export-credentials --profile {name} --format env`) instead"
            ),
        ));
    }
    let take = |k: &str| keys.get(k).filter(|v| !v.is_empty()).cloned();
    let p = Profile {
        name: name.clone(),
        access_key_id: take("aws_access_key_id"),
        secret_access_key: take("aws_secret_access_key"),
        session_token: take("aws_session_token"),
        region: take("region"),
        endpoint_url: take("endpoint_url"),
    };
    if p.access_key_id.is_some() != p.secret_access_key.is_some() {
        return Err(Error::invalid(
            "AWS profile",
            &name,
            "has only one of aws_access_key_id and aws_secret_access_key; give both",
        ));
    }
    Ok(Some(p))
}

/// `[profile NAME]` in the config file, except `[default]`.
fn config_section(name: &str) -> String {
    match name {
        "default" => "default".into(),
        n => format!("profile {n}"),
    }
}

fn shown(sources: &[PathBuf], creds: &Option<PathBuf>, config: &Option<PathBuf>) -> String {
    let list: Vec<String> = if sources.is_empty() {
        [creds, config]
            .into_iter()
            .flatten()
            .map(|p| format!("{} (missing)", p.display()))
            .collect()
    } else {
        sources.iter().map(|p| p.display().to_string()).collect()
    };
    match list.is_empty() {
        true => "the AWS files (HOME is not set)".into(),
        false => list.join(" and "),
    }
}

/// The file's text; None if it does not exist.
fn read(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let mut text = String::new();
    f.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("read", path, e))?;
    Ok(Some(text))
}

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// The sections of an AWS shared file: `[name]` headers, `key = value`
/// lines, `#` and `;` comment lines. Indented lines continue a nested
/// setting (`s3 =` followed by `  key = value`) and are skipped: they are
/// per-service settings this reader does not use.
fn parse(text: &str, path: &Path) -> Result<Sections> {
    let mut out = Sections::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or_else(|| bad_line(path, n))?;
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| bad_line(path, n))?;
        if let Some(section) = &current {
            out.entry(section.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Ok(out)
}

/// Names the line only: it may hold a secret.
fn bad_line(path: &Path, n: usize) -> Error {
    Error::invalid(
        "AWS profile file",
        format!("{}:{}", path.display(), n + 1),
        "is not `[section]` or `key = value`; fix the file (the AWS CLI reads the same format)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }

    fn home(creds: &str, config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(".aws")).unwrap();
        std::fs::write(d.path().join(".aws/credentials"), creds).unwrap();
        std::fs::write(d.path().join(".aws/config"), config).unwrap();
        d
    }

    const CREDS: &str = "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = s3cr3t-def\n\n\
                         # work\n[work]\naws_access_key_id=AKWORK\naws_secret_access_key = s3cr3t-work\naws_session_token = tok\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile work]\nregion = us-west-2\n\
                          endpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = path\n\
                          [profile sso]\nsso_session = corp\n";

    #[test]
    fn a_named_profile_reads_both_files() {
        let h = home(CREDS, CONFIG);
        let e = [
            ("HOME", h.path().display().to_string()),
            ("AWS_PROFILE", "work".to_string()),
        ];
        let p = load(&env_of(&e)).unwrap().unwrap();
        assert_eq!(p.access_key_id.as_deref(), Some("AKWORK"));
        assert_eq!(p.secret_access_key.as_deref(), Some("s3cr3t-work"));
        assert_eq!(p.session_token.as_deref(), Some("tok"));
        assert_eq!(p.region.as_deref(), Some("us-west-2"));
        assert_eq!(p.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(!format!("{p:?}").contains("s3cr3t"), "{p:?}");
    }

    #[test]
    fn without_aws_profile_the_default_profile_is_used_if_there_is_one() {
        let h = home(CREDS, CONFIG);
        let e = [("HOME", h.path().display().to_string())];
        let p = load(&env_of(&e)).unwrap().unwrap();
        assert_eq!(
            (p.name.as_str(), p.region.as_deref()),
            ("default", Some("eu-west-1"))
        );
        let empty = tempfile::tempdir().unwrap();
        let e = [("HOME", empty.path().display().to_string())];
        assert_eq!(load(&env_of(&e)).unwrap(), None);
    }

    #[test]
    fn a_missing_or_unsupported_profile_is_refused_without_showing_secrets() {
        let h = home(CREDS, CONFIG);
        let hp = h.path().display().to_string();
        let e = [("HOME", hp.clone()), ("AWS_PROFILE", "nope".to_string())];
        let err = load(&env_of(&e)).unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("no such profile"),
            "{err}"
        );
        assert!(err.contains(".aws/credentials"), "{err}");
        let e = [("HOME", hp.clone()), ("AWS_PROFILE", "sso".to_string())];
        let err = load(&env_of(&e)).unwrap_err().to_string();
        assert!(err.contains("sso_session"), "{err}");
        let h2 = home("[default]\naws_access_key_id = AK\nthis line s3cr3t\n", "");
        let e = [("HOME", h2.path().display().to_string())];
        let err = load(&env_of(&e)).unwrap_err().to_string();
        assert!(
            err.contains("credentials:3") && !err.contains("s3cr3t"),
            "{err}"
        );
    }
}
