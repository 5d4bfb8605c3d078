//! Every kernel and the code above it against the CPU path (sparse-core, set-evolve): on the
//! kernel emulator always, and on a CUDA GPU when the machine has one (otherwise that half says
//! it was skipped; `DS_TD3_REQUIRE_GPU=1` makes that a failure). Tolerance: norm-wise relative 1e-4 for sums (another summation order), exact where
//! the GPU computes the CPU's operations in the CPU's order.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_core::{
    Activations, Adam, AdamConfig, Grads, Layer, LayerKind, Mlp, Output, SparseLinear,
    SparseWeights, Workspace,
};
use sparse_cuda::{
    Activation, Device, GpuActivations, GpuAdam, GpuGrads, GpuLayer, GpuMlp, GpuWorkspace,
};

#[path = "../../../tests/support/skip.rs"]
mod skip;

/// The emulator, and the GPU when this machine has one. No GPU at all skips the GPU half
/// visibly (a failure under `DS_TD3_REQUIRE_GPU=1`); a GPU that will not open fails the test.
fn devices() -> Vec<Device> {
    let mut all = vec![Device::emulator()];
    if let Some(gpu) = skip::gpu(
        "sparse-cuda parity, GPU half",
        Device::cuda(0),
        sparse_cuda::Error::is_no_gpu,
    ) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "sparse-cuda parity: also on {}",
                gpu.name()
            );
        });
        all.push(gpu);
    }
    all
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn random_acts(r: &mut impl Rng, features: usize, batch: usize) -> Activations {
    let mut a = Activations::zeros(features, batch);
    for f in 0..features {
        for b in 0..batch {
            a.set(f, b, r.random_range(-1.0..1.0));
        }
    }
    a
}

/// ‖got − want‖ ≤ 1e-4 ‖want‖ (or ≤ 1e-6 absolute when `want` is ~0).
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| ((g - w) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        diff <= 1e-4 * norm || diff <= 1e-6,
        "{what}: |diff| {diff:e} vs |want| {norm:e}"
    );
}

fn acts_close(what: &str, got: &GpuActivations, want: &Activations) {
    let got = got.to_host().unwrap();
    assert_eq!(
        (got.features(), got.batch()),
        (want.features(), want.batch())
    );
    assert_close(what, &got.to_samples(), &want.to_samples());
}

/// A sparse layer with density `density` (at least `min_nnz` connections), or a dense one.
fn layer(r: &mut impl Rng, n_in: usize, n_out: usize, density: Option<f64>) -> Layer {
    let kinds = [match density {
        None => LayerKind::Dense,
        Some(d) => LayerKind::Sparse {
            lambda: d * (n_in * n_out) as f64 / (n_in + n_out) as f64,
        },
    }];
    let net = Mlp::init(&[n_in, n_out], &kinds, Output::Linear, r).unwrap();
    let mut l = net.layers()[0].clone();
    let (_, b) = l.params_mut();
    b.iter_mut().for_each(|v| *v = r.random_range(-0.5..0.5));
    l
}

#[test]
fn layer_kernels_match_the_cpu() {
    for dev in devices() {
        let mut r = rng(1);
        let shapes = [(17, 9), (64, 33), (3, 40)];
        for &(n_in, n_out) in &shapes {
            for density in [None, Some(1.0), Some(0.5), Some(0.1), Some(0.02)] {
                let host = layer(&mut r, n_in, n_out, density);
                let gpu = GpuLayer::upload(&dev, &host, true).unwrap();
                for batch in [1, 7, 100, 257] {
                    let ctx = format!("{} {n_in}x{n_out} {density:?} batch {batch}", dev.name());
                    let x = random_acts(&mut r, n_in, batch);
                    let dz = random_acts(&mut r, n_out, batch);
                    let gx = GpuActivations::from_host(&dev, &x).unwrap();
                    let gdz = GpuActivations::from_host(&dev, &dz).unwrap();

                    let mut y = Activations::zeros(n_out, batch);
                    host.forward(&x, &mut y).unwrap();
                    let mut gy = GpuActivations::zeros(&dev, 0, 0).unwrap();
                    gpu.forward(&dev, &gx, &mut gy, Activation::Linear).unwrap();
                    acts_close(&format!("forward {ctx}"), &gy, &y);

                    let mut dx = Activations::zeros(n_in, batch);
                    host.backward_data(&dz, &mut dx).unwrap();
                    let mut gdx = GpuActivations::zeros(&dev, 0, 0).unwrap();
                    gpu.backward_data(&dev, &gdz, &mut gdx).unwrap();
                    acts_close(&format!("backward-data {ctx}"), &gdx, &dx);

                    let mut g = host.zero_grads();
                    host.param_grads(&dz, &x, &mut g).unwrap();
                    let mut gg = gpu.zero_grads(&dev).unwrap();
                    gpu.param_grads(&dev, &gdz, &gx, &mut gg).unwrap();
                    assert_close(
                        &format!("weight grad {ctx}"),
                        &gg.weights.to_vec().unwrap(),
                        &g.weights,
                    );
                    assert_close(
                        &format!("bias grad {ctx}"),
                        &gg.bias.to_vec().unwrap(),
                        &g.bias,
                    );
                }
                // FLOPs are counted like the CPU kernels count them.
                let back = gpu.to_host().unwrap();
                assert_eq!(back.flops(), host.flops(), "{}: FLOP counts", dev.name());
                assert_eq!(back.weight_values(), host.weight_values());
            }
        }
    }
}

#[test]
fn activations_round_trip_and_row_copies() {
    for dev in devices() {
        let mut r = rng(2);
        let a = random_acts(&mut r, 5, 13);
        let b = random_acts(&mut r, 3, 13);
        let ga = GpuActivations::from_host(&dev, &a).unwrap();
        let gb = GpuActivations::from_host(&dev, &b).unwrap();
        assert_eq!(ga.to_host().unwrap().to_samples(), a.to_samples());
        let mut stacked = GpuActivations::zeros(&dev, 8, 13).unwrap();
        stacked.copy_rows_from(0, &ga).unwrap();
        stacked.copy_rows_from(5, &gb).unwrap();
        let mut tail = GpuActivations::zeros(&dev, 3, 13).unwrap();
        tail.copy_rows_of(&stacked, 5..8).unwrap();
        assert_eq!(tail.to_host().unwrap().to_samples(), b.to_samples());
        let host = stacked.to_host().unwrap();
        for f in 0..5 {
            assert_eq!(host.row(f), a.row(f));
        }
        assert!(stacked.copy_rows_from(6, &gb).is_err(), "rows past the end");
        assert!(
            tail.copy_rows_of(&stacked, 6..9).is_err(),
            "rows past the end"
        );
    }
}

/// A 3-layer actor-shaped network: sparse, sparse, dense, with a tanh output.
fn network(r: &mut impl Rng, sizes: [usize; 4], output: Output) -> Mlp {
    let kinds = [
        LayerKind::Sparse { lambda: 3.0 },
        LayerKind::Sparse { lambda: 8.0 },
        LayerKind::Dense,
    ];
    Mlp::init(&sizes, &kinds, output, r).unwrap()
}

#[test]
fn network_forward_backward_and_adam_match_the_cpu() {
    for dev in devices() {
        let mut r = rng(3);
        let mut host = network(&mut r, [11, 64, 48, 3], Output::Tanh { bound: 2.0 });
        let config = AdamConfig {
            weight_decay: 2e-4,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(config, &host).unwrap();
        let mut gpu = GpuMlp::upload(&dev, &host, true).unwrap();
        let mut gadam = GpuAdam::upload(&dev, &adam).unwrap();
        let (mut ws, mut gws) = (Workspace::new(), GpuWorkspace::new());
        let mut grads = Grads::zeros_like(&host);
        let mut ggrads = GpuGrads::zeros_like(&gpu).unwrap();
        for step in 0..5 {
            let ctx = format!("{} step {step}", dev.name());
            let batch = [100, 7, 100, 1, 33][step];
            let x = random_acts(&mut r, 11, batch);
            let d_out = random_acts(&mut r, 3, batch);
            let gx = GpuActivations::from_host(&dev, &x).unwrap();
            let gd = GpuActivations::from_host(&dev, &d_out).unwrap();
            let y = host.forward(&x, &mut ws).unwrap().clone();
            let gy = gpu.forward(&gx, &mut gws).unwrap();
            acts_close(&format!("output {ctx}"), gy, &y);

            let mut dx = Activations::zeros(11, batch);
            host.backward(&mut ws, &d_out, Some(&mut grads), Some(&mut dx))
                .unwrap();
            let mut gdx = GpuActivations::zeros(&dev, 0, 0).unwrap();
            gpu.backward(&mut gws, &gd, Some(&mut ggrads), Some(&mut gdx))
                .unwrap();
            acts_close(&format!("input gradient {ctx}"), &gdx, &dx);
            for (i, (g, h)) in ggrads.layers().iter().zip(grads.layers()).enumerate() {
                assert_close(
                    &format!("layer {i} weight grad {ctx}"),
                    &g.weights.to_vec().unwrap(),
                    &h.weights,
                );
                assert_close(
                    &format!("layer {i} bias grad {ctx}"),
                    &g.bias.to_vec().unwrap(),
                    &h.bias,
                );
            }
            // Adam from the same gradients (the CPU's, uploaded), so only the update is compared.
            adam.step(&mut host, &grads).unwrap();
            let same = upload_grads(&grads, &gpu);
            gadam.step(&mut gpu, &same).unwrap();
            let back = gpu.to_host().unwrap();
            for (i, (g, h)) in back.layers().iter().zip(host.layers()).enumerate() {
                assert_close(
                    &format!("layer {i} weights after Adam {ctx}"),
                    g.weight_values(),
                    h.weight_values(),
                );
                assert_close(
                    &format!("layer {i} bias after Adam {ctx}"),
                    g.bias(),
                    h.bias(),
                );
            }
        }
        let back = gpu.to_host().unwrap();
        let back_adam = gadam.to_host(&back).unwrap();
        assert_eq!(back_adam.steps(), 5);
        for (g, h) in back_adam.layers().iter().zip(adam.layers()) {
            assert_close("first moments", &g.weights.m, &h.weights.m);
            assert_close("second moments", &g.weights.v, &h.weights.v);
        }
        assert_eq!(back.flops(), host.flops(), "{}: FLOP counts", dev.name());
        assert_eq!(back.live_connections(), host.live_connections());
    }
}

/// The host gradients `grads`, on `like`'s device.
fn upload_grads(grads: &Grads, like: &GpuMlp) -> GpuGrads {
    let mut g = GpuGrads::zeros_like(like).unwrap();
    g.layers_mut()
        .iter_mut()
        .zip(grads.layers())
        .for_each(|(d, h)| {
            d.weights.write(0, &h.weights).unwrap();
            d.bias.write(0, &h.bias).unwrap();
        });
    g
}

/// A sparse layer at random positions (exactly `nnz`) with values from a small set, so equal
/// magnitudes (ties at the pruning threshold) are common.
fn tie_layer(r: &mut impl Rng, n_in: usize, n_out: usize, nnz: usize) -> Layer {
    let mut positions: Vec<usize> = rand::seq::index::sample(r, n_in * n_out, nnz).into_vec();
    positions.sort_unstable();
    let set = [-0.5f32, -0.25, 0.0, 0.25, 0.5, 1.0];
    let values = (0..nnz)
        .map(|_| set[r.random_range(0..set.len())])
        .collect();
    let w = SparseWeights::from_positions(n_out, n_in, &positions, values).unwrap();
    let bias = (0..n_out).map(|_| r.random_range(-1.0..1.0)).collect();
    SparseLinear::new(w, bias).unwrap().into()
}

fn tie_network(r: &mut impl Rng, budget: [usize; 2]) -> Mlp {
    let dense = {
        let net = Mlp::init(&[40, 2], &[LayerKind::Dense], Output::Linear, r).unwrap();
        net.layers()[0].clone()
    };
    // 70 inputs: the GPU's pruning kernels cut a row into chunks of 32 cells, the last partial.
    let layers = vec![
        tie_layer(r, 12, 70, budget[0]),
        tie_layer(r, 70, 40, budget[1]),
        dense,
    ];
    Mlp::new(layers, Output::Linear).unwrap()
}

#[test]
fn soft_update_and_prune_matches_set_evolve() {
    for dev in devices() {
        let mut r = rng(4);
        let budget = [90, 900];
        for tau in [0.005, 0.5, 1.0, 0.0] {
            let mut host_target = tie_network(&mut r, budget);
            let mut gpu_target = GpuMlp::upload(&dev, &host_target, false).unwrap();
            for round in 0..6 {
                let ctx = format!("{} tau {tau} round {round}", dev.name());
                // A new online topology every other round; the same one (values changed) between.
                let online = if round % 2 == 0 {
                    tie_network(&mut r, budget)
                } else {
                    let mut o = host_target.clone();
                    for l in o.layers_mut() {
                        let (w, _) = l.params_mut();
                        w.iter_mut().for_each(|v| *v = -*v);
                    }
                    o
                };
                let gpu_online = GpuMlp::upload(&dev, &online, true).unwrap();
                set_evolve::soft_update_and_prune(&mut host_target, &online, tau).unwrap();
                sparse_cuda::soft_update_and_prune(&mut gpu_target, &gpu_online, tau).unwrap();
                let back = gpu_target.to_host().unwrap();
                for (i, (g, h)) in back.layers().iter().zip(host_target.layers()).enumerate() {
                    if let (Layer::Sparse(g), Layer::Sparse(h)) = (g, h) {
                        assert_eq!(
                            g.weights().positions(),
                            h.weights().positions(),
                            "layer {i} topology, {ctx}"
                        );
                        assert_eq!(g.weights().nnz(), budget[i], "layer {i} budget, {ctx}");
                    }
                    assert_eq!(
                        g.weight_values(),
                        h.weight_values(),
                        "layer {i} weights, {ctx}"
                    );
                    assert_eq!(g.bias(), h.bias(), "layer {i} bias, {ctx}");
                }
            }
        }
        // Bad input is an error, not a panic.
        let a = tie_network(&mut r, budget);
        let mut ga = GpuMlp::upload(&dev, &a, false).unwrap();
        let other = Mlp::init(&[12, 5, 2], &[LayerKind::Dense; 2], Output::Linear, &mut r).unwrap();
        let go = GpuMlp::upload(&dev, &other, true).unwrap();
        assert!(sparse_cuda::soft_update_and_prune(&mut ga, &go, 0.5).is_err());
        let ga2 = GpuMlp::upload(&dev, &a, true).unwrap();
        assert!(sparse_cuda::soft_update_and_prune(&mut ga, &ga2, 1.5).is_err());
    }
}

#[test]
fn targets_cannot_run_backward() {
    let dev = Device::emulator();
    let mut r = rng(5);
    let net = network(&mut r, [4, 8, 8, 1], Output::Linear);
    let target = GpuMlp::upload(&dev, &net, false).unwrap();
    let x = GpuActivations::from_host(&dev, &random_acts(&mut r, 4, 3)).unwrap();
    let mut ws = GpuWorkspace::new();
    target.forward(&x, &mut ws).unwrap();
    let d = GpuActivations::from_host(&dev, &random_acts(&mut r, 1, 3)).unwrap();
    let mut g = GpuGrads::zeros_like(&target).unwrap();
    assert!(target.backward(&mut ws, &d, Some(&mut g), None).is_err());
    let fresh = GpuMlp::upload(&dev, &net, true).unwrap();
    assert!(
        fresh
            .backward(&mut GpuWorkspace::new(), &d, None, None)
            .is_err(),
        "backward before forward"
    );
}

#[test]
fn td3_elementwise_pieces_match_their_formulas() {
    for dev in devices() {
        let mut r = rng(6);
        let n = 37;
        let pi = random_acts(&mut r, 2, n);
        let mut noise = random_acts(&mut r, 2, n);
        noise.row_mut(0).iter_mut().for_each(|v| *v *= 3.0);
        let (gpi, gnoise) = (
            GpuActivations::from_host(&dev, &pi).unwrap(),
            GpuActivations::from_host(&dev, &noise).unwrap(),
        );
        let mut out = GpuActivations::zeros(&dev, 0, 0).unwrap();
        sparse_cuda::ops::smoothed_action(&dev, &gpi, &gnoise, &mut out, 0.5, 0.8).unwrap();
        let out = out.to_host().unwrap();
        for f in 0..2 {
            for b in 0..n {
                let want = (pi.get(f, b) + noise.get(f, b).clamp(-0.5, 0.5)).clamp(-0.8, 0.8);
                assert_eq!(out.get(f, b), want);
            }
        }
        let [q1, q2, rew] = [0; 3].map(|_| random_acts(&mut r, 1, n));
        let mut not_done = Activations::zeros(1, n);
        (0..n).for_each(|b| not_done.set(0, b, (b % 3 != 0) as u8 as f32));
        let up = |a: &Activations| GpuActivations::from_host(&dev, a).unwrap();
        let mut y = GpuActivations::zeros(&dev, 0, 0).unwrap();
        sparse_cuda::ops::td_target(
            &dev,
            (&up(&q1), &up(&q2)),
            &up(&rew),
            &up(&not_done),
            0.99,
            &mut y,
        )
        .unwrap();
        let y = y.to_host().unwrap();
        for b in 0..n {
            let want = rew.get(0, b) + not_done.get(0, b) * 0.99 * q1.get(0, b).min(q2.get(0, b));
            assert_eq!(y.get(0, b), want);
        }
        let mut d = GpuActivations::zeros(&dev, 0, 0).unwrap();
        let mut sq = dev.zeros(0).unwrap();
        let yq = up(&y);
        let loss = sparse_cuda::ops::mse_loss_grad(&dev, &up(&q1), &yq, &mut d, &mut sq).unwrap();
        let d = d.to_host().unwrap();
        let mut want_loss = 0.0f64;
        for b in 0..n {
            let e = q1.get(0, b) - y.get(0, b);
            want_loss += (e * e) as f64;
            assert_eq!(d.get(0, b), 2.0 * e / n as f32);
        }
        assert!((loss - want_loss / n as f64).abs() <= 1e-12 * want_loss.max(1.0));
        assert!(
            sparse_cuda::ops::td_target(
                &dev,
                (&up(&q1), &up(&pi)),
                &up(&rew),
                &up(&not_done),
                0.9,
                &mut up(&rew)
            )
            .is_err()
        );
    }
}
