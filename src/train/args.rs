//! The options of `ds-td3 train` (also those of plain `ds-td3`), with the hyper-parameter flags
//! listed once: [`hyper_args!`] writes their clap fields, [`HyperArgs::any`] and
//! [`HyperArgs::apply`] from the same list.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use sparse_core::BiasCorrection;
use td3::{Algo, BufferDtype, Config, Device, DynamicBuffer, FractionSchedule, Growth};

/// The algorithm, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgoArg {
    /// DS-TD3: sparse hidden layers whose topology evolves (SET).
    Ds,
    /// Static-TD3: sparse hidden layers with a fixed topology.
    Static,
    /// TD3 with dense networks.
    Dense,
    /// SAC (automatic entropy tuning) with dense networks.
    Sac,
    /// Static-SAC: SAC with sparse hidden layers, topology fixed.
    StaticSac,
    /// DS-SAC: SAC with sparse hidden layers whose topology evolves (SET), as DS-TD3.
    DsSac,
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (sparse-core's kernels; the default).
    Cpu,
    /// The first CUDA GPU (an NVIDIA driver for CUDA 13 and its NVRTC and cuBLAS libraries).
    Cuda,
    /// sparse-cuda's host emulator of its GPU kernels (slow).
    Emulator,
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
            DeviceArg::Emulator => Device::Emulator,
        }
    }
}

/// `--bias-correction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BiasCorrectionArg {
    /// By each regrown connection's own age, so its first steps are the size of a warm
    /// connection's (as with the authors' masked dense Adam state)
    Connection,
    /// By the network's step count (PyTorch's Adam on truly sparse state): a regrown
    /// connection's first steps are several times larger
    Network,
}

impl From<BiasCorrectionArg> for BiasCorrection {
    fn from(b: BiasCorrectionArg) -> BiasCorrection {
        match b {
            BiasCorrectionArg::Connection => BiasCorrection::Connection,
            BiasCorrectionArg::Network => BiasCorrection::Network,
        }
    }
}

/// `--growth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GrowthArg {
    /// Uniformly random free positions (SET)
    Random,
    /// The sampled candidates with the largest gradient
    Gradient,
}

/// `--eta-schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// η throughout (the paper's)
    Constant,
    /// η decays along a half cosine to 0 at the last training iteration (RigL, RLx2)
    Cosine,
}

/// Candidates scored per connection grown by `--growth gradient` unless
/// `--growth-candidates` says otherwise.
pub const DEFAULT_CANDIDATES: u32 = 4;

/// `--buffer-dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BufferDtypeArg {
    /// 32-bit floats: exact
    F32,
    /// IEEE half precision (11 significant bits, at most 65504): half the memory, not
    /// bit-compatible with f32 runs
    F16,
    /// bfloat16 (8 significant bits, f32's range): half the memory, not bit-compatible with f32
    /// runs
    Bf16,
}

impl From<BufferDtypeArg> for BufferDtype {
    fn from(d: BufferDtypeArg) -> BufferDtype {
        match d {
            BufferDtypeArg::F32 => BufferDtype::F32,
            BufferDtypeArg::F16 => BufferDtype::F16,
            BufferDtypeArg::Bf16 => BufferDtype::Bf16,
        }
    }
}

impl From<AlgoArg> for Algo {
    fn from(a: AlgoArg) -> Algo {
        match a {
            AlgoArg::Ds => Algo::Ds,
            AlgoArg::Static => Algo::Static,
            AlgoArg::Dense => Algo::Dense,
            AlgoArg::Sac => Algo::Sac,
            AlgoArg::StaticSac => Algo::StaticSac,
            AlgoArg::DsSac => Algo::DsSac,
        }
    }
}

/// Parses a count written as `1000000`, `1_000_000` or `1e6`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.replace('_', "");
    if let Ok(v) = t.parse::<u64>() {
        return Ok(v);
    }
    match t.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 => Ok(v as u64),
        Ok(v) if v.is_finite() && v > u64::MAX as f64 => {
            Err(format!("'{s}' is too large (at most {})", u64::MAX))
        }
        _ => Err(format!(
            "'{s}' is not a whole number of steps (e.g. 1000000 or 1e6)"
        )),
    }
}

/// [`parse_count`] for counts that must be at least 1.
pub fn parse_positive_count(s: &str) -> Result<u64, String> {
    match parse_count(s)? {
        0 => Err(format!("'{s}' must be at least 1")),
        n => Ok(n),
    }
}

/// Declares [`HyperArgs`]: each entry is a documented optional flag `name: Type`, with its clap
/// attributes, that sets the configuration field `field` (converted with `as`).
macro_rules! hyper_args {
    ($($(#[$attr:meta])* $name:ident: $ty:ty => $field:ident;)*) => {
        /// Hyper-parameters; each defaults to the paper's value (SAC's references' for the SAC
        /// family).
        #[derive(Debug, Args)]
        #[command(next_help_heading = "Hyper-parameters (default: the paper's)")]
        pub struct HyperArgs {
            $($(#[$attr])* pub $name: Option<$ty>,)*
            /// Never end episodes early when the robot falls (the `-noterm` task variants)
            #[arg(long)]
            pub no_termination: bool,
            /// How Adam corrects the bias of connections regrown by evolution [default:
            /// connection; network on a GPU, whose kernels support only that]
            #[arg(long, value_enum)]
            pub bias_correction: Option<BiasCorrectionArg>,
            /// Overall sparsity of each network's sparse layers, in [0, 1) (e.g. 0.9): replaces
            /// --lambda1/--lambda2 by the one Erdős–Rényi λ per network that gives it (narrow
            /// first layers stay denser) [default: the paper's λs, about 0.5]
            #[arg(long, value_name = "S", conflicts_with_all = ["lambda1", "lambda2"])]
            pub sparsity: Option<f64>,
            /// The critics' own overall sparsity, when it should differ from the actor's
            /// (--sparsity then sets the actor's alone; RLx2 keeps critics denser, e.g. 0.85
            /// against 0.9) [default: --sparsity's]
            #[arg(long, value_name = "S", requires = "sparsity")]
            pub critic_sparsity: Option<f64>,
            /// Where evolution regrows connections: random (SET, the paper's) or gradient (the
            /// candidates with the largest |∂L/∂w| in the network's last training step, from a
            /// sample of --growth-candidates per connection grown, scored by the weight-gradient
            /// kernel at those positions only; CPU only) [default: random]
            #[arg(long, value_enum)]
            pub growth: Option<GrowthArg>,
            /// Candidates scored per connection grown with --growth gradient [default: 4]
            #[arg(long, value_name = "N", requires = "growth",
                  value_parser = clap::value_parser!(u32).range(1..))]
            pub growth_candidates: Option<u32>,
            /// How the evolution fraction η changes over the run [default: constant]
            #[arg(long, value_enum, value_name = "SCHEDULE")]
            pub eta_schedule: Option<ScheduleArg>,
            /// How the replay buffer stores observations and actions: f32 (exact), or f16 / bf16
            /// to halve the buffer for boards short of memory. f16 and bf16 round what the
            /// networks see, so such runs are NOT bit-compatible with f32 runs [default: f32]
            #[arg(long, value_enum, value_name = "TYPE")]
            pub buffer_dtype: Option<BufferDtypeArg>,
            /// RLx2's policy-aware replay buffer: every 10000 steps, measure how far the policy
            /// is from the actions of the 2048 oldest transitions (half the mean squared
            /// difference, scaled by the action bound) and, above --buffer-threshold, drop the
            /// oldest 10% of the buffer while it holds more than --buffer-min-size
            #[arg(long)]
            pub dynamic_buffer: bool,
            /// Policy distance above which --dynamic-buffer drops transitions [default: 0.2]
            #[arg(long, value_name = "D", requires = "dynamic_buffer")]
            pub buffer_threshold: Option<f64>,
            /// --dynamic-buffer drops nothing from a buffer holding this many transitions or
            /// fewer [default: 1e5]
            #[arg(long, value_parser = parse_count, value_name = "N", requires = "dynamic_buffer")]
            pub buffer_min_size: Option<u64>,
        }

        impl HyperArgs {
            /// Whether any hyper-parameter was given.
            pub fn any(&self) -> bool {
                $(self.$name.is_some() ||)* self.no_termination || self.bias_correction.is_some()
                    || self.buffer_dtype.is_some() || self.sparsity.is_some()
                    || self.critic_sparsity.is_some()
                    || self.growth.is_some() || self.dynamic_buffer || self.eta_schedule.is_some()
            }

            /// Sets the given hyper-parameters in `c`.
            pub fn apply(&self, c: &mut Config) {
                $(if let Some(v) = self.$name {
                    c.$field = v as _;
                })*
                c.terminate_when_unhealthy = !self.no_termination;
                if let Some(b) = self.bias_correction {
                    c.bias_correction = b.into();
                }
                if let Some(d) = self.buffer_dtype {
                    c.buffer_dtype = d.into();
                }
                if self.sparsity.is_some() {
                    c.sparsity = self.sparsity;
                }
                if self.critic_sparsity.is_some() {
                    c.critic_sparsity = self.critic_sparsity;
                }
                match self.growth {
                    Some(GrowthArg::Random) => c.growth = Growth::Random,
                    Some(GrowthArg::Gradient) => {
                        c.growth = Growth::Gradient {
                            candidates: self.growth_candidates.unwrap_or(DEFAULT_CANDIDATES),
                        }
                    }
                    None => {}
                }
                match self.eta_schedule {
                    Some(ScheduleArg::Constant) => c.evolution_schedule = FractionSchedule::Constant,
                    Some(ScheduleArg::Cosine) => c.evolution_schedule = FractionSchedule::Cosine,
                    None => {}
                }
                if self.dynamic_buffer {
                    let d = DynamicBuffer::default();
                    c.dynamic_buffer = Some(DynamicBuffer {
                        threshold: self.buffer_threshold.unwrap_or(d.threshold),
                        min_size: self.buffer_min_size.map_or(d.min_size, |n| n as usize),
                        ..d
                    });
                }
            }
        }
    };
}

hyper_args! {
    /// Erdős–Rényi λ of each network's first layer [default: 7; Ant 40; Humanoid 61]
    #[arg(long)] lambda1: f64 => lambda1;
    /// Erdős–Rényi λ of each network's second layer [default: 64]
    #[arg(long)] lambda2: f64 => lambda2;
    /// Width of the hidden layers [default: 256]
    #[arg(long)] hidden: usize => hidden;
    /// Topology evolution period e, in training iterations [default: 1000]
    #[arg(long, short = 'e')] evolution_period: u64 => evolution_period;
    /// Fraction η of connections replaced per evolution, in (0, 1) [default: 0.05]
    #[arg(long, visible_alias = "eta")] evolution_fraction: f64 => evolution_fraction;
    /// Final training iterations with a fixed topology: the first evolution after that point
    /// only prunes, and none follow; 0 evolves until the end [default: 50000]
    #[arg(long, value_parser = parse_count, value_name = "ITERATIONS")] topology_freeze: u64 => topology_freeze;
    /// Discount γ [default: 0.99]
    #[arg(long)] gamma: f64 => gamma;
    /// Multi-step TD targets: sum up to N rewards before bootstrapping, cut at episode ends (TD3
    /// family) [default: 1]
    #[arg(long, value_name = "N")] n_step: usize => n_step;
    /// One-step targets for the first ITERATIONS training iterations, then --n-step ones (RLx2's
    /// schedule: 300000) [default: 0]
    #[arg(long, value_parser = parse_count, value_name = "ITERATIONS")] n_step_after: u64 => n_step_after;
    /// Soft target update τ [default: 0.005]
    #[arg(long)] tau: f64 => tau;
    /// Target policy smoothing noise, × action bound (TD3 only) [default: 0.2]
    #[arg(long)] policy_noise: f64 => policy_noise;
    /// Clip of the smoothing noise, × action bound (TD3 only) [default: 0.5]
    #[arg(long)] noise_clip: f64 => noise_clip;
    /// Actor and target update period d (SAC: also the temperature's) [default: 2; SAC 1]
    #[arg(long)] policy_delay: u64 => policy_delay;
    /// Exploration noise, × action bound (TD3 only; SAC samples its policy) [default: 0.1]
    #[arg(long)] expl_noise: f64 => expl_noise;
    /// Adam learning rate (SAC: also the temperature's) [default: 0.001; SAC 0.0003]
    #[arg(long)] lr: f64 => lr;
    /// Adam coupled L2 weight decay [default: 0.0002; SAC 0]
    #[arg(long)] weight_decay: f64 => weight_decay;
    /// Minibatch size [default: 100; SAC 256]
    #[arg(long)] batch_size: usize => batch_size;
    /// Replay buffer capacity in transitions [default: 1e6]
    #[arg(long, value_parser = parse_count)] buffer_size: u64 => buffer_capacity;
    /// Steps of uniformly random actions before training [default: 25000; SAC 10000]
    #[arg(long, value_parser = parse_count)] start_steps: u64 => start_steps;
    /// Evaluate every N steps [default: 5000]
    #[arg(long, value_parser = parse_count)] eval_every: u64 => eval_every;
    /// Episodes per evaluation [default: 10]
    #[arg(long)] eval_episodes: usize => eval_episodes;
}

/// Options of `ds-td3 train` (also the options of plain `ds-td3`).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Task to train on (see `ds-td3 envs`), e.g. Hopper-v3
    #[arg(long)]
    pub env: Option<String>,
    /// Algorithm: ds (DS-TD3), static (Static-TD3) or dense (TD3); ds-sac (DS-SAC),
    /// static-sac (Static-SAC) or sac (SAC, with automatic entropy tuning)
    #[arg(long, value_enum, default_value = "ds")]
    pub algo: AlgoArg,
    /// Seed of everything random in the run
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Environment steps to train (1e6 in the paper); with --resume, the new total
    #[arg(long, value_parser = parse_count)]
    pub steps: Option<u64>,
    /// Run directory [default: runs/<env>-<algo>-s<seed>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing run directory
    #[arg(long)]
    pub force: bool,
    /// Continue the run in DIR from its latest checkpoint
    #[arg(long, value_name = "DIR", conflicts_with_all = ["env", "out", "force", "seed", "config"])]
    pub resume: Option<PathBuf>,
    /// Start a run from a complete configuration file (a run's config.json, as `ds-td3 sweep`
    /// writes them); only --steps, --out, --force, --threads, --device, --checkpoint-every and
    /// --quiet may accompany it
    #[arg(long, value_name = "FILE", conflicts_with_all = ["env", "seed", "algo"])]
    pub config: Option<PathBuf>,
    /// Write a checkpoint every N steps (and always at the end and on Ctrl-C)
    #[arg(long, value_parser = parse_positive_count, default_value = "50000", value_name = "N")]
    pub checkpoint_every: u64,
    /// Threads: with 2 or more the twin critics train side by side and large sparse products
    /// are split by rows between them (same results for any count)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Where the networks train: cpu, cuda (the first NVIDIA GPU; evolution stays on the CPU),
    /// or emulator (the GPU code path on the host; slow, for checking it without a GPU). With
    /// --resume, moves the run to that device [default: cpu, or the resumed run's device]
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Print nothing but errors and the final result
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub hyper: HyperArgs,
}
