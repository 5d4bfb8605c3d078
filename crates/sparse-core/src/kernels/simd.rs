//! The SIMD sparse kernels' shared body, written once against a handful of vector helpers and
//! expanded for each instruction set by the `simd_kernels!` macro: AVX-512 and AVX2+FMA in
//! [`super::x86`] (x86-64), NEON in [`super::neon`] (AArch64). Each instruction set's module
//! defines the helpers for its register width; every function carries `#[target_feature]`, so
//! the helpers inline into the kernels and nothing runs on a CPU without the features (the
//! dispatcher in [`super`] checks before it picks an implementation).
//!
//! The layout the kernels are built for (the tuning notes are in [`super::x86`]):
//! - activations are feature-major with 64-byte aligned rows (see [`crate::Activations`]);
//! - the batch is cut into tiles of up to 8 vectors (the instruction set's `TILE`), split
//!   evenly, so each connection's index and value are loaded once per tile;
//! - within a tile, the inputs are taken in blocks of [`crate::csr::Segments::BLOCK`] rows and
//!   every output row takes its connections from one block before the next block starts, so the
//!   block's input rows stay in L1;
//! - connections are unrolled twice with two independent accumulator sets;
//! - the last, partial vector of a tile is stored masked, so the kernels write only the first
//!   `batch` lanes of each row (the padding contract of [`crate::Activations`]); input rows
//!   (and outputs read back) are loaded as whole vectors, padding lanes included, because a
//!   masked load costs more: at batch 100 (7 vectors, the last with 4 live lanes) the AVX-512
//!   kernels ran 10–20% slower than at batch 112 (7 full vectors) before this. Whatever the
//!   padding holds stays out of the results: `spmm`'s lanes never mix and dead ones are not
//!   stored, and `sddmm`, whose dot products sum across lanes, multiplies the last vector with
//!   a masked FMA (`fmam`).
//!
//! Two kernels cover the three products:
//! - `spmm`: `y[j] = post(init_j + Σ_e val_e · x[idx_e])` over a compressed row structure.
//!   Forward runs it on the CSR arrays with the bias as `init` (and a fused ReLU as `post` in
//!   hidden layers); backward-data runs it on the transposed structure
//!   ([`crate::csr::Transposed`]) with values gathered through its permutation, `init = 0` and
//!   the ReLU derivative of the layer below as `post` — a gather, with no scattered writes.
//! - `sddmm`: `grad_e = Σ_b dy[j,b] · x[k,b]` at the stored positions (and the bias gradient
//!   `Σ_b dy[j,b]` in the same pass), each tile's partial dot products reduced horizontally
//!   eight connections at a time.
//!
//! A third, `backward` (AVX-512 only, expanded by `simd_backward!`), fuses the weight gradient
//! into backward-data's pass over the transposed structure: each connection's vectors of `dy`
//! feed both its input-gradient multiply-adds and its dot product with the input's tile, which
//! stays in registers, so the two products load `dy` once instead of `dy` and `x` once each. It
//! adds and reduces in the same order as `spmm` and `sddmm`, so its results are theirs.
//!
//! All take a range of output rows, so the rows of one product can be split between threads
//! without changing any result.

/// Calls `$f::<$g, NV, MASKED>(args)` (or `$f::<NV, MASKED>(args)`) for the run-time
/// `(nv, masked)` of a partial tile (`1 ≤ nv ≤ 8` vectors, the last one masked or not).
macro_rules! by_width {
    ($nv:expr, $masked:expr, $f:ident($($arg:expr),*)) => {
        match ($nv, $masked) {
            (1, false) => $f::<1, false>($($arg),*),
            (1, true) => $f::<1, true>($($arg),*),
            (2, false) => $f::<2, false>($($arg),*),
            (2, true) => $f::<2, true>($($arg),*),
            (3, false) => $f::<3, false>($($arg),*),
            (3, true) => $f::<3, true>($($arg),*),
            (4, false) => $f::<4, false>($($arg),*),
            (4, true) => $f::<4, true>($($arg),*),
            (5, false) => $f::<5, false>($($arg),*),
            (5, true) => $f::<5, true>($($arg),*),
            (6, false) => $f::<6, false>($($arg),*),
            (6, true) => $f::<6, true>($($arg),*),
            (7, false) => $f::<7, false>($($arg),*),
            (7, true) => $f::<7, true>($($arg),*),
            (8, false) => $f::<8, false>($($arg),*),
            (8, true) => $f::<8, true>($($arg),*),
            _ => unreachable!("a tile holds at most 8 vectors"),
        }
    };
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

/// The operands of `spmm`: `y[j] = post(init_j + Σ_{e of row j} val[e] · x[idx[e]])`, with
/// `init_j` = `bias[j]` (or 0 without a bias) and row `j`'s entries cut into column blocks by
/// `seg` (`parts + 1` offsets per row, see [`crate::csr::Segments`]).
///
/// Contract for the rows a call covers: `seg` holds `parts + 1` valid, increasing offsets into
/// `idx` and `val` for each of them; `bias`, if given, has a value per row; `x` holds
/// `max(idx) + 1` rows of stride `xs ≥ batch`, `y` those rows with stride `ys ≥ batch`, not
/// overlapping `x`, and a [`Post::Mask`] pointer those rows with its stride (≥ batch); in all
/// three, the lanes up to `batch` rounded up to a whole vector are readable (as in
/// [`crate::Activations`]).
#[derive(Clone, Copy)]
pub(in crate::kernels) struct SpmmArgs<'a, J, S> {
    pub seg: &'a [u32],
    pub parts: usize,
    pub idx: &'a [J],
    pub val: S,
    pub bias: Option<&'a [f32]>,
    pub x: *const f32,
    pub xs: usize,
    pub y: *mut f32,
    pub ys: usize,
    pub batch: usize,
    pub post: Post,
}

/// The operands of `sddmm`: `grad[e] = Σ_b dy[j,b] · x[k,b]` for each stored entry
/// `e = (j, k)`, whose rows `seg` cuts into column blocks as for [`SpmmArgs`], and
/// `bias[j] = Σ_b dy[j,b]` when given.
///
/// Contract for the rows a call covers: `seg` holds `parts + 1` valid, increasing offsets into
/// `idx` for each of them, and `grad` as many floats as `idx`; `dy` holds those rows with
/// stride `dys ≥ batch`, and `x` holds `max(idx) + 1` rows of stride `xs ≥ batch`, readable up
/// to `batch` rounded up to a whole vector; `bias`, if given, holds a writable float per row.
#[derive(Clone, Copy)]
pub(in crate::kernels) struct SddmmArgs<'a, J> {
    pub seg: &'a [u32],
    pub parts: usize,
    pub idx: &'a [J],
    pub dy: *const f32,
    pub dys: usize,
    pub x: *const f32,
    pub xs: usize,
    pub grad: *mut f32,
    pub bias: Option<*mut f32>,
    pub batch: usize,
}

/// The operands of `backward`, which fuses the weight gradient into backward-data: over the
/// transposed structure (row `k` lists the connections `e = (j, k)` of input `k`, value
/// `values[perm[e]]`, cut into blocks of `j` by `seg` as for [`SpmmArgs`]),
/// `dx[k] = post(Σ_e values[perm[e]] · dy[j])` and `grad[perm[e]] = Σ_b dy[j,b] · x[k,b]`. Each
/// loaded vector of `dy` feeds both products, so a connection costs one load per two
/// multiply-adds instead of one per one.
///
/// Contract for the rows a call covers: `seg` holds `parts + 1` valid, increasing offsets into
/// `idx` and `perm` for each of them; every `perm` entry is below `values.len()` and is a slot
/// of `grad`, no two entries of the covered rows sharing one; `dy` holds `max(idx) + 1` rows of
/// stride `dys ≥ batch`, `x` and `dx` (not overlapping `dy` or `x`) the covered rows with
/// strides `xs`, `dxs ≥ batch`, and a [`Post::Mask`] pointer those rows with its stride; in all,
/// the lanes up to `batch` rounded up to a whole vector are readable.
#[derive(Clone, Copy)]
// Only AVX-512 has the kernel (see `simd_backward!`); elsewhere the type only names the slot.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(in crate::kernels) struct BackwardArgs<'a> {
    pub seg: &'a [u32],
    pub parts: usize,
    pub idx: &'a [u32],
    pub perm: &'a [u32],
    pub values: &'a [f32],
    pub dy: *const f32,
    pub dys: usize,
    pub x: *const f32,
    pub xs: usize,
    pub dx: *mut f32,
    pub dxs: usize,
    pub grad: *mut f32,
    pub batch: usize,
    pub post: Post,
}

/// Expands the kernels for one instruction set. The invoking module defines `V` (vector), `W`
/// (lanes), `TILE` (floats per batch tile, at most 8 vectors), `Mask` (the live lanes of a
/// tile's last vector, as `mask(n)` makes it), and the helpers `zero`, `splat`, `add`, `fma`,
/// `fmam`, `is_zero`, `max0`, `keep_pos`, `mask`, `load`, `loadm`, `store`, `storem`, `hsum`,
/// `hsum2`, `acc8`, all with the feature list `$feat`.
macro_rules! simd_kernels {
    ($feat:literal) => {
        use crate::csr::ColIndex;
        use crate::kernels::simd::{Post, SddmmArgs, SpmmArgs, Values};

        /// Vectors per full tile.
        const TV: usize = TILE / W;

        /// Floats per full batch tile.
        pub(in crate::kernels) const TILE_FLOATS: usize = TILE;

        /// `spmm`'s inner loop stripped to its input loads, for [`crate::kernels::load_bound`]:
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

        /// Loads vector `l` of a tile starting at `p` whole, live lanes or not (why: the module
        /// documentation). What the dead lanes hold must not matter to the caller: `spmm`
        /// stores only live lanes, and `sddmm` multiplies them through [`fml`].
        ///
        /// # Safety
        /// All `W` lanes of vector `l` must be readable.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn ldw(p: *const f32, l: usize) -> V {
            // SAFETY: forwarded from the caller's contract.
            unsafe { load(p.add(l * W)) }
        }

        /// `c + a·b` for vector `l` of a tile of `nv`; on the last one, when `MASKED`, only on
        /// the live lanes (`c` elsewhere), so whatever a whole load put in `b`'s dead lanes,
        /// infinities and NaN included, stays out of the sums.
        #[inline]
        #[target_feature(enable = $feat)]
        fn fml<const MASKED: bool>(a: V, b: V, c: V, l: usize, nv: usize, m: Mask) -> V {
            if MASKED && l + 1 == nv {
                fmam(a, b, c, m)
            } else {
                fma(a, b, c)
            }
        }

        /// A row tile's epilogue: `post(a + b)` stored into the tile lanes of `out`.
        ///
        /// # Safety
        /// The tile lanes of `out` (as [`st`] addresses them) must be writable and the whole
        /// vectors of a [`Post::Mask`] row readable.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn finish<const NV: usize, const MASKED: bool>(
            a: &[V; NV],
            b: &[V; NV],
            post: Post,
            out: *mut f32,
            m: Mask,
        ) {
            for l in 0..NV {
                let r = add(a[l], b[l]);
                let r = match post {
                    Post::Store => r,
                    Post::Relu => max0(r),
                    // SAFETY: the caller guarantees the mask row's whole vectors are readable.
                    Post::Mask(h, _) => keep_pos(r, unsafe { ldw(h, l) }),
                };
                // SAFETY: the caller guarantees the tile lanes of `out` are writable.
                unsafe { st::<MASKED>(out, l, NV, m, r) };
            }
        }

        /// What row `j`'s segment of a block applies before its store, for the tile from lane
        /// `t`: `post` on the `last` block (a mask moved to row `j`'s tile), a plain store before.
        ///
        /// # Safety
        /// A [`Post::Mask`] pointer must hold row `j` (the result stays inside its allocation).
        #[inline]
        unsafe fn row_post(post: Post, last: bool, j: usize, t: usize) -> Post {
            match post {
                _ if !last => Post::Store,
                // SAFETY: the caller guarantees the mask holds row `j`.
                Post::Mask(h, hs) => Post::Mask(unsafe { h.add(j * hs + t) }, hs),
                other => other,
            }
        }

        /// One output row's segment over one tile of `NV` vectors:
        /// `out = start + Σ val · x[idx]`, where `start` is `init` (first block) or the tile
        /// already in `out` (later blocks); `post` is applied before the store (the driver
        /// passes [`Post::Store`] for all but the last block).
        ///
        /// # Safety
        /// For every `k` in `idx`, the tile's whole vectors at `x + k·xs` must be readable, those
        /// of `out` readable and its tile lanes (as [`st`] addresses them) writable, and the
        /// whole vectors of a [`Post::Mask`] row readable.
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
                // SAFETY: the caller guarantees the tile's whole vectors of `out` are readable.
                None => (0..NV).for_each(|l| a[l] = unsafe { ldw(out, l) }),
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
                    // SAFETY: as above, the tile's whole vectors.
                    let (x0, x1) = unsafe { (ldw(p0, l), ldw(p1, l)) };
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
                    a[l] = fma(v, unsafe { ldw(p, l) }, a[l]);
                }
            }
            // SAFETY: forwarded from the caller's contract.
            unsafe { finish::<NV, MASKED>(&a, &b, post, out, m) };
        }

        /// `y[j] = post(init_j + Σ_{e of row j} val[e] · x[idx[e]])` for the rows `rows` (the
        /// operands as [`SpmmArgs`] describes them), block by block, so one block of input rows
        /// stays in L1.
        ///
        /// # Safety
        /// The CPU supports the module's features; `a` meets the contract of [`SpmmArgs`] for
        /// the rows `rows`, and no other thread writes those rows of `y` during the call.
        #[target_feature(enable = $feat)]
        pub(in crate::kernels) unsafe fn spmm<J: ColIndex, S: Values>(
            a: &SpmmArgs<'_, J, S>,
            rows: std::ops::Range<usize>,
        ) {
            for (t, rem) in tiles(a.batch) {
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                // SAFETY: forwarded from the caller's contract, for the tile `t..t + rem`.
                unsafe {
                    if nv == TV && !masked {
                        spmm_rows::<J, S, TV, false>(a, t, m, rows.clone())
                    } else {
                        by_width!(nv, masked, spmm_rows::<J, S>(a, t, m, rows.clone()))
                    }
                }
            }
        }

        /// [`spmm`] over the tile of `NV` vectors from lane `t` (the last vector masked by `m`
        /// when `MASKED`) for the rows `rows`: the tile's width is dispatched once, so each
        /// segment's [`spmm_tile`] is a direct call the compiler can inline.
        ///
        /// # Safety
        /// As [`spmm`], for a tile within the first `batch` lanes.
        #[target_feature(enable = $feat)]
        unsafe fn spmm_rows<J: ColIndex, S: Values, const NV: usize, const MASKED: bool>(
            a: &SpmmArgs<'_, J, S>,
            t: usize,
            m: Mask,
            rows: std::ops::Range<usize>,
        ) {
            let parts = a.parts;
            for part in 0..parts {
                let last = part + 1 == parts;
                for j in rows.clone() {
                    let s = j * (parts + 1) + part;
                    let (lo, hi) = (a.seg[s] as usize, a.seg[s + 1] as usize);
                    // SAFETY: the caller guarantees the mask holds the rows `rows`.
                    let p = unsafe { row_post(a.post, last, j, t) };
                    // An empty later block changes nothing unless it applies the epilogue.
                    if part > 0 && lo == hi && matches!(p, Post::Store) {
                        continue;
                    }
                    let init = (part == 0).then(|| a.bias.map_or(0.0, |b| b[j]));
                    let (ri, rv) = (&a.idx[lo..hi], a.val.part(lo, hi));
                    // SAFETY: the tile lies within the first `batch` lanes of each row, which
                    // the caller guarantees exist in `x`, `y` and the mask.
                    unsafe {
                        let (xt, out) = (a.x.add(t), a.y.add(j * a.ys + t));
                        spmm_tile::<J, S, NV, MASKED>(ri, rv, init, xt, a.xs, out, m, p)
                    }
                }
            }
        }

        /// One row (of `dy`, or the input of the fused backward pass) over a tile of `NV`
        /// vectors, the dead lanes of a masked last vector loaded as zero.
        ///
        /// # Safety
        /// The tile lanes at `row` (as [`ld`] addresses them) must be readable.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn row_tile<const NV: usize, const MASKED: bool>(
            row: *const f32,
            m: Mask,
        ) -> [V; NV] {
            let mut d = [zero(); NV];
            for (l, dl) in d.iter_mut().enumerate() {
                // SAFETY: forwarded from the caller's contract.
                *dl = unsafe { ld::<MASKED>(row, l, NV, m) };
            }
            d
        }

        /// The bias gradient's share of one tile: `*b (+)= Σ d` (added when `accumulate`),
        /// unchanged when accumulating over a `dead` tile (all bits zero) and 0 when storing one.
        ///
        /// # Safety
        /// `b` must be readable and writable.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn bias_tile<const NV: usize>(
            d: &[V; NV],
            dead: bool,
            b: *mut f32,
            accumulate: bool,
        ) {
            // SAFETY: the caller guarantees `b` is readable and writable.
            unsafe {
                if dead {
                    if !accumulate {
                        *b = 0.0;
                    }
                } else {
                    let sum = hsum(d.iter().fold(zero(), |acc, &v| add(acc, v)));
                    *b = if accumulate { *b + sum } else { sum };
                }
            }
        }

        /// One output row's segment over one tile: `grad_e (+)= Σ_lanes dy[j] · x[idx_e]`,
        /// added to `grad` when `accumulate`, stored otherwise; and, given `bias`, the same for
        /// the bias gradient `Σ_lanes dy[j]` there.
        ///
        /// # Safety
        /// The tile lanes of `dy` (one row; as [`ld`] addresses them) and the tile's whole
        /// vectors of the rows of `x` named by `idx` must be readable; `grad` holds `idx.len()`
        /// writable floats.
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
            // SAFETY: the caller guarantees the tile lanes of the `dy` row are readable.
            let d = unsafe { row_tile::<NV, MASKED>(dy, m) };
            let dead = d.iter().all(|&v| is_zero(v));
            if let Some(b) = bias {
                // SAFETY: the caller guarantees `b` is writable.
                unsafe { bias_tile(&d, dead, b, accumulate) };
            }
            if dead {
                // A unit whose gradient is zero over the tile (a ReLU unit off for every sample:
                // work a dense product cannot skip): its gradients are +0, as the products would
                // give for finite inputs, so they are not computed.
                if !accumulate {
                    for i in 0..idx.len() {
                        // SAFETY: `i < idx.len()`, which the caller guarantees `grad` holds.
                        unsafe { *grad.add(i) = 0.0 };
                    }
                }
                return;
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
                        // SAFETY: as above, the tile's whole vectors.
                        s[c] = fml::<MASKED>(d[l], unsafe { ldw(rows[c], l) }, s[c], l, NV, m);
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
                    // SAFETY: as above, the tile's whole vectors.
                    let (x0, x1) = unsafe { (ldw(p0, l), ldw(p1, l)) };
                    s0 = fml::<MASKED>(d[l], x0, s0, l, NV, m);
                    s1 = fml::<MASKED>(d[l], x1, s1, l, NV, m);
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
                    s = fml::<MASKED>(d[l], unsafe { ldw(p, l) }, s, l, NV, m);
                }
                put(i, hsum(s));
            }
        }

        /// `grad[e] = Σ_b dy[j,b] · x[k,b]` for every stored entry `e = (j, k)` of the rows
        /// `rows` (the operands as [`SddmmArgs`] describes them); those slots of `grad` are
        /// overwritten, and so are those of `bias` (`Σ_b dy[j,b]`) when given.
        ///
        /// # Safety
        /// The CPU supports the module's features; `a` meets the contract of [`SddmmArgs`] for
        /// the rows `rows`, and no other thread touches the slots of `grad` and `bias` those
        /// rows own during the call.
        #[target_feature(enable = $feat)]
        pub(in crate::kernels) unsafe fn sddmm<J: ColIndex>(
            a: &SddmmArgs<'_, J>,
            rows: std::ops::Range<usize>,
        ) {
            for (t, rem) in tiles(a.batch) {
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                // SAFETY: forwarded from the caller's contract, for the tile `t..t + rem`.
                unsafe {
                    if nv == TV && !masked {
                        sddmm_rows::<J, TV, false>(a, t, m, rows.clone())
                    } else {
                        by_width!(nv, masked, sddmm_rows::<J>(a, t, m, rows.clone()))
                    }
                }
            }
        }

        /// [`sddmm`] over the tile of `NV` vectors from lane `t` (the last vector masked by `m`
        /// when `MASKED`) for the rows `rows`, with the tile's width dispatched once (as
        /// [`spmm_rows`]).
        ///
        /// # Safety
        /// As [`sddmm`], for a tile within the first `batch` lanes.
        #[target_feature(enable = $feat)]
        unsafe fn sddmm_rows<J: ColIndex, const NV: usize, const MASKED: bool>(
            a: &SddmmArgs<'_, J>,
            t: usize,
            m: Mask,
            rows: std::ops::Range<usize>,
        ) {
            let parts = a.parts;
            let accumulate = t > 0;
            for part in 0..parts {
                for j in rows.clone() {
                    let s = j * (parts + 1) + part;
                    let (lo, hi) = (a.seg[s] as usize, a.seg[s + 1] as usize);
                    // SAFETY: the caller guarantees a bias slot per row.
                    let b = a.bias.filter(|_| part == 0).map(|b| unsafe { b.add(j) });
                    if lo == hi && b.is_none() {
                        continue;
                    }
                    let ri = &a.idx[lo..hi];
                    // SAFETY: the tile lies within the first `batch` lanes of each row, which
                    // the caller guarantees exist in `dy` and `x`; `lo..hi` are slots of
                    // `grad`.
                    unsafe {
                        let (d, xt, g) = (a.dy.add(j * a.dys + t), a.x.add(t), a.grad.add(lo));
                        sddmm_tile::<J, NV, MASKED>(ri, g, d, xt, a.xs, m, accumulate, b)
                    }
                }
            }
        }
    };
}

/// Expands, inside a module that has expanded [`simd_kernels!`] with the same feature list, the
/// fused weight-gradient-and-backward-data kernel (`backward`, operands in [`BackwardArgs`]) and
/// the bias sums it needs (`bias_sums`). Only for AVX-512: a connection's step keeps the input's
/// tile, two input-gradient accumulator sets and four dot products in registers (25 of 7-vector
/// tiles), which 32 registers hold and AVX2's 16 do not. Measured on the 256×256 layer at
/// density 0.5, batch 100: AVX2 took 251 µs fused against 207 µs for its two kernels apart (which
/// AVX2 therefore keeps); AVX-512 took 127 µs against 144. With eight dot products at a time
/// AVX-512 spilled (155 µs). NEON, whose 32 registers would hold it at four lanes, was not
/// measured, so it keeps the kernels apart too.
#[cfg(target_arch = "x86_64")]
macro_rules! simd_backward {
    ($feat:literal) => {
        use crate::kernels::simd::BackwardArgs;

        /// `bias[j] = Σ_b dy[j,b]` for the rows `rows`, as [`sddmm`] computes it beside the
        /// weight gradient (the same sums, bit for bit), for [`backward`], which does not walk
        /// the rows of `dy`.
        ///
        /// # Safety
        /// The CPU supports the module's features; `dy` holds the rows `rows` with stride
        /// `dys ≥ batch`, readable up to `batch` rounded up to a whole vector, and `bias` a
        /// writable float per row.
        #[target_feature(enable = $feat)]
        pub(in crate::kernels) unsafe fn bias_sums(
            dy: *const f32,
            dys: usize,
            bias: *mut f32,
            batch: usize,
            rows: std::ops::Range<usize>,
        ) {
            for (t, rem) in tiles(batch) {
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                // SAFETY: forwarded from the caller's contract, for the tile `t..t + rem`.
                unsafe {
                    by_width!(
                        nv,
                        masked,
                        bias_rows(dy.add(t), dys, bias, m, t > 0, rows.clone())
                    )
                }
            }
        }

        /// [`bias_sums`] over one tile of `NV` vectors.
        ///
        /// # Safety
        /// As [`bias_sums`], for a tile within the first `batch` lanes starting at `dy`.
        #[target_feature(enable = $feat)]
        unsafe fn bias_rows<const NV: usize, const MASKED: bool>(
            dy: *const f32,
            dys: usize,
            bias: *mut f32,
            m: Mask,
            accumulate: bool,
            rows: std::ops::Range<usize>,
        ) {
            for j in rows {
                // SAFETY: forwarded from the caller's contract for row `j`.
                unsafe {
                    let d = row_tile::<NV, MASKED>(dy.add(j * dys), m);
                    let dead = d.iter().all(|&v| is_zero(v));
                    bias_tile(&d, dead, bias.add(j), accumulate);
                }
            }
        }

        /// One input's segment over one tile of `NV` vectors (see [`BackwardArgs`]): for each
        /// connection `e` to output `j = idx[e]`, the loaded vectors of `dy[j]` go into both the
        /// input gradient, `out = start + Σ values[perm[e]] · dy[j]` (`start` 0 on the first
        /// block, the tile already in `out` on later ones; `post` applied before the store), and
        /// the dot product `Σ_lanes dy[j] · x`, stored (or, when `ACCUMULATE`, added) at
        /// `grad[perm[e]]`. The input gradient takes its connections in [`spmm_tile`]'s order and
        /// each dot product is reduced as in [`sddmm_tile`], so the results are theirs, bit for
        /// bit. (`ACCUMULATE` is a constant: as a run-time flag it made the kernel some 40%
        /// slower, measured at density 0.5.)
        ///
        /// # Safety
        /// The tile's vectors at `x` (as [`ld`] addresses them), the whole vectors of the rows of
        /// `dy` that `idx` names and of `out` and of a [`Post::Mask`] row must be readable and the
        /// tile lanes of `out` writable; every `perm` entry indexes `values` and a writable slot
        /// of `grad` that no other entry of the segment shares.
        #[inline]
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn backward_tile<const NV: usize, const MASKED: bool, const ACCUMULATE: bool>(
            idx: &[u32],
            perm: &[u32],
            values: &[f32],
            first: bool,
            x: *const f32,
            dy: *const f32,
            dys: usize,
            out: *mut f32,
            grad: *mut f32,
            m: Mask,
            post: Post,
        ) {
            // The input's tile stays in registers; masked, so the dead lanes of its last
            // vector are zero (what `fml` needs of its first operand).
            // SAFETY: the caller guarantees the tile's vectors at `x` are readable.
            let xv = unsafe { row_tile::<NV, MASKED>(x, m) };
            let (mut a, mut b) = ([zero(); NV], [zero(); NV]);
            if !first {
                // SAFETY: the caller guarantees the tile's whole vectors of `out` are readable.
                (0..NV).for_each(|l| a[l] = unsafe { ldw(out, l) });
            }
            // SAFETY (for the `get_unchecked` calls below): every `i` is below `idx.len()`, and
            // `perm` is as long (the caller's segment).
            let slot = |i: usize| unsafe { *perm.get_unchecked(i) as usize };
            // SAFETY: as above; `slot(i)` indexes `values` (the caller's contract).
            let value = |i: usize| unsafe { *values.get_unchecked(slot(i)) };
            // SAFETY: as above; the caller guarantees the rows of `dy` named by `idx`.
            let row = |i: usize| unsafe { dy.add(*idx.get_unchecked(i) as usize * dys) };
            let put = |i: usize, v: f32| {
                // SAFETY: the caller guarantees `slot(i)` is a writable slot of `grad`.
                unsafe {
                    let g = grad.add(slot(i));
                    *g = if ACCUMULATE { *g + v } else { v };
                }
            };
            // Connection `c` of a run adds into `a` when even and `b` when odd, as `spmm_tile`
            // takes them in pairs; runs start at even offsets. Dot products go four at a time
            // (beside the input's tile and two accumulator sets, eight spilled), through the
            // reduction of eight with four zero vectors, which reduces each as `sddmm_tile` does.
            let n = idx.len();
            let groups = n / 4;
            for gi in 0..groups {
                let base = 4 * gi;
                let mut s = [zero(); 8];
                for c in 0..4 {
                    let (v, p) = (splat(value(base + c)), row(base + c));
                    for l in 0..NV {
                        // SAFETY: the row's whole vectors are readable (above).
                        let d = unsafe { ldw(p, l) };
                        if c % 2 == 0 {
                            a[l] = fma(v, d, a[l]);
                        } else {
                            b[l] = fma(v, d, b[l]);
                        }
                        s[c] = fml::<MASKED>(xv[l], d, s[c], l, NV, m);
                    }
                }
                let mut sums = [0.0f32; 8];
                // SAFETY: `sums` holds 8 floats.
                unsafe { acc8(sums.as_mut_ptr(), s, false) };
                for (c, &v) in sums[..4].iter().enumerate() {
                    put(base + c, v);
                }
            }
            let mut i = 4 * groups;
            while i + 2 <= n {
                let (v0, v1) = (splat(value(i)), splat(value(i + 1)));
                let (p0, p1) = (row(i), row(i + 1));
                let (mut s0, mut s1) = (zero(), zero());
                for l in 0..NV {
                    // SAFETY: as above.
                    let (d0, d1) = unsafe { (ldw(p0, l), ldw(p1, l)) };
                    a[l] = fma(v0, d0, a[l]);
                    b[l] = fma(v1, d1, b[l]);
                    s0 = fml::<MASKED>(xv[l], d0, s0, l, NV, m);
                    s1 = fml::<MASKED>(xv[l], d1, s1, l, NV, m);
                }
                let (h0, h1) = hsum2(s0, s1);
                put(i, h0);
                put(i + 1, h1);
                i += 2;
            }
            if i < n {
                let (v, p) = (splat(value(i)), row(i));
                let mut s = zero();
                for l in 0..NV {
                    // SAFETY: as above.
                    let d = unsafe { ldw(p, l) };
                    a[l] = fma(v, d, a[l]);
                    s = fml::<MASKED>(xv[l], d, s, l, NV, m);
                }
                put(i, hsum(s));
            }
            // SAFETY: forwarded from the caller's contract.
            unsafe { finish::<NV, MASKED>(&a, &b, post, out, m) };
        }

        /// The weight gradient and backward-data in one pass (see [`BackwardArgs`]) for the
        /// transposed rows (inputs) `rows`, block by block as [`spmm`]; those rows of `dx` and
        /// their connections' slots of `grad` are overwritten.
        ///
        /// # Safety
        /// The CPU supports the module's features; `a` meets the contract of [`BackwardArgs`] for
        /// the rows `rows`, and no other thread touches those rows of `dx` or their slots of
        /// `grad` during the call.
        #[target_feature(enable = $feat)]
        pub(in crate::kernels) unsafe fn backward(
            a: &BackwardArgs<'_>,
            rows: std::ops::Range<usize>,
        ) {
            for (t, rem) in tiles(a.batch) {
                let nv = rem.div_ceil(W);
                let masked = rem % W != 0;
                let m = mask(rem - (nv - 1) * W);
                // SAFETY: forwarded from the caller's contract, for the tile `t..t + rem`.
                unsafe {
                    if nv == TV && !masked {
                        backward_rows::<TV, false>(a, t, m, rows.clone())
                    } else {
                        by_width!(nv, masked, backward_rows(a, t, m, rows.clone()))
                    }
                }
            }
        }

        /// [`backward`] over the tile of `NV` vectors from lane `t`, the width dispatched once
        /// (as [`spmm_rows`]).
        ///
        /// # Safety
        /// As [`backward`], for a tile within the first `batch` lanes.
        #[target_feature(enable = $feat)]
        unsafe fn backward_rows<const NV: usize, const MASKED: bool>(
            a: &BackwardArgs<'_>,
            t: usize,
            m: Mask,
            rows: std::ops::Range<usize>,
        ) {
            let parts = a.parts;
            for part in 0..parts {
                let last = part + 1 == parts;
                for k in rows.clone() {
                    let s = k * (parts + 1) + part;
                    let (lo, hi) = (a.seg[s] as usize, a.seg[s + 1] as usize);
                    // SAFETY: the caller guarantees the mask holds the rows `rows`.
                    let p = unsafe { row_post(a.post, last, k, t) };
                    // An empty later block changes nothing unless it applies the epilogue.
                    if part > 0 && lo == hi && matches!(p, Post::Store) {
                        continue;
                    }
                    let (ri, rp) = (&a.idx[lo..hi], &a.perm[lo..hi]);
                    // SAFETY: the tile lies within the first `batch` lanes of each row, which
                    // the caller guarantees exist in `x`, `dy`, `dx` and the mask; the
                    // segment's slots of `grad` are its own.
                    unsafe {
                        let (xk, dyt) = (a.x.add(k * a.xs + t), a.dy.add(t));
                        let out = a.dx.add(k * a.dxs + t);
                        // Later tiles add to the gradients the first one stored.
                        let tile = if t > 0 {
                            backward_tile::<NV, MASKED, true>
                        } else {
                            backward_tile::<NV, MASKED, false>
                        };
                        tile(
                            ri,
                            rp,
                            a.values,
                            part == 0,
                            xk,
                            dyt,
                            a.dys,
                            out,
                            a.grad,
                            m,
                            p,
                        )
                    }
                }
            }
        }
    };
}
