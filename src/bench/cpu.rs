//! `ds-td3 bench` on the CPU: sparse-core's kernels against matrixmultiply, whole TD3 and SAC
//! iterations, and where the time of one iteration goes.

use std::time::{Duration, Instant};

use rand::{SeedableRng, rngs::StdRng};
use sparse_core::kernels::{Epilogue, Isa};
use sparse_core::policy::{Policy, PolicyInfo};
use sparse_core::profile::{self, Part};
use sparse_core::{Activations, Layer, Workspace, pool};
use td3::Agent;

use super::harness::{Sampling, Timing, fmt_secs, iteration_table, kernel_table, median_time};
use super::{BenchArgs, Section};
use ds_td3::workloads::{
    ANT, N, SHAPES, Setting, TD3_BATCH, WARM_ITERATIONS, random_acts, warm_agent,
};

/// Times one kernel of `layer`, counting FLOPs with the layer's own counter.
fn time_kernel(sampling: Sampling, layer: &Layer, kernel: &str, batch: usize) -> Timing {
    let mut rng = StdRng::seed_from_u64(1);
    let x = random_acts(&mut rng, N, batch);
    let dy = random_acts(&mut rng, N, batch);
    let (mut y, mut dx) = (Activations::zeros(N, batch), Activations::zeros(N, batch));
    let mut grads = layer.zero_grads();
    let mut calls = 0u64;
    layer.reset_flops();
    let mut run = || {
        match kernel {
            "forward" => layer.forward(&x, &mut y),
            "backward-data" => layer.backward_data(&dy, &mut dx),
            "weight-grad" => layer.param_grads(&dy, &x, &mut grads),
            // Both backward products as a network's training step takes a hidden layer's: in
            // one call, one fused pass on AVX-512.
            "backward" => layer.backward_then(&dy, &x, &mut grads, &mut dx, Epilogue::None),
            _ => layer
                .forward(&x, &mut y)
                .and_then(|()| layer.backward_then(&dy, &x, &mut grads, &mut dx, Epilogue::None)),
        }
        .expect("shapes are consistent");
        calls += 1;
    };
    let secs = median_time(sampling, 1, &mut run, &|| ());
    let flops = layer.flops().total() as f64 / calls as f64;
    Timing { secs, flops }
}

/// Prints where the time of one TD3 iteration goes, for dense TD3, DS-TD3 at the paper's λ and
/// DS-TD3 at 90% sparsity with gradient growth, with Hopper's shapes: each agent (warmed up as
/// in the TD3 table) runs `iterations` more
/// iterations (a multiple of the evolution period, so evolution is amortised exactly) under
/// [`sparse_core::profile`].
fn breakdown_table(iterations: u64, threads: usize) -> anyhow::Result<()> {
    let shape = SHAPES[0];
    println!(
        "Breakdown of one TD3 iteration, {} shapes, {threads} thread{}: mean over {iterations} \
         iterations (one evolution per {WARM_ITERATIONS}), wall time of the thread that calls \
         Agent::train",
        shape.env,
        if threads == 1 { "" } else { "s" }
    );
    let settings = [Setting::Dense, Setting::DsPaper, Setting::Ds90];
    let mut columns = Vec::new();
    for setting in settings {
        let (mut agent, batch, mut rng) = warm_agent(shape, setting, td3::Device::Cpu, 0);
        agent.set_parallel_critics(threads > 1);
        profile::start();
        let start = Instant::now();
        for _ in 0..iterations {
            agent.train(&batch, &mut rng)?;
        }
        let total = start.elapsed();
        let mut b = profile::stop();
        // Time outside every scope is "everything else" too.
        let other = Part::Other as usize;
        b.parts[other] += total.saturating_sub(b.total());
        columns.push((b, total));
    }
    print!("{:<32}", "part");
    for setting in settings {
        print!("  {:>20}", setting.name());
    }
    println!();
    let per_iter = |d: Duration| d.as_secs_f64() / iterations as f64;
    let rows = Part::ALL.iter().map(|&p| (p.label(), Some(p)));
    for (label, part) in rows.chain([("total", None)]) {
        print!("{label:<32}");
        for (b, total) in &columns {
            let d = part.map_or(*total, |p| b.get(p));
            let share = 100.0 * d.as_secs_f64() / total.as_secs_f64();
            print!("  {:>11} {:>7.1}%", fmt_secs(per_iter(d)), share);
        }
        println!();
    }
    Ok(())
}

/// Prints the time of one action (batch 1) of the exported actor ([`Policy::act_rows`], what
/// `ds-td3 eval --policy` runs per step) with Hopper's shapes: dense, DS at the paper's λ and DS
/// at 90% and 95% sparsity, freshly initialised (evolution keeps each layer's connection count, so
/// a trained actor has these densities too), on one thread.
fn inference_table(sampling: Sampling) -> anyhow::Result<()> {
    let shape = SHAPES[0];
    println!(
        "Inference: the exported actor's action for one observation (batch 1), {} shapes, 1 \
         thread",
        shape.env
    );
    println!(
        "{:<9}  {:>8}  {:>11}  {:>10}  {:>8}",
        "setting", "density", "connections", "time/act", "/dense"
    );
    let mut dense_secs = None;
    for setting in Setting::ALL {
        let mut rng = StdRng::seed_from_u64(0);
        let agent = Agent::new(
            &setting.config(shape, td3::Device::Cpu),
            shape.obs,
            shape.act,
            1.0,
            &mut rng,
        )?;
        let policy = Policy::new(agent.actor.net.clone(), PolicyInfo::default())?;
        let obs: Vec<f32> = (0..shape.obs).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut ws = Workspace::new();
        let mut failed = None;
        let secs = median_time(
            sampling,
            1,
            || {
                if let Err(e) = policy.act_rows(&obs, &mut ws) {
                    failed.get_or_insert(e);
                }
            },
            &|| (),
        );
        if let Some(e) = failed {
            return Err(e.into());
        }
        let dense = *dense_secs.get_or_insert(secs);
        println!(
            "{:<9}  {:>7.1}%  {:>11}  {:>10}  {:>8.3}",
            setting.name(),
            100.0 * policy.density(),
            policy.network().live_connections(),
            fmt_secs(secs),
            secs / dense
        );
    }
    Ok(())
}

/// Runs the sections `args` asks for on the CPU, with kernels `isa`.
pub fn run(args: &BenchArgs, isa: Isa, sampling: Sampling) -> anyhow::Result<()> {
    let available: Vec<&str> = Isa::available().iter().map(|i| i.name()).collect();
    let threads = args.threads as usize;
    pool::set_threads(threads);
    let plural = if threads == 1 { "" } else { "s" };
    println!(
        "ds-td3 bench: sparse kernels {isa} (available: {}), {threads} thread{plural}; times are \
         medians of {} samples; ratios are same-run",
        available.join(", "),
        sampling.samples
    );
    if args.wants(Section::Kernels) {
        println!();
        let title = if threads == 1 {
            " (matrixmultiply for dense)".to_string()
        } else {
            format!(
                " (sparse products split over {threads} threads; matrixmultiply for dense, on one \
                 thread: the ratios compare {threads} cores with one)"
            )
        };
        kernel_table(&title, |layer, kernel, batch| {
            Ok(time_kernel(sampling, layer, kernel, batch))
        })?;
        if let Some(gflops) = sparse_core::kernels::load_bound() {
            let isa = sparse_core::kernels::active_isa();
            let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
            println!(
                "Load-bound ceiling ({isa}, 1 thread): {gflops:.1} GFLOPS for multiply-adds that \
                 each load one input vector from L1, like the sparse kernels' inner loop without \
                 its index, value and per-row work, every lane live (batch 100 fills 100 of the \
                 {} lanes it loads). Dense GEMM reuses each loaded vector across output rows; a \
                 sparse row cannot.",
                100usize.next_multiple_of(lanes)
            );
        }
    }
    let parallel = threads > 1;
    let prepare = |agent: &mut Agent| {
        agent.set_parallel_critics(parallel);
        Ok(())
    };
    if args.wants(Section::Td3) {
        println!();
        let title = format!(
            "TD3 iterations: Agent::train on a synthetic minibatch of {TD3_BATCH}, {threads} \
             thread{plural}; sparse agents timed after their first evolution"
        );
        iteration_table(
            sampling,
            &title,
            &SHAPES,
            &Setting::ALL,
            td3::Device::Cpu,
            &prepare,
            &|| (),
        )?;
        println!();
        let title = format!(
            "Width scaling: dense TD3 at 256 units against DS-TD3 at 1024 units and 98% \
             sparsity (examples/beyond-ant-wide.toml), Ant-v3 shapes, as above ({threads} \
             thread{plural})"
        );
        iteration_table(
            sampling,
            &title,
            &[ANT],
            &Setting::WIDE,
            td3::Device::Cpu,
            &prepare,
            &|| (),
        )?;
    }
    if args.wants(Section::Sac) {
        println!();
        let title = format!(
            "SAC iterations: Agent::train on a synthetic minibatch of 256, {threads} \
             thread{plural}; DS-SAC at the paper's λ, timed after its first evolution"
        );
        iteration_table(
            sampling,
            &title,
            &SHAPES,
            &Setting::SAC,
            td3::Device::Cpu,
            &prepare,
            &|| (),
        )?;
    }
    if args.wants(Section::Breakdown) {
        println!();
        let iterations = if args.quick { 1 } else { 2 } * WARM_ITERATIONS;
        breakdown_table(iterations, threads)?;
    }
    if args.wants(Section::Inference) {
        println!();
        // One observation is far too little work to split between threads.
        pool::set_threads(1);
        inference_table(sampling)?;
    }
    Ok(())
}
