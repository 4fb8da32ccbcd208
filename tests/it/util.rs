//! Shared fixtures: seeded data, a workspace in a temporary directory that
//! drives the real `snap` binary, and a tree comparison that checks bytes,
//! kinds, symlink targets, modes and nanosecond mtimes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use serde_json::Value;

pub const MIB: usize = 1 << 20;
/// The default chunker's maximum chunk size.
pub const MAX_CHUNK: usize = 4 * MIB;

/// splitmix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }

    /// `len` bytes of log-like text (compressible, but not trivially).
    pub fn text(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 64);
        let mut step = 0u64;
        while v.len() < len {
            step += 1;
            let loss = self.below(100_000);
            let acc = self.below(10_000);
            v.extend_from_slice(
                format!("step {step} loss 0.{loss:05} acc 0.{acc:04} lr 3e-4\n").as_bytes(),
            );
        }
        v.truncate(len);
        v
    }
}

/// Seeded random bytes in one call.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// A `snap` command with a clean environment (no SNAP_* variables leak in).
pub fn snap_in(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("snap").expect("the snap binary is built");
    cmd.current_dir(dir)
        .env_remove("SNAP_REPO")
        .env_remove("SNAP_SESSION")
        .env("SNAP_LOCK_WAIT", "30");
    cmd
}

/// The same, as a `std::process::Command` (for spawning and killing).
pub fn snap_std(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::cargo_bin("snap").expect("the snap binary is built");
    cmd.current_dir(dir)
        .env_remove("SNAP_REPO")
        .env_remove("SNAP_SESSION")
        .env("SNAP_LOCK_WAIT", "30");
    cmd
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary directory holding a workspace `ws/` (with `.snap/` once
/// initialised) and room for restore targets beside it.
pub struct Ws {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Ws {
    /// An empty workspace, not initialised.
    pub fn bare() -> Ws {
        let tmp = tempfile::Builder::new()
            .prefix("snap-it-")
            .tempdir()
            .expect("create temporary directory");
        let root = tmp.path().join("ws");
        fs::create_dir(&root).expect("create workspace");
        Ws { tmp, root }
    }

    /// A workspace with a repository in `ws/.snap`.
    pub fn new() -> Ws {
        let ws = Ws::bare();
        ws.ok(&["init"]);
        ws
    }

    pub fn repo(&self) -> PathBuf {
        self.root.join(".snap")
    }

    /// A path beside the workspace (not inside it), e.g. a restore target.
    pub fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn cmd(&self) -> Command {
        snap_in(&self.root)
    }

    /// Runs snap in the workspace and returns its output, whatever the status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run snap")
    }

    /// Runs snap and asserts it succeeded; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "snap {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status.code(),
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Runs snap, asserts the exit code, returns the output.
    pub fn fails(&self, args: &[&str], code: i32) -> Output {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "snap {args:?}: expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            stdout(&o),
            stderr(&o)
        );
        o
    }

    /// Runs snap with `--json` appended, asserts success, parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("snap {a:?}: bad JSON ({e}):\n{out}"))
    }

    /// Like `json`, with one extra environment variable.
    pub fn json_env(&self, args: &[&str], key: &str, value: &str) -> Value {
        let o = self
            .cmd()
            .env(key, value)
            .args(args)
            .arg("--json")
            .output()
            .expect("run snap");
        assert!(o.status.success(), "snap {args:?}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).expect("JSON output")
    }

    /// `snap commit --json` with extra arguments; returns the snapshot JSON.
    pub fn commit(&self, args: &[&str]) -> Value {
        let mut a = vec!["commit"];
        a.extend_from_slice(args);
        self.json(&a)
    }

    /// Commits and returns the full snapshot id.
    pub fn commit_id(&self, args: &[&str]) -> String {
        id_of(&self.commit(args))
    }

    pub fn log(&self) -> Vec<Value> {
        self.json(&["log"])
            .as_array()
            .expect("log --json is an array")
            .clone()
    }

    /// The `files` list of `snap show REV --json`, keyed by path.
    pub fn show_files(&self, rev: &str) -> BTreeMap<String, Value> {
        let v = self.json(&["show", rev]);
        v["files"]
            .as_array()
            .expect("show --json has files")
            .iter()
            .map(|f| (f["path"].as_str().expect("path").to_string(), f.clone()))
            .collect()
    }

    /// Restores `rev` into a fresh directory beside the workspace.
    pub fn restore_to(&self, rev: &str, name: &str) -> PathBuf {
        let target = self.outside(name);
        let t = target.to_str().expect("utf-8 temp path").to_string();
        self.ok(&["restore", rev, "--target", &t]);
        target
    }

    pub fn write(&self, rel: &str, data: &[u8]) {
        write_file(&self.root.join(rel), data);
    }
}

pub fn id_of(snapshot_json: &Value) -> String {
    snapshot_json["id"]
        .as_str()
        .expect("snapshot JSON has an id")
        .to_string()
}

pub fn summary_u64(snapshot_json: &Value, key: &str) -> u64 {
    snapshot_json["summary"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("summary.{key} missing in {snapshot_json}"))
}

/// Writes a file, creating its parent directories.
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("create parent directories");
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Sets atime and mtime of `path` itself (symlinks are not followed).
pub fn set_mtime_ns(path: &Path, ns: i64) {
    let t = filetime::FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    );
    filetime::set_symlink_file_times(path, t, t)
        .unwrap_or_else(|e| panic!("set times of {}: {e}", path.display()));
}

pub fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// Waits (bounded) until every file under `root` was last changed (mtime and
/// ctime) more than `margin` ago, so that the stat cache trusts them. The
/// stat cache refuses files changed within 50 ms of being read; ctime cannot
/// be set, so this is a wait on the clock, not a synchronisation.
pub fn wait_until_settled(root: &Path, margin: Duration) {
    let mut newest = 0i64;
    for (path, _) in walk(root, &[".snap"]) {
        let m = fs::symlink_metadata(root.join(&path)).expect("stat");
        newest = newest
            .max(mtime_ns(&m))
            .max(m.ctime() * 1_000_000_000 + m.ctime_nsec());
    }
    let deadline = SystemTime::now() + Duration::from_secs(10);
    loop {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as i64;
        if now - newest > margin.as_nanos() as i64 {
            return;
        }
        assert!(SystemTime::now() < deadline, "clock does not advance");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a file system entry is, for comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Size and BLAKE3 of the content (short in assertion messages).
    File {
        size: u64,
        blake3: String,
    },
    Dir,
    Symlink(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits; 0 for symlinks (their mode is not meaningful).
    pub mode: u32,
    pub mtime_ns: i64,
}

/// Every entry below `root` (not following symlinks), keyed by relative path.
/// Top-level names in `exclude` are skipped.
pub fn walk(root: &Path, exclude: &[&str]) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    walk_into(root, Path::new(""), exclude, &mut out);
    out
}

fn walk_into(root: &Path, rel: &Path, exclude: &[&str], out: &mut BTreeMap<PathBuf, Node>) {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").file_name())
        .collect();
    names.sort();
    for name in names {
        if rel.as_os_str().is_empty() && exclude.iter().any(|x| OsStr::new(x) == name) {
            continue;
        }
        let path = rel.join(&name);
        let abs = root.join(&path);
        let m = fs::symlink_metadata(&abs).expect("lstat");
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&abs).expect("readlink"))
        } else if ft.is_dir() {
            Kind::Dir
        } else {
            let data = fs::read(&abs).unwrap_or_else(|e| panic!("read {}: {e}", abs.display()));
            Kind::File {
                size: data.len() as u64,
                blake3: blake3::hash(&data).to_hex()[..16].to_string(),
            }
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        };
        out.insert(
            path.clone(),
            Node {
                kind,
                mode,
                mtime_ns: mtime_ns(&m),
            },
        );
        if ft.is_dir() {
            walk_into(root, &path, exclude, out);
        }
    }
}

/// Asserts two trees are identical: same paths, kinds, bytes, symlink
/// targets, modes and nanosecond mtimes.
pub fn assert_same_tree(expected: &Path, actual: &Path, exclude: &[&str]) {
    let a = walk(expected, exclude);
    let b = walk(actual, exclude);
    let only_a: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).collect();
    let only_b: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "trees differ: only in {}: {only_a:?}; only in {}: {only_b:?}",
        expected.display(),
        actual.display()
    );
    for (path, na) in &a {
        let nb = &b[path];
        assert_eq!(na, nb, "entry {} differs", path.display());
    }
}

/// Asserts the tree has exactly these relative paths (dirs included).
pub fn assert_paths(root: &Path, expected: &[&str]) {
    let got: Vec<String> = walk(root, &[])
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "paths under {}", root.display());
}

/// Data packs of a repository (pack kind byte 0), with their paths.
pub fn packs_of_kind(repo: &Path, kind: u8) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(repo.join("packs")).expect("list packs") {
        let sub = sub.expect("entry").path();
        if !sub.is_dir() {
            continue;
        }
        for p in fs::read_dir(&sub).expect("list packs") {
            let p = p.expect("entry").path();
            if p.extension() == Some(OsStr::new("pack")) {
                let bytes = fs::read(&p).expect("read pack");
                if bytes.get(6) == Some(&kind) {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}

/// XORs one byte of a file.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for corruption");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).expect("write byte");
}

/// A file name from raw bytes (need not be UTF-8).
pub fn raw_name(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

/// Number of entries in a directory (0 if it does not exist).
pub fn count_entries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0)
}

// ---- Helpers for `snap run`, retention and import tests ----

/// PATH with the directory of the `snap` binary first, so that a child
/// process of `snap run` can call `snap` itself.
pub fn path_with_snap() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_snap"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf();
    let mut dirs = vec![bin];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).expect("join PATH")
}

/// Polls `cond` every 10 ms until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A command paused at a failpoint (`SNAP_FAILPOINT_WAIT`): the test runs a
/// competing command while this one waits, then lets it go on. Races tested
/// this way are decided by the barrier, not by timing.
pub struct Paused {
    child: std::process::Child,
    go: PathBuf,
    _dir: tempfile::TempDir,
}

impl Paused {
    /// Starts `cmd` and returns once it has reached the failpoint `point`.
    pub fn at(mut cmd: std::process::Command, point: &str) -> Paused {
        let dir = tempfile::tempdir().expect("barrier dir");
        let stem = point.replace([':', '/'], "-");
        let reached = dir.path().join(format!("{stem}.reached"));
        let child = cmd
            .env("SNAP_FAILPOINT_WAIT", point)
            .env("SNAP_FAILPOINT_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn snap");
        let mut paused = Paused {
            child,
            go: dir.path().join(format!("{stem}.go")),
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !reached.exists() {
            if let Ok(Some(status)) = paused.child.try_wait() {
                let o = paused.child.wait_with_output().expect("output");
                panic!(
                    "snap exited ({status}) before failpoint {point}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "snap never reached failpoint {point}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        paused
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Kills the command where it waits (SIGKILL: no cleanup of any kind)
    /// and reaps it.
    pub fn kill(mut self) -> Output {
        self.child.kill().expect("kill snap");
        self.child.wait_with_output().expect("reap snap")
    }

    /// Lets the command go on and waits for it to finish.
    pub fn finish(self) -> Output {
        fs::write(&self.go, b"").expect("release the barrier");
        self.child.wait_with_output().expect("wait for snap")
    }
}

/// Total bytes of every file under `repo/packs`.
pub fn pack_bytes(repo: &Path) -> u64 {
    walk(&repo.join("packs"), &[])
        .values()
        .map(|n| match n.kind {
            Kind::File { size, .. } => size,
            _ => 0,
        })
        .sum()
}

/// Copies the entries of `src` into the existing directory `dst`
/// (files, directories and symlinks; contents and modes, not times).
pub fn copy_tree(src: &Path, dst: &Path) {
    for entry in fs::read_dir(src).expect("list directory") {
        let entry = entry.expect("dir entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ft = entry.file_type().expect("file type");
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).expect("readlink"), &to)
                .expect("create symlink");
        } else if ft.is_dir() {
            fs::create_dir(&to).expect("create directory");
            copy_tree(&from, &to);
        } else {
            fs::copy(&from, &to).expect("copy file");
        }
    }
}

/// Every regular file below `root` with its bytes, keyed by relative path.
pub fn file_contents(root: &Path, exclude: &[&str]) -> BTreeMap<String, Vec<u8>> {
    walk(root, exclude)
        .into_iter()
        .filter(|(_, n)| matches!(n.kind, Kind::File { .. }))
        .map(|(p, _)| {
            let data = fs::read(root.join(&p)).expect("read file");
            (p.to_string_lossy().into_owned(), data)
        })
        .collect()
}

/// One entry of a zip archive built by `write_zip`.
pub struct ZipItem {
    pub name: String,
    /// None for a directory entry.
    pub data: Option<Vec<u8>>,
    /// A symlink entry: `data` is the target.
    pub symlink: bool,
    /// Year, month, day, hour, minute, second (even) as the archive records it.
    pub time: (u16, u8, u8, u8, u8, u8),
    pub mode: u32,
}

impl ZipItem {
    pub fn file(name: &str, data: Vec<u8>) -> ZipItem {
        ZipItem {
            name: name.to_string(),
            data: Some(data),
            symlink: false,
            time: (2024, 1, 2, 3, 4, 6),
            mode: 0o644,
        }
    }

    pub fn symlink(name: &str, target: &str) -> ZipItem {
        ZipItem {
            symlink: true,
            mode: 0o777,
            ..ZipItem::file(name, target.as_bytes().to_vec())
        }
    }

    pub fn dir(name: &str) -> ZipItem {
        ZipItem {
            name: name.to_string(),
            data: None,
            symlink: false,
            time: (2024, 1, 2, 3, 4, 6),
            mode: 0o755,
        }
    }

    pub fn at(mut self, time: (u16, u8, u8, u8, u8, u8)) -> ZipItem {
        self.time = time;
        self
    }

    pub fn mode(mut self, mode: u32) -> ZipItem {
        self.mode = mode;
        self
    }
}

/// Writes a deflate-compressed zip archive with the zip crate.
pub fn write_zip(path: &Path, items: &[ZipItem]) {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let file = fs::File::create(path).expect("create zip");
    let mut w = zip::ZipWriter::new(file);
    for it in items {
        let (y, mo, d, h, mi, s) = it.time;
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(
                zip::DateTime::from_date_and_time(y, mo, d, h, mi, s).expect("valid zip time"),
            )
            .unix_permissions(it.mode);
        match &it.data {
            Some(target) if it.symlink => w
                .add_symlink(it.name.as_str(), String::from_utf8_lossy(target), opts)
                .expect("add zip symlink"),
            Some(data) => {
                w.start_file(it.name.as_str(), opts)
                    .expect("start zip entry");
                w.write_all(data).expect("write zip entry");
            }
            None => w
                .add_directory(it.name.as_str(), opts)
                .expect("add zip directory"),
        }
    }
    w.finish().expect("finish zip");
}

/// Waits up to `timeout` for `child` to exit; None if it is still running.
pub fn wait_timeout(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A pseudo-terminal. The master side is held open (closing it would hang
/// up the terminal); `read_master` reads what was written to the terminal.
pub struct Pty {
    master: fs::File,
    slave: std::ffi::CString,
}

impl Pty {
    pub fn open() -> Pty {
        use std::os::fd::FromRawFd;
        // SAFETY: plain libc calls on a descriptor we own; ptsname_r writes
        // at most buf.len() bytes.
        unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let master = fs::File::from_raw_fd(fd);
            assert_eq!(libc::grantpt(fd), 0, "grantpt");
            assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
            let mut buf = [0 as libc::c_char; 128];
            assert_eq!(
                libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()),
                0,
                "ptsname_r"
            );
            let slave = std::ffi::CStr::from_ptr(buf.as_ptr()).to_owned();
            Pty { master, slave }
        }
    }

    /// Makes the pty `cmd`'s standard error (not its controlling terminal).
    pub fn attach_stderr(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let slave = self.slave.clone();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(slave.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
                if fd < 0 || libc::dup2(fd, 2) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if fd > 2 {
                    libc::close(fd);
                }
                Ok(())
            });
        }
    }

    /// The slave side, opened here: hold it while a reader runs, so that
    /// reading does not end before the process under test opened it.
    pub fn open_slave(&self) -> fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(std::ffi::OsStr::from_bytes(self.slave.as_bytes()))
            .expect("open the pty slave")
    }

    /// Reads the terminal's output on a thread until every holder of the
    /// slave side (see `open_slave`) has closed it; join for the bytes.
    pub fn read_master(&self) -> std::thread::JoinHandle<Vec<u8>> {
        let mut master = self.master.try_clone().expect("dup the pty master");
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            // Reading fails with EIO once the slave side is closed.
            while let Ok(n) = std::io::Read::read(&mut master, &mut buf) {
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            out
        })
    }

    /// Makes `cmd` the leader of a new session whose controlling terminal is
    /// this pty, with the pty as its stdin: like a command typed into an
    /// interactive shell, it is in the terminal's foreground process group.
    pub fn attach_stdin(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        let slave = self.slave.clone();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let fd = libc::open(slave.as_ptr(), libc::O_RDWR);
                if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 || libc::dup2(fd, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if fd > 2 {
                    libc::close(fd);
                }
                Ok(())
            });
        }
    }
}
