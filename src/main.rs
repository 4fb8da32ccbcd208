//! The `snap` binary: parse the command line, run it, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Like other Unix tools, end quietly when a pipe reader (`| head`) goes away.
    // SAFETY: setting a signal disposition to the default before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = cli::Cli::parse();
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
