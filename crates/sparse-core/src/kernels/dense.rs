//! Dense layer products through matrixmultiply's sgemm on feature-major buffers.

use crate::activations::Activations;

/// `C (m × n) = alpha · A (m × k) · B (k × n) + beta · C`, all given by strides.
#[allow(clippy::too_many_arguments)]
fn sgemm(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    let end = |rows: usize, cols: usize, rs: usize, cs: usize| {
        if rows == 0 || cols == 0 {
            0
        } else {
            (rows - 1) * rs + (cols - 1) * cs + 1
        }
    };
    assert!(a.len() >= end(m, k, rsa, csa), "sgemm: A too short");
    assert!(b.len() >= end(k, n, rsb, csb), "sgemm: B too short");
    assert!(c.len() >= end(m, n, rsc, csc), "sgemm: C too short");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the assertions above keep every element the strides address inside the slices,
    // and `c` is a unique borrow that cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// `y = W x + b`: rows of `y` start at the bias, then sgemm accumulates `W x`.
pub(super) fn forward(w: &[f32], bias: &[f32], x: &Activations, y: &mut Activations) {
    let (n_out, n_in, batch) = (bias.len(), x.features(), x.batch());
    for (j, &b) in bias.iter().enumerate() {
        y.row_mut(j).fill(b);
    }
    let (xs, ys) = (x.stride(), y.stride());
    sgemm(
        (n_out, n_in, batch),
        w,
        (n_in, 1),
        x.as_slice(),
        (xs, 1),
        1.0,
        y.as_mut_slice(),
        (ys, 1),
    );
}

/// `dx = Wᵀ dy`.
pub(super) fn backward_data(w: &[f32], dy: &Activations, dx: &mut Activations) {
    let (n_out, n_in, batch) = (dy.features(), dx.features(), dy.batch());
    let (dys, dxs) = (dy.stride(), dx.stride());
    sgemm(
        (n_in, n_out, batch),
        w,
        (1, n_in),
        dy.as_slice(),
        (dys, 1),
        0.0,
        dx.as_mut_slice(),
        (dxs, 1),
    );
}

/// `dW = dy · xᵀ`, row-major `n_out × n_in`.
pub(super) fn weight_grad(dy: &Activations, x: &Activations, grad: &mut [f32]) {
    let (n_out, n_in, batch) = (dy.features(), x.features(), dy.batch());
    sgemm(
        (n_out, batch, n_in),
        dy.as_slice(),
        (dy.stride(), 1),
        x.as_slice(),
        (1, x.stride()),
        0.0,
        grad,
        (n_in, 1),
    );
}
