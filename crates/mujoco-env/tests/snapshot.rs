//! A restored snapshot continues an episode bit for bit, for every task.

use mujoco_env::{EnvError, make};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// Runs `before` random steps, snapshots, runs `after` more; then restores the snapshot into a
/// fresh environment, replays the same actions, and demands identical results to the bit.
fn check(id: &str, before: usize, after: usize) {
    let mut env = make(id).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let (lo, hi) = (env.action_low().to_vec(), env.action_high().to_vec());
    let action = |rng: &mut StdRng| -> Vec<f64> {
        lo.iter()
            .zip(&hi)
            .map(|(&l, &h)| rng.random_range(l..h))
            .collect()
    };
    env.reset(Some(11));
    for _ in 0..before {
        let out = env.step(&action(&mut rng)).unwrap();
        if out.terminated || out.truncated {
            env.reset(None);
        }
    }
    let snap = env.snapshot();
    let actions: Vec<Vec<f64>> = (0..after).map(|_| action(&mut rng)).collect();
    let record = |env: &mut dyn mujoco_env::Env| {
        let mut out = Vec::new();
        for a in &actions {
            let s = env.step(a).unwrap();
            out.push((
                s.obs.clone(),
                s.reward.to_bits(),
                s.terminated,
                s.truncated,
                env.qpos().to_vec(),
                env.qvel().to_vec(),
            ));
            if s.terminated || s.truncated {
                out.push((
                    env.reset(None),
                    0,
                    false,
                    false,
                    env.qpos().to_vec(),
                    env.qvel().to_vec(),
                ));
            }
        }
        out
    };
    let original = record(env.as_mut());
    let mut fresh = make(id).unwrap();
    fresh.reset(Some(999));
    fresh.restore(&snap).unwrap();
    let replayed = record(fresh.as_mut());
    assert_eq!(original.len(), replayed.len(), "{id}");
    for (i, (a, b)) in original.iter().zip(&replayed).enumerate() {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.0), bits(&b.0), "{id}: obs at step {i}");
        assert_eq!(a.1, b.1, "{id}: reward at step {i}");
        assert_eq!((a.2, a.3), (b.2, b.3), "{id}: flags at step {i}");
        assert_eq!(bits(&a.4), bits(&b.4), "{id}: qpos at step {i}");
        assert_eq!(bits(&a.5), bits(&b.5), "{id}: qvel at step {i}");
    }
}

#[test]
fn pendulum_snapshot_continues_exactly() {
    check("Pendulum-v1", 150, 120);
}

#[cfg(feature = "mujoco")]
#[test]
fn locomotion_snapshots_continue_exactly() {
    // Long enough to cross episode ends (terminations, and the 1000-step limit for HalfCheetah).
    let locomotion = mujoco_env::known_ids()
        .into_iter()
        .filter(|&id| id != "Pendulum-v1");
    for id in locomotion {
        check(id, 990, 300);
    }
}

#[test]
fn mismatched_snapshots_are_errors() {
    let env = make("Pendulum-v1").unwrap();
    let snap = env.snapshot();
    #[cfg(feature = "mujoco")]
    {
        let mut hopper = make("Hopper-v3").unwrap();
        hopper.reset(Some(0));
        let before = hopper.qpos().to_vec();
        assert!(matches!(
            hopper.restore(&snap),
            Err(EnvError::SnapshotMismatch { .. })
        ));
        assert_eq!(
            hopper.qpos(),
            &before[..],
            "unchanged after a failed restore"
        );
    }
    let mut other = make("Pendulum-v1").unwrap();
    other.restore(&snap).unwrap();
    assert_eq!(snap.id(), "Pendulum-v1");
    let _ = EnvError::NotReset;
}
