//! Command-line definition and dispatch.

use clap::{Parser, Subcommand};

use crate::networks::NetworksArgs;

/// Dynamic Sparse TD3 with truly sparse (CSR) networks.
///
/// Every sparse network stores only its live connections, so memory, FLOPs and time fall with
/// sparsity. Run `ds-td3 <COMMAND> --help` for each command's options.
#[derive(Debug, Parser)]
#[command(name = "ds-td3", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build TD3's actor and twin critics as DS-TD3 initialises them and report each layer's
    /// live connections, density and memory.
    Networks(NetworksArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Networks(args) => crate::networks::run(&args),
    }
}
