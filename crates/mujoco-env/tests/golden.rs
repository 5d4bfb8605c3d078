//! Replays the 23 golden episodes (gymnasium 1.4.0 on MuJoCo 2.2.2, shipped as gzip fixtures)
//! and requires bit-exact qpos/qvel and every other quantity within the files' tolerances.
//!
//! Linked against another MuJoCo version (possible through `MUJOCO_DIR`), the trajectories
//! legitimately differ (contact results change between versions, and even rounding differs), so
//! only what does not depend on the integrator is checked there: the observation `mj_forward`
//! gives for each recorded reset state.
//!
//! On aarch64 the MuJoCo 2.2.2 at hand (Debian's arm64 build) fuses multiply-adds where the
//! amd64 build that matches the recordings does not: compiled body masses already differ in the
//! last bit. There every value is checked to 1e-6 ([`Tolerances::ROUNDING`]) instead: rewards,
//! observations, info values, qpos and qvel, termination and truncation flags. Every episode
//! passes so over its whole length except HalfCheetah's, whose contacts amplify the rounding
//! chaotically (measured under qemu: within 1e-6 through step 40, beyond it by step 60, whole
//! units by step 100), so only its first [`HALF_CHEETAH_ROUNDING_HORIZON`] steps are checked.

#![cfg(feature = "mujoco")]

use std::path::PathBuf;

use mujoco_env::golden::{
    Episode, Tolerances, Verdict, normalize_quaternion, replay, unstable_reset_quaternions,
};

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

/// HalfCheetah steps replayed where the linked MuJoCo rounds differently from the recording's
/// (see the module documentation).
const HALF_CHEETAH_ROUNDING_HORIZON: usize = 40;

/// Whether the linked MuJoCo is known to round differently from the recording's build (and says
/// so, visibly).
fn rounds_differently(what: &str) -> bool {
    let differs = cfg!(target_arch = "aarch64");
    if differs {
        skip::note(
            what,
            format_args!(
                "aarch64: the MuJoCo build fuses multiply-adds, so bit-exact replays are an \
                 x86-64 property; every value checked to 1e-6 (HalfCheetah: its first \
                 {HALF_CHEETAH_ROUNDING_HORIZON} steps)"
            ),
        );
    }
    differs
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
        truncate_to(&mut episode, 0);
        let report =
            replay(&episode, &Tolerances::GOLDEN).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert!(report.passed(), "{stem}: {report:#?}");
        return;
    }
    if rounds_differently("mujoco-env golden exact replays") {
        if stem.starts_with("HalfCheetah") {
            truncate_to(&mut episode, HALF_CHEETAH_ROUNDING_HORIZON);
        }
        let report =
            replay(&episode, &Tolerances::ROUNDING).unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert!(report.passed(), "{stem}: {report:#?}");
        assert_eq!(report.steps, episode.n_steps, "{stem}");
        return;
    }
    let report = replay(&episode, &Tolerances::GOLDEN).unwrap_or_else(|e| panic!("{stem}: {e}"));
    assert!(report.passed(), "{stem}: {report:#?}");
    assert_eq!(report.steps, episode.n_steps, "{stem}");
    assert_eq!(report.qpos.max_abs, 0.0, "{stem}");
    assert_eq!(report.qvel.max_abs, 0.0, "{stem}");
}

/// Keeps the reset and the first `k` steps of an episode.
fn truncate_to(ep: &mut Episode, k: usize) {
    let k = k.min(ep.n_steps);
    let s = &mut ep.steps;
    ep.n_steps = k;
    s.action.truncate(k);
    s.obs.truncate(k);
    s.reward.truncate(k);
    s.terminated.truncate(k);
    s.truncated.truncate(k);
    s.qpos.truncate(k);
    s.qvel.truncate(k);
    s.info.values_mut().for_each(|v| v.truncate(k));
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
    if rounds_differently("mujoco-env checker_detects_each_kind_of_deviation (skipped)") {
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

/// Reset quaternions (w, x, y, z) of the kind the Ant's reset noise draws (1, 0, 0, 0 plus
/// uniform noise of ±0.1), chosen by what MuJoCo 2.2.2's normalisation `n` does to the
/// quaternion a recording holds, `q₁ = n(q)`: for `RECORDED_NOT_FIXED`, `n(q₁) != q₁` but
/// `n(n(q₁)) == n(q₁)`; for `UNSTABLE`, `n(n(q₁)) != n(q₁)`.
const RECORDED_NOT_FIXED: [f64; 4] = [
    f64::from_bits(0x3fef_f885_5635_71f3),
    -f64::from_bits(0x3f84_b03e_e7d2_2ff0),
    f64::from_bits(0x3f9f_0bd6_701e_3f10),
    f64::from_bits(0x3fad_90b5_9c49_9474),
];
const UNSTABLE: [f64; 4] = [
    f64::from_bits(0x3ff0_b570_a596_dc6c),
    f64::from_bits(0x3fa5_a043_f99c_386c),
    f64::from_bits(0x3fb6_5883_9963_e096),
    -f64::from_bits(0x3f8f_e7ac_4c67_a610),
];

fn bits(q: &[f64]) -> Vec<u64> {
    q.iter().map(|x| x.to_bits()).collect()
}

/// `normalize_quaternion` against MuJoCo itself: the quaternion `set_state` (which calls
/// `mj_forward`) leaves in `qpos`.
#[test]
fn quaternion_normalisation_is_mujoco_222s() {
    assert_eq!(
        normalize_quaternion([0.0, 1e-16, 0.0, 0.0]),
        [1.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        normalize_quaternion([2.0, 0.0, 0.0, 0.0]),
        [1.0, 0.0, 0.0, 0.0]
    );
    if !linked_is_recorded_version("quaternion normalisation against MuJoCo") {
        return;
    }
    let humanoid = load("Humanoid-v4-seed2").reset.qpos;
    let cases = [
        RECORDED_NOT_FIXED,
        UNSTABLE,
        normalize_quaternion(UNSTABLE),
        [humanoid[3], humanoid[4], humanoid[5], humanoid[6]],
        [0.3, -0.2, 0.9, 0.1],
    ];
    let mut env = mujoco_env::make("Ant-v4").unwrap();
    let ep = load("Ant-v4-seed0");
    for q in cases {
        let mut qpos = ep.reset.qpos.clone();
        qpos[3..7].copy_from_slice(&q);
        env.set_state(&qpos, &ep.reset.qvel).unwrap();
        assert_eq!(
            bits(&env.qpos()[3..7]),
            bits(&normalize_quaternion(q)),
            "{q:?}"
        );
    }
    // The chosen quaternions are what their names say.
    let q1 = normalize_quaternion(RECORDED_NOT_FIXED);
    let q2 = normalize_quaternion(q1);
    assert_ne!(bits(&q2), bits(&q1));
    assert_eq!(bits(&normalize_quaternion(q2)), bits(&q2));
    let q2 = normalize_quaternion(normalize_quaternion(UNSTABLE));
    assert_ne!(bits(&normalize_quaternion(q2)), bits(&q2));
}

/// The template's episode recorded anew with this crate from its reset state with quaternion
/// `q` (see [`Episode::record_from`]), `n` steps long.
fn record(template: &Episode, q: [f64; 4], n: usize) -> Episode {
    let mut qpos = template.reset.qpos.clone();
    qpos[3..7].copy_from_slice(&q);
    template
        .record_from(&qpos, &template.reset.qvel, n)
        .unwrap()
}

/// An Ant episode recorded from a reset quaternion that is not stable under normalisation
/// replays with deviations, and the verdict says why; one whose recorded quaternion changes
/// under one more normalisation but not under two replays bit for bit (so the test is
/// `n(n(q)) != n(q)`, not `n(q) != q`). None of the shipped fixtures is affected, the
/// Humanoid's seed 2 (whose recorded quaternion is not a fixed point) included.
#[test]
fn an_unstable_reset_quaternion_is_its_own_verdict() {
    for path in fixtures() {
        let ep = Episode::load(&path).unwrap();
        let (id, _) = ep.env_spec().unwrap();
        assert!(
            unstable_reset_quaternions(id, &ep.reset.qpos).is_empty(),
            "{}",
            path.display()
        );
    }
    let humanoid = load("Humanoid-v4-seed2").reset.qpos;
    assert_ne!(
        bits(&normalize_quaternion([
            humanoid[3],
            humanoid[4],
            humanoid[5],
            humanoid[6]
        ])),
        bits(&humanoid[3..7])
    );
    // Under other MuJoCo versions mj_forward leaves qpos alone, and the limit does not arise.
    if !linked_is_recorded_version("replay verdicts at the quaternion limit") {
        return;
    }
    let template = load("Ant-v4-noterm-seed0");
    let tol = Tolerances::GOLDEN;

    let ep = record(&template, UNSTABLE, 50);
    assert_eq!(unstable_reset_quaternions("Ant-v4", &ep.reset.qpos), [3]);
    let r = replay(&ep, &tol).unwrap();
    assert!(r.qpos.failures > 0 && r.problems.is_empty(), "{r:#?}");
    assert_eq!(r.unstable_reset_quaternions, [3]);
    assert_eq!(r.verdict(), Verdict::QuaternionLimit);
    // A structural problem still fails, whatever the quaternion.
    let mut bad = ep.clone();
    bad.obs_dim += 1;
    assert_eq!(replay(&bad, &tol).unwrap().verdict(), Verdict::Failed);

    let ep = record(&template, RECORDED_NOT_FIXED, 50);
    let q1 = &ep.reset.qpos[3..7];
    assert_ne!(
        bits(&normalize_quaternion([q1[0], q1[1], q1[2], q1[3]])),
        bits(q1)
    );
    assert!(unstable_reset_quaternions("Ant-v4", &ep.reset.qpos).is_empty());
    let r = replay(&ep, &tol).unwrap();
    assert_eq!(r.verdict(), Verdict::Passed, "{r:#?}");
    assert_eq!((r.qpos.max_abs, r.qvel.max_abs), (0.0, 0.0));

    // An ordinary deviation on an unaffected file stays a failure.
    let mut ep = ep;
    ep.steps.reward[3] += 1.0;
    assert_eq!(replay(&ep, &tol).unwrap().verdict(), Verdict::Failed);
}
