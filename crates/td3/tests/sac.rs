//! SAC iterations against the independent f64 reference of `reference/`: the soft TD target
//! from the target critics and a fresh sample of the current policy, the critics' gradients and
//! Adam steps, the actor's loss through the smaller of the two updated critics with the policy
//! head's gradient taken by central finite differences of the per-sample loss (so the tanh
//! correction, the log-std clamp and the reparameterisation are checked against their
//! definition, not against our derivation), the temperature's Adam step, and the critics'
//! soft target updates; dense and sparse.

// The reference is written with explicit indices, as the formulas read.
#![allow(clippy::needless_range_loop)]

mod reference;

use rand::{RngExt, SeedableRng, rngs::StdRng};
use reference::*;
use sparse_core::Activations;
use td3::{Agent, Algo, Config};

/// `log(1 − tanh² u) = −2 log cosh u`, with `log cosh u = |u| + log(1 + e^{−2|u|}) − log 2`.
fn log_one_minus_tanh2(u: f64) -> f64 {
    let a = u.abs();
    -2.0 * (a + (-2.0 * a).exp().ln_1p() - std::f64::consts::LN_2)
}

/// One sample of the squashed Gaussian from the head outputs (`2|A|` values) and noise: the
/// action `M tanh u` and `log π`, straight from the definition.
fn squashed(head: &[f64], eps: &[f64], bound: f64) -> (Vec<f64>, f64) {
    let act_dim = head.len() / 2;
    let mut action = Vec::new();
    let mut log_pi = 0.0;
    for j in 0..act_dim {
        let log_std = head[act_dim + j].clamp(-20.0, 2.0);
        let sigma = log_std.exp();
        let u = head[j] + sigma * eps[j];
        // The Gaussian's density at u, then the change of variables a/M = tanh u.
        let gauss = -((u - head[j]) / sigma).powi(2) / 2.0
            - log_std
            - 0.5 * (2.0 * std::f64::consts::PI).ln();
        log_pi += gauss - log_one_minus_tanh2(u);
        action.push(bound * u.tanh());
    }
    (action, log_pi)
}

/// Several SAC iterations, each checked against the reference computed from the state just
/// before it.
fn check_iterations(algo: Algo) {
    let (obs_dim, act_dim, n, max_action) = (5, 2, 16, 2.0f32);
    let bound = max_action as f64;
    let mut config = Config::paper("Pendulum-v1", algo);
    config.hidden = 24;
    config.lambda1 = 3.0;
    config.lambda2 = 6.0;
    assert_eq!(config.policy_delay, 1);
    assert_eq!(config.weight_decay, 0.0);
    let (lr, tau, gamma) = (config.lr, config.tau, config.gamma);
    let mut r = StdRng::seed_from_u64(11);
    let mut agent = Agent::new(&config, obs_dim, act_dim, max_action, &mut r).unwrap();
    assert!(agent.actor_target.is_none(), "SAC has no actor target");
    agent
        .critic_targets
        .iter_mut()
        .for_each(|t| perturb(t, &mut r));
    // The first log-std head straddles the clamp's upper bound (its median over random
    // observations moved there), so that both sides of the clamp are exercised.
    let actor = dense_net(&agent.actor.net);
    let mut heads: Vec<f64> = (0..64)
        .map(|_| {
            let s: Vec<f64> = (0..obs_dim).map(|_| r.random_range(-1.0..1.0)).collect();
            forward(&actor, &s, None)[3][act_dim]
        })
        .collect();
    heads.sort_by(f64::total_cmp);
    let last = agent.actor.net.layers().len() - 1;
    agent.actor.net.layers_mut()[last].params_mut().1[act_dim] += (2.0 - heads[32]) as f32;

    let col = |a: &Activations, b: usize, rows: std::ops::Range<usize>| {
        rows.map(|f| a.get(f, b) as f64).collect::<Vec<f64>>()
    };
    let mut clamped = [0usize; 2];
    // The reference temperature: log α from 1 (α = 1) and its Adam moments.
    let (mut log_alpha, mut temperature_moments) = (0.0f64, (0.0f64, 0.0f64));
    for iteration in 1..=3 {
        let ctx = |what: &str| format!("{algo} iteration {iteration}: {what}");
        let batch = random_batch(&mut r, obs_dim, act_dim, n);
        let noise = uniform(&mut r, 2 * act_dim, n, -2.0, 2.0);

        let temperature0 = agent.temperature.as_ref().expect("a SAC agent");
        let alpha0 = temperature0.alpha() as f64;
        let actor0 = dense_net(&agent.actor.net);
        let critics0 = [
            dense_net(&agent.critics[0].net),
            dense_net(&agent.critics[1].net),
        ];
        let targets0 = [
            dense_net(&agent.critic_targets[0]),
            dense_net(&agent.critic_targets[1]),
        ];
        let moments0 = [
            dense_moments(&agent.actor.net, &agent.actor.adam),
            dense_moments(&agent.critics[0].net, &agent.critics[0].adam),
            dense_moments(&agent.critics[1].net, &agent.critics[1].adam),
        ];
        let steps0 = [agent.actor.adam.steps(), agent.critics[0].adam.steps()];
        let report = agent.train_with_noise(&batch, &noise, &mut r).unwrap();
        assert_eq!(report.iteration, iteration);

        // Soft TD target: a' ~ π(·|s') by the current actor, the target critics' minimum, the
        // entropy bonus.
        let mut y = vec![0.0; n];
        for (b, yb) in y.iter_mut().enumerate() {
            let s1 = col(&batch.next_obs, b, 0..obs_dim);
            let head = forward(&actor0, &s1, None)[3].clone();
            let (a, log_pi) = squashed(&head, &col(&noise, b, 0..act_dim), bound);
            let input: Vec<f64> = s1.into_iter().chain(a).collect();
            let q1 = forward(&targets0[0], &input, None)[3][0];
            let q2 = forward(&targets0[1], &input, None)[3][0];
            let soft_q = q1.min(q2) - alpha0 * log_pi;
            *yb = batch.rewards.get(0, b) as f64 + batch.not_done.get(0, b) as f64 * gamma * soft_q;
        }
        // Critic losses, gradients and Adam steps.
        let t = steps0[1] as i32 + 1;
        let critics1 = check_critic_steps(
            &ctx("critic"),
            &agent,
            &report,
            &critics0,
            &moments0[1..],
            &batch,
            &y,
            (t, lr, 0.0),
        );

        // Actor: per-sample loss (α log π − min Q)/n as a function of the head outputs; its
        // gradient there by central differences, then back through the trunk.
        let sample_loss = |s: &[f64], head: &[f64], eps: &[f64]| {
            let (a, log_pi) = squashed(head, eps, bound);
            let input: Vec<f64> = s.iter().copied().chain(a).collect();
            let q1 = forward(&critics1[0], &input, None)[3][0];
            let q2 = forward(&critics1[1], &input, None)[3][0];
            ((alpha0 * log_pi - q1.min(q2)) / n as f64, log_pi)
        };
        let (mut gw, mut gb) = zero_grads(&actor0);
        let (mut actor_loss, mut mean_log_pi) = (0.0, 0.0);
        for b in 0..n {
            let s = col(&batch.obs, b, 0..obs_dim);
            let eps = col(&noise, b, act_dim..2 * act_dim);
            let a_acts = forward(&actor0, &s, None);
            let head = a_acts[3].clone();
            let (loss, log_pi) = sample_loss(&s, &head, &eps);
            actor_loss += loss;
            mean_log_pi += log_pi / n as f64;
            clamped[usize::from(head[act_dim] > 2.0)] += 1;
            let h = 1e-6;
            let d_head: Vec<f64> = (0..head.len())
                .map(|k| {
                    let (mut up, mut down) = (head.clone(), head.clone());
                    up[k] += h;
                    down[k] -= h;
                    (sample_loss(&s, &up, &eps).0 - sample_loss(&s, &down, &eps).0) / (2.0 * h)
                })
                .collect();
            backward(&actor0, &a_acts, &d_head, None, Some((&mut gw, &mut gb)));
        }
        let got_actor_loss = report
            .actor_loss
            .expect("SAC updates the actor every iteration");
        assert!(
            (got_actor_loss - actor_loss).abs() <= 1e-5 * actor_loss.abs().max(1e-2),
            "{}: {got_actor_loss} vs {actor_loss}",
            ctx("actor loss")
        );
        let actor = &agent.actor;
        assert_grads(&ctx("actor"), &actor.net, actor.gradients(), (&gw, &gb));
        let t = steps0[0] as i32 + 1;
        let actor1 = adam(&actor0, &moments0[0], (&gw, &gb), t, lr, 0.0);
        assert_params(
            &ctx("actor"),
            &actor.net,
            &actor1,
            &actor0,
            Some((&gw, &gb)),
            lr,
        );

        // Temperature: one Adam step on −log α · mean(log π + H̄), H̄ = −|A|.
        let temperature = agent.temperature.as_ref().unwrap();
        assert_eq!(temperature.target_entropy(), -(act_dim as f64));
        let g = -(mean_log_pi - act_dim as f64);
        let (m, v) = &mut temperature_moments;
        log_alpha = adam_step(log_alpha, g, m, v, iteration as i32, lr, 0.0);
        let want = log_alpha;
        assert!(
            (temperature.log_alpha() - want).abs() <= 1e-6 * lr,
            "{}: log α {} vs {want}",
            ctx("temperature"),
            temperature.log_alpha()
        );
        assert_eq!(
            report.alpha,
            Some(temperature.log_alpha().exp() as f32 as f64)
        );

        // The critics' targets move towards the new critics (same topologies: nothing pruned).
        for i in 0..2 {
            let online = dense_net(&agent.critics[i].net);
            let t = &agent.critic_targets[i];
            assert_params(
                &ctx("target"),
                t,
                &soft(&targets0[i], &online, tau),
                &targets0[i],
                None,
                0.0,
            );
        }
    }
    assert!(
        clamped[0] > 0 && clamped[1] > 0,
        "the log-std clamp was exercised on both sides: {clamped:?}"
    );
}

#[test]
fn dense_sac_iterations_match_reference() {
    check_iterations(Algo::Sac);
}

#[test]
fn sparse_sac_iterations_match_reference() {
    check_iterations(Algo::StaticSac);
}
