//! `ds-td3 export`: a run's deterministic policy (TD3: the actor; SAC: its trunk and mean head,
//! `M tanh μ`) as a safetensors file (the layout is
//! [`sparse_core::policy`]'s), for `ds-td3 eval --policy`, Python (`safetensors` +
//! `scipy.sparse`) or Rust ([`sparse_core::policy::Policy`]).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use sparse_core::Layer;
use sparse_core::policy::{Policy, PolicyInfo};

use crate::eval::{RunPolicy, load_run};
use crate::run_dir::write_atomic;

/// Options of `ds-td3 export`.
#[derive(Debug, Args)]
#[command(
    after_help = "The file holds, per layer i, the CSR arrays of a sparse layer \
    (layers.i.indptr I64, layers.i.indices I32, layers.i.values F32) or the weights of a dense one \
    (layers.i.weight F32, n_out × n_in), and layers.i.bias; its metadata gives the task, \
    dimensions, layer shapes and kinds, activations (relu hidden, tanh output), action_bound \
    (action = action_bound · tanh(W h + b)), step, algorithm and density. README.md shows how \
    to run it from Python with safetensors and scipy.sparse.\n\n\
    Examples:\n  \
    ds-td3 export --run runs/Hopper-v3-ds-seed0 --out actor.safetensors\n  \
    ds-td3 eval --policy actor.safetensors --env Hopper-v3\n  \
    ds-td3 act --policy actor.safetensors --obs observations.csv"
)]
pub struct ExportArgs {
    /// The run directory (written by `ds-td3 train`): its latest checkpoint's actor is exported
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// The file to write (safetensors; written atomically)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Overwrite FILE if it exists
    #[arg(long)]
    pub force: bool,
}

/// Runs `ds-td3 export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            args.out.display()
        );
    }
    let RunPolicy {
        config,
        step,
        agent,
        from_checkpoint,
    } = load_run(&args.run)?;
    if !from_checkpoint {
        eprintln!(
            "warning: {} has no checkpoint yet: exporting its initial (untrained) policy",
            args.run.display()
        );
    }
    let extra = [
        ("seed", config.seed.to_string()),
        (
            "terminate_when_unhealthy",
            config.terminate_when_unhealthy.to_string(),
        ),
        ("producer", format!("ds-td3 {}", env!("CARGO_PKG_VERSION"))),
    ];
    let info = PolicyInfo {
        task: config.env.clone(),
        algorithm: config.algo.to_string(),
        step,
        extra: extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    };
    let policy = Policy::new(agent.policy_network()?, info)?;
    let bytes = policy.to_safetensors()?;
    write_atomic(&args.out, &bytes)?;
    let net = policy.network();
    let layers: Vec<String> = net
        .layers()
        .iter()
        .map(|l| {
            let kind = match l {
                Layer::Sparse(_) => "sparse",
                Layer::Dense(_) => "dense",
            };
            format!("{}→{} {kind} {}", l.n_in(), l.n_out(), l.live_connections())
        })
        .collect();
    println!(
        "wrote {} ({} bytes): {} {} actor at step {step}, {} live connections (density {:.4}): \
         {}; action bound ±{}",
        args.out.display(),
        bytes.len(),
        config.env,
        config.algo,
        net.live_connections(),
        policy.density(),
        layers.join(", "),
        policy.action_bound()
    );
    Ok(())
}
