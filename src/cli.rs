//! Command-line definition and dispatch.

use clap::{Parser, Subcommand};

use crate::bench::BenchArgs;
use crate::eval::{ActArgs, EvalArgs};
use crate::export::ExportArgs;
use crate::flops::FlopsArgs;
use crate::networks::NetworksArgs;
use crate::report::ReportArgs;
use crate::sweep::SweepArgs;
use crate::train::TrainArgs;

/// Dynamic Sparse TD3 with truly sparse (CSR) networks.
///
/// Every sparse network stores only its live connections, so memory, FLOPs and time fall with
/// sparsity. Without a subcommand, `ds-td3` trains: `ds-td3 --env Hopper-v3` runs DS-TD3 with
/// the paper's settings. Run `ds-td3 <COMMAND> --help` for each command's options.
#[derive(Debug, Parser)]
#[command(
    name = "ds-td3",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do (default: train).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Training options, when no subcommand is given.
    #[command(flatten)]
    pub train: TrainArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train DS-TD3, Static-TD3 or TD3 on a task (the default command).
    Train(Box<TrainArgs>),
    /// Evaluate the policy of a run directory's latest checkpoint, or an exported policy file.
    Eval(EvalArgs),
    /// Write a run's actor as a safetensors file (CSR arrays per sparse layer, metadata) for
    /// `eval --policy`, Python (safetensors + scipy.sparse) or Rust (sparse-core's `policy`).
    Export(ExportArgs),
    /// Print an exported policy's actions for observations read from a CSV file (one per line).
    Act(ActArgs),
    /// List the tasks with their observation and action dimensions.
    Envs,
    /// Run a grid of tasks × algorithms × seeds (× settings) in parallel, resumably, or write
    /// it as a Slurm job array (`--emit slurm`).
    Sweep(SweepArgs),
    /// Build the paper's tables (Markdown and CSV) and learning curves (PNG and SVG) from run
    /// directories.
    Report(ReportArgs),
    /// Build TD3's actor and twin critics as DS-TD3 initialises them and report each layer's
    /// live connections, density and memory.
    Networks(NetworksArgs),
    /// Replay recorded gymnasium episodes (golden files) against our MuJoCo tasks and check
    /// them to the bit: prints max |Δ| of qpos/qvel, reward, obs and info per file and fails
    /// if any file is out of tolerance.
    #[cfg(feature = "mujoco")]
    Replay(crate::replay::ReplayArgs),
    /// Time sparse against dense in one process: the kernels of a 256×256 layer at densities
    /// 1 to 0.05 (batch 100 and 256) and whole TD3 iterations (dense, DS at the paper's λ, DS at
    /// about 90% sparsity) for Hopper and HalfCheetah shapes, and the exported actor's inference
    /// for one observation; prints times, same-run sparse/dense ratios and GFLOPS from the
    /// kernels' FLOP counters.
    Bench(BenchArgs),
    /// The paper's Table 2 from our counters: connections and training FLOPs of dense TD3,
    /// Static-TD3 and DS-TD3, measured over a short real run and extrapolated to 1e6 steps,
    /// beside an analytic per-layer count.
    Flops(FlopsArgs),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => crate::train::run(&cli.train),
        Some(Command::Train(args)) => crate::train::run(&args),
        Some(Command::Eval(args)) => crate::eval::run(&args),
        Some(Command::Export(args)) => crate::export::run(&args),
        Some(Command::Act(args)) => crate::eval::act(&args),
        Some(Command::Envs) => crate::eval::list_envs(),
        Some(Command::Sweep(args)) => crate::sweep::run(&args),
        Some(Command::Report(args)) => crate::report::run(&args),
        Some(Command::Networks(args)) => crate::networks::run(&args),
        #[cfg(feature = "mujoco")]
        Some(Command::Replay(args)) => crate::replay::run(&args),
        Some(Command::Bench(args)) => crate::bench::run(&args),
        Some(Command::Flops(args)) => crate::flops::run(&args),
    }
}
