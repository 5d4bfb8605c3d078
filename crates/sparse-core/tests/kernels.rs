//! Sparse (and dense) layer kernels against a dense f64 reference built from the same weights,
//! for every kernel implementation this CPU can run ([`Isa::available`]; the others are reported
//! as skipped), and the implementations against each other.

mod common;

use common::{assert_close, dense_weights, isas, random_acts, rng};
use rand::{RngExt, rngs::StdRng};
use sparse_core::kernels::{Epilogue, with_isa};
use sparse_core::{Activations, DenseLinear, Isa, KernelKind, Layer, SparseLinear};

const REL: f64 = 1e-5;

/// [`check_layer_with`] under every available implementation.
fn check_layer(layer: &Layer, batch: usize, r: &mut StdRng) {
    for isa in isas("sparse-core layer kernels against the dense reference") {
        with_isa(isa, || check_layer_with(layer, batch, r, isa)).unwrap();
    }
}

/// Checks forward, backward-data, weight gradient and bias gradient of `layer` at `batch`, and
/// that the padding lanes of the outputs stay zero.
fn check_layer_with(layer: &Layer, batch: usize, r: &mut StdRng, isa: Isa) {
    let (n_in, n_out) = (layer.n_in(), layer.n_out());
    let w = dense_weights(layer);
    let x = random_acts(r, n_in, batch);
    let mut dy = random_acts(r, n_out, batch);
    // Some output gradients all zero, as for ReLU units off over the whole batch (the SIMD
    // weight gradient skips those rows).
    for j in (0..n_out).step_by(5) {
        dy.row_mut(j).fill(0.0);
    }
    let ctx = format!(
        "{n_out}x{n_in}, nnz {}, batch {batch}, {isa}",
        layer.live_connections()
    );

    // Forward: y = W x + b.
    let mut y = Activations::default();
    layer.forward(&x, &mut y).unwrap();
    assert_padding_zero(&y, &ctx);
    for (j, wj) in w.iter().enumerate() {
        for b in 0..batch {
            let bias = layer.bias()[j] as f64;
            let (mut want, mut scale) = (bias, bias.abs());
            for (k, wk) in wj.iter().enumerate() {
                let t = wk * x.get(k, b) as f64;
                want += t;
                scale += t.abs();
            }
            assert_close(
                &format!("forward[{j},{b}] {ctx}"),
                y.get(j, b),
                want,
                scale,
                REL,
            );
        }
    }

    // Backward-data: dx = Wᵀ dy (the buffer starts dirty to catch missing overwrites).
    let mut dx = random_acts(r, n_in, batch);
    layer.backward_data(&dy, &mut dx).unwrap();
    assert_padding_zero(&dx, &ctx);
    for k in 0..n_in {
        for b in 0..batch {
            let (mut want, mut scale) = (0.0, 0.0);
            for (j, wj) in w.iter().enumerate() {
                let t = wj[k] * dy.get(j, b) as f64;
                want += t;
                scale += t.abs();
            }
            assert_close(
                &format!("backward-data[{k},{b}] {ctx}"),
                dx.get(k, b),
                want,
                scale,
                REL,
            );
        }
    }

    // Fused epilogues: the same sums, then a ReLU (forward) or the gradient through a ReLU whose
    // output was `h` (backward-data); exactly what the separate passes give.
    let mut y_relu = random_acts(r, n_out, batch);
    layer.forward_then(&x, &mut y_relu, Epilogue::Relu).unwrap();
    assert_padding_zero(&y_relu, &ctx);
    let h = random_acts(r, n_in, batch);
    let mut dx_masked = random_acts(r, n_in, batch);
    layer
        .backward_data_then(&dy, &mut dx_masked, Epilogue::ReluGrad(&h))
        .unwrap();
    assert_padding_zero(&dx_masked, &ctx);
    for b in 0..batch {
        for j in 0..n_out {
            let want = y.get(j, b).max(0.0);
            assert_eq!(y_relu.get(j, b), want, "fused ReLU [{j},{b}] {ctx}");
        }
        for k in 0..n_in {
            let want = if h.get(k, b) > 0.0 { dx.get(k, b) } else { 0.0 };
            assert_eq!(
                dx_masked.get(k, b),
                want,
                "fused ReLU gradient [{k},{b}] {ctx}"
            );
        }
    }
    let wrong = random_acts(r, n_in + 1, batch);
    assert!(
        layer
            .backward_data_then(&dy, &mut dx_masked, Epilogue::ReluGrad(&wrong))
            .is_err(),
        "a mask of the wrong shape is an error"
    );

    // Weight gradient at stored positions, and bias gradient.
    let mut grads = layer.zero_grads();
    grads.weights.iter_mut().for_each(|g| *g = 7.0);
    grads.bias.iter_mut().for_each(|g| *g = 7.0);
    layer.param_grads(&dy, &x, &mut grads).unwrap();
    let positions: Vec<(usize, usize)> = match layer {
        Layer::Sparse(s) => s.weights().iter().map(|(r, c, _)| (r, c)).collect(),
        Layer::Dense(_) => (0..n_out)
            .flat_map(|j| (0..n_in).map(move |k| (j, k)))
            .collect(),
    };
    assert_eq!(positions.len(), grads.weights.len());
    for (&(j, k), &g) in positions.iter().zip(&grads.weights) {
        let (mut want, mut scale) = (0.0, 0.0);
        for b in 0..batch {
            let t = dy.get(j, b) as f64 * x.get(k, b) as f64;
            want += t;
            scale += t.abs();
        }
        assert_close(&format!("weight-grad[{j},{k}] {ctx}"), g, want, scale, REL);
    }
    for (j, &g) in grads.bias.iter().enumerate() {
        let want: f64 = (0..batch).map(|b| dy.get(j, b) as f64).sum();
        let scale: f64 = (0..batch).map(|b| (dy.get(j, b) as f64).abs()).sum();
        assert_close(&format!("bias-grad[{j}] {ctx}"), g, want, scale, REL);
    }

    // Both backward products in one call (fused into one pass by the AVX-512 kernels): exactly
    // what the calls apart give, with outputs dead over the whole batch (above), dead over only
    // the first batch tile of AVX-512 (128 lanes), and none.
    let mut partly = dy.clone();
    for j in (3..n_out).step_by(7) {
        let row = partly.row_mut(j);
        let n = row.len().min(128);
        row[..n].fill(0.0);
    }
    for (dy, what) in [
        (&dy, "dead outputs"),
        (&partly, "outputs dead over a tile"),
        (&random_acts(r, n_out, batch), "no dead outputs"),
    ] {
        fused_matches_apart(layer, dy, &x, &h, r, &format!("{ctx}, {what}"));
    }
}

/// [`Layer::backward_then`] gives what [`Layer::param_grads`] and [`Layer::backward_data_then`]
/// give apart, bit for bit, without and with a ReLU mask `h`, over dirty buffers.
fn fused_matches_apart(
    layer: &Layer,
    dy: &Activations,
    x: &Activations,
    h: &Activations,
    r: &mut StdRng,
    ctx: &str,
) {
    let (n_in, batch) = (layer.n_in(), dy.batch());
    let bits = |v: &[f32]| v.iter().map(|g| g.to_bits()).collect::<Vec<_>>();
    let rows = |a: &Activations| {
        (0..a.features())
            .map(|f| bits(a.row(f)))
            .collect::<Vec<_>>()
    };
    for epilogue in [Epilogue::None, Epilogue::ReluGrad(h)] {
        let mut apart = layer.zero_grads();
        layer.param_grads(dy, x, &mut apart).unwrap();
        let mut dx_apart = Activations::default();
        layer
            .backward_data_then(dy, &mut dx_apart, epilogue)
            .unwrap();
        let mut fused = layer.zero_grads();
        fused.weights.iter_mut().for_each(|g| *g = 7.0);
        fused.bias.iter_mut().for_each(|g| *g = 7.0);
        let mut dx_fused = random_acts(r, n_in, batch);
        layer
            .backward_then(dy, x, &mut fused, &mut dx_fused, epilogue)
            .unwrap();
        assert_padding_zero(&dx_fused, ctx);
        assert_eq!(
            bits(&fused.weights),
            bits(&apart.weights),
            "fused weight grad {ctx}"
        );
        assert_eq!(
            bits(&fused.bias),
            bits(&apart.bias),
            "fused bias grad {ctx}"
        );
        assert_eq!(
            rows(&dx_fused),
            rows(&dx_apart),
            "fused backward-data {ctx}"
        );
    }
}

/// Lanes beyond `batch` in each row are zero.
fn assert_padding_zero(a: &Activations, ctx: &str) {
    for f in 0..a.features() {
        let row = &a.as_slice()[f * a.stride()..(f + 1) * a.stride()];
        assert!(
            row[a.batch()..].iter().all(|&v| v == 0.0),
            "padding of row {f} written, {ctx}"
        );
    }
}

/// Batch sizes: one lane, a partial vector, multiples and non-multiples of the 16-lane vector
/// and of the tiles (AVX2: 32 lanes; AVX-512: 128, so 256 is two full tiles and 257 adds a
/// one-lane tile; 63: a partial AVX2 tile with its last vector masked).
const BATCHES: [usize; 8] = [1, 7, 16, 33, 63, 100, 256, 257];

fn count_for(density: &str, n_in: usize, n_out: usize) -> usize {
    let total = n_in * n_out;
    match density {
        "0" => 0,
        "one" => 1,
        d => ((d.parse::<f64>().unwrap() * total as f64).round() as usize).max(1),
    }
}

#[test]
fn sparse_kernels_match_dense_reference() {
    let mut r = rng(1);
    let shapes = [(1, 1), (3, 5), (17, 256), (256, 256), (256, 6), (61, 13)];
    for &(n_in, n_out) in &shapes {
        for density in ["0", "one", "0.05", "0.5", "1.0"] {
            let count = count_for(density, n_in, n_out);
            let layer: Layer = SparseLinear::random(n_in, n_out, count, &mut r)
                .unwrap()
                .into();
            assert_eq!(layer.live_connections(), count.min(n_in * n_out));
            for &batch in &BATCHES {
                check_layer(&layer, batch, &mut r);
            }
        }
    }
}

#[test]
fn random_shapes_match_dense_reference() {
    let mut r = rng(2);
    for _ in 0..12 {
        let (n_in, n_out) = (r.random_range(1..120usize), r.random_range(1..120usize));
        let density: f64 = r.random_range(0.0..1.0);
        let count = (density * (n_in * n_out) as f64) as usize;
        let layer: Layer = SparseLinear::random(n_in, n_out, count, &mut r)
            .unwrap()
            .into();
        let batch = BATCHES[r.random_range(0..BATCHES.len())];
        check_layer(&layer, batch, &mut r);
    }
}

#[test]
fn wide_layers_use_u32_indices_and_match() {
    let mut r = rng(3);
    let layer = SparseLinear::random(70_000, 3, 40, &mut r).unwrap();
    assert!(matches!(
        layer.weights(),
        sparse_core::SparseWeights::U32(_)
    ));
    let narrow = SparseLinear::random(65_536, 2, 10, &mut r).unwrap();
    assert!(matches!(
        narrow.weights(),
        sparse_core::SparseWeights::U16(_)
    ));
    check_layer(&layer.into(), 7, &mut r);
    check_layer(&narrow.into(), 7, &mut r);
}

#[test]
fn dense_kernels_match_dense_reference() {
    let mut r = rng(4);
    // Up to 16 outputs the SIMD implementations run dense layers on the sparse kernels over a
    // full pattern (TD3's output layers); wider ones, and the portable implementation, use
    // matrixmultiply.
    let shapes = [
        (1, 1),
        (17, 256),
        (256, 6),
        (33, 9),
        (256, 1),
        (300, 16),
        (300, 17),
    ];
    for &(n_in, n_out) in &shapes {
        let layer: Layer = DenseLinear::pytorch_default(n_in, n_out, &mut r)
            .unwrap()
            .into();
        for &batch in &BATCHES {
            check_layer(&layer, batch, &mut r);
        }
    }
}

#[test]
fn kernels_count_their_flops() {
    let mut r = rng(5);
    let layer: Layer = SparseLinear::random(40, 30, 123, &mut r).unwrap().into();
    let batch = 9;
    let x = random_acts(&mut r, 40, batch);
    let dy = random_acts(&mut r, 30, batch);
    let (mut y, mut dx, mut g) = (
        Activations::default(),
        Activations::default(),
        layer.zero_grads(),
    );
    layer.forward(&x, &mut y).unwrap();
    layer.forward(&x, &mut y).unwrap();
    layer.backward_data(&dy, &mut dx).unwrap();
    layer.param_grads(&dy, &x, &mut g).unwrap();
    let f = layer.flops();
    let mac = 2 * 123 * batch as u64;
    assert_eq!(f.get(KernelKind::Forward), 2 * mac);
    assert_eq!(f.get(KernelKind::BackwardData), mac);
    assert_eq!(f.get(KernelKind::WeightGrad), mac);
    assert_eq!(f.get(KernelKind::BiasGrad), 30 * batch as u64);
    assert_eq!(f.total(), 4 * mac + 30 * batch as u64);
    layer.reset_flops();
    assert_eq!(layer.flops().total(), 0);
    // Both backward products in one call count what the two calls count, whichever kernels run.
    for isa in isas("fused backward FLOP counts") {
        with_isa(isa, || {
            layer
                .backward_then(&dy, &x, &mut g, &mut dx, Epilogue::None)
                .unwrap()
        })
        .unwrap();
        let f = layer.flops();
        assert_eq!(f.get(KernelKind::BackwardData), mac, "{isa}");
        assert_eq!(f.get(KernelKind::WeightGrad), mac, "{isa}");
        assert_eq!(f.get(KernelKind::BiasGrad), 30 * batch as u64, "{isa}");
        assert_eq!(f.total(), 2 * mac + 30 * batch as u64, "{isa}");
        layer.reset_flops();
    }

    let dense: Layer = DenseLinear::pytorch_default(40, 30, &mut r).unwrap().into();
    dense.forward(&x, &mut y).unwrap();
    assert_eq!(dense.flops().forward, 2 * 40 * 30 * batch as u64);
}

#[test]
fn shape_errors_are_errors_not_panics() {
    let mut r = rng(6);
    let layer: Layer = SparseLinear::random(8, 4, 10, &mut r).unwrap().into();
    let bad = random_acts(&mut r, 7, 3);
    let mut out = Activations::default();
    assert!(layer.forward(&bad, &mut out).is_err());
    assert!(layer.backward_data(&bad, &mut out).is_err());
    let mut g = layer.zero_grads();
    assert!(layer.param_grads(&bad, &bad, &mut g).is_err());
    g.weights.pop();
    let (x, dy) = (random_acts(&mut r, 8, 3), random_acts(&mut r, 4, 3));
    assert!(layer.param_grads(&dy, &x, &mut g).is_err());
}

/// At batch 1, AVX-512's matrix-vector kernel fetches the inputs by permutes where AVX2's
/// gathers them, with the same products and sums: the same bits, with and without the ReLU, for
/// rows of fewer and more than 8 connections, windows narrow and wide, layers below density
/// 1/4 (which it hands to AVX2's) and inputs wider than its stack buffer.
#[test]
fn batch_one_avx512_matches_avx2_bit_for_bit() {
    if !(Isa::Avx512.is_available() && Isa::Avx2.is_available()) {
        eprintln!("skipped batch_one_avx512_matches_avx2_bit_for_bit: no AVX-512 here");
        return;
    }
    let mut r = rng(11);
    for &(n_in, n_out, density) in &[
        (256, 256, 0.5),
        (256, 64, 1.0),
        (17, 256, 0.3),
        (40, 30, 0.26),
        (300, 7, 0.9),
        (256, 40, 0.1),
        (992, 20, 0.25),
        (1100, 10, 0.5),
    ] {
        let count = ((n_in * n_out) as f64 * density) as usize;
        let layer: Layer = SparseLinear::random(n_in, n_out, count, &mut r)
            .unwrap()
            .into();
        let x = random_acts(&mut r, n_in, 1);
        for epilogue in [Epilogue::None, Epilogue::Relu] {
            let run = |isa| {
                with_isa(isa, || {
                    let mut y = Activations::default();
                    layer.forward_then(&x, &mut y, epilogue).unwrap();
                    (0..n_out)
                        .map(|f| y.get(f, 0).to_bits())
                        .collect::<Vec<_>>()
                })
                .unwrap()
            };
            assert_eq!(
                run(Isa::Avx2),
                run(Isa::Avx512),
                "{n_out}x{n_in} at density {density}, {epilogue:?}"
            );
        }
    }
}

#[test]
fn implementations_agree_with_portable() {
    let mut r = rng(7);
    for &(n_in, n_out, count) in &[
        (256, 256, 32_768),
        (17, 256, 1_890),
        (300, 5, 0),
        (9, 300, 2_700),
    ] {
        let layer: Layer = SparseLinear::random(n_in, n_out, count, &mut r)
            .unwrap()
            .into();
        for &batch in &[1, 7, 100, 257] {
            let x = random_acts(&mut r, n_in, batch);
            let dy = random_acts(&mut r, n_out, batch);
            let run = |isa| {
                with_isa(isa, || {
                    let (mut y, mut dx, mut g) = (
                        Activations::default(),
                        Activations::default(),
                        layer.zero_grads(),
                    );
                    layer.forward(&x, &mut y).unwrap();
                    layer.backward_data(&dy, &mut dx).unwrap();
                    layer.param_grads(&dy, &x, &mut g).unwrap();
                    (y, dx, g.weights)
                })
                .unwrap()
            };
            let (y0, dx0, g0) = run(Isa::Portable);
            // Sums of at most n terms of magnitude <= 1 and weights <= 1/sqrt(n_in).
            let tol = |n: usize| 1e-5 * n as f32;
            for isa in isas("sparse-core implementations_agree_with_portable") {
                let (y, dx, g) = run(isa);
                let ctx = format!("{n_out}x{n_in} nnz {count} batch {batch} {isa}");
                for f in 0..n_out {
                    for (a, b) in y.row(f).iter().zip(y0.row(f)) {
                        assert!((a - b).abs() <= tol(n_in), "forward {ctx}: {a} vs {b}");
                    }
                }
                for f in 0..n_in {
                    for (a, b) in dx.row(f).iter().zip(dx0.row(f)) {
                        assert!((a - b).abs() <= tol(n_out), "backward {ctx}: {a} vs {b}");
                    }
                }
                for (a, b) in g.iter().zip(&g0) {
                    assert!((a - b).abs() <= tol(batch), "weight grad {ctx}: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn implementation_choice_is_validated() {
    assert!("portable".parse::<Isa>().is_ok());
    assert!("AVX512".parse::<Isa>().is_ok());
    assert!("neon".parse::<Isa>().is_ok());
    // Every name round-trips, and the error lists them all.
    for isa in Isa::ALL {
        assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
    }
    let err = "sse9".parse::<Isa>().unwrap_err().to_string();
    assert!(Isa::ALL.iter().all(|i| err.contains(i.name())), "{err}");
    assert!("sse9".parse::<Isa>().is_err());
    assert!(Isa::available().contains(&Isa::Portable));
    assert!(Isa::best().is_available());
    for isa in Isa::ALL {
        assert_eq!(with_isa(isa, || 1).is_ok(), isa.is_available());
    }
    // NEON is part of the AArch64 base architecture: an AArch64 build always runs its kernels.
    #[cfg(target_arch = "aarch64")]
    assert_eq!(Isa::best(), Isa::Neon);
    #[cfg(not(target_arch = "aarch64"))]
    assert!(!Isa::Neon.is_available());
    let inner = with_isa(Isa::Portable, sparse_core::kernels::active_isa).unwrap();
    assert_eq!(inner, Isa::Portable);
}

#[test]
fn transposed_structure_follows_topology_changes() {
    let mut r = rng(8);
    let mut layer = SparseLinear::random(30, 20, 150, &mut r).unwrap();
    let other = SparseLinear::random(30, 20, 150, &mut r).unwrap();
    let dy = random_acts(&mut r, 20, 5);
    let mut dx = Activations::default();
    let as_layer = |l: &SparseLinear| Layer::from(l.clone());
    assert_eq!(as_layer(&layer).memory().transposed, 0);
    let l = as_layer(&layer);
    l.backward_data(&dy, &mut dx).unwrap();
    // Column pointers, row indices and permutation: 4 bytes each; and the segments (one block of
    // 20 rows: a start and an end offset per column).
    assert_eq!(l.memory().transposed, 4 * (31 + 2 * 150) + 4 * 2 * 30);
    if let Layer::Sparse(s) = &l {
        layer = s.clone();
    }
    // A topology change rebuilds the structure in place, for the new topology (checked against
    // the dense reference below); a layer that never built one still has none.
    layer.replace_weights(other.weights().clone()).unwrap();
    let l = as_layer(&layer);
    assert_eq!(l.memory().transposed, 4 * (31 + 2 * 150) + 4 * 2 * 30);
    check_layer(&l, 5, &mut r);
    let mut fresh = other.clone();
    fresh.replace_weights(layer.weights().clone()).unwrap();
    assert_eq!(as_layer(&fresh).memory().transposed, 0);
}

#[test]
fn load_bound_is_measured_for_simd_kernels_only() {
    use sparse_core::kernels::load_bound;
    for isa in isas("sparse-core load_bound_is_measured_for_simd_kernels_only") {
        let g = with_isa(isa, load_bound).unwrap();
        match isa {
            Isa::Portable => assert_eq!(g, None),
            // Not a speed check: only that a rate was measured, between a tenth of a vector
            // multiply-add per nanosecond (this machine: about 4) and twenty (more means the
            // loop was folded away). NEON from a hundredth: scripts/aarch64-check.sh runs it
            // under user-mode emulation, at about 0.06.
            _ => {
                let g = g.expect("SIMD kernels have a ceiling");
                let (lanes, least) = match isa {
                    Isa::Avx512 => (16.0, 0.1),
                    Isa::Avx2 => (8.0, 0.1),
                    _ => (4.0, 0.01),
                };
                let per_ns = g / 2.0 / lanes;
                assert!(per_ns > least && per_ns < 20.0, "{isa}: {g} GFLOPS");
            }
        }
    }
}

/// Writes `v` into every padding lane (`batch..stride`) of `a`'s rows.
fn poison_padding(a: &mut Activations, v: f32) {
    let (batch, stride) = (a.batch(), a.stride());
    for row in a.as_mut_slice().chunks_mut(stride) {
        row[batch..].fill(v);
    }
}

#[test]
fn values_in_padding_lanes_change_nothing() {
    // The SIMD kernels load a tile's last vector whole, padding lanes included: whatever those
    // hold, NaN and infinities included, must not reach a result, in particular not the weight
    // gradient, whose dot products sum across lanes.
    let mut r = rng(41);
    for isa in isas("kernels with values in padding lanes") {
        for batch in [1, 7, 33, 100, 257] {
            let layer = Layer::from(SparseLinear::random(40, 48, 700, &mut r).unwrap());
            let x = random_acts(&mut r, 40, batch);
            let dy = random_acts(&mut r, 48, batch);
            let h = random_acts(&mut r, 40, batch);
            let run = |x: &Activations, dy: &Activations, h: &Activations, fill: f32| {
                with_isa(isa, || {
                    let mut y = Activations::zeros(48, batch);
                    let mut dx = Activations::zeros(40, batch);
                    poison_padding(&mut y, fill);
                    poison_padding(&mut dx, fill);
                    layer.forward_then(x, &mut y, Epilogue::Relu).unwrap();
                    layer
                        .backward_data_then(dy, &mut dx, Epilogue::ReluGrad(h))
                        .unwrap();
                    let mut grads = layer.zero_grads();
                    layer.param_grads(dy, x, &mut grads).unwrap();
                    // The fused backward pass too (the input doubling as the ReLU output, as in
                    // a network).
                    let mut fused = layer.zero_grads();
                    let mut dx_fused = Activations::zeros(40, batch);
                    poison_padding(&mut dx_fused, fill);
                    layer
                        .backward_then(dy, x, &mut fused, &mut dx_fused, Epilogue::ReluGrad(x))
                        .unwrap();
                    let live = |a: &Activations| -> Vec<u32> {
                        (0..a.features())
                            .flat_map(|f| a.row(f).iter().map(|v| v.to_bits()).collect::<Vec<_>>())
                            .collect()
                    };
                    let bits = |v: &[f32]| v.iter().map(|g| g.to_bits()).collect::<Vec<_>>();
                    (
                        live(&y),
                        live(&dx),
                        bits(&grads.weights),
                        bits(&grads.bias),
                        live(&dx_fused),
                        bits(&fused.weights),
                        bits(&fused.bias),
                    )
                })
                .unwrap()
            };
            let clean = run(&x, &dy, &h, 0.0);
            for fill in [f32::NAN, f32::INFINITY, -f32::INFINITY, 1e30] {
                let (mut px, mut pdy, mut ph) = (x.clone(), dy.clone(), h.clone());
                for a in [&mut px, &mut pdy, &mut ph] {
                    poison_padding(a, fill);
                }
                assert_eq!(
                    run(&px, &pdy, &ph, fill),
                    clean,
                    "{isa}, batch {batch}, padding {fill}"
                );
            }
        }
    }
}
