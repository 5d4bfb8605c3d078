//! An independent, straightforward f64 reference of the networks and their training, shared by
//! the update tests (TD3's and SAC's): dense matrices built from the networks, explicit forward
//! and backward passes, PyTorch's Adam formula and the soft update, and comparisons that allow
//! f32 rounding only.

// Each test file uses its own subset; the reference is written with explicit indices, as the
// formulas read.
#![allow(dead_code, clippy::needless_range_loop)]

use rand::{RngExt, rngs::StdRng};
use sparse_core::{Activations, Adam, Grads, Layer, Mlp};
use td3::{Agent, Batch, IterationReport};

/// `features × n` values uniform in `[lo, hi)`.
pub fn uniform(r: &mut StdRng, features: usize, n: usize, lo: f32, hi: f32) -> Activations {
    let data: Vec<f32> = (0..features * n).map(|_| r.random_range(lo..hi)).collect();
    Activations::from_samples(features, n, &data).unwrap()
}

/// A minibatch of `n` random transitions: observations in ±1, actions in ±2, rewards in ±1,
/// every third transition terminal.
pub fn random_batch(r: &mut StdRng, obs_dim: usize, act_dim: usize, n: usize) -> Batch {
    let mut batch = Batch {
        obs: uniform(r, obs_dim, n, -1.0, 1.0),
        actions: uniform(r, act_dim, n, -2.0, 2.0),
        rewards: uniform(r, 1, n, -1.0, 1.0),
        next_obs: uniform(r, obs_dim, n, -1.0, 1.0),
        not_done: uniform(r, 1, n, 0.0, 1.0),
    };
    for b in 0..n {
        batch.not_done.set(0, b, if b % 3 == 0 { 0.0 } else { 1.0 });
    }
    batch
}

/// Weight gradients per layer (`[layer][out][in]`).
pub type WeightGrads = [Vec<Vec<f64>>];
/// Bias gradients per layer (`[layer][out]`).
pub type BiasGrads = [Vec<f64>];

/// One layer as dense f64 matrices plus the mask of trainable (live) weights.
#[derive(Clone)]
pub struct DenseLayer {
    pub w: Vec<Vec<f64>>,
    pub b: Vec<f64>,
    pub live: Vec<Vec<bool>>,
}

pub fn dense_net(net: &Mlp) -> Vec<DenseLayer> {
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
pub fn forward(net: &[DenseLayer], x: &[f64], tanh_bound: Option<f64>) -> Vec<Vec<f64>> {
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
pub fn backward(
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

pub fn zero_grads(net: &[DenseLayer]) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
    (
        net.iter()
            .map(|l| vec![vec![0.0; l.w[0].len()]; l.w.len()])
            .collect(),
        net.iter().map(|l| vec![0.0; l.b.len()]).collect(),
    )
}

/// Adam moments of one layer in the layout of [`DenseLayer`].
#[derive(Clone)]
pub struct DenseMoments {
    pub mw: Vec<Vec<f64>>,
    pub vw: Vec<Vec<f64>>,
    pub mb: Vec<f64>,
    pub vb: Vec<f64>,
}

/// `(row, column)` of each weight value of a layer, in the order of its values (and of its
/// Adam moments and gradients).
pub fn slots(layer: &Layer) -> Vec<(usize, usize)> {
    match layer {
        Layer::Sparse(s) => s.weights().iter().map(|(r, c, _)| (r, c)).collect(),
        Layer::Dense(_) => (0..layer.n_out() * layer.n_in())
            .map(|i| (i / layer.n_in(), i % layer.n_in()))
            .collect(),
    }
}

pub fn dense_moments(net: &Mlp, adam: &Adam) -> Vec<DenseMoments> {
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
pub fn dense_grads(net: &Mlp, grads: &Grads) -> (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>) {
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
pub fn adam_step(p: f64, g: f64, m: &mut f64, v: &mut f64, t: i32, lr: f64, wd: f64) -> f64 {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let g = g + wd * p;
    *m = b1 * *m + (1.0 - b1) * g;
    *v = b2 * *v + (1.0 - b2) * g * g;
    p - lr * (*m / (1.0 - b1.powi(t))) / ((*v / (1.0 - b2.powi(t))).sqrt() + eps)
}

/// Applies Adam step `t` to the live parameters; returns the new network.
pub fn adam(
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
pub fn assert_grads(
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
pub fn assert_params(
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

pub fn soft(target: &[DenseLayer], online: &[DenseLayer], tau: f64) -> Vec<DenseLayer> {
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
pub fn perturb(net: &mut Mlp, r: &mut StdRng) {
    for layer in net.layers_mut() {
        let (w, b) = layer.params_mut();
        w.iter_mut()
            .chain(b.iter_mut())
            .for_each(|v| *v += r.random_range(-0.05..0.05));
    }
}

/// Sample `b` of a minibatch array, as f64.
pub fn column(a: &Activations, b: usize) -> Vec<f64> {
    (0..a.features()).map(|f| a.get(f, b) as f64).collect()
}

/// Step 3 against the reference: each critic's loss `mean((Q_i(s, a) − y)²)`, its gradients
/// and its Adam step (step `t`, from `moments`), checked against `agent`'s critics after the
/// iteration, and the summed loss against `report`. Returns the updated reference critics.
#[allow(clippy::too_many_arguments)]
pub fn check_critic_steps(
    what: &str,
    agent: &Agent,
    report: &IterationReport,
    critics0: &[Vec<DenseLayer>; 2],
    moments: &[Vec<DenseMoments>],
    batch: &Batch,
    y: &[f64],
    (t, lr, wd): (i32, f64, f64),
) -> Vec<Vec<DenseLayer>> {
    let n = y.len();
    let mut critic_loss = 0.0;
    let mut critics1 = Vec::new();
    for (i, c) in critics0.iter().enumerate() {
        let (mut gw, mut gb) = zero_grads(c);
        for b in 0..n {
            let input: Vec<f64> = column(&batch.obs, b)
                .into_iter()
                .chain(column(&batch.actions, b))
                .collect();
            let acts = forward(c, &input, None);
            let err = acts[3][0] - y[b];
            critic_loss += err * err / n as f64;
            let d = [2.0 * err / n as f64];
            backward(c, &acts, &d, None, Some((&mut gw, &mut gb)));
        }
        let critic = &agent.critics[i];
        assert_grads(what, &critic.net, critic.gradients(), (&gw, &gb));
        let next = adam(c, &moments[i], (&gw, &gb), t, lr, wd);
        assert_params(what, &critic.net, &next, c, Some((&gw, &gb)), lr);
        critics1.push(next);
    }
    assert!(
        (report.critic_loss - critic_loss).abs() <= 1e-5 * critic_loss.abs(),
        "{what} loss: {} vs {critic_loss}",
        report.critic_loss
    );
    critics1
}
