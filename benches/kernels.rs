//! Sparse layer kernels against dense matrixmultiply at 256×256.
//!
//! Throughput is reported in elements/s where one element is one FLOP (2 per multiply-add,
//! counted as the kernels count it), so criterion's `Gelem/s` reads as GFLOPS; compare times
//! within one run for sparse/dense ratios.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, DenseLinear, Layer, SparseLinear};
use std::hint::black_box;

const N: usize = 256;
const BATCH: usize = 256;

fn random_acts(rng: &mut StdRng, features: usize, batch: usize) -> Activations {
    let data: Vec<f32> = (0..features * batch)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Activations::from_samples(features, batch, &data).expect("shape is consistent")
}

/// The layers compared: dense, then sparse at each density.
fn layers(rng: &mut StdRng) -> Vec<(String, Layer)> {
    let mut out = vec![(
        "dense".to_string(),
        DenseLinear::pytorch_default(N, N, rng)
            .expect("valid shape")
            .into(),
    )];
    for density in [0.5, 0.1] {
        let count = (density * (N * N) as f64) as usize;
        let layer = SparseLinear::random(N, N, count, rng).expect("valid shape");
        out.push((format!("sparse-{density}"), layer.into()));
    }
    out
}

fn kernels(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let x = random_acts(&mut rng, N, BATCH);
    let dy = random_acts(&mut rng, N, BATCH);
    let mut y = Activations::zeros(N, BATCH);
    let mut dx = Activations::zeros(N, BATCH);
    for (name, layer) in layers(&mut rng) {
        let flops = 2 * (layer.live_connections() * BATCH) as u64;
        let mut grads = layer.zero_grads();
        let mut group = c.benchmark_group(format!("256x256-batch{BATCH}"));
        group.throughput(Throughput::Elements(flops));
        group.bench_function(BenchmarkId::new("forward", &name), |b| {
            b.iter(|| layer.forward(black_box(&x), &mut y).expect("shapes match"))
        });
        group.bench_function(BenchmarkId::new("backward-data", &name), |b| {
            b.iter(|| {
                layer
                    .backward_data(black_box(&dy), &mut dx)
                    .expect("shapes match")
            })
        });
        group.bench_function(BenchmarkId::new("weight-grad", &name), |b| {
            b.iter(|| {
                layer
                    .param_grads(black_box(&dy), &x, &mut grads)
                    .expect("shapes match")
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = kernels
}
criterion_main!(benches);
