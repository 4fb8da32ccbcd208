//! `snap run --push NAME`: pushing the session to a remote in the
//! background while training goes on.
//!
//! One thread per run owns the pushes. After each commit the runner calls
//! [`Pusher::request`], which only bumps a counter under a mutex, so a
//! commit is never held up by the network. The thread pushes whenever the
//! counter is ahead of what it last pushed; requests that arrive while a
//! push runs are coalesced into one next push, which sends every snapshot
//! of the session the remote lacks (so nothing is skipped by coalescing).
//!
//! Each push opens the repository afresh (its index then holds the commits
//! made since) and calls `Repo::push_beside_commits`, which does not take
//! the writer lock: the runner's commits go on during the upload.
//!
//! A failed push is retried after a backoff (doubling from
//! [`PushOptions::backoff`] up to [`MAX_BACKOFF`]), and reported; it never
//! stops training. [`Pusher::finish`] asks for a last push after the final
//! snapshot and waits for it, giving up after [`PushOptions::final_attempts`]
//! failed attempts: the snapshots are then safe locally and the report says
//! to push later.
//!
//! Notes for the user are queued and handed to the runner's thread
//! ([`Pusher::take_notes`]): the library never prints.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::ops::remote::PushReport;
use crate::repo::Repo;
use crate::units;

/// Longest wait between two attempts while the run goes on.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// At most this many failures are kept in the report (the count is exact).
const MAX_FAILURES_KEPT: usize = 20;

#[derive(Clone, Debug)]
pub struct PushOptions {
    /// The remote's name.
    pub remote: String,
    /// Wait after the first failure; doubled after each further one.
    pub backoff: Duration,
    /// Attempts of the final push before giving up (at least 1).
    pub final_attempts: u32,
}

impl PushOptions {
    pub fn new(remote: &str) -> Self {
        PushOptions {
            remote: remote.to_string(),
            backoff: Duration::from_secs(1),
            final_attempts: 3,
        }
    }
}

/// What the background pushes did, in the run's report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PushStatus {
    pub remote: String,
    /// Pushes that succeeded.
    pub pushes: usize,
    /// Snapshot records sent, over all pushes.
    pub snapshots_sent: usize,
    pub bytes_uploaded: u64,
    /// Attempts that failed (retried while attempts remained).
    pub failed_attempts: usize,
    /// The first failures' messages, each with its attempt number.
    pub failures: Vec<String>,
    /// Whether the push after the final snapshot succeeded: every snapshot
    /// of the session is on the remote.
    pub final_pushed: bool,
}

struct State {
    /// Pushes asked for so far.
    wanted: u64,
    /// No further requests; push once more if behind, then stop.
    closing: bool,
    notes: Vec<String>,
    status: PushStatus,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in the pusher thread loses nothing but its report.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The background pusher of one run.
pub struct Pusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Pusher {
    /// Starts the thread; nothing is pushed before the first `request`.
    /// Each push sends the snapshots of `session` in the repository at
    /// `repo` (and the tags naming them).
    pub fn start(repo: PathBuf, session: String, opts: PushOptions) -> Pusher {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                wanted: 0,
                closing: false,
                notes: Vec::new(),
                status: PushStatus {
                    remote: opts.remote.clone(),
                    ..PushStatus::default()
                },
            }),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let opts_remote = opts.remote.clone();
        let thread = std::thread::Builder::new()
            .name("snap-run-push".into())
            .spawn(move || {
                let push = || push_session(&repo, &session, &opts.remote);
                work(&worker, &opts, push)
            })
            .ok();
        if thread.is_none() {
            let r = &opts_remote;
            shared.lock().notes.push(format!(
                "error: could not start the background push to {r}; push later with `snap push {r}`"
            ));
        }
        Pusher { shared, thread }
    }

    /// Asks for a push of what was committed so far; returns at once.
    pub fn request(&self) {
        self.shared.lock().wanted += 1;
        self.shared.wake.notify_all();
    }

    /// Notes queued by the thread since the last call.
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().notes)
    }

    /// Asks for the final push and waits for it (with its retries).
    pub fn finish(mut self) -> (PushStatus, Vec<String>) {
        {
            let mut s = self.shared.lock();
            s.wanted += 1;
            s.closing = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut s = self.shared.lock();
        (s.status.clone(), std::mem::take(&mut s.notes))
    }
}

impl Drop for Pusher {
    /// A run that ends without `finish` (interrupted before it started):
    /// the thread stops without pushing again, and is not waited for.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
    }
}

/// One push of the session's snapshots, from a fresh open of the repository.
fn push_session(repo: &std::path::Path, session: &str, remote: &str) -> Result<PushReport> {
    let mut repo = Repo::open(repo)?;
    let revs: Vec<String> = repo
        .log()?
        .into_iter()
        .filter(|e| e.snapshot.session.as_deref() == Some(session))
        .map(|e| e.id.to_hex())
        .collect();
    repo.push_beside_commits(remote, &revs)
}

/// The thread's loop: push while behind, back off after failures, stop when
/// closing and either up to date or out of final attempts.
fn work(shared: &Shared, opts: &PushOptions, push: impl Fn() -> Result<PushReport>) {
    let mut pushed = 0u64;
    let mut failures_in_row = 0u32;
    let mut final_failures = 0u32;
    loop {
        let target = {
            let mut s = shared.lock();
            while s.wanted == pushed && !s.closing {
                s = shared.wake.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            if s.wanted == pushed {
                s.status.final_pushed = true;
                return;
            }
            s.wanted
        };
        match push() {
            Ok(r) => {
                pushed = target;
                failures_in_row = 0;
                let mut s = shared.lock();
                s.status.pushes += 1;
                s.status.snapshots_sent += r.snapshots;
                s.status.bytes_uploaded += r.bytes_uploaded;
                if r.snapshots > 0 {
                    s.notes.push(format!(
                        "pushed {} ({}) to {}",
                        units::count(r.snapshots as u64, "snapshot"),
                        units::bytes(r.bytes_uploaded),
                        opts.remote
                    ));
                }
                for c in &r.tag_conflicts {
                    s.notes
                        .push(format!("warning: push to {}: {c}", opts.remote));
                }
            }
            Err(e) => {
                failures_in_row += 1;
                let closing = {
                    let mut s = shared.lock();
                    s.status.failed_attempts += 1;
                    let attempt = s.status.failed_attempts;
                    if s.status.failures.len() < MAX_FAILURES_KEPT {
                        s.status.failures.push(format!("attempt {attempt}: {e}"));
                    }
                    s.closing
                };
                if closing {
                    final_failures += 1;
                }
                if closing && final_failures >= opts.final_attempts.max(1) {
                    let mut s = shared.lock();
                    s.notes.push(format!(
                        "error: the final push to {} failed ({}): {e}\n  every snapshot is safe in this repository; push it later with `snap push {}`",
                        opts.remote,
                        units::count(final_failures as u64, "attempt"),
                        opts.remote
                    ));
                    return;
                }
                // The final push backs off afresh; so does one whose run
                // ends during a long wait (the wait is cut short).
                let n = if closing {
                    final_failures
                } else {
                    failures_in_row
                };
                let wait = backoff(opts.backoff, n);
                shared.lock().notes.push(format!(
                    "warning: push to {} failed, retrying in {}s: {e}",
                    opts.remote,
                    wait.as_secs_f64()
                ));
                wait_out(shared, wait, closing);
            }
        }
    }
}

/// `start`, doubled for each failure after the first, at most `MAX_BACKOFF`.
fn backoff(start: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    start.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Waits `d`, or less if the run starts closing while it waits (when it
/// was not closing already).
fn wait_out(shared: &Shared, d: Duration, closing: bool) {
    let until = Instant::now() + d;
    let mut s = shared.lock();
    loop {
        if s.closing && !closing {
            return;
        }
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return;
        };
        if left.is_zero() {
            return;
        }
        s = shared
            .wake
            .wait_timeout(s, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn shared() -> Shared {
        Shared {
            state: Mutex::new(State {
                wanted: 0,
                closing: false,
                notes: Vec::new(),
                status: PushStatus::default(),
            }),
            wake: Condvar::new(),
        }
    }

    fn opts() -> PushOptions {
        PushOptions {
            remote: "origin".into(),
            backoff: Duration::from_millis(1),
            final_attempts: 2,
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = Duration::from_secs(1);
        assert_eq!(backoff(s, 1), Duration::from_secs(1));
        assert_eq!(backoff(s, 2), Duration::from_secs(2));
        assert_eq!(backoff(s, 4), Duration::from_secs(8));
        assert_eq!(backoff(s, 40), MAX_BACKOFF);
    }

    #[test]
    fn requests_made_during_a_push_are_coalesced_into_one_next_push() {
        let sh = shared();
        sh.lock().wanted = 1;
        let calls = AtomicU32::new(0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                work(&sh, &opts(), || {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n == 0 {
                        // Five commits land while the first push runs,
                        // then the run ends.
                        let mut s = sh.lock();
                        s.wanted += 5;
                        s.wanted += 1;
                        s.closing = true;
                    }
                    Ok(PushReport::default())
                })
            });
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let s = sh.lock();
        assert_eq!(s.status.pushes, 2);
        assert!(s.status.final_pushed);
    }

    #[test]
    fn a_failing_final_push_gives_up_after_its_attempts_and_says_so() {
        let sh = shared();
        {
            let mut s = sh.lock();
            s.wanted = 1;
            s.closing = true;
        }
        let calls = AtomicU32::new(0);
        work(&sh, &opts(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Other("connection refused".into()))
        });
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        let s = sh.lock();
        assert!(!s.status.final_pushed);
        assert_eq!(s.status.failed_attempts, 2);
        assert!(s.status.failures[0].contains("connection refused"));
        assert!(s.notes.last().unwrap().contains("snap push origin"));
    }

    #[test]
    fn a_failure_is_retried_and_a_later_success_counts() {
        let sh = shared();
        {
            let mut s = sh.lock();
            s.wanted = 1;
            s.closing = true;
        }
        let calls = AtomicU32::new(0);
        work(&sh, &opts(), || {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(Error::Other("503".into())),
                _ => Ok(PushReport::default()),
            }
        });
        let s = sh.lock();
        assert!(s.status.final_pushed);
        assert_eq!((s.status.pushes, s.status.failed_attempts), (1, 1));
    }
}
