//! Crash safety of run directories, with real training processes: kill -9 at random instants
//! (fresh, resumed and extended runs, during checkpoint writes too), SIGTERM, two processes on
//! one directory, a full disk, and logs damaged by a crash. After every kill the run must
//! resume, and the finished run's evaluations and training log must equal an uninterrupted
//! run's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng, rngs::StdRng};

#[path = "support/skip.rs"]
mod skip;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ds-td3"))
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ds-td3-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A short DS-TD3 run on Pendulum (a few seconds), checkpointing often.
fn train_args(out: &Path, steps: u64) -> Vec<String> {
    let s = |v: &str| v.to_string();
    vec![
        s("train"),
        s("--env"),
        s("Pendulum-v1"),
        s("--algo"),
        s("ds"),
        s("--seed"),
        s("4"),
        s("--steps"),
        steps.to_string(),
        s("--start-steps"),
        s("300"),
        s("--eval-every"),
        s("150"),
        s("--eval-episodes"),
        s("2"),
        s("--hidden"),
        s("32"),
        s("--lambda1"),
        s("2"),
        s("--lambda2"),
        s("8"),
        s("-e"),
        s("100"),
        s("--topology-freeze"),
        s("0"),
        s("--buffer-size"),
        s("600"),
        s("--checkpoint-every"),
        s("200"),
        s("--out"),
        out.display().to_string(),
        s("--quiet"),
    ]
}

fn resume_args(dir: &Path, steps: Option<u64>) -> Vec<String> {
    let mut a = vec![
        "train".to_string(),
        "--resume".into(),
        dir.display().to_string(),
        "--checkpoint-every".into(),
        "200".into(),
        "--quiet".into(),
    ];
    if let Some(s) = steps {
        a.extend(["--steps".into(), s.to_string()]);
    }
    a
}

fn spawn(args: &[String]) -> Child {
    bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

fn run(args: &[String]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout)
}

/// What must match an uninterrupted run: evaluations.csv without its wall-time column, and
/// train_log.jsonl.
fn outcome(dir: &Path) -> (Vec<String>, String) {
    let csv = std::fs::read_to_string(dir.join("evaluations.csv")).unwrap();
    let rows = csv
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            [&f[..3], &f[4..]].concat().join(",")
        })
        .collect();
    (
        rows,
        std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap(),
    )
}

fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("checkpoints")] {
        for e in std::fs::read_dir(&sub).into_iter().flatten().flatten() {
            if e.path().to_string_lossy().ends_with(".tmp") {
                out.push(e.path());
            }
        }
    }
    out
}

/// Kills (SIGKILL) the process started by `args` after a random delay below `max_ms`, or with
/// `hunt` as soon as a checkpoint write is seen under way (within that delay); returns whether it
/// had finished by itself first, and whether a checkpoint write was under way at the kill.
fn kill_at_random(
    args: &[String],
    dir: &Path,
    r: &mut StdRng,
    max_ms: u64,
    hunt: bool,
) -> (bool, bool) {
    let mut child = spawn(args);
    let tmp = dir.join("checkpoints/latest.tmp");
    let deadline = Instant::now() + Duration::from_millis(r.random_range(0..max_ms.max(1)));
    while Instant::now() < deadline && !(hunt && tmp.exists()) {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(status.success(), "{args:?} failed: {err}");
            return (true, false);
        }
        if !hunt {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    (false, tmp.exists())
}

/// Counts of one crash test.
#[derive(Default)]
struct Kills {
    total: usize,
    fresh: usize,
    mid_write: usize,
}

impl Kills {
    fn add(&mut self, (done, mid): (bool, bool), fresh: bool) -> bool {
        if !done {
            self.total += 1;
            self.fresh += usize::from(fresh);
            self.mid_write += usize::from(mid);
        }
        done
    }
}

/// The command a user runs again after a kill: the original one while config.json is not
/// written yet, `--resume` from then on (with the new total when extending).
fn again(dir: &Path, steps: u64, extend: bool) -> Vec<String> {
    if !dir.join("config.json").exists() {
        train_args(dir, steps)
    } else {
        resume_args(dir, extend.then_some(steps))
    }
}

/// The fewest kills each trial of [`kill_9_at_random_instants_loses_nothing`] must see before
/// its run finishes.
const MIN_KILLS: usize = 10;

/// Starts a fresh 1500-step run in `dir`, killed early (before, during or after its first
/// checkpoint: within a quarter of `window`, milliseconds, about a whole run's time), then the
/// same command again (or `--resume` once config.json exists), killed again and again at
/// random instants within a third of `window`, up to 60 times; returns whether the run
/// finished by itself, the fresh start included.
fn kill_until_finished(dir: &Path, window: u64, r: &mut StdRng, kills: &mut Kills) -> bool {
    let first = kill_at_random(&train_args(dir, 1500), dir, r, window / 4, false);
    if kills.add(first, true) {
        return true;
    }
    for i in 0..60 {
        // Every third kill lands as soon as a checkpoint write is seen under way.
        let hunt = i % 3 == 2;
        let k = kill_at_random(&again(dir, 1500, false), dir, r, window / 3, hunt);
        if kills.add(k, false) {
            return true;
        }
        // `eval` reads the directory at any instant: a run once its config.json is written,
        // and before that (a fresh start killed again before writing it) a clear refusal,
        // never a panic.
        if i % 7 == 0 {
            let o = run(&["eval".into(), "--run".into(), dir.display().to_string()]);
            if dir.join("config.json").exists() {
                assert!(o.status.success(), "eval after a kill: {}", text(&o));
            } else {
                assert!(
                    !o.status.success() && text(&o).contains("no config.json"),
                    "eval before config.json: {}",
                    text(&o)
                );
                assert!(!text(&o).contains("panicked"), "{}", text(&o));
            }
        }
    }
    false
}

#[test]
fn kill_9_at_random_instants_loses_nothing() {
    let root = temp_dir("kill");
    // References: uninterrupted runs of 1500 steps and of 1800 (what the extension reaches).
    let (whole, whole_long) = (root.join("whole"), root.join("whole-long"));
    for (dir, steps) in [(&whole, 1500), (&whole_long, 1800)] {
        let o = run(&train_args(dir, steps));
        assert!(o.status.success(), "{}", text(&o));
    }
    // How long a whole run takes here, to spread the kills over it.
    let started = Instant::now();
    let o = run(&train_args(&root.join("timing"), 1500));
    assert!(o.status.success());
    let span = (started.elapsed().as_millis() as u64).max(50);

    let mut r = StdRng::seed_from_u64(1);
    let mut kills = Kills::default();
    // The span was timed on a machine that other tests may load (the SIGTERM test trains
    // beside this one), so it may be far longer than a run takes now. A trial whose fresh
    // start finished before its kill, or whose run finished within fewer than `MIN_KILLS`
    // kills, is started again from nothing with the windows halved (for the trials after it
    // too), so every trial kills its fresh start and is killed at least that often.
    let mut window = span;
    for trial in 0..4 {
        let dir = root.join(format!("killed-{trial}"));
        let fresh_killed = loop {
            let (total, fresh) = (kills.total, kills.fresh);
            if !kill_until_finished(&dir, window, &mut r, &mut kills) {
                let o = run(&again(&dir, 1500, false));
                assert!(o.status.success(), "{}", text(&o));
            }
            // Every finished run must match, the ones started again included.
            assert_eq!(outcome(&dir), outcome(&whole), "trial {trial}");
            assert!(temporaries(&dir).is_empty());
            let fresh_killed = kills.fresh > fresh;
            if (fresh_killed && kills.total - total >= MIN_KILLS) || window <= 2 {
                break fresh_killed;
            }
            std::fs::remove_dir_all(&dir).unwrap();
            window /= 2;
        };
        assert!(fresh_killed, "a fresh run finished before its kill");

        // Logs damaged: a record cut off past the checkpoint (as a crash in the middle of a
        // write would leave it) and evaluations cut in the middle (as rewritten in place
        // before): the resume drops the cut record and rewrites the evaluations from the
        // checkpoint.
        let log = dir.join("train_log.jsonl");
        let mut bytes = std::fs::read(&log).unwrap();
        bytes.extend_from_slice(br#"{"type":"episode","step":16"#);
        std::fs::write(&log, &bytes).unwrap();
        let evals = dir.join("evaluations.csv");
        let bytes = std::fs::read(&evals).unwrap();
        std::fs::write(&evals, &bytes[..bytes.len() / 2]).unwrap();

        // Extended to 1800 steps, killed on the way, including right after the extension (the
        // same command again continues; a kill before the new total reached config.json loses
        // only that).
        for i in 0..20 {
            let within = if i == 0 { window / 10 } else { window / 4 };
            let k = kill_at_random(&again(&dir, 1800, true), &dir, &mut r, within, i % 3 == 2);
            if kills.add(k, false) {
                break;
            }
        }
        let o = run(&again(&dir, 1800, true));
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            outcome(&dir),
            outcome(&whole_long),
            "trial {trial}, extended"
        );
        assert!(temporaries(&dir).is_empty());
    }
    assert!(kills.total >= 4 * MIN_KILLS, "only {} kills", kills.total);
    skip::note(
        "crash test",
        format_args!(
            "{} kills ({} of fresh starts, {} while a checkpoint was being written), 0 failures",
            kills.total, kills.fresh, kills.mid_write
        ),
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn sigterm_checkpoints_and_a_second_process_is_refused() {
    let root = temp_dir("term");
    let dir = root.join("run");
    let mut child = spawn(&train_args(&dir, 200_000));
    // Wait until training is under way: its first checkpoint is written and it has evaluated
    // at step 450, past the 300 random steps (however long this process is kept waiting, the
    // signal below then lands past them).
    let t0 = Instant::now();
    let past_random_phase = || {
        dir.join("checkpoints/latest.ckpt").exists()
            && std::fs::read_to_string(dir.join("evaluations.csv"))
                .is_ok_and(|csv| csv.lines().any(|l| l.starts_with("450,")))
    };
    while !past_random_phase() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint and evaluation at step 450 within 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id();
    for args in [
        {
            let mut a = train_args(&dir, 1000);
            a.push("--force".into());
            a
        },
        resume_args(&dir, None),
    ] {
        let o = run(&args);
        assert!(!o.status.success(), "a second process ran: {args:?}");
        let msg = text(&o);
        assert!(
            msg.contains("in use by process") && msg.contains(&pid.to_string()),
            "{msg}"
        );
    }
    // SIGTERM: a checkpoint at that very step, then the conventional status 128 + 15.
    // SAFETY: kill(2) on our own child process.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::into_raw(status) >> 8,
        143
    );
    // The lock died with the process, and the checkpoint holds the step the signal stopped at
    // (almost never a multiple of --checkpoint-every): the run resumes from there.
    let o = run(&resume_args(&dir, Some(1)));
    let msg = text(&o);
    let step: u64 = msg
        .split("below the ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(step > 300, "trained past the random phase: {msg}");
    let o = run(&resume_args(&dir, Some(step + 100)));
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("summary.json").is_file());
    std::fs::remove_dir_all(&root).unwrap();
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` but for about `spare` bytes.
fn fill(path: &Path, spare: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 1 << 16];
    while f.write_all(&block).is_ok() {}
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(spare)).unwrap();
}

#[test]
fn a_full_disk_is_a_clear_error_that_damages_nothing() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip::skip("full-disk test", "needs root to mount a small tmpfs");
        return;
    }
    let root = temp_dir("disk");
    let mnt = root.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        skip::skip("full-disk test", "cannot mount a tmpfs here");
        return;
    }
    let _unmount = Tmpfs(mnt.clone());
    let whole = root.join("whole");
    let o = run(&train_args(&whole, 1500));
    assert!(o.status.success(), "{}", text(&o));

    let dir = mnt.join("run");
    let o = run(&train_args(&dir, 600));
    assert!(o.status.success(), "{}", text(&o));
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (ckpt, evals, log) = (
        read("checkpoints/latest.ckpt"),
        read("evaluations.csv"),
        read("train_log.jsonl"),
    );
    // About 16 KiB left: config.json and a few log lines fit, the next checkpoint does not.
    fill(&mnt.join("filler"), 16 << 10);
    let o = run(&resume_args(&dir, Some(1500)));
    assert!(!o.status.success(), "trained on a full disk");
    let msg = text(&o);
    assert!(
        msg.contains("No space left on device") && msg.contains(&dir.display().to_string()),
        "{msg}"
    );
    assert!(temporaries(&dir).is_empty(), "{:?}", temporaries(&dir));
    assert_eq!(
        read("checkpoints/latest.ckpt"),
        ckpt,
        "the checkpoint is intact"
    );
    assert!(read("evaluations.csv").starts_with(&evals));
    assert!(read("train_log.jsonl").starts_with(&log));
    // With space again, the same command finishes the run as if nothing had happened.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let o = run(&resume_args(&dir, Some(1500)));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(outcome(&dir), outcome(&whole));
    drop(_unmount);
    std::fs::remove_dir_all(&root).unwrap();
}
