//! The run directory: everything a training run leaves on disk.
//!
//! | file | content |
//! |---|---|
//! | `config.json` | the complete configuration (enough to rerun the run) |
//! | `evaluations.csv` | one row per evaluation: step, mean and std of the returns, wall seconds, FLOPs so far, live connections, then each return |
//! | `train_log.jsonl` | one JSON object per line: `episode`, `losses` (every 1 000 iterations) and `evolution` records (connections `moved`, of them exact `zeros`, and `regrown`: 0 in the final prune), each with its `step` |
//! | `summary.json` | written when the run finishes: final score, speed, FLOPs, connections, memory |
//! | `checkpoints/latest.ckpt` | the newest complete training state (`ds-td3 train --resume DIR`) |
//! | `.lock` | held (an advisory lock, with the holder's PID) by the one process training the run |
//!
//! What survives a kill at any instant: `config.json` and `summary.json` are replaced atomically
//! (written to a temporary file, synced, renamed); the logs are only appended to, a record at a
//! time, and synced before each checkpoint, so every record up to the newest checkpoint is on
//! disk; a resumed run trims the logs back to its checkpoint (rewriting `evaluations.csv` from the
//! checkpoint, atomically, only when its rows do not match it) and appends from there.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
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

/// Replaces `path` by `bytes` atomically: a temporary file beside it is written, synced and
/// renamed over it, so a kill or a full disk leaves the old file or the new one, never a mix;
/// the temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(at(path));
    }
    Ok(())
}

/// The name of a run directory's lock file ([`RunDir::lock`]).
const LOCK_FILE: &str = ".lock";

/// The advisory lock of a run directory, held while its process lives (the OS releases it
/// when the process ends, however it ends).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl RunDir {
    /// Creates `root` for a new run and locks it. An existing non-empty directory is an error
    /// unless `overwrite`, in which case the files a run writes are removed first (once the lock
    /// is held: never under a process training there).
    pub fn create(root: &Path, overwrite: bool) -> anyhow::Result<(Self, Lock)> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        // What a start killed before config.json was in place leaves (the lock file, an empty
        // checkpoints folder, a half-written config.json.tmp) does not count.
        let leftover = |e: &fs::DirEntry| {
            let empty = |p: &Path| fs::read_dir(p).is_ok_and(|mut d| d.next().is_none());
            let name = e.file_name();
            name == LOCK_FILE
                || name == "config.json.tmp"
                || (name == "checkpoints" && empty(&e.path()))
        };
        let occupied = root.exists()
            && fs::read_dir(root)
                .with_context(at(root))?
                .any(|e| e.map_or(true, |e| !leftover(&e)));
        if occupied && !overwrite {
            bail!(
                "run directory {} already exists; pass --force to overwrite it or \
                 --resume {} to continue it",
                root.display(),
                root.display()
            );
        }
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create run directory {}", root.display()))?;
        let lock = dir.lock()?;
        if occupied {
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
        Ok((dir, lock))
    }

    /// Removes what a process killed in the middle of a write left: `*.tmp` files beside
    /// `config.json`, `summary.json` and the checkpoint (call with the lock held).
    pub fn remove_stale_temporaries(&self) -> anyhow::Result<()> {
        for d in [self.root.clone(), self.checkpoints()] {
            let Ok(entries) = fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "tmp") {
                    fs::remove_file(&p).with_context(at(&p))?;
                }
            }
        }
        Ok(())
    }

    /// Takes the run directory's lock, or fails naming the process that holds it.
    pub fn lock(&self) -> anyhow::Result<Lock> {
        let path = self.root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(at(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                bail!(
                    "run directory {} is in use by {who} (training or resuming it); wait for \
                     it to finish or stop it first",
                    self.root.display()
                );
            }
            Err(fs::TryLockError::Error(e)) => return Err(e).with_context(at(&path)),
        }
        file.set_len(0).with_context(at(&path))?;
        file.seek(SeekFrom::Start(0)).with_context(at(&path))?;
        writeln!(file, "{}", std::process::id()).with_context(at(&path))?;
        Ok(Lock { _file: file })
    }

    /// Opens an existing run directory (for resuming or evaluating).
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let dir = Self {
            root: root.to_path_buf(),
        };
        if !dir.config().is_file() {
            if root.join(LOCK_FILE).is_file() {
                bail!(
                    "{} is not a run directory yet (no config.json): a training start \
                     there has not written its configuration (stopped before it, or starting \
                     now); if it was stopped, run the same `train` command again to start it",
                    root.display()
                );
            }
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

    /// Writes `config.json` (atomically).
    pub fn write_config(&self, config: &Config) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(config)? + "\n";
        write_atomic(&self.config(), text.as_bytes())
    }

    /// Reads `config.json`.
    pub fn read_config(&self) -> anyhow::Result<Config> {
        let path = self.config();
        let text = fs::read_to_string(&path).with_context(at(&path))?;
        serde_json::from_str(&text).with_context(at(&path))
    }

    /// Writes `summary.json` (atomically).
    pub fn write_summary(&self, summary: &serde_json::Value) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(summary)? + "\n";
        write_atomic(&self.summary(), text.as_bytes())
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

/// Appends records to `evaluations.csv` and `train_log.jsonl` as a run goes, each written
/// through at once (a kill loses nothing written) and synced by [`Self::sync`].
pub struct Logs {
    evaluations: File,
    log: File,
    paths: (PathBuf, PathBuf),
}

/// The length of the longest prefix of `text` made of whole lines (each ending in `\n`) that
/// `keep` accepts, in order.
fn kept_prefix(text: &[u8], mut keep: impl FnMut(&[u8]) -> bool) -> usize {
    let mut end = 0;
    while let Some(n) = text[end..].iter().position(|&b| b == b'\n') {
        if !keep(&text[end..end + n]) {
            break;
        }
        end += n + 1;
    }
    end
}

/// Reads `path` whole (empty if it does not exist).
fn read_or_empty(path: &Path) -> anyhow::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(at(path)),
    }
}

/// Opens `path` for appending after cutting it to `len` bytes.
fn append_from(path: &Path, len: usize) -> anyhow::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(at(path))?;
    f.set_len(len as u64).with_context(at(path))?;
    Ok(f)
}

impl Logs {
    /// Opens the logs of a run at `step` whose checkpoint holds `evaluations`: each file keeps
    /// exactly its records up to `step` and is appended to from there. `evaluations.csv` is cut
    /// after the checkpoint's rows when it starts with them, and otherwise (a file damaged or
    /// from another run) rewritten from them atomically; `train_log.jsonl` keeps its whole,
    /// parsable lines up to the first one past `step`.
    pub fn open(
        dir: &RunDir,
        step: u64,
        evaluations: &[Evaluation],
        episodes: usize,
    ) -> anyhow::Result<Self> {
        let (ep, lp) = (dir.evaluations(), dir.log());
        let mut want = csv_header(episodes) + "\n";
        for e in evaluations {
            want.push_str(&csv_row(e));
            want.push('\n');
        }
        let have = read_or_empty(&ep)?;
        if !have.starts_with(want.as_bytes()) {
            write_atomic(&ep, want.as_bytes())?;
        }
        let csv = append_from(&ep, want.len())?;
        let text = read_or_empty(&lp)?;
        let keep = kept_prefix(&text, |line| {
            serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                .is_some_and(|s| s <= step)
        });
        let log = append_from(&lp, keep)?;
        Ok(Self {
            evaluations: csv,
            log,
            paths: (ep, lp),
        })
    }

    /// Appends one evaluation row.
    pub fn evaluation(&mut self, e: &Evaluation) -> anyhow::Result<()> {
        let row = csv_row(e) + "\n";
        self.evaluations
            .write_all(row.as_bytes())
            .with_context(at(&self.paths.0))
    }

    /// Appends one JSON record to the training log.
    pub fn record(&mut self, value: serde_json::Value) -> anyhow::Result<()> {
        let line = value.to_string() + "\n";
        self.log
            .write_all(line.as_bytes())
            .with_context(at(&self.paths.1))
    }

    /// Syncs both logs to disk (before a checkpoint, which then never runs ahead of them).
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.evaluations
            .sync_data()
            .with_context(at(&self.paths.0))?;
        self.log.sync_data().with_context(at(&self.paths.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory under the system's temporary folder, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("ds-td3-rundir-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_start_killed_before_its_config_leaves_a_directory_a_new_start_may_use() {
        // The lock file, an empty checkpoints folder and a half-written config.json.tmp: what
        // a kill between creating the directory and renaming config.json into place leaves.
        let s = Scratch::new("leftovers");
        let root = s.0.join("run");
        fs::create_dir_all(root.join("checkpoints")).unwrap();
        fs::write(root.join(".lock"), b"").unwrap();
        fs::write(root.join("config.json.tmp"), b"{\"algo\":").unwrap();
        // Evaluating or resuming it is refused with what to do instead.
        let err = RunDir::open(&root).expect_err("no config.json yet");
        assert!(
            err.to_string().contains("run the same `train` command"),
            "{err}"
        );
        let (dir, lock) = RunDir::create(&root, false).expect("leftovers do not count");
        drop((dir, lock));

        // Anything else makes it a run directory that needs --force.
        let other = s.0.join("other");
        fs::create_dir_all(other.join("checkpoints")).unwrap();
        fs::write(other.join("evaluations.csv"), b"step\n").unwrap();
        let err = RunDir::create(&other, false).expect_err("an occupied directory");
        assert!(err.to_string().contains("already exists"), "{err}");
        let full = s.0.join("full");
        fs::create_dir_all(full.join("checkpoints")).unwrap();
        fs::write(full.join("checkpoints/latest.bin"), b"x").unwrap();
        assert!(RunDir::create(&full, false).is_err(), "a checkpoint counts");
    }
}
