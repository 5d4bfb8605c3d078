//! The agent: an actor, twin critics and their targets, and the update of one iteration, for
//! both families. TD3's is Fujimoto et al.'s Algorithm 1 with DS-TD3's topology steps; SAC's is
//! Haarnoja et al.'s (2018, automatic entropy tuning) with the same topology steps.
//!
//! One TD3 iteration, as [`Agent::train_with_noise`] runs it:
//! 1. `ã ← clip(π'(s') + ε, −max, max)`, `ε ~ clip(N(0, σ̃), −c, c)` (target policy smoothing);
//! 2. `y ← r + γ (1 − d) min(Q'₁(s', ã), Q'₂(s', ã))`;
//! 3. each critic takes one Adam step on `mean((Q_i(s, a) − y)²)`;
//! 4. on evolution iterations (every `e`), SET evolves the critics' sparse layers (in the final
//!    one, before the topology freezes, it only prunes);
//! 5. every `d` iterations: the actor takes one Adam step on `−mean(Q₁(s, π(s)))`, SET evolves
//!    it if this is an evolution iteration, and every target moves `θ' ← τθ + (1 − τ)θ'`, sparse
//!    target layers re-pruned to their online layer's connection count.
//!
//! One SAC iteration (the policy `π(·|s)` a tanh-squashed Gaussian, [`crate::sac`]):
//! 1. `a' ~ π(·|s')` with `log π(a'|s')`;
//! 2. `y ← r + γ (1 − d) (min(Q'₁(s', a'), Q'₂(s', a')) − α log π(a'|s'))`;
//! 3. and 4. as TD3;
//! 5. every `d` iterations (`d = 1` by default): `ã ~ π(·|s)` reparameterised, the actor takes
//!    one Adam step on `mean(α log π(ã|s) − min(Q₁(s, ã), Q₂(s, ã)))` and SET evolves it on
//!    evolution iterations; the temperature takes one Adam step on
//!    `−log α · mean(log π(ã|s) + H̄)`, `H̄ = −|A|`; the critics' targets move as TD3's (SAC has
//!    no actor target).
//!
//! Dense, static-sparse and dynamic-sparse variants of each family all run this code; they
//! differ in layer kinds and in whether the evolution controller is enabled. Where the steps
//! run is the backend's business (`crate::nets::Nets`): on the host (`crate::cpu`) unless a GPU
//! is attached ([`Agent::attach_gpu`], `crate::gpu`, the TD3 family only); evolution always runs
//! on the host.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use set_evolve::{EvolutionController, EvolutionStats, Growth, TopologyStep};
use sparse_core::profile::{self, Part};
use sparse_core::{
    Activations, AdamConfig, BiasCorrection, Flops, LayerKind, MemoryReport, Mlp, Output,
};

use crate::config::{Config, Family};
use crate::cpu::CpuNets;
use crate::gpu::GpuNets;
pub use crate::nets::Learner;
use crate::nets::{HostNets, Hyper, Nets, Which};
use crate::replay::Batch;
use crate::sac::{self, Temperature};
use crate::{Error, Result};

/// What one training iteration did.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationReport {
    /// The iteration number (from 1).
    pub iteration: u64,
    /// `mean((Q₁ − y)²) + mean((Q₂ − y)²)` before the critic step.
    pub critic_loss: f64,
    /// The actor's loss before its step, on actor iterations: TD3 `−mean(Q₁(s, π(s)))`, SAC
    /// `mean(α log π(ã|s) − min(Q₁, Q₂)(s, ã))`.
    pub actor_loss: Option<f64>,
    /// SAC: the temperature `α` after this iteration's step.
    pub alpha: Option<f64>,
    /// Evolutions done this iteration, by network name (`actor`, `critic1`, `critic2`).
    pub evolutions: Vec<(&'static str, EvolutionStats)>,
}

/// Actor, twin critics and targets, with the update of TD3 or SAC.
#[derive(Debug, Serialize, Deserialize)]
pub struct Agent {
    hyper: Hyper,
    obs_dim: usize,
    act_dim: usize,
    /// The policy π.
    pub actor: Learner,
    /// The target policy π' (the TD3 family; SAC has none).
    pub actor_target: Option<Mlp>,
    /// The critics Q₁, Q₂.
    pub critics: [Learner; 2],
    /// The target critics Q'₁, Q'₂.
    pub critic_targets: [Mlp; 2],
    /// SAC's entropy temperature (the SAC family only).
    pub temperature: Option<Temperature>,
    /// When and how the topology evolves (disabled for dense and static runs).
    pub evolution: EvolutionController<Growth>,
    /// Where the networks train: the host, or a GPU whose networks the host copies above show
    /// as of the last [`Agent::sync_host`].
    #[serde(skip, default = "host_backend")]
    nets: Box<dyn Nets>,
    /// [`Self::train`]'s noise (TD3: smoothing; SAC: reparameterisation), kept so that an
    /// iteration allocates nothing.
    #[serde(skip)]
    noise: Activations,
}

/// An agent borrowed apart ([`Agent::parts`]).
type Parts<'a> = (
    &'a mut dyn Nets,
    HostNets<'a>,
    &'a mut EvolutionController<Growth>,
    Option<&'a mut Temperature>,
);

/// The backend of a new or loaded agent: training on the host networks.
fn host_backend() -> Box<dyn Nets> {
    Box::new(CpuNets::default())
}

impl Agent {
    /// Builds the networks of `config.algo` for an environment with these dimensions and action
    /// bound, drawing topologies and initial values from `rng` (actor, then critic 1, critic 2).
    pub fn new<R: Rng + ?Sized>(
        config: &Config,
        obs_dim: usize,
        act_dim: usize,
        max_action: f32,
        rng: &mut R,
    ) -> Result<Self> {
        config.validate()?;
        if !(max_action.is_finite() && max_action > 0.0) {
            return Err(Error::Config(format!(
                "action bound must be positive, got {max_action}"
            )));
        }
        // Sparse hidden layers at λ1, λ2 (or the λ of the configured sparsity), dense output.
        let kinds = |n_in: usize, critic: bool| -> Result<[LayerKind; 3]> {
            if !config.algo.is_sparse() {
                return Ok([LayerKind::Dense; 3]);
            }
            let (lambda1, lambda2) = config.lambdas(n_in, critic)?;
            Ok([
                LayerKind::Sparse { lambda: lambda1 },
                LayerKind::Sparse { lambda: lambda2 },
                LayerKind::Dense,
            ])
        };
        let h = config.hidden;
        let family = config.algo.family();
        // TD3's actor outputs the action; SAC's the mean and log-std heads (`crate::sac`).
        let (actor_out, actor_width) = match family {
            Family::Td3 => (Output::Tanh { bound: max_action }, act_dim),
            Family::Sac => (Output::Linear, 2 * act_dim),
        };
        let actor = Mlp::init(
            &[obs_dim, h, h, actor_width],
            &kinds(obs_dim, false)?,
            actor_out,
            rng,
        )?;
        let critic_sizes = [obs_dim + act_dim, h, h, 1];
        let critic_kinds = kinds(obs_dim + act_dim, true)?;
        let q1 = Mlp::init(&critic_sizes, &critic_kinds, Output::Linear, rng)?;
        let q2 = Mlp::init(&critic_sizes, &critic_kinds, Output::Linear, rng)?;
        let ds = config.algo.evolves();
        let adam = AdamConfig {
            lr: config.lr,
            weight_decay: config.weight_decay,
            // Only evolution creates connections; without it both rules are the same.
            bias_correction: if ds {
                config.bias_correction
            } else {
                BiasCorrection::Network
            },
            ..AdamConfig::default()
        };
        let evolution = if ds {
            let mut e = EvolutionController::with_growth(
                config.evolution_period,
                config.evolution_fraction,
                config.growth,
            )?;
            config.schedule_evolution(&mut e)?;
            e
        } else {
            EvolutionController::disabled()
        };
        Ok(Self {
            hyper: Hyper {
                gamma: config.gamma as f32,
                tau: config.tau,
                max_action,
                policy_noise: (config.policy_noise * max_action as f64) as f32,
                noise_clip: (config.noise_clip * max_action as f64) as f32,
                policy_delay: config.policy_delay,
                parallel_critics: config.threads > 1,
            },
            obs_dim,
            act_dim,
            actor_target: (family == Family::Td3).then(|| actor.clone()),
            temperature: (family == Family::Sac).then(|| Temperature::new(act_dim, config.lr)),
            critic_targets: [q1.clone(), q2.clone()],
            actor: Learner::new(actor, adam)?,
            critics: [Learner::new(q1, adam)?, Learner::new(q2, adam)?],
            evolution,
            nets: host_backend(),
            noise: Activations::default(),
        })
    }

    /// Moves training to a GPU: uploads every network and optimiser state to `device`; from now
    /// on iterations and [`Self::act`] run there. Results match the CPU path to rounding. The
    /// public network fields (and serialisation) then show the host copies as of the last
    /// [`Self::sync_host`]; [`Self::flops`] is always current.
    pub fn attach_gpu(&mut self, device: sparse_cuda::Device) -> Result<()> {
        let Some(actor_target) = &self.actor_target else {
            return Err(Error::Gpu(
                "SAC runs on the CPU only for now (the GPU backend implements the TD3 family)"
                    .into(),
            ));
        };
        if set_evolve::GrowthPolicy::needs_gradient(self.evolution.growth()) {
            return Err(Error::Gpu(
                "gradient-guided growth runs on the CPU only (it scores candidates with the \
                 host's activations)"
                    .into(),
            ));
        }
        let nets = GpuNets::upload(
            device,
            (self.obs_dim, self.act_dim),
            &self.actor,
            &self.critics,
            actor_target,
            &self.critic_targets,
        )?;
        self.nets = Box::new(nets);
        Ok(())
    }

    /// Device bytes held by the GPU copy (networks, targets, gradients, Adam state and scratch),
    /// when a GPU is attached.
    pub fn gpu_bytes(&self) -> Option<usize> {
        self.nets.device_bytes()
    }

    /// The device training runs on, when a GPU is attached.
    pub fn gpu_name(&self) -> Option<String> {
        self.nets.device_name()
    }

    /// Copies the GPU's networks, optimiser states and targets into the host fields (a no-op
    /// without a GPU). Checkpoints call this first.
    pub fn sync_host(&mut self) -> Result<()> {
        let (nets, mut host, ..) = self.parts();
        nets.sync_host(&mut host)
    }

    /// Training iterations done.
    pub fn iterations(&self) -> u64 {
        self.evolution.iteration()
    }

    /// The action bound.
    pub fn max_action(&self) -> f32 {
        self.hyper.max_action
    }

    /// Runs the twin critics side by side on two threads (`true`) or one after the other.
    pub fn set_parallel_critics(&mut self, parallel: bool) {
        self.hyper.parallel_critics = parallel;
    }

    /// Checks that the agent holds the networks of `family` (a TD3 agent an actor target, a SAC
    /// agent a temperature): what a restored checkpoint must satisfy for its configuration.
    pub(crate) fn check_family(&self, family: Family) -> Result<()> {
        match (family, &self.actor_target, &self.temperature) {
            (Family::Td3, Some(_), None) | (Family::Sac, None, Some(_)) => Ok(()),
            _ => Err(Error::Checkpoint(format!(
                "the agent's networks are not those of the {family:?} family its configuration \
                 names"
            ))),
        }
    }

    /// The algorithm family of the update.
    pub fn family(&self) -> Family {
        match self.temperature {
            Some(_) => Family::Sac,
            None => Family::Td3,
        }
    }

    /// The deterministic policy's action for one observation: TD3 `π(s)`, SAC `M tanh μ(s)`.
    pub fn act(&mut self, obs: &[f64]) -> Result<Vec<f64>> {
        let out = self.actor_outputs(obs)?;
        Ok(match self.family() {
            Family::Td3 => out,
            Family::Sac => sac::mean_action(&out, self.hyper.max_action),
        })
    }

    /// An exploration action for one observation: TD3 `π(s)` (the trainer adds its noise),
    /// SAC a sample `M tanh(μ(s) + σ(s) ε)` with `ε ~ N(0, 1)` drawn from `rng`.
    pub fn explore<R: Rng + ?Sized>(&mut self, obs: &[f64], rng: &mut R) -> Result<Vec<f64>> {
        let out = self.actor_outputs(obs)?;
        Ok(match self.family() {
            Family::Td3 => out,
            Family::Sac => {
                let eps: Vec<f64> = (0..self.act_dim)
                    .map(|_| Distribution::<f64>::sample(&rand_distr::StandardNormal, rng))
                    .collect();
                sac::sample_one(&out, &eps, self.hyper.max_action)
            }
        })
    }

    /// The actor's outputs for one observation, its width checked.
    fn actor_outputs(&mut self, obs: &[f64]) -> Result<Vec<f64>> {
        if obs.len() != self.obs_dim {
            return Err(Error::Config(format!(
                "observation has {} values, the policy expects {}",
                obs.len(),
                self.obs_dim
            )));
        }
        let (nets, mut host, ..) = self.parts();
        nets.act(&mut host, obs)
    }

    /// The deterministic policy as a network of its own (`bound · tanh` output): TD3's actor,
    /// or SAC's trunk with its mean head. What `ds-td3 export` writes.
    pub fn policy_network(&self) -> Result<Mlp> {
        match self.family() {
            Family::Td3 => Ok(self.actor.net.clone()),
            Family::Sac => sac::mean_policy(&self.actor.net, self.hyper.max_action),
        }
    }

    /// One training iteration on `batch`, drawing its noise from `rng`: TD3's smoothing noise
    /// `N(0, σ̃)` (`|A| × batch`), SAC's reparameterisation noise `N(0, 1)` (`2|A| × batch`).
    pub fn train<R: Rng + ?Sized>(
        &mut self,
        batch: &Batch,
        rng: &mut R,
    ) -> Result<IterationReport> {
        let (n, rows) = (batch.obs.batch(), self.noise_rows());
        let sigma = match self.family() {
            Family::Td3 => self.hyper.policy_noise,
            Family::Sac => 1.0,
        };
        let mut noise = std::mem::take(&mut self.noise);
        noise.reset(rows, n);
        if sigma > 0.0 {
            let normal = Normal::new(0.0f32, sigma)
                .map_err(|e| Error::Config(format!("policy noise: {e}")))?;
            for b in 0..n {
                for f in 0..rows {
                    noise.set(f, b, normal.sample(rng));
                }
            }
        }
        let report = self.train_with_noise(batch, &noise, rng);
        self.noise = noise;
        report
    }

    /// One training iteration with the given noise: TD3 the (unclipped) smoothing noise `ε`
    /// (`|A| × batch`); SAC the standard normal noise of the next actions `a'` (rows `0..|A|`)
    /// and of the actor step's actions `ã` (rows `|A|..2|A|`). `rng` is used only by topology
    /// evolution.
    pub fn train_with_noise<R: Rng + ?Sized>(
        &mut self,
        batch: &Batch,
        noise: &Activations,
        rng: &mut R,
    ) -> Result<IterationReport> {
        let rows = self.noise_rows();
        if noise.features() != rows || noise.batch() != batch.obs.batch() {
            return Err(Error::Config(format!(
                "noise is {}×{}, the update needs {rows}×{}",
                noise.features(),
                noise.batch(),
                batch.obs.batch()
            )));
        }
        match self.family() {
            Family::Td3 => self.td3_iteration(batch, noise, rng),
            Family::Sac => self.sac_iteration(batch, noise, rng),
        }
    }

    /// Rows of an iteration's noise: TD3's smoothing noise has one per action dimension, SAC's
    /// two (the next actions' and the actor step's).
    fn noise_rows(&self) -> usize {
        match self.family() {
            Family::Td3 => self.act_dim,
            Family::Sac => 2 * self.act_dim,
        }
    }

    /// TD3's Algorithm 1, one iteration (the module documentation's steps).
    fn td3_iteration<R: Rng + ?Sized>(
        &mut self,
        batch: &Batch,
        noise: &Activations,
        rng: &mut R,
    ) -> Result<IterationReport> {
        let h = self.hyper;
        let (nets, mut host, evolution, _) = self.parts();
        let topology_step = evolution.tick();
        let iteration = evolution.iteration();
        let mut evolutions = Vec::new();

        nets.target_action(&mut host, &h, batch, noise)?;
        nets.td_target(&mut host, &h, batch)?;
        let critic_loss = nets.critic_step(&mut host, &h, batch)?;
        evolve_critics(
            nets,
            &mut host,
            evolution,
            topology_step,
            rng,
            &mut evolutions,
        )?;

        let mut actor_loss = None;
        if iteration.is_multiple_of(h.policy_delay) {
            actor_loss = Some(nets.actor_step(&mut host, batch)?);
            evolve_actor(
                nets,
                &mut host,
                evolution,
                topology_step,
                rng,
                &mut evolutions,
            )?;
            let _profile = profile::scope(Part::Targets);
            nets.update_targets(&mut host, &h)?;
        }
        Ok(IterationReport {
            iteration,
            critic_loss,
            actor_loss,
            alpha: None,
            evolutions,
        })
    }

    /// SAC, one iteration (the module documentation's steps).
    fn sac_iteration<R: Rng + ?Sized>(
        &mut self,
        batch: &Batch,
        noise: &Activations,
        rng: &mut R,
    ) -> Result<IterationReport> {
        let h = self.hyper;
        let (nets, mut host, evolution, temperature) = self.parts();
        let temperature = temperature.expect("a SAC agent has a temperature");
        let alpha = temperature.alpha();
        let topology_step = evolution.tick();
        let iteration = evolution.iteration();
        let mut evolutions = Vec::new();

        nets.soft_td_target(&mut host, &h, batch, noise, alpha)?;
        let critic_loss = nets.critic_step(&mut host, &h, batch)?;
        evolve_critics(
            nets,
            &mut host,
            evolution,
            topology_step,
            rng,
            &mut evolutions,
        )?;

        let mut actor_loss = None;
        if iteration.is_multiple_of(h.policy_delay) {
            let (loss, mean_log_pi) = nets.sac_actor_step(&mut host, &h, batch, noise, alpha)?;
            actor_loss = Some(loss);
            evolve_actor(
                nets,
                &mut host,
                evolution,
                topology_step,
                rng,
                &mut evolutions,
            )?;
            temperature.step(mean_log_pi);
            let _profile = profile::scope(Part::Targets);
            nets.update_targets(&mut host, &h)?;
        }
        let alpha = temperature.alpha() as f64;
        Ok(IterationReport {
            iteration,
            critic_loss,
            actor_loss,
            alpha: Some(alpha),
            evolutions,
        })
    }

    /// The backend, the host networks it works on, the evolution controller and SAC's
    /// temperature, borrowed apart.
    fn parts(&mut self) -> Parts<'_> {
        let host = HostNets {
            actor: &mut self.actor,
            actor_target: self.actor_target.as_mut(),
            critics: &mut self.critics,
            critic_targets: &mut self.critic_targets,
        };
        (
            self.nets.as_mut(),
            host,
            &mut self.evolution,
            self.temperature.as_mut(),
        )
    }

    /// Live connections of the online networks (actor and both critics), biases excluded.
    pub fn live_connections(&self) -> usize {
        self.online().map(Mlp::live_connections).sum()
    }

    /// The online networks with their names.
    pub fn online(&self) -> impl Iterator<Item = &Mlp> {
        [&self.actor.net, &self.critics[0].net, &self.critics[1].net].into_iter()
    }

    /// Every network: the online ones ([`Self::online`]), then the actor's target (TD3) and
    /// the critics' targets.
    pub fn networks(&self) -> Vec<&Mlp> {
        let mut all: Vec<&Mlp> = self.online().collect();
        all.extend(&self.actor_target);
        all.extend(&self.critic_targets);
        all
    }

    /// The target networks: the actor's (TD3), then the critics'.
    pub fn targets(&self) -> impl Iterator<Item = &Mlp> {
        self.actor_target.iter().chain(&self.critic_targets)
    }

    /// FLOPs executed by every network's kernels (online and target) so far.
    pub fn flops(&self) -> Flops {
        self.nets.flops(&self.networks())
    }

    /// Bytes held: online networks with gradients and Adam state, and the target networks.
    pub fn memory(&self) -> (MemoryReport, MemoryReport) {
        let online = self.actor.memory() + self.critics[0].memory() + self.critics[1].memory();
        let targets = self.targets().map(Mlp::memory).sum();
        (online, targets)
    }
}

/// Step 4 for the critics, on evolution iterations; adds what evolved to `out`.
fn evolve_critics<R: Rng + ?Sized>(
    nets: &mut dyn Nets,
    host: &mut HostNets,
    evolution: &mut EvolutionController<Growth>,
    step: Option<TopologyStep>,
    rng: &mut R,
    out: &mut Vec<(&'static str, EvolutionStats)>,
) -> Result<()> {
    let Some(step) = step else { return Ok(()) };
    for (i, name) in ["critic1", "critic2"].into_iter().enumerate() {
        if let Some(stats) = evolve(nets, host, evolution, step, Which::Critic(i), rng)? {
            out.push((name, stats));
        }
    }
    Ok(())
}

/// Step 4 for the actor, on evolution iterations that are actor iterations; adds what evolved
/// to `out`.
fn evolve_actor<R: Rng + ?Sized>(
    nets: &mut dyn Nets,
    host: &mut HostNets,
    evolution: &mut EvolutionController<Growth>,
    step: Option<TopologyStep>,
    rng: &mut R,
    out: &mut Vec<(&'static str, EvolutionStats)>,
) -> Result<()> {
    if let Some(step) = step
        && let Some(stats) = evolve(nets, host, evolution, step, Which::Actor, rng)?
    {
        out.push(("actor", stats));
    }
    Ok(())
}

/// Step 4 for one online network: SET evolution of its sparse layers, with its Adam state
/// realigned (on the host, wherever the network trains); `None` once its topology is frozen.
fn evolve<R: Rng + ?Sized>(
    nets: &mut dyn Nets,
    host: &mut HostNets,
    evolution: &mut EvolutionController<Growth>,
    step: TopologyStep,
    which: Which,
    rng: &mut R,
) -> Result<Option<EvolutionStats>> {
    if host.learner(which).memory.is_frozen() {
        return Ok(None);
    }
    let _profile = profile::scope(Part::Evolution);
    let stats = nets.evolve(host, which, &mut |l| {
        let stats = evolution.evolve(
            step,
            &mut l.net,
            Some(&mut l.adam),
            l.grads.as_mut(),
            &mut l.memory,
            rng,
            Some(&l.ws),
        )?;
        Ok(stats.expect("a network that is not frozen evolves"))
    })?;
    Ok(Some(stats))
}
