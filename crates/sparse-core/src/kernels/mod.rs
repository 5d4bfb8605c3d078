//! The kernel boundary: every product a layer computes goes through the functions here.
//!
//! Sparse kernels touch only live connections, in feature-major layout (see
//! [`crate::Activations`]):
//! - [`sparse_forward`]: `y = W x + b`;
//! - [`sparse_backward_data`]: `dx = Wᵀ dy`;
//! - [`sparse_weight_grad`]: `dW[j,k] = Σ_b dy[j,b] · x[k,b]` at stored positions only;
//! - [`bias_grad`]: `db[j] = Σ_b dy[j,b]`.
//!
//! Dense layers go through matrixmultiply's sgemm ([`dense_forward`], [`dense_backward_data`],
//! [`dense_weight_grad`]). Implementations live in submodules (`portable`: plain Rust that the
//! compiler vectorises); this module is the one place that decides which implementation runs, so a
//! faster one slots in here without touching any caller. Each kernel adds the FLOPs it executes to
//! the counter it is given (convention in [`crate::flops`]).
//!
//! These are low-level functions: shapes are checked with assertions (the layer types check them
//! first and return errors).

mod dense;
mod portable;

use crate::activations::Activations;
use crate::csr::{ColIndex, Csr};
use crate::flops::{FlopCounter, KernelKind};

fn assert_shape(what: &str, a: &Activations, features: usize, batch: usize) {
    assert!(
        a.features() == features && a.batch() == batch,
        "{what}: expected {features}×{batch}, got {}×{}",
        a.features(),
        a.batch()
    );
}

/// `y = W x + b` for CSR `W` (`n_out × n_in`), `x` (`n_in × batch`), `y` (`n_out × batch`).
///
/// # Panics
/// If shapes disagree.
pub fn sparse_forward<I: ColIndex>(
    w: &Csr<I>,
    bias: &[f32],
    x: &Activations,
    y: &mut Activations,
    flops: &FlopCounter,
) {
    let batch = x.batch();
    assert_eq!(bias.len(), w.n_rows(), "bias length");
    assert_shape("input", x, w.n_cols(), batch);
    assert_shape("output", y, w.n_rows(), batch);
    let (xs, ys) = (x.stride(), y.stride());
    portable::forward(w, bias, x.as_slice(), xs, y.as_mut_slice(), ys, batch);
    flops.add(KernelKind::Forward, 2 * (w.nnz() * batch) as u64);
}

/// `dx = Wᵀ dy` for CSR `W` (`n_out × n_in`), `dy` (`n_out × batch`), `dx` (`n_in × batch`);
/// `dx` is overwritten.
///
/// # Panics
/// If shapes disagree.
pub fn sparse_backward_data<I: ColIndex>(
    w: &Csr<I>,
    dy: &Activations,
    dx: &mut Activations,
    flops: &FlopCounter,
) {
    let batch = dy.batch();
    assert_shape("output gradient", dy, w.n_rows(), batch);
    assert_shape("input gradient", dx, w.n_cols(), batch);
    let (dys, dxs) = (dy.stride(), dx.stride());
    portable::backward_data(w, dy.as_slice(), dys, dx.as_mut_slice(), dxs, batch);
    flops.add(KernelKind::BackwardData, 2 * (w.nnz() * batch) as u64);
}

/// Weight gradient at the stored positions of `w`: `grad[i]` for the `i`-th stored entry
/// `(j, k)` is `Σ_b dy[j,b] · x[k,b]`; `grad` (length `nnz`) is overwritten.
///
/// # Panics
/// If shapes disagree.
pub fn sparse_weight_grad<I: ColIndex>(
    w: &Csr<I>,
    dy: &Activations,
    x: &Activations,
    grad: &mut [f32],
    flops: &FlopCounter,
) {
    let batch = dy.batch();
    assert_eq!(grad.len(), w.nnz(), "gradient length");
    assert_shape("output gradient", dy, w.n_rows(), batch);
    assert_shape("input", x, w.n_cols(), batch);
    portable::weight_grad(
        w,
        dy.as_slice(),
        dy.stride(),
        x.as_slice(),
        x.stride(),
        grad,
        batch,
    );
    flops.add(KernelKind::WeightGrad, 2 * (w.nnz() * batch) as u64);
}

/// Bias gradient `grad[j] = Σ_b dy[j,b]` (overwritten), for sparse and dense layers alike.
///
/// # Panics
/// If `grad.len() != dy.features()`.
pub fn bias_grad(dy: &Activations, grad: &mut [f32], flops: &FlopCounter) {
    assert_eq!(grad.len(), dy.features(), "bias gradient length");
    for (j, g) in grad.iter_mut().enumerate() {
        *g = portable::sum(dy.row(j));
    }
    flops.add(KernelKind::BiasGrad, (dy.features() * dy.batch()) as u64);
}

/// `y = W x + b` for dense row-major `W` (`n_out × n_in`).
///
/// # Panics
/// If shapes disagree.
pub fn dense_forward(
    w: &[f32],
    bias: &[f32],
    x: &Activations,
    y: &mut Activations,
    flops: &FlopCounter,
) {
    let (n_out, n_in, batch) = (bias.len(), x.features(), x.batch());
    assert_eq!(w.len(), n_out * n_in, "dense weight length");
    assert_shape("output", y, n_out, batch);
    dense::forward(w, bias, x, y);
    flops.add(KernelKind::Forward, 2 * (n_out * n_in * batch) as u64);
}

/// `dx = Wᵀ dy` for dense row-major `W` (`n_out × n_in`); `dx` is overwritten.
///
/// # Panics
/// If shapes disagree.
pub fn dense_backward_data(w: &[f32], dy: &Activations, dx: &mut Activations, flops: &FlopCounter) {
    let (n_out, n_in, batch) = (dy.features(), dx.features(), dy.batch());
    assert_eq!(w.len(), n_out * n_in, "dense weight length");
    assert_shape("input gradient", dx, n_in, batch);
    dense::backward_data(w, dy, dx);
    flops.add(KernelKind::BackwardData, 2 * (n_out * n_in * batch) as u64);
}

/// Dense weight gradient `dW = dy · xᵀ` (row-major `n_out × n_in`, overwritten).
///
/// # Panics
/// If shapes disagree.
pub fn dense_weight_grad(dy: &Activations, x: &Activations, grad: &mut [f32], flops: &FlopCounter) {
    let (n_out, n_in, batch) = (dy.features(), x.features(), dy.batch());
    assert_eq!(grad.len(), n_out * n_in, "dense gradient length");
    assert_shape("input", x, n_in, batch);
    dense::weight_grad(dy, x, grad);
    flops.add(KernelKind::WeightGrad, 2 * (n_out * n_in * batch) as u64);
}
