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

/// `y = W x + b`: rows of `y` start at the bias, then sgemm accumulates `W x`; a batch of one
/// takes [`gemv`] instead.
pub(super) fn forward(w: &[f32], bias: &[f32], x: &Activations, y: &mut Activations) {
    let (n_out, n_in, batch) = (bias.len(), x.features(), x.batch());
    if batch == 1 {
        gemv(w, bias, x, y);
        return;
    }
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

/// Inputs per chunk of [`gemv`] (a stack buffer of 4 KiB).
const GEMV_CHUNK: usize = 1024;

/// Lanes of [`gemv`]'s partial sums: independent, so the compiler vectorises them.
const GEMV_LANES: usize = 16;

/// `y = W x + b` for a batch of one, as dot products of `W`'s contiguous rows with `x`.
/// matrixmultiply packs all of `W` for every product, which at batch 1 costs more than the
/// product itself. The input is copied to a contiguous buffer chunk by chunk; each row's dot
/// product over a chunk runs in [`GEMV_LANES`] lanes summed pairwise, added to the row's result,
/// which starts at the bias.
fn gemv(w: &[f32], bias: &[f32], x: &Activations, y: &mut Activations) {
    let (n_out, n_in) = (bias.len(), x.features());
    assert!(w.len() >= n_out * n_in, "gemv: W too short");
    for (j, &b) in bias.iter().enumerate() {
        y.set(j, 0, b);
    }
    let mut buf = [0f32; GEMV_CHUNK];
    for start in (0..n_in).step_by(GEMV_CHUNK) {
        let len = GEMV_CHUNK.min(n_in - start);
        for (k, b) in buf[..len].iter_mut().enumerate() {
            *b = x.get(start + k, 0);
        }
        let chunk = &buf[..len];
        for j in 0..n_out {
            let row = &w[j * n_in + start..j * n_in + start + len];
            y.set(j, 0, y.get(j, 0) + dot(row, chunk));
        }
    }
}

/// `Σ a[i]·b[i]` in [`GEMV_LANES`] lanes, then the lanes summed pairwise.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; GEMV_LANES];
    let (ac, bc) = (a.chunks_exact(GEMV_LANES), b.chunks_exact(GEMV_LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (ca, cb) in ac.zip(bc) {
        // Fixed-size chunks: the compiler then keeps the lanes in vector registers.
        let (ca, cb): (&[f32; GEMV_LANES], &[f32; GEMV_LANES]) =
            match (ca.try_into(), cb.try_into()) {
                (Ok(ca), Ok(cb)) => (ca, cb),
                _ => unreachable!("chunks_exact yields whole chunks"),
            };
        for l in 0..GEMV_LANES {
            lanes[l] += ca[l] * cb[l];
        }
    }
    for (l, (&p, &q)) in ar.iter().zip(br).enumerate() {
        lanes[l] += p * q;
    }
    let mut n = GEMV_LANES;
    while n > 1 {
        n /= 2;
        for l in 0..n {
            lanes[l] += lanes[l + n];
        }
    }
    lanes[0]
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
