//! Train a truly sparse MLP on a small regression problem, evolving its topology with SET.
//!
//! Run with `cargo run --release --example sparse_regression`. It fits
//! `y = sin(x0) · cos(x1) + x2²/2` with a 3 → 128 → 128 → 1 network whose hidden layers are
//! Erdős–Rényi sparse, evolves them every 200 steps, and prints the loss, the live connections
//! and the FLOPs the kernels counted.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use set_evolve::{EvolutionController, EvolutionMemory};
use sparse_core::{Activations, Adam, AdamConfig, Grads, LayerKind, Mlp, Output, Workspace};

fn target(x: &[f32]) -> f32 {
    x[0].sin() * x[1].cos() + 0.5 * x[2] * x[2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = StdRng::seed_from_u64(0);
    let kinds = [
        LayerKind::Sparse { lambda: 4.0 },
        LayerKind::Sparse { lambda: 16.0 },
        LayerKind::Dense,
    ];
    let mut net = Mlp::init(&[3, 128, 128, 1], &kinds, Output::Linear, &mut rng)?;
    let mut adam = Adam::new(AdamConfig::default(), &net)?;
    let mut grads = Grads::zeros_like(&net);
    let mut evolution = EvolutionController::new(200, 0.1)?;
    let mut memory = EvolutionMemory::default();
    let mut ws = Workspace::new();
    let batch = 64;
    println!(
        "live connections: {} of {} (dense)",
        net.live_connections(),
        3 * 128 + 128 * 128 + 128
    );

    for step in 1..=2000 {
        let samples: Vec<f32> = (0..3 * batch)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let x = Activations::from_samples(3, batch, &samples)?;
        let y = net.forward(&x, &mut ws)?;
        // Mean squared error and its gradient with respect to the output.
        let mut d_out = Activations::zeros(1, batch);
        let mut loss = 0.0;
        for b in 0..batch {
            let err = y.get(0, b) - target(&samples[3 * b..3 * b + 3]);
            loss += err * err / batch as f32;
            d_out.set(0, b, 2.0 * err / batch as f32);
        }
        net.backward(&mut ws, &d_out, Some(&mut grads), None)?;
        adam.step(&mut net, &grads)?;
        if let Some(step_kind) = evolution.tick()
            && let Some(stats) = evolution.evolve(
                step_kind,
                &mut net,
                Some(&mut adam),
                Some(&mut grads),
                &mut memory,
                &mut rng,
                Some(&ws),
            )?
        {
            if step % 1000 == 0 {
                println!(
                    "step {step}: loss {loss:.4}; evolution moved {} connections (mean |w| {:.4})",
                    stats.removed(),
                    stats.mean_abs_removed().unwrap_or(0.0)
                );
            }
        } else if step % 250 == 0 {
            println!("step {step}: loss {loss:.4}");
        }
    }
    let flops = net.flops();
    println!(
        "live connections after training: {}; FLOPs counted: forward {:.3e}, backward-data {:.3e}, weight gradient {:.3e}",
        net.live_connections(),
        flops.forward as f64,
        flops.backward_data as f64,
        flops.weight_grad as f64
    );
    Ok(())
}
