//! Networks on the device: the same stack as sparse-core's [`Mlp`] (ReLU between layers, a
//! linear or `bound · tanh` output), with cached activations for the backward pass.

use sparse_core::{Flops, Mlp, Output};

use crate::activations::GpuActivations;
use crate::device::Device;
use crate::error::{Result, check_len};
use crate::kernels as k;
use crate::layer::{Activation, GpuLayer, GpuLayerGrads};

/// A network on a [`Device`].
#[derive(Debug)]
pub struct GpuMlp {
    dev: Device,
    layers: Vec<GpuLayer>,
    output: Output,
}

/// Activations cached by [`GpuMlp::forward`] for [`GpuMlp::backward`], reused across calls.
#[derive(Debug, Default)]
pub struct GpuWorkspace {
    input: Option<GpuActivations>,
    outputs: Vec<GpuActivations>,
    deltas: Vec<GpuActivations>,
}

impl GpuWorkspace {
    /// An empty workspace (buffers are allocated on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        let all = self.input.iter().chain(&self.outputs).chain(&self.deltas);
        all.map(GpuActivations::bytes).sum()
    }
}

/// Parameter gradients of a whole network on the device.
#[derive(Debug)]
pub struct GpuGrads {
    layers: Vec<GpuLayerGrads>,
}

impl GpuGrads {
    /// Zero gradients shaped like `net`'s parameters.
    pub fn zeros_like(net: &GpuMlp) -> Result<Self> {
        let layers = net
            .layers
            .iter()
            .map(|l| l.zero_grads(&net.dev))
            .collect::<Result<_>>()?;
        Ok(Self { layers })
    }

    /// Per-layer gradients.
    pub fn layers(&self) -> &[GpuLayerGrads] {
        &self.layers
    }

    /// Per-layer gradients, mutably (to load gradients computed elsewhere).
    pub fn layers_mut(&mut self) -> &mut [GpuLayerGrads] {
        &mut self.layers
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(GpuLayerGrads::bytes).sum()
    }
}

impl GpuMlp {
    /// Uploads `net`; `trainable` also uploads the indices its backward pass needs.
    pub fn upload(dev: &Device, net: &Mlp, trainable: bool) -> Result<Self> {
        let layers = net
            .layers()
            .iter()
            .map(|l| GpuLayer::upload(dev, l, trainable))
            .collect::<Result<_>>()?;
        Ok(Self {
            dev: dev.clone(),
            layers,
            output: net.output(),
        })
    }

    /// A host copy (values, topology and FLOP counts).
    pub fn to_host(&self) -> Result<Mlp> {
        let layers = self
            .layers
            .iter()
            .map(GpuLayer::to_host)
            .collect::<Result<_>>()?;
        Ok(Mlp::new(layers, self.output)?)
    }

    /// The device.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The layers.
    pub fn layers(&self) -> &[GpuLayer] {
        &self.layers
    }

    pub(crate) fn layers_mut(&mut self) -> &mut [GpuLayer] {
        &mut self.layers
    }

    /// Input features.
    pub fn n_in(&self) -> usize {
        self.layers[0].n_in()
    }

    /// Output features.
    pub fn n_out(&self) -> usize {
        self.layers[self.layers.len() - 1].n_out()
    }

    /// Live connections over all layers.
    pub fn live_connections(&self) -> usize {
        self.layers.iter().map(GpuLayer::live_connections).sum()
    }

    /// FLOPs executed by all layers.
    pub fn flops(&self) -> Flops {
        self.layers.iter().map(GpuLayer::flops).sum()
    }

    /// Device bytes held by the layers.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(GpuLayer::bytes).sum()
    }

    fn activation(&self, i: usize) -> Activation {
        if i + 1 < self.layers.len() {
            Activation::Relu
        } else {
            match self.output {
                Output::Linear => Activation::Linear,
                Output::Tanh { bound } => Activation::Tanh(bound),
            }
        }
    }

    /// Runs the network on `x` (`n_in × batch`), caching activations in `ws`; returns the
    /// output (`n_out × batch`).
    pub fn forward<'w>(
        &self,
        x: &GpuActivations,
        ws: &'w mut GpuWorkspace,
    ) -> Result<&'w GpuActivations> {
        check_len("network input features", self.n_in(), x.features())?;
        let dev = &self.dev;
        let input = match &mut ws.input {
            Some(a) => a,
            slot => slot.insert(GpuActivations::zeros(dev, x.features(), x.batch())?),
        };
        input.ensure_shape(dev, x.features(), x.batch())?;
        input.copy_rows_from(0, x)?;
        while ws.outputs.len() < self.layers.len() {
            ws.outputs.push(GpuActivations::zeros(dev, 0, 0)?);
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let (done, rest) = ws.outputs.split_at_mut(i);
            let layer_in = if i == 0 { &*input } else { &done[i - 1] };
            layer.forward(dev, layer_in, &mut rest[0], self.activation(i))?;
        }
        Ok(&ws.outputs[self.layers.len() - 1])
    }

    /// Back-propagates `d_output` through the last forward pass run with `ws`: overwrites
    /// `grads` with the parameter gradients and `d_input` with the input gradient, when given.
    pub fn backward(
        &self,
        ws: &mut GpuWorkspace,
        d_output: &GpuActivations,
        mut grads: Option<&mut GpuGrads>,
        mut d_input: Option<&mut GpuActivations>,
    ) -> Result<()> {
        let n = self.layers.len();
        let dev = &self.dev;
        let Some(input) = ws.input.as_ref().filter(|_| ws.outputs.len() >= n) else {
            return Err(crate::Error::Mismatch("backward before forward"));
        };
        check_len(
            "output-gradient features",
            self.n_out(),
            d_output.features(),
        )?;
        check_len("output-gradient batch", input.batch(), d_output.batch())?;
        if let Some(g) = grads.as_deref() {
            check_len("gradient layers", n, g.layers.len())?;
        }
        let batch = d_output.batch();
        while ws.deltas.len() < n {
            ws.deltas.push(GpuActivations::zeros(dev, 0, 0)?);
        }
        let top = &mut ws.deltas[n - 1];
        top.ensure_shape(dev, self.n_out(), batch)?;
        let (code, bound) = match self.activation(n - 1) {
            Activation::Tanh(b) => (2, b),
            _ => (0, 1.0),
        };
        k::output_grad(
            dev,
            d_output.len(),
            d_output.buffer(),
            ws.outputs[n - 1].buffer(),
            top.buffer_mut(),
            code,
            bound,
        )?;
        for i in (0..n).rev() {
            let layer = &self.layers[i];
            let (below, at) = ws.deltas.split_at_mut(i);
            let dz = &at[0];
            let layer_in = if i == 0 { input } else { &ws.outputs[i - 1] };
            if let Some(g) = grads.as_deref_mut() {
                layer.param_grads(dev, dz, layer_in, &mut g.layers[i])?;
            }
            if i > 0 {
                let d_prev = &mut below[i - 1];
                layer.backward_data(dev, dz, d_prev)?;
                let h = &ws.outputs[i - 1];
                k::relu_grad(dev, h.len(), h.buffer(), d_prev.buffer_mut())?;
            } else if let Some(dx) = d_input.as_deref_mut() {
                layer.backward_data(dev, dz, dx)?;
            }
        }
        Ok(())
    }
}
