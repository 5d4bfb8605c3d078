//! Gradient-guided growth against a brute-force reference: with every free position a candidate,
//! the connections grown are exactly the free positions with the largest `|∂L/∂w|` of the dense
//! gradient `dz · xᵀ` (computed here in f64 over the whole layer); with fewer candidates they
//! are still free, distinct and as many as were pruned, and carry larger gradients than random
//! growth's; without the gradient's factors it is an error, not random growth.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use set_evolve::{Error, GradientGrowth, Growth, RandomGrowth, evolve_layer};
use sparse_core::{Activations, Layer, Mlp, Output, SparseLinear, Workspace};

fn acts(r: &mut StdRng, features: usize, batch: usize) -> Activations {
    let data: Vec<f32> = (0..features * batch)
        .map(|_| r.random_range(-1.0..1.0))
        .collect();
    Activations::from_samples(features, batch, &data).unwrap()
}

/// A one-layer network `n_out × n_in` with `nnz` connections after one forward and backward
/// pass on a batch of 16: the layer, and the workspace holding its gradient factors.
fn trained(r: &mut StdRng, n_in: usize, n_out: usize, nnz: usize) -> (SparseLinear, Workspace) {
    let layer = SparseLinear::random(n_in, n_out, nnz, r).unwrap();
    let net = Mlp::new(vec![Layer::from(layer.clone())], Output::Linear).unwrap();
    let mut ws = Workspace::new();
    net.forward(&acts(r, n_in, 16), &mut ws).unwrap();
    net.backward(&mut ws, &acts(r, n_out, 16), None, None)
        .unwrap();
    (layer, ws)
}

/// `|Σ_b dz[row, b] · x[col, b]|` at row-major position `p`, in f64.
fn dense_gradient(ws: &Workspace, n_in: usize, p: usize) -> f64 {
    let (x, dz) = ws.gradient_factors(0).unwrap();
    let (row, col) = (p / n_in, p % n_in);
    (0..x.batch())
        .map(|b| dz.get(row, b) as f64 * x.get(col, b) as f64)
        .sum::<f64>()
        .abs()
}

#[test]
fn with_every_free_position_a_candidate_growth_takes_the_largest_gradients() {
    for seed in 0..5 {
        let mut r = StdRng::seed_from_u64(seed);
        let (n_in, n_out) = (30, 20);
        let (mut layer, ws) = trained(&mut r, n_in, n_out, 150);
        let before = layer.weights().positions();
        let factors = ws.gradient_factors(0);
        let mut growth = GradientGrowth { candidates: 1000 };
        let change = evolve_layer(&mut layer, 0.1, &mut growth, &mut r, factors).unwrap();
        let k = change.added.len();
        assert!(k > 0 && k == change.removed.len());
        // The reference: every position not surviving the prune, by |gradient|, largest first
        // (ties: lower position).
        let mut free: Vec<usize> = (0..n_in * n_out)
            .filter(|p| !before.contains(p) || change.removed.contains(p))
            .collect();
        free.sort_by(|&a, &b| {
            dense_gradient(&ws, n_in, b)
                .total_cmp(&dense_gradient(&ws, n_in, a))
                .then(a.cmp(&b))
        });
        let mut want = free[..k].to_vec();
        want.sort_unstable();
        assert_eq!(change.added, want, "seed {seed}");
    }
}

#[test]
fn sampled_candidates_grow_larger_gradients_than_random_growth() {
    let mut r = StdRng::seed_from_u64(9);
    let (n_in, n_out) = (128, 128);
    let (layer, ws) = trained(&mut r, n_in, n_out, 8192);
    let factors = ws.gradient_factors(0);
    let mean_gradient = |added: &[usize]| {
        added
            .iter()
            .map(|&p| dense_gradient(&ws, n_in, p))
            .sum::<f64>()
            / added.len() as f64
    };
    let mut by_gradient = layer.clone();
    let mut growth = Growth::Gradient { candidates: 4 };
    let guided = evolve_layer(&mut by_gradient, 0.05, &mut growth, &mut r, factors).unwrap();
    let mut at_random = layer.clone();
    let random = evolve_layer(&mut at_random, 0.05, &mut RandomGrowth, &mut r, None).unwrap();
    assert_eq!(guided.added.len(), random.added.len());
    assert_eq!(by_gradient.weights().nnz(), 8192);
    assert!(guided.added.windows(2).all(|w| w[0] < w[1]));
    let (g, a) = (mean_gradient(&guided.added), mean_gradient(&random.added));
    assert!(g > 1.5 * a, "mean |gradient| grown: guided {g}, random {a}");
    // Each new connection starts at zero, as with random growth.
    let grown = by_gradient.weights().positions();
    let values = by_gradient.weights().values();
    for p in &guided.added {
        let slot = grown.binary_search(p).unwrap();
        assert_eq!(values[slot], 0.0);
    }
}

#[test]
fn gradient_growth_without_the_factors_is_an_error() {
    let mut r = StdRng::seed_from_u64(3);
    let (mut layer, _) = trained(&mut r, 10, 10, 40);
    let base = layer.weights().positions();
    let got = evolve_layer(
        &mut layer,
        0.2,
        &mut GradientGrowth { candidates: 4 },
        &mut r,
        None,
    );
    assert!(matches!(got, Err(Error::NoGradient)), "{got:?}");
    assert_eq!(layer.weights().positions(), base, "unchanged on error");
}

#[test]
fn a_network_without_every_layers_factors_is_left_untouched() {
    use set_evolve::evolve_network;
    let mut r = StdRng::seed_from_u64(4);
    let layers = vec![
        Layer::from(SparseLinear::random(12, 16, 60, &mut r).unwrap()),
        Layer::from(SparseLinear::random(16, 8, 40, &mut r).unwrap()),
    ];
    let mut net = Mlp::new(layers, Output::Linear).unwrap();
    let positions = |net: &Mlp| -> Vec<Vec<usize>> {
        net.layers()
            .iter()
            .map(|l| match l {
                Layer::Sparse(s) => s.weights().positions(),
                Layer::Dense(_) => unreachable!(),
            })
            .collect()
    };
    let base = positions(&net);
    let mut growth = Growth::Gradient { candidates: 2 };
    // A forward pass alone: no gradient factors for any layer.
    let mut ws = Workspace::new();
    net.forward(&acts(&mut r, 12, 5), &mut ws).unwrap();
    let got = evolve_network(&mut net, None, None, 0.2, &mut growth, &mut r, Some(&ws));
    assert!(matches!(got, Err(Error::NoGradient)), "{got:?}");
    assert_eq!(positions(&net), base);
    // After backward both layers have them, and the network evolves.
    net.backward(&mut ws, &acts(&mut r, 8, 5), None, None)
        .unwrap();
    let changes =
        evolve_network(&mut net, None, None, 0.2, &mut growth, &mut r, Some(&ws)).unwrap();
    assert_eq!(changes.len(), 2);
    assert_ne!(positions(&net), base);
}
