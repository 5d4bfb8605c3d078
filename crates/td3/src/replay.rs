//! The replay buffer: preallocated `f32` storage of transitions, sampled uniformly into
//! feature-major minibatches.
//!
//! Each transition stores exactly what the TD3 update reads: `s`, `a`, `r`, `s'` and
//! `1 − terminated` (a time-limit truncation is not terminal, so it bootstraps). The arrays are
//! allocated once at full capacity; the operating system backs them with memory only as they
//! fill, and [`ReplayBuffer::bytes`] reports the capacity allocated.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use sparse_core::Activations;

use crate::{Error, Result};

/// A ring buffer of transitions; the oldest are overwritten once it is full.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayBuffer {
    obs_dim: usize,
    act_dim: usize,
    capacity: usize,
    len: usize,
    next: usize,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_obs: Vec<f32>,
    not_done: Vec<f32>,
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
    /// `1 − terminated` (`1 × batch`).
    pub not_done: Activations,
}

impl ReplayBuffer {
    /// An empty buffer for `capacity` transitions.
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Result<Self> {
        if capacity == 0 || obs_dim == 0 || act_dim == 0 {
            return Err(Error::Config(
                "replay buffer capacity and dimensions must be at least 1".into(),
            ));
        }
        Ok(Self {
            obs_dim,
            act_dim,
            capacity,
            len: 0,
            next: 0,
            obs: vec![0.0; capacity * obs_dim],
            actions: vec![0.0; capacity * act_dim],
            rewards: vec![0.0; capacity],
            next_obs: vec![0.0; capacity * obs_dim],
            not_done: vec![0.0; capacity],
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

    /// Bytes allocated (at full capacity).
    pub fn bytes(&self) -> usize {
        4 * self.capacity * (2 * self.obs_dim + self.act_dim + 2)
    }

    /// Stores one transition (values converted to `f32`).
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
        let i = self.next;
        let put = |dst: &mut [f32], src: &[f64]| {
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s as f32)
        };
        put(&mut self.obs[i * self.obs_dim..(i + 1) * self.obs_dim], obs);
        put(
            &mut self.actions[i * self.act_dim..(i + 1) * self.act_dim],
            action,
        );
        put(
            &mut self.next_obs[i * self.obs_dim..(i + 1) * self.obs_dim],
            next_obs,
        );
        self.rewards[i] = reward as f32;
        self.not_done[i] = if terminated { 0.0 } else { 1.0 };
        self.next = (i + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        Ok(())
    }

    /// Each stored transition's `1 − terminated` flag (0 after a terminal state, 1 otherwise,
    /// including a time-limit truncation), by slot.
    pub fn not_done(&self) -> &[f32] {
        &self.not_done[..self.len]
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
        if self.len == 0 {
            return Err(Error::Config(
                "cannot sample from an empty replay buffer".into(),
            ));
        }
        batch.obs.ensure_shape(self.obs_dim, size);
        batch.actions.ensure_shape(self.act_dim, size);
        batch.rewards.ensure_shape(1, size);
        batch.next_obs.ensure_shape(self.obs_dim, size);
        batch.not_done.ensure_shape(1, size);
        let (od, ad) = (self.obs_dim, self.act_dim);
        for b in 0..size {
            let i = rng.random_range(0..self.len);
            for f in 0..od {
                batch.obs.set(f, b, self.obs[i * od + f]);
                batch.next_obs.set(f, b, self.next_obs[i * od + f]);
            }
            for f in 0..ad {
                batch.actions.set(f, b, self.actions[i * ad + f]);
            }
            batch.rewards.set(0, b, self.rewards[i]);
            batch.not_done.set(0, b, self.not_done[i]);
        }
        Ok(())
    }
}

/// The serialised buffer holds only the filled part (written from borrowed slices, so saving a
/// checkpoint never copies the buffer).
#[derive(Serialize)]
struct ReplayPartsRef<'a> {
    obs_dim: usize,
    act_dim: usize,
    capacity: usize,
    next: usize,
    obs: &'a [f32],
    actions: &'a [f32],
    rewards: &'a [f32],
    next_obs: &'a [f32],
    not_done: &'a [f32],
}

/// The read side of [`ReplayPartsRef`].
#[derive(Deserialize)]
struct ReplayParts {
    obs_dim: usize,
    act_dim: usize,
    capacity: usize,
    next: usize,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_obs: Vec<f32>,
    not_done: Vec<f32>,
}

impl Serialize for ReplayBuffer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let n = self.len;
        ReplayPartsRef {
            obs_dim: self.obs_dim,
            act_dim: self.act_dim,
            capacity: self.capacity,
            next: self.next,
            obs: &self.obs[..n * self.obs_dim],
            actions: &self.actions[..n * self.act_dim],
            rewards: &self.rewards[..n],
            next_obs: &self.next_obs[..n * self.obs_dim],
            not_done: &self.not_done[..n],
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ReplayBuffer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let p = ReplayParts::deserialize(d)?;
        let n = p.rewards.len();
        let consistent = n <= p.capacity
            && p.next < p.capacity
            && (n == p.capacity || p.next == n)
            && p.obs.len() == n * p.obs_dim
            && p.next_obs.len() == n * p.obs_dim
            && p.actions.len() == n * p.act_dim
            && p.not_done.len() == n;
        if !consistent {
            return Err(D::Error::custom("replay buffer arrays are inconsistent"));
        }
        let mut buf =
            ReplayBuffer::new(p.capacity, p.obs_dim, p.act_dim).map_err(D::Error::custom)?;
        buf.obs[..p.obs.len()].copy_from_slice(&p.obs);
        buf.actions[..p.actions.len()].copy_from_slice(&p.actions);
        buf.rewards[..n].copy_from_slice(&p.rewards);
        buf.next_obs[..p.next_obs.len()].copy_from_slice(&p.next_obs);
        buf.not_done[..n].copy_from_slice(&p.not_done);
        buf.len = n;
        buf.next = p.next;
        Ok(buf)
    }
}
