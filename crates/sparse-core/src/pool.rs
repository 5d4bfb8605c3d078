//! A fork-join pool for splitting work inside one training iteration: the rows of one product,
//! or two independent networks' steps.
//!
//! A TD3 iteration is a chain of some twenty products of 20–100 µs each, so a fork-join must
//! cost about a microsecond, not the 6–13 µs of a general-purpose pool whose idle threads sleep
//! in the kernel. Here each worker spins on its own cache line between jobs and parks only after
//! [`SPIN`] without work (so an idle process gives its cores back, and a training loop, whose
//! gaps between iterations are a few hundred microseconds of simulation, never pays a wake-up).
//!
//! The process has one pool, sized by [`set_threads`] (1 by default: everything runs inline on
//! the caller). Work is handed out only by the thread that holds the pool; a split requested
//! while the pool is busy (inside a job, or from another thread) runs inline, so nesting is safe
//! and never deadlocks. Splitting never changes results: callers split into independent parts
//! (rows of an output, whole networks), each computed exactly as it would be on one thread.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it parks.
pub const SPIN: Duration = Duration::from_millis(2);

/// Most threads a pool may have.
pub const MAX_THREADS: usize = 256;

/// A job as the workers see it: its parts are claimed one at a time by whichever thread is
/// free, the poster included, so a worker that the OS has not scheduled yet delays nothing.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    /// The next part to claim.
    next: AtomicUsize,
    /// Set when a part panicked.
    panicked: AtomicBool,
}

impl Job<'_> {
    /// Claims and runs parts until none is left.
    fn run(&self) {
        loop {
            let p = self.next.fetch_add(1, Ordering::Relaxed);
            if p >= self.parts {
                return;
            }
            if catch_unwind(AssertUnwindSafe(|| (self.f)(p))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Mailbox states.
const EMPTY: u8 = 0;
const POSTED: u8 = 1;
const TAKEN: u8 = 2;

/// One worker's mailbox, on its own cache lines.
#[repr(align(128))]
struct Mailbox {
    /// [`EMPTY`] → [`POSTED`] (by the poster) → [`TAKEN`] (by the worker) → [`EMPTY`] (by the
    /// worker, when done); or [`POSTED`] → [`EMPTY`] when the poster takes the job back.
    state: AtomicU8,
    /// The job (written before `state` becomes [`POSTED`]).
    job: UnsafeCell<*const Job<'static>>,
    /// Set while the worker is parked (or about to park).
    parked: AtomicBool,
}

// SAFETY: `job` is written only by the poster while the mailbox is EMPTY, before it releases
// POSTED, and read only by the worker after it won the POSTED → TAKEN exchange; the poster
// keeps the job alive until the state is EMPTY again (taken back, or released by the worker).
unsafe impl Sync for Mailbox {}
// SAFETY: as for `Sync`: the pointer is only dereferenced under that protocol.
unsafe impl Send for Mailbox {}

struct Pool {
    boxes: Vec<Arc<Mailbox>>,
    threads: Vec<Thread>,
    /// Held by the thread handing out work.
    busy: AtomicBool,
}

/// The pool, replaced as a whole by [`set_threads`] (old workers park for good: a resize is
/// rare).
static POOL: OnceLock<Mutex<Arc<Pool>>> = OnceLock::new();
/// Threads of the current pool (1: no workers), readable without the lock.
static THREADS: AtomicUsize = AtomicUsize::new(1);

fn pool_cell() -> &'static Mutex<Arc<Pool>> {
    POOL.get_or_init(|| Mutex::new(Arc::new(Pool::new(1))))
}

impl Pool {
    fn new(threads: usize) -> Pool {
        let mut boxes = Vec::new();
        let mut handles = Vec::new();
        for i in 1..threads {
            let mb = Arc::new(Mailbox {
                state: AtomicU8::new(EMPTY),
                job: UnsafeCell::new(std::ptr::null()),
                parked: AtomicBool::new(false),
            });
            let worker = Arc::clone(&mb);
            let handle = thread::Builder::new()
                .name(format!("ds-td3-pool-{i}"))
                .spawn(move || work(&worker))
                .expect("cannot start a pool thread");
            boxes.push(mb);
            handles.push(handle.thread().clone());
        }
        Pool {
            boxes,
            threads: handles,
            busy: AtomicBool::new(false),
        }
    }
}

/// A worker's loop: spin for a posted job, park after [`SPIN`] without one.
fn work(mb: &Mailbox) {
    loop {
        let mut idle_since = None;
        let mut spins = 0u32;
        loop {
            if mb.state.load(Ordering::Acquire) == POSTED
                && mb
                    .state
                    .compare_exchange(POSTED, TAKEN, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1024) {
                let start = *idle_since.get_or_insert_with(Instant::now);
                if start.elapsed() >= SPIN {
                    mb.parked.store(true, Ordering::SeqCst);
                    if mb.state.load(Ordering::SeqCst) != POSTED {
                        thread::park();
                    }
                    mb.parked.store(false, Ordering::SeqCst);
                    idle_since = None;
                }
            }
            std::hint::spin_loop();
        }
        // SAFETY: we won POSTED → TAKEN, so the poster wrote the job before releasing POSTED
        // and keeps it alive until we store EMPTY below.
        unsafe { (**mb.job.get()).run() };
        mb.state.store(EMPTY, Ordering::Release);
    }
}

/// Sets the number of threads work is split across (1 = everything inline on the caller);
/// starts the workers. Results do not depend on it.
///
/// # Panics
/// If `threads` is 0 or above [`MAX_THREADS`].
pub fn set_threads(threads: usize) {
    assert!(
        (1..=MAX_THREADS).contains(&threads),
        "thread count {threads} outside 1..={MAX_THREADS}"
    );
    let mut cell = pool_cell().lock().unwrap_or_else(|e| e.into_inner());
    if cell.boxes.len() + 1 != threads {
        *cell = Arc::new(Pool::new(threads));
    }
    THREADS.store(threads, Ordering::Relaxed);
}

/// The number of threads work is split across.
pub fn threads() -> usize {
    THREADS.load(Ordering::Relaxed)
}

/// Runs `f(0) … f(parts − 1)`, spread over the pool's threads (the caller takes parts too), and
/// returns when all have finished. With one thread, or while the pool is busy, all parts run
/// inline in order.
///
/// # Panics
/// If a part panicked (after all parts have finished).
pub fn for_each_part(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 || threads() <= 1 {
        (0..parts).for_each(f);
        return;
    }
    let pool = pool_cell()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if pool.boxes.is_empty()
        || pool
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        (0..parts).for_each(f);
        return;
    }
    struct Release<'a>(&'a AtomicBool);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let _release = Release(&pool.busy);
    let job = Job {
        f,
        parts,
        next: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
    };
    let helpers = &pool.boxes[..pool.boxes.len().min(parts - 1)];
    for (w, mb) in helpers.iter().enumerate() {
        // SAFETY: the mailbox is EMPTY (we hold the pool, and every job handed out before was
        // taken back or finished before its poster released the pool), so no worker reads
        // `job` now; `job` outlives the wait below, which lasts until the mailbox is EMPTY
        // again, so erasing its lifetime is sound.
        unsafe {
            *mb.job.get() = std::mem::transmute::<*const Job<'_>, *const Job<'static>>(&job);
        }
        mb.state.store(POSTED, Ordering::SeqCst);
        if mb.parked.load(Ordering::SeqCst) {
            pool.threads[w].unpark();
        }
    }
    job.run();
    for mb in helpers {
        // Take back a job the worker has not started (nothing is left to do); otherwise wait
        // for the worker to finish the part it claimed.
        if mb
            .state
            .compare_exchange(POSTED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            let mut spins = 0u32;
            while mb.state.load(Ordering::Acquire) != EMPTY {
                spins = spins.wrapping_add(1);
                if spins > 1 << 16 {
                    // The worker was descheduled mid-part: let it run.
                    thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }
    if job.panicked.load(Ordering::Relaxed) {
        panic!("a part of a pool job panicked");
    }
}

/// Runs `a` and `b`, on two threads when the pool has them and is free (`b` on a worker), else
/// one after the other; returns both results.
pub fn join<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    let a = Mutex::new(Some(a));
    let b = Mutex::new(Some(b));
    let (ra, rb) = (Mutex::new(None), Mutex::new(None));
    for_each_part(2, &|part| {
        if part == 0 {
            let f = a.lock().unwrap_or_else(|e| e.into_inner()).take();
            *ra.lock().unwrap_or_else(|e| e.into_inner()) = f.map(|f| f());
        } else {
            let f = b.lock().unwrap_or_else(|e| e.into_inner()).take();
            *rb.lock().unwrap_or_else(|e| e.into_inner()) = f.map(|f| f());
        }
    });
    let ra = ra.into_inner().unwrap_or_else(|e| e.into_inner());
    let rb = rb.into_inner().unwrap_or_else(|e| e.into_inner());
    (ra.expect("part 0 ran"), rb.expect("part 1 ran"))
}
