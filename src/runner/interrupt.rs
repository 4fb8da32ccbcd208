//! Ctrl-C, SIGTERM and SIGHUP for `snap run`: caught from the start,
//! forwarded to the command's process group while it runs.
//!
//! The CLI installs [`Interrupts`] before it opens the repository, so a
//! signal that arrives while the runner locks the session or takes the
//! archive snapshot is recorded instead of killing the runner: the runner
//! then does not start the command, and still takes its final snapshot.
//!
//! While the command runs, each signal is sent on to its process group: the
//! command leads a group of its own (so a terminal's Ctrl-C reaches only the
//! runner, which forwards it once), and the processes it starts stay in that
//! group unless they leave it, so data-loader workers or a shell's children
//! get the signal as they would from a terminal. SIGHUP (the terminal
//! closed) is handled like SIGTERM: the runner outlives it and still takes
//! its final snapshot. Forwarding stops
//! once the command has exited but before it is reaped (`waitid` with
//! `WNOWAIT`), so a signal that arrives late can never reach an unrelated
//! process that was given the reaped command's pid.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::error::{Error, Result};

#[derive(Debug, Default)]
struct State {
    /// The first signal received.
    first: Option<i32>,
    /// The command's pid while signals may be sent to it.
    child: Option<i32>,
    /// Signals received after the command was started but before forwarding
    /// was switched on; sent as soon as it is.
    pending: Vec<i32>,
}

/// SIGINT, SIGTERM and SIGHUP handlers for one `snap run`; dropping it stops the
/// listening thread (the handlers stay installed and ignore further signals,
/// so the runner's last steps are not cut short).
pub struct Interrupts {
    state: Arc<Mutex<State>>,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Interrupts {
    /// Installs the handlers. Call it before anything that takes time.
    pub fn install() -> Result<Self> {
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| Error::io("install signal handlers", "snap run", e))?;
        let handle = signals.handle();
        let state = Arc::new(Mutex::new(State::default()));
        let thread = {
            let state = state.clone();
            std::thread::Builder::new()
                .name("snap-signals".into())
                .spawn(move || {
                    for sig in signals.forever() {
                        let mut s = state.lock().expect("signal state poisoned");
                        s.first.get_or_insert(sig);
                        match s.child {
                            Some(pid) => send(pid, sig),
                            None => s.pending.push(sig),
                        }
                    }
                })
                .map_err(|e| Error::io("start thread", "signal forwarding", e))?
        };
        Ok(Interrupts {
            state,
            handle,
            thread: Some(thread),
        })
    }

    /// The first SIGINT, SIGTERM or SIGHUP received so far.
    pub fn received(&self) -> Option<i32> {
        self.state.lock().expect("signal state poisoned").first
    }

    /// Starts sending signals to `pid`, first those that arrived since the
    /// command was spawned.
    pub(crate) fn forward_to(&self, pid: i32) {
        let mut s = self.state.lock().expect("signal state poisoned");
        for sig in std::mem::take(&mut s.pending) {
            send(pid, sig);
        }
        s.child = Some(pid);
    }

    /// Stops forwarding. Call it while the command is still unreaped.
    pub(crate) fn stop_forwarding(&self) {
        let mut s = self.state.lock().expect("signal state poisoned");
        s.child = None;
        s.pending.clear();
    }
}

impl Drop for Interrupts {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `sig` to the process group the command leads (its pgid is its pid:
/// it is spawned with `process_group(0)`), or to the command alone if the
/// group is gone.
fn send(pid: i32, sig: i32) {
    // SAFETY: kill(2) with the (negated) pid of our own unreaped child, which
    // keeps its pid and so its group id reserved, and a valid signal.
    if unsafe { libc::kill(-pid, sig) } != 0 {
        unsafe { libc::kill(pid, sig) };
    }
}

/// Blocks until child `pid` has exited, without reaping it (`WNOWAIT`): its
/// pid stays reserved until `Child::wait` collects it.
pub(crate) fn wait_exited_unreaped(pid: i32) {
    loop {
        // SAFETY: waitid with a zeroed siginfo_t that it fills in; P_PID names
        // our own child, WNOWAIT leaves it waitable.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}
