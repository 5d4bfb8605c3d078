//! A steady sparse TD3 iteration allocates nothing: the paper's network sizes (256-256, batch
//! 100, Hopper's dimensions), counted by a global allocator, for Static-TD3 and DS-TD3 on 1 and 2
//! threads: DS before its first evolution (no topology changes), and 300 iterations after it,
//! when regrown connections are in Adam cohorts of their own.
//!
//! Not covered: dense TD3, whose products go through matrixmultiply, which allocates its
//! packing buffers on every call (about 20 allocations per iteration); and DS-TD3 in the
//! updates right after an evolution, while the target update's scratch vectors grow to their
//! working size (amortised: a handful of allocations over the first few dozen iterations).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{RngExt, SeedableRng, rngs::StdRng};
use sparse_core::{Activations, pool};
use td3::{Agent, Algo, Batch, Config};

/// Counts every allocation and reallocation of the process.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn acts(r: &mut StdRng, features: usize, batch: usize) -> Activations {
    let data: Vec<f32> = (0..features * batch)
        .map(|_| r.random_range(-1.0..1.0))
        .collect();
    Activations::from_samples(features, batch, &data).unwrap()
}

/// Allocations during `counted` iterations that follow `warm` ones.
fn allocations(algo: Algo, threads: usize, warm: usize, counted: usize) -> usize {
    pool::set_threads(threads);
    let mut config = Config::paper("Hopper-v3", algo);
    config.threads = threads;
    let mut r = StdRng::seed_from_u64(9);
    let mut agent = Agent::new(&config, 11, 3, 1.0, &mut r).unwrap();
    let mut not_done = Activations::zeros(1, 100);
    (0..100).for_each(|b| not_done.set(0, b, 1.0));
    let batch = Batch {
        obs: acts(&mut r, 11, 100),
        actions: acts(&mut r, 3, 100),
        rewards: acts(&mut r, 1, 100),
        next_obs: acts(&mut r, 11, 100),
        not_done,
    };
    for _ in 0..warm {
        agent.train(&batch, &mut r).unwrap();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..counted {
        agent.train(&batch, &mut r).unwrap();
    }
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

// One test, so no other test allocates while it counts.
#[test]
fn steady_sparse_iterations_allocate_nothing() {
    // The paper evolves every 1000 iterations: 20 warm-up and 30 counted iterations see none.
    // DS again 300 iterations after its first evolution (past the target update's warm-up,
    // above), with regrown connections corrected by their own age.
    // DS-SAC likewise.
    let cases = [
        (Algo::Static, 20),
        (Algo::Ds, 20),
        (Algo::Ds, 1300),
        (Algo::DsSac, 20),
        (Algo::DsSac, 1300),
    ];
    for (algo, warm) in cases {
        for threads in [1, 2] {
            let n = allocations(algo, threads, warm, 30);
            assert_eq!(
                n, 0,
                "{algo:?} after {warm}, {threads} threads: {n} allocations in 30 iterations"
            );
        }
    }
}
