//! `pos-sim`: the one process tests and the demo run against. It serves the demo's files, the
//! payments backend API (SQLite-backed, permanently idempotent) on its own port, and N
//! simulated internet smart readers over WebSocket, with `/_sim/*` admin endpoints to present
//! test cards and inject faults. See `docs/backend-api.md` and `docs/reader-protocol.md`.

mod admin;
mod api;
mod app;
mod card_crypto;
mod cli;
mod http_util;
mod idempotency;
mod logging;
mod network;
mod readers;
mod static_files;
mod store;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("pos-sim: cannot read the current directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args = match cli::parse(std::env::args().skip(1), &cwd) {
        Ok(cli::Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Serve(args)) => args,
        Err(cli::CliError::MissingCommand) => {
            print!("{}", cli::USAGE);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("pos-sim: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pos-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(app::serve(args));
    // Sessions and connections still open are dropped here, without waiting for them.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pos-sim: {e}");
            ExitCode::FAILURE
        }
    }
}
