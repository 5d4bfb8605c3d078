//! x86-64 SIMD sparse kernels: AVX-512 and AVX2+FMA, chosen at run time by [`super`].
//!
//! Both instruction sets share one kernel body (the `simd_kernels!` macro) written against a
//! handful of vector helpers that each submodule defines for its register width; every function
//! carries `#[target_feature]`, so the helpers inline into the kernels and nothing here runs on
//! a CPU without the features (the dispatcher checks with `is_x86_feature_detected!`).
//!
//! What bounds these kernels on the AVX-512 machine they were tuned on is not the FMA units but
//! the load ports and the L1 cache: every vector product of a connection loads one vector of an
//! input row, and each connection also loads its index and value. Measured there (a Sapphire
//! Rapids-class Xeon at about 3.4 GHz under AVX-512 load): two independent 512-bit FMAs a cycle
//! from registers, but only about 1.2 a cycle when each takes its operand from L1 (the `stream`
//! probe behind [`super::load_bound`]: some 130 GFLOPS, against 110–155 for matrixmultiply's
//! register-blocked sgemm). Tried there without gain: base-plus-displacement instead of indexed
//! addresses, rows visited in order of segment length (fewer mispredicted loop exits, but the
//! index and value reads lose their sequential order), and indices read four to a 64-bit load.
//! So:
//! - activations are feature-major with 64-byte aligned rows (see [`crate::Activations`]);
//! - the batch is cut into tiles of up to 8 vectors (AVX-512: 128 floats, so TD3's batch of 100
//!   is one tile and a connection's index and value are loaded once for 7 vector products;
//!   AVX2: 56 floats, the most that keeps both accumulator sets in its 16 registers), split
//!   evenly: 100 lanes on AVX2 are two tiles of 7 and 6 vectors, not 4 + 4 + 4 + 1 (measured
//!   with `ds-td3 bench --kernels avx2`: 8–20% faster than 32-float tiles; 64 spilled);
//! - within a tile, the inputs are taken in blocks of [`crate::csr::Segments::BLOCK`] rows and
//!   every output row takes its connections from one block before the next block starts, so the
//!   block's input rows (64 × 448 bytes at batch 100) stay in L1 instead of streaming from L2
//!   for every output row. Measured on the 256×256 layer at density 0.5, batch 100: unblocked
//!   64-float tiles reached 80 GFLOPS (forward) and 59 (weight gradient); larger unblocked tiles
//!   were slower still (the inputs spill from L1);
//! - connections are unrolled twice with two independent accumulator sets;
//! - the last, partial vector of a tile uses masked loads and stores, so the kernels read and
//!   write only the first `batch` lanes of each row (the padding contract of
//!   [`crate::Activations`]).
//!
//! Two kernels cover the three products:
//! - `spmm`: `y[j] = post(init_j + Σ_e val_e · x[idx_e])` over a compressed row structure.
//!   Forward runs it on the CSR arrays with the bias as `init` (and a fused ReLU as `post` in
//!   hidden layers); backward-data runs it on the transposed structure
//!   ([`crate::csr::Transposed`]) with values gathered through its permutation, `init = 0` and
//!   the ReLU derivative of the layer below as `post` — a gather, with no scattered writes.
//! - `sddmm`: `grad_e = Σ_b dy[j,b] · x[k,b]` at the stored positions, each tile's partial dot
//!   products reduced horizontally eight connections at a time.
//!
//! Both take a range of output rows, so the rows of one product can be split between threads
//! without changing any result.

/// Calls `$f::<$g, NV, MASKED>(args)` for the run-time `(nv, masked)` of a partial tile
/// (`1 ≤ nv ≤ 8` vectors, the last one masked or not).
macro_rules! by_width {
    ($nv:expr, $masked:expr, $f:ident::<$($g:ty),+>($($arg:expr),*)) => {
        match ($nv, $masked) {
            (1, false) => $f::<$($g),+, 1, false>($($arg),*),
            (1, true) => $f::<$($g),+, 1, true>($($arg),*),
            (2, false) => $f::<$($g),+, 2, false>($($arg),*),
            (2, true) => $f::<$($g),+, 2, true>($($arg),*),
            (3, false) => $f::<$($g),+, 3, false>($($arg),*),
            (3, true) => $f::<$($g),+, 3, true>($($arg),*),
            (4, false) => $f::<$($g),+, 4, false>($($arg),*),
            (4, true) => $f::<$($g),+, 4, true>($($arg),*),
            (5, false) => $f::<$($g),+, 5, false>($($arg),*),
            (5, true) => $f::<$($g),+, 5, true>($($arg),*),
            (6, false) => $f::<$($g),+, 6, false>($($arg),*),
            (6, true) => $f::<$($g),+, 6, true>($($arg),*),
            (7, false) => $f::<$($g),+, 7, false>($($arg),*),
            (7, true) => $f::<$($g),+, 7, true>($($arg),*),
            (8, false) => $f::<$($g),+, 8, false>($($arg),*),
            (8, true) => $f::<$($g),+, 8, true>($($arg),*),
            _ => unreachable!("a tile holds at most 8 vectors"),
        }
    };
}

/// What `spmm` does to a result on the last column block, before storing it.
#[derive(Clone, Copy)]
pub(in crate::kernels) enum Post {
    /// Store as computed.
    Store,
    /// `max(r, 0)`.
    Relu,
    /// `h > 0 ? r : 0`, with `h` the rows at this pointer (same shape as the output) and this
    /// stride: the gradient through a ReLU whose output was `h`.
    Mask(*const f32, usize),
}

/// Where `spmm` finds the value of entry `e` of a row segment.
pub(in crate::kernels) trait Values: Copy {
    /// The value of entry `e` (relative to the segment), unchecked.
    ///
    /// # Safety
    /// `e` is below the segment's length.
    unsafe fn at(self, e: usize) -> f32;

    /// The entries `lo..hi`: one row segment.
    fn part(self, lo: usize, hi: usize) -> Self;
}

/// Values stored in entry order (forward: the CSR values).
#[derive(Clone, Copy)]
pub(in crate::kernels) struct Direct<'a>(pub &'a [f32]);

impl Values for Direct<'_> {
    #[inline(always)]
    unsafe fn at(self, e: usize) -> f32 {
        debug_assert!(e < self.0.len());
        // SAFETY: the caller keeps `e` below the segment's length.
        unsafe { *self.0.get_unchecked(e) }
    }

    #[inline(always)]
    fn part(self, lo: usize, hi: usize) -> Self {
        Self(&self.0[lo..hi])
    }
}

/// Values reached through a permutation (backward-data: the CSR values in transposed order,
/// `values[perm[e]]`), read in the kernel instead of gathered into a copy first.
#[derive(Clone, Copy)]
pub(in crate::kernels) struct Permuted<'a> {
    /// All values.
    pub values: &'a [f32],
    /// The slot of each entry's value.
    pub perm: &'a [u32],
}

impl Values for Permuted<'_> {
    #[inline(always)]
    unsafe fn at(self, e: usize) -> f32 {
        debug_assert!(e < self.perm.len() && (self.perm[e] as usize) < self.values.len());
        // SAFETY: the caller keeps `e` below the segment's length, and every slot of the
        // permutation is below the number of values (the dispatcher checks that the transposed
        // structure fits the weights, whose values it indexes).
        unsafe {
            *self
                .values
                .get_unchecked(*self.perm.get_unchecked(e) as usize)
        }
    }

    #[inline(always)]
    fn part(self, lo: usize, hi: usize) -> Self {
        Self {
            values: self.values,
            perm: &self.perm[lo..hi],
        }
    }
}

/// Expands the kernels for one instruction set. The invoking module defines `V` (vector), `W`
/// (lanes), `TILE` (floats per batch tile, at most 8 vectors), `Mask`, and the helpers `zero`,
/// `splat`, `add`, `fma`, `is_zero`, `max0`, `keep_pos`, `mask`, `load`, `loadm`, `store`,
/// `storem`, `hsum`, `hsum2`, `acc8`, all with the feature list `$feat`.
macro_rules! simd_kernels {
    ($feat:literal) => {
        use super::{Post, Values};
        use crate::csr::ColIndex;

        /// Vectors per full tile.
        const TV: usize = TILE / W;

        /// Floats per full batch tile.
        pub(in crate::kernels) const TILE_FLOATS: usize = TILE;

        /// `spmm`'s inner loop stripped to its input loads, for [`super::super::load_bound`]:
        /// `n` times, a full tile of one of 64 input rows (a fixed cycle, no index loads) is
        /// multiplied by a constant and added into one of two accumulator sets. Returns the sum
        /// of the accumulators (so no product can be optimised away).
        ///
        /// # Safety
        /// The CPU supports the module's features; `x` holds 64 rows of stride `xs ≥ TILE`.
        #[target_feature(enable = $feat)]
        pub(in crate::kernels) unsafe fn stream(x: *const f32, xs: usize, n: usize) -> f32 {
            let v = splat(0.5);
            let (mut a, mut b) = ([zero(); TV], [zero(); TV]);
            for i in 0..n / 2 {
                let (r0, r1) = ((i * 74) & 63, (i * 74 + 37) & 63);
                // SAFETY: rows below 64, full tiles: the caller guarantees they are readable.
                let (p0, p1) = unsafe { (x.add(r0 * xs), x.add(r1 * xs)) };
                for l in 0..TV {
                    // SAFETY: as above.
                    let (x0, x1) = unsafe { (load(p0.add(l * W)), load(p1.add(l * W))) };
                    a[l] = fma(v, x0, a[l]);
                    b[l] = fma(v, x1, b[l]);
                }
            }
            hsum((0..TV).fold(zero(), |s, l| add(s, add(a[l], b[l]))))
        }

        /// The batch tiles, `(first lane, lanes)`: the batch's vectors split as evenly as
        /// possible into the fewest tiles of at most [`TV`] vectors (so no tile is much
        /// shorter than the others: each tile costs a pass over the connections).
        fn tiles(batch: usize) -> impl Iterator<Item = (usize, usize)> {
            let vectors = batch.div_ceil(W);
            let n = vectors.div_ceil(TV);
            let (base, extra) = (vectors / n.max(1), vectors % n.max(1));
            (0..n).scan(0, move |t, i| {
                let start = *t;
                *t += (base + usize::from(i < extra)) * W;
                Some((start, (*t).min(batch) - start))
            })
        }

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

        /// One output row's segment over one tile of `NV` vectors:
        /// `out = start + Σ val · x[idx]`, where `start` is `init` (first block) or the tile
        /// already in `out` (later blocks); `post` is applied before the store (the driver
        /// passes [`Post::Store`] for all but the last block).
        ///
        /// # Safety
        /// For every `k` in `idx`, the tile lanes of `x + k·xs` must be readable, the tile
        /// lanes of `out` readable and writable, and those of a [`Post::Mask`] row readable
        /// (lanes as [`ld`] addresses them).
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn spmm_tile<J: ColIndex, S: Values, const NV: usize, const MASKED: bool>(
            idx: &[J],
            val: S,
            init: Option<f32>,
            x: *const f32,
            xs: usize,
            out: *mut f32,
            m: Mask,
            post: Post,
        ) {
            let mut a = [zero(); NV];
            match init {
                Some(v) => a = [splat(v); NV],
                // SAFETY: the caller guarantees the tile lanes of `out` are readable.
                None => (0..NV).for_each(|l| a[l] = unsafe { ld::<MASKED>(out, l, NV, m) }),
            }
            let mut b = [zero(); NV];
            // SAFETY (for the `at` and `get_unchecked` calls below): every `i` is below
            // `idx.len()`, the length of the segment `val` covers.
            let col = |i: usize| unsafe { idx.get_unchecked(i).col() };
            let mut i = 0;
            while i + 2 <= idx.len() {
                // SAFETY: `i + 1 < idx.len()`.
                let (v0, v1) = unsafe { (splat(val.at(i)), splat(val.at(i + 1))) };
                // SAFETY: the caller guarantees the rows of every index in `idx` are readable.
                let (p0, p1) = unsafe { (x.add(col(i) * xs), x.add(col(i + 1) * xs)) };
                for l in 0..NV {
                    // SAFETY: as above, tile lanes only.
                    let (x0, x1) =
                        unsafe { (ld::<MASKED>(p0, l, NV, m), ld::<MASKED>(p1, l, NV, m)) };
                    a[l] = fma(v0, x0, a[l]);
                    b[l] = fma(v1, x1, b[l]);
                }
                i += 2;
            }
            if i < idx.len() {
                // SAFETY: `i < idx.len()`.
                let v = splat(unsafe { val.at(i) });
                // SAFETY: as above.
                let p = unsafe { x.add(col(i) * xs) };
                for l in 0..NV {
                    // SAFETY: as above.
                    a[l] = fma(v, unsafe { ld::<MASKED>(p, l, NV, m) }, a[l]);
                }
            }
            for l in 0..NV {
                let r = add(a[l], b[l]);
                let r = match post {
                    Post::Store => r,
                    Post::Relu => max0(r),
                    // SAFETY: the caller guarantees the mask row's tile lanes are readable.
                    Post::Mask(h, _) => keep_pos(r, unsafe { ld::<MASKED>(h, l, NV, m) }),
                };
                // SAFETY: the caller guarantees the tile lanes of `out` are writable.
                unsafe { st::<MASKED>(out, l, NV, m, r) };
            }
        }

        /// `y[j] = post(init_j + Σ_{e of row j} val[e] · x[idx[e]])` for the rows `rows`, where
        /// `init_j` is `bias[j]` (or 0 without a bias) and row `j`'s entries are cut into
        /// column blocks by `seg` (`parts + 1` offsets per row, see
        /// [`crate::csr::Segments`]). Block by block, so one block of input rows stays in L1.
        ///
        /// # Safety
        /// The CPU supports the module's features; `seg` holds `parts + 1` valid, increasing
        /// offsets into `idx` and `val` for every row of `rows`; `bias`, if given, has a value
        /// per row; `x` holds `max(idx) + 1` rows of stride `xs ≥ batch`, `y` holds the rows
        /// `rows` of stride `ys ≥ batch` and does not overlap `x`; a [`Post::Mask`] pointer
        /// holds the rows `rows` with its stride (≥ batch). No other thread writes the rows
        /// `rows` of `y` during the call.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(in crate::kernels) unsafe fn spmm<J: ColIndex, S: Values>(
            seg: &[u32],
            parts: usize,
            idx: &[J],
            val: S,
            bias: Option<&[f32]>,
            x: *const f32,
            xs: usize,
            y: *mut f32,
            ys: usize,
            batch: usize,
            rows: std::ops::Range<usize>,
            post: Post,
        ) {
            for (t, rem) in tiles(batch) {
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                for part in 0..parts {
                    let last = part + 1 == parts;
                    for j in rows.clone() {
                        let s = j * (parts + 1) + part;
                        let (lo, hi) = (seg[s] as usize, seg[s + 1] as usize);
                        let p = match post {
                            _ if !last => Post::Store,
                            // SAFETY: the caller guarantees the mask holds the rows `rows`.
                            Post::Mask(h, hs) => Post::Mask(unsafe { h.add(j * hs + t) }, hs),
                            other => other,
                        };
                        // An empty later block changes nothing unless it applies the epilogue.
                        if part > 0 && lo == hi && matches!(p, Post::Store) {
                            continue;
                        }
                        let init = (part == 0).then(|| bias.map_or(0.0, |b| b[j]));
                        let (ri, rv) = (&idx[lo..hi], val.part(lo, hi));
                        // SAFETY: tile `t..t + rem` lies within the first `batch` lanes of each
                        // row, which the caller guarantees exist in `x`, `y` and the mask.
                        unsafe {
                            let (xt, out) = (x.add(t), y.add(j * ys + t));
                            if nv == TV && !masked {
                                spmm_tile::<J, S, TV, false>(ri, rv, init, xt, xs, out, m, p)
                            } else {
                                by_width!(
                                    nv,
                                    masked,
                                    spmm_tile::<J, S>(ri, rv, init, xt, xs, out, m, p)
                                )
                            }
                        }
                    }
                }
            }
        }

        /// One output row's segment over one tile: `grad_e (+)= Σ_lanes dy[j] · x[idx_e]`,
        /// added to `grad` when `accumulate`, stored otherwise; and, given `bias`, the same for
        /// the bias gradient `Σ_lanes dy[j]` there.
        ///
        /// # Safety
        /// As [`spmm_tile`] for `dy` (one row) and the rows of `x` named by `idx`; `grad` holds
        /// `idx.len()` writable floats.
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn sddmm_tile<J: ColIndex, const NV: usize, const MASKED: bool>(
            idx: &[J],
            grad: *mut f32,
            dy: *const f32,
            x: *const f32,
            xs: usize,
            m: Mask,
            accumulate: bool,
            bias: Option<*mut f32>,
        ) {
            let mut d = [zero(); NV];
            for (l, dl) in d.iter_mut().enumerate() {
                // SAFETY: the caller guarantees the tile lanes of the `dy` row are readable.
                *dl = unsafe { ld::<MASKED>(dy, l, NV, m) };
            }
            if d.iter().all(|&v| is_zero(v)) {
                // A unit whose gradient is zero over the tile (a ReLU unit off for every sample:
                // work a dense product cannot skip): its gradients are +0, as the products would
                // give for finite inputs, so they are not computed.
                if !accumulate {
                    for i in 0..idx.len() {
                        // SAFETY: `i < idx.len()`, which the caller guarantees `grad` holds.
                        unsafe { *grad.add(i) = 0.0 };
                    }
                    if let Some(b) = bias {
                        // SAFETY: the caller guarantees `b` is writable.
                        unsafe { *b = 0.0 };
                    }
                }
                return;
            }
            if let Some(b) = bias {
                // The bias gradient is the sum of the row (masked lanes loaded as zero).
                let sum = hsum(d.iter().fold(zero(), |acc, &v| add(acc, v)));
                // SAFETY: the caller guarantees `b` is writable.
                unsafe { *b = if accumulate { *b + sum } else { sum } };
            }
            let put = |i: usize, v: f32| {
                // SAFETY: `i < idx.len()`, which the caller guarantees `grad` holds.
                unsafe { *grad.add(i) = if accumulate { *grad.add(i) + v } else { v } }
            };
            // Groups of 8 connections share one transposing reduction of their partial sums
            // (`base + c < 8 · groups ≤ idx.len()` below).
            let groups = idx.len() / 8;
            for gi in 0..groups {
                let base = 8 * gi;
                let mut rows = [x; 8];
                for (c, r) in rows.iter_mut().enumerate() {
                    // SAFETY: the caller guarantees the rows of every index in `idx` are readable.
                    *r = unsafe { x.add(idx.get_unchecked(base + c).col() * xs) };
                }
                let mut s = [zero(); 8];
                for l in 0..NV {
                    for c in 0..8 {
                        // SAFETY: as above, tile lanes only.
                        s[c] = fma(d[l], unsafe { ld::<MASKED>(rows[c], l, NV, m) }, s[c]);
                    }
                }
                // SAFETY: `base + 8 <= idx.len()`, which `grad` holds.
                unsafe { acc8(grad.add(base), s, accumulate) };
            }
            let done = 8 * groups;
            let pairs = (idx.len() - done) / 2;
            for p in 0..pairs {
                let (i0, i1) = (done + 2 * p, done + 2 * p + 1);
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
                put(i0, h0);
                put(i1, h1);
            }
            if (idx.len() - done) % 2 == 1 {
                let i = idx.len() - 1;
                // SAFETY: as above.
                let p = unsafe { x.add(idx[i].col() * xs) };
                let mut s = zero();
                for l in 0..NV {
                    // SAFETY: as above.
                    s = fma(d[l], unsafe { ld::<MASKED>(p, l, NV, m) }, s);
                }
                put(i, hsum(s));
            }
        }

        /// `grad[e] = Σ_b dy[j,b] · x[k,b]` for every stored entry `e = (j, k)` of the rows
        /// `rows`, whose entries `seg` cuts into column blocks as for [`spmm`]; those slots of
        /// `grad` are overwritten, and so are those of `bias` (`Σ_b dy[j,b]`) when given.
        ///
        /// # Safety
        /// The CPU supports the module's features; `seg` holds `parts + 1` valid, increasing
        /// offsets into `idx` for every row of `rows`, and `grad` as many floats as `idx`;
        /// `dy` holds the rows `rows` with stride `dys ≥ batch` and `x` holds `max(idx) + 1`
        /// rows of stride `xs ≥ batch`; `bias`, if given, holds a writable float per row. No
        /// other thread touches the slots of `grad` and `bias` the rows `rows` own during the
        /// call.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        pub(in crate::kernels) unsafe fn sddmm<J: ColIndex>(
            seg: &[u32],
            parts: usize,
            idx: &[J],
            dy: *const f32,
            dys: usize,
            x: *const f32,
            xs: usize,
            grad: *mut f32,
            bias: Option<*mut f32>,
            batch: usize,
            rows: std::ops::Range<usize>,
        ) {
            for (t, rem) in tiles(batch) {
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                let accumulate = t > 0;
                for part in 0..parts {
                    for j in rows.clone() {
                        let s = j * (parts + 1) + part;
                        let (lo, hi) = (seg[s] as usize, seg[s + 1] as usize);
                        // SAFETY: the caller guarantees a bias slot per row.
                        let b = bias.filter(|_| part == 0).map(|b| unsafe { b.add(j) });
                        if lo == hi && b.is_none() {
                            continue;
                        }
                        let ri = &idx[lo..hi];
                        // SAFETY: tile `t..t + rem` lies within the first `batch` lanes of each
                        // row, which the caller guarantees exist in `dy` and `x`; `lo..hi`
                        // are slots of `grad`.
                        unsafe {
                            let (d, xt, g) = (dy.add(j * dys + t), x.add(t), grad.add(lo));
                            if nv == TV && !masked {
                                sddmm_tile::<J, TV, false>(ri, g, d, xt, xs, m, accumulate, b)
                            } else {
                                by_width!(
                                    nv,
                                    masked,
                                    sddmm_tile::<J>(ri, g, d, xt, xs, m, accumulate, b)
                                )
                            }
                        }
                    }
                }
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
    /// A tile of 128 floats (8 vectors): TD3's batch of 100 in one tile, so each connection
    /// costs one index and value load for 7 vector products.
    const TILE: usize = 128;

    /// Whether every bit of `v` is zero (all lanes `+0.0`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn is_zero(v: V) -> bool {
        let i = _mm512_castps_si512(v);
        _mm512_test_epi32_mask(i, i) == 0
    }

    /// `max(v, 0)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn max0(v: V) -> V {
        _mm512_max_ps(v, _mm512_setzero_ps())
    }

    /// `h > 0 ? v : 0`, lane by lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn keep_pos(v: V, h: V) -> V {
        _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(h, _mm512_setzero_ps()), v)
    }

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

    /// Adds (or, unless `accumulate`, stores) the horizontal sum of each of the 8 vectors `s`
    /// at the matching one of the 8 floats at `g`, by a transposing reduction (three folding
    /// levels shared across the vectors).
    ///
    /// # Safety
    /// 8 floats at `g` must be readable and writable.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn acc8(g: *mut f32, s: [V; 8], accumulate: bool) {
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
        // SAFETY: the caller guarantees 8 writable floats at `g`.
        unsafe {
            let sums = if accumulate {
                _mm256_add_ps(_mm256_loadu_ps(g), sums)
            } else {
                sums
            };
            _mm256_storeu_ps(g, sums);
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
    /// A tile of 56 floats (7 vectors): two accumulator sets of 7 and the broadcast values fit
    /// in 16 registers.
    const TILE: usize = 56;

    /// Whether every bit of `v` is zero (all lanes `+0.0`).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn is_zero(v: V) -> bool {
        let i = _mm256_castps_si256(v);
        _mm256_testz_si256(i, i) == 1
    }

    /// `max(v, 0)`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn max0(v: V) -> V {
        _mm256_max_ps(v, _mm256_setzero_ps())
    }

    /// `h > 0 ? v : 0`, lane by lane.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn keep_pos(v: V, h: V) -> V {
        _mm256_and_ps(v, _mm256_cmp_ps::<_CMP_GT_OQ>(h, _mm256_setzero_ps()))
    }

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

    /// Adds (or, unless `accumulate`, stores) the horizontal sum of each of the 8 vectors `s`
    /// at the matching one of the 8 floats at `g`.
    ///
    /// # Safety
    /// 8 floats at `g` must be readable and writable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn acc8(g: *mut f32, s: [V; 8], accumulate: bool) {
        // Pairwise horizontal adds: [a b c d] partial sums per 128-bit half, for 0..4 and 4..8.
        let h0 = _mm256_hadd_ps(_mm256_hadd_ps(s[0], s[1]), _mm256_hadd_ps(s[2], s[3]));
        let h1 = _mm256_hadd_ps(_mm256_hadd_ps(s[4], s[5]), _mm256_hadd_ps(s[6], s[7]));
        // Low halves of both plus high halves of both: the 8 totals in order.
        let sums = _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(h0, h1),
            _mm256_permute2f128_ps::<0x31>(h0, h1),
        );
        // SAFETY: the caller guarantees 8 writable floats at `g`.
        unsafe {
            let sums = if accumulate {
                _mm256_add_ps(_mm256_loadu_ps(g), sums)
            } else {
                sums
            };
            _mm256_storeu_ps(g, sums);
        }
    }

    simd_kernels!("avx2,fma");
}
