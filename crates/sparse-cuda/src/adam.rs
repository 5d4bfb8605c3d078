//! Adam on the device: sparse-core's update (PyTorch's formula with coupled L2 decay, moments
//! per live connection), its scalars formed on the host by [`StepScalars`] exactly as the CPU
//! optimiser forms them.

use sparse_core::{Adam, AdamConfig, LayerMoments, Mlp, Moments, StepScalars};

use crate::device::{Buffer, Device};
use crate::error::{Error, Result, check_len};
use crate::kernels as k;
use crate::mlp::{GpuGrads, GpuMlp};

/// Moments of one parameter array on the device.
#[derive(Debug)]
struct GpuMoments {
    m: Buffer<f32>,
    v: Buffer<f32>,
}

impl GpuMoments {
    fn upload(dev: &Device, host: &Moments) -> Result<Self> {
        Ok(Self {
            m: dev.upload(&host.m)?,
            v: dev.upload(&host.v)?,
        })
    }

    fn to_host(&self) -> Result<Moments> {
        Ok(Moments {
            m: self.m.to_vec()?,
            v: self.v.to_vec()?,
        })
    }
}

/// The Adam optimiser of one [`GpuMlp`].
#[derive(Debug)]
pub struct GpuAdam {
    config: AdamConfig,
    steps: u64,
    layers: Vec<(GpuMoments, GpuMoments)>,
}

impl GpuAdam {
    /// Uploads a host optimiser's state. An error under
    /// [`BiasCorrection::Connection`](sparse_core::BiasCorrection::Connection): the device
    /// kernels correct every parameter by the network's step count.
    pub fn upload(dev: &Device, adam: &Adam) -> Result<Self> {
        if adam.config().bias_correction != sparse_core::BiasCorrection::Network {
            return Err(Error::Mismatch(
                "per-connection bias correction is implemented on the CPU only",
            ));
        }
        let layers = adam
            .layers()
            .iter()
            .map(|l| {
                Ok((
                    GpuMoments::upload(dev, &l.weights)?,
                    GpuMoments::upload(dev, &l.bias)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config: *adam.config(),
            steps: adam.steps(),
            layers,
        })
    }

    /// A host copy, checked against `net` (the host copy of the network it optimises).
    pub fn to_host(&self, net: &Mlp) -> Result<Adam> {
        let layers = self
            .layers
            .iter()
            .map(|(w, b)| {
                Ok(LayerMoments {
                    weights: w.to_host()?,
                    bias: b.to_host()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Adam::from_state(self.config, self.steps, layers, net)?)
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Device bytes held.
    pub fn bytes(&self) -> usize {
        let m = |g: &GpuMoments| g.m.bytes() + g.v.bytes();
        self.layers.iter().map(|(w, b)| m(w) + m(b)).sum()
    }

    /// Applies one update to `net` with `grads`.
    pub fn step(&mut self, net: &mut GpuMlp, grads: &GpuGrads) -> Result<()> {
        check_len("optimiser layers", self.layers.len(), net.layers().len())?;
        check_len("gradient layers", self.layers.len(), grads.layers().len())?;
        for ((layer, g), (w, _)) in net.layers().iter().zip(grads.layers()).zip(&self.layers) {
            check_len("weight gradient", layer.live_connections(), g.weights.len())?;
            check_len("weight moments", layer.live_connections(), w.m.len())?;
            check_len("bias gradient", layer.n_out(), g.bias.len())?;
        }
        self.steps += 1;
        let s = StepScalars::new(&self.config, self.steps);
        let dev = net.device().clone();
        for ((layer, g), (wm, bm)) in net
            .layers_mut()
            .iter_mut()
            .zip(grads.layers())
            .zip(&mut self.layers)
        {
            let (w, b) = layer.params_mut();
            apply(&dev, &s, w, &g.weights, wm)?;
            apply(&dev, &s, b, &g.bias, bm)?;
        }
        Ok(())
    }
}

fn apply(
    dev: &Device,
    s: &StepScalars,
    p: &mut Buffer<f32>,
    g: &Buffer<f32>,
    st: &mut GpuMoments,
) -> Result<()> {
    k::adam_step(
        dev,
        g.len(),
        p,
        g,
        &mut st.m,
        &mut st.v,
        s.one_minus_beta1,
        s.beta2,
        s.one_minus_beta2,
        s.weight_decay,
        s.neg_step_size,
        s.bias_correction2_sqrt,
        s.eps,
        StepScalars::TINY_GRAD,
        StepScalars::TINY_MOMENT,
    )
}
