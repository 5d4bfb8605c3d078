//! Memory accounting is linear in live connections.

mod common;

use common::rng;
use sparse_core::{Adam, AdamConfig, Grads, Layer, Mlp, Output, SparseLinear};

/// Parameters, gradients and Adam state of a one-layer 256×256 network at `density`.
fn report(density: f64) -> (usize, sparse_core::MemoryReport) {
    let count = (density * 65_536.0) as usize;
    let layer = Layer::from(SparseLinear::random(256, 256, count, &mut rng(1)).unwrap());
    let mlp = Mlp::new(vec![layer], Output::Linear).unwrap();
    let adam = Adam::new(AdamConfig::default(), &mlp).unwrap();
    (
        count,
        mlp.memory() + Grads::zeros_like(&mlp).memory() + adam.memory(),
    )
}

#[test]
fn bytes_scale_with_live_connections() {
    let (n5, m5) = report(0.5);
    let (n1, m1) = report(0.1);
    // Per live connection: 4 B value + 2 B u16 index + 4 B gradient + 8 B Adam moments.
    assert_eq!(m5.values, 4 * n5);
    assert_eq!(m5.col_indices, 2 * n5);
    // Constant part: 257 u32 row pointers, bias, its gradient and its Adam moments.
    let constant = 257 * 4 + 256 * 4 * 4;
    assert_eq!(m5.total(), 18 * n5 + constant);
    assert_eq!(m1.total(), 18 * n1 + constant);
    let ratio = m1.total() as f64 / m5.total() as f64;
    assert!((0.19..0.22).contains(&ratio), "ratio {ratio}");
}

#[test]
fn dense_layer_reports_all_weights() {
    let mlp = Mlp::init(
        &[10, 20],
        &[sparse_core::LayerKind::Dense],
        Output::Linear,
        &mut rng(2),
    )
    .unwrap();
    let m = mlp.memory();
    assert_eq!(
        (m.values, m.col_indices, m.row_ptrs, m.biases),
        (800, 0, 0, 80)
    );
    assert_eq!(mlp.live_connections(), 200);
}
