//! Linear layers: a sparse one (CSR weights + dense bias) and a dense one (row-major weights +
//! bias), side by side behind [`Layer`] so one network can mix them.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::activations::Activations;
use crate::csr::{Segments, SparseWeights, Transposed};
use crate::error::{Error, Result, check_finite, check_len};
use crate::flops::{FlopCounter, Flops};
use crate::kernels::{self, Epilogue, FullPattern};
use crate::memory::{MemoryReport, f32_bytes};
use crate::with_csr;

/// A linear layer whose weights hold only live connections.
#[derive(Debug, Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "SparseLinearParts")
)]
pub struct SparseLinear {
    weights: SparseWeights,
    bias: Vec<f32>,
    flops: FlopCounter,
    /// Identifies the topology (see [`SparseLinear::topology_id`]); not serialised, a
    /// deserialised layer draws a new one.
    #[cfg_attr(feature = "serde", serde(skip))]
    topology: u64,
    /// The transposed structure for backward-data, built on first use and rebuilt in place
    /// whenever the topology changes (target networks, which never run backward-data, never
    /// build one).
    #[cfg_attr(feature = "serde", serde(skip))]
    transposed: OnceLock<Transposed>,
    /// The rows cut into column blocks for the SIMD kernels, built on first use and rebuilt in
    /// place whenever the topology changes.
    #[cfg_attr(feature = "serde", serde(skip))]
    segments: OnceLock<Segments>,
    /// Scratch space of [`Self::splice`]: insertion slots.
    #[cfg_attr(feature = "serde", serde(skip))]
    splice_slots: Vec<usize>,
    /// Scratch space of [`Self::splice`]: the rows that change.
    #[cfg_attr(feature = "serde", serde(skip))]
    splice_rows: Vec<usize>,
}

impl SparseLinear {
    /// A layer from CSR weights (`n_out × n_in`) and a bias of length `n_out`.
    pub fn new(weights: SparseWeights, bias: Vec<f32>) -> Result<Self> {
        check_len("bias", weights.n_rows(), bias.len())?;
        check_finite("bias", &bias)?;
        if weights.n_rows() == 0 {
            return Err(Error::ZeroDimension("n_out"));
        }
        if weights.n_cols() == 0 {
            return Err(Error::ZeroDimension("n_in"));
        }
        Ok(Self {
            weights,
            bias,
            flops: FlopCounter::default(),
            topology: next_topology_id(),
            transposed: OnceLock::new(),
            segments: OnceLock::new(),
            splice_slots: Vec::new(),
            splice_rows: Vec::new(),
        })
    }

    /// The transposed structure of the current topology, built on first use.
    fn transposed(&self) -> &Transposed {
        self.transposed
            .get_or_init(|| with_csr!(&self.weights, w => Transposed::of(w)))
    }

    /// The column-block segments of the current topology, built on first use.
    fn segments(&self) -> &Segments {
        self.segments.get_or_init(
            || with_csr!(&self.weights, w => Segments::of(w.row_ptr(), w.col_idx(), w.n_cols())),
        )
    }

    /// The CSR weights.
    pub fn weights(&self) -> &SparseWeights {
        &self.weights
    }

    /// An identifier of the current topology: a new one is drawn (from a process-wide counter)
    /// by [`Self::new`], deserialisation and [`Self::replace_weights`], and a clone keeps its
    /// original's. Two layers with equal identifiers therefore have identical topologies (the
    /// converse need not hold), which lets callers cache facts about a topology cheaply.
    pub fn topology_id(&self) -> u64 {
        self.topology
    }

    /// Replaces the weights by a new topology of the same shape (for topology evolution and
    /// target pruning); returns the old weights.
    pub fn replace_weights(&mut self, weights: SparseWeights) -> Result<SparseWeights> {
        check_len("replacement rows", self.weights.n_rows(), weights.n_rows())?;
        check_len(
            "replacement columns",
            self.weights.n_cols(),
            weights.n_cols(),
        )?;
        let old = std::mem::replace(&mut self.weights, weights);
        self.topology_changed(None);
        Ok(old)
    }

    /// Removes and inserts connections in place ([`crate::Csr::splice`] on the weights, same rules);
    /// the topology gets a new identifier and structures already built follow it. On error
    /// nothing changes.
    pub fn splice(&mut self, remove: &[usize], insert: &[(usize, f32)]) -> Result<()> {
        // The rows whose entries change (found before anything moves): the column blocks of
        // the others only shift. Target networks splice a few connections at a time: room for
        // that from the start.
        let mut rows = std::mem::take(&mut self.splice_rows);
        rows.clear();
        rows.reserve((remove.len() + insert.len()).max(64));
        let (ptr, n_cols) = (self.weights.row_ptr(), self.weights.n_cols());
        rows.extend(
            remove
                .iter()
                .map(|&s| ptr.partition_point(|&p| p as usize <= s).saturating_sub(1)),
        );
        rows.extend(insert.iter().map(|&(p, _)| p / n_cols.max(1)));
        rows.sort_unstable();
        rows.dedup();
        let slots = &mut self.splice_slots;
        let spliced = with_csr!(&mut self.weights, w => w.splice_using(remove, insert, slots));
        if spliced.is_ok() {
            self.topology_changed(Some(&rows));
        }
        self.splice_rows = rows;
        spliced
    }

    /// Draws a new topology identifier and makes the structures already built follow the
    /// weights, in their own allocations (those never built stay so); given the rows whose
    /// entries changed, the column-block segments of the others are only shifted.
    fn topology_changed(&mut self, changed_rows: Option<&[usize]>) {
        self.topology = next_topology_id();
        if let Some(t) = self.transposed.get_mut() {
            with_csr!(&self.weights, w => t.rebuild(w));
        }
        if let Some(s) = self.segments.get_mut() {
            with_csr!(&self.weights, w => match changed_rows {
                Some(rows) => s.rebuild_rows(w.row_ptr(), w.col_idx(), w.n_cols(), rows),
                None => s.rebuild(w.row_ptr(), w.col_idx(), w.n_cols()),
            });
        }
    }

    /// The weight gradient `Σ_b dy[r, b] · x[c, b]` at arbitrary positions of this layer's shape
    /// (row-major `r · n_in + c`, strictly increasing, live or not), for the output gradient `dy`
    /// and input `x` of one pass: the weight-gradient kernel run on a layer with exactly those
    /// connections, its FLOPs (and those of the bias gradient it computes alongside) counted in
    /// this layer's counter. Gradient-guided growth scores candidate positions with it, never
    /// forming the layer's dense gradient.
    pub fn gradient_at(
        &self,
        positions: &[usize],
        dy: &Activations,
        x: &Activations,
    ) -> Result<Vec<f32>> {
        let (n_out, n_in) = (self.weights.n_rows(), self.weights.n_cols());
        check_len("layer output-gradient features", n_out, dy.features())?;
        check_len("layer input features", n_in, x.features())?;
        check_len("batch", dy.batch(), x.batch())?;
        let probe =
            SparseWeights::from_positions(n_out, n_in, positions, vec![0.0; positions.len()])?;
        let mut gw = vec![0.0; positions.len()];
        let mut gb = vec![0.0; n_out];
        with_csr!(&probe, w => {
            let seg = Segments::of(w.row_ptr(), w.col_idx(), w.n_cols());
            kernels::sparse_param_grads(w, &seg, dy, x, &mut gw, &mut gb, &self.flops)
        });
        Ok(gw)
    }

    /// The bias.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }
}

/// A topology identifier never handed out before in this process.
fn next_topology_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A fully connected linear layer computed with matrixmultiply.
#[derive(Debug, Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "DenseLinearParts")
)]
pub struct DenseLinear {
    n_in: usize,
    n_out: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    flops: FlopCounter,
    /// The layer's structure as a full CSR pattern, for layers with few outputs that the sparse
    /// kernels compute faster than a GEMM ([`FullPattern::suits`]); built on first use.
    #[cfg_attr(feature = "serde", serde(skip))]
    full: OnceLock<FullPattern>,
}

impl DenseLinear {
    /// A layer from row-major weights (`n_out × n_in`, `weights[j * n_in + k]`) and a bias.
    pub fn new(n_in: usize, n_out: usize, weights: Vec<f32>, bias: Vec<f32>) -> Result<Self> {
        if n_in == 0 {
            return Err(Error::ZeroDimension("n_in"));
        }
        if n_out == 0 {
            return Err(Error::ZeroDimension("n_out"));
        }
        check_len("dense weights", n_in * n_out, weights.len())?;
        check_len("bias", n_out, bias.len())?;
        check_finite("weights", &weights)?;
        check_finite("bias", &bias)?;
        Ok(Self {
            n_in,
            n_out,
            weights,
            bias,
            flops: FlopCounter::default(),
            full: OnceLock::new(),
        })
    }

    /// The full pattern, when this layer takes the sparse kernels on this thread.
    fn full(&self) -> Option<&FullPattern> {
        FullPattern::suits(self.n_out).then(|| {
            self.full.get_or_init(|| {
                FullPattern::new(self.n_in, self.n_out).expect("a valid layer has a valid pattern")
            })
        })
    }

    /// Row-major weights, `n_out × n_in`.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The bias.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }
}

/// Serialised form of a [`SparseLinear`], validated on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct SparseLinearParts {
    weights: SparseWeights,
    bias: Vec<f32>,
    flops: FlopCounter,
}

#[cfg(feature = "serde")]
impl TryFrom<SparseLinearParts> for SparseLinear {
    type Error = Error;
    fn try_from(p: SparseLinearParts) -> Result<Self> {
        let mut layer = SparseLinear::new(p.weights, p.bias)?;
        layer.flops = p.flops;
        Ok(layer)
    }
}

/// Serialised form of a [`DenseLinear`], validated on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct DenseLinearParts {
    n_in: usize,
    n_out: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    flops: FlopCounter,
}

#[cfg(feature = "serde")]
impl TryFrom<DenseLinearParts> for DenseLinear {
    type Error = Error;
    fn try_from(p: DenseLinearParts) -> Result<Self> {
        let mut layer = DenseLinear::new(p.n_in, p.n_out, p.weights, p.bias)?;
        layer.flops = p.flops;
        Ok(layer)
    }
}

/// Gradient buffers of one layer, aligned with its parameters: `weights` follows the CSR value
/// order of a sparse layer (or the row-major weights of a dense one).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LayerGrads {
    /// Gradient of each weight parameter.
    pub weights: Vec<f32>,
    /// Gradient of each bias.
    pub bias: Vec<f32>,
}

impl LayerGrads {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        f32_bytes(self.weights.len() + self.bias.len())
    }
}

/// One layer of a network: sparse or dense.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Layer {
    /// CSR weights.
    Sparse(SparseLinear),
    /// Dense weights.
    Dense(DenseLinear),
}

impl From<SparseLinear> for Layer {
    fn from(l: SparseLinear) -> Self {
        Layer::Sparse(l)
    }
}

impl From<DenseLinear> for Layer {
    fn from(l: DenseLinear) -> Self {
        Layer::Dense(l)
    }
}

impl Layer {
    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        match self {
            Layer::Sparse(l) => l.weights.n_cols(),
            Layer::Dense(l) => l.n_in,
        }
    }

    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        match self {
            Layer::Sparse(l) => l.weights.n_rows(),
            Layer::Dense(l) => l.n_out,
        }
    }

    /// Whether the weights are stored sparse.
    pub fn is_sparse(&self) -> bool {
        matches!(self, Layer::Sparse(_))
    }

    /// Live weight connections (all `n_in · n_out` for a dense layer); biases not included.
    pub fn live_connections(&self) -> usize {
        self.weight_values().len()
    }

    /// Weight parameters: CSR values, or row-major dense weights.
    pub fn weight_values(&self) -> &[f32] {
        match self {
            Layer::Sparse(l) => l.weights.values(),
            Layer::Dense(l) => &l.weights,
        }
    }

    /// The bias.
    pub fn bias(&self) -> &[f32] {
        match self {
            Layer::Sparse(l) => &l.bias,
            Layer::Dense(l) => &l.bias,
        }
    }

    /// Mutable weight values and bias (the topology stays fixed).
    pub fn params_mut(&mut self) -> (&mut [f32], &mut [f32]) {
        match self {
            Layer::Sparse(l) => (l.weights.values_mut(), &mut l.bias),
            Layer::Dense(l) => (&mut l.weights, &mut l.bias),
        }
    }

    /// Zero-filled gradient buffers matching this layer's parameters.
    pub fn zero_grads(&self) -> LayerGrads {
        LayerGrads {
            weights: vec![0.0; self.live_connections()],
            bias: vec![0.0; self.n_out()],
        }
    }

    /// The layer's FLOP counter (other backends add the work they did for this layer here).
    pub fn counter(&self) -> &FlopCounter {
        match self {
            Layer::Sparse(l) => &l.flops,
            Layer::Dense(l) => &l.flops,
        }
    }

    /// FLOPs executed by this layer's kernels since creation or the last reset.
    pub fn flops(&self) -> Flops {
        self.counter().snapshot()
    }

    /// Zeroes the FLOP counters.
    pub fn reset_flops(&self) {
        self.counter().reset()
    }

    /// Bytes held by the parameters (values, indices, row pointers, bias) and, once a
    /// backward-data pass has built it, a sparse layer's transposed structure.
    pub fn memory(&self) -> MemoryReport {
        match self {
            Layer::Sparse(l) => MemoryReport {
                values: f32_bytes(l.weights.nnz()),
                col_indices: l.weights.index_bytes(),
                row_ptrs: l.weights.row_ptr_bytes() + l.segments.get().map_or(0, Segments::bytes),
                transposed: l.transposed.get().map_or(0, Transposed::bytes),
                biases: f32_bytes(l.bias.len()),
                ..Default::default()
            },
            Layer::Dense(l) => MemoryReport {
                values: f32_bytes(l.weights.len()),
                transposed: l.full.get().map_or(0, FullPattern::bytes),
                biases: f32_bytes(l.bias.len()),
                ..Default::default()
            },
        }
    }

    /// `y = W x + b`; `y` is reshaped to `n_out × batch` if needed.
    pub fn forward(&self, x: &Activations, y: &mut Activations) -> Result<()> {
        self.forward_then(x, y, Epilogue::None)
    }

    /// `y = epilogue(W x + b)` (a ReLU fused into the sparse kernel); `y` is reshaped to
    /// `n_out × batch` if needed.
    pub fn forward_then(
        &self,
        x: &Activations,
        y: &mut Activations,
        epilogue: Epilogue<'_>,
    ) -> Result<()> {
        check_len("layer input features", self.n_in(), x.features())?;
        y.ensure_shape(self.n_out(), x.batch());
        check_epilogue(epilogue, y)?;
        let e = epilogue;
        match self {
            Layer::Sparse(l) => {
                let seg = l.segments();
                with_csr!(&l.weights, w => kernels::sparse_forward(w, seg, &l.bias, x, y, e, &l.flops))
            }
            Layer::Dense(l) => match l.full() {
                Some(p) => kernels::full_forward(p, &l.weights, &l.bias, x, y, e, &l.flops),
                None => kernels::dense_forward(&l.weights, &l.bias, x, y, e, &l.flops),
            },
        }
        Ok(())
    }

    /// `dx = Wᵀ dy`; `dx` is reshaped to `n_in × batch` if needed and overwritten.
    pub fn backward_data(&self, dy: &Activations, dx: &mut Activations) -> Result<()> {
        self.backward_data_then(dy, dx, Epilogue::None)
    }

    /// `dx = epilogue(Wᵀ dy)` (e.g. the ReLU derivative of the layer below, fused into the
    /// sparse kernel); `dx` is reshaped to `n_in × batch` if needed and overwritten.
    pub fn backward_data_then(
        &self,
        dy: &Activations,
        dx: &mut Activations,
        epilogue: Epilogue<'_>,
    ) -> Result<()> {
        self.prepare_backward_data(dy, dx, epilogue)?;
        let e = epilogue;
        match self {
            Layer::Sparse(l) => {
                let t = l.transposed();
                with_csr!(&l.weights, w => kernels::sparse_backward_data(w, t, dy, dx, e, &l.flops))
            }
            Layer::Dense(l) => match l.full() {
                Some(p) => kernels::full_backward_data(p, &l.weights, dy, dx, e, &l.flops),
                None => kernels::dense_backward_data(&l.weights, dy, dx, e, &l.flops),
            },
        }
        Ok(())
    }

    /// Overwrites `grads` with the weight gradient (at live positions only) and bias gradient
    /// for output gradient `dy` and the layer's input `x`.
    pub fn param_grads(
        &self,
        dy: &Activations,
        x: &Activations,
        grads: &mut LayerGrads,
    ) -> Result<()> {
        self.check_param_grads(dy, x, grads)?;
        let counter = self.counter();
        let (gw, gb) = (&mut grads.weights, &mut grads.bias);
        match self {
            Layer::Sparse(l) => {
                let seg = l.segments();
                with_csr!(&l.weights, w => {
                    kernels::sparse_param_grads(w, seg, dy, x, gw, gb, counter)
                })
            }
            Layer::Dense(l) => match l.full() {
                Some(p) => kernels::full_param_grads(p, dy, x, gw, gb, counter),
                None => {
                    kernels::dense_weight_grad(dy, x, gw, counter);
                    kernels::bias_grad(dy, gb, counter);
                }
            },
        }
        Ok(())
    }
}

impl Layer {
    /// Checks `dy` against the layer's outputs.
    fn check_output_grad(&self, dy: &Activations) -> Result<()> {
        check_len(
            "layer output-gradient features",
            self.n_out(),
            dy.features(),
        )
    }

    /// What backward-data needs before its product: `dy` and the epilogue checked, `dx` shaped.
    fn prepare_backward_data(
        &self,
        dy: &Activations,
        dx: &mut Activations,
        epilogue: Epilogue<'_>,
    ) -> Result<()> {
        self.check_output_grad(dy)?;
        dx.ensure_shape(self.n_in(), dy.batch());
        check_epilogue(epilogue, dx)
    }

    fn check_param_grads(
        &self,
        dy: &Activations,
        x: &Activations,
        grads: &LayerGrads,
    ) -> Result<()> {
        self.check_output_grad(dy)?;
        check_len("layer input features", self.n_in(), x.features())?;
        check_len("batch", dy.batch(), x.batch())?;
        check_len(
            "weight gradient",
            self.live_connections(),
            grads.weights.len(),
        )?;
        check_len("bias gradient", self.n_out(), grads.bias.len())
    }

    /// [`Self::param_grads`] then [`Self::backward_data_then`] for the same `dy`, in one call
    /// with the same results, bit for bit: a sparse layer computes both in one pass over its
    /// connections ([`kernels::sparse_backward`]), loading each of `dy`'s vectors once for the
    /// two products; `dx` is reshaped to `n_in × batch` if needed and overwritten.
    pub fn backward_then(
        &self,
        dy: &Activations,
        x: &Activations,
        grads: &mut LayerGrads,
        dx: &mut Activations,
        epilogue: Epilogue<'_>,
    ) -> Result<()> {
        let Layer::Sparse(l) = self else {
            self.param_grads(dy, x, grads)?;
            return self.backward_data_then(dy, dx, epilogue);
        };
        self.check_param_grads(dy, x, grads)?;
        self.prepare_backward_data(dy, dx, epilogue)?;
        let (seg, t) = (l.segments(), l.transposed());
        let (gw, gb) = (&mut grads.weights, &mut grads.bias);
        with_csr!(&l.weights, w => {
            kernels::sparse_backward(w, seg, t, dy, x, gw, gb, dx, epilogue, &l.flops)
        });
        Ok(())
    }
}

/// A ReLU mask must have the shape of the result it masks.
fn check_epilogue(epilogue: Epilogue<'_>, y: &Activations) -> Result<()> {
    if let Epilogue::ReluGrad(h) = epilogue {
        check_len("ReLU output features", y.features(), h.features())?;
        check_len("ReLU output batch", y.batch(), h.batch())?;
    }
    Ok(())
}
