//! Topology work on a 256×256 layer at density 0.5: one SET evolution (η = 0.05, with Adam and
//! gradient realignment); one target soft-update-and-prune (τ = 0.005) whose union holds 5%
//! more connections than the budget, as right after an evolution; and one soft update of
//! identical topologies (static sparsity).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use set_evolve::{RandomGrowth, evolve_network, soft_update_and_prune};
use sparse_core::{Adam, AdamConfig, Grads, Layer, Mlp, Output, SparseLinear};

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
            )
            .expect("state fits")
        })
    });

    // Online = target evolved once, with non-zero weights on the regrown connections.
    let target = network(&mut rng);
    let mut online = target.clone();
    evolve_network(&mut online, None, None, 0.05, &mut RandomGrowth, &mut rng).expect("evolves");
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
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = topology
}
criterion_main!(benches);
