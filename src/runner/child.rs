//! The training command as a child process: how it is started (its own
//! process group, `SNAP_SESSION` and `SNAP_REPO` set, stdin from /dev/null
//! if ours is a terminal), its output passed through byte for byte (and
//! into `--capture`) while `SNAP {...}` lines become epoch events, the
//! watcher thread, and waiting for its end without losing a last event.

use std::ffi::OsString;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Sender};

use super::interrupt::{self, Interrupts};
use super::notify::Listener;
use super::signals::{self, EpochEvent, LINE_PREFIX};
use super::watch::Watcher;
use super::RunOptions;
use crate::error::{Error, Result};

/// What the runner hears from the command while it runs.
pub enum Event {
    /// An epoch signal: the runner commits it.
    Epoch(EpochEvent),
    /// The command committed a snapshot into the session itself (`notify`).
    Committed(String),
}

enum Msg {
    Event(Event),
    /// The command has exited (not yet reaped).
    Exited,
}

/// How the command ended.
pub struct Ended {
    pub status: ExitStatus,
    /// Its stdout did not end with a newline.
    pub stdout_ends_mid_line: bool,
}

/// The command, ready to spawn.
pub fn command(opts: &RunOptions, repo: &Path) -> Command {
    let mut cmd = Command::new(&opts.command[0]);
    cmd.args(&opts.command[1..])
        .current_dir(&opts.cwd)
        .env("SNAP_SESSION", &opts.session)
        .env("SNAP_REPO", repo)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(child_stdin())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if std::env::var_os("SNAP_LOCK_WAIT").is_none() {
        cmd.env("SNAP_LOCK_WAIT", "600");
    }
    cmd
}

/// The exit code of a command that could not be started, as a shell gives it.
pub fn spawn_error_code(e: &std::io::Error) -> i32 {
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Passes the child's output through, hands every event (epoch signals,
/// and commits reported on `listener`) to `on_event` in arrival order
/// while the child runs (and those still in the pipes or the watcher after
/// it exits), forwards signals to it, and reaps it.
pub fn supervise(
    mut child: std::process::Child,
    mut watcher: Watcher,
    listener: Option<Listener>,
    opts: &RunOptions,
    capture: Option<Arc<Mutex<File>>>,
    interrupts: &Interrupts,
    on_event: &mut dyn FnMut(Event),
) -> Result<Ended> {
    let pid = child.id() as i32;
    interrupts.forward_to(pid);
    let (tx, rx) = unbounded::<Msg>();
    let stdout_last = Arc::new(AtomicU8::new(b'\n'));
    let pumps = vec![
        spawn_pump(
            child.stdout.take().expect("piped"),
            std::io::stdout(),
            capture.clone(),
            tx.clone(),
            "stdout",
            Some(stdout_last.clone()),
        ),
        spawn_pump(
            child.stderr.take().expect("piped"),
            std::io::stderr(),
            capture,
            tx.clone(),
            "stderr",
            None,
        ),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let watching = !opts.watch.is_empty() || opts.metrics_file.is_some();
    let watch_thread = {
        let (tx, stop, poll) = (tx.clone(), stop.clone(), opts.poll);
        std::thread::spawn(move || {
            while watching && !stop.load(Ordering::SeqCst) {
                for e in watcher.poll() {
                    let _ = tx.send(Msg::Event(Event::Epoch(e)));
                }
                std::thread::sleep(poll);
            }
            watcher
        })
    };
    let notify_thread = listener.map(|l| {
        let (tx, stop) = (tx.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(id) = l.recv() {
                    let _ = tx.send(Msg::Event(Event::Committed(id)));
                }
            }
            // The socket and its directory go when `l` is dropped here.
        })
    });
    // Only notices the exit: the child is reaped below, after forwarding stops.
    std::thread::spawn(move || {
        interrupt::wait_exited_unreaped(pid);
        let _ = tx.send(Msg::Exited);
    });

    let mut exited = false;
    let mut pending = Vec::new();
    for msg in rx.iter() {
        match msg {
            Msg::Event(e) if !exited => on_event(e),
            Msg::Event(e) => pending.push(e),
            Msg::Exited => {
                exited = true;
                break;
            }
        }
    }
    if !exited {
        return Err(Error::Other("lost track of the training process".into()));
    }
    interrupts.stop_forwarding();
    let status = child
        .wait()
        .map_err(|e| Error::io("wait for", command_line(&opts.command), e))?;
    // Output still in the pipes may hold epoch lines: wait for the pumps (a
    // grandchild may keep a pipe open, so not forever).
    let deadline = Instant::now() + Duration::from_secs(5);
    for p in pumps {
        while !p.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let watcher = watch_thread.join();
    if let Some(t) = notify_thread {
        let _ = t.join();
    }
    pending.extend(rx.try_iter().filter_map(|m| match m {
        Msg::Event(e) => Some(e),
        Msg::Exited => None,
    }));
    // What the command wrote after the watcher's last poll.
    if let Ok(mut w) = watcher {
        if watching {
            pending.extend(w.last_poll().into_iter().map(Event::Epoch));
        }
    }
    for e in pending {
        on_event(e);
    }
    Ok(Ended {
        status,
        stdout_ends_mid_line: stdout_last.load(Ordering::SeqCst) != b'\n',
    })
}

/// Copies a child's stream through to ours as bytes arrive, and reports
/// `SNAP {...}` lines. Lines longer than 1 MiB are not inspected.
fn spawn_pump(
    mut src: impl Read + Send + 'static,
    mut dst: impl Write + Send + 'static,
    capture: Option<Arc<Mutex<File>>>,
    tx: Sender<Msg>,
    source: &'static str,
    last_byte: Option<Arc<AtomicU8>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        let mut line: Vec<u8> = Vec::new();
        let check = |line: &[u8]| {
            if line.starts_with(LINE_PREFIX.as_bytes()) {
                if let Some(e) = signals::parse_line(&String::from_utf8_lossy(line), source) {
                    let _ = tx.send(Msg::Event(Event::Epoch(e)));
                }
            }
        };
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let _ = dst.write_all(&buf[..n]);
            let _ = dst.flush();
            if let Some(last) = &last_byte {
                last.store(buf[n - 1], Ordering::SeqCst);
            }
            if let Some(c) = &capture {
                let _ = c.lock().map(|mut f| f.write_all(&buf[..n]));
            }
            for &b in &buf[..n] {
                if b == b'\n' {
                    check(&line);
                    line.clear();
                } else if line.len() < (1 << 20) {
                    line.push(b);
                }
            }
        }
        check(&line);
    })
}

pub fn describe(status: ExitStatus, interrupted: bool) -> (i32, String) {
    let how = if interrupted { "interrupted, " } else { "" };
    match (status.code(), status.signal()) {
        (Some(0), _) => (0, format!("{how}exited 0")),
        (Some(c), _) => (c, format!("{how}failed with exit code {c}")),
        (None, Some(sig)) => (128 + sig, format!("{how}killed by signal {sig}")),
        _ => (1, "ended".into()),
    }
}

pub fn command_line(cmd: &[OsString]) -> String {
    cmd.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command's stdin. It runs in its own process group, in the background
/// of the terminal: reading a terminal from there stops it (SIGTTIN) and the
/// run would hang. So a terminal is replaced by /dev/null (reads see end of
/// file); a pipe or a file is passed on.
fn child_stdin() -> Stdio {
    if std::io::stdin().is_terminal() {
        Stdio::null()
    } else {
        Stdio::inherit()
    }
}
