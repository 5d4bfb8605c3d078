//! `ds-td3 bench`: sparse against dense in one process — the kernels of a 256×256 layer and whole
//! TD3 iterations — printed as a table of times, same-run sparse/dense ratios and achieved GFLOPS.
//!
//! The workloads are those of the criterion benchmarks ([`ds_td3::workloads`]). Each time is the
//! median over several samples of repeated calls, on one thread. GFLOPS divide the FLOPs the
//! kernels' own counters recorded during the timed calls (2 per multiply-add; the bias gradient
//! 1 per addition) by the time. Ratios divide a sparse time by the dense time of the same table,
//! measured minutes apart in the same process.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rand::{SeedableRng, rngs::StdRng};
use sparse_core::kernels::{self, Isa};
use sparse_core::profile::{self, Part};
use sparse_core::{Activations, Layer, pool};
use td3::Agent;

use crate::train::DeviceArg;
use ds_td3::workloads::{
    KERNEL_BATCHES, N, SHAPES, Setting, TD3_BATCH, WARM_ITERATIONS, kernel_layers, random_acts,
    sparsity, warm_agent,
};

/// Options of `ds-td3 bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Shorter measurements: fewer, shorter samples (under a minute in all).
    #[arg(long)]
    pub quick: bool,
    /// Kernel implementation: portable, avx2 or avx512 (default: the DS_TD3_KERNELS environment
    /// variable, else the fastest this CPU supports).
    #[arg(long, value_name = "ISA")]
    pub kernels: Option<String>,
    /// Which comparisons to run.
    #[arg(long, value_enum, default_value_t = Section::All)]
    pub only: Section,
    /// Threads (CPU only): large sparse products are split by rows between them and, in TD3
    /// iterations, the twin critics run side by side; results are the same for any count
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Where to run: cpu, cuda (the first NVIDIA GPU, through sparse-cuda), or emulator (the
    /// host emulator of the GPU kernels: checks the GPU path without a GPU, times meaningless)
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// Parts of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// Kernels, TD3 iterations and the breakdown.
    All,
    /// Kernels of a 256×256 layer only.
    Kernels,
    /// Whole TD3 iterations only.
    Td3,
    /// Where the time of one dense and one DS iteration goes (CPU only).
    Breakdown,
}

/// How long and how often to sample.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    samples: usize,
    sample_time: Duration,
}

/// Median seconds per call of `f`: calls are repeated until a sample lasts about
/// `sampling.sample_time` (at least `min_reps` calls, a multiple of `min_reps`); `finish` runs
/// at the end of each sample, inside its time (a GPU's synchronize; nothing on the CPU).
pub fn median_time(
    sampling: Sampling,
    min_reps: usize,
    mut f: impl FnMut(),
    finish: &dyn Fn(),
) -> f64 {
    let start = Instant::now();
    for _ in 0..min_reps {
        f();
    }
    finish();
    let once = start.elapsed().as_secs_f64() / min_reps as f64;
    let reps = ((sampling.sample_time.as_secs_f64() / once.max(1e-9)) as usize / min_reps).max(1)
        * min_reps;
    let mut times: Vec<f64> = (0..sampling.samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                f();
            }
            finish();
            t.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// One timed measurement: seconds per call and FLOPs per call.
pub struct Timing {
    /// Median seconds per call.
    pub secs: f64,
    /// FLOPs per call, from the kernels' counters.
    pub flops: f64,
}

impl Timing {
    /// Achieved GFLOPS.
    pub fn gflops(&self) -> f64 {
        self.flops / self.secs / 1e9
    }
}

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
            _ => layer
                .forward(&x, &mut y)
                .and_then(|()| layer.param_grads(&dy, &x, &mut grads))
                .and_then(|()| layer.backward_data(&dy, &mut dx)),
        }
        .expect("shapes are consistent");
        calls += 1;
    };
    let secs = median_time(sampling, 1, &mut run, &|| ());
    let flops = layer.flops().total() as f64 / calls as f64;
    Timing { secs, flops }
}

/// Prints the kernel table, titled with `device` (e.g. " on <GPU>"): `time(layer, kernel,
/// batch)` times one kernel of one of the workload's layers (dense first: each group's
/// reference).
pub fn kernel_table(
    device: &str,
    mut time: impl FnMut(&Layer, &str, usize) -> Result<Timing, String>,
) -> Result<(), String> {
    println!("Kernels{device}: {N}x{N} layer, dense vs CSR at each density");
    println!(
        "{:>5}  {:<13}  {:<8}  {:>10}  {:>8}  {:>7}",
        "batch", "kernel", "density", "time", "/dense", "GFLOPS"
    );
    let layers = kernel_layers(&mut StdRng::seed_from_u64(0));
    for batch in KERNEL_BATCHES {
        for kernel in ["forward", "backward-data", "weight-grad", "step"] {
            let mut dense_secs = None;
            for (name, layer) in &layers {
                let t = time(layer, kernel, batch)?;
                let dense = *dense_secs.get_or_insert(t.secs);
                let density = name.strip_prefix("sparse-").unwrap_or(name);
                println!(
                    "{batch:>5}  {kernel:<13}  {density:<8}  {:>10}  {:>8.3}  {:>7.1}",
                    fmt_secs(t.secs),
                    t.secs / dense,
                    t.gflops()
                );
            }
        }
    }
    println!("(step = forward + weight and bias gradient + backward-data)");
    Ok(())
}

/// Prints where the time of one TD3 iteration goes, for dense TD3 and DS-TD3 at the paper's λ
/// with Hopper's shapes: each agent (warmed up as in the TD3 table) runs `iterations` more
/// iterations (a multiple of the evolution period, so evolution is amortised exactly) under
/// [`sparse_core::profile`].
fn breakdown_table(iterations: u64, threads: usize) -> Result<(), String> {
    let shape = SHAPES[0];
    println!(
        "Breakdown of one TD3 iteration, {} shapes, {threads} thread{}: mean over {iterations} \
         iterations (one evolution per {WARM_ITERATIONS}), wall time of the thread that calls \
         Agent::train",
        shape.env,
        if threads == 1 { "" } else { "s" }
    );
    let settings = [Setting::Dense, Setting::DsPaper];
    let mut columns = Vec::new();
    for setting in settings {
        let (mut agent, batch, mut rng) = warm_agent(shape, setting, 0);
        agent.set_parallel_critics(threads > 1);
        profile::start();
        let start = Instant::now();
        for _ in 0..iterations {
            agent.train(&batch, &mut rng).map_err(|e| e.to_string())?;
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

/// Prints the TD3-iteration table: each agent is warmed up on the CPU through its first
/// evolution, then `prepare` moves it to where it is timed; `finish` ends every sample.
pub fn td3_table(
    sampling: Sampling,
    title: &str,
    prepare: &dyn Fn(&mut Agent) -> Result<(), String>,
    finish: &dyn Fn(),
) -> Result<(), String> {
    println!("{title}");
    println!(
        "{:<15}  {:<9}  {:>8}  {:>11}  {:>10}  {:>8}  {:>7}",
        "shape", "setting", "sparsity", "connections", "time/iter", "/dense", "GFLOPS"
    );
    for shape in SHAPES {
        let mut dense_secs = None;
        for setting in Setting::ALL {
            let (mut agent, batch, mut rng) = warm_agent(shape, setting, 0);
            prepare(&mut agent)?;
            let before = agent.flops().total();
            let (mut iterations, mut failed) = (0u64, None);
            // Whole pairs of iterations: the actor and targets update every second one.
            let secs = median_time(
                sampling,
                2,
                || {
                    if let Err(e) = agent.train(&batch, &mut rng) {
                        failed.get_or_insert(e.to_string());
                    }
                    iterations += 1;
                },
                finish,
            );
            if let Some(e) = failed {
                return Err(e);
            }
            let flops = (agent.flops().total() - before) as f64 / iterations as f64;
            let t = Timing { secs, flops };
            let dense = *dense_secs.get_or_insert(secs);
            println!(
                "{:<15}  {:<9}  {:>7.1}%  {:>11}  {:>10}  {:>8.3}  {:>7.1}",
                shape.env,
                setting.name(),
                100.0 * sparsity(&agent, shape),
                agent.live_connections(),
                fmt_secs(secs),
                secs / dense,
                t.gflops()
            );
        }
    }
    Ok(())
}

/// `12.3 µs` or `4.567 ms`.
pub fn fmt_secs(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.3} ms", s * 1e3)
    }
}

/// Runs `ds-td3 bench`.
pub fn run(args: &BenchArgs) -> Result<(), String> {
    let gpu = match args.device {
        DeviceArg::Cpu => None,
        DeviceArg::Cuda => {
            Some(sparse_cuda::Device::cuda(0).map_err(|e| format!("--device cuda: {e}"))?)
        }
        DeviceArg::Emulator => Some(sparse_cuda::Device::emulator()),
    };
    let isa = match &args.kernels {
        Some(name) => {
            let isa: Isa = name.parse().map_err(|e| format!("--kernels: {e}"))?;
            kernels::set_default_isa(isa).map_err(|e| format!("--kernels: {e}"))?;
            isa
        }
        None => {
            kernels::isa_from_env().map_err(|e| e.to_string())?;
            kernels::default_isa()
        }
    };
    let sampling = if args.quick {
        Sampling {
            samples: 3,
            sample_time: Duration::from_millis(40),
        }
    } else {
        Sampling {
            samples: 7,
            sample_time: Duration::from_millis(150),
        }
    };
    let available: Vec<&str> = Isa::available().iter().map(|i| i.name()).collect();
    let wants = |section: Section| args.only == Section::All || args.only == section;
    if let Some(dev) = &gpu {
        if args.threads > 1 || args.only == Section::Breakdown {
            return Err("--threads and --only breakdown measure the CPU: use --device cpu".into());
        }
        println!(
            "ds-td3 bench on {}: times are medians of {} samples, each ended by a device \
             synchronize; ratios are same-run",
            dev.name(),
            sampling.samples
        );
        if wants(Section::Kernels) {
            println!();
            crate::bench_gpu::kernel_table(sampling, dev)?;
        }
        if wants(Section::Td3) {
            println!();
            crate::bench_gpu::td3_table(sampling, dev)?;
        }
        return Ok(());
    }
    let threads = args.threads as usize;
    pool::set_threads(threads);
    let plural = if threads == 1 { "" } else { "s" };
    println!(
        "ds-td3 bench: sparse kernels {isa} (available: {}), {threads} thread{plural}; times are \
         medians of {} samples; ratios are same-run",
        available.join(", "),
        sampling.samples
    );
    if wants(Section::Kernels) {
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
    }
    if wants(Section::Td3) {
        println!();
        let title = format!(
            "TD3 iterations: Agent::train on a synthetic minibatch of {TD3_BATCH}, {threads} \
             thread{plural}; sparse agents timed after their first evolution"
        );
        let parallel = threads > 1;
        let prepare = |agent: &mut Agent| {
            agent.set_parallel_critics(parallel);
            Ok(())
        };
        td3_table(sampling, &title, &prepare, &|| ())?;
    }
    if wants(Section::Breakdown) {
        println!();
        let iterations = if args.quick { 1 } else { 2 } * WARM_ITERATIONS;
        breakdown_table(iterations, threads)?;
    }
    Ok(())
}
