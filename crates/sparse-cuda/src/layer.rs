//! Layers on the device: CSR (live connections only) and dense, with the same operations and
//! FLOP counts as sparse-core's [`sparse_core::Layer`].
//!
//! A sparse layer holds `row_ptr`, `cols` and `vals` like the host CSR; layers that train also
//! hold the indices their backward pass gathers through (the row of every connection, and the
//! transposed structure), built on the host whenever a topology is uploaded. Dense layers keep
//! row-major `n_out × n_in` weights and run through cuBLAS.

use std::hash::{Hash, Hasher};

use sparse_core::{
    ColIndex, DenseLinear, FlopCounter, Flops, KernelKind, Layer, SparseLinear, SparseWeights,
    Transposed, with_csr,
};

use crate::activations::GpuActivations;
use crate::device::{Buffer, Device};
use crate::error::{Result, check_len};
use crate::kernels as k;

/// The non-linearity applied after a layer's affine map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// None.
    Linear,
    /// `max(0, z)`.
    Relu,
    /// `bound · tanh(z)`.
    Tanh(f32),
}

impl Activation {
    /// The kernels' activation code and bound.
    fn code(self) -> (u32, f32) {
        match self {
            Activation::Linear => (0, 1.0),
            Activation::Relu => (1, 1.0),
            Activation::Tanh(bound) => (2, bound),
        }
    }
}

/// Indices the backward pass of a sparse layer gathers through.
#[derive(Debug)]
struct BackwardIndex {
    /// The output row of every connection (CSR order).
    conn_rows: Buffer<u32>,
    /// Transposed structure: column pointers, rows, and slots in `vals`.
    col_ptr: Buffer<u32>,
    rows: Buffer<u32>,
    perm: Buffer<u32>,
}

/// Items each sum over the batch of the parameter gradients (a sparse layer's weights, every
/// layer's biases) is spread across, as `kernels.cu` describes: a warp per sum, so the GPU stays
/// busy at low density and the reads coalesce, at 128 bytes of scratch per sum. Measured on an
/// H200 (`ds-td3 bench --device cuda --only kernels`, one run each, with the weights split and
/// the biases not yet), the 256×256 layer's weight gradient at density 0.5 took 15.6 µs at batch
/// 100 with 32 lanes, 17.0 with 16 and 22.5 with 8.
const SUM_LANES: usize = 32;

/// A CSR layer on the device.
#[derive(Debug)]
pub struct GpuSparse {
    n_in: usize,
    n_out: usize,
    nnz: usize,
    pub(crate) row_ptr: Buffer<u32>,
    pub(crate) cols: Buffer<u32>,
    pub(crate) vals: Buffer<f32>,
    pub(crate) bias: Buffer<f32>,
    backward: Option<BackwardIndex>,
    /// A hash of the topology as uploaded; `None` once it changed on the device (pruning).
    pub(crate) topology: Option<u64>,
    pub(crate) scratch: Option<crate::target::PruneScratch>,
}

/// A dense layer on the device (row-major `n_out × n_in` weights).
#[derive(Debug)]
pub struct GpuDense {
    n_in: usize,
    n_out: usize,
    pub(crate) weights: Buffer<f32>,
    pub(crate) bias: Buffer<f32>,
}

/// One layer on the device.
#[derive(Debug)]
pub struct GpuLayer {
    pub(crate) kind: Kind,
    flops: FlopCounter,
}

/// Sparse or dense.
#[derive(Debug)]
pub(crate) enum Kind {
    Sparse(Box<GpuSparse>),
    Dense(GpuDense),
}

/// Gradients of one layer's parameters on the device (CSR value order for sparse layers).
#[derive(Debug)]
pub struct GpuLayerGrads {
    /// Weight gradients.
    pub weights: Buffer<f32>,
    /// Bias gradients.
    pub bias: Buffer<f32>,
    /// Partial sums of the gradients, [`SUM_LANES`] per weight of a sparse layer and per bias
    /// (see [`GpuLayer::param_grads`]).
    part: Buffer<f32>,
}

impl GpuLayerGrads {
    /// Device bytes held, scratch included.
    pub fn bytes(&self) -> usize {
        self.weights.bytes() + self.bias.bytes() + self.part.bytes()
    }

    /// Makes the partial-sum scratch hold at least `len` floats: it was sized when the
    /// gradients were made, and is replaced by a larger one for a layer that gained connections
    /// since.
    fn reserve_scratch(&mut self, len: usize, dev: &Device) -> Result<()> {
        if self.part.len() < len {
            self.part = dev.zeros(len)?;
        }
        Ok(())
    }
}

fn as_u32(what: &'static str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| crate::Error::Shape {
        what,
        expected: u32::MAX as usize,
        got: n,
    })
}

impl GpuLayer {
    /// Uploads a host layer; `trainable` also uploads what the backward pass needs (targets,
    /// which only run forward, leave it out).
    pub fn upload(dev: &Device, layer: &Layer, trainable: bool) -> Result<Self> {
        let kind = match layer {
            Layer::Sparse(l) => Kind::Sparse(Box::new(GpuSparse::upload(dev, l, trainable)?)),
            Layer::Dense(l) => Kind::Dense(GpuDense {
                n_in: layer.n_in(),
                n_out: layer.n_out(),
                weights: dev.upload(l.weights())?,
                bias: dev.upload(l.bias())?,
            }),
        };
        Ok(Self {
            kind,
            flops: FlopCounter::from(layer.flops()),
        })
    }

    /// A host copy of the layer, FLOP counts included.
    pub fn to_host(&self) -> Result<Layer> {
        let layer: Layer = match &self.kind {
            Kind::Sparse(s) => {
                let row_ptr = s.row_ptr.read(s.n_out + 1)?;
                let nnz = row_ptr[s.n_out] as usize;
                let cols = s.cols.read(nnz)?;
                let vals = s.vals.read(nnz)?;
                let positions: Vec<usize> = (0..s.n_out)
                    .flat_map(|r| {
                        let (lo, hi) = (row_ptr[r] as usize, row_ptr[r + 1] as usize);
                        cols[lo..hi].iter().map(move |&c| r * s.n_in + c as usize)
                    })
                    .collect();
                let w = SparseWeights::from_positions(s.n_out, s.n_in, &positions, vals)?;
                SparseLinear::new(w, s.bias.to_vec()?)?.into()
            }
            Kind::Dense(d) => {
                DenseLinear::new(d.n_in, d.n_out, d.weights.to_vec()?, d.bias.to_vec()?)?.into()
            }
        };
        let f = self.flops.snapshot();
        for kind in KernelKind::ALL {
            layer.counter().add(kind, f.get(kind));
        }
        Ok(layer)
    }

    /// Inputs.
    pub fn n_in(&self) -> usize {
        match &self.kind {
            Kind::Sparse(s) => s.n_in,
            Kind::Dense(d) => d.n_in,
        }
    }

    /// Outputs.
    pub fn n_out(&self) -> usize {
        match &self.kind {
            Kind::Sparse(s) => s.n_out,
            Kind::Dense(d) => d.n_out,
        }
    }

    /// Whether the layer is sparse.
    pub fn is_sparse(&self) -> bool {
        matches!(self.kind, Kind::Sparse(_))
    }

    /// Live connections (all `n_in · n_out` for a dense layer).
    pub fn live_connections(&self) -> usize {
        match &self.kind {
            Kind::Sparse(s) => s.nnz,
            Kind::Dense(d) => d.n_in * d.n_out,
        }
    }

    /// The sums over the batch [`Self::param_grads`] spreads across lanes: a sparse layer's
    /// weights and biases; a dense layer's biases.
    fn sums(&self) -> usize {
        match &self.kind {
            Kind::Sparse(s) => s.nnz + s.n_out,
            Kind::Dense(d) => d.n_out,
        }
    }

    /// FLOPs executed for this layer (including those counted before upload).
    pub fn flops(&self) -> Flops {
        self.flops.snapshot()
    }

    /// Device bytes held: parameters, indices and scratch.
    pub fn bytes(&self) -> usize {
        match &self.kind {
            Kind::Sparse(s) => {
                let idx = s.backward.as_ref().map_or(0, |b| {
                    b.conn_rows.bytes() + b.col_ptr.bytes() + b.rows.bytes() + b.perm.bytes()
                });
                s.row_ptr.bytes()
                    + s.cols.bytes()
                    + s.vals.bytes()
                    + s.bias.bytes()
                    + idx
                    + s.scratch.as_ref().map_or(0, |p| p.bytes())
            }
            Kind::Dense(d) => d.weights.bytes() + d.bias.bytes(),
        }
    }

    /// Zero gradients shaped like the parameters.
    pub fn zero_grads(&self, dev: &Device) -> Result<GpuLayerGrads> {
        Ok(GpuLayerGrads {
            weights: dev.zeros(self.live_connections())?,
            bias: dev.zeros(self.n_out())?,
            part: dev.zeros(self.sums() * SUM_LANES)?,
        })
    }

    /// The weight values (CSR order, or row-major) and the bias.
    pub(crate) fn params_mut(&mut self) -> (&mut Buffer<f32>, &mut Buffer<f32>) {
        match &mut self.kind {
            Kind::Sparse(s) => (&mut s.vals, &mut s.bias),
            Kind::Dense(d) => (&mut d.weights, &mut d.bias),
        }
    }

    /// `y = act(W x + b)`; `y` is reshaped to `n_out × batch`.
    pub fn forward(
        &self,
        dev: &Device,
        x: &GpuActivations,
        y: &mut GpuActivations,
        act: Activation,
    ) -> Result<()> {
        check_len("layer input features", self.n_in(), x.features())?;
        let batch = x.batch();
        y.ensure_shape(dev, self.n_out(), batch)?;
        let (code, bound) = act.code();
        let items = self.n_out() * batch;
        let b32 = as_u32("batch", batch)?;
        match &self.kind {
            Kind::Sparse(s) => k::csr_forward(
                dev,
                items,
                b32,
                &s.row_ptr,
                &s.cols,
                &s.vals,
                &s.bias,
                x.buffer(),
                y.buffer_mut(),
                code,
                bound,
            )?,
            Kind::Dense(d) => {
                // Column-major view: Y (batch × n_out) = X (batch × n_in) · Wᵀ, with W stored
                // row-major, i.e. column-major n_in × n_out.
                dev.sgemm(
                    (false, false),
                    (batch, d.n_out, d.n_in),
                    1.0,
                    (x.buffer(), batch),
                    (&d.weights, d.n_in),
                    0.0,
                    (y.buffer_mut(), batch),
                )?;
                k::bias_act(dev, items, b32, &d.bias, y.buffer_mut(), code, bound)?;
            }
        }
        let work = 2 * (self.live_connections() * batch) as u64;
        self.flops.add(KernelKind::Forward, work);
        Ok(())
    }

    /// `dx = Wᵀ dz`; `dx` is reshaped to `n_in × batch`.
    pub fn backward_data(
        &self,
        dev: &Device,
        dz: &GpuActivations,
        dx: &mut GpuActivations,
    ) -> Result<()> {
        check_len(
            "layer output-gradient features",
            self.n_out(),
            dz.features(),
        )?;
        let batch = dz.batch();
        dx.ensure_shape(dev, self.n_in(), batch)?;
        match &self.kind {
            Kind::Sparse(s) => {
                let bw = s.backward_index()?;
                k::csr_backward_data(
                    dev,
                    self.n_in() * batch,
                    as_u32("batch", batch)?,
                    &bw.col_ptr,
                    &bw.rows,
                    &bw.perm,
                    &s.vals,
                    dz.buffer(),
                    dx.buffer_mut(),
                )?
            }
            // Column-major: dX (batch × n_in) = dZ (batch × n_out) · W, W read as the
            // transpose of its column-major n_in × n_out view.
            Kind::Dense(d) => dev.sgemm(
                (false, true),
                (batch, d.n_in, d.n_out),
                1.0,
                (dz.buffer(), batch),
                (&d.weights, d.n_in),
                0.0,
                (dx.buffer_mut(), batch),
            )?,
        }
        let work = 2 * (self.live_connections() * batch) as u64;
        self.flops.add(KernelKind::BackwardData, work);
        Ok(())
    }

    /// Overwrites `grads` with the weight gradient (stored positions only) and the bias
    /// gradient for output gradient `dz` and layer input `x`.
    pub fn param_grads(
        &self,
        dev: &Device,
        dz: &GpuActivations,
        x: &GpuActivations,
        grads: &mut GpuLayerGrads,
    ) -> Result<()> {
        check_len(
            "layer output-gradient features",
            self.n_out(),
            dz.features(),
        )?;
        check_len("layer input features", self.n_in(), x.features())?;
        check_len("batch", dz.batch(), x.batch())?;
        check_len(
            "weight gradient",
            self.live_connections(),
            grads.weights.len(),
        )?;
        check_len("bias gradient", self.n_out(), grads.bias.len())?;
        let batch = dz.batch();
        let b32 = as_u32("batch", batch)?;
        // Each lane sums at least one sample.
        let lanes = SUM_LANES.min(batch).max(1);
        let l32 = lanes as u32;
        let sums = self.sums();
        grads.reserve_scratch(sums * lanes, dev)?;
        let part = &mut grads.part;
        match &self.kind {
            Kind::Sparse(s) => {
                let bw = s.backward_index()?;
                let nnz = as_u32("connections", s.nnz)?;
                let (conn_rows, cols) = (&bw.conn_rows, &s.cols);
                let (dz, x) = (dz.buffer(), x.buffer());
                k::param_grad_part(
                    dev,
                    sums * lanes,
                    b32,
                    l32,
                    nnz,
                    conn_rows,
                    cols,
                    dz,
                    x,
                    part,
                )?;
                k::sum_lanes(
                    dev,
                    sums,
                    l32,
                    nnz,
                    part,
                    &mut grads.weights,
                    &mut grads.bias,
                )?;
            }
            // Column-major: dWᵀ (n_in × n_out) = X · dZᵀ, X read as the transpose of its
            // column-major batch × n_in view; then the biases' sums (into `second`, as
            // `n_first` is 0).
            Kind::Dense(d) => {
                dev.sgemm(
                    (true, false),
                    (d.n_in, d.n_out, batch),
                    1.0,
                    (x.buffer(), batch),
                    (dz.buffer(), batch),
                    0.0,
                    (&mut grads.weights, d.n_in),
                )?;
                // A dense layer's sums are its biases.
                k::row_sum_part(dev, sums * lanes, b32, l32, dz.buffer(), part)?;
                k::sum_lanes(dev, sums, l32, 0, part, &mut grads.weights, &mut grads.bias)?;
            }
        }
        let work = 2 * (self.live_connections() * batch) as u64;
        self.flops.add(KernelKind::WeightGrad, work);
        self.flops
            .add(KernelKind::BiasGrad, (self.n_out() * batch) as u64);
        Ok(())
    }
}

/// A hash of a CSR topology (row pointers and column indices).
fn topology_hash(row_ptr: &[u32], cols: &[u32]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    row_ptr.hash(&mut h);
    cols.hash(&mut h);
    h.finish()
}

impl GpuSparse {
    fn upload(dev: &Device, l: &SparseLinear, trainable: bool) -> Result<Self> {
        let w = l.weights();
        let (n_out, n_in, nnz) = (w.n_rows(), w.n_cols(), w.nnz());
        as_u32("connections", nnz)?;
        let cols: Vec<u32> =
            with_csr!(w, c => c.col_idx().iter().map(|&i| i.col() as u32).collect());
        let row_ptr = w.row_ptr();
        let backward = if trainable {
            let t: Transposed = with_csr!(w, c => Transposed::of(c));
            let conn_rows: Vec<u32> = (0..n_out)
                .flat_map(|r| (row_ptr[r]..row_ptr[r + 1]).map(move |_| r as u32))
                .collect();
            Some(BackwardIndex {
                conn_rows: dev.upload(&conn_rows)?,
                col_ptr: dev.upload(t.col_ptr())?,
                rows: dev.upload(t.rows())?,
                perm: dev.upload(t.perm())?,
            })
        } else {
            None
        };
        Ok(Self {
            n_in,
            n_out,
            nnz,
            topology: Some(topology_hash(row_ptr, &cols)),
            row_ptr: dev.upload(row_ptr)?,
            cols: dev.upload(&cols)?,
            vals: dev.upload(w.values())?,
            bias: dev.upload(l.bias())?,
            backward,
            scratch: None,
        })
    }

    fn backward_index(&self) -> Result<&BackwardIndex> {
        self.backward.as_ref().ok_or(crate::Error::Mismatch(
            "this layer was uploaded without its backward indices (a target network)",
        ))
    }

    /// Inputs.
    pub(crate) fn n_in(&self) -> usize {
        self.n_in
    }

    /// Outputs.
    pub(crate) fn n_out(&self) -> usize {
        self.n_out
    }

    /// Live connections.
    pub(crate) fn nnz(&self) -> usize {
        self.nnz
    }

    /// Sets the connection count after pruning on the device shrank it (the buffers keep
    /// their length; only the first `nnz` entries are live).
    pub(crate) fn set_nnz(&mut self, nnz: usize) {
        debug_assert!(nnz <= self.nnz);
        self.nnz = nnz;
    }
}
