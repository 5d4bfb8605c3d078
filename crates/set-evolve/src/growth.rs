//! Where regrown connections go: the [`GrowthPolicy`] boundary, uniform random growth (SET) and
//! gradient-guided growth that stays truly sparse ([`GradientGrowth`]), and [`Growth`], the
//! choice between them.
//!
//! [`RandomGrowth`] draws the new positions uniformly among all positions that are not live
//! after pruning (a just-pruned position may come back, as in the authors' code), without
//! replacement, by one of two exact methods chosen by the free fraction `f = free / (n_in·n_out)`:
//! - `f ≥ 1/4` — rejection: draw a uniform position, keep it if it is free and not yet drawn.
//!   Each draw costs a binary search over the live positions (`O(log nnz)`), and a position is
//!   accepted after `1/f` draws on average: about 1.9 at density 0.5 (f ≈ 0.525 after pruning
//!   5%) and 1.01 at density 0.01. Cost `O(k · log nnz / f)` for `k` new connections.
//! - `f < 1/4` (nearly dense layers) — enumeration: list the free positions in one merge pass
//!   (`O(n_in·n_out)`) and sample `k` of them without replacement.

use std::collections::HashSet;

use rand::{Rng, RngExt};
use sparse_core::{Activations, SparseLinear};

use crate::{Error, Result};

/// What a growth policy may look at: the layer's shape and its live positions after pruning,
/// and, when the caller has them, the factors of the layer's weight gradient in its last
/// training step.
#[derive(Debug, Clone, Copy)]
pub struct GrowthContext<'a> {
    /// Rows (layer outputs).
    pub n_rows: usize,
    /// Columns (layer inputs).
    pub n_cols: usize,
    /// Row-major positions `row · n_cols + col` live after pruning, strictly increasing.
    pub live: &'a [usize],
    /// The layer's gradient at chosen positions, when available.
    pub gradient: Option<GradientProbe<'a>>,
}

/// The weight gradient of a layer's last training step at any positions, from its factors (the
/// layer's input `x` and the gradient `dz` at its output: `∂L/∂W = dz · xᵀ`), computed by the
/// weight-gradient kernel at those positions only ([`SparseLinear::gradient_at`]).
#[derive(Debug, Clone, Copy)]
pub struct GradientProbe<'a> {
    layer: &'a SparseLinear,
    x: &'a Activations,
    dz: &'a Activations,
}

impl<'a> GradientProbe<'a> {
    /// A probe of `layer` with the factors `x` (`n_in × batch`) and `dz` (`n_out × batch`).
    pub fn new(layer: &'a SparseLinear, x: &'a Activations, dz: &'a Activations) -> Result<Self> {
        let w = layer.weights();
        if x.features() != w.n_cols() || dz.features() != w.n_rows() || x.batch() != dz.batch() {
            return Err(Error::ArchitectureMismatch(
                "gradient factors do not fit the layer",
            ));
        }
        Ok(Self { layer, x, dz })
    }

    /// `∂L/∂W` at `positions` (row-major, strictly increasing), counted in the layer's FLOPs.
    pub fn at(&self, positions: &[usize]) -> Result<Vec<f32>> {
        Ok(self.layer.gradient_at(positions, self.dz, self.x)?)
    }
}

impl GrowthContext<'_> {
    /// All positions of the layer, `n_rows · n_cols`.
    pub fn total(&self) -> usize {
        self.n_rows * self.n_cols
    }

    /// Positions not live after pruning.
    pub fn free(&self) -> usize {
        self.total() - self.live.len()
    }

    /// Whether `position` is live after pruning.
    pub fn is_live(&self, position: usize) -> bool {
        self.live.binary_search(&position).is_ok()
    }
}

/// Chooses where a layer regrows connections.
///
/// Implementations return exactly `count` distinct free positions (row-major), in increasing
/// order; the evolution step checks this and reports a violation as an error.
pub trait GrowthPolicy {
    /// Picks `count` free positions of the layer described by `ctx`.
    fn grow<R: Rng + ?Sized>(
        &mut self,
        ctx: &GrowthContext<'_>,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<usize>>;

    /// Whether the policy scores positions with the layer's gradient
    /// ([`GrowthContext::gradient`]), so that a network evolution must have every layer's
    /// factors before it changes anything.
    fn needs_gradient(&self) -> bool {
        false
    }
}

/// SET's growth: uniformly random free positions (see the module documentation for the method).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RandomGrowth;

impl GrowthPolicy for RandomGrowth {
    fn grow<R: Rng + ?Sized>(
        &mut self,
        ctx: &GrowthContext<'_>,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<usize>> {
        let (total, free) = (ctx.total(), ctx.free());
        let count = count.min(free);
        let mut chosen = if free * 4 >= total {
            let mut seen = HashSet::with_capacity(count);
            let mut chosen = Vec::with_capacity(count);
            while chosen.len() < count {
                let p = rng.random_range(0..total);
                if !ctx.is_live(p) && seen.insert(p) {
                    chosen.push(p);
                }
            }
            chosen
        } else {
            let mut live = ctx.live.iter().peekable();
            let free_positions: Vec<usize> = (0..total)
                .filter(|&p| {
                    if live.peek() == Some(&&p) {
                        live.next();
                        false
                    } else {
                        true
                    }
                })
                .collect();
            rand::seq::index::sample(rng, free_positions.len(), count)
                .into_iter()
                .map(|i| free_positions[i])
                .collect()
        };
        chosen.sort_unstable();
        Ok(chosen)
    }
}

/// Gradient-guided growth without a dense gradient: draws `candidates × count` free positions
/// uniformly (as [`RandomGrowth`]; all free ones if fewer), scores each by `|∂L/∂w|` of the
/// layer's last training step with the weight-gradient kernel at those positions only
/// ([`GradientProbe`]), and grows the `count` with the largest scores (ties: lower position).
/// RigL and RLx2 score every free position with a dense gradient; this scores a sample, so the
/// cost is `O(candidates · count · batch)` instead of `O(n_in · n_out · batch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GradientGrowth {
    /// Candidates scored per connection grown (at least 1; 1 is random growth).
    pub candidates: u32,
}

impl GrowthPolicy for GradientGrowth {
    fn grow<R: Rng + ?Sized>(
        &mut self,
        ctx: &GrowthContext<'_>,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<usize>> {
        let count = count.min(ctx.free());
        if count == 0 {
            return Ok(Vec::new());
        }
        let Some(probe) = ctx.gradient else {
            return Err(Error::NoGradient);
        };
        let m = count
            .saturating_mul(self.candidates.max(1) as usize)
            .min(ctx.free());
        let candidates = RandomGrowth.grow(ctx, m, rng)?;
        let scores = probe.at(&candidates)?;
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        let best_first = |&a: &usize, &b: &usize| {
            scores[b]
                .abs()
                .total_cmp(&scores[a].abs())
                .then(candidates[a].cmp(&candidates[b]))
        };
        if count < order.len() {
            order.select_nth_unstable_by(count - 1, best_first);
        }
        let mut chosen: Vec<usize> = order[..count].iter().map(|&i| candidates[i]).collect();
        chosen.sort_unstable();
        Ok(chosen)
    }

    fn needs_gradient(&self) -> bool {
        true
    }
}

/// Which growth a run uses: SET's random growth (the default) or gradient-guided growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Growth {
    /// [`RandomGrowth`].
    #[default]
    Random,
    /// [`GradientGrowth`] with this many candidates per connection grown.
    Gradient {
        /// Candidates scored per connection grown.
        candidates: u32,
    },
}

impl GrowthPolicy for Growth {
    fn grow<R: Rng + ?Sized>(
        &mut self,
        ctx: &GrowthContext<'_>,
        count: usize,
        rng: &mut R,
    ) -> Result<Vec<usize>> {
        match *self {
            Growth::Random => RandomGrowth.grow(ctx, count, rng),
            Growth::Gradient { candidates } => GradientGrowth { candidates }.grow(ctx, count, rng),
        }
    }

    fn needs_gradient(&self) -> bool {
        matches!(self, Growth::Gradient { .. })
    }
}
