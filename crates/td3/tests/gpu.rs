//! The GPU path of the TD3 update against the CPU path: from the same state, one iteration on
//! each — TD target, critic and actor steps, SET evolution (on the host, between download and
//! upload) and the targets' soft update with pruning — must give the same losses, topologies
//! and parameters (norm-wise relative 1e-4). Runs on sparse-cuda's kernel emulator everywhere,
//! and on a CUDA GPU too when the machine has one (otherwise that half says it was skipped;
//! `DS_TD3_REQUIRE_GPU=1` makes that a failure).

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, BiasCorrection, Layer, Mlp};
use td3::{Agent, Algo, Batch, Config, Device, Trainer};

#[path = "../../../tests/support/skip.rs"]
mod skip;

/// The emulator, and the GPU when this machine has one. No GPU at all skips the GPU half
/// visibly (a failure under `DS_TD3_REQUIRE_GPU=1`); a GPU that will not open fails the test.
fn devices() -> Vec<sparse_cuda::Device> {
    let mut all = vec![sparse_cuda::Device::emulator()];
    all.extend(skip::gpu(
        "td3 GPU parity, GPU half",
        sparse_cuda::Device::cuda(0),
        sparse_cuda::Error::is_no_gpu,
    ));
    all
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let d: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let n: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        d <= 1e-4 * n || d <= 1e-6,
        "{what}: |diff| {d:e}, |want| {n:e}"
    );
}

fn nets_close(what: &str, got: &Mlp, want: &Mlp) {
    for (i, (g, w)) in got.layers().iter().zip(want.layers()).enumerate() {
        if let (Layer::Sparse(g), Layer::Sparse(w)) = (g, w) {
            assert_eq!(
                g.weights().positions(),
                w.weights().positions(),
                "{what} layer {i} topology"
            );
        }
        close(
            &format!("{what} layer {i} weights"),
            g.weight_values(),
            w.weight_values(),
        );
        close(&format!("{what} layer {i} bias"), g.bias(), w.bias());
    }
}

fn random_batch(r: &mut StdRng, obs_dim: usize, act_dim: usize, n: usize) -> (Batch, Activations) {
    let mut acts = |f: usize, lo: f32, hi: f32| {
        let data: Vec<f32> = (0..f * n).map(|_| r.random_range(lo..hi)).collect();
        Activations::from_samples(f, n, &data).unwrap()
    };
    let mut batch = Batch {
        obs: acts(obs_dim, -1.0, 1.0),
        actions: acts(act_dim, -2.0, 2.0),
        rewards: acts(1, -1.0, 1.0),
        next_obs: acts(obs_dim, -1.0, 1.0),
        not_done: acts(1, 0.0, 1.0),
    };
    let noise = acts(act_dim, -1.5, 1.5);
    for b in 0..n {
        batch.not_done.set(0, b, if b % 4 == 0 { 0.0 } else { 1.0 });
    }
    (batch, noise)
}

fn copy(agent: &Agent) -> Agent {
    postcard::from_bytes(&postcard::to_stdvec(agent).unwrap()).unwrap()
}

#[test]
fn gpu_iterations_match_the_cpu_from_the_same_state() {
    for dev in devices() {
        for algo in [Algo::Ds, Algo::Static, Algo::Dense] {
            let (obs_dim, act_dim, max_action) = (6, 2, 2.0f32);
            let mut config = Config::paper("Pendulum-v1", algo);
            config.hidden = 48;
            config.lambda1 = 3.0;
            config.lambda2 = 8.0;
            config.evolution_period = 2; // evolutions within the test's few iterations
            // The last 2 of 6 iterations frozen: rewiring at 2 and 4, the final prune at 6
            // (an actor iteration, so the targets then shrink to the online counts).
            (config.steps, config.start_steps, config.topology_freeze) = (25_006, 25_000, 2);
            config.bias_correction = BiasCorrection::Network;
            let mut r = StdRng::seed_from_u64(11);
            let mut cpu = Agent::new(&config, obs_dim, act_dim, max_action, &mut r).unwrap();
            for it in 0..6 {
                let ctx = format!("{} {algo} iteration {}", dev.name(), it + 1);
                let mut gpu = copy(&cpu);
                gpu.attach_gpu(dev.clone()).unwrap();
                let (batch, noise) =
                    random_batch(&mut r, obs_dim, act_dim, [100, 17, 100, 1, 64, 100][it]);
                let seed = r.random::<u64>();
                let want = cpu
                    .train_with_noise(&batch, &noise, &mut StdRng::seed_from_u64(seed))
                    .unwrap();
                let got = gpu
                    .train_with_noise(&batch, &noise, &mut StdRng::seed_from_u64(seed))
                    .unwrap();
                assert_eq!(got.iteration, want.iteration);
                assert!(
                    (got.critic_loss - want.critic_loss).abs() <= 1e-4 * want.critic_loss.abs(),
                    "{ctx}: critic loss"
                );
                match (got.actor_loss, want.actor_loss) {
                    (Some(g), Some(w)) => assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1e-3),
                        "{ctx}: actor loss"
                    ),
                    (g, w) => assert_eq!(g.is_some(), w.is_some(), "{ctx}: actor step"),
                }
                let names = |r: &td3::IterationReport| {
                    r.evolutions
                        .iter()
                        .map(|(n, s)| {
                            (
                                *n,
                                s.removed(),
                                s.layers
                                    .iter()
                                    .map(|l| l.removed_were_new)
                                    .collect::<Vec<_>>(),
                            )
                        })
                        .collect::<Vec<_>>()
                };
                assert_eq!(names(&got), names(&want), "{ctx}: evolutions");
                // Acting goes through the GPU copy of the policy.
                let obs: Vec<f64> = (0..obs_dim).map(|i| i as f64 * 0.1 - 0.2).collect();
                let (ga, ca) = (gpu.act(&obs).unwrap(), cpu.act(&obs).unwrap());
                for (g, c) in ga.iter().zip(&ca) {
                    assert!((g - c).abs() <= 1e-4 * (max_action as f64), "{ctx}: action");
                }
                assert_eq!(gpu.flops(), cpu.flops(), "{ctx}: FLOP counts");
                gpu.sync_host().unwrap();
                nets_close(&format!("{ctx} actor"), &gpu.actor.net, &cpu.actor.net);
                nets_close(
                    &format!("{ctx} actor target"),
                    gpu.actor_target.as_ref().unwrap(),
                    cpu.actor_target.as_ref().unwrap(),
                );
                for i in 0..2 {
                    nets_close(
                        &format!("{ctx} critic {i}"),
                        &gpu.critics[i].net,
                        &cpu.critics[i].net,
                    );
                    nets_close(
                        &format!("{ctx} critic target {i}"),
                        &gpu.critic_targets[i],
                        &cpu.critic_targets[i],
                    );
                    let (g, w) = (&gpu.critics[i].adam, &cpu.critics[i].adam);
                    assert_eq!(g.steps(), w.steps());
                    for (gl, wl) in g.layers().iter().zip(w.layers()) {
                        close(
                            &format!("{ctx} critic {i} Adam m"),
                            &gl.weights.m,
                            &wl.weights.m,
                        );
                        close(
                            &format!("{ctx} critic {i} Adam v"),
                            &gl.weights.v,
                            &wl.weights.v,
                        );
                    }
                }
                // The synced host copies serialise like a CPU agent's (checkpoints).
                let again = copy(&gpu);
                nets_close(
                    &format!("{ctx} round trip"),
                    &again.actor.net,
                    &cpu.actor.net,
                );
            }
        }
    }
}

#[test]
fn a_gpu_agent_trains_several_iterations_in_a_row() {
    // Many iterations on the device alone (emulated), evolutions included: every sparse layer
    // keeps its connection count, the losses stay finite, and the host copy is consistent.
    let mut config = Config::paper("Pendulum-v1", Algo::Ds);
    config.hidden = 32;
    config.lambda1 = 3.0;
    config.lambda2 = 6.0;
    config.evolution_period = 3;
    config.bias_correction = BiasCorrection::Network;
    let mut r = StdRng::seed_from_u64(3);
    let mut agent = Agent::new(&config, 3, 1, 2.0, &mut r).unwrap();
    let counts: Vec<Vec<usize>> = agent
        .online()
        .map(|n| n.layers().iter().map(|l| l.live_connections()).collect())
        .collect();
    agent.attach_gpu(sparse_cuda::Device::emulator()).unwrap();
    let mut evolved = 0;
    for _ in 0..20 {
        let (batch, noise) = random_batch(&mut r, 3, 1, 32);
        let report = agent.train_with_noise(&batch, &noise, &mut r).unwrap();
        assert!(report.critic_loss.is_finite());
        evolved += report.evolutions.len();
    }
    assert_eq!(
        evolved,
        6 * 2 + 3,
        "critics every 3rd iteration, the actor when it also updates"
    );
    agent.sync_host().unwrap();
    let after: Vec<Vec<usize>> = agent
        .online()
        .map(|n| n.layers().iter().map(|l| l.live_connections()).collect())
        .collect();
    assert_eq!(after, counts);
    for t in agent.targets() {
        let online_like = t
            .layers()
            .iter()
            .map(|l| l.live_connections())
            .collect::<Vec<_>>();
        assert!(counts.contains(&online_like), "targets keep their budgets");
    }
}

#[test]
fn asking_for_cuda_without_a_gpu_is_a_clear_error() {
    let Err(why) = sparse_cuda::Device::cuda_available() else {
        skip::skip(
            "td3 CUDA-without-a-GPU error",
            "this machine has a usable GPU",
        );
        return;
    };
    let mut config = Config::paper("Pendulum-v1", Algo::Ds);
    config.device = Device::Cuda;
    config.steps = 100;
    config.start_steps = 10;
    config.topology_freeze = 0;
    config.bias_correction = BiasCorrection::Network;
    let Err(e) = Trainer::new(config) else {
        panic!("a CUDA run started without a usable GPU");
    };
    let msg = e.to_string();
    assert!(msg.contains("GPU") && msg.contains(&why), "{msg}");
}

fn no_events(_: td3::Event<'_>) -> td3::Result<()> {
    Ok(())
}

fn never() -> bool {
    false
}

/// An evaluation's step, return bits and FLOPs.
type EvalRecord = (u64, Vec<u64>, u64);

/// Serialised agent and buffer, and the evaluations' steps and return bits.
fn outcome(t: &mut Trainer) -> (Vec<u8>, Vec<u8>, Vec<EvalRecord>) {
    t.sync_host().unwrap();
    let evals = t
        .evaluations()
        .iter()
        .map(|e| {
            (
                e.step,
                e.returns.iter().map(|r| r.to_bits()).collect(),
                e.flops,
            )
        })
        .collect();
    (
        postcard::to_stdvec(t.agent()).unwrap(),
        postcard::to_stdvec(t.replay()).unwrap(),
        evals,
    )
}

#[test]
fn a_gpu_run_resumes_exactly_and_can_move_to_the_cpu() {
    let mut config = Config::paper("Pendulum-v1", Algo::Ds);
    config.device = Device::Emulator;
    (
        config.steps,
        config.start_steps,
        config.eval_every,
        config.eval_episodes,
    ) = (900, 300, 300, 2);
    (config.hidden, config.lambda1, config.lambda2) = (32, 2.0, 8.0);
    (
        config.evolution_period,
        config.batch_size,
        config.buffer_capacity,
    ) = (50, 32, 10_000);
    // 600 iterations; the final prune at 450, after the checkpoint at 250.
    config.topology_freeze = 200;
    config.bias_correction = BiasCorrection::Network;
    let mut whole = Trainer::new(config.clone()).unwrap();
    assert!(
        whole
            .agent()
            .gpu_name()
            .is_some_and(|n| n.contains("emulator"))
    );
    whole.run_until(900, &mut no_events, &never).unwrap();
    assert!(
        whole.agent().iterations() > 2 * config.evolution_period,
        "evolution happened"
    );

    let mut first = Trainer::new(config.clone()).unwrap();
    first.run_until(550, &mut no_events, &never).unwrap();
    let dir = std::env::temp_dir().join(format!("td3-gpu-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latest.ckpt");
    td3::checkpoint::save(&mut first, &path).unwrap();
    let mut resumed = td3::checkpoint::load(&path, 1, None, Some(&config)).unwrap();
    assert!(
        resumed.agent().gpu_name().is_some(),
        "resumes on its own device"
    );
    resumed.run_until(900, &mut no_events, &never).unwrap();
    assert!(
        outcome(&mut whole) == outcome(&mut resumed),
        "resumed GPU run differs"
    );

    // The same checkpoint continues on the CPU: same configuration otherwise, same counts.
    let mut on_cpu = td3::checkpoint::load(&path, 1, Some(Device::Cpu), Some(&config)).unwrap();
    assert_eq!(on_cpu.config().device, Device::Cpu);
    assert!(on_cpu.agent().gpu_name().is_none());
    on_cpu.run_until(900, &mut no_events, &never).unwrap();
    assert_eq!(on_cpu.evaluations().len(), whole.evaluations().len());
    assert_eq!(
        on_cpu.agent().live_connections(),
        whole.agent().live_connections()
    );
    // FLOPs are counted identically on both devices.
    assert_eq!(on_cpu.agent().flops(), whole.agent().flops());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sac_agent_is_refused_by_the_gpu_backend_by_name() {
    // The configuration refuses SAC on a GPU device first; an agent built on the host and
    // attached by hand gets the same answer, and keeps training on the host.
    let config = Config::paper("Pendulum-v1", Algo::DsSac);
    let mut r = StdRng::seed_from_u64(2);
    let mut agent = Agent::new(&config, 3, 1, 2.0, &mut r).unwrap();
    let err = agent
        .attach_gpu(sparse_cuda::Device::emulator())
        .expect_err("SAC on the GPU backend")
        .to_string();
    assert!(err.contains("SAC runs on the CPU only"), "{err}");
    assert!(agent.gpu_name().is_none());
    let (batch, _) = random_batch(&mut r, 3, 1, 8);
    let noise = Activations::zeros(2, 8);
    agent.train_with_noise(&batch, &noise, &mut r).unwrap();
}

#[test]
fn gradient_growth_is_refused_by_the_gpu_backend() {
    // Gradient-guided growth scores candidates with the host's activations, which a GPU
    // iteration does not fill: the configuration refuses it on a GPU device, and an agent built
    // on the host is refused when attached by hand (instead of failing at its first evolution).
    let mut config = Config::paper("Pendulum-v1", Algo::Ds);
    config.growth = td3::Growth::Gradient { candidates: 4 };
    let mut r = StdRng::seed_from_u64(3);
    let mut agent = Agent::new(&config, 3, 1, 2.0, &mut r).unwrap();
    let err = agent
        .attach_gpu(sparse_cuda::Device::emulator())
        .expect_err("gradient growth on the GPU backend")
        .to_string();
    assert!(
        err.contains("gradient-guided growth runs on the CPU only"),
        "{err}"
    );
    assert!(agent.gpu_name().is_none());
    config.device = td3::Device::Emulator;
    let err = config.validate().expect_err("refused").to_string();
    assert!(
        err.contains("gradient-guided growth runs on the CPU only"),
        "{err}"
    );
}
