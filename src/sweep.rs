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
//! ```
//! Each grid point is a run directory `<out>/<env>-<algo>[-<key><value>…]-s<seed>` (swept keys
//! appear in the name only when they take more than one value). Its complete configuration is
//! written to `<out>/configs/<name>.json`; a worker runs `ds-td3 train --config …` for a new run,
//! `ds-td3 train --resume …` for one with a checkpoint, and skips one with a `summary.json`.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use td3::{Algo, Config};

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

/// The grid file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grid {
    out: PathBuf,
    envs: Vec<String>,
    algos: Vec<String>,
    seeds: Vec<u64>,
    #[serde(default)]
    seeds_for: BTreeMap<String, Vec<u64>>,
    #[serde(default)]
    set: BTreeMap<String, toml::Value>,
    #[serde(default)]
    sweep: BTreeMap<String, Vec<toml::Value>>,
}

/// One grid point.
#[derive(Debug, Clone)]
pub struct Run {
    /// Directory name under the grid's `out`.
    pub name: String,
    /// Its complete configuration.
    pub config: Config,
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

/// Converts a TOML value to JSON (for setting a configuration field).
fn to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::from(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::from(*b),
        other => serde_json::Value::from(other.to_string()),
    }
}

/// A value as it appears in a run name.
fn short(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Applies `key = value` to a configuration, rejecting unknown keys and invalid values.
fn apply(config: &Config, key: &str, value: &toml::Value) -> Result<Config, String> {
    let mut json = serde_json::to_value(config).map_err(|e| e.to_string())?;
    let fields = json
        .as_object_mut()
        .expect("a config serialises to an object");
    if !fields.contains_key(key) || matches!(key, "env" | "algo" | "seed") {
        let known: Vec<&String> = fields
            .keys()
            .filter(|k| !matches!(k.as_str(), "env" | "algo" | "seed"))
            .collect();
        return Err(format!(
            "unknown setting '{key}' (envs, algos and seeds have their own lists; settings: {})",
            known
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    fields.insert(key.to_string(), to_json(value));
    serde_json::from_value(json).map_err(|e| format!("setting '{key}' = {value}: {e}"))
}

/// Every run of the grid, in a stable order (env, algo, swept values, seed).
pub fn expand(grid_path: &Path) -> Result<(PathBuf, Vec<Run>), String> {
    let text =
        std::fs::read_to_string(grid_path).map_err(|e| format!("{}: {e}", grid_path.display()))?;
    let grid: Grid = toml::from_str(&text).map_err(|e| format!("{}: {e}", grid_path.display()))?;
    let ctx = |e: String| format!("{}: {e}", grid_path.display());
    if grid.envs.is_empty() || grid.algos.is_empty() || grid.seeds.is_empty() {
        return Err(ctx(
            "envs, algos and seeds must each list at least one value".into(),
        ));
    }
    for env in grid.envs.iter().chain(grid.seeds_for.keys()) {
        if !mujoco_env::known_ids().contains(&env.as_str()) {
            return Err(ctx(format!(
                "unknown environment '{env}'; known: {}",
                mujoco_env::known_ids().join(", ")
            )));
        }
    }
    let algos = grid
        .algos
        .iter()
        .map(|a| a.parse::<Algo>().map_err(|e| ctx(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    // The cartesian product of the swept lists.
    let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in &grid.sweep {
        if values.is_empty() {
            return Err(ctx(format!("sweep.{key} lists no values")));
        }
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    let mut runs = Vec::new();
    for env in &grid.envs {
        let seeds = grid.seeds_for.get(env).unwrap_or(&grid.seeds);
        for &algo in &algos {
            for combo in &combos {
                for &seed in seeds {
                    let mut config = Config::paper(env, algo);
                    config.seed = seed;
                    for (k, v) in grid.set.iter().chain(combo.iter().map(|(k, v)| (k, v))) {
                        config = apply(&config, k, v).map_err(ctx)?;
                    }
                    config.validate().map_err(|e| ctx(e.to_string()))?;
                    let mut name = format!("{env}-{algo}");
                    for (k, v) in combo {
                        if grid.sweep[k].len() > 1 {
                            name.push_str(&format!("-{k}{}", short(v)));
                        }
                    }
                    name.push_str(&format!("-s{seed}"));
                    runs.push(Run { name, config });
                }
            }
        }
    }
    let mut names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(ctx(format!(
            "two grid points share the run name '{}' (repeated list values?)",
            w[0]
        )));
    }
    let out = if grid.out.is_absolute() {
        grid.out
    } else {
        std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(grid.out)
    };
    Ok((out, runs))
}

/// Writes `<out>/configs/<name>.json` for every run.
fn write_configs(out: &Path, runs: &[Run]) -> Result<(), String> {
    let dir = out.join("configs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for r in runs {
        let path = dir.join(format!("{}.json", r.name));
        let text = serde_json::to_string_pretty(&r.config).map_err(|e| e.to_string())? + "\n";
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Quotes a string for bash.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The Slurm job-array script for the runs.
pub fn slurm_script(out: &Path, runs: &[Run]) -> String {
    let root = out.display().to_string();
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("# Written by `ds-td3 sweep --emit slurm`: one array task per run. Submit with\n");
    s.push_str("#   sbatch sweep.slurm\n");
    s.push_str(
        "# and add #SBATCH lines for your cluster (partition, time, memory). Set DS_TD3 to\n",
    );
    s.push_str("# the ds-td3 binary if it is not on PATH. Re-submitting skips finished runs and\n");
    s.push_str("# resumes interrupted ones from their checkpoints.\n");
    s.push_str("#SBATCH --job-name=ds-td3-sweep\n");
    s.push_str(&format!(
        "#SBATCH --array=0-{}\n",
        runs.len().saturating_sub(1)
    ));
    s.push_str("#SBATCH --cpus-per-task=1\n");
    s.push_str(&format!("#SBATCH --output={}/logs/%x-%A-%a.out\n", root));
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("ROOT={}\n", sh(&root)));
    s.push_str("RUNS=(\n");
    for r in runs {
        s.push_str(&format!("  {}\n", sh(&r.name)));
    }
    s.push_str(")\n");
    s.push_str("NAME=\"${RUNS[$SLURM_ARRAY_TASK_ID]}\"\n");
    s.push_str("DIR=\"$ROOT/$NAME\"\n");
    s.push_str("BIN=\"${DS_TD3:-ds-td3}\"\n");
    s.push_str(
        "if [ -f \"$DIR/summary.json\" ]; then echo \"$NAME: already finished\"; exit 0; fi\n",
    );
    s.push_str("if [ -f \"$DIR/checkpoints/latest.ckpt\" ]; then exec \"$BIN\" train --resume \"$DIR\" --quiet; fi\n");
    s.push_str("exec \"$BIN\" train --config \"$ROOT/configs/$NAME.json\" --out \"$DIR\" --force --quiet\n");
    s
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
pub fn run(args: &SweepArgs) -> Result<(), String> {
    let (out, runs) = expand(&args.grid)?;
    std::fs::create_dir_all(out.join("logs"))
        .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    write_configs(&out, &runs)?;
    if args.emit == Some(Emit::Slurm) {
        let path = out.join("sweep.slurm");
        std::fs::write(&path, slurm_script(&out, &runs))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "wrote {} ({} array tasks); submit with: sbatch {}",
            path.display(),
            runs.len(),
            path.display()
        );
        return Ok(());
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the ds-td3 binary: {e}"))?;
    let total_steps: u64 = runs.iter().map(|r| r.config.steps).sum();
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

    let stop = Arc::new(AtomicBool::new(false));
    let children: Arc<Mutex<Vec<u32>>> = Arc::default();
    {
        let (stop, children) = (stop.clone(), children.clone());
        ctrlc::set_handler(move || {
            stop.store(true, Ordering::SeqCst);
            // Forward the interrupt so every run writes a checkpoint and exits.
            for &pid in children.lock().expect("no poisoning").iter() {
                // SAFETY: kill(2) with a child's pid and SIGINT has no memory effects.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
            }
        })
        .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    }
    let queue = Arc::new(Mutex::new(todo));
    let active: Arc<Mutex<Vec<String>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(Mutex::new(0usize));
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (queue, active, failures, done) = (
                queue.clone(),
                active.clone(),
                failures.clone(),
                done.clone(),
            );
            let (stop, children, exe, out) =
                (stop.clone(), children.clone(), exe.clone(), out.clone());
            std::thread::spawn(move || {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Some(run) = queue.lock().expect("no poisoning").pop_front() else {
                        break;
                    };
                    let log_path = out.join("logs").join(format!("{}.log", run.name));
                    let outcome = spawn_logged(
                        command(&exe, &out, &run),
                        &log_path,
                        &children,
                        &active,
                        &run.name,
                    );
                    match outcome {
                        Ok(true) => *done.lock().expect("no poisoning") += 1,
                        Ok(false) if stop.load(Ordering::SeqCst) => {}
                        Ok(false) => failures.lock().expect("no poisoning").push(format!(
                            "{} failed (see {})",
                            run.name,
                            log_path.display()
                        )),
                        Err(e) => failures
                            .lock()
                            .expect("no poisoning")
                            .push(format!("{}: {e}", run.name)),
                    }
                }
            })
        })
        .collect();

    // One overall view: steps summed over all runs.
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::with_draw_target(Some(total_steps), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} steps  ETA {eta}  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let mut last_line = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(500));
        let steps: u64 = runs
            .iter()
            .map(|r| {
                let dir = out.join(&r.name);
                if status(&dir) == Status::Finished {
                    r.config.steps
                } else {
                    progress_of(&dir)
                }
            })
            .sum();
        let running = active.lock().expect("no poisoning").join(", ");
        let finished = skipped + *done.lock().expect("no poisoning");
        let msg = format!(
            "{finished}/{} runs finished; running: {running}",
            runs.len()
        );
        if let Some(bar) = &bar {
            bar.set_position(steps);
            bar.set_message(msg);
        } else if !args.quiet && last_line.elapsed() > Duration::from_secs(30) {
            println!("{steps}/{total_steps} steps; {msg}");
            last_line = Instant::now();
        }
    }
    for h in handles {
        h.join()
            .map_err(|_| "a sweep worker panicked".to_string())?;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let failures = failures.lock().expect("no poisoning");
    let finished = runs
        .iter()
        .filter(|r| status(&out.join(&r.name)) == Status::Finished)
        .count();
    if stop.load(Ordering::SeqCst) {
        println!(
            "interrupted: {finished}/{} runs finished; run the same command again to continue",
            runs.len()
        );
        std::process::exit(130);
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} run(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        ));
    }
    println!(
        "sweep finished: {finished}/{} runs in {}",
        runs.len(),
        out.display()
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
) -> Result<bool, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start ds-td3: {e}"))?;
    children.lock().expect("no poisoning").push(child.id());
    active.lock().expect("no poisoning").push(name.to_string());
    let status = child.wait().map_err(|e| e.to_string());
    children
        .lock()
        .expect("no poisoning")
        .retain(|&p| p != child.id());
    active.lock().expect("no poisoning").retain(|n| n != name);
    Ok(status?.success())
}
