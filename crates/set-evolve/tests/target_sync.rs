//! `TargetSync`, reused across many rounds of online changes, against the straightforward
//! union-merge-select implementation it replaced: the same kept connections, value bits and
//! errors after every round.

use rand::{RngExt, SeedableRng, rngs::StdRng};
use set_evolve::{Error, RandomGrowth, Result, TargetSync, evolve_layer, soft_update_and_prune};
use sparse_core::{ColIndex, Csr, DenseLinear, Layer, Mlp, Output, SparseLinear, SparseWeights};

// ---- Reference: the implementation before `TargetSync`, verbatim but for its name and the
// budget, which follows the online layer down when it holds fewer connections (after a final
// prune-only evolution). ----

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

/// Soft update of one sparse layer over the union, pruned to `target`'s connection count or
/// `online`'s, whichever is smaller.
fn soft_update_csr<I: ColIndex>(target: &Csr<I>, online: &Csr<I>, c: (f32, f32)) -> Result<Csr<I>> {
    let (t, u) = c;
    let budget = target.nnz().min(online.nnz());
    let capacity = target.nnz() + online.nnz();
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
fn reference_soft_update(target: &mut Mlp, online: &Mlp, tau: f64) -> Result<()> {
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

// ---- Scenarios. ----

/// Values drawn from a small set, so magnitudes (and mixed magnitudes) tie often.
fn tied_value(rng: &mut StdRng) -> f32 {
    [-0.5f32, -0.25, 0.0, 0.25, 0.5, 0.75, -1.0][rng.random_range(0..7)]
}

/// Sets every weight of `layer` to a tied value.
fn tie_all(layer: &mut Layer, rng: &mut StdRng) {
    let (w, _) = layer.params_mut();
    w.iter_mut().for_each(|v| *v = tied_value(rng));
}

/// Layers: sparse with `u32` indices (evolving), sparse `u16` (evolving), sparse `u16` that
/// never evolves (identical topologies), dense.
fn network(rng: &mut StdRng) -> Mlp {
    let mut layers = vec![
        Layer::from(SparseLinear::random(70_000, 6, 300, rng).unwrap()),
        Layer::from(SparseLinear::random(6, 30, 90, rng).unwrap()),
        Layer::from(SparseLinear::random(30, 20, 150, rng).unwrap()),
        Layer::from(DenseLinear::pytorch_default(20, 3, rng).unwrap()),
    ];
    assert!(matches!(&layers[0], Layer::Sparse(s) if matches!(s.weights(), SparseWeights::U32(_))));
    assert!(matches!(&layers[1], Layer::Sparse(s) if matches!(s.weights(), SparseWeights::U16(_))));
    layers.iter_mut().for_each(|l| tie_all(l, rng));
    Mlp::new(layers, Output::Linear).unwrap()
}

/// One round of online changes: sometimes a SET evolution of the evolving layers (regrown
/// connections at 0 or at tied values), then value changes (tied values, small steps, or none).
fn change_online(online: &mut Mlp, rng: &mut StdRng) {
    if rng.random_bool(0.25) {
        for l in 0..2 {
            let Layer::Sparse(s) = &mut online.layers_mut()[l] else {
                unreachable!()
            };
            let fraction = [0.05, 0.2, 0.5][rng.random_range(0..3)];
            let change = evolve_layer(s, fraction, &mut RandomGrowth, rng, None).unwrap();
            if rng.random_bool(0.3) {
                let added: Vec<usize> = change.added;
                let n_in = s.weights().n_cols();
                let positions: Vec<usize> =
                    s.weights().iter().map(|(r, c, _)| r * n_in + c).collect();
                let (w, _) = online.layers_mut()[l].params_mut();
                for (slot, p) in positions.iter().enumerate() {
                    if added.binary_search(p).is_ok() {
                        w[slot] = tied_value(rng);
                    }
                }
            }
        }
    }
    let mode = rng.random_range(0..3);
    for layer in online.layers_mut() {
        let (w, b) = layer.params_mut();
        for v in w.iter_mut().chain(b.iter_mut()) {
            match mode {
                0 if rng.random_bool(0.2) => *v = tied_value(rng),
                1 => *v += rng.random_range(-0.01f32..0.01),
                _ => {}
            }
        }
    }
}

/// Asserts the two networks hold the same topologies and the same value bits.
fn assert_identical(got: &Mlp, want: &Mlp, round: usize) {
    for (l, (g, w)) in got.layers().iter().zip(want.layers()).enumerate() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(g.bias()),
            bits(w.bias()),
            "round {round}, layer {l}: bias"
        );
        assert_eq!(
            bits(g.weight_values()),
            bits(w.weight_values()),
            "round {round}, layer {l}: weights"
        );
        if let (Layer::Sparse(g), Layer::Sparse(w)) = (g, w) {
            // Structure only (the values were compared as bits: they may hold a NaN).
            assert_eq!(
                g.weights().row_ptr(),
                w.weights().row_ptr(),
                "round {round}, layer {l}"
            );
            assert_eq!(
                g.weights().positions(),
                w.weights().positions(),
                "round {round}, layer {l}"
            );
            let rp = g.weights().row_ptr();
            assert_eq!(*rp.last().unwrap() as usize, g.weights().nnz());
            let pos = g.weights().positions();
            assert!(pos.windows(2).all(|p| p[0] < p[1]), "positions increase");
        }
    }
}

#[test]
fn reused_sync_matches_reference_over_many_rounds() {
    let taus = [0.005, 0.5, 1.0, 0.0, 0.1, 0.25];
    let mut checked_differing = 0;
    for seed in 0..6 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut online = network(&mut rng);
        let mut got = online.clone();
        let mut want = online.clone();
        let mut sync = TargetSync::default();
        for round in 0..300 {
            change_online(&mut online, &mut rng);
            match rng.random_range(0..40) {
                // The online network replaced by an unrelated one of the same shape.
                0 => online = network(&mut rng),
                // A layer rebuilt with the target's topology: equal topologies, other ids.
                1 => {
                    let Layer::Sparse(t) = &got.layers()[1] else {
                        unreachable!()
                    };
                    let (w, b) = (t.weights().clone(), online.layers()[1].bias().to_vec());
                    let mut layer = Layer::from(SparseLinear::new(w, b).unwrap());
                    tie_all(&mut layer, &mut rng);
                    online.layers_mut()[1] = layer;
                }
                _ => {}
            }
            let tau = taus[rng.random_range(0..taus.len())];
            let differing = got
                .layers()
                .iter()
                .zip(online.layers())
                .any(|(t, o)| match (t, o) {
                    (Layer::Sparse(t), Layer::Sparse(o)) => {
                        t.weights().positions() != o.weights().positions()
                    }
                    _ => false,
                });
            checked_differing += usize::from(differing);
            let a = sync.update(&mut got, &online, tau);
            let b = reference_soft_update(&mut want, &online, tau);
            assert_eq!(a, b, "seed {seed}, round {round}");
            assert_identical(&got, &want, round);
        }
    }
    assert!(
        checked_differing > 1000,
        "{checked_differing} rounds with differing topologies"
    );
}

#[test]
fn steady_training_stream_matches_reference() {
    // The DS-TD3 pattern: a layer evolved now and then, small value steps between updates, one
    // sync for the whole stream (so the bound prediction and the in-place splices get used).
    let mut rng = StdRng::seed_from_u64(11);
    let layer = SparseLinear::random(64, 64, 2048, &mut rng).unwrap();
    let mut online = Mlp::new(vec![Layer::from(layer)], Output::Linear).unwrap();
    let mut got = online.clone();
    let mut want = online.clone();
    let mut sync = TargetSync::default();
    for call in 0..1500 {
        if call % 150 == 0 {
            let Layer::Sparse(s) = &mut online.layers_mut()[0] else {
                unreachable!()
            };
            evolve_layer(s, 0.05, &mut RandomGrowth, &mut rng, None).unwrap();
        }
        let (w, _) = online.layers_mut()[0].params_mut();
        w.iter_mut()
            .for_each(|v| *v += rng.random_range(-1e-3f32..1e-3));
        sync.update(&mut got, &online, 0.005).unwrap();
        reference_soft_update(&mut want, &online, 0.005).unwrap();
        assert_identical(&got, &want, call);
    }
}

#[test]
fn fresh_wrapper_matches_reference_and_errors_agree() {
    let mut rng = StdRng::seed_from_u64(5);
    for case in 0..200 {
        let target = network(&mut rng);
        let mut online = target.clone();
        change_online(&mut online, &mut rng);
        change_online(&mut online, &mut rng);
        if case % 10 == 0 {
            // A non-finite online value: an error wherever the topologies differ.
            let (w, _) = online.layers_mut()[1].params_mut();
            w[case % w.len()] = if case % 20 == 0 {
                f32::NAN
            } else {
                f32::INFINITY
            };
        }
        let (mut got, mut want) = (target.clone(), target.clone());
        let a = soft_update_and_prune(&mut got, &online, 0.3);
        let b = reference_soft_update(&mut want, &online, 0.3);
        // Compared as text: the error may carry a NaN.
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "case {case}");
        if a.is_ok() {
            assert_identical(&got, &want, case);
        }
    }
}

#[test]
fn unequal_connection_counts_match_reference() {
    // Targets and online layers of any connection counts, online ⊂ target and target ⊂ online
    // included; each pair is updated several times through one sync.
    let mut rng = StdRng::seed_from_u64(9);
    let mut sync = TargetSync::default();
    for case in 0..400 {
        let (n_in, n_out) = (rng.random_range(1..10usize), rng.random_range(1..10usize));
        let total = n_in * n_out;
        // A random subset of `from` (any size), increasing.
        let pick = |rng: &mut StdRng, from: &[usize]| {
            let count = rng.random_range(0..=from.len());
            let mut p: Vec<usize> = rand::seq::index::sample(rng, from.len(), count)
                .into_iter()
                .map(|i| from[i])
                .collect();
            p.sort_unstable();
            p
        };
        let all: Vec<usize> = (0..total).collect();
        let a = pick(&mut rng, &all);
        let b = match case % 3 {
            0 => pick(&mut rng, &a),
            1 => {
                let rest: Vec<usize> = all.iter().copied().filter(|p| !a.contains(p)).collect();
                let mut b = a.clone();
                b.extend(pick(&mut rng, &rest));
                b.sort_unstable();
                b
            }
            _ => pick(&mut rng, &all),
        };
        let (t_pos, o_pos) = if case % 2 == 0 { (a, b) } else { (b, a) };
        let layer = |rng: &mut StdRng, p: &[usize]| {
            let v = p.iter().map(|_| tied_value(rng)).collect();
            let w = SparseWeights::from_positions(n_out, n_in, p, v).unwrap();
            Layer::from(SparseLinear::new(w, vec![0.5; n_out]).unwrap())
        };
        let target = Mlp::new(vec![layer(&mut rng, &t_pos)], Output::Linear).unwrap();
        let mut online = Mlp::new(vec![layer(&mut rng, &o_pos)], Output::Linear).unwrap();
        let (mut got, mut want) = (target.clone(), target);
        for round in 0..4 {
            let tau = [0.5, 0.005, 1.0, 0.0][(case + round) % 4];
            let r1 = sync.update(&mut got, &online, tau);
            let r2 = reference_soft_update(&mut want, &online, tau);
            assert_eq!(r1, r2, "case {case}");
            assert_identical(&got, &want, case);
            tie_all(&mut online.layers_mut()[0], &mut rng);
        }
    }
}

#[test]
fn massive_ties_match_reference() {
    // Every value equal (or zero): nearly every entry competes at one threshold, and the lower
    // positions go first.
    let mut rng = StdRng::seed_from_u64(21);
    let mut sync = TargetSync::default();
    for case in 0..12 {
        let value = [0.5f32, 0.0, -0.25][case % 3];
        let make = |rng: &mut StdRng| {
            let mut l = Layer::from(SparseLinear::random(100, 80, 4000, rng).unwrap());
            let (w, _) = l.params_mut();
            w.iter_mut().for_each(|v| *v = value);
            Mlp::new(vec![l], Output::Linear).unwrap()
        };
        let target = make(&mut rng);
        let mut online = make(&mut rng);
        let (mut got, mut want) = (target.clone(), target);
        for round in 0..3 {
            let tau = [0.5, 0.0, 1.0, 0.005][(case + round) % 4];
            sync.update(&mut got, &online, tau).unwrap();
            reference_soft_update(&mut want, &online, tau).unwrap();
            assert_identical(&got, &want, case);
            let Layer::Sparse(s) = &mut online.layers_mut()[0] else {
                unreachable!()
            };
            evolve_layer(s, 0.1, &mut RandomGrowth, &mut rng, None).unwrap();
        }
    }
}
