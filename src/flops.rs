//! `ds-td3 flops`: the paper's Table 2 (connections and training FLOPs over a run) from our own
//! counters, for dense TD3, Static-TD3 and DS-TD3 (or, with `--family sac`, SAC, Static-SAC and
//! DS-SAC).
//!
//! For each algorithm, a short real run: a random phase of real environment steps fills the
//! replay buffer, then the agent takes `--iterations` iterations on minibatches sampled from
//! it. The FLOPs the kernels counted during those iterations, per iteration, are extrapolated to
//! the training iterations of a full run (one per environment step after the random phase: the
//! paper's 25 000 steps, SAC's 10 000). Beside it, the same quantity counted analytically from each layer's shape and
//! connection count and the update's structure ([`analytic_per_iteration`]); the two must agree
//! exactly, since FLOPs depend only on connection counts, which never change.
//!
//! Convention (ours, [`sparse_core::flops`]): every kernel that runs is counted, 2 FLOPs per
//! multiply-add and 1 per bias-gradient addition: the target networks' forward passes, both
//! critics' forward, weight-gradient and backward-data passes (none into the critic input), and
//! every `d`-th iteration the actor's forward through Q₁ and back (data gradients of every Q₁
//! layer, no Q₁ weight gradients) and the actor's own backward pass. SAC's next actions come
//! from the online actor (no actor target), and its actor step goes through both critics. Acting in the environment,
//! activation functions, the optimiser and topology updates are not counted. The paper (RigL's
//! convention) reports 1.07e14 FLOPs for dense TD3 on HalfCheetah over 1e6 steps and 0.49x that
//! for DS-TD3; its absolute figure rests on its own choice of passes and FLOPs per multiply-add,
//! so the comparable quantity is the sparse/dense ratio.

use clap::Args;
use rand::{SeedableRng, rngs::StdRng};
use sparse_core::{Layer, Mlp};
use td3::{Agent, Algo, Batch, Config, Family, Trainer};

/// Options of `ds-td3 flops`.
#[derive(Debug, Args)]
pub struct FlopsArgs {
    /// Task whose network shapes to count.
    #[arg(long, default_value = "HalfCheetah-v3")]
    pub env: String,
    /// Algorithm family: td3 (TD3, Static-TD3, DS-TD3) or sac (SAC, Static-SAC, DS-SAC).
    #[arg(long, value_enum, default_value = "td3")]
    pub family: FamilyArg,
    /// Iterations to measure (rounded up to whole policy-delay cycles).
    #[arg(long, default_value_t = 200)]
    pub iterations: u64,
    /// Random environment steps that fill the replay buffer before the measured iterations (at
    /// least one minibatch).
    #[arg(long, default_value_t = 1_000)]
    pub random_steps: u64,
    /// Environment steps of the full run extrapolated to (the paper's 1e6).
    #[arg(long, default_value_t = 1_000_000)]
    pub total_steps: u64,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `--family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FamilyArg {
    /// TD3, Static-TD3, DS-TD3.
    Td3,
    /// SAC, Static-SAC, DS-SAC.
    Sac,
}

impl FamilyArg {
    /// The dense, static and dynamic variants of the family.
    fn algos(self) -> [Algo; 3] {
        match self {
            FamilyArg::Td3 => [Algo::Dense, Algo::Static, Algo::Ds],
            FamilyArg::Sac => [Algo::Sac, Algo::StaticSac, Algo::DsSac],
        }
    }
}

/// FLOPs of one layer's passes with `batch` samples.
#[derive(Debug, Clone, Copy)]
struct LayerPasses {
    /// Forward, or backward-data: `2 · connections · batch`.
    product: u64,
    /// Weight gradient plus bias gradient: `2 · connections · batch + n_out · batch`.
    grads: u64,
}

fn passes(layer: &Layer, batch: u64) -> LayerPasses {
    let product = 2 * layer.live_connections() as u64 * batch;
    LayerPasses {
        product,
        grads: product + layer.n_out() as u64 * batch,
    }
}

/// Per network: forward, parameter gradients, backward-data below the first layer, and
/// backward-data of every layer (into the input).
#[derive(Debug, Clone, Copy, Default)]
struct NetPasses {
    forward: u64,
    grads: u64,
    data_hidden: u64,
    data_all: u64,
}

fn net_passes(net: &Mlp, batch: u64) -> NetPasses {
    let mut p = NetPasses::default();
    for (i, layer) in net.layers().iter().enumerate() {
        let l = passes(layer, batch);
        p.forward += l.product;
        p.grads += l.grads;
        p.data_all += l.product;
        if i > 0 {
            p.data_hidden += l.product;
        }
    }
    p
}

/// FLOPs of `iterations` iterations (a multiple of the policy delay `delay`) of the agent's
/// update, TD3's or SAC's, counted from the networks' shapes and connection counts and the
/// structure of the update.
pub fn analytic_per_iteration(agent: &Agent, batch: u64, delay: u64, iterations: u64) -> u64 {
    let actor = net_passes(&agent.actor.net, batch);
    let q = [
        net_passes(&agent.critics[0].net, batch),
        net_passes(&agent.critics[1].net, batch),
    ];
    let critic_targets: u64 = agent
        .critic_targets
        .iter()
        .map(|t| net_passes(t, batch).forward)
        .sum();
    let critics: u64 = q.iter().map(|c| c.forward + c.grads + c.data_hidden).sum();
    let (every, actor_update) = match agent.family() {
        // π'(s') by the actor's target; the actor's step back through Q₁.
        Family::Td3 => (
            critic_targets + net_passes(agent.actor_target.as_ref().expect("TD3"), batch).forward,
            actor.forward + q[0].forward + q[0].data_all + actor.grads + actor.data_hidden,
        ),
        // a' ~ π(·|s') by the online actor; the actor's step back through both critics.
        Family::Sac => (
            critic_targets + actor.forward,
            actor.forward
                + q.iter().map(|c| c.forward + c.data_all).sum::<u64>()
                + actor.grads
                + actor.data_hidden,
        ),
    };
    iterations * (every + critics) + (iterations / delay) * actor_update
}

/// What one algorithm's short run measured.
struct Row {
    algo: Algo,
    connections: usize,
    measured: f64,
    analytic: f64,
    layers: Vec<(String, usize, usize, usize)>,
}

fn measure(args: &FlopsArgs, algo: Algo) -> anyhow::Result<Row> {
    let mut config = Config::paper(&args.env, algo);
    config.seed = args.seed;
    // At least one minibatch in the buffer.
    config.start_steps = args.random_steps.max(config.batch_size as u64);
    config.steps = config.start_steps;
    config.eval_every = config.start_steps;
    config.eval_episodes = 1;
    config.buffer_capacity = config.start_steps as usize;
    // The iterations below run on the agent directly: the steady state, no freeze.
    config.topology_freeze = 0;
    let delay = config.policy_delay;
    let iterations = args.iterations.max(1).div_ceil(delay) * delay;
    let mut trainer = Trainer::new(config.clone())?;
    trainer.run_until(config.start_steps, &mut |_| Ok(()), &|| false)?;
    let replay = trainer.replay().clone();
    let mut agent = trainer.into_agent()?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut batch = Batch::default();
    let before = agent.flops().total();
    for _ in 0..iterations {
        replay.sample(config.batch_size, &mut rng, &mut batch)?;
        agent.train(&batch, &mut rng)?;
    }
    let measured = (agent.flops().total() - before) as f64 / iterations as f64;
    let analytic = analytic_per_iteration(&agent, config.batch_size as u64, delay, iterations)
        as f64
        / iterations as f64;
    let mut layers = Vec::new();
    for (name, net) in ["actor", "critic1", "critic2"]
        .into_iter()
        .zip(agent.online())
    {
        for (i, l) in net.layers().iter().enumerate() {
            layers.push((
                format!("{name}.{i}"),
                l.n_in(),
                l.n_out(),
                l.live_connections(),
            ));
        }
    }
    Ok(Row {
        algo,
        connections: agent.live_connections(),
        measured,
        analytic,
        layers,
    })
}

/// Runs `ds-td3 flops`.
pub fn run(args: &FlopsArgs) -> anyhow::Result<()> {
    let algos = args.family.algos();
    let defaults = Config::paper(&args.env, algos[0]);
    let train_iterations = args.total_steps.saturating_sub(defaults.start_steps);
    let rows = algos
        .into_iter()
        .map(|algo| measure(args, algo))
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "Training FLOPs, {}: batch {}, policy delay {}; measured over {} iterations after {} \
         random steps, extrapolated to {} iterations ({} steps, the first {} random)",
        args.env,
        defaults.batch_size,
        defaults.policy_delay,
        args.iterations.max(1).div_ceil(defaults.policy_delay) * defaults.policy_delay,
        args.random_steps.max(defaults.batch_size as u64),
        train_iterations,
        args.total_steps,
        defaults.start_steps,
    );
    println!();
    println!(
        "{:<10}  {:>11}  {:>16}  {:>16}  {:>12}  {:>8}",
        "algo", "connections", "FLOPs/iteration", "analytic", "FLOPs/run", "/dense"
    );
    let dense_total = rows[0].measured * train_iterations as f64;
    for r in &rows {
        let total = r.measured * train_iterations as f64;
        println!(
            "{:<10}  {:>11}  {:>16.0}  {:>16.0}  {:>12.3e}  {:>8.3}",
            r.algo.name(),
            r.connections,
            r.measured,
            r.analytic,
            total,
            total / dense_total
        );
    }
    let agree = rows.iter().all(|r| r.measured == r.analytic);
    println!(
        "measured and analytic counts {}",
        if agree { "agree exactly" } else { "DISAGREE" }
    );
    println!();
    println!("Connections per layer (online networks; targets hold the same counts):");
    println!(
        "{:<10}  {:>9}  {:>11}  {:>11}  {:>11}",
        "layer",
        "shape",
        algos[0].name(),
        algos[1].name(),
        algos[2].name()
    );
    for (i, (name, n_in, n_out, dense)) in rows[0].layers.iter().enumerate() {
        println!(
            "{name:<10}  {:>9}  {dense:>11}  {:>11}  {:>11}",
            format!("{n_in}x{n_out}"),
            rows[1].layers[i].3,
            rows[2].layers[i].3
        );
    }
    println!();
    if args.family == FamilyArg::Td3 {
        println!(
            "Paper (HalfCheetah, RigL convention): dense 214 784 connections, 1.07e14 FLOPs over 1e6 \
             steps; DS and static 106 169 connections, 0.49x dense. Ours: 2 FLOPs per multiply-add \
             over every kernel run (target forwards, critic and actor updates, bias gradients); \
             dense here = {:.2}x the paper's absolute figure, so compare the ratios.",
            dense_total / 1.07e14
        );
    } else {
        println!(
            "SAC has no published FLOP count to compare with: the /dense column is the saving. \
             Per iteration SAC runs the online actor forward on s' where TD3 runs its target, \
             updates the actor every iteration (d = 1) through both critics, and trains on \
             batches of 256."
        );
    }
    if !agree {
        anyhow::bail!("measured FLOPs differ from the analytic count");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analytic_count_matches_the_kernels_counters() {
        for algo in [Algo::Dense, Algo::Ds, Algo::Sac, Algo::DsSac] {
            let args = FlopsArgs {
                env: "Pendulum-v1".into(),
                family: FamilyArg::Td3,
                iterations: 6,
                random_steps: 150,
                total_steps: 1_000,
                seed: 3,
            };
            let row = measure(&args, algo).unwrap();
            assert_eq!(row.measured, row.analytic, "{algo:?}");
            assert!(row.measured > 0.0);
        }
    }
}
