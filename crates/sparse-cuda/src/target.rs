//! Target networks on the device: `θ' ← τθ + (1−τ)θ'` over the union of the online and target
//! topologies, pruned back to the target's connection budget (the online layer's count) — set-evolve's
//! `soft_update_and_prune`, with the same values and the same choice of dropped connections
//! (smallest `|θ'|`, ties: lower row-major position first).
//!
//! Layers whose topologies are known to coincide (both uploaded with the same topology and not
//! pruned since: always so for dense layers and static sparsity) mix in place. Otherwise the
//! union is mixed in a dense `n_out × n_in` scratch and the dropped connections are found by a
//! radix selection on the bits of `|θ'|`; see `kernels.cu` for the kernel sequence.

use crate::device::{Buffer, Device};
use crate::error::{Error, Result};
use crate::kernels as k;
use crate::layer::{GpuSparse, Kind};
use crate::mlp::GpuMlp;

/// Scratch of one target layer's soft update (allocated on first use).
#[derive(Debug)]
pub(crate) struct PruneScratch {
    dense: Buffer<f32>,
    flags: Buffer<u32>,
    state: Buffer<u32>,
    hist: Buffer<u32>,
    row_keep: Buffer<u32>,
    row_ties: Buffer<u32>,
    /// Per chunk of [`CHUNK`] cells of a row: survivors and ties, then (after `prune_chunks`)
    /// first slot and ties dropped.
    chunk_keep: Buffer<u32>,
    chunk_ties: Buffer<u32>,
}

/// Cells of a row one item of the counting and writing kernels covers (see `kernels.cu`).
const CHUNK: usize = 32;

impl PruneScratch {
    fn new(dev: &Device, n_out: usize, n_in: usize) -> Result<Self> {
        Ok(Self {
            dense: dev.zeros(n_out * n_in)?,
            flags: dev.zeros(n_out * n_in)?,
            state: dev.zeros(5)?,
            hist: dev.zeros(256)?,
            row_keep: dev.zeros(n_out)?,
            row_ties: dev.zeros(n_out)?,
            chunk_keep: dev.zeros(n_out * n_in.div_ceil(CHUNK))?,
            chunk_ties: dev.zeros(n_out * n_in.div_ceil(CHUNK))?,
        })
    }

    pub(crate) fn bytes(&self) -> usize {
        self.dense.bytes()
            + self.flags.bytes()
            + self.state.bytes()
            + self.hist.bytes()
            + self.row_keep.bytes()
            + self.row_ties.bytes()
            + self.chunk_keep.bytes()
            + self.chunk_ties.bytes()
    }
}

/// The coefficients `(τ, 1−τ)` as applied to `f32` values (formed in `f64`, as on the CPU).
fn coefficients(tau: f64) -> Result<(f32, f32)> {
    if (0.0..=1.0).contains(&tau) {
        Ok((tau as f32, (1.0 - tau) as f32))
    } else {
        Err(Error::Mismatch("tau must lie in [0, 1]"))
    }
}

/// Soft-updates `target` towards `online` with coefficient `tau`, layer by layer; sparse layers
/// keep exactly their connection budget.
pub fn soft_update_and_prune(target: &mut GpuMlp, online: &GpuMlp, tau: f64) -> Result<()> {
    let (t, u) = coefficients(tau)?;
    if target.layers().len() != online.layers().len() {
        return Err(Error::Mismatch("different numbers of layers"));
    }
    for (tl, ol) in target.layers().iter().zip(online.layers()) {
        if tl.is_sparse() != ol.is_sparse() || tl.n_in() != ol.n_in() || tl.n_out() != ol.n_out() {
            return Err(Error::Mismatch("layer kinds or shapes differ"));
        }
    }
    let dev = target.device().clone();
    for (tl, ol) in target.layers_mut().iter_mut().zip(online.layers()) {
        match (&mut tl.kind, &ol.kind) {
            (Kind::Sparse(ts), Kind::Sparse(os)) => {
                if ts.topology.is_some() && ts.topology == os.topology {
                    k::soft_update(&dev, ts.nnz(), &mut ts.vals, &os.vals, t, u)?;
                } else {
                    union_and_prune(&dev, ts, os, (t, u))?;
                }
                k::soft_update(&dev, ts.n_out(), &mut ts.bias, &os.bias, t, u)?;
            }
            (Kind::Dense(td), Kind::Dense(od)) => {
                let n = td.weights.len();
                k::soft_update(&dev, n, &mut td.weights, &od.weights, t, u)?;
                let n = td.bias.len();
                k::soft_update(&dev, n, &mut td.bias, &od.bias, t, u)?;
            }
            _ => return Err(Error::Mismatch("layer kinds differ")),
        }
    }
    Ok(())
}

/// The general case: mix over the union, then keep the budget's largest magnitudes.
fn union_and_prune(
    dev: &Device,
    ts: &mut GpuSparse,
    os: &GpuSparse,
    (t, u): (f32, f32),
) -> Result<()> {
    // The online count: the target's own, except after a final prune-only evolution.
    let target_nnz = ts.nnz();
    let budget = target_nnz.min(os.nnz());
    let (n_out, n_in) = (ts.n_out(), ts.n_in());
    let n_in32 = n_in as u32;
    let s = match &mut ts.scratch {
        Some(s) => s,
        slot => slot.insert(PruneScratch::new(dev, n_out, n_in)?),
    };
    let cells = n_out * n_in;
    let (n_out32, nch) = (n_out as u32, n_in.div_ceil(CHUNK));
    let (chunk, nch32) = (CHUNK as u32, nch as u32);
    s.dense.fill_zero()?;
    s.flags.fill_zero()?;
    k::union_target(
        dev,
        target_nnz,
        n_out32,
        n_in32,
        &ts.row_ptr,
        &ts.cols,
        &ts.vals,
        &mut s.dense,
        &mut s.flags,
    )?;
    k::union_online(
        dev,
        os.nnz(),
        n_out32,
        n_in32,
        &os.row_ptr,
        &os.cols,
        &os.vals,
        &mut s.dense,
        &mut s.flags,
        t,
        u,
    )?;
    k::union_finish(dev, cells, &mut s.dense, &s.flags, t, u)?;
    k::select_init(dev, 1, budget as u32, &mut s.state, &mut s.hist)?;
    for shift in [24u32, 16, 8, 0] {
        k::select_histogram(dev, cells, &s.dense, &s.flags, &s.state, &mut s.hist, shift)?;
        k::select_digit(dev, 1, &mut s.state, &mut s.hist, shift)?;
    }
    let chunks = n_out * nch;
    let (dense, flags, state) = (&s.dense, &s.flags, &s.state);
    let (chunk_keep, chunk_ties) = (&mut s.chunk_keep, &mut s.chunk_ties);
    let (row_keep, row_ties) = (&mut s.row_keep, &mut s.row_ties);
    k::prune_count(
        dev, chunks, n_in32, chunk, nch32, dense, flags, state, chunk_keep, chunk_ties,
    )?;
    k::prune_rows(
        dev, n_out, nch32, chunk_keep, chunk_ties, row_keep, row_ties,
    )?;
    k::prune_scan(dev, 1, n_out32, state, row_keep, row_ties, &mut ts.row_ptr)?;
    k::prune_chunks(
        dev,
        n_out,
        nch32,
        &ts.row_ptr,
        row_ties,
        chunk_keep,
        chunk_ties,
    )?;
    k::prune_write(
        dev,
        chunks,
        n_in32,
        chunk,
        nch32,
        dense,
        flags,
        state,
        chunk_ties,
        chunk_keep,
        &mut ts.cols,
        &mut ts.vals,
    )?;
    ts.topology = None;
    ts.set_nnz(budget);
    Ok(())
}
