//! `ds-td3 networks`: the TD3 networks as initialised, layer by layer.

use clap::Args;
use rand::{SeedableRng, rngs::StdRng};
use sparse_core::{Adam, AdamConfig, Grads, Layer, LayerKind, MemoryReport, Mlp, Output};

/// Options of `ds-td3 networks`.
#[derive(Debug, Args)]
pub struct NetworksArgs {
    /// Observation dimension (Hopper 11, Walker2d and HalfCheetah 17, Ant 111, Humanoid 376).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub obs_dim: u32,
    /// Action dimension (Hopper 3, Walker2d and HalfCheetah 6, Ant 8, Humanoid 17).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub act_dim: u32,
    /// Erdős–Rényi λ of the first layer of each network (the paper: 7; Ant 40; Humanoid 61).
    #[arg(long, default_value_t = 7.0)]
    pub lambda1: f64,
    /// Erdős–Rényi λ of the second layer (the paper: 64, i.e. 50% of a 256×256 layer).
    #[arg(long, default_value_t = 64.0)]
    pub lambda2: f64,
    /// Width of both hidden layers.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub hidden: u32,
    /// Build dense networks (plain TD3) instead of sparse ones.
    #[arg(long)]
    pub dense: bool,
    /// Seed of the random topology and initial values.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Prints one network's layers and returns its parameter memory.
fn print_network(name: &str, mlp: &Mlp) -> MemoryReport {
    println!("{name}: {} live connections", mlp.live_connections());
    for (i, layer) in mlp.layers().iter().enumerate() {
        let full = layer.n_in() * layer.n_out();
        println!(
            "  layer {}: {:>4} -> {:<4} {:<6} {:>7} connections  density {:.4}  {:>8} bytes",
            i + 1,
            layer.n_in(),
            layer.n_out(),
            if matches!(layer, Layer::Sparse(_)) {
                "sparse"
            } else {
                "dense"
            },
            layer.live_connections(),
            layer.live_connections() as f64 / full as f64,
            layer.memory().total(),
        );
    }
    mlp.memory()
}

/// Builds and reports the networks.
pub fn run(args: &NetworksArgs) -> anyhow::Result<()> {
    let (obs, act, hidden) = (
        args.obs_dim as usize,
        args.act_dim as usize,
        args.hidden as usize,
    );
    let kinds = if args.dense {
        [LayerKind::Dense; 3]
    } else {
        [
            LayerKind::Sparse {
                lambda: args.lambda1,
            },
            LayerKind::Sparse {
                lambda: args.lambda2,
            },
            LayerKind::Dense,
        ]
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let actor = Mlp::init(
        &[obs, hidden, hidden, act],
        &kinds,
        Output::Tanh { bound: 1.0 },
        &mut rng,
    )?;
    let critic_sizes = [obs + act, hidden, hidden, 1];
    let q1 = Mlp::init(&critic_sizes, &kinds, Output::Linear, &mut rng)?;
    let q2 = Mlp::init(&critic_sizes, &kinds, Output::Linear, &mut rng)?;

    let mut params = MemoryReport::default();
    let mut training = MemoryReport::default();
    for (name, net) in [("actor", &actor), ("critic 1", &q1), ("critic 2", &q2)] {
        params = params + print_network(name, net);
        let adam = Adam::new(AdamConfig::default(), net)?;
        training = training + Grads::zeros_like(net).memory() + adam.memory();
    }
    let total = actor.live_connections() + q1.live_connections() + q2.live_connections();
    println!("total: {total} live connections (biases excluded)");
    println!(
        "memory: online networks {} bytes (values {}, indices {}, row pointers {}, biases {}), \
         target networks {} bytes, gradients {} bytes, Adam state {} bytes",
        params.total(),
        params.values,
        params.col_indices,
        params.row_ptrs,
        params.biases,
        params.total(),
        training.gradients,
        training.optimizer,
    );
    Ok(())
}
