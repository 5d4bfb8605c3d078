//! Where regrown connections go: the [`GrowthPolicy`] boundary and uniform random growth.
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

/// What a growth policy may look at: the layer's shape and its live positions after pruning.
#[derive(Debug, Clone, Copy)]
pub struct GrowthContext<'a> {
    /// Rows (layer outputs).
    pub n_rows: usize,
    /// Columns (layer inputs).
    pub n_cols: usize,
    /// Row-major positions `row · n_cols + col` live after pruning, strictly increasing.
    pub live: &'a [usize],
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
    ) -> Vec<usize>;
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
    ) -> Vec<usize> {
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
        chosen
    }
}
