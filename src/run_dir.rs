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

use td3::{Config, Evaluation};

/// Paths of one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

fn err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl RunDir {
    /// Creates `root` for a new run. An existing non-empty directory is an error unless
    /// `overwrite`, in which case the files a run writes are removed first.
    pub fn create(root: &Path, overwrite: bool) -> Result<Self, String> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        let occupied = root.exists()
            && fs::read_dir(root)
                .map_err(|e| err(root, e))?
                .next()
                .is_some();
        if occupied {
            if !overwrite {
                return Err(format!(
                    "run directory {} already exists; pass --force to overwrite it or \
                     --resume {} to continue it",
                    root.display(),
                    root.display()
                ));
            }
            for f in [dir.config(), dir.evaluations(), dir.log(), dir.summary()] {
                if f.exists() {
                    fs::remove_file(&f).map_err(|e| err(&f, e))?;
                }
            }
            let ck = dir.checkpoints();
            if ck.exists() {
                fs::remove_dir_all(&ck).map_err(|e| err(&ck, e))?;
            }
        }
        fs::create_dir_all(dir.checkpoints())
            .map_err(|e| format!("cannot create run directory {}: {e}", root.display()))?;
        Ok(dir)
    }

    /// Opens an existing run directory (for resuming or evaluating).
    pub fn open(root: &Path) -> Result<Self, String> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        if !dir.config().is_file() {
            return Err(format!(
                "{} is not a run directory (no config.json)",
                root.display()
            ));
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
    pub fn write_config(&self, config: &Config) -> Result<(), String> {
        let text = serde_json::to_string_pretty(config).map_err(|e| e.to_string())?;
        fs::write(self.config(), text + "\n").map_err(|e| err(&self.config(), e))
    }

    /// Reads `config.json`.
    pub fn read_config(&self) -> Result<Config, String> {
        let path = self.config();
        let text = fs::read_to_string(&path).map_err(|e| err(&path, e))?;
        serde_json::from_str(&text).map_err(|e| err(&path, e))
    }

    /// Writes `summary.json`.
    pub fn write_summary(&self, summary: &serde_json::Value) -> Result<(), String> {
        let text = serde_json::to_string_pretty(summary).map_err(|e| e.to_string())?;
        fs::write(self.summary(), text + "\n").map_err(|e| err(&self.summary(), e))
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
    ) -> Result<Self, String> {
        let (ep, lp) = (dir.evaluations(), dir.log());
        let mut csv = BufWriter::new(File::create(&ep).map_err(|e| err(&ep, e))?);
        writeln!(csv, "{}", csv_header(episodes)).map_err(|e| err(&ep, e))?;
        for e in evaluations {
            writeln!(csv, "{}", csv_row(e)).map_err(|e| err(&ep, e))?;
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
                .map_err(|e| err(&lp, e))?,
        );
        for line in kept {
            writeln!(log, "{line}").map_err(|e| err(&lp, e))?;
        }
        Ok(Self {
            evaluations: csv,
            log,
            paths: (ep, lp),
        })
    }

    /// Appends one evaluation row.
    pub fn evaluation(&mut self, e: &Evaluation) -> Result<(), String> {
        writeln!(self.evaluations, "{}", csv_row(e)).map_err(|x| err(&self.paths.0, x))?;
        self.evaluations.flush().map_err(|x| err(&self.paths.0, x))
    }

    /// Appends one JSON record to the training log.
    pub fn record(&mut self, value: serde_json::Value) -> Result<(), String> {
        writeln!(self.log, "{value}").map_err(|x| err(&self.paths.1, x))
    }

    /// Flushes the training log (before a checkpoint, and at the end).
    pub fn flush(&mut self) -> Result<(), String> {
        self.log.flush().map_err(|x| err(&self.paths.1, x))
    }
}
