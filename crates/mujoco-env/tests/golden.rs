//! Replays the 23 golden episodes (gymnasium 1.4.0 on MuJoCo 2.2.2, shipped as gzip fixtures)
//! and requires bit-exact qpos/qvel and every other quantity within the files' tolerances.
//!
//! Linked against another MuJoCo version (possible through `MUJOCO_DIR`), the trajectories
//! legitimately differ (contact results change between versions, and even rounding differs), so
//! only what does not depend on the integrator is checked there: the observation `mj_forward`
//! gives for each recorded reset state.
#![cfg(feature = "mujoco")]

use std::path::PathBuf;

use mujoco_env::golden::{Episode, Tolerances, replay};

#[path = "../../../tests/support/skip.rs"]
mod skip;

/// The MuJoCo version the golden files were recorded with, as `mj_version()` reports it.
const RECORDED_WITH: i32 = 222;

/// Whether the linked MuJoCo is the recorded one; if not, reports `what` as skipped.
fn linked_is_recorded_version(what: &str) -> bool {
    let v = mujoco_env::mujoco_version();
    if v != RECORDED_WITH {
        skip::skip(
            what,
            format_args!("linked MuJoCo is {v}, the golden files need {RECORDED_WITH}"),
        );
    }
    v == RECORDED_WITH
}

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    files
}

fn check(stem: &str) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{stem}.json.gz"));
    let mut episode = Episode::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if !linked_is_recorded_version(
        "mujoco-env golden exact replays (reset observations checked only)",
    ) {
        truncate(&mut episode);
        let report =
            replay(&episode, &Tolerances::GOLDEN).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert!(report.passed(), "{stem}: {report:#?}");
        return;
    }
    let report = replay(&episode, &Tolerances::GOLDEN).unwrap_or_else(|e| panic!("{stem}: {e}"));
    assert!(report.passed(), "{stem}: {report:#?}");
    assert_eq!(report.steps, episode.n_steps, "{stem}");
    assert_eq!(report.qpos.max_abs, 0.0, "{stem}");
    assert_eq!(report.qvel.max_abs, 0.0, "{stem}");
}

/// Keeps only the reset part of an episode.
fn truncate(ep: &mut Episode) {
    let s = &mut ep.steps;
    ep.n_steps = 0;
    s.action.clear();
    s.obs.clear();
    s.reward.clear();
    s.terminated.clear();
    s.truncated.clear();
    s.qpos.clear();
    s.qvel.clear();
    s.info.values_mut().for_each(Vec::clear);
}

#[test]
fn all_23_fixtures_are_present() {
    assert_eq!(fixtures().len(), 23);
}

macro_rules! golden {
    ($($name:ident => $stem:literal),* $(,)?) => {
        $( #[test] fn $name() { check($stem); } )*
    };
}

golden! {
    hopper_seed0 => "Hopper-v4-seed0",
    hopper_seed1 => "Hopper-v4-seed1",
    hopper_seed2 => "Hopper-v4-seed2",
    hopper_noterm => "Hopper-v4-noterm-seed0",
    walker2d_seed0 => "Walker2d-v4-seed0",
    walker2d_seed1 => "Walker2d-v4-seed1",
    walker2d_seed2 => "Walker2d-v4-seed2",
    walker2d_noterm => "Walker2d-v4-noterm-seed0",
    half_cheetah_seed0 => "HalfCheetah-v4-seed0",
    half_cheetah_seed1 => "HalfCheetah-v4-seed1",
    half_cheetah_seed2 => "HalfCheetah-v4-seed2",
    ant_seed0 => "Ant-v4-seed0",
    ant_seed1 => "Ant-v4-seed1",
    ant_seed2 => "Ant-v4-seed2",
    ant_noterm => "Ant-v4-noterm-seed0",
    ant_contact_seed0 => "Ant-v4-contact-seed0",
    ant_contact_seed1 => "Ant-v4-contact-seed1",
    ant_contact_seed2 => "Ant-v4-contact-seed2",
    ant_contact_noterm => "Ant-v4-contact-noterm-seed0",
    humanoid_seed0 => "Humanoid-v4-seed0",
    humanoid_seed1 => "Humanoid-v4-seed1",
    humanoid_seed2 => "Humanoid-v4-seed2",
    humanoid_noterm => "Humanoid-v4-noterm-seed0",
}

fn load(stem: &str) -> Episode {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{stem}.json.gz"));
    Episode::load(&path).unwrap()
}

#[test]
fn checker_detects_each_kind_of_deviation() {
    // The unmodified episode must pass for the single deviations below to be attributable.
    if !linked_is_recorded_version("mujoco-env checker_detects_each_kind_of_deviation") {
        return;
    }
    let tol = Tolerances::GOLDEN;
    let base = load("Hopper-v4-seed0");

    // One action changed in its last bit: the trajectory is no longer bit-identical.
    let mut ep = base.clone();
    let a = &mut ep.steps.action[3][1];
    *a = f64::from_bits(a.to_bits() + 1);
    let r = replay(&ep, &tol).unwrap();
    assert!(!r.passed() && r.qpos.failures > 0 && r.qpos.max_abs > 0.0);

    // A reward off by 1e-11 (10x the tolerance) and nothing else.
    let mut ep = base.clone();
    ep.steps.reward[5] += 1e-11;
    let r = replay(&ep, &tol).unwrap();
    assert!(!r.passed());
    assert_eq!(
        (r.reward.failures, r.qpos.failures, r.obs.failures),
        (1, 0, 0)
    );
    // ... while 1e-13 is within it.
    let mut ep = base.clone();
    ep.steps.reward[5] += 1e-13;
    assert!(replay(&ep, &tol).unwrap().passed());

    // An observation off by 1e-6 relative, an info value, a flag.
    let mut ep = base.clone();
    ep.steps.obs[2][0] *= 1.0 + 1e-6;
    assert_eq!(replay(&ep, &tol).unwrap().obs.failures, 1);
    let mut ep = base.clone();
    ep.steps.info.get_mut("x_velocity").unwrap()[0] += 1e-3;
    assert_eq!(replay(&ep, &tol).unwrap().info.failures, 1);
    let mut ep = base.clone();
    let last = ep.n_steps - 1;
    ep.steps.terminated[last] = !ep.steps.terminated[last];
    assert_eq!(replay(&ep, &tol).unwrap().flag_mismatches, 1);

    // Structural problems: a different noise setting is a different task.
    let mut ep = base.clone();
    ep.env_kwargs
        .insert("reset_noise_scale".into(), serde_json::json!(0.1));
    assert!(replay(&ep, &tol).is_err());
    let mut ep = base;
    ep.obs_dim = 12;
    assert!(!replay(&ep, &tol).unwrap().problems.is_empty());
}
