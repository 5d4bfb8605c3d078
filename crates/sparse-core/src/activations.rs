//! Feature-major activation buffers: `[feature][batch]`, rows padded and 64-byte aligned.
//!
//! Each live connection `(j, k)` of a sparse layer does one length-`batch` vector operation on
//! row `k` of the input and row `j` of the output, so rows are the unit of work. Each row starts on
//! a 64-byte boundary and its stride follows [`padded_stride`]: measured on this project's
//! AVX-512 machine, a power-of-two stride lost 40% of throughput to cache-set conflicts and a
//! 16-byte misalignment halved it.
//!
//! Padding lanes (`batch..stride` of each row) are zero when a buffer is created or reshaped;
//! kernels write only the first `batch` lanes of each row. The SIMD kernels may read padding
//! lanes (rows are whole vectors), but no result depends on what they hold.

use crate::error::{Error, Result, check_len};

/// Floats per 64-byte block.
const LANES: usize = 16;

/// One 64-byte aligned block of floats: the storage unit of [`Activations`].
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Block([f32; LANES]);

/// The row stride used for a batch: round `batch` up to a multiple of 16 floats, then add 16
/// more when that multiple is an even number of 64-byte blocks, so the stride is an odd number of
/// cache lines (never a power of two) and consecutive rows map to different cache sets.
pub fn padded_stride(batch: usize) -> usize {
    let blocks = batch.div_ceil(LANES).max(1);
    let blocks = if blocks.is_multiple_of(2) {
        blocks + 1
    } else {
        blocks
    };
    blocks * LANES
}

/// A `features × batch` matrix of `f32` in feature-major layout with padded, aligned rows.
#[derive(Clone)]
pub struct Activations {
    features: usize,
    batch: usize,
    stride: usize,
    data: Vec<Block>,
}

impl std::fmt::Debug for Activations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activations")
            .field("features", &self.features)
            .field("batch", &self.batch)
            .field("stride", &self.stride)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Activations {
    /// Equal when shapes and the `batch` live lanes of every row agree (padding is ignored).
    fn eq(&self, other: &Self) -> bool {
        self.features == other.features
            && self.batch == other.batch
            && (0..self.features).all(|f| self.row(f) == other.row(f))
    }
}

impl Default for Activations {
    /// An empty `0 × 0` buffer.
    fn default() -> Self {
        Activations::zeros(0, 0)
    }
}

impl Activations {
    /// A zero-filled buffer.
    pub fn zeros(features: usize, batch: usize) -> Self {
        let stride = padded_stride(batch);
        Self {
            features,
            batch,
            stride,
            data: vec![Block::default(); features * stride / LANES],
        }
    }

    /// Builds a buffer from sample-major data: `samples[b * features + f]` is feature `f` of
    /// sample `b` (the usual row-per-sample layout).
    pub fn from_samples(features: usize, batch: usize, samples: &[f32]) -> Result<Self> {
        check_len("sample-major data", features * batch, samples.len())?;
        let mut a = Self::zeros(features, batch);
        for f in 0..features {
            let row = a.row_mut(f);
            for (b, x) in row.iter_mut().enumerate() {
                *x = samples[b * features + f];
            }
        }
        Ok(a)
    }

    /// Copies out as sample-major data (`out[b * features + f]`).
    pub fn to_samples(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.features * self.batch];
        for f in 0..self.features {
            for (b, &x) in self.row(f).iter().enumerate() {
                out[b * self.features + f] = x;
            }
        }
        out
    }

    /// Reshapes to `features × batch`, reusing the allocation when it is large enough; all
    /// contents, padding included, are zero afterwards.
    pub fn reset(&mut self, features: usize, batch: usize) {
        let stride = padded_stride(batch);
        let blocks = features * stride / LANES;
        self.data.clear();
        self.data.resize(blocks, Block::default());
        self.features = features;
        self.batch = batch;
        self.stride = stride;
    }

    /// Reshapes to `features × batch` only if the shape differs; keeps contents otherwise.
    pub fn ensure_shape(&mut self, features: usize, batch: usize) {
        if self.features != features || self.batch != batch {
            self.reset(features, batch);
        }
    }

    /// Number of features (rows).
    pub fn features(&self) -> usize {
        self.features
    }

    /// Number of samples (live lanes per row).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Distance in floats between the starts of consecutive rows.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The whole padded storage, `features * stride` floats; row `f` starts at `f * stride`.
    pub fn as_slice(&self) -> &[f32] {
        bytemuck::cast_slice(&self.data)
    }

    /// Mutable padded storage.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        bytemuck::cast_slice_mut(&mut self.data)
    }

    /// The `batch` live values of row `f`.
    ///
    /// # Panics
    /// If `f >= features`.
    pub fn row(&self, f: usize) -> &[f32] {
        assert!(f < self.features, "row {f} of {}", self.features);
        &self.as_slice()[f * self.stride..f * self.stride + self.batch]
    }

    /// Mutable live values of row `f`.
    ///
    /// # Panics
    /// If `f >= features`.
    pub fn row_mut(&mut self, f: usize) -> &mut [f32] {
        assert!(f < self.features, "row {f} of {}", self.features);
        let (s, b) = (self.stride, self.batch);
        &mut self.as_mut_slice()[f * s..f * s + b]
    }

    /// Value of feature `f` for sample `b`.
    ///
    /// # Panics
    /// If out of range.
    pub fn get(&self, f: usize, b: usize) -> f32 {
        self.row(f)[b]
    }

    /// Sets feature `f` of sample `b`.
    ///
    /// # Panics
    /// If out of range.
    pub fn set(&mut self, f: usize, b: usize, value: f32) {
        self.row_mut(f)[b] = value;
    }

    /// Copies all rows of `src` into rows `first_row..first_row + src.features()` of `self`
    /// (e.g. to stack observation and action features into a critic input).
    pub fn copy_rows_from(&mut self, first_row: usize, src: &Activations) -> Result<()> {
        check_len("batch", self.batch, src.batch)?;
        if first_row + src.features > self.features {
            return Err(Error::ShapeMismatch {
                what: "rows to copy",
                expected: self.features.saturating_sub(first_row),
                got: src.features,
            });
        }
        for f in 0..src.features {
            self.row_mut(first_row + f).copy_from_slice(src.row(f));
        }
        Ok(())
    }

    /// Bytes held, padding included.
    pub fn bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<Block>()
    }
}
