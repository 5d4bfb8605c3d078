//! The fork-join pool: every part runs exactly once on any thread count, nesting runs inline,
//! panics reach the caller, and products split across threads give the same bits as on one.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{isas, random_acts, rng};
use sparse_core::kernels::{Epilogue, with_isa};
use sparse_core::{Activations, Layer, SparseLinear, pool};

/// Runs `f` under each thread count (the pool is process-wide; every test here leaves results
/// independent of it, so concurrent tests may change it freely).
fn for_thread_counts(mut f: impl FnMut(usize)) {
    for threads in [1, 2, 3] {
        pool::set_threads(threads);
        f(threads);
    }
}

#[test]
fn every_part_runs_exactly_once() {
    for_thread_counts(|threads| {
        for parts in [0, 1, 2, 3, 7, 64] {
            let counts: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..200 {
                pool::for_each_part(parts, &|p| {
                    counts[p].fetch_add(1, Ordering::Relaxed);
                });
            }
            for (p, c) in counts.iter().enumerate() {
                assert_eq!(
                    c.load(Ordering::Relaxed),
                    200,
                    "part {p} of {parts}, {threads} threads"
                );
            }
        }
    });
}

#[test]
fn join_returns_both_results_and_nesting_runs_inline() {
    for_thread_counts(|threads| {
        let (a, b) = pool::join(
            || {
                let inner = AtomicUsize::new(0);
                pool::for_each_part(5, &|p| {
                    inner.fetch_add(p + 1, Ordering::Relaxed);
                });
                inner.into_inner()
            },
            || (0..100u64).sum::<u64>(),
        );
        assert_eq!((a, b), (15, 4950), "{threads} threads");
    });
}

#[test]
fn a_panicking_part_panics_the_caller_and_the_pool_recovers() {
    pool::set_threads(2);
    let r = std::panic::catch_unwind(|| {
        pool::for_each_part(4, &|p| {
            if p == 3 {
                panic!("part 3 fails");
            }
        })
    });
    assert!(r.is_err());
    let n = AtomicUsize::new(0);
    pool::for_each_part(4, &|_| {
        n.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(n.into_inner(), 4, "the pool works after a panic");
}

#[test]
#[should_panic(expected = "thread count")]
fn zero_threads_is_refused() {
    pool::set_threads(0);
}

/// Outputs of every product of `layer`, with the fused epilogues.
fn products(layer: &Layer, x: &Activations, dy: &Activations, h: &Activations) -> Vec<Vec<f32>> {
    let mut y = Activations::default();
    layer.forward_then(x, &mut y, Epilogue::Relu).unwrap();
    let mut dx = Activations::default();
    layer
        .backward_data_then(dy, &mut dx, Epilogue::ReluGrad(h))
        .unwrap();
    let mut g = layer.zero_grads();
    layer.param_grads(dy, x, &mut g).unwrap();
    // Both backward products in one call (fused on AVX-512, split by the layer's inputs).
    let (mut fused, mut dx_fused) = (layer.zero_grads(), Activations::default());
    layer
        .backward_then(dy, x, &mut fused, &mut dx_fused, Epilogue::ReluGrad(h))
        .unwrap();
    vec![
        y.to_samples(),
        dx.to_samples(),
        g.weights,
        g.bias,
        dx_fused.to_samples(),
        fused.weights,
        fused.bias,
    ]
}

#[test]
fn split_products_give_the_same_bits_on_any_thread_count() {
    let mut r = rng(11);
    // Large enough to be split (nnz · batch ≥ MIN_SPLIT_WORK), and a small one that is not.
    for (n_in, n_out, nnz, batch) in [
        (256, 256, 32_768, 100),
        (300, 97, 9_000, 257),
        (14, 256, 1_890, 100),
    ] {
        let layer: Layer = SparseLinear::random(n_in, n_out, nnz, &mut r)
            .unwrap()
            .into();
        let x = random_acts(&mut r, n_in, batch);
        let dy = random_acts(&mut r, n_out, batch);
        let h = random_acts(&mut r, n_in, batch);
        for isa in isas("sparse-core split_products_give_the_same_bits_on_any_thread_count") {
            let mut want = None;
            for_thread_counts(|threads| {
                let got = with_isa(isa, || products(&layer, &x, &dy, &h)).unwrap();
                let want = want.get_or_insert_with(|| got.clone());
                assert!(
                    *want == got,
                    "{n_out}x{n_in} nnz {nnz} batch {batch}, {isa}: {threads} threads differ"
                );
            });
        }
    }
}
