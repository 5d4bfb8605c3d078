//! The crate's error type.

/// What can go wrong when making or driving an environment.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EnvError {
    /// No task has this id.
    #[error("unknown environment id {id:?}; known ids: {}", known.join(", "))]
    UnknownId {
        /// The id asked for.
        id: String,
        /// The ids this build knows.
        known: Vec<&'static str>,
    },
    /// The id names a MuJoCo task but the crate was built without the `mujoco` feature.
    #[error("{id} needs MuJoCo: build with the `mujoco` cargo feature (on by default)")]
    MujocoDisabled {
        /// The id asked for.
        id: String,
    },
    /// An action of the wrong length.
    #[error("action has {got} values, the action space has {expected}")]
    ActionLength {
        /// The action-space dimension.
        expected: usize,
        /// The length passed.
        got: usize,
    },
    /// An action containing NaN or an infinity.
    #[error("action[{index}] = {value} is not finite")]
    NonFiniteAction {
        /// Position of the first bad value.
        index: usize,
        /// The bad value.
        value: f64,
    },
    /// A state of the wrong length passed to `set_state`.
    #[error("state needs {nq} positions and {nv} velocities, got {got_q} and {got_v}")]
    StateLength {
        /// Positions needed.
        nq: usize,
        /// Velocities needed.
        nv: usize,
        /// Positions passed.
        got_q: usize,
        /// Velocities passed.
        got_v: usize,
    },
    /// A state containing NaN or an infinity passed to `set_state`.
    #[error("state contains a value that is not finite")]
    NonFiniteState,
    /// `step` was called before the first `reset` or `set_state`.
    #[error("step called before reset")]
    NotReset,
    /// A snapshot taken from another task, or whose state has the wrong size.
    #[error(
        "snapshot of {found} (state of {found_len} values) cannot restore {expected} (needs {expected_len})"
    )]
    SnapshotMismatch {
        /// The task restored into.
        expected: &'static str,
        /// State length it needs.
        expected_len: usize,
        /// The snapshot's task.
        found: String,
        /// The snapshot's state length.
        found_len: usize,
    },
    /// MuJoCo could not compile a model (or allocate its data).
    #[error("MuJoCo model {model}: {message}")]
    Model {
        /// The model's file name.
        model: &'static str,
        /// MuJoCo's message.
        message: String,
    },
}
