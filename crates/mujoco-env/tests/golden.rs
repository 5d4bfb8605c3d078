//! Replays the 23 golden episodes (gymnasium 1.4.0 on MuJoCo 2.2.2, shipped as gzip fixtures)
//! and requires bit-exact qpos/qvel and every other quantity within the files' tolerances.
#![cfg(feature = "mujoco")]

use std::path::PathBuf;

use mujoco_env::golden::{Episode, Tolerances, replay};

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
    let episode = Episode::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let report = replay(&episode, &Tolerances::GOLDEN).unwrap_or_else(|e| panic!("{stem}: {e}"));
    assert!(report.passed(), "{stem}: {report:#?}");
    assert_eq!(report.steps, episode.n_steps, "{stem}");
    assert_eq!(report.qpos.max_abs, 0.0, "{stem}");
    assert_eq!(report.qvel.max_abs, 0.0, "{stem}");
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
