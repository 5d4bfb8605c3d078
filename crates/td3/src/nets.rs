//! The seam between the update and where it runs: [`Nets`], the steps [`crate::agent`] writes
//! TD3's Algorithm 1 and SAC's update with, implemented on the host by `crate::cpu` and on a CUDA GPU by
//! `crate::gpu`; and the host state both work on: every online network as a [`Learner`], the
//! networks borrowed together as [`HostNets`], and the update's scalars, [`Hyper`].
//!
//! A backend gets the host networks as arguments and never reaches back into the agent; the
//! agent names no backend beyond choosing one.

use serde::{Deserialize, Serialize};
use set_evolve::{EvolutionMemory, EvolutionStats};
use sparse_core::{Activations, Adam, AdamConfig, Flops, Grads, MemoryReport, Mlp, Workspace};

use crate::Result;
use crate::replay::Batch;

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
    pub(crate) ws: Workspace,
}

impl Learner {
    /// `net` with a fresh Adam state.
    pub(crate) fn new(net: Mlp, adam: AdamConfig) -> Result<Self> {
        Ok(Self {
            adam: Adam::new(adam, &net)?,
            net,
            memory: EvolutionMemory::default(),
            grads: None,
            ws: Workspace::new(),
        })
    }

    /// The gradients of the network's last Adam step (weights in the order of its values), when
    /// it trained on the host; a GPU run keeps them on the device.
    pub fn gradients(&self) -> Option<&Grads> {
        self.grads.as_ref()
    }

    /// Bytes held by the network, its gradients and its Adam state.
    pub(crate) fn memory(&self) -> MemoryReport {
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
    pub(crate) policy_noise: f32,
    pub(crate) noise_clip: f32,
    pub(crate) policy_delay: u64,
    /// A run-time choice, not state: a resumed run sets it from its own thread count.
    #[serde(skip)]
    pub(crate) parallel_critics: bool,
}

/// Which online network.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which {
    Actor,
    Critic(usize),
}

/// The host copies of every network, borrowed together.
#[derive(Debug)]
pub(crate) struct HostNets<'a> {
    pub(crate) actor: &'a mut Learner,
    /// The actor's target (the TD3 family; SAC has none).
    pub(crate) actor_target: Option<&'a mut Mlp>,
    pub(crate) critics: &'a mut [Learner; 2],
    pub(crate) critic_targets: &'a mut [Mlp; 2],
}

impl HostNets<'_> {
    /// One online learner.
    pub(crate) fn learner(&mut self, which: Which) -> &mut Learner {
        match which {
            Which::Actor => self.actor,
            Which::Critic(i) => &mut self.critics[i],
        }
    }
}

/// Where the networks train: the steps of one TD3 or SAC iteration, acting, and evolution.
///
/// A TD3 iteration runs [`Self::target_action`], [`Self::td_target`], [`Self::critic_step`],
/// then on policy iterations [`Self::actor_step`] and [`Self::update_targets`]; a SAC
/// iteration runs [`Self::soft_td_target`], [`Self::critic_step`], then on policy iterations
/// [`Self::sac_actor_step`] and [`Self::update_targets`]. Every step works on the same
/// minibatch: a backend that trains elsewhere copies it (with the noise) over in the first step
/// and works on that copy until the next iteration.
pub(crate) trait Nets: std::fmt::Debug + Send + Sync {
    /// Step 1: the smoothed target action `ã = clip(π'(s') + clip(ε, −c, c), −max, max)`
    /// from the minibatch's next states and the noise `ε` (`act_dim × batch`).
    fn target_action(
        &mut self,
        host: &mut HostNets,
        h: &Hyper,
        batch: &Batch,
        noise: &Activations,
    ) -> Result<()>;

    /// Step 2: `y = r + γ (1 − d) min(Q'₁(s', ã), Q'₂(s', ã))`.
    fn td_target(&mut self, host: &mut HostNets, h: &Hyper, batch: &Batch) -> Result<()>;

    /// Step 3: one Adam step of each critic on `mean((Q_i(s, a) − y)²)`; returns the summed
    /// loss.
    fn critic_step(&mut self, host: &mut HostNets, h: &Hyper, batch: &Batch) -> Result<f64>;

    /// Step 5a: one Adam step of the actor on `−mean(Q₁(s, π(s)))`; returns that loss.
    fn actor_step(&mut self, host: &mut HostNets, batch: &Batch) -> Result<f64>;

    /// SAC, steps 1–2: `a' ~ π(·|s')` from the noise rows `0..|A|` (`2|A| × batch`), then
    /// `y = r + γ (1 − d) (min(Q'₁(s', a'), Q'₂(s', a')) − α log π(a'|s'))`. Only the host
    /// implements SAC.
    fn soft_td_target(
        &mut self,
        _host: &mut HostNets,
        _h: &Hyper,
        _batch: &Batch,
        _noise: &Activations,
        _alpha: f32,
    ) -> Result<()> {
        Err(sac_on_host_only())
    }

    /// SAC, step 5a: `ã ~ π(·|s)` (reparameterised, noise rows `|A|..2|A|`), one Adam step of
    /// the actor on `mean(α log π(ã|s) − min(Q₁(s, ã), Q₂(s, ã)))`; returns that loss and the
    /// minibatch's mean `log π(ã|s)` (for the temperature).
    fn sac_actor_step(
        &mut self,
        _host: &mut HostNets,
        _h: &Hyper,
        _batch: &Batch,
        _noise: &Activations,
        _alpha: f32,
    ) -> Result<(f64, f64)> {
        Err(sac_on_host_only())
    }

    /// Step 5b: `θ' ← τθ + (1 − τ)θ'` for every target, sparse layers re-pruned to their
    /// budget.
    fn update_targets(&mut self, host: &mut HostNets, h: &Hyper) -> Result<()>;

    /// Step 4: runs `evolve` (a topology change, on the host) on one online learner, and
    /// returns what it reports; a device backend downloads the learner first and uploads it
    /// after.
    fn evolve(
        &mut self,
        host: &mut HostNets,
        which: Which,
        evolve: &mut dyn FnMut(&mut Learner) -> Result<EvolutionStats>,
    ) -> Result<EvolutionStats>;

    /// The actor's outputs for one observation (TD3: the action; SAC: the heads).
    fn act(&mut self, host: &mut HostNets, obs: &[f64]) -> Result<Vec<f64>>;

    /// Brings the host copies up to date with the networks that train.
    fn sync_host(&self, host: &mut HostNets) -> Result<()>;

    /// FLOPs executed by every network's kernels so far, given the host copies' counters.
    fn flops(&self, host: &[&Mlp]) -> Flops;

    /// The device the networks train on, when it is not the host.
    fn device_name(&self) -> Option<String>;

    /// Device bytes held, when the networks train on a device.
    fn device_bytes(&self) -> Option<usize>;
}

/// What a backend without SAC's steps answers (configurations refuse the combination first).
fn sac_on_host_only() -> crate::Error {
    crate::Error::Gpu("SAC runs on the CPU only for now".into())
}
