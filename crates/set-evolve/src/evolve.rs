//! One SET evolution step: prune the smallest-magnitude connections of a sparse layer and regrow
//! as many, working on the CSR arrays.
//!
//! For a layer with `nnz` live connections and fraction `η`, `k = ⌊η·nnz⌉` (rounded to nearest,
//! halves away from zero) connections with the smallest `|w|` are removed (ties: lower row-major
//! position first), chosen by selection in `O(nnz)`; `k` new positions come from a
//! [`GrowthPolicy`]; survivors and new connections are merged in one pass over the sorted
//! positions into the new CSR arrays (`O(nnz + k log k)`). New weights are 0. A [`Remap`]
//! records where each new slot's state comes from, so Adam moments and gradient buffers are
//! realigned: survivors keep theirs, new connections start at zero. The count never changes.

use rand::Rng;
use sparse_core::{Adam, ColIndex, Csr, Grads, Layer, Mlp, Remap, SparseLinear, SparseWeights};

use crate::growth::{GrowthContext, GrowthPolicy};
use crate::{Error, Result, magnitude_order};

/// What one evolution step did to one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerChange {
    /// Old-to-new slot mapping for per-connection state.
    pub remap: Remap,
    /// Row-major positions removed, increasing.
    pub removed: Vec<usize>,
    /// `|w|` of each removed connection, in the order of `removed`.
    pub removed_magnitudes: Vec<f32>,
    /// Row-major positions added, increasing.
    pub added: Vec<usize>,
}

/// Connections one evolution step removes and regrows: `⌊η·nnz⌉`, rounded to nearest with
/// halves away from zero.
pub fn removal_count(nnz: usize, fraction: f64) -> Result<usize> {
    check_fraction(fraction)?;
    Ok(((fraction * nnz as f64).round() as usize).min(nnz))
}

pub(crate) fn check_fraction(fraction: f64) -> Result<()> {
    if fraction > 0.0 && fraction < 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidFraction(fraction))
    }
}

/// Checks that `added` holds `count` strictly increasing free positions of `ctx`.
fn check_growth(ctx: &GrowthContext<'_>, added: &[usize], count: usize) -> Result<()> {
    if added.len() != count {
        return Err(Error::InvalidGrowth("wrong number of positions"));
    }
    if added.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::InvalidGrowth("positions not strictly increasing"));
    }
    if added.last().is_some_and(|&p| p >= ctx.total()) {
        return Err(Error::InvalidGrowth("position outside the layer"));
    }
    if added.iter().any(|&p| ctx.is_live(p)) {
        return Err(Error::InvalidGrowth("position already live"));
    }
    Ok(())
}

fn evolve_csr<I: ColIndex, G: GrowthPolicy, R: Rng + ?Sized>(
    w: &Csr<I>,
    fraction: f64,
    growth: &mut G,
    rng: &mut R,
) -> Result<(Csr<I>, LayerChange)> {
    let nnz = w.nnz();
    let k = removal_count(nnz, fraction)?;
    let positions = w.positions();
    let values = w.values();

    // The k smallest (|w|, position), by selection.
    let mut removed_slots: Vec<usize> = (0..nnz).collect();
    if k > 0 && k < nnz {
        removed_slots.select_nth_unstable_by(k - 1, |&a, &b| {
            magnitude_order((values[a], positions[a]), (values[b], positions[b]))
        });
    }
    removed_slots.truncate(k);
    removed_slots.sort_unstable();
    let mut is_removed = vec![false; nnz];
    removed_slots.iter().for_each(|&s| is_removed[s] = true);

    let survivors: Vec<usize> = (0..nnz).filter(|&s| !is_removed[s]).collect();
    let live: Vec<usize> = survivors.iter().map(|&s| positions[s]).collect();
    let ctx = GrowthContext {
        n_rows: w.n_rows(),
        n_cols: w.n_cols(),
        live: &live,
    };
    let added = growth.grow(&ctx, k, rng);
    check_growth(&ctx, &added, k)?;

    // Merge survivors and new positions, both increasing.
    let mut new_positions = Vec::with_capacity(nnz);
    let mut new_values = Vec::with_capacity(nnz);
    let mut sources = Vec::with_capacity(nnz);
    let (mut s, mut a) = (0, 0);
    while s < survivors.len() || a < added.len() {
        let take_survivor = a == added.len() || (s < survivors.len() && live[s] < added[a]);
        if take_survivor {
            new_positions.push(live[s]);
            new_values.push(values[survivors[s]]);
            sources.push(Some(survivors[s]));
            s += 1;
        } else {
            new_positions.push(added[a]);
            new_values.push(0.0);
            sources.push(None);
            a += 1;
        }
    }
    let new = Csr::from_positions(w.n_rows(), w.n_cols(), &new_positions, new_values)?;
    let change = LayerChange {
        remap: Remap::new(&sources, nnz)?,
        removed: removed_slots.iter().map(|&s| positions[s]).collect(),
        removed_magnitudes: removed_slots.iter().map(|&s| values[s].abs()).collect(),
        added,
    };
    Ok((new, change))
}

/// One evolution step of one sparse layer (see the module documentation). The caller realigns
/// any per-connection state with the returned [`LayerChange::remap`]; [`evolve_network`] does
/// that for Adam and gradients.
pub fn evolve_layer<G: GrowthPolicy, R: Rng + ?Sized>(
    layer: &mut SparseLinear,
    fraction: f64,
    growth: &mut G,
    rng: &mut R,
) -> Result<LayerChange> {
    let (weights, change) = match layer.weights() {
        SparseWeights::U16(w) => {
            let (w, c) = evolve_csr(w, fraction, growth, rng)?;
            (SparseWeights::U16(w), c)
        }
        SparseWeights::U32(w) => {
            let (w, c) = evolve_csr(w, fraction, growth, rng)?;
            (SparseWeights::U32(w), c)
        }
    };
    layer.replace_weights(weights)?;
    Ok(change)
}

/// Evolves every sparse layer of `net` and realigns its optimiser state and gradient buffers.
/// Returns `(layer index, change)` for each sparse layer. Nothing changes if the state does not
/// fit the network.
pub fn evolve_network<G: GrowthPolicy, R: Rng + ?Sized>(
    net: &mut Mlp,
    mut adam: Option<&mut Adam>,
    mut grads: Option<&mut Grads>,
    fraction: f64,
    growth: &mut G,
    rng: &mut R,
) -> Result<Vec<(usize, LayerChange)>> {
    check_fraction(fraction)?;
    // Validate all state up front so a mismatch cannot leave a half-evolved network.
    for (i, layer) in net.layers().iter().enumerate() {
        let n = layer.live_connections();
        if let Some(a) = adam.as_deref()
            && a.layers().get(i).map(|m| m.weights.m.len()) != Some(n)
        {
            return Err(Error::ArchitectureMismatch(
                "Adam state does not fit the network",
            ));
        }
        if let Some(g) = grads.as_deref()
            && g.layers().get(i).map(|l| l.weights.len()) != Some(n)
        {
            return Err(Error::ArchitectureMismatch(
                "gradients do not fit the network",
            ));
        }
    }
    let mut changes = Vec::new();
    for (i, layer) in net.layers_mut().iter_mut().enumerate() {
        let Layer::Sparse(sparse) = layer else {
            continue;
        };
        let change = evolve_layer(sparse, fraction, growth, rng)?;
        if let Some(a) = adam.as_deref_mut() {
            a.remap_layer(i, &change.remap)?;
        }
        if let Some(g) = grads.as_deref_mut() {
            change.remap.apply(&mut g.layers_mut()[i].weights)?;
        }
        changes.push((i, change));
    }
    Ok(changes)
}
