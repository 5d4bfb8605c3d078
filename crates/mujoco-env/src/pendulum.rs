//! Pendulum-v1 with Gym's classic-control rules, in pure Rust.
//!
//! State `(theta, theta_dot)`, `theta = 0` upright. Per step, with the torque clipped to
//! `[-2, 2]`: `cost = norm(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2` (`norm` wraps to `[-pi, pi)`),
//! `theta_dot' = clip(theta_dot + (3 g / (2 l) sin theta + 3 / (m l^2) u) dt, -8, 8)`,
//! `theta' = theta + theta_dot' dt`, reward `-cost` (computed on the state before the step),
//! with `g = 10`, `m = l = 1`, `dt = 0.05`. Observation `(cos theta, sin theta, theta_dot)`
//! (f64 here; Gym returns f32). Reset draws `theta ~ U[-pi, pi)`, `theta_dot ~ U[-1, 1)`. Never
//! terminates; truncated after 200 steps.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::{Env, EnvError, EnvSnapshot, Info, Step, check_action, check_state};

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f64 = 2.0;
const DT: f64 = 0.05;
const G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;
const MAX_STEPS: usize = 200;

/// Wraps an angle to `[-pi, pi)` the way Gym does (`((x + pi) % (2 pi)) - pi`, Python's `%`).
fn angle_normalize(x: f64) -> f64 {
    (x + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI
}

/// The Pendulum-v1 task.
pub(crate) struct Pendulum {
    theta: [f64; 1],
    theta_dot: [f64; 1],
    rng: Xoshiro256PlusPlus,
    elapsed: usize,
    started: bool,
}

impl Pendulum {
    pub(crate) fn new() -> Self {
        Self {
            theta: [0.0],
            theta_dot: [0.0],
            rng: Xoshiro256PlusPlus::seed_from_u64(0),
            elapsed: 0,
            started: false,
        }
    }

    fn obs(&self) -> Vec<f64> {
        let th = self.theta[0];
        vec![th.cos(), th.sin(), self.theta_dot[0]]
    }
}

impl Env for Pendulum {
    fn id(&self) -> &'static str {
        "Pendulum-v1"
    }
    fn obs_dim(&self) -> usize {
        3
    }
    fn action_dim(&self) -> usize {
        1
    }
    fn obs_low(&self) -> &[f64] {
        &[-1.0, -1.0, -MAX_SPEED]
    }
    fn obs_high(&self) -> &[f64] {
        &[1.0, 1.0, MAX_SPEED]
    }
    fn action_low(&self) -> &[f64] {
        &[-MAX_TORQUE]
    }
    fn action_high(&self) -> &[f64] {
        &[MAX_TORQUE]
    }
    fn max_episode_steps(&self) -> usize {
        MAX_STEPS
    }
    fn dt(&self) -> f64 {
        DT
    }

    fn reset(&mut self, seed: Option<u64>) -> Vec<f64> {
        if let Some(seed) = seed {
            self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        }
        self.theta = [self
            .rng
            .random_range(-std::f64::consts::PI..std::f64::consts::PI)];
        self.theta_dot = [self.rng.random_range(-1.0..1.0)];
        self.elapsed = 0;
        self.started = true;
        self.obs()
    }

    fn step(&mut self, action: &[f64]) -> Result<Step, EnvError> {
        check_action(action, 1)?;
        if !self.started {
            return Err(EnvError::NotReset);
        }
        let (th, thdot) = (self.theta[0], self.theta_dot[0]);
        let u = action[0].clamp(-MAX_TORQUE, MAX_TORQUE);
        let costs = angle_normalize(th).powi(2) + 0.1 * thdot * thdot + 0.001 * (u * u);
        let new_thdot = (thdot + (3.0 * G / (2.0 * L) * th.sin() + 3.0 / (M * L * L) * u) * DT)
            .clamp(-MAX_SPEED, MAX_SPEED);
        self.theta = [th + new_thdot * DT];
        self.theta_dot = [new_thdot];
        self.elapsed += 1;
        Ok(Step {
            obs: self.obs(),
            reward: -costs,
            terminated: false,
            truncated: self.elapsed >= MAX_STEPS,
            info: Info::default(),
        })
    }

    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError> {
        check_state(qpos, qvel, 1, 1)?;
        self.theta = [qpos[0]];
        self.theta_dot = [qvel[0]];
        self.elapsed = 0;
        self.started = true;
        Ok(self.obs())
    }

    fn snapshot(&self) -> EnvSnapshot {
        EnvSnapshot {
            id: self.id().to_string(),
            state: vec![self.theta[0], self.theta_dot[0]],
            elapsed: self.elapsed,
            started: self.started,
            rng: self.rng.clone(),
        }
    }

    fn restore(&mut self, s: &EnvSnapshot) -> Result<(), EnvError> {
        s.check(self.id(), 2)?;
        self.theta = [s.state[0]];
        self.theta_dot = [s.state[1]];
        self.elapsed = s.elapsed;
        self.started = s.started;
        self.rng = s.rng.clone();
        Ok(())
    }

    fn qpos(&self) -> &[f64] {
        &self.theta
    }
    fn qvel(&self) -> &[f64] {
        &self.theta_dot
    }
}

#[cfg(test)]
mod tests {
    use super::angle_normalize;
    use std::f64::consts::PI;

    #[test]
    fn angle_normalize_wraps_like_python_modulo() {
        assert_eq!(angle_normalize(0.0), 0.0);
        assert!((angle_normalize(3.0 * PI / 2.0) + PI / 2.0).abs() < 1e-15);
        assert!((angle_normalize(-3.0 * PI / 2.0) - PI / 2.0).abs() < 1e-15);
        // pi itself maps to -pi (the interval is [-pi, pi)).
        assert_eq!(angle_normalize(PI), -PI);
    }
}
