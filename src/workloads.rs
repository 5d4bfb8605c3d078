//! The workloads `ds-td3 bench` and the criterion benchmarks (`benches/`) both time, so the two
//! always measure the same things.
//!
//! - Kernels: a 256×256 layer, dense and sparse at [`DENSITIES`], on random inputs.
//! - TD3 iterations: [`Agent::train`] on a fixed synthetic minibatch of 100 transitions for the
//!   Hopper (11 observations, 3 actions) and HalfCheetah (17, 6) shapes, as dense TD3, DS-TD3 at
//!   the paper's λ, and DS-TD3 at 90% and 95% sparsity with gradient-guided growth
//!   ([`Setting`]); SAC iterations likewise, on SAC's minibatch of 256, as dense SAC and DS-SAC
//!   at the paper's λ ([`Setting::SAC`]). Sparse agents are first run
//!   through their first topology evolution (iteration 1 000), so that from then on the targets'
//!   topologies differ from the online networks' and the soft update merges and prunes, as in a
//!   real run.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, BiasCorrection, DenseLinear, Layer, SparseLinear};
use td3::{Agent, Algo, Batch, Config, Device, Growth};

/// Width of the benchmarked layer.
pub const N: usize = 256;

/// Densities of the sparse layers benchmarked (1.0: every connection stored sparse).
pub const DENSITIES: [f64; 5] = [1.0, 0.5, 0.25, 0.1, 0.05];

/// Batch sizes of the kernel benchmarks: TD3's minibatch, and a larger one.
pub const KERNEL_BATCHES: [usize; 2] = [100, 256];

/// The products timed per layer, in table order: each kernel alone, then both backward products
/// as training takes a hidden layer's (`Layer::backward_then`), then the whole step (forward and
/// backward).
pub const KERNEL_NAMES: [&str; 5] = [
    "forward",
    "backward-data",
    "weight-grad",
    "backward",
    "step",
];

/// Minibatch of the TD3 iterations (the paper's).
pub const TD3_BATCH: usize = 100;

/// Iterations run before timing a sparse agent: through the first evolution.
pub const WARM_ITERATIONS: u64 = 1_000;

/// A `features × batch` buffer of values uniform in [-1, 1).
pub fn random_acts(rng: &mut StdRng, features: usize, batch: usize) -> Activations {
    let data: Vec<f32> = (0..features * batch)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Activations::from_samples(features, batch, &data).expect("shape is consistent")
}

/// The layers compared: `("dense", …)`, then `("sparse-<density>", …)` for each of
/// [`DENSITIES`], all `N × N`.
pub fn kernel_layers(rng: &mut StdRng) -> Vec<(String, Layer)> {
    let mut out = vec![(
        "dense".to_string(),
        DenseLinear::pytorch_default(N, N, rng)
            .expect("valid shape")
            .into(),
    )];
    for density in DENSITIES {
        let count = (density * (N * N) as f64).round() as usize;
        let layer = SparseLinear::random(N, N, count, rng).expect("valid shape");
        out.push((format!("sparse-{density}"), layer.into()));
    }
    out
}

/// A task's network dimensions.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The task whose dimensions these are.
    pub env: &'static str,
    /// Observation dimension.
    pub obs: usize,
    /// Action dimension.
    pub act: usize,
}

/// The shapes benchmarked.
pub const SHAPES: [Shape; 2] = [
    Shape {
        env: "Hopper-v3",
        obs: 11,
        act: 3,
    },
    Shape {
        env: "HalfCheetah-v3",
        obs: 17,
        act: 6,
    },
];

/// Ant-v3's dimensions (observations with contact forces), for the width-scaling comparison
/// ([`Setting::WIDE`]).
pub const ANT: Shape = Shape {
    env: "Ant-v3",
    obs: 111,
    act: 8,
};

/// The agents compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Dense TD3.
    Dense,
    /// DS-TD3 at the paper's λ (λ1 = 7, λ2 = 64: about 50% sparse).
    DsPaper,
    /// DS-TD3 at 90% sparsity (`--sparsity 0.9`: one Erdős–Rényi λ per network) with
    /// gradient-guided growth of 4 candidates per connection grown (on the CPU; on a GPU, where
    /// gradient growth is not available, random growth).
    Ds90,
    /// The same at 95% sparsity.
    Ds95,
    /// DS-TD3 four times wider than the paper's networks (1024 units) at 98% sparsity, with
    /// gradient-guided growth: about a quarter of dense TD3's training FLOPs on Ant-v3
    /// (`examples/beyond-ant-wide.toml`, whose multi-step targets and replay buffer change
    /// what is sampled, not what an update costs).
    DsWide,
    /// Dense SAC.
    Sac,
    /// DS-SAC at the paper's λ.
    DsSacPaper,
}

impl Setting {
    /// The TD3 settings, dense first.
    pub const ALL: [Setting; 4] = [
        Setting::Dense,
        Setting::DsPaper,
        Setting::Ds90,
        Setting::Ds95,
    ];

    /// The width-scaling pair: dense TD3 at the paper's width against [`Setting::DsWide`].
    pub const WIDE: [Setting; 2] = [Setting::Dense, Setting::DsWide];

    /// The SAC settings, dense first.
    pub const SAC: [Setting; 2] = [Setting::Sac, Setting::DsSacPaper];

    /// Short name for tables and benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Dense => "dense",
            Setting::DsPaper => "ds-paper",
            Setting::Ds90 => "ds-90%",
            Setting::Ds95 => "ds-95%",
            Setting::DsWide => "ds-1024-98%",
            Setting::Sac => "sac",
            Setting::DsSacPaper => "ds-sac",
        }
    }

    /// The run configuration for `shape` on `device` (paper settings otherwise, one thread). On a
    /// GPU, sparse agents correct Adam's bias per network and regrow at random (the GPU backend
    /// has neither per-connection correction nor gradient growth).
    pub fn config(self, shape: Shape, device: Device) -> Config {
        let algo = match self {
            Setting::Dense => Algo::Dense,
            Setting::DsPaper | Setting::Ds90 | Setting::Ds95 | Setting::DsWide => Algo::Ds,
            Setting::Sac => Algo::Sac,
            Setting::DsSacPaper => Algo::DsSac,
        };
        let mut c = Config::paper(shape.env, algo);
        let sparsity = match self {
            Setting::Ds90 => Some(0.9),
            Setting::Ds95 => Some(0.95),
            Setting::DsWide => Some(0.98),
            _ => None,
        };
        c.sparsity = sparsity;
        if self == Setting::DsWide {
            c.hidden = 1024;
        }
        if device == Device::Cpu {
            if sparsity.is_some() {
                c.growth = Growth::Gradient { candidates: 4 };
            }
        } else {
            // What the GPU backend implements.
            c.bias_correction = BiasCorrection::Network;
        }
        c.device = device;
        c
    }
}

/// A fixed synthetic minibatch: observations and actions uniform in [-1, 1), rewards in [-1, 1),
/// every tenth transition terminal.
pub fn synthetic_batch(rng: &mut StdRng, shape: Shape, size: usize) -> Batch {
    let mut not_done = Activations::zeros(1, size);
    for b in 0..size {
        not_done.set(0, b, if b % 10 == 9 { 0.0 } else { 1.0 });
    }
    Batch {
        obs: random_acts(rng, shape.obs, size),
        actions: random_acts(rng, shape.act, size),
        rewards: random_acts(rng, 1, size),
        next_obs: random_acts(rng, shape.obs, size),
        not_done,
    }
}

/// An agent for `shape` and `setting` with its minibatch (of the configuration's size: TD3's
/// [`TD3_BATCH`], SAC's 256) and noise generator, warmed up (sparse agents through
/// [`WARM_ITERATIONS`], dense ones through 10 iterations), on the CPU, configured for `device`
/// ([`Setting::config`]).
pub fn warm_agent(
    shape: Shape,
    setting: Setting,
    device: Device,
    seed: u64,
) -> (Agent, Batch, StdRng) {
    let mut rng = StdRng::seed_from_u64(seed);
    let config = setting.config(shape, device);
    let mut agent =
        Agent::new(&config, shape.obs, shape.act, 1.0, &mut rng).expect("valid configuration");
    agent.set_parallel_critics(false);
    let batch = synthetic_batch(&mut rng, shape, config.batch_size);
    let warm = if config.algo.is_sparse() {
        WARM_ITERATIONS
    } else {
        10
    };
    for _ in 0..warm {
        agent.train(&batch, &mut rng).expect("iteration runs");
    }
    (agent, batch, rng)
}

/// Fraction of weight connections that are absent, over the online networks.
pub fn sparsity(agent: &Agent) -> f64 {
    let dense: usize = agent
        .online()
        .flat_map(|net| net.layers())
        .map(|l| l.n_in() * l.n_out())
        .sum();
    1.0 - agent.live_connections() as f64 / dense as f64
}
