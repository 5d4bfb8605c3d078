//! x86-64 SIMD sparse kernels: AVX-512 and AVX2+FMA, chosen at run time by [`super`].
//!
//! Both instruction sets share one kernel body (the `simd_kernels!` macro) written against a
//! handful of vector helpers that each submodule defines for its register width; every function
//! carries `#[target_feature]`, so the helpers inline into the kernels and nothing here runs on
//! a CPU without the features (the dispatcher checks with `is_x86_feature_detected!`).
//!
//! Layout facts these kernels rely on (measured on this project's AVX-512 machine, see
//! `DESIGN.md` §2): activations are feature-major with 64-byte aligned rows; the batch is cut in
//! tiles of 64 floats (32 in the prototype of DESIGN.md; 64 measured slightly faster here at
//! batch 100, where it leaves one partial tile instead of three full ones and a sliver), the
//! tile loop is outermost so one tile of every input row stays in L1 or L2
//! while all output rows are computed; the loop over connections is unrolled twice with two
//! independent accumulator sets. The last, partial tile uses masked loads and stores, so the
//! kernels read and write only the first `batch` lanes of each row (the padding contract of
//! [`crate::Activations`]).
//!
//! Two kernels cover the three products:
//! - `spmm`: `y[j] = init_j + Σ_e val_e · x[idx_e]` over a compressed row structure. Forward
//!   runs it on the CSR arrays with the bias as `init`; backward-data runs it on the transposed
//!   structure ([`crate::csr::Transposed`]) with values gathered through its permutation and
//!   `init = 0` — a gather, with no scattered writes.
//! - `sddmm`: `grad_e = Σ_b dy[j,b] · x[k,b]` at the stored positions, tile by tile, each tile's
//!   partial dot product reduced horizontally and added to `grad_e`.

/// Floats per batch tile.
const TILE: usize = 64;

/// Calls `$f::<$g, NV, MASKED>(args)` for the run-time `(nv, masked)` of a partial tile
/// (`1 ≤ nv ≤ 8` vectors, the last one masked or not).
macro_rules! by_width {
    ($nv:expr, $masked:expr, $f:ident::<$g:ty>($($arg:expr),*)) => {
        match ($nv, $masked) {
            (1, false) => $f::<$g, 1, false>($($arg),*),
            (1, true) => $f::<$g, 1, true>($($arg),*),
            (2, false) => $f::<$g, 2, false>($($arg),*),
            (2, true) => $f::<$g, 2, true>($($arg),*),
            (3, false) => $f::<$g, 3, false>($($arg),*),
            (3, true) => $f::<$g, 3, true>($($arg),*),
            (4, false) => $f::<$g, 4, false>($($arg),*),
            (4, true) => $f::<$g, 4, true>($($arg),*),
            (5, false) => $f::<$g, 5, false>($($arg),*),
            (5, true) => $f::<$g, 5, true>($($arg),*),
            (6, false) => $f::<$g, 6, false>($($arg),*),
            (6, true) => $f::<$g, 6, true>($($arg),*),
            (7, false) => $f::<$g, 7, false>($($arg),*),
            (7, true) => $f::<$g, 7, true>($($arg),*),
            (8, false) => $f::<$g, 8, false>($($arg),*),
            (8, true) => $f::<$g, 8, true>($($arg),*),
            _ => unreachable!("a tile holds at most 8 vectors"),
        }
    };
}

/// Expands the kernels for one instruction set. The invoking module defines `V` (vector), `W`
/// (lanes), `Mask`, and the helpers `zero`, `splat`, `add`, `fma`, `mask`, `load`, `loadm`,
/// `store`, `storem`, `hsum`, all with the feature list `$feat`.
macro_rules! simd_kernels {
    ($feat:literal) => {
        use crate::csr::ColIndex;

        /// Vectors per full tile.
        const TV: usize = super::TILE / W;

        /// Loads vector `l` of a tile of `nv` vectors starting at `p`; the last one masked when
        /// `MASKED`.
        ///
        /// # Safety
        /// The lanes addressed (all `W` of vector `l`, or the masked ones of the last vector)
        /// must be readable.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn ld<const MASKED: bool>(p: *const f32, l: usize, nv: usize, m: Mask) -> V {
            // SAFETY: forwarded from the caller's contract.
            unsafe {
                if MASKED && l + 1 == nv {
                    loadm(p.add(l * W), m)
                } else {
                    load(p.add(l * W))
                }
            }
        }

        /// Stores vector `l` of a tile; the last one masked when `MASKED`.
        ///
        /// # Safety
        /// As [`ld`], for writing.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn st<const MASKED: bool>(p: *mut f32, l: usize, nv: usize, m: Mask, v: V) {
            // SAFETY: forwarded from the caller's contract.
            unsafe {
                if MASKED && l + 1 == nv {
                    storem(p.add(l * W), m, v)
                } else {
                    store(p.add(l * W), v)
                }
            }
        }

        /// One output row over one tile of `NV` vectors: `out = init + Σ val · x[idx]` over the
        /// row's entries `idx` and values `val` (same length).
        ///
        /// # Safety
        /// For every `k` in `idx`, the tile lanes of `x + k·xs` must be readable, and the tile
        /// lanes of `out` writable (lanes as [`ld`] addresses them).
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn spmm_tile<J: ColIndex, const NV: usize, const MASKED: bool>(
            idx: &[J],
            val: &[f32],
            init: f32,
            x: *const f32,
            xs: usize,
            out: *mut f32,
            m: Mask,
        ) {
            let v_at = |i: usize| val[i];
            let mut a = [splat(init); NV];
            let mut b = [zero(); NV];
            let pairs = idx.len() / 2;
            for p in 0..pairs {
                let (i0, i1) = (2 * p, 2 * p + 1);
                let (v0, v1) = (splat(v_at(i0)), splat(v_at(i1)));
                // SAFETY: the caller guarantees the rows of every index in `idx` are readable.
                let (p0, p1) = unsafe { (x.add(idx[i0].col() * xs), x.add(idx[i1].col() * xs)) };
                for l in 0..NV {
                    // SAFETY: as above, tile lanes only.
                    let (x0, x1) =
                        unsafe { (ld::<MASKED>(p0, l, NV, m), ld::<MASKED>(p1, l, NV, m)) };
                    a[l] = fma(v0, x0, a[l]);
                    b[l] = fma(v1, x1, b[l]);
                }
            }
            if idx.len() % 2 == 1 {
                let i = idx.len() - 1;
                let v = splat(v_at(i));
                // SAFETY: as above.
                let p = unsafe { x.add(idx[i].col() * xs) };
                for l in 0..NV {
                    // SAFETY: as above.
                    a[l] = fma(v, unsafe { ld::<MASKED>(p, l, NV, m) }, a[l]);
                }
            }
            for l in 0..NV {
                // SAFETY: the caller guarantees the tile lanes of `out` are writable.
                unsafe { st::<MASKED>(out, l, NV, m, add(a[l], b[l])) };
            }
        }

        /// `y[j] = init_j + Σ_{e ∈ ptr[j]..ptr[j+1]} val[e] · x[idx[e]]` for every row `j`, where
        /// `init_j` is `bias[j]` (or 0 without a bias).
        ///
        /// # Safety
        /// The CPU supports the module's features; `ptr` is a valid offset array into `idx` and
        /// `val`; `bias`, if given, has a value per row;
        /// `x` holds `max(idx) + 1` rows of stride `xs ≥ batch` and `y` holds `ptr.len() - 1`
        /// rows of stride `ys ≥ batch`, not overlapping `x`.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(in crate::kernels) unsafe fn spmm<J: ColIndex>(
            ptr: &[u32],
            idx: &[J],
            val: &[f32],
            bias: Option<&[f32]>,
            x: *const f32,
            xs: usize,
            y: *mut f32,
            ys: usize,
            batch: usize,
        ) {
            let rows = ptr.len() - 1;
            let mut t = 0;
            while t < batch {
                let rem = (batch - t).min(super::TILE);
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                for j in 0..rows {
                    let (lo, hi) = (ptr[j] as usize, ptr[j + 1] as usize);
                    let init = bias.map_or(0.0, |b| b[j]);
                    let (ri, rv) = (&idx[lo..hi], &val[lo..hi]);
                    // SAFETY: tile `t..t + rem` lies within the first `batch` lanes of each row,
                    // which the caller guarantees exist in `x` and `y`.
                    unsafe {
                        let (xt, out) = (x.add(t), y.add(j * ys + t));
                        if nv == TV && !masked {
                            spmm_tile::<J, TV, false>(ri, rv, init, xt, xs, out, m)
                        } else {
                            by_width!(nv, masked, spmm_tile::<J>(ri, rv, init, xt, xs, out, m))
                        }
                    }
                }
                t += super::TILE;
            }
        }

        /// One output row's connections over one tile: `grad_e += Σ_lanes dy[j] · x[idx_e]`.
        ///
        /// # Safety
        /// As [`spmm_tile`] for `dy` (one row) and the rows of `x` named by `idx`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn sddmm_tile<J: ColIndex, const NV: usize, const MASKED: bool>(
            idx: &[J],
            grad: &mut [f32],
            dy: *const f32,
            x: *const f32,
            xs: usize,
            m: Mask,
        ) {
            let mut d = [zero(); NV];
            for (l, dl) in d.iter_mut().enumerate() {
                // SAFETY: the caller guarantees the tile lanes of the `dy` row are readable.
                *dl = unsafe { ld::<MASKED>(dy, l, NV, m) };
            }
            // Groups of 8 connections share one transposing reduction of their partial sums.
            let groups = idx.len() / 8;
            for gi in 0..groups {
                let base = 8 * gi;
                let mut rows = [x; 8];
                for (c, r) in rows.iter_mut().enumerate() {
                    // SAFETY: the caller guarantees the rows of every index in `idx` are readable.
                    *r = unsafe { x.add(idx[base + c].col() * xs) };
                }
                let mut s = [zero(); 8];
                for l in 0..NV {
                    for c in 0..8 {
                        // SAFETY: as above, tile lanes only.
                        s[c] = fma(d[l], unsafe { ld::<MASKED>(rows[c], l, NV, m) }, s[c]);
                    }
                }
                let g: &mut [f32; 8] = (&mut grad[base..base + 8]).try_into().expect("8 slots");
                acc8(g, s);
            }
            let done = 8 * groups;
            let (idx, grad) = (&idx[done..], &mut grad[done..]);
            let pairs = idx.len() / 2;
            for p in 0..pairs {
                let (i0, i1) = (2 * p, 2 * p + 1);
                // SAFETY: the caller guarantees the rows of every index in `idx` are readable.
                let (p0, p1) = unsafe { (x.add(idx[i0].col() * xs), x.add(idx[i1].col() * xs)) };
                let (mut s0, mut s1) = (zero(), zero());
                for l in 0..NV {
                    // SAFETY: as above, tile lanes only.
                    let (x0, x1) =
                        unsafe { (ld::<MASKED>(p0, l, NV, m), ld::<MASKED>(p1, l, NV, m)) };
                    s0 = fma(d[l], x0, s0);
                    s1 = fma(d[l], x1, s1);
                }
                let (h0, h1) = hsum2(s0, s1);
                grad[i0] += h0;
                grad[i1] += h1;
            }
            if idx.len() % 2 == 1 {
                let i = idx.len() - 1;
                // SAFETY: as above.
                let p = unsafe { x.add(idx[i].col() * xs) };
                let mut s = zero();
                for l in 0..NV {
                    // SAFETY: as above.
                    s = fma(d[l], unsafe { ld::<MASKED>(p, l, NV, m) }, s);
                }
                grad[i] += hsum(s);
            }
        }

        /// `grad[e] = Σ_b dy[j,b] · x[k,b]` for every stored entry `e = (j, k)` of the
        /// structure `(ptr, idx)`; `grad` is overwritten.
        ///
        /// # Safety
        /// The CPU supports the module's features; `ptr` is a valid offset array into `idx`
        /// with `grad.len() == idx.len()`; `dy` holds `ptr.len() - 1` rows of stride
        /// `dys ≥ batch` and `x` holds `max(idx) + 1` rows of stride `xs ≥ batch`.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(in crate::kernels) unsafe fn sddmm<J: ColIndex>(
            ptr: &[u32],
            idx: &[J],
            dy: *const f32,
            dys: usize,
            x: *const f32,
            xs: usize,
            grad: &mut [f32],
            batch: usize,
        ) {
            grad.fill(0.0);
            let rows = ptr.len() - 1;
            let mut t = 0;
            while t < batch {
                let rem = (batch - t).min(super::TILE);
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                for j in 0..rows {
                    let (lo, hi) = (ptr[j] as usize, ptr[j + 1] as usize);
                    let (ri, g) = (&idx[lo..hi], &mut grad[lo..hi]);
                    // SAFETY: tile `t..t + rem` lies within the first `batch` lanes of each row,
                    // which the caller guarantees exist in `dy` and `x`.
                    unsafe {
                        let (d, xt) = (dy.add(j * dys + t), x.add(t));
                        if nv == TV && !masked {
                            sddmm_tile::<J, TV, false>(ri, g, d, xt, xs, m)
                        } else {
                            by_width!(nv, masked, sddmm_tile::<J>(ri, g, d, xt, xs, m))
                        }
                    }
                }
                t += super::TILE;
            }
        }
    };
}

/// AVX-512F kernels (16 lanes).
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    type V = __m512;
    type Mask = __mmask16;
    const W: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn zero() -> V {
        _mm512_setzero_ps()
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(v: f32) -> V {
        _mm512_set1_ps(v)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn add(a: V, b: V) -> V {
        _mm512_add_ps(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm512_fmadd_ps(a, b, c)
    }

    /// The mask of the first `n` lanes (`1 ≤ n ≤ 16`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mask(n: usize) -> Mask {
        ((1u32 << n) - 1) as Mask
    }

    /// # Safety
    /// 16 floats at `p` must be readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller guarantees 16 readable floats.
        unsafe { _mm512_loadu_ps(p) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be readable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn loadm(p: *const f32, m: Mask) -> V {
        // SAFETY: the caller guarantees the masked lanes are readable; AVX-512 suppresses
        // faults on masked-off lanes.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }

    /// # Safety
    /// 16 floats at `p` must be writable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller guarantees 16 writable floats.
        unsafe { _mm512_storeu_ps(p, v) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be writable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn storem(p: *mut f32, m: Mask, v: V) {
        // SAFETY: the caller guarantees the masked lanes are writable.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn hsum(v: V) -> f32 {
        _mm512_reduce_add_ps(v)
    }

    /// Horizontal sums of two vectors, sharing the reduction steps.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn hsum2(a: V, b: V) -> (f32, f32) {
        // 128-bit blocks: [a0 a1 b0 b1] + [a2 a3 b2 b3] = [a02 a13 b02 b13].
        let s = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
        );
        // Swap neighbouring blocks and add: [A A B B], A and B each one block of partial sums.
        let s = _mm512_add_ps(s, _mm512_shuffle_f32x4::<0b10_11_00_01>(s, s));
        // Within each block: fold 64-bit halves, then neighbouring lanes.
        let s = _mm512_add_ps(s, _mm512_permute_ps::<0b01_00_11_10>(s));
        let s = _mm512_add_ps(s, _mm512_permute_ps::<0b10_11_00_01>(s));
        (
            _mm512_cvtss_f32(s),
            _mm_cvtss_f32(_mm512_extractf32x4_ps::<2>(s)),
        )
    }

    /// Adds the horizontal sum of each of the 8 vectors `s` to the matching slot of `g`, by a
    /// transposing reduction (three folding levels shared across the vectors).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn acc8(g: &mut [f32; 8], s: [V; 8]) {
        // Level 1, per pair (a, b): 128-bit blocks [a0+a2, a1+a3, b0+b2, b1+b3].
        let fold = |a: V, b: V| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        };
        let (ab, cd, ef, gh) = (
            fold(s[0], s[1]),
            fold(s[2], s[3]),
            fold(s[4], s[5]),
            fold(s[6], s[7]),
        );
        // Level 2: block i of the result holds connection i's 4 partial sums.
        let join = |p: V, q: V| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(p, q),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(p, q),
            )
        };
        let (abcd, efgh) = (join(ab, cd), join(ef, gh));
        // Level 3: within each block, lanes 0 and 1 become the totals of connections i and i + 4.
        let t = _mm512_add_ps(
            _mm512_unpacklo_ps(abcd, efgh),
            _mm512_unpackhi_ps(abcd, efgh),
        );
        let t = _mm512_add_ps(t, _mm512_permute_ps::<0b01_00_11_10>(t));
        // Gather lanes 0, 4, 8, 12 (connections 0..4) then 1, 5, 9, 13 (4..8).
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        let sums = _mm512_castps512_ps256(_mm512_permutexvar_ps(order, t));
        // SAFETY: `g` is exactly 8 floats.
        unsafe {
            let p = g.as_mut_ptr();
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), sums));
        }
    }

    simd_kernels!("avx512f,avx2,fma");
}

/// AVX2 + FMA kernels (8 lanes).
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    type V = __m256;
    type Mask = __m256i;
    const W: usize = 8;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn zero() -> V {
        _mm256_setzero_ps()
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn splat(v: f32) -> V {
        _mm256_set1_ps(v)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn add(a: V, b: V) -> V {
        _mm256_add_ps(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn fma(a: V, b: V, c: V) -> V {
        _mm256_fmadd_ps(a, b, c)
    }

    /// The mask of the first `n` lanes (`1 ≤ n ≤ 8`): all bits set in those lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn mask(n: usize) -> Mask {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// # Safety
    /// 8 floats at `p` must be readable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller guarantees 8 readable floats.
        unsafe { _mm256_loadu_ps(p) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be readable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn loadm(p: *const f32, m: Mask) -> V {
        // SAFETY: the caller guarantees the masked lanes are readable; `vmaskmovps` does not
        // fault on masked-off lanes.
        unsafe { _mm256_maskload_ps(p, m) }
    }

    /// # Safety
    /// 8 floats at `p` must be writable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller guarantees 8 writable floats.
        unsafe { _mm256_storeu_ps(p, v) }
    }

    /// # Safety
    /// The lanes of `m` at `p` must be writable (masked-off lanes are not touched).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn storem(p: *mut f32, m: Mask, v: V) {
        // SAFETY: the caller guarantees the masked lanes are writable.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: V) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// Horizontal sums of two vectors.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum2(a: V, b: V) -> (f32, f32) {
        // One horizontal add pairs up neighbours of both; then fold the 128-bit halves.
        let h = _mm256_hadd_ps(a, b); // a01 a23 b01 b23 | a45 a67 b45 b67
        let s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
        // s = [a0123+a4567 split in two, b split in two]: lanes 0,1 are a; 2,3 are b.
        let t = _mm_hadd_ps(s, s); // [a, b, a, b]
        (_mm_cvtss_f32(t), _mm_cvtss_f32(_mm_movehdup_ps(t)))
    }

    /// Adds the horizontal sum of each of the 8 vectors `s` to the matching slot of `g`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn acc8(g: &mut [f32; 8], s: [V; 8]) {
        // Pairwise horizontal adds: [a b c d] partial sums per 128-bit half, for 0..4 and 4..8.
        let h0 = _mm256_hadd_ps(_mm256_hadd_ps(s[0], s[1]), _mm256_hadd_ps(s[2], s[3]));
        let h1 = _mm256_hadd_ps(_mm256_hadd_ps(s[4], s[5]), _mm256_hadd_ps(s[6], s[7]));
        // Low halves of both plus high halves of both: the 8 totals in order.
        let sums = _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(h0, h1),
            _mm256_permute2f128_ps::<0x31>(h0, h1),
        );
        // SAFETY: `g` is exactly 8 floats.
        unsafe {
            let p = g.as_mut_ptr();
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), sums));
        }
    }

    simd_kernels!("avx2,fma");
}
