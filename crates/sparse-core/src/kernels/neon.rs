//! AArch64 NEON sparse kernels (4 lanes of `f32`, fused multiply-add), chosen at run time by
//! [`super`].
//!
//! The kernel body is the one the x86-64 kernels expand too (the `simd_kernels!` macro of
//! [`super::simd`]: `spmm` for forward and backward-data, `sddmm` for the weight and bias
//! gradients); this module defines its vector helpers for 128-bit NEON registers. Every function
//! carries `#[target_feature(enable = "neon")]`, and the dispatcher picks these kernels only
//! where `is_aarch64_feature_detected!("neon")` holds (every AArch64 Linux CPU: the feature is
//! part of the base architecture, but the check keeps the dispatch uniform).
//!
//! NEON has no masked loads or stores: where the shared body wants them (a tile's partial last
//! vector of output gradients and of outputs) it goes through a four-float buffer, copying only
//! its live lanes; input rows are loaded whole, as on x86-64 (see [`super::simd`]), and the
//! kernels write only the first `batch` lanes of each row (the padding contract of
//! [`crate::Activations`]). `max0` is `FMAXNM` against zero, so a NaN result becomes 0
//! as in the portable kernels' `f32::max`.
//!
//! Not tuned on hardware yet: the tile of 8 vectors (32 floats) is the widest the shared body
//! supports, and its two accumulator sets of 8 vectors, the two input vectors of each step and
//! the broadcast values fit in NEON's 32 registers.

use std::arch::aarch64::*;

type V = float32x4_t;
/// The live lanes (1 to 4) of a tile's last vector: the length of its partial copy.
type Mask = usize;
const W: usize = 4;
/// A tile of 32 floats (8 vectors): TD3's batch of 100 is four tiles of 7, 6, 6 and 6 vectors.
const TILE: usize = 32;

/// Whether every bit of `v` is zero (all lanes `+0.0`).
#[inline]
#[target_feature(enable = "neon")]
fn is_zero(v: V) -> bool {
    vmaxvq_u32(vreinterpretq_u32_f32(v)) == 0
}

/// `max(v, 0)` (IEEE maxNum: a NaN lane becomes 0).
#[inline]
#[target_feature(enable = "neon")]
fn max0(v: V) -> V {
    vmaxnmq_f32(v, vdupq_n_f32(0.0))
}

/// `h > 0 ? v : 0`, lane by lane.
#[inline]
#[target_feature(enable = "neon")]
fn keep_pos(v: V, h: V) -> V {
    let live = vcgtq_f32(h, vdupq_n_f32(0.0));
    vreinterpretq_f32_u32(vandq_u32(live, vreinterpretq_u32_f32(v)))
}

#[inline]
#[target_feature(enable = "neon")]
fn zero() -> V {
    vdupq_n_f32(0.0)
}

#[inline]
#[target_feature(enable = "neon")]
fn splat(v: f32) -> V {
    vdupq_n_f32(v)
}

#[inline]
#[target_feature(enable = "neon")]
fn add(a: V, b: V) -> V {
    vaddq_f32(a, b)
}

/// `a · b + c`, fused (`FMLA`).
#[inline]
#[target_feature(enable = "neon")]
fn fma(a: V, b: V, c: V) -> V {
    vfmaq_f32(c, a, b)
}

/// `c + a·b` on the first `m` lanes; elsewhere `c + a·0`, which is `c` where `a` is 0 (the
/// kernels mask `a` alike).
#[inline]
#[target_feature(enable = "neon")]
fn fmam(a: V, b: V, c: V, m: Mask) -> V {
    let lanes = [0u32, 1, 2, 3];
    // SAFETY: `lanes` holds 4 readable `u32`.
    let live = vcltq_u32(unsafe { vld1q_u32(lanes.as_ptr()) }, vdupq_n_u32(m as u32));
    vfmaq_f32(
        c,
        a,
        vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(b), live)),
    )
}

/// The mask of the first `n` lanes (`1 ≤ n ≤ 4`): their count.
#[inline]
#[target_feature(enable = "neon")]
fn mask(n: usize) -> Mask {
    debug_assert!((1..=W).contains(&n));
    n
}

/// # Safety
/// 4 floats at `p` must be readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load(p: *const f32) -> V {
    // SAFETY: the caller guarantees 4 readable floats.
    unsafe { vld1q_f32(p) }
}

/// Loads the first `m` lanes at `p`, the others zero.
///
/// # Safety
/// `m ≤ 4` floats at `p` must be readable (the lanes beyond are not touched).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn loadm(p: *const f32, m: Mask) -> V {
    let mut buf = [0.0f32; W];
    // SAFETY: the caller guarantees `m` readable floats at `p`; `buf` holds `W ≥ m`.
    unsafe {
        std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), m);
        vld1q_f32(buf.as_ptr())
    }
}

/// # Safety
/// 4 floats at `p` must be writable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store(p: *mut f32, v: V) {
    // SAFETY: the caller guarantees 4 writable floats.
    unsafe { vst1q_f32(p, v) }
}

/// Stores the first `m` lanes of `v` at `p`.
///
/// # Safety
/// `m ≤ 4` floats at `p` must be writable (the floats beyond are not touched).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn storem(p: *mut f32, m: Mask, v: V) {
    let mut buf = [0.0f32; W];
    // SAFETY: `buf` holds 4 floats; the caller guarantees `m ≤ 4` writable floats at `p`.
    unsafe {
        vst1q_f32(buf.as_mut_ptr(), v);
        std::ptr::copy_nonoverlapping(buf.as_ptr(), p, m);
    }
}

#[inline]
#[target_feature(enable = "neon")]
fn hsum(v: V) -> f32 {
    vaddvq_f32(v)
}

/// Horizontal sums of two vectors, sharing the pairwise adds.
#[inline]
#[target_feature(enable = "neon")]
fn hsum2(a: V, b: V) -> (f32, f32) {
    // [a0+a1, a2+a3, b0+b1, b2+b3], then [a, b, a, b].
    let s = vpaddq_f32(a, b);
    let t = vpaddq_f32(s, s);
    (vgetq_lane_f32::<0>(t), vgetq_lane_f32::<1>(t))
}

/// Adds (or, unless `accumulate`, stores) the horizontal sum of each of the 8 vectors `s` at
/// the matching one of the 8 floats at `g`: two levels of pairwise adds leave four totals in
/// order per vector register.
///
/// # Safety
/// 8 floats at `g` must be readable and writable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn acc8(g: *mut f32, s: [V; 8], accumulate: bool) {
    let four = |a: V, b: V, c: V, d: V| vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
    let lo = four(s[0], s[1], s[2], s[3]);
    let hi = four(s[4], s[5], s[6], s[7]);
    // SAFETY: the caller guarantees 8 readable and writable floats at `g`.
    unsafe {
        let (lo, hi) = if accumulate {
            (
                vaddq_f32(vld1q_f32(g), lo),
                vaddq_f32(vld1q_f32(g.add(W)), hi),
            )
        } else {
            (lo, hi)
        };
        vst1q_f32(g, lo);
        vst1q_f32(g.add(W), hi);
    }
}

simd_kernels!("neon");
