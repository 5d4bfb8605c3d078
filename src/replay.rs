//! `ds-td3 replay`: replays recorded gymnasium episodes (golden files) against our MuJoCo tasks.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use mujoco_env::golden::{Deviation, Episode, Report, Tolerances, Verdict, replay};

/// Options of `ds-td3 replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Golden files (format mujoco-golden/1: JSON, optionally gzip-compressed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn dev(name: &str, d: &Deviation) -> String {
    let mark = if d.failures == 0 { "" } else { "!" };
    format!("{name} {:.1e}{mark}", d.max_abs)
}

fn summary(r: &Report) -> String {
    [
        dev("qpos", &r.qpos),
        dev("qvel", &r.qvel),
        dev("reward", &r.reward),
        dev("obs", &r.obs),
        dev("info", &r.info),
    ]
    .join("  ")
}

/// Replays every file, prints one verdict line per file and fails if any file fails. A file
/// whose recorded reset quaternion cannot be replayed bit for bit (see
/// [`mujoco_env::golden::Verdict::QuaternionLimit`]) and deviates gets its own verdict, `LIMIT`,
/// and does not fail the command: it says nothing about the simulator.
pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let version = mujoco_env::mujoco_version();
    println!("MuJoCo mj_version() = {version}");
    if version != 222 {
        println!(
            "warning: golden files are recorded with MuJoCo 2.2.2; other versions change contact \
             results, so exact agreement is not expected"
        );
    }
    let tol = Tolerances::GOLDEN;
    println!(
        "tolerances: qpos/qvel bitwise; reward {:e} + {:e}·|r|; obs/info {:e} + {:e}·|r|; flags exact",
        tol.reward_abs, tol.reward_rel, tol.obs_abs, tol.obs_rel
    );
    let (mut passed, mut failed, mut limited) = (0usize, 0usize, 0usize);
    for path in &args.files {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let result = Episode::load(path).and_then(|ep| replay(&ep, &tol).map(|r| (ep, r)));
        match result {
            Err(e) => {
                failed += 1;
                println!("{name}: FAIL ({e})");
            }
            Ok((episode, report)) => {
                let exact = report.qpos.max_abs == 0.0 && report.qvel.max_abs == 0.0;
                let verdict = match report.verdict() {
                    Verdict::Passed => {
                        passed += 1;
                        "OK"
                    }
                    Verdict::QuaternionLimit => {
                        limited += 1;
                        "LIMIT"
                    }
                    Verdict::Failed => {
                        failed += 1;
                        "FAIL"
                    }
                };
                println!(
                    "{name}: {} as {}, {}/{} steps  max|Δ| {}  flags {}  {verdict}{}",
                    episode.task,
                    report.env_id,
                    report.steps,
                    episode.n_steps,
                    summary(&report),
                    if report.flag_mismatches == 0 {
                        "exact".to_string()
                    } else {
                        format!("{} wrong!", report.flag_mismatches)
                    },
                    if exact && report.steps == episode.n_steps {
                        " (qpos/qvel bit-exact)"
                    } else {
                        ""
                    },
                );
                for p in &report.problems {
                    println!("    {p}");
                }
                if report.verdict() == Verdict::QuaternionLimit {
                    for i in &report.unstable_reset_quaternions {
                        println!(
                            "    not bit-replayable: the reset quaternion qpos[{i}..{}] is not \
                             stable under MuJoCo 2.2.2's normalisation (n(n(q)) != n(q)), so \
                             this replay steps from other bits than the recording did; the \
                             deviations above follow from that, not from the simulator",
                            i + 4
                        );
                    }
                }
            }
        }
    }
    if limited > 0 {
        println!(
            "replay: {passed} passed, {failed} failed, {limited} not bit-replayable (reset \
             quaternion; see above)"
        );
    } else {
        println!("replay: {passed} passed, {failed} failed");
    }
    if failed > 0 {
        bail!("{failed} of {} golden files failed", args.files.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{ReplayArgs, run};
    use std::path::PathBuf;

    fn fixture(stem: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("crates/mujoco-env/tests/fixtures")
            .join(format!("{stem}.json.gz"))
    }

    #[test]
    fn passes_good_files_and_fails_if_any_file_fails() {
        // Two episodes that replay bit for bit on x86-64 and on aarch64 alike (Debian's arm64
        // MuJoCo rounds Hopper's and HalfCheetah's physics differently; see mujoco-env's golden
        // tests).
        let good = vec![
            fixture("Walker2d-v4-seed1"),
            fixture("Ant-v4-contact-seed2"),
        ];
        assert!(
            run(&ReplayArgs {
                files: good.clone()
            })
            .is_ok()
        );

        // A file that is not a golden episode, and a missing one, each count as a failure.
        let path = std::env::temp_dir().join(format!("ds-td3-replay-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"format": "mujoco-golden/1"}"#).unwrap();
        let files = vec![
            good[0].clone(),
            path.clone(),
            PathBuf::from("/nonexistent/golden.json"),
        ];
        let result = run(&ReplayArgs { files });
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            result.map_err(|e| e.to_string()),
            Err("2 of 3 golden files failed".to_string())
        );
    }
}
