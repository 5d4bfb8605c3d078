//! A trained policy (an actor network) as a file the ML ecosystem reads: export to and load
//! from [safetensors](https://huggingface.co/docs/safetensors), and run on observations.
//!
//! # The file
//!
//! Layer `i` (from 0, input side first) of an `L`-layer actor is stored as
//!
//! - a sparse layer: `layers.{i}.indptr` (`I64`, `n_out + 1` row pointers), `layers.{i}.indices`
//!   (`I32`, the column of each live connection, sorted within a row) and `layers.{i}.values`
//!   (`F32`): the CSR arrays of its `n_out × n_in` weight matrix, exactly what
//!   `scipy.sparse.csr_matrix((values, indices, indptr), shape=(n_out, n_in))` takes;
//! - a dense layer: `layers.{i}.weight` (`F32`, 2-D, `n_out × n_in`, row-major);
//! - either: `layers.{i}.bias` (`F32`, `n_out`).
//!
//! The header's metadata (all strings) says how to run it:
//!
//! | key | value |
//! |---|---|
//! | `format`, `format_version` | `ds-td3-actor`, `1` |
//! | `obs_dim`, `act_dim`, `num_layers` | integers |
//! | `layers.{i}.kind` | `sparse` or `dense` |
//! | `layers.{i}.shape` | `[n_out, n_in]` (JSON) |
//! | `layers.{i}.activation` | `relu` for hidden layers, `tanh` for the last |
//! | `action_bound` | the action is `action_bound · tanh(W_L h + b_L)` |
//! | `task`, `algorithm`, `step` | what was trained, how, and for how many environment steps |
//! | `live_connections`, `density` | live weights and their share of the dense count |
//!
//! Any other metadata key is the producer's ([`PolicyInfo::extra`]). Loading checks every one of
//! these facts (names, types, shapes, CSR invariants, finite values, consistent metadata) and
//! reports the first that fails as a [`PolicyError`]; it never panics on a bad file.
//!
//! # Running it
//!
//! A [`Policy`] runs the network with the same kernels training used (sparse layers stay
//! sparse), on row-major observations ([`Policy::act_rows`]) or, with the `ndarray` feature, on
//! an `ndarray` view (`Policy::act`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::activations::Activations;
use crate::csr::{ColIndex, Csr, SparseWeights};
use crate::error::Error;
use crate::layer::{DenseLinear, Layer, SparseLinear};
use crate::mlp::{Mlp, Output, Workspace};

/// The `format` metadata value of an exported actor.
pub const FORMAT: &str = "ds-td3-actor";

/// The `format_version` this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Largest layer width a file may declare (a guard against corrupt headers).
const MAX_WIDTH: usize = 1 << 24;

/// Metadata keys this module writes and checks; [`PolicyInfo::extra`] may not use them.
const RESERVED: [&str; 11] = [
    "format",
    "format_version",
    "obs_dim",
    "act_dim",
    "num_layers",
    "action_bound",
    "task",
    "algorithm",
    "step",
    "live_connections",
    "density",
];

/// What went wrong reading, writing or running a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file.
    #[error("not a valid safetensors file: {0}")]
    Safetensors(String),
    /// A valid safetensors file that is not a valid ds-td3 actor; the message names the key or
    /// tensor and the rule.
    #[error("not a valid {FORMAT} file: {0}")]
    Format(String),
    /// The network (from a file or given) is invalid, or an input has the wrong shape.
    #[error(transparent)]
    Network(#[from] Error),
}

/// Shorthand for results carrying [`PolicyError`].
pub type Result<T> = std::result::Result<T, PolicyError>;

/// What a policy file says about its origin (the network's own facts come from the network).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyInfo {
    /// The task it was trained on (e.g. `Hopper-v3`).
    pub task: String,
    /// The training algorithm (e.g. `ds`, `dense`).
    pub algorithm: String,
    /// Environment steps trained.
    pub step: u64,
    /// Further metadata, written and read back verbatim (keys must not be this format's own).
    pub extra: BTreeMap<String, String>,
}

/// A deterministic policy: an actor network (hidden ReLU layers, `bound · tanh` output) with its
/// [`PolicyInfo`].
///
/// ```
/// use rand::{SeedableRng, rngs::StdRng};
/// use sparse_core::policy::{Policy, PolicyInfo};
/// use sparse_core::{LayerKind, Mlp, Output, Workspace};
///
/// // A 3 → 8 (sparse) → 2 (dense) actor with actions in [−2, 2].
/// let kinds = [LayerKind::Sparse { lambda: 2.0 }, LayerKind::Dense];
/// let net = Mlp::init(&[3, 8, 2], &kinds, Output::Tanh { bound: 2.0 }, &mut StdRng::seed_from_u64(0))?;
/// let info = PolicyInfo { task: "Pendulum-v1".into(), ..PolicyInfo::default() };
/// let bytes = Policy::new(net, info)?.to_safetensors()?;
///
/// let policy = Policy::from_safetensors(&bytes)?;
/// let actions = policy.act_rows(&[0.1, -0.2, 0.3, 1.0, 0.0, -1.0], &mut Workspace::new())?;
/// assert_eq!(actions.len(), 2 * 2); // two observations, two actions each
/// assert!(actions.iter().all(|a| a.abs() <= 2.0));
/// # Ok::<(), sparse_core::policy::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    net: Mlp,
    info: PolicyInfo,
}

impl Policy {
    /// A policy from an actor network, which must have a `Tanh` output, and its description.
    pub fn new(net: Mlp, info: PolicyInfo) -> Result<Self> {
        if !matches!(net.output(), Output::Tanh { .. }) {
            return Err(PolicyError::Format(
                "a policy's output must be bound · tanh (the network has a linear output)".into(),
            ));
        }
        if let Some(key) = info.extra.keys().find(|k| is_reserved(k)) {
            return Err(PolicyError::Format(format!(
                "extra metadata key '{key}' is one of the format's own"
            )));
        }
        Ok(Self { net, info })
    }

    /// Reads and validates a policy file ([`Self::from_safetensors`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_safetensors(&bytes)
    }

    /// The network.
    pub fn network(&self) -> &Mlp {
        &self.net
    }

    /// Where the policy comes from.
    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// Observation width.
    pub fn obs_dim(&self) -> usize {
        self.net.n_in()
    }

    /// Action width.
    pub fn act_dim(&self) -> usize {
        self.net.n_out()
    }

    /// The action bound: every action component lies in `[−bound, bound]`.
    pub fn action_bound(&self) -> f32 {
        match self.net.output() {
            Output::Tanh { bound } => bound,
            // `new` and the loader accept nothing else.
            Output::Linear => f32::INFINITY,
        }
    }

    /// Live weights over the dense count of the same layers (1 for a dense network).
    pub fn density(&self) -> f64 {
        let dense: usize = self.net.layers().iter().map(|l| l.n_in() * l.n_out()).sum();
        self.net.live_connections() as f64 / dense as f64
    }

    /// Actions for a batch of observations: `obs` holds `batch × obs_dim` values, one
    /// observation per row (row-major); the result holds `batch × act_dim`, one action per row.
    /// `ws` keeps the buffers between calls (a fresh [`Workspace::new`] works too).
    pub fn act_rows(&self, obs: &[f32], ws: &mut Workspace) -> Result<Vec<f32>> {
        let d = self.obs_dim();
        if obs.is_empty() || !obs.len().is_multiple_of(d) {
            return Err(Error::ShapeMismatch {
                what: "observation values (a non-empty multiple of obs_dim)",
                expected: obs.len().div_ceil(d).max(1) * d,
                got: obs.len(),
            }
            .into());
        }
        let x = Activations::from_samples(d, obs.len() / d, obs)?;
        Ok(self.net.forward(&x, ws)?.to_samples())
    }

    /// Actions for a batch of observations, one per row of `obs` (`batch × obs_dim`); returns
    /// `batch × act_dim`. Any memory layout works.
    ///
    /// ```
    /// use ndarray::array;
    /// use rand::{SeedableRng, rngs::StdRng};
    /// use sparse_core::policy::{Policy, PolicyInfo};
    /// use sparse_core::{LayerKind, Mlp, Output};
    ///
    /// let kinds = [LayerKind::Sparse { lambda: 2.0 }, LayerKind::Dense];
    /// let net = Mlp::init(&[3, 8, 1], &kinds, Output::Tanh { bound: 2.0 }, &mut StdRng::seed_from_u64(0))?;
    /// let bytes = Policy::new(net, PolicyInfo::default())?.to_safetensors()?;
    /// // … later, or in another program: `Policy::load(path)`.
    /// let policy = Policy::from_safetensors(&bytes)?;
    /// let obs = array![[0.1f32, -0.2, 0.3], [1.0, 0.0, -1.0]];
    /// let actions = policy.act(obs.view())?;
    /// assert_eq!(actions.dim(), (2, 1));
    /// # Ok::<(), sparse_core::policy::PolicyError>(())
    /// ```
    #[cfg(feature = "ndarray")]
    pub fn act(&self, obs: ndarray::ArrayView2<'_, f32>) -> Result<ndarray::Array2<f32>> {
        let (batch, d) = obs.dim();
        if d != self.obs_dim() {
            return Err(Error::ShapeMismatch {
                what: "observation columns (obs_dim)",
                expected: self.obs_dim(),
                got: d,
            }
            .into());
        }
        if batch == 0 {
            return Err(Error::ZeroDimension("observation rows").into());
        }
        let rows: Vec<f32> = obs.iter().copied().collect();
        let actions = self.act_rows(&rows, &mut Workspace::new())?;
        ndarray::Array2::from_shape_vec((batch, self.act_dim()), actions)
            .map_err(|e| PolicyError::Format(format!("action array: {e}")))
    }

    /// The policy as a safetensors file (layout in the [module documentation](self)).
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let layers = self.net.layers();
        let n = layers.len();
        let mut meta: HashMap<String, String> = self.info.extra.clone().into_iter().collect();
        let mut put = |k: String, v: String| meta.insert(k, v);
        put("format".into(), FORMAT.into());
        put("format_version".into(), FORMAT_VERSION.to_string());
        put("obs_dim".into(), self.obs_dim().to_string());
        put("act_dim".into(), self.act_dim().to_string());
        put("num_layers".into(), n.to_string());
        put("action_bound".into(), self.action_bound().to_string());
        put("task".into(), self.info.task.clone());
        put("algorithm".into(), self.info.algorithm.clone());
        put("step".into(), self.info.step.to_string());
        put(
            "live_connections".into(),
            self.net.live_connections().to_string(),
        );
        put("density".into(), self.density().to_string());
        // (name, dtype, shape, little-endian bytes)
        let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let (o, k) = (layer.n_out(), layer.n_in());
            put(format!("layers.{i}.shape"), format!("[{o}, {k}]"));
            let activation = if i + 1 < n { "relu" } else { "tanh" };
            put(format!("layers.{i}.activation"), activation.into());
            match layer {
                Layer::Sparse(s) => {
                    put(format!("layers.{i}.kind"), "sparse".into());
                    let w = s.weights();
                    let indptr: Vec<u8> = w
                        .row_ptr()
                        .iter()
                        .flat_map(|&p| i64::from(p).to_le_bytes())
                        .collect();
                    let indices: Vec<u8> = match w {
                        SparseWeights::U16(c) => le_indices(c),
                        SparseWeights::U32(c) => le_indices(c),
                    }?;
                    let nnz = w.nnz();
                    tensors.push((
                        format!("layers.{i}.indptr"),
                        Dtype::I64,
                        vec![o + 1],
                        indptr,
                    ));
                    tensors.push((
                        format!("layers.{i}.indices"),
                        Dtype::I32,
                        vec![nnz],
                        indices,
                    ));
                    tensors.push((
                        format!("layers.{i}.values"),
                        Dtype::F32,
                        vec![nnz],
                        le_f32(w.values()),
                    ));
                }
                Layer::Dense(d) => {
                    put(format!("layers.{i}.kind"), "dense".into());
                    tensors.push((
                        format!("layers.{i}.weight"),
                        Dtype::F32,
                        vec![o, k],
                        le_f32(d.weights()),
                    ));
                }
            }
            tensors.push((
                format!("layers.{i}.bias"),
                Dtype::F32,
                vec![o],
                le_f32(layer.bias()),
            ));
        }
        let views = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes).map(|v| (name.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| PolicyError::Safetensors(e.to_string()))?;
        safetensors::serialize(views, Some(meta))
            .map_err(|e| PolicyError::Safetensors(e.to_string()))
    }

    /// Reads and validates a policy from the bytes of a safetensors file (layout in the
    /// [module documentation](self)).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| PolicyError::Safetensors(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| PolicyError::Safetensors(e.to_string()))?;
        let empty = HashMap::new();
        let meta = Meta(header.metadata().as_ref().unwrap_or(&empty));
        let format = meta.get("format")?;
        if format != FORMAT {
            return Err(bad(format!(
                "metadata 'format' is '{format}', expected '{FORMAT}'"
            )));
        }
        let version: u32 = meta.parse("format_version")?;
        if version != FORMAT_VERSION {
            return Err(bad(format!(
                "format_version {version} is not supported (this build reads version \
                 {FORMAT_VERSION})"
            )));
        }
        let obs_dim: usize = meta.parse("obs_dim")?;
        let act_dim: usize = meta.parse("act_dim")?;
        let n: usize = meta.parse("num_layers")?;
        if n == 0 || n > 64 {
            return Err(bad(format!("num_layers is {n}, expected 1 to 64")));
        }
        let bound: f32 = meta.parse("action_bound")?;
        if !(bound.is_finite() && bound > 0.0) {
            return Err(bad(format!(
                "action_bound is {bound}, expected a positive number"
            )));
        }
        let mut expected_tensors = 0;
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            let (o, k) = meta.shape(i)?;
            let activation = meta.get(&format!("layers.{i}.activation"))?;
            let want = if i + 1 < n { "relu" } else { "tanh" };
            if activation != want {
                return Err(bad(format!(
                    "layers.{i}.activation is '{activation}'; this format has relu hidden layers \
                     and a tanh output ('{want}' here)"
                )));
            }
            let bias = f32s(tensor(&st, &format!("layers.{i}.bias"), Dtype::F32, &[o])?);
            let kind = meta.get(&format!("layers.{i}.kind"))?;
            let layer = match kind {
                "sparse" => {
                    expected_tensors += 4;
                    let ptr_name = format!("layers.{i}.indptr");
                    let ptr = tensor(&st, &ptr_name, Dtype::I64, &[o + 1])?;
                    let row_ptr = ptr
                        .chunks_exact(8)
                        .map(|c| {
                            let v = i64::from_le_bytes(c.try_into().unwrap_or_default());
                            u32::try_from(v).map_err(|_| bad(format!("{ptr_name} holds {v}")))
                        })
                        .collect::<Result<Vec<u32>>>()?;
                    let nnz = row_ptr[o] as usize;
                    let idx_name = format!("layers.{i}.indices");
                    let idx = tensor(&st, &idx_name, Dtype::I32, &[nnz])?;
                    let cols =
                        idx.chunks_exact(4)
                            .map(|c| {
                                let v = i32::from_le_bytes(c.try_into().unwrap_or_default());
                                usize::try_from(v).ok().filter(|&c| c < k).ok_or_else(|| {
                                    bad(format!("{idx_name} holds {v}, outside 0..{k}"))
                                })
                            })
                            .collect::<Result<Vec<usize>>>()?;
                    let values = f32s(tensor(
                        &st,
                        &format!("layers.{i}.values"),
                        Dtype::F32,
                        &[nnz],
                    )?);
                    let weights = if k <= u16::MAX_COLS {
                        SparseWeights::U16(csr(o, k, row_ptr, &cols, values)?)
                    } else {
                        SparseWeights::U32(csr(o, k, row_ptr, &cols, values)?)
                    };
                    Layer::from(SparseLinear::new(weights, bias)?)
                }
                "dense" => {
                    expected_tensors += 2;
                    let name = format!("layers.{i}.weight");
                    let w = f32s(tensor(&st, &name, Dtype::F32, &[o, k])?);
                    Layer::from(DenseLinear::new(k, o, w, bias)?)
                }
                other => {
                    return Err(bad(format!(
                        "layers.{i}.kind is '{other}', expected 'sparse' or 'dense'"
                    )));
                }
            };
            layers.push(layer);
        }
        if st.len() != expected_tensors {
            let mut names = st.names();
            names.sort();
            return Err(bad(format!(
                "{} tensors ({}), but the metadata describes {expected_tensors}",
                names.len(),
                names.join(", ")
            )));
        }
        let net = Mlp::new(layers, Output::Tanh { bound })?;
        if net.n_in() != obs_dim || net.n_out() != act_dim {
            return Err(bad(format!(
                "obs_dim {obs_dim} and act_dim {act_dim}, but the layers map {} to {}",
                net.n_in(),
                net.n_out()
            )));
        }
        let live: usize = meta.parse("live_connections")?;
        if live != net.live_connections() {
            return Err(bad(format!(
                "live_connections is {live}, but the layers hold {}",
                net.live_connections()
            )));
        }
        let _: f64 = meta.parse("density")?;
        let info = PolicyInfo {
            task: meta.get("task")?.to_string(),
            algorithm: meta.get("algorithm")?.to_string(),
            step: meta.parse("step")?,
            extra: meta
                .0
                .iter()
                .filter(|(k, _)| !is_reserved(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        Self::new(net, info)
    }
}

/// Whether `key` is one of the format's own metadata keys.
fn is_reserved(key: &str) -> bool {
    RESERVED.contains(&key) || key.starts_with("layers.")
}

/// A [`PolicyError::Format`].
fn bad(message: String) -> PolicyError {
    PolicyError::Format(message)
}

/// The header metadata, read with errors that name the key.
struct Meta<'a>(&'a HashMap<String, String>);

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| bad(format!("metadata '{key}' is missing")))
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let v = self.get(key)?;
        v.trim()
            .parse()
            .map_err(|e| bad(format!("metadata '{key}' is '{v}': {e}")))
    }

    /// `layers.{i}.shape`: `[n_out, n_in]`, each from 1 to [`MAX_WIDTH`].
    fn shape(&self, i: usize) -> Result<(usize, usize)> {
        let key = format!("layers.{i}.shape");
        let v = self.get(&key)?;
        let dims: Option<Vec<usize>> = v
            .trim()
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(|s| s.split(',').map(|d| d.trim().parse().ok()).collect())
            .and_then(|d: Option<Vec<usize>>| d);
        match dims.as_deref() {
            Some(&[o, k]) if (1..=MAX_WIDTH).contains(&o) && (1..=MAX_WIDTH).contains(&k) => {
                Ok((o, k))
            }
            _ => Err(bad(format!(
                "metadata '{key}' is '{v}', expected [n_out, n_in] with each from 1 to {MAX_WIDTH}"
            ))),
        }
    }
}

/// The bytes of tensor `name`, which must exist with this type and shape.
fn tensor<'a>(st: &SafeTensors<'a>, name: &str, dtype: Dtype, shape: &[usize]) -> Result<&'a [u8]> {
    let t = st
        .tensor(name)
        .map_err(|_| bad(format!("tensor '{name}' is missing")))?;
    if t.dtype() != dtype || t.shape() != shape {
        return Err(bad(format!(
            "tensor '{name}' is {:?} {:?}, expected {dtype:?} {shape:?}",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t.data())
}

/// Little-endian `f32` bytes as values.
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Values as little-endian bytes.
fn le_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A CSR matrix's column indices as little-endian `i32` bytes.
fn le_indices<I: ColIndex>(c: &Csr<I>) -> Result<Vec<u8>> {
    c.col_idx()
        .iter()
        .map(|&i| {
            i32::try_from(i.col())
                .map(i32::to_le_bytes)
                .map_err(|_| bad(format!("column {} does not fit an I32 index", i.col())))
        })
        .collect::<Result<Vec<_>>>()
        .map(|v| v.concat())
}

/// A validated CSR matrix from checked columns.
fn csr<I: ColIndex>(
    o: usize,
    k: usize,
    row_ptr: Vec<u32>,
    cols: &[usize],
    values: Vec<f32>,
) -> Result<Csr<I>> {
    let idx = cols.iter().map(|&c| I::from_col(c)).collect();
    Ok(Csr::new(o, k, row_ptr, idx, values)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::LayerKind;
    use rand::{SeedableRng, rngs::StdRng};

    /// A 5 → 16 (sparse) → 16 (sparse) → 2 (dense) actor with bound 1.5.
    fn policy() -> Policy {
        let kinds = [
            LayerKind::Sparse { lambda: 3.0 },
            LayerKind::Sparse { lambda: 4.0 },
            LayerKind::Dense,
        ];
        let out = Output::Tanh { bound: 1.5 };
        let net = Mlp::init(&[5, 16, 16, 2], &kinds, out, &mut StdRng::seed_from_u64(7)).unwrap();
        let info = PolicyInfo {
            task: "Test-v0".into(),
            algorithm: "ds".into(),
            step: 1234,
            extra: [("seed".to_string(), "3".to_string())].into(),
        };
        Policy::new(net, info).unwrap()
    }

    fn observations(batch: usize, d: usize) -> Vec<f32> {
        (0..batch * d)
            .map(|i| ((i * 37 % 101) as f32 / 25.0) - 2.0)
            .collect()
    }

    /// The file's tensors and metadata, to tamper with.
    type Parts = (
        BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>,
        HashMap<String, String>,
    );

    fn parts(bytes: &[u8]) -> Parts {
        let st = SafeTensors::deserialize(bytes).unwrap();
        let tensors = st
            .iter()
            .map(|(n, t)| {
                (
                    n.to_string(),
                    (t.dtype(), t.shape().to_vec(), t.data().to_vec()),
                )
            })
            .collect();
        let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
        (tensors, header.metadata().clone().unwrap())
    }

    /// A change to a file's parts.
    type Tamper = Box<dyn Fn(&mut Parts)>;

    fn file((tensors, meta): &Parts) -> Vec<u8> {
        let views = tensors
            .iter()
            .map(|(n, (d, s, b))| (n.as_str(), TensorView::new(*d, s.clone(), b).unwrap()));
        safetensors::serialize(views, Some(meta.clone())).unwrap()
    }

    fn format_error(bytes: &[u8]) -> String {
        match Policy::from_safetensors(bytes) {
            Ok(_) => panic!("a bad file loaded"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn round_trip_keeps_every_bit_and_the_description() {
        let p = policy();
        let q = Policy::from_safetensors(&p.to_safetensors().unwrap()).unwrap();
        assert_eq!(q.info(), p.info());
        assert_eq!((q.obs_dim(), q.act_dim(), q.action_bound()), (5, 2, 1.5));
        for (a, b) in p.network().layers().iter().zip(q.network().layers()) {
            assert_eq!(a.is_sparse(), b.is_sparse());
            assert_eq!(a.weight_values(), b.weight_values());
            assert_eq!(a.bias(), b.bias());
        }
        let obs = observations(9, 5);
        let (mut w1, mut w2) = (Workspace::new(), Workspace::new());
        let x = Activations::from_samples(5, 9, &obs).unwrap();
        let reference = p.network().forward(&x, &mut w1).unwrap().to_samples();
        let got = q.act_rows(&obs, &mut w2).unwrap();
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            reference.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!((p.density() - q.density()).abs() == 0.0 && p.density() < 1.0);
    }

    #[test]
    fn actions_match_a_plain_dense_computation_from_the_file() {
        // The reference reads the tensors with the safetensors crate and multiplies in f64,
        // dense, without sparse-core.
        let p = policy();
        let bytes = p.to_safetensors().unwrap();
        let (tensors, meta) = parts(&bytes);
        let get = |n: &str| &tensors[n].2;
        let obs = observations(4, 5);
        let got = Policy::from_safetensors(&bytes)
            .unwrap()
            .act_rows(&obs, &mut Workspace::new())
            .unwrap();
        for b in 0..4 {
            let mut h: Vec<f64> = obs[b * 5..b * 5 + 5].iter().map(|&v| v as f64).collect();
            for i in 0..3 {
                let bias = f32s(get(&format!("layers.{i}.bias")));
                let o = bias.len();
                let mut w = vec![vec![0.0f64; h.len()]; o];
                if meta[&format!("layers.{i}.kind")] == "sparse" {
                    let ptr: Vec<usize> = get(&format!("layers.{i}.indptr"))
                        .chunks(8)
                        .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
                        .collect();
                    let idx: Vec<usize> = get(&format!("layers.{i}.indices"))
                        .chunks(4)
                        .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as usize)
                        .collect();
                    let val = f32s(get(&format!("layers.{i}.values")));
                    for (r, row) in w.iter_mut().enumerate() {
                        for s in ptr[r]..ptr[r + 1] {
                            row[idx[s]] = val[s] as f64;
                        }
                    }
                } else {
                    let v = f32s(get(&format!("layers.{i}.weight")));
                    for (r, row) in w.iter_mut().enumerate() {
                        for (c, x) in row.iter_mut().enumerate() {
                            *x = v[r * h.len() + c] as f64;
                        }
                    }
                }
                h = (0..o)
                    .map(|r| {
                        let z =
                            bias[r] as f64 + w[r].iter().zip(&h).map(|(a, x)| a * x).sum::<f64>();
                        if i < 2 { z.max(0.0) } else { 1.5 * z.tanh() }
                    })
                    .collect();
            }
            for (a, want) in got[b * 2..b * 2 + 2].iter().zip(&h) {
                assert!((*a as f64 - want).abs() < 1e-5, "{a} vs {want}");
            }
        }
    }

    #[test]
    fn damaged_files_are_errors_never_panics() {
        let bytes = policy().to_safetensors().unwrap();
        for len in (0..bytes.len()).step_by(7) {
            assert!(
                Policy::from_safetensors(&bytes[..len]).is_err(),
                "truncated at {len}"
            );
        }
        // Every single-byte change of the header, and a sample of the data, loads or fails
        // cleanly.
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for at in (0..header).chain((header..bytes.len()).step_by(13)) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[at] ^= flip;
                let _ = Policy::from_safetensors(&b);
            }
        }
        assert!(format_error(b"not a safetensors file").contains("not a valid safetensors"));
    }

    #[test]
    fn inconsistent_files_name_what_is_wrong() {
        let good = parts(&policy().to_safetensors().unwrap());
        let cases: Vec<(Tamper, &str)> = vec![
            (
                Box::new(|p| {
                    p.1.insert("format".into(), "something-else".into());
                }),
                "'format' is 'something-else'",
            ),
            (
                Box::new(|p| {
                    p.1.insert("format_version".into(), "2".into());
                }),
                "format_version 2 is not supported",
            ),
            (
                Box::new(|p| {
                    p.1.remove("layers.1.shape");
                }),
                "'layers.1.shape' is missing",
            ),
            (
                Box::new(|p| {
                    p.1.insert("layers.2.activation".into(), "relu".into());
                }),
                "layers.2.activation is 'relu'",
            ),
            (
                Box::new(|p| {
                    p.1.insert("obs_dim".into(), "6".into());
                }),
                "obs_dim 6",
            ),
            (
                Box::new(|p| {
                    p.1.insert("live_connections".into(), "1".into());
                }),
                "live_connections is 1",
            ),
            (
                Box::new(|p| {
                    p.0.remove("layers.0.values");
                }),
                "tensor 'layers.0.values' is missing",
            ),
            (
                Box::new(|p| {
                    let extra = p.0["layers.0.bias"].clone();
                    p.0.insert("stowaway".into(), extra);
                }),
                "stowaway",
            ),
            (
                Box::new(|p| {
                    let t = p.0.get_mut("layers.1.indices").unwrap();
                    t.2[..4].copy_from_slice(&99i32.to_le_bytes());
                }),
                "layers.1.indices holds 99, outside 0..16",
            ),
            (
                Box::new(|p| {
                    let t = p.0.get_mut("layers.0.indptr").unwrap();
                    t.0 = Dtype::I32;
                    t.1 = vec![34];
                }),
                "tensor 'layers.0.indptr' is I32 [34], expected I64 [17]",
            ),
            (
                Box::new(|p| {
                    let t = p.0.get_mut("layers.2.weight").unwrap();
                    t.2[..4].copy_from_slice(&f32::NAN.to_le_bytes());
                }),
                "not finite",
            ),
        ];
        for (tamper, message) in cases {
            let mut p = good.clone();
            tamper(&mut p);
            let err = format_error(&file(&p));
            assert!(err.contains(message), "{err:?} should say {message:?}");
        }
    }

    #[test]
    fn bad_inputs_and_descriptions_are_errors() {
        let p = policy();
        let mut ws = Workspace::new();
        assert!(p.act_rows(&[0.0; 7], &mut ws).is_err());
        assert!(p.act_rows(&[], &mut ws).is_err());
        let linear = Mlp::init(
            &[2, 1],
            &[LayerKind::Dense],
            Output::Linear,
            &mut StdRng::seed_from_u64(0),
        )
        .unwrap();
        assert!(Policy::new(linear, PolicyInfo::default()).is_err());
        let mut info = PolicyInfo::default();
        info.extra.insert("step".into(), "1".into());
        assert!(Policy::new(p.network().clone(), info).is_err());
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_views_in_any_layout_give_the_row_major_actions() {
        let p = policy();
        let obs = observations(6, 5);
        let rows = p.act_rows(&obs, &mut Workspace::new()).unwrap();
        let a = ndarray::Array2::from_shape_vec((6, 5), obs).unwrap();
        let t = a.t().to_owned(); // column-major copy, viewed back transposed
        for view in [a.view(), t.t()] {
            assert_eq!(p.act(view).unwrap().into_raw_vec_and_offset().0, rows);
        }
        assert!(p.act(a.t()).is_err(), "5 × 6 is the wrong shape");
    }
}
