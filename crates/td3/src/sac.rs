//! SAC's own pieces beside the shared update: the tanh-squashed Gaussian policy head and the
//! learned entropy temperature (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and
//! Applications", with automatic entropy tuning).
//!
//! The actor is one trunk whose output layer has `2|A|` rows, the two heads: the means `μ`, then
//! the raw log standard deviations `ℓ`. For one sample and action dimension `j`, with the
//! reparameterisation noise `ε ~ N(0, 1)`:
//! - `ℓ̂ = clamp(ℓ, −20, 2)` (the bounds of Haarnoja et al.'s code, Spinning Up and
//!   Stable-Baselines3) and `σ = exp ℓ̂`;
//! - `u = μ + σε` and the action `a = M tanh u` (`M`: the action bound);
//! - `log π(a|s) = Σ_j [−ε²/2 − ℓ̂ − ½ log 2π − log(1 − tanh² u)]`, the density of `a / M`, so
//!   of an action in the `[−1, 1]` box whatever `M` (as Stable-Baselines3), which makes the
//!   entropy target `−|A|` mean the same on every task. The tanh correction is computed
//!   stably as `log(1 − tanh² u) = 2 (log 2 − u − softplus(−2u))`.
//!
//! The deterministic policy (evaluation, export) is `a = M tanh μ`.

use serde::{Deserialize, Serialize};
use sparse_core::{Activations, AdamConfig, Layer, Mlp, Output};

use crate::{Error, Result};

/// Lower bound of the log standard deviation.
pub const LOG_STD_MIN: f32 = -20.0;
/// Upper bound of the log standard deviation.
pub const LOG_STD_MAX: f32 = 2.0;

/// `½ log 2π`.
const HALF_LOG_2PI: f32 = 0.918_938_5;

/// One squashed sample: from a mean `mu`, a raw log standard deviation `raw_log_std` and the
/// noise `eps`, the pre-squash value `u`, the action `M tanh u` (for `bound = M`), and this
/// dimension's term of `log π`.
#[inline]
fn squash(mu: f32, raw_log_std: f32, eps: f32, bound: f32) -> (f32, f32, f32) {
    let log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX);
    let u = mu + log_std.exp() * eps;
    let log_det = 2.0 * (std::f32::consts::LN_2 - u - softplus(-2.0 * u));
    let log_pi = -0.5 * eps * eps - log_std - HALF_LOG_2PI - log_det;
    (u, bound * u.tanh(), log_pi)
}

/// `log(1 + eˣ)` without overflow.
#[inline]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Samples a batch of actions from the head outputs `head` (`2|A| × n`) with the noise rows
/// `noise[first .. first + |A|]`: `action` (`|A| × n`) gets `M tanh u` and `log_pi` (`1 × n`)
/// each sample's log-probability.
pub(crate) fn sample(
    head: &Activations,
    noise: &Activations,
    first: usize,
    bound: f32,
    action: &mut Activations,
    log_pi: &mut Activations,
) {
    let (act_dim, n) = (head.features() / 2, head.batch());
    action.ensure_shape(act_dim, n);
    log_pi.ensure_shape(1, n);
    log_pi.row_mut(0).fill(0.0);
    for j in 0..act_dim {
        for b in 0..n {
            let eps = noise.get(first + j, b);
            let (_, a, lp) = squash(head.get(j, b), head.get(act_dim + j, b), eps, bound);
            action.set(j, b, a);
            log_pi.set(0, b, log_pi.get(0, b) + lp);
        }
    }
}

/// The gradient of `L = (1/n) Σ_b [α log π_b + ℓ(a_b)]` with respect to the head outputs
/// (written into `d_head`, `2|A| × n`), for actions sampled by [`sample`] from the same `head`
/// and noise rows, where `d_action` (`|A| × n`) is `∂ℓ/∂a` with its `1/n` already applied:
/// - `∂L/∂u = (α/n) 2 tanh u + ∂ℓ/∂a · M (1 − tanh² u)` (since `∂ log π/∂u = 2 tanh u`);
/// - `∂L/∂μ = ∂L/∂u`;
/// - `∂L/∂ℓ = ∂L/∂u · σε − α/n` inside the clamp's bounds, 0 outside.
pub(crate) fn backward(
    head: &Activations,
    noise: &Activations,
    first: usize,
    bound: f32,
    alpha: f32,
    d_action: &Activations,
    d_head: &mut Activations,
) {
    let (act_dim, n) = (head.features() / 2, head.batch());
    d_head.ensure_shape(2 * act_dim, n);
    let alpha_n = alpha / n as f32;
    for j in 0..act_dim {
        for b in 0..n {
            let (mu, raw) = (head.get(j, b), head.get(act_dim + j, b));
            let eps = noise.get(first + j, b);
            let (u, _, _) = squash(mu, raw, eps, bound);
            let t = u.tanh();
            let d_u = alpha_n * 2.0 * t + d_action.get(j, b) * bound * (1.0 - t * t);
            d_head.set(j, b, d_u);
            let inside = (LOG_STD_MIN..=LOG_STD_MAX).contains(&raw);
            let sigma = raw.clamp(LOG_STD_MIN, LOG_STD_MAX).exp();
            let d_log_std = if inside {
                d_u * sigma * eps - alpha_n
            } else {
                0.0
            };
            d_head.set(act_dim + j, b, d_log_std);
        }
    }
}

/// One stochastic action `M tanh(μ + σε)` from one sample's head outputs (`2|A|` values) and
/// noise (`|A|` values).
pub(crate) fn sample_one(head: &[f64], eps: &[f64], bound: f32) -> Vec<f64> {
    let act_dim = head.len() / 2;
    (0..act_dim)
        .map(|j| {
            let (_, a, _) = squash(
                head[j] as f32,
                head[act_dim + j] as f32,
                eps[j] as f32,
                bound,
            );
            a as f64
        })
        .collect()
}

/// The deterministic action `M tanh μ` from one sample's head outputs (`2|A|` values).
pub(crate) fn mean_action(head: &[f64], bound: f32) -> Vec<f64> {
    head[..head.len() / 2]
        .iter()
        .map(|&mu| (bound * (mu as f32).tanh()) as f64)
        .collect()
}

/// The deterministic policy of a SAC actor as a network of its own: the trunk, the mean head
/// (the first `|A|` rows of the output layer) and `M tanh` as output; what `export` writes.
pub(crate) fn mean_policy(actor: &Mlp, bound: f32) -> Result<Mlp> {
    let mut layers = actor.layers().to_vec();
    let head = layers.pop().expect("an actor has an output layer");
    let (n_in, act_dim) = (head.n_in(), head.n_out() / 2);
    let Layer::Dense(head) = head else {
        return Err(Error::Config(
            "a SAC actor's output layer must be dense to export its mean head".into(),
        ));
    };
    let mean = sparse_core::DenseLinear::new(
        n_in,
        act_dim,
        head.weights()[..act_dim * n_in].to_vec(),
        head.bias()[..act_dim].to_vec(),
    )?;
    layers.push(mean.into());
    Ok(Mlp::new(layers, Output::Tanh { bound })?)
}

/// The entropy temperature `α = exp(log α)`, learned so that the policy's entropy stays near
/// the target `−|A|`: one Adam step per actor step on `J(log α) = −log α · mean(log π + H̄)`
/// (Haarnoja et al.'s and Stable-Baselines3's loss), starting from `α = 1` (both references).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    log_alpha: f64,
    target_entropy: f64,
    lr: f64,
    m: f64,
    v: f64,
    steps: u64,
}

impl Temperature {
    /// `α = 1`, the target `−act_dim`, Adam with learning rate `lr` (PyTorch's other defaults).
    pub fn new(act_dim: usize, lr: f64) -> Self {
        Self {
            log_alpha: 0.0,
            target_entropy: -(act_dim as f64),
            lr,
            m: 0.0,
            v: 0.0,
            steps: 0,
        }
    }

    /// `α`, as the update uses it.
    pub fn alpha(&self) -> f32 {
        self.log_alpha.exp() as f32
    }

    /// `log α`, the learned parameter.
    pub fn log_alpha(&self) -> f64 {
        self.log_alpha
    }

    /// The entropy target `H̄ = −|A|`.
    pub fn target_entropy(&self) -> f64 {
        self.target_entropy
    }

    /// Adam steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One Adam step given the minibatch's mean `log π` (of the actions the actor step
    /// sampled); returns the loss before the step.
    pub(crate) fn step(&mut self, mean_log_pi: f64) -> f64 {
        let c = AdamConfig {
            lr: self.lr,
            ..AdamConfig::default()
        };
        let g = -(mean_log_pi + self.target_entropy);
        self.steps += 1;
        self.m = c.beta1 * self.m + (1.0 - c.beta1) * g;
        self.v = c.beta2 * self.v + (1.0 - c.beta2) * g * g;
        let t = self.steps as i32;
        let m_hat = self.m / (1.0 - c.beta1.powi(t));
        let v_hat = self.v / (1.0 - c.beta2.powi(t));
        let loss = -self.log_alpha * (mean_log_pi + self.target_entropy);
        self.log_alpha -= c.lr * m_hat / (v_hat.sqrt() + c.eps);
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `log π` of one dimension straight from the densities: the Gaussian's at `u`, less
    /// `log(1 − tanh² u)` computed naively (accurate for moderate `u`), in f64.
    fn closed_form(mu: f64, log_std: f64, eps: f64) -> (f64, f64) {
        let sigma = log_std.exp();
        let u = mu + sigma * eps;
        let gauss = -((u - mu) / sigma).powi(2) / 2.0
            - sigma.ln()
            - 0.5 * (2.0 * std::f64::consts::PI).ln();
        (u.tanh(), gauss - (1.0 - u.tanh().powi(2)).ln())
    }

    #[test]
    fn log_probability_matches_the_closed_form() {
        for &(mu, log_std, eps) in &[
            (0.0, 0.0, 0.0),
            (0.3, -0.5, 1.2),
            (-1.1, 0.7, -0.4),
            (2.0, -2.0, 0.9),
            (-0.2, 1.5, 2.5),
        ] {
            let (t, want) = closed_form(mu, log_std, eps);
            let (_, a, got) = squash(mu as f32, log_std as f32, eps as f32, 2.0);
            assert!(
                (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                "log π at μ {mu} ℓ {log_std} ε {eps}: {got} vs {want}"
            );
            assert!(
                (a as f64 - 2.0 * t).abs() <= 1e-6,
                "action: {a} vs {}",
                2.0 * t
            );
        }
        // At u = 0: log π = −½ log 2π − ℓ exactly (tanh′(0) = 1).
        let (_, _, lp) = squash(0.0, 0.25, 0.0, 1.0);
        assert!((lp - (-HALF_LOG_2PI - 0.25)).abs() <= 1e-7);
    }

    #[test]
    fn log_probability_stays_finite_where_tanh_saturates() {
        // Naively, 1 − tanh²(u) rounds to 0 in f32 beyond |u| ≈ 9 and the log is −∞; the
        // stable form gives −2|u| + 2 log 2 + O(e^{−2|u|}).
        for u in [10.0f32, -10.0, 40.0, -40.0] {
            let (_, a, lp) = squash(u, LOG_STD_MIN, 0.0, 1.0);
            let want = 0.0 - LOG_STD_MIN - HALF_LOG_2PI - 2.0 * (std::f32::consts::LN_2 - u.abs());
            assert!(
                lp.is_finite() && (lp - want).abs() <= 1e-4 * want.abs(),
                "{lp} vs {want}"
            );
            assert_eq!(a.abs(), 1.0);
        }
    }

    #[test]
    fn log_std_is_clamped() {
        let (_, _, inside) = squash(0.0, LOG_STD_MAX, 0.5, 1.0);
        let (_, _, beyond) = squash(0.0, LOG_STD_MAX + 3.0, 0.5, 1.0);
        assert_eq!(inside, beyond);
        let (_, _, low) = squash(0.0, LOG_STD_MIN - 5.0, 0.5, 1.0);
        let (_, _, at) = squash(0.0, LOG_STD_MIN, 0.5, 1.0);
        assert_eq!(low, at);
    }

    #[test]
    fn temperature_follows_adam_towards_the_target() {
        // First Adam step moves log α by −lr · sign(g) (m̂ = g, v̂ = g²).
        let mut t = Temperature::new(3, 0.01);
        // Entropy below target (log π = 5 > 3 = −H̄): g = −(5 − 3) < 0, so log α rises.
        let loss = t.step(5.0);
        assert_eq!(loss, 0.0);
        assert!((t.log_alpha() - 0.01).abs() < 1e-9, "{}", t.log_alpha());
        let mut t = Temperature::new(3, 0.01);
        t.step(1.0);
        assert!((t.log_alpha() + 0.01).abs() < 1e-9, "{}", t.log_alpha());
    }
}
