//! Golden episodes: recorded gymnasium trajectories (format `mujoco-golden/1`) and their replay.
//!
//! A file holds a header (task, gymnasium id and keyword arguments, MuJoCo version, sizes,
//! action bounds), the exact state after reset and, for every step, the exact action, state and
//! reward plus the observation and info rounded to 9 significant digits. [`replay`] checks this
//! crate against it: `set_state` with the recorded reset state (`mj_resetData`, write, `mj_forward`)
//! and compare the observation; then for every step apply the recorded action and compare
//! everything, always stepping on from the crate's own state (the recorded state is never
//! reloaded). Tolerances ([`Tolerances::GOLDEN`]): qpos/qvel bitwise, reward abs 1e-12 + rel 1e-12,
//! obs and info abs 1e-12 + rel 1e-8, terminated/truncated exact. Bit-exact agreement needs
//! MuJoCo 2.2.2, the version the files were recorded with.
//!
//! Files may be plain JSON or gzip-compressed JSON.
//!
//! One limit of the format: MuJoCo 2.2.2's `mj_forward` normalises each free joint's quaternion
//! in `qpos` ([`normalize_quaternion`]). gymnasium's reset normalises the noisy quaternion `q`
//! once (`q₁ = n(q)`, the recorded state) and its first `mj_step` a second time, so the recorded
//! trajectory starts from `n(q₁)`; a replay's `set_state` gives `n(q₁)` too, but its first step
//! normalises a third time, `n(n(q₁))`. Where that changes bits, the episode cannot be replayed
//! bit for bit from the recorded state; [`replay`] detects it
//! ([`Report::unstable_reset_quaternions`]) and [`Report::verdict`] names it
//! ([`Verdict::QuaternionLimit`]) instead of reporting an ordinary deviation. (That `q₁` itself
//! is not a fixed point of `n` is harmless: gymnasium normalised it again as well.)

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{EnvError, Options};

/// Why a golden file could not be read or replayed.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// The file could not be read or decompressed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not valid JSON of the expected shape.
    #[error("invalid golden file: {0}")]
    Json(#[from] serde_json::Error),
    /// The file is well-formed but describes something this crate cannot replay.
    #[error("unsupported golden file: {0}")]
    Unsupported(String),
    /// Making or driving the environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
}

/// The state after reset, as recorded.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResetRecord {
    /// Positions after the reset noise (exact).
    pub qpos: Vec<f64>,
    /// Velocities after the reset noise (exact).
    pub qvel: Vec<f64>,
    /// Observation returned by reset (9 significant digits).
    pub obs: Vec<f64>,
}

/// Per-step records; element `t` belongs to the `(t+1)`-th step.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct StepsRecord {
    /// Actions passed to `step` (exact).
    pub action: Vec<Vec<f64>>,
    /// Observations (9 significant digits).
    pub obs: Vec<Vec<f64>>,
    /// Rewards (exact).
    pub reward: Vec<f64>,
    /// Termination flags.
    pub terminated: Vec<bool>,
    /// Truncation flags.
    pub truncated: Vec<bool>,
    /// Positions after each step (exact).
    pub qpos: Vec<Vec<f64>>,
    /// Velocities after each step (exact).
    pub qvel: Vec<Vec<f64>>,
    /// Info values by key (9 significant digits).
    pub info: BTreeMap<String, Vec<f64>>,
}

/// One recorded episode.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Episode {
    /// Format tag, `"mujoco-golden/1"`.
    pub format: String,
    /// Task name of the recording (e.g. `"Ant-v4-contact-noterm"`).
    pub task: String,
    /// The gymnasium id it was made with (e.g. `"Ant-v4"`).
    pub gym_id: String,
    /// The keyword arguments passed to gymnasium's `make`.
    #[serde(default)]
    pub env_kwargs: BTreeMap<String, serde_json::Value>,
    /// MuJoCo version of the recording (`"2.2.2"`).
    pub mujoco_version: String,
    /// Simulation steps per environment step.
    pub frame_skip: usize,
    /// Seconds per environment step.
    pub dt: f64,
    /// Number of generalised positions.
    pub nq: usize,
    /// Number of generalised velocities.
    pub nv: usize,
    /// Number of actuators.
    pub nu: usize,
    /// Observation length.
    pub obs_dim: usize,
    /// Action-space lower bounds (float32 values widened to f64).
    pub action_low: Vec<f64>,
    /// Action-space upper bounds (float32 values widened to f64).
    pub action_high: Vec<f64>,
    /// Number of recorded steps.
    pub n_steps: usize,
    /// The reset state.
    pub reset: ResetRecord,
    /// The steps.
    pub steps: StepsRecord,
}

impl Episode {
    /// Reads a golden file, plain or gzip-compressed JSON.
    ///
    /// # Errors
    /// I/O, decompression or JSON errors.
    pub fn load(path: &Path) -> Result<Self, GoldenError> {
        let raw = std::fs::read(path)?;
        Self::from_bytes(&raw)
    }

    /// Parses a golden file's bytes, plain or gzip-compressed JSON.
    ///
    /// # Errors
    /// Decompression or JSON errors.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, GoldenError> {
        if raw.starts_with(&[0x1f, 0x8b]) {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(raw).read_to_end(&mut text)?;
            Ok(serde_json::from_slice(&text)?)
        } else {
            Ok(serde_json::from_slice(raw)?)
        }
    }

    /// Records, with this crate, an episode of this one's task as gymnasium records one:
    /// `set_state(qpos, qvel)` (so `mj_forward` has normalised any free-joint quaternion), the
    /// state and observation after it as the reset, then the first `n` of this episode's
    /// actions with everything they give. The header is this episode's. Serialised with
    /// `serde_json`, the result is a golden file.
    ///
    /// # Errors
    /// As [`Episode::env_spec`]; [`GoldenError::Unsupported`] if this episode has fewer than `n`
    /// actions; [`GoldenError::Env`] for a bad state or action.
    pub fn record_from(&self, qpos: &[f64], qvel: &[f64], n: usize) -> Result<Self, GoldenError> {
        let (id, options) = self.env_spec()?;
        let actions = self.steps.action.get(..n).ok_or_else(|| {
            GoldenError::Unsupported(format!("{n} steps asked, {} recorded", self.n_steps))
        })?;
        let mut env = crate::make_with(id, &options)?;
        let obs = env.set_state(qpos, qvel)?;
        let mut ep = self.clone();
        ep.reset = ResetRecord {
            qpos: env.qpos().to_vec(),
            qvel: env.qvel().to_vec(),
            obs,
        };
        ep.n_steps = n;
        let mut s = StepsRecord {
            action: Vec::new(),
            obs: Vec::new(),
            reward: Vec::new(),
            terminated: Vec::new(),
            truncated: Vec::new(),
            qpos: Vec::new(),
            qvel: Vec::new(),
            info: BTreeMap::new(),
        };
        for action in actions {
            let step = env.step(action)?;
            s.action.push(action.clone());
            s.obs.push(step.obs);
            s.reward.push(step.reward);
            s.terminated.push(step.terminated);
            s.truncated.push(step.truncated);
            s.qpos.push(env.qpos().to_vec());
            s.qvel.push(env.qvel().to_vec());
            for (key, value) in step.info.iter() {
                s.info.entry(key.to_string()).or_default().push(value);
            }
        }
        ep.steps = s;
        Ok(ep)
    }

    /// The crate's task id and options that reproduce this recording.
    ///
    /// # Errors
    /// [`GoldenError::Unsupported`] for an unknown gymnasium id or keyword argument.
    pub fn env_spec(&self) -> Result<(&'static str, Options), GoldenError> {
        let mut options = Options::default();
        let mut contact = false;
        for (key, value) in &self.env_kwargs {
            let flag = value.as_bool().ok_or_else(|| {
                GoldenError::Unsupported(format!("env_kwargs.{key} = {value} is not a boolean"))
            })?;
            match key.as_str() {
                "terminate_when_unhealthy" => options.terminate_when_unhealthy = flag,
                "use_contact_forces" if self.gym_id.starts_with("Ant-") => contact = flag,
                _ => {
                    return Err(GoldenError::Unsupported(format!(
                        "env_kwargs.{key} is not supported for {}",
                        self.gym_id
                    )));
                }
            }
        }
        let id = match (self.gym_id.as_str(), contact) {
            ("Hopper-v3" | "Hopper-v4", _) => "Hopper-v3",
            ("Walker2d-v3" | "Walker2d-v4", _) => "Walker2d-v3",
            ("HalfCheetah-v3" | "HalfCheetah-v4", _) => "HalfCheetah-v3",
            ("Ant-v4", true) | ("Ant-v3", _) => "Ant-v3",
            ("Ant-v4", false) => "Ant-v4",
            ("Humanoid-v3" | "Humanoid-v4", _) => "Humanoid-v3",
            (other, _) => {
                return Err(GoldenError::Unsupported(format!(
                    "gym id {other} has no task here"
                )));
            }
        };
        Ok((id, options))
    }
}

/// Replay tolerances. A value `x` matches its reference `r` when `|x - r| <= abs + rel * |r|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Absolute part for rewards.
    pub reward_abs: f64,
    /// Relative part for rewards.
    pub reward_rel: f64,
    /// Absolute part for observations and info values.
    pub obs_abs: f64,
    /// Relative part for observations and info values (the files round them to 9 digits).
    pub obs_rel: f64,
    /// Absolute tolerance for qpos and qvel; 0 means bitwise equality.
    pub state_abs: f64,
}

impl Tolerances {
    /// The tolerances the golden files are specified with (valid when linked against MuJoCo
    /// 2.2.2). qpos/qvel must match bitwise and the flags exactly in any case.
    pub const GOLDEN: Self = Self {
        reward_abs: 1e-12,
        reward_rel: 1e-12,
        obs_abs: 1e-12,
        obs_rel: 1e-8,
        state_abs: 0.0,
    };

    /// For a MuJoCo 2.2.2 build that rounds differently from the recording's (Debian's arm64
    /// library fuses multiply-adds; its amd64 one does not): every value within 1e-6. Over a
    /// long episode such differences grow chaotically once contacts amplify them, so this is
    /// meant for the first steps of an episode (see the golden tests).
    pub const ROUNDING: Self = Self {
        reward_abs: 1e-6,
        reward_rel: 1e-6,
        obs_abs: 1e-6,
        obs_rel: 1e-6,
        state_abs: 1e-6,
    };
}

/// Largest deviation of one quantity over a replay.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Deviation {
    /// Largest `|x - r|`.
    pub max_abs: f64,
    /// Number of values outside the tolerance (for qpos/qvel: not bitwise equal, unless
    /// [`Tolerances::state_abs`] allows more).
    pub failures: usize,
}

impl Deviation {
    fn add(&mut self, x: f64, r: f64, ok: bool) {
        let d = (x - r).abs();
        if d > self.max_abs || d.is_nan() {
            self.max_abs = d;
        }
        if !ok {
            self.failures += 1;
        }
    }

    fn close(&mut self, x: f64, r: f64, abs: f64, rel: f64) {
        self.add(x, r, (x - r).abs() <= abs + rel * r.abs());
    }

    fn bitwise(&mut self, x: f64, r: f64) {
        self.add(x, r, x.to_bits() == r.to_bits());
    }
}

/// MuJoCo 2.2.2's `mju_normalize4`, which its `mj_forward` applies in place to each free
/// joint's quaternion in `qpos`: the quaternion times `1 / sqrt(w² + x² + y² + z²)` (summed in
/// that order), or `(1, 0, 0, 0)` when that norm is below `mjMINVAL` (1e-15). Unlike later
/// MuJoCo versions, 2.2.2 rescales even a quaternion whose norm is already 1 to within rounding,
/// which can change its last bits.
pub fn normalize_quaternion(q: [f64; 4]) -> [f64; 4] {
    let norm = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
    if norm < 1e-15 {
        [1.0, 0.0, 0.0, 0.0]
    } else {
        let inv = 1.0 / norm;
        q.map(|x| x * inv)
    }
}

/// The first `qpos` index of each free joint's quaternion in this crate's task `id` (the root
/// free joint of the Ant and the Humanoid: position at 0–2, quaternion at 3–6).
pub fn free_joint_quaternions(id: &str) -> &'static [usize] {
    match id {
        "Ant-v3" | "Ant-v4" | "Humanoid-v3" => &[3],
        _ => &[],
    }
}

/// The free-joint quaternions (first `qpos` index) of a recorded reset state `qpos` of task `id`
/// for which a replay cannot be bit-exact: after `set_state` the quaternion is `n(q)`, and the
/// replay's first step normalises it once more than gymnasium's did, which changes bits exactly
/// when `n(n(q)) != n(q)` (see the module docs).
pub fn unstable_reset_quaternions(id: &str, qpos: &[f64]) -> Vec<usize> {
    free_joint_quaternions(id)
        .iter()
        .copied()
        .filter(|&i| {
            let Some(q) = qpos.get(i..i + 4) else {
                return false;
            };
            let once = normalize_quaternion([q[0], q[1], q[2], q[3]]);
            let twice = normalize_quaternion(once);
            once.iter()
                .zip(&twice)
                .any(|(a, b)| a.to_bits() != b.to_bits())
        })
        .collect()
}

/// The verdict on one replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything within tolerance.
    Passed,
    /// Deviations, but the recorded reset quaternion is not stable under MuJoCo's normalisation
    /// (see [`Report::unstable_reset_quaternions`]): the file cannot be replayed bit for bit, so
    /// the deviations say nothing about this crate.
    QuaternionLimit,
    /// Deviations or problems that the format's limit does not explain.
    Failed,
}

/// The outcome of replaying one episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The crate's task id used.
    pub env_id: &'static str,
    /// Steps replayed (all recorded steps unless a structural problem stopped the replay).
    pub steps: usize,
    /// qpos after every step (bitwise, or within [`Tolerances::state_abs`]).
    pub qpos: Deviation,
    /// qvel after every step (bitwise, or within [`Tolerances::state_abs`]).
    pub qvel: Deviation,
    /// Rewards.
    pub reward: Deviation,
    /// Observations, the reset observation included.
    pub obs: Deviation,
    /// Info values.
    pub info: Deviation,
    /// Steps whose terminated or truncated flag differs.
    pub flag_mismatches: usize,
    /// Problems that are not per-value deviations (sizes, bounds, missing info keys, ...).
    pub problems: Vec<String>,
    /// The free-joint quaternions (first `qpos` index) of the recorded reset state that make a
    /// bit-exact replay impossible ([`unstable_reset_quaternions`]); empty for most files.
    pub unstable_reset_quaternions: Vec<usize>,
}

impl Report {
    /// True when everything is within tolerance.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
            && self.flag_mismatches == 0
            && [self.qpos, self.qvel, self.reward, self.obs, self.info]
                .iter()
                .all(|d| d.failures == 0)
    }

    /// The verdict: passed; failed in a way the recorded reset quaternion explains (structural
    /// problems excepted); or failed.
    pub fn verdict(&self) -> Verdict {
        if self.passed() {
            Verdict::Passed
        } else if self.problems.is_empty() && !self.unstable_reset_quaternions.is_empty() {
            Verdict::QuaternionLimit
        } else {
            Verdict::Failed
        }
    }
}

/// Replays `episode` against this crate with the given tolerances (see the module docs for the
/// exact call sequence).
///
/// # Errors
/// [`GoldenError::Unsupported`] when the episode names no task of this crate, [`GoldenError::Env`]
/// when the environment cannot be made. Deviations are not errors: they are in the report.
pub fn replay(episode: &Episode, tol: &Tolerances) -> Result<Report, GoldenError> {
    let (id, options) = episode.env_spec()?;
    let mut env = crate::make_with(id, &options)?;
    let mut report = Report {
        env_id: env.id(),
        steps: 0,
        qpos: Deviation::default(),
        qvel: Deviation::default(),
        reward: Deviation::default(),
        obs: Deviation::default(),
        info: Deviation::default(),
        flag_mismatches: 0,
        problems: Vec::new(),
        unstable_reset_quaternions: unstable_reset_quaternions(id, &episode.reset.qpos),
    };
    let problems = &mut report.problems;
    if episode.format != "mujoco-golden/1" {
        problems.push(format!(
            "format {:?} is not mujoco-golden/1",
            episode.format
        ));
    }
    let sizes = [
        ("nq", episode.nq, env.qpos().len()),
        ("nv", episode.nv, env.qvel().len()),
        ("nu", episode.nu, env.action_dim()),
        ("obs_dim", episode.obs_dim, env.obs_dim()),
    ];
    for (name, file, ours) in sizes {
        if file != ours {
            problems.push(format!("{name}: file {file}, {id} {ours}"));
        }
    }
    if episode.dt.to_bits() != env.dt().to_bits() {
        problems.push(format!("dt: file {}, {id} {}", episode.dt, env.dt()));
    }
    // The file's bounds are gymnasium's float32 Box bounds.
    let f32_eq = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (*y as f32) as f64 == *x)
    };
    if !f32_eq(&episode.action_low, env.action_low())
        || !f32_eq(&episode.action_high, env.action_high())
    {
        problems.push("action bounds differ".into());
    }
    let s = &episode.steps;
    let n = episode.n_steps;
    let lengths = [
        s.action.len(),
        s.obs.len(),
        s.reward.len(),
        s.terminated.len(),
        s.truncated.len(),
        s.qpos.len(),
        s.qvel.len(),
    ];
    if lengths.iter().any(|&l| l != n) || s.info.values().any(|v| v.len() != n) {
        problems.push(format!("step arrays are not all of length n_steps = {n}"));
    }
    if !problems.is_empty() {
        return Ok(report);
    }

    let obs = env.set_state(&episode.reset.qpos, &episode.reset.qvel)?;
    compare_vec(
        &mut report.obs,
        &obs,
        &episode.reset.obs,
        tol,
        problems,
        "reset obs",
    );
    for t in 0..n {
        let step = env.step(&s.action[t])?;
        report.steps += 1;
        if step.terminated != s.terminated[t] || step.truncated != s.truncated[t] {
            report.flag_mismatches += 1;
        }
        report
            .reward
            .close(step.reward, s.reward[t], tol.reward_abs, tol.reward_rel);
        compare_vec(&mut report.obs, &step.obs, &s.obs[t], tol, problems, "obs");
        for (ours, file, dev) in [
            (env.qpos(), &s.qpos[t], &mut report.qpos),
            (env.qvel(), &s.qvel[t], &mut report.qvel),
        ] {
            if ours.len() != file.len() {
                problems.push(format!(
                    "step {}: state length {} vs {}",
                    t + 1,
                    ours.len(),
                    file.len()
                ));
                continue;
            }
            for (&x, &r) in ours.iter().zip(file) {
                if tol.state_abs == 0.0 {
                    dev.bitwise(x, r);
                } else {
                    dev.close(x, r, tol.state_abs, 0.0);
                }
            }
        }
        for (key, values) in &s.info {
            match step.info.get(key) {
                Some(x) => report.info.close(x, values[t], tol.obs_abs, tol.obs_rel),
                None => {
                    if t == 0 {
                        problems.push(format!("info key {key} is not produced by {id}"));
                    }
                }
            }
        }
    }
    Ok(report)
}

fn compare_vec(
    dev: &mut Deviation,
    ours: &[f64],
    file: &[f64],
    tol: &Tolerances,
    problems: &mut Vec<String>,
    what: &str,
) {
    if ours.len() != file.len() {
        problems.push(format!("{what}: length {} vs {}", ours.len(), file.len()));
        return;
    }
    for (&x, &r) in ours.iter().zip(file) {
        dev.close(x, r, tol.obs_abs, tol.obs_rel);
    }
}
