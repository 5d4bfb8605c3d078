//! Starting a run: the configuration from the command line or a file, a new run directory, or
//! an existing one resumed from its checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use td3::{Config, Device, Trainer, checkpoint};

use super::args::TrainArgs;
use crate::run_dir::RunDir;

/// The run directory and trainer the command line asks for: a resumed run with `--resume`, a
/// new one otherwise.
pub fn start(args: &TrainArgs) -> anyhow::Result<(RunDir, Trainer)> {
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
fn create(args: &TrainArgs) -> anyhow::Result<(RunDir, Trainer)> {
    let config = new_config(args)?;
    // Before anything is written: a run that cannot start leaves no directory.
    check_cuda(Some(config.device))?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("{}-{}-s{}", config.env, config.algo, config.seed))
    });
    let dir = RunDir::create(&out, args.force)?;
    dir.write_config(&config)?;
    let trainer = Trainer::new(config)?;
    Ok((dir, trainer))
}

/// A run continued from its latest checkpoint, with a new total of steps, thread count or
/// device if given.
fn resume(path: &Path, args: &TrainArgs) -> anyhow::Result<(RunDir, Trainer)> {
    if args.hyper.any() {
        bail!(
            "a resumed run keeps its configuration: only --steps, --threads, --device, \
             --checkpoint-every and --quiet may be given with --resume"
        );
    }
    let threads = args.threads as usize;
    let dir = RunDir::open(path)?;
    let mut config = dir.read_config()?;
    config.threads = threads;
    let ckpt = dir.latest_checkpoint();
    if !ckpt.is_file() {
        bail!("{} has no checkpoint to resume from", path.display());
    }
    let device = args.device.map(Device::from);
    check_cuda(device)?;
    let mut trainer = checkpoint::load(&ckpt, threads, device, Some(&config))?;
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
    Ok((dir, trainer))
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
