//! Errors of the GPU backend.

/// What can go wrong on the GPU path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No CUDA driver library could be loaded.
    #[error(
        "no CUDA driver found (libcuda.so could not be loaded): this machine has no NVIDIA GPU \
         driver; use the CPU (`--device cpu`)"
    )]
    NoDriver,
    /// The CUDA driver is installed but sees no GPU (`cuInit` reports no device, or the device
    /// count is zero).
    #[error(
        "the CUDA driver is installed but sees no GPU: this machine has no usable NVIDIA GPU; \
         use the CPU (`--device cpu`)"
    )]
    NoGpu,
    /// A CUDA 13 library the backend loads at run time is missing.
    #[error(
        "{0} could not be loaded: install the CUDA 13 toolkit (or `pip install {1}`) and put \
         the directory holding it on LD_LIBRARY_PATH"
    )]
    MissingLibrary(&'static str, &'static str),
    /// The driver sees a GPU but could not open device `ordinal` (or has no such ordinal).
    #[error("CUDA device {ordinal}: {message}")]
    NoDevice {
        /// The device ordinal asked for.
        ordinal: usize,
        /// What the driver said.
        message: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver: {0}")]
    Driver(#[from] cudarc::driver::DriverError),
    /// NVRTC did not compile the kernels.
    #[error("NVRTC could not compile the kernels: {0}")]
    Compile(String),
    /// A cuBLAS call failed.
    #[error("cuBLAS: {0}")]
    Blas(#[from] cudarc::cublas::result::CublasError),
    /// An error from the CPU-side types (shapes, invalid CSR, optimiser state).
    #[error(transparent)]
    Core(#[from] sparse_core::Error),
    /// Arguments that do not fit together.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// What was checked.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// Networks or layers that cannot be combined.
    #[error("{0}")]
    Mismatch(&'static str),
}

impl Error {
    /// Whether the error says this machine has no GPU at all ([`Error::NoDriver`],
    /// [`Error::NoGpu`]). Every other error of [`crate::Device::cuda`] means a GPU is there
    /// but could not be used: a device that will not open, a missing or failing NVRTC or
    /// cuBLAS.
    pub fn is_no_gpu(&self) -> bool {
        matches!(self, Error::NoDriver | Error::NoGpu)
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `got == expected`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Shape {
            what,
            expected,
            got,
        })
    }
}
