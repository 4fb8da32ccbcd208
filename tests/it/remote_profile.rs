//! AWS profiles for `s3://` remotes against the real `moto_server` of
//! `remote.rs`: a fake HOME with `~/.aws/credentials` and `~/.aws/config`
//! (region, endpoint_url) and no AWS_* variables but AWS_PROFILE.

use std::path::Path;

use assert_cmd::Command;

use crate::remote::{bucket, server};
use crate::util::{random_bytes, snap_in, stderr, stdout, Ws};

/// snap in `dir` with HOME at `home` and no AWS_* variable but `profile`.
fn snap(dir: &Path, home: &Path, profile: Option<&str>) -> Command {
    let mut c = snap_in(dir);
    c.env("HOME", home);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            c.env_remove(&k);
        }
    }
    if let Some(p) = profile {
        c.env("AWS_PROFILE", p);
    }
    c
}

fn fake_home(dir: &Path, endpoint: &str) {
    std::fs::create_dir_all(dir.join(".aws")).unwrap();
    std::fs::write(
        dir.join(".aws/credentials"),
        "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = default-s3cr3t\n\n\
         [team]\naws_access_key_id = AKTEAM\naws_secret_access_key = team-s3cr3t\n",
    )
    .unwrap();
    std::fs::write(
        dir.join(".aws/config"),
        format!(
            "[default]\nregion = us-east-1\n\n[profile team]\nregion = us-east-1\nendpoint_url = {endpoint}\n\n\
             [profile sso]\nsso_session = corp\nregion = us-east-1\n"
        ),
    )
    .unwrap();
}

#[test]
fn a_profile_from_the_aws_files_gives_credentials_region_and_endpoint() {
    let url = bucket("profile");
    let ws = Ws::new();
    ws.write("checkpoints/best.pt", &random_bytes(11, 300_000));
    ws.commit(&["--tag", "best"]);
    let home = ws.outside("home");
    fake_home(&home, &format!("http://{}", server()));
    let ok = |c: &mut Command| {
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
        (stdout(&o), stderr(&o))
    };
    ok(snap(&ws.root, &home, Some("team")).args(["remote", "add", "origin", &url]));
    // Only the profile says where the server is: without it this push
    // would go to AWS (and fail: the tests have no network).
    let (out, err) = ok(snap(&ws.root, &home, Some("team")).args(["push"]));
    assert!(out.contains("pushed 1 snapshot"), "{out}");
    for secret in ["team-s3cr3t", "default-s3cr3t"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
        let remotes = std::fs::read_to_string(ws.repo().join("remotes.toml")).unwrap();
        assert!(!remotes.contains(secret));
    }
    let (log, _) = ok(snap(&ws.root, &home, Some("team")).args(["log", "--from", "origin"]));
    assert!(log.contains("best"), "{log}");

    // The default profile has no endpoint: it is used without AWS_PROFILE,
    // and the environment's endpoint still wins over the (absent) profile one.
    let (log, _) = ok(snap(&ws.root, &home, None)
        .env("AWS_ENDPOINT_URL", format!("http://{}", server()))
        .env("AWS_ALLOW_HTTP", "true")
        .args(["log", "--from", "origin"]));
    assert!(log.contains("best"), "{log}");

    // A profile that is not there, and one that needs SSO: refused, named.
    let o = snap(&ws.root, &home, Some("nope"))
        .args(["push"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such profile"), "{}", stderr(&o));
    let o = snap(&ws.root, &home, Some("sso"))
        .args(["push"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("sso_session"), "{}", stderr(&o));
}
