//! TD3 and SAC on truly sparse networks: dense, static-sparse and dynamic-sparse variants of
//! each (TD3, Static-TD3, DS-TD3; SAC, Static-SAC, DS-SAC) through one code path.
//!
//! - [`config`]: every setting, the paper's values as defaults, validation;
//! - [`replay`]: the preallocated replay buffer (each observation stored once; `f32`, `f16` or
//!   `bf16`) and feature-major minibatches;
//! - [`agent`]: actor, twin critics and their targets, and the update (TD3's Algorithm 1, or
//!   SAC's);
//! - [`sac`]: SAC's tanh-squashed Gaussian policy head and its entropy temperature;
//! - `nets`: the seam between the update and where it runs, and the host networks' state;
//! - `cpu`: the update's steps on the host, through `sparse-core`;
//! - `gpu`: the same steps on a CUDA GPU through `sparse-cuda` (`Config::device`);
//! - [`trainer`]: the environment loop — exploration, evaluation, checkpoints and resume;
//! - [`checkpoint`]: the on-disk format of a complete training state.

pub mod agent;
pub mod checkpoint;
pub mod config;
mod cpu;
mod gpu;
mod nets;
pub mod replay;
pub mod sac;
pub mod trainer;

pub use agent::{Agent, IterationReport, Learner};
pub use config::{Algo, Config, Device, DynamicBuffer, Family, FractionSchedule, paper_lambda1};
pub use replay::{Batch, BufferDtype, ReplayBuffer};
/// Where evolution regrows connections ([`Config::growth`]).
pub use set_evolve::Growth;
pub use trainer::{Evaluation, Event, Trainer, evaluate_policy, run_episodes};

/// Errors of training runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is invalid; the message names it and the rule.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] mujoco_env::EnvError),
    /// The network engine failed.
    #[error(transparent)]
    Sparse(#[from] sparse_core::Error),
    /// Topology evolution or target pruning failed.
    #[error(transparent)]
    Evolve(#[from] set_evolve::Error),
    /// The GPU backend failed (or no GPU is usable).
    #[error("GPU: {0}")]
    Gpu(String),
    /// A checkpoint is corrupt, truncated or belongs to another run.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// Shorthand for results carrying [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
