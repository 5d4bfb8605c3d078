//! Command-line definition and dispatch.

use clap::{Parser, Subcommand};

/// Dynamic Sparse TD3 with truly sparse (CSR) networks.
#[derive(Debug, Parser)]
#[command(name = "ds-td3", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {}
}
