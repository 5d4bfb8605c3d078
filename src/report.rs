//! `ds-td3 report RUNS... --out DIR`: the paper's tables and learning curves from run
//! directories.
//!
//! - Table 1: per task and algorithm, mean ± standard deviation over seeds of each run's final
//!   score (the mean of its last 10 evaluations). Standard deviations here are population ones
//!   (numpy's default).
//! - Table 2: live connections and training FLOPs (kernel counters at the last evaluation),
//!   relative to dense TD3 on the same task.
//! - Reach: the first evaluation step at which DS-TD3's seed-mean curve reaches dense TD3's final
//!   score (the paper: 40–50% of the steps).
//! - Figures: per task, learning curves (mean over seeds, shaded ±std); when present, DS-TD3 runs
//!   that differ only in the evolution period (the paper's Figure 3) and sparse runs that differ
//!   in λ (Figure 4).
//!
//! A run is complete when it holds every evaluation its configuration schedules. Runs with a
//! missing, malformed or partial `evaluations.csv` are listed, never silently dropped: partial
//! runs appear in the curves but not in the tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use td3::{Algo, Config};

use crate::plot::{self, Series};

/// Options of `ds-td3 report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories, or folders holding them (searched three levels deep)
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write report.md, the CSV tables and the figures
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Overwrite files in an existing output directory
    #[arg(long)]
    pub force: bool,
}

/// One evaluation row.
#[derive(Debug, Clone, Copy)]
struct Eval {
    step: u64,
    mean: f64,
    flops: u64,
    connections: u64,
}

/// A run directory as read.
#[derive(Debug)]
struct RunData {
    dir: PathBuf,
    config: Config,
    evals: Vec<Eval>,
    /// Why the run is incomplete, if it is.
    problem: Option<String>,
}

impl RunData {
    /// The mean of the last 10 evaluation means.
    fn final_score(&self) -> Option<f64> {
        let last: Vec<f64> = self.evals.iter().rev().take(10).map(|e| e.mean).collect();
        (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64)
    }
}

/// The settings that tell groups of runs apart, and whether each applies to an algorithm.
const KEYS: [&str; 4] = ["h", "λ", "e", "η"];

fn applies(key: &str, algo: Algo) -> bool {
    match key {
        "h" => true,
        "λ" => algo.is_sparse(),
        _ => algo == Algo::Ds,
    }
}

fn setting(key: &str, c: &Config) -> String {
    match key {
        "h" => format!("h={}", c.hidden),
        "λ" => format!("λ1={} λ2={}", c.lambda1, c.lambda2),
        "e" => format!("e={}", c.evolution_period),
        _ => format!("η={}", c.evolution_fraction),
    }
}

/// The settings that take more than one value among a task's runs (where they apply).
fn varying(runs: &[RunData], env: &str) -> Vec<&'static str> {
    KEYS.into_iter()
        .filter(|&k| {
            let values: std::collections::BTreeSet<String> = runs
                .iter()
                .filter(|r| r.config.env == env && applies(k, r.config.algo))
                .map(|r| setting(k, &r.config))
                .collect();
            values.len() > 1
        })
        .collect()
}

/// A group's label: the algorithm and those of its settings that vary among the task's runs.
fn label(c: &Config, varying: &[&str]) -> String {
    let mut s = c.algo.to_string();
    for &k in varying.iter().filter(|&&k| applies(k, c.algo)) {
        let _ = write!(s, " {}", setting(k, c));
    }
    s
}

/// The label of the dense TD3 group comparable to `c` (same task and width).
fn dense_label(c: &Config, varying: &[&str]) -> String {
    let mut d = c.clone();
    d.algo = Algo::Dense;
    label(&d, varying)
}

fn parse_evaluations(path: &Path) -> Result<Vec<Eval>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("missing evaluations.csv ({e})"))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if !header.starts_with("step,mean,std,wall_seconds,flops,live_connections") {
        return Err("malformed evaluations.csv (unexpected header)".into());
    }
    lines
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let parse = || -> Option<Eval> {
                Some(Eval {
                    step: f.first()?.parse().ok()?,
                    mean: f.get(1)?.parse().ok()?,
                    flops: f.get(4)?.parse().ok()?,
                    connections: f.get(5)?.parse().ok()?,
                })
            };
            parse().ok_or_else(|| format!("malformed evaluations.csv (line {})", i + 2))
        })
        .collect()
}

fn read_run(dir: &Path) -> Result<RunData, String> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let config: Config =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
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

/// Every run directory under `path` (itself, or up to three levels down).
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
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// The seed-mean curve of a group: `(step, mean, std)` over the runs that reached each step.
fn curve(runs: &[&RunData]) -> Vec<(f64, f64, f64)> {
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

type Groups<'a> = BTreeMap<(String, String), Vec<&'a RunData>>;

/// The complete runs of a group.
fn complete<'a>(g: &[&'a RunData]) -> Vec<&'a RunData> {
    g.iter().copied().filter(|r| r.problem.is_none()).collect()
}

/// Runs `ds-td3 report`.
pub fn run(args: &ReportArgs) -> Result<(), String> {
    let mut dirs = Vec::new();
    for p in &args.runs {
        if !p.exists() {
            return Err(format!("{}: no such file or directory", p.display()));
        }
        find_runs(p, 3, &mut dirs);
    }
    if dirs.is_empty() {
        return Err("no run directories (with a config.json) found".into());
    }
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map_err(|e| e.to_string())?
            .next()
            .is_some()
        && !args.force
    {
        return Err(format!(
            "{} already exists; pass --force to overwrite its files",
            args.out.display()
        ));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let mut runs = Vec::new();
    let mut unreadable = Vec::new();
    for d in &dirs {
        match read_run(d) {
            Ok(r) => runs.push(r),
            Err(e) => unreadable.push(e),
        }
    }
    let mut md = String::new();
    let mut files = Vec::new();
    let _ = writeln!(
        md,
        "# ds-td3 report\n\n{} run directories read.\n",
        dirs.len()
    );

    // Groups of runs: (task, label).
    let mut vary: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for r in &runs {
        let env = r.config.env.clone();
        vary.entry(env.clone())
            .or_insert_with(|| varying(&runs, &env));
    }
    let label_of = |c: &Config| label(c, &vary[&c.env]);
    let dense_of = |c: &Config| dense_label(c, &vary[&c.env]);
    let mut all: Groups = BTreeMap::new();
    for r in &runs {
        all.entry((r.config.env.clone(), label_of(&r.config)))
            .or_default()
            .push(r);
    }

    // Table 1.
    let mut t1 = String::from("env,algorithm,seeds,final_mean,final_std\n");
    let _ = writeln!(
        md,
        "## Table 1: final return (mean of the last 10 evaluations; mean ± std over seeds)\n"
    );
    let _ = writeln!(
        md,
        "| task | algorithm | seeds | final return |\n|---|---|---|---|"
    );
    let mut finals: BTreeMap<(String, String), f64> = BTreeMap::new();
    for ((env, lab), g) in &all {
        let scores: Vec<f64> = complete(g).iter().filter_map(|r| r.final_score()).collect();
        if scores.is_empty() {
            continue;
        }
        let (m, s) = mean_std(&scores);
        finals.insert((env.clone(), lab.clone()), m);
        let _ = writeln!(md, "| {env} | {lab} | {} | {m:.2} ± {s:.2} |", scores.len());
        let _ = writeln!(t1, "{env},{lab},{},{m},{s}", scores.len());
    }

    // Table 2.
    let mut t2 = String::from("env,algorithm,connections,steps,flops,flops_vs_dense\n");
    let _ = writeln!(
        md,
        "\n## Table 2: connections and training FLOPs (kernel counters)\n"
    );
    let _ = writeln!(
        md,
        "| task | algorithm | connections | steps | FLOPs | FLOPs vs dense |\n|---|---|---|---|---|---|"
    );
    for ((env, lab), g) in &all {
        let c = complete(g);
        let Some(last) = c.first().and_then(|r| r.evals.last()) else {
            continue;
        };
        let flops: Vec<f64> = c
            .iter()
            .filter_map(|r| r.evals.last())
            .map(|e| e.flops as f64)
            .collect();
        let mean_flops = flops.iter().sum::<f64>() / flops.len() as f64;
        let dense = all
            .get(&(env.clone(), dense_of(&c[0].config)))
            .map(|d| complete(d));
        let ratio = dense.and_then(|d| {
            let e = d.first()?.evals.last()?;
            let f: Vec<f64> = d
                .iter()
                .filter_map(|r| r.evals.last())
                .map(|e| e.flops as f64)
                .collect();
            (e.step == last.step).then(|| mean_flops / (f.iter().sum::<f64>() / f.len() as f64))
        });
        let ratio_s = ratio.map_or("n/a".to_string(), |r| format!("{r:.3}"));
        let _ = writeln!(
            md,
            "| {env} | {lab} | {} | {} | {mean_flops:.3e} | {ratio_s} |",
            last.connections, last.step
        );
        let _ = writeln!(
            t2,
            "{env},{lab},{},{},{mean_flops},{}",
            last.connections,
            last.step,
            ratio.map_or(String::new(), |r| r.to_string())
        );
    }

    // Steps DS needs to reach dense TD3's final return.
    let mut reach = String::from("env,algorithm,dense_final,reached_at_step,fraction_of_steps\n");
    let _ = writeln!(md, "\n## Steps to reach dense TD3's final return\n");
    let _ = writeln!(
        md,
        "| task | algorithm | dense final | reached at step | fraction of the run |\n|---|---|---|---|---|"
    );
    for ((env, lab), g) in &all {
        let c = complete(g);
        let Some(first) = c.first() else { continue };
        if first.config.algo != Algo::Ds {
            continue;
        }
        let Some(&dense_final) = finals.get(&(env.clone(), dense_of(&first.config))) else {
            continue;
        };
        let Some(total) = c.first().map(|r| r.config.steps) else {
            continue;
        };
        let hit = curve(&c)
            .into_iter()
            .find(|p| p.1 >= dense_final)
            .map(|p| p.0 as u64);
        let (at, frac) = match hit {
            Some(s) => (s.to_string(), format!("{:.2}", s as f64 / total as f64)),
            None => ("not reached".to_string(), String::new()),
        };
        let _ = writeln!(md, "| {env} | {lab} | {dense_final:.2} | {at} | {frac} |");
        let _ = writeln!(
            reach,
            "{env},{lab},{dense_final},{},{frac}",
            hit.map_or(String::new(), |s| s.to_string())
        );
    }

    // Figures.
    let _ = writeln!(md, "\n## Figures\n");
    let envs: Vec<String> = {
        let mut e: Vec<String> = all.keys().map(|k| k.0.clone()).collect();
        e.dedup();
        e
    };
    for env in &envs {
        let groups: Vec<(&String, &Vec<&RunData>)> = all
            .iter()
            .filter(|(k, _)| &k.0 == env)
            .map(|(k, g)| (&k.1, g))
            .collect();
        let series = |pick: &dyn Fn(&Config) -> Option<String>| -> Vec<Series> {
            let mut s: BTreeMap<String, Vec<&RunData>> = BTreeMap::new();
            for (_, g) in &groups {
                for r in g.iter().filter(|r| !r.evals.is_empty()) {
                    if let Some(l) = pick(&r.config) {
                        s.entry(l).or_default().push(r);
                    }
                }
            }
            s.into_iter()
                .map(|(label, rs)| Series {
                    label,
                    points: curve(&rs),
                })
                .collect()
        };
        let mut figure = |name: &str, title: String, s: Vec<Series>| -> Result<(), String> {
            let stem = args.out.join(format!("{name}-{env}"));
            plot::curves(&stem, &title, "mean evaluation return", &s)?;
            let _ = writeln!(
                md,
                "- {title}: `{0}.png`, `{0}.svg`",
                stem.file_name().unwrap_or_default().to_string_lossy()
            );
            files.push(stem.with_extension("png"));
            files.push(stem.with_extension("svg"));
            Ok(())
        };
        figure(
            "curves",
            format!("{env}: learning curves"),
            series(&|c| Some(label_of(c))),
        )?;
        // Figure 3: DS runs at the paper's λ and η that differ in the evolution period.
        let ds_periods = series(&|c| {
            let paper = Config::paper(&c.env, Algo::Ds);
            let same = (c.lambda1, c.lambda2, c.evolution_fraction, c.hidden)
                == (
                    paper.lambda1,
                    paper.lambda2,
                    paper.evolution_fraction,
                    paper.hidden,
                );
            (c.algo == Algo::Ds && same).then(|| format!("DS-TD3, e = {}", c.evolution_period))
        });
        if ds_periods.len() > 1 {
            figure(
                "schedule",
                format!("{env}: evolution schedules"),
                ds_periods,
            )?;
        }
        // Figure 4: sparse runs that differ in λ (the sparsity level).
        let levels = series(&|c| {
            c.algo
                .is_sparse()
                .then(|| format!("{}, λ1 = {}, λ2 = {}", c.algo, c.lambda1, c.lambda2))
        });
        if levels.len() > 1
            && levels
                .iter()
                .map(|s| s.label.split(',').nth(1).map(str::to_string))
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1
        {
            figure("sparsity", format!("{env}: sparsity levels"), levels)?;
        }
    }

    // Incomplete runs.
    let incomplete: Vec<String> = runs
        .iter()
        .filter_map(|r| {
            r.problem
                .as_ref()
                .map(|p| format!("{}: {p}", r.dir.display()))
        })
        .chain(unreadable)
        .collect();
    if !incomplete.is_empty() {
        let _ = writeln!(md, "\n## Incomplete runs (not in the tables)\n");
        for i in &incomplete {
            let _ = writeln!(md, "- {i}");
        }
    }
    for (name, text) in [
        ("report.md", &md),
        ("table1.csv", &t1),
        ("table2.csv", &t2),
        ("reach.csv", &reach),
    ] {
        let path = args.out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    print!("{md}");
    for i in &incomplete {
        eprintln!("warning: incomplete run {i}");
    }
    println!(
        "\nwrote {} (report.md, table1.csv, table2.csv, reach.csv and {} images)",
        args.out.display(),
        files.len()
    );
    Ok(())
}
