//! Target networks: soft update over the union of topologies, then prune back to the budget.
//!
//! For a sparse layer, `θ' ← τθ + (1−τ)θ'` is computed over the union of the online and target
//! topologies (a position missing from one side counts as 0 there). The union may hold more
//! connections than the target's budget — the online layer's connection count, which is also the
//! target's own since targets start as copies and evolution keeps counts fixed — so the smallest
//! `|θ'|` extras are dropped (ties: lower row-major position first). After a final prune-only
//! evolution the online layer holds fewer connections than the target; the next update keeps the
//! target's count of the union as usual and then drops the smallest `|θ'|` of the surplus, which
//! under this one order is the same as keeping the online count of the union directly. Dense layers, sparse layers whose
//! topologies coincide and all biases get the plain soft update. Scalars follow PyTorch's
//! `τ·θ + (1−τ)·θ'` on `f32` tensors: `τ` and `1−τ` are formed in `f64`, applied in `f32`.
//!
//! [`TargetSync`] keeps, per layer, how the two topologies line up (valid while neither changes,
//! which [`SparseLinear::topology_id`] tells): for each target connection the online slot at
//! the same position, and the online-only connections. With `m` online-only connections the
//! union holds `|T| + m` entries and exactly `m` are dropped. For any bound `B` with at least
//! `m` of the union's entries below it, the dropped ones are the `m` smallest of those below
//! `B`: everything at or above `B` stays. `B = kO + 1`, with `kO` the largest `|θ'|` of an
//! online-only entry, always qualifies (all `m` online-only entries lie below it). A tighter
//! `B`, the last update's threshold plus a margin (which widens after a guess proves too low
//! and narrows after a run of good ones), usually does too and leaves far fewer target entries
//! to consider: in `ds-td3 bench`'s DS-TD3 iterations about 11 on average, with 1.5% of the
//! guesses too low, against up to a few thousand entries below `kO`. When too few entries lie
//! below the guess, the update falls back to `kO + 1`; either way the result is the same. One
//! pass mixes every target value in place (reading the aligned online value) and flags the
//! chunks with keys below `B`, the online-only values are computed on the side, and the
//! selection runs on the small set below `B`. When every online-only entry is dropped — as
//! right after an evolution, whose new connections are 0 — the topology stays and only values
//! change; otherwise the few swapped connections are spliced into the CSR arrays in place
//! ([`Csr::splice`]). [`soft_update_and_prune`] is the same with a fresh, throw-away cache.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use sparse_core::csr::splice_vec;
use sparse_core::{ColIndex, Csr, Layer, Mlp, SparseLinear, SparseWeights};

use crate::{Error, Result};

/// The coefficients `(τ, 1−τ)` as applied to `f32` values.
fn coefficients(tau: f64) -> Result<(f32, f32)> {
    if (0.0..=1.0).contains(&tau) {
        Ok((tau as f32, (1.0 - tau) as f32))
    } else {
        Err(Error::InvalidTau(tau))
    }
}

/// `target ← t·online + u·target`, element by element: the plain soft update.
#[inline(always)]
fn mix_body(target: &mut [f32], online: &[f32], (t, u): (f32, f32)) {
    for (a, &b) in target.iter_mut().zip(online) {
        *a = t * b + u * *a;
    }
}

fn mix(target: &mut [f32], online: &[f32], c: (f32, f32)) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the function's only requirement.
        return unsafe { avx512::mix(target, online, c) };
    }
    mix_body(target, online, c)
}

/// Selection key: for finite floats the bits of `|v|` order like `|v|`; non-finite values get
/// keys of at least [`NON_FINITE`].
fn key(v: f32) -> u32 {
    v.abs().to_bits()
}

/// The smallest key of a non-finite value (`+∞`).
const NON_FINITE: u32 = 0x7f80_0000;

/// [`LayerSync::online_slot`] of a target-only connection (never a valid slot).
const TARGET_ONLY: u32 = u32::MAX;

/// What the next update's guessed bound adds to this update's threshold key, as a power of two
/// in units of the last place: 2²¹ is a factor of at most 1.25 on the value, 2²³ of 2. Each
/// layer starts at [`MARGIN_START`], doubles its margin after a guess that was too low and
/// halves it after [`MARGIN_CALM`] guesses in a row that were not, within these bounds.
const MARGIN_BITS: std::ops::RangeInclusive<u8> = 19..=25;
/// The margin a layer starts with (see [`MARGIN_BITS`]).
const MARGIN_START: u8 = 21;
/// Successful guesses in a row after which the margin halves.
const MARGIN_CALM: u8 = 16;

/// Online-only keys per block that [`LayerSync::select`] checks at once (with a loop without
/// early exit, which the compiler vectorises).
const KEY_BLOCK: usize = 32;

/// Offers `k` to a heap of the `keep` largest keys so far (its top the smallest of them).
fn offer(heap: &mut BinaryHeap<Reverse<u32>>, keep: usize, k: u32) {
    if heap.len() < keep {
        heap.push(Reverse(k));
    } else if let Some(mut top) = heap.peek_mut()
        && k > top.0
    {
        *top = Reverse(k);
    }
}

/// Target values per flag of [`mix_aligned`].
const CHUNK: usize = 64;

/// The cached alignment and scratch space of one layer.
#[derive(Debug, Clone, Default)]
struct LayerSync {
    /// Topology identifiers `(target, online)` the alignment describes.
    ids: Option<(u64, u64)>,
    /// For each target slot, the online slot at the same position, or [`TARGET_ONLY`].
    online_slot: Vec<u32>,
    /// Online slots of the online-only connections, increasing.
    online_only: Vec<u32>,
    /// Number of target-only connections.
    target_only: usize,
    /// Key of each online-only entry after the update.
    online_keys: Vec<u32>,
    /// The chunks of target slots that hold a key up to `kO` or a non-finite value.
    flagged: Vec<u32>,
    /// `(key, slot)` of the target entries with keys up to `kO`, in slot order.
    contested: Vec<(u32, usize)>,
    heap: BinaryHeap<Reverse<u32>>,
    keys: Vec<u32>,
    /// `(position, online, index)` of the entries at the threshold key: a target slot, or an
    /// index into `online_only`.
    ties: Vec<(usize, bool, usize)>,
    /// Target slots dropped, increasing.
    removed: Vec<usize>,
    /// A bound on the keys to drop for the next update, from this one's threshold: a hint that
    /// saves looking at most target entries; any value gives the same result.
    guess: Option<u32>,
    /// The guess's margin over the threshold, as a power of two (see [`MARGIN_BITS`]; 0 before
    /// the first guess), and the guesses in a row that were high enough.
    margin: u8,
    calm: u8,
    /// Indices into `online_only` of the online-only entries kept, increasing.
    kept_online: Vec<usize>,
    /// `(position, value)` of the kept online-only entries, their target slots to be, and their
    /// online slots.
    inserted: Vec<(usize, f32)>,
    insert_at: Vec<usize>,
    inserted_online: Vec<u32>,
    /// Online slots of the dropped common connections (they become online-only) and where they
    /// go in `online_only`.
    dropped_common: Vec<u32>,
    dropped_at: Vec<usize>,
}

/// Reusable state for soft-updating one target network towards its online network: per layer,
/// how the two topologies line up (kept while neither changes) and scratch buffers, so a steady
/// stream of updates touches each value about once and allocates next to nothing. Results are
/// those of [`soft_update_and_prune`], bit for bit. Not serialised: a fresh one rebuilds its
/// cache on the first update.
#[derive(Debug, Clone, Default)]
pub struct TargetSync {
    layers: Vec<LayerSync>,
}

impl TargetSync {
    /// A sync with an empty cache (the same as [`Default::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Soft-updates `target` towards `online` with coefficient `tau`, layer by layer; sparse
    /// layers keep exactly their connection count (see the module documentation).
    ///
    /// On an error from a sparse layer (a non-finite value among those kept), earlier layers
    /// are updated and that layer's weight values may be.
    pub fn update(&mut self, target: &mut Mlp, online: &Mlp, tau: f64) -> Result<()> {
        let c = coefficients(tau)?;
        if target.layers().len() != online.layers().len() {
            return Err(Error::ArchitectureMismatch("different numbers of layers"));
        }
        for (tl, ol) in target.layers().iter().zip(online.layers()) {
            let same_kind = tl.is_sparse() == ol.is_sparse();
            if !same_kind || tl.n_in() != ol.n_in() || tl.n_out() != ol.n_out() {
                return Err(Error::ArchitectureMismatch("layer kinds or shapes differ"));
            }
        }
        self.layers
            .resize_with(target.layers().len(), LayerSync::default);
        for ((tl, ol), sync) in target
            .layers_mut()
            .iter_mut()
            .zip(online.layers())
            .zip(&mut self.layers)
        {
            sync.update(tl, ol, c)?;
        }
        Ok(())
    }
}

/// Soft-updates `target` towards `online` with coefficient `tau`, layer by layer; sparse layers
/// keep exactly their connection budget (see the module documentation). Uses a fresh
/// [`TargetSync`]; keep one per target network to update repeatedly at a fraction of the cost.
pub fn soft_update_and_prune(target: &mut Mlp, online: &Mlp, tau: f64) -> Result<()> {
    TargetSync::new().update(target, online, tau)
}

/// `tv[s] ← t·ov[online_slot[s]] + u·tv[s]`, with 0 for the online value of a target-only slot
/// (so the dense formula with the absent side as 0). Lists in `flagged` the chunks of [`CHUNK`]
/// slots where a new key lies outside `lo..NON_FINITE` (`lo ≤ NON_FINITE`).
#[inline(always)]
fn mix_aligned_body(
    tv: &mut [f32],
    ov: &[f32],
    online_slot: &[u32],
    (t, u): (f32, f32),
    lo: u32,
    flagged: &mut Vec<u32>,
) {
    let span = NON_FINITE - lo;
    flagged.clear();
    for (chunk, (x, slots)) in tv
        .chunks_mut(CHUNK)
        .zip(online_slot.chunks(CHUNK))
        .enumerate()
    {
        let mut f = 0u32;
        for (a, &j) in x.iter_mut().zip(slots) {
            // `TARGET_ONLY` is out of range: 0.0.
            let o = ov.get(j as usize).copied().unwrap_or(0.0);
            let v = t * o + u * *a;
            *a = v;
            let k = key(v);
            f |= u32::from(k.wrapping_sub(lo) >= span);
        }
        if f != 0 {
            flagged.push(chunk as u32);
        }
    }
}

/// Writes the key of `t·ov[j] + u·0` for each online-only slot `j`; returns the largest.
#[inline(always)]
fn online_keys_body(keys: &mut [u32], online_only: &[u32], ov: &[f32], (t, u): (f32, f32)) -> u32 {
    let mut max = 0;
    for (k, &j) in keys.iter_mut().zip(online_only) {
        *k = key(t * ov.get(j as usize).copied().unwrap_or(0.0) + u * 0.0);
        max = max.max(*k);
    }
    max
}

/// The loops above for AVX-512: the same operations in the same order, so the same bits.
/// `online_slot` increases along a layer except at target-only slots, so the online values of
/// 16 target slots usually lie within 32 consecutive ones: two plain loads and a permute fetch
/// them, a gather only when they spread wider (or in the tests' random alignments): gathers
/// are slow on this machine's AMD core. With this and the block-wise selection of
/// [`LayerSync::select`], the `TargetSync` criterion bench's update fell from 24.5–28.1 µs (the
/// compiler's gathers) to 13.3–14.0 µs (two alternating runs each).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{CHUNK, NON_FINITE};

    /// The online values of the 16 (or, in a tail, the `lanes`) target slots whose online
    /// slots `idx` holds, the first of them `first`; 0 for a slot out of range (a target-only
    /// one).
    #[target_feature(enable = "avx512f")]
    fn online_values(ov: &[f32], idx: __m512i, first: u32, lanes: __mmask16) -> __m512 {
        let len = ov.len().min(u32::MAX as usize);
        let valid = _mm512_mask_cmplt_epu32_mask(lanes, idx, _mm512_set1_epi32(len as i32));
        let base = first as usize;
        if base + 32 <= len {
            // Slots below `first` wrap around to large offsets: not near.
            let rel = _mm512_sub_epi32(idx, _mm512_set1_epi32(first as i32));
            let near = _mm512_mask_cmplt_epu32_mask(valid, rel, _mm512_set1_epi32(32));
            if near == valid {
                // SAFETY: `base + 32 <= ov.len()`.
                let (v0, v1) = unsafe {
                    let p = ov.as_ptr().add(base);
                    (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)))
                };
                return _mm512_maskz_permutex2var_ps(valid, v0, rel, v1);
            }
        }
        // SAFETY: the lanes in `valid` hold slots below `ov.len()`.
        unsafe { _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), valid, idx, ov.as_ptr()) }
    }

    /// Mixes the `lanes` of the 16 target slots from `s` on; returns their new keys less `lo`
    /// (wrapping; 0 in lanes outside `lanes`).
    ///
    /// # Safety
    /// The lanes in `lanes` lie within `tv` and `online_slot`, which are equally long.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn mix16(
        tv: &mut [f32],
        ov: &[f32],
        online_slot: &[u32],
        (t, u): (__m512, __m512),
        lo: __m512i,
        s: usize,
        lanes: __mmask16,
    ) -> __m512i {
        // SAFETY: the caller's promise.
        unsafe {
            let idx = _mm512_maskz_loadu_epi32(lanes, online_slot.as_ptr().add(s).cast());
            let a = _mm512_maskz_loadu_ps(lanes, tv.as_ptr().add(s));
            let o = online_values(ov, idx, *online_slot.get_unchecked(s), lanes);
            let x = _mm512_add_ps(_mm512_mul_ps(t, o), _mm512_mul_ps(u, a));
            _mm512_mask_storeu_ps(tv.as_mut_ptr().add(s), lanes, x);
            let k = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fff_ffff));
            _mm512_maskz_sub_epi32(lanes, k, lo)
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn mix_aligned(
        tv: &mut [f32],
        ov: &[f32],
        online_slot: &[u32],
        (t, u): (f32, f32),
        lo: u32,
        flagged: &mut Vec<u32>,
    ) {
        assert_eq!(
            tv.len(),
            online_slot.len(),
            "one online slot per target slot"
        );
        flagged.clear();
        let c = (_mm512_set1_ps(t), _mm512_set1_ps(u));
        let lo_v = _mm512_set1_epi32(lo as i32);
        // A chunk is flagged when some key less `lo` (wrapping) reaches `NON_FINITE − lo`.
        let span = _mm512_set1_epi32((NON_FINITE - lo) as i32);
        let n = tv.len();
        for chunk in 0..n.div_ceil(CHUNK) {
            let mut most = _mm512_setzero_si512();
            for s in (chunk * CHUNK..n.min((chunk + 1) * CHUNK)).step_by(16) {
                let lanes = if n - s >= 16 {
                    0xffff
                } else {
                    (1u16 << (n - s)) - 1
                };
                // SAFETY: the lanes in `lanes` lie below `n`, the length of both slices.
                let d = unsafe { mix16(tv, ov, online_slot, c, lo_v, s, lanes) };
                most = _mm512_max_epu32(most, d);
            }
            if _mm512_cmpge_epu32_mask(most, span) != 0 {
                flagged.push(chunk as u32);
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn mix(target: &mut [f32], online: &[f32], c: (f32, f32)) {
        super::mix_body(target, online, c)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn online_keys(
        keys: &mut [u32],
        online_only: &[u32],
        ov: &[f32],
        c: (f32, f32),
    ) -> u32 {
        super::online_keys_body(keys, online_only, ov, c)
    }
}

fn mix_aligned(
    tv: &mut [f32],
    ov: &[f32],
    online_slot: &[u32],
    c: (f32, f32),
    lo: u32,
    flagged: &mut Vec<u32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the function's only requirement.
        return unsafe { avx512::mix_aligned(tv, ov, online_slot, c, lo, flagged) };
    }
    mix_aligned_body(tv, ov, online_slot, c, lo, flagged)
}

fn online_keys(keys: &mut [u32], online_only: &[u32], ov: &[f32], c: (f32, f32)) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the function's only requirement.
        return unsafe { avx512::online_keys(keys, online_only, ov, c) };
    }
    online_keys_body(keys, online_only, ov, c)
}

/// Flat row-major position of the entry in slot `slot` of `w`.
/// Removes the `k` connections of `layer` with the smallest `|w|` (ties: lower row-major
/// position first).
fn drop_smallest(layer: &mut SparseLinear, k: usize) -> Result<()> {
    let w = layer.weights();
    let mut order: Vec<(u32, usize, usize)> = (0..w.nnz())
        .map(|s| (key(w.values()[s]), position_of(w, s), s))
        .collect();
    if k < order.len() {
        order.select_nth_unstable(k);
    }
    let mut removed: Vec<usize> = order[..k.min(order.len())].iter().map(|e| e.2).collect();
    removed.sort_unstable();
    layer.splice(&removed, &[])?;
    Ok(())
}

fn position_of(w: &SparseWeights, slot: usize) -> usize {
    let row = w.row_ptr().partition_point(|&p| p as usize <= slot) - 1;
    let col = match w {
        SparseWeights::U16(c) => c.col_idx()[slot].col(),
        SparseWeights::U32(c) => c.col_idx()[slot].col(),
    };
    row * w.n_cols() + col
}

impl LayerSync {
    fn update(&mut self, tl: &mut Layer, ol: &Layer, c: (f32, f32)) -> Result<()> {
        let (Layer::Sparse(ts), Layer::Sparse(os)) = (&*tl, ol) else {
            // Dense layers.
            let (w, b) = tl.params_mut();
            mix(w, ol.weight_values(), c);
            mix(b, ol.bias(), c);
            return Ok(());
        };
        let ids = (ts.topology_id(), os.topology_id());
        if ids.0 != ids.1 && self.ids != Some(ids) {
            match (ts.weights(), os.weights()) {
                (SparseWeights::U16(a), SparseWeights::U16(b)) => self.align(a, b),
                (SparseWeights::U32(a), SparseWeights::U32(b)) => self.align(a, b),
                _ => return Err(Error::ArchitectureMismatch("column index types differ")),
            }
            self.ids = Some(ids);
        }
        if ids.0 == ids.1 || (self.online_only.is_empty() && self.target_only == 0) {
            // Identical topologies (always so under static sparsity): the union is the topology
            // itself, so mix in place.
            let (w, b) = tl.params_mut();
            mix(w, ol.weight_values(), c);
            mix(b, ol.bias(), c);
            return Ok(());
        }
        self.update_differing(tl, os, c)?;
        let (_, b) = tl.params_mut();
        mix(b, ol.bias(), c);
        let Layer::Sparse(ts) = tl else {
            unreachable!("checked above")
        };
        let surplus = ts.weights().nnz().saturating_sub(os.weights().nnz());
        if surplus > 0 {
            drop_smallest(ts, surplus)?;
            self.ids = None;
        }
        Ok(())
    }

    /// Lines up the topologies of `t` and `o`.
    fn align<I: ColIndex>(&mut self, t: &Csr<I>, o: &Csr<I>) {
        self.online_slot.clear();
        self.online_slot.resize(t.nnz(), TARGET_ONLY);
        self.online_only.clear();
        let (tp, op) = (t.row_ptr(), o.row_ptr());
        for row in 0..t.n_rows() {
            let (t0, t1) = (tp[row] as usize, tp[row + 1] as usize);
            let (o0, o1) = (op[row] as usize, op[row + 1] as usize);
            let (tc, oc) = (&t.col_idx()[t0..t1], &o.col_idx()[o0..o1]);
            let slots = &mut self.online_slot[t0..t1];
            let (mut i, mut j) = (0, 0);
            while let (Some(&a), Some(&b)) = (tc.get(i), oc.get(j)) {
                if a == b {
                    slots[i] = (o0 + j) as u32;
                    i += 1;
                    j += 1;
                } else if a < b {
                    i += 1;
                } else {
                    self.online_only.push((o0 + j) as u32);
                    j += 1;
                }
            }
            self.online_only.extend((o0 + j..o1).map(|j| j as u32));
        }
        self.target_only = self
            .online_slot
            .iter()
            .filter(|&&j| j == TARGET_ONLY)
            .count();
        // Room for the selection's scratch while this alignment lasts (a topology change
        // allocates anyway; the updates in between should not): a flag per chunk at most, the
        // entries below the bound in practice at most about twice the online-only ones, a heap
        // of at most 64, and a few dozen swaps.
        let m = self.online_only.len();
        self.flagged.reserve(t.nnz().div_ceil(CHUNK));
        self.contested.reserve(2 * m + CHUNK);
        self.keys.reserve(3 * m + CHUNK);
        self.heap.reserve(64);
        self.ties.reserve(64);
        self.removed.reserve(64);
        self.kept_online.reserve(64);
        self.inserted.reserve(64);
        self.insert_at.reserve(64);
        self.inserted_online.reserve(64);
        self.dropped_common.reserve(64);
        self.dropped_at.reserve(64);
    }

    /// The soft update of a sparse layer whose topology differs from the online one.
    fn update_differing(&mut self, tl: &mut Layer, os: &SparseLinear, c: (f32, f32)) -> Result<()> {
        let (t, u) = c;
        let ov = os.weights().values();
        let m = self.online_only.len();
        // The online-only entries' keys (their values are `t·θ + u·0`) and the largest, `kO`.
        self.online_keys.resize(m, 0);
        let k_online = online_keys(&mut self.online_keys, &self.online_only, ov, c);
        // Only entries with keys below a bound can be dropped when at least `m` of the union's
        // entries lie below it: the full bound `kO + 1` always qualifies; a tighter guess, from
        // the threshold of the last contest, usually does and leaves far fewer target entries
        // to look at (see the module documentation).
        let full = if m == 0 { 0 } else { k_online + 1 };
        let mut bound = self.guess.map_or(full, |g| g.min(full));
        let (tv, _) = tl.params_mut();
        // Flags the chunks holding a key below the bound or a non-finite value.
        let lo = bound.min(NON_FINITE);
        mix_aligned(tv, ov, &self.online_slot, c, lo, &mut self.flagged);
        let mut non_finite = m > 0 && k_online >= NON_FINITE;
        self.contested.clear();
        for &chunk in &self.flagged {
            let chunk = chunk as usize;
            let slots = chunk * CHUNK..((chunk + 1) * CHUNK).min(tv.len());
            for (s, &v) in slots.clone().zip(&tv[slots]) {
                let k = key(v);
                if k < bound {
                    self.contested.push((k, s));
                }
                non_finite |= k >= NON_FINITE;
            }
        }
        let mut below = self.online_keys.iter().filter(|&&k| k < bound).count();
        if self.margin == 0 {
            self.margin = MARGIN_START;
        }
        if bound < full {
            self.calm = self.calm.saturating_add(1);
        }
        if self.contested.len() + below < m {
            // The guess was too low: fewer than `m` entries lie below it. Every online-only key
            // lies below the full bound. Guess wider from now on.
            self.margin = (self.margin + 1).min(*MARGIN_BITS.end());
            self.calm = 0;
            bound = full;
            below = m;
            self.contested.clear();
            self.contested.extend(
                tv.iter()
                    .enumerate()
                    .filter(|&(_, &v)| key(v) < bound)
                    .map(|(s, &v)| (key(v), s)),
            );
        }
        let Layer::Sparse(ts) = &*tl else {
            unreachable!("checked by the caller")
        };
        self.removed.clear();
        self.kept_online.clear();
        self.guess = None;
        if !self.contested.is_empty() {
            let threshold = self.select(ts.weights(), os.weights(), bound, m, below);
            if self.calm >= MARGIN_CALM {
                self.margin = (self.margin - 1).max(*MARGIN_BITS.start());
                self.calm = 0;
            }
            self.guess = Some(threshold.saturating_add(1 << self.margin));
        }
        if non_finite {
            self.check_kept_finite(ts, os, c)?;
        }
        if self.removed.is_empty() {
            // Every online-only entry is dropped: the topology stays.
            return Ok(());
        }

        // Splice the kept online-only entries in place of the dropped target entries.
        let (tw, ow) = (ts.weights(), os.weights());
        self.inserted.clear();
        self.insert_at.clear();
        self.inserted_online.clear();
        for &i in &self.kept_online {
            let j = self.online_only[i];
            let p = position_of(ow, j as usize);
            self.inserted.push((p, t * ov[j as usize] + u * 0.0));
            self.insert_at
                .push(sparse_core::with_csr!(tw, w => w.insertion_slot(p)));
            self.inserted_online.push(j);
        }
        self.dropped_common.clear();
        for &s in &self.removed {
            match self.online_slot[s] {
                TARGET_ONLY => self.target_only -= 1,
                j => self.dropped_common.push(j),
            }
        }
        let Layer::Sparse(ts) = tl else {
            unreachable!("checked by the caller")
        };
        self.ids = None;
        ts.splice(&self.removed, &self.inserted)?;
        // The alignment follows: kept online-only entries become common, dropped common ones
        // online-only.
        splice_vec(
            &mut self.online_slot,
            &self.removed,
            &self.insert_at,
            &self.inserted_online,
        );
        self.dropped_at.clear();
        self.dropped_at.extend(
            self.dropped_common
                .iter()
                .map(|&j| self.online_only.partition_point(|&x| x < j)),
        );
        splice_vec(
            &mut self.online_only,
            &self.kept_online,
            &self.dropped_at,
            &self.dropped_common,
        );
        self.ids = Some((ts.topology_id(), os.topology_id()));
        Ok(())
    }

    /// Chooses which entries go: fills `removed` and `kept_online`; returns the threshold key.
    ///
    /// The union's entries with keys below `bound` — the `contested` target entries and the
    /// `below` online-only entries whose keys are under it — hold the `m` to drop (the caller
    /// makes sure they are at least `m`); the rest, online-only entries included, stay. Of
    /// these, the `contested.len() + below − m` largest stay: keys above the threshold, and at
    /// the threshold the higher positions.
    fn select(
        &mut self,
        tw: &SparseWeights,
        ow: &SparseWeights,
        bound: u32,
        m: usize,
        below: usize,
    ) -> u32 {
        let keep = self.contested.len() + below - m;
        // The threshold: the `keep`-th largest key among the candidates; with none to keep, the
        // bound itself (every candidate lies below it, so all go).
        let threshold = if keep == 0 {
            bound
        } else if keep <= 64 {
            // Few places (the steady state): a heap of the best so far, rarely updated. Once it
            // is full, a block of online-only keys none of which would enter is passed over
            // whole (a loop the compiler vectorises): most lie far below.
            self.heap.clear();
            for &(k, _) in &self.contested {
                offer(&mut self.heap, keep, k);
            }
            for block in self.online_keys.chunks(KEY_BLOCK) {
                let full = self.heap.len() == keep;
                if let Some(&Reverse(top)) = self.heap.peek()
                    && full
                    && !block.iter().fold(false, |a, &k| a | (k > top && k < bound))
                {
                    continue;
                }
                for &k in block.iter().filter(|&&k| k < bound) {
                    offer(&mut self.heap, keep, k);
                }
            }
            self.heap.peek().map_or(bound, |r| r.0)
        } else {
            self.keys.clear();
            self.keys.extend(self.contested.iter().map(|&(k, _)| k));
            self.keys
                .extend(self.online_keys.iter().copied().filter(|&k| k < bound));
            let n = self.keys.len();
            *self.keys.select_nth_unstable(n - keep).1
        };
        // Keys above the threshold stay, below it go; at the threshold, the lower positions go.
        self.ties.clear();
        let mut above = 0;
        for &(k, s) in &self.contested {
            if k > threshold {
                above += 1;
            } else if k == threshold {
                self.ties.push((position_of(tw, s), false, s));
            }
        }
        // Online-only entries at or above the threshold (few; blocks without one are passed
        // over whole): those at or above the bound and above the threshold stay, those at it
        // tie.
        for (b, block) in self.online_keys.chunks(KEY_BLOCK).enumerate() {
            if !block.iter().fold(false, |a, &k| a | (k >= threshold)) {
                continue;
            }
            for (i, &k) in (b * KEY_BLOCK..).zip(block) {
                if k >= bound {
                    self.kept_online.push(i);
                } else if k > threshold {
                    above += 1;
                    self.kept_online.push(i);
                } else if k == threshold {
                    let j = self.online_only[i] as usize;
                    self.ties.push((position_of(ow, j), true, i));
                }
            }
        }
        self.ties.sort_unstable();
        let drop_ties = self.ties.len() - (keep - above);
        for &(_, online, index) in &self.ties[drop_ties..] {
            if online {
                self.kept_online.push(index);
            }
        }
        self.kept_online.sort_unstable();
        self.removed.extend(
            self.contested
                .iter()
                .filter(|&&(k, _)| k < threshold)
                .map(|&(_, s)| s),
        );
        self.removed.extend(
            self.ties[..drop_ties]
                .iter()
                .filter(|&&(_, online, _)| !online)
                .map(|&(_, _, s)| s),
        );
        self.removed.sort_unstable();
        threshold
    }

    /// Fails like a validated construction of the kept entries would if one of them is not
    /// finite (the index is its slot in the updated layer).
    fn check_kept_finite(
        &self,
        ts: &SparseLinear,
        os: &SparseLinear,
        (t, u): (f32, f32),
    ) -> Result<()> {
        let (tw, ow) = (ts.weights(), os.weights());
        let n_cols = tw.n_cols();
        let mut kept: Vec<(usize, f32)> = tw
            .iter()
            .enumerate()
            .filter(|(s, _)| self.removed.binary_search(s).is_err())
            .map(|(_, (r, c, v))| (r * n_cols + c, v))
            .collect();
        kept.extend(self.kept_online.iter().map(|&i| {
            let j = self.online_only[i] as usize;
            (position_of(ow, j), t * ow.values()[j] + u * 0.0)
        }));
        kept.sort_unstable_by_key(|e| e.0);
        match kept.iter().position(|e| !e.1.is_finite()) {
            None => Ok(()),
            Some(index) => Err(sparse_core::Error::NonFinite {
                what: "values",
                index,
                value: kept[index].1,
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    /// The dispatched loops (AVX-512 where the CPU has it) and the portable ones give the same
    /// bits, flags and keys, target-only slots and non-finite values included; so do the plain
    /// mixes.
    #[test]
    fn dispatched_loops_match_portable_ones() {
        let mut rng = StdRng::seed_from_u64(1);
        for case in 0..200 {
            let n = rng.random_range(0..600);
            let n_online = rng.random_range(1..700);
            let mut tv: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut ov: Vec<f32> = (0..n_online)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            if case % 7 == 0 && n > 0 {
                tv[case % n] = f32::NAN;
                ov[case % n_online] = f32::INFINITY;
                tv[(case + 1) % n] = -0.0;
            }
            // Half the cases line up as in training (online slots increasing, a few skipped:
            // the permuted loads), half at random (the gathers); slots past the online values
            // too.
            let mut next = 0u32;
            let slots: Vec<u32> = (0..n)
                .map(|_| {
                    if rng.random_bool(0.1) {
                        TARGET_ONLY
                    } else if case % 2 == 0 {
                        next += 1 + [0, 0, 0, 1, 2, 40][rng.random_range(0..6)];
                        next - 1
                    } else {
                        rng.random_range(0..n_online as u32 + 5)
                    }
                })
                .collect();
            let c = [(0.005f32, 0.995f32), (1.0, 0.0), (0.0, 1.0)][case % 3];
            let lo = [0, 1, 0x3c00_0000, NON_FINITE][case % 4];
            let (mut a, mut b) = (tv.clone(), tv.clone());
            let (mut fa, mut fb) = (Vec::new(), Vec::new());
            mix_aligned(&mut a, &ov, &slots, c, lo, &mut fa);
            mix_aligned_body(&mut b, &ov, &slots, c, lo, &mut fb);
            // Bits, but one NaN for all: which NaN comes out of `t·o + u·a` depends on the
            // operand order the compiler picked; a NaN's sign and payload mean nothing here.
            let bits = |v: &[f32]| {
                v.iter()
                    .map(|x| if x.is_nan() { f32::NAN } else { *x }.to_bits())
                    .collect::<Vec<_>>()
            };
            assert_eq!(bits(&a), bits(&b), "case {case}");
            assert_eq!(fa, fb, "case {case}");
            let (mut a, mut b) = (tv.clone(), tv.clone());
            let m = n.min(n_online);
            mix(&mut a[..m], &ov[..m], c);
            mix_body(&mut b[..m], &ov[..m], c);
            assert_eq!(bits(&a), bits(&b), "case {case}");
            let (mut ka, mut kb) = (vec![0; n], vec![0; n]);
            let ma = online_keys(&mut ka, &slots, &ov, c);
            let mb = online_keys_body(&mut kb, &slots, &ov, c);
            assert_eq!((ma, &ka), (mb, &kb), "case {case}");
        }
    }
}
