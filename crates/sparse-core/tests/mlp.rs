//! The MLP's backward pass against central finite differences, and its forward pass against a
//! layer-by-layer dense reference.

mod common;

use common::{dense_weights, random_acts, rng};
use rand::RngExt;
use sparse_core::{Activations, Grads, Layer, LayerKind, Mlp, Output, SparseLinear, Workspace};

/// The loss `L = Σ c ⊙ mlp(x)` in f64, so finite differences see only the network's own
/// rounding.
fn loss(mlp: &Mlp, x: &Activations, c: &Activations) -> f64 {
    let mut ws = Workspace::new();
    let y = mlp.forward(x, &mut ws).unwrap();
    (0..y.features())
        .flat_map(|f| (0..y.batch()).map(move |b| (f, b)))
        .map(|(f, b)| y.get(f, b) as f64 * c.get(f, b) as f64)
        .sum()
}

/// `|fd - g| <= 2e-3 + 2e-2 |fd|`: loose enough for f32 central differences (h = 1e-3 on values
/// of order 1), tight enough to catch any wrong term.
fn assert_fd(what: &str, fd: f64, g: f32) {
    let err = (fd - g as f64).abs();
    assert!(
        err <= 2e-3 + 2e-2 * fd.abs(),
        "{what}: finite difference {fd}, backward {g}"
    );
}

fn sparse_mlp(seed: u64) -> Mlp {
    let mut r = rng(seed);
    let layers: Vec<Layer> = vec![
        SparseLinear::random(5, 12, 30, &mut r).unwrap().into(),
        SparseLinear::random(12, 10, 60, &mut r).unwrap().into(),
        SparseLinear::random(10, 3, 15, &mut r).unwrap().into(),
    ];
    Mlp::new(layers, Output::Tanh { bound: 2.0 }).unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    let mut mlp = sparse_mlp(11);
    let mut r = rng(12);
    let batch = 4;
    let x = random_acts(&mut r, 5, batch);
    let c = random_acts(&mut r, 3, batch);
    let mut ws = Workspace::new();
    mlp.forward(&x, &mut ws).unwrap();
    let mut grads = Grads::zeros_like(&mlp);
    let mut dx = Activations::default();
    mlp.backward(&mut ws, &c, Some(&mut grads), Some(&mut dx))
        .unwrap();

    let h = 1e-3f32;
    // Input gradient.
    for f in 0..5 {
        for b in 0..batch {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.set(f, b, x.get(f, b) + h);
            xm.set(f, b, x.get(f, b) - h);
            let fd = (loss(&mlp, &xp, &c) - loss(&mlp, &xm, &c)) / (2.0 * h as f64);
            assert_fd(&format!("dL/dx[{f},{b}]"), fd, dx.get(f, b));
        }
    }
    // Weight and bias gradients of every layer.
    for l in 0..3 {
        let n_w = mlp.layers()[l].live_connections();
        let n_b = mlp.layers()[l].n_out();
        for i in 0..n_w + n_b {
            let perturb = |mlp: &mut Mlp, delta: f32| {
                let (w, bias) = mlp.layers_mut()[l].params_mut();
                if i < n_w {
                    w[i] += delta
                } else {
                    bias[i - n_w] += delta
                }
            };
            perturb(&mut mlp, h);
            let lp = loss(&mlp, &x, &c);
            perturb(&mut mlp, -2.0 * h);
            let lm = loss(&mlp, &x, &c);
            perturb(&mut mlp, h);
            let fd = (lp - lm) / (2.0 * h as f64);
            let g = if i < n_w {
                grads.layers()[l].weights[i]
            } else {
                grads.layers()[l].bias[i - n_w]
            };
            assert_fd(&format!("layer {l} param {i}"), fd, g);
        }
    }
}

#[test]
fn input_gradient_alone_equals_full_backward() {
    let mlp = sparse_mlp(21);
    let mut r = rng(22);
    let x = random_acts(&mut r, 5, 9);
    let c = random_acts(&mut r, 3, 9);
    let mut ws = Workspace::new();
    mlp.forward(&x, &mut ws).unwrap();
    let (mut dx1, mut dx2) = (Activations::default(), Activations::default());
    let mut grads = Grads::zeros_like(&mlp);
    mlp.backward(&mut ws, &c, Some(&mut grads), Some(&mut dx1))
        .unwrap();
    mlp.backward(&mut ws, &c, None, Some(&mut dx2)).unwrap();
    assert_eq!(dx1, dx2);
    assert!(
        grads
            .layers()
            .iter()
            .any(|g| g.weights.iter().any(|&v| v != 0.0))
    );
}

#[test]
fn forward_matches_layerwise_dense_reference() {
    let mut r = rng(31);
    let sizes = [17, 64, 48, 6];
    let kinds = [
        LayerKind::Sparse { lambda: 7.0 },
        LayerKind::Sparse { lambda: 10.0 },
        LayerKind::Dense,
    ];
    let mlp = Mlp::init(&sizes, &kinds, Output::Tanh { bound: 0.4 }, &mut r).unwrap();
    let x = random_acts(&mut r, 17, 33);
    let mut ws = Workspace::new();
    let y = mlp.forward(&x, &mut ws).unwrap().clone();
    for b in 0..33 {
        let mut h: Vec<f64> = (0..17).map(|f| x.get(f, b) as f64).collect();
        for (i, layer) in mlp.layers().iter().enumerate() {
            let w = dense_weights(layer);
            h = w
                .iter()
                .zip(layer.bias())
                .map(|(row, &bias)| {
                    let z = bias as f64 + row.iter().zip(&h).map(|(a, b)| a * b).sum::<f64>();
                    if i + 1 < sizes.len() - 1 {
                        z.max(0.0)
                    } else {
                        0.4 * z.tanh()
                    }
                })
                .collect();
        }
        for (f, &want) in h.iter().enumerate() {
            assert!((y.get(f, b) as f64 - want).abs() < 1e-5, "output[{f},{b}]");
        }
    }
}

#[test]
fn misuse_is_an_error() {
    let mut r = rng(41);
    let mlp = sparse_mlp(42);
    let mut ws = Workspace::new();
    let c = random_acts(&mut r, 3, 2);
    // Backward before any forward pass.
    assert!(mlp.backward(&mut ws, &c, None, None).is_err());
    // Wrong input width.
    assert!(mlp.forward(&random_acts(&mut r, 4, 2), &mut ws).is_err());
    // Batch differs from the cached forward pass.
    mlp.forward(&random_acts(&mut r, 5, 3), &mut ws).unwrap();
    assert!(mlp.backward(&mut ws, &c, None, None).is_err());
    // Layers that do not chain, and a bad bound.
    let a: Layer = SparseLinear::random(5, 6, 3, &mut r).unwrap().into();
    let b: Layer = SparseLinear::random(7, 2, 3, &mut r).unwrap().into();
    assert!(Mlp::new(vec![a.clone(), b], Output::Linear).is_err());
    assert!(Mlp::new(vec![a.clone()], Output::Tanh { bound: 0.0 }).is_err());
    assert!(Mlp::new(vec![a], Output::Tanh { bound: f32::NAN }).is_err());
    assert!(Mlp::new(vec![], Output::Linear).is_err());
    let _ = r.random::<u8>();
}

/// The gradient factors a workspace keeps after backward give, through
/// `SparseLinear::gradient_at`, the weight gradient at any position: the backward pass's own
/// gradient at live positions (bit for bit: the same kernel), and the dense f64 product
/// `Σ_b dz[r, b] · x[c, b]` everywhere, free positions included; its FLOPs are counted in the
/// layer's counter.
#[test]
fn gradient_at_any_position_equals_the_dense_gradient() {
    let mut r = rng(21);
    let kinds = [
        LayerKind::Sparse { lambda: 3.0 },
        LayerKind::Sparse { lambda: 6.0 },
    ];
    let mlp = Mlp::init(&[9, 40, 5], &kinds, Output::Linear, &mut r).unwrap();
    let x = random_acts(&mut r, 9, 37);
    let c = random_acts(&mut r, 5, 37);
    let mut ws = Workspace::new();
    mlp.forward(&x, &mut ws).unwrap();
    let mut grads = Grads::zeros_like(&mlp);
    mlp.backward(&mut ws, &c, Some(&mut grads), None).unwrap();
    for (i, layer) in mlp.layers().iter().enumerate() {
        let Layer::Sparse(sparse) = layer else {
            unreachable!()
        };
        let (xi, dz) = ws.gradient_factors(i).expect("forward and backward ran");
        let live = sparse.weights().positions();
        let before = layer.flops().total();
        let at_live = sparse.gradient_at(&live, dz, xi).unwrap();
        assert_eq!(
            at_live,
            grads.layers()[i].weights,
            "layer {i}: live positions"
        );
        assert!(layer.flops().total() > before, "counted");
        let (n_out, n_in) = (layer.n_out(), layer.n_in());
        let every: Vec<usize> = (0..n_out * n_in).collect();
        let all = sparse.gradient_at(&every, dz, xi).unwrap();
        for (p, g) in every.iter().zip(&all) {
            let (row, col) = (p / n_in, p % n_in);
            let want: f64 = (0..37)
                .map(|b| dz.get(row, b) as f64 * xi.get(col, b) as f64)
                .sum();
            assert!(
                (*g as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "layer {i} ({row}, {col}): {g} vs {want}"
            );
        }
    }
    // A forward pass on another batch size leaves no consistent factors.
    mlp.forward(&random_acts(&mut r, 9, 1), &mut ws).unwrap();
    assert!(ws.gradient_factors(0).is_none());
    assert!(ws.gradient_factors(7).is_none());
}
