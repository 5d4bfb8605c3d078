//! The MuJoCo locomotion tasks with Gym's v3 rules (as gymnasium 1.4.0's v4 classes run them).
//!
//! Common mechanics: reset is `mj_resetData`, then `qpos = qpos0 + noise_q`,
//! `qvel = noise_v` (qpos noise drawn first), then `mj_forward`. The crate never renormalises
//! the free-joint quaternion of Ant and Humanoid itself; MuJoCo 2.2.2's `mj_forward` normalises it
//! in `qpos`, as it does under gymnasium (MuJoCo 3 leaves it as drawn).
//! A step writes the action to `ctrl` unclipped (MuJoCo clamps it to the control range inside the
//! dynamics), calls `mj_step` `frame_skip` times and `mj_rnePostConstraint` once, then computes
//! observation, reward and flags from what MuJoCo left in its data. Positions used for the
//! forward velocity are read before and after the step from that data (for Ant and Humanoid the
//! "lagged" body positions of the last internal evaluation, exactly as Gym reads them). Sums of
//! squares follow numpy's summation order so rewards are bit-exact.
//!
//! | task | obs | reward | terminated (when enabled) | reset noise q / v |
//! |---|---|---|---|---|
//! | Hopper-v3 | qpos[1..] , clip(qvel, ±10) | vx + 1 − 1e-3 Σa² | any of qpos[2..], qvel ∉ (−100, 100), z ≤ 0.7, \|angle\| ≥ 0.2 | U±0.005 / U±0.005 |
//! | Walker2d-v3 | qpos[1..], clip(qvel, ±10) | vx + 1 − 1e-3 Σa² | z ∉ (0.8, 2), angle ∉ (−1, 1) | U±0.005 / U±0.005 |
//! | HalfCheetah-v3 | qpos[1..], qvel | vx − 0.1 Σa² | never | U±0.1 / 0.1·N(0,1) |
//! | Ant-v3 | qpos[2..], qvel, clip(cfrc_ext, ±1) | vx + 1 − 0.5 Σa² − 5e-4 Σclip(cfrc_ext)² | non-finite state or z ∉ [0.2, 1] | U±0.1 / 0.1·N(0,1) |
//! | Ant-v4 | qpos[2..], qvel | vx + 1 − 0.5 Σa² | as Ant-v3 | as Ant-v3 |
//! | Humanoid-v3 | qpos[2..], qvel, cinert, cvel, qfrc_actuator, cfrc_ext | 1.25 vx + 5 − 0.1 Σctrl² | z ∉ (1, 2) | U±0.01 / U±0.01 |
//!
//! vx is the x velocity over the step of: the root x joint (Hopper, Walker2d, HalfCheetah), the
//! torso body origin (Ant), the mass centre (Humanoid). The healthy reward is paid on every step
//! when termination is enabled (the terminating step included) and only while healthy otherwise.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::sim::{Array, Sim};
use crate::sum::numpy_sum;
use crate::{Env, EnvError, EnvSnapshot, Info, Options, Step, check_action, check_state};

/// Episode length of every locomotion task (Gym's `max_episode_steps`).
const MAX_STEPS: usize = 1000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Hopper,
    Walker2d,
    HalfCheetah,
    Ant { contact: bool },
    Humanoid,
}

/// Distribution of the velocity reset noise.
#[derive(Clone, Copy)]
enum VelNoise {
    /// `U[-a, a)`.
    Uniform(f64),
    /// `scale * N(0, 1)`.
    Normal(f64),
}

struct Spec {
    file: &'static str,
    xml: &'static str,
    frame_skip: usize,
    qpos_noise: f64,
    qvel_noise: VelNoise,
}

fn spec(kind: Kind) -> Spec {
    match kind {
        Kind::Hopper => Spec {
            file: "hopper.xml",
            xml: include_str!("../models/hopper.xml"),
            frame_skip: 4,
            qpos_noise: 5e-3,
            qvel_noise: VelNoise::Uniform(5e-3),
        },
        Kind::Walker2d => Spec {
            file: "walker2d.xml",
            xml: include_str!("../models/walker2d.xml"),
            frame_skip: 4,
            qpos_noise: 5e-3,
            qvel_noise: VelNoise::Uniform(5e-3),
        },
        Kind::HalfCheetah => Spec {
            file: "half_cheetah.xml",
            xml: include_str!("../models/half_cheetah.xml"),
            frame_skip: 5,
            qpos_noise: 0.1,
            qvel_noise: VelNoise::Normal(0.1),
        },
        Kind::Ant { .. } => Spec {
            file: "ant.xml",
            xml: include_str!("../models/ant.xml"),
            frame_skip: 5,
            qpos_noise: 0.1,
            qvel_noise: VelNoise::Normal(0.1),
        },
        Kind::Humanoid => Spec {
            file: "humanoid.xml",
            xml: include_str!("../models/humanoid.xml"),
            frame_skip: 5,
            qpos_noise: 1e-2,
            qvel_noise: VelNoise::Uniform(1e-2),
        },
    }
}

/// One locomotion task instance.
pub(crate) struct Locomotion {
    id: &'static str,
    kind: Kind,
    sim: Sim,
    terminate_when_unhealthy: bool,
    frame_skip: usize,
    dt: f64,
    qpos_noise: f64,
    qvel_noise: VelNoise,
    init_qpos: Vec<f64>,
    action_low: Vec<f64>,
    action_high: Vec<f64>,
    obs_low: Vec<f64>,
    obs_high: Vec<f64>,
    /// Ant: id of the body "torso".
    torso: usize,
    /// Humanoid: body masses and their numpy-order total.
    body_mass: Vec<f64>,
    total_mass: f64,
    rng: Xoshiro256PlusPlus,
    elapsed: usize,
    started: bool,
}

impl Locomotion {
    /// Compiles the task's model. `id` must be one of the crate's MuJoCo ids.
    pub(crate) fn new(id: &str, options: &Options) -> Result<Self, EnvError> {
        let (id, kind) = match id {
            "Hopper-v3" => ("Hopper-v3", Kind::Hopper),
            "Walker2d-v3" => ("Walker2d-v3", Kind::Walker2d),
            "HalfCheetah-v3" => ("HalfCheetah-v3", Kind::HalfCheetah),
            "Ant-v3" => ("Ant-v3", Kind::Ant { contact: true }),
            "Ant-v4" => ("Ant-v4", Kind::Ant { contact: false }),
            "Humanoid-v3" => ("Humanoid-v3", Kind::Humanoid),
            other => {
                return Err(EnvError::UnknownId {
                    id: other.to_string(),
                    known: crate::known_ids(),
                });
            }
        };
        let spec = spec(kind);
        let sim = Sim::load(spec.file, spec.xml)?;
        let range = sim.ctrlrange();
        let action_low: Vec<f64> = range.chunks(2).map(|r| r[0]).collect();
        let action_high: Vec<f64> = range.chunks(2).map(|r| r[1]).collect();
        let (nq, nv, nbody) = (sim.nq, sim.nv, sim.nbody);
        let obs_dim = match kind {
            Kind::Hopper | Kind::Walker2d | Kind::HalfCheetah => nq - 1 + nv,
            Kind::Ant { contact } => nq - 2 + nv + if contact { nbody * 6 } else { 0 },
            Kind::Humanoid => nq - 2 + nv + nbody * 10 + nbody * 6 + nv + nbody * 6,
        };
        let torso = sim.body_id("torso").ok_or(EnvError::Model {
            model: spec.file,
            message: "no body named torso".into(),
        })?;
        let body_mass = sim.body_mass();
        let total_mass = numpy_sum(&body_mass);
        Ok(Self {
            id,
            kind,
            dt: sim.timestep() * spec.frame_skip as f64,
            init_qpos: sim.qpos0(),
            sim,
            terminate_when_unhealthy: options.terminate_when_unhealthy,
            frame_skip: spec.frame_skip,
            qpos_noise: spec.qpos_noise,
            qvel_noise: spec.qvel_noise,
            action_low,
            action_high,
            obs_low: vec![f64::NEG_INFINITY; obs_dim],
            obs_high: vec![f64::INFINITY; obs_dim],
            torso,
            body_mass,
            total_mass,
            rng: Xoshiro256PlusPlus::seed_from_u64(0),
            elapsed: 0,
            started: false,
        })
    }

    /// The (x, y) position whose change over a step gives the forward velocity.
    fn position(&self) -> [f64; 2] {
        match self.kind {
            Kind::Hopper | Kind::Walker2d | Kind::HalfCheetah => {
                [self.sim.get(Array::Qpos)[0], 0.0]
            }
            Kind::Ant { .. } => {
                let xpos = self.sim.get(Array::Xpos);
                [xpos[3 * self.torso], xpos[3 * self.torso + 1]]
            }
            Kind::Humanoid => {
                let xipos = self.sim.get(Array::Xipos);
                let mut c = [0.0; 2];
                for (b, &m) in self.body_mass.iter().enumerate() {
                    c[0] += m * xipos[3 * b];
                    c[1] += m * xipos[3 * b + 1];
                }
                [c[0] / self.total_mass, c[1] / self.total_mass]
            }
        }
    }

    fn is_healthy(&self) -> bool {
        let qpos = self.sim.get(Array::Qpos);
        let qvel = self.sim.get(Array::Qvel);
        match self.kind {
            Kind::Hopper => {
                let state_ok = qpos[2..]
                    .iter()
                    .chain(qvel)
                    .all(|&v| -100.0 < v && v < 100.0);
                let z = qpos[1];
                let angle = qpos[2];
                state_ok && 0.7 < z && z < f64::INFINITY && -0.2 < angle && angle < 0.2
            }
            Kind::Walker2d => {
                let (z, angle) = (qpos[1], qpos[2]);
                0.8 < z && z < 2.0 && -1.0 < angle && angle < 1.0
            }
            Kind::HalfCheetah => true,
            Kind::Ant { .. } => {
                qpos.iter().chain(qvel).all(|v| v.is_finite()) && 0.2 <= qpos[2] && qpos[2] <= 1.0
            }
            Kind::Humanoid => 1.0 < qpos[2] && qpos[2] < 2.0,
        }
    }

    fn obs(&self) -> Vec<f64> {
        let qpos = self.sim.get(Array::Qpos);
        let qvel = self.sim.get(Array::Qvel);
        let mut obs = Vec::with_capacity(self.obs_low.len());
        match self.kind {
            Kind::Hopper | Kind::Walker2d => {
                obs.extend_from_slice(&qpos[1..]);
                obs.extend(qvel.iter().map(|v| v.clamp(-10.0, 10.0)));
            }
            Kind::HalfCheetah => {
                obs.extend_from_slice(&qpos[1..]);
                obs.extend_from_slice(qvel);
            }
            Kind::Ant { contact } => {
                obs.extend_from_slice(&qpos[2..]);
                obs.extend_from_slice(qvel);
                if contact {
                    obs.extend(
                        self.sim
                            .get(Array::CfrcExt)
                            .iter()
                            .map(|v| v.clamp(-1.0, 1.0)),
                    );
                }
            }
            Kind::Humanoid => {
                obs.extend_from_slice(&qpos[2..]);
                obs.extend_from_slice(qvel);
                obs.extend_from_slice(self.sim.get(Array::Cinert));
                obs.extend_from_slice(self.sim.get(Array::Cvel));
                obs.extend_from_slice(self.sim.get(Array::QfrcActuator));
                obs.extend_from_slice(self.sim.get(Array::CfrcExt));
            }
        }
        obs
    }

    fn healthy_reward(&self, healthy: bool, value: f64) -> f64 {
        if healthy || self.terminate_when_unhealthy {
            value
        } else {
            0.0
        }
    }
}

fn sum_sq(x: &[f64]) -> f64 {
    let sq: Vec<f64> = x.iter().map(|v| v * v).collect();
    numpy_sum(&sq)
}

impl Env for Locomotion {
    fn id(&self) -> &'static str {
        self.id
    }
    fn obs_dim(&self) -> usize {
        self.obs_low.len()
    }
    fn action_dim(&self) -> usize {
        self.sim.nu
    }
    fn obs_low(&self) -> &[f64] {
        &self.obs_low
    }
    fn obs_high(&self) -> &[f64] {
        &self.obs_high
    }
    fn action_low(&self) -> &[f64] {
        &self.action_low
    }
    fn action_high(&self) -> &[f64] {
        &self.action_high
    }
    fn max_episode_steps(&self) -> usize {
        MAX_STEPS
    }
    fn dt(&self) -> f64 {
        self.dt
    }

    fn reset(&mut self, seed: Option<u64>) -> Vec<f64> {
        if let Some(seed) = seed {
            self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        }
        let a = self.qpos_noise;
        let qpos: Vec<f64> = self
            .init_qpos
            .iter()
            .map(|&q| q + self.rng.random_range(-a..a))
            .collect();
        let qvel: Vec<f64> = (0..self.sim.nv)
            .map(|_| match self.qvel_noise {
                VelNoise::Uniform(b) => 0.0 + self.rng.random_range(-b..b),
                VelNoise::Normal(s) => 0.0 + s * self.rng.sample::<f64, _>(StandardNormal),
            })
            .collect();
        self.start_from(&qpos, &qvel)
    }

    fn step(&mut self, action: &[f64]) -> Result<Step, EnvError> {
        check_action(action, self.sim.nu)?;
        if !self.started {
            return Err(EnvError::NotReset);
        }
        let before = self.position();
        self.sim.get_mut(Array::Ctrl).copy_from_slice(action);
        self.sim.step(self.frame_skip);
        let after = self.position();
        let vx = (after[0] - before[0]) / self.dt;
        let vy = (after[1] - before[1]) / self.dt;
        self.elapsed += 1;
        let healthy = self.is_healthy();
        let terminated =
            self.kind != Kind::HalfCheetah && self.terminate_when_unhealthy && !healthy;
        let qpos0 = self.sim.get(Array::Qpos)[0];
        let (reward, info) = match self.kind {
            Kind::Hopper | Kind::Walker2d => {
                let ctrl_cost = 1e-3 * sum_sq(action);
                let forward = 1.0 * vx;
                let reward = (forward + self.healthy_reward(healthy, 1.0)) - ctrl_cost;
                (reward, vec![("x_position", qpos0), ("x_velocity", vx)])
            }
            Kind::HalfCheetah => {
                let ctrl_cost = 0.1 * sum_sq(action);
                let forward = 1.0 * vx;
                let info = vec![
                    ("x_position", qpos0),
                    ("x_velocity", vx),
                    ("reward_run", forward),
                    ("reward_ctrl", -ctrl_cost),
                ];
                (forward - ctrl_cost, info)
            }
            Kind::Ant { contact } => {
                let ctrl_cost = 0.5 * sum_sq(action);
                let survive = self.healthy_reward(healthy, 1.0);
                let forward = vx;
                let mut costs = ctrl_cost;
                let mut reward_ctrl = -ctrl_cost;
                if contact {
                    let clipped: Vec<f64> = self
                        .sim
                        .get(Array::CfrcExt)
                        .iter()
                        .map(|v| v.clamp(-1.0, 1.0))
                        .collect();
                    let contact_cost = 5e-4 * sum_sq(&clipped);
                    costs += contact_cost;
                    // gymnasium overwrites reward_ctrl with the contact cost here; kept for parity.
                    reward_ctrl = -contact_cost;
                }
                let mut info = vec![
                    ("reward_forward", forward),
                    ("reward_ctrl", reward_ctrl),
                    ("reward_survive", survive),
                ];
                info.extend(planar_info(&after, vx, vy, forward));
                ((forward + survive) - costs, info)
            }
            Kind::Humanoid => {
                let ctrl_cost = 0.1 * sum_sq(self.sim.get(Array::Ctrl));
                let forward = 1.25 * vx;
                let alive = self.healthy_reward(healthy, 5.0);
                let mut info = vec![
                    ("reward_linvel", forward),
                    ("reward_quadctrl", -ctrl_cost),
                    ("reward_alive", alive),
                ];
                info.extend(planar_info(&after, vx, vy, forward));
                ((forward + alive) - ctrl_cost, info)
            }
        };
        Ok(Step {
            obs: self.obs(),
            reward,
            terminated,
            truncated: self.elapsed >= MAX_STEPS,
            info: Info::from_entries(info),
        })
    }

    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError> {
        check_state(qpos, qvel, self.sim.nq, self.sim.nv)?;
        Ok(self.start_from(qpos, qvel))
    }

    fn snapshot(&self) -> EnvSnapshot {
        EnvSnapshot {
            id: self.id.to_string(),
            state: self.sim.state(),
            elapsed: self.elapsed,
            started: self.started,
            rng: self.rng.clone(),
        }
    }

    fn restore(&mut self, s: &EnvSnapshot) -> Result<(), EnvError> {
        s.check(self.id, self.sim.state_len())?;
        self.sim.set_state_exact(&s.state);
        self.elapsed = s.elapsed;
        self.started = s.started;
        self.rng = s.rng.clone();
        Ok(())
    }

    fn qpos(&self) -> &[f64] {
        self.sim.get(Array::Qpos)
    }
    fn qvel(&self) -> &[f64] {
        self.sim.get(Array::Qvel)
    }
}

/// The position and velocity entries Ant and Humanoid report after their reward terms, in
/// gymnasium's order.
fn planar_info(after: &[f64], vx: f64, vy: f64, forward: f64) -> [(&'static str, f64); 6] {
    [
        ("x_position", after[0]),
        ("y_position", after[1]),
        (
            "distance_from_origin",
            (after[0] * after[0] + after[1] * after[1]).sqrt(),
        ),
        ("x_velocity", vx),
        ("y_velocity", vy),
        ("forward_reward", forward),
    ]
}

impl Locomotion {
    /// `mj_resetData`, write the state verbatim, `mj_forward`; restarts the episode.
    fn start_from(&mut self, qpos: &[f64], qvel: &[f64]) -> Vec<f64> {
        self.sim.reset_data();
        self.sim.get_mut(Array::Qpos).copy_from_slice(qpos);
        self.sim.get_mut(Array::Qvel).copy_from_slice(qvel);
        self.sim.forward();
        self.elapsed = 0;
        self.started = true;
        self.obs()
    }
}

#[cfg(test)]
mod tests {
    use super::{Kind, spec};
    use crate::sim::Sim;
    use crate::sum::numpy_sum;

    /// Compiles a model and checks its sizes and body masses against the values the Gym models
    /// compile to under MuJoCo 2.2.2 (independent facts: masses follow from geom sizes and
    /// densities, so any authoring slip in a size, a placement or a density shows up here).
    fn check(kind: Kind, sizes: [usize; 4], mass: &[f64], total: f64) {
        let s = spec(kind);
        let sim = Sim::load(s.file, s.xml).expect("model compiles");
        assert_eq!([sim.nq, sim.nv, sim.nu, sim.nbody], sizes, "{}", s.file);
        let got = sim.body_mass();
        assert_eq!(got[0], 0.0, "{}: world body", s.file);
        for (b, (&g, &m)) in got[1..].iter().zip(mass).enumerate() {
            // Bit for bit with the MuJoCo build the facts come from; Debian's arm64 build fuses
            // multiply-adds, which moves a mass by an ulp or two.
            let same = if cfg!(target_arch = "aarch64") {
                (g - m).abs() <= 1e-14 * m.abs()
            } else {
                g.to_bits() == m.to_bits()
            };
            assert!(same, "{} body {}: {g} vs {m}", s.file, b + 1);
        }
        assert!((numpy_sum(&got) - total).abs() < 1e-13, "{}", s.file);
    }

    #[test]
    fn hopper_compiles_to_gym_masses() {
        let m = [
            3.6651914291880923,
            4.057890510886818,
            2.7813566959781637,
            5.315574769873931,
        ];
        check(Kind::Hopper, [6, 6, 3, 5], &m, 15.820013405927003);
    }

    #[test]
    fn walker2d_compiles_to_gym_masses() {
        let (torso, thigh, leg, foot) = (
            3.6651914291880923,
            4.057890510886818,
            2.7813566959781637,
            3.1667253948185117,
        );
        let m = [torso, thigh, leg, foot, thigh, leg, foot];
        check(Kind::Walker2d, [9, 9, 6, 8], &m, 23.677136632555076);
    }

    #[test]
    fn half_cheetah_compiles_to_gym_masses() {
        let m = [
            6.25020920502092,
            1.5435146443514645,
            1.5874476987447697,
            1.0953974895397491,
            1.4380753138075317,
            1.200836820083682,
            0.8845188284518829,
        ];
        check(Kind::HalfCheetah, [9, 9, 6, 8], &m, 14.000000000000002);
    }

    #[test]
    fn ant_compiles_to_gym_masses() {
        let (leg, foot) = (0.03915775372846671, 0.06759220453268026);
        let mut m = vec![0.32724923474893675];
        for _ in 0..4 {
            m.extend([leg, leg, foot]);
        }
        check(
            Kind::Ant { contact: true },
            [15, 14, 8, 14],
            &m,
            0.9108800827073915,
        );
    }

    #[test]
    fn humanoid_compiles_to_gym_masses() {
        let (thigh, shin, foot) = (4.751750928806242, 2.7556961671836424, 1.7671458676442586);
        let (uarm, larm) = (1.6610804848382084, 1.2295401928310803);
        let m = [
            8.907462370478262,
            2.261946710584651,
            6.616194128460103,
            thigh,
            shin,
            foot,
            thigh,
            shin,
            foot,
            uarm,
            larm,
            uarm,
            larm,
        ];
        check(Kind::Humanoid, [24, 23, 17, 14], &m, 42.11603049212988);
    }
}
