//! TD3's element-wise pieces on the device, for the td3 crate's GPU path: the smoothed target
//! action, the clipped double-Q target, and the squared-error loss with its gradient. Each is
//! the CPU agent's formula, operation for operation.

use crate::activations::GpuActivations;
use crate::device::{Buffer, Device};
use crate::error::{Result, check_len};
use crate::kernels as k;

fn same_shape(what: &'static str, a: &GpuActivations, b: &GpuActivations) -> Result<()> {
    check_len(what, a.features(), b.features())?;
    check_len(what, a.batch(), b.batch())
}

/// `out = clip(pi + clip(noise, −noise_clip, noise_clip), −max_action, max_action)`; `out` is
/// reshaped like `pi`.
pub fn smoothed_action(
    dev: &Device,
    pi: &GpuActivations,
    noise: &GpuActivations,
    out: &mut GpuActivations,
    noise_clip: f32,
    max_action: f32,
) -> Result<()> {
    same_shape("noise shape", pi, noise)?;
    out.ensure_shape(dev, pi.features(), pi.batch())?;
    k::smoothed_action(
        dev,
        pi.len(),
        pi.buffer(),
        noise.buffer(),
        out.buffer_mut(),
        noise_clip,
        max_action,
    )
}

/// `y = reward + not_done · gamma · min(q1, q2)` over a batch (all `1 × batch`).
pub fn td_target(
    dev: &Device,
    (q1, q2): (&GpuActivations, &GpuActivations),
    reward: &GpuActivations,
    not_done: &GpuActivations,
    gamma: f32,
    y: &mut GpuActivations,
) -> Result<()> {
    check_len("Q features", 1, q1.features())?;
    for other in [q2, reward, not_done] {
        same_shape("target inputs", q1, other)?;
    }
    y.ensure_shape(dev, 1, q1.batch())?;
    k::td_target(
        dev,
        q1.batch(),
        q1.buffer(),
        q2.buffer(),
        reward.buffer(),
        not_done.buffer(),
        y.buffer_mut(),
        gamma,
    )
}

/// `mean((q − y)²)`, with `d = 2 (q − y) / n`, the loss gradient with respect to `q`, written
/// into `d` (reshaped to `1 × n`); `squares` is scratch.
pub fn mse_loss_grad(
    dev: &Device,
    q: &GpuActivations,
    y: &GpuActivations,
    d: &mut GpuActivations,
    squares: &mut Buffer<f32>,
) -> Result<f64> {
    check_len("Q features", 1, q.features())?;
    same_shape("target shape", q, y)?;
    let n = q.batch();
    d.ensure_shape(dev, 1, n)?;
    if squares.len() < n {
        *squares = dev.zeros(n)?;
    }
    let n32 = u32::try_from(n).map_err(|_| crate::Error::Mismatch("batch too large"))?;
    k::mse_grad(dev, n, n32, q.buffer(), y.buffer(), d.buffer_mut(), squares)?;
    let sq = squares.read(n)?;
    Ok(sq.iter().map(|&e| e as f64).sum::<f64>() / n as f64)
}

/// Sets every element of `a` to `value`.
pub fn fill(dev: &Device, a: &mut GpuActivations, value: f32) -> Result<()> {
    k::fill(dev, a.len(), a.buffer_mut(), value)
}
