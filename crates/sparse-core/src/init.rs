//! Initialisation: Erdős–Rényi sparse topologies and PyTorch's default `nn.Linear` values.
//!
//! A sparse layer with parameter λ keeps `round(λ · (n_in + n_out))` connections (all
//! `n_in · n_out` if that is more), placed uniformly at random without replacement — the expected
//! count of the paper's per-entry probability `p = λ (n_in + n_out) / (n_in · n_out)`, held
//! exactly. Weights and biases are drawn from `U(−1/√n_in, 1/√n_in)`, as PyTorch's `nn.Linear`
//! default (Kaiming-uniform with `a = √5`) does. Everything is drawn from the caller's RNG, so a
//! seeded RNG gives a reproducible layer: positions first, then weights in storage order, then
//! biases.

use rand::{Rng, RngExt};

use crate::csr::SparseWeights;
use crate::error::{Error, Result};
use crate::layer::{DenseLinear, SparseLinear};

/// Connections an Erdős–Rényi layer with parameter `lambda` holds:
/// `min(round(λ (n_in + n_out)), n_in · n_out)`.
pub fn er_connections(n_in: usize, n_out: usize, lambda: f64) -> Result<usize> {
    if !(lambda.is_finite() && lambda > 0.0) {
        return Err(Error::InvalidLambda(lambda));
    }
    if n_in == 0 {
        return Err(Error::ZeroDimension("n_in"));
    }
    if n_out == 0 {
        return Err(Error::ZeroDimension("n_out"));
    }
    let total = n_in * n_out;
    let want = (lambda * (n_in + n_out) as f64).round();
    Ok(if want >= total as f64 {
        total
    } else {
        want as usize
    })
}

/// The Erdős–Rényi λ that gives layers of shapes `(n_in, n_out)`, each holding
/// [`er_connections`]`(n_in, n_out, λ)`, together as close as possible to
/// `round((1 − sparsity) · Σ n_in · n_out)` connections: one λ for all, so each layer's density
/// follows the Erdős–Rényi rule `λ (n_in + n_out) / (n_in · n_out)` (narrow layers denser, and
/// full where the rule asks for more). The total misses the target by at most one connection per
/// layer (rounding).
///
/// # Errors
/// `sparsity` outside [0, 1), no shapes, or a zero dimension.
pub fn er_lambda_for_sparsity(shapes: &[(usize, usize)], sparsity: f64) -> Result<f64> {
    if !(0.0..1.0).contains(&sparsity) {
        return Err(Error::InvalidSparsity(sparsity));
    }
    if shapes.is_empty() {
        return Err(Error::ZeroDimension("layers"));
    }
    let full: usize = shapes.iter().map(|&(i, o)| i * o).sum();
    let target = ((1.0 - sparsity) * full as f64).round() as usize;
    let total = |lambda: f64| -> Result<usize> {
        shapes
            .iter()
            .map(|&(i, o)| er_connections(i, o, lambda))
            .sum()
    };
    // The count never falls as λ grows; at the largest λ below, every layer is full.
    let mut hi = shapes
        .iter()
        .map(|&(i, o)| (i * o) as f64 / (i + o) as f64)
        .fold(0.0f64, f64::max)
        + 1.0;
    let mut lo = 0.0f64;
    // Bisection to the boundary of the first λ whose count reaches the target.
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if total(mid)? >= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    // `hi` reaches the target; `lo` (if positive) falls short: the closer one.
    let above = total(hi)?.abs_diff(target);
    if lo > 0.0 && total(lo)?.abs_diff(target) < above {
        Ok(lo)
    } else {
        Ok(hi)
    }
}

/// `1/√n_in`: the bound of PyTorch's default weight and bias distribution.
fn default_bound(n_in: usize) -> f32 {
    (1.0 / (n_in as f64).sqrt()) as f32
}

fn uniform_vec<R: Rng + ?Sized>(rng: &mut R, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

impl SparseLinear {
    /// An Erdős–Rényi sparse layer with parameter `lambda` and PyTorch-default values.
    pub fn erdos_renyi<R: Rng + ?Sized>(
        n_in: usize,
        n_out: usize,
        lambda: f64,
        rng: &mut R,
    ) -> Result<Self> {
        let count = er_connections(n_in, n_out, lambda)?;
        Self::random(n_in, n_out, count, rng)
    }

    /// A sparse layer with exactly `count` connections at uniformly random positions and
    /// PyTorch-default values (`count` is capped at `n_in · n_out`).
    pub fn random<R: Rng + ?Sized>(
        n_in: usize,
        n_out: usize,
        count: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if n_in == 0 {
            return Err(Error::ZeroDimension("n_in"));
        }
        if n_out == 0 {
            return Err(Error::ZeroDimension("n_out"));
        }
        let total = n_in * n_out;
        let count = count.min(total);
        let mut positions = rand::seq::index::sample(rng, total, count).into_vec();
        positions.sort_unstable();
        let bound = default_bound(n_in);
        let values = uniform_vec(rng, count, bound);
        let bias = uniform_vec(rng, n_out, bound);
        let weights = SparseWeights::from_positions(n_out, n_in, &positions, values)?;
        SparseLinear::new(weights, bias)
    }
}

impl DenseLinear {
    /// A dense layer with PyTorch-default values (row-major draws, then biases).
    pub fn pytorch_default<R: Rng + ?Sized>(
        n_in: usize,
        n_out: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if n_in == 0 {
            return Err(Error::ZeroDimension("n_in"));
        }
        let bound = default_bound(n_in);
        let weights = uniform_vec(rng, n_in * n_out, bound);
        let bias = uniform_vec(rng, n_out, bound);
        DenseLinear::new(n_in, n_out, weights, bias)
    }
}
