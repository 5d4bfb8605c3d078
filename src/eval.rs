//! `ds-td3 eval` and `ds-td3 envs`.

use std::path::PathBuf;

use clap::Args;
use td3::{checkpoint, evaluate_policy};

use crate::run_dir::RunDir;

/// Options of `ds-td3 eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run directory (written by `ds-td3 train`)
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Episodes to run
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub episodes: u32,
    /// Seed of the first episode [default: the run's seed + 100, as its evaluations used]
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Evaluates the latest checkpoint's deterministic policy.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let dir = RunDir::open(&args.run)?;
    let config = dir.read_config()?;
    let ckpt = dir.latest_checkpoint();
    // Always on the CPU: evaluating needs no GPU, whatever the run trained on. A run stopped
    // before its first checkpoint has its initial policy, which its configuration determines.
    let trainer = if ckpt.is_file() {
        checkpoint::load(&ckpt, 1, Some(td3::Device::Cpu), Some(&config))?
    } else {
        let mut c = config.clone();
        (c.threads, c.device) = (1, td3::Device::Cpu);
        td3::Trainer::new(c)?
    };
    let step = trainer.step();
    let mut agent = trainer.into_agent()?;
    let mut env = mujoco_env::make_with(
        &config.env,
        &mujoco_env::Options {
            terminate_when_unhealthy: config.terminate_when_unhealthy,
        },
    )?;
    let seed = args.seed.unwrap_or(config.seed + 100);
    let returns = evaluate_policy(&mut agent, env.as_mut(), args.episodes as usize, seed)?;
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    println!(
        "{} {} seed {}: {} at step {step}",
        config.env,
        config.algo,
        config.seed,
        if ckpt.is_file() {
            "checkpoint"
        } else {
            "no checkpoint yet: the initial policy"
        }
    );
    for (i, r) in returns.iter().enumerate() {
        println!("  episode {i}: return {r:.2}");
    }
    println!(
        "mean return {mean:.2} ± {std:.2} over {} episodes",
        returns.len()
    );
    Ok(())
}

/// Prints every task with its dimensions and action bound.
pub fn list_envs() -> anyhow::Result<()> {
    println!(
        "{:<16} {:>7} {:>7} {:>12} {:>10}",
        "task", "obs", "actions", "action bound", "max steps"
    );
    for id in mujoco_env::known_ids() {
        let env = mujoco_env::make(id)?;
        println!(
            "{:<16} {:>7} {:>7} {:>12} {:>10}",
            id,
            env.obs_dim(),
            env.action_dim(),
            format!("±{}", env.action_high()[0]),
            env.max_episode_steps()
        );
    }
    #[cfg(not(feature = "mujoco"))]
    println!("(built without the `mujoco` feature: the MuJoCo tasks are not available)");
    Ok(())
}
