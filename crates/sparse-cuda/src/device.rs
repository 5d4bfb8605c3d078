//! Where the kernels run: a CUDA GPU (through cudarc) or the host emulator, and the buffers
//! they work on.
//!
//! [`Device::cuda`] loads the driver, NVRTC and cuBLAS at run time, compiles `kernels.cu` for
//! the GPU's architecture and loads it; every missing piece is an [`Error`], never a panic.
//! [`Device::emulator`] runs the same kernels compiled for the host (see `csrc/emulate.c`), so
//! everything above this module is tested on machines without a GPU.

use std::sync::{Arc, Mutex, PoisonError};

use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, sys::cublasOperation_t};
use cudarc::driver::sys::CUresult;
use cudarc::driver::{
    CudaContext, CudaSlice, CudaStream, DeviceRepr, DriverError, ValidAsZeroBits,
};

use crate::error::{Error, Result};
use crate::kernels::Functions;

/// A GPU, or the host emulator of the GPU kernels. Cheap to clone (shared).
#[derive(Clone)]
pub struct Device {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) enum Inner {
    Cuda(Box<Cuda>),
    Emulator,
}

/// The loaded CUDA pieces.
pub(crate) struct Cuda {
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) functions: Functions,
    blas: CudaBlas,
    name: String,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Whether each library the CUDA backend loads is present: `(name, pip package, present)`.
fn libraries() -> [(&'static str, &'static str, bool); 3] {
    // SAFETY: these only try to open the shared libraries by name (dlopen), running no CUDA
    // code.
    unsafe {
        [
            (
                "libcuda.so (the NVIDIA driver)",
                "",
                cudarc::driver::sys::is_culib_present(),
            ),
            (
                "NVRTC (libnvrtc.so.13)",
                "nvidia-cuda-nvrtc==13.0.*",
                cudarc::nvrtc::sys::is_culib_present(),
            ),
            (
                "cuBLAS (libcublas.so.13)",
                "nvidia-cublas==13.0.*",
                cudarc::cublas::sys::is_culib_present(),
            ),
        ]
    }
}

/// The NVRTC architecture option for a compute capability this backend knows, else `None`
/// (NVRTC's default; the driver JIT-compiles the PTX for the GPU).
fn arch(major: i32, minor: i32) -> Option<&'static str> {
    Some(match (major, minor) {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

impl Device {
    /// The host emulator: the kernels of `kernels.cu` compiled for the CPU, run item by item.
    /// Slow; for tests and for checking the GPU path on machines without one.
    pub fn emulator() -> Self {
        Self {
            inner: Arc::new(Inner::Emulator),
        }
    }

    /// CUDA device `ordinal`: loads the driver, NVRTC and cuBLAS (CUDA 13), compiles the
    /// kernels for the device and loads them. A device is opened once per process; later calls
    /// share it (a failed attempt is retried). [`Error::is_no_gpu`] tells a machine without a
    /// GPU (no driver, or a driver that sees no device) from a GPU that could not be used.
    pub fn cuda(ordinal: usize) -> Result<Self> {
        static OPENED: Mutex<Vec<(usize, Device)>> = Mutex::new(Vec::new());
        let mut opened = OPENED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, dev)) = opened.iter().find(|(o, _)| *o == ordinal) {
            return Ok(dev.clone());
        }
        let dev = Self::open_cuda(ordinal)?;
        opened.push((ordinal, dev.clone()));
        Ok(dev)
    }

    /// Opens CUDA device `ordinal` (see [`Self::cuda`]).
    fn open_cuda(ordinal: usize) -> Result<Self> {
        let libs = libraries();
        if !libs[0].2 {
            return Err(Error::NoDriver);
        }
        // A driver without a device (a GPU-less machine with the driver package, a container
        // without the device nodes) is no GPU; any other failure is a GPU that will not open.
        // cudarc panics when the driver misbehaves during initialisation; report it instead.
        let count =
            std::panic::catch_unwind(CudaContext::device_count).map_err(|_| Error::NoDevice {
                ordinal,
                message: "the driver failed to initialise".into(),
            })?;
        match count {
            Ok(0) | Err(DriverError(CUresult::CUDA_ERROR_NO_DEVICE)) => return Err(Error::NoGpu),
            Ok(n) if usize::try_from(n).is_ok_and(|n| ordinal >= n) => {
                return Err(Error::NoDevice {
                    ordinal,
                    message: format!("the driver sees {n} device(s)"),
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Error::NoDevice {
                    ordinal,
                    message: e.to_string(),
                });
            }
        }
        for (name, pip, present) in &libs[1..] {
            if !present {
                return Err(Error::MissingLibrary(name, pip));
            }
        }
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| Error::NoDevice {
                ordinal,
                message: "the driver failed to initialise".into(),
            })?
            .map_err(|e| Error::NoDevice {
                ordinal,
                message: e.to_string(),
            })?;
        let (major, minor) = ctx.compute_capability()?;
        let ptx = crate::kernels::compile(arch(major, minor))?;
        let module = ctx.load_module(ptx)?;
        let functions = Functions::load(&module)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())?;
        let name = format!(
            "CUDA device {ordinal}: {} (compute capability {major}.{minor})",
            ctx.name()?
        );
        Ok(Self {
            inner: Arc::new(Inner::Cuda(Box::new(Cuda {
                stream,
                functions,
                blas,
                name,
            }))),
        })
    }

    /// Whether CUDA device 0 can be used, with the reason when not. It stays open for later
    /// [`Self::cuda`] calls.
    pub fn cuda_available() -> std::result::Result<(), String> {
        Self::cuda(0).map(|_| ()).map_err(|e| e.to_string())
    }

    /// A one-line description.
    pub fn name(&self) -> String {
        match &*self.inner {
            Inner::Cuda(c) => c.name.clone(),
            Inner::Emulator => "kernel emulator (host)".into(),
        }
    }

    /// Waits until every queued operation has finished (for timing).
    pub fn synchronize(&self) -> Result<()> {
        if let Inner::Cuda(c) = &*self.inner {
            c.stream.synchronize()?;
        }
        Ok(())
    }

    /// A zero-filled buffer of `len` elements.
    pub fn zeros<T: Elem>(&self, len: usize) -> Result<Buffer<T>> {
        let mem = match &*self.inner {
            // Never a zero-byte allocation: CUDA refuses those.
            Inner::Cuda(c) => Mem::Cuda(c.stream.alloc_zeros::<T>(len.max(1))?),
            Inner::Emulator => Mem::Host(vec![T::default(); len]),
        };
        Ok(Buffer { mem, len })
    }

    /// A buffer holding a copy of `data`.
    pub fn upload<T: Elem>(&self, data: &[T]) -> Result<Buffer<T>> {
        let mut b = self.zeros(data.len())?;
        b.write(0, data)?;
        Ok(b)
    }

    /// `C = α op(A) op(B) + β C` on column-major matrices (BLAS conventions: `op(A)` is
    /// `m × k`, `op(B)` is `k × n`, `C` is `m × n`; `lda`, `ldb`, `ldc` are leading dimensions),
    /// through cuBLAS on a GPU and a plain loop in the emulator.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sgemm(
        &self,
        (trans_a, trans_b): (bool, bool),
        (m, n, k): (usize, usize, usize),
        alpha: f32,
        (a, lda): (&Buffer<f32>, usize),
        (b, ldb): (&Buffer<f32>, usize),
        beta: f32,
        (c, ldc): (&mut Buffer<f32>, usize),
    ) -> Result<()> {
        if m == 0 || n == 0 {
            return Ok(());
        }
        match &*self.inner {
            Inner::Cuda(cu) => {
                let op = |t| {
                    if t {
                        cublasOperation_t::CUBLAS_OP_T
                    } else {
                        cublasOperation_t::CUBLAS_OP_N
                    }
                };
                let int = |v: usize| {
                    i32::try_from(v).map_err(|_| Error::Mismatch("matrix too large for cuBLAS"))
                };
                let cfg = GemmConfig {
                    transa: op(trans_a),
                    transb: op(trans_b),
                    m: int(m)?,
                    n: int(n)?,
                    k: int(k)?,
                    alpha,
                    lda: int(lda)?,
                    ldb: int(ldb)?,
                    beta,
                    ldc: int(ldc)?,
                };
                // SAFETY: the callers (layer.rs) size a, b and c for these dimensions and
                // leading dimensions, as the tests against the emulator's loop check.
                unsafe { cu.blas.gemm(cfg, a.cuda()?, b.cuda()?, c.cuda_mut()?) }?;
            }
            Inner::Emulator => {
                let (a, b) = (a.host()?, b.host()?);
                let c = c.host_mut()?;
                let at = |i: usize, l: usize| {
                    if trans_a {
                        a[l + i * lda]
                    } else {
                        a[i + l * lda]
                    }
                };
                let bt = |l: usize, j: usize| {
                    if trans_b {
                        b[j + l * ldb]
                    } else {
                        b[l + j * ldb]
                    }
                };
                for j in 0..n {
                    for i in 0..m {
                        let mut acc = 0.0f32;
                        for l in 0..k {
                            acc += at(i, l) * bt(l, j);
                        }
                        let old = if beta == 0.0 {
                            0.0
                        } else {
                            beta * c[i + j * ldc]
                        };
                        c[i + j * ldc] = alpha * acc + old;
                    }
                }
            }
        }
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u32 {}
}

/// Element types of device buffers (`f32` values, `u32` indices).
pub trait Elem:
    sealed::Sealed + DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + Unpin + 'static
{
}
impl Elem for f32 {}
impl Elem for u32 {}

enum Mem<T: Elem> {
    Cuda(CudaSlice<T>),
    Host(Vec<T>),
}

/// A buffer in device memory (host memory for the emulator).
pub struct Buffer<T: Elem> {
    mem: Mem<T>,
    len: usize,
}

impl<T: Elem> std::fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer(len {})", self.len)
    }
}

impl<T: Elem> Buffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of device memory held.
    pub fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    /// Copies the first `n` elements to the host.
    pub fn read(&self, n: usize) -> Result<Vec<T>> {
        crate::error::check_len("elements read", self.len.min(n), n)?;
        match &self.mem {
            Mem::Cuda(s) => {
                let mut out = vec![T::default(); n];
                if n > 0 {
                    s.stream().memcpy_dtoh(&s.slice(0..n), &mut out)?;
                    s.stream().synchronize()?;
                }
                Ok(out)
            }
            Mem::Host(v) => Ok(v[..n].to_vec()),
        }
    }

    /// Copies the whole buffer to the host.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.read(self.len)
    }

    /// Writes `data` at element `offset`.
    pub fn write(&mut self, offset: usize, data: &[T]) -> Result<()> {
        let end = offset + data.len();
        crate::error::check_len("buffer end", self.len.max(end), self.len)?;
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.mem {
            Mem::Cuda(s) => {
                let stream = s.stream().clone();
                stream.memcpy_htod(data, &mut s.slice_mut(offset..end))?;
            }
            Mem::Host(v) => v[offset..end].copy_from_slice(data),
        }
        Ok(())
    }

    /// Copies `src[range]` into this buffer at element `offset` (device to device).
    pub fn copy_from(
        &mut self,
        offset: usize,
        src: &Buffer<T>,
        range: std::ops::Range<usize>,
    ) -> Result<()> {
        let end = offset + range.len();
        crate::error::check_len("buffer end", self.len.max(end), self.len)?;
        crate::error::check_len("source end", src.len.max(range.end), src.len)?;
        if range.is_empty() {
            return Ok(());
        }
        match (&mut self.mem, &src.mem) {
            (Mem::Cuda(d), Mem::Cuda(s)) => {
                let stream = d.stream().clone();
                stream.memcpy_dtod(&s.slice(range), &mut d.slice_mut(offset..end))?;
            }
            (Mem::Host(d), Mem::Host(s)) => d[offset..end].copy_from_slice(&s[range]),
            _ => return Err(Error::Mismatch("buffers of different devices")),
        }
        Ok(())
    }

    /// Sets every element to zero.
    pub fn fill_zero(&mut self) -> Result<()> {
        match &mut self.mem {
            Mem::Cuda(s) => {
                let stream = s.stream().clone();
                stream.memset_zeros(s)?;
            }
            Mem::Host(v) => v.fill(T::default()),
        }
        Ok(())
    }

    pub(crate) fn cuda(&self) -> Result<&CudaSlice<T>> {
        match &self.mem {
            Mem::Cuda(s) => Ok(s),
            Mem::Host(_) => Err(Error::Mismatch("an emulator buffer given to a GPU")),
        }
    }

    pub(crate) fn cuda_mut(&mut self) -> Result<&mut CudaSlice<T>> {
        match &mut self.mem {
            Mem::Cuda(s) => Ok(s),
            Mem::Host(_) => Err(Error::Mismatch("an emulator buffer given to a GPU")),
        }
    }

    pub(crate) fn host(&self) -> Result<&[T]> {
        match &self.mem {
            Mem::Host(v) => Ok(v),
            Mem::Cuda(_) => Err(Error::Mismatch("a GPU buffer given to the emulator")),
        }
    }

    pub(crate) fn host_mut(&mut self) -> Result<&mut [T]> {
        match &mut self.mem {
            Mem::Host(v) => Ok(v),
            Mem::Cuda(_) => Err(Error::Mismatch("a GPU buffer given to the emulator")),
        }
    }
}
