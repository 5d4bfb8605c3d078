//! `ds-td3 bench`: sparse against dense in one process — the kernels of a 256×256 layer, whole
//! TD3 and SAC iterations and the exported actor's inference for one observation — printed as
//! tables of times, same-run sparse/dense ratios and achieved GFLOPS.
//!
//! The workloads are those of the criterion benchmarks ([`ds_td3::workloads`]). Each time is the
//! median over several samples of repeated calls, on one thread. GFLOPS divide the FLOPs the
//! kernels' own counters recorded during the timed calls (2 per multiply-add; the bias gradient
//! 1 per addition) by the time. Ratios divide a sparse time by the dense time of the same table,
//! measured minutes apart in the same process.
//!
//! [`harness`] samples and prints the tables; [`cpu`] and [`gpu`] fill them.

mod cpu;
mod gpu;
mod harness;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use sparse_core::kernels::{self, Isa};

use crate::train::DeviceArg;
use harness::Sampling;

/// Options of `ds-td3 bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Shorter measurements: fewer, shorter samples (under a minute in all).
    #[arg(long)]
    pub quick: bool,
    /// Kernel implementation: portable, avx2, avx512 (x86-64) or neon (AArch64) (default: the
    /// DS_TD3_KERNELS environment variable, else the fastest this CPU supports).
    #[arg(long, value_name = "ISA")]
    pub kernels: Option<String>,
    /// Which comparisons to run.
    #[arg(long, value_enum, default_value_t = Section::All)]
    pub only: Section,
    /// Threads (CPU only): large sparse products are split by rows between them and, in TD3
    /// iterations, the twin critics run side by side; results are the same for any count
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Where to run: cpu, cuda (the first NVIDIA GPU, through sparse-cuda), or emulator (the
    /// host emulator of the GPU kernels: checks the GPU path without a GPU, times meaningless)
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// Parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// Kernels, TD3 and SAC iterations, the breakdown and inference.
    All,
    /// Kernels of a 256×256 layer only.
    Kernels,
    /// Whole TD3 iterations only.
    Td3,
    /// Whole SAC iterations only: dense SAC against DS-SAC (CPU only).
    Sac,
    /// Where the time of one dense and one DS iteration goes (CPU only).
    Breakdown,
    /// The exported actor's inference for one observation (batch 1), sparse against dense, with
    /// Hopper's shapes (CPU only).
    Inference,
}

impl BenchArgs {
    /// Whether `section` is to run.
    fn wants(&self, section: Section) -> bool {
        self.only == Section::All || self.only == section
    }
}

/// Runs `ds-td3 bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let gpu = match args.device {
        DeviceArg::Cpu => None,
        DeviceArg::Cuda => Some(sparse_cuda::Device::cuda(0).context("--device cuda")?),
        DeviceArg::Emulator => Some(sparse_cuda::Device::emulator()),
    };
    let isa = match &args.kernels {
        Some(name) => {
            let isa: Isa = name.parse().context("--kernels")?;
            kernels::set_default_isa(isa).context("--kernels")?;
            isa
        }
        None => {
            kernels::isa_from_env()?;
            kernels::default_isa()
        }
    };
    let sampling = Sampling::new(args.quick);
    match &gpu {
        Some(dev) => {
            if args.threads > 1
                || matches!(
                    args.only,
                    Section::Breakdown | Section::Inference | Section::Sac
                )
            {
                bail!(
                    "--threads, --only breakdown, --only inference and --only sac measure the \
                     CPU: use --device cpu"
                );
            }
            gpu::run(args, dev, sampling)
        }
        None => cpu::run(args, isa, sampling),
    }
}
