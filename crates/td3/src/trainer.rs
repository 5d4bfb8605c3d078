//! The training loop: exploration in the environment, the replay buffer, TD3 iterations,
//! periodic evaluation, and the state a checkpoint captures.
//!
//! Environment step `t` (from 1): the action is uniform in the action box while
//! `t ≤ start_steps`, then `clip(π(s) + N(0, σ·max), low, high)` (TD3) or a sample of the
//! stochastic policy (SAC); the transition is stored with
//! `terminated` as its done flag (a time-limit truncation bootstraps); after the random phase
//! every step runs one training iteration on a minibatch of one-step transitions, or of
//! `n`-step ones once `n_step_after` iterations have run. Episodes restart with a seed drawn from the run's
//! generator. Evaluation runs before training and every `eval_every` steps: `eval_episodes`
//! episodes of the deterministic policy on a separate environment whose first episode is
//! seeded with `seed + 100` (the same starting states every time). With a dynamic buffer
//! ([`crate::DynamicBuffer`]), every `every`-th step checks the buffer right after the push,
//! before the iteration.

use std::time::Instant;

use mujoco_env::{Env, EnvSnapshot, Options};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::agent::{Agent, IterationReport};
use crate::config::{Config, Device, Family};
use crate::replay::{Batch, ReplayBuffer};
use crate::{Error, Result};

/// One evaluation: the returns of `eval_episodes` deterministic episodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Environment steps trained when it ran.
    pub step: u64,
    /// Mean return.
    pub mean: f64,
    /// Population standard deviation of the returns.
    pub std: f64,
    /// Each episode's return.
    pub returns: Vec<f64>,
    /// Wall-clock seconds since the run started (over all resumed segments).
    pub wall_seconds: f64,
    /// FLOPs executed by all networks' kernels so far.
    pub flops: u64,
    /// Live connections of the online networks.
    pub live_connections: usize,
}

/// Something the loop reports as it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A training episode ended.
    Episode {
        /// Environment steps so far.
        step: u64,
        /// Episodes finished so far.
        episode: u64,
        /// The episode's return.
        episode_return: f64,
        /// Its length in steps.
        length: u64,
    },
    /// A training iteration ran.
    Iteration {
        /// Environment steps so far.
        step: u64,
        /// What it did.
        report: &'a IterationReport,
    },
    /// An evaluation finished.
    Evaluation(&'a Evaluation),
    /// The dynamic buffer measured its oldest transitions ([`crate::DynamicBuffer`]).
    Buffer {
        /// Environment steps so far.
        step: u64,
        /// The policy distance measured.
        distance: f64,
        /// Transitions dropped now (0 if none).
        dropped: usize,
        /// Transitions stored afterwards.
        size: usize,
    },
}

/// Where the loop stands: everything besides networks, buffer and generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    step: u64,
    episodes: u64,
    episode_return: f64,
    episode_steps: u64,
    obs: Vec<f64>,
}

/// The complete state of a run, as a checkpoint stores it (read side).
#[derive(Debug, Deserialize)]
pub(crate) struct State {
    pub(crate) config: Config,
    agent: Agent,
    replay: ReplayBuffer,
    rng: ChaCha8Rng,
    progress: Progress,
    evaluations: Vec<Evaluation>,
    wall_seconds: f64,
    env: EnvSnapshot,
}

/// The write side of [`State`]: the same fields, borrowed from a live run.
#[derive(Serialize)]
pub(crate) struct StateRef<'a> {
    config: &'a Config,
    agent: &'a Agent,
    replay: &'a ReplayBuffer,
    rng: &'a ChaCha8Rng,
    progress: &'a Progress,
    evaluations: &'a [Evaluation],
    wall_seconds: f64,
    env: EnvSnapshot,
}

/// A training run in progress.
pub struct Trainer {
    config: Config,
    env: Box<dyn Env>,
    eval_env: Box<dyn Env>,
    agent: Agent,
    replay: ReplayBuffer,
    rng: ChaCha8Rng,
    progress: Progress,
    evaluations: Vec<Evaluation>,
    wall_before: f64,
    started: Instant,
    batch: Batch,
}

fn make_env(config: &Config) -> Result<Box<dyn Env>> {
    let options = Options {
        terminate_when_unhealthy: config.terminate_when_unhealthy,
    };
    Ok(mujoco_env::make_with(&config.env, &options)?)
}

/// The symmetric scalar action bound of `env`.
fn action_bound(env: &dyn Env) -> Result<f32> {
    let max = env.action_high()[0];
    let symmetric = env
        .action_low()
        .iter()
        .zip(env.action_high())
        .all(|(&lo, &hi)| hi == max && lo == -max);
    if !symmetric || max.is_nan() || max <= 0.0 {
        return Err(Error::Config(format!(
            "{}: TD3 needs the same symmetric bound on every action dimension",
            env.id()
        )));
    }
    Ok(max as f32)
}

/// Moves `agent` to the configured device (nothing to do for the CPU).
fn attach_device(agent: &mut Agent, device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda => agent.attach_gpu(sparse_cuda::Device::cuda(0)?),
        Device::Emulator => agent.attach_gpu(sparse_cuda::Device::emulator()),
    }
}

impl Trainer {
    /// A fresh run: environments, networks and buffer built from `config`, first episode reset.
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        sparse_core::pool::set_threads(config.threads);
        let mut env = make_env(&config)?;
        let eval_env = make_env(&config)?;
        let (obs_dim, act_dim) = (env.obs_dim(), env.action_dim());
        let max_action = action_bound(env.as_ref())?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut agent = Agent::new(&config, obs_dim, act_dim, max_action, &mut rng)?;
        attach_device(&mut agent, config.device)?;
        let replay = ReplayBuffer::with_dtype(
            config.buffer_capacity,
            obs_dim,
            act_dim,
            config.buffer_dtype,
        )?;
        let obs = env.reset(Some(rng.random()));
        Ok(Self {
            config,
            env,
            eval_env,
            agent,
            replay,
            rng,
            progress: Progress {
                step: 0,
                episodes: 0,
                episode_return: 0.0,
                episode_steps: 0,
                obs,
            },
            evaluations: Vec::new(),
            wall_before: 0.0,
            started: Instant::now(),
            batch: Batch::default(),
        })
    }

    /// Rebuilds a run from a checkpoint's state; `threads` may differ from the original run's,
    /// and `device`, when given, replaces the run's device.
    pub(crate) fn from_state(state: State, threads: usize, device: Option<Device>) -> Result<Self> {
        let mut config = state.config;
        if state.replay.dtype() != config.buffer_dtype {
            return Err(Error::Checkpoint(format!(
                "the replay buffer stores {} values, the configuration says {}",
                state.replay.dtype(),
                config.buffer_dtype
            )));
        }
        config.threads = threads;
        config.device = device.unwrap_or(config.device);
        config.validate()?;
        sparse_core::pool::set_threads(config.threads);
        let mut env = make_env(&config)?;
        env.restore(&state.env)?;
        let eval_env = make_env(&config)?;
        let mut agent = state.agent;
        agent.check_family(config.algo.family())?;
        agent.set_parallel_critics(threads > 1);
        attach_device(&mut agent, config.device)?;
        Ok(Self {
            config,
            env,
            eval_env,
            agent,
            replay: state.replay,
            rng: state.rng,
            progress: state.progress,
            evaluations: state.evaluations,
            wall_before: state.wall_seconds,
            started: Instant::now(),
            batch: Batch::default(),
        })
    }

    /// The run's state, for a checkpoint.
    pub(crate) fn state(&self) -> StateRef<'_> {
        StateRef {
            config: &self.config,
            agent: &self.agent,
            replay: &self.replay,
            rng: &self.rng,
            progress: &self.progress,
            evaluations: &self.evaluations,
            wall_seconds: self.wall_seconds(),
            env: self.env.snapshot(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The agent. On a GPU run its host copies of the networks are as of the last
    /// [`Self::sync_host`] (checkpoints sync); FLOP counts are always current.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// Refreshes the agent's host copies of the networks from the GPU (no-op on the CPU).
    pub fn sync_host(&mut self) -> Result<()> {
        self.agent.sync_host()
    }

    /// The environment's observation and action dimensions.
    pub fn dims(&self) -> (usize, usize) {
        (self.env.obs_dim(), self.env.action_dim())
    }

    /// The replay buffer.
    pub fn replay(&self) -> &ReplayBuffer {
        &self.replay
    }

    /// Environment steps done.
    pub fn step(&self) -> u64 {
        self.progress.step
    }

    /// Evaluations so far.
    pub fn evaluations(&self) -> &[Evaluation] {
        &self.evaluations
    }

    /// Changes the total number of steps (to extend a resumed run). The topology freeze moves
    /// with the end; a network that has frozen already stays frozen.
    pub fn set_total_steps(&mut self, steps: u64) -> Result<()> {
        let mut c = self.config.clone();
        c.steps = steps;
        c.validate()?;
        if steps < self.progress.step {
            return Err(Error::Config(format!(
                "{steps} steps is below the {} already done",
                self.progress.step
            )));
        }
        if self.agent.evolution.period().is_some() {
            c.schedule_evolution(&mut self.agent.evolution)?;
        }
        self.config = c;
        Ok(())
    }

    /// The agent (host copies synced from the GPU), giving up the rest of the run.
    pub fn into_agent(mut self) -> Result<Agent> {
        self.agent.sync_host()?;
        Ok(self.agent)
    }

    /// Whether the run has done all its steps.
    pub fn is_finished(&self) -> bool {
        self.progress.step >= self.config.steps
    }

    /// Wall-clock seconds over all segments of the run.
    pub fn wall_seconds(&self) -> f64 {
        self.wall_before + self.started.elapsed().as_secs_f64()
    }

    /// Runs until `until` environment steps (at most the configured total) or until `stop`
    /// returns true (checked after every environment step), reporting to `observe`.
    pub fn run_until(
        &mut self,
        until: u64,
        observe: &mut dyn FnMut(Event<'_>) -> Result<()>,
        stop: &dyn Fn() -> bool,
    ) -> Result<()> {
        let until = until.min(self.config.steps);
        if self.progress.step == 0 && self.evaluations.is_empty() {
            let e = self.evaluate()?;
            observe(Event::Evaluation(&e))?;
        }
        while self.progress.step < until && !stop() {
            self.env_step(observe)?;
        }
        Ok(())
    }

    fn env_step(&mut self, observe: &mut dyn FnMut(Event<'_>) -> Result<()>) -> Result<()> {
        let c = &self.config;
        let t = self.progress.step + 1;
        let (low, high) = (self.env.action_low(), self.env.action_high());
        let action: Vec<f64> = if t <= c.start_steps {
            low.iter()
                .zip(high)
                .map(|(&l, &h)| self.rng.random_range(l..=h))
                .collect()
        } else {
            let pi = self.agent.explore(&self.progress.obs, &mut self.rng)?;
            match c.algo.family() {
                // TD3 explores with Gaussian noise on its deterministic action.
                Family::Td3 => {
                    let max = self.agent.max_action() as f64;
                    let noise = Normal::new(0.0, max * c.expl_noise)
                        .map_err(|e| Error::Config(format!("exploration noise: {e}")))?;
                    pi.iter()
                        .enumerate()
                        .map(|(i, &a)| (a + noise.sample(&mut self.rng)).clamp(low[i], high[i]))
                        .collect()
                }
                // SAC's sample lies in the action box already.
                Family::Sac => pi,
            }
        };
        let out = self.env.step(&action)?;
        self.replay.push(
            &self.progress.obs,
            &action,
            out.reward,
            &out.obs,
            out.terminated,
        )?;
        self.progress.step = t;
        self.progress.episode_return += out.reward;
        self.progress.episode_steps += 1;
        self.progress.obs = out.obs;
        if let Some(d) = c.dynamic_buffer
            && t.is_multiple_of(d.every)
        {
            let (distance, dropped) = self.adjust_buffer(&d)?;
            observe(Event::Buffer {
                step: t,
                distance,
                dropped,
                size: self.replay.len(),
            })?;
        }
        let c = &self.config;
        if t > c.start_steps {
            let n = c.n_step_at(self.agent.iterations() + 1);
            self.replay
                .sample_n_step(c.batch_size, n, c.gamma, &mut self.rng, &mut self.batch)?;
            let report = self.agent.train(&self.batch, &mut self.rng)?;
            observe(Event::Iteration {
                step: t,
                report: &report,
            })?;
        }
        if out.terminated || out.truncated {
            self.progress.episodes += 1;
            observe(Event::Episode {
                step: t,
                episode: self.progress.episodes,
                episode_return: self.progress.episode_return,
                length: self.progress.episode_steps,
            })?;
            self.progress.obs = self.env.reset(Some(self.rng.random()));
            self.progress.episode_return = 0.0;
            self.progress.episode_steps = 0;
        }
        if t.is_multiple_of(self.config.eval_every) {
            let e = self.evaluate()?;
            observe(Event::Evaluation(&e))?;
        }
        Ok(())
    }

    /// The dynamic buffer's check ([`crate::DynamicBuffer`]): the policy distance of the oldest
    /// transitions and how many were dropped because of it.
    fn adjust_buffer(&mut self, d: &crate::DynamicBuffer) -> Result<(f64, usize)> {
        let max = self.agent.max_action() as f64;
        let (mut sum, mut terms) = (0.0, 0usize);
        for (obs, action) in self.replay.oldest(d.oldest) {
            let pi = self.agent.act(&obs)?;
            sum += pi
                .iter()
                .zip(&action)
                .map(|(p, a)| ((p - a) / max).powi(2))
                .sum::<f64>();
            terms += action.len();
        }
        let distance = sum / terms.max(1) as f64 / 2.0;
        let size = self.replay.len();
        let dropped = if distance > d.threshold && size > d.min_size {
            (d.fraction * size as f64) as usize
        } else {
            0
        };
        self.replay.drop_oldest(dropped);
        Ok((distance, dropped))
    }

    /// Runs the evaluation protocol now and records it.
    fn evaluate(&mut self) -> Result<Evaluation> {
        let returns = evaluate_policy(
            &mut self.agent,
            self.eval_env.as_mut(),
            self.config.eval_episodes,
            self.config.seed + 100,
        )?;
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
        let e = Evaluation {
            step: self.progress.step,
            mean,
            std,
            returns,
            wall_seconds: self.wall_seconds(),
            flops: self.agent.flops().total(),
            live_connections: self.agent.live_connections(),
        };
        self.evaluations.push(e.clone());
        Ok(e)
    }
}

/// Returns of `episodes` episodes of the deterministic policy on `env`, the first reset with
/// `seed`, the rest continuing the environment's generator.
pub fn evaluate_policy(
    agent: &mut Agent,
    env: &mut dyn Env,
    episodes: usize,
    seed: u64,
) -> Result<Vec<f64>> {
    run_episodes(env, episodes, seed, |obs| agent.act(obs))
}

/// The evaluation protocol with any deterministic policy `act` (an observation to an action):
/// `episodes` episodes on `env`, the first reset with `seed`, the rest continuing the
/// environment's generator, each until it terminates or is truncated; their returns.
pub fn run_episodes<E: From<mujoco_env::EnvError>>(
    env: &mut dyn Env,
    episodes: usize,
    seed: u64,
    mut act: impl FnMut(&[f64]) -> std::result::Result<Vec<f64>, E>,
) -> std::result::Result<Vec<f64>, E> {
    let mut returns = Vec::with_capacity(episodes);
    for i in 0..episodes {
        let mut obs = env.reset(if i == 0 { Some(seed) } else { None });
        let mut total = 0.0;
        loop {
            let action = act(&obs)?;
            let out = env.step(&action)?;
            total += out.reward;
            obs = out.obs;
            if out.terminated || out.truncated {
                break;
            }
        }
        returns.push(total);
    }
    Ok(returns)
}
