//! Truly sparse neural-network layers: the engine under ds-td3.
//!
//! A sparse layer stores only its live connections in CSR form ([`Csr`], [`SparseWeights`]), and
//! every kernel — forward, backward-data, the weight gradient at stored positions, the bias
//! gradient — touches only those ([`kernels`]). Nothing here ever materialises a dense copy of a
//! sparse weight matrix. Dense layers ([`DenseLinear`], through matrixmultiply) sit beside sparse
//! ones in one network ([`Mlp`]), as the paper's dense output layers require.
//!
//! - [`activations`]: feature-major `[feature][batch]` buffers with padded, aligned rows;
//! - [`csr`]: validated CSR storage with `u16` or `u32` column indices;
//! - [`layer`], [`mlp`]: layers and networks with cached activations and input gradients;
//! - [`adam`]: PyTorch-exact Adam with coupled weight decay, state per live connection;
//! - [`remap`]: realigning per-connection state when a topology changes;
//! - [`init`]: Erdős–Rényi topologies and PyTorch-default values;
//! - [`flops`], [`memory`]: accounting done by the kernels and types themselves;
//! - [`pool`]: the fork-join threads that split one product's rows or two networks' steps;
//! - [`profile`]: where an iteration's wall-clock time goes;
//! - `policy` (feature `safetensors`; `ndarray` adds `ndarray` views): a trained actor exported
//!   to and loaded from a safetensors file, and run on observations.

pub mod activations;
pub mod adam;
pub mod csr;
pub mod error;
pub mod flops;
pub mod init;
pub mod kernels;
pub mod layer;
pub mod memory;
pub mod mlp;
#[cfg(feature = "safetensors")]
pub mod policy;
pub mod pool;
pub mod profile;
pub mod remap;

pub use activations::{Activations, padded_stride};
pub use adam::{Adam, AdamConfig, BiasCorrection, LayerMoments, Moments, StepScalars};
pub use csr::{ColIndex, Csr, Segments, SparseWeights, Transposed};
pub use error::{Error, Result};
pub use flops::{FlopCounter, Flops, KernelKind};
pub use init::{er_connections, er_lambda_for_sparsity};
pub use kernels::Isa;
pub use layer::{DenseLinear, Layer, LayerGrads, SparseLinear};
pub use memory::MemoryReport;
pub use mlp::{Grads, LayerKind, Mlp, Output, Workspace};
pub use remap::Remap;
