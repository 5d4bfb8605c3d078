//! `ds-td3 sweep GRID.toml`: a grid of tasks × algorithms × seeds (× lists of any settings), run
//! by parallel worker processes, resumable, with one overall progress view; or emitted as a
//! Slurm job array over the same run directories.
//!
//! A grid file:
//! ```toml
//! out = "runs/paper"                 # root of the run directories
//! envs = ["Hopper-v3", "Walker2d-v3"]
//! algos = ["dense", "static", "ds"]
//! seeds = [0, 1, 2, 3, 4]
//! seeds_for = { "Humanoid-v3" = [0, 1, 2] }   # optional per-task seeds
//! [set]                              # optional: fixed settings (any config.json field)
//! steps = 1000000
//! [sweep]                            # optional: lists of settings, crossed with everything
//! evolution_period = [200, 500, 1000, 2000]
//! [sweep_for.ds]                     # optional: lists crossed with one algorithm's runs only
//! bias_correction = ["connection", "network"]
//! ```
//! Each grid point is a run directory `<out>/<env>-<algo>[-<key><value>…]-s<seed>` (swept keys
//! appear in the name only when they take more than one value for that algorithm). Its complete configuration is
//! written to `<out>/configs/<name>.json`; a worker runs `ds-td3 train --config …` for a new run,
//! `ds-td3 train --resume …` for one with a checkpoint, and skips one with a `summary.json`.
//! A grid whose run names are taken under `out` by runs of another configuration (two grids
//! sharing `out` whose differing settings are not part of the names) is refused before anything
//! is written.
//!
//! [`grid`] reads the grid file into runs; here the runs are emitted as a script, or run by
//! worker threads (one child process each) under one progress view.

mod grid;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::interrupt::StopFlag;
use crate::progress::Progress;
use grid::{Run, expand, slurm_script, write_configs};

/// Options of `ds-td3 sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The grid file (TOML; see `ds-td3 sweep --help` and examples/paper.toml)
    pub grid: PathBuf,
    /// Runs trained at the same time, one process each [default: the number of CPUs]
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Instead of running, write a script for a cluster scheduler
    #[arg(long, value_enum, value_name = "SCHEDULER")]
    pub emit: Option<Emit>,
    /// Print only failures and the final line
    #[arg(long, short)]
    pub quiet: bool,
}

/// Schedulers `--emit` can write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// A Slurm job-array script, `<out>/sweep.slurm`: one array task per run.
    Slurm,
}

/// What a run directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Finished,
    Interrupted,
    New,
}

fn status(dir: &Path) -> Status {
    if dir.join("summary.json").is_file() {
        Status::Finished
    } else if dir.join("checkpoints/latest.ckpt").is_file() {
        Status::Interrupted
    } else {
        Status::New
    }
}

/// The last evaluated step recorded in a run directory (0 if none).
fn progress_of(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("evaluations.csv"))
        .ok()
        .and_then(|t| {
            t.lines()
                .last()
                .and_then(|l| l.split(',').next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The settings in which two configurations differ, ignoring `steps` (a grid may extend its
/// runs) and `threads` (results do not depend on it).
fn differing_keys(a: &td3::Config, b: &td3::Config) -> anyhow::Result<Vec<String>> {
    let (a, b) = (serde_json::to_value(a)?, serde_json::to_value(b)?);
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        bail!("a configuration serialises as a JSON object");
    };
    Ok(a.iter()
        .filter(|(k, v)| !["steps", "threads"].contains(&k.as_str()) && b.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: {} there, {} here", b.get(k).unwrap_or(&"∅".into()), v))
        .collect())
}

/// Refuses a grid whose run names are taken, under `out`, by runs of another configuration
/// (a run directory's `config.json`, or `configs/<name>.json` that another sweep into the same
/// `out` may be about to start): skipping, resuming or restarting them would mix two
/// experiments under one name.
fn check_existing(out: &Path, runs: &[Run]) -> anyhow::Result<()> {
    let mut clashes = Vec::new();
    for run in runs {
        let files = [
            out.join(&run.name).join("config.json"),
            out.join("configs").join(format!("{}.json", run.name)),
        ];
        for file in files.iter().filter(|f| f.is_file()) {
            let text = std::fs::read_to_string(file).with_context(|| file.display().to_string())?;
            let theirs: td3::Config = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a run configuration", file.display()))?;
            let keys = differing_keys(&run.config, &theirs)?;
            if !keys.is_empty() {
                clashes.push(format!("{} ({})", file.display(), keys.join("; ")));
                break;
            }
        }
    }
    if !clashes.is_empty() {
        bail!(
            "{} run name(s) of this grid are taken by runs of another configuration:\n  {}\n\
             Give the grid its own `out`, or sweep the setting that differs (a key with more \
             than one value is part of the run names); to start such a run afresh, delete its \
             directory and its configs/ file.",
            clashes.len(),
            clashes.join("\n  ")
        );
    }
    Ok(())
}

/// The command that continues or starts a run.
fn command(exe: &Path, out: &Path, run: &Run) -> Command {
    let dir = out.join(&run.name);
    let mut cmd = Command::new(exe);
    if status(&dir) == Status::Interrupted {
        cmd.args(["train", "--resume"]).arg(&dir).arg("--quiet");
        cmd.arg("--steps").arg(run.config.steps.to_string());
    } else {
        let config = out.join("configs").join(format!("{}.json", run.name));
        cmd.args(["train", "--config"])
            .arg(config)
            .arg("--out")
            .arg(&dir);
        cmd.args(["--force", "--quiet"]);
    }
    cmd
}

/// Runs `ds-td3 sweep`.
pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let (out, runs) = expand(&args.grid)?;
    check_existing(&out, &runs)?;
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    write_configs(&out, &runs)?;
    if args.emit == Some(Emit::Slurm) {
        return emit_slurm(&out, &runs);
    }
    let exe = std::env::current_exe().context("cannot locate the ds-td3 binary")?;
    let todo: VecDeque<Run> = runs
        .iter()
        .filter(|r| status(&out.join(&r.name)) != Status::Finished)
        .cloned()
        .collect();
    let skipped = runs.len() - todo.len();
    let workers = args
        .workers
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !args.quiet {
        println!(
            "sweep: {} runs ({} finished already, {} to run) in {}, {} worker(s)",
            runs.len(),
            skipped,
            todo.len(),
            out.display(),
            workers
        );
    }
    let children: Arc<Mutex<Vec<u32>>> = Arc::default();
    let stop = StopFlag::on_signals({
        let children = children.clone();
        // Forward the signal so every run writes a checkpoint and exits.
        move |signal| {
            for &pid in children.lock().expect("no poisoning").iter() {
                // SAFETY: kill(2) with a child's pid and a signal number has no memory effects.
                unsafe { libc::kill(pid as libc::pid_t, signal) };
            }
        }
    })?;
    let shared = Arc::new(Shared {
        queue: Mutex::new(todo),
        active: Mutex::default(),
        failures: Mutex::default(),
        done: Mutex::new(0),
        children,
        stop,
        exe,
        out,
    });
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let shared = shared.clone();
            std::thread::spawn(move || shared.work())
        })
        .collect();
    watch(&shared, &runs, skipped, &handles, args.quiet);
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a sweep worker panicked"))?;
    }
    finish(&shared, &runs)
}

/// Writes the Slurm script for the runs and says how to submit it.
fn emit_slurm(out: &Path, runs: &[Run]) -> anyhow::Result<()> {
    let path = out.join("sweep.slurm");
    std::fs::write(&path, slurm_script(out, runs)).with_context(|| path.display().to_string())?;
    println!(
        "wrote {} ({} array tasks); submit with: sbatch {}",
        path.display(),
        runs.len(),
        path.display()
    );
    Ok(())
}

/// What the sweep's worker threads share.
struct Shared {
    /// Runs not started yet.
    queue: Mutex<VecDeque<Run>>,
    /// Names of the runs in progress.
    active: Mutex<Vec<String>>,
    /// One line per failed run.
    failures: Mutex<Vec<String>>,
    /// Runs finished by this sweep.
    done: Mutex<usize>,
    /// Process ids of the running children (Ctrl-C is forwarded to them).
    children: Arc<Mutex<Vec<u32>>>,
    /// Raised by Ctrl-C.
    stop: StopFlag,
    /// The ds-td3 binary.
    exe: PathBuf,
    /// The grid's output root.
    out: PathBuf,
}

impl Shared {
    /// One worker: runs queued runs one at a time until the queue is empty or Ctrl-C.
    fn work(&self) {
        while !self.stop.is_raised() {
            let Some(run) = self.queue.lock().expect("no poisoning").pop_front() else {
                break;
            };
            let log_path = self.out.join("logs").join(format!("{}.log", run.name));
            let outcome = spawn_logged(
                command(&self.exe, &self.out, &run),
                &log_path,
                &self.children,
                &self.active,
                &run.name,
            );
            match outcome {
                Ok(true) => *self.done.lock().expect("no poisoning") += 1,
                Ok(false) if self.stop.is_raised() => {}
                Ok(false) => self.failures.lock().expect("no poisoning").push(format!(
                    "{} failed (see {})",
                    run.name,
                    log_path.display()
                )),
                Err(e) => self
                    .failures
                    .lock()
                    .expect("no poisoning")
                    .push(format!("{}: {e:#}", run.name)),
            }
        }
    }
}

/// Shows the overall progress (steps summed over all runs) until every worker has ended.
fn watch(shared: &Shared, runs: &[Run], skipped: usize, handles: &[JoinHandle<()>], quiet: bool) {
    let total_steps: u64 = runs.iter().map(|r| r.config.steps).sum();
    let mut progress = Progress::new(total_steps, 0, quiet, false);
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(500));
        let steps: u64 = runs
            .iter()
            .map(|r| {
                let dir = shared.out.join(&r.name);
                if status(&dir) == Status::Finished {
                    r.config.steps
                } else {
                    progress_of(&dir)
                }
            })
            .sum();
        let running = shared.active.lock().expect("no poisoning").join(", ");
        let finished = skipped + *shared.done.lock().expect("no poisoning");
        let msg = format!(
            "{finished}/{} runs finished; running: {running}",
            runs.len()
        );
        if progress
            .show(steps, msg.clone(), Duration::from_secs(30))
            .is_some()
        {
            println!("{steps}/{total_steps} steps; {msg}");
        }
    }
    progress.finish();
}

/// The sweep's outcome: interrupted, failed runs, or finished.
fn finish(shared: &Shared, runs: &[Run]) -> anyhow::Result<()> {
    let failures = shared.failures.lock().expect("no poisoning");
    let finished = runs
        .iter()
        .filter(|r| status(&shared.out.join(&r.name)) == Status::Finished)
        .count();
    if shared.stop.is_raised() {
        println!(
            "interrupted: {finished}/{} runs finished; run the same command again to continue",
            runs.len()
        );
        return Err(shared.stop.interrupted().into());
    }
    if !failures.is_empty() {
        bail!(
            "{} run(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    println!(
        "sweep finished: {finished}/{} runs in {}",
        runs.len(),
        shared.out.display()
    );
    Ok(())
}

/// Runs one child with its output appended to `log_path`; true if it succeeded.
fn spawn_logged(
    mut cmd: Command,
    log_path: &Path,
    children: &Mutex<Vec<u32>>,
    active: &Mutex<Vec<String>>,
    name: &str,
) -> anyhow::Result<bool> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| log_path.display().to_string())?;
    let err = log.try_clone()?;
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .context("cannot start ds-td3")?;
    children.lock().expect("no poisoning").push(child.id());
    active.lock().expect("no poisoning").push(name.to_string());
    let status = child.wait();
    children
        .lock()
        .expect("no poisoning")
        .retain(|&p| p != child.id());
    active.lock().expect("no poisoning").retain(|n| n != name);
    Ok(status?.success())
}
