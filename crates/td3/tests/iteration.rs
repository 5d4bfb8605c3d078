//! TD3 iterations against an independent, straightforward f64 reference: dense matrices built
//! from the networks, explicit forward and backward passes, PyTorch's Adam formula and the soft
//! update, for dense and for sparse networks. Gradients are compared in magnitude, Adam steps
//! from the moments so far, over several iterations with policy delay 2 and target networks that
//! differ from the online ones, so that using the online networks in the TD target, a missing
//! tanh′ factor, a wrong 1/n or a factor of 2, or target updates at the wrong iterations fail.

// The reference is written with explicit indices, as the formulas read.
#![allow(clippy::needless_range_loop)]

mod reference;

use rand::{SeedableRng, rngs::StdRng};
use reference::*;
use td3::{Agent, Algo, Config};

/// Several iterations with policy delay 2, from targets that differ from the online networks,
/// each checked against the reference computed from the state just before it: TD target from
/// the target networks with smoothing noise drawn beyond its clip, critic gradients and Adam
/// steps (from the moments so far), the actor's on even iterations only, and the targets' soft
/// updates exactly then.
fn check_iterations(algo: Algo) {
    let (obs_dim, act_dim, n, max_action) = (5, 2, 16, 2.0f32);
    let mut config = Config::paper("Pendulum-v1", algo);
    config.hidden = 24;
    config.lambda1 = 3.0;
    config.lambda2 = 6.0;
    assert_eq!(config.policy_delay, 2);
    let (lr, wd, tau, gamma) = (config.lr, config.weight_decay, config.tau, config.gamma);
    let clip = config.noise_clip * max_action as f64;
    let mut r = StdRng::seed_from_u64(7);
    let mut agent = Agent::new(&config, obs_dim, act_dim, max_action, &mut r).unwrap();
    perturb(agent.actor_target.as_mut().unwrap(), &mut r);
    agent
        .critic_targets
        .iter_mut()
        .for_each(|t| perturb(t, &mut r));

    let bound = Some(max_action as f64);
    for iteration in 1..=4 {
        let ctx = |what: &str| format!("{algo} iteration {iteration}: {what}");
        let batch = random_batch(&mut r, obs_dim, act_dim, n);
        // Unclipped smoothing noise ε, about two thirds of it beyond the clip c = 1.
        let noise = uniform(&mut r, act_dim, n, -3.0, 3.0);
        let beyond = (0..n)
            .filter(|&b| (noise.get(0, b) as f64).abs() > clip)
            .count();
        assert!(beyond > 0, "the noise reaches beyond its clip");

        let actor0 = dense_net(&agent.actor.net);
        let critics0 = [
            dense_net(&agent.critics[0].net),
            dense_net(&agent.critics[1].net),
        ];
        let targets0 = [
            dense_net(agent.actor_target.as_ref().unwrap()),
            dense_net(&agent.critic_targets[0]),
            dense_net(&agent.critic_targets[1]),
        ];
        let moments0 = [
            dense_moments(&agent.actor.net, &agent.actor.adam),
            dense_moments(&agent.critics[0].net, &agent.critics[0].adam),
            dense_moments(&agent.critics[1].net, &agent.critics[1].adam),
        ];
        let steps0 = [agent.actor.adam.steps(), agent.critics[0].adam.steps()];
        let target_bits0 = [
            agent.actor_target.clone().unwrap(),
            agent.critic_targets[0].clone(),
            agent.critic_targets[1].clone(),
        ];
        let report = agent.train_with_noise(&batch, &noise, &mut r).unwrap();
        assert_eq!(report.iteration, iteration);

        // TD target through the target networks, with clipped smoothing noise.
        let mut y = vec![0.0; n];
        for (b, yb) in y.iter_mut().enumerate() {
            let pi = forward(&targets0[0], &column(&batch.next_obs, b), bound)[3].clone();
            let a: Vec<f64> = pi
                .iter()
                .enumerate()
                .map(|(f, p)| {
                    let eps = (noise.get(f, b) as f64).clamp(-clip, clip);
                    (p + eps).clamp(-2.0, 2.0)
                })
                .collect();
            let input: Vec<f64> = column(&batch.next_obs, b).into_iter().chain(a).collect();
            let q1 = forward(&targets0[1], &input, None)[3][0];
            let q2 = forward(&targets0[2], &input, None)[3][0];
            *yb = batch.rewards.get(0, b) as f64
                + batch.not_done.get(0, b) as f64 * gamma * q1.min(q2);
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
            (t, lr, wd),
        );

        if iteration % 2 == 1 {
            // Not a policy iteration: no actor step, the targets keep every bit.
            assert_eq!(report.actor_loss, None, "{}", ctx("actor"));
            assert_eq!(agent.actor.adam.steps(), steps0[0], "{}", ctx("actor"));
            let targets = [
                agent.actor_target.as_ref().unwrap(),
                &agent.critic_targets[0],
                &agent.critic_targets[1],
            ];
            for (t, t0) in targets.into_iter().zip(&target_bits0) {
                for (l, l0) in t.layers().iter().zip(t0.layers()) {
                    assert_eq!(l.weight_values(), l0.weight_values(), "{}", ctx("target"));
                    assert_eq!(l.bias(), l0.bias(), "{}", ctx("target"));
                }
            }
            continue;
        }
        // Actor loss through the updated critic 1, its gradients and Adam step.
        let (mut gw, mut gb) = zero_grads(&actor0);
        let mut actor_loss = 0.0;
        for b in 0..n {
            let s = column(&batch.obs, b);
            let a_acts = forward(&actor0, &s, bound);
            let input: Vec<f64> = s.iter().copied().chain(a_acts[3].iter().copied()).collect();
            let c_acts = forward(&critics1[0], &input, None);
            actor_loss -= c_acts[3][0] / n as f64;
            let d_in = backward(&critics1[0], &c_acts, &[-1.0 / n as f64], None, None);
            backward(
                &actor0,
                &a_acts,
                &d_in[obs_dim..],
                bound,
                Some((&mut gw, &mut gb)),
            );
        }
        let got_actor_loss = report.actor_loss.expect("actor updated this iteration");
        assert!(
            (got_actor_loss - actor_loss).abs() <= 1e-5 * actor_loss.abs().max(1e-3),
            "{}: {got_actor_loss} vs {actor_loss}",
            ctx("actor loss")
        );
        let actor = &agent.actor;
        assert_grads(&ctx("actor"), &actor.net, actor.gradients(), (&gw, &gb));
        let t = steps0[0] as i32 + 1;
        let actor1 = adam(&actor0, &moments0[0], (&gw, &gb), t, lr, wd);
        assert_params(
            &ctx("actor"),
            &actor.net,
            &actor1,
            &actor0,
            Some((&gw, &gb)),
            lr,
        );
        // Soft updates of the targets towards the new online parameters (same topologies, so
        // nothing is pruned).
        let online = [
            dense_net(&agent.actor.net),
            dense_net(&agent.critics[0].net),
            dense_net(&agent.critics[1].net),
        ];
        let targets = [
            agent.actor_target.as_ref().unwrap(),
            &agent.critic_targets[0],
            &agent.critic_targets[1],
        ];
        for ((t, t0), o) in targets.into_iter().zip(&targets0).zip(&online) {
            assert_params(&ctx("target"), t, &soft(t0, o, tau), t0, None, 0.0);
        }
    }
}

#[test]
fn dense_td3_iterations_match_reference() {
    check_iterations(Algo::Dense);
}

#[test]
fn sparse_td3_iterations_match_reference() {
    check_iterations(Algo::Static);
}
