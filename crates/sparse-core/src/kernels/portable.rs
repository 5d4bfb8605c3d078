//! Plain-Rust sparse kernels: the reference implementation, correct on every target.
//!
//! Loops run over the `batch` live lanes of feature-major rows, one length-`batch` vector
//! operation per live connection, written so the compiler vectorises them.

use crate::csr::{ColIndex, Csr, Transposed};

/// Independent accumulators for reductions (lets the compiler keep a vector of partial sums).
const ACC: usize = 16;

/// `Σ a[i] · b[i]` with `ACC` partial sums.
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; ACC];
    let (ac, bc) = (a.chunks_exact(ACC), b.chunks_exact(ACC));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..ACC {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a[i]` with `ACC` partial sums.
#[inline]
pub(super) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; ACC];
    let chunks = a.chunks_exact(ACC);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..ACC {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y[j] = bias[j] + Σ_k W[j,k] x[k]` row by row, with `W`'s structure from `w` and its values
/// from `val`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<I: ColIndex>(
    w: &Csr<I>,
    val: &[f32],
    bias: &[f32],
    x: &[f32],
    x_stride: usize,
    y: &mut [f32],
    y_stride: usize,
    batch: usize,
) {
    for (j, &b) in bias.iter().enumerate() {
        let yj = &mut y[j * y_stride..j * y_stride + batch];
        yj.fill(b);
        let (lo, hi) = (w.row_ptr()[j] as usize, w.row_ptr()[j + 1] as usize);
        for (&k, &v) in w.col_idx()[lo..hi].iter().zip(&val[lo..hi]) {
            let k = k.col();
            let xk = &x[k * x_stride..k * x_stride + batch];
            for (o, &i) in yj.iter_mut().zip(xk) {
                *o += v * i;
            }
        }
    }
}

/// `dx = Wᵀ dy` by gathering, input by input, over the transposed structure `t` of `W` (whose
/// values are `vals`, reached through `t.perm()`).
pub(super) fn backward_data(
    t: &Transposed,
    vals: &[f32],
    dy: &[f32],
    dy_stride: usize,
    dx: &mut [f32],
    dx_stride: usize,
    batch: usize,
) {
    let (col_ptr, rows, perm) = (t.col_ptr(), t.rows(), t.perm());
    for k in 0..t.n_cols() {
        let dxk = &mut dx[k * dx_stride..k * dx_stride + batch];
        dxk.fill(0.0);
        for e in col_ptr[k] as usize..col_ptr[k + 1] as usize {
            let (j, v) = (rows[e] as usize, vals[perm[e] as usize]);
            let dyj = &dy[j * dy_stride..j * dy_stride + batch];
            for (o, &g) in dxk.iter_mut().zip(dyj) {
                *o += v * g;
            }
        }
    }
}

/// `grad[i] = dy[j] · x[k]` for every stored entry `i = (j, k)`.
pub(super) fn weight_grad<I: ColIndex>(
    w: &Csr<I>,
    dy: &[f32],
    dy_stride: usize,
    x: &[f32],
    x_stride: usize,
    grad: &mut [f32],
    batch: usize,
) {
    let row_ptr = w.row_ptr();
    for j in 0..w.n_rows() {
        let dyj = &dy[j * dy_stride..j * dy_stride + batch];
        let (lo, hi) = (row_ptr[j] as usize, row_ptr[j + 1] as usize);
        for (g, &k) in grad[lo..hi].iter_mut().zip(&w.col_idx()[lo..hi]) {
            let k = k.col();
            *g = dot(dyj, &x[k * x_stride..k * x_stride + batch]);
        }
    }
}
