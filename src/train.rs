//! `ds-td3 train`: configure, start or resume a run, report progress, checkpoint.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use td3::{Algo, Config, Device, Event, Trainer, checkpoint};

use crate::run_dir::{Logs, RunDir};

/// The TD3 variant, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgoArg {
    /// DS-TD3: sparse hidden layers whose topology evolves (SET).
    Ds,
    /// Static-TD3: sparse hidden layers with a fixed topology.
    Static,
    /// TD3 with dense networks.
    Dense,
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// The CPU (sparse-core's kernels; the default).
    Cpu,
    /// The first CUDA GPU (an NVIDIA driver for CUDA 13 and its NVRTC and cuBLAS libraries).
    Cuda,
    /// sparse-cuda's host emulator of its GPU kernels (slow).
    Emulator,
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
            DeviceArg::Emulator => Device::Emulator,
        }
    }
}

impl From<AlgoArg> for Algo {
    fn from(a: AlgoArg) -> Algo {
        match a {
            AlgoArg::Ds => Algo::Ds,
            AlgoArg::Static => Algo::Static,
            AlgoArg::Dense => Algo::Dense,
        }
    }
}

/// Parses a count written as `1000000`, `1_000_000` or `1e6`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.replace('_', "");
    if let Ok(v) = t.parse::<u64>() {
        return Ok(v);
    }
    match t.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 => Ok(v as u64),
        _ => Err(format!(
            "'{s}' is not a whole number of steps (e.g. 1000000 or 1e6)"
        )),
    }
}

/// Hyper-parameters; each defaults to the paper's value.
#[derive(Debug, Args)]
#[command(next_help_heading = "Hyper-parameters (default: the paper's)")]
pub struct HyperArgs {
    /// Erdős–Rényi λ of each network's first layer [default: 7; Ant 40; Humanoid 61]
    #[arg(long)]
    pub lambda1: Option<f64>,
    /// Erdős–Rényi λ of each network's second layer [default: 64]
    #[arg(long)]
    pub lambda2: Option<f64>,
    /// Width of the hidden layers [default: 256]
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Topology evolution period e, in training iterations [default: 1000]
    #[arg(long, short = 'e')]
    pub evolution_period: Option<u64>,
    /// Fraction η of connections replaced per evolution, in (0, 1) [default: 0.05]
    #[arg(long, visible_alias = "eta")]
    pub evolution_fraction: Option<f64>,
    /// Discount γ [default: 0.99]
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Soft target update τ [default: 0.005]
    #[arg(long)]
    pub tau: Option<f64>,
    /// Target policy smoothing noise, × action bound [default: 0.2]
    #[arg(long)]
    pub policy_noise: Option<f64>,
    /// Clip of the smoothing noise, × action bound [default: 0.5]
    #[arg(long)]
    pub noise_clip: Option<f64>,
    /// Actor and target update period d [default: 2]
    #[arg(long)]
    pub policy_delay: Option<u64>,
    /// Exploration noise, × action bound [default: 0.1]
    #[arg(long)]
    pub expl_noise: Option<f64>,
    /// Adam learning rate [default: 0.001]
    #[arg(long)]
    pub lr: Option<f64>,
    /// Adam coupled L2 weight decay [default: 0.0002]
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Minibatch size [default: 100]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Replay buffer capacity in transitions [default: 1e6]
    #[arg(long, value_parser = parse_count)]
    pub buffer_size: Option<u64>,
    /// Steps of uniformly random actions before training [default: 25000]
    #[arg(long, value_parser = parse_count)]
    pub start_steps: Option<u64>,
    /// Evaluate every N steps [default: 5000]
    #[arg(long, value_parser = parse_count)]
    pub eval_every: Option<u64>,
    /// Episodes per evaluation [default: 10]
    #[arg(long)]
    pub eval_episodes: Option<usize>,
    /// Never end episodes early when the robot falls (the `-noterm` task variants)
    #[arg(long)]
    pub no_termination: bool,
}

/// Options of `ds-td3 train` (also the options of plain `ds-td3`).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Task to train on (see `ds-td3 envs`), e.g. Hopper-v3
    #[arg(long)]
    pub env: Option<String>,
    /// Variant: ds (DS-TD3), static (Static-TD3) or dense (TD3)
    #[arg(long, value_enum, default_value = "ds")]
    pub algo: AlgoArg,
    /// Seed of everything random in the run
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Environment steps to train (1e6 in the paper); with --resume, the new total
    #[arg(long, value_parser = parse_count)]
    pub steps: Option<u64>,
    /// Run directory [default: runs/<env>-<algo>-s<seed>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing run directory
    #[arg(long)]
    pub force: bool,
    /// Continue the run in DIR from its latest checkpoint
    #[arg(long, value_name = "DIR", conflicts_with_all = ["env", "out", "force", "seed", "config"])]
    pub resume: Option<PathBuf>,
    /// Start a run from a complete configuration file (a run's config.json, as `ds-td3 sweep`
    /// writes them); only --steps, --out, --force, --threads, --device, --checkpoint-every and
    /// --quiet may accompany it
    #[arg(long, value_name = "FILE", conflicts_with_all = ["env", "seed", "algo"])]
    pub config: Option<PathBuf>,
    /// Write a checkpoint every N steps (and always at the end and on Ctrl-C)
    #[arg(long, value_parser = parse_count, default_value = "50000", value_name = "N")]
    pub checkpoint_every: u64,
    /// Threads: with 2 or more the twin critics train side by side and large sparse products
    /// are split by rows between them (same results for any count)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Where the networks train: cpu, cuda (the first NVIDIA GPU; evolution stays on the CPU),
    /// or emulator (the GPU code path on the host; slow, for checking it without a GPU). With
    /// --resume, moves the run to that device [default: cpu, or the resumed run's device]
    #[arg(long, value_enum)]
    pub device: Option<DeviceArg>,
    /// Print nothing but errors and the final result
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub hyper: HyperArgs,
}

/// Reads a complete configuration file and applies the command line's --steps and --threads.
fn config_from_file(path: &std::path::Path, args: &TrainArgs) -> Result<Config, String> {
    if any_hyper(&args.hyper) {
        return Err(
            "--config gives the complete configuration: no hyper-parameter may accompany it".into(),
        );
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut c: Config =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(s) = args.steps {
        c.steps = s;
    }
    c.threads = args.threads as usize;
    if let Some(d) = args.device {
        c.device = d.into();
    }
    if !mujoco_env::known_ids().contains(&c.env.as_str()) {
        return Err(format!(
            "{}: unknown environment '{}'; known: {}",
            path.display(),
            c.env,
            mujoco_env::known_ids().join(", ")
        ));
    }
    c.validate()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(c)
}

/// The configuration of a new run from the command line.
fn new_config(args: &TrainArgs) -> Result<Config, String> {
    if let Some(path) = &args.config {
        return config_from_file(path, args);
    }
    let env = args.env.clone().ok_or(
        "which task? pass --env, e.g. `ds-td3 --env Hopper-v3` (`ds-td3 envs` lists them)",
    )?;
    if !mujoco_env::known_ids().contains(&env.as_str()) {
        return Err(format!(
            "unknown environment '{env}'; known: {}",
            mujoco_env::known_ids().join(", ")
        ));
    }
    let mut c = Config::paper(&env, args.algo.into());
    c.seed = args.seed;
    c.threads = args.threads as usize;
    c.device = args.device.map_or(Device::Cpu, Into::into);
    if let Some(s) = args.steps {
        c.steps = s;
    }
    let h = &args.hyper;
    macro_rules! set {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { c.$field = v; } )* };
    }
    set!(
        lambda1 <- h.lambda1, lambda2 <- h.lambda2, hidden <- h.hidden,
        evolution_period <- h.evolution_period, evolution_fraction <- h.evolution_fraction,
        gamma <- h.gamma, tau <- h.tau, policy_noise <- h.policy_noise,
        noise_clip <- h.noise_clip, policy_delay <- h.policy_delay, expl_noise <- h.expl_noise,
        lr <- h.lr, weight_decay <- h.weight_decay, batch_size <- h.batch_size,
        buffer_capacity <- h.buffer_size.map(|v| v as usize), start_steps <- h.start_steps,
        eval_every <- h.eval_every, eval_episodes <- h.eval_episodes,
    );
    c.terminate_when_unhealthy = !h.no_termination;
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// Whether any hyper-parameter was given (not allowed with --resume).
fn any_hyper(h: &HyperArgs) -> bool {
    let f = [
        h.lambda1,
        h.lambda2,
        h.evolution_fraction,
        h.gamma,
        h.tau,
        h.policy_noise,
        h.noise_clip,
        h.expl_noise,
        h.lr,
        h.weight_decay,
    ];
    let u = [
        h.evolution_period,
        h.policy_delay,
        h.buffer_size,
        h.start_steps,
        h.eval_every,
    ];
    let z = [h.hidden, h.batch_size, h.eval_episodes];
    f.iter().any(Option::is_some)
        || u.iter().any(Option::is_some)
        || z.iter().any(Option::is_some)
        || h.no_termination
}

fn mib(bytes: usize) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Prints the configuration, the networks layer by layer and the memory held.
fn print_start(trainer: &Trainer, dir: &RunDir) {
    let c = trainer.config();
    println!("run directory: {}", dir.root().display());
    println!(
        "{} on {} (seed {}), {} steps, {} thread(s), on {}",
        match c.algo {
            Algo::Ds => "DS-TD3",
            Algo::Static => "Static-TD3",
            Algo::Dense => "TD3",
        },
        c.env,
        c.seed,
        c.steps,
        c.threads,
        trainer
            .agent()
            .gpu_name()
            .unwrap_or_else(|| "the CPU".into())
    );
    println!(
        "  λ1 {} λ2 {} hidden {} | e {} η {} | γ {} τ {} d {} | policy noise {} clip {} exploration {} | lr {} wd {} batch {} | start {} eval every {}×{}",
        c.lambda1,
        c.lambda2,
        c.hidden,
        c.evolution_period,
        c.evolution_fraction,
        c.gamma,
        c.tau,
        c.policy_delay,
        c.policy_noise,
        c.noise_clip,
        c.expl_noise,
        c.lr,
        c.weight_decay,
        c.batch_size,
        c.start_steps,
        c.eval_every,
        c.eval_episodes
    );
    let agent = trainer.agent();
    let names = ["actor", "critic 1", "critic 2"];
    for (name, net) in names.iter().zip(agent.online()) {
        let layers: Vec<String> = net
            .layers()
            .iter()
            .map(|l| {
                let kind = if l.is_sparse() { "sparse" } else { "dense" };
                format!("{}→{} {kind} {}", l.n_in(), l.n_out(), l.live_connections())
            })
            .collect();
        println!(
            "  {name:<8} {:>7} connections: {}",
            net.live_connections(),
            layers.join(", ")
        );
    }
    println!(
        "  total: {} live connections (biases excluded)",
        agent.live_connections()
    );
    let (online, targets) = agent.memory();
    let params = online.values + online.col_indices + online.row_ptrs + online.biases;
    println!(
        "  memory: networks {} (targets {}), gradients {}, Adam state {}, replay buffer {} allocated",
        mib(params),
        mib(targets.total()),
        mib(online.gradients),
        mib(online.optimizer),
        mib(trainer.replay().bytes())
    );
    if let Some(bytes) = agent.gpu_bytes() {
        println!(
            "  device memory: {} (networks, targets, gradients, Adam state, batch buffers)",
            mib(bytes)
        );
    }
}

/// Shows progress on a terminal, or prints a plain line per evaluation otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    last: (Instant, u64),
    total: u64,
}

impl Progress {
    fn new(total: u64, step: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {pos}/{len} steps  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_position(step);
            bar.reset_eta();
            bar
        });
        Self {
            bar,
            quiet,
            last: (Instant::now(), step),
            total,
        }
    }

    fn step(&self, step: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(step);
        }
    }

    fn evaluation(&mut self, step: u64, mean: f64, std: f64) {
        let msg = format!("eval {mean:.1} ± {std:.1}");
        if let Some(bar) = &self.bar {
            bar.set_message(msg);
        } else if !self.quiet {
            let (t0, s0) = self.last;
            let rate = (step - s0) as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let eta = if rate > 0.0 {
                (self.total - step) as f64 / rate
            } else {
                0.0
            };
            println!(
                "step {step}/{}  {rate:.0} steps/s  ETA {:.0} s  {msg}",
                self.total, eta
            );
            self.last = (Instant::now(), step);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The training log record of an event, if it is logged.
fn record(event: &Event<'_>) -> Vec<serde_json::Value> {
    match event {
        Event::Episode {
            step,
            episode,
            episode_return,
            length,
        } => vec![json!({
            "type": "episode", "step": step, "episode": episode, "return": episode_return, "length": length,
        })],
        Event::Iteration { step, report } => {
            let mut out = Vec::new();
            if report.iteration % 1000 == 0 {
                out.push(json!({
                    "type": "losses", "step": step, "iteration": report.iteration,
                    "critic_loss": report.critic_loss, "actor_loss": report.actor_loss,
                }));
            }
            for (network, stats) in &report.evolutions {
                out.push(json!({
                    "type": "evolution", "step": step, "iteration": report.iteration, "network": network,
                    "moved": stats.removed(), "mean_abs_removed": stats.mean_abs_removed(),
                    "fraction_removed_were_new": stats.fraction_removed_were_new(),
                }));
            }
            out
        }
        Event::Evaluation(_) => Vec::new(),
    }
}

/// Runs `ds-td3 train`.
pub fn run(args: &TrainArgs) -> Result<(), String> {
    let threads = args.threads as usize;
    let (dir, mut trainer) = match &args.resume {
        Some(path) => {
            if any_hyper(&args.hyper) {
                return Err(
                    "a resumed run keeps its configuration: only --steps, --threads, --device, \
                            --checkpoint-every and --quiet may be given with --resume"
                        .into(),
                );
            }
            let dir = RunDir::open(path)?;
            let mut config = dir.read_config()?;
            config.threads = threads;
            let ckpt = dir.latest_checkpoint();
            if !ckpt.is_file() {
                return Err(format!(
                    "{} has no checkpoint to resume from",
                    path.display()
                ));
            }
            let device = args.device.map(Device::from);
            if device == Some(Device::Cuda) {
                sparse_cuda::Device::cuda_available().map_err(|e| format!("--device cuda: {e}"))?;
            }
            let mut trainer = checkpoint::load(&ckpt, threads, device, Some(&config))
                .map_err(|e| e.to_string())?;
            if let Some(steps) = args.steps {
                if steps < trainer.step() {
                    return Err(format!(
                        "--steps {steps} is below the {} steps already done",
                        trainer.step()
                    ));
                }
                trainer.set_total_steps(steps).map_err(|e| e.to_string())?;
            }
            dir.write_config(trainer.config())?;
            (dir, trainer)
        }
        None => {
            let config = new_config(args)?;
            if config.device == Device::Cuda {
                // Before anything is written: a run that cannot start leaves no directory.
                sparse_cuda::Device::cuda_available().map_err(|e| format!("--device cuda: {e}"))?;
            }
            let out = args.out.clone().unwrap_or_else(|| {
                PathBuf::from("runs")
                    .join(format!("{}-{}-s{}", config.env, config.algo, config.seed))
            });
            let dir = RunDir::create(&out, args.force)?;
            dir.write_config(&config)?;
            let trainer = Trainer::new(config).map_err(|e| e.to_string())?;
            (dir, trainer)
        }
    };
    if !args.quiet {
        if args.resume.is_some() {
            println!("resuming at step {}", trainer.step());
        }
        print_start(&trainer, &dir);
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    }
    let mut logs = Logs::open(
        &dir,
        trainer.step(),
        trainer.evaluations(),
        trainer.config().eval_episodes,
    )?;
    let mut progress = Progress::new(trainer.config().steps, trainer.step(), args.quiet);
    let started = (Instant::now(), trainer.step());
    let every = args.checkpoint_every.max(1);
    // At least one segment, so that even a zero-step run records its initial evaluation.
    loop {
        let next = (trainer.step() / every + 1) * every;
        let mut observe = |event: Event<'_>| -> td3::Result<()> {
            let io = |e: String| td3::Error::Checkpoint(e);
            for r in record(&event) {
                logs.record(r).map_err(io)?;
            }
            match event {
                Event::Evaluation(e) => {
                    logs.evaluation(e).map_err(io)?;
                    progress.evaluation(e.step, e.mean, e.std);
                }
                Event::Iteration { step, .. } | Event::Episode { step, .. } => progress.step(step),
            }
            Ok(())
        };
        trainer
            .run_until(next, &mut observe, &|| stop.load(Ordering::SeqCst))
            .map_err(|e| e.to_string())?;
        logs.flush()?;
        checkpoint::save(&mut trainer, &dir.latest_checkpoint()).map_err(|e| e.to_string())?;
        if trainer.is_finished() || stop.load(Ordering::SeqCst) {
            break;
        }
    }
    progress.finish();
    if !trainer.is_finished() {
        println!(
            "interrupted at step {}; checkpoint written. Continue with: ds-td3 train --resume {}",
            trainer.step(),
            dir.root().display()
        );
        std::process::exit(130);
    }
    let summary = summarize(&trainer, started);
    dir.write_summary(&summary)?;
    let score = match summary["final_score"].as_f64() {
        Some(s) => format!(
            "final score (mean of the last {} evaluations) {s:.2}",
            summary["final_score_evaluations"]
        ),
        None => "no evaluations".to_string(),
    };
    println!(
        "done: {} steps, {score}, {:.0} steps/s this session; results in {}",
        trainer.step(),
        summary["steps_per_second_session"].as_f64().unwrap_or(0.0),
        dir.root().display()
    );
    Ok(())
}

/// The summary of a finished run.
fn summarize(trainer: &Trainer, started: (Instant, u64)) -> serde_json::Value {
    let evals = trainer.evaluations();
    let last: Vec<f64> = evals.iter().rev().take(10).map(|e| e.mean).collect();
    let final_score = (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64);
    let agent = trainer.agent();
    let (online, targets) = agent.memory();
    let session = started.0.elapsed().as_secs_f64();
    json!({
        "config": trainer.config(),
        "steps": trainer.step(),
        "final_score": final_score,
        "final_score_evaluations": last.len(),
        "best_evaluation": evals.iter().map(|e| e.mean).fold(f64::NEG_INFINITY, f64::max),
        "wall_seconds": trainer.wall_seconds(),
        "steps_per_second_session": (trainer.step() - started.1) as f64 / session.max(1e-9),
        "flops": agent.flops(),
        "live_connections": agent.live_connections(),
        "memory_bytes": {
            "networks": online.values + online.col_indices + online.row_ptrs + online.biases,
            "gradients": online.gradients,
            "optimizer": online.optimizer,
            "targets": targets.total(),
            "replay_buffer": trainer.replay().bytes(),
        },
    })
}
