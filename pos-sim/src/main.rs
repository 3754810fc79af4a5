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
mod reader_link;
mod reader_store;
mod readers;
mod seal;
mod simulated_card;
mod static_files;
mod store;
mod util;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Help goes to stdout with status 0; errors and a missing subcommand to stderr with 2.
    let cli::Command::Serve(args) = cli::Cli::parse().command;
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("pos-sim: cannot read the current directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = args.resolve(&cwd);
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
    let result = runtime.block_on(app::serve(config));
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
