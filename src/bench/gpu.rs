//! `ds-td3 bench --device cuda`: the same comparisons as `bench` on a GPU (sparse-cuda) —
//! the kernels of a 256×256 layer and whole TD3 iterations — with times taken after the device
//! has finished (`synchronize`), same-run ratios against the dense layer or agent, and GFLOPS
//! from the GPU layers' own FLOP counters. `--device emulator` runs the same code on the host
//! emulator of the kernels (for checking this path without a GPU; its times mean nothing).

use rand::{SeedableRng, rngs::StdRng};
use sparse_cuda::{Activation, Device, GpuActivations, GpuLayer};

use super::harness::{self, Sampling, Timing, median_time};
use super::{BenchArgs, Section};
use ds_td3::workloads::{N, SHAPES, Setting, TD3_BATCH, random_acts};

/// Times one kernel of `layer` on `dev`.
fn time_kernel(
    sampling: Sampling,
    dev: &Device,
    layer: &GpuLayer,
    kernel: &str,
    batch: usize,
) -> anyhow::Result<Timing> {
    let mut rng = StdRng::seed_from_u64(1);
    let x = GpuActivations::from_host(dev, &random_acts(&mut rng, N, batch))?;
    let dy = GpuActivations::from_host(dev, &random_acts(&mut rng, N, batch))?;
    let mut y = GpuActivations::zeros(dev, N, batch)?;
    let mut dx = GpuActivations::zeros(dev, N, batch)?;
    let mut grads = layer.zero_grads(dev)?;
    let (mut calls, mut failed) = (0u64, None);
    let before = layer.flops().total();
    let mut run = || {
        let r = match kernel {
            "forward" => layer.forward(dev, &x, &mut y, Activation::Linear),
            "backward-data" => layer.backward_data(dev, &dy, &mut dx),
            "weight-grad" => layer.param_grads(dev, &dy, &x, &mut grads),
            "backward" => layer
                .param_grads(dev, &dy, &x, &mut grads)
                .and_then(|()| layer.backward_data(dev, &dy, &mut dx)),
            _ => layer
                .forward(dev, &x, &mut y, Activation::Linear)
                .and_then(|()| layer.param_grads(dev, &dy, &x, &mut grads))
                .and_then(|()| layer.backward_data(dev, &dy, &mut dx)),
        };
        if let Err(err) = r {
            failed.get_or_insert(err);
        }
        calls += 1;
    };
    let secs = median_time(sampling, 1, &mut run, &|| {
        dev.synchronize().expect("device synchronises")
    });
    if let Some(err) = failed {
        return Err(err.into());
    }
    let flops = (layer.flops().total() - before) as f64 / calls as f64;
    Ok(Timing { secs, flops })
}

/// Runs the sections `args` asks for on `dev`.
pub fn run(args: &BenchArgs, dev: &Device, sampling: Sampling) -> anyhow::Result<()> {
    println!(
        "ds-td3 bench on {}: times are medians of {} samples, each ended by a device \
         synchronize; ratios are same-run",
        dev.name(),
        sampling.samples
    );
    if args.wants(Section::Kernels) {
        println!();
        kernel_table(sampling, dev)?;
    }
    if args.wants(Section::Td3) {
        println!();
        td3_table(sampling, dev, args.device.into())?;
    }
    Ok(())
}

/// The kernel table on `dev`.
fn kernel_table(sampling: Sampling, dev: &Device) -> anyhow::Result<()> {
    let title = format!(" on {} (cuBLAS for dense)", dev.name());
    harness::kernel_table(&title, |host, kernel, batch| {
        let layer = GpuLayer::upload(dev, host, true)?;
        time_kernel(sampling, dev, &layer, kernel, batch)
    })
}

/// Whole TD3 iterations on `dev`: agents warmed up on the CPU (through their first evolution),
/// then moved to the device, `device` (whose configurations regrow at random at 90% and 95%:
/// gradient growth runs on the CPU only).
fn td3_table(sampling: Sampling, dev: &Device, device: td3::Device) -> anyhow::Result<()> {
    let title = format!(
        "TD3 iterations on {}: Agent::train on a synthetic minibatch of {TD3_BATCH} (upload, \
         update, losses back); agents warmed up on the CPU through their first evolution; a \
         later evolution (on the host, every 1000 iterations) lands in a sample now and then",
        dev.name()
    );
    harness::iteration_table(
        sampling,
        &title,
        &SHAPES,
        &Setting::ALL,
        device,
        &|agent| Ok(agent.attach_gpu(dev.clone())?),
        &|| dev.synchronize().expect("device synchronises"),
    )
}
