//! Adam with coupled L2 weight decay, exactly PyTorch's `torch.optim.Adam(weight_decay=…)`
//! update, with state held per live connection.
//!
//! For step `t` (counted from 1) and each parameter `p` with gradient `g`:
//! ```text
//! g  = g + wd · p                      (decay added to the gradient: coupled L2)
//! m  = m + (1 − β1) · (g − m)          (PyTorch's lerp form of β1 m + (1 − β1) g)
//! v  = β2 · v + (1 − β2) · g · g
//! p  = p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
//! ```
//! Scalars are formed in `f64` and applied in `f32`, as PyTorch does with Python floats. One
//! deliberate difference: gradients below 2⁻⁵⁶ and moments below 2⁻¹⁰⁰ are flushed to zero (see
//! `flush`), which keeps all arithmetic clear of slow subnormal numbers. Moments
//! of a sparse layer are aligned with its CSR values; [`Adam::remap_layer`] realigns them after a
//! topology change (survivors keep their moments, new connections start at zero).

use crate::error::{Error, Result, check_len};
use crate::memory::{MemoryReport, f32_bytes};
use crate::mlp::{Grads, Mlp};
use crate::remap::Remap;

/// Adam's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay β1.
    pub beta1: f64,
    /// Second-moment decay β2.
    pub beta2: f64,
    /// Denominator term ε.
    pub eps: f64,
    /// Coupled L2 weight decay (added to the gradient).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    fn validate(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite();
        if !(ok(self.lr) && self.lr >= 0.0) {
            return Err(Error::InvalidAdam("lr must be finite and >= 0"));
        }
        if !(ok(self.beta1) && (0.0..1.0).contains(&self.beta1)) {
            return Err(Error::InvalidAdam("beta1 must lie in [0, 1)"));
        }
        if !(ok(self.beta2) && (0.0..1.0).contains(&self.beta2)) {
            return Err(Error::InvalidAdam("beta2 must lie in [0, 1)"));
        }
        if !(ok(self.eps) && self.eps >= 0.0) {
            return Err(Error::InvalidAdam("eps must be finite and >= 0"));
        }
        if !(ok(self.weight_decay) && self.weight_decay >= 0.0) {
            return Err(Error::InvalidAdam("weight_decay must be finite and >= 0"));
        }
        Ok(())
    }
}

/// First and second moments of one parameter array.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Moments {
    /// First moment `m`.
    pub m: Vec<f32>,
    /// Second moment `v`.
    pub v: Vec<f32>,
}

impl Moments {
    fn zeros(n: usize) -> Self {
        Self {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn bytes(&self) -> usize {
        f32_bytes(self.m.len() + self.v.len())
    }
}

/// Adam state of one layer.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerMoments {
    /// Moments of the weights (CSR value order for sparse layers).
    pub weights: Moments,
    /// Moments of the bias.
    pub bias: Moments,
}

/// The Adam optimiser for one network.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Adam {
    config: AdamConfig,
    steps: u64,
    layers: Vec<LayerMoments>,
}

/// The `f32` scalars of Adam step `t`, formed in `f64` as PyTorch does. Other backends (the GPU
/// kernels of `sparse-cuda`) apply the update with exactly these values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepScalars {
    /// `1 − β1`.
    pub one_minus_beta1: f32,
    /// `β2`.
    pub beta2: f32,
    /// `1 − β2`.
    pub one_minus_beta2: f32,
    /// Coupled L2 weight decay (0 skips the term).
    pub weight_decay: f32,
    /// `−lr / (1 − β1^t)`.
    pub neg_step_size: f32,
    /// `√(1 − β2^t)`.
    pub bias_correction2_sqrt: f32,
    /// `ε`.
    pub eps: f32,
}

impl StepScalars {
    /// Gradients with magnitude below this are treated as 0 (see the module documentation).
    pub const TINY_GRAD: f32 = TINY_GRAD;
    /// Moments with magnitude below this are flushed to 0.
    pub const TINY_MOMENT: f32 = TINY_MOMENT;

    /// The scalars of step `t` (counted from 1) under `c`.
    pub fn new(c: &AdamConfig, t: u64) -> Self {
        let t = t as i32;
        let bias_correction1 = 1.0 - c.beta1.powi(t);
        let bias_correction2 = 1.0 - c.beta2.powi(t);
        Self {
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            weight_decay: c.weight_decay as f32,
            neg_step_size: (-(c.lr / bias_correction1)) as f32,
            bias_correction2_sqrt: bias_correction2.sqrt() as f32,
            eps: c.eps as f32,
        }
    }

    fn apply(&self, params: &mut [f32], grads: &[f32], st: &mut Moments) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { self.apply_avx512(params, grads, st) };
        } else if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { self.apply_avx2(params, grads, st) };
        }
        self.apply_any(params, grads, st)
    }

    /// [`Self::apply_any`] compiled for AVX-512F. The loop is element-wise (no reductions and no
    /// fused multiply-adds), so every instruction set gives the same bits.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_avx512(&self, params: &mut [f32], grads: &[f32], st: &mut Moments) {
        self.apply_any(params, grads, st)
    }

    /// [`Self::apply_any`] compiled for AVX2 (same bits, as for AVX-512).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2(&self, params: &mut [f32], grads: &[f32], st: &mut Moments) {
        self.apply_any(params, grads, st)
    }

    #[inline(always)]
    fn apply_any(&self, params: &mut [f32], grads: &[f32], st: &mut Moments) {
        // Two monomorphised loops: PyTorch skips the decay term entirely when it is zero.
        if self.weight_decay != 0.0 {
            self.apply_loop::<true>(params, grads, st)
        } else {
            self.apply_loop::<false>(params, grads, st)
        }
    }

    /// The element loop, written over equal-length slices so the compiler vectorises it.
    #[inline(always)]
    fn apply_loop<const DECAY: bool>(&self, params: &mut [f32], grads: &[f32], st: &mut Moments) {
        let n = params.len();
        let (g, m, v) = (&grads[..n], &mut st.m[..n], &mut st.v[..n]);
        for i in 0..n {
            let gi = if DECAY {
                g[i] + self.weight_decay * params[i]
            } else {
                g[i]
            };
            let gi = flush(gi, TINY_GRAD);
            let mi = flush(m[i] + self.one_minus_beta1 * (gi - m[i]), TINY_MOMENT);
            let vi = flush(
                v[i] * self.beta2 + self.one_minus_beta2 * gi * gi,
                TINY_MOMENT,
            );
            let denom = vi.sqrt() / self.bias_correction2_sqrt + self.eps;
            params[i] += self.neg_step_size * mi / denom;
            m[i] = mi;
            v[i] = vi;
        }
    }
}

/// Gradients smaller than this (2⁻⁵⁶ ≈ 1.4e-17) count as 0: their square times `1 − β2` would
/// be subnormal.
const TINY_GRAD: f32 = 1.0 / (1u64 << 56) as f32;

/// Moments smaller than this (2⁻¹⁰⁰ ≈ 7.9e-31) are flushed to 0: scaled by a learning rate they
/// would be subnormal.
const TINY_MOMENT: f32 = 7.888_609e-31;

/// `x`, or zero when `|x| < tiny`.
///
/// A connection whose gradient stays (nearly) 0 — a dead ReLU unit — has moments that decay
/// geometrically into the subnormal range, where x86 arithmetic runs about a hundred times
/// slower, and training slows down step after step. Flushing such values keeps every operation
/// on normal numbers; the parameter steps it changes are below `lr · 1e-9`.
#[inline(always)]
fn flush(x: f32, tiny: f32) -> f32 {
    if x.abs() >= tiny { x } else { 0.0 }
}

impl Adam {
    /// Zero-initialised state for `mlp`'s parameters.
    pub fn new(config: AdamConfig, mlp: &Mlp) -> Result<Self> {
        config.validate()?;
        let layers = mlp
            .layers()
            .iter()
            .map(|l| LayerMoments {
                weights: Moments::zeros(l.live_connections()),
                bias: Moments::zeros(l.n_out()),
            })
            .collect();
        Ok(Self {
            config,
            steps: 0,
            layers,
        })
    }

    /// Rebuilds an optimiser from its parts (state kept elsewhere, e.g. on a GPU), checking that
    /// the moments match `mlp`'s parameters.
    pub fn from_state(
        config: AdamConfig,
        steps: u64,
        layers: Vec<LayerMoments>,
        mlp: &Mlp,
    ) -> Result<Self> {
        config.validate()?;
        check_len("optimiser layers", mlp.layers().len(), layers.len())?;
        for (layer, st) in mlp.layers().iter().zip(&layers) {
            let n = layer.live_connections();
            check_len("weight first moments", n, st.weights.m.len())?;
            check_len("weight second moments", n, st.weights.v.len())?;
            check_len("bias first moments", layer.n_out(), st.bias.m.len())?;
            check_len("bias second moments", layer.n_out(), st.bias.v.len())?;
        }
        Ok(Self {
            config,
            steps,
            layers,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Per-layer moments.
    pub fn layers(&self) -> &[LayerMoments] {
        &self.layers
    }

    /// Applies one update to `mlp` with `grads`.
    pub fn step(&mut self, mlp: &mut Mlp, grads: &Grads) -> Result<()> {
        let _profile = crate::profile::scope(crate::profile::Part::Adam);
        check_len("optimiser layers", self.layers.len(), mlp.layers().len())?;
        check_len("gradient layers", self.layers.len(), grads.layers().len())?;
        for ((layer, g), st) in mlp.layers().iter().zip(grads.layers()).zip(&self.layers) {
            check_len("weight gradient", layer.live_connections(), g.weights.len())?;
            check_len(
                "weight moments",
                layer.live_connections(),
                st.weights.m.len(),
            )?;
            check_len("bias gradient", layer.n_out(), g.bias.len())?;
        }
        self.steps += 1;
        let s = StepScalars::new(&self.config, self.steps);
        for ((layer, g), st) in mlp
            .layers_mut()
            .iter_mut()
            .zip(grads.layers())
            .zip(&mut self.layers)
        {
            let (w, b) = layer.params_mut();
            s.apply(w, &g.weights, &mut st.weights);
            s.apply(b, &g.bias, &mut st.bias);
        }
        Ok(())
    }

    /// Realigns layer `layer`'s weight moments to a new topology: surviving connections keep
    /// their moments, new ones start at zero.
    pub fn remap_layer(&mut self, layer: usize, remap: &Remap) -> Result<()> {
        let n = self.layers.len();
        let st = self.layers.get_mut(layer).ok_or(Error::ShapeMismatch {
            what: "layer index",
            expected: n,
            got: layer,
        })?;
        remap.apply(&mut st.weights.m)?;
        remap.apply(&mut st.weights.v)
    }

    /// Bytes held (reported under `optimizer`).
    pub fn memory(&self) -> MemoryReport {
        MemoryReport {
            optimizer: self
                .layers
                .iter()
                .map(|l| l.weights.bytes() + l.bias.bytes())
                .sum(),
            ..Default::default()
        }
    }
}
