//! TD3 iterations against an independent, straightforward f64 reference: dense matrices built
//! from the networks, explicit forward and backward passes, PyTorch's Adam formula and the soft
//! update, for dense and for sparse networks. Gradients are compared in magnitude, Adam steps
//! from the moments so far, over several iterations with policy delay 2 and target networks that
//! differ from the online ones, so that using the online networks in the TD target, a missing
//! tanh′ factor, a wrong 1/n or a factor of 2, or target updates at the wrong iterations fail.

// The reference is written with explicit indices, as the formulas read.
#![allow(clippy::needless_range_loop)]

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, Adam, Grads, Layer, Mlp};
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

/// Adam moments of one layer in the layout of [`DenseLayer`].
#[derive(Clone)]
struct DenseMoments {
    mw: Vec<Vec<f64>>,
    vw: Vec<Vec<f64>>,
    mb: Vec<f64>,
    vb: Vec<f64>,
}

/// `(row, column)` of each weight value of a layer, in the order of its values (and of its
/// Adam moments and gradients).
fn slots(layer: &Layer) -> Vec<(usize, usize)> {
    match layer {
        Layer::Sparse(s) => s.weights().iter().map(|(r, c, _)| (r, c)).collect(),
        Layer::Dense(_) => (0..layer.n_out() * layer.n_in())
            .map(|i| (i / layer.n_in(), i % layer.n_in()))
            .collect(),
    }
}

fn dense_moments(net: &Mlp, adam: &Adam) -> Vec<DenseMoments> {
    net.layers()
        .iter()
        .zip(adam.layers())
        .map(|(layer, st)| {
            let mut mw = vec![vec![0.0; layer.n_in()]; layer.n_out()];
            let mut vw = mw.clone();
            for (s, (r, c)) in slots(layer).into_iter().enumerate() {
                mw[r][c] = st.weights.m[s] as f64;
                vw[r][c] = st.weights.v[s] as f64;
            }
            DenseMoments {
                mw,
                vw,
                mb: st.bias.m.iter().map(|&v| v as f64).collect(),
                vb: st.bias.v.iter().map(|&v| v as f64).collect(),
            }
        })
        .collect()
}

/// A network's gradients in the layout of [`DenseLayer`] (0 at dead positions).
fn dense_grads(net: &Mlp, grads: &Grads) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
    net.layers()
        .iter()
        .zip(grads.layers())
        .map(|(layer, g)| {
            let mut gw = vec![vec![0.0; layer.n_in()]; layer.n_out()];
            for (s, (r, c)) in slots(layer).into_iter().enumerate() {
                gw[r][c] = g.weights[s] as f64;
            }
            (gw, g.bias.iter().map(|&v| v as f64).collect())
        })
        .unzip()
}

/// PyTorch's Adam step `t` from moments `m`, `v` (updated in place), written from its
/// documented formula: g += wd·p; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
/// p −= lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε).
fn adam_step(p: f64, g: f64, m: &mut f64, v: &mut f64, t: i32, lr: f64, wd: f64) -> f64 {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let g = g + wd * p;
    *m = b1 * *m + (1.0 - b1) * g;
    *v = b2 * *v + (1.0 - b2) * g * g;
    p - lr * (*m / (1.0 - b1.powi(t))) / ((*v / (1.0 - b2.powi(t))).sqrt() + eps)
}

/// Applies Adam step `t` to the live parameters; returns the new network.
fn adam(
    net: &[DenseLayer],
    moments: &[DenseMoments],
    (gw, gb): (&WeightGrads, &BiasGrads),
    t: i32,
    lr: f64,
    wd: f64,
) -> Vec<DenseLayer> {
    let mut out = net.to_vec();
    let mut st = moments.to_vec();
    for (i, l) in out.iter_mut().enumerate() {
        let s = &mut st[i];
        for j in 0..l.w.len() {
            for k in 0..l.w[j].len() {
                if l.live[j][k] {
                    let (m, v) = (&mut s.mw[j][k], &mut s.vw[j][k]);
                    l.w[j][k] = adam_step(l.w[j][k], gw[i][j][k], m, v, t, lr, wd);
                }
            }
            l.b[j] = adam_step(l.b[j], gb[i][j], &mut s.mb[j], &mut s.vb[j], t, lr, wd);
        }
    }
    out
}

/// Compares our gradients with the reference's, in magnitude: within 1e-4 of the layer's
/// largest reference gradient.
fn assert_grads(
    what: &str,
    net: &Mlp,
    grads: Option<&Grads>,
    (gw, gb): (&WeightGrads, &BiasGrads),
) {
    let (ow, ob) = dense_grads(net, grads.expect("the host keeps the last gradients"));
    for i in 0..gw.len() {
        let scale = gw[i]
            .iter()
            .flatten()
            .chain(&gb[i])
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what} layer {i}: no gradient at all");
        let close = |got: f64, want: f64| (got - want).abs() <= 1e-4 * scale;
        for j in 0..gw[i].len() {
            for k in 0..gw[i][j].len() {
                let want = if dense_net(net)[i].live[j][k] {
                    gw[i][j][k]
                } else {
                    0.0
                };
                assert!(
                    close(ow[i][j][k], want),
                    "{what} layer {i} dL/dw[{j},{k}]: {} vs {want}",
                    ow[i][j][k]
                );
            }
            assert!(close(ob[i][j], gb[i][j]), "{what} layer {i} dL/db[{j}]");
        }
    }
}

/// Compares our parameters with the reference. Where the reference gradient is tiny against
/// the layer's largest (f32 rounding can move its sign, and Adam's step is then as large as
/// any), only the step size is checked: at most 3.2·lr, Adam's bound for β1 = 0.9, β2 = 0.999.
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
                (got - old).abs() <= 3.2 * lr,
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

/// Adds uniform noise in ±0.05 to every parameter of `net`.
fn perturb(net: &mut Mlp, r: &mut StdRng) {
    for layer in net.layers_mut() {
        let (w, b) = layer.params_mut();
        w.iter_mut()
            .chain(b.iter_mut())
            .for_each(|v| *v += r.random_range(-0.05..0.05));
    }
}

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
    perturb(&mut agent.actor_target, &mut r);
    agent
        .critic_targets
        .iter_mut()
        .for_each(|t| perturb(t, &mut r));

    let acts = |r: &mut StdRng, f: usize, lo: f32, hi: f32| {
        let data: Vec<f32> = (0..f * n).map(|_| r.random_range(lo..hi)).collect();
        Activations::from_samples(f, n, &data).unwrap()
    };
    let col = |a: &Activations, b: usize| {
        (0..a.features())
            .map(|f| a.get(f, b) as f64)
            .collect::<Vec<f64>>()
    };
    let bound = Some(max_action as f64);
    for iteration in 1..=4 {
        let ctx = |what: &str| format!("{algo} iteration {iteration}: {what}");
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
        // Unclipped smoothing noise ε, about two thirds of it beyond the clip c = 1.
        let noise = acts(&mut r, act_dim, -3.0, 3.0);
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
            dense_net(&agent.actor_target),
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
            agent.actor_target.clone(),
            agent.critic_targets[0].clone(),
            agent.critic_targets[1].clone(),
        ];
        let report = agent.train_with_noise(&batch, &noise, &mut r).unwrap();
        assert_eq!(report.iteration, iteration);

        // TD target through the target networks, with clipped smoothing noise.
        let mut y = vec![0.0; n];
        for (b, yb) in y.iter_mut().enumerate() {
            let pi = forward(&targets0[0], &col(&batch.next_obs, b), bound)[3].clone();
            let a: Vec<f64> = pi
                .iter()
                .enumerate()
                .map(|(f, p)| {
                    let eps = (noise.get(f, b) as f64).clamp(-clip, clip);
                    (p + eps).clamp(-2.0, 2.0)
                })
                .collect();
            let input: Vec<f64> = col(&batch.next_obs, b).into_iter().chain(a).collect();
            let q1 = forward(&targets0[1], &input, None)[3][0];
            let q2 = forward(&targets0[2], &input, None)[3][0];
            *yb = batch.rewards.get(0, b) as f64
                + batch.not_done.get(0, b) as f64 * gamma * q1.min(q2);
        }
        // Critic losses, gradients and Adam steps.
        let mut critic_loss = 0.0;
        let mut critics1 = Vec::new();
        for (i, c) in critics0.iter().enumerate() {
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
            let critic = &agent.critics[i];
            assert_grads(&ctx("critic"), &critic.net, critic.gradients(), (&gw, &gb));
            let t = steps0[1] as i32 + 1;
            let next = adam(c, &moments0[1 + i], (&gw, &gb), t, lr, wd);
            assert_params(&ctx("critic"), &critic.net, &next, c, Some((&gw, &gb)), lr);
            critics1.push(next);
        }
        assert!(
            (report.critic_loss - critic_loss).abs() <= 1e-5 * critic_loss.abs(),
            "{}: {} vs {critic_loss}",
            ctx("critic loss"),
            report.critic_loss
        );

        if iteration % 2 == 1 {
            // Not a policy iteration: no actor step, the targets keep every bit.
            assert_eq!(report.actor_loss, None, "{}", ctx("actor"));
            assert_eq!(agent.actor.adam.steps(), steps0[0], "{}", ctx("actor"));
            let targets = [
                &agent.actor_target,
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
            &agent.actor_target,
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
