//! The kernels of `kernels.cu`: their source for NVRTC, and one typed launcher per kernel that
//! runs it on the GPU or in the emulator.
//!
//! Each launcher takes the number of work items first, then the kernel's arguments in order:
//! buffers it reads (`&Buffer`), buffers it writes (`&mut Buffer`) and scalars. The table below
//! is the single list of kernels: it declares the emulator's C functions, loads the GPU
//! functions by name, and gives [`KERNEL_NAMES`] to the PTX test.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaModule, LaunchConfig, PushKernelArg};
use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::device::{Buffer, Device, Inner};
use crate::error::{Error, Result};

/// The complete source NVRTC compiles: the prelude, then `kernels.cu`.
pub fn source() -> String {
    format!(
        "{}\n{}",
        include_str!("prelude.cuh"),
        include_str!("kernels.cu")
    )
}

/// Whether NVRTC (`libnvrtc.so.13`) can be loaded.
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to open the shared library by name.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Compiles every kernel to PTX with NVRTC for `arch` (e.g. `compute_90`; `None`: NVRTC's
/// default). Needs NVRTC (`libnvrtc.so.13`) on the library path; no GPU.
pub fn compile(arch: Option<&'static str>) -> Result<Ptx> {
    if !nvrtc_available() {
        return Err(Error::MissingLibrary(
            "NVRTC (libnvrtc.so.13)",
            "nvidia-cuda-nvrtc==13.0.*",
        ));
    }
    let opts = CompileOptions {
        arch,
        // One rounding per operation, as the host emulator and the CPU path compute: element-wise
        // kernels (Adam, soft updates) then give the CPU's bits.
        fmad: Some(false),
        name: Some("sparse_cuda_kernels.cu".into()),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(source(), opts).map_err(|e| Error::Compile(e.to_string()))
}

/// Threads per block; items beyond the grid are covered by each kernel's grid-stride loop.
const BLOCK: u32 = 256;
/// The most blocks one launch uses.
const MAX_BLOCKS: usize = 1 << 16;

fn launch_config(items: usize) -> LaunchConfig {
    let blocks = items.div_ceil(BLOCK as usize).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

macro_rules! kernels {
    ($( $(#[$doc:meta])* fn $name:ident ( $( $arg:ident : $kind:ident $ty:ty ),* $(,)? ); )*) => {
        mod emulated {
            unsafe extern "C" {
                $(
                    #[link_name = concat!("dsemu_", stringify!($name))]
                    pub(super) fn $name(n_items: u64, $( $arg: kernels!(@ffi $kind $ty) ),*);
                )*
            }
        }

        /// The loaded GPU functions, one per kernel.
        pub(crate) struct Functions {
            $( $name: CudaFunction, )*
        }

        impl Functions {
            pub(crate) fn load(module: &Arc<CudaModule>) -> Result<Self> {
                Ok(Self { $( $name: module.load_function(stringify!($name))?, )* })
            }
        }

        /// Every kernel's name, as its `extern "C"` symbol in the PTX.
        pub const KERNEL_NAMES: &[&str] = &[$( stringify!($name) ),*];

        $(
            $(#[$doc])*
            #[allow(clippy::too_many_arguments)]
            pub(crate) fn $name(
                dev: &Device,
                n_items: usize,
                $( $arg: kernels!(@rust $kind $ty) ),*
            ) -> Result<()> {
                if n_items == 0 {
                    return Ok(());
                }
                match &*dev.inner {
                    Inner::Emulator => {
                        $( let $arg = kernels!(@emu $kind $arg); )*
                        // SAFETY: the emulated kernel reads and writes within the lengths its
                        // callers check, as the GPU kernel does.
                        unsafe { emulated::$name(n_items as u64, $( $arg ),*) };
                    }
                    Inner::Cuda(cu) => {
                        let n = n_items as u64;
                        $( let $arg = kernels!(@cuda $kind $arg); )*
                        let mut b = cu.stream.launch_builder(&cu.functions.$name);
                        b.arg(&n);
                        $( b.arg($arg); )*
                        // SAFETY: the argument list matches the kernel's signature (the same
                        // table declares both), and callers size every buffer for n_items.
                        unsafe { b.launch(launch_config(n_items)) }?;
                    }
                }
                Ok(())
            }
        )*
    };
    (@ffi read $t:ty) => { *const $t };
    (@ffi write $t:ty) => { *mut $t };
    (@ffi val $t:ty) => { $t };
    (@rust read $t:ty) => { &Buffer<$t> };
    (@rust write $t:ty) => { &mut Buffer<$t> };
    (@rust val $t:ty) => { $t };
    (@emu read $a:ident) => { $a.host()?.as_ptr() };
    (@emu write $a:ident) => { $a.host_mut()?.as_mut_ptr() };
    (@emu val $a:ident) => { $a };
    (@cuda read $a:ident) => { $a.cuda()? };
    (@cuda write $a:ident) => { $a.cuda_mut()? };
    (@cuda val $a:ident) => { &$a };
}

kernels! {
    /// `y = act(W x + bias)` for CSR `W`; items `n_out · batch`.
    fn csr_forward(batch: val u32, row_ptr: read u32, cols: read u32, vals: read f32,
        bias: read f32, x: read f32, y: write f32, act: val u32, bound: val f32);
    /// `y = act(y + bias)`; items `n_out · batch`.
    fn bias_act(batch: val u32, bias: read f32, y: write f32, act: val u32, bound: val f32);
    /// Gradient at the output pre-activation; items `n_out · batch`.
    fn output_grad(dy: read f32, y: read f32, dz: write f32, act: val u32, bound: val f32);
    /// ReLU backward in place; items `features · batch`.
    fn relu_grad(h: read f32, d: write f32);
    /// `dx = Wᵀ dz` through the transposed structure; items `n_in · batch`.
    fn csr_backward_data(batch: val u32, col_ptr: read u32, rows: read u32, perm: read u32,
        vals: read f32, dz: read f32, dx: write f32);
    /// Parameter gradients, first step: per-lane partial sums of a sparse layer's `nnz`
    /// weights, then of its biases; items `(nnz + n_out) · lanes`.
    fn param_grad_part(batch: val u32, lanes: val u32, nnz: val u32, conn_rows: read u32,
        cols: read u32, dz: read f32, x: read f32, part: write f32);
    /// A dense layer's bias gradient, first step: per-lane partial sums; items `n_out · lanes`.
    fn row_sum_part(batch: val u32, lanes: val u32, dz: read f32, part: write f32);
    /// Parameter gradients, second step: each sum's lanes added in order, the first `n_first`
    /// into `first`, the rest into `second`; items = sums.
    fn sum_lanes(lanes: val u32, n_first: val u32, part: read f32, first: write f32,
        second: write f32);
    /// One Adam step; items = parameters.
    fn adam_step(p: write f32, g: read f32, m: write f32, v: write f32, one_minus_beta1: val f32,
        beta2: val f32, one_minus_beta2: val f32, weight_decay: val f32, neg_step_size: val f32,
        bias_correction2_sqrt: val f32, eps: val f32, tiny_grad: val f32, tiny_moment: val f32);
    /// `target = t · online + u · target`; items = elements.
    fn soft_update(target: write f32, online: read f32, t: val f32, u: val f32);
    /// Scatters the target topology into the dense scratch; items = target connections.
    fn union_target(n_out: val u32, n_in: val u32, row_ptr: read u32, cols: read u32,
        vals: read f32, dense: write f32, flags: write u32);
    /// Mixes in the online topology; items = online connections.
    fn union_online(n_out: val u32, n_in: val u32, row_ptr: read u32, cols: read u32,
        vals: read f32, dense: write f32, flags: write u32, t: val f32, u: val f32);
    /// Mixes positions present on one side only; items `n_out · n_in`.
    fn union_finish(dense: write f32, flags: read u32, t: val f32, u: val f32);
    /// Resets the selection state; one item.
    fn select_init(budget: val u32, state: write u32, hist: write u32);
    /// Histogram of one key digit; items `n_out · n_in`.
    fn select_histogram(dense: read f32, flags: read u32, state: read u32, hist: write u32,
        shift: val u32);
    /// Fixes one digit of the threshold; one item.
    fn select_digit(state: write u32, hist: write u32, shift: val u32);
    /// Per-chunk survivors and ties; items `n_out · nch`.
    fn prune_count(n_in: val u32, chunk: val u32, nch: val u32, dense: read f32, flags: read u32,
        state: read u32, chunk_keep: write u32, chunk_ties: write u32);
    /// Per-row survivors and ties; items `n_out`.
    fn prune_rows(nch: val u32, chunk_keep: read u32, chunk_ties: read u32, row_keep: write u32,
        row_ties: write u32);
    /// Row pointers of the pruned layer; one item.
    fn prune_scan(n_out: val u32, state: read u32, row_keep: read u32, row_ties: write u32,
        row_ptr: write u32);
    /// Each chunk's first slot and ties to drop; items `n_out`.
    fn prune_chunks(nch: val u32, row_ptr: read u32, row_drop: read u32, chunk_keep: write u32,
        chunk_ties: write u32);
    /// Writes the pruned layer; items `n_out · nch`.
    fn prune_write(n_in: val u32, chunk: val u32, nch: val u32, dense: read f32, flags: read u32,
        state: read u32, chunk_drop: read u32, chunk_out: read u32, cols: write u32,
        vals: write f32);
    /// TD3's smoothed target action; items `act_dim · batch`.
    fn smoothed_action(pi: read f32, noise: read f32, out: write f32, noise_clip: val f32,
        max_action: val f32);
    /// TD3's clipped double-Q target; items `batch`.
    fn td_target(q1: read f32, q2: read f32, reward: read f32, not_done: read f32, y: write f32,
        gamma: val f32);
    /// Squared-error gradient and squared errors; items `batch`.
    fn mse_grad(n: val u32, q: read f32, y: read f32, d: write f32, sq: write f32);
    /// Fills with one value; items = elements.
    fn fill(x: write f32, value: val f32);
}
