//! The CSR layer path of sparse-core on NVIDIA GPUs.
//!
//! The same layers, networks, optimiser and target update as the CPU crates — forward,
//! backward-data, the weight gradient at stored positions, the bias gradient, Adam, and
//! soft-update-and-prune — as CUDA kernels (`kernels.cu`) compiled at run time by NVRTC; dense
//! layers go through cuBLAS. Topology evolution stays on the host (set-evolve) every `e`
//! iterations: download, evolve, upload.
//!
//! CUDA is loaded at run time (cudarc's dynamic loading, CUDA 13 library names), so this crate
//! builds, and its tests pass, on machines with no CUDA and no GPU: [`Device::cuda`] then
//! returns an error saying what is missing. The [`Device::emulator`] runs the very same kernel
//! source compiled for the host, which is how the tests check every kernel and the code above
//! them against the CPU path without a GPU.
//!
//! - [`device`]: the device (GPU or emulator) and its buffers;
//! - [`kernels`]: the kernel source, NVRTC compilation, typed launchers;
//! - [`activations`], [`layer`], [`mlp`]: activations, layers and networks on the device;
//! - [`adam`]: Adam; [`target`]: target networks' soft update and pruning;
//! - [`ops`]: TD3's element-wise pieces (smoothed target action, target value, loss gradient).

pub mod activations;
pub mod adam;
pub mod device;
pub mod error;
pub mod kernels;
pub mod layer;
pub mod mlp;
pub mod ops;
pub mod target;

pub use activations::GpuActivations;
pub use adam::GpuAdam;
pub use device::{Buffer, Device, Elem};
pub use error::{Error, Result};
pub use layer::{Activation, GpuLayer, GpuLayerGrads};
pub use mlp::{GpuGrads, GpuMlp, GpuWorkspace};
pub use target::soft_update_and_prune;
