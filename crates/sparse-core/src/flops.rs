//! FLOP accounting done by the kernels as they run.
//!
//! Convention: a multiply-add is 2 FLOPs, a lone addition 1. The forward kernel starts each
//! output at its bias and then does one multiply-add per live connection and sample, so it counts
//! `2 · nnz · batch`; backward-data and the weight gradient count the same; the bias gradient
//! counts `n_out · batch` additions. Dense layers count with `nnz = n_in · n_out`. Activation
//! functions and the optimiser are not counted (as in RigL's convention, which the paper uses).

use std::sync::atomic::{AtomicU64, Ordering};

/// The kinds of kernel whose work is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// `y = W x + b`.
    Forward,
    /// `dx = Wᵀ dy`.
    BackwardData,
    /// `dW[j,k] = Σ_b dy[j,b] x[k,b]` at live positions.
    WeightGrad,
    /// `db[j] = Σ_b dy[j,b]`.
    BiasGrad,
}

impl KernelKind {
    /// All kinds, in counter order.
    pub const ALL: [KernelKind; 4] = [
        KernelKind::Forward,
        KernelKind::BackwardData,
        KernelKind::WeightGrad,
        KernelKind::BiasGrad,
    ];

    fn slot(self) -> usize {
        self as usize
    }
}

/// FLOPs per kernel kind: a plain snapshot that can be added up across layers and networks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Flops {
    /// Forward kernel FLOPs.
    pub forward: u64,
    /// Backward-data kernel FLOPs.
    pub backward_data: u64,
    /// Weight-gradient kernel FLOPs.
    pub weight_grad: u64,
    /// Bias-gradient kernel FLOPs.
    pub bias_grad: u64,
}

impl Flops {
    /// Sum over all kinds.
    pub fn total(&self) -> u64 {
        self.forward + self.backward_data + self.weight_grad + self.bias_grad
    }

    /// FLOPs of one kind.
    pub fn get(&self, kind: KernelKind) -> u64 {
        match kind {
            KernelKind::Forward => self.forward,
            KernelKind::BackwardData => self.backward_data,
            KernelKind::WeightGrad => self.weight_grad,
            KernelKind::BiasGrad => self.bias_grad,
        }
    }
}

impl std::ops::Add for Flops {
    type Output = Flops;
    fn add(self, o: Flops) -> Flops {
        Flops {
            forward: self.forward + o.forward,
            backward_data: self.backward_data + o.backward_data,
            weight_grad: self.weight_grad + o.weight_grad,
            bias_grad: self.bias_grad + o.bias_grad,
        }
    }
}

impl std::iter::Sum for Flops {
    fn sum<T: Iterator<Item = Flops>>(iter: T) -> Flops {
        iter.fold(Flops::default(), |a, b| a + b)
    }
}

/// Resettable, thread-safe FLOP counters, one per kernel kind; each layer owns one and passes it
/// to the kernels it runs.
#[derive(Debug, Default)]
pub struct FlopCounter {
    counts: [AtomicU64; 4],
}

impl Clone for FlopCounter {
    fn clone(&self) -> Self {
        FlopCounter::from(self.snapshot())
    }
}

impl From<Flops> for FlopCounter {
    fn from(f: Flops) -> Self {
        let c = FlopCounter::default();
        for k in KernelKind::ALL {
            c.add(k, f.get(k));
        }
        c
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for FlopCounter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.snapshot().serialize(s)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for FlopCounter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Flops::deserialize(d).map(FlopCounter::from)
    }
}

impl FlopCounter {
    /// Adds `flops` to the counter of `kind`.
    #[inline]
    pub fn add(&self, kind: KernelKind, flops: u64) {
        self.counts[kind.slot()].fetch_add(flops, Ordering::Relaxed);
    }

    /// Current counts.
    pub fn snapshot(&self) -> Flops {
        let g = |k: KernelKind| self.counts[k.slot()].load(Ordering::Relaxed);
        Flops {
            forward: g(KernelKind::Forward),
            backward_data: g(KernelKind::BackwardData),
            weight_grad: g(KernelKind::WeightGrad),
            bias_grad: g(KernelKind::BiasGrad),
        }
    }

    /// Sets every count to zero.
    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
    }
}
