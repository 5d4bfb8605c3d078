//! The kernel boundary: every product a layer computes goes through the functions here.
//!
//! Sparse kernels touch only live connections, in feature-major layout (see
//! [`crate::Activations`]):
//! - [`sparse_forward`]: `y = W x + b`, optionally with a fused ReLU ([`Epilogue`]);
//! - [`sparse_backward_data`]: `dx = Wᵀ dy`, gathered per input over the transposed structure
//!   ([`Transposed`]), optionally multiplied by the ReLU derivative of the layer below;
//! - [`sparse_weight_grad`]: `dW[j,k] = Σ_b dy[j,b] · x[k,b]` at stored positions only;
//! - [`bias_grad`]: `db[j] = Σ_b dy[j,b]`;
//! - [`sparse_backward`]: the last three in one call, the weight gradient fused into
//!   backward-data's pass (each loaded vector of `dy` feeds both products).
//!
//! Dense layers go through matrixmultiply's sgemm ([`dense_forward`], [`dense_backward_data`],
//! [`dense_weight_grad`]). Each kernel adds the FLOPs it executes to the counter it is given
//! (convention in [`crate::flops`]).
//!
//! # Implementations
//!
//! The sparse kernels exist in four implementations ([`Isa`]): `portable` (plain Rust that the
//! compiler vectorises; the reference, and the only one on targets other than x86-64 and
//! AArch64), on x86-64 `avx2` (AVX2 + FMA) and `avx512` (AVX-512F), and on AArch64 `neon`. The
//! SIMD ones share one kernel body (`simd`), expanded per instruction set (`x86`, `neon`). A
//! forward product of a batch of one (acting, serving a policy) takes its own kernels on x86-64
//! (`matvec`: lanes across a row's connections, or a dot product per dense row), whichever of
//! the two x86-64 implementations is active. This module is the one place that picks one:
//! 1. inside [`with_isa`], the implementation it names (for tests and benchmarks; per thread);
//! 2. otherwise the process default: [`set_default_isa`] if called, else the environment
//!    variable `DS_TD3_KERNELS` (`portable`, `avx2`, `avx512`, `neon`) read once, else the best
//!    one the CPU supports ([`Isa::best`]). An unknown or unsupported value in the variable is
//!    ignored with a warning on stderr; [`isa_from_env`] reports it as an error instead.
//!
//! The implementations differ only in the order of floating-point additions, so results agree to
//! rounding; one implementation on one machine is bitwise deterministic.
//!
//! These are low-level functions: shapes are checked with assertions (the layer types check them
//! first and return errors).

mod dense;
#[cfg(target_arch = "x86_64")]
mod matvec;
mod portable;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[macro_use]
mod simd;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use simd::{BackwardArgs, Direct, Permuted, Post, SddmmArgs, SpmmArgs};

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::activations::Activations;
use crate::csr::{ColIndex, Csr, Segments, SparseWeights, Transposed};
use crate::error::{Error, Result};
use crate::flops::{FlopCounter, KernelKind};
use crate::profile::{self, Part};

/// An implementation of the sparse kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, vectorised by the compiler; runs everywhere.
    Portable,
    /// x86-64 AVX2 + FMA, 8 lanes.
    Avx2,
    /// x86-64 AVX-512F, 16 lanes.
    Avx512,
    /// AArch64 NEON (Advanced SIMD) with fused multiply-add, 4 lanes.
    Neon,
}

/// The environment variable that picks the default implementation.
pub const KERNELS_ENV: &str = "DS_TD3_KERNELS";

impl Isa {
    /// Every implementation: the portable one, then each architecture's, slowest first (a CPU
    /// runs at most one architecture's, so the last available one is the fastest).
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The name used by `DS_TD3_KERNELS` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Whether this CPU can run the implementation.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => false,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(not(target_arch = "aarch64"))]
            Isa::Neon => false,
        }
    }

    /// The implementations this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// The fastest implementation this CPU can run.
    pub fn best() -> Isa {
        *Isa::available().last().unwrap_or(&Isa::Portable)
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(c: u8) -> Option<Isa> {
        Isa::ALL.get((c as usize).checked_sub(1)?).copied()
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isa {
    type Err = Error;
    /// Parses a name (`portable`, `avx2`, `avx512`, `neon`); unknown names are errors.
    fn from_str(s: &str) -> Result<Isa> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                let names: Vec<_> = Isa::ALL.iter().map(|i| i.name()).collect();
                Error::Kernels(format!("unknown kernels {s:?} ({})", names.join(", ")))
            })
    }
}

/// The process default (0: not decided yet; otherwise [`Isa::code`]).
static DEFAULT: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// The per-thread override set by [`with_isa`].
    static OVERRIDE: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// The implementation `DS_TD3_KERNELS` names: `Ok(None)` when unset, an error when the value is
/// unknown or the CPU cannot run it.
pub fn isa_from_env() -> Result<Option<Isa>> {
    let Some(v) = std::env::var_os(KERNELS_ENV) else {
        return Ok(None);
    };
    let isa: Isa = v.to_string_lossy().parse()?;
    if isa.is_available() {
        Ok(Some(isa))
    } else {
        Err(Error::Kernels(format!(
            "{KERNELS_ENV}={isa}: this CPU does not support it"
        )))
    }
}

/// Sets the process-wide default implementation; an error if the CPU cannot run it.
pub fn set_default_isa(isa: Isa) -> Result<()> {
    if !isa.is_available() {
        return Err(Error::Kernels(format!("this CPU does not support {isa}")));
    }
    DEFAULT.store(isa.code(), Ordering::Relaxed);
    Ok(())
}

/// The process default: [`set_default_isa`]'s choice, else `DS_TD3_KERNELS`, else [`Isa::best`].
pub fn default_isa() -> Isa {
    if let Some(isa) = Isa::from_code(DEFAULT.load(Ordering::Relaxed)) {
        return isa;
    }
    let isa = match isa_from_env() {
        Ok(Some(isa)) => isa,
        Ok(None) => Isa::best(),
        Err(e) => {
            eprintln!("warning: {e}; using {}", Isa::best());
            Isa::best()
        }
    };
    // Only the first decision sticks (a concurrent `set_default_isa` wins).
    match DEFAULT.compare_exchange(0, isa.code(), Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => isa,
        Err(c) => Isa::from_code(c).unwrap_or(isa),
    }
}

/// The implementation the kernels use on this thread now.
pub fn active_isa() -> Isa {
    OVERRIDE.with(Cell::get).unwrap_or_else(default_isa)
}

/// Runs `f` with the kernels of this thread forced to `isa` (work `f` hands to other threads
/// uses their own choice); an error if the CPU cannot run `isa`.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> Result<R> {
    if !isa.is_available() {
        return Err(Error::Kernels(format!("this CPU does not support {isa}")));
    }
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(isa))));
    Ok(f())
}

/// What a product does to each result before storing it (fused into the sparse kernels, a
/// separate pass after a dense product).
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<'a> {
    /// Store as computed.
    None,
    /// `max(r, 0)`: the output of a ReLU layer.
    Relu,
    /// `h > 0 ? r : 0`, with `h` of the result's shape: the gradient through a ReLU whose output
    /// was `h`.
    ReluGrad(&'a Activations),
}

impl Epilogue<'_> {
    /// Applies the epilogue to the `batch` live lanes of every row of `y` (the plain-Rust form,
    /// for the portable kernels and dense layers).
    pub fn apply(self, y: &mut Activations) {
        match self {
            Epilogue::None => {}
            Epilogue::Relu => {
                for f in 0..y.features() {
                    y.row_mut(f).iter_mut().for_each(|v| *v = v.max(0.0));
                }
            }
            Epilogue::ReluGrad(h) => {
                for f in 0..y.features() {
                    for (d, &a) in y.row_mut(f).iter_mut().zip(h.row(f)) {
                        *d = if a > 0.0 { *d } else { 0.0 };
                    }
                }
            }
        }
    }

    fn check(self, y: &Activations) {
        if let Epilogue::ReluGrad(h) = self {
            assert_shape("ReLU output", h, y.features(), y.batch());
        }
    }

    /// Whether the epilogue is a ReLU (`Some(true)`) or nothing (`Some(false)`); `None` for
    /// [`Epilogue::ReluGrad`].
    #[cfg(target_arch = "x86_64")]
    fn relu(self) -> Option<bool> {
        match self {
            Epilogue::None => Some(false),
            Epilogue::Relu => Some(true),
            Epilogue::ReluGrad(_) => None,
        }
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn post(self) -> Post {
        match self {
            Epilogue::None => Post::Store,
            Epilogue::Relu => Post::Relu,
            Epilogue::ReluGrad(h) => Post::Mask(h.as_slice().as_ptr(), h.stride()),
        }
    }
}

/// Work (`nnz · batch` multiply-add lanes) from which a sparse product of the SIMD kernels is
/// split across the [`crate::pool`]'s threads (about 3 µs of one AVX-512 core, a few fork-join
/// costs; the same threshold for NEON); the portable kernels run on the calling thread.
pub const MIN_SPLIT_WORK: usize = 1 << 18;

/// The SIMD kernels' `spmm` signature for values `S`: `y = post(init + W x)` over a row range
/// (the operands in [`SpmmArgs`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
type SpmmFn<J, S> = unsafe fn(&SpmmArgs<'_, J, S>, std::ops::Range<usize>);

/// The SIMD kernels' `sddmm` signature: weight (and bias) gradients over a row range (the
/// operands in [`SddmmArgs`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
type GradFn<J> = unsafe fn(&SddmmArgs<'_, J>, std::ops::Range<usize>);

/// The SIMD kernels' fused weight-gradient-and-backward-data signature (the operands in
/// [`BackwardArgs`]), over a range of transposed rows.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
type BackwardFn = unsafe fn(&BackwardArgs<'_>, std::ops::Range<usize>);

/// The SIMD kernels' bias-gradient signature: `(dy, stride, bias, batch, rows)`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
type BiasFn = unsafe fn(*const f32, usize, *mut f32, usize, std::ops::Range<usize>);

/// One instruction set's SIMD kernels for column indices `J` and values borrowed for `'a`, as
/// function pointers.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Clone, Copy)]
struct Simd<'a, J: ColIndex> {
    /// The forward product: CSR values in entry order, the bias as `init`.
    forward: SpmmFn<J, Direct<'a>>,
    /// The backward-data product: over the transposed structure, the CSR values through its
    /// permutation, no bias.
    backward: SpmmFn<u32, Permuted<'a>>,
    /// Weight (and bias) gradients.
    weight_grad: GradFn<J>,
    /// The weight gradient fused into backward-data, and bias gradients alone (the sums
    /// `weight_grad` computes), where the instruction set has them.
    fused: Option<(BackwardFn, BiasFn)>,
    /// The forward product for a batch of one.
    #[cfg(target_arch = "x86_64")]
    matvec: matvec::MatvecFn<J>,
    /// The dense forward product for a batch of one.
    #[cfg(target_arch = "x86_64")]
    dense_matvec: matvec::DenseMatvecFn,
}

/// The SIMD kernels of the implementation active on this thread ([`active_isa`]), or `None`
/// for the portable ones: the one place that maps an [`Isa`] to code. Only an implementation
/// the CPU supports is ever active (checked when it is chosen).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn simd<'a, J: ColIndex>() -> Option<Simd<'a, J>> {
    match active_isa() {
        Isa::Portable => None,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Some(Simd {
            forward: x86::avx2::spmm,
            backward: x86::avx2::spmm,
            weight_grad: x86::avx2::sddmm,
            // Too few registers: slower than the two kernels apart (see `simd_backward!`).
            fused: None,
            matvec: matvec::avx2::rows,
            dense_matvec: matvec::avx2::dense_rows,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(Simd {
            forward: x86::avx512::spmm,
            backward: x86::avx512::spmm,
            weight_grad: x86::avx512::sddmm,
            fused: Some((x86::avx512::backward, x86::avx512::bias_sums)),
            // The AVX2 kernel's arithmetic, most inputs fetched by permutes (see `matvec`).
            matvec: matvec::avx512::rows,
            dense_matvec: matvec::avx2::dense_rows,
        }),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(Simd {
            forward: neon::spmm,
            backward: neon::spmm,
            weight_grad: neon::sddmm,
            // Not measured on NEON hardware (see `simd_backward!`).
            fused: None,
        }),
        // Another architecture's implementation: never active here (see above).
        _ => None,
    }
}

/// Always the portable kernels where there are no SIMD ones.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd<'a, J: ColIndex>() -> Option<std::convert::Infallible> {
    None
}

/// Raw pointers handed to the threads of one split product.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[derive(Clone, Copy)]
struct Shared<T>(T);
// SAFETY: a split product gives each thread disjoint output rows (see `split_rows`); shared
// inputs are only read.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe impl<T> Sync for Shared<T> {}
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
impl<T: Copy> Shared<T> {
    fn get(&self) -> T {
        self.0
    }
}

/// Runs `run(rows)` over the rows of a compressed structure with offsets `ptr`, cut into one
/// part of about equal entry counts per pool thread when `nnz · batch` reaches
/// [`MIN_SPLIT_WORK`], else once over all rows. Each row is computed exactly as on one thread.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn split_rows(ptr: &[u32], batch: usize, run: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
    let rows = ptr.len() - 1;
    let nnz = ptr[rows] as usize;
    let parts = if nnz * batch >= MIN_SPLIT_WORK {
        crate::pool::threads().min(rows).max(1)
    } else {
        1
    };
    if parts == 1 {
        return run(0..rows);
    }
    let cut = |p: usize| {
        if p == parts {
            rows
        } else {
            let target = (nnz * p / parts) as u32;
            ptr[..rows].partition_point(|&o| o < target)
        }
    };
    crate::pool::for_each_part(parts, &|p| run(cut(p)..cut(p + 1)));
}

fn assert_shape(what: &str, a: &Activations, features: usize, batch: usize) {
    assert!(
        a.features() == features && a.batch() == batch,
        "{what}: expected {features}×{batch}, got {}×{}",
        a.features(),
        a.batch()
    );
}

/// `y = epilogue(W x + b)` for CSR `W` (`n_out × n_in`) with column-block segments `seg`
/// (from [`Segments::of`] on `w`'s structure), `x` (`n_in × batch`), `y` (`n_out × batch`).
///
/// # Panics
/// If shapes disagree or `seg` does not fit `w` ([`Segments::fits`]).
pub fn sparse_forward<I: ColIndex>(
    w: &Csr<I>,
    seg: &Segments,
    bias: &[f32],
    x: &Activations,
    y: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    forward_with(w, w.values(), seg, bias, x, y, epilogue, flops)
}

/// [`sparse_forward`] with the structure of `w` and the values `val` (one per entry, in its
/// order).
#[allow(clippy::too_many_arguments)]
fn forward_with<I: ColIndex>(
    w: &Csr<I>,
    val: &[f32],
    seg: &Segments,
    bias: &[f32],
    x: &Activations,
    y: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    let _profile = profile::scope(Part::Products);
    assert_eq!(val.len(), w.nnz(), "value count");
    let batch = x.batch();
    assert_eq!(bias.len(), w.n_rows(), "bias length");
    assert_shape("input", x, w.n_cols(), batch);
    assert_shape("output", y, w.n_rows(), batch);
    assert!(seg.fits(w.row_ptr()), "segments do not fit the weights");
    epilogue.check(y);
    let (xs, ys) = (x.stride(), y.stride());
    match simd::<I>() {
        // A batch of one: lanes across each row's connections instead (see `matvec`).
        #[cfg(target_arch = "x86_64")]
        Some(k) if batch == 1 && epilogue.relu().is_some() && matvec::fits(w.n_cols(), xs) => {
            let relu = epilogue.relu() == Some(true);
            let (x, y) = (x.as_slice(), y.as_mut_slice());
            matvec::run(k.matvec, w, val, bias, x, xs, y, ys, relu);
        }
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        Some(k) => {
            let args = Shared(SpmmArgs {
                seg: seg.as_slice(),
                parts: seg.parts(),
                idx: w.col_idx(),
                val: Direct(val),
                bias: Some(bias),
                x: x.as_slice().as_ptr(),
                xs,
                y: y.as_mut_slice().as_mut_ptr(),
                ys,
                batch,
                post: epilogue.post(),
            });
            split_rows(w.row_ptr(), batch, &|rows| {
                // SAFETY: the kernels are those of an implementation the CPU supports; `seg`
                // fits `w`, so its offsets are valid and increasing within each row of `idx`
                // (whose indices are below `n_cols`, the rows `x` holds); `val` has a value per
                // entry; `y` and a ReLU mask hold `n_rows` rows; all strides cover `batch`
                // lanes rounded up to whole vectors (`Activations`); `y` is a unique borrow
                // distinct from `x`, and the threads of a split write disjoint rows.
                unsafe { (k.forward)(&args.get(), rows) }
            });
        }
        _ => {
            portable::forward(w, val, bias, x.as_slice(), xs, y.as_mut_slice(), ys, batch);
            epilogue.apply(y);
        }
    }
    flops.add(KernelKind::Forward, 2 * (w.nnz() * batch) as u64);
}

/// `dx = epilogue(Wᵀ dy)` for CSR `W` (`n_out × n_in`) with transposed structure `t` (from
/// [`Transposed::of`]`(w)` or any matrix of the same topology), `dy` (`n_out × batch`), `dx`
/// (`n_in × batch`); `dx` is overwritten.
///
/// # Panics
/// If shapes disagree, or `t` does not fit `w` ([`Transposed::fits`]).
pub fn sparse_backward_data<I: ColIndex>(
    w: &Csr<I>,
    t: &Transposed,
    dy: &Activations,
    dx: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    backward_data_with(w, w.values(), t, dy, dx, epilogue, flops)
}

/// [`sparse_backward_data`] with the structure of `w` and the values `val`.
fn backward_data_with<I: ColIndex>(
    w: &Csr<I>,
    val: &[f32],
    t: &Transposed,
    dy: &Activations,
    dx: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    let _profile = profile::scope(Part::Products);
    assert_eq!(val.len(), w.nnz(), "value count");
    let batch = dy.batch();
    assert!(t.fits(w), "transposed structure does not fit the weights");
    assert_shape("output gradient", dy, w.n_rows(), batch);
    assert_shape("input gradient", dx, w.n_cols(), batch);
    epilogue.check(dx);
    let (dys, dxs) = (dy.stride(), dx.stride());
    match simd::<I>() {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        Some(k) => {
            let seg = t.segments();
            let args = Shared(SpmmArgs {
                seg: seg.as_slice(),
                parts: seg.parts(),
                idx: t.rows(),
                val: Permuted {
                    values: val,
                    perm: t.perm(),
                },
                bias: None,
                x: dy.as_slice().as_ptr(),
                xs: dys,
                y: dx.as_mut_slice().as_mut_ptr(),
                ys: dxs,
                batch,
                post: epilogue.post(),
            });
            split_rows(t.col_ptr(), batch, &|rows| {
                // SAFETY: the kernels are those of an implementation the CPU supports; `t`
                // fits `w` and its segments were built from its own offsets, so they are
                // valid, increasing offsets for `idx` and the permutation (both `nnz` long,
                // every slot below `nnz`, the length of the values) and every row index is
                // below `n_rows`, the rows `dy` holds; `dx` and a ReLU mask hold `n_cols` rows;
                // strides cover `batch` lanes rounded up to whole vectors (`Activations`); `dx`
                // is a unique borrow distinct from `dy`, and the threads of a split write
                // disjoint rows.
                unsafe { (k.backward)(&args.get(), rows) }
            });
        }
        _ => {
            portable::backward_data(t, val, dy.as_slice(), dys, dx.as_mut_slice(), dxs, batch);
            epilogue.apply(dx);
        }
    }
    flops.add(KernelKind::BackwardData, 2 * (w.nnz() * batch) as u64);
}

/// Weight gradient at the stored positions of `w` (with column-block segments `seg`, as for
/// [`sparse_forward`]): `grad[i]` for the `i`-th stored entry `(j, k)` is
/// `Σ_b dy[j,b] · x[k,b]`; `grad` (length `nnz`) is overwritten.
///
/// # Panics
/// If shapes disagree or `seg` does not fit `w`.
pub fn sparse_weight_grad<I: ColIndex>(
    w: &Csr<I>,
    seg: &Segments,
    dy: &Activations,
    x: &Activations,
    grad: &mut [f32],
    flops: &FlopCounter,
) {
    weight_and_bias_grad(w, seg, dy, x, grad, None, flops)
}

/// [`sparse_weight_grad`], and with `bias` also the bias gradient ([`bias_grad`]), fused into
/// the SIMD kernels' pass over `dy`.
///
/// # Panics
/// As [`sparse_weight_grad`], or if `bias` does not have a value per output.
pub fn sparse_param_grads<I: ColIndex>(
    w: &Csr<I>,
    seg: &Segments,
    dy: &Activations,
    x: &Activations,
    grad: &mut [f32],
    bias: &mut [f32],
    flops: &FlopCounter,
) {
    weight_and_bias_grad(w, seg, dy, x, grad, Some(bias), flops)
}

fn weight_and_bias_grad<I: ColIndex>(
    w: &Csr<I>,
    seg: &Segments,
    dy: &Activations,
    x: &Activations,
    grad: &mut [f32],
    mut bias: Option<&mut [f32]>,
    flops: &FlopCounter,
) {
    let _profile = profile::scope(Part::Products);
    if let Some(b) = bias.as_deref() {
        assert_eq!(b.len(), w.n_rows(), "bias gradient length");
    }
    let batch = dy.batch();
    assert_eq!(grad.len(), w.nnz(), "gradient length");
    assert_shape("output gradient", dy, w.n_rows(), batch);
    assert_shape("input", x, w.n_cols(), batch);
    assert!(seg.fits(w.row_ptr()), "segments do not fit the weights");
    let (dys, xs) = (dy.stride(), x.stride());
    match simd::<I>() {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        Some(k) => {
            let args = Shared(SddmmArgs {
                seg: seg.as_slice(),
                parts: seg.parts(),
                idx: w.col_idx(),
                dy: dy.as_slice().as_ptr(),
                dys,
                x: x.as_slice().as_ptr(),
                xs,
                grad: grad.as_mut_ptr(),
                bias: bias.as_deref_mut().map(|b| b.as_mut_ptr()),
                batch,
            });
            split_rows(w.row_ptr(), batch, &|rows| {
                // SAFETY: the kernels are those of an implementation the CPU supports; `seg`
                // fits `w`, so its offsets are valid and increasing within each row of `idx`
                // (indices below `n_cols`, the rows `x` holds); `dy` holds `n_rows` rows;
                // `grad` has `nnz` entries and is a unique borrow, of which the threads of a
                // split write the disjoint slots of their rows; strides cover `batch` lanes
                // rounded up to whole vectors (`Activations`).
                unsafe { (k.weight_grad)(&args.get(), rows) }
            });
        }
        _ => {
            portable::weight_grad(w, dy.as_slice(), dys, x.as_slice(), xs, grad, batch);
            if let Some(b) = bias.as_deref_mut() {
                row_sums(dy, b);
            }
        }
    }
    flops.add(KernelKind::WeightGrad, 2 * (w.nnz() * batch) as u64);
    if bias.is_some() {
        flops.add(KernelKind::BiasGrad, (w.n_rows() * batch) as u64);
    }
}

/// [`sparse_param_grads`] and [`sparse_backward_data`] of one layer in one call: `grad` and
/// `bias` get the weight and bias gradients for output gradient `dy` and input `x`, and `dx` the
/// input gradient `epilogue(Wᵀ dy)`, all overwritten with exactly what those two functions give
/// (bit for bit). The SIMD kernels fuse the weight gradient into backward-data's pass over the
/// transposed structure: each connection's vectors of `dy` are loaded once for both products,
/// where the two kernels apart load them and the input's vectors once each, so the pair costs
/// about one load per two multiply-adds instead of one per one.
///
/// # Panics
/// If shapes disagree, or `seg` or `t` does not fit `w`.
#[allow(clippy::too_many_arguments)]
pub fn sparse_backward<I: ColIndex>(
    w: &Csr<I>,
    seg: &Segments,
    t: &Transposed,
    dy: &Activations,
    x: &Activations,
    grad: &mut [f32],
    bias: &mut [f32],
    dx: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if let Some((fused, bias_sums)) = simd::<I>().and_then(|k| k.fused) {
        let _profile = profile::scope(Part::Products);
        let batch = dy.batch();
        assert!(t.fits(w), "transposed structure does not fit the weights");
        assert!(seg.fits(w.row_ptr()), "segments do not fit the weights");
        assert_eq!(grad.len(), w.nnz(), "gradient length");
        assert_eq!(bias.len(), w.n_rows(), "bias gradient length");
        assert_shape("output gradient", dy, w.n_rows(), batch);
        assert_shape("input", x, w.n_cols(), batch);
        assert_shape("input gradient", dx, w.n_cols(), batch);
        epilogue.check(dx);
        // SAFETY: the kernel is one of an implementation the CPU supports; `dy` holds `n_rows`
        // rows and `bias` a float per row; the stride covers `batch` lanes rounded up to whole
        // vectors (`Activations`).
        unsafe {
            bias_sums(
                dy.as_slice().as_ptr(),
                dy.stride(),
                bias.as_mut_ptr(),
                batch,
                0..w.n_rows(),
            )
        };
        let seg = t.segments();
        let args = Shared(BackwardArgs {
            seg: seg.as_slice(),
            parts: seg.parts(),
            idx: t.rows(),
            perm: t.perm(),
            values: w.values(),
            dy: dy.as_slice().as_ptr(),
            dys: dy.stride(),
            x: x.as_slice().as_ptr(),
            xs: x.stride(),
            dx: dx.as_mut_slice().as_mut_ptr(),
            dxs: dx.stride(),
            grad: grad.as_mut_ptr(),
            batch,
            post: epilogue.post(),
        });
        split_rows(t.col_ptr(), batch, &|rows| {
            // SAFETY: the kernels are those of an implementation the CPU supports; `t` fits `w`
            // and its segments were built from its own offsets, so they are valid, increasing
            // offsets for `idx` and the permutation (both `nnz` long); the permutation is one of
            // `0..nnz`, the slots of the values and of `grad`, so no two connections share a
            // slot; every row index is below `n_rows`, the rows `dy` holds; `x`, `dx` and a ReLU
            // mask hold `n_cols` rows; strides cover `batch` lanes rounded up to whole vectors
            // (`Activations`); `dx` and `grad` are unique borrows distinct from the inputs, and
            // the threads of a split write disjoint rows of `dx` and the disjoint slots of their
            // rows' connections.
            unsafe { fused(&args.get(), rows) }
        });
        let work = (w.nnz() * batch) as u64;
        flops.add(KernelKind::WeightGrad, 2 * work);
        flops.add(KernelKind::BiasGrad, (w.n_rows() * batch) as u64);
        flops.add(KernelKind::BackwardData, 2 * work);
        return;
    }
    sparse_param_grads(w, seg, dy, x, grad, bias, flops);
    sparse_backward_data(w, t, dy, dx, epilogue, flops);
}

/// The ceiling that loads put on the SIMD kernels of the implementation active on this thread:
/// GFLOPS of multiply-adds that each take one input vector from the L1 cache, as the sparse
/// kernels' inner loop does, without its index and value loads or per-row work (a cycle over 64
/// input rows of one full batch tile, every lane live; the best of 5 samples of about 10 ms).
/// `None` for the portable kernels.
///
/// A sparse kernel loads one input vector per multiply-add and cannot reuse it for another
/// output row, as a dense GEMM's register-blocked micro-kernel does; where the CPU sustains
/// fewer vector loads per cycle than multiply-adds, this bounds the sparse kernels below dense
/// GEMM. `ds-td3 bench` prints it beside the kernel table.
pub fn load_bound() -> Option<f64> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        type Stream = unsafe fn(*const f32, usize, usize) -> f32;
        let (stream, lanes): (Stream, usize) = match active_isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (x86::avx2::stream, x86::avx2::TILE_FLOATS),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (x86::avx512::stream, x86::avx512::TILE_FLOATS),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => (neon::stream, neon::TILE_FLOATS),
            // The portable kernels, or another architecture's (never active here).
            _ => return None,
        };
        let x = Activations::zeros(64, lanes);
        let n = 1 << 14;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let start = std::time::Instant::now();
            for _ in 0..300 {
                // The pointer goes through `black_box`, so the compiler cannot know the rows are
                // the zeros it allocated and fold the multiply-adds away (it did on AArch64).
                let xp = std::hint::black_box(x.as_slice().as_ptr());
                // SAFETY: the implementation is one the CPU supports (checked when it was
                // chosen); `x` holds 64 rows of `lanes` floats, one full tile each.
                std::hint::black_box(unsafe { stream(xp, x.stride(), n) });
            }
            best = best.min(start.elapsed().as_secs_f64() / 300.0);
        }
        Some(2.0 * (n * lanes) as f64 / best / 1e9)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    None
}

/// Bias gradient `grad[j] = Σ_b dy[j,b]` (overwritten), for sparse and dense layers alike.
///
/// # Panics
/// If `grad.len() != dy.features()`.
pub fn bias_grad(dy: &Activations, grad: &mut [f32], flops: &FlopCounter) {
    let _profile = profile::scope(Part::Products);
    assert_eq!(grad.len(), dy.features(), "bias gradient length");
    row_sums(dy, grad);
    flops.add(KernelKind::BiasGrad, (dy.features() * dy.batch()) as u64);
}

/// `out[j] = Σ_b dy[j,b]` in plain Rust (the bias gradient outside the SIMD kernels).
fn row_sums(dy: &Activations, out: &mut [f32]) {
    for (j, g) in out.iter_mut().enumerate() {
        *g = portable::sum(dy.row(j));
    }
}

/// The structure of a fully connected `n_out × n_in` layer as a CSR pattern (every position,
/// row-major, which is also the order of a dense layer's weights), with its segments and
/// transposed structure: lets the sparse kernels run a dense layer with few outputs, where a
/// GEMM library's packing costs more than the product (TD3's output layers: 256 → 1 or a few).
#[derive(Debug, Clone)]
pub struct FullPattern {
    csr: SparseWeights,
    seg: Segments,
    t: Transposed,
}

impl FullPattern {
    /// Layers with at most this many outputs take the sparse kernels (when SIMD kernels run).
    pub const MAX_OUTPUTS: usize = 16;

    /// The pattern of an `n_out × n_in` layer.
    pub fn new(n_in: usize, n_out: usize) -> Result<Self> {
        let positions: Vec<usize> = (0..n_in * n_out).collect();
        let csr = SparseWeights::from_positions(n_out, n_in, &positions, vec![0.0; n_in * n_out])?;
        let (seg, t) = crate::with_csr!(&csr, w => (
            Segments::of(w.row_ptr(), w.col_idx(), w.n_cols()),
            Transposed::of(w),
        ));
        Ok(Self { csr, seg, t })
    }

    /// Whether a dense `n_out × n_in` layer should take the sparse kernels on this thread.
    pub fn suits(n_out: usize) -> bool {
        n_out <= Self::MAX_OUTPUTS && active_isa() != Isa::Portable
    }

    /// Bytes held (indices, offsets, segments, transposed structure; the placeholder values
    /// are not used).
    pub fn bytes(&self) -> usize {
        self.csr.index_bytes() + self.csr.row_ptr_bytes() + self.seg.bytes() + self.t.bytes()
    }

    fn check(&self, w: &[f32]) {
        assert_eq!(w.len(), self.csr.nnz(), "dense weight length");
    }
}

/// [`dense_forward`] through the sparse kernels on the full pattern `p` of `W`.
///
/// # Panics
/// If shapes disagree.
pub fn full_forward(
    p: &FullPattern,
    w: &[f32],
    bias: &[f32],
    x: &Activations,
    y: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    p.check(w);
    crate::with_csr!(&p.csr, c => forward_with(c, w, &p.seg, bias, x, y, epilogue, flops))
}

/// [`dense_backward_data`] through the sparse kernels on the full pattern `p` of `W`.
///
/// # Panics
/// If shapes disagree.
pub fn full_backward_data(
    p: &FullPattern,
    w: &[f32],
    dy: &Activations,
    dx: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    p.check(w);
    crate::with_csr!(&p.csr, c => backward_data_with(c, w, &p.t, dy, dx, epilogue, flops))
}

/// [`dense_weight_grad`] and [`bias_grad`] through the sparse kernels on the full pattern `p`
/// (the weight gradient comes out row-major, the pattern's entry order).
///
/// # Panics
/// If shapes disagree.
pub fn full_param_grads(
    p: &FullPattern,
    dy: &Activations,
    x: &Activations,
    grad: &mut [f32],
    bias: &mut [f32],
    flops: &FlopCounter,
) {
    crate::with_csr!(&p.csr, c => sparse_param_grads(c, &p.seg, dy, x, grad, bias, flops))
}

/// `y = epilogue(W x + b)` for dense row-major `W` (`n_out × n_in`).
///
/// # Panics
/// If shapes disagree.
pub fn dense_forward(
    w: &[f32],
    bias: &[f32],
    x: &Activations,
    y: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    let _profile = profile::scope(Part::Products);
    let (n_out, n_in, batch) = (bias.len(), x.features(), x.batch());
    assert_eq!(w.len(), n_out * n_in, "dense weight length");
    assert_shape("output", y, n_out, batch);
    epilogue.check(y);
    match simd::<u32>() {
        // A batch of one: a dot product per row (see `matvec`).
        #[cfg(target_arch = "x86_64")]
        Some(k) if batch == 1 => {
            let (xs, ys) = (x.stride(), y.stride());
            let (x, y) = (x.as_slice(), y.as_mut_slice());
            matvec::run_dense(k.dense_matvec, w, bias, x, xs, n_in, y, ys);
        }
        _ => dense::forward(w, bias, x, y),
    }
    epilogue.apply(y);
    flops.add(KernelKind::Forward, 2 * (n_out * n_in * batch) as u64);
}

/// `dx = epilogue(Wᵀ dy)` for dense row-major `W` (`n_out × n_in`); `dx` is overwritten.
///
/// # Panics
/// If shapes disagree.
pub fn dense_backward_data(
    w: &[f32],
    dy: &Activations,
    dx: &mut Activations,
    epilogue: Epilogue<'_>,
    flops: &FlopCounter,
) {
    let _profile = profile::scope(Part::Products);
    let (n_out, n_in, batch) = (dy.features(), dx.features(), dy.batch());
    assert_eq!(w.len(), n_out * n_in, "dense weight length");
    assert_shape("input gradient", dx, n_in, batch);
    epilogue.check(dx);
    dense::backward_data(w, dy, dx);
    epilogue.apply(dx);
    flops.add(KernelKind::BackwardData, 2 * (n_out * n_in * batch) as u64);
}

/// Dense weight gradient `dW = dy · xᵀ` (row-major `n_out × n_in`, overwritten).
///
/// # Panics
/// If shapes disagree.
pub fn dense_weight_grad(dy: &Activations, x: &Activations, grad: &mut [f32], flops: &FlopCounter) {
    let _profile = profile::scope(Part::Products);
    let (n_out, n_in, batch) = (dy.features(), x.features(), dy.batch());
    assert_eq!(grad.len(), n_out * n_in, "dense gradient length");
    assert_shape("input", x, n_in, batch);
    dense::weight_grad(dy, x, grad);
    flops.add(KernelKind::WeightGrad, 2 * (n_out * n_in * batch) as u64);
}
