//! The replay buffer: preallocated storage of transitions in which every observation is held
//! once, sampled uniformly into feature-major minibatches.
//!
//! Each transition yields exactly what the TD3 update reads: `s`, `a`, `r`, `s'` and
//! `1 − terminated` (a time-limit truncation is not terminal, so it bootstraps).
//!
//! # Layout: each observation once
//!
//! In a training loop the next transition starts where the last one ended (`s` of transition
//! `k + 1` is `s'` of transition `k`), except after an episode ends, when `s` is the reset
//! observation. So the buffer stores `s` of every transition in its slot of a ring of `capacity`
//! slots and reads `s'` of slot `i` from slot `i + 1` (as Stable-Baselines3's
//! `optimize_memory_usage` does), with two exceptions:
//!
//! - `s'` of the newest transition is held in a vector of its own (the `capacity + 1`-th
//!   observation), so a full ring loses no transition;
//! - when a push's `s` differs (bitwise, in the stored type) from the previous transition's
//!   `s'` — an episode ended in between, whether terminated or truncated, or the caller pushes
//!   unrelated transitions — that `s'` is *kept aside*: a first-in first-out list of
//!   (transition number, observation), from which an entry is dropped when its transition is
//!   overwritten. It holds one entry per stored transition that the next one does not continue:
//!   in training, one per episode in the buffer (a 10⁶ Hopper-v3 buffer of 1000-step episodes:
//!   1000 entries of 52 bytes; of 20-step episodes, as while the policy is random: 50 000).
//!
//! The layout is an implementation detail: [`ReplayBuffer::sample`] returns bit for bit the
//! values a buffer holding `s` and `s'` separately would return, for any sequence of pushes,
//! before and after the ring wraps and across a checkpoint. A 10⁶-transition buffer for
//! Humanoid-v3 (376 observation and 17 action dimensions) takes 1.47 GiB instead of 2.94 GiB.
//!
//! # Storage type
//!
//! Observations and actions are stored as [`BufferDtype::F32`] by default, or, to halve them
//! again, as IEEE half precision ([`BufferDtype::F16`]: 11 significant bits, largest finite value
//! 65504) or bfloat16 ([`BufferDtype::Bf16`]: 8 significant bits, the range of `f32`). Values
//! arrive as `f64` and are rounded once to the stored type (to nearest, ties to even), and are
//! widened exactly to `f32` when sampled. Rewards are always `f32` and terminal flags bits. Runs
//! with half-precision buffers are *not* bit-compatible with `f32` runs: the networks see
//! rounded observations and actions.
//!
//! # Dropping the oldest
//!
//! [`ReplayBuffer::drop_oldest`] forgets the oldest transitions before the ring overwrites them
//! (RLx2's policy-aware buffer shrinks this way, [`crate::config::DynamicBuffer`]): they are no
//! longer sampled, and the buffer holds fewer than its capacity until new pushes fill it again.
//! Their slots keep their values until overwritten. A buffer that never dropped samples exactly
//! as before.
//!
//! The arrays are allocated once at full capacity (reserved, and filled by appending until the
//! ring wraps); the operating system backs them with memory only as they fill, also after a
//! resume. [`ReplayBuffer::bytes`] reports the capacity allocated plus what the list
//! of kept-aside observations holds at the moment.

use std::collections::{TryReserveError, VecDeque};
use std::fmt::Debug;

use half::{bf16, f16};
use rand::{Rng, RngExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sparse_core::Activations;

use crate::{Error, Result};

/// How a [`ReplayBuffer`] stores observations and actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BufferDtype {
    /// 32-bit floats: what the networks compute in, so training is exact (the default).
    #[default]
    F32,
    /// IEEE 754 half precision (11 significant bits, finite up to 65504); not bit-compatible
    /// with `f32` runs.
    F16,
    /// bfloat16 (8 significant bits, the exponent range of `f32`); not bit-compatible with `f32`
    /// runs.
    Bf16,
}

impl BufferDtype {
    /// Bytes per stored value.
    pub fn size(self) -> usize {
        match self {
            BufferDtype::F32 => 4,
            BufferDtype::F16 | BufferDtype::Bf16 => 2,
        }
    }

    /// The name the command line and configuration files use (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            BufferDtype::F32 => "f32",
            BufferDtype::F16 => "f16",
            BufferDtype::Bf16 => "bf16",
        }
    }
}

impl std::fmt::Display for BufferDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A value type observations and actions can be stored as.
trait Elem: Copy + Default + Debug + PartialEq + Serialize + DeserializeOwned + 'static {
    /// Rounds `v` once to this type.
    fn from_f64(v: f64) -> Self;
    /// The value, widened exactly.
    fn to_f32(self) -> f32;
    /// Whether `a` and `b` have the same bits (so `-0.0` differs from `0.0`, and a NaN equals
    /// the same NaN).
    fn same_bits(a: Self, b: Self) -> bool;
}

impl Elem for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn same_bits(a: Self, b: Self) -> bool {
        a.to_bits() == b.to_bits()
    }
}

impl Elem for f16 {
    fn from_f64(v: f64) -> Self {
        f16::from_f64(v)
    }
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn same_bits(a: Self, b: Self) -> bool {
        a.to_bits() == b.to_bits()
    }
}

impl Elem for bf16 {
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn same_bits(a: Self, b: Self) -> bool {
        a.to_bits() == b.to_bits()
    }
}

/// Observations and actions in one storage type.
#[derive(Debug, Clone, PartialEq)]
struct Store<T> {
    /// `s` of the transition in each slot (`capacity × obs_dim`).
    obs: Vec<T>,
    /// `a` of each slot (`capacity × act_dim`).
    actions: Vec<T>,
    /// `s'` of the newest transition (`obs_dim`).
    last_next: Vec<T>,
    /// The kept-aside `s'` of the transitions in `aside_ids`, `obs_dim` values each.
    aside: VecDeque<T>,
}

impl<T: Elem> Store<T> {
    /// An empty store with room for `capacity` transitions (reserved, not yet backed).
    fn new(
        capacity: usize,
        obs_dim: usize,
        act_dim: usize,
    ) -> std::result::Result<Self, TryReserveError> {
        let (mut obs, mut actions) = (Vec::new(), Vec::new());
        obs.try_reserve_exact(capacity * obs_dim)?;
        actions.try_reserve_exact(capacity * act_dim)?;
        Ok(Self {
            obs,
            actions,
            last_next: vec![T::default(); obs_dim],
            aside: VecDeque::new(),
        })
    }
}

/// The storage, by type.
#[derive(Debug, Clone, PartialEq)]
enum Data {
    F32(Store<f32>),
    F16(Store<f16>),
    Bf16(Store<bf16>),
}

/// Runs `$body` with `$s` bound to the typed store of `$data`.
macro_rules! with_store {
    ($data:expr, $s:ident => $body:expr) => {
        match $data {
            Data::F32($s) => $body,
            Data::F16($s) => $body,
            Data::Bf16($s) => $body,
        }
    };
}

/// A ring buffer of transitions; the oldest are overwritten once it is full. See the module
/// documentation for its layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayBuffer {
    obs_dim: usize,
    act_dim: usize,
    capacity: usize,
    /// Transitions stored: the newest `len` pushed, at most `capacity` (fewer after
    /// [`Self::drop_oldest`]).
    len: usize,
    /// Transitions pushed since the buffer was created; transition `k` is in slot
    /// `k % capacity`.
    pushed: u64,
    rewards: Vec<f32>,
    /// Bit `i % 64` of word `i / 64`: whether slot `i`'s transition ended in a terminal state.
    terminated: Vec<u64>,
    /// Transition numbers whose `s'` is kept aside, increasing (first in, first out).
    aside_ids: VecDeque<u64>,
    data: Data,
}

/// A minibatch in feature-major layout, ready for the networks.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// States `s` (`obs_dim × batch`).
    pub obs: Activations,
    /// Actions `a` (`act_dim × batch`).
    pub actions: Activations,
    /// Rewards `r` (`1 × batch`).
    pub rewards: Activations,
    /// Next states `s'` (`obs_dim × batch`).
    pub next_obs: Activations,
    /// `1 − terminated` (`1 × batch`); in an `m`-step sample, `(1 − terminated) · γ^{m−1}`, the
    /// bootstrap's weight beyond one `γ` ([`ReplayBuffer::sample_n_step`]).
    pub not_done: Activations,
}

impl ReplayBuffer {
    /// An empty `f32` buffer for `capacity` transitions.
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Result<Self> {
        Self::with_dtype(capacity, obs_dim, act_dim, BufferDtype::F32)
    }

    /// An empty buffer for `capacity` transitions storing observations and actions as `dtype`.
    pub fn with_dtype(
        capacity: usize,
        obs_dim: usize,
        act_dim: usize,
        dtype: BufferDtype,
    ) -> Result<Self> {
        if capacity == 0 || obs_dim == 0 || act_dim == 0 {
            return Err(Error::Config(
                "replay buffer capacity and dimensions must be at least 1".into(),
            ));
        }
        let too_large = || {
            Error::Config(format!(
                "a replay buffer of {capacity} transitions of {obs_dim} + {act_dim} values does \
                 not fit in memory"
            ))
        };
        capacity
            .checked_mul(obs_dim + act_dim + 2)
            .and_then(|n| n.checked_mul(dtype.size().max(4)))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(too_large)?;
        let data = match dtype {
            BufferDtype::F32 => {
                Data::F32(Store::new(capacity, obs_dim, act_dim).map_err(|_| too_large())?)
            }
            BufferDtype::F16 => {
                Data::F16(Store::new(capacity, obs_dim, act_dim).map_err(|_| too_large())?)
            }
            BufferDtype::Bf16 => {
                Data::Bf16(Store::new(capacity, obs_dim, act_dim).map_err(|_| too_large())?)
            }
        };
        let (mut rewards, mut terminated) = (Vec::new(), Vec::new());
        rewards
            .try_reserve_exact(capacity)
            .map_err(|_| too_large())?;
        terminated
            .try_reserve_exact(capacity.div_ceil(64))
            .map_err(|_| too_large())?;
        Ok(Self {
            obs_dim,
            act_dim,
            capacity,
            len: 0,
            pushed: 0,
            rewards,
            terminated,
            aside_ids: VecDeque::new(),
            data,
        })
    }

    /// Transitions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no transition is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum transitions held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How observations and actions are stored.
    pub fn dtype(&self) -> BufferDtype {
        match self.data {
            Data::F32(_) => BufferDtype::F32,
            Data::F16(_) => BufferDtype::F16,
            Data::Bf16(_) => BufferDtype::Bf16,
        }
    }

    /// Bytes of the arrays allocated at creation for `capacity` transitions: `s` and `a` of
    /// every slot and the newest `s'` as `dtype`, rewards as `f32`, terminal flags as bits. The
    /// observations kept aside at episode ends come on top ([`Self::bytes_per_episode_end`]).
    pub fn fixed_bytes(
        capacity: usize,
        obs_dim: usize,
        act_dim: usize,
        dtype: BufferDtype,
    ) -> usize {
        dtype.size() * (capacity * (obs_dim + act_dim) + obs_dim)
            + 4 * capacity
            + 8 * capacity.div_ceil(64)
    }

    /// Bytes one kept-aside observation takes (its values and its transition number), not
    /// counting the list's spare capacity.
    pub fn bytes_per_episode_end(&self) -> usize {
        self.dtype().size() * self.obs_dim + 8
    }

    /// Observations kept aside now (at most one per episode end among the stored transitions).
    pub fn kept_aside(&self) -> usize {
        self.aside_ids.len()
    }

    /// Bytes allocated: the fixed arrays at full capacity ([`Self::fixed_bytes`]) plus the
    /// list of kept-aside observations as allocated now.
    pub fn bytes(&self) -> usize {
        let aside = with_store!(&self.data, s => s.aside.capacity() * self.dtype().size());
        Self::fixed_bytes(self.capacity, self.obs_dim, self.act_dim, self.dtype())
            + aside
            + 8 * self.aside_ids.capacity()
    }

    /// Stores one transition (values rounded to the stored type).
    pub fn push(
        &mut self,
        obs: &[f64],
        action: &[f64],
        reward: f64,
        next_obs: &[f64],
        terminated: bool,
    ) -> Result<()> {
        if obs.len() != self.obs_dim
            || next_obs.len() != self.obs_dim
            || action.len() != self.act_dim
        {
            return Err(Error::Config(format!(
                "transition shapes ({}, {}, {}) do not match the buffer ({}, {})",
                obs.len(),
                action.len(),
                next_obs.len(),
                self.obs_dim,
                self.act_dim
            )));
        }
        let (od, cap) = (self.obs_dim, self.capacity as u64);
        let k = self.pushed;
        let i = (k % cap) as usize;
        let ids = &mut self.aside_ids;
        with_store!(&mut self.data, s => {
            // Transition k − capacity, overwritten now, takes its kept-aside `s'` with it.
            if k >= cap && ids.front().is_some_and(|&f| f <= k - cap) {
                ids.pop_front();
                s.aside.drain(..od);
            }
            put_slot(&mut s.obs, i, obs.iter().map(|&v| Elem::from_f64(v)));
            put_slot(&mut s.actions, i, action.iter().map(|&v| Elem::from_f64(v)));
            // Transition k − 1 read its `s'` from this slot's `s`; when they differ, its `s'`
            // is kept aside (unless it was overwritten just now, in a ring of one slot).
            if k > 0 && cap > 1 {
                let same = s.obs[i * od..(i + 1) * od]
                    .iter()
                    .zip(&s.last_next)
                    .all(|(&a, &b)| Elem::same_bits(a, b));
                if !same {
                    ids.push_back(k - 1);
                    s.aside.extend(s.last_next.iter().copied());
                }
            }
            s.last_next
                .iter_mut()
                .zip(next_obs)
                .for_each(|(d, &v)| *d = Elem::from_f64(v));
        });
        put_slot(&mut self.rewards, i, std::iter::once(reward as f32));
        if i.is_multiple_of(64) && self.terminated.len() == i / 64 {
            self.terminated.push(0);
        }
        let bit = 1u64 << (i % 64);
        if terminated {
            self.terminated[i / 64] |= bit;
        } else {
            self.terminated[i / 64] &= !bit;
        }
        self.pushed = k + 1;
        self.len = (self.len + 1).min(self.capacity);
        Ok(())
    }

    /// `1 − terminated` of the transition in `slot`: 0 after a terminal state, 1 otherwise
    /// (including a time-limit truncation).
    fn not_done_at(&self, slot: usize) -> f32 {
        if self.terminated[slot / 64] >> (slot % 64) & 1 == 1 {
            0.0
        } else {
            1.0
        }
    }

    /// Each stored transition's `1 − terminated` flag (0 after a terminal state, 1 otherwise,
    /// including a time-limit truncation), by slot (a copy, for inspection; slots `0..len` of a
    /// buffer that never dropped transitions).
    pub fn not_done(&self) -> Vec<f32> {
        (0..self.len)
            .map(|i| self.slot(i))
            .map(|i| self.not_done_at(i))
            .collect()
    }

    /// Slots filled since creation: `min(pushed, capacity)`.
    fn filled(&self) -> usize {
        self.rewards.len()
    }

    /// The slot of the `j`-th stored transition: oldest first once transitions were dropped,
    /// otherwise slot `j` (the order sampling has always used).
    fn slot(&self, j: usize) -> usize {
        if self.len == self.filled() {
            j
        } else {
            self.slot_by_age(j)
        }
    }

    /// The slot of the `j`-th stored transition counted from the oldest.
    fn slot_by_age(&self, j: usize) -> usize {
        ((self.pushed - (self.len - j) as u64) % self.capacity as u64) as usize
    }

    /// Forgets the `count` oldest stored transitions (all but the newest at most): they are no
    /// longer sampled, and pushes refill the room.
    pub fn drop_oldest(&mut self, count: usize) {
        self.len -= count.min(self.len.saturating_sub(1));
    }

    /// `s` and `a` of the `count` oldest stored transitions (fewer if fewer are stored), oldest
    /// first, widened to `f64`.
    pub fn oldest(&self, count: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
        let (od, ad) = (self.obs_dim, self.act_dim);
        with_store!(&self.data, s => {
            (0..count.min(self.len))
                .map(|j| {
                    let i = self.slot_by_age(j);
                    let obs = s.obs[i * od..(i + 1) * od].iter();
                    let actions = s.actions[i * ad..(i + 1) * ad].iter();
                    (
                        obs.map(|&v| v.to_f32() as f64).collect(),
                        actions.map(|&v| v.to_f32() as f64).collect(),
                    )
                })
                .collect()
        })
    }

    /// Fills `batch` with `size` transitions drawn uniformly with replacement.
    ///
    /// # Errors
    /// If the buffer is empty.
    pub fn sample<R: Rng + ?Sized>(
        &self,
        size: usize,
        rng: &mut R,
        batch: &mut Batch,
    ) -> Result<()> {
        self.sample_n_step(size, 1, 1.0, rng, batch)
    }

    /// Fills `batch` with `size` `n`-step transitions whose first transitions are drawn
    /// uniformly with replacement (the same draws as [`Self::sample`]). From a drawn transition
    /// `t`, the return sums `γ^j r_{t+j}` over the `m ≤ n` transitions of the same episode that
    /// follow on from it: it stops early after a terminal transition, at an episode end that is
    /// not terminal (a time-limit truncation: the next stored transition does not continue this
    /// one), and at the newest transition. `next_obs` is `s'` of the last of them, and
    /// `not_done` carries the bootstrap's weight beyond one `γ`: `(1 − terminated) · γ^{m−1}`,
    /// so that the update's `r + not_done · γ · Q(s', ·)` is the `m`-step target. With `n = 1`
    /// this is exactly [`Self::sample`] (RLx2 samples windows alike; Tan et al. 2023).
    ///
    /// # Errors
    /// If the buffer is empty, or `n` is 0.
    pub fn sample_n_step<R: Rng + ?Sized>(
        &self,
        size: usize,
        n: usize,
        gamma: f64,
        rng: &mut R,
        batch: &mut Batch,
    ) -> Result<()> {
        if self.len == 0 {
            return Err(Error::Config(
                "cannot sample from an empty replay buffer".into(),
            ));
        }
        if n == 0 {
            return Err(Error::Config("n-step targets need n ≥ 1".into()));
        }
        batch.obs.ensure_shape(self.obs_dim, size);
        batch.actions.ensure_shape(self.act_dim, size);
        batch.rewards.ensure_shape(1, size);
        batch.next_obs.ensure_shape(self.obs_dim, size);
        batch.not_done.ensure_shape(1, size);
        let (od, ad, cap) = (self.obs_dim, self.act_dim, self.capacity);
        let newest = ((self.pushed - 1) % cap as u64) as usize;
        with_store!(&self.data, s => {
            for b in 0..size {
                let i = self.slot(rng.random_range(0..self.len));
                for f in 0..od {
                    batch.obs.set(f, b, s.obs[i * od + f].to_f32());
                }
                for f in 0..ad {
                    batch.actions.set(f, b, s.actions[i * ad + f].to_f32());
                }
                // Walk the transitions that follow on from slot i, at most n of them.
                let (mut last, mut reward, mut discount) = (i, 0.0f64, 1.0f64);
                let next = loop {
                    reward += discount * self.rewards[last] as f64;
                    let next = self.next_obs_source(last, newest);
                    let steps = (last + cap - i) % cap + 1;
                    let ends = self.not_done_at(last) == 0.0
                        || steps == n
                        || last == newest
                        || matches!(next, NextObs::Aside(_));
                    if ends {
                        break next;
                    }
                    discount *= gamma;
                    last = (last + 1) % cap;
                };
                for f in 0..od {
                    let v = match next {
                        NextObs::Last => s.last_next[f],
                        NextObs::Aside(j) => s.aside[j * od + f],
                        NextObs::Slot(n) => s.obs[n * od + f],
                    };
                    batch.next_obs.set(f, b, v.to_f32());
                }
                batch.rewards.set(0, b, reward as f32);
                let not_done = self.not_done_at(last);
                let weight = if n == 1 {
                    not_done
                } else {
                    not_done * discount as f32
                };
                batch.not_done.set(0, b, weight);
            }
        });
        Ok(())
    }

    /// Where `s'` of the transition in `slot` is stored (`newest`: the newest transition's slot).
    fn next_obs_source(&self, slot: usize, newest: usize) -> NextObs {
        if slot == newest {
            return NextObs::Last;
        }
        let cap = self.capacity;
        // Slot `slot` holds transition `pushed − 1 − age`.
        let age = (newest + cap - slot) % cap;
        let k = self.pushed - 1 - age as u64;
        match self.aside_ids.binary_search(&k) {
            Ok(j) => NextObs::Aside(j),
            Err(_) => NextObs::Slot((slot + 1) % cap),
        }
    }
}

/// Where a transition's `s'` is stored.
enum NextObs {
    /// The newest transition's own vector.
    Last,
    /// Entry `j` of the kept-aside list: the next stored transition does not continue this one.
    Aside(usize),
    /// `s` of this slot, which the next transition starts from.
    Slot(usize),
}

/// Writes `values` into slot `i` of `v` (slots of `values.len()` elements), appending while the
/// ring is filling: the arrays grow into the room reserved at creation, so memory is backed only
/// as it fills (also after a resume).
fn put_slot<T: Copy>(v: &mut Vec<T>, i: usize, values: impl ExactSizeIterator<Item = T>) {
    let width = values.len();
    if v.len() == i * width {
        v.extend(values);
    } else {
        v[i * width..(i + 1) * width]
            .iter_mut()
            .zip(values)
            .for_each(|(d, x)| *d = x);
    }
}

/// The serialised buffer holds only the filled part, written from borrowed slices, so saving a
/// checkpoint never copies the buffer.
#[derive(Serialize)]
struct PartsRef<'a, T> {
    obs_dim: usize,
    act_dim: usize,
    capacity: usize,
    pushed: u64,
    len: usize,
    rewards: &'a [f32],
    terminated: &'a [u64],
    obs: &'a [T],
    actions: &'a [T],
    last_next: &'a [T],
    aside_ids: &'a VecDeque<u64>,
    aside: &'a VecDeque<T>,
}

/// The read side of [`PartsRef`].
#[derive(Deserialize)]
struct Parts<T> {
    obs_dim: usize,
    act_dim: usize,
    capacity: usize,
    pushed: u64,
    len: usize,
    rewards: Vec<f32>,
    terminated: Vec<u64>,
    obs: Vec<T>,
    actions: Vec<T>,
    last_next: Vec<T>,
    aside_ids: VecDeque<u64>,
    aside: VecDeque<T>,
}

/// The serialised form: the storage type, then its parts.
#[derive(Serialize)]
enum WireRef<'a> {
    F32(PartsRef<'a, f32>),
    F16(PartsRef<'a, f16>),
    Bf16(PartsRef<'a, bf16>),
}

/// The read side of [`WireRef`].
#[derive(Deserialize)]
enum Wire {
    F32(Parts<f32>),
    F16(Parts<f16>),
    Bf16(Parts<bf16>),
}

impl<T: Elem> Parts<T> {
    /// The buffer, after checking that the parts fit together. The filled arrays are given room
    /// for full capacity in place (a large allocation grows by remapping its pages, without a
    /// second copy of the buffer in memory, and the room is backed by memory only as it fills).
    fn into_buffer(
        mut self,
        wrap: fn(Store<T>) -> Data,
    ) -> std::result::Result<ReplayBuffer, String> {
        let (od, ad, cap) = (self.obs_dim, self.act_dim, self.capacity);
        let n = self.rewards.len();
        if cap == 0 || od == 0 || ad == 0 {
            return Err("replay buffer capacity and dimensions must be at least 1".into());
        }
        let first_stored = self.pushed.saturating_sub(n as u64);
        let consistent = n as u64 == self.pushed.min(cap as u64)
            && self.len <= n
            && (self.len == 0) == (n == 0)
            && cap.checked_mul(od + ad + 2).is_some()
            && self.terminated.len() == n.div_ceil(64)
            && (n.is_multiple_of(64) || self.terminated[n / 64] >> (n % 64) == 0)
            && self.obs.len() == n * od
            && self.actions.len() == n * ad
            && self.last_next.len() == od
            && self.aside.len() == self.aside_ids.len() * od
            && self
                .aside_ids
                .iter()
                .zip(self.aside_ids.iter().skip(1))
                .all(|(a, b)| a < b)
            && self
                .aside_ids
                .iter()
                .all(|&k| k >= first_stored && k + 1 < self.pushed);
        if !consistent {
            return Err("replay buffer arrays are inconsistent".into());
        }
        let room = || {
            format!(
                "a replay buffer of {cap} transitions of {od} + {ad} values does not fit in \
                 memory"
            )
        };
        self.rewards
            .try_reserve_exact(cap - n)
            .map_err(|_| room())?;
        self.terminated
            .try_reserve_exact(cap.div_ceil(64) - n.div_ceil(64))
            .map_err(|_| room())?;
        self.obs
            .try_reserve_exact((cap - n) * od)
            .map_err(|_| room())?;
        self.actions
            .try_reserve_exact((cap - n) * ad)
            .map_err(|_| room())?;
        Ok(ReplayBuffer {
            obs_dim: od,
            act_dim: ad,
            capacity: cap,
            len: self.len,
            pushed: self.pushed,
            rewards: self.rewards,
            terminated: self.terminated,
            aside_ids: self.aside_ids,
            data: wrap(Store {
                obs: self.obs,
                actions: self.actions,
                last_next: self.last_next,
                aside: self.aside,
            }),
        })
    }
}

impl Serialize for ReplayBuffer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let n = self.filled();
        macro_rules! parts {
            ($st:expr) => {
                PartsRef {
                    obs_dim: self.obs_dim,
                    act_dim: self.act_dim,
                    capacity: self.capacity,
                    pushed: self.pushed,
                    len: self.len,
                    rewards: &self.rewards[..n],
                    terminated: &self.terminated[..n.div_ceil(64)],
                    obs: &$st.obs[..n * self.obs_dim],
                    actions: &$st.actions[..n * self.act_dim],
                    last_next: &$st.last_next,
                    aside_ids: &self.aside_ids,
                    aside: &$st.aside,
                }
            };
        }
        match &self.data {
            Data::F32(st) => WireRef::F32(parts!(st)),
            Data::F16(st) => WireRef::F16(parts!(st)),
            Data::Bf16(st) => WireRef::Bf16(parts!(st)),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReplayBuffer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match Wire::deserialize(d)? {
            Wire::F32(p) => p.into_buffer(Data::F32),
            Wire::F16(p) => p.into_buffer(Data::F16),
            Wire::Bf16(p) => p.into_buffer(Data::Bf16),
        }
        .map_err(D::Error::custom)
    }
}
