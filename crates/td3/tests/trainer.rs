//! The training loop end to end: learning on Pendulum, exact resume, determinism, constant
//! connection counts under evolution and re-pruning, and configuration errors.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Layer, Mlp};
use td3::{Agent, Algo, Batch, Config, Event, Growth, ReplayBuffer, Trainer, checkpoint};

#[path = "../../../tests/support/skip.rs"]
mod skip;

fn no_events(_: Event<'_>) -> td3::Result<()> {
    Ok(())
}

fn never() -> bool {
    false
}

/// A small, fast configuration on `env`.
fn small(env: &str, algo: Algo, steps: u64) -> Config {
    let mut c = Config::paper(env, algo);
    c.steps = steps;
    c.start_steps = 300;
    c.eval_every = 300;
    c.eval_episodes = 2;
    c.hidden = 32;
    c.lambda1 = 2.0;
    c.lambda2 = 8.0;
    c.evolution_period = 50;
    c.topology_freeze = 0;
    c.batch_size = 32;
    c.buffer_capacity = 10_000;
    c
}

#[test]
fn td3_learns_pendulum_within_15k_steps() {
    let mut c = Config::paper("Pendulum-v1", Algo::Dense);
    c.steps = 15_000;
    c.start_steps = 1_000;
    c.eval_every = 5_000;
    let mut t = Trainer::new(c).unwrap();
    t.run_until(15_000, &mut no_events, &never).unwrap();
    let last = t.evaluations().last().unwrap();
    assert_eq!(last.step, 15_000);
    assert!(
        last.mean >= -300.0,
        "mean evaluation return {} after 15k steps",
        last.mean
    );
    // The untrained policy is far worse: the test measures learning.
    assert!(
        t.evaluations()[0].mean < -700.0,
        "untrained {}",
        t.evaluations()[0].mean
    );
}

/// SAC's defaults (256-256, batch 256, Adam 3·10⁻⁴, automatic temperature) with 1 000 random
/// steps: the first evaluation at or above −300 ends the run, which must come within 15 000
/// steps.
fn check_sac_learns_pendulum(algo: Algo) {
    let mut c = Config::paper("Pendulum-v1", algo);
    c.steps = 15_000;
    c.start_steps = 1_000;
    c.eval_every = 1_000;
    c.eval_episodes = 5;
    let mut t = Trainer::new(c).unwrap();
    let solved = std::cell::Cell::new(false);
    let mut observe = |e: Event<'_>| {
        if let Event::Evaluation(e) = e {
            solved.set(e.step > 0 && e.mean >= -300.0);
        }
        Ok(())
    };
    t.run_until(15_000, &mut observe, &|| solved.get()).unwrap();
    let evals: Vec<(u64, i64)> = t
        .evaluations()
        .iter()
        .map(|e| (e.step, e.mean.round() as i64))
        .collect();
    assert!(
        solved.get(),
        "{algo}: no evaluation reached −300: {evals:?}"
    );
    assert!(evals[0].1 < -700, "{algo}: untrained {evals:?}");
    assert!(
        t.agent().temperature.as_ref().unwrap().alpha() < 1.0,
        "α was tuned"
    );
}

#[test]
fn sac_learns_pendulum_within_15k_steps() {
    check_sac_learns_pendulum(Algo::Sac);
}

#[test]
fn ds_sac_learns_pendulum_within_15k_steps() {
    check_sac_learns_pendulum(Algo::DsSac);
}

/// An evaluation without its wall-clock time: step, return bits, FLOPs, connections.
type EvalRecord = (u64, Vec<u64>, u64, usize);

/// Everything a run's outcome consists of, for comparison: serialised agent and buffer, and the
/// evaluations without their wall-clock times.
fn outcome(t: &Trainer) -> (Vec<u8>, Vec<u8>, Vec<EvalRecord>) {
    let evals = t
        .evaluations()
        .iter()
        .map(|e| {
            (
                e.step,
                e.returns.iter().map(|r| r.to_bits()).collect(),
                e.flops,
                e.live_connections,
            )
        })
        .collect();
    (
        postcard::to_stdvec(t.agent()).unwrap(),
        postcard::to_stdvec(t.replay()).unwrap(),
        evals,
    )
}

/// N steps in one go equal N/2 (stopping mid-episode), checkpoint, resume, N/2 more. The last
/// `freeze` iterations keep a fixed topology (the final prune falls before or after the split).
fn check_resume(env: &str, algo: Algo, total: u64, split: u64, freeze: u64) {
    check_resume_with(env, algo, (total, split, freeze), |_| ());
}

/// [`check_resume`] with `(total, split, freeze)` and the configuration changed by `setup`.
fn check_resume_with(
    env: &str,
    algo: Algo,
    (total, split, freeze): (u64, u64, u64),
    setup: impl Fn(&mut Config),
) {
    let mut config = small(env, algo, total);
    config.topology_freeze = freeze;
    setup(&mut config);
    // Pendulum's buffer wraps before the split, so the checkpoint holds a wrapped ring.
    config.buffer_capacity = if env == "Pendulum-v1" { 500 } else { 10_000 };
    let mut whole = Trainer::new(config.clone()).unwrap();
    whole.run_until(total, &mut no_events, &never).unwrap();

    let mut first = Trainer::new(config.clone()).unwrap();
    first.run_until(split, &mut no_events, &never).unwrap();
    assert_eq!(first.step(), split);
    let dir = std::env::temp_dir().join(format!("td3-resume-{env}-{algo}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latest.ckpt");
    checkpoint::save(&mut first, &path).unwrap();
    drop(first);
    let mut resumed = checkpoint::load(&path, 1, None, Some(&config)).unwrap();
    resumed.run_until(total, &mut no_events, &never).unwrap();
    assert!(
        outcome(&whole) == outcome(&resumed),
        "{env} {algo}: resumed run differs from the uninterrupted one"
    );
    assert!(
        whole.agent().iterations() > 2 * config.evolution_period,
        "evolution happened"
    );
    let fresh = Trainer::new(config.clone()).unwrap();
    assert!(
        whole.agent().live_connections() < fresh.agent().live_connections(),
        "the final prune happened"
    );

    // A corrupt or foreign checkpoint is a clear error.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = checkpoint::load(&path, 1, None, Some(&config))
        .err()
        .expect("corrupt checkpoint rejected");
    assert!(err.to_string().contains("corrupt"), "{err}");
    std::fs::write(&path, &bytes[..10]).unwrap();
    let err = checkpoint::load(&path, 1, None, None)
        .err()
        .expect("truncated checkpoint rejected");
    assert!(err.to_string().contains("truncated (10 bytes"), "{err}");
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let err = checkpoint::load(&path, 1, None, None)
        .err()
        .expect("foreign file rejected");
    assert!(err.to_string().contains("bad magic"), "{err}");
    checkpoint::save(&mut resumed, &path).unwrap();
    let mut other = config.clone();
    other.seed += 1;
    let err = checkpoint::load(&path, 1, None, Some(&other))
        .err()
        .expect("foreign checkpoint rejected");
    assert!(err.to_string().contains("another run"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn resume_is_bit_exact_on_pendulum() {
    // 1000 iterations, split at 350, final prune at 300 (the first evolution after 250).
    check_resume("Pendulum-v1", Algo::Ds, 1_300, 650, 750);
}

#[test]
fn gradient_growth_resume_is_bit_exact_on_pendulum() {
    check_resume_with("Pendulum-v1", Algo::Ds, (1_300, 650, 750), |c| {
        c.growth = Growth::Gradient { candidates: 4 }
    });
}

#[test]
fn n_step_resume_is_bit_exact_on_pendulum() {
    // Three-step targets from iteration 301 (before the split at iteration 350), RLx2's
    // schedule in miniature; the run differs from one-step targets.
    let n_step = |c: &mut Config| {
        c.n_step = 3;
        c.n_step_after = 300;
    };
    check_resume_with("Pendulum-v1", Algo::Ds, (1_300, 650, 750), n_step);
    let run = |setup: &dyn Fn(&mut Config)| {
        let mut c = small("Pendulum-v1", Algo::Ds, 700);
        setup(&mut c);
        let mut t = Trainer::new(c).unwrap();
        t.run_until(700, &mut no_events, &never).unwrap();
        outcome(&t)
    };
    assert!(
        run(&n_step) != run(&|_| ()),
        "n-step targets change the run"
    );
}

#[test]
fn cosine_decayed_evolution_resumes_bit_exact_and_follows_the_run_length() {
    let cosine = |c: &mut Config| c.evolution_schedule = td3::FractionSchedule::Cosine;
    check_resume_with("Pendulum-v1", Algo::Ds, (1_300, 650, 750), cosine);
    let mut c = small("Pendulum-v1", Algo::Ds, 1_300);
    cosine(&mut c);
    let mut t = Trainer::new(c.clone()).unwrap();
    // Decays over the training iterations, steps − start_steps; extending the run stretches it.
    assert_eq!(t.agent().evolution.cosine_decay(), Some(1_000));
    let moved = std::cell::RefCell::new(Vec::new());
    let mut record = |e: Event<'_>| {
        if let Event::Iteration { report, .. } = e {
            for (name, stats) in &report.evolutions {
                if *name == "critic1" {
                    moved.borrow_mut().push(stats.removed());
                }
            }
        }
        Ok(())
    };
    t.run_until(1_300, &mut record, &never).unwrap();
    // Fewer connections move as η decays (the first evolution has no regrown zeros to remove).
    let moved = moved.into_inner();
    assert_eq!(moved.len(), 20);
    assert!(moved[1] > moved[10] && moved[10] > moved[18], "{moved:?}");
    assert_eq!(
        moved[19], 0,
        "fully decayed at the last iteration: {moved:?}"
    );
    t.set_total_steps(2_300).unwrap();
    assert_eq!(t.agent().evolution.cosine_decay(), Some(2_000));
    // Only the evolving variants take a schedule.
    let mut d = small("Pendulum-v1", Algo::Static, 1_300);
    cosine(&mut d);
    let err = d
        .validate()
        .expect_err("static has no evolution")
        .to_string();
    assert!(
        err.contains("evolution schedule applies to the variants that evolve"),
        "{err}"
    );
}

#[test]
fn ds_sac_resume_is_bit_exact_on_pendulum() {
    // The temperature and its Adam state travel too; same schedule as DS-TD3's test.
    check_resume("Pendulum-v1", Algo::DsSac, 1_300, 650, 750);
}

#[test]
fn resume_is_bit_exact_on_hopper() {
    if !mujoco_env::known_ids().contains(&"Hopper-v3") {
        skip::skip(
            "td3 resume_is_bit_exact_on_hopper",
            "built without the mujoco feature",
        );
        return;
    }
    // 600 iterations, split at 137, final prune at 450.
    check_resume("Hopper-v3", Algo::Ds, 900, 437, 200);
}

#[test]
fn same_seed_same_run_and_threads_do_not_change_results() {
    let run = |threads: usize, seed: u64| {
        let mut c = small("Pendulum-v1", Algo::Ds, 700);
        c.threads = threads;
        c.seed = seed;
        let mut t = Trainer::new(c).unwrap();
        t.run_until(700, &mut no_events, &never).unwrap();
        outcome(&t)
    };
    let a = run(1, 3);
    assert!(a == run(1, 3), "same seed, same thread count");
    assert!(a == run(2, 3), "critics side by side give the same bits");
    assert!(a != run(1, 4), "another seed differs");
}

/// Live connections of every layer of every network.
fn counts(agent: &Agent) -> Vec<usize> {
    agent
        .networks()
        .iter()
        .flat_map(|n| n.layers().iter().map(Layer::live_connections))
        .collect()
}

fn positions(net: &Mlp) -> Vec<Vec<usize>> {
    net.layers()
        .iter()
        .filter_map(|l| match l {
            Layer::Sparse(s) => Some(s.weights().positions()),
            Layer::Dense(_) => None,
        })
        .collect()
}

#[test]
fn a_freeze_covering_the_run_makes_the_first_evolution_a_final_prune() {
    // 400 iterations, e = 50, freeze 1000: pruned once at iteration 50, never rewired.
    let mut config = small("Pendulum-v1", Algo::Ds, 700);
    config.topology_freeze = 1000;
    let initial = Trainer::new(config.clone())
        .unwrap()
        .agent()
        .live_connections();
    let mut t = Trainer::new(config).unwrap();
    let mut evolutions = Vec::new();
    t.run_until(
        700,
        &mut |e| {
            if let Event::Iteration { report: r, .. } = e {
                evolutions.extend(
                    r.evolutions
                        .iter()
                        .map(|(n, s)| (r.iteration, *n, s.removed())),
                );
            }
            Ok(())
        },
        &never,
    )
    .unwrap();
    assert_eq!(evolutions.len(), 3, "{evolutions:?}");
    assert!(
        evolutions.iter().all(|&(i, _, _)| i == 50),
        "{evolutions:?}"
    );
    let removed: usize = evolutions.iter().map(|e| e.2).sum();
    assert_eq!(t.agent().live_connections(), initial - removed);
}

#[test]
fn ds_keeps_every_layer_at_its_connection_count() {
    for growth in [Growth::Random, Growth::Gradient { candidates: 4 }] {
        check_connection_counts(growth);
    }
}

/// 200 iterations with an evolution every 10, through the agent: counts never move, topologies
/// do (online and target).
fn check_connection_counts(growth: Growth) {
    let mut config = small("Pendulum-v1", Algo::Ds, 1_000);
    config.evolution_period = 10;
    config.evolution_fraction = 0.2;
    config.growth = growth;
    let mut r = StdRng::seed_from_u64(1);
    let mut agent = Agent::new(&config, 3, 1, 2.0, &mut r).unwrap();
    let initial = counts(&agent);
    let (actor0, target0) = (
        positions(&agent.actor.net),
        positions(&agent.critic_targets[0]),
    );
    let mut replay = ReplayBuffer::new(1_000, 3, 1).unwrap();
    for _ in 0..500 {
        let s: Vec<f64> = (0..3).map(|_| r.random_range(-1.0..1.0)).collect();
        let s2: Vec<f64> = (0..3).map(|_| r.random_range(-1.0..1.0)).collect();
        replay
            .push(
                &s,
                &[r.random_range(-2.0..2.0)],
                r.random_range(-1.0..0.0),
                &s2,
                false,
            )
            .unwrap();
    }
    let mut batch = Batch::default();
    let mut evolutions = 0;
    for _ in 0..200 {
        replay.sample(32, &mut r, &mut batch).unwrap();
        let report = agent.train(&batch, &mut r).unwrap();
        evolutions += report.evolutions.len();
        assert_eq!(counts(&agent), initial, "iteration {}", report.iteration);
    }
    assert_eq!(evolutions, 60, "{growth:?}: 20 evolutions of 3 networks");
    assert_ne!(
        positions(&agent.actor.net),
        actor0,
        "{growth:?}: the actor's topology evolved"
    );
    assert_ne!(
        positions(&agent.critic_targets[0]),
        target0,
        "target topologies follow"
    );
}

/// `sparsity`: every network's two sparse layers hold `(1 − S)` of their positions together,
/// within one connection per layer, at one Erdős–Rényi λ per network; TD3 and SAC alike. With
/// `critic_sparsity`, the critics follow it and the actor `sparsity`.
#[test]
fn sparsity_sets_every_networks_sparse_layers() {
    for algo in [Algo::Ds, Algo::StaticSac] {
        for (actor_s, critic_s) in [(0.5, None), (0.9, None), (0.95, None), (0.95, Some(0.875))] {
            let mut c = Config::paper("Hopper-v3", algo);
            c.sparsity = Some(actor_s);
            c.critic_sparsity = critic_s;
            let agent = Agent::new(&c, 11, 3, 1.0, &mut StdRng::seed_from_u64(1)).unwrap();
            for net in agent.online() {
                // Hopper's actor reads 11 observations, its critics 11 + 3.
                let critic = net.n_in() != 11;
                let s = if critic {
                    critic_s.unwrap_or(actor_s)
                } else {
                    actor_s
                };
                let hidden = &net.layers()[..2];
                assert!(hidden.iter().all(Layer::is_sparse));
                let full: usize = hidden.iter().map(|l| l.n_in() * l.n_out()).sum();
                let live: usize = hidden.iter().map(Layer::live_connections).sum();
                let target = ((1.0 - s) * full as f64).round() as usize;
                assert!(
                    live.abs_diff(target) <= 2,
                    "{algo} S {s}: {live} vs {target}"
                );
                let (l1, l2) = c.lambdas(net.n_in(), critic).unwrap();
                assert_eq!(l1, l2, "one λ per network");
                let er = |l: &Layer| sparse_core::er_connections(l.n_in(), l.n_out(), l1).unwrap();
                assert!(hidden.iter().all(|l| l.live_connections() == er(l)));
                assert!(!net.layers()[2].is_sparse(), "the output layer stays dense");
            }
        }
    }
}

#[test]
fn invalid_settings_are_clear_errors() {
    let base = Config::paper("Hopper-v3", Algo::Ds);
    type Mutation = Box<dyn Fn(&mut Config)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("lambda1", Box::new(|c| c.lambda1 = 0.0)),
        ("lambda2", Box::new(|c| c.lambda2 = -3.0)),
        (
            "evolution fraction",
            Box::new(|c| c.evolution_fraction = 1.0),
        ),
        (
            "evolution fraction",
            Box::new(|c| c.evolution_fraction = 0.0),
        ),
        ("evolution period", Box::new(|c| c.evolution_period = 0)),
        ("random start phase", Box::new(|c| c.steps = 1_000)),
        (
            "--bias-correction network",
            Box::new(|c| c.device = td3::Device::Emulator),
        ),
        ("batch-size", Box::new(|c| c.batch_size = 0)),
        ("tau", Box::new(|c| c.tau = 1.5)),
        (
            "critic sparsity needs sparsity too",
            Box::new(|c| c.critic_sparsity = Some(0.8)),
        ),
        (
            "critic sparsity must lie in [0, 1)",
            Box::new(|c| (c.sparsity, c.critic_sparsity) = (Some(0.9), Some(1.0))),
        ),
    ];
    for (needle, mutate) in cases {
        let mut c = base.clone();
        mutate(&mut c);
        let err = c.validate().expect_err(needle).to_string();
        assert!(err.contains(needle), "{err} should mention {needle}");
    }
    // SAC: TD3's noises and the GPU are refused by name.
    let sac = Config::paper("Hopper-v3", Algo::DsSac);
    sac.validate().unwrap();
    let sac_cases: [(&str, Mutation); 3] = [
        (
            "expl-noise is a TD3 setting",
            Box::new(|c| c.expl_noise = 0.1),
        ),
        (
            "policy-noise is a TD3 setting",
            Box::new(|c| c.policy_noise = 0.2),
        ),
        (
            "DS-SAC runs on the CPU only",
            Box::new(|c| c.device = td3::Device::Cuda),
        ),
    ];
    for (needle, mutate) in sac_cases {
        let mut c = sac.clone();
        mutate(&mut c);
        let err = c.validate().expect_err(needle).to_string();
        assert!(err.contains(needle), "{err} should mention {needle}");
    }
    // A freeze covering the whole run is valid (the authors' code allows it) but warned of.
    let mut frozen = base.clone();
    assert!(frozen.warnings().is_empty());
    frozen.topology_freeze = 975_000;
    frozen.validate().unwrap();
    let warnings = frozen.warnings();
    assert!(
        warnings.len() == 1 && warnings[0].contains("covers the whole run (975000"),
        "{warnings:?}"
    );
    let mut unknown = small("Pendulum-v1", Algo::Ds, 500);
    unknown.env = "Hopper-v9".into();
    let err = Trainer::new(unknown)
        .err()
        .expect("unknown env")
        .to_string();
    assert!(
        err.contains("Hopper-v9") && err.contains("Pendulum-v1"),
        "{err}"
    );
}
