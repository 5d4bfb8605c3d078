//! Sparse (and dense) layer kernels against a dense f64 reference built from the same weights.

mod common;

use common::{assert_close, dense_weights, random_acts, rng};
use rand::{RngExt, rngs::StdRng};
use sparse_core::{Activations, DenseLinear, KernelKind, Layer, SparseLinear};

const REL: f64 = 1e-5;

/// Checks forward, backward-data, weight gradient and bias gradient of `layer` at `batch`.
fn check_layer(layer: &Layer, batch: usize, r: &mut StdRng) {
    let (n_in, n_out) = (layer.n_in(), layer.n_out());
    let w = dense_weights(layer);
    let x = random_acts(r, n_in, batch);
    let dy = random_acts(r, n_out, batch);
    let ctx = format!(
        "{n_out}x{n_in}, nnz {}, batch {batch}",
        layer.live_connections()
    );

    // Forward: y = W x + b.
    let mut y = Activations::default();
    layer.forward(&x, &mut y).unwrap();
    for (j, wj) in w.iter().enumerate() {
        for b in 0..batch {
            let bias = layer.bias()[j] as f64;
            let (mut want, mut scale) = (bias, bias.abs());
            for (k, wk) in wj.iter().enumerate() {
                let t = wk * x.get(k, b) as f64;
                want += t;
                scale += t.abs();
            }
            assert_close(
                &format!("forward[{j},{b}] {ctx}"),
                y.get(j, b),
                want,
                scale,
                REL,
            );
        }
    }

    // Backward-data: dx = Wᵀ dy (the buffer starts dirty to catch missing overwrites).
    let mut dx = random_acts(r, n_in, batch);
    layer.backward_data(&dy, &mut dx).unwrap();
    for k in 0..n_in {
        for b in 0..batch {
            let (mut want, mut scale) = (0.0, 0.0);
            for (j, wj) in w.iter().enumerate() {
                let t = wj[k] * dy.get(j, b) as f64;
                want += t;
                scale += t.abs();
            }
            assert_close(
                &format!("backward-data[{k},{b}] {ctx}"),
                dx.get(k, b),
                want,
                scale,
                REL,
            );
        }
    }

    // Weight gradient at stored positions, and bias gradient.
    let mut grads = layer.zero_grads();
    grads.weights.iter_mut().for_each(|g| *g = 7.0);
    grads.bias.iter_mut().for_each(|g| *g = 7.0);
    layer.param_grads(&dy, &x, &mut grads).unwrap();
    let positions: Vec<(usize, usize)> = match layer {
        Layer::Sparse(s) => s.weights().iter().map(|(r, c, _)| (r, c)).collect(),
        Layer::Dense(_) => (0..n_out)
            .flat_map(|j| (0..n_in).map(move |k| (j, k)))
            .collect(),
    };
    assert_eq!(positions.len(), grads.weights.len());
    for (&(j, k), &g) in positions.iter().zip(&grads.weights) {
        let (mut want, mut scale) = (0.0, 0.0);
        for b in 0..batch {
            let t = dy.get(j, b) as f64 * x.get(k, b) as f64;
            want += t;
            scale += t.abs();
        }
        assert_close(&format!("weight-grad[{j},{k}] {ctx}"), g, want, scale, REL);
    }
    for (j, &g) in grads.bias.iter().enumerate() {
        let want: f64 = (0..batch).map(|b| dy.get(j, b) as f64).sum();
        let scale: f64 = (0..batch).map(|b| (dy.get(j, b) as f64).abs()).sum();
        assert_close(&format!("bias-grad[{j}] {ctx}"), g, want, scale, REL);
    }
}

const BATCHES: [usize; 5] = [1, 7, 100, 256, 257];

fn count_for(density: &str, n_in: usize, n_out: usize) -> usize {
    let total = n_in * n_out;
    match density {
        "0" => 0,
        "one" => 1,
        d => ((d.parse::<f64>().unwrap() * total as f64).round() as usize).max(1),
    }
}

#[test]
fn sparse_kernels_match_dense_reference() {
    let mut r = rng(1);
    let shapes = [(1, 1), (3, 5), (17, 256), (256, 256), (256, 6), (61, 13)];
    for &(n_in, n_out) in &shapes {
        for density in ["0", "one", "0.05", "0.5", "1.0"] {
            let count = count_for(density, n_in, n_out);
            let layer: Layer = SparseLinear::random(n_in, n_out, count, &mut r)
                .unwrap()
                .into();
            assert_eq!(layer.live_connections(), count.min(n_in * n_out));
            for &batch in &BATCHES {
                check_layer(&layer, batch, &mut r);
            }
        }
    }
}

#[test]
fn random_shapes_match_dense_reference() {
    let mut r = rng(2);
    for _ in 0..12 {
        let (n_in, n_out) = (r.random_range(1..120usize), r.random_range(1..120usize));
        let density: f64 = r.random_range(0.0..1.0);
        let count = (density * (n_in * n_out) as f64) as usize;
        let layer: Layer = SparseLinear::random(n_in, n_out, count, &mut r)
            .unwrap()
            .into();
        let batch = BATCHES[r.random_range(0..BATCHES.len())];
        check_layer(&layer, batch, &mut r);
    }
}

#[test]
fn wide_layers_use_u32_indices_and_match() {
    let mut r = rng(3);
    let layer = SparseLinear::random(70_000, 3, 40, &mut r).unwrap();
    assert!(matches!(
        layer.weights(),
        sparse_core::SparseWeights::U32(_)
    ));
    let narrow = SparseLinear::random(65_536, 2, 10, &mut r).unwrap();
    assert!(matches!(
        narrow.weights(),
        sparse_core::SparseWeights::U16(_)
    ));
    check_layer(&layer.into(), 7, &mut r);
    check_layer(&narrow.into(), 7, &mut r);
}

#[test]
fn dense_kernels_match_dense_reference() {
    let mut r = rng(4);
    for &(n_in, n_out) in &[(1, 1), (17, 256), (256, 6), (33, 9)] {
        let layer: Layer = DenseLinear::pytorch_default(n_in, n_out, &mut r)
            .unwrap()
            .into();
        for &batch in &BATCHES {
            check_layer(&layer, batch, &mut r);
        }
    }
}

#[test]
fn kernels_count_their_flops() {
    let mut r = rng(5);
    let layer: Layer = SparseLinear::random(40, 30, 123, &mut r).unwrap().into();
    let batch = 9;
    let x = random_acts(&mut r, 40, batch);
    let dy = random_acts(&mut r, 30, batch);
    let (mut y, mut dx, mut g) = (
        Activations::default(),
        Activations::default(),
        layer.zero_grads(),
    );
    layer.forward(&x, &mut y).unwrap();
    layer.forward(&x, &mut y).unwrap();
    layer.backward_data(&dy, &mut dx).unwrap();
    layer.param_grads(&dy, &x, &mut g).unwrap();
    let f = layer.flops();
    let mac = 2 * 123 * batch as u64;
    assert_eq!(f.get(KernelKind::Forward), 2 * mac);
    assert_eq!(f.get(KernelKind::BackwardData), mac);
    assert_eq!(f.get(KernelKind::WeightGrad), mac);
    assert_eq!(f.get(KernelKind::BiasGrad), 30 * batch as u64);
    assert_eq!(f.total(), 4 * mac + 30 * batch as u64);
    layer.reset_flops();
    assert_eq!(layer.flops().total(), 0);

    let dense: Layer = DenseLinear::pytorch_default(40, 30, &mut r).unwrap().into();
    dense.forward(&x, &mut y).unwrap();
    assert_eq!(dense.flops().forward, 2 * 40 * 30 * batch as u64);
}

#[test]
fn shape_errors_are_errors_not_panics() {
    let mut r = rng(6);
    let layer: Layer = SparseLinear::random(8, 4, 10, &mut r).unwrap().into();
    let bad = random_acts(&mut r, 7, 3);
    let mut out = Activations::default();
    assert!(layer.forward(&bad, &mut out).is_err());
    assert!(layer.backward_data(&bad, &mut out).is_err());
    let mut g = layer.zero_grads();
    assert!(layer.param_grads(&bad, &bad, &mut g).is_err());
    g.weights.pop();
    let (x, dy) = (random_acts(&mut r, 8, 3), random_acts(&mut r, 4, 3));
    assert!(layer.param_grads(&dy, &x, &mut g).is_err());
}
