//! The evolution controller: when to evolve (every `e` training iterations), by how much (`η`),
//! when the topology freezes, and what each evolution did, for the logs.
//!
//! The freeze follows the authors' code: the first evolution after a chosen iteration (for the
//! paper's runs, 50 000 iterations before the end) prunes without regrowing, and none follow, so
//! the last evaluations see a fixed topology. Each network freezes at its own first evolution
//! past that point (the actor evolves only on its update iterations).

use rand::Rng;
use sparse_core::{Adam, Grads, Mlp, Workspace};

use crate::evolve::{change_network, check_fraction};
use crate::growth::{GrowthPolicy, RandomGrowth};
use crate::{Error, Result};

/// Statistics of one layer's evolution.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerStats {
    /// Index of the layer in its network.
    pub layer: usize,
    /// Connections removed.
    pub removed: usize,
    /// Connections added (equal to `removed`, except 0 in the final prune-only step).
    pub added: usize,
    /// How many removed connections were exactly 0 (pruned whatever `η` says).
    pub removed_zeros: usize,
    /// Mean `|w|` of the removed connections (`None` if none were removed).
    pub mean_abs_removed: Option<f64>,
    /// How many removed connections had been added at this network's previous evolution
    /// (`None` at its first evolution).
    pub removed_were_new: Option<usize>,
}

/// Statistics of one evolution of one network.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EvolutionStats {
    /// The training iteration at which it happened.
    pub iteration: u64,
    /// One entry per sparse layer.
    pub layers: Vec<LayerStats>,
    /// Wall-clock seconds it took: pruning, growth (with gradient-guided growth, the scoring of
    /// candidates) and the realignment of the optimiser state.
    pub seconds: f64,
}

impl EvolutionStats {
    /// Connections removed over all layers (equal to those added).
    pub fn removed(&self) -> usize {
        self.layers.iter().map(|l| l.removed).sum()
    }

    /// Removed connections that were exactly 0, over all layers.
    pub fn removed_zeros(&self) -> usize {
        self.layers.iter().map(|l| l.removed_zeros).sum()
    }

    /// Mean `|w|` of all removed connections.
    pub fn mean_abs_removed(&self) -> Option<f64> {
        let n = self.removed();
        let sum: f64 = self
            .layers
            .iter()
            .filter_map(|l| l.mean_abs_removed.map(|m| m * l.removed as f64))
            .sum();
        (n > 0).then(|| sum / n as f64)
    }

    /// Fraction of removed connections that had been added at the previous evolution (`None` at
    /// the first evolution or when nothing was removed).
    pub fn fraction_removed_were_new(&self) -> Option<f64> {
        let n = self.removed();
        let mut again = 0;
        for l in &self.layers {
            again += l.removed_were_new?;
        }
        (n > 0).then(|| again as f64 / n as f64)
    }
}

/// What a due topology change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyStep {
    /// Prune and regrow as many connections (SET).
    Rewire,
    /// Prune without regrowing, then never change again: the topology freezes.
    FinalPrune,
}

/// Decides when networks evolve and evolves them.
///
/// [`Self::tick`] counts training iterations (one per critic update) and says when an evolution
/// is due — at every multiple of the period `e` — and of which kind. [`Self::evolve`] evolves one
/// network; call it for each online network whose turn it is, each with its own
/// [`EvolutionMemory`].
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EvolutionController<G = RandomGrowth> {
    period: Option<u64>,
    fraction: f64,
    growth: G,
    iteration: u64,
    final_after: Option<u64>,
    /// With `Some(t)`, the fraction decays as `η (1 + cos(π min(i, t) / t)) / 2` over the
    /// iterations `i` (RigL's and RLx2's schedule).
    decay_over: Option<u64>,
}

/// One network's evolution history: what its previous evolution added, per layer (for
/// [`LayerStats::removed_were_new`]), and whether its topology is frozen.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EvolutionMemory {
    last_added: Vec<(usize, Vec<usize>)>,
    frozen: bool,
}

impl EvolutionMemory {
    /// Whether the network made its final prune-only step: its topology never changes again.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }
}

impl EvolutionController<RandomGrowth> {
    /// Evolution every `period` iterations with fraction `fraction`, random regrowth (SET).
    pub fn new(period: u64, fraction: f64) -> Result<Self> {
        Self::with_growth(period, fraction, RandomGrowth)
    }
}

impl<G: Default> EvolutionController<G> {
    /// A controller that never evolves: static sparsity.
    pub fn disabled() -> Self {
        Self {
            period: None,
            fraction: 0.0,
            growth: G::default(),
            iteration: 0,
            final_after: None,
            decay_over: None,
        }
    }
}

impl<G: GrowthPolicy> EvolutionController<G> {
    /// Evolution every `period` iterations with fraction `fraction`, regrowing through `growth`.
    pub fn with_growth(period: u64, fraction: f64, growth: G) -> Result<Self> {
        if period == 0 {
            return Err(Error::ZeroPeriod);
        }
        check_fraction(fraction)?;
        Ok(Self {
            period: Some(period),
            fraction,
            growth,
            iteration: 0,
            final_after: None,
            decay_over: None,
        })
    }

    /// Freezes the topology: the first evolution due after iteration `after` is a
    /// [`TopologyStep::FinalPrune`] (`None`: evolve until the end). May be changed at any time,
    /// e.g. when a resumed run is extended; a network already frozen stays frozen.
    pub fn set_final_prune_after(&mut self, after: Option<u64>) {
        self.final_after = after;
    }

    /// The iteration after which the next evolution is the final prune-only one, if any.
    pub fn final_prune_after(&self) -> Option<u64> {
        self.final_after
    }

    /// Counts one training iteration; returns the topology change due now, if any.
    pub fn tick(&mut self) -> Option<TopologyStep> {
        self.iteration += 1;
        let e = self.period?;
        if !self.iteration.is_multiple_of(e) {
            None
        } else if self.final_after.is_some_and(|a| self.iteration > a) {
            Some(TopologyStep::FinalPrune)
        } else {
            Some(TopologyStep::Rewire)
        }
    }

    /// Training iterations counted so far.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// Sets the iteration count (when resuming a run).
    pub fn set_iteration(&mut self, iteration: u64) {
        self.iteration = iteration;
    }

    /// The period `e`, or `None` when evolution is off.
    pub fn period(&self) -> Option<u64> {
        self.period
    }

    /// The fraction `η` (0 when evolution is off): the initial one under a decay.
    pub fn fraction(&self) -> f64 {
        self.fraction
    }

    /// Decays the fraction along a half cosine from `η` at iteration 0 to 0 at iteration
    /// `over` (and after), as RigL (Evci et al. 2020) and RLx2 (Tan et al. 2023) do; `None`
    /// keeps it constant. May be changed at any time, e.g. when a resumed run is extended.
    ///
    /// # Errors
    /// If `over` is `Some(0)`.
    pub fn set_cosine_decay(&mut self, over: Option<u64>) -> Result<()> {
        if over == Some(0) {
            return Err(Error::ZeroPeriod);
        }
        self.decay_over = over;
        Ok(())
    }

    /// The iterations the fraction decays over, if it decays.
    pub fn cosine_decay(&self) -> Option<u64> {
        self.decay_over
    }

    /// The fraction an evolution at the current iteration uses.
    pub fn fraction_now(&self) -> f64 {
        match self.decay_over {
            None => self.fraction,
            Some(t) => {
                let progress = self.iteration.min(t) as f64 / t as f64;
                self.fraction * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// How removed connections are regrown.
    pub fn growth(&self) -> &G {
        &self.growth
    }

    /// Applies `step` to every sparse layer of `net`, realigning `adam` and `grads`, and reports
    /// what changed; `None` (and nothing changes) when this network's topology is frozen
    /// already. An error if evolution is off. `factors`, the workspace of the network's last
    /// training step, is what gradient-guided growth scores candidates with. The fraction is
    /// [`Self::fraction_now`].
    #[allow(clippy::too_many_arguments)]
    pub fn evolve<R: Rng + ?Sized>(
        &mut self,
        step: TopologyStep,
        net: &mut Mlp,
        adam: Option<&mut Adam>,
        grads: Option<&mut Grads>,
        memory: &mut EvolutionMemory,
        rng: &mut R,
        factors: Option<&Workspace>,
    ) -> Result<Option<EvolutionStats>> {
        if self.period.is_none() {
            return Err(Error::EvolutionDisabled);
        }
        if memory.frozen {
            return Ok(None);
        }
        let fraction = self.fraction_now();
        let regrow = match step {
            TopologyStep::Rewire => Some((&mut self.growth, rng)),
            TopologyStep::FinalPrune => None,
        };
        let started = std::time::Instant::now();
        // A fully decayed fraction changes nothing (a final prune still freezes).
        let changes = if fraction > 0.0 {
            change_network(net, adam, grads, fraction, regrow, factors)?
        } else {
            Vec::new()
        };
        let seconds = started.elapsed().as_secs_f64();
        memory.frozen = step == TopologyStep::FinalPrune;
        let mut layers = Vec::with_capacity(changes.len());
        let mut last_added = Vec::with_capacity(changes.len());
        for (layer, change) in changes {
            let previous = memory.last_added.iter().find(|(l, _)| *l == layer);
            let removed_were_new = previous.map(|(_, prev)| count_common(&change.removed, prev));
            let n = change.removed.len();
            let sum: f64 = change.removed_magnitudes.iter().map(|&m| m as f64).sum();
            layers.push(LayerStats {
                layer,
                removed: n,
                added: change.added.len(),
                removed_zeros: change
                    .removed_magnitudes
                    .iter()
                    .filter(|&&m| m == 0.0)
                    .count(),
                mean_abs_removed: (n > 0).then(|| sum / n as f64),
                removed_were_new,
            });
            last_added.push((layer, change.added));
        }
        memory.last_added = last_added;
        Ok(Some(EvolutionStats {
            iteration: self.iteration,
            layers,
            seconds,
        }))
    }
}

/// Elements common to two increasing sequences.
fn count_common(a: &[usize], b: &[usize]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}
