//! Adam against a hand-written f64 reference of PyTorch's update formula, a closed form for the
//! first step, and state remapping across a topology change.

// The reference is written with explicit indices, as the formula reads.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{random_acts, rng};
use sparse_core::{
    Adam, AdamConfig, BiasCorrection, Csr, Grads, Layer, LayerKind, Mlp, Output, Remap,
    SparseLinear, SparseWeights, Workspace,
};

/// PyTorch's Adam for one parameter array, written from its documented formula in f64:
/// g += wd·p; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²; p -= lr · m̂ / (√v̂ + ε).
struct Reference {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Reference {
    fn step(&mut self, grad: &[f32], c: &AdamConfig) {
        self.t += 1;
        for i in 0..self.p.len() {
            let g = grad[i] as f64 + c.weight_decay * self.p[i];
            self.m[i] = c.beta1 * self.m[i] + (1.0 - c.beta1) * g;
            self.v[i] = c.beta2 * self.v[i] + (1.0 - c.beta2) * g * g;
            let m_hat = self.m[i] / (1.0 - c.beta1.powi(self.t));
            let v_hat = self.v[i] / (1.0 - c.beta2.powi(self.t));
            self.p[i] -= c.lr * m_hat / (v_hat.sqrt() + c.eps);
        }
    }
}

fn flat_params(mlp: &Mlp) -> Vec<f32> {
    mlp.layers()
        .iter()
        .flat_map(|l| l.weight_values().iter().chain(l.bias()).copied())
        .collect()
}

fn flat_grads(g: &Grads) -> Vec<f32> {
    g.layers()
        .iter()
        .flat_map(|l| l.weights.iter().chain(&l.bias).copied())
        .collect()
}

fn run_against_reference(weight_decay: f64) {
    let mut r = rng(7);
    let kinds = [LayerKind::Sparse { lambda: 2.0 }, LayerKind::Dense];
    let mut mlp = Mlp::init(&[6, 8, 2], &kinds, Output::Linear, &mut r).unwrap();
    let config = AdamConfig {
        lr: 1e-2,
        weight_decay,
        ..AdamConfig::default()
    };
    let mut adam = Adam::new(config, &mlp).unwrap();
    let mut reference = Reference {
        p: flat_params(&mlp).iter().map(|&v| v as f64).collect(),
        m: vec![0.0; flat_params(&mlp).len()],
        v: vec![0.0; flat_params(&mlp).len()],
        t: 0,
    };
    let x = random_acts(&mut r, 6, 16);
    let target = random_acts(&mut r, 2, 16);
    let mut ws = Workspace::new();
    let mut grads = Grads::zeros_like(&mlp);
    for step in 0..8 {
        // Squared-error loss gradient: d/dy Σ (y - t)².
        let y = mlp.forward(&x, &mut ws).unwrap().clone();
        let mut dy = y.clone();
        for f in 0..2 {
            for b in 0..16 {
                dy.set(f, b, 2.0 * (y.get(f, b) - target.get(f, b)));
            }
        }
        mlp.backward(&mut ws, &dy, Some(&mut grads), None).unwrap();
        let g = flat_grads(&grads);
        adam.step(&mut mlp, &grads).unwrap();
        reference.step(&g, &config);
        for (i, (&got, &want)) in flat_params(&mlp).iter().zip(&reference.p).enumerate() {
            let err = (got as f64 - want).abs();
            assert!(
                err <= 1e-6 + 1e-5 * want.abs(),
                "step {step} param {i}: {got} vs {want}"
            );
        }
    }
    assert_eq!(adam.steps(), 8);
}

#[test]
fn matches_reference_without_weight_decay() {
    run_against_reference(0.0);
}

#[test]
fn matches_reference_with_weight_decay() {
    run_against_reference(1e-2);
}

#[test]
fn first_step_moves_each_parameter_by_lr_against_its_gradient_sign() {
    // Closed form: after one step m̂ = g and v̂ = g², so Δp = -lr · g / (|g| + ε).
    let mut r = rng(8);
    let mut mlp = Mlp::init(&[3, 4], &[LayerKind::Dense], Output::Linear, &mut r).unwrap();
    let before = flat_params(&mlp);
    let mut grads = Grads::zeros_like(&mlp);
    let g = [0.5f32, -2.0, 1e-3, -7.0];
    for (i, w) in grads.layers_mut()[0].weights.iter_mut().enumerate() {
        *w = g[i % 4];
    }
    let mut adam = Adam::new(AdamConfig::default(), &mlp).unwrap();
    adam.step(&mut mlp, &grads).unwrap();
    let after = flat_params(&mlp);
    for i in 0..12 {
        let gi = g[i % 4] as f64;
        let want = before[i] as f64 - 1e-3 * gi / (gi.abs() + 1e-8);
        assert!((after[i] as f64 - want).abs() < 1e-7, "weight {i}");
    }
    // Zero bias gradient: no move.
    assert_eq!(&after[12..], &before[12..]);
}

#[test]
fn remap_keeps_survivors_moments_and_zeroes_new_ones() {
    let mut r = rng(9);
    let layer = SparseLinear::random(6, 5, 12, &mut r).unwrap();
    let mut mlp = Mlp::new(vec![Layer::from(layer)], Output::Linear).unwrap();
    let mut adam = Adam::new(AdamConfig::default(), &mlp).unwrap();
    let mut grads = Grads::zeros_like(&mlp);
    for (i, g) in grads.layers_mut()[0].weights.iter_mut().enumerate() {
        *g = 0.1 * (i as f32 + 1.0);
    }
    adam.step(&mut mlp, &grads).unwrap();
    let old_moments = adam.layers()[0].weights.clone();

    // New topology: drop every third live connection, add positions that were not live.
    let Layer::Sparse(sparse) = &mlp.layers()[0] else {
        unreachable!()
    };
    let SparseWeights::U16(old) = sparse.weights().clone() else {
        unreachable!()
    };
    let old_pos = old.positions();
    let mut new_pos: Vec<usize> = old_pos
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, &p)| p)
        .collect();
    let mut free = (0..30).filter(|p| !old_pos.contains(p));
    let added: Vec<usize> = (0..4).map(|_| free.next().unwrap()).collect();
    new_pos.extend(&added);
    new_pos.sort_unstable();
    let new = Csr::<u16>::from_positions(5, 6, &new_pos, vec![0.0; new_pos.len()]).unwrap();
    let remap = Remap::between(&old, &new).unwrap();
    assert_eq!(remap.num_new(), 4);
    adam.remap_layer(0, &remap).unwrap();

    let moments = &adam.layers()[0].weights;
    for (i, p) in new_pos.iter().enumerate() {
        match old_pos.iter().position(|q| q == p) {
            Some(o) => {
                assert_eq!(moments.m[i], old_moments.m[o]);
                assert_eq!(moments.v[i], old_moments.v[o]);
                assert_ne!(moments.v[i], 0.0);
            }
            None => {
                assert!(added.contains(p));
                assert_eq!((moments.m[i], moments.v[i]), (0.0, 0.0));
            }
        }
    }
    // A remap built for another length, or for a missing layer, is rejected.
    let short = Remap::new(&[Some(0), None], 5).unwrap();
    assert!(adam.remap_layer(0, &short).is_err());
    assert!(adam.remap_layer(3, &remap).is_err());
    assert!(Remap::new(&[Some(5)], 5).is_err());
}

#[test]
fn invalid_settings_are_rejected() {
    let mut r = rng(10);
    let mlp = Mlp::init(&[2, 2], &[LayerKind::Dense], Output::Linear, &mut r).unwrap();
    for bad in [
        AdamConfig {
            lr: -1.0,
            ..Default::default()
        },
        AdamConfig {
            beta1: 1.0,
            ..Default::default()
        },
        AdamConfig {
            beta2: f64::NAN,
            ..Default::default()
        },
        AdamConfig {
            eps: -1e-8,
            ..Default::default()
        },
        AdamConfig {
            weight_decay: f64::INFINITY,
            ..Default::default()
        },
    ] {
        assert!(Adam::new(bad, &mlp).is_err(), "{bad:?}");
    }
}

/// A one-layer sparse network, its Adam state under `bias_correction`, and gradients of 0.3
/// for every weight, after `warm` steps.
fn warm_sparse(bias_correction: BiasCorrection, warm: u64) -> (Mlp, Adam, Grads) {
    let mut r = rng(11);
    let layer = SparseLinear::random(8, 6, 20, &mut r).unwrap();
    let mut mlp = Mlp::new(vec![Layer::from(layer)], Output::Linear).unwrap();
    let config = AdamConfig {
        bias_correction,
        ..Default::default()
    };
    let mut adam = Adam::new(config, &mlp).unwrap();
    let mut grads = Grads::zeros_like(&mlp);
    grads.layers_mut()[0].weights.fill(0.3);
    for _ in 0..warm {
        adam.step(&mut mlp, &grads).unwrap();
    }
    (mlp, adam, grads)
}

/// Slots 2 and 5 become new connections (zero moments) after `adam`'s current step.
fn renew_slots(adam: &mut Adam) {
    let sources: Vec<Option<usize>> = (0..20).map(|s| (s != 2 && s != 5).then_some(s)).collect();
    adam.remap_layer(0, &Remap::new(&sources, 20).unwrap())
        .unwrap();
}

#[test]
fn a_new_connection_steps_like_a_warm_one_under_per_connection_bias_correction() {
    // Hand-computed reference, from zero moments under a steady gradient g: after k steps
    // m = (1 − β1ᵏ) g and v = (1 − β2ᵏ) g², so with bias correction by the age k the step is
    // lr·g/(|g| + ε), a warm connection's; corrected by the network's t instead it is
    // lr·(1 − β1ᵏ)/(1 − β1ᵗ)·g / (√(1 − β2ᵏ)/√(1 − β2ᵗ)·|g| + ε): 3.2× at k = 1 for a large t
    // (2.5× at t = 1001).
    let (lr, b1, b2, eps, g) = (1e-3f64, 0.9f64, 0.999f64, 1e-8f64, 0.3f64);
    let step_of = |k: i32, t: i32| {
        let m = (1.0 - b1.powi(k)) * g;
        let v = (1.0 - b2.powi(k)) * g * g;
        lr * (m / (1.0 - b1.powi(t))) / (v.sqrt() / (1.0 - b2.powi(t)).sqrt() + eps)
    };
    let warm_step = step_of(2000, 2000);
    assert!((step_of(1, 1_000_000) / warm_step - 3.16).abs() < 0.01);
    assert!((step_of(1, 1001) / warm_step - 2.51).abs() < 0.01);
    for (mode, by_age) in [
        (BiasCorrection::Connection, true),
        (BiasCorrection::Network, false),
    ] {
        let (mut mlp, mut adam, grads) = warm_sparse(mode, 1000);
        renew_slots(&mut adam);
        for k in 1..=30 {
            let before = mlp.layers()[0].weight_values().to_vec();
            adam.step(&mut mlp, &grads).unwrap();
            let after = mlp.layers()[0].weight_values();
            let t = 1000 + k;
            let want = if by_age { step_of(k, k) } else { step_of(k, t) };
            for slot in [2, 5] {
                let got = (before[slot] - after[slot]) as f64;
                assert!(
                    (got - want).abs() <= 1e-3 * want,
                    "{mode:?} k {k} slot {slot}: step {got}, hand-computed {want}"
                );
            }
            // A connection present from the start takes a warm step in both modes.
            let got = (before[0] - after[0]) as f64;
            assert!(
                (got - step_of(t, t)).abs() <= 1e-3 * warm_step,
                "{mode:?} k {k}"
            );
        }
        let ages = adam.ages(0);
        assert_eq!(ages[0], 1030);
        assert_eq!(ages[2], if by_age { 30 } else { 1030 });
    }
}

#[test]
fn cohorts_keep_their_ages_and_merge_when_mature() {
    let (mut mlp, mut adam, grads) = warm_sparse(BiasCorrection::Connection, 10);
    renew_slots(&mut adam); // born after step 10
    for _ in 0..5 {
        adam.step(&mut mlp, &grads).unwrap();
    }
    // Slot 5 renewed again after step 15: a second cohort; slot 2 keeps its age.
    let sources: Vec<Option<usize>> = (0..20).map(|s| (s != 5).then_some(s)).collect();
    adam.remap_layer(0, &Remap::new(&sources, 20).unwrap())
        .unwrap();
    adam.step(&mut mlp, &grads).unwrap();
    let ages = adam.ages(0);
    assert_eq!((ages[0], ages[2], ages[5]), (16, 6, 1));
    // Far later, both cohorts' scalars equal the limit in f32 (β2ᵃ < 2⁻²⁴ needs a > 16 600):
    // the next topology change merges them into the original cohort, exactly.
    for _ in 0..20_000 {
        adam.step(&mut mlp, &grads).unwrap();
    }
    let sources: Vec<Option<usize>> = (0..20).map(|s| (s != 7).then_some(s)).collect();
    adam.remap_layer(0, &Remap::new(&sources, 20).unwrap())
        .unwrap();
    let ages = adam.ages(0);
    assert_eq!(
        (ages[0], ages[2], ages[5], ages[7]),
        (20_016, 20_016, 20_016, 0)
    );
    // Network correction keeps no ages of its own.
    let (_, mut net_adam, _) = warm_sparse(BiasCorrection::Network, 10);
    renew_slots(&mut net_adam);
    assert!(net_adam.ages(0).iter().all(|&a| a == 10));
}
