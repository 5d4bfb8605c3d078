//! The paper's network sizes (256-256, batch 100, Hopper's dimensions) through an evolution,
//! on 1, 2 and 3 threads, for TD3 and SAC: the twin critics side by side and the large sparse products split by
//! rows must leave every parameter, target and optimiser moment bitwise as on one thread.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, pool};
use td3::{Agent, Algo, Batch, Config};

fn acts(r: &mut StdRng, features: usize, batch: usize) -> Activations {
    let data: Vec<f32> = (0..features * batch)
        .map(|_| r.random_range(-1.0..1.0))
        .collect();
    Activations::from_samples(features, batch, &data).unwrap()
}

/// Every value of every network (online and target) and every Adam moment.
fn state(agent: &Agent) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = agent
        .networks()
        .iter()
        .flat_map(|n| {
            n.layers()
                .iter()
                .flat_map(|l| [l.weight_values().to_vec(), l.bias().to_vec()])
        })
        .collect();
    for learner in [&agent.actor, &agent.critics[0], &agent.critics[1]] {
        for m in learner.adam.layers() {
            out.extend([m.weights.m.clone(), m.weights.v.clone()]);
        }
    }
    out
}

fn run(algo: Algo, threads: usize, iterations: usize) -> (Vec<Vec<f32>>, Vec<f64>) {
    pool::set_threads(threads);
    let mut config = Config::paper("Hopper-v3", algo);
    config.evolution_period = 40;
    let mut r = StdRng::seed_from_u64(5);
    let mut agent = Agent::new(&config, 11, 3, 1.0, &mut r).unwrap();
    agent.set_parallel_critics(threads > 1);
    let n = 100;
    let mut not_done = Activations::zeros(1, n);
    (0..n).for_each(|b| not_done.set(0, b, if b % 7 == 0 { 0.0 } else { 1.0 }));
    let batch = Batch {
        obs: acts(&mut r, 11, n),
        actions: acts(&mut r, 3, n),
        rewards: acts(&mut r, 1, n),
        next_obs: acts(&mut r, 11, n),
        not_done,
    };
    let mut losses = Vec::new();
    for _ in 0..iterations {
        let report = agent.train(&batch, &mut r).unwrap();
        losses.extend([report.critic_loss, report.alpha.unwrap_or(0.0)]);
    }
    (state(&agent), losses)
}

#[test]
fn thread_counts_do_not_change_any_bit() {
    for algo in [Algo::Ds, Algo::Dense, Algo::DsSac] {
        // Two evolutions (every 40 iterations) for DS-TD3 and DS-SAC.
        let iterations = if algo.evolves() { 90 } else { 12 };
        let one = run(algo, 1, iterations);
        for threads in [2, 3] {
            let other = run(algo, threads, iterations);
            assert!(
                one.1 == other.1,
                "{algo:?}: losses differ on {threads} threads"
            );
            assert!(
                one.0 == other.0,
                "{algo:?}: parameters differ on {threads} threads"
            );
        }
    }
    pool::set_threads(1);
}
