//! The sparse forward product for a batch of one: acting in an environment, evaluating a policy,
//! serving an exported actor.
//!
//! The batch kernels of [`super::x86`] vectorise across the batch: at batch 1 each connection
//! becomes one masked vector multiply-add whose 15 idle lanes still cost the instruction, and
//! each row's two accumulator chains leave the FMA units waiting on their latency (measured on
//! the Hopper actor at the paper's density: no faster than the dense actor). Here the lanes run
//! across a row's connections instead: 8 column indices are loaded at a time, their inputs
//! gathered, multiplied by the values and summed into one accumulator, reduced to a scalar at
//! the row's end. Rows are independent, so the out-of-order core overlaps them.
//!
//! Both x86-64 SIMD implementations run this one AVX2 kernel's arithmetic (every CPU with the
//! AVX-512 set [`super::Isa::Avx512`] needs has AVX2 and FMA too); AVX-512's fetches most inputs
//! by permutes instead of gathers ([`avx512`]), with the same bits. A 16-lane AVX-512 version
//! with masked 512-bit gathers was slower on the machine it was written on (256×256 layer,
//! batch 1, best of 20 × 200 products: density 0.5 9.9 µs against 7.8, density 0.1 7.6 µs
//! against 2.1; the old batch path took 21 and 4.5 µs). The portable kernels (and so every
//! other architecture's fallback) compute batch 1 like any batch. Results differ from the batch
//! kernels only in the order of the additions (`bias + Σ` here, lanes summed pairwise), so they
//! agree to rounding, and one implementation on one machine is bitwise deterministic.

#[cfg(target_arch = "x86_64")]
use crate::csr::{ColIndex, Csr};

/// [`avx2::rows`]' signature: `y[j·ys] = post(bias[j] + Σ_e val[e] ·
/// x[idx[e]·xs])` for every row `j` of `w`, `post` a ReLU when the flag is set.
#[cfg(target_arch = "x86_64")]
pub(super) type MatvecFn<I> =
    unsafe fn(&Csr<I>, &[f32], &[f32], *const f32, usize, *mut f32, usize, bool);

/// [`avx2::dense_rows`]' signature: `y[j·ys] = bias[j] + Σ_k W[j,k] · x[k·xs]` for a dense
/// row-major `W` of `bias.len()` rows and `n_in` columns (`W`, bias, `x`, its stride, `n_in`,
/// `y`, its stride).
#[cfg(target_arch = "x86_64")]
pub(super) type DenseMatvecFn =
    unsafe fn(&[f32], &[f32], *const f32, usize, usize, *mut f32, usize);

/// Runs `kernel` (an implementation the CPU supports, as [`super::simd`] hands out) after
/// checking what its safety contract needs.
///
/// # Panics
/// If `w` does not hold `bias.len()` rows of `n_in` values, `x` does not hold `n_in` rows of
/// stride `xs`, or `y` does not hold `bias.len()` rows of stride `ys`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) fn run_dense(
    kernel: DenseMatvecFn,
    w: &[f32],
    bias: &[f32],
    x: &[f32],
    xs: usize,
    n_in: usize,
    y: &mut [f32],
    ys: usize,
) {
    let rows = bias.len();
    assert_eq!(w.len(), rows * n_in, "dense weight length");
    assert!(n_in == 0 || x.len() > (n_in - 1) * xs, "input too short");
    assert!(rows == 0 || y.len() > (rows - 1) * ys, "output too short");
    if n_in == 0 {
        for (j, &b) in bias.iter().enumerate() {
            y[j * ys] = b;
        }
        return;
    }
    // SAFETY: `kernel` is one the CPU supports (the caller's contract); the assertions keep
    // `W`'s rows, every input row and every output row inside their slices.
    unsafe { kernel(w, bias, x.as_ptr(), xs, n_in, y.as_mut_ptr(), ys) };
}

/// Whether 32-bit gather offsets reach every input row: `(n_cols − 1)·xs < 2³¹`.
#[cfg(target_arch = "x86_64")]
pub(super) fn fits(n_cols: usize, xs: usize) -> bool {
    n_cols.saturating_sub(1).saturating_mul(xs) <= i32::MAX as usize
}

/// Runs `kernel` (an implementation the CPU supports, as [`super::simd`] hands out) after
/// checking what its safety contract needs.
///
/// # Panics
/// If `val` or `bias` do not match `w`, `x` does not hold `w.n_cols()` rows of stride `xs`,
/// `y` does not hold `w.n_rows()` rows of stride `ys`, or the offsets do not [`fits`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) fn run<I: ColIndex>(
    kernel: MatvecFn<I>,
    w: &Csr<I>,
    val: &[f32],
    bias: &[f32],
    x: &[f32],
    xs: usize,
    y: &mut [f32],
    ys: usize,
    relu: bool,
) {
    assert_eq!(val.len(), w.nnz(), "value count");
    assert_eq!(bias.len(), w.n_rows(), "bias length");
    let (rows, cols) = (w.n_rows(), w.n_cols());
    assert!(cols == 0 || x.len() > (cols - 1) * xs, "input too short");
    assert!(rows == 0 || y.len() > (rows - 1) * ys, "output too short");
    assert!(fits(cols, xs), "gather offsets beyond 32 bits");
    // SAFETY: `kernel` is one the CPU supports (the caller's contract); the assertions keep
    // every index of `w` (below `n_cols`) times `xs` inside `x`, with offsets below 2³¹, and
    // every row of `y` inside `y`; `val` and `bias` match `w`.
    unsafe { kernel(w, val, bias, x.as_ptr(), xs, y.as_mut_ptr(), ys, relu) };
}

/// The row's result after the bias and the optional ReLU (as [`super::Epilogue::apply`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn finish(bias: f32, sum: f32, relu: bool) -> f32 {
    let r = bias + sum;
    if relu { r.max(0.0) } else { r }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    use crate::csr::{ColIndex, Csr};

    /// Column indices `e..e + 8` of `idx` as 32-bit lanes.
    ///
    /// # Safety
    /// `e + 8 <= idx.len()`; the CPU supports AVX2.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn indices<I: ColIndex>(idx: &[I], e: usize) -> __m256i {
        // SAFETY: the caller guarantees 8 indices from `e`; `I` is `u16` or `u32` (sealed).
        unsafe {
            let p = idx.as_ptr().add(e);
            if I::BITS == 16 {
                _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()))
            } else {
                _mm256_loadu_si256(p.cast())
            }
        }
    }

    /// The sum of the 8 lanes of `v`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s)))
    }

    /// [`super::MatvecFn`] on AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; for every index `k` of `w`, `x + k·xs` is readable and
    /// `k·xs < 2³¹`; `y + j·ys` is writable for every row `j`; `val` and `bias` match `w`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(in crate::kernels) unsafe fn rows<I: ColIndex>(
        w: &Csr<I>,
        val: &[f32],
        bias: &[f32],
        x: *const f32,
        xs: usize,
        y: *mut f32,
        ys: usize,
        relu: bool,
    ) {
        let (ptr, idx) = (w.row_ptr(), w.col_idx());
        let stride = _mm256_set1_epi32(xs as i32);
        for (j, &b) in bias.iter().enumerate() {
            let (mut e, end) = (ptr[j] as usize, ptr[j + 1] as usize);
            let mut acc = _mm256_setzero_ps();
            while e + 8 <= end {
                // SAFETY: `e + 8 <= end <= idx.len() == val.len()`; offsets address rows of `x`.
                unsafe {
                    let off = _mm256_mullo_epi32(indices(idx, e), stride);
                    let xv = _mm256_i32gather_ps::<4>(x, off);
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(val.as_ptr().add(e)), xv, acc);
                }
                e += 8;
            }
            // SAFETY: forwarded from the caller's contract (row `j` of `y` is writable).
            unsafe { finish_row(idx, val, e..end, x, stride, acc, (b, relu), y.add(j * ys)) };
        }
    }

    /// Ends a row: adds to `acc` the products of its last entries `rest` (fewer than 8),
    /// gathered from `x` with the offsets `k·stride` in as many lanes, and stores
    /// `bias + Σ lanes` at `out`, through a ReLU when `relu`.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `rest` lies within `idx` and `val` (equally long) and
    /// holds fewer than 8 entries; for every index `k` of `idx[rest]`, `x + k·stride` is
    /// readable and `k·stride < 2³¹`; `out` is writable.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn finish_row<I: ColIndex>(
        idx: &[I],
        val: &[f32],
        rest: std::ops::Range<usize>,
        x: *const f32,
        stride: __m256i,
        mut acc: __m256,
        (bias, relu): (f32, bool),
        out: *mut f32,
    ) {
        if !rest.is_empty() {
            let mut k = [0i32; 8];
            let mut v = [0f32; 8];
            for (t, (c, &a)) in idx[rest.clone()].iter().zip(&val[rest.clone()]).enumerate() {
                k[t] = c.col() as i32;
                v[t] = a;
            }
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let live = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                _mm256_set1_epi32(rest.len() as i32),
                lanes,
            ));
            // SAFETY: only the live lanes (entries `rest`) are gathered from `x`; `k` and `v`
            // are local arrays of 8.
            unsafe {
                let off = _mm256_mullo_epi32(_mm256_loadu_si256(k.as_ptr().cast()), stride);
                let xv = _mm256_mask_i32gather_ps::<4>(_mm256_setzero_ps(), x, off, live);
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(v.as_ptr()), xv, acc);
            }
        }
        // SAFETY: the caller guarantees `out` is writable.
        unsafe { *out = super::finish(bias, hsum(acc), relu) };
    }

    /// Inputs copied per chunk by [`dense_rows`] (a stack buffer of 4 KiB).
    const CHUNK: usize = 1024;

    /// [`super::DenseMatvecFn`] on AVX2 + FMA: each row's dot product with the input in four
    /// 8-lane accumulators, the input copied to a contiguous buffer chunk by chunk.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `w` holds `bias.len()` rows of `n_in` values; `x + k·xs`
    /// is readable for every `k < n_in`; `y + j·ys` is writable for every row `j`.
    #[target_feature(enable = "avx2,fma")]
    pub(in crate::kernels) unsafe fn dense_rows(
        w: &[f32],
        bias: &[f32],
        x: *const f32,
        xs: usize,
        n_in: usize,
        y: *mut f32,
        ys: usize,
    ) {
        let mut buf = [0f32; CHUNK];
        let mut start = 0;
        loop {
            let len = CHUNK.min(n_in - start);
            for (k, b) in buf[..len].iter_mut().enumerate() {
                // SAFETY: `start + k < n_in`, a row of `x` (the caller's guarantee).
                *b = unsafe { *x.add((start + k) * xs) };
            }
            for (j, &b) in bias.iter().enumerate() {
                let row = &w[j * n_in + start..j * n_in + start + len];
                let mut a = [_mm256_setzero_ps(); 4];
                let mut k = 0;
                // SAFETY (the loads below): `k + 8 <= len`, within `row` and `buf[..len]`.
                while k + 32 <= len {
                    for (l, acc) in a.iter_mut().enumerate() {
                        let o = k + 8 * l;
                        unsafe {
                            let p = _mm256_loadu_ps(row.as_ptr().add(o));
                            *acc = _mm256_fmadd_ps(p, _mm256_loadu_ps(buf.as_ptr().add(o)), *acc);
                        }
                    }
                    k += 32;
                }
                while k + 8 <= len {
                    unsafe {
                        let p = _mm256_loadu_ps(row.as_ptr().add(k));
                        a[0] = _mm256_fmadd_ps(p, _mm256_loadu_ps(buf.as_ptr().add(k)), a[0]);
                    }
                    k += 8;
                }
                let mut s = hsum(_mm256_add_ps(
                    _mm256_add_ps(a[0], a[1]),
                    _mm256_add_ps(a[2], a[3]),
                ));
                for (&p, &q) in row[k..].iter().zip(&buf[k..len]) {
                    s += p * q;
                }
                // SAFETY: the caller guarantees row `j` of `y` is writable.
                unsafe {
                    let out = y.add(j * ys);
                    *out = if start == 0 { b + s } else { *out + s };
                }
            }
            start += len;
            if start >= n_in {
                break;
            }
        }
    }
}

/// [`avx2::rows`] with the inputs fetched without gathers where AVX-512 is present: the input
/// is first copied to a contiguous buffer; a row's columns increase, so the inputs of 8
/// connections spanning fewer than 32 columns (most, at density 0.5) come from two loads and one
/// permute, the others from a gather as before. The products, their order and the sums are
/// [`avx2::rows`]' own, so the results are too, bit for bit. Gathers are slow on some cores (this
/// machine's AMD one among them): two 256×256 layers at batch 1, best of 15 × 2000 passes, in
/// three runs of one process each, took per layer 7.7–12.7 µs against 12.8–23.7 µs for
/// [`avx2::rows`] at density 0.5 (1.7–2.0× faster, same run), 5.8–10.1 against 7.1–13.3 µs at
/// 0.25 (1.24–1.36×); at 0.1 both run [`avx2::rows`].
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::avx2::{finish_row, indices};
    use crate::csr::{ColIndex, Csr};

    /// Inputs the stack buffer holds: layers with more columns (minus the window's slack) run
    /// [`super::avx2::rows`].
    const BUF: usize = 1024;
    /// The columns one permute reaches from the first of its 8 connections.
    const WINDOW: usize = 32;

    /// [`super::MatvecFn`] on AVX-512F with AVX2 and FMA.
    ///
    /// # Safety
    /// As [`super::avx2::rows`], on a CPU with AVX-512F as well.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(in crate::kernels) unsafe fn rows<I: ColIndex>(
        w: &Csr<I>,
        val: &[f32],
        bias: &[f32],
        x: *const f32,
        xs: usize,
        y: *mut f32,
        ys: usize,
        relu: bool,
    ) {
        let n = w.n_cols();
        // Below density 1/4, 8 connections mostly span more than the window: no gain.
        if n + WINDOW > BUF || 4 * w.nnz() < w.n_rows() * n {
            // SAFETY: the caller's contract is that kernel's.
            return unsafe { super::avx2::rows(w, val, bias, x, xs, y, ys, relu) };
        }
        // The input, contiguous, then zeros as far as a window from its last column reaches
        // (never selected: a window's lanes all name columns of the row); nothing beyond is
        // read.
        let mut buf = [MaybeUninit::<f32>::uninit(); BUF];
        for (k, b) in buf[..n + WINDOW].iter_mut().enumerate() {
            // SAFETY: `k < n_cols`, a row of `x` (the caller's guarantee).
            b.write(if k < n {
                unsafe { *x.add(k * xs) }
            } else {
                0.0
            });
        }
        let buf: *const f32 = buf.as_ptr().cast();
        let (ptr, idx) = (w.row_ptr(), w.col_idx());
        let stride = _mm256_set1_epi32(xs as i32);
        for (j, &b) in bias.iter().enumerate() {
            let (mut e, end) = (ptr[j] as usize, ptr[j + 1] as usize);
            let mut acc = _mm256_setzero_ps();
            while e + 8 <= end {
                let first = idx[e].col();
                // SAFETY: `e + 8 <= end <= idx.len() == val.len()`; columns are below `n`, so
                // the window `first..first + WINDOW` and every gathered lane lie in the
                // `n + WINDOW` floats of `buf` written above.
                unsafe {
                    let ix = indices(idx, e);
                    let xv = if idx[e + 7].col() - first < WINDOW {
                        let rel = _mm256_sub_epi32(ix, _mm256_set1_epi32(first as i32));
                        let p = buf.add(first);
                        let (lo, hi) = (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)));
                        let all = _mm512_permutex2var_ps(lo, _mm512_castsi256_si512(rel), hi);
                        _mm512_castps512_ps256(all)
                    } else {
                        _mm256_i32gather_ps::<4>(buf, ix)
                    };
                    acc = _mm256_fmadd_ps(_mm256_loadu_ps(val.as_ptr().add(e)), xv, acc);
                }
                e += 8;
            }
            // SAFETY: forwarded from the caller's contract (row `j` of `y` is writable).
            unsafe { finish_row(idx, val, e..end, x, stride, acc, (b, relu), y.add(j * ys)) };
        }
    }
}
