//! One TD3 iteration against an independent, straightforward f64 reference: dense matrices built
//! from the networks, explicit forward and backward passes, PyTorch's Adam formula and the soft
//! update, for dense and for sparse networks.

// The reference is written with explicit indices, as the formulas read.
#![allow(clippy::needless_range_loop)]

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, Layer, Mlp};
use td3::{Agent, Algo, Batch, Config};

/// Weight gradients per layer (`[layer][out][in]`).
type WeightGrads = [Vec<Vec<f64>>];
/// Bias gradients per layer (`[layer][out]`).
type BiasGrads = [Vec<f64>];

/// One layer as dense f64 matrices plus the mask of trainable (live) weights.
#[derive(Clone)]
struct DenseLayer {
    w: Vec<Vec<f64>>,
    b: Vec<f64>,
    live: Vec<Vec<bool>>,
}

fn dense_net(net: &Mlp) -> Vec<DenseLayer> {
    net.layers()
        .iter()
        .map(|layer| {
            let (n_in, n_out) = (layer.n_in(), layer.n_out());
            let mut w = vec![vec![0.0; n_in]; n_out];
            let mut live = vec![vec![false; n_in]; n_out];
            match layer {
                Layer::Sparse(s) => s.weights().iter().for_each(|(r, c, v)| {
                    w[r][c] = v as f64;
                    live[r][c] = true;
                }),
                Layer::Dense(d) => (0..n_out).for_each(|r| {
                    (0..n_in).for_each(|c| {
                        w[r][c] = d.weights()[r * n_in + c] as f64;
                        live[r][c] = true;
                    })
                }),
            }
            DenseLayer {
                w,
                b: layer.bias().iter().map(|&v| v as f64).collect(),
                live,
            }
        })
        .collect()
}

/// Forward pass of one sample; returns every layer's post-activation output (index 0 = input).
fn forward(net: &[DenseLayer], x: &[f64], tanh_bound: Option<f64>) -> Vec<Vec<f64>> {
    let mut acts = vec![x.to_vec()];
    for (i, l) in net.iter().enumerate() {
        let h = acts.last().unwrap();
        let z: Vec<f64> =
            l.w.iter()
                .zip(&l.b)
                .map(|(row, b)| b + row.iter().zip(h).map(|(w, x)| w * x).sum::<f64>())
                .collect();
        let out = if i + 1 < net.len() {
            z.iter().map(|v| v.max(0.0)).collect()
        } else if let Some(bound) = tanh_bound {
            z.iter().map(|v| bound * v.tanh()).collect()
        } else {
            z
        };
        acts.push(out);
    }
    acts
}

/// Backward pass of one sample given dL/d(output); accumulates weight and bias gradients into
/// `gw`, `gb` and returns dL/d(input).
fn backward(
    net: &[DenseLayer],
    acts: &[Vec<f64>],
    d_out: &[f64],
    tanh_bound: Option<f64>,
    grads: Option<(&mut WeightGrads, &mut BiasGrads)>,
) -> Vec<f64> {
    let n = net.len();
    let y = &acts[n];
    let mut dz: Vec<f64> = match tanh_bound {
        Some(bound) => d_out
            .iter()
            .zip(y)
            .map(|(d, o)| d * bound * (1.0 - (o / bound).powi(2)))
            .collect(),
        None => d_out.to_vec(),
    };
    let mut grads = grads;
    for i in (0..n).rev() {
        let h = &acts[i];
        if let Some((gw, gb)) = grads.as_mut() {
            for (j, d) in dz.iter().enumerate() {
                gb[i][j] += d;
                for (k, x) in h.iter().enumerate() {
                    gw[i][j][k] += d * x;
                }
            }
        }
        let mut dx = vec![0.0; h.len()];
        for (j, d) in dz.iter().enumerate() {
            for (k, dxk) in dx.iter_mut().enumerate() {
                *dxk += net[i].w[j][k] * d;
            }
        }
        if i > 0 {
            dx.iter_mut().zip(h).for_each(|(d, &a)| {
                if a <= 0.0 {
                    *d = 0.0
                }
            });
        }
        dz = dx;
    }
    dz
}

fn zero_grads(net: &[DenseLayer]) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
    (
        net.iter()
            .map(|l| vec![vec![0.0; l.w[0].len()]; l.w.len()])
            .collect(),
        net.iter().map(|l| vec![0.0; l.b.len()]).collect(),
    )
}

/// PyTorch's first Adam step (zero moments, t = 1): p -= lr · m̂ / (√v̂ + ε) with
/// g += wd·p, m̂ = g, v̂ = g².
fn adam_first_step(p: f64, g: f64, lr: f64, wd: f64) -> f64 {
    let g = g + wd * p;
    p - lr * g / ((g * g).sqrt() + 1e-8)
}

/// Applies one Adam step to the live parameters; returns the new network.
fn adam(
    net: &[DenseLayer],
    gw: &[Vec<Vec<f64>>],
    gb: &[Vec<f64>],
    lr: f64,
    wd: f64,
) -> Vec<DenseLayer> {
    let mut out = net.to_vec();
    for (i, l) in out.iter_mut().enumerate() {
        for j in 0..l.w.len() {
            for k in 0..l.w[j].len() {
                if l.live[j][k] {
                    l.w[j][k] = adam_first_step(l.w[j][k], gw[i][j][k], lr, wd);
                }
            }
            l.b[j] = adam_first_step(l.b[j], gb[i][j], lr, wd);
        }
    }
    out
}

/// Compares our parameters with the reference. Adam's first step is ±lr wherever the gradient
/// dominates ε, so where the reference gradient is tiny against the layer's largest (f32
/// rounding can move its sign) only the step size is checked.
fn assert_params(
    what: &str,
    ours: &Mlp,
    reference: &[DenseLayer],
    before: &[DenseLayer],
    grads: Option<(&WeightGrads, &BiasGrads)>,
    lr: f64,
) {
    let ours = dense_net(ours);
    let check = |name: String, got: f64, want: f64, old: f64, g: Option<(f64, f64)>| {
        let tiny = g.is_some_and(|(g, scale)| g.abs() < 1e-3 * scale);
        if tiny {
            assert!(
                (got - old).abs() <= lr * 1.001,
                "{what} {name}: step {}",
                got - old
            );
        } else {
            assert!(
                (got - want).abs() <= 1e-6 + 1e-5 * want.abs(),
                "{what} {name}: {got} vs {want}"
            );
        }
    };
    for (i, (o, r)) in ours.iter().zip(reference).enumerate() {
        let scale = grads.map(|(gw, gb)| {
            gw[i]
                .iter()
                .flatten()
                .chain(&gb[i])
                .fold(0.0f64, |m, v| m.max(v.abs()))
        });
        for j in 0..o.w.len() {
            for k in 0..o.w[j].len() {
                assert_eq!(o.live[j][k], r.live[j][k], "{what} topology");
                let g = grads.map(|(gw, _)| (gw[i][j][k], scale.unwrap()));
                check(
                    format!("layer {i} w[{j},{k}]"),
                    o.w[j][k],
                    r.w[j][k],
                    before[i].w[j][k],
                    g,
                );
            }
            let g = grads.map(|(_, gb)| (gb[i][j], scale.unwrap()));
            check(
                format!("layer {i} b[{j}]"),
                o.b[j],
                r.b[j],
                before[i].b[j],
                g,
            );
        }
    }
}

fn soft(target: &[DenseLayer], online: &[DenseLayer], tau: f64) -> Vec<DenseLayer> {
    let mut out = target.to_vec();
    for (t, o) in out.iter_mut().zip(online) {
        for j in 0..t.w.len() {
            for k in 0..t.w[j].len() {
                t.w[j][k] = tau * o.w[j][k] + (1.0 - tau) * t.w[j][k];
            }
            t.b[j] = tau * o.b[j] + (1.0 - tau) * t.b[j];
        }
    }
    out
}

fn check_one_iteration(algo: Algo) {
    let (obs_dim, act_dim, n, max_action) = (5, 2, 16, 2.0f32);
    let mut config = Config::paper("Pendulum-v1", algo);
    config.hidden = 24;
    config.lambda1 = 3.0;
    config.lambda2 = 6.0;
    config.policy_delay = 1; // the actor and targets update in this very iteration
    let (lr, wd, tau, gamma) = (config.lr, config.weight_decay, config.tau, config.gamma);
    let mut r = StdRng::seed_from_u64(7);
    let mut agent = Agent::new(&config, obs_dim, act_dim, max_action, &mut r).unwrap();

    let acts = |r: &mut StdRng, f: usize, lo: f32, hi: f32| {
        let data: Vec<f32> = (0..f * n).map(|_| r.random_range(lo..hi)).collect();
        Activations::from_samples(f, n, &data).unwrap()
    };
    let mut batch = Batch {
        obs: acts(&mut r, obs_dim, -1.0, 1.0),
        actions: acts(&mut r, act_dim, -2.0, 2.0),
        rewards: acts(&mut r, 1, -1.0, 1.0),
        next_obs: acts(&mut r, obs_dim, -1.0, 1.0),
        not_done: acts(&mut r, 1, 0.0, 1.0),
    };
    for b in 0..n {
        batch.not_done.set(0, b, if b % 3 == 0 { 0.0 } else { 1.0 });
    }
    let noise = acts(&mut r, act_dim, -1.0, 1.0); // some entries beyond the ±0.5·2 clip

    let actor0 = dense_net(&agent.actor.net);
    let critics0 = [
        dense_net(&agent.critics[0].net),
        dense_net(&agent.critics[1].net),
    ];
    let report = agent.train_with_noise(&batch, &noise, &mut r).unwrap();

    let col = |a: &Activations, b: usize| {
        (0..a.features())
            .map(|f| a.get(f, b) as f64)
            .collect::<Vec<f64>>()
    };
    let bound = Some(max_action as f64);
    // TD target with clipped smoothing noise (targets equal the online networks initially).
    let mut y = vec![0.0; n];
    for (b, yb) in y.iter_mut().enumerate() {
        let pi = forward(&actor0, &col(&batch.next_obs, b), bound)[3].clone();
        let a: Vec<f64> = pi
            .iter()
            .enumerate()
            .map(|(f, p)| {
                let eps = (noise.get(f, b) as f64).clamp(-1.0, 1.0);
                (p + eps).clamp(-2.0, 2.0)
            })
            .collect();
        let input: Vec<f64> = col(&batch.next_obs, b).into_iter().chain(a).collect();
        let q1 = forward(&critics0[0], &input, None)[3][0];
        let q2 = forward(&critics0[1], &input, None)[3][0];
        *yb = batch.rewards.get(0, b) as f64 + batch.not_done.get(0, b) as f64 * gamma * q1.min(q2);
    }
    // Critic losses and Adam steps.
    let mut critic_loss = 0.0;
    let mut critics1 = Vec::new();
    let mut critic_grads = Vec::new();
    for c in &critics0 {
        let (mut gw, mut gb) = zero_grads(c);
        for b in 0..n {
            let input: Vec<f64> = col(&batch.obs, b)
                .into_iter()
                .chain(col(&batch.actions, b))
                .collect();
            let acts = forward(c, &input, None);
            let err = acts[3][0] - y[b];
            critic_loss += err * err / n as f64;
            backward(
                c,
                &acts,
                &[2.0 * err / n as f64],
                None,
                Some((&mut gw, &mut gb)),
            );
        }
        critics1.push(adam(c, &gw, &gb, lr, wd));
        critic_grads.push((gw, gb));
    }
    assert!(
        (report.critic_loss - critic_loss).abs() <= 1e-5 * critic_loss.abs(),
        "critic loss {} vs {critic_loss}",
        report.critic_loss
    );
    for i in 0..2 {
        let (gw, gb) = &critic_grads[i];
        assert_params(
            "critic",
            &agent.critics[i].net,
            &critics1[i],
            &critics0[i],
            Some((gw, gb)),
            lr,
        );
    }
    // Actor loss through the updated critic 1, and its Adam step.
    let (mut gw, mut gb) = zero_grads(&actor0);
    let mut actor_loss = 0.0;
    for b in 0..n {
        let s = col(&batch.obs, b);
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
    let actor1 = adam(&actor0, &gw, &gb, lr, wd);
    let got_actor_loss = report.actor_loss.expect("actor updated this iteration");
    assert!(
        (got_actor_loss - actor_loss).abs() <= 1e-5 * actor_loss.abs().max(1e-3),
        "actor loss {got_actor_loss} vs {actor_loss}"
    );
    assert_params(
        "actor",
        &agent.actor.net,
        &actor1,
        &actor0,
        Some((&gw, &gb)),
        lr,
    );
    // Soft updates of the targets towards the (checked) new online parameters; the topologies
    // are identical, so nothing is pruned.
    let new_actor = dense_net(&agent.actor.net);
    assert_params(
        "actor target",
        &agent.actor_target,
        &soft(&actor0, &new_actor, tau),
        &actor0,
        None,
        0.0,
    );
    for i in 0..2 {
        let new_critic = dense_net(&agent.critics[i].net);
        assert_params(
            "critic target",
            &agent.critic_targets[i],
            &soft(&critics0[i], &new_critic, tau),
            &critics0[i],
            None,
            0.0,
        );
    }
}

#[test]
fn dense_td3_iteration_matches_reference() {
    check_one_iteration(Algo::Dense);
}

#[test]
fn sparse_td3_iteration_matches_reference() {
    check_one_iteration(Algo::Static);
}
