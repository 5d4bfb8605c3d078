//! Multi-layer perceptrons over mixed sparse and dense layers.
//!
//! `h_0 = x`, `h_i = relu(L_i h_{i-1})` for hidden layers, and the output is `L_n h_{n-1}`, or
//! `bound · tanh(L_n h_{n-1})` for a bounded policy. [`Mlp::forward`] caches what
//! [`Mlp::backward`] needs in a reusable [`Workspace`]; the backward pass writes parameter
//! gradients into [`Grads`] and, on request, the gradient with respect to the network input (TD3's
//! actor update needs dQ/da from the critic).

use rand::Rng;

use crate::activations::Activations;
use crate::error::{Error, Result, check_len};
use crate::flops::Flops;
use crate::kernels::Epilogue;
use crate::layer::{DenseLinear, Layer, LayerGrads, SparseLinear};
use crate::memory::MemoryReport;

/// The output non-linearity.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Output {
    /// No non-linearity (critics).
    Linear,
    /// `bound · tanh(z)` (actors; `bound` is the action limit).
    Tanh {
        /// Positive, finite scale.
        bound: f32,
    },
}

/// How to build one layer in [`Mlp::init`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerKind {
    /// Fully connected.
    Dense,
    /// Erdős–Rényi sparse with parameter `lambda`.
    Sparse {
        /// The ER parameter λ.
        lambda: f64,
    },
}

/// A stack of linear layers with ReLU between them and an [`Output`] non-linearity.
#[derive(Debug, Clone)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(try_from = "MlpParts")
)]
pub struct Mlp {
    layers: Vec<Layer>,
    output: Output,
}

/// Serialised form of an [`Mlp`], validated on the way in.
#[cfg(feature = "serde")]
#[derive(serde::Deserialize)]
struct MlpParts {
    layers: Vec<Layer>,
    output: Output,
}

#[cfg(feature = "serde")]
impl TryFrom<MlpParts> for Mlp {
    type Error = Error;
    fn try_from(p: MlpParts) -> Result<Self> {
        Mlp::new(p.layers, p.output)
    }
}

/// Buffers reused across passes: the cached input and layer outputs of the last forward pass,
/// and the backward pass's per-layer gradients.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    input: Activations,
    outputs: Vec<Activations>,
    deltas: Vec<Activations>,
}

impl Workspace {
    /// An empty workspace; buffers are sized on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// The network output of the last forward pass.
    ///
    /// # Panics
    /// If no forward pass has run.
    pub fn output(&self) -> &Activations {
        self.outputs.last().expect("no forward pass has run")
    }

    /// The factors of layer `i`'s weight gradient in the last forward and backward passes: its
    /// input `x` and the gradient `dz` at its pre-activation output (`∂L/∂W = dz · xᵀ`), if
    /// both passes ran on the same batch.
    pub fn gradient_factors(&self, i: usize) -> Option<(&Activations, &Activations)> {
        let x = if i == 0 {
            &self.input
        } else {
            self.outputs.get(i - 1)?
        };
        let dz = self.deltas.get(i)?;
        (x.batch() == dz.batch() && dz.batch() > 0).then_some((x, dz))
    }

    /// Bytes held by the buffers.
    pub fn bytes(&self) -> usize {
        let sum = |v: &[Activations]| v.iter().map(Activations::bytes).sum::<usize>();
        self.input.bytes() + sum(&self.outputs) + sum(&self.deltas)
    }
}

/// Gradient buffers for every layer of a network.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Grads {
    layers: Vec<LayerGrads>,
}

impl Grads {
    /// Zero gradients shaped like `mlp`'s parameters.
    pub fn zeros_like(mlp: &Mlp) -> Self {
        Self {
            layers: mlp.layers.iter().map(Layer::zero_grads).collect(),
        }
    }

    /// Per-layer gradients.
    pub fn layers(&self) -> &[LayerGrads] {
        &self.layers
    }

    /// Per-layer gradients, mutable (e.g. to realign after a topology change).
    pub fn layers_mut(&mut self) -> &mut [LayerGrads] {
        &mut self.layers
    }

    /// Bytes held (reported under `gradients`).
    pub fn memory(&self) -> MemoryReport {
        MemoryReport {
            gradients: self.layers.iter().map(LayerGrads::bytes).sum(),
            ..Default::default()
        }
    }
}

impl Mlp {
    /// A network from its layers; consecutive layers must chain (`n_out` of one = `n_in` of the
    /// next).
    pub fn new(layers: Vec<Layer>, output: Output) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::ZeroDimension("number of layers"));
        }
        for pair in layers.windows(2) {
            check_len("chained layer width", pair[0].n_out(), pair[1].n_in())?;
        }
        if let Output::Tanh { bound } = output
            && !(bound.is_finite() && bound > 0.0)
        {
            return Err(Error::InvalidBound(bound));
        }
        Ok(Self { layers, output })
    }

    /// A freshly initialised network with widths `sizes` (`sizes.len() = kinds.len() + 1`):
    /// sparse layers by Erdős–Rényi, all values as PyTorch's `nn.Linear` default, drawn layer by
    /// layer from `rng`.
    pub fn init<R: Rng + ?Sized>(
        sizes: &[usize],
        kinds: &[LayerKind],
        output: Output,
        rng: &mut R,
    ) -> Result<Self> {
        check_len(
            "layer kinds (one per layer)",
            sizes.len().saturating_sub(1),
            kinds.len(),
        )?;
        let layers = kinds
            .iter()
            .zip(sizes.windows(2))
            .map(|(kind, w)| match *kind {
                LayerKind::Dense => DenseLinear::pytorch_default(w[0], w[1], rng).map(Layer::from),
                LayerKind::Sparse { lambda } => {
                    SparseLinear::erdos_renyi(w[0], w[1], lambda, rng).map(Layer::from)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(layers, output)
    }

    /// Input width.
    pub fn n_in(&self) -> usize {
        self.layers[0].n_in()
    }

    /// Output width.
    pub fn n_out(&self) -> usize {
        self.layers[self.layers.len() - 1].n_out()
    }

    /// The output non-linearity.
    pub fn output(&self) -> Output {
        self.output
    }

    /// The layers.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The layers, mutable. A layer replaced by one of another shape makes later passes return
    /// shape errors.
    pub fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    /// Live weight connections of every layer (biases excluded).
    pub fn live_connections(&self) -> usize {
        self.layers.iter().map(Layer::live_connections).sum()
    }

    /// Bytes held by the parameters.
    pub fn memory(&self) -> MemoryReport {
        self.layers.iter().map(Layer::memory).sum()
    }

    /// FLOPs executed by all layers since creation or the last reset.
    pub fn flops(&self) -> Flops {
        self.layers.iter().map(Layer::flops).sum()
    }

    /// Zeroes every layer's FLOP counters.
    pub fn reset_flops(&self) {
        self.layers.iter().for_each(Layer::reset_flops)
    }

    /// Runs the network on `x` (`n_in × batch`), caching activations in `ws` for a backward
    /// pass; returns the output (`n_out × batch`).
    pub fn forward<'w>(&self, x: &Activations, ws: &'w mut Workspace) -> Result<&'w Activations> {
        check_len("network input features", self.n_in(), x.features())?;
        ws.input.ensure_shape(x.features(), x.batch());
        ws.input.as_mut_slice().copy_from_slice(x.as_slice());
        ws.outputs
            .resize_with(self.layers.len(), Activations::default);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let (done, rest) = ws.outputs.split_at_mut(i);
            let input = if i == 0 { &ws.input } else { &done[i - 1] };
            let out = &mut rest[0];
            let epilogue = if i < last {
                Epilogue::Relu
            } else {
                Epilogue::None
            };
            layer.forward_then(input, out, epilogue)?;
            let n = out.features();
            // Hidden layers' ReLU is fused into the product; the output may need a tanh.
            if let (true, Output::Tanh { bound }) = (i == last, self.output) {
                (0..n).for_each(|f| {
                    out.row_mut(f)
                        .iter_mut()
                        .for_each(|v| *v = bound * v.tanh())
                });
            }
        }
        Ok(&ws.outputs[last])
    }

    /// Back-propagates `d_output` (gradient of the loss with respect to the output of the last
    /// [`Self::forward`] run with `ws`). Overwrites `grads` with the parameter gradients when
    /// given, and `d_input` with the gradient with respect to the network input when given.
    pub fn backward(
        &self,
        ws: &mut Workspace,
        d_output: &Activations,
        mut grads: Option<&mut Grads>,
        d_input: Option<&mut Activations>,
    ) -> Result<()> {
        let n = self.layers.len();
        check_len(
            "cached layer outputs (run forward first)",
            n,
            ws.outputs.len(),
        )?;
        check_len(
            "output-gradient features",
            self.n_out(),
            d_output.features(),
        )?;
        check_len("output-gradient batch", ws.input.batch(), d_output.batch())?;
        if let Some(g) = grads.as_deref() {
            check_len("gradient layers", n, g.layers.len())?;
        }
        let batch = d_output.batch();
        ws.deltas.resize_with(n, Activations::default);

        // Gradient at the last pre-activation.
        let top = &mut ws.deltas[n - 1];
        top.ensure_shape(self.n_out(), batch);
        for f in 0..self.n_out() {
            let (dy, y) = (d_output.row(f), ws.outputs[n - 1].row(f));
            let dz = top.row_mut(f);
            match self.output {
                Output::Linear => dz.copy_from_slice(dy),
                Output::Tanh { bound } => {
                    for ((d, &g), &o) in dz.iter_mut().zip(dy).zip(y) {
                        let t = o / bound;
                        *d = g * bound * (1.0 - t * t);
                    }
                }
            }
        }

        let mut d_input = d_input;
        for i in (0..n).rev() {
            let layer = &self.layers[i];
            let (below, at) = ws.deltas.split_at_mut(i);
            let dz = &at[0];
            let input = if i == 0 {
                &ws.input
            } else {
                &ws.outputs[i - 1]
            };
            // Through the ReLU of layer i − 1 (fused into the product).
            let relu = (i > 0).then(|| Epilogue::ReluGrad(&ws.outputs[i - 1]));
            match (grads.as_deref_mut(), relu) {
                // Both products of the layer in one pass.
                (Some(g), Some(relu)) => {
                    layer.backward_then(dz, input, &mut g.layers[i], &mut below[i - 1], relu)?
                }
                (Some(g), None) => layer.param_grads(dz, input, &mut g.layers[i])?,
                (None, Some(relu)) => layer.backward_data_then(dz, &mut below[i - 1], relu)?,
                (None, None) => {}
            }
            if let (0, Some(dx)) = (i, d_input.as_deref_mut()) {
                layer.backward_data(dz, dx)?;
            }
        }
        Ok(())
    }
}
