//! The update on the host: [`CpuNets`] runs every step of [`Nets`] (TD3's and SAC's) on the
//! host networks with sparse-core, the twin critics side by side when the run has threads to
//! spare.
//!
//! Its element-wise pieces carry the names of their device twins in `sparse_cuda::ops`
//! ([`smoothed_action`], [`td_target`], [`mse_loss_grad`]), and each computes the same formula,
//! operation for operation.

use set_evolve::{EvolutionStats, TargetSync};
use sparse_core::profile::{self, Part};
use sparse_core::{Activations, Flops, Grads, Mlp, Workspace};

use crate::Result;
use crate::nets::{HostNets, Hyper, Learner, Nets, Which};
use crate::replay::Batch;
use crate::sac;

/// Scratch buffers of the host update, reused across iterations.
#[derive(Debug, Default)]
pub(crate) struct CpuNets {
    /// The target soft updates' caches: actor target, critic targets.
    sync: [TargetSync; 3],
    target_ws: [Workspace; 3],
    next_action: Activations,
    next_input: Activations,
    input: Activations,
    y: Activations,
    d_q: [Activations; 2],
    d_input: [Activations; 2],
    d_action: Activations,
    act_in: Activations,
    /// SAC: `log π` of the sampled actions, the actor's sampled actions, its heads' gradient.
    log_pi: Activations,
    action: Activations,
    d_head: Activations,
}

impl Nets for CpuNets {
    fn target_action(
        &mut self,
        host: &mut HostNets,
        h: &Hyper,
        batch: &Batch,
        noise: &Activations,
    ) -> Result<()> {
        let target = host
            .actor_target
            .as_deref()
            .expect("TD3 has an actor target");
        let pi = target.forward(&batch.next_obs, &mut self.target_ws[0])?;
        smoothed_action(pi, noise, &mut self.next_action, h.noise_clip, h.max_action);
        Ok(())
    }

    fn td_target(&mut self, host: &mut HostNets, h: &Hyper, batch: &Batch) -> Result<()> {
        stack(&mut self.next_input, &batch.next_obs, &self.next_action)?;
        self.target_q(host, h)?;
        let q = (self.target_ws[1].output(), self.target_ws[2].output());
        td_target(
            q,
            &batch.rewards,
            &batch.not_done,
            h.gamma,
            None,
            &mut self.y,
        );
        Ok(())
    }

    fn soft_td_target(
        &mut self,
        host: &mut HostNets,
        h: &Hyper,
        batch: &Batch,
        noise: &Activations,
        alpha: f32,
    ) -> Result<()> {
        let heads = host
            .actor
            .net
            .forward(&batch.next_obs, &mut self.target_ws[0])?;
        sac::sample(
            heads,
            noise,
            0,
            h.max_action,
            &mut self.next_action,
            &mut self.log_pi,
        );
        stack(&mut self.next_input, &batch.next_obs, &self.next_action)?;
        self.target_q(host, h)?;
        let q = (self.target_ws[1].output(), self.target_ws[2].output());
        let entropy = Some((&self.log_pi, alpha));
        td_target(
            q,
            &batch.rewards,
            &batch.not_done,
            h.gamma,
            entropy,
            &mut self.y,
        );
        Ok(())
    }

    fn critic_step(&mut self, host: &mut HostNets, h: &Hyper, batch: &Batch) -> Result<f64> {
        stack(&mut self.input, &batch.obs, &batch.actions)?;
        let (input, y) = (&self.input, &self.y);
        let [c1, c2] = &mut *host.critics;
        let [d1, d2] = &mut self.d_q;
        let (l1, l2) = both(
            h.parallel_critics,
            || critic_step(c1, input, y, d1),
            || critic_step(c2, input, y, d2),
        );
        Ok(l1? + l2?)
    }

    fn actor_step(&mut self, host: &mut HostNets, batch: &Batch) -> Result<f64> {
        let (n, obs_dim) = (batch.obs.batch(), batch.obs.features());
        let actor = &mut *host.actor;
        let pi = actor.net.forward(&batch.obs, &mut actor.ws)?;
        let act_dim = pi.features();
        stack(&mut self.input, &batch.obs, pi)?;
        let critic = &mut host.critics[0];
        let q = critic.net.forward(&self.input, &mut critic.ws)?;
        let loss = -(0..n).map(|b| q.get(0, b) as f64).sum::<f64>() / n as f64;
        // dL/dQ₁ = −1/n for every sample; back through Q₁ to its input, keep the action rows.
        let d_q = &mut self.d_q[0];
        d_q.ensure_shape(1, n);
        d_q.row_mut(0).fill(-1.0 / n as f32);
        let d_input = &mut self.d_input[0];
        critic
            .net
            .backward(&mut critic.ws, d_q, None, Some(d_input))?;
        self.d_action.ensure_shape(act_dim, n);
        for f in 0..act_dim {
            self.d_action
                .row_mut(f)
                .copy_from_slice(d_input.row(obs_dim + f));
        }
        actor.step(&self.d_action)?;
        Ok(loss)
    }

    fn sac_actor_step(
        &mut self,
        host: &mut HostNets,
        h: &Hyper,
        batch: &Batch,
        noise: &Activations,
        alpha: f32,
    ) -> Result<(f64, f64)> {
        let (n, obs_dim) = (batch.obs.batch(), batch.obs.features());
        let actor = &mut *host.actor;
        let heads = actor.net.forward(&batch.obs, &mut actor.ws)?;
        let act_dim = heads.features() / 2;
        sac::sample(
            heads,
            noise,
            act_dim,
            h.max_action,
            &mut self.action,
            &mut self.log_pi,
        );
        stack(&mut self.input, &batch.obs, &self.action)?;
        let input = &self.input;
        let [c1, c2] = &mut *host.critics;
        let (q1, q2) = both(
            h.parallel_critics,
            || c1.net.forward(input, &mut c1.ws).map(|_| ()),
            || c2.net.forward(input, &mut c2.ws).map(|_| ()),
        );
        q1?;
        q2?;
        // L = mean(α log π − min(Q₁, Q₂)): per sample, −1/n flows into the smaller critic.
        let (q1, q2) = (c1.ws.output(), c2.ws.output());
        let [d1, d2] = &mut self.d_q;
        d1.ensure_shape(1, n);
        d2.ensure_shape(1, n);
        let (mut loss, mut log_pi_sum) = (0.0f64, 0.0f64);
        for b in 0..n {
            let (a, c) = (q1.get(0, b), q2.get(0, b));
            let log_pi = self.log_pi.get(0, b);
            loss += (alpha * log_pi - a.min(c)) as f64;
            log_pi_sum += log_pi as f64;
            let first = a <= c;
            d1.set(0, b, if first { -1.0 / n as f32 } else { 0.0 });
            d2.set(0, b, if first { 0.0 } else { -1.0 / n as f32 });
        }
        let [g1, g2] = &mut self.d_input;
        let (r1, r2) = both(
            h.parallel_critics,
            || c1.net.backward(&mut c1.ws, d1, None, Some(g1)),
            || c2.net.backward(&mut c2.ws, d2, None, Some(g2)),
        );
        r1?;
        r2?;
        self.d_action.ensure_shape(act_dim, n);
        for f in 0..act_dim {
            let (row1, row2) = (g1.row(obs_dim + f), g2.row(obs_dim + f));
            for (d, (x, y)) in self
                .d_action
                .row_mut(f)
                .iter_mut()
                .zip(row1.iter().zip(row2))
            {
                *d = x + y;
            }
        }
        let heads = actor.ws.output();
        sac::backward(
            heads,
            noise,
            act_dim,
            h.max_action,
            alpha,
            &self.d_action,
            &mut self.d_head,
        );
        actor.step(&self.d_head)?;
        Ok((loss / n as f64, log_pi_sum / n as f64))
    }

    fn update_targets(&mut self, host: &mut HostNets, h: &Hyper) -> Result<()> {
        // The actor's target (TD3) on one thread and the critics' on the other (when
        // parallel): independent work, so the results do not depend on the thread count.
        let (actor_target, actor) = (host.actor_target.as_deref_mut(), &host.actor.net);
        let (critic_targets, critics) = (&mut *host.critic_targets, &*host.critics);
        let [actor_sync, critic_syncs @ ..] = &mut self.sync;
        let (a, c) = both(
            h.parallel_critics,
            || match actor_target {
                Some(target) => actor_sync.update(target, actor, h.tau),
                None => Ok(()),
            },
            || {
                critic_targets
                    .iter_mut()
                    .zip(critics)
                    .zip(critic_syncs)
                    .try_for_each(|((target, online), sync)| {
                        sync.update(target, &online.net, h.tau)
                    })
            },
        );
        a?;
        c?;
        Ok(())
    }

    fn evolve(
        &mut self,
        host: &mut HostNets,
        which: Which,
        evolve: &mut dyn FnMut(&mut Learner) -> Result<EvolutionStats>,
    ) -> Result<EvolutionStats> {
        evolve(host.learner(which))
    }

    fn act(&mut self, host: &mut HostNets, obs: &[f64]) -> Result<Vec<f64>> {
        let s = &mut self.act_in;
        s.ensure_shape(obs.len(), 1);
        for (f, &o) in obs.iter().enumerate() {
            s.set(f, 0, o as f32);
        }
        let actor = &mut *host.actor;
        let a = actor.net.forward(s, &mut actor.ws)?;
        Ok((0..a.features()).map(|f| a.get(f, 0) as f64).collect())
    }

    /// The host copies are the networks that train.
    fn sync_host(&self, _host: &mut HostNets) -> Result<()> {
        Ok(())
    }

    fn flops(&self, host: &[&Mlp]) -> Flops {
        host.iter().map(|n| n.flops()).sum()
    }

    fn device_name(&self) -> Option<String> {
        None
    }

    fn device_bytes(&self) -> Option<usize> {
        None
    }
}

impl CpuNets {
    /// `Q'₁` and `Q'₂` of the stacked next input (into the target workspaces 1 and 2).
    fn target_q(&mut self, host: &mut HostNets, h: &Hyper) -> Result<()> {
        let [t1, t2] = &*host.critic_targets;
        let [_, ws_q1, ws_q2] = &mut self.target_ws;
        let input = &self.next_input;
        let (q1, q2) = both(
            h.parallel_critics,
            || t1.forward(input, ws_q1).map(|_| ()),
            || t2.forward(input, ws_q2).map(|_| ()),
        );
        q1?;
        q2?;
        Ok(())
    }
}

impl Learner {
    /// Backward pass from `d_out` into the gradients (created on first use, realigned by
    /// evolution), then one Adam step.
    fn step(&mut self, d_out: &Activations) -> Result<()> {
        let grads = self
            .grads
            .get_or_insert_with(|| Grads::zeros_like(&self.net));
        self.net.backward(&mut self.ws, d_out, Some(grads), None)?;
        self.adam.step(&mut self.net, grads)?;
        Ok(())
    }
}

/// Forward, loss, backward and Adam step of one critic; returns `mean((Q − y)²)`.
fn critic_step(
    c: &mut Learner,
    input: &Activations,
    y: &Activations,
    d_q: &mut Activations,
) -> Result<f64> {
    let q = c.net.forward(input, &mut c.ws)?;
    let loss = mse_loss_grad(q, y, d_q);
    c.step(d_q)?;
    Ok(loss)
}

/// `out = clip(pi + clip(noise, −noise_clip, noise_clip), −max_action, max_action)`; `out` is
/// reshaped like `pi`.
fn smoothed_action(
    pi: &Activations,
    noise: &Activations,
    out: &mut Activations,
    noise_clip: f32,
    max_action: f32,
) {
    out.ensure_shape(pi.features(), pi.batch());
    for f in 0..pi.features() {
        for b in 0..pi.batch() {
            let eps = noise.get(f, b).clamp(-noise_clip, noise_clip);
            let a = (pi.get(f, b) + eps).clamp(-max_action, max_action);
            out.set(f, b, a);
        }
    }
}

/// `y = reward + not_done · gamma · min(q1, q2)` over a batch (all `1 × batch`); with
/// `entropy = (log π, α)` (SAC), `y = reward + not_done · gamma · (min(q1, q2) − α log π)`.
fn td_target(
    (q1, q2): (&Activations, &Activations),
    reward: &Activations,
    not_done: &Activations,
    gamma: f32,
    entropy: Option<(&Activations, f32)>,
    y: &mut Activations,
) {
    let n = q1.batch();
    y.ensure_shape(1, n);
    for b in 0..n {
        let mut soft_q = q1.get(0, b).min(q2.get(0, b));
        if let Some((log_pi, alpha)) = entropy {
            soft_q -= alpha * log_pi.get(0, b);
        }
        let bootstrap = not_done.get(0, b) * gamma * soft_q;
        y.set(0, b, reward.get(0, b) + bootstrap);
    }
}

/// `mean((q − y)²)`, with `d = 2 (q − y) / n`, the loss gradient with respect to `q`, written
/// into `d` (reshaped to `1 × n`).
fn mse_loss_grad(q: &Activations, y: &Activations, d: &mut Activations) -> f64 {
    let n = q.batch();
    d.ensure_shape(1, n);
    let mut loss = 0.0f64;
    for b in 0..n {
        let err = q.get(0, b) - y.get(0, b);
        loss += (err as f64) * (err as f64);
        d.set(0, b, 2.0 * err / n as f32);
    }
    loss / n as f64
}

/// `out = [top; bottom]`: feature rows of `top` then of `bottom`.
fn stack(out: &mut Activations, top: &Activations, bottom: &Activations) -> Result<()> {
    out.ensure_shape(top.features() + bottom.features(), top.batch());
    out.copy_rows_from(0, top)?;
    out.copy_rows_from(top.features(), bottom)?;
    Ok(())
}

/// Runs two independent closures, on two of the pool's threads when `parallel` (and the pool
/// has them: [`sparse_core::pool::join`]).
fn both<A: Send, B: Send>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel {
        // What this thread does inside counts as what it was doing; the rest is waiting.
        let outer = profile::current();
        let _profile = profile::scope(Part::Wait);
        sparse_core::pool::join(
            || {
                let _mine = profile::scope(outer);
                a()
            },
            b,
        )
    } else {
        (a(), b())
    }
}
