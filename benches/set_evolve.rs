//! Topology work on a 256×256 layer at density 0.5: one SET evolution (η = 0.05, with Adam and
//! gradient realignment); the same with gradient-guided growth (4 candidates scored per
//! connection grown, from the factors of a batch of 100); one target soft-update-and-prune (τ = 0.005) whose union holds 5%
//! more connections than the budget, as right after an evolution, with a fresh cache; the same
//! through one reused `TargetSync` while the online layer keeps changing as in training (small
//! steps on every weight before each update, a 5% evolution every 500 updates; only the update
//! is timed); one soft update of identical topologies (static sparsity); and, for scale, a plain
//! in-place mix of the layer's 32 768 values.

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use set_evolve::{GradientGrowth, RandomGrowth, TargetSync, evolve_network, soft_update_and_prune};
use sparse_core::{
    Activations, Adam, AdamConfig, Grads, Layer, Mlp, Output, SparseLinear, Workspace,
};

fn network(rng: &mut StdRng) -> Mlp {
    let layer = SparseLinear::random(256, 256, 32_768, rng).expect("valid shape");
    Mlp::new(vec![Layer::from(layer)], Output::Linear).expect("one layer")
}

fn topology(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(0);
    let mut net = network(&mut rng);
    let mut adam = Adam::new(AdamConfig::default(), &net).expect("valid config");
    let mut grads = Grads::zeros_like(&net);
    c.bench_function("evolve 256x256 d0.5 eta0.05 (+Adam, grads)", |b| {
        b.iter(|| {
            evolve_network(
                &mut net,
                Some(&mut adam),
                Some(&mut grads),
                0.05,
                &mut RandomGrowth,
                &mut rng,
                None,
            )
            .expect("state fits")
        })
    });

    // The factors of one training step on a batch of 100.
    let mut ws = Workspace::new();
    let data: Vec<f32> = (0..256 * 100)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let x = Activations::from_samples(256, 100, &data).expect("shape");
    net.forward(&x, &mut ws).expect("shape");
    net.backward(&mut ws, &x, Some(&mut grads), None)
        .expect("shape");
    let mut gradient = GradientGrowth { candidates: 4 };
    c.bench_function(
        "evolve 256x256 d0.5 eta0.05 gradient growth x4 (+Adam, grads)",
        |b| {
            b.iter(|| {
                evolve_network(
                    &mut net,
                    Some(&mut adam),
                    Some(&mut grads),
                    0.05,
                    &mut gradient,
                    &mut rng,
                    Some(&ws),
                )
                .expect("state fits")
            })
        },
    );

    // Online = target evolved once, with non-zero weights on the regrown connections.
    let target = network(&mut rng);
    let mut online = target.clone();
    evolve_network(
        &mut online,
        None,
        None,
        0.05,
        &mut RandomGrowth,
        &mut rng,
        None,
    )
    .expect("evolves");
    let (w, _) = online.layers_mut()[0].params_mut();
    w.iter_mut()
        .filter(|v| **v == 0.0)
        .for_each(|v| *v = rng.random_range(-0.1..0.1));
    c.bench_function("soft-update+prune 256x256 d0.5 (union +5%)", |b| {
        b.iter_batched_ref(
            || target.clone(),
            |t| soft_update_and_prune(t, &online, 0.005).expect("same architecture"),
            BatchSize::SmallInput,
        )
    });

    // One sync for a stream of updates: the online layer steps (untimed) before each.
    let mut stream_online = online.clone();
    let mut stream_target = target.clone();
    let mut sync = TargetSync::new();
    let mut updates = 0u64;
    c.bench_function(
        "TargetSync 256x256 d0.5 (online stepping, evolving every 500)",
        |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    updates += 1;
                    if updates.is_multiple_of(500) {
                        evolve_network(
                            &mut stream_online,
                            None,
                            None,
                            0.05,
                            &mut RandomGrowth,
                            &mut rng,
                            None,
                        )
                        .expect("evolves");
                    }
                    let (w, _) = stream_online.layers_mut()[0].params_mut();
                    w.iter_mut()
                        .for_each(|v| *v += rng.random_range(-1e-3..1e-3));
                    let start = Instant::now();
                    sync.update(&mut stream_target, &stream_online, 0.005)
                        .expect("same architecture");
                    timed += start.elapsed();
                }
                timed
            })
        },
    );

    // Same topology (always so under static sparsity): mixed in place, nothing to prune.
    let mut same = target.clone();
    let (w, _) = same.layers_mut()[0].params_mut();
    w.iter_mut().for_each(|v| *v += 0.01);
    c.bench_function("soft-update 256x256 d0.5 (same topology)", |b| {
        b.iter_batched_ref(
            || target.clone(),
            |t| soft_update_and_prune(t, &same, 0.005).expect("same architecture"),
            BatchSize::SmallInput,
        )
    });

    // The floor: `θ' ← τθ + (1−τ)θ'` over 32 768 values in place.
    let theta = same.layers()[0].weight_values().to_vec();
    let mut theta_target = target.layers()[0].weight_values().to_vec();
    c.bench_function("mix 32768 values", |b| {
        b.iter(|| {
            for (a, &o) in theta_target.iter_mut().zip(&theta) {
                *a = 0.005 * o + 0.995 * *a;
            }
            std::hint::black_box(&mut theta_target);
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = topology
}
criterion_main!(benches);
