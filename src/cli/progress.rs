//! Terminal progress bars (indicatif) for long operations; nothing at all
//! when standard error is not a terminal.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapstore::Progress;

pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            bar: Mutex::new(None),
            enabled: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(phase.to_string());
        *self.bar.lock().expect("bar poisoned") = Some(bar);
    }

    fn advance(&self, done: u64) {
        if let Some(b) = self.bar.lock().expect("bar poisoned").as_ref() {
            b.inc(done);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("bar poisoned").take() {
            b.finish_and_clear();
        }
    }
}
