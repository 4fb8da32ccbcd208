//! `az://` against a real Azure Blob emulator (Azurite, started by the test
//! on a free port and stopped by its pid) and `gs://` as far as it can go
//! without the network: URLs, and a clear error for missing credentials.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

use crate::util::{assert_same_tree, random_bytes, snap_in, stderr, stdout, Ws};

/// Azurite's well-known development account and key (public, in its docs).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The azurite-blob executable: SNAP_TEST_AZURITE (set by .ci/run), else
/// the cache .ci/run installs into.
fn azurite_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SNAP_TEST_AZURITE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME");
    Path::new(&home).join(".cache/snap-ci/azurite/node_modules/.bin/azurite-blob")
}

/// A running Azurite, killed (by its pid) when dropped.
struct Azurite {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_azurite() -> Azurite {
    let bin = azurite_bin();
    assert!(
        bin.exists(),
        "{} is missing: install Azurite with `npm install --prefix ~/.cache/snap-ci/azurite azurite@3` (.ci/run does)",
        bin.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let child = StdCommand::new(&bin)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--silent", "--skipApiVersionCheck", "--location"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start azurite-blob");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "azurite did not start on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Azurite {
        child,
        port,
        _dir: dir,
    }
}

/// Creates a container with one Shared Key signed request (python3's
/// hmac: the test needs no Azure SDK).
fn create_container(port: u16, name: &str) {
    let script = r#"
import base64, hashlib, hmac, sys, urllib.request
from email.utils import formatdate
port, name, account, key = sys.argv[1:]
date = formatdate(usegmt=True)
version = "2021-08-06"
resource = f"/{account}/{account}/{name}\nrestype:container"
sts = "PUT\n\n\n\n\n\n\n\n\n\n\n\n" + f"x-ms-date:{date}\nx-ms-version:{version}\n" + resource
sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/{account}/{name}?restype=container", method="PUT")
req.add_header("x-ms-date", date)
req.add_header("x-ms-version", version)
req.add_header("Authorization", f"SharedKey {account}:{sig}")
print(urllib.request.urlopen(req).status)
"#;
    let o = StdCommand::new("python3")
        .args(["-c", script, &port.to_string(), name, ACCOUNT, KEY])
        .output()
        .expect("run python3");
    assert!(
        o.status.success(),
        "create container: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn az(dir: &Path, port: u16) -> Command {
    let mut c = snap_in(dir);
    c.env("AZURE_STORAGE_USE_EMULATOR", "true")
        .env(
            "AZURITE_BLOB_STORAGE_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .env("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT)
        .env("AZURE_STORAGE_ACCOUNT_KEY", KEY);
    c
}

fn ok(mut c: Command) -> String {
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    stdout(&o)
}

#[test]
fn az_push_pull_and_restore_from_round_trip_on_azurite() {
    let azurite = start_azurite();
    let port = azurite.port;
    create_container(port, "runs");
    let url = "az://runs/team";
    let ws = Ws::new();
    ws.write("checkpoints/best.pt", &random_bytes(21, 1_500_000));
    ws.write("config.yaml", b"lr: 0.1\n");
    ws.commit(&["--tag", "best"]);
    ws.write("checkpoints/epoch_2.pt", &random_bytes(22, 900_000));
    ws.commit(&[]);
    let mut c = az(&ws.root, port);
    c.args(["remote", "add", "origin", url]);
    ok(c);
    let mut c = az(&ws.root, port);
    c.args(["push", "--json"]);
    let pushed: Value = serde_json::from_str(&ok(c)).unwrap();
    assert_eq!(pushed["snapshots"], 2, "{pushed}");
    assert_eq!(pushed["tags"], serde_json::json!(["best"]));
    // A second push sends nothing; tags move with Azure's conditional puts.
    let mut c = az(&ws.root, port);
    c.args(["push", "--json"]);
    let again: Value = serde_json::from_str(&ok(c)).unwrap();
    assert_eq!(again["bytes_uploaded"], 0, "{again}");

    let other = Ws::new();
    let mut c = az(&other.root, port);
    c.args(["remote", "add", "origin", url]);
    ok(c);
    let mut c = az(&other.root, port);
    c.args(["pull", "--json"]);
    let pulled: Value = serde_json::from_str(&ok(c)).unwrap();
    assert_eq!(pulled["snapshots"], 2, "{pulled}");
    let a = ws.outside("a");
    let b = other.outside("b");
    ws.ok(&["restore", "best", "--target", a.to_str().unwrap()]);
    let mut c = az(&other.root, port);
    c.args([
        "restore",
        "--from",
        "origin",
        "best",
        "--target",
        b.to_str().unwrap(),
    ]);
    ok(c);
    assert_same_tree(&a, &b, &[]);

    // A missing container is named.
    let mut c = az(&ws.root, port);
    c.args(["remote", "add", "gone", "az://no-such-container/x"]);
    ok(c);
    let o = az(&ws.root, port).args(["push", "gone"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(KEY), "{}", stderr(&o));
    drop(azurite);
}

#[test]
fn gs_urls_parse_and_bad_credentials_get_a_clear_error() {
    let ws = Ws::new();
    ws.write("a.txt", b"a");
    ws.commit(&[]);
    ws.ok(&["remote", "add", "g", "gs://snap-bucket/team/runs"]);
    assert!(ws
        .ok(&["remote", "list"])
        .contains("gs://snap-bucket/team/runs"));
    // A key file that is not there, and one that is not a key.
    let junk = ws.outside("key.json");
    let mut f = std::fs::File::create(&junk).unwrap();
    f.write_all(b"{\"not\": \"a key\"}").unwrap();
    for key in [ws.outside("missing.json"), junk] {
        let o = ws
            .cmd()
            .env("GOOGLE_SERVICE_ACCOUNT", &key)
            .args(["push", "g"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("gs://snap-bucket/team/runs"), "{err}");
        assert!(err.contains("GOOGLE_SERVICE_ACCOUNT"), "{err}");
    }
}
