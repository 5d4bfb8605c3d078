//! Environment steps per second with uniformly random actions (Hopper-v3, Humanoid-v3).
//!
//! Each measured iteration is one `step` (frame_skip MuJoCo steps, `mj_rnePostConstraint`,
//! observation, reward, flags, info). When an episode ends the environment is reset outside the
//! timed region, so the figure is the cost of a step alone.

use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn bench_task(group: &mut BenchmarkGroup<'_, WallTime>, id: &str) {
    let mut env = mujoco_env::make(id).expect("task");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let (low, high) = (env.action_low().to_vec(), env.action_high().to_vec());
    let mut seed = 0u64;
    env.reset(Some(seed));
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut action = vec![0.0; low.len()];
            for _ in 0..iters {
                for (a, (&lo, &hi)) in action.iter_mut().zip(low.iter().zip(&high)) {
                    *a = rng.random_range(lo..hi);
                }
                let start = Instant::now();
                let step = env
                    .step(std::hint::black_box(&action))
                    .expect("valid action");
                total += start.elapsed();
                if step.terminated || step.truncated {
                    seed += 1;
                    env.reset(Some(seed));
                }
            }
            total
        });
    });
}

fn steps(c: &mut Criterion) {
    eprintln!("MuJoCo mj_version() = {}", mujoco_env::mujoco_version());
    let mut group = c.benchmark_group("env_step");
    // One element = one environment step, so criterion also reports steps per second.
    group.throughput(Throughput::Elements(1));
    bench_task(&mut group, "Hopper-v3");
    bench_task(&mut group, "Humanoid-v3");
    group.finish();
}

criterion_group!(benches, steps);
criterion_main!(benches);
