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
//!
//! A connection created by a topology change at step `t₀` starts with zero moments, like every
//! parameter at step 0. [`BiasCorrection`] says which step count corrects its bias. PyTorch's
//! rule, the network's `t`, makes its `k`-th step `(1 − β1ᵏ)/√(1 − β2ᵏ)` times a warm
//! connection's under a steady gradient (3.2× at `k = 1`, 6.5× near `k = 15`, 1.26× at
//! `k = 1000`). [`BiasCorrection::Connection`] corrects each connection by its own age `t − t₀`
//! instead, so its steps are the size of a warm one's from the first, as they are in a masked
//! dense implementation whose dead positions keep their moments. Ages are kept per cohort (the
//! connections created at one step) in two bytes per connection; a cohort old enough that its
//! `f32` scalars equal the limit `(−lr, 1)` joins cohort 0, the connections present from the
//! start, whose scalars have reached the limit too.

use crate::error::{Error, Result, check_len};
use crate::memory::{MemoryReport, f32_bytes};
use crate::mlp::{Grads, Mlp};
use crate::remap::Remap;

/// Which step count corrects the bias of a connection created during training (see the module
/// documentation). Parameters present from the start are corrected by the network's step count
/// under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum BiasCorrection {
    /// The network's step count, as PyTorch's Adam applied to a truly sparse layer would.
    #[default]
    Network,
    /// The connection's own age: the steps since it was created.
    Connection,
}

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
    /// Bias correction of connections created during training.
    pub bias_correction: BiasCorrection,
}

impl Default for AdamConfig {
    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay, bias
    /// correction by the network's step count.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            bias_correction: BiasCorrection::Network,
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
    cohorts: Cohorts,
}

/// The ages of connections created during training, under [`BiasCorrection::Connection`].
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
struct Cohorts {
    /// The step after which each cohort's connections were created (`None`: a free id). Cohort
    /// 0, the connections present from the start, is born at 0 and never freed.
    births: Vec<Option<u64>>,
    /// Per layer, the cohort of each weight slot; empty while every slot is in cohort 0.
    of_slot: Vec<Vec<u16>>,
    /// Scratch: each cohort's `(−lr/(1 − β1ᵃ), √(1 − β2ᵃ))` at the current step, refilled in
    /// place by [`Self::fill_table`] so that a step allocates nothing.
    #[cfg_attr(feature = "serde", serde(skip))]
    table: Vec<(f32, f32)>,
}

/// Equal state: the scratch table does not count.
impl PartialEq for Cohorts {
    fn eq(&self, other: &Self) -> bool {
        self.births == other.births && self.of_slot == other.of_slot
    }
}

impl Cohorts {
    fn new(layers: usize) -> Self {
        Self {
            births: vec![Some(0)],
            of_slot: vec![Vec::new(); layers],
            table: Vec::new(),
        }
    }

    /// Whether every slot of every layer is in cohort 0 (the plain update applies).
    fn all_original(&self) -> bool {
        self.of_slot.iter().all(Vec::is_empty)
    }

    /// Refills [`Self::table`] with each cohort's scalars at step `t` (a freed id gets
    /// cohort 0's).
    fn fill_table(&mut self, config: &AdamConfig, t: u64) {
        self.table.clear();
        self.table.extend(self.births.iter().map(|b| {
            let s = StepScalars::new(config, t - b.unwrap_or(0));
            (s.neg_step_size, s.bias_correction2_sqrt)
        }));
    }

    /// Moves every cohort whose scalars at step `t` equal the limit into cohort 0, whose
    /// scalars (being older) equal it too; a full table also gives up its oldest cohort.
    fn merge_mature(&mut self, config: &AdamConfig, t: u64) {
        // An age whose powers of β1 and β2 are 0 in f64.
        let limit = StepScalars::new(config, 1 << 30);
        let mut merge = vec![false; self.births.len()];
        for (c, birth) in self.births.iter().enumerate().skip(1) {
            if let &Some(b) = birth {
                let s = StepScalars::new(config, t - b);
                merge[c] = s.neg_step_size == limit.neg_step_size
                    && s.bias_correction2_sqrt == limit.bias_correction2_sqrt;
            }
        }
        if self.births.len() > usize::from(u16::MAX) && !merge.contains(&true) {
            // Every id in use and none mature (only with β2 very close to 1 and evolution at
            // nearly every step): the oldest cohort is treated as mature, a documented
            // approximation.
            let oldest = (1..self.births.len()).min_by_key(|&c| self.births[c]);
            if let Some(c) = oldest {
                merge[c] = true;
            }
        }
        if !merge.contains(&true) {
            return;
        }
        for slots in &mut self.of_slot {
            slots
                .iter_mut()
                .filter(|c| merge[usize::from(**c)])
                .for_each(|c| *c = 0);
            if slots.iter().all(|&c| c == 0) {
                slots.clear();
            }
        }
        for (c, m) in merge.iter().enumerate() {
            if *m {
                self.births[c] = None;
            }
        }
    }

    /// The id of the cohort born after step `t`, allocated if needed.
    fn born_after(&mut self, t: u64) -> u16 {
        if let Some(c) = self.births.iter().position(|&b| b == Some(t)) {
            return c as u16;
        }
        match self.births.iter().position(Option::is_none) {
            Some(c) => {
                self.births[c] = Some(t);
                c as u16
            }
            None => {
                self.births.push(Some(t));
                (self.births.len() - 1) as u16
            }
        }
    }

    /// Bytes held per connection (the table of births, a few dozen entries at most under the
    /// paper's settings, is not counted).
    fn bytes(&self) -> usize {
        self.of_slot.iter().map(|s| 2 * s.len()).sum::<usize>()
    }
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

    /// [`Self::apply`] where slot `i` takes its step size and second-moment correction from
    /// `per_cohort[cohort[i]]` (the other scalars are the same for every cohort). Dispatched
    /// like [`Self::apply`]; the same bits on every path.
    fn apply_by_cohort(
        &self,
        params: &mut [f32],
        grads: &[f32],
        st: &mut Moments,
        cohort: &[u16],
        per_cohort: &[(f32, f32)],
    ) {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { self.apply_by_cohort_avx512(params, grads, st, cohort, per_cohort) };
        } else if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { self.apply_by_cohort_avx2(params, grads, st, cohort, per_cohort) };
        }
        self.apply_by_cohort_any(params, grads, st, cohort, per_cohort)
    }

    /// [`Self::apply_by_cohort_any`] compiled for AVX-512F.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn apply_by_cohort_avx512(
        &self,
        params: &mut [f32],
        grads: &[f32],
        st: &mut Moments,
        cohort: &[u16],
        per_cohort: &[(f32, f32)],
    ) {
        if per_cohort.len() > 32 {
            return self.apply_by_cohort_any(params, grads, st, cohort, per_cohort);
        }
        // Up to 32 cohorts: two registers hold each table, and one two-source permute looks
        // up 16 slots at a time (ids beyond the table read cohort 0's scalars, as elsewhere).
        let (mut t_step, mut t_bc2) = ([per_cohort[0].0; 32], [per_cohort[0].1; 32]);
        for (i, &(a, b)) in per_cohort.iter().enumerate() {
            (t_step[i], t_bc2[i]) = (a, b);
        }
        let ok = per_cohort.len() as u16;
        let gather = |ids: &[u16], steps: &mut [f32], bc2s: &mut [f32]| {
            use std::arch::x86_64::*;
            let mut j = 0;
            // SAFETY: AVX-512F is enabled for this function; every load and store below reads
            // or writes 16 elements at offset j with j + 16 <= len of its slice, and the tables
            // are arrays of 32.
            unsafe {
                let (s_lo, s_hi) = (
                    _mm512_loadu_ps(t_step.as_ptr()),
                    _mm512_loadu_ps(t_step.as_ptr().add(16)),
                );
                let (b_lo, b_hi) = (
                    _mm512_loadu_ps(t_bc2.as_ptr()),
                    _mm512_loadu_ps(t_bc2.as_ptr().add(16)),
                );
                while j + 16 <= ids.len() {
                    let raw = _mm256_loadu_si256(ids.as_ptr().add(j).cast());
                    let idx = _mm512_cvtepu16_epi32(raw);
                    let valid = _mm512_cmplt_epu32_mask(idx, _mm512_set1_epi32(i32::from(ok)));
                    let idx = _mm512_maskz_mov_epi32(valid, idx);
                    let s = _mm512_permutex2var_ps(s_lo, idx, s_hi);
                    let b = _mm512_permutex2var_ps(b_lo, idx, b_hi);
                    _mm512_storeu_ps(steps.as_mut_ptr().add(j), s);
                    _mm512_storeu_ps(bc2s.as_mut_ptr().add(j), b);
                    j += 16;
                }
            }
            for ((s, b), &c) in steps[j..].iter_mut().zip(&mut bc2s[j..]).zip(&ids[j..]) {
                let c = if c < ok { usize::from(c) } else { 0 };
                (*s, *b) = (t_step[c], t_bc2[c]);
            }
        };
        self.cohort_loop_by(params, grads, st, cohort, gather)
    }

    /// [`Self::apply_by_cohort_any`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_by_cohort_avx2(
        &self,
        params: &mut [f32],
        grads: &[f32],
        st: &mut Moments,
        cohort: &[u16],
        per_cohort: &[(f32, f32)],
    ) {
        self.apply_by_cohort_any(params, grads, st, cohort, per_cohort)
    }

    #[inline(always)]
    fn apply_by_cohort_any(
        &self,
        params: &mut [f32],
        grads: &[f32],
        st: &mut Moments,
        cohort: &[u16],
        per_cohort: &[(f32, f32)],
    ) {
        let gather = |ids: &[u16], steps: &mut [f32], bc2s: &mut [f32]| {
            for ((s, b), &c) in steps.iter_mut().zip(bc2s.iter_mut()).zip(ids) {
                // Ids index the table by construction; a stray one reads cohort 0's scalars.
                (*s, *b) = per_cohort
                    .get(usize::from(c))
                    .copied()
                    .unwrap_or(per_cohort[0]);
            }
        };
        self.cohort_loop_by(params, grads, st, cohort, gather)
    }

    /// [`Self::cohort_loop`] with the decay term monomorphised, as in [`Self::apply_any`].
    #[inline(always)]
    fn cohort_loop_by(
        &self,
        params: &mut [f32],
        grads: &[f32],
        st: &mut Moments,
        cohort: &[u16],
        gather: impl Fn(&[u16], &mut [f32], &mut [f32]),
    ) {
        if self.weight_decay != 0.0 {
            self.cohort_loop::<true>(params, grads, st, cohort, gather)
        } else {
            self.cohort_loop::<false>(params, grads, st, cohort, gather)
        }
    }

    /// Blocks of [`COHORT_BLOCK`] slots: their scalars looked up by `gather` first, then the
    /// element loop over equal-length slices, which the compiler vectorises.
    #[inline(always)]
    fn cohort_loop<const DECAY: bool>(
        &self,
        params: &mut [f32],
        grads: &[f32],
        st: &mut Moments,
        cohort: &[u16],
        gather: impl Fn(&[u16], &mut [f32], &mut [f32]),
    ) {
        let n = params.len();
        let (mut steps, mut bc2s) = ([0f32; COHORT_BLOCK], [0f32; COHORT_BLOCK]);
        let mut start = 0;
        while start < n {
            let end = (start + COHORT_BLOCK).min(n);
            let len = end - start;
            gather(&cohort[start..end], &mut steps[..len], &mut bc2s[..len]);
            let p = &mut params[start..end];
            let (g, m, v) = (
                &grads[start..end],
                &mut st.m[start..end],
                &mut st.v[start..end],
            );
            let (steps, bc2s) = (&steps[..len], &bc2s[..len]);
            for j in 0..len {
                let gj = if DECAY {
                    g[j] + self.weight_decay * p[j]
                } else {
                    g[j]
                };
                self.update_one(&mut p[j], gj, &mut m[j], &mut v[j], steps[j], bc2s[j]);
            }
            start = end;
        }
    }

    /// One parameter's update from its (decayed) gradient `g`: the arithmetic of every loop.
    #[inline(always)]
    fn update_one(&self, p: &mut f32, g: f32, m: &mut f32, v: &mut f32, neg_step: f32, bc2: f32) {
        let gi = flush(g, TINY_GRAD);
        let mi = flush(*m + self.one_minus_beta1 * (gi - *m), TINY_MOMENT);
        let vi = flush(
            *v * self.beta2 + self.one_minus_beta2 * gi * gi,
            TINY_MOMENT,
        );
        let denom = vi.sqrt() / bc2 + self.eps;
        *p += neg_step * mi / denom;
        *m = mi;
        *v = vi;
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
            let (step, bc2) = (self.neg_step_size, self.bias_correction2_sqrt);
            self.update_one(&mut params[i], gi, &mut m[i], &mut v[i], step, bc2);
        }
    }
}

/// Slots per block of [`StepScalars::cohort_loop`].
const COHORT_BLOCK: usize = 256;

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
        let layers: Vec<LayerMoments> = mlp
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
            cohorts: Cohorts::new(layers.len()),
            layers,
        })
    }

    /// Rebuilds an optimiser from its parts (state kept elsewhere, e.g. on a GPU), checking that
    /// the moments match `mlp`'s parameters. Every connection counts as present from the start
    /// (cohort 0; see [`BiasCorrection`]).
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
            cohorts: Cohorts::new(layers.len()),
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
        let t = self.steps;
        let s = StepScalars::new(&self.config, t);
        if !self.cohorts.all_original() {
            self.cohorts.fill_table(&self.config, t);
        }
        let (per_cohort, of_slot) = (&self.cohorts.table, &self.cohorts.of_slot);
        for (((layer, g), st), cohort) in mlp
            .layers_mut()
            .iter_mut()
            .zip(grads.layers())
            .zip(&mut self.layers)
            .zip(of_slot)
        {
            let (w, b) = layer.params_mut();
            if cohort.is_empty() {
                s.apply(w, &g.weights, &mut st.weights);
            } else {
                s.apply_by_cohort(w, &g.weights, &mut st.weights, cohort, per_cohort);
            }
            s.apply(b, &g.bias, &mut st.bias);
        }
        Ok(())
    }

    /// Realigns layer `layer`'s weight moments to a new topology: surviving connections keep
    /// their moments, new ones start at zero (and, under [`BiasCorrection::Connection`], count
    /// their age from now).
    pub fn remap_layer(&mut self, layer: usize, remap: &Remap) -> Result<()> {
        let n = self.layers.len();
        let st = self.layers.get_mut(layer).ok_or(Error::ShapeMismatch {
            what: "layer index",
            expected: n,
            got: layer,
        })?;
        remap.apply(&mut st.weights.m)?;
        remap.apply(&mut st.weights.v)?;
        let cohorts = &mut self.cohorts;
        if self.config.bias_correction == BiasCorrection::Network || remap.num_new() == 0 {
            let slots = &mut cohorts.of_slot[layer];
            if !slots.is_empty() {
                remap.apply_with(slots, 0)?;
            }
            return Ok(());
        }
        cohorts.merge_mature(&self.config, self.steps);
        let newborn = cohorts.born_after(self.steps);
        let slots = &mut cohorts.of_slot[layer];
        if slots.is_empty() {
            slots.resize(remap.old_len(), 0);
        }
        remap.apply_with(slots, newborn)
    }

    /// The age of each weight connection of layer `layer` in steps, as its bias correction
    /// counts it: the network's step count for connections present from the start, and under
    /// [`BiasCorrection::Connection`] the steps since creation for later ones.
    pub fn ages(&self, layer: usize) -> Vec<u64> {
        let n = self.layers.get(layer).map_or(0, |l| l.weights.m.len());
        match self.cohorts.of_slot.get(layer) {
            Some(slots) if !slots.is_empty() => slots
                .iter()
                .map(|&c| self.steps - self.cohorts.births[usize::from(c)].unwrap_or(0))
                .collect(),
            _ => vec![self.steps; n],
        }
    }

    /// Bytes held (reported under `optimizer`).
    pub fn memory(&self) -> MemoryReport {
        MemoryReport {
            optimizer: self
                .layers
                .iter()
                .map(|l| l.weights.bytes() + l.bias.bytes())
                .sum::<usize>()
                + self.cohorts.bytes(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dispatch path of the per-cohort update gives the portable loop's bits, with tables
    /// small enough for the permute lookup and too large for it, and stray ids.
    #[test]
    fn cohort_paths_give_the_same_bits() {
        let config = AdamConfig {
            weight_decay: 2e-4,
            ..AdamConfig::default()
        };
        let s = StepScalars::new(&config, 1500);
        let n = 1000;
        let wave = |k: usize, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * k % 97) as f32 - 48.0) * scale)
                .collect()
        };
        for cohorts in [1usize, 5, 32, 33, 40] {
            let table: Vec<(f32, f32)> = (0..cohorts)
                .map(|c| {
                    let t = StepScalars::new(&config, 1 + 37 * c as u64);
                    (t.neg_step_size, t.bias_correction2_sqrt)
                })
                .collect();
            // Ids cycle through the table; every 50th is beyond it.
            let ids: Vec<u16> = (0..n)
                .map(|i| {
                    if i % 50 == 7 {
                        60
                    } else {
                        (i * 7 % cohorts) as u16
                    }
                })
                .collect();
            let run = |path: &dyn Fn(&mut [f32], &mut Moments)| {
                let mut p = wave(3, 1e-2);
                let mut st = Moments {
                    m: wave(5, 1e-4),
                    v: wave(11, 1e-7).iter().map(|v| v.abs()).collect(),
                };
                path(&mut p, &mut st);
                (p, st.m, st.v)
            };
            let g = wave(13, 1e-3);
            let portable = run(&|p, st| s.apply_by_cohort_any(p, &g, st, &ids, &table));
            let dispatched = run(&|p, st| s.apply_by_cohort(p, &g, st, &ids, &table));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&portable.0), bits(&dispatched.0), "{cohorts} cohorts");
            assert_eq!(bits(&portable.1), bits(&dispatched.1), "{cohorts} cohorts");
            assert_eq!(bits(&portable.2), bits(&dispatched.2), "{cohorts} cohorts");
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                let avx2 = run(&|p, st| unsafe { s.apply_by_cohort_avx2(p, &g, st, &ids, &table) });
                assert_eq!(bits(&portable.0), bits(&avx2.0), "{cohorts} cohorts, AVX2");
            }
        }
    }
}
