//! Gym-style reinforcement-learning environments for DS-TD3.
//!
//! * The five MuJoCo locomotion tasks of the paper, with the Gym "v3" rules as gymnasium 1.4.0's
//!   v4 classes implement them: `Hopper-v3`, `Walker2d-v3`, `HalfCheetah-v3`, `Ant-v3` (the
//!   111-dim observation with real contact forces) and `Humanoid-v3` (without its always-zero
//!   contact cost), plus `Ant-v4` (the 27-dim Ant). They need the cargo feature `mujoco` (on by
//!   default), which compiles a small C shim against the MuJoCo found at build time. Under
//!   MuJoCo 2.2.2 they replay recorded gymnasium episodes bit for bit (see the `golden` module).
//! * `Pendulum-v1` with Gym's classic-control rules, in pure Rust: always available.
//!
//! The robot models are this crate's own MJCF files, embedded in the library and compiled from
//! memory, so a binary needs no data files.
//!
//! ```
//! let mut env = mujoco_env::make("Pendulum-v1").unwrap();
//! let obs = env.reset(Some(7));
//! assert_eq!(obs.len(), env.obs_dim());
//! let step = env.step(&[0.5]).unwrap();
//! assert!(step.reward <= 0.0);
//! ```

mod error;
mod pendulum;
mod sum;

#[cfg(feature = "mujoco")]
pub mod golden;
#[cfg(feature = "mujoco")]
mod locomotion;
#[cfg(feature = "mujoco")]
mod sim;

pub use error::EnvError;

/// Ids of the MuJoCo tasks (available with the `mujoco` feature).
const MUJOCO_IDS: [&str; 6] = [
    "Hopper-v3",
    "Walker2d-v3",
    "HalfCheetah-v3",
    "Ant-v3",
    "Ant-v4",
    "Humanoid-v3",
];

/// Ids of the tasks that need no MuJoCo.
const PURE_IDS: [&str; 1] = ["Pendulum-v1"];

/// A reinforcement-learning environment with Gymnasium's reset/step contract.
///
/// Observations and actions are `f64`. An episode starts with [`Env::reset`] (or
/// [`Env::set_state`]); [`Env::step`] then advances it by one control step. The time limit is
/// reported as truncation, exactly as Gym's `TimeLimit` wrapper does: `truncated` is true from the
/// `max_episode_steps()`-th step after the start on.
pub trait Env: Send {
    /// The task id this environment was made with (e.g. `"Hopper-v3"`).
    fn id(&self) -> &'static str;
    /// Length of an observation.
    fn obs_dim(&self) -> usize;
    /// Length of an action.
    fn action_dim(&self) -> usize;
    /// Lower bounds of the observation space (`-inf` where unbounded).
    fn obs_low(&self) -> &[f64];
    /// Upper bounds of the observation space (`+inf` where unbounded).
    fn obs_high(&self) -> &[f64];
    /// Lower bounds of the action space.
    fn action_low(&self) -> &[f64];
    /// Upper bounds of the action space.
    fn action_high(&self) -> &[f64];
    /// Steps after which an episode is truncated (1000 for MuJoCo tasks, 200 for Pendulum).
    fn max_episode_steps(&self) -> usize;
    /// Simulated seconds per [`Env::step`].
    fn dt(&self) -> f64;
    /// Starts an episode from the task's initial state plus its reset noise and returns the first
    /// observation. `Some(seed)` re-seeds the environment's generator first; `None` continues its
    /// stream (an environment never seeded starts as if seeded with 0).
    fn reset(&mut self, seed: Option<u64>) -> Vec<f64>;
    /// Applies `action` for one control step.
    ///
    /// # Errors
    /// [`EnvError::ActionLength`] or [`EnvError::NonFiniteAction`] for a bad action and
    /// [`EnvError::NotReset`] before the first reset; the state is then left unchanged.
    fn step(&mut self, action: &[f64]) -> Result<Step, EnvError>;
    /// Starts an episode from exactly this state (no noise; the step counter restarts at 0) and
    /// returns its observation. For MuJoCo tasks this is `mj_resetData`, writing `qpos`/`qvel`
    /// verbatim and `mj_forward` (which, in MuJoCo 2.2.2, normalises a free joint's quaternion in
    /// `qpos`); for Pendulum `qpos = [theta]`, `qvel = [theta_dot]`.
    ///
    /// # Errors
    /// [`EnvError::StateLength`] or [`EnvError::NonFiniteState`]; the state is then unchanged.
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError>;
    /// Everything that determines the environment's future: restoring it into an environment
    /// of the same task continues bit for bit (the dynamic state, including MuJoCo's solver warm
    /// start, the step counter and the reset-noise generator).
    fn snapshot(&self) -> EnvSnapshot;
    /// Restores a [`Env::snapshot`] of the same task.
    ///
    /// # Errors
    /// [`EnvError::SnapshotMismatch`] for another task's snapshot or a state of the wrong size;
    /// [`EnvError::NonFiniteState`] if the state holds NaN or an infinity. The environment is
    /// then unchanged.
    fn restore(&mut self, snapshot: &EnvSnapshot) -> Result<(), EnvError>;
    /// Current generalised positions.
    fn qpos(&self) -> &[f64];
    /// Current generalised velocities.
    fn qvel(&self) -> &[f64];
}

/// The exact state of an environment (see [`Env::snapshot`]); serialisable for checkpoints.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnvSnapshot {
    id: String,
    state: Vec<f64>,
    elapsed: usize,
    started: bool,
    rng: rand::rngs::Xoshiro256PlusPlus,
}

impl EnvSnapshot {
    /// The task the snapshot was taken from.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Checks that the snapshot fits task `id` with a state of `len` values.
    pub(crate) fn check(&self, id: &'static str, len: usize) -> Result<(), EnvError> {
        if self.id != id || self.state.len() != len {
            return Err(EnvError::SnapshotMismatch {
                expected: id,
                expected_len: len,
                found: self.id.clone(),
                found_len: self.state.len(),
            });
        }
        if self.state.iter().any(|v| !v.is_finite()) {
            return Err(EnvError::NonFiniteState);
        }
        Ok(())
    }
}

/// The result of one [`Env::step`].
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Observation after the step.
    pub obs: Vec<f64>,
    /// Reward of the step.
    pub reward: f64,
    /// The task reached a terminal state (for locomotion tasks: the robot became unhealthy).
    pub terminated: bool,
    /// The episode hit the time limit.
    pub truncated: bool,
    /// Diagnostic values, with the keys and meanings gymnasium uses for the task.
    pub info: Info,
}

/// Named diagnostic values of a step (gymnasium's `info` dict, numbers only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Info {
    entries: Vec<(&'static str, f64)>,
}

impl Info {
    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, v)| v)
    }

    /// All entries, in gymnasium's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.entries.iter().copied()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg_attr(not(feature = "mujoco"), allow(dead_code))]
    pub(crate) fn from_entries(entries: Vec<(&'static str, f64)>) -> Self {
        Self { entries }
    }
}

/// Task options for [`make_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// End an episode (`terminated`) when a locomotion robot becomes unhealthy. With `false` the
    /// healthy reward is paid only while healthy and episodes end by the time limit alone
    /// (gymnasium's `terminate_when_unhealthy=False`). No effect on HalfCheetah and Pendulum,
    /// which never terminate.
    pub terminate_when_unhealthy: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            terminate_when_unhealthy: true,
        }
    }
}

/// The task ids [`make`] accepts in this build.
pub fn known_ids() -> Vec<&'static str> {
    let mut ids = PURE_IDS.to_vec();
    if cfg!(feature = "mujoco") {
        ids.extend(MUJOCO_IDS);
    }
    ids
}

/// Makes the environment `id` with default [`Options`].
///
/// # Errors
/// [`EnvError::UnknownId`] (listing the known ids), [`EnvError::MujocoDisabled`] for a MuJoCo
/// task in a build without the `mujoco` feature, [`EnvError::Model`] if MuJoCo rejects a model.
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    make_with(id, &Options::default())
}

/// Makes the environment `id` with the given options. See [`make`].
///
/// # Errors
/// As [`make`].
pub fn make_with(id: &str, options: &Options) -> Result<Box<dyn Env>, EnvError> {
    if id == PURE_IDS[0] {
        return Ok(Box::new(pendulum::Pendulum::new()));
    }
    if MUJOCO_IDS.contains(&id) {
        #[cfg(feature = "mujoco")]
        return Ok(Box::new(locomotion::Locomotion::new(id, options)?));
        #[cfg(not(feature = "mujoco"))]
        {
            let _ = options;
            return Err(EnvError::MujocoDisabled { id: id.to_string() });
        }
    }
    Err(EnvError::UnknownId {
        id: id.to_string(),
        known: known_ids(),
    })
}

/// The version of the linked MuJoCo library as `mj_version()` reports it (222 for 2.2.2).
#[cfg(feature = "mujoco")]
pub fn mujoco_version() -> i32 {
    sim::version()
}

/// Checks an action's length and values without touching any state.
pub(crate) fn check_action(action: &[f64], dim: usize) -> Result<(), EnvError> {
    if action.len() != dim {
        return Err(EnvError::ActionLength {
            expected: dim,
            got: action.len(),
        });
    }
    if let Some((index, &value)) = action.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EnvError::NonFiniteAction { index, value });
    }
    Ok(())
}

/// Checks a state's lengths and values without touching any state.
pub(crate) fn check_state(
    qpos: &[f64],
    qvel: &[f64],
    nq: usize,
    nv: usize,
) -> Result<(), EnvError> {
    if qpos.len() != nq || qvel.len() != nv {
        return Err(EnvError::StateLength {
            nq,
            nv,
            got_q: qpos.len(),
            got_v: qvel.len(),
        });
    }
    if qpos.iter().chain(qvel).any(|v| !v.is_finite()) {
        return Err(EnvError::NonFiniteState);
    }
    Ok(())
}
