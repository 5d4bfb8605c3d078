//! What `ds-td3 train` prints: the configuration and networks at the start, the result at the
//! end.

use td3::Trainer;

use crate::run_dir::RunDir;

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Prints the configuration, the networks layer by layer and the memory held.
pub fn print_start(trainer: &Trainer, dir: &RunDir) {
    let c = trainer.config();
    println!("run directory: {}", dir.root().display());
    println!(
        "{} on {} (seed {}), {} steps, {} thread(s), on {}",
        c.algo.label(),
        c.env,
        c.seed,
        c.steps,
        c.threads,
        trainer
            .agent()
            .gpu_name()
            .unwrap_or_else(|| "the CPU".into())
    );
    let sparsity = match c.sparsity {
        None => format!("λ1 {} λ2 {}", c.lambda1, c.lambda2),
        Some(s) => {
            let (obs, act) = trainer.dims();
            let lambda = |n_in, critic| c.lambdas(n_in, critic).map_or(f64::NAN, |l| l.0);
            let critics = c
                .critic_sparsity
                .map_or(String::new(), |s| format!(", critics {s}"));
            format!(
                "sparsity {s}{critics} (λ actor {:.4}, critics {:.4})",
                lambda(obs, false),
                lambda(obs + act, true)
            )
        }
    };
    let growth = match c.growth {
        td3::Growth::Random => String::new(),
        td3::Growth::Gradient { candidates } => format!(" growth gradient×{candidates}"),
    };
    let n_step = match (c.n_step, c.n_step_after) {
        (1, _) => String::new(),
        (n, 0) => format!(" n-step {n}"),
        (n, after) => format!(" n-step {n} after {after} iterations"),
    };
    let exploration = match &trainer.agent().temperature {
        // TD3: target smoothing noise and its clip, exploration noise.
        None => format!(
            "policy noise {} clip {} exploration {}",
            c.policy_noise, c.noise_clip, c.expl_noise
        ),
        Some(t) => format!(
            "temperature α {} learned towards entropy {}",
            t.alpha(),
            t.target_entropy()
        ),
    };
    println!(
        "  {sparsity} hidden {} | e {} η {}{growth} freeze {} bias correction {} | γ {}{n_step} τ {} d {} | {exploration} | lr {} wd {} batch {} | start {} eval every {}×{}",
        c.hidden,
        c.evolution_period,
        c.evolution_fraction,
        c.topology_freeze,
        match c.bias_correction {
            sparse_core::BiasCorrection::Connection => "per connection",
            sparse_core::BiasCorrection::Network => "per network",
        },
        c.gamma,
        c.tau,
        c.policy_delay,
        c.lr,
        c.weight_decay,
        c.batch_size,
        c.start_steps,
        c.eval_every,
        c.eval_episodes
    );
    let agent = trainer.agent();
    let names = ["actor", "critic 1", "critic 2"];
    for (name, net) in names.iter().zip(agent.online()) {
        let layers: Vec<String> = net
            .layers()
            .iter()
            .map(|l| {
                let kind = if l.is_sparse() { "sparse" } else { "dense" };
                format!("{}→{} {kind} {}", l.n_in(), l.n_out(), l.live_connections())
            })
            .collect();
        println!(
            "  {name:<8} {:>7} connections: {}",
            net.live_connections(),
            layers.join(", ")
        );
    }
    println!(
        "  total: {} live connections (biases excluded)",
        agent.live_connections()
    );
    let (online, targets) = agent.memory();
    let params = online.values + online.col_indices + online.row_ptrs + online.biases;
    let replay = trainer.replay();
    println!(
        "  memory: networks {} (targets {}), gradients {}, Adam state {}, replay buffer {} \
         allocated ({} transitions, {}, each observation once; + {} B per episode end held)",
        mib(params),
        mib(targets.total()),
        mib(online.gradients),
        mib(online.optimizer),
        mib(replay.bytes()),
        replay.capacity(),
        replay.dtype(),
        replay.bytes_per_episode_end()
    );
    if let Some(bytes) = agent.gpu_bytes() {
        println!(
            "  device memory: {} (networks, targets, gradients, Adam state, batch buffers)",
            mib(bytes)
        );
    }
}

/// Prints how to continue an interrupted run.
pub fn print_interrupted(trainer: &Trainer, dir: &RunDir) {
    println!(
        "interrupted at step {}; checkpoint written. Continue with: ds-td3 train --resume {}",
        trainer.step(),
        dir.root().display()
    );
}

/// Prints the result of a finished run from its summary.
pub fn print_done(trainer: &Trainer, dir: &RunDir, summary: &serde_json::Value) {
    let score = match summary["final_score"].as_f64() {
        Some(s) => format!(
            "final score (mean of the last {} evaluations) {s:.2}",
            summary["final_score_evaluations"]
        ),
        None => "no evaluations".to_string(),
    };
    println!(
        "done: {} steps, {score}, {:.0} steps/s this session{}; results in {}",
        trainer.step(),
        summary["steps_per_second_session"].as_f64().unwrap_or(0.0),
        evolution_cost(summary),
        dir.root().display()
    );
}

/// `, evolution 12 × 3.4 ms = 0.21% of it` when networks evolved this session.
fn evolution_cost(summary: &serde_json::Value) -> String {
    let e = &summary["evolution_session"];
    match (
        e["network_evolutions"].as_u64(),
        e["seconds_per_evolution"].as_f64(),
    ) {
        (Some(n), Some(each)) if n > 0 => format!(
            ", network evolutions {n} × {:.2} ms = {:.2}% of it",
            each * 1e3,
            100.0 * e["share_of_session"].as_f64().unwrap_or(0.0)
        ),
        _ => String::new(),
    }
}
