//! One whole TD3 training iteration ([`td3::Agent::train`]: target computation, both critic
//! updates, and every second iteration the actor update and the soft update of all three targets
//! with re-pruning; evolution every 1 000 iterations) on a synthetic minibatch of 100, one
//! thread, for dense TD3, DS-TD3 at the paper's λ and DS-TD3 at 90% and 95% sparsity (gradient
//! growth), with Hopper and HalfCheetah network shapes. Throughput is in FLOPs as the kernels count them, so
//! `Gelem/s` reads as GFLOPS; compare times within one run for DS/dense ratios. Workloads are
//! shared with `ds-td3 bench` (`ds_td3::workloads`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use ds_td3::workloads::{SHAPES, Setting, warm_agent};

fn td3_iteration(c: &mut Criterion) {
    for shape in SHAPES {
        let mut group = c.benchmark_group(format!("td3-iteration/{}", shape.env));
        for setting in Setting::ALL {
            let (mut agent, batch, mut rng) = warm_agent(shape, setting, td3::Device::Cpu, 0);
            // FLOPs of the next 1 000 iterations (one evolution, 500 actor/target updates).
            let before = agent.flops().total();
            for _ in 0..1_000 {
                agent.train(&batch, &mut rng).expect("iteration runs");
            }
            let per_iteration = (agent.flops().total() - before) / 1_000;
            group.throughput(Throughput::Elements(per_iteration));
            group.bench_function(BenchmarkId::from_parameter(setting.name()), |b| {
                b.iter(|| agent.train(&batch, &mut rng).expect("iteration runs"))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = td3_iteration
}
criterion_main!(benches);
