//! The run directory: everything a training run leaves on disk.
//!
//! | file | content |
//! |---|---|
//! | `config.json` | the complete configuration (enough to rerun the run) |
//! | `evaluations.csv` | one row per evaluation: step, mean and std of the returns, wall seconds, FLOPs so far, live connections, then each return |
//! | `train_log.jsonl` | one JSON object per line: `episode`, `losses` (every 1 000 iterations) and `evolution` records, each with its `step` |
//! | `summary.json` | written when the run finishes: final score, speed, FLOPs, connections, memory |
//! | `checkpoints/latest.ckpt` | the newest complete training state (`ds-td3 train --resume DIR`) |

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use td3::{Config, Evaluation};

/// Paths of one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

/// Names `path` in an error.
fn at(path: &Path) -> impl FnOnce() -> String + '_ {
    || path.display().to_string()
}

impl RunDir {
    /// Creates `root` for a new run. An existing non-empty directory is an error unless
    /// `overwrite`, in which case the files a run writes are removed first.
    pub fn create(root: &Path, overwrite: bool) -> anyhow::Result<Self> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        let occupied = root.exists() && fs::read_dir(root).with_context(at(root))?.next().is_some();
        if occupied {
            if !overwrite {
                bail!(
                    "run directory {} already exists; pass --force to overwrite it or \
                     --resume {} to continue it",
                    root.display(),
                    root.display()
                );
            }
            for f in [dir.config(), dir.evaluations(), dir.log(), dir.summary()] {
                if f.exists() {
                    fs::remove_file(&f).with_context(at(&f))?;
                }
            }
            let ck = dir.checkpoints();
            if ck.exists() {
                fs::remove_dir_all(&ck).with_context(at(&ck))?;
            }
        }
        fs::create_dir_all(dir.checkpoints())
            .with_context(|| format!("cannot create run directory {}", root.display()))?;
        Ok(dir)
    }

    /// Opens an existing run directory (for resuming or evaluating).
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        if !dir.config().is_file() {
            bail!("{} is not a run directory (no config.json)", root.display());
        }
        Ok(dir)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `evaluations.csv`.
    pub fn evaluations(&self) -> PathBuf {
        self.root.join("evaluations.csv")
    }

    /// `train_log.jsonl`.
    pub fn log(&self) -> PathBuf {
        self.root.join("train_log.jsonl")
    }

    /// `summary.json`.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// `checkpoints/latest.ckpt`.
    pub fn latest_checkpoint(&self) -> PathBuf {
        self.checkpoints().join("latest.ckpt")
    }

    /// Writes `config.json`.
    pub fn write_config(&self, config: &Config) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(config)?;
        fs::write(self.config(), text + "\n").with_context(at(&self.config()))
    }

    /// Reads `config.json`.
    pub fn read_config(&self) -> anyhow::Result<Config> {
        let path = self.config();
        let text = fs::read_to_string(&path).with_context(at(&path))?;
        serde_json::from_str(&text).with_context(at(&path))
    }

    /// Writes `summary.json`.
    pub fn write_summary(&self, summary: &serde_json::Value) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(summary)?;
        fs::write(self.summary(), text + "\n").with_context(at(&self.summary()))
    }
}

/// The header of `evaluations.csv` for `episodes` returns per row.
fn csv_header(episodes: usize) -> String {
    let mut h = String::from("step,mean,std,wall_seconds,flops,live_connections");
    for i in 0..episodes {
        h.push_str(&format!(",return_{i}"));
    }
    h
}

/// One `evaluations.csv` row.
fn csv_row(e: &Evaluation) -> String {
    let mut row = format!(
        "{},{},{},{:.3},{},{}",
        e.step, e.mean, e.std, e.wall_seconds, e.flops, e.live_connections
    );
    for r in &e.returns {
        row.push_str(&format!(",{r}"));
    }
    row
}

/// Appends records to `evaluations.csv` and `train_log.jsonl` as a run goes.
pub struct Logs {
    evaluations: BufWriter<File>,
    log: BufWriter<File>,
    paths: (PathBuf, PathBuf),
}

impl Logs {
    /// Opens the logs for a run at `step`: `evaluations.csv` is rewritten from `evaluations`
    /// (the checkpoint's record) and `train_log.jsonl` keeps only records up to `step`, so a
    /// resumed run's logs continue exactly where its checkpoint stands.
    pub fn open(
        dir: &RunDir,
        step: u64,
        evaluations: &[Evaluation],
        episodes: usize,
    ) -> anyhow::Result<Self> {
        let (ep, lp) = (dir.evaluations(), dir.log());
        let mut csv = BufWriter::new(File::create(&ep).with_context(at(&ep))?);
        writeln!(csv, "{}", csv_header(episodes)).with_context(at(&ep))?;
        for e in evaluations {
            writeln!(csv, "{}", csv_row(e)).with_context(at(&ep))?;
        }
        let kept: Vec<String> = match File::open(&lp) {
            Ok(f) => BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|s| s <= step)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut log = BufWriter::new(
            OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&lp)
                .with_context(at(&lp))?,
        );
        for line in kept {
            writeln!(log, "{line}").with_context(at(&lp))?;
        }
        Ok(Self {
            evaluations: csv,
            log,
            paths: (ep, lp),
        })
    }

    /// Appends one evaluation row.
    pub fn evaluation(&mut self, e: &Evaluation) -> anyhow::Result<()> {
        writeln!(self.evaluations, "{}", csv_row(e)).with_context(at(&self.paths.0))?;
        self.evaluations.flush().with_context(at(&self.paths.0))
    }

    /// Appends one JSON record to the training log.
    pub fn record(&mut self, value: serde_json::Value) -> anyhow::Result<()> {
        writeln!(self.log, "{value}").with_context(at(&self.paths.1))
    }

    /// Flushes the training log (before a checkpoint, and at the end).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.log.flush().with_context(at(&self.paths.1))
    }
}
