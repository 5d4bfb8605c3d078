//! The MuJoCo tasks' API: sizes and bounds, errors for bad input (state left unchanged), the time
//! limit, the termination switch, and the reset noise's support and moments.
#![cfg(feature = "mujoco")]

use mujoco_env::{EnvError, Options, make, make_with};

/// (id, nq, nv, nu, obs_dim, dt, action bound, qpos0)
type Row = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    f64,
    f64,
    &'static [f64],
);

/// Facts from Gym's task definitions (not from this crate).
const TASKS: [Row; 6] = [
    (
        "Hopper-v3",
        6,
        6,
        3,
        11,
        0.008,
        1.0,
        &[0.0, 1.25, 0.0, 0.0, 0.0, 0.0],
    ),
    (
        "Walker2d-v3",
        9,
        9,
        6,
        17,
        0.008,
        1.0,
        &[0.0, 1.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ),
    ("HalfCheetah-v3", 9, 9, 6, 17, 0.05, 1.0, &[0.0; 9]),
    (
        "Ant-v3",
        15,
        14,
        8,
        111,
        0.05,
        1.0,
        &[
            0.0, 0.0, 0.75, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ],
    ),
    (
        "Ant-v4",
        15,
        14,
        8,
        27,
        0.05,
        1.0,
        &[
            0.0, 0.0, 0.75, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ],
    ),
    (
        "Humanoid-v3",
        24,
        23,
        17,
        376,
        0.015,
        0.4,
        &[
            0.0, 0.0, 1.4, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        ],
    ),
];

#[test]
fn sizes_bounds_and_timing_match_gym() {
    for (id, nq, nv, nu, obs_dim, dt, bound, _) in TASKS {
        let mut env = make(id).unwrap();
        assert_eq!(env.id(), id);
        assert_eq!(env.action_dim(), nu, "{id}");
        assert_eq!(env.obs_dim(), obs_dim, "{id}");
        assert_eq!(env.dt(), dt, "{id}");
        assert_eq!(env.max_episode_steps(), 1000, "{id}");
        assert!(env.action_low().iter().all(|&l| l == -bound), "{id}");
        assert!(env.action_high().iter().all(|&h| h == bound), "{id}");
        assert!(
            env.obs_low().iter().all(|&l| l == f64::NEG_INFINITY) && env.obs_low().len() == obs_dim
        );
        assert!(
            env.obs_high().iter().all(|&h| h == f64::INFINITY) && env.obs_high().len() == obs_dim
        );
        let obs = env.reset(Some(3));
        assert_eq!(obs.len(), obs_dim, "{id}");
        assert_eq!((env.qpos().len(), env.qvel().len()), (nq, nv), "{id}");
        let step = env.step(&vec![0.0; nu]).unwrap();
        assert_eq!(step.obs.len(), obs_dim, "{id}");
        assert!(
            step.reward.is_finite() && step.obs.iter().all(|v| v.is_finite()),
            "{id}"
        );
    }
}

#[test]
fn unknown_id_lists_the_known_ones() {
    let err = make("Hopper-v9").err().expect("unknown id must fail");
    let msg = err.to_string();
    for id in [
        "Pendulum-v1",
        "Hopper-v3",
        "Walker2d-v3",
        "HalfCheetah-v3",
        "Ant-v3",
        "Ant-v4",
        "Humanoid-v3",
    ] {
        assert!(msg.contains(id), "{msg}");
    }
    assert!(matches!(err, EnvError::UnknownId { .. }));
}

#[test]
fn step_before_reset_is_an_error() {
    let mut env = make("Hopper-v3").unwrap();
    assert_eq!(env.step(&[0.0; 3]).err(), Some(EnvError::NotReset));
}

#[test]
fn bad_actions_are_errors_and_leave_the_state_unchanged() {
    for (id, _, _, nu, ..) in TASKS {
        let mut env = make(id).unwrap();
        let mut twin = make(id).unwrap();
        env.reset(Some(11));
        twin.reset(Some(11));
        env.step(&vec![0.3; nu]).unwrap();
        twin.step(&vec![0.3; nu]).unwrap();
        let (q, v) = (env.qpos().to_vec(), env.qvel().to_vec());
        let mut nan = vec![0.1; nu];
        nan[nu - 1] = f64::NAN;
        let mut inf = vec![0.1; nu];
        inf[0] = f64::NEG_INFINITY;
        assert_eq!(
            env.step(&vec![0.1; nu + 1]).err(),
            Some(EnvError::ActionLength {
                expected: nu,
                got: nu + 1
            })
        );
        assert_eq!(
            env.step(&[]).err(),
            Some(EnvError::ActionLength {
                expected: nu,
                got: 0
            })
        );
        assert!(
            matches!(env.step(&nan), Err(EnvError::NonFiniteAction { index, .. }) if index == nu - 1)
        );
        assert!(matches!(
            env.step(&inf),
            Err(EnvError::NonFiniteAction { index: 0, .. })
        ));
        assert_eq!(
            env.set_state(&q[1..], &v).err(),
            Some(EnvError::StateLength {
                nq: q.len(),
                nv: v.len(),
                got_q: q.len() - 1,
                got_v: v.len()
            })
        );
        let mut bad_q = q.clone();
        bad_q[0] = f64::NAN;
        assert_eq!(
            env.set_state(&bad_q, &v).err(),
            Some(EnvError::NonFiniteState)
        );
        assert_eq!(env.qpos(), &q[..], "{id}");
        assert_eq!(env.qvel(), &v[..], "{id}");
        // The next valid step matches an environment that never saw the bad input.
        let a = env.step(&vec![-0.2; nu]).unwrap();
        let b = twin.step(&vec![-0.2; nu]).unwrap();
        assert_eq!(a, b, "{id}");
    }
}

#[test]
fn truncation_at_1000_steps() {
    // HalfCheetah never terminates, so only the time limit ends its episodes.
    let mut env = make("HalfCheetah-v3").unwrap();
    env.reset(Some(0));
    for t in 1..=1001 {
        let step = env.step(&[0.5, -0.5, 0.5, -0.5, 0.5, -0.5]).unwrap();
        assert!(!step.terminated);
        assert_eq!(step.truncated, t >= 1000, "step {t}");
    }
    // set_state restarts the count.
    let (q, v) = (env.qpos().to_vec(), env.qvel().to_vec());
    env.set_state(&q, &v).unwrap();
    assert!(!env.step(&[0.0; 6]).unwrap().truncated);
}

#[test]
fn termination_switch() {
    // Dropping the Hopper from 0.5 m below its standing height makes it unhealthy (z <= 0.7).
    let mut q = vec![0.0, 0.6, 0.0, 0.0, 0.0, 0.0];
    let v = vec![0.0; 6];
    let mut on = make("Hopper-v3").unwrap();
    let mut off = make_with(
        "Hopper-v3",
        &Options {
            terminate_when_unhealthy: false,
        },
    )
    .unwrap();
    on.set_state(&q, &v).unwrap();
    off.set_state(&q, &v).unwrap();
    let a = on.step(&[0.0; 3]).unwrap();
    let b = off.step(&[0.0; 3]).unwrap();
    assert!(a.terminated && !b.terminated);
    // Same physics; the healthy reward (1.0) is paid on the terminating step only when
    // termination is on, and withheld while unhealthy when it is off.
    assert_eq!(a.obs, b.obs);
    // The two rewards are sums that differ by the 1.0 term, so their difference is 1.0 up to
    // the rounding of the sums.
    assert!(
        (a.reward - b.reward - 1.0).abs() < 1e-12,
        "{} vs {}",
        a.reward,
        b.reward
    );
    // Healthy start: both pay it.
    q[1] = 1.25;
    on.set_state(&q, &v).unwrap();
    off.set_state(&q, &v).unwrap();
    let (a, b) = (on.step(&[0.0; 3]).unwrap(), off.step(&[0.0; 3]).unwrap());
    assert!(!a.terminated && !b.terminated);
    assert_eq!(a.reward, b.reward);
}

#[test]
fn reset_is_reproducible_per_seed() {
    for (id, ..) in TASKS {
        let mut env = make(id).unwrap();
        let a = env.reset(Some(5));
        let b = env.reset(Some(6));
        let c = env.reset(Some(5));
        assert_eq!(a, c, "{id}");
        assert_ne!(a, b, "{id}");
        // None continues the stream.
        let d = env.reset(None);
        assert_ne!(c, d, "{id}");
    }
}

/// Noise samples `x` must lie in `[-a, a)` (up to the rounding of `qpos0 + noise`) and have the
/// moments of `U[-a, a)`: mean 0, E[x^2] = a^2/3. Both checked to 5 standard errors.
fn check_uniform(what: &str, x: &[f64], a: f64) {
    let n = x.len() as f64;
    let outside: Vec<(usize, f64)> = x
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, v)| !(v >= -a - 1e-15 && v < a + 1e-15))
        .take(5)
        .collect();
    assert!(
        outside.is_empty(),
        "{what}: out of [-{a}, {a}): {outside:?}"
    );
    let mean = x.iter().sum::<f64>() / n;
    let m2 = x.iter().map(|v| v * v).sum::<f64>() / n;
    let se_mean = a / (3.0 * n).sqrt();
    let se_m2 = a * a * (4.0f64 / 45.0).sqrt() / n.sqrt();
    assert!(mean.abs() < 5.0 * se_mean, "{what}: mean {mean}");
    assert!(
        (m2 - a * a / 3.0).abs() < 5.0 * se_m2,
        "{what}: E[x^2] {m2} vs {}",
        a * a / 3.0
    );
    // Spread over the whole interval: both ends are reached within 2% of a.
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    assert!(
        lo < -0.98 * a && hi > 0.98 * a,
        "{what}: range [{lo}, {hi}]"
    );
}

/// Samples of `s * N(0, 1)`: mean 0, E[x^2] = s^2, E[x^4] = 3 s^4, each to 5 standard errors.
fn check_normal(what: &str, x: &[f64], s: f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let m2 = x.iter().map(|v| v * v).sum::<f64>() / n;
    let m4 = x.iter().map(|v| v.powi(4)).sum::<f64>() / n;
    let s2 = s * s;
    assert!(mean.abs() < 5.0 * s / n.sqrt(), "{what}: mean {mean}");
    assert!(
        (m2 - s2).abs() < 5.0 * s2 * 2f64.sqrt() / n.sqrt(),
        "{what}: E[x^2] {m2}"
    );
    // Var(x^4) = (105 - 9) s^8.
    assert!(
        (m4 - 3.0 * s2 * s2).abs() < 5.0 * s2 * s2 * 96f64.sqrt() / n.sqrt(),
        "{what}: E[x^4] {m4}"
    );
}

#[test]
fn reset_noise_has_each_tasks_distribution() {
    // (id, qpos noise half-width, qvel noise: Ok(half-width) uniform / Err(scale) normal)
    let cases: [(&str, f64, Result<f64, f64>); 5] = [
        ("Hopper-v3", 0.005, Ok(0.005)),
        ("Walker2d-v3", 0.005, Ok(0.005)),
        ("HalfCheetah-v3", 0.1, Err(0.1)),
        ("Ant-v3", 0.1, Err(0.1)),
        ("Humanoid-v3", 0.01, Ok(0.01)),
    ];
    for (id, a, vel) in cases {
        let qpos0 = TASKS.iter().find(|r| r.0 == id).unwrap().7;
        let mut env = make(id).unwrap();
        env.reset(Some(2024));
        // A free joint's quaternion (qpos[3..7] of Ant and Humanoid) gets the noise too.
        // MuJoCo 2.2.2's mj_forward then normalises it in qpos (gymnasium's recorded reset
        // states are unit quaternions as well); MuJoCo 3 leaves it as drawn. A normalised
        // quaternion is checked for its bounds only, a raw one joins the other samples.
        let quat = if env.qpos().len() > 7 && qpos0[3] == 1.0 {
            3..7
        } else {
            0..0
        };
        let (mut dq, mut dv) = (Vec::new(), Vec::new());
        for _ in 0..1500 {
            env.reset(None);
            let q = env.qpos();
            let unit = !quat.is_empty()
                && (q[quat.clone()].iter().map(|c| c * c).sum::<f64>() - 1.0).abs() < 1e-14;
            for (i, (x, x0)) in q.iter().zip(qpos0).enumerate() {
                if !(unit && quat.contains(&i)) {
                    dq.push(x - x0);
                }
            }
            if unit {
                // (1 + n0, n1, n2, n3) / |.| with |n_i| < a: w > (1 - a) / |.|, |x, y, z| < a / (1 - a).
                assert!(
                    q[3] > 0.8 && q[4..7].iter().all(|c| c.abs() < a / (1.0 - a)),
                    "{id}: {q:?}"
                );
            }
            dv.extend_from_slice(env.qvel());
        }
        check_uniform(&format!("{id} qpos"), &dq, a);
        match vel {
            Ok(b) => check_uniform(&format!("{id} qvel"), &dv, b),
            Err(s) => check_normal(&format!("{id} qvel"), &dv, s),
        }
    }
}
