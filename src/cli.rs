//! Command-line definition and dispatch.

use clap::{Parser, Subcommand};

use crate::networks::NetworksArgs;

#[cfg(feature = "mujoco")]
#[path = "replay.rs"]
mod replay;

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
    /// Replay recorded gymnasium episodes (golden files) against our MuJoCo tasks and check
    /// them to the bit: prints max |Δ| of qpos/qvel, reward, obs and info per file and fails
    /// if any file is out of tolerance.
    #[cfg(feature = "mujoco")]
    Replay(replay::ReplayArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Networks(args) => crate::networks::run(&args),
        #[cfg(feature = "mujoco")]
        Command::Replay(args) => replay::run(&args),
    }
}
