//! SET topology evolution and target-network sparsity for [`sparse_core`] networks, done
//! directly on the compressed (CSR) form: no dense `n_in × n_out` weight or mask matrix, ever.
//!
//! - [`evolve`]: one evolution step of a sparse layer — prune the fraction `η` of its positive
//!   and of its negative weights nearest zero, regrow as many connections through a
//!   [`GrowthPolicy`] (SET's [`RandomGrowth`], or [`GradientGrowth`], which scores a sample of
//!   candidates with the weight-gradient kernel at their positions) — and of a whole network,
//!   with its Adam state and gradient buffers realigned; and the final prune-only step before the
//!   topology freezes.
//! - [`schedule`]: the evolution controller (period `e`, fraction `η`, freeze) counting
//!   training iterations, and per-evolution statistics for the logs.
//! - [`target`]: the soft update `θ' ← τθ + (1−τ)θ'` of target networks over the union of both
//!   topologies, pruned back to each layer's connection budget ([`TargetSync`] keeps what it
//!   learns about the two topologies between updates).
//!
//! Static sparsity (Static-TD3) is the same machinery with evolution switched off
//! ([`EvolutionController::disabled`]).
//!
//! Tie-break rule, used everywhere a smallest-`|w|` set is chosen: among equal `|w|`, the
//! connection at the lower row-major position `row · n_in + col` goes first.

pub mod evolve;
pub mod growth;
pub mod schedule;
pub mod target;

pub use evolve::{
    LayerChange, evolve_layer, evolve_network, prune_layer, prune_network, removal_count,
};
pub use growth::{
    GradientGrowth, GradientProbe, Growth, GrowthContext, GrowthPolicy, RandomGrowth,
};
pub use schedule::{
    EvolutionController, EvolutionMemory, EvolutionStats, LayerStats, TopologyStep,
};
pub use target::{TargetSync, soft_update_and_prune};

/// Errors of topology operations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The evolution fraction η must lie strictly between 0 and 1.
    #[error("evolution fraction η must lie in (0, 1), got {0}")]
    InvalidFraction(f64),
    /// The evolution period e must be at least 1.
    #[error("evolution period e must be at least 1")]
    ZeroPeriod,
    /// The soft-update coefficient τ must lie in [0, 1].
    #[error("soft-update τ must lie in [0, 1], got {0}")]
    InvalidTau(f64),
    /// A growth policy returned positions that are not distinct free positions of the layer.
    #[error("growth policy returned an invalid position set: {0}")]
    InvalidGrowth(&'static str),
    /// Gradient-guided growth was asked for without the layer's gradient factors.
    #[error(
        "gradient-guided growth needs the gradient factors of the network's last training step \
         (none were given)"
    )]
    NoGradient,
    /// Evolution was requested from a controller that has it switched off.
    #[error("topology evolution is switched off (static sparsity)")]
    EvolutionDisabled,
    /// Two networks (online and target) do not have the same architecture.
    #[error("online and target networks differ: {0}")]
    ArchitectureMismatch(&'static str),
    /// An error from the layer engine.
    #[error(transparent)]
    Sparse(#[from] sparse_core::Error),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Orders `(|w|, position)` ascending: the smallest magnitude first, ties by lower position.
fn magnitude_order(a: (f32, usize), b: (f32, usize)) -> std::cmp::Ordering {
    a.0.abs().total_cmp(&b.0.abs()).then(a.1.cmp(&b.1))
}
