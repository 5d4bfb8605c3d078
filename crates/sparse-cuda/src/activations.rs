//! Feature-major activation buffers on the device.
//!
//! Element `(f, b)` of a `features × batch` buffer sits at `f · batch + b`: rows are contiguous
//! and unpadded, so stacking feature blocks (a critic's `[s; a]` input) and taking some rows
//! (the action part of `dQ/d[s; a]`) are plain device-to-device copies.

use sparse_core::Activations;

use crate::device::{Buffer, Device};
use crate::error::{Result, check_len};

/// A `features × batch` matrix of `f32` on a [`Device`].
#[derive(Debug)]
pub struct GpuActivations {
    buf: Buffer<f32>,
    features: usize,
    batch: usize,
}

impl GpuActivations {
    /// A zero-filled `features × batch` buffer.
    pub fn zeros(dev: &Device, features: usize, batch: usize) -> Result<Self> {
        Ok(Self {
            buf: dev.zeros(features * batch)?,
            features,
            batch,
        })
    }

    /// A copy of host activations.
    pub fn from_host(dev: &Device, host: &Activations) -> Result<Self> {
        let mut a = Self::zeros(dev, host.features(), host.batch())?;
        a.upload(host)?;
        Ok(a)
    }

    /// Reshapes to `features × batch`, reallocating only when more room is needed. Contents
    /// are unspecified afterwards.
    pub fn ensure_shape(&mut self, dev: &Device, features: usize, batch: usize) -> Result<()> {
        if self.buf.len() < features * batch {
            self.buf = dev.zeros(features * batch)?;
        }
        self.features = features;
        self.batch = batch;
        Ok(())
    }

    /// Overwrites the contents with `host` (same shape).
    pub fn upload(&mut self, host: &Activations) -> Result<()> {
        check_len("features", self.features, host.features())?;
        check_len("batch", self.batch, host.batch())?;
        let mut packed = Vec::with_capacity(self.len());
        for f in 0..host.features() {
            packed.extend_from_slice(host.row(f));
        }
        self.buf.write(0, &packed)
    }

    /// Copies to host activations.
    pub fn to_host(&self) -> Result<Activations> {
        let data = self.buf.read(self.len())?;
        let mut host = Activations::zeros(self.features, self.batch);
        for (f, row) in data.chunks_exact(self.batch.max(1)).enumerate() {
            host.row_mut(f).copy_from_slice(row);
        }
        Ok(host)
    }

    /// Copies the rows of `src` into this buffer from row `first_row` on (same batch).
    pub fn copy_rows_from(&mut self, first_row: usize, src: &GpuActivations) -> Result<()> {
        check_len("batch", self.batch, src.batch)?;
        check_len(
            "rows",
            self.features.max(first_row + src.features),
            self.features,
        )?;
        self.buf
            .copy_from(first_row * self.batch, &src.buf, 0..src.len())
    }

    /// Copies rows `rows` of `src` into this buffer (which must have exactly that many rows).
    pub fn copy_rows_of(
        &mut self,
        src: &GpuActivations,
        rows: std::ops::Range<usize>,
    ) -> Result<()> {
        check_len("batch", self.batch, src.batch)?;
        check_len("rows", self.features, rows.len())?;
        check_len("source rows", src.features.max(rows.end), src.features)?;
        let b = self.batch;
        self.buf
            .copy_from(0, &src.buf, rows.start * b..rows.end * b)
    }

    /// Number of features (rows).
    pub fn features(&self) -> usize {
        self.features
    }

    /// Batch size (columns).
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// `features · batch`.
    pub fn len(&self) -> usize {
        self.features * self.batch
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        self.buf.bytes()
    }

    /// The underlying buffer.
    pub fn buffer(&self) -> &Buffer<f32> {
        &self.buf
    }

    /// The underlying buffer, mutably.
    pub fn buffer_mut(&mut self) -> &mut Buffer<f32> {
        &mut self.buf
    }
}
