//! SET evolution and target soft-update/prune against independent references, plus invariants
//! under many random steps.

use proptest::prelude::*;
use rand::{Rng, RngExt, SeedableRng, rngs::StdRng};
use set_evolve::{
    Error, EvolutionController, EvolutionMemory, GrowthContext, GrowthPolicy, RandomGrowth,
    TargetSync, TopologyStep, TopologyStep::Rewire, evolve_layer, evolve_network, prune_layer,
    removal_count, soft_update_and_prune,
};
use sparse_core::{
    Adam, AdamConfig, Csr, DenseLinear, Grads, Layer, LayerKind, Mlp, Output, SparseLinear,
    SparseWeights,
};

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A sparse layer with the given positions and values.
fn layer_from(n_in: usize, n_out: usize, positions: &[usize], values: Vec<f32>) -> SparseLinear {
    let w = SparseWeights::from_positions(n_out, n_in, positions, values).unwrap();
    SparseLinear::new(w, vec![0.1; n_out]).unwrap()
}

/// `(position, value)` of every live connection.
fn entries(layer: &SparseLinear) -> Vec<(usize, f32)> {
    let n_in = layer.weights().n_cols();
    layer
        .weights()
        .iter()
        .map(|(r, c, v)| (r * n_in + c, v))
        .collect()
}

/// Checks the CSR invariants independently of the constructor.
fn assert_valid_csr(layer: &SparseLinear) {
    let w = layer.weights();
    let rp = w.row_ptr();
    assert_eq!(rp.len(), w.n_rows() + 1);
    assert_eq!(rp[0], 0);
    assert_eq!(*rp.last().unwrap() as usize, w.nnz());
    let pos = w.positions();
    assert!(
        pos.windows(2).all(|p| p[0] < p[1]),
        "positions strictly increasing"
    );
    assert!(pos.iter().all(|&p| p < w.n_rows() * w.n_cols()));
    for (r, c, _) in w.iter() {
        assert!(rp[r] as usize <= rp[r + 1] as usize && c < w.n_cols());
    }
}

#[test]
fn removes_the_weights_nearest_zero_of_each_sign_and_keeps_survivors() {
    let mut r = rng(1);
    let (n_in, n_out) = (30, 20);
    let layer = SparseLinear::random(n_in, n_out, 200, &mut r).unwrap();
    let mut mlp = Mlp::new(vec![Layer::from(layer)], Output::Linear).unwrap();
    // Force ties across the cut: twelve equal magnitudes of both signs, ten to be removed.
    let (w, _) = mlp.layers_mut()[0].params_mut();
    for (i, v) in w.iter_mut().enumerate().take(12) {
        *v = if i % 2 == 0 { 0.01 } else { -0.01 };
    }
    let Layer::Sparse(layer) = mlp.layers()[0].clone() else {
        unreachable!()
    };
    // Give Adam distinct moments per connection.
    let mut adam = Adam::new(AdamConfig::default(), &mlp).unwrap();
    let mut grads = Grads::zeros_like(&mlp);
    for (i, g) in grads.layers_mut()[0].weights.iter_mut().enumerate() {
        *g = (i as f32 + 1.0) * 1e-3;
    }
    let mut mlp_copy = mlp.clone();
    adam.step(&mut mlp_copy, &grads).unwrap();
    let before = entries(&layer);
    let moments_before = adam.layers()[0].weights.clone();

    let fraction = 0.05;
    let values: Vec<f32> = before.iter().map(|e| e.1).collect();
    let positives = values.iter().filter(|&&v| v > 0.0).count();
    let k = removal_count(&values, fraction).unwrap();
    let share = |n: usize| (n as f64 * fraction).round() as usize;
    assert_eq!(k, share(positives) + share(200 - positives));
    let changes = evolve_network(
        &mut mlp,
        Some(&mut adam),
        Some(&mut grads),
        fraction,
        &mut RandomGrowth,
        &mut r,
        None,
    )
    .unwrap();
    let (_, change) = &changes[0];

    // Reference: per sign, sort the entries by (|w|, position) and take the first ⌊η·n⌉.
    let mut expected = Vec::new();
    for positive in [true, false] {
        let mut sorted: Vec<(usize, f32)> = before
            .iter()
            .copied()
            .filter(|e| (e.1 > 0.0) == positive)
            .collect();
        sorted.sort_by(|a, b| a.1.abs().total_cmp(&b.1.abs()).then(a.0.cmp(&b.0)));
        expected.extend(sorted[..share(sorted.len())].iter().map(|e| e.0));
    }
    expected.sort_unstable();
    assert_eq!(change.removed, expected);
    assert_eq!(change.added.len(), k);

    let Layer::Sparse(after_layer) = &mlp.layers()[0] else {
        unreachable!()
    };
    let after = entries(after_layer);
    assert_eq!(after.len(), 200);
    let moments = &adam.layers()[0].weights;
    for (slot, &(p, v)) in after.iter().enumerate() {
        match before.iter().position(|e| e.0 == p) {
            Some(old) if !change.removed.contains(&p) => {
                assert_eq!(v, before[old].1, "survivor value");
                assert_eq!(moments.m[slot], moments_before.m[old], "survivor m");
                assert_eq!(moments.v[slot], moments_before.v[old], "survivor v");
                assert_eq!(grads.layers()[0].weights[slot], (old as f32 + 1.0) * 1e-3);
            }
            _ => {
                assert!(change.added.contains(&p));
                assert_eq!(v, 0.0);
                assert_eq!((moments.m[slot], moments.v[slot]), (0.0, 0.0));
                assert_eq!(grads.layers()[0].weights[slot], 0.0);
            }
        }
    }
}

/// Fixed weights make the pruned set deterministic; regrowth then must be uniform over the
/// free positions (each of `F` free positions drawn with probability `k / F`).
fn chi_square_of_regrowth(n_in: usize, n_out: usize, nnz: usize, trials: usize) -> (f64, usize) {
    let total = n_in * n_out;
    let positions: Vec<usize> = (0..nnz).map(|i| i * total / nnz).collect();
    let values: Vec<f32> = (0..nnz).map(|i| 1.0 + i as f32).collect();
    let base = layer_from(n_in, n_out, &positions, values);
    let mut counts = vec![0usize; total];
    let mut r = rng(7);
    let mut k = 0;
    let mut free = Vec::new();
    for _ in 0..trials {
        let mut layer = base.clone();
        let change = evolve_layer(&mut layer, 0.25, &mut RandomGrowth, &mut r, None).unwrap();
        k = change.added.len();
        change.added.iter().for_each(|&p| counts[p] += 1);
        if free.is_empty() {
            let survivors: Vec<usize> = positions
                .iter()
                .copied()
                .filter(|p| !change.removed.contains(p))
                .collect();
            free = (0..total).filter(|p| !survivors.contains(p)).collect();
        }
    }
    let expected = trials as f64 * k as f64 / free.len() as f64;
    let chi2 = free
        .iter()
        .map(|&p| (counts[p] as f64 - expected).powi(2) / expected)
        .sum();
    let outside: usize = (0..total)
        .filter(|p| !free.contains(p))
        .map(|p| counts[p])
        .sum();
    assert_eq!(outside, 0, "regrowth only at free positions");
    (chi2, free.len() - 1)
}

#[test]
fn regrowth_is_uniform_by_rejection() {
    // 6×5 layer, 8 live (density 0.27): the rejection path. 24 free positions, 23 dof;
    // the 0.999 quantile of χ²(23) is 49.7.
    let (chi2, dof) = chi_square_of_regrowth(6, 5, 8, 20_000);
    assert_eq!(dof, 23);
    assert!(chi2 < 49.7, "chi-square {chi2}");
}

#[test]
fn regrowth_is_uniform_by_enumeration() {
    // 6×5 layer, 28 live (density 0.93): the enumeration path. 9 free positions, 8 dof;
    // the 0.999 quantile of χ²(8) is 26.1.
    let (chi2, dof) = chi_square_of_regrowth(6, 5, 28, 20_000);
    assert_eq!(dof, 8);
    assert!(chi2 < 26.1, "chi-square {chi2}");
}

/// The dense reference of the soft update: mix every position of the dense matrices, then keep
/// the online count's largest `|w|` among the union of both topologies (ties: the lower
/// position is dropped first). Returns the dense result.
fn dense_soft_update(target: &SparseLinear, online: &SparseLinear, tau: f64) -> Vec<f32> {
    let w = target.weights();
    let total = w.n_rows() * w.n_cols();
    let (mut t, mut o) = (vec![0f32; total], vec![0f32; total]);
    let mut union = vec![false; total];
    for (p, v) in entries(target) {
        t[p] = v;
        union[p] = true;
    }
    for (p, v) in entries(online) {
        o[p] = v;
        union[p] = true;
    }
    let (a, b) = (tau as f32, (1.0 - tau) as f32);
    let mixed: Vec<f32> = (0..total).map(|p| a * o[p] + b * t[p]).collect();
    let mut candidates: Vec<usize> = (0..total).filter(|&p| union[p]).collect();
    candidates.sort_by(|&x, &y| mixed[x].abs().total_cmp(&mixed[y].abs()).then(x.cmp(&y)));
    let drop = candidates.len() - online.weights().nnz();
    let mut out = mixed;
    candidates[..drop].iter().for_each(|&p| out[p] = 0.0);
    (0..total).for_each(|p| {
        if !union[p] {
            out[p] = 0.0
        }
    });
    out
}

#[test]
fn soft_update_and_prune_equals_dense_reference() {
    let mut r = rng(3);
    for case in 0..200 {
        let (n_in, n_out) = (r.random_range(1..12usize), r.random_range(1..12usize));
        let total = n_in * n_out;
        let nnz = r.random_range(0..=total);
        // Values from a small set, so magnitudes tie often.
        let draw = |r: &mut StdRng| [-0.5f32, -0.25, 0.25, 0.5, 0.75][r.random_range(0..5)];
        let pick = |r: &mut StdRng| {
            let mut p = rand::seq::index::sample(r, total, nnz).into_vec();
            p.sort_unstable();
            let v = p.iter().map(|_| draw(r)).collect();
            layer_from(n_in, n_out, &p, v)
        };
        let target = pick(&mut r);
        let online = if case % 5 == 0 {
            // Same topology, other values: the in-place path.
            let values = (0..nnz).map(|_| draw(&mut r)).collect();
            layer_from(n_in, n_out, &target.weights().positions(), values)
        } else {
            pick(&mut r)
        };
        let tau = [0.005, 0.5, 1.0, 0.0][case % 4];
        let want = dense_soft_update(&target, &online, tau);
        let mut t = Mlp::new(vec![Layer::from(target.clone())], Output::Linear).unwrap();
        let o = Mlp::new(vec![Layer::from(online.clone())], Output::Linear).unwrap();
        soft_update_and_prune(&mut t, &o, tau).unwrap();
        let Layer::Sparse(got) = &t.layers()[0] else {
            unreachable!()
        };
        assert_eq!(got.weights().nnz(), nnz, "budget kept");
        let mut dense = vec![0f32; total];
        entries(got).into_iter().for_each(|(p, v)| dense[p] = v);
        assert_eq!(dense, want, "case {case}");
        assert_valid_csr(got);
    }
}

#[test]
fn soft_update_of_dense_layers_and_biases() {
    let mut r = rng(4);
    let kinds = [LayerKind::Sparse { lambda: 2.0 }, LayerKind::Dense];
    let online = Mlp::init(&[5, 6, 2], &kinds, Output::Linear, &mut r).unwrap();
    let mut target = Mlp::init(&[5, 6, 2], &kinds, Output::Linear, &mut r).unwrap();
    let before = target.clone();
    soft_update_and_prune(&mut target, &online, 0.005).unwrap();
    for l in 0..2 {
        let (t, o, b) = (
            &target.layers()[l],
            &online.layers()[l],
            &before.layers()[l],
        );
        for i in 0..t.bias().len() {
            assert_eq!(t.bias()[i], 0.005f32 * o.bias()[i] + 0.995f32 * b.bias()[i]);
        }
    }
    let (t, o, b) = (
        &target.layers()[1],
        &online.layers()[1],
        &before.layers()[1],
    );
    for i in 0..t.weight_values().len() {
        let want = 0.005f32 * o.weight_values()[i] + 0.995f32 * b.weight_values()[i];
        assert_eq!(t.weight_values()[i], want);
    }
    assert_eq!(target.live_connections(), before.live_connections());
}

#[test]
fn same_seed_same_topology_sequence() {
    let run = |seed: u64| {
        let mut r = rng(seed);
        let kinds = [
            LayerKind::Sparse { lambda: 5.0 },
            LayerKind::Sparse { lambda: 5.0 },
        ];
        let mut net = Mlp::init(&[20, 30, 4], &kinds, Output::Linear, &mut r).unwrap();
        let mut ctl = EvolutionController::new(3, 0.2).unwrap();
        let mut memory = EvolutionMemory::default();
        let mut topologies = Vec::new();
        for _ in 0..30 {
            if let Some(step) = ctl.tick() {
                ctl.evolve(step, &mut net, None, None, &mut memory, &mut r, None)
                    .unwrap();
                for l in net.layers() {
                    if let Layer::Sparse(s) = l {
                        topologies.push(s.weights().positions());
                    }
                }
            }
        }
        topologies
    };
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a.len(), 20);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn controller_schedule_and_statistics() {
    let mut ctl = EvolutionController::new(4, 0.1).unwrap();
    let due: Vec<bool> = (0..12).map(|_| ctl.tick().is_some()).collect();
    assert_eq!(due.iter().filter(|&&d| d).count(), 3);
    assert!(due[3] && due[7] && due[11]);
    let mut off = EvolutionController::<RandomGrowth>::disabled();
    assert!((0..5000).all(|_| off.tick().is_none()));

    // New connections start at 0 and every zero weight goes, so with unchanged weights the next
    // evolution removes the 4 connections the previous one added and 4 of the 36 positives.
    let values: Vec<f32> = (0..40).map(|i| 1.0 + i as f32).collect();
    let positions: Vec<usize> = (0..40).map(|i| i * 2).collect();
    let layer = layer_from(10, 10, &positions, values);
    let mut net = Mlp::new(vec![Layer::from(layer)], Output::Linear).unwrap();
    let mut memory = EvolutionMemory::default();
    let mut r = rng(9);
    let first = ctl
        .evolve(Rewire, &mut net, None, None, &mut memory, &mut r, None)
        .unwrap()
        .unwrap();
    assert_eq!(first.removed(), 4);
    assert_eq!(first.layers[0].added, 4);
    assert_eq!(
        first.mean_abs_removed(),
        Some((1.0 + 2.0 + 3.0 + 4.0) / 4.0)
    );
    assert_eq!(first.fraction_removed_were_new(), None);
    let second = ctl
        .evolve(Rewire, &mut net, None, None, &mut memory, &mut r, None)
        .unwrap()
        .unwrap();
    assert_eq!(second.removed(), 8);
    assert_eq!((first.removed_zeros(), second.removed_zeros()), (0, 4));
    assert_eq!(second.fraction_removed_were_new(), Some(0.5));
    assert_eq!(
        second.mean_abs_removed(),
        Some((5.0 + 6.0 + 7.0 + 8.0) / 8.0)
    );
    assert!(matches!(
        off.evolve(Rewire, &mut net, None, None, &mut memory, &mut r, None),
        Err(Error::EvolutionDisabled)
    ));
}

/// The cosine-decayed fraction: `η (1 + cos(π i / T)) / 2` at iteration `i`, 0 from `T` on;
/// each evolution removes that share of each sign (no zeros here), and a fully decayed one
/// changes nothing.
#[test]
fn a_cosine_decayed_fraction_follows_its_closed_form() {
    let mut ctl = EvolutionController::new(25, 0.4).unwrap();
    assert_eq!(ctl.cosine_decay(), None);
    assert!(matches!(
        ctl.set_cosine_decay(Some(0)),
        Err(Error::ZeroPeriod)
    ));
    ctl.set_cosine_decay(Some(100)).unwrap();
    assert_eq!(ctl.fraction_now(), 0.4);
    // Positive weights far from zero, so that regrown zeros are the only other removals.
    let values: Vec<f32> = (0..200).map(|i| 10.0 + i as f32).collect();
    let positions: Vec<usize> = (0..200).map(|i| i * 3).collect();
    let mut net = Mlp::new(
        vec![Layer::from(layer_from(30, 30, &positions, values))],
        Output::Linear,
    )
    .unwrap();
    let mut memory = EvolutionMemory::default();
    let mut r = rng(4);
    let mut added_before = 0;
    for (i, want) in [
        (25, 0.341_421_356),
        (50, 0.2),
        (75, 0.058_578_644),
        (100, 0.0),
    ] {
        while ctl.iteration() < i {
            ctl.tick();
        }
        let closed = 0.4 * 0.5 * (1.0 + (std::f64::consts::PI * i as f64 / 100.0).cos());
        assert!((ctl.fraction_now() - closed).abs() < 1e-12);
        assert!((closed - want).abs() < 1e-8, "{i}: {closed}");
        let stats = ctl
            .evolve(Rewire, &mut net, None, None, &mut memory, &mut r, None)
            .unwrap()
            .unwrap();
        // The zeros the previous evolution grew go too (at the fully decayed end nothing does).
        let positives = 200 - added_before;
        let moved = if i < 100 {
            added_before + (closed * positives as f64).round() as usize
        } else {
            0
        };
        assert_eq!(stats.removed(), moved, "iteration {i}");
        added_before = stats.layers.first().map_or(0, |l| l.added);
        assert_eq!(net.live_connections(), 200);
    }
    ctl.tick();
    assert_eq!(ctl.fraction_now(), 0.0, "after T");
    ctl.set_cosine_decay(None).unwrap();
    assert_eq!(ctl.fraction_now(), 0.4);
}

/// A policy that breaks the contract, to check it is caught.
struct Bad(Vec<usize>);
impl GrowthPolicy for Bad {
    fn grow<R: Rng + ?Sized>(
        &mut self,
        _: &GrowthContext<'_>,
        _: usize,
        _: &mut R,
    ) -> set_evolve::Result<Vec<usize>> {
        Ok(self.0.clone())
    }
}

#[test]
fn invalid_settings_and_policies_are_errors() {
    assert!(matches!(
        EvolutionController::new(0, 0.05),
        Err(Error::ZeroPeriod)
    ));
    for eta in [0.0, 1.0, -0.1, f64::NAN, 1.5] {
        assert!(matches!(
            EvolutionController::new(10, eta),
            Err(Error::InvalidFraction(_))
        ));
    }
    let mut r = rng(10);
    let positions = [0, 1, 2, 3, 10, 11, 12, 13, 20, 21];
    let values: Vec<f32> = (0..10).map(|i| i as f32 + 1.0).collect();
    let base = layer_from(10, 3, &positions, values);
    // Removes 1 (position 0); these policies answer wrongly.
    for bad in [vec![], vec![5, 6], vec![1], vec![30], vec![0]] {
        let mut layer = base.clone();
        let got = evolve_layer(&mut layer, 0.1, &mut Bad(bad.clone()), &mut r, None);
        if bad == [0] {
            // Position 0 was just pruned, so it is free: a valid answer.
            assert!(got.is_ok());
        } else {
            assert!(matches!(got, Err(Error::InvalidGrowth(_))), "{bad:?}");
            assert_eq!(entries(&layer), entries(&base), "unchanged on error");
        }
    }
    let mut a = Mlp::new(vec![Layer::from(base.clone())], Output::Linear).unwrap();
    let dense = DenseLinear::pytorch_default(10, 3, &mut r).unwrap();
    let b = Mlp::new(vec![Layer::from(dense)], Output::Linear).unwrap();
    assert!(matches!(
        soft_update_and_prune(&mut a, &b, 0.005),
        Err(Error::ArchitectureMismatch(_))
    ));
    let same = a.clone();
    assert!(matches!(
        soft_update_and_prune(&mut a, &same, 1.5),
        Err(Error::InvalidTau(_))
    ));
    let other = Mlp::init(&[10, 3], &[LayerKind::Dense], Output::Linear, &mut r).unwrap();
    let wrong_adam = Adam::new(AdamConfig::default(), &other).unwrap();
    let mut adam = wrong_adam.clone();
    assert!(
        evolve_network(
            &mut a,
            Some(&mut adam),
            None,
            0.1,
            &mut RandomGrowth,
            &mut r,
            None,
        )
        .is_err()
    );
    assert_eq!(adam, wrong_adam);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1250))]
    /// 1 250 cases × 8 steps (4 evolutions and 4 soft-update/prune steps each) = 10 000 of
    /// each: counts, CSR invariants and Adam/gradient alignment hold throughout.
    #[test]
    fn invariants_hold_over_random_steps(
        seed in any::<u64>(),
        n_in in 1usize..40,
        n_out in 1usize..40,
        density in 0.0f64..1.0,
        fraction in 0.01f64..0.99,
    ) {
        let mut r = rng(seed);
        let total = n_in * n_out;
        let nnz = ((density * total as f64) as usize).min(total);
        let make = |r: &mut StdRng| Layer::from(SparseLinear::random(n_in, n_out, nnz, r).unwrap());
        let mut net = Mlp::new(vec![make(&mut r)], Output::Linear).unwrap();
        let mut target = net.clone();
        let mut adam = Adam::new(AdamConfig::default(), &net).unwrap();
        let mut grads = Grads::zeros_like(&net);
        for _ in 0..4 {
            // Tag each connection's state with its position, then check it followed the move.
            let Layer::Sparse(s) = &net.layers()[0] else { unreachable!() };
            let before: Vec<usize> = s.weights().positions();
            grads.layers_mut()[0].weights.iter_mut().zip(&before).for_each(|(g, &p)| *g = p as f32 + 1.0);
            let mut n2 = net.clone();
            adam.step(&mut n2, &grads).unwrap();
            let m_before = adam.layers()[0].weights.m.clone();
            let changes = evolve_network(&mut net, Some(&mut adam), Some(&mut grads), fraction, &mut RandomGrowth, &mut r, None).unwrap();
            let Layer::Sparse(s) = &net.layers()[0] else { unreachable!() };
            prop_assert_eq!(s.weights().nnz(), nnz);
            assert_valid_csr(s);
            let after = s.weights().positions();
            let m = &adam.layers()[0].weights.m;
            prop_assert_eq!(m.len(), nnz);
            prop_assert_eq!(grads.layers()[0].weights.len(), nnz);
            for (slot, p) in after.iter().enumerate() {
                let g = grads.layers()[0].weights[slot];
                if changes[0].1.added.contains(p) {
                    prop_assert_eq!(g, 0.0);
                    prop_assert_eq!(m[slot], 0.0);
                } else {
                    prop_assert_eq!(g, *p as f32 + 1.0);
                    let old = before.iter().position(|q| q == p).unwrap();
                    prop_assert_eq!(m[slot], m_before[old]);
                }
            }
            // Perturb the online weights, then soft-update the target.
            let (w, _) = net.layers_mut()[0].params_mut();
            w.iter_mut().for_each(|v| *v += r.random_range(-0.1f32..0.1));
            soft_update_and_prune(&mut target, &net, 0.3).unwrap();
            let Layer::Sparse(ts) = &target.layers()[0] else { unreachable!() };
            prop_assert_eq!(ts.weights().nnz(), nnz);
            assert_valid_csr(ts);
        }
    }
}

#[test]
fn wide_layers_evolve_with_u32_indices() {
    let mut r = rng(12);
    let mut layer = SparseLinear::random(70_000, 2, 500, &mut r).unwrap();
    assert!(matches!(layer.weights(), SparseWeights::U32(_)));
    let k = removal_count(layer.weights().values(), 0.05).unwrap();
    assert!((24..=26).contains(&k), "about 5% of 500 by sign, got {k}");
    let change = evolve_layer(&mut layer, 0.05, &mut RandomGrowth, &mut r, None).unwrap();
    assert_eq!(change.added.len(), k);
    assert_eq!(change.removed.len(), k);
    assert_eq!(layer.weights().nnz(), 500);
    assert_valid_csr(&layer);
    let _ = Csr::<u32>::from_positions(1, 70_000, &[69_999], vec![1.0]).unwrap();
}

#[test]
fn pruning_by_sign_matches_a_hand_computed_choice() {
    // Positions 0..12 of a 4×4 layer. Positives 0.5 0.1 0.3 0.2 0.1 0.9 (n₊ = 6), negatives
    // −0.05 −0.7 −0.2 −0.01 (n₋ = 4), and two exact zeros (positions 10 and 11).
    let values = vec![
        0.5, 0.1, -0.05, 0.3, -0.7, 0.2, 0.1, -0.2, 0.9, -0.01, 0.0, -0.0,
    ];
    let positions: Vec<usize> = (0..12).collect();
    // η = 0.3: ⌊0.3·6⌉ = 2 positives (0.1 at 1 and 0.1 at 6: a tie, both go), ⌊0.3·4⌉ = 1
    // negative (−0.01 at 9), and both zeros. A single ranking by |w| over the layer would have
    // taken −0.01, −0.05 and the two 0.1s (positions 9, 2, 1, 6) instead.
    let mut layer = layer_from(4, 4, &positions, values.clone());
    assert_eq!(removal_count(&values, 0.3).unwrap(), 5);
    let change = evolve_layer(&mut layer, 0.3, &mut RandomGrowth, &mut rng(1), None).unwrap();
    assert_eq!(change.removed, vec![1, 6, 9, 10, 11]);
    assert_eq!(change.added.len(), 5);
    // η = 0.5: 3 positives (the two 0.1s, then 0.2 at 5), 2 negatives (−0.01, −0.05), zeros.
    let mut layer = layer_from(4, 4, &positions, values.clone());
    let change = prune_layer(&mut layer, 0.5).unwrap();
    assert_eq!(change.removed, vec![1, 2, 5, 6, 9, 10, 11]);
    assert!(change.added.is_empty());
    assert_eq!(
        entries(&layer),
        vec![(0, 0.5), (3, 0.3), (4, -0.7), (7, -0.2), (8, 0.9)]
    );
    assert_valid_csr(&layer);
}

#[test]
fn the_topology_freezes_after_one_final_prune() {
    let mut r = rng(4);
    let kinds = [LayerKind::Sparse { lambda: 3.0 }, LayerKind::Dense];
    let mut net = Mlp::init(&[12, 16, 2], &kinds, Output::Linear, &mut r).unwrap();
    let mut adam = Adam::new(AdamConfig::default(), &net).unwrap();
    let mut grads = Grads::zeros_like(&net);
    let nnz0 = net.layers()[0].live_connections();
    let mut ctl = EvolutionController::new(4, 0.2).unwrap();
    ctl.set_final_prune_after(Some(9));
    let mut memory = EvolutionMemory::default();
    let mut seen = Vec::new();
    for _ in 0..20 {
        let Some(step) = ctl.tick() else { continue };
        let before = net.clone();
        let values = before.layers()[0].weight_values().to_vec();
        let stats = ctl
            .evolve(
                step,
                &mut net,
                Some(&mut adam),
                Some(&mut grads),
                &mut memory,
                &mut r,
                None,
            )
            .unwrap();
        seen.push((ctl.iteration(), step, stats.as_ref().map(|s| s.removed())));
        let nnz = net.layers()[0].live_connections();
        match (step, &stats) {
            (TopologyStep::Rewire, Some(s)) => {
                assert_eq!(nnz, nnz0);
                assert_eq!(s.layers[0].added, s.layers[0].removed);
            }
            (TopologyStep::FinalPrune, Some(s)) => {
                assert_eq!(s.layers[0].added, 0);
                assert_eq!(s.removed(), removal_count(&values, 0.2).unwrap());
                assert_eq!(nnz, nnz0 - s.removed());
                assert_eq!(adam.layers()[0].weights.m.len(), nnz);
                assert_eq!(grads.layers()[0].weights.len(), nnz);
                assert!(memory.is_frozen());
            }
            (TopologyStep::FinalPrune, None) => {
                let Layer::Sparse(a) = &net.layers()[0] else {
                    unreachable!()
                };
                let Layer::Sparse(b) = &before.layers()[0] else {
                    unreachable!()
                };
                assert_eq!(entries(a), entries(b), "frozen: no change");
            }
            (TopologyStep::Rewire, None) => panic!("a rewiring always reports"),
        }
    }
    let steps: Vec<(u64, TopologyStep, bool)> =
        seen.iter().map(|&(i, s, r)| (i, s, r.is_some())).collect();
    assert_eq!(
        steps,
        vec![
            (4, Rewire, true),
            (8, Rewire, true),
            (12, TopologyStep::FinalPrune, true),
            (16, TopologyStep::FinalPrune, false),
            (20, TopologyStep::FinalPrune, false),
        ]
    );
}

#[test]
fn targets_follow_the_online_count_after_a_final_prune() {
    let mut r = rng(8);
    for case in 0..100 {
        let (n_in, n_out) = (r.random_range(2..12usize), r.random_range(2..12usize));
        let total = n_in * n_out;
        let nnz = r.random_range(1..=total);
        let draw = |r: &mut StdRng| [-0.5f32, -0.25, 0.25, 0.5, 0.75][r.random_range(0..5)];
        let mut p = rand::seq::index::sample(&mut r, total, nnz).into_vec();
        p.sort_unstable();
        let v = p.iter().map(|_| draw(&mut r)).collect();
        let target = layer_from(n_in, n_out, &p, v);
        // The online layer moves on (perhaps rewires), then makes its final prune.
        let moved: Vec<f32> = target
            .weights()
            .values()
            .iter()
            .map(|&x| x + draw(&mut r))
            .collect();
        let mut online = layer_from(n_in, n_out, &p, moved);
        if case % 2 == 0 {
            evolve_layer(&mut online, 0.3, &mut RandomGrowth, &mut r, None).unwrap();
        }
        prune_layer(&mut online, 0.3).unwrap();
        let want = dense_soft_update(&target, &online, 0.005);
        let mut t = Mlp::new(vec![Layer::from(target.clone())], Output::Linear).unwrap();
        let o = Mlp::new(vec![Layer::from(online.clone())], Output::Linear).unwrap();
        let mut sync = TargetSync::new();
        sync.update(&mut t, &o, 0.005).unwrap();
        let Layer::Sparse(got) = &t.layers()[0] else {
            unreachable!()
        };
        assert_eq!(got.weights().nnz(), online.weights().nnz(), "case {case}");
        let mut dense = vec![0f32; total];
        entries(got).into_iter().for_each(|(p, v)| dense[p] = v);
        assert_eq!(dense, want, "case {case}");
        assert_valid_csr(got);
        // Later updates keep the new count and agree with a fresh sync.
        let mut fresh = t.clone();
        sync.update(&mut t, &o, 0.5).unwrap();
        soft_update_and_prune(&mut fresh, &o, 0.5).unwrap();
        let sparse = |m: &Mlp| {
            let Layer::Sparse(l) = &m.layers()[0] else {
                unreachable!()
            };
            entries(l)
        };
        assert_eq!(sparse(&t), sparse(&fresh), "case {case}");
    }
}
