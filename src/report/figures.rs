//! The report's figures, per task: learning curves of every group, DS-TD3's evolution schedules
//! (the paper's Figure 3) and sparsity levels (Figure 4) when the runs include them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use td3::Config;

use super::reference::Reference;
use super::runs::{Groups, RunData, curve};
use crate::plot::{self, Band, Series};

/// Draws every task's figures into `out`, lists them in `md`, and returns the files written.
/// The learning-curve figure of a task also shows the published curves in `refs` that match it.
pub fn write(
    groups: &Groups<'_>,
    refs: &[Reference],
    out: &Path,
    md: &mut String,
) -> anyhow::Result<Vec<PathBuf>> {
    let _ = writeln!(md, "\n## Figures\n");
    let mut files = Vec::new();
    for env in &groups.envs() {
        let bands: Vec<Band> = refs
            .iter()
            .filter(|r| r.matches(env))
            .map(|r| Band {
                label: r.label.clone(),
                points: r.band(),
            })
            .collect();
        let mut figure = |name: &str, title: String, s: Vec<Series>| -> anyhow::Result<()> {
            let stem = out.join(format!("{name}-{env}"));
            let behind = if name == "curves" { &bands[..] } else { &[] };
            plot::curves(&stem, &title, "mean evaluation return", &s, behind)?;
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
            series(groups, env, &|c| Some(groups.label(c))),
        )?;
        // Figure 3: DS runs at the paper's λ and η that differ in the evolution period.
        let ds_periods = series(groups, env, &|c| {
            let paper = Config::paper(&c.env, c.algo);
            let same = (c.lambda1, c.lambda2, c.evolution_fraction, c.hidden)
                == (
                    paper.lambda1,
                    paper.lambda2,
                    paper.evolution_fraction,
                    paper.hidden,
                );
            (c.algo.evolves() && same)
                .then(|| format!("{}, e = {}", c.algo.label(), c.evolution_period))
        });
        if ds_periods.len() > 1 {
            figure(
                "schedule",
                format!("{env}: evolution schedules"),
                ds_periods,
            )?;
        }
        // Figure 4: sparse runs that differ in λ (the sparsity level).
        let levels = series(groups, env, &|c| {
            c.algo
                .is_sparse()
                .then(|| format!("{}, λ1 = {}, λ2 = {}", c.algo, c.lambda1, c.lambda2))
        });
        if levels.len() > 1
            && levels
                .iter()
                .map(|s| s.label.split(',').nth(1).map(str::to_string))
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        {
            figure("sparsity", format!("{env}: sparsity levels"), levels)?;
        }
    }
    Ok(files)
}

/// The seed-mean curves of a task's runs (those with evaluations), one per label `pick` gives
/// (runs it gives none are left out).
fn series(groups: &Groups<'_>, env: &str, pick: &dyn Fn(&Config) -> Option<String>) -> Vec<Series> {
    let mut s: BTreeMap<String, Vec<&RunData>> = BTreeMap::new();
    for (_, g) in groups.all.iter().filter(|(k, _)| k.0 == env) {
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
}
