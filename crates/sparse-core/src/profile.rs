//! Where an iteration's time goes: wall-clock time split into [`Part`]s, measured on the thread
//! that asked for it.
//!
//! Code marks what it is doing with [`scope`]; while profiling is on for the current thread
//! ([`start`] … [`stop`]) each scope's *exclusive* time (its own, less that of scopes opened
//! inside it) is added to its part. Elsewhere a scope costs one thread-local check. Work other
//! threads do is not seen directly: a product split across threads counts in full on the caller
//! (it waits for its share), and time spent waiting for another thread's whole task is its own
//! part, [`Part::Wait`].

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// What the time was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The layer products (sparse and dense kernels: forward, backward-data, weight and bias
    /// gradients, with their fused activations).
    Products,
    /// Optimiser steps.
    Adam,
    /// Target networks' soft update and re-pruning.
    Targets,
    /// Topology evolution.
    Evolution,
    /// Waiting for a task another thread runs side by side.
    Wait,
    /// Everything else (also the time outside every scope, which a report adds here).
    Other,
}

impl Part {
    /// Every part, in report order.
    pub const ALL: [Part; 6] = [
        Part::Products,
        Part::Adam,
        Part::Targets,
        Part::Evolution,
        Part::Wait,
        Part::Other,
    ];

    /// A short description for reports.
    pub fn label(self) -> &'static str {
        match self {
            Part::Products => "products (fwd, bwd-data, grads)",
            Part::Adam => "Adam",
            Part::Targets => "target update and pruning",
            Part::Evolution => "evolution (amortised)",
            Part::Wait => "waiting for the other thread",
            Part::Other => "everything else",
        }
    }
}

/// Exclusive time per [`Part`] (indexed as [`Part::ALL`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Breakdown {
    /// Time of each part, in the order of [`Part::ALL`].
    pub parts: [Duration; 6],
}

impl Breakdown {
    /// The time of `part`.
    pub fn get(&self, part: Part) -> Duration {
        self.parts[part as usize]
    }

    /// The time of all parts together.
    pub fn total(&self) -> Duration {
        self.parts.iter().sum()
    }
}

struct Profiler {
    totals: Breakdown,
    /// Open scopes: part, start, time of the scopes closed inside it.
    stack: Vec<(Part, Instant, Duration)>,
}

thread_local! {
    static PROFILER: RefCell<Option<Profiler>> = const { RefCell::new(None) };
}

/// Starts profiling on this thread (from zero).
pub fn start() {
    PROFILER.with_borrow_mut(|p| {
        *p = Some(Profiler {
            totals: Breakdown::default(),
            stack: Vec::with_capacity(8),
        })
    });
}

/// Stops profiling on this thread and returns what was measured since [`start`] (zero if it
/// was not started).
pub fn stop() -> Breakdown {
    PROFILER
        .with_borrow_mut(|p| p.take())
        .map_or_else(Breakdown::default, |p| p.totals)
}

/// The part of the innermost open scope on this thread ([`Part::Other`] outside every scope or
/// when not profiling): work a thread does for its caller inside [`Part::Wait`] can be
/// attributed to what the caller was doing.
pub fn current() -> Part {
    PROFILER.with_borrow(|p| {
        p.as_ref()
            .and_then(|p| p.stack.last().map(|s| s.0))
            .unwrap_or(Part::Other)
    })
}

/// A marker that the current thread works on `part` until it is dropped.
#[must_use = "the scope ends when this is dropped"]
pub struct Scope {
    active: bool,
}

/// Opens a scope for `part` (a no-op unless this thread is profiling).
#[inline]
pub fn scope(part: Part) -> Scope {
    let active = PROFILER.with_borrow_mut(|p| match p {
        Some(p) => {
            p.stack.push((part, Instant::now(), Duration::ZERO));
            true
        }
        None => false,
    });
    Scope { active }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        PROFILER.with_borrow_mut(|p| {
            let Some(p) = p else { return };
            let Some((part, started, inner)) = p.stack.pop() else {
                return;
            };
            let spent = started.elapsed();
            p.totals.parts[part as usize] += spent.saturating_sub(inner);
            if let Some(parent) = p.stack.last_mut() {
                parent.2 += spent;
            }
        });
    }
}
