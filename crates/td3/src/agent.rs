//! The TD3 agent: an actor, twin critics, their target networks, and the update of
//! Fujimoto et al.'s Algorithm 1 with DS-TD3's topology steps.
//!
//! One training iteration, as [`Agent::train_with_noise`] runs it:
//! 1. `ã ← clip(π'(s') + ε, −max, max)`, `ε ~ clip(N(0, σ̃), −c, c)` (target policy smoothing);
//! 2. `y ← r + γ (1 − d) min(Q'₁(s', ã), Q'₂(s', ã))`;
//! 3. each critic takes one Adam step on `mean((Q_i(s, a) − y)²)`;
//! 4. on evolution iterations (every `e`), SET evolves the critics' sparse layers;
//! 5. every `d` iterations: the actor takes one Adam step on `−mean(Q₁(s, π(s)))`, SET evolves
//!    it if this is an evolution iteration, and every target moves `θ' ← τθ + (1 − τ)θ'`, sparse
//!    target layers re-pruned to their connection budget.
//!
//! Dense TD3, Static-TD3 and DS-TD3 all run this code; they differ in layer kinds and in whether
//! the evolution controller is enabled. With a GPU attached ([`Agent::attach_gpu`]) each step
//! runs on the device instead (`crate::gpu`), in the same order; evolution stays on the host.

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use set_evolve::{EvolutionController, EvolutionMemory, EvolutionStats, TargetSync};
use sparse_core::profile::{self, Part};
use sparse_core::{
    Activations, Adam, AdamConfig, Flops, Grads, LayerKind, MemoryReport, Mlp, Output, Workspace,
};

use crate::config::{Algo, Config};
use crate::gpu::{GpuNets, Which};
use crate::replay::Batch;
use crate::{Error, Result};

/// An online network with its optimiser, gradient buffers and evolution memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Learner {
    /// The network.
    pub net: Mlp,
    /// Its Adam state.
    pub adam: Adam,
    /// What its previous evolution added (for statistics).
    pub memory: EvolutionMemory,
    #[serde(skip, default)]
    pub(crate) grads: Option<Grads>,
    #[serde(skip, default)]
    ws: Workspace,
}

impl Learner {
    fn new(net: Mlp, adam: AdamConfig) -> Result<Self> {
        Ok(Self {
            adam: Adam::new(adam, &net)?,
            net,
            memory: EvolutionMemory::default(),
            grads: None,
            ws: Workspace::new(),
        })
    }

    /// Backward pass from `d_out` into the gradients (created on first use, realigned by
    /// evolution), then one Adam step.
    fn step(&mut self, d_out: &Activations) -> Result<()> {
        let grads = self
            .grads
            .get_or_insert_with(|| Grads::zeros_like(&self.net));
        self.net.backward(&mut self.ws, d_out, Some(grads), None)?;
        self.adam.step(&mut self.net, grads)?;
        Ok(())
    }

    /// Bytes held by the network, its gradients and its Adam state.
    fn memory(&self) -> MemoryReport {
        let params: usize = self
            .net
            .layers()
            .iter()
            .map(|l| l.live_connections() + l.n_out())
            .sum();
        let grads = MemoryReport {
            gradients: 4 * params,
            ..Default::default()
        };
        self.net.memory() + grads + self.adam.memory()
    }
}

/// The scalars of the update, in the units the networks see.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Hyper {
    pub(crate) gamma: f32,
    pub(crate) tau: f64,
    pub(crate) max_action: f32,
    policy_noise: f32,
    pub(crate) noise_clip: f32,
    policy_delay: u64,
    /// A run-time choice, not state: a resumed run sets it from its own thread count.
    #[serde(skip)]
    parallel_critics: bool,
}

/// What one training iteration did.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationReport {
    /// The iteration number (from 1).
    pub iteration: u64,
    /// `mean((Q₁ − y)²) + mean((Q₂ − y)²)` before the critic step.
    pub critic_loss: f64,
    /// `−mean(Q₁(s, π(s)))` before the actor step, on actor iterations.
    pub actor_loss: Option<f64>,
    /// Evolutions done this iteration, by network name (`actor`, `critic1`, `critic2`).
    pub evolutions: Vec<(&'static str, EvolutionStats)>,
}

/// Scratch buffers reused across iterations.
#[derive(Debug, Default)]
struct Scratch {
    /// The target soft updates' caches: actor target, critic targets.
    sync: [TargetSync; 3],
    target_ws: [Workspace; 3],
    next_action: Activations,
    next_input: Activations,
    input: Activations,
    y: Activations,
    d_q: [Activations; 2],
    d_input: Activations,
    d_action: Activations,
    act_in: Activations,
}

/// Actor, twin critics and targets, with the TD3 update.
#[derive(Debug, Serialize, Deserialize)]
pub struct Agent {
    hyper: Hyper,
    obs_dim: usize,
    act_dim: usize,
    /// The policy π.
    pub actor: Learner,
    /// The target policy π'.
    pub actor_target: Mlp,
    /// The critics Q₁, Q₂.
    pub critics: [Learner; 2],
    /// The target critics Q'₁, Q'₂.
    pub critic_targets: [Mlp; 2],
    /// When and how the topology evolves (disabled for dense and static runs).
    pub evolution: EvolutionController,
    #[serde(skip, default)]
    scratch: Scratch,
    /// The networks on a GPU, when one is attached; the host copies above are then refreshed
    /// only by [`Agent::sync_host`].
    #[serde(skip, default)]
    gpu: Option<Box<GpuNets>>,
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
        let kinds = if config.algo.is_sparse() {
            [
                LayerKind::Sparse {
                    lambda: config.lambda1,
                },
                LayerKind::Sparse {
                    lambda: config.lambda2,
                },
                LayerKind::Dense,
            ]
        } else {
            [LayerKind::Dense; 3]
        };
        let h = config.hidden;
        let actor_out = Output::Tanh { bound: max_action };
        let actor = Mlp::init(&[obs_dim, h, h, act_dim], &kinds, actor_out, rng)?;
        let critic_sizes = [obs_dim + act_dim, h, h, 1];
        let q1 = Mlp::init(&critic_sizes, &kinds, Output::Linear, rng)?;
        let q2 = Mlp::init(&critic_sizes, &kinds, Output::Linear, rng)?;
        let adam = AdamConfig {
            lr: config.lr,
            weight_decay: config.weight_decay,
            ..AdamConfig::default()
        };
        let evolution = if config.algo == Algo::Ds {
            EvolutionController::new(config.evolution_period, config.evolution_fraction)?
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
            actor_target: actor.clone(),
            critic_targets: [q1.clone(), q2.clone()],
            actor: Learner::new(actor, adam)?,
            critics: [Learner::new(q1, adam)?, Learner::new(q2, adam)?],
            evolution,
            scratch: Scratch::default(),
            gpu: None,
        })
    }

    /// Moves training to a GPU: uploads every network and optimiser state to `device`; from now
    /// on iterations and [`Self::act`] run there. Results match the CPU path to rounding. The
    /// public network fields (and serialisation) then show the host copies as of the last
    /// [`Self::sync_host`]; [`Self::flops`] is always current.
    pub fn attach_gpu(&mut self, device: sparse_cuda::Device) -> Result<()> {
        let nets = GpuNets::upload(
            device,
            (self.obs_dim, self.act_dim),
            &self.actor,
            &self.critics,
            &self.actor_target,
            &self.critic_targets,
        )?;
        self.gpu = Some(Box::new(nets));
        Ok(())
    }

    /// Device bytes held by the GPU copy (networks, targets, gradients, Adam state and scratch),
    /// when a GPU is attached.
    pub fn gpu_bytes(&self) -> Option<usize> {
        self.gpu.as_ref().map(|g| g.bytes())
    }

    /// The device training runs on, when a GPU is attached.
    pub fn gpu_name(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| g.device_name())
    }

    /// Copies the GPU's networks, optimiser states and targets into the host fields (a no-op
    /// without a GPU). Checkpoints call this first.
    pub fn sync_host(&mut self) -> Result<()> {
        if let Some(g) = &self.gpu {
            g.download_all(
                &mut self.actor,
                &mut self.critics,
                &mut self.actor_target,
                &mut self.critic_targets,
            )?;
        }
        Ok(())
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

    /// The deterministic policy's action `π(s)` for one observation.
    pub fn act(&mut self, obs: &[f64]) -> Result<Vec<f64>> {
        if obs.len() != self.obs_dim {
            return Err(Error::Config(format!(
                "observation has {} values, the policy expects {}",
                obs.len(),
                self.obs_dim
            )));
        }
        if let Some(g) = &mut self.gpu {
            return g.act(obs);
        }
        let s = &mut self.scratch;
        s.act_in.ensure_shape(self.obs_dim, 1);
        for (f, &o) in obs.iter().enumerate() {
            s.act_in.set(f, 0, o as f32);
        }
        let a = self.actor.net.forward(&s.act_in, &mut self.actor.ws)?;
        Ok((0..self.act_dim).map(|f| a.get(f, 0) as f64).collect())
    }

    /// One training iteration on `batch`, drawing the target-smoothing noise from `rng`.
    pub fn train<R: Rng + ?Sized>(
        &mut self,
        batch: &Batch,
        rng: &mut R,
    ) -> Result<IterationReport> {
        let (n, act_dim) = (batch.obs.batch(), self.act_dim);
        let mut noise = Activations::zeros(act_dim, n);
        if self.hyper.policy_noise > 0.0 {
            let normal = Normal::new(0.0f32, self.hyper.policy_noise)
                .map_err(|e| Error::Config(format!("policy noise: {e}")))?;
            for b in 0..n {
                for f in 0..act_dim {
                    noise.set(f, b, normal.sample(rng));
                }
            }
        }
        self.train_with_noise(batch, &noise, rng)
    }

    /// One training iteration with the given (unclipped) smoothing noise `ε` (`act_dim × batch`);
    /// `rng` is used only by topology evolution.
    pub fn train_with_noise<R: Rng + ?Sized>(
        &mut self,
        batch: &Batch,
        noise: &Activations,
        rng: &mut R,
    ) -> Result<IterationReport> {
        let evolve_now = self.evolution.tick();
        let iteration = self.evolution.iteration();
        let mut evolutions = Vec::new();
        if let Some(g) = &mut self.gpu {
            g.load_batch(batch, noise)?;
        }

        self.td_target(batch, noise)?;
        let critic_loss = self.update_critics(batch)?;
        if evolve_now {
            for (i, name) in ["critic1", "critic2"].into_iter().enumerate() {
                evolutions.push((name, self.evolve(Which::Critic(i), rng)?));
            }
        }

        let mut actor_loss = None;
        if iteration.is_multiple_of(self.hyper.policy_delay) {
            actor_loss = Some(self.update_actor(batch)?);
            if evolve_now {
                evolutions.push(("actor", self.evolve(Which::Actor, rng)?));
            }
            self.update_targets()?;
        }
        Ok(IterationReport {
            iteration,
            critic_loss,
            actor_loss,
            evolutions,
        })
    }

    /// Step 4 for one online network: SET evolution of its sparse layers, with its Adam state
    /// realigned (on the host; a GPU copy is downloaded first and uploaded after).
    fn evolve<R: Rng + ?Sized>(&mut self, which: Which, rng: &mut R) -> Result<EvolutionStats> {
        let _profile = profile::scope(Part::Evolution);
        let l = match which {
            Which::Actor => &mut self.actor,
            Which::Critic(i) => &mut self.critics[i],
        };
        if let Some(g) = &mut self.gpu {
            g.download(which, l)?;
        }
        let stats = self.evolution.evolve(
            &mut l.net,
            Some(&mut l.adam),
            l.grads.as_mut(),
            &mut l.memory,
            rng,
        )?;
        if let Some(g) = &mut self.gpu {
            g.upload_learner(which, l)?;
        }
        Ok(stats)
    }

    /// Step 5b: `θ' ← τθ + (1 − τ)θ'` for every target, sparse layers re-pruned to their budget.
    fn update_targets(&mut self) -> Result<()> {
        let _profile = profile::scope(Part::Targets);
        let tau = self.hyper.tau;
        if let Some(g) = &mut self.gpu {
            return g.update_targets(tau);
        }
        // The actor's target on one thread and the critics' on the other (when parallel):
        // independent work, so the results do not depend on the thread count.
        let (actor_target, actor) = (&mut self.actor_target, &self.actor.net);
        let (critic_targets, critics) = (&mut self.critic_targets, &self.critics);
        let [actor_sync, critic_syncs @ ..] = &mut self.scratch.sync;
        let (a, c) = both(
            self.hyper.parallel_critics,
            || actor_sync.update(actor_target, actor, tau),
            || {
                critic_targets
                    .iter_mut()
                    .zip(critics)
                    .zip(critic_syncs)
                    .try_for_each(|((target, online), sync)| sync.update(target, &online.net, tau))
            },
        );
        a?;
        c?;
        Ok(())
    }

    /// Steps 1–2: `y = r + γ (1 − d) min(Q'₁(s', ã), Q'₂(s', ã))` into `scratch.y`.
    fn td_target(&mut self, batch: &Batch, noise: &Activations) -> Result<()> {
        let h = self.hyper;
        if let Some(g) = &mut self.gpu {
            return g.td_target(&h);
        }
        let s = &mut self.scratch;
        let n = batch.obs.batch();
        let [ws_actor, ws_q1, ws_q2] = &mut s.target_ws;
        let pi = self.actor_target.forward(&batch.next_obs, ws_actor)?;
        s.next_action.ensure_shape(self.act_dim, n);
        for f in 0..self.act_dim {
            for b in 0..n {
                let eps = noise.get(f, b).clamp(-h.noise_clip, h.noise_clip);
                let a = (pi.get(f, b) + eps).clamp(-h.max_action, h.max_action);
                s.next_action.set(f, b, a);
            }
        }
        stack(&mut s.next_input, &batch.next_obs, &s.next_action)?;
        let [t1, t2] = &self.critic_targets;
        let input = &s.next_input;
        let (q1, q2) = both(
            h.parallel_critics,
            || t1.forward(input, ws_q1).map(|_| ()),
            || t2.forward(input, ws_q2).map(|_| ()),
        );
        q1?;
        q2?;
        s.y.ensure_shape(1, n);
        for b in 0..n {
            let min_q = ws_q1.output().get(0, b).min(ws_q2.output().get(0, b));
            let bootstrap = batch.not_done.get(0, b) * h.gamma * min_q;
            s.y.set(0, b, batch.rewards.get(0, b) + bootstrap);
        }
        Ok(())
    }

    /// Step 3: one Adam step of each critic on its squared TD error; returns the summed loss.
    fn update_critics(&mut self, batch: &Batch) -> Result<f64> {
        if let Some(g) = &mut self.gpu {
            return g.update_critics();
        }
        let s = &mut self.scratch;
        stack(&mut s.input, &batch.obs, &batch.actions)?;
        let (input, y) = (&s.input, &s.y);
        let [c1, c2] = &mut self.critics;
        let [d1, d2] = &mut s.d_q;
        let (l1, l2) = both(
            self.hyper.parallel_critics,
            || critic_step(c1, input, y, d1),
            || critic_step(c2, input, y, d2),
        );
        Ok(l1? + l2?)
    }

    /// Step 5a: one Adam step of the actor on `−mean(Q₁(s, π(s)))`; returns that loss.
    fn update_actor(&mut self, batch: &Batch) -> Result<f64> {
        if let Some(g) = &mut self.gpu {
            return g.update_actor();
        }
        let s = &mut self.scratch;
        let n = batch.obs.batch();
        let pi = self.actor.net.forward(&batch.obs, &mut self.actor.ws)?;
        stack(&mut s.input, &batch.obs, pi)?;
        let critic = &mut self.critics[0];
        let q = critic.net.forward(&s.input, &mut critic.ws)?;
        let loss = -(0..n).map(|b| q.get(0, b) as f64).sum::<f64>() / n as f64;
        // dL/dQ₁ = −1/n for every sample; back through Q₁ to its input, keep the action rows.
        let d_q = &mut s.d_q[0];
        d_q.ensure_shape(1, n);
        d_q.row_mut(0).fill(-1.0 / n as f32);
        critic
            .net
            .backward(&mut critic.ws, d_q, None, Some(&mut s.d_input))?;
        s.d_action.ensure_shape(self.act_dim, n);
        for f in 0..self.act_dim {
            s.d_action
                .row_mut(f)
                .copy_from_slice(s.d_input.row(self.obs_dim + f));
        }
        self.actor.step(&s.d_action)?;
        Ok(loss)
    }

    /// Live connections of the online networks (actor and both critics), biases excluded.
    pub fn live_connections(&self) -> usize {
        self.online().map(Mlp::live_connections).sum()
    }

    /// The online networks with their names.
    pub fn online(&self) -> impl Iterator<Item = &Mlp> {
        [&self.actor.net, &self.critics[0].net, &self.critics[1].net].into_iter()
    }

    /// FLOPs executed by every network's kernels (online and target) so far.
    pub fn flops(&self) -> Flops {
        if let Some(g) = &self.gpu {
            return g.flops();
        }
        let targets = [
            &self.actor_target,
            &self.critic_targets[0],
            &self.critic_targets[1],
        ];
        self.online().chain(targets).map(Mlp::flops).sum()
    }

    /// Bytes held: online networks with gradients and Adam state, and the target networks.
    pub fn memory(&self) -> (MemoryReport, MemoryReport) {
        let online = self.actor.memory() + self.critics[0].memory() + self.critics[1].memory();
        let targets = self.actor_target.memory()
            + self.critic_targets[0].memory()
            + self.critic_targets[1].memory();
        (online, targets)
    }
}

/// Forward, loss, backward and Adam step of one critic; returns `mean((Q − y)²)`.
fn critic_step(
    c: &mut Learner,
    input: &Activations,
    y: &Activations,
    d_q: &mut Activations,
) -> Result<f64> {
    let n = input.batch();
    let q = c.net.forward(input, &mut c.ws)?;
    d_q.ensure_shape(1, n);
    let mut loss = 0.0f64;
    for b in 0..n {
        let err = q.get(0, b) - y.get(0, b);
        loss += (err as f64) * (err as f64);
        d_q.set(0, b, 2.0 * err / n as f32);
    }
    c.step(d_q)?;
    Ok(loss / n as f64)
}

/// `out = [top; bottom]`: feature rows of `top` then of `bottom`.
fn stack(out: &mut Activations, top: &Activations, bottom: &Activations) -> Result<()> {
    out.ensure_shape(top.features() + bottom.features(), top.batch());
    out.copy_rows_from(0, top)?;
    out.copy_rows_from(top.features(), bottom)?;
    Ok(())
}

/// Runs two independent closures, on two of the pool's threads when `parallel` (and the pool
/// has them: [`sparse_core::pool::join`]).
fn both<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel {
        // What this thread does inside counts as what it was doing; the rest is waiting.
        let outer = profile::current();
        let _profile = profile::scope(Part::Wait);
        sparse_core::pool::join(
            || {
                let _mine = profile::scope(outer);
                a()
            },
            b,
        )
    } else {
        (a(), b())
    }
}
