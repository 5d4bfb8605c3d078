//! Target networks: soft update over the union of topologies, then prune back to the budget.
//!
//! For a sparse layer, `θ' ← τθ + (1−τ)θ'` is computed over the union of the online and target
//! topologies (a position missing from one side counts as 0 there), in one merge per row. The
//! union may hold more connections than the target's budget — its own connection count, equal to
//! the online layer's since targets start as copies and evolution keeps counts fixed — so the
//! smallest `|θ'|` extras are dropped (ties: lower row-major position first), found by selecting
//! a magnitude threshold (`O(nnz)`, no sort). Dense layers and all biases get the plain soft update. Scalars follow
//! PyTorch's `τ·θ + (1−τ)·θ'` on `f32` tensors: `τ` and `1−τ` are formed in `f64`, applied in
//! `f32`.

use sparse_core::{ColIndex, Csr, Layer, Mlp, SparseWeights};

use crate::{Error, Result};

/// The coefficients `(τ, 1−τ)` as applied to `f32` values.
fn coefficients(tau: f64) -> Result<(f32, f32)> {
    if (0.0..=1.0).contains(&tau) {
        Ok((tau as f32, (1.0 - tau) as f32))
    } else {
        Err(Error::InvalidTau(tau))
    }
}

fn mix(target: &mut [f32], online: &[f32], (t, u): (f32, f32)) {
    for (a, &b) in target.iter_mut().zip(online) {
        *a = t * b + u * *a;
    }
}

/// Soft update of one sparse layer over the union, pruned to `target`'s connection count.
fn soft_update_csr<I: ColIndex>(target: &Csr<I>, online: &Csr<I>, c: (f32, f32)) -> Result<Csr<I>> {
    let (t, u) = c;
    let budget = target.nnz();
    let capacity = budget + online.nnz();
    let mut row_ptr = Vec::with_capacity(target.n_rows() + 1);
    // Written by index into arrays sized for the worst case (no per-entry capacity checks),
    // then truncated to the union's size.
    let mut cols: Vec<I> = vec![I::from_col(0); capacity];
    let mut values: Vec<f32> = vec![0.0; capacity];
    let mut n = 0;
    row_ptr.push(0u32);
    for row in 0..target.n_rows() {
        let (tc, tv) = target.row(row);
        let (oc, ov) = online.row(row);
        // The row's union has at most tc.len() + oc.len() entries from n on.
        let out_c = &mut cols[n..n + tc.len() + oc.len()];
        let out_v = &mut values[n..n + tc.len() + oc.len()];
        let (mut i, mut j, mut k) = (0, 0, 0);
        // Each value is the dense formula with the absent side as 0.0, so a dense reference
        // gives the same bits.
        while i < tc.len() && j < oc.len() {
            let (a, b) = (tc[i], oc[j]);
            if a == b {
                out_c[k] = a;
                out_v[k] = t * ov[j] + u * tv[i];
                i += 1;
                j += 1;
            } else if a < b {
                out_c[k] = a;
                out_v[k] = t * 0.0 + u * tv[i];
                i += 1;
            } else {
                out_c[k] = b;
                out_v[k] = t * ov[j] + u * 0.0;
                j += 1;
            }
            k += 1;
        }
        for (&a, &v) in tc[i..].iter().zip(&tv[i..]) {
            out_c[k] = a;
            out_v[k] = t * 0.0 + u * v;
            k += 1;
        }
        for (&b, &v) in oc[j..].iter().zip(&ov[j..]) {
            out_c[k] = b;
            out_v[k] = t * v + u * 0.0;
            k += 1;
        }
        n += k;
        row_ptr.push(n as u32);
    }
    cols.truncate(n);
    values.truncate(n);
    let extra = values.len() - budget;
    if extra > 0 {
        // For finite floats, the bits of |v| order like |v|: select the extra-th smallest key.
        let key = |v: f32| v.abs().to_bits();
        let mut keys: Vec<u32> = values.iter().map(|&v| key(v)).collect();
        let (smaller, &mut threshold, _) = keys.select_nth_unstable(extra - 1);
        // Every key below the threshold lies among the `extra - 1` placed before it.
        let below = smaller.iter().filter(|&&k| k < threshold).count();
        // Entries at the threshold are dropped in position order (lower first) until `extra`.
        let mut ties_to_drop = extra - below;
        let mut kept = 0;
        let mut start = 0;
        for row in 0..target.n_rows() {
            let end = row_ptr[row + 1] as usize;
            for e in start..end {
                let k = key(values[e]);
                let drop = k < threshold || (k == threshold && ties_to_drop > 0);
                if k == threshold && drop {
                    ties_to_drop -= 1;
                }
                if !drop {
                    cols[kept] = cols[e];
                    values[kept] = values[e];
                    kept += 1;
                }
            }
            start = end;
            row_ptr[row + 1] = kept as u32;
        }
        cols.truncate(kept);
        values.truncate(kept);
    }
    Ok(Csr::new(
        target.n_rows(),
        target.n_cols(),
        row_ptr,
        cols,
        values,
    )?)
}

/// Whether two sparse layers have the same live positions.
fn same_topology(a: &SparseWeights, b: &SparseWeights) -> bool {
    match (a, b) {
        (SparseWeights::U16(a), SparseWeights::U16(b)) => {
            a.row_ptr() == b.row_ptr() && a.col_idx() == b.col_idx()
        }
        (SparseWeights::U32(a), SparseWeights::U32(b)) => {
            a.row_ptr() == b.row_ptr() && a.col_idx() == b.col_idx()
        }
        _ => false,
    }
}

/// Soft-updates `target` towards `online` with coefficient `tau`, layer by layer; sparse layers
/// keep exactly their connection budget (see the module documentation).
pub fn soft_update_and_prune(target: &mut Mlp, online: &Mlp, tau: f64) -> Result<()> {
    let c = coefficients(tau)?;
    if target.layers().len() != online.layers().len() {
        return Err(Error::ArchitectureMismatch("different numbers of layers"));
    }
    for (tl, ol) in target.layers().iter().zip(online.layers()) {
        let same_kind = tl.is_sparse() == ol.is_sparse();
        if !same_kind || tl.n_in() != ol.n_in() || tl.n_out() != ol.n_out() {
            return Err(Error::ArchitectureMismatch("layer kinds or shapes differ"));
        }
    }
    for (tl, ol) in target.layers_mut().iter_mut().zip(online.layers()) {
        if let (Layer::Sparse(ts), Layer::Sparse(os)) = (&mut *tl, ol)
            && !same_topology(ts.weights(), os.weights())
        {
            let new = match (ts.weights(), os.weights()) {
                (SparseWeights::U16(a), SparseWeights::U16(b)) => {
                    SparseWeights::U16(soft_update_csr(a, b, c)?)
                }
                (SparseWeights::U32(a), SparseWeights::U32(b)) => {
                    SparseWeights::U32(soft_update_csr(a, b, c)?)
                }
                _ => return Err(Error::ArchitectureMismatch("column index types differ")),
            };
            ts.replace_weights(new)?;
            let (_, bias) = tl.params_mut();
            mix(bias, ol.bias(), c);
        } else {
            // Dense layers, and sparse layers whose topologies coincide (always so under static
            // sparsity): the union is the topology itself, so mix in place.
            let (w, b) = tl.params_mut();
            mix(w, ol.weight_values(), c);
            mix(b, ol.bias(), c);
        }
    }
    Ok(())
}
