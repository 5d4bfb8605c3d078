//! Reading run directories for `ds-td3 report`, and grouping them by task and label.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use td3::{Algo, Config, Growth};

/// One evaluation row.
#[derive(Debug, Clone, Copy)]
pub struct Eval {
    /// The step evaluated at.
    pub step: u64,
    /// The mean return.
    pub mean: f64,
    /// Training FLOPs so far.
    pub flops: u64,
    /// Live connections at that step.
    pub connections: u64,
}

/// A run directory as read.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: Config,
    /// Its evaluations.
    pub evals: Vec<Eval>,
    /// Why the run is incomplete, if it is.
    pub problem: Option<String>,
}

impl RunData {
    /// The mean of the last 10 evaluation means.
    pub fn final_score(&self) -> Option<f64> {
        let last: Vec<f64> = self.evals.iter().rev().take(10).map(|e| e.mean).collect();
        (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64)
    }
}

/// Reads `evaluations.csv`, validating every row whole: as many fields as the header, each a
/// number, and a final line break (a row without one was cut while being written).
fn parse_evaluations(path: &Path) -> Result<Vec<Eval>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("missing evaluations.csv ({e})"))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if !header.starts_with("step,mean,std,wall_seconds,flops,live_connections") {
        return Err("malformed evaluations.csv (unexpected header)".into());
    }
    let fields = header.split(',').count();
    let rows = text.lines().count() - 1;
    if rows > 0 && !text.ends_with('\n') {
        return Err(format!(
            "malformed evaluations.csv (line {}: cut off, no line break)",
            rows + 1
        ));
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let numbers = f.len() == fields && f.iter().all(|v| v.parse::<f64>().is_ok());
            let parse = || -> Option<Eval> {
                Some(Eval {
                    step: f.first()?.parse().ok()?,
                    mean: f.get(1)?.parse().ok()?,
                    flops: f.get(4)?.parse().ok()?,
                    connections: f.get(5)?.parse().ok()?,
                })
            };
            numbers
                .then(parse)
                .flatten()
                .ok_or_else(|| format!("malformed evaluations.csv (line {})", i + 2))
        })
        .collect()
}

/// Reads a run directory; a problem with its evaluations marks it incomplete, one with its
/// configuration is an error.
pub fn read_run(dir: &Path) -> anyhow::Result<RunData> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let config: Config = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    let (evals, problem) = match parse_evaluations(&dir.join("evaluations.csv")) {
        Ok(evals) => {
            let expected = config.steps / config.eval_every + 1;
            let problem = (evals.len() as u64)
                .lt(&expected)
                .then(|| format!("partial: {} of {} evaluations", evals.len(), expected));
            (evals, problem)
        }
        Err(e) => (Vec::new(), Some(e)),
    };
    Ok(RunData {
        dir: dir.to_path_buf(),
        config,
        evals,
        problem,
    })
}

/// Every run directory under the given paths (each itself, or up to three levels down).
pub fn find_all(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for p in paths {
        if !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
        find_runs(p, 3, &mut dirs);
    }
    if dirs.is_empty() {
        bail!("no run directories (with a config.json) found");
    }
    Ok(dirs)
}

/// Every run directory under `path` (itself, or up to `depth` levels down).
fn find_runs(path: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if path.join("config.json").is_file() {
        out.push(path.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        find_runs(&d, depth - 1, out);
    }
}

/// `mean ± std` (population) of values.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// The seed-mean curve of a group: `(step, mean, std)` over the runs that reached each step.
pub fn curve(runs: &[&RunData]) -> Vec<(f64, f64, f64)> {
    let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for e in &r.evals {
            by_step.entry(e.step).or_default().push(e.mean);
        }
    }
    by_step
        .into_iter()
        .map(|(s, v)| {
            let (m, d) = mean_std(&v);
            (s as f64, m, d)
        })
        .collect()
}

/// The complete runs of a group.
pub fn complete<'a>(g: &[&'a RunData]) -> Vec<&'a RunData> {
    g.iter().copied().filter(|r| r.problem.is_none()).collect()
}

/// The settings that tell groups of runs apart, and whether each applies to an algorithm.
const KEYS: [&str; 9] = [
    "h", "buffer", "λ", "e", "η", "growth", "freeze", "bias", "n-step",
];

fn applies(key: &str, algo: Algo) -> bool {
    match key {
        "h" | "buffer" | "n-step" => true,
        "λ" => algo.is_sparse(),
        _ => algo.evolves(),
    }
}

fn setting(key: &str, c: &Config) -> String {
    match key {
        "h" => format!("h={}", c.hidden),
        "buffer" => {
            let mut b = format!("buffer {}", c.buffer_dtype);
            if c.buffer_capacity != 1_000_000 {
                b.push_str(&format!(" of {}", c.buffer_capacity));
            }
            if let Some(d) = c.dynamic_buffer {
                b.push_str(&format!(" dynamic (>{} above {})", d.threshold, d.min_size));
            }
            b
        }
        "λ" => match (c.sparsity, c.critic_sparsity) {
            (Some(sparsity), Some(critic)) => format!("S={sparsity}/{critic}"),
            (Some(sparsity), None) => format!("S={sparsity}"),
            (None, _) => format!("λ1={} λ2={}", c.lambda1, c.lambda2),
        },
        "growth" => match c.growth {
            Growth::Random => "growth random".into(),
            Growth::Gradient { candidates } => format!("growth gradient×{candidates}"),
        },
        "e" => format!("e={}", c.evolution_period),
        "η" => match c.evolution_schedule {
            td3::FractionSchedule::Constant => format!("η={}", c.evolution_fraction),
            td3::FractionSchedule::Cosine => format!("η={} cosine", c.evolution_fraction),
        },
        "freeze" => format!("freeze={}", c.topology_freeze),
        "n-step" => match c.n_step_after {
            0 => format!("n={}", c.n_step),
            after => format!("n={} after {after}", c.n_step),
        },
        _ => match c.bias_correction {
            sparse_core::BiasCorrection::Connection => "bias correction per connection".into(),
            sparse_core::BiasCorrection::Network => "bias correction per network".into(),
        },
    }
}

/// The settings that take more than one value among a task's runs (where they apply).
fn varying(runs: &[RunData], env: &str) -> Vec<&'static str> {
    KEYS.into_iter()
        .filter(|&k| {
            let values: BTreeSet<String> = runs
                .iter()
                .filter(|r| r.config.env == env && applies(k, r.config.algo))
                .map(|r| setting(k, &r.config))
                .collect();
            values.len() > 1
        })
        .collect()
}

/// The runs grouped by task and label: the algorithm and those of its settings that vary among
/// the task's runs.
pub struct Groups<'a> {
    /// Per task, the settings that vary among its runs.
    vary: BTreeMap<String, Vec<&'static str>>,
    /// The groups, by `(task, label)`.
    pub all: BTreeMap<(String, String), Vec<&'a RunData>>,
}

impl<'a> Groups<'a> {
    /// Groups `runs`.
    pub fn new(runs: &'a [RunData]) -> Self {
        let mut vary = BTreeMap::new();
        for r in runs {
            let env = r.config.env.clone();
            vary.entry(env.clone())
                .or_insert_with(|| varying(runs, &env));
        }
        let mut groups = Self {
            vary,
            all: BTreeMap::new(),
        };
        for r in runs {
            let key = (r.config.env.clone(), groups.label(&r.config));
            groups.all.entry(key).or_default().push(r);
        }
        groups
    }

    /// A run's label.
    pub fn label(&self, c: &Config) -> String {
        let mut s = c.algo.to_string();
        for &k in self.vary[&c.env].iter().filter(|&&k| applies(k, c.algo)) {
            let _ = write!(s, " {}", setting(k, c));
        }
        s
    }

    /// The label of the dense group comparable to `c` (same task; TD3 for the TD3 family, SAC
    /// for the SAC family): the one with `c`'s width, replay buffer and TD targets if there is
    /// such a group, else the one of `c`'s width with the paper's buffer and targets (a plain
    /// buffer of 10⁶ `f32` transitions, one-step targets), else the paper's width with them
    /// (256 units), so that runs which change those settings, or widen a sparse network to the
    /// cost of a dense one, are still held against the dense baseline.
    pub fn dense_label(&self, c: &Config) -> String {
        let mut d = c.clone();
        d.algo = c.algo.dense();
        let same = self.label(&d);
        let paper = Config::paper(&c.env, d.algo);
        d.buffer_capacity = paper.buffer_capacity;
        d.buffer_dtype = paper.buffer_dtype;
        d.dynamic_buffer = paper.dynamic_buffer;
        d.n_step = paper.n_step;
        d.n_step_after = paper.n_step_after;
        let same_width = self.label(&d);
        d.hidden = paper.hidden;
        let paper_width = self.label(&d);
        [same, same_width]
            .into_iter()
            .find(|l| self.all.contains_key(&(c.env.clone(), l.clone())))
            .unwrap_or(paper_width)
    }

    /// The complete runs of the dense group comparable to `c` ([`Self::dense_label`]), if
    /// there is one.
    pub fn dense(&self, c: &Config) -> Option<Vec<&'a RunData>> {
        self.all
            .get(&(c.env.clone(), self.dense_label(c)))
            .map(|d| complete(d))
    }

    /// The tasks, in order.
    pub fn envs(&self) -> Vec<String> {
        let mut e: Vec<String> = self.all.keys().map(|k| k.0.clone()).collect();
        e.dedup();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use td3::BufferDtype;

    fn run(algo: Algo, dtype: BufferDtype) -> RunData {
        let mut config = Config::paper("Hopper-v3", algo);
        config.buffer_dtype = dtype;
        RunData {
            dir: PathBuf::from("run"),
            config,
            evals: Vec::new(),
            problem: None,
        }
    }

    /// Runs that differ only in how their replay buffer stores values (not bit-compatible) are
    /// reported apart; a setting no run varies stays out of the labels.
    #[test]
    fn buffer_types_are_told_apart() {
        let runs = [
            run(Algo::Ds, BufferDtype::F32),
            run(Algo::Ds, BufferDtype::F16),
            run(Algo::Dense, BufferDtype::F32),
        ];
        let groups = Groups::new(&runs);
        let labels: Vec<&str> = groups.all.keys().map(|k| k.1.as_str()).collect();
        assert_eq!(
            labels,
            ["dense buffer f32", "ds buffer f16", "ds buffer f32"]
        );
        // Capacity and the dynamic buffer too.
        let mut small = run(Algo::Ds, BufferDtype::F32);
        small.config.buffer_capacity = 100_000;
        let mut dynamic = run(Algo::Ds, BufferDtype::F32);
        dynamic.config.dynamic_buffer = Some(td3::DynamicBuffer::default());
        let runs = [run(Algo::Ds, BufferDtype::F32), small, dynamic];
        let groups = Groups::new(&runs);
        let labels: Vec<&str> = groups.all.keys().map(|k| k.1.as_str()).collect();
        assert_eq!(
            labels,
            [
                "ds buffer f32",
                "ds buffer f32 dynamic (>0.2 above 100000)",
                "ds buffer f32 of 100000"
            ]
        );
        // Without a dense run of the same buffer and targets, the dense baseline is the plain
        // one; with it, that one.
        let mut n_step = run(Algo::Ds, BufferDtype::F32);
        n_step.config.n_step = 3;
        let runs = [run(Algo::Dense, BufferDtype::F32), n_step.clone()];
        let groups = Groups::new(&runs);
        assert_eq!(groups.dense_label(&n_step.config), "dense n=1");
        let mut dense_n_step = run(Algo::Dense, BufferDtype::F32);
        dense_n_step.config.n_step = 3;
        let runs = [runs[0].clone(), n_step.clone(), dense_n_step];
        let groups = Groups::new(&runs);
        assert_eq!(groups.dense_label(&n_step.config), "dense n=3");
        // A wider sparse network without a dense group of its width is held against the
        // paper's width, unless that width's dense group exists.
        let mut wide = n_step.clone();
        wide.config.hidden = 1024;
        let runs = [run(Algo::Dense, BufferDtype::F32), wide.clone()];
        let groups = Groups::new(&runs);
        assert_eq!(groups.dense_label(&wide.config), "dense h=256 n=1");
        let mut dense_wide = run(Algo::Dense, BufferDtype::F32);
        dense_wide.config.hidden = 1024;
        let runs = [runs[0].clone(), wide.clone(), dense_wide];
        let groups = Groups::new(&runs);
        assert_eq!(groups.dense_label(&wide.config), "dense h=1024 n=1");
        let same = [
            run(Algo::Ds, BufferDtype::F32),
            run(Algo::Ds, BufferDtype::F32),
        ];
        let groups = Groups::new(&same);
        assert_eq!(
            groups.all.keys().map(|k| k.1.as_str()).collect::<Vec<_>>(),
            ["ds"]
        );
    }
}
