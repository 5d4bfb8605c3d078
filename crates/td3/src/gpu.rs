//! The TD3 update on a CUDA GPU (`sparse-cuda`): [`GpuNets`] runs every step of [`Nets`] with
//! every network, gradient and Adam state kept on the device, in the same order as the host
//! backend (`crate::cpu`), through the device twins of its element-wise pieces
//! (`sparse_cuda::ops`).
//!
//! Per iteration the minibatch and the smoothing noise (drawn on the host from the run's
//! generator, so a GPU run draws the same numbers as a CPU run) are uploaded, and the two losses
//! come back; everything else stays on the device. Topology evolution runs on the host every
//! `e` iterations: the learner is downloaded, evolved by set-evolve, and uploaded again.
//! [`Nets::sync_host`] refreshes the host copies (for checkpoints).

use set_evolve::EvolutionStats;
use sparse_core::{Activations, Flops, Mlp};
use sparse_cuda::{
    Buffer, Device, GpuActivations, GpuAdam, GpuGrads, GpuMlp, GpuWorkspace, ops,
    soft_update_and_prune,
};

use crate::nets::{HostNets, Hyper, Learner, Nets, Which};
use crate::replay::Batch;
use crate::{Error, Result};

impl From<sparse_cuda::Error> for Error {
    fn from(e: sparse_cuda::Error) -> Self {
        Error::Gpu(e.to_string())
    }
}

/// An online network on the device with its optimiser, gradients and workspace.
#[derive(Debug)]
struct GpuLearner {
    net: GpuMlp,
    adam: GpuAdam,
    grads: GpuGrads,
    ws: GpuWorkspace,
}

impl GpuLearner {
    fn upload(dev: &Device, l: &Learner) -> Result<Self> {
        let net = GpuMlp::upload(dev, &l.net, true)?;
        Ok(Self {
            adam: GpuAdam::upload(dev, &l.adam)?,
            grads: GpuGrads::zeros_like(&net)?,
            net,
            ws: GpuWorkspace::new(),
        })
    }

    /// Backward pass from `d_out` into the gradients, then one Adam step.
    fn step(&mut self, d_out: &GpuActivations) -> Result<()> {
        self.net
            .backward(&mut self.ws, d_out, Some(&mut self.grads), None)?;
        self.adam.step(&mut self.net, &self.grads)?;
        Ok(())
    }

    /// Overwrites the host learner's network and optimiser with the device's.
    fn download_into(&self, l: &mut Learner) -> Result<()> {
        l.net = self.net.to_host()?;
        l.adam = self.adam.to_host(&l.net)?;
        l.grads = None;
        Ok(())
    }
}

/// Minibatch and intermediate buffers on the device, reused across iterations.
#[derive(Debug)]
struct Scratch {
    obs: GpuActivations,
    actions: GpuActivations,
    rewards: GpuActivations,
    next_obs: GpuActivations,
    not_done: GpuActivations,
    noise: GpuActivations,
    next_action: GpuActivations,
    next_input: GpuActivations,
    input: GpuActivations,
    y: GpuActivations,
    d_q: GpuActivations,
    d_input: GpuActivations,
    d_action: GpuActivations,
    act_in: GpuActivations,
    target_ws: [GpuWorkspace; 3],
    squares: Buffer<f32>,
}

/// Actor, critics and targets on a GPU.
#[derive(Debug)]
pub(crate) struct GpuNets {
    dev: Device,
    obs_dim: usize,
    act_dim: usize,
    actor: GpuLearner,
    critics: [GpuLearner; 2],
    actor_target: GpuMlp,
    critic_targets: [GpuMlp; 2],
    s: Scratch,
}

/// Uploads `host` into `dev_buf`, reshaping it first.
fn upload(dev: &Device, dev_buf: &mut GpuActivations, host: &Activations) -> Result<()> {
    dev_buf.ensure_shape(dev, host.features(), host.batch())?;
    dev_buf.upload(host)?;
    Ok(())
}

/// `out = [top; bottom]`.
fn stack(
    dev: &Device,
    out: &mut GpuActivations,
    top: &GpuActivations,
    bottom: &GpuActivations,
) -> Result<()> {
    out.ensure_shape(dev, top.features() + bottom.features(), top.batch())?;
    out.copy_rows_from(0, top)?;
    out.copy_rows_from(top.features(), bottom)?;
    Ok(())
}

impl GpuNets {
    /// Uploads every network and optimiser state.
    pub(crate) fn upload(
        dev: Device,
        (obs_dim, act_dim): (usize, usize),
        actor: &Learner,
        critics: &[Learner; 2],
        actor_target: &Mlp,
        critic_targets: &[Mlp; 2],
    ) -> Result<Self> {
        let z = || GpuActivations::zeros(&dev, 0, 0);
        let s = Scratch {
            obs: z()?,
            actions: z()?,
            rewards: z()?,
            next_obs: z()?,
            not_done: z()?,
            noise: z()?,
            next_action: z()?,
            next_input: z()?,
            input: z()?,
            y: z()?,
            d_q: z()?,
            d_input: z()?,
            d_action: z()?,
            act_in: z()?,
            target_ws: Default::default(),
            squares: dev.zeros(0)?,
        };
        Ok(Self {
            obs_dim,
            act_dim,
            actor: GpuLearner::upload(&dev, actor)?,
            critics: [
                GpuLearner::upload(&dev, &critics[0])?,
                GpuLearner::upload(&dev, &critics[1])?,
            ],
            actor_target: GpuMlp::upload(&dev, actor_target, false)?,
            critic_targets: [
                GpuMlp::upload(&dev, &critic_targets[0], false)?,
                GpuMlp::upload(&dev, &critic_targets[1], false)?,
            ],
            s,
            dev,
        })
    }

    /// Uploads the minibatch and the smoothing noise.
    fn load_batch(&mut self, batch: &Batch, noise: &Activations) -> Result<()> {
        let (d, s) = (&self.dev, &mut self.s);
        upload(d, &mut s.obs, &batch.obs)?;
        upload(d, &mut s.actions, &batch.actions)?;
        upload(d, &mut s.rewards, &batch.rewards)?;
        upload(d, &mut s.next_obs, &batch.next_obs)?;
        upload(d, &mut s.not_done, &batch.not_done)?;
        upload(d, &mut s.noise, noise)
    }

    fn learner(&mut self, which: Which) -> &mut GpuLearner {
        match which {
            Which::Actor => &mut self.actor,
            Which::Critic(i) => &mut self.critics[i],
        }
    }

    /// Device bytes held: networks, targets, gradients, Adam state, workspaces and scratch.
    fn bytes(&self) -> usize {
        let learner =
            |l: &GpuLearner| l.net.bytes() + l.grads.bytes() + l.adam.bytes() + l.ws.bytes();
        let learners: usize = [&self.actor, &self.critics[0], &self.critics[1]]
            .map(learner)
            .iter()
            .sum();
        let targets: usize = [
            &self.actor_target,
            &self.critic_targets[0],
            &self.critic_targets[1],
        ]
        .map(GpuMlp::bytes)
        .iter()
        .sum();
        let s = &self.s;
        let acts = [
            &s.obs,
            &s.actions,
            &s.rewards,
            &s.next_obs,
            &s.not_done,
            &s.noise,
            &s.next_action,
            &s.next_input,
            &s.input,
            &s.y,
            &s.d_q,
            &s.d_input,
            &s.d_action,
            &s.act_in,
        ];
        let scratch: usize = acts.iter().map(|a| a.bytes()).sum::<usize>()
            + s.target_ws.iter().map(GpuWorkspace::bytes).sum::<usize>()
            + s.squares.bytes();
        learners + targets + scratch
    }
}

impl Nets for GpuNets {
    fn target_action(
        &mut self,
        _host: &mut HostNets,
        h: &Hyper,
        batch: &Batch,
        noise: &Activations,
    ) -> Result<()> {
        self.load_batch(batch, noise)?;
        let (d, s) = (&self.dev, &mut self.s);
        let pi = self
            .actor_target
            .forward(&s.next_obs, &mut s.target_ws[0])?;
        ops::smoothed_action(
            d,
            pi,
            &s.noise,
            &mut s.next_action,
            h.noise_clip,
            h.max_action,
        )?;
        Ok(())
    }

    fn td_target(&mut self, _host: &mut HostNets, h: &Hyper, _batch: &Batch) -> Result<()> {
        let (dev, s) = (&self.dev, &mut self.s);
        let [_, ws_q1, ws_q2] = &mut s.target_ws;
        stack(dev, &mut s.next_input, &s.next_obs, &s.next_action)?;
        let [t1, t2] = &self.critic_targets;
        let q1 = t1.forward(&s.next_input, ws_q1)?;
        let q2 = t2.forward(&s.next_input, ws_q2)?;
        ops::td_target(dev, (q1, q2), &s.rewards, &s.not_done, h.gamma, &mut s.y)?;
        Ok(())
    }

    fn critic_step(&mut self, _host: &mut HostNets, _h: &Hyper, _batch: &Batch) -> Result<f64> {
        let (dev, s) = (&self.dev, &mut self.s);
        stack(dev, &mut s.input, &s.obs, &s.actions)?;
        let mut total = 0.0;
        for c in &mut self.critics {
            let q = c.net.forward(&s.input, &mut c.ws)?;
            total += ops::mse_loss_grad(dev, q, &s.y, &mut s.d_q, &mut s.squares)?;
            c.step(&s.d_q)?;
        }
        Ok(total)
    }

    fn actor_step(&mut self, _host: &mut HostNets, _batch: &Batch) -> Result<f64> {
        let (dev, s) = (&self.dev, &mut self.s);
        let n = s.obs.batch();
        let pi = self.actor.net.forward(&s.obs, &mut self.actor.ws)?;
        stack(dev, &mut s.input, &s.obs, pi)?;
        let critic = &mut self.critics[0];
        let q = critic.net.forward(&s.input, &mut critic.ws)?;
        let loss = -q.buffer().read(n)?.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        s.d_q.ensure_shape(dev, 1, n)?;
        ops::fill(dev, &mut s.d_q, -1.0 / n as f32)?;
        critic
            .net
            .backward(&mut critic.ws, &s.d_q, None, Some(&mut s.d_input))?;
        s.d_action.ensure_shape(dev, self.act_dim, n)?;
        let rows = self.obs_dim..self.obs_dim + self.act_dim;
        s.d_action.copy_rows_of(&s.d_input, rows)?;
        self.actor.step(&s.d_action)?;
        Ok(loss)
    }

    fn update_targets(&mut self, _host: &mut HostNets, h: &Hyper) -> Result<()> {
        soft_update_and_prune(&mut self.actor_target, &self.actor.net, h.tau)?;
        for (t, c) in self.critic_targets.iter_mut().zip(&self.critics) {
            soft_update_and_prune(t, &c.net, h.tau)?;
        }
        Ok(())
    }

    fn evolve(
        &mut self,
        host: &mut HostNets,
        which: Which,
        evolve: &mut dyn FnMut(&mut Learner) -> Result<EvolutionStats>,
    ) -> Result<EvolutionStats> {
        let l = host.learner(which);
        self.learner(which).download_into(l)?;
        let stats = evolve(l)?;
        let dev = self.dev.clone();
        *self.learner(which) = GpuLearner::upload(&dev, l)?;
        Ok(stats)
    }

    fn act(&mut self, _host: &mut HostNets, obs: &[f64]) -> Result<Vec<f64>> {
        let (dev, s) = (&self.dev, &mut self.s);
        s.act_in.ensure_shape(dev, obs.len(), 1)?;
        let x: Vec<f32> = obs.iter().map(|&o| o as f32).collect();
        s.act_in.buffer_mut().write(0, &x)?;
        let a = self.actor.net.forward(&s.act_in, &mut self.actor.ws)?;
        Ok(a.buffer()
            .read(self.act_dim)?
            .iter()
            .map(|&v| v as f64)
            .collect())
    }

    fn sync_host(&self, host: &mut HostNets) -> Result<()> {
        self.actor.download_into(host.actor)?;
        for (g, h) in self.critics.iter().zip(host.critics.iter_mut()) {
            g.download_into(h)?;
        }
        if let Some(target) = host.actor_target.as_deref_mut() {
            *target = self.actor_target.to_host()?;
        }
        for (g, h) in self
            .critic_targets
            .iter()
            .zip(host.critic_targets.iter_mut())
        {
            *h = g.to_host()?;
        }
        Ok(())
    }

    /// The device's counts, which include those the host copies had at upload.
    fn flops(&self, _host: &[&Mlp]) -> Flops {
        let online = [&self.actor, &self.critics[0], &self.critics[1]].map(|l| l.net.flops());
        let targets = [
            &self.actor_target,
            &self.critic_targets[0],
            &self.critic_targets[1],
        ]
        .map(GpuMlp::flops);
        online.into_iter().chain(targets).sum()
    }

    fn device_name(&self) -> Option<String> {
        Some(self.dev.name())
    }

    fn device_bytes(&self) -> Option<usize> {
        Some(self.bytes())
    }
}
