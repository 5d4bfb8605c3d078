//! Shared helpers for sparse-core's integration tests: random data and dense references built
//! independently of the kernels under test.

#![allow(dead_code)]

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, Isa, Layer};

#[path = "../../../../tests/support/skip.rs"]
pub mod skip;

/// The kernel implementations this CPU can run ([`Isa::available`]); each one it cannot run is
/// reported as a visible skip of `what`.
pub fn isas(what: &str) -> Vec<Isa> {
    for isa in Isa::ALL.into_iter().filter(|i| !i.is_available()) {
        skip::skip(&format!("{what} on {isa}"), "this CPU cannot run it");
    }
    Isa::available()
}

/// A seeded RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A `features × batch` buffer of values uniform in [-1, 1).
pub fn random_acts(rng: &mut StdRng, features: usize, batch: usize) -> Activations {
    let data: Vec<f32> = (0..features * batch)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Activations::from_samples(features, batch, &data).unwrap()
}

/// The dense `n_out × n_in` weight matrix of a layer, in f64, built from its stored entries.
pub fn dense_weights(layer: &Layer) -> Vec<Vec<f64>> {
    let (n_in, n_out) = (layer.n_in(), layer.n_out());
    let mut w = vec![vec![0.0; n_in]; n_out];
    match layer {
        Layer::Sparse(s) => {
            for (r, c, v) in s.weights().iter() {
                w[r][c] = v as f64;
            }
        }
        Layer::Dense(d) => {
            for (j, row) in w.iter_mut().enumerate() {
                for (k, x) in row.iter_mut().enumerate() {
                    *x = d.weights()[j * n_in + k] as f64;
                }
            }
        }
    }
    w
}

/// Asserts `|got - want| <= rel * scale + 1e-30` where `scale` is the sum of the absolute values
/// of the terms that formed `want` (a norm-wise relative error bound that stays meaningful when
/// terms cancel).
pub fn assert_close(what: &str, got: f32, want: f64, scale: f64, rel: f64) {
    let err = (got as f64 - want).abs();
    assert!(
        err <= rel * scale + 1e-30,
        "{what}: got {got}, want {want} (error {err:e}, allowed {:e})",
        rel * scale
    );
}
