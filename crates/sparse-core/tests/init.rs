//! Erdős–Rényi initialisation: the paper's connection counts, value ranges, uniformity,
//! reproducibility, and invalid λ.

mod common;

use common::rng;
use sparse_core::{Error, Layer, LayerKind, Mlp, Output, SparseLinear, er_connections};

/// Actor plus two critics, as in TD3, with the paper's layer kinds.
fn td3_connections(obs: usize, act: usize, kinds: [LayerKind; 3]) -> usize {
    let mut r = rng(1);
    let actor = Mlp::init(
        &[obs, 256, 256, act],
        &kinds,
        Output::Tanh { bound: 1.0 },
        &mut r,
    );
    let critic = |r: &mut _| Mlp::init(&[obs + act, 256, 256, 1], &kinds, Output::Linear, r);
    let (q1, q2) = (critic(&mut r).unwrap(), critic(&mut r).unwrap());
    actor.unwrap().live_connections() + q1.live_connections() + q2.live_connections()
}

const SPARSE: [LayerKind; 3] = [
    LayerKind::Sparse { lambda: 7.0 },
    LayerKind::Sparse { lambda: 64.0 },
    LayerKind::Dense,
];
const DENSE: [LayerKind; 3] = [LayerKind::Dense; 3];

#[test]
fn paper_table_2_connection_counts() {
    // HalfCheetah (17 obs, 6 actions) and Hopper (11, 3): the counts the paper reports.
    assert_eq!(td3_connections(17, 6, SPARSE), 106_169);
    assert_eq!(td3_connections(17, 6, DENSE), 214_784);
    assert_eq!(td3_connections(11, 3, SPARSE), 105_233);
    assert_eq!(td3_connections(11, 3, DENSE), 207_872);
}

#[test]
fn counts_round_and_cap() {
    assert_eq!(er_connections(256, 256, 64.0).unwrap(), 32_768);
    assert_eq!(er_connections(10, 10, 0.26).unwrap(), 5); // 5.2 rounds down
    assert_eq!(er_connections(10, 10, 0.275).unwrap(), 6); // 5.5 rounds up
    assert_eq!(er_connections(4, 3, 100.0).unwrap(), 12); // capped at dense
    let layer = SparseLinear::erdos_renyi(4, 3, 100.0, &mut rng(2)).unwrap();
    assert_eq!(Layer::from(layer).live_connections(), 12);
}

#[test]
fn invalid_lambda_is_an_error() {
    for lambda in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            er_connections(5, 5, lambda),
            Err(Error::InvalidLambda(_))
        ));
        assert!(SparseLinear::erdos_renyi(5, 5, lambda, &mut rng(3)).is_err());
        let kinds = [LayerKind::Sparse { lambda }];
        assert!(Mlp::init(&[5, 5], &kinds, Output::Linear, &mut rng(3)).is_err());
    }
    assert!(er_connections(0, 5, 1.0).is_err());
    assert!(er_connections(5, 0, 1.0).is_err());
}

#[test]
fn values_follow_pytorch_default_bounds() {
    let mut r = rng(4);
    let n_in = 49;
    let layer = Layer::from(SparseLinear::erdos_renyi(n_in, 300, 20.0, &mut r).unwrap());
    let bound = 1.0 / (n_in as f32).sqrt();
    let vals: Vec<f32> = layer
        .weight_values()
        .iter()
        .chain(layer.bias())
        .copied()
        .collect();
    assert!(vals.iter().all(|v| v.abs() <= bound));
    // Uniform on [-b, b]: mean 0, variance b²/3 (n = 7 000 draws; 5-sigma bands).
    let n = vals.len() as f64;
    let mean = vals.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = vals.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let b = bound as f64;
    assert!(mean.abs() < 5.0 * b / (3.0 * n).sqrt(), "mean {mean}");
    assert!(
        (var - b * b / 3.0).abs() < 5.0 * b * b * (4.0f64 / 45.0 / n).sqrt(),
        "var {var}"
    );
}

#[test]
fn positions_are_uniform() {
    // 2 000 layers of 4×5 with 6 connections: each cell is live with probability 6/20.
    let mut r = rng(5);
    let mut hits = [0usize; 20];
    let trials = 2_000;
    for _ in 0..trials {
        let layer = SparseLinear::random(5, 4, 6, &mut r).unwrap();
        for p in layer.weights().positions() {
            hits[p] += 1;
        }
    }
    let expected = trials as f64 * 6.0 / 20.0;
    let chi2: f64 = hits
        .iter()
        .map(|&h| (h as f64 - expected).powi(2) / expected)
        .sum();
    // 19 degrees of freedom (cells are not independent, which only lowers the statistic);
    // the 0.999 quantile is 43.8.
    assert!(chi2 < 43.8, "chi-square {chi2}, hits {hits:?}");
}

#[test]
fn same_seed_same_network() {
    let make =
        |seed| Mlp::init(&[11, 256, 256, 3], &SPARSE, Output::Linear, &mut rng(seed)).unwrap();
    let (a, b, c) = (make(9), make(9), make(10));
    let params = |m: &Mlp| -> Vec<(Vec<f32>, Vec<f32>)> {
        m.layers()
            .iter()
            .map(|l| (l.weight_values().to_vec(), l.bias().to_vec()))
            .collect()
    };
    let topo = |m: &Mlp| -> Vec<Vec<usize>> {
        m.layers()
            .iter()
            .filter_map(|l| match l {
                Layer::Sparse(s) => Some(s.weights().positions()),
                Layer::Dense(_) => None,
            })
            .collect()
    };
    assert_eq!(params(&a), params(&b));
    assert_eq!(topo(&a), topo(&b));
    assert_ne!(topo(&a), topo(&c));
}

/// The sparsity solver against a count by hand: for the networks of the MuJoCo tasks (first
/// layer `obs × 256` or `(obs + act) × 256`, then `256 × 256`) and sparsities from 0 to 0.99, the
/// layers built at the solved λ hold the target count within one connection per layer, each
/// at the Erdős–Rényi count for that λ.
#[test]
fn sparsity_solver_hits_the_target_within_one_connection_per_layer() {
    use sparse_core::er_lambda_for_sparsity;
    for n_in in [3, 11, 14, 17, 23, 111, 119, 376, 393] {
        let shapes = [(n_in, 256), (256, 256)];
        let full = (n_in * 256 + 256 * 256) as f64;
        for s in [0.0, 0.3, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99] {
            let lambda = er_lambda_for_sparsity(&shapes, s).unwrap();
            let counts: Vec<usize> = shapes
                .iter()
                .map(|&(i, o)| er_connections(i, o, lambda).unwrap())
                .collect();
            let total: usize = counts.iter().sum();
            let target = ((1.0 - s) * full).round() as usize;
            assert!(
                total.abs_diff(target) <= shapes.len(),
                "n_in {n_in}, S {s}: λ {lambda} gives {total}, target {target}"
            );
            // The Erdős–Rényi rule: each layer at round(λ (n_in + n_out)) unless full.
            for (&(i, o), &c) in shapes.iter().zip(&counts) {
                let rule = (lambda * (i + o) as f64).round() as usize;
                assert_eq!(c, rule.min(i * o), "n_in {n_in}, S {s}");
            }
            // Built layers hold exactly those counts.
            let mut r = rng(n_in as u64);
            let built: usize = shapes
                .iter()
                .map(|&(i, o)| {
                    SparseLinear::erdos_renyi(i, o, lambda, &mut r)
                        .unwrap()
                        .weights()
                        .nnz()
                })
                .sum();
            assert_eq!(built, total);
        }
    }
    // Sparsity 0 makes every layer full; bad input is an error.
    let shapes = [(11, 256), (256, 256)];
    let lambda = er_lambda_for_sparsity(&shapes, 0.0).unwrap();
    assert_eq!(er_connections(256, 256, lambda).unwrap(), 256 * 256);
    for bad in [1.0, -0.1, f64::NAN] {
        let err = er_lambda_for_sparsity(&shapes, bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("sparsity must lie in [0, 1)"), "{err}");
    }
    assert!(er_lambda_for_sparsity(&[], 0.5).is_err());
}
