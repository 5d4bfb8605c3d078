//! Starting a run: the configuration from the command line or a file, a new run directory, or
//! an existing one resumed from its checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use td3::{Config, Device, Trainer, checkpoint};

use super::args::TrainArgs;
use crate::run_dir::{Lock, RunDir};

/// The run directory and trainer the command line asks for: a resumed run with `--resume`, a
/// new one otherwise.
pub fn start(args: &TrainArgs) -> anyhow::Result<(RunDir, Lock, Trainer)> {
    match &args.resume {
        Some(path) => resume(path, args),
        None => create(args),
    }
}

/// Fails unless a CUDA GPU is usable, when `device` is one.
fn check_cuda(device: Option<Device>) -> anyhow::Result<()> {
    if device == Some(Device::Cuda) {
        // sparse-cuda says why as a plain message.
        sparse_cuda::Device::cuda_available().map_err(|e| anyhow!("--device cuda: {e}"))?;
    }
    Ok(())
}

/// A new run: its directory holds its configuration before training starts.
fn create(args: &TrainArgs) -> anyhow::Result<(RunDir, Lock, Trainer)> {
    let config = new_config(args)?;
    // Before anything is written: a run that cannot start leaves no directory.
    check_cuda(Some(config.device))?;
    check_memory(&config)?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{}-{}-s{}", config.env, config.algo, config.seed))
    });
    let (dir, lock) = RunDir::create(&out, args.force)?;
    dir.write_config(&config)?;
    let trainer = Trainer::new(config)?;
    Ok((dir, lock, trainer))
}

/// A run continued from its latest checkpoint, with a new total of steps, thread count or
/// device if given.
fn resume(path: &Path, args: &TrainArgs) -> anyhow::Result<(RunDir, Lock, Trainer)> {
    if args.hyper.any() {
        bail!(
            "a resumed run keeps its configuration: only --steps, --threads, --device, \
             --checkpoint-every and --quiet may be given with --resume"
        );
    }
    let threads = args.threads as usize;
    let dir = RunDir::open(path)?;
    let lock = dir.lock()?;
    dir.remove_stale_temporaries()?;
    let mut config = dir.read_config()?;
    config.threads = threads;
    let ckpt = dir.latest_checkpoint();
    let device = args.device.map(Device::from);
    check_cuda(device)?;
    let mut trainer = if ckpt.is_file() {
        checkpoint::load(&ckpt, threads, device, Some(&config))?
    } else {
        // Stopped before its first checkpoint: the run starts over from its configuration,
        // which gives the same run.
        if let Some(d) = device {
            config.device = d;
        }
        config.validate()?;
        Trainer::new(config.clone())?
    };
    // config.json holds the latest total: an extension that a crash cut off before its first
    // checkpoint still applies.
    if config.steps != trainer.config().steps && config.steps >= trainer.step() {
        trainer.set_total_steps(config.steps)?;
    }
    if let Some(steps) = args.steps {
        if steps < trainer.step() {
            bail!(
                "--steps {steps} is below the {} steps already done",
                trainer.step()
            );
        }
        trainer.set_total_steps(steps)?;
    }
    dir.write_config(trainer.config())?;
    Ok((dir, lock, trainer))
}

/// Bytes a run of `config` needs at most, by a generous count: every online network with its
/// gradients and Adam state, the targets, and the replay buffer full.
fn memory_needed(config: &Config) -> anyhow::Result<f64> {
    let env = mujoco_env::make(&config.env)?;
    let (obs, act, h) = (
        env.obs_dim() as f64,
        env.action_dim() as f64,
        config.hidden as f64,
    );
    let sparse = config.algo.is_sparse();
    // Connections of a layer: dense, or the Erdős–Rényi count (at most dense).
    let layer = |n_in: f64, n_out: f64, lambda: f64| {
        let dense = n_in * n_out;
        let weights = if sparse {
            (lambda * (n_in + n_out)).min(dense)
        } else {
            dense
        };
        weights + n_out
    };
    let net = |n_in: f64, n_out: f64| {
        layer(n_in, h, config.lambda1) + layer(h, h, config.lambda2) + h * n_out + n_out
    };
    let params = net(obs, act) + 2.0 * net(obs + act, 1.0);
    // Online: value, index, gradient, two moments, cohort; target: value and index.
    let per_param = 4.0 + 4.0 + 4.0 + 8.0 + 2.0 + 8.0;
    let replay = td3::ReplayBuffer::fixed_bytes(
        config.buffer_capacity,
        obs as usize,
        act as usize,
        config.buffer_dtype,
    ) as f64;
    Ok(params * per_param + replay)
}

/// The machine's memory in bytes (`MemTotal` of /proc/meminfo), if known.
fn memory_total() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Fails when a run of `config` cannot fit in this machine's memory.
fn check_memory(config: &Config) -> anyhow::Result<()> {
    let (Some(total), needed) = (memory_total(), memory_needed(config)?) else {
        return Ok(());
    };
    let gib = |b: f64| b / (1u64 << 30) as f64;
    if needed > total {
        bail!(
            "this run needs about {:.1} GiB of memory (networks, gradients, Adam state, targets \
             and a full replay buffer of {} transitions), more than this machine's {:.1} GiB; \
             lower --hidden, --buffer-size or the λ's",
            gib(needed),
            config.buffer_capacity,
            gib(total)
        );
    }
    Ok(())
}

/// Fails unless `env` names a known task.
fn check_env(env: &str) -> anyhow::Result<()> {
    if !mujoco_env::known_ids().contains(&env) {
        bail!(
            "unknown environment '{env}'; known: {}",
            mujoco_env::known_ids().join(", ")
        );
    }
    Ok(())
}

/// The configuration of a new run from the command line.
fn new_config(args: &TrainArgs) -> anyhow::Result<Config> {
    if let Some(path) = &args.config {
        if args.hyper.any() {
            bail!("--config gives the complete configuration: no hyper-parameter may accompany it");
        }
        return config_from_file(path, args).with_context(|| path.display().to_string());
    }
    let env = args.env.clone().context(
        "which task? pass --env, e.g. `ds-td3 --env Hopper-v3` (`ds-td3 envs` lists them)",
    )?;
    check_env(&env)?;
    let mut c = Config::paper(&env, args.algo.into());
    c.seed = args.seed;
    c.threads = args.threads as usize;
    c.device = args.device.map_or(Device::Cpu, Into::into);
    if c.device != Device::Cpu {
        // The device kernels correct bias per network; an explicit flag below still wins.
        c.bias_correction = sparse_core::BiasCorrection::Network;
    }
    if let Some(s) = args.steps {
        c.steps = s;
    }
    args.hyper.apply(&mut c);
    c.validate()?;
    Ok(c)
}

/// Reads a complete configuration file and applies the command line's --steps, --threads and
/// --device (errors are about the file: the caller names it).
fn config_from_file(path: &Path, args: &TrainArgs) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)?;
    let mut c: Config = serde_json::from_str(&text)?;
    if let Some(s) = args.steps {
        c.steps = s;
    }
    c.threads = args.threads as usize;
    if let Some(d) = args.device {
        c.device = d.into();
    }
    check_env(&c.env)?;
    c.validate()?;
    Ok(c)
}
