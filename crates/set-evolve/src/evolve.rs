//! One SET evolution step: prune the connections nearest zero of a sparse layer, separately
//! among positive and negative weights, and regrow as many, working on the CSR arrays.
//!
//! Pruning follows the paper (§3: "a subset of the smallest positive weights and the largest
//! negative weights") and the authors' code: for a layer with `n₊` positive and `n₋` negative
//! live weights and fraction `η`, the `⌊η·n₊⌉` positive weights with the smallest values and the
//! `⌊η·n₋⌉` negative weights with the largest values go (rounded to nearest, halves away from
//! zero; ties: lower row-major position first), and so does every live weight that is exactly
//! zero (a connection no gradient ever reached: the authors' threshold rule drops those too).
//! The authors' index arithmetic removes `⌈η·n₋⌉` negatives and `⌊η·n₊⌋ + 1` positives, at most
//! one more per sign than this rule. Selection runs in `O(nnz)`. As many new positions come
//! from a [`GrowthPolicy`]; survivors and new connections are merged in one pass over the sorted
//! positions into the new CSR arrays (`O(nnz + k log k)`). New weights are 0. A [`Remap`]
//! records where each new slot's state comes from, so Adam moments and gradient buffers are
//! realigned: survivors keep theirs, new connections start fresh. The count never changes,
//! except in a final prune-only step ([`prune_layer`], [`prune_network`]), which regrows nothing.

use rand::Rng;
use sparse_core::{
    Activations, Adam, ColIndex, Csr, Grads, Layer, Mlp, Remap, SparseLinear, SparseWeights,
    Workspace,
};

use crate::growth::{GradientProbe, GrowthContext, GrowthPolicy};
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

/// `⌊η·n⌉`: rounded to nearest with halves away from zero, at most `n`.
fn share(n: usize, fraction: f64) -> usize {
    ((fraction * n as f64).round() as usize).min(n)
}

/// Connections one evolution step removes from a layer with these weight values (see the module
/// documentation): every exact zero, `⌊η·n₊⌉` of the `n₊` positive weights and `⌊η·n₋⌉` of the
/// `n₋` negative ones.
pub fn removal_count(values: &[f32], fraction: f64) -> Result<usize> {
    check_fraction(fraction)?;
    let (zeros, positive, negative) = signs(values);
    Ok(zeros + share(positive, fraction) + share(negative, fraction))
}

/// Counts of exact zeros, positive and negative values (a NaN counts as positive).
fn signs(values: &[f32]) -> (usize, usize, usize) {
    let negative = values.iter().filter(|&&v| v < 0.0).count();
    let zeros = values.iter().filter(|&&v| v == 0.0).count();
    (zeros, values.len() - negative - zeros, negative)
}

/// The slots pruned from a layer with these values and row-major positions, increasing (see the
/// module documentation).
fn pruned_slots(values: &[f32], positions: &[usize], fraction: f64) -> Vec<usize> {
    let (mut zeros, mut positive, mut negative) = (Vec::new(), Vec::new(), Vec::new());
    for (s, &v) in values.iter().enumerate() {
        if v == 0.0 {
            zeros.push(s);
        } else if v < 0.0 {
            negative.push(s);
        } else {
            positive.push(s);
        }
    }
    let mut pruned = zeros;
    for mut group in [positive, negative] {
        let k = share(group.len(), fraction);
        if k > 0 && k < group.len() {
            group.select_nth_unstable_by(k - 1, |&a, &b| {
                magnitude_order((values[a], positions[a]), (values[b], positions[b]))
            });
        }
        pruned.extend_from_slice(&group[..k]);
    }
    pruned.sort_unstable();
    pruned
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

/// Where regrown connections come from; `None` in a prune-only step.
type Regrow<'a, G, R> = Option<(&'a mut G, &'a mut R)>;

fn evolve_csr<I: ColIndex, G: GrowthPolicy, R: Rng + ?Sized>(
    w: &Csr<I>,
    fraction: f64,
    regrow: Regrow<'_, G, R>,
    gradient: Option<GradientProbe<'_>>,
) -> Result<(Csr<I>, LayerChange)> {
    check_fraction(fraction)?;
    let nnz = w.nnz();
    let positions = w.positions();
    let values = w.values();
    let removed_slots = pruned_slots(values, &positions, fraction);
    let k = removed_slots.len();
    let mut is_removed = vec![false; nnz];
    removed_slots.iter().for_each(|&s| is_removed[s] = true);

    let survivors: Vec<usize> = (0..nnz).filter(|&s| !is_removed[s]).collect();
    let live: Vec<usize> = survivors.iter().map(|&s| positions[s]).collect();
    let ctx = GrowthContext {
        n_rows: w.n_rows(),
        n_cols: w.n_cols(),
        live: &live,
        gradient,
    };
    let added = match regrow {
        Some((growth, rng)) => {
            let added = growth.grow(&ctx, k, rng)?;
            check_growth(&ctx, &added, k)?;
            added
        }
        None => Vec::new(),
    };

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
/// that for Adam and gradients. `gradient`, the factors `(x, dz)` of the layer's weight gradient
/// in its last training step, is what a gradient-guided growth policy scores candidates with.
pub fn evolve_layer<G: GrowthPolicy, R: Rng + ?Sized>(
    layer: &mut SparseLinear,
    fraction: f64,
    growth: &mut G,
    rng: &mut R,
    gradient: Option<(&Activations, &Activations)>,
) -> Result<LayerChange> {
    change_layer(layer, fraction, Some((growth, rng)), gradient)
}

/// The final, prune-only step of one sparse layer: the connections [`evolve_layer`] would remove
/// go, and nothing is regrown, so the layer keeps fewer connections from now on.
pub fn prune_layer(layer: &mut SparseLinear, fraction: f64) -> Result<LayerChange> {
    change_layer::<crate::RandomGrowth, dyn Rng>(layer, fraction, None, None)
}

fn change_layer<G: GrowthPolicy, R: Rng + ?Sized>(
    layer: &mut SparseLinear,
    fraction: f64,
    regrow: Regrow<'_, G, R>,
    gradient: Option<(&Activations, &Activations)>,
) -> Result<LayerChange> {
    let probe = match (&regrow, gradient) {
        (Some(_), Some((x, dz))) => Some(GradientProbe::new(layer, x, dz)?),
        _ => None,
    };
    let (weights, change) = match layer.weights() {
        SparseWeights::U16(w) => {
            let (w, c) = evolve_csr(w, fraction, regrow, probe)?;
            (SparseWeights::U16(w), c)
        }
        SparseWeights::U32(w) => {
            let (w, c) = evolve_csr(w, fraction, regrow, probe)?;
            (SparseWeights::U32(w), c)
        }
    };
    layer.replace_weights(weights)?;
    Ok(change)
}

/// Evolves every sparse layer of `net` and realigns its optimiser state and gradient buffers.
/// Returns `(layer index, change)` for each sparse layer. Nothing changes if the state does not
/// fit the network. `factors`, the workspace of the network's last training step (forward and
/// backward on one batch), gives a gradient-guided growth policy its scores
/// ([`Workspace::gradient_factors`]).
pub fn evolve_network<G: GrowthPolicy, R: Rng + ?Sized>(
    net: &mut Mlp,
    adam: Option<&mut Adam>,
    grads: Option<&mut Grads>,
    fraction: f64,
    growth: &mut G,
    rng: &mut R,
    factors: Option<&Workspace>,
) -> Result<Vec<(usize, LayerChange)>> {
    change_network(net, adam, grads, fraction, Some((growth, rng)), factors)
}

/// [`prune_layer`] on every sparse layer of `net`, with its optimiser state and gradient buffers
/// realigned: the final topology change of a run whose topology then stays frozen.
pub fn prune_network(
    net: &mut Mlp,
    adam: Option<&mut Adam>,
    grads: Option<&mut Grads>,
    fraction: f64,
) -> Result<Vec<(usize, LayerChange)>> {
    change_network::<crate::RandomGrowth, dyn Rng>(net, adam, grads, fraction, None, None)
}

pub(crate) fn change_network<G: GrowthPolicy, R: Rng + ?Sized>(
    net: &mut Mlp,
    mut adam: Option<&mut Adam>,
    mut grads: Option<&mut Grads>,
    fraction: f64,
    mut regrow: Regrow<'_, G, R>,
    factors: Option<&Workspace>,
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
    if let Some((growth, _)) = &regrow
        && growth.needs_gradient()
    {
        let sparse = net
            .layers()
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_sparse());
        for (i, _) in sparse {
            if factors.and_then(|ws| ws.gradient_factors(i)).is_none() {
                return Err(Error::NoGradient);
            }
        }
    }
    let mut changes = Vec::new();
    for (i, layer) in net.layers_mut().iter_mut().enumerate() {
        let Layer::Sparse(sparse) = layer else {
            continue;
        };
        let regrow_here = regrow.as_mut().map(|(g, r)| (&mut **g, &mut **r));
        let gradient = factors.and_then(|ws| ws.gradient_factors(i));
        let change = change_layer(sparse, fraction, regrow_here, gradient)?;
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
