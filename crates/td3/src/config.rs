//! Every setting of a TD3 run, with the paper's values as defaults, and its validation.

use serde::{Deserialize, Serialize};

use set_evolve::{EvolutionController, Growth};
use sparse_core::BiasCorrection;

use crate::replay::BufferDtype;
use crate::{Error, Result};

/// Which algorithm to train: a TD3 variant or a SAC variant. Within a family the three variants
/// run through one code path; they differ only in layer kinds and whether the topology evolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algo {
    /// Dense TD3 (Fujimoto et al.).
    Dense,
    /// Static-TD3: Erdős–Rényi sparse hidden layers, topology fixed.
    Static,
    /// DS-TD3: Erdős–Rényi sparse hidden layers evolved with SET.
    Ds,
    /// Dense SAC (Haarnoja et al. 2018, with automatic entropy tuning).
    Sac,
    /// Static-SAC: SAC with Erdős–Rényi sparse hidden layers, topology fixed.
    StaticSac,
    /// DS-SAC: SAC with Erdős–Rényi sparse hidden layers evolved with SET, as DS-TD3.
    DsSac,
}

/// The algorithm family of an [`Algo`]: what the update does, whatever the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// TD3: a deterministic actor with a target, target policy smoothing, delayed updates.
    Td3,
    /// SAC: a tanh-squashed Gaussian actor, no actor target, a learned entropy temperature.
    Sac,
}

impl Algo {
    /// All algorithms: the TD3 family, then the SAC family.
    pub const ALL: [Algo; 6] = [
        Algo::Dense,
        Algo::Static,
        Algo::Ds,
        Algo::Sac,
        Algo::StaticSac,
        Algo::DsSac,
    ];

    /// The lowercase name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Dense => "dense",
            Algo::Static => "static",
            Algo::Ds => "ds",
            Algo::Sac => "sac",
            Algo::StaticSac => "static-sac",
            Algo::DsSac => "ds-sac",
        }
    }

    /// The name papers use: `TD3`, `Static-TD3`, `DS-TD3`, `SAC`, `Static-SAC`, `DS-SAC`.
    pub fn label(self) -> &'static str {
        match self {
            Algo::Dense => "TD3",
            Algo::Static => "Static-TD3",
            Algo::Ds => "DS-TD3",
            Algo::Sac => "SAC",
            Algo::StaticSac => "Static-SAC",
            Algo::DsSac => "DS-SAC",
        }
    }

    /// The family: what the update does.
    pub fn family(self) -> Family {
        match self {
            Algo::Dense | Algo::Static | Algo::Ds => Family::Td3,
            Algo::Sac | Algo::StaticSac | Algo::DsSac => Family::Sac,
        }
    }

    /// Whether the hidden layers are sparse.
    pub fn is_sparse(self) -> bool {
        !matches!(self, Algo::Dense | Algo::Sac)
    }

    /// Whether the topology evolves (DS-TD3, DS-SAC).
    pub fn evolves(self) -> bool {
        matches!(self, Algo::Ds | Algo::DsSac)
    }

    /// The dense member of the same family (the baseline a sparse variant is held against).
    pub fn dense(self) -> Algo {
        match self.family() {
            Family::Td3 => Algo::Dense,
            Family::Sac => Algo::Sac,
        }
    }
}

impl std::fmt::Display for Algo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algo {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Algo::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                Error::Config(format!(
                    "unknown algorithm '{s}' (known: dense, static, ds, sac, static-sac, ds-sac)"
                ))
            })
    }
}

/// Where the networks train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The CPU kernels of sparse-core (the default).
    #[default]
    Cpu,
    /// The first CUDA GPU, through sparse-cuda (needs an NVIDIA driver and CUDA 13's NVRTC and
    /// cuBLAS at run time).
    Cuda,
    /// The GPU code path on sparse-cuda's host emulator of its kernels: slow, for checking that
    /// path on machines without a GPU.
    Emulator,
}

impl Device {
    /// The lowercase name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Emulator => "emulator",
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [Device::Cpu, Device::Cuda, Device::Emulator]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                Error::Config(format!("unknown device '{s}' (known: cpu, cuda, emulator)"))
            })
    }
}

/// The paper's λ1 (first-layer Erdős–Rényi parameter) for a task: 40 for Ant, 61 for Humanoid,
/// 7 otherwise.
pub fn paper_lambda1(env: &str) -> f64 {
    if env.starts_with("Ant") {
        40.0
    } else if env.starts_with("Humanoid") {
        61.0
    } else {
        7.0
    }
}

/// How the evolution fraction `η` changes over a run ([`Config::evolution_schedule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FractionSchedule {
    /// `η` throughout (DS-TD3's).
    #[default]
    Constant,
    /// `η (1 + cos(π i / T)) / 2` at training iteration `i` of `T = steps − start_steps`
    /// (RigL, Evci et al. 2020; RLx2, Tan et al. 2023).
    Cosine,
}

/// RLx2's policy-aware replay buffer (Tan et al. 2023; `--use_dynamic_buffer` of their code):
/// every [`every`](Self::every) environment steps the trainer measures the *policy distance* of
/// the [`oldest`](Self::oldest) stored transitions, half the mean over them and over action
/// dimensions of `((π(s) − a) / M)²` (`π` the deterministic policy, `a` the stored action, `M`
/// the action bound), and when it exceeds [`threshold`](Self::threshold) while the buffer holds
/// more than [`min_size`](Self::min_size) transitions, drops the oldest
/// [`fraction`](Self::fraction) of them ([`crate::ReplayBuffer::drop_oldest`]). Training then
/// samples more recent, more on-policy data, which multi-step targets assume. The defaults are
/// RLx2's. One difference: RLx2 stores the noise-free action beside the executed one and
/// compares with it; this buffer compares with the executed action, whose exploration noise
/// adds σ²/2 to the distance in expectation (0.005 at TD3's σ = 0.1, against a threshold of
/// 0.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DynamicBuffer {
    /// Environment steps between checks (RLx2: 10 000).
    pub every: u64,
    /// Oldest transitions the distance is measured on (RLx2: 8 minibatches of 256, 2 048).
    pub oldest: usize,
    /// Distance above which the oldest transitions are dropped (RLx2: 0.2).
    pub threshold: f64,
    /// Fraction of the stored transitions dropped at once (RLx2: 0.1).
    pub fraction: f64,
    /// No transitions are dropped from a buffer holding this many or fewer (RLx2: 100 000).
    pub min_size: usize,
}

impl Default for DynamicBuffer {
    /// RLx2's settings.
    fn default() -> Self {
        Self {
            every: 10_000,
            oldest: 2_048,
            threshold: 0.2,
            fraction: 0.1,
            min_size: 100_000,
        }
    }
}

/// `1`, the default of settings that count from one.
fn one() -> usize {
    1
}

/// The complete configuration of a run: enough to rerun it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Task id (e.g. `Hopper-v3`).
    pub env: String,
    /// End episodes when the robot becomes unhealthy (gymnasium's default; `false` for the
    /// no-termination variants).
    pub terminate_when_unhealthy: bool,
    /// Variant.
    pub algo: Algo,
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Environment steps to train for.
    pub steps: u64,
    /// Initial steps with uniformly random actions (no training).
    pub start_steps: u64,
    /// Evaluate every this many environment steps.
    pub eval_every: u64,
    /// Episodes per evaluation.
    pub eval_episodes: usize,
    /// Width of both hidden layers.
    pub hidden: usize,
    /// Erdős–Rényi λ of each network's first layer.
    pub lambda1: f64,
    /// Erdős–Rényi λ of each network's second layer.
    pub lambda2: f64,
    /// The overall sparsity of each network's sparse layers, in [0, 1): when given, it replaces
    /// `lambda1` and `lambda2` by the one λ per network that the Erdős–Rényi rule needs for it
    /// ([`sparse_core::er_lambda_for_sparsity`]; see [`Self::lambdas`]). Absent from files
    /// written before it existed: the λs rule.
    #[serde(default)]
    pub sparsity: Option<f64>,
    /// The critics' own overall sparsity, when it should differ from the actor's: with it,
    /// [`Self::sparsity`] (which it requires) sets the actor's alone. RLx2 keeps its critics
    /// denser than its actors (HalfCheetah: 85% against 90%).
    #[serde(default)]
    pub critic_sparsity: Option<f64>,
    /// Topology evolution period `e`, in training iterations.
    pub evolution_period: u64,
    /// Fraction `η` of each sparse layer's connections replaced per evolution.
    pub evolution_fraction: f64,
    /// How `η` changes over the run: constant (the paper's), or decaying along a half cosine to
    /// 0 at the last training iteration (RigL's and RLx2's). Absent from files written before
    /// it existed: constant.
    #[serde(default)]
    pub evolution_schedule: FractionSchedule,
    /// Where evolution regrows connections: at random (SET, the paper's) or where the gradient
    /// of a sample of candidates is largest ([`set_evolve::GradientGrowth`]). Absent from files
    /// written before it existed: random.
    #[serde(default)]
    pub growth: Growth,
    /// Training iterations at the end of a DS run with a fixed topology: the first evolution
    /// after iteration `steps − start_steps − topology_freeze` prunes without regrowing, and
    /// none follow (the authors' code: 50 000). 0: evolve until the end (also what files
    /// written before this setting existed meant).
    #[serde(default)]
    pub topology_freeze: u64,
    /// How Adam corrects the bias of connections regrown by evolution: by their own age
    /// (`connection`) or by the network's step count (`network`, PyTorch's rule applied to truly
    /// sparse layers, and what files written before this setting existed meant). See
    /// [`sparse_core::BiasCorrection`].
    #[serde(default)]
    pub bias_correction: BiasCorrection,
    /// Discount γ.
    pub gamma: f64,
    /// Multi-step TD targets: each target sums up to this many rewards before it bootstraps
    /// (cut at episode ends; [`crate::ReplayBuffer::sample_n_step`]). 1 is TD3's one-step
    /// target. Absent from files written before it existed: 1.
    #[serde(default = "one")]
    pub n_step: usize,
    /// Training iterations with one-step targets before `n_step` ones start (RLx2's schedule:
    /// 300 000; Tan et al. 2023). Absent from files written before it existed: 0.
    #[serde(default)]
    pub n_step_after: u64,
    /// Soft-update coefficient τ.
    pub tau: f64,
    /// Target policy smoothing noise σ, as a fraction of the action bound.
    pub policy_noise: f64,
    /// Clip of the smoothing noise, as a fraction of the action bound.
    pub noise_clip: f64,
    /// Actor and target updates every this many iterations (d).
    pub policy_delay: u64,
    /// Exploration noise σ, as a fraction of the action bound.
    pub expl_noise: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Adam coupled L2 weight decay.
    pub weight_decay: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Replay buffer capacity (transitions).
    pub buffer_capacity: usize,
    /// How the replay buffer stores observations and actions: `f32` (exact, the default) or a
    /// half-precision type that halves it again but is not bit-compatible with `f32` runs
    /// (absent from files written before it existed: `f32`). See [`crate::replay`].
    #[serde(default)]
    pub buffer_dtype: BufferDtype,
    /// RLx2's policy-aware replay buffer, which drops its oldest transitions while they are far
    /// from what the current policy would do ([`DynamicBuffer`]); `None` (the default, and what
    /// files written before it existed mean): a plain ring.
    #[serde(default)]
    pub dynamic_buffer: Option<DynamicBuffer>,
    /// Threads of the process-wide [`sparse_core::pool`] a trainer sets up: with 2 or more the
    /// twin critics run side by side and large sparse products are split by rows. Results do
    /// not depend on it.
    pub threads: usize,
    /// Where the networks train (absent from files written before GPUs were supported: CPU).
    #[serde(default)]
    pub device: Device,
}

impl Config {
    /// The paper's settings for `env` and `algo`: for the TD3 family those of DS-TD3 (Sokar et
    /// al.) and TD3 (Fujimoto et al.); for the SAC family those of SAC (Haarnoja et al. 2018)
    /// as the common references run it, with DS-TD3's sparsity and evolution. SAC differs from
    /// TD3 in: Adam 3·10⁻⁴ without weight decay, batch 256 (Haarnoja et al.'s table of
    /// hyper-parameters; Stable-Baselines3 and CleanRL alike); actor, temperature and targets
    /// updated every iteration (d = 1, as Haarnoja et al. and Stable-Baselines3); 10 000
    /// uniformly random steps first (rl-baselines3-zoo's MuJoCo settings); and none of TD3's
    /// action noises (SAC explores by sampling its policy).
    pub fn paper(env: &str, algo: Algo) -> Self {
        let config = Self {
            env: env.to_string(),
            terminate_when_unhealthy: true,
            algo,
            seed: 0,
            steps: 1_000_000,
            start_steps: 25_000,
            eval_every: 5_000,
            eval_episodes: 10,
            hidden: 256,
            lambda1: paper_lambda1(env),
            lambda2: 64.0,
            sparsity: None,
            critic_sparsity: None,
            evolution_period: 1_000,
            evolution_fraction: 0.05,
            evolution_schedule: FractionSchedule::Constant,
            growth: Growth::Random,
            // Settings of topology evolution; neutral for the variants that do not evolve.
            topology_freeze: if algo.evolves() { 50_000 } else { 0 },
            bias_correction: if algo.evolves() {
                BiasCorrection::Connection
            } else {
                BiasCorrection::Network
            },
            gamma: 0.99,
            n_step: 1,
            n_step_after: 0,
            tau: 0.005,
            policy_noise: 0.2,
            noise_clip: 0.5,
            policy_delay: 2,
            expl_noise: 0.1,
            lr: 1e-3,
            weight_decay: 2e-4,
            batch_size: 100,
            buffer_capacity: 1_000_000,
            buffer_dtype: BufferDtype::F32,
            dynamic_buffer: None,
            threads: 1,
            device: Device::Cpu,
        };
        match algo.family() {
            Family::Td3 => config,
            Family::Sac => config.sac_defaults(),
        }
    }

    /// SAC's settings where they differ from TD3's (listed at [`Self::paper`]).
    fn sac_defaults(self) -> Self {
        Self {
            start_steps: 10_000,
            policy_noise: 0.0,
            noise_clip: 0.0,
            policy_delay: 1,
            expl_noise: 0.0,
            lr: 3e-4,
            weight_decay: 0.0,
            batch_size: 256,
            ..self
        }
    }

    /// The Erdős–Rényi λ of the first and second layer of a network whose input has `n_in`
    /// features: `lambda1` and `lambda2`, or with [`Self::sparsity`] (for a critic:
    /// [`Self::critic_sparsity`] when set) the λ (the same for both) that gives the two hidden
    /// layers that sparsity together.
    pub fn lambdas(&self, n_in: usize, critic: bool) -> Result<(f64, f64)> {
        let sparsity = match self.critic_sparsity {
            Some(s) if critic => Some(s),
            _ => self.sparsity,
        };
        match sparsity {
            None => Ok((self.lambda1, self.lambda2)),
            Some(s) => {
                let shapes = [(n_in, self.hidden), (self.hidden, self.hidden)];
                let lambda = sparse_core::er_lambda_for_sparsity(&shapes, s)?;
                Ok((lambda, lambda))
            }
        }
    }

    /// The number of rewards the TD targets of training iteration `iteration` (from 1) sum:
    /// 1 for the first [`Self::n_step_after`] iterations, then [`Self::n_step`].
    pub fn n_step_at(&self, iteration: u64) -> usize {
        if iteration > self.n_step_after {
            self.n_step
        } else {
            1
        }
    }

    /// Sets what of `evolution`'s schedule depends on the run's length: the final prune
    /// ([`Self::final_prune_after`]) and the decay of `η` ([`Self::cosine_decay`]). Called when
    /// an agent is built and when a run is extended.
    pub(crate) fn schedule_evolution(
        &self,
        evolution: &mut EvolutionController<Growth>,
    ) -> Result<()> {
        evolution.set_final_prune_after(self.final_prune_after());
        evolution.set_cosine_decay(self.cosine_decay())?;
        Ok(())
    }

    /// The training iterations `η` decays over ([`Self::evolution_schedule`]), if it decays.
    pub fn cosine_decay(&self) -> Option<u64> {
        let iterations = self.steps.saturating_sub(self.start_steps);
        (self.evolution_schedule == FractionSchedule::Cosine).then_some(iterations.max(1))
    }

    /// The iteration after which the next evolution is the final prune-only one
    /// ([`Self::topology_freeze`]), if the topology freezes.
    pub fn final_prune_after(&self) -> Option<u64> {
        let iterations = self.steps.saturating_sub(self.start_steps);
        (self.topology_freeze > 0).then(|| iterations.saturating_sub(self.topology_freeze))
    }

    /// Settings that are valid but probably not what was meant, each as a sentence for the user.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let iterations = self.steps.saturating_sub(self.start_steps);
        if self.algo.evolves() && self.topology_freeze > 0 && self.topology_freeze >= iterations {
            out.push(format!(
                "the topology freeze ({} iterations) covers the whole run ({iterations} training \
                 iterations): the first evolution only prunes and the topology never rewires \
                 (as in the authors' code); pass a smaller --topology-freeze, or 0 to evolve \
                 until the end",
                self.topology_freeze
            ));
        }
        out
    }

    /// Checks every setting; the error names the setting and the rule.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        let finite_pos = |v: f64| v.is_finite() && v > 0.0;
        for (what, s) in [
            ("sparsity", self.sparsity),
            ("critic sparsity", self.critic_sparsity),
        ] {
            let Some(s) = s else { continue };
            if !self.algo.is_sparse() {
                return bad(format!(
                    "{what} applies to the sparse variants; {} has dense layers only",
                    self.algo.label()
                ));
            }
            if !(0.0..1.0).contains(&s) {
                return bad(format!(
                    "{what} must lie in [0, 1) (the fraction of absent connections), got {s}"
                ));
            }
        }
        if self.critic_sparsity.is_some() && self.sparsity.is_none() {
            return bad(
                "critic sparsity needs sparsity too (the actor's; without it both would follow \
                 λ1 and λ2)"
                    .into(),
            );
        }
        if let Some(d) = &self.dynamic_buffer {
            if d.every == 0 || d.oldest == 0 || d.min_size == 0 {
                return bad(
                    "the dynamic buffer's every, oldest and min_size must be at least 1".into(),
                );
            }
            if !(d.threshold.is_finite() && d.threshold >= 0.0) {
                return bad(format!(
                    "the dynamic buffer's threshold must be a number ≥ 0, got {}",
                    d.threshold
                ));
            }
            if !(d.fraction > 0.0 && d.fraction < 1.0) {
                return bad(format!(
                    "the dynamic buffer's fraction must lie in (0, 1), got {}",
                    d.fraction
                ));
            }
            if d.min_size >= self.buffer_capacity {
                return bad(format!(
                    "the dynamic buffer's min_size ({}) must be below the buffer capacity ({}), \
                     or it never drops anything",
                    d.min_size, self.buffer_capacity
                ));
            }
        }
        if self.algo.is_sparse() {
            if !finite_pos(self.lambda1) {
                return bad(format!(
                    "lambda1 must be a positive number, got {}",
                    self.lambda1
                ));
            }
            if !finite_pos(self.lambda2) {
                return bad(format!(
                    "lambda2 must be a positive number, got {}",
                    self.lambda2
                ));
            }
        }
        if self.n_step == 0 {
            return bad("n-step must be at least 1 (1: one-step targets)".into());
        }
        if self.n_step > 1 && self.algo.family() == Family::Sac {
            return bad(format!(
                "n-step targets are implemented for the TD3 family only ({} would need the \
                 entropy bonuses of the intermediate states): drop --n-step",
                self.algo.label()
            ));
        }
        if self.evolution_schedule != FractionSchedule::Constant && !self.algo.evolves() {
            return bad(format!(
                "the evolution schedule applies to the variants that evolve (ds, ds-sac), not {}",
                self.algo
            ));
        }
        if let Growth::Gradient { candidates } = self.growth {
            if !self.algo.evolves() {
                return bad(format!(
                    "growth applies to the variants that evolve (ds, ds-sac), not {}",
                    self.algo
                ));
            }
            if candidates == 0 {
                return bad("growth candidates must be at least 1 per connection grown".into());
            }
            if self.device != Device::Cpu {
                return bad(format!(
                    "gradient-guided growth runs on the CPU only: drop --device {}",
                    self.device
                ));
            }
        }
        if self.algo.evolves() {
            if !(self.evolution_fraction > 0.0 && self.evolution_fraction < 1.0) {
                return bad(format!(
                    "evolution fraction η must lie strictly between 0 and 1, got {}",
                    self.evolution_fraction
                ));
            }
            if self.evolution_period == 0 {
                return bad("evolution period e must be at least 1".into());
            }
        }
        if self.steps < self.start_steps {
            return bad(format!(
                "steps ({}) must be at least the random start phase ({} steps)",
                self.steps, self.start_steps
            ));
        }
        if self.algo.family() == Family::Sac {
            if self.device != Device::Cpu {
                return bad(format!(
                    "{} runs on the CPU only for now (the GPU backend implements the TD3 \
                     family): drop --device {}",
                    self.algo.label(),
                    self.device
                ));
            }
            for (name, v) in [
                ("policy-noise", self.policy_noise),
                ("noise-clip", self.noise_clip),
                ("expl-noise", self.expl_noise),
            ] {
                if v != 0.0 {
                    return bad(format!(
                        "{name} is a TD3 setting; {} explores by sampling its stochastic \
                         policy (got {name} {v})",
                        self.algo.label()
                    ));
                }
            }
        }
        if self.algo.evolves()
            && self.device != Device::Cpu
            && self.bias_correction == BiasCorrection::Connection
        {
            return bad(format!(
                "per-connection bias correction is implemented on the CPU only: pass \
                 --bias-correction network to train DS-TD3 on the {} device",
                self.device
            ));
        }
        for (name, v) in [
            ("eval-every", self.eval_every),
            ("policy-delay", self.policy_delay),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        for (name, v) in [
            ("eval-episodes", self.eval_episodes),
            ("hidden", self.hidden),
            ("batch-size", self.batch_size),
            ("threads", self.threads),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.threads > sparse_core::pool::MAX_THREADS {
            return bad(format!(
                "threads must be at most {}, got {}",
                sparse_core::pool::MAX_THREADS,
                self.threads
            ));
        }
        if self.buffer_capacity < self.batch_size {
            return bad(format!(
                "buffer capacity ({}) must hold at least one batch ({})",
                self.buffer_capacity, self.batch_size
            ));
        }
        for (name, v) in [("gamma", self.gamma), ("tau", self.tau)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must lie in [0, 1], got {v}"));
            }
        }
        for (name, v) in [
            ("policy-noise", self.policy_noise),
            ("noise-clip", self.noise_clip),
            ("expl-noise", self.expl_noise),
            ("weight-decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} must be a non-negative number, got {v}"));
            }
        }
        if !finite_pos(self.lr) {
            return bad(format!("lr must be a positive number, got {}", self.lr));
        }
        Ok(())
    }
}
