//! Pendulum-v1 against hand-computed steps of Gym's classic-control rules, its bounds, its reset
//! distribution and its errors. Needs no MuJoCo.

use std::f64::consts::PI;

use mujoco_env::{EnvError, make};

#[test]
fn spaces_and_limits() {
    let env = make("Pendulum-v1").unwrap();
    assert_eq!((env.obs_dim(), env.action_dim()), (3, 1));
    assert_eq!(env.obs_low(), &[-1.0, -1.0, -8.0]);
    assert_eq!(env.obs_high(), &[1.0, 1.0, 8.0]);
    assert_eq!(
        (env.action_low(), env.action_high()),
        (&[-2.0][..], &[2.0][..])
    );
    assert_eq!(env.max_episode_steps(), 200);
    assert_eq!(env.dt(), 0.05);
}

#[test]
fn hand_computed_steps() {
    let mut env = make("Pendulum-v1").unwrap();
    // Upright at rest, full torque: theta_dot' = 3 u dt = 0.3, theta' = 0.3 * 0.05 = 0.015,
    // reward = -(0 + 0 + 0.001 * 4) on the state before the step.
    env.set_state(&[0.0], &[0.0]).unwrap();
    let s = env.step(&[2.0]).unwrap();
    assert!((s.reward + 0.004).abs() < 1e-15);
    assert!((env.qvel()[0] - 0.3).abs() < 1e-15 && (env.qpos()[0] - 0.015).abs() < 1e-15);
    assert!((s.obs[0] - 0.015f64.cos()).abs() < 1e-15 && (s.obs[1] - 0.015f64.sin()).abs() < 1e-15);
    assert_eq!(s.obs[2], env.qvel()[0]);
    assert!(!s.terminated && !s.truncated && s.info.is_empty());

    // Torque is clipped to 2 before use, in the dynamics and in the cost.
    env.set_state(&[0.0], &[0.0]).unwrap();
    let clipped = env.step(&[7.0]).unwrap();
    assert_eq!(clipped, s);

    // Horizontal, no torque: gravity gives 3 g / (2 l) * sin(pi/2) * dt = 15 * 0.05 = 0.75;
    // cost = (pi/2)^2 + 0.1 * 1^2 with theta_dot = 1 before the step.
    env.set_state(&[PI / 2.0], &[1.0]).unwrap();
    let s = env.step(&[0.0]).unwrap();
    assert!((env.qvel()[0] - 1.75).abs() < 1e-14);
    assert!((env.qpos()[0] - (PI / 2.0 + 1.75 * 0.05)).abs() < 1e-14);
    assert!((s.reward + (PI * PI / 4.0 + 0.1)).abs() < 1e-14);

    // Speed is clipped to 8: 8 + (15 + 6) * 0.05 = 9.05 -> 8.
    env.set_state(&[PI / 2.0], &[8.0]).unwrap();
    env.step(&[2.0]).unwrap();
    assert_eq!(env.qvel()[0], 8.0);

    // The angle cost wraps: theta = 2 pi costs as much as theta = 0.
    env.set_state(&[2.0 * PI], &[0.0]).unwrap();
    assert!(env.step(&[0.0]).unwrap().reward.abs() < 1e-24);
}

#[test]
fn rewards_within_closed_form_bounds_and_truncation_at_200() {
    let worst = -(PI * PI + 0.1 * 64.0 + 0.001 * 4.0);
    let mut env = make("Pendulum-v1").unwrap();
    env.reset(Some(1));
    for t in 1..=200 {
        let u = 2.0 * ((t as f64) * 0.7).sin();
        let s = env.step(&[u]).unwrap();
        assert!(
            s.reward <= 0.0 && s.reward >= worst,
            "step {t}: {}",
            s.reward
        );
        assert!(s.obs[2].abs() <= 8.0);
        assert!(((s.obs[0] * s.obs[0] + s.obs[1] * s.obs[1]) - 1.0).abs() < 1e-15);
        assert_eq!(s.truncated, t == 200);
    }
}

#[test]
fn reset_distribution() {
    let mut env = make("Pendulum-v1").unwrap();
    env.reset(Some(42));
    let n = 20_000;
    let (mut th, mut w) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let obs = env.reset(None);
        th.push(env.qpos()[0]);
        w.push(env.qvel()[0]);
        assert_eq!(obs[2], env.qvel()[0]);
    }
    let nf = n as f64;
    for (x, a) in [(&th, PI), (&w, 1.0)] {
        assert!(x.iter().all(|&v| (-a..a).contains(&v)));
        let mean = x.iter().sum::<f64>() / nf;
        let m2 = x.iter().map(|v| v * v).sum::<f64>() / nf;
        assert!(mean.abs() < 5.0 * a / (3.0 * nf).sqrt(), "mean {mean}");
        assert!(
            (m2 - a * a / 3.0).abs() < 5.0 * a * a * (4.0f64 / 45.0).sqrt() / nf.sqrt(),
            "E[x^2] {m2}"
        );
    }
    // Seeded resets repeat.
    let a = env.reset(Some(9));
    assert_eq!(env.reset(Some(9)), a);
}

#[test]
fn errors() {
    let mut env = make("Pendulum-v1").unwrap();
    assert_eq!(env.step(&[0.0]).err(), Some(EnvError::NotReset));
    env.set_state(&[0.3], &[-0.2]).unwrap();
    assert_eq!(
        env.step(&[0.0, 1.0]).err(),
        Some(EnvError::ActionLength {
            expected: 1,
            got: 2
        })
    );
    assert!(matches!(
        env.step(&[f64::NAN]),
        Err(EnvError::NonFiniteAction { index: 0, .. })
    ));
    assert!(matches!(
        env.step(&[f64::INFINITY]),
        Err(EnvError::NonFiniteAction { index: 0, .. })
    ));
    assert_eq!(
        env.set_state(&[0.0, 0.0], &[0.0]).err(),
        Some(EnvError::StateLength {
            nq: 1,
            nv: 1,
            got_q: 2,
            got_v: 1
        })
    );
    assert_eq!((env.qpos(), env.qvel()), (&[0.3][..], &[-0.2][..]));
    let err = make("CartPole-v1").err().unwrap();
    assert!(err.to_string().contains("Pendulum-v1"), "{err}");
}

#[cfg(not(feature = "mujoco"))]
#[path = "../../../tests/support/skip.rs"]
mod skip;

#[cfg(not(feature = "mujoco"))]
#[test]
fn mujoco_tasks_need_the_feature() {
    // The MuJoCo tests (golden.rs, locomotion_api.rs, part of snapshot.rs) are compiled out.
    skip::skip(
        "mujoco-env golden replays, locomotion API and locomotion snapshots",
        "built without the mujoco feature",
    );
    assert_eq!(
        make("Hopper-v3").err(),
        Some(EnvError::MujocoDisabled {
            id: "Hopper-v3".into()
        })
    );
    assert_eq!(mujoco_env::known_ids(), vec!["Pendulum-v1"]);
}
