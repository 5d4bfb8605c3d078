//! Published learning curves for `ds-td3 report --reference`: reading them, matching them to our
//! tasks, and the milestone table that sets our variants' returns beside them.
//!
//! A reference file is a CSV named `<algorithm>-<Robot>-v<N>.csv` (e.g. `td3-Hopper-v1.csv`):
//! a header `step,seed0,seed1,…` (optionally followed by `mean,min,max`), then one row per
//! evaluation step, steps strictly increasing, every value a finite number. It matches every
//! task of ours with the same robot (`td3-Hopper-v1.csv` ↔ `Hopper-v3`). Where the file carries
//! `mean`, `min` and `max`, they must agree with its seed columns.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::runs::{Groups, RunData};

/// The robots a reference file may name (the part of a task id before `-v`).
const ROBOTS: [&str; 6] = [
    "Hopper",
    "Walker2d",
    "HalfCheetah",
    "Ant",
    "Humanoid",
    "Pendulum",
];

/// The steps the milestone table reports, where evaluated.
pub const MILESTONES: [u64; 5] = [100_000, 200_000, 300_000, 500_000, 1_000_000];

/// A published learning curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The file it was read from.
    pub path: PathBuf,
    /// The robot (`"Hopper"`), matched against the part of our task ids before `-v`.
    pub robot: String,
    /// The legend text, e.g. `TD3 paper (v1, 10 seeds)`.
    pub label: String,
    /// Evaluation steps, strictly increasing.
    pub steps: Vec<u64>,
    /// Per step, the return of each seed.
    pub returns: Vec<Vec<f64>>,
}

/// `(mean, min, max)` of values (none for no values).
pub fn mean_range(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((mean, min, max))
}

impl Reference {
    /// The number of seeds.
    pub fn seeds(&self) -> usize {
        self.returns.first().map_or(0, Vec::len)
    }

    /// `(step, mean, min, max)` over seeds at every step.
    pub fn band(&self) -> Vec<(f64, f64, f64, f64)> {
        self.steps
            .iter()
            .zip(&self.returns)
            .filter_map(|(&s, v)| mean_range(v).map(|(m, lo, hi)| (s as f64, m, lo, hi)))
            .collect()
    }

    /// `(mean, min, max)` over seeds at exactly `step`, if the file has that step.
    pub fn at(&self, step: u64) -> Option<(f64, f64, f64)> {
        let i = self.steps.binary_search(&step).ok()?;
        mean_range(&self.returns[i])
    }

    /// Whether this curve belongs to our task `env` (same robot).
    pub fn matches(&self, env: &str) -> bool {
        robot_of_task(env) == self.robot
    }

    /// Parses a reference CSV's text; `path` names it in errors and gives the robot and label.
    ///
    /// # Errors
    /// A file name that names no known robot; a header without `step` and seed columns; a row
    /// with the wrong number of fields, a value that is not a finite number, a step that does
    /// not increase, or `mean`/`min`/`max` that disagree with the seeds (each naming the line).
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Self> {
        let (algorithm, robot, version) = parse_name(path)?;
        let file = path.display();
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
        let Some((_, header)) = lines.next() else {
            bail!("{file}: empty file (expected a header `step,seed0,seed1,…`)");
        };
        let columns: Vec<&str> = header.split(',').map(str::trim).collect();
        let seeds = columns.iter().filter(|c| c.starts_with("seed")).count();
        let summary = &columns[1 + seeds.min(columns.len() - 1)..];
        if columns[0] != "step"
            || seeds == 0
            || !columns[1..=seeds].iter().all(|c| c.starts_with("seed"))
            || !(summary.is_empty() || summary == ["mean", "min", "max"])
        {
            bail!(
                "{file}:1: unexpected header {header:?} (expected `step,seed0,seed1,…` optionally \
                 followed by `mean,min,max`)"
            );
        }
        let mut reference = Self {
            path: path.to_path_buf(),
            robot: robot.to_string(),
            label: label(algorithm, version, seeds),
            steps: Vec::new(),
            returns: Vec::new(),
        };
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != columns.len() {
                bail!(
                    "{file}:{n}: {} fields, the header has {}",
                    fields.len(),
                    columns.len()
                );
            }
            let step: u64 = fields[0].parse().with_context(|| {
                format!("{file}:{n}: step {:?} is not a whole number", fields[0])
            })?;
            if reference.steps.last().is_some_and(|&last| step <= last) {
                bail!("{file}:{n}: step {step} does not increase");
            }
            let values = fields[1..]
                .iter()
                .zip(&columns[1..])
                .map(|(f, c)| match f.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => bail!("{file}:{n}: {c} {f:?} is not a finite number"),
                })
                .collect::<anyhow::Result<Vec<f64>>>()?;
            let (returns, given) = values.split_at(seeds);
            if let ([mean, min, max], Some((m, lo, hi))) = (given, mean_range(returns)) {
                // The file rounds every value to two decimals: the mean of the rounded seeds
                // may differ from the rounded mean by one unit in the last place.
                if (mean - m).abs() > 0.011 || min != &lo || max != &hi {
                    bail!(
                        "{file}:{n}: mean/min/max {mean}/{min}/{max} disagree with the seeds \
                         ({m:.3}/{lo}/{hi})"
                    );
                }
            }
            reference.steps.push(step);
            reference.returns.push(returns.to_vec());
        }
        if reference.steps.is_empty() {
            bail!("{file}: no rows after the header");
        }
        Ok(reference)
    }

    /// Reads one reference CSV.
    ///
    /// # Errors
    /// As [`Reference::parse`], or the file cannot be read.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read reference file {}", path.display()))?;
        Self::parse(path, &text)
    }
}

/// The robot of one of our task ids (`Hopper-v3` → `Hopper`).
fn robot_of_task(env: &str) -> &str {
    env.rsplit_once("-v").map_or(env, |(robot, _)| robot)
}

/// `(algorithm, robot, version)` from a file name `<algorithm>-<Robot>-v<N>.csv`.
fn parse_name(path: &Path) -> anyhow::Result<(&str, &str, &str)> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parsed = name
        .strip_suffix(".csv")
        .and_then(|stem| stem.split_once('-'))
        .and_then(|(algorithm, task)| {
            let (robot, version) = task.rsplit_once('-')?;
            let digits = version.strip_prefix('v')?;
            (!algorithm.is_empty()
                && !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some((algorithm, robot, version))
        });
    let Some((algorithm, robot, version)) = parsed else {
        bail!(
            "{}: cannot tell the task from the file name (expected <algorithm>-<Task>-v<N>.csv, \
             e.g. td3-Hopper-v1.csv)",
            path.display()
        );
    };
    if !ROBOTS.contains(&robot) {
        bail!(
            "{}: unknown task {robot:?} (known: {})",
            path.display(),
            ROBOTS.join(", ")
        );
    }
    Ok((algorithm, robot, version))
}

/// The legend text: `TD3 paper (v1, 10 seeds)` for the TD3 paper's curves.
fn label(algorithm: &str, version: &str, seeds: usize) -> String {
    let source = if algorithm.eq_ignore_ascii_case("td3") {
        "TD3 paper".to_string()
    } else {
        format!("{} (published)", algorithm.to_uppercase())
    };
    format!("{source} ({version}, {seeds} seeds)")
}

/// Reads the reference files given on the command line: each a CSV file or a directory whose
/// `*.csv` files are all read (other files, such as a README, are ignored).
///
/// # Errors
/// A path that does not exist, a directory without CSV files, or any file [`Reference::read`]
/// rejects.
pub fn read_all(paths: &[PathBuf]) -> anyhow::Result<Vec<Reference>> {
    let mut refs = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read reference directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|e| e == "csv"))
                .collect();
            if files.is_empty() {
                bail!("{}: reference directory holds no .csv file", p.display());
            }
            files.sort();
            for f in files {
                refs.push(Reference::read(&f)?);
            }
        } else if p.exists() {
            refs.push(Reference::read(p)?);
        } else {
            bail!("{}: no such reference file or directory", p.display());
        }
    }
    Ok(refs)
}

/// A CSV field: quoted when it holds a comma or a quote (reference labels do).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A cell of the milestone table: `mean (min–max)`, plus `n=k` when `k` is not `all`.
fn cell(values: &[f64], all: usize) -> String {
    match mean_range(values) {
        None => "–".to_string(),
        Some((m, lo, hi)) if values.len() == all => format!("{m:.0} ({lo:.0}–{hi:.0})"),
        Some((m, lo, hi)) => format!("{m:.0} ({lo:.0}–{hi:.0}) n={}", values.len()),
    }
}

/// The milestone table: per task with a matching reference, for each of our variants and each
/// reference, the mean and range over seeds of the evaluation return at each milestone step
/// (those of [`MILESTONES`] that some run of the task evaluated at). Writes Markdown to `md`;
/// returns the CSV (`env,variant,step,seeds,mean,min,max`).
pub fn milestones(groups: &Groups<'_>, refs: &[Reference], md: &mut String) -> String {
    let mut csv = String::from("env,variant,step,seeds,mean,min,max\n");
    if refs.is_empty() {
        return csv;
    }
    let _ = writeln!(
        md,
        "\n## Returns at milestones beside published curves (mean over seeds, min–max)\n"
    );
    for env in groups.envs() {
        let matching: Vec<&Reference> = refs.iter().filter(|r| r.matches(&env)).collect();
        if matching.is_empty() {
            let _ = writeln!(md, "{env}: no reference curve for this task.\n");
            continue;
        }
        let task_groups: Vec<(&String, &Vec<&RunData>)> = groups
            .all
            .iter()
            .filter(|(k, _)| k.0 == env)
            .map(|(k, g)| (&k.1, g))
            .collect();
        let at = |g: &[&RunData], step: u64| -> Vec<f64> {
            g.iter()
                .filter_map(|r| r.evals.iter().find(|e| e.step == step).map(|e| e.mean))
                .collect()
        };
        let steps: Vec<u64> = MILESTONES
            .into_iter()
            .filter(|&s| task_groups.iter().any(|(_, g)| !at(g, s).is_empty()))
            .collect();
        if steps.is_empty() {
            let _ = writeln!(
                md,
                "{env}: no run evaluated at {} steps.\n",
                MILESTONES.map(|s| s.to_string()).join(", ")
            );
            continue;
        }
        let _ = writeln!(md, "### {env}\n");
        let head: Vec<String> = steps.iter().map(|s| format!("{}k", s / 1000)).collect();
        let _ = writeln!(md, "| variant | seeds | {} |", head.join(" | "));
        let _ = writeln!(md, "|---|---|{}", "---|".repeat(steps.len()));
        for (label, g) in &task_groups {
            let cells: Vec<String> = steps.iter().map(|&s| cell(&at(g, s), g.len())).collect();
            let _ = writeln!(md, "| {label} | {} | {} |", g.len(), cells.join(" | "));
            for &s in &steps {
                let v = at(g, s);
                if let Some((m, lo, hi)) = mean_range(&v) {
                    let label = csv_field(label);
                    let _ = writeln!(csv, "{env},{label},{s},{},{m},{lo},{hi}", v.len());
                }
            }
        }
        for r in matching {
            let cells: Vec<String> = steps
                .iter()
                .map(|&s| {
                    let i = r.steps.binary_search(&s).ok();
                    cell(i.map_or(&[][..], |i| &r.returns[i]), r.seeds())
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                r.label,
                r.seeds(),
                cells.join(" | ")
            );
            for &s in &steps {
                if let Some((m, lo, hi)) = r.at(s) {
                    let label = csv_field(&r.label);
                    let _ = writeln!(csv, "{env},{label},{s},{},{m},{lo},{hi}", r.seeds());
                }
            }
        }
        let _ = writeln!(md);
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "step,seed0,seed1,seed2,mean,min,max\n\
                         0,1.00,2.00,6.00,3.00,1.00,6.00\n\
                         100000,10.50,-4.50,30.00,12.00,-4.50,30.00\n";

    fn parse(name: &str, text: &str) -> anyhow::Result<Reference> {
        Reference::parse(Path::new(name), text)
    }

    fn err(name: &str, text: &str) -> String {
        format!("{:#}", parse(name, text).unwrap_err())
    }

    #[test]
    fn parses_a_small_file() {
        let r = parse("refs/td3-Hopper-v1.csv", SMALL).unwrap();
        assert_eq!(r.robot, "Hopper");
        assert_eq!(r.label, "TD3 paper (v1, 3 seeds)");
        assert_eq!(r.steps, [0, 100_000]);
        assert_eq!(r.returns, [vec![1.0, 2.0, 6.0], vec![10.5, -4.5, 30.0]]);
        assert_eq!(r.at(100_000), Some((12.0, -4.5, 30.0)));
        assert_eq!(r.at(50_000), None);
        assert_eq!(
            r.band(),
            [(0.0, 3.0, 1.0, 6.0), (100_000.0, 12.0, -4.5, 30.0)]
        );
        assert!(r.matches("Hopper-v3") && !r.matches("HalfCheetah-v3"));
        // The summary columns are optional.
        let bare = parse("sac-Ant-v2.csv", "step,seed0\n0,5\n10,7\n").unwrap();
        assert_eq!(bare.label, "SAC (published) (v2, 1 seeds)");
        assert!(bare.matches("Ant-v3") && bare.matches("Ant-v4"));
    }

    #[test]
    fn malformed_rows_name_the_file_and_line() {
        let f = "td3-Hopper-v1.csv";
        let cases = [
            (
                "step,seed0,seed1\n0,1,2\n5,1\n",
                "td3-Hopper-v1.csv:3: 2 fields, the header has 3",
            ),
            (
                "step,seed0,seed1\n0,1,2\n5,1,x\n",
                "td3-Hopper-v1.csv:3: seed1 \"x\" is not a finite number",
            ),
            (
                "step,seed0,seed1\n0,1,2\n\n5,1,NaN\n",
                "td3-Hopper-v1.csv:4: seed1 \"NaN\" is not a finite number",
            ),
            (
                "step,seed0\n0,1\n-5,1\n",
                "td3-Hopper-v1.csv:3: step \"-5\" is not a whole number",
            ),
            (
                "step,seed0\n0,1\n0,1\n",
                "td3-Hopper-v1.csv:3: step 0 does not increase",
            ),
            (
                "step,seed0,seed1,mean,min,max\n0,1,3,2,1,3\n5,1,3,2.5,1,3\n",
                "td3-Hopper-v1.csv:3: mean/min/max 2.5/1/3 disagree with the seeds (2.000/1/3)",
            ),
            (
                "steps,seed0\n0,1\n",
                "td3-Hopper-v1.csv:1: unexpected header",
            ),
            ("step,mean\n0,1\n", "td3-Hopper-v1.csv:1: unexpected header"),
            (
                "step,seed0\n",
                "td3-Hopper-v1.csv: no rows after the header",
            ),
            ("", "td3-Hopper-v1.csv: empty file"),
        ];
        for (text, want) in cases {
            let e = err(f, text);
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn file_names_must_name_a_known_task() {
        let e = err("td3-Hoper-v1.csv", SMALL);
        assert!(
            e.starts_with("td3-Hoper-v1.csv: unknown task \"Hoper\""),
            "{e}"
        );
        for name in [
            "hopper.csv",
            "td3-Hopper.csv",
            "td3-Hopper-vx.csv",
            "Hopper-v1.txt",
        ] {
            let e = err(name, SMALL);
            assert!(e.contains("cannot tell the task from the file name"), "{e}");
        }
        let missing = read_all(&[PathBuf::from("/nonexistent/td3-Hopper-v1.csv")]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "/nonexistent/td3-Hopper-v1.csv: no such reference file or directory"
        );
    }

    /// The shipped curves agree with the headline values the TD3 paper's curves give at 100k
    /// and 1M steps (mean over the 10 seeds, min–max), typed in here from the published table;
    /// and Tianshou's SAC curve with its README's headline (12 138.8 at 10⁶ steps) and its
    /// source file's row at 200 000 (190 000 of its own steps).
    #[test]
    fn shipped_curves_agree_with_published_headline_values() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/reference");
        let all = read_all(&[dir]).unwrap();
        let (refs, sac): (Vec<Reference>, Vec<Reference>) = all
            .into_iter()
            .partition(|r| r.label.starts_with("TD3 paper"));
        let robots: Vec<&str> = refs.iter().map(|r| r.robot.as_str()).collect();
        assert_eq!(robots, ["Ant", "HalfCheetah", "Hopper", "Walker2d"]);
        let [sac] = &sac[..] else {
            panic!("one SAC reference: {sac:?}")
        };
        assert_eq!((sac.robot.as_str(), sac.seeds()), ("HalfCheetah", 10));
        assert_eq!(sac.label, "SAC (published) (v3, 10 seeds)");
        assert_eq!((sac.steps[0], sac.steps.len()), (10_000, 199));
        let (m, lo, hi) = sac.at(200_000).unwrap();
        assert!(
            (m - 7877.4).abs() <= 0.5 && (lo - 6107.8).abs() <= 0.5 && (hi - 9079.0).abs() <= 0.5
        );
        assert!((sac.at(1_000_000).unwrap().0 - 12138.8).abs() <= 0.5);
        let want = [
            ("HalfCheetah", 100_000, (5514.0, 4542.0, 6355.0)),
            ("HalfCheetah", 1_000_000, (9567.0, 8110.0, 10526.0)),
            ("Hopper", 100_000, (659.0, 25.0, 2790.0)),
            ("Hopper", 200_000, (2441.0, 903.0, 3290.0)),
            ("Walker2d", 500_000, (4196.0, 3301.0, 5000.0)),
        ];
        for (robot, step, (m, lo, hi)) in want {
            let r = refs.iter().find(|r| r.robot == robot).unwrap();
            assert_eq!(r.seeds(), 10);
            assert_eq!(r.steps.len(), 201);
            let (gm, glo, ghi) = r.at(step).unwrap();
            assert!(
                (gm - m).abs() <= 0.5 && (glo - lo).abs() <= 0.5 && (ghi - hi).abs() <= 0.5,
                "{robot} at {step}: {gm} ({glo}–{ghi})"
            );
        }
    }
}
