//! `ds-td3 report RUNS... --out DIR`: the paper's tables and learning curves from run
//! directories.
//!
//! - Table 1: per task and algorithm, mean ± standard deviation over seeds of each run's final
//!   score (the mean of its last 10 evaluations). Standard deviations here are population ones
//!   (numpy's default).
//! - Table 2: live connections and training FLOPs (kernel counters at the last evaluation),
//!   relative to the dense member of the same family (TD3 or SAC) on the same task.
//! - Reach: the first evaluation step at which DS-TD3's (DS-SAC's) seed-mean curve reaches dense
//!   TD3's (SAC's) final score (the paper, for DS-TD3: 40–50% of the steps).
//! - Figures: per task, learning curves (mean over seeds, shaded ±std); when present, DS runs
//!   that differ only in the evolution period (the paper's Figure 3) and sparse runs that differ
//!   in λ (Figure 4).
//! - With `--reference`: published learning curves (CSV files such as the TD3 paper's in
//!   `data/reference/`) drawn as a min–max band with a dashed mean line behind the learning
//!   curves of the task on the same robot, and a table of every variant's mean and range over
//!   seeds at 100k, 200k, … steps beside the published ones (`milestones.csv`).
//!
//! A run is complete when it holds every evaluation its configuration schedules. Runs with a
//! missing, malformed or partial `evaluations.csv` are listed, never silently dropped: partial
//! runs appear in the curves but not in the tables.
//!
//! The stages: [`runs`] (reading and grouping run directories), [`reference`] (published
//! curves and the milestone table), [`tables`] (Table 1, Table 2 and the reach table) and
//! [`figures`].

mod figures;
mod reference;
mod runs;
mod tables;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;

use runs::Groups;

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
    /// Published learning curves to draw behind ours: a CSV file `<algorithm>-<Task>-v<N>.csv`
    /// (columns step, seed0, seed1, …) or a directory of them, e.g. data/reference; repeatable
    #[arg(long, value_name = "FILE|DIR")]
    pub reference: Vec<PathBuf>,
}

/// Runs `ds-td3 report`.
pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let dirs = runs::find_all(&args.runs)?;
    let refs = reference::read_all(&args.reference)?;
    create_out(&args.out, args.force)?;
    let mut runs = Vec::new();
    let mut unreadable = Vec::new();
    for d in &dirs {
        match runs::read_run(d) {
            Ok(r) => runs.push(r),
            Err(e) => unreadable.push(format!("{e:#}")),
        }
    }
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# ds-td3 report\n\n{} run directories read.\n",
        dirs.len()
    );
    let groups = Groups::new(&runs);
    let (table1, finals) = tables::final_returns(&groups, &mut md);
    let table2 = tables::flops(&groups, &mut md);
    let reach = tables::reach(&groups, &finals, &mut md);
    let milestones = reference::milestones(&groups, &refs, &mut md);
    let files = figures::write(&groups, &refs, &args.out, &mut md)?;
    let envs = groups.envs();
    let unmatched: Vec<String> = refs
        .iter()
        .filter(|r| !envs.iter().any(|e| r.matches(e)))
        .map(|r| r.path.display().to_string())
        .collect();
    if !unmatched.is_empty() {
        let _ = writeln!(
            md,
            "\nReference curves without a matching task among the runs: {}",
            unmatched.join(", ")
        );
    }
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
    let mut outputs = vec![
        ("report.md", &md),
        ("table1.csv", &table1),
        ("table2.csv", &table2),
        ("reach.csv", &reach),
    ];
    if !refs.is_empty() {
        outputs.push(("milestones.csv", &milestones));
    }
    for (name, text) in outputs {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    print!("{md}");
    for i in &incomplete {
        eprintln!("warning: incomplete run {i}");
    }
    println!(
        "\nwrote {} (report.md, table1.csv, table2.csv, reach.csv{} and {} images)",
        args.out.display(),
        if refs.is_empty() {
            ""
        } else {
            ", milestones.csv"
        },
        files.len()
    );
    Ok(())
}

/// Creates the output directory; an existing non-empty one only with `force`.
fn create_out(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists()
        && std::fs::read_dir(out)
            .with_context(|| out.display().to_string())?
            .next()
            .is_some()
        && !force
    {
        bail!(
            "{} already exists; pass --force to overwrite its files",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}
