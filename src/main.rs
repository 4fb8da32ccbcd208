//! The `snap` binary: parse the command line, run it, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod ui;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Like other Unix tools, end quietly when a pipe reader (`| head`) goes
    // away; except `snap run`, which must outlive its readers to take the
    // final snapshot (it ignores write errors on its own output instead).
    if !cli.is_run() {
        // SAFETY: setting a signal disposition to the default before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if let Some(usage) = err.downcast_ref::<clap::Error>() {
                usage.exit();
            }
            eprintln!("snap: error: {err:#}");
            let code = err
                .downcast_ref::<snapstore::Error>()
                .map(|e| e.exit_code())
                .unwrap_or(1);
            ExitCode::from(code as u8)
        }
    }
}
