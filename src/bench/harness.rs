//! The harness of `ds-td3 bench`: sampling and medians, and the two tables (kernels of a
//! 256×256 layer, whole TD3 iterations) that the CPU and GPU leaves fill with their own timings.

use std::time::{Duration, Instant};

use rand::{SeedableRng, rngs::StdRng};
use sparse_core::Layer;
use td3::Agent;

use ds_td3::workloads::{
    KERNEL_BATCHES, KERNEL_NAMES, N, Setting, Shape, kernel_layers, sparsity, warm_agent,
};

/// How long and how often to sample.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Samples per measurement (the median is reported).
    pub samples: usize,
    /// About how long each sample lasts.
    pub sample_time: Duration,
}

impl Sampling {
    /// Fewer, shorter samples with `quick`.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                samples: 3,
                sample_time: Duration::from_millis(40),
            }
        } else {
            Self {
                samples: 7,
                sample_time: Duration::from_millis(150),
            }
        }
    }
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

/// Prints the kernel table, titled with `device` (e.g. " on <GPU>"): `time(layer, kernel,
/// batch)` times one kernel of one of the workload's layers (dense first: each group's
/// reference).
pub fn kernel_table(
    device: &str,
    mut time: impl FnMut(&Layer, &str, usize) -> anyhow::Result<Timing>,
) -> anyhow::Result<()> {
    println!("Kernels{device}: {N}x{N} layer, dense vs CSR at each density");
    println!(
        "{:>5}  {:<13}  {:<8}  {:>10}  {:>8}  {:>7}",
        "batch", "kernel", "density", "time", "/dense", "GFLOPS"
    );
    let layers = kernel_layers(&mut StdRng::seed_from_u64(0));
    for batch in KERNEL_BATCHES {
        for kernel in KERNEL_NAMES {
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
    println!(
        "(backward = weight and bias gradient + backward-data as training takes a hidden \
         layer's: on a CPU with AVX-512 one fused pass, where the two rows above are the \
         kernels apart; step = forward + backward)"
    );
    Ok(())
}

/// Prints a table of whole iterations of the `settings`' agents (the first the dense baseline)
/// for each of the `shapes`: each agent, to be timed on `device`, is warmed up on the CPU
/// through its first evolution, then `prepare` moves it to where it is timed; `finish` ends
/// every sample.
pub fn iteration_table(
    sampling: Sampling,
    title: &str,
    shapes: &[Shape],
    settings: &[Setting],
    device: td3::Device,
    prepare: &dyn Fn(&mut Agent) -> anyhow::Result<()>,
    finish: &dyn Fn(),
) -> anyhow::Result<()> {
    println!("{title}");
    println!(
        "{:<15}  {:<11}  {:>8}  {:>11}  {:>10}  {:>8}  {:>7}",
        "shape", "setting", "sparsity", "connections", "time/iter", "/dense", "GFLOPS"
    );
    for &shape in shapes {
        let mut dense_secs = None;
        for &setting in settings {
            let (mut agent, batch, mut rng) = warm_agent(shape, setting, device, 0);
            prepare(&mut agent)?;
            let before = agent.flops().total();
            let (mut iterations, mut failed) = (0u64, None);
            // Whole pairs of iterations: TD3's actor and targets update every second one.
            let secs = median_time(
                sampling,
                2,
                || {
                    if let Err(e) = agent.train(&batch, &mut rng) {
                        failed.get_or_insert(e);
                    }
                    iterations += 1;
                },
                finish,
            );
            if let Some(e) = failed {
                return Err(e.into());
            }
            let flops = (agent.flops().total() - before) as f64 / iterations as f64;
            let t = Timing { secs, flops };
            let dense = *dense_secs.get_or_insert(secs);
            println!(
                "{:<15}  {:<11}  {:>7.1}%  {:>11}  {:>10}  {:>8.3}  {:>7.1}",
                shape.env,
                setting.name(),
                100.0 * sparsity(&agent),
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
