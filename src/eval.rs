//! `ds-td3 eval` (a run directory's latest checkpoint, or an exported policy file),
//! `ds-td3 act` (an exported policy on observations from a CSV file) and `ds-td3 envs`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use mujoco_env::Env;
use sparse_core::Workspace;
use sparse_core::policy::Policy;
use td3::{Agent, Config, checkpoint, evaluate_policy, run_episodes};

use crate::run_dir::RunDir;

/// Options of `ds-td3 eval`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    ds-td3 eval --run runs/Hopper-v3-ds-seed0\n  \
    ds-td3 export --run runs/Hopper-v3-ds-seed0 --out actor.safetensors\n  \
    ds-td3 eval --policy actor.safetensors --env Hopper-v3   (the same returns as --run)")]
pub struct EvalArgs {
    /// The run directory (written by `ds-td3 train`)
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "policy",
        conflicts_with = "policy"
    )]
    pub run: Option<PathBuf>,
    /// An exported policy (`ds-td3 export`) to evaluate instead of a run directory; it gives
    /// exactly the returns of `--run` on the run it came from
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The task to evaluate --policy on: must be the one it was trained on [default: the task
    /// its metadata names]
    #[arg(long, value_name = "ENV", requires = "policy")]
    pub env: Option<String>,
    /// Episodes to run
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub episodes: u32,
    /// Seed of the first episode [default: the run's seed + 100, as its evaluations used; for
    /// --policy the seed its metadata records + 100]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print every return with all its digits (the shortest decimal that reads back to the
    /// same f64), not rounded to two decimals
    #[arg(long)]
    pub exact: bool,
}

/// A run directory's policy as `eval` and `export` load it.
pub struct RunPolicy {
    /// The run's configuration.
    pub config: Config,
    /// Environment steps trained.
    pub step: u64,
    /// The agent (on the CPU).
    pub agent: Agent,
    /// Whether it comes from a checkpoint (else it is the initial policy).
    pub from_checkpoint: bool,
}

/// Loads the agent of `run`'s latest checkpoint, on the CPU whatever the run trained on; a run
/// stopped before its first checkpoint has its initial policy, which its configuration
/// determines.
pub fn load_run(run: &Path) -> anyhow::Result<RunPolicy> {
    let dir = RunDir::open(run)?;
    let config = dir.read_config()?;
    let ckpt = dir.latest_checkpoint();
    let from_checkpoint = ckpt.is_file();
    let trainer = if from_checkpoint {
        checkpoint::load(&ckpt, 1, Some(td3::Device::Cpu), Some(&config))?
    } else {
        let mut c = config.clone();
        (c.threads, c.device) = (1, td3::Device::Cpu);
        td3::Trainer::new(c)?
    };
    let step = trainer.step();
    let agent = trainer.into_agent()?;
    Ok(RunPolicy {
        config,
        step,
        agent,
        from_checkpoint,
    })
}

/// Evaluates the latest checkpoint's deterministic policy, or an exported policy file.
pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    match (&args.run, &args.policy) {
        (_, Some(file)) => run_policy(args, file),
        (Some(run), None) => run_dir(args, run),
        (None, None) => bail!("pass --run DIR or --policy FILE"),
    }
}

/// `eval --run`.
fn run_dir(args: &EvalArgs, run: &Path) -> anyhow::Result<()> {
    let RunPolicy {
        config,
        step,
        mut agent,
        from_checkpoint,
    } = load_run(run)?;
    let mut env = mujoco_env::make_with(
        &config.env,
        &mujoco_env::Options {
            terminate_when_unhealthy: config.terminate_when_unhealthy,
        },
    )?;
    let seed = args.seed.unwrap_or(config.seed + 100);
    let returns = evaluate_policy(&mut agent, env.as_mut(), args.episodes as usize, seed)?;
    println!(
        "{} {} seed {}: {} at step {step}",
        config.env,
        config.algo,
        config.seed,
        if from_checkpoint {
            "checkpoint"
        } else {
            "no checkpoint yet: the initial policy"
        }
    );
    print_returns(&returns, args.exact);
    Ok(())
}

/// `eval --policy`: the protocol of `eval --run` ([`evaluate_policy`]) with the exported actor.
fn run_policy(args: &EvalArgs, file: &Path) -> anyhow::Result<()> {
    let policy = Policy::load(file)?;
    let info = policy.info();
    let env_id = match &args.env {
        Some(env) if *env != info.task => bail!(
            "{} was trained on {}, not {env}: evaluate it with --env {} (or leave --env out)",
            file.display(),
            info.task,
            info.task
        ),
        Some(env) => env.clone(),
        None => info.task.clone(),
    };
    let extra = |key: &str| info.extra.get(key).map(String::as_str);
    let terminate_when_unhealthy = match extra("terminate_when_unhealthy") {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => bail!(
            "{}: metadata 'terminate_when_unhealthy' is '{other}', expected true or false",
            file.display()
        ),
    };
    let run_seed: Option<u64> = extra("seed")
        .map(|s| s.parse())
        .transpose()
        .with_context(|| format!("{}: metadata 'seed'", file.display()))?;
    let mut env = mujoco_env::make_with(
        &env_id,
        &mujoco_env::Options {
            terminate_when_unhealthy,
        },
    )?;
    if (env.obs_dim(), env.action_dim()) != (policy.obs_dim(), policy.act_dim()) {
        bail!(
            "{} maps {} observations to {} actions, but {env_id} has {} and {}",
            file.display(),
            policy.obs_dim(),
            policy.act_dim(),
            env.obs_dim(),
            env.action_dim()
        );
    }
    let seed = args.seed.unwrap_or(run_seed.unwrap_or(0) + 100);
    let returns = evaluate_exported(&policy, env.as_mut(), args.episodes as usize, seed)?;
    println!(
        "{env_id} {} seed {}: policy file {} at step {}",
        info.algorithm,
        run_seed.map_or("unknown".to_string(), |s| s.to_string()),
        file.display(),
        info.step
    );
    print_returns(&returns, args.exact);
    Ok(())
}

/// [`evaluate_policy`]'s protocol with an exported policy: `episodes` episodes, the first reset
/// with `seed`, the deterministic action (observations as `f32`, actions back as `f64`, as the
/// agent does) until the episode terminates or is truncated.
fn evaluate_exported(
    policy: &Policy,
    env: &mut dyn Env,
    episodes: usize,
    seed: u64,
) -> anyhow::Result<Vec<f64>> {
    let mut ws = Workspace::new();
    let mut obs32 = Vec::with_capacity(policy.obs_dim());
    run_episodes(env, episodes, seed, |obs| -> anyhow::Result<Vec<f64>> {
        obs32.clear();
        obs32.extend(obs.iter().map(|&o| o as f32));
        let action = policy.act_rows(&obs32, &mut ws)?;
        Ok(action.into_iter().map(f64::from).collect())
    })
}

/// Prints each episode's return and their mean ± standard deviation.
fn print_returns(returns: &[f64], exact: bool) {
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    for (i, r) in returns.iter().enumerate() {
        if exact {
            println!("  episode {i}: return {r:?}");
        } else {
            println!("  episode {i}: return {r:.2}");
        }
    }
    if exact {
        println!(
            "mean return {mean:?} ± {std:?} over {} episodes",
            returns.len()
        );
    } else {
        println!(
            "mean return {mean:.2} ± {std:.2} over {} episodes",
            returns.len()
        );
    }
}

/// Options of `ds-td3 act`.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// The exported policy (`ds-td3 export`)
    #[arg(long, value_name = "FILE")]
    pub policy: PathBuf,
    /// Observations, one per line as comma-separated numbers (obs_dim of them); empty lines and
    /// lines starting with # are skipped
    #[arg(long, value_name = "CSV")]
    pub obs: PathBuf,
}

/// `ds-td3 act`: prints the policy's action for each observation of a CSV file, one line each,
/// every value with all the digits that make it read back to the same `f32`.
pub fn act(args: &ActArgs) -> anyhow::Result<()> {
    let policy = Policy::load(&args.policy)?;
    let text = std::fs::read_to_string(&args.obs)
        .with_context(|| format!("reading {}", args.obs.display()))?;
    let d = policy.obs_dim();
    let mut values = Vec::new();
    let mut rows = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let row: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{} line {}: not a number", args.obs.display(), i + 1))?;
        if row.len() != d {
            bail!(
                "{} line {}: {} values, but the policy takes {d} observations",
                args.obs.display(),
                i + 1,
                row.len()
            );
        }
        values.extend(row);
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: no observations", args.obs.display());
    }
    let obs = ndarray::Array2::from_shape_vec((rows, d), values)?;
    let actions = policy.act(obs.view())?;
    let mut out = String::new();
    for row in actions.rows() {
        let line: Vec<String> = row.iter().map(|a| format!("{a:?}")).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    print!("{out}");
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
