//! The grid file of `ds-td3 sweep`: its runs (every combination, named and fully configured),
//! their configuration files, and the Slurm job-array script that runs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use td3::{Algo, Config};

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
    #[serde(default)]
    sweep_for: BTreeMap<String, BTreeMap<String, Vec<toml::Value>>>,
}

/// One grid point.
#[derive(Debug, Clone)]
pub struct Run {
    /// Directory name under the grid's `out`.
    pub name: String,
    /// Its complete configuration.
    pub config: Config,
}
/// Converts a TOML value to JSON (for setting a configuration field).
fn to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::from(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::from(*b),
        toml::Value::Table(t) => t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect(),
        toml::Value::Array(a) => a.iter().map(to_json).collect(),
        other => serde_json::Value::from(other.to_string()),
    }
}

/// A value as it appears in a run name.
fn short(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        // `{ gradient = { candidates = 4 } }` → `gradient-candidates4`: no spaces or braces in
        // a directory name.
        toml::Value::Table(t) => t
            .iter()
            .map(|(k, v)| match v {
                toml::Value::Table(_) => format!("{k}-{}", short(v)),
                _ => format!("{k}{}", short(v)),
            })
            .collect::<Vec<_>>()
            .join("-"),
        other => other.to_string(),
    }
}

/// Applies `key = value` to a configuration, rejecting unknown keys and invalid values.
fn apply(config: &Config, key: &str, value: &toml::Value) -> anyhow::Result<Config> {
    let mut json = serde_json::to_value(config)?;
    let fields = json
        .as_object_mut()
        .expect("a config serialises to an object");
    if !fields.contains_key(key) || matches!(key, "env" | "algo" | "seed") {
        let known: Vec<&String> = fields
            .keys()
            .filter(|k| !matches!(k.as_str(), "env" | "algo" | "seed"))
            .collect();
        bail!(
            "unknown setting '{key}' (envs, algos and seeds have their own lists; settings: {})",
            known
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    fields.insert(key.to_string(), to_json(value));
    serde_json::from_value(json).with_context(|| format!("setting '{key}' = {value}"))
}

/// The cartesian product of the swept lists, keys in order.
fn combinations(
    lists: &BTreeMap<&String, &Vec<toml::Value>>,
) -> anyhow::Result<Vec<Vec<(String, toml::Value)>>> {
    let mut combos: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (&key, &values) in lists {
        if values.is_empty() {
            bail!("the sweep of '{key}' lists no values");
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
    Ok(combos)
}

/// Every run of the grid, in a stable order (env, algo, swept values, seed), and the grid's
/// output root (made absolute).
pub fn expand(grid_path: &Path) -> anyhow::Result<(PathBuf, Vec<Run>)> {
    read_grid(grid_path).with_context(|| grid_path.display().to_string())
}

/// [`expand`], with errors that the caller prefixes with the grid file's name.
fn read_grid(grid_path: &Path) -> anyhow::Result<(PathBuf, Vec<Run>)> {
    let text = std::fs::read_to_string(grid_path)?;
    let grid: Grid = toml::from_str(&text)?;
    if grid.envs.is_empty() || grid.algos.is_empty() || grid.seeds.is_empty() {
        bail!("envs, algos and seeds must each list at least one value");
    }
    for env in grid.envs.iter().chain(grid.seeds_for.keys()) {
        if !mujoco_env::known_ids().contains(&env.as_str()) {
            bail!(
                "unknown environment '{env}'; known: {}",
                mujoco_env::known_ids().join(", ")
            );
        }
    }
    let algos = grid
        .algos
        .iter()
        .map(|a| a.parse::<Algo>())
        .collect::<Result<Vec<_>, _>>()?;
    for (algo, lists) in &grid.sweep_for {
        let a: Algo = algo.parse()?;
        if !algos.contains(&a) {
            bail!("sweep_for.{algo}: '{algo}' is not among the grid's algos");
        }
        if let Some(key) = lists.keys().find(|k| grid.sweep.contains_key(*k)) {
            bail!("sweep_for.{algo}.{key}: '{key}' is swept for every algorithm already");
        }
    }
    let mut runs = Vec::new();
    for env in &grid.envs {
        let seeds = grid.seeds_for.get(env).unwrap_or(&grid.seeds);
        for &algo in &algos {
            let own = grid.sweep_for.get(algo.name());
            let lists: BTreeMap<&String, &Vec<toml::Value>> =
                grid.sweep.iter().chain(own.into_iter().flatten()).collect();
            for combo in &combinations(&lists)? {
                for &seed in seeds {
                    let mut config = Config::paper(env, algo);
                    config.seed = seed;
                    for (k, v) in grid.set.iter().chain(combo.iter().map(|(k, v)| (k, v))) {
                        config = apply(&config, k, v)?;
                    }
                    config.validate()?;
                    let mut name = format!("{env}-{algo}");
                    for (k, v) in combo {
                        if lists[k].len() > 1 {
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
        bail!(
            "two grid points share the run name '{}' (repeated list values?)",
            w[0]
        );
    }
    let out = if grid.out.is_absolute() {
        grid.out
    } else {
        std::env::current_dir()?.join(grid.out)
    };
    Ok((out, runs))
}

/// Writes `<out>/configs/<name>.json` for every run.
pub fn write_configs(out: &Path, runs: &[Run]) -> anyhow::Result<()> {
    let dir = out.join("configs");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for r in runs {
        let path = dir.join(format!("{}.json", r.name));
        let text = serde_json::to_string_pretty(&r.config)? + "\n";
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
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
    s.push_str(
        "# SIGTERM a minute before the time limit: the run checkpoints at that very step.\n",
    );
    s.push_str("#SBATCH --signal=B:TERM@60\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(text: &str) -> anyhow::Result<Vec<Run>> {
        let path = std::env::temp_dir().join(format!(
            "ds-td3-grid-{}-{}.toml",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let runs = expand(&path).map(|(_, runs)| runs);
        std::fs::remove_file(&path).unwrap();
        runs
    }

    #[test]
    fn table_values_make_plain_run_names() {
        let runs = grid(
            "out = \"runs/x\"\nenvs = [\"Pendulum-v1\"]\nalgos = [\"ds\"]\nseeds = [0]\n\
             [set]\nsteps = 50000\nsparsity = 0.9\n[sweep]\n\
             growth = [\"random\", { gradient = { candidates = 4 } }]\n",
        )
        .unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Pendulum-v1-ds-growthrandom-s0",
                "Pendulum-v1-ds-growthgradient-candidates4-s0",
            ]
        );
        assert_eq!(
            runs[1].config.growth,
            td3::Growth::Gradient { candidates: 4 }
        );
        assert_eq!(runs[0].config.sparsity, Some(0.9));
    }

    #[test]
    fn lists_for_one_algorithm_cross_only_its_runs() {
        let runs = grid(
            "out = \"runs/x\"\nenvs = [\"Pendulum-v1\"]\nalgos = [\"dense\", \"ds\"]\n\
             seeds = [0, 1]\n[set]\nsteps = 50000\n[sweep_for.ds]\n\
             bias_correction = [\"connection\", \"network\"]\n",
        )
        .unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Pendulum-v1-dense-s0",
                "Pendulum-v1-dense-s1",
                "Pendulum-v1-ds-bias_correctionconnection-s0",
                "Pendulum-v1-ds-bias_correctionconnection-s1",
                "Pendulum-v1-ds-bias_correctionnetwork-s0",
                "Pendulum-v1-ds-bias_correctionnetwork-s1",
            ]
        );
        let network = &runs[4].config;
        assert_eq!(
            network.bias_correction,
            sparse_core::BiasCorrection::Network
        );
        assert_eq!((network.steps, network.seed), (50_000, 0));
        assert_eq!(
            runs[2].config.bias_correction,
            sparse_core::BiasCorrection::Connection
        );
    }

    #[test]
    fn lists_for_one_algorithm_are_checked() {
        let base = "out = \"runs/x\"\nenvs = [\"Pendulum-v1\"]\nalgos = [\"ds\"]\nseeds = [0]\n";
        for (extra, message) in [
            (
                "[sweep_for.static]\nevolution_period = [10, 20]\n",
                "'static' is not among the grid's algos",
            ),
            (
                "[sweep]\nevolution_period = [10]\n[sweep_for.ds]\nevolution_period = [20]\n",
                "swept for every algorithm already",
            ),
            ("[sweep_for.ds]\nevolution_period = []\n", "lists no values"),
            (
                "[sweep_for.ds]\nbias_correction = [\"age\"]\n",
                "bias_correction",
            ),
        ] {
            let err = format!("{:#}", grid(&format!("{base}{extra}")).unwrap_err());
            assert!(err.contains(message), "{extra}: {err}");
        }
    }
}
