//! Sparse layer kernels against dense matrixmultiply at 256×256.
//!
//! For batch 100 (TD3's) and 256, and densities 1.0, 0.5, 0.25, 0.1 and 0.05, each kernel —
//! forward, backward-data, weight gradient — then both backward products (and the bias
//! gradient) as training takes a hidden layer's (`Layer::backward_then`: one fused pass on
//! AVX-512), and the whole layer step (forward and that) of a sparse layer, beside the same for a
//! dense layer. Throughput is reported in
//! elements/s where one element is one FLOP as the kernels count them (2 per multiply-add), so
//! criterion's `Gelem/s` reads as GFLOPS; sparse/dense ratios are read from times within one run.
//! Workloads are shared with `ds-td3 bench` (`ds_td3::workloads`).
//! The kernels run on the process default implementation (`DS_TD3_KERNELS` picks another).
//! `cargo bench --bench kernels -- forward/` (or `backward/`, `step/`, `batch100`, …) runs a
//! subset.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{SeedableRng, rngs::StdRng};
use sparse_core::Activations;
use sparse_core::kernels::Epilogue;
use std::hint::black_box;

use ds_td3::workloads::{KERNEL_BATCHES, KERNEL_NAMES, N, kernel_layers, random_acts};

fn kernels(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let layers = kernel_layers(&mut rng);
    for batch in KERNEL_BATCHES {
        let x = random_acts(&mut rng, N, batch);
        let dy = random_acts(&mut rng, N, batch);
        let mut y = Activations::zeros(N, batch);
        let mut dx = Activations::zeros(N, batch);
        for kernel in KERNEL_NAMES {
            let mut group = c.benchmark_group(format!("{kernel}/256x256-batch{batch}"));
            for (name, layer) in &layers {
                let mac = 2 * (layer.live_connections() * batch) as u64;
                let mut grads = layer.zero_grads();
                let flops = match kernel {
                    "step" => 3 * mac + (N * batch) as u64,
                    "backward" => 2 * mac + (N * batch) as u64,
                    _ => mac,
                };
                group.throughput(Throughput::Elements(flops));
                group.bench_function(BenchmarkId::from_parameter(name), |b| match kernel {
                    "forward" => b.iter(|| layer.forward(black_box(&x), &mut y).expect("shapes")),
                    "backward-data" => b.iter(|| {
                        layer
                            .backward_data(black_box(&dy), &mut dx)
                            .expect("shapes")
                    }),
                    "weight-grad" => b.iter(|| {
                        layer
                            .param_grads(black_box(&dy), &x, &mut grads)
                            .expect("shapes")
                    }),
                    "backward" => b.iter(|| {
                        layer
                            .backward_then(black_box(&dy), &x, &mut grads, &mut dx, Epilogue::None)
                            .expect("shapes")
                    }),
                    _ => b.iter(|| {
                        layer.forward(black_box(&x), &mut y).expect("shapes");
                        layer
                            .backward_then(&dy, &x, &mut grads, &mut dx, Epilogue::None)
                            .expect("shapes");
                    }),
                });
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(200))
        .measurement_time(std::time::Duration::from_millis(700));
    targets = kernels
}
criterion_main!(benches);
