//! The report's tables, each written both to the Markdown report and to its CSV file: final
//! returns (Table 1), connections and FLOPs (Table 2), and the steps DS-TD3 needs to reach dense
//! TD3's final return.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::runs::{Groups, RunData, complete, curve, mean_std};

/// The seed-mean final return of each group with complete runs, by `(task, label)`.
pub type Finals = BTreeMap<(String, String), f64>;

/// A table's heading and columns.
struct Table {
    /// The Markdown heading.
    heading: &'static str,
    /// The Markdown column names, separated by ` | `.
    columns: &'static str,
    /// The CSV header line.
    csv: &'static str,
}

impl Table {
    /// Writes the heading and column header to `md`; returns the CSV, its header line so far.
    fn start(&self, md: &mut String) -> String {
        let _ = writeln!(md, "{}\n", self.heading);
        let _ = writeln!(md, "| {} |", self.columns);
        let _ = writeln!(md, "|{}", "---|".repeat(self.columns.split(" | ").count()));
        format!("{}\n", self.csv)
    }
}

const TABLE1: Table = Table {
    heading: "## Table 1: final return (mean of the last 10 evaluations; mean ± std over seeds)",
    columns: "task | algorithm | seeds | final return",
    csv: "env,algorithm,seeds,final_mean,final_std",
};

const TABLE2: Table = Table {
    heading: "\n## Table 2: connections and training FLOPs (kernel counters)",
    columns: "task | algorithm | connections | steps | FLOPs | FLOPs vs dense",
    csv: "env,algorithm,connections,steps,flops,flops_vs_dense",
};

const REACH: Table = Table {
    heading: "\n## Steps to reach the dense baseline's final return (DS-TD3: TD3's; DS-SAC: SAC's)\n\n\
              The dense baseline has the run's replay buffer and TD targets where such a dense \
              group exists, else the paper's (plain buffer, one-step targets), and the run's width \
              where a dense group of it exists, else the paper's (256); so do Table 2's FLOP \
              ratios.",
    columns: "task | algorithm | dense final | reached at step | fraction of the run",
    csv: "env,algorithm,dense_final,reached_at_step,fraction_of_steps",
};

/// Table 1: writes its Markdown to `md`; returns its CSV and the groups' final returns.
pub fn final_returns(groups: &Groups<'_>, md: &mut String) -> (String, Finals) {
    let mut csv = TABLE1.start(md);
    let mut finals = Finals::new();
    for ((env, lab), g) in &groups.all {
        let scores: Vec<f64> = complete(g).iter().filter_map(|r| r.final_score()).collect();
        if scores.is_empty() {
            continue;
        }
        let (m, s) = mean_std(&scores);
        finals.insert((env.clone(), lab.clone()), m);
        let _ = writeln!(md, "| {env} | {lab} | {} | {m:.2} ± {s:.2} |", scores.len());
        let _ = writeln!(csv, "{env},{lab},{},{m},{s}", scores.len());
    }
    (csv, finals)
}

/// The mean over runs of the FLOPs at their last evaluation.
fn mean_final_flops(runs: &[&RunData]) -> f64 {
    let flops: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.evals.last())
        .map(|e| e.flops as f64)
        .collect();
    flops.iter().sum::<f64>() / flops.len() as f64
}

/// Table 2: writes its Markdown to `md`; returns its CSV.
pub fn flops(groups: &Groups<'_>, md: &mut String) -> String {
    let mut csv = TABLE2.start(md);
    for ((env, lab), g) in &groups.all {
        let c = complete(g);
        let Some(last) = c.first().and_then(|r| r.evals.last()) else {
            continue;
        };
        let mean_flops = mean_final_flops(&c);
        let ratio = groups.dense(&c[0].config).and_then(|d| {
            let e = d.first()?.evals.last()?;
            (e.step == last.step).then(|| mean_flops / mean_final_flops(&d))
        });
        let ratio_s = ratio.map_or("n/a".to_string(), |r| format!("{r:.3}"));
        let _ = writeln!(
            md,
            "| {env} | {lab} | {} | {} | {mean_flops:.3e} | {ratio_s} |",
            last.connections, last.step
        );
        let _ = writeln!(
            csv,
            "{env},{lab},{},{},{mean_flops},{}",
            last.connections,
            last.step,
            ratio.map_or(String::new(), |r| r.to_string())
        );
    }
    csv
}

/// The steps DS-TD3 (DS-SAC) needs to reach dense TD3's (SAC's) final return: writes the
/// Markdown to `md`; returns the CSV.
pub fn reach(groups: &Groups<'_>, finals: &Finals, md: &mut String) -> String {
    let mut csv = REACH.start(md);
    for ((env, lab), g) in &groups.all {
        let c = complete(g);
        let Some(first) = c.first() else { continue };
        if !first.config.algo.evolves() {
            continue;
        }
        let Some(&dense_final) = finals.get(&(env.clone(), groups.dense_label(&first.config)))
        else {
            continue;
        };
        let total = first.config.steps;
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
            csv,
            "{env},{lab},{dense_final},{},{frac}",
            hit.map_or(String::new(), |s| s.to_string())
        );
    }
    csv
}
