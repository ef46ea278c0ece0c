//! The `pusher-local` binary: parse the command line, then run a tool command
//! (`pusher_local::commands`) or serve (`commands::serve`). Exit codes: 1 for a failed tool
//! command, 2 for a server that could not start or stopped on an error.

use std::process::ExitCode;

use clap::Parser;

use pusher_local::cli::Cli;
use pusher_local::commands;

fn main() -> ExitCode {
    let cli = Cli::parse().lift_subcommand_flags();
    let (result, failed) = match commands::run(&cli) {
        Some(result) => (result, 1),
        None => (commands::serve::run(cli), 2),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pusher-local: {error:#}");
            ExitCode::from(failed)
        }
    }
}
