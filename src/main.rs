//! `ds-td3`: the command-line front end of the workspace.
//!
//! For now it can describe the sparse networks DS-TD3 trains (`ds-td3 networks`); training,
//! evaluation and benchmarking subcommands arrive with their crates.

use clap::Parser;

mod cli;
mod networks;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
