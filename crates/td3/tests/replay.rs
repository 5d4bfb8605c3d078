//! The replay buffer, which stores each observation once, against a straightforward reference
//! written here that stores `s` and `s'` of every transition separately (as the buffer did
//! before): the same batches bit for bit over many random pushes with terminal and truncated
//! episode ends, unrelated transitions, signed zeros, ring wraps and checkpoint round trips; the
//! memory it takes; the half-precision storage types, their precision and training runs with
//! them; and the checkpoint format's version.

use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use td3::{Algo, Batch, BufferDtype, Config, Event, ReplayBuffer, Trainer, checkpoint};

/// The reference: two copies of every observation, values rounded as `round` does, sampled as
/// the buffer samples (one uniform slot per batch column).
struct TwoCopies {
    capacity: usize,
    od: usize,
    ad: usize,
    next: usize,
    len: usize,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_obs: Vec<f32>,
    not_done: Vec<f32>,
    round: fn(f64) -> f32,
}

impl TwoCopies {
    fn new(capacity: usize, od: usize, ad: usize, round: fn(f64) -> f32) -> Self {
        Self {
            capacity,
            od,
            ad,
            next: 0,
            len: 0,
            obs: vec![0.0; capacity * od],
            actions: vec![0.0; capacity * ad],
            rewards: vec![0.0; capacity],
            next_obs: vec![0.0; capacity * od],
            not_done: vec![0.0; capacity],
            round,
        }
    }

    fn push(&mut self, s: &[f64], a: &[f64], r: f64, s2: &[f64], terminated: bool) {
        let (i, od, ad) = (self.next, self.od, self.ad);
        let round = self.round;
        let put = |dst: &mut [f32], src: &[f64]| {
            dst.iter_mut().zip(src).for_each(|(d, &v)| *d = round(v));
        };
        put(&mut self.obs[i * od..(i + 1) * od], s);
        put(&mut self.next_obs[i * od..(i + 1) * od], s2);
        put(&mut self.actions[i * ad..(i + 1) * ad], a);
        self.rewards[i] = r as f32;
        self.not_done[i] = if terminated { 0.0 } else { 1.0 };
        self.next = (i + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// (s, a, r, s', not_done) of each sampled column, as bits.
    fn sample(&self, size: usize, rng: &mut StdRng) -> Vec<Vec<u32>> {
        let (od, ad) = (self.od, self.ad);
        (0..size)
            .map(|_| {
                let i = rng.random_range(0..self.len);
                let mut col: Vec<u32> = Vec::new();
                col.extend(self.obs[i * od..(i + 1) * od].iter().map(|v| v.to_bits()));
                col.extend(
                    self.actions[i * ad..(i + 1) * ad]
                        .iter()
                        .map(|v| v.to_bits()),
                );
                col.push(self.rewards[i].to_bits());
                col.extend(
                    self.next_obs[i * od..(i + 1) * od]
                        .iter()
                        .map(|v| v.to_bits()),
                );
                col.push(self.not_done[i].to_bits());
                col
            })
            .collect()
    }

    /// Transitions stored whose `s'` is not the `s` of the transition stored after them (the
    /// episode ends the buffer has to keep an observation aside for), the newest excluded.
    fn breaks(&self) -> usize {
        let od = self.od;
        (1..self.len)
            .filter(|&age| {
                let newer = (self.next + self.capacity - age) % self.capacity;
                let older = (newer + self.capacity - 1) % self.capacity;
                let s2 = &self.next_obs[older * od..(older + 1) * od];
                let s = &self.obs[newer * od..(newer + 1) * od];
                s2.iter().zip(s).any(|(a, b)| a.to_bits() != b.to_bits())
            })
            .count()
    }
}

/// The buffer's batch in the reference's column format.
fn columns(batch: &Batch, size: usize, od: usize, ad: usize) -> Vec<Vec<u32>> {
    (0..size)
        .map(|b| {
            let mut col: Vec<u32> = Vec::new();
            col.extend((0..od).map(|f| batch.obs.get(f, b).to_bits()));
            col.extend((0..ad).map(|f| batch.actions.get(f, b).to_bits()));
            col.push(batch.rewards.get(0, b).to_bits());
            col.extend((0..od).map(|f| batch.next_obs.get(f, b).to_bits()));
            col.push(batch.not_done.get(0, b).to_bits());
            col
        })
        .collect()
}

fn round_f32(v: f64) -> f32 {
    v as f32
}

fn round_f16(v: f64) -> f32 {
    f16::from_f64(v).to_f32()
}

fn round_bf16(v: f64) -> f32 {
    bf16::from_f64(v).to_f32()
}

/// An observation drawn from a few kinds of values: ordinary, signed zeros, and values equal
/// after rounding to the stored type but not before.
fn observation(r: &mut StdRng, od: usize) -> Vec<f64> {
    (0..od)
        .map(|_| match r.random_range(0..10) {
            0 => 0.0,
            1 => -0.0,
            2 => 1.0 + r.random_range(0.0..1e-9),
            _ => r.random_range(-50.0..50.0),
        })
        .collect()
}

/// Drives the buffer and the reference through `pushes` transitions of an episodic task,
/// comparing batches (about every third push) and round-tripping the buffer through its
/// checkpoint encoding now and then.
fn compare(capacity: usize, dtype: BufferDtype, round: fn(f64) -> f32, seed: u64, pushes: usize) {
    let (od, ad) = (3, 2);
    let mut r = StdRng::seed_from_u64(seed);
    let mut buf = ReplayBuffer::with_dtype(capacity, od, ad, dtype).unwrap();
    let mut reference = TwoCopies::new(capacity, od, ad, round);
    let mut s = observation(&mut r, od);
    let mut batch = Batch::default();
    for t in 0..pushes {
        let a: Vec<f64> = (0..ad).map(|_| r.random_range(-1.0..1.0)).collect();
        let reward = r.random_range(-5.0..5.0);
        let mut s2 = observation(&mut r, od);
        let end = r.random_range(0..100);
        // 6%: a terminal state; 6%: a time limit; 2%: the next push is unrelated.
        let terminated = end < 6;
        let truncated = (6..12).contains(&end);
        let unrelated = (12..14).contains(&end);
        if end == 14 {
            // The reset observation equals the final one after rounding (nothing kept aside).
            s2 = s.clone();
        }
        buf.push(&s, &a, reward, &s2, terminated).unwrap();
        reference.push(&s, &a, reward, &s2, terminated);
        s = if terminated || truncated || unrelated {
            match r.random_range(0..4) {
                // Occasionally the reset lands on the final observation exactly.
                0 => s2.clone(),
                // Or on one that differs only by the sign of a zero.
                1 => s2.iter().map(|&v| if v == 0.0 { -v } else { v }).collect(),
                _ => observation(&mut r, od),
            }
        } else {
            s2
        };

        assert_eq!(buf.len(), reference.len);
        assert_eq!(buf.not_done(), &reference.not_done[..reference.len]);
        assert!(
            buf.kept_aside() == reference.breaks(),
            "capacity {capacity}, push {t}: {} observations kept aside, {} episode ends stored",
            buf.kept_aside(),
            reference.breaks()
        );
        if r.random_range(0..3) == 0 {
            let size = r.random_range(1..40);
            let sample_seed = r.random();
            buf.sample(size, &mut StdRng::seed_from_u64(sample_seed), &mut batch)
                .unwrap();
            let want = reference.sample(size, &mut StdRng::seed_from_u64(sample_seed));
            assert!(
                columns(&batch, size, od, ad) == want,
                "capacity {capacity} {dtype}, push {t}: batches differ"
            );
        }
        if r.random_range(0..50) == 0 {
            // A checkpoint round trip continues the same buffer.
            let bytes = postcard::to_stdvec(&buf).unwrap();
            let restored: ReplayBuffer = postcard::from_bytes(&bytes).unwrap();
            assert!(restored == buf, "capacity {capacity}, push {t}: round trip");
            assert_eq!(restored.dtype(), dtype);
            buf = restored;
        }
    }
}

#[test]
fn each_observation_once_gives_the_two_copy_buffers_batches_bit_for_bit() {
    for (capacity, seed) in [(1, 1), (2, 2), (3, 3), (7, 4), (64, 5), (1000, 6)] {
        compare(capacity, BufferDtype::F32, round_f32, seed, 3_000);
    }
}

#[test]
fn half_precision_buffers_match_a_two_copy_buffer_of_the_same_type() {
    for (capacity, seed) in [(1, 11), (5, 12), (64, 13)] {
        compare(capacity, BufferDtype::F16, round_f16, seed, 1_500);
        compare(capacity, BufferDtype::Bf16, round_bf16, seed, 1_500);
    }
}

#[test]
fn half_precision_values_are_within_the_formats_precision_of_f32() {
    // f16: 11 significant bits, relative error at most 2⁻¹¹ in the normal range (from 2⁻¹⁴),
    // absolute error at most 2⁻²⁵ below it; bf16: 8 significant bits, 2⁻⁸, the range of f32.
    // (Compared with the f32 value, whose own rounding adds a hair: the 1 + 2⁻¹⁰.)
    let mut r = StdRng::seed_from_u64(7);
    for (dtype, rel, abs, max) in [
        (BufferDtype::F16, 2f64.powi(-11), 2f64.powi(-25), 65504.0f64),
        (BufferDtype::Bf16, 2f64.powi(-8), 0.0, 1e30),
    ] {
        let values: Vec<f64> = (0..4000)
            .map(|i| {
                let magnitude = 10f64.powf(r.random_range(-6.0..max.log10()));
                let v = if i % 2 == 0 { magnitude } else { -magnitude };
                v.clamp(-max, max)
            })
            .collect();
        let mut buf = ReplayBuffer::with_dtype(4000, 1, 1, dtype).unwrap();
        for &v in &values {
            buf.push(&[v], &[v], v, &[v], false).unwrap();
        }
        let mut batch = Batch::default();
        let mut rng = StdRng::seed_from_u64(1);
        buf.sample(4000, &mut rng, &mut batch).unwrap();
        for b in 0..4000 {
            // The reward is stored as f32 and identifies the transition.
            let exact = batch.rewards.get(0, b) as f64;
            for got in [
                batch.obs.get(0, b),
                batch.actions.get(0, b),
                batch.next_obs.get(0, b),
            ] {
                let err = (got as f64 - exact).abs();
                assert!(
                    err <= rel * (1.0 + 2f64.powi(-10)) * exact.abs() + abs,
                    "{dtype}: {exact} stored as {got}"
                );
            }
        }
    }
    // Beyond f16's range a value becomes infinite (bf16 keeps f32's range).
    let mut buf = ReplayBuffer::with_dtype(1, 1, 1, BufferDtype::F16).unwrap();
    buf.push(&[1e6], &[0.5], 0.0, &[-1e6], false).unwrap();
    let mut batch = Batch::default();
    buf.sample(1, &mut StdRng::seed_from_u64(1), &mut batch)
        .unwrap();
    assert_eq!(batch.obs.get(0, 0), f32::INFINITY);
    assert_eq!(batch.next_obs.get(0, 0), f32::NEG_INFINITY);
    assert_eq!(batch.actions.get(0, 0), 0.5);
}

#[test]
fn memory_is_one_copy_of_each_observation() {
    // Humanoid-v3: 376 observation and 17 action dimensions, 10⁶ transitions: one copy of each
    // observation and action (and the newest s'), f32 rewards, one bit per terminal flag.
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    let f32_bytes = ReplayBuffer::fixed_bytes(1_000_000, 376, 17, BufferDtype::F32);
    let f16_bytes = ReplayBuffer::fixed_bytes(1_000_000, 376, 17, BufferDtype::F16);
    let bf16_bytes = ReplayBuffer::fixed_bytes(1_000_000, 376, 17, BufferDtype::Bf16);
    assert_eq!(
        f32_bytes,
        4 * (1_000_000 * (376 + 17) + 376) + 4_000_000 + 125_000
    );
    assert_eq!(
        f16_bytes,
        2 * (1_000_000 * (376 + 17) + 376) + 4_000_000 + 125_000
    );
    assert_eq!(bf16_bytes, f16_bytes);
    assert!(gib(f32_bytes) <= 1.5, "{} GiB", gib(f32_bytes));
    assert!(gib(f16_bytes) <= 0.8, "{} GiB", gib(f16_bytes));

    // A buffer reports its fixed arrays, plus the kept-aside list as allocated.
    let mut buf = ReplayBuffer::with_dtype(1000, 11, 3, BufferDtype::F32).unwrap();
    assert_eq!(
        buf.bytes(),
        ReplayBuffer::fixed_bytes(1000, 11, 3, BufferDtype::F32)
    );
    assert_eq!(buf.bytes(), 4 * (1000 * 14 + 11) + 4000 + 8 * 16);
    assert_eq!(buf.bytes_per_episode_end(), 4 * 11 + 8);
    let s = [0.5; 11];
    buf.push(&s, &[0.0; 3], 1.0, &[1.5; 11], false).unwrap();
    buf.push(&s, &[0.0; 3], 1.0, &[1.5; 11], true).unwrap();
    assert_eq!(buf.kept_aside(), 1);
    assert!(buf.bytes() >= ReplayBuffer::fixed_bytes(1000, 11, 3, BufferDtype::F32) + 52);
}

#[test]
fn bad_input_is_an_error() {
    assert!(ReplayBuffer::with_dtype(0, 3, 1, BufferDtype::F16).is_err());
    assert!(ReplayBuffer::with_dtype(10, 0, 1, BufferDtype::F32).is_err());
    // Within the address space but far beyond any machine's memory: an error, not an abort.
    let err = ReplayBuffer::with_dtype(1 << 50, 376, 17, BufferDtype::F32)
        .expect_err("too large for memory");
    assert!(err.to_string().contains("does not fit in memory"), "{err}");
    let err =
        ReplayBuffer::with_dtype(usize::MAX / 2, 3, 1, BufferDtype::F32).expect_err("too large");
    assert!(err.to_string().contains("does not fit in memory"), "{err}");
    let mut buf = ReplayBuffer::with_dtype(10, 3, 1, BufferDtype::Bf16).unwrap();
    let mut batch = Batch::default();
    assert!(
        buf.sample(4, &mut StdRng::seed_from_u64(0), &mut batch)
            .is_err()
    );
    assert!(buf.push(&[0.0; 3], &[0.0], 0.0, &[0.0; 2], false).is_err());
    assert!(
        buf.push(&[0.0; 3], &[0.0; 2], 0.0, &[0.0; 3], false)
            .is_err()
    );
    for i in 0..5 {
        buf.push(&[i as f64; 3], &[0.0], 0.0, &[0.0; 3], false)
            .unwrap();
    }
    // Every prefix of a serialised buffer is rejected, none panics.
    let bytes = postcard::to_stdvec(&buf).unwrap();
    for n in 0..bytes.len() {
        assert!(postcard::from_bytes::<ReplayBuffer>(&bytes[..n]).is_err());
    }
}

/// A small DS run on Pendulum whose buffer wraps, storing `dtype`.
fn small_run(dtype: BufferDtype) -> Config {
    let mut c = Config::paper("Pendulum-v1", Algo::Ds);
    (c.steps, c.start_steps, c.eval_every, c.eval_episodes) = (700, 300, 350, 1);
    (c.hidden, c.lambda1, c.lambda2) = (32, 2.0, 8.0);
    (c.evolution_period, c.topology_freeze, c.batch_size) = (50, 0, 32);
    c.buffer_capacity = 450;
    c.buffer_dtype = dtype;
    c
}

fn no_events(_: Event<'_>) -> td3::Result<()> {
    Ok(())
}

fn never() -> bool {
    false
}

/// Serialised agent and buffer and the evaluation returns' bits of a run.
fn outcome(t: &Trainer) -> (Vec<u8>, Vec<u8>, Vec<u64>) {
    let returns = t
        .evaluations()
        .iter()
        .flat_map(|e| e.returns.iter().map(|r| r.to_bits()))
        .collect();
    (
        postcard::to_stdvec(t.agent()).unwrap(),
        postcard::to_stdvec(t.replay()).unwrap(),
        returns,
    )
}

#[test]
fn half_precision_runs_train_and_resume_exactly_with_their_type() {
    let dir = std::env::temp_dir().join(format!("td3-replay-dtype-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latest.ckpt");
    let mut f32_run = Trainer::new(small_run(BufferDtype::F32)).unwrap();
    f32_run.run_until(700, &mut no_events, &never).unwrap();
    for dtype in [BufferDtype::F16, BufferDtype::Bf16] {
        let config = small_run(dtype);
        let mut whole = Trainer::new(config.clone()).unwrap();
        whole.run_until(700, &mut no_events, &never).unwrap();
        assert_eq!(whole.replay().dtype(), dtype);
        assert!(whole.evaluations().iter().all(|e| e.mean.is_finite()));
        // Not bit-compatible with f32: the networks saw rounded observations and actions.
        assert!(outcome(&whole).2 != outcome(&f32_run).2, "{dtype}");

        let mut first = Trainer::new(config.clone()).unwrap();
        first.run_until(520, &mut no_events, &never).unwrap();
        checkpoint::save(&mut first, &path).unwrap();
        drop(first);
        let mut resumed = checkpoint::load(&path, 1, None, Some(&config)).unwrap();
        assert_eq!(resumed.replay().dtype(), dtype);
        resumed.run_until(700, &mut no_events, &never).unwrap();
        assert!(
            outcome(&whole) == outcome(&resumed),
            "{dtype}: the resumed run differs"
        );

        // The checkpoint belongs to a run of its own type.
        let mut other = config.clone();
        other.buffer_dtype = BufferDtype::F32;
        let err = checkpoint::load(&path, 1, None, Some(&other))
            .err()
            .expect("another type's checkpoint rejected");
        assert!(err.to_string().contains("another run"), "{err}");
    }

    // A checkpoint of an earlier format (version 2: s and s' stored apart) is a clear error.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = checkpoint::load(&path, 1, None, None)
        .err()
        .expect("old checkpoint rejected")
        .to_string();
    assert!(
        err.contains("format version 2, this build reads version 6") && err.contains("older build"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configurations_without_a_buffer_type_store_f32() {
    let config = small_run(BufferDtype::Bf16);
    let mut json = serde_json::to_value(&config).unwrap();
    assert_eq!(json["buffer_dtype"], "bf16");
    json.as_object_mut().unwrap().remove("buffer_dtype");
    let old: Config = serde_json::from_value(json).unwrap();
    assert_eq!(old.buffer_dtype, BufferDtype::F32);
}

/// One pushed transition of the n-step test, as the test remembers it.
struct Pushed {
    reward: f64,
    next: [f64; 2],
    terminal: bool,
    /// Whether the next push continues from this transition's `s'`.
    continued: bool,
}

/// n-step sampling against a hand computation over the pushed transitions: episodes of 1 to 7
/// steps ending terminal or truncated, a ring that wraps, n = 1 to 4. Each observation carries
/// its transition number, so every sample is checked against the transitions that follow on
/// from the one drawn: `R = Σ γ^j r_{t+j}` over the `m ≤ n` of them before a terminal, a
/// truncation or the newest transition, `s'` of the last, and the weight `(1 − d) γ^{m−1}`.
#[test]
fn n_step_samples_match_a_hand_computed_reference() {
    let mut r = StdRng::seed_from_u64(17);
    let gamma = 0.9f64;
    let capacity = 50;
    let mut buffer = ReplayBuffer::new(capacity, 2, 1).unwrap();
    let mut pushed: Vec<Pushed> = Vec::new();
    let mut k = 0usize;
    let mut saw = [0usize; 3]; // samples ending at a terminal, a truncation, after n steps
    while k < 130 {
        let length = r.random_range(1..8);
        let terminal_end = r.random_range(0..2) == 0;
        let mut obs = [k as f64, 0.0];
        for step in 0..length {
            let last = step + 1 == length;
            // Inside an episode s' is the next transition's s; the final one is its own.
            let next = if last {
                [k as f64 + 0.5, -1.0]
            } else {
                [(k + 1) as f64, (step + 1) as f64]
            };
            let reward = r.random_range(-1.0..1.0);
            let terminal = last && terminal_end;
            buffer.push(&obs, &[0.5], reward, &next, terminal).unwrap();
            pushed.push(Pushed {
                reward: reward as f32 as f64,
                next,
                terminal,
                continued: !last,
            });
            obs = next;
            k += 1;
        }
    }
    let newest = pushed.len() - 1;
    for n in 1..=4 {
        let mut batch = Batch::default();
        buffer
            .sample_n_step(500, n, gamma, &mut r, &mut batch)
            .unwrap();
        for b in 0..500 {
            let t = batch.obs.get(0, b) as usize;
            assert!(t + capacity > newest, "transition {t} was overwritten");
            let (mut reward, mut discount, mut j) = (0.0f64, 1.0f64, t);
            loop {
                reward += discount * pushed[j].reward;
                let m = j - t + 1;
                if pushed[j].terminal || m == n || j == newest || !pushed[j].continued {
                    break;
                }
                discount *= gamma;
                j += 1;
            }
            let last = &pushed[j];
            let what = format!("n {n}, transition {t}, last {j}");
            assert!(
                (batch.rewards.get(0, b) as f64 - reward).abs() <= 1e-6 * (1.0 + reward.abs()),
                "{what}: return {} vs {reward}",
                batch.rewards.get(0, b)
            );
            for f in 0..2 {
                assert_eq!(batch.next_obs.get(f, b) as f64, last.next[f], "{what}: s'");
            }
            let weight = if last.terminal { 0.0 } else { discount };
            assert!(
                (batch.not_done.get(0, b) as f64 - weight).abs() <= 1e-6,
                "{what}: weight {} vs {weight}",
                batch.not_done.get(0, b)
            );
            if n == 4 {
                let kind = if last.terminal {
                    0
                } else if !last.continued {
                    1
                } else {
                    2
                };
                saw[kind] += 1;
            }
        }
    }
    assert!(
        saw.iter().all(|&c| c > 0),
        "every kind of window end: {saw:?}"
    );
    // n = 1 is plain sampling, bit for bit, from the same draws.
    let (mut one, mut plain) = (Batch::default(), Batch::default());
    buffer
        .sample_n_step(64, 1, gamma, &mut StdRng::seed_from_u64(5), &mut one)
        .unwrap();
    buffer
        .sample(64, &mut StdRng::seed_from_u64(5), &mut plain)
        .unwrap();
    for (x, y) in [
        (&one.rewards, &plain.rewards),
        (&one.not_done, &plain.not_done),
        (&one.next_obs, &plain.next_obs),
        (&one.obs, &plain.obs),
    ] {
        assert_eq!(x.row(0), y.row(0));
    }
    let err = buffer
        .sample_n_step(4, 0, gamma, &mut r, &mut one)
        .unwrap_err()
        .to_string();
    assert!(err.contains("n ≥ 1"), "{err}");
}

/// Dropping the oldest transitions: the buffer samples exactly the newest `len` transitions
/// (each sampled column is one of them bit for bit, and every one of them turns up), `oldest`
/// lists them oldest first, one-step and n-step sampling both stay within them, the count
/// survives a checkpoint round trip, and pushes refill the room up to the capacity.
#[test]
fn dropping_the_oldest_samples_only_the_newest() {
    let (od, ad, capacity) = (3, 2, 50);
    let mut r = StdRng::seed_from_u64(23);
    let mut buf = ReplayBuffer::new(capacity, od, ad).unwrap();
    // Every pushed transition as a sampled column would show it, in push order; the newest
    // `live` of them are stored.
    let mut all: Vec<Vec<u32>> = Vec::new();
    let mut sa: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    let mut live = 0usize;
    let mut s = observation(&mut r, od);
    let mut batch = Batch::default();
    let mut dropped_any = false;
    for t in 0..400 {
        let a: Vec<f64> = (0..ad).map(|_| r.random_range(-1.0..1.0)).collect();
        let reward = r.random_range(-5.0..5.0);
        let s2: Vec<f64> = (0..od).map(|_| r.random_range(-50.0..50.0)).collect();
        let terminated = r.random_range(0..20) == 0;
        buf.push(&s, &a, reward, &s2, terminated).unwrap();
        let bits = |v: &[f64]| {
            v.iter()
                .map(|&x| (x as f32).to_bits())
                .collect::<Vec<u32>>()
        };
        let mut col = bits(&s);
        col.extend(bits(&a));
        col.push((reward as f32).to_bits());
        col.extend(bits(&s2));
        col.push(if terminated { 0.0f32 } else { 1.0 }.to_bits());
        all.push(col);
        let widen = |v: &[f64]| v.iter().map(|&x| x as f32 as f64).collect::<Vec<f64>>();
        sa.push((widen(&s), widen(&a)));
        live = (live + 1).min(capacity);
        s = if terminated {
            observation(&mut r, od)
        } else {
            s2
        };
        if r.random_range(0..10) == 0 {
            let k = r.random_range(0..live + 5);
            buf.drop_oldest(k);
            live -= k.min(live - 1);
            dropped_any |= k > 0;
        }
        assert_eq!(buf.len(), live, "push {t}");
        let newest = &all[all.len() - live..];
        assert_eq!(
            buf.oldest(4),
            sa[sa.len() - live..][..4.min(live)],
            "push {t}"
        );
        if t % 7 == 0 {
            let size = 30 * live;
            buf.sample(size, &mut r, &mut batch).unwrap();
            let cols = columns(&batch, size, od, ad);
            for c in &cols {
                assert!(
                    newest.contains(c),
                    "push {t}: a dropped transition was sampled"
                );
            }
            for c in newest {
                assert!(
                    cols.contains(c),
                    "push {t}: a stored transition was never sampled"
                );
            }
            // n-step windows start at a stored transition too.
            buf.sample_n_step(200, 3, 0.9, &mut r, &mut batch).unwrap();
            for b in 0..200 {
                let obs: Vec<u32> = (0..od).map(|f| batch.obs.get(f, b).to_bits()).collect();
                assert!(newest.iter().any(|c| c[..od] == obs[..]), "push {t}");
            }
        }
        if t % 50 == 25 {
            let bytes = postcard::to_stdvec(&buf).unwrap();
            let restored: ReplayBuffer = postcard::from_bytes(&bytes).unwrap();
            assert!(restored == buf, "push {t}: round trip");
            buf = restored;
        }
    }
    assert!(dropped_any);
    // At most all but the newest.
    buf.drop_oldest(usize::MAX);
    assert_eq!(buf.len(), 1);
    buf.sample(5, &mut r, &mut batch).unwrap();
    assert_eq!(columns(&batch, 1, od, ad)[0], *all.last().unwrap());
}

/// A small Pendulum run with RLx2's dynamic buffer, made to check every 100 steps and to drop
/// whenever it may (threshold 0).
fn dynamic_run() -> Config {
    let mut c = small_run(BufferDtype::F32);
    c.dynamic_buffer = Some(td3::DynamicBuffer {
        every: 100,
        oldest: 64,
        threshold: 0.0,
        fraction: 0.1,
        min_size: 150,
    });
    c
}

/// The trainer's dynamic buffer: the distance it reports equals one computed here with a
/// batched forward pass of the policy network over the oldest transitions; it drops the
/// oldest tenth exactly when the buffer holds more than `min_size`; sizes follow from the
/// pushes and drops; the run resumes bit for bit; and bad settings are refused.
#[test]
fn the_dynamic_buffer_drops_by_the_policy_distance_of_the_oldest() {
    let config = dynamic_run();
    let mut run = Trainer::new(config.clone()).unwrap();
    let events = std::cell::RefCell::new(Vec::new());
    let mut record = |e: Event<'_>| {
        if let Event::Buffer {
            step,
            distance,
            dropped,
            size,
        } = e
        {
            events.borrow_mut().push((step, distance, dropped, size));
        }
        Ok(())
    };
    run.run_until(100, &mut record, &never).unwrap();
    // Before training (start_steps 300) the policy is the initial one; nothing was dropped at
    // step 100 (100 ≤ min_size), so the buffer is as the check saw it.
    let policy = run.agent().policy_network().unwrap();
    let oldest = run.replay().oldest(64);
    let obs: Vec<f32> = oldest
        .iter()
        .flat_map(|(o, _)| o.iter().map(|&v| v as f32))
        .collect();
    let x = sparse_core::Activations::from_samples(3, oldest.len(), &obs).unwrap();
    let mut ws = sparse_core::Workspace::new();
    let pi = policy.forward(&x, &mut ws).unwrap();
    let max = run.agent().max_action() as f64;
    let mut sum = 0.0;
    for (b, (_, a)) in oldest.iter().enumerate() {
        sum += ((pi.get(0, b) as f64 - a[0]) / max).powi(2);
    }
    let want = sum / oldest.len() as f64 / 2.0;
    assert_eq!(events.borrow().len(), 1);
    let (step, distance, dropped, size) = events.borrow()[0];
    assert_eq!((step, dropped, size), (100, 0, 100));
    assert!(
        (distance - want).abs() <= 1e-6 * want,
        "{distance} vs {want}"
    );

    run.run_until(700, &mut record, &never).unwrap();
    let events = events.into_inner();
    let mut size = 100usize;
    for &(step, distance, dropped, after) in &events[1..] {
        let before = (size + 100).min(config.buffer_capacity);
        assert!(distance > 0.0);
        let want = if before > 150 { before / 10 } else { 0 };
        assert_eq!((dropped, after), (want, before - want), "step {step}");
        size = after;
    }
    assert_eq!(events.len(), 7);
    assert_eq!(run.replay().len(), size);

    // Resume mid-run, between two checks, after drops.
    let dir = std::env::temp_dir().join(format!("td3-dynamic-buffer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latest.ckpt");
    let mut first = Trainer::new(config.clone()).unwrap();
    first.run_until(450, &mut no_events, &never).unwrap();
    checkpoint::save(&mut first, &path).unwrap();
    drop(first);
    let mut resumed = checkpoint::load(&path, 1, None, Some(&config)).unwrap();
    resumed.run_until(700, &mut no_events, &never).unwrap();
    assert!(
        outcome(&run) == outcome(&resumed),
        "the resumed run differs"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // It changes the run (the drops change what is sampled).
    let mut plain = Trainer::new(small_run(BufferDtype::F32)).unwrap();
    plain.run_until(700, &mut no_events, &never).unwrap();
    assert!(outcome(&plain).0 != outcome(&run).0);

    for (change, what) in [
        (
            (|d: &mut td3::DynamicBuffer| d.min_size = 450) as fn(&mut _),
            "below the buffer capacity",
        ),
        (|d| d.fraction = 1.0, "fraction must lie in (0, 1)"),
        (|d| d.threshold = f64::NAN, "threshold must be a number"),
        (|d| d.every = 0, "at least 1"),
    ] {
        let mut c = dynamic_run();
        change(c.dynamic_buffer.as_mut().unwrap());
        let err = c.validate().expect_err(what).to_string();
        assert!(err.contains(what), "{err}");
    }
}
