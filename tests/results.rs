//! `ds-td3 sweep` and `ds-td3 report` end to end: tables against hand-computed numbers on
//! synthetic run directories, figures of the expected size, the Slurm script, and a sweep that
//! is interrupted and restarted finishing every run exactly once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use td3::{Algo, Config};

#[path = "support/bin.rs"]
mod bin;
#[path = "support/skip.rs"]
mod skip;
use bin::ds_td3;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ds-td3-results-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `ds-td3 report RUNS --out OUT`, which must succeed.
fn report_ok(runs: &Path, out: &Path) {
    let o = ds_td3(&[
        "report",
        runs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A synthetic run: config.json and an evaluations.csv with the given (mean, flops) rows every
/// 100 steps from 0 (`steps` = 300, so 4 evaluations make it complete).
fn synthetic_run(root: &Path, algo: Algo, seed: u64, period: u64, rows: &[(f64, u64)]) {
    let mut c = Config::paper("Pendulum-v1", algo);
    c.seed = seed;
    c.steps = 300;
    c.start_steps = 100;
    c.eval_every = 100;
    c.evolution_period = period;
    let dir = root.join(format!("{algo}-e{period}-s{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(&c).unwrap()).unwrap();
    let mut csv = String::from("step,mean,std,wall_seconds,flops,live_connections,return_0\n");
    for (i, (mean, flops)) in rows.iter().enumerate() {
        csv.push_str(&format!(
            "{},{mean},0,1.0,{flops},{},{mean}\n",
            100 * i,
            if algo.is_sparse() { 500 } else { 1000 }
        ));
    }
    std::fs::write(dir.join("evaluations.csv"), csv).unwrap();
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The values of the row of a table CSV (task, label, values…) with this label.
fn values(rows: &[Vec<String>], label: &str) -> Vec<String> {
    rows.iter()
        .find(|r| r[1] == label)
        .unwrap_or_else(|| panic!("{label} in {rows:?}"))[2..]
        .to_vec()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{} is a PNG", path.display());
    let be = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn report_tables_match_hand_computed_numbers() {
    let root = temp_dir("report");
    let runs = root.join("runs");
    // Dense: final scores (mean of all 4 evaluations) -700 and -675.
    synthetic_run(
        &runs,
        Algo::Dense,
        0,
        1000,
        &[(-1000.0, 0), (-800.0, 300), (-600.0, 600), (-400.0, 1000)],
    );
    synthetic_run(
        &runs,
        Algo::Dense,
        1,
        1000,
        &[(-1000.0, 0), (-900.0, 300), (-500.0, 600), (-300.0, 1000)],
    );
    // DS, e = 1000: finals -600 and -550; FLOPs 490 and 510 at the end.
    synthetic_run(
        &runs,
        Algo::Ds,
        0,
        1000,
        &[(-1000.0, 0), (-700.0, 100), (-500.0, 300), (-200.0, 490)],
    );
    synthetic_run(
        &runs,
        Algo::Ds,
        1,
        1000,
        &[(-1000.0, 0), (-600.0, 100), (-400.0, 300), (-200.0, 510)],
    );
    // DS, e = 200 (a schedule comparison), one seed: final -500.
    synthetic_run(
        &runs,
        Algo::Ds,
        0,
        200,
        &[(-900.0, 0), (-500.0, 100), (-400.0, 300), (-200.0, 500)],
    );
    // A partial run and one without evaluations: reported, not in the tables.
    synthetic_run(&runs, Algo::Ds, 2, 1000, &[(-1000.0, 0), (0.0, 100)]);
    synthetic_run(&runs, Algo::Ds, 3, 1000, &[]);
    std::fs::remove_file(runs.join("ds-e1000-s3/evaluations.csv")).unwrap();

    let out = root.join("out");
    report_ok(&runs, &out);

    let t1 = csv_rows(&out.join("table1.csv"));
    let row = |label: &str| values(&t1, label);
    assert_eq!(row("dense"), ["2", "-687.5", "12.5"]);
    assert_eq!(row("ds e=1000"), ["2", "-575", "25"]);
    assert_eq!(row("ds e=200"), ["1", "-500", "0"]);
    let t2 = csv_rows(&out.join("table2.csv"));
    let ds = t2.iter().find(|r| r[1] == "ds e=1000").unwrap();
    assert_eq!(ds[2..], ["500", "300", "500", "0.5"]);
    // DS e=1000 seed mean: -1000, -650, ... reaches dense's -687.5 at step 100 (1/3 of the run).
    let reach = csv_rows(&out.join("reach.csv"));
    let r = reach.iter().find(|r| r[1] == "ds e=1000").unwrap();
    assert_eq!(r[2..], ["-687.5", "100", "0.33"]);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("ds-e1000-s2: partial: 2 of 4 evaluations"),
        "{md}"
    );
    assert!(md.contains("ds-e1000-s3: missing evaluations.csv"), "{md}");
    for stem in ["curves-Pendulum-v1", "schedule-Pendulum-v1"] {
        assert_eq!(png_size(&out.join(format!("{stem}.png"))), (960, 600));
        let svg = std::fs::read_to_string(out.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("width=\"960\"") && svg.contains("<text"),
            "{stem}.svg"
        );
    }
    // The output directory is not overwritten without --force.
    let o = ds_td3(&[
        "report",
        runs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn report_holds_the_sac_family_against_dense_sac() {
    let root = temp_dir("report-sac");
    let runs = root.join("runs");
    // Dense TD3, final −700: not the baseline of the SAC family.
    let td3 = [(-1000.0, 0), (-800.0, 300), (-600.0, 600), (-400.0, 1000)];
    synthetic_run(&runs, Algo::Dense, 0, 1000, &td3);
    // SAC: finals −500 and −550; 1200 FLOPs at the end.
    let sac = [(-1000.0, 0), (-500.0, 400), (-300.0, 800), (-200.0, 1200)];
    synthetic_run(&runs, Algo::Sac, 0, 1000, &sac);
    let sac = [(-1000.0, 0), (-700.0, 400), (-300.0, 800), (-200.0, 1200)];
    synthetic_run(&runs, Algo::Sac, 1, 1000, &sac);
    // DS-SAC: final −550 (both seeds), 600 FLOPs: its seed mean passes TD3's −700 at step 100
    // but SAC's −525 only at step 200.
    let ds_sac = [(-1000.0, 0), (-600.0, 200), (-500.0, 400), (-100.0, 600)];
    synthetic_run(&runs, Algo::DsSac, 0, 1000, &ds_sac);
    synthetic_run(&runs, Algo::DsSac, 1, 1000, &ds_sac);
    let out = root.join("out");
    report_ok(&runs, &out);

    let t1 = csv_rows(&out.join("table1.csv"));
    let row = |label: &str| values(&t1, label);
    assert_eq!(row("dense"), ["1", "-700", "0"]);
    assert_eq!(row("sac"), ["2", "-525", "25"]);
    assert_eq!(row("ds-sac"), ["2", "-550", "0"]);
    let t2 = csv_rows(&out.join("table2.csv"));
    let ds_sac = t2.iter().find(|r| r[1] == "ds-sac").unwrap();
    assert_eq!(
        ds_sac[2..],
        ["500", "300", "600", "0.5"],
        "against SAC's 1200"
    );
    let reach = csv_rows(&out.join("reach.csv"));
    let r = reach.iter().find(|r| r[1] == "ds-sac").unwrap();
    assert_eq!(r[2..], ["-525", "200", "0.67"], "SAC's final, not TD3's");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A synthetic Hopper run evaluated every 100k steps up to 200k, with the given returns.
fn hopper_run(root: &Path, algo: Algo, seed: u64, returns: &[f64]) {
    let mut c = Config::paper("Hopper-v3", algo);
    c.seed = seed;
    c.steps = 200_000;
    c.eval_every = 100_000;
    let dir = root.join(format!("{algo}-s{seed}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(&c).unwrap()).unwrap();
    let mut csv = String::from("step,mean,std,wall_seconds,flops,live_connections,return_0\n");
    for (i, r) in returns.iter().enumerate() {
        csv.push_str(&format!("{},{r},0,1.0,0,100,{r}\n", 100_000 * i));
    }
    std::fs::write(dir.join("evaluations.csv"), csv).unwrap();
}

#[test]
fn report_sets_published_curves_beside_ours() {
    let root = temp_dir("reference");
    let runs = root.join("runs");
    hopper_run(&runs, Algo::Dense, 0, &[10.0, 1000.0, 3000.0]);
    hopper_run(&runs, Algo::Dense, 1, &[20.0, 2000.0, 2000.0]);
    hopper_run(&runs, Algo::Ds, 0, &[0.0, 500.0, 4000.0]);
    hopper_run(&runs, Algo::Ds, 1, &[0.0, 1500.0, 3000.0]);
    hopper_run(&runs, Algo::Ds, 2, &[0.0, 700.0]); // partial: no 200k evaluation
    let refs = root.join("refs");
    std::fs::create_dir_all(&refs).unwrap();
    std::fs::write(
        refs.join("td3-Hopper-v1.csv"),
        "step,seed0,seed1,seed2,mean,min,max\n0,1,2,3,2,1,3\n100000,600,900,1500,1000,600,1500\n\
         200000,2000,2400,3100,2500,2000,3100\n300000,3000,3000,3000,3000,3000,3000\n",
    )
    .unwrap();
    std::fs::write(refs.join("td3-Ant-v1.csv"), "step,seed0\n0,1\n").unwrap();
    std::fs::write(refs.join("README.md"), "not a curve").unwrap();

    let out = root.join("out");
    let report = |out: &Path, reference: &Path| {
        ds_td3(&[
            "report",
            runs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--reference",
            reference.to_str().unwrap(),
        ])
    };
    let o = report(&out, &refs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Mean (min–max) over seeds at 100k and 200k, by hand: dense 1500 (1000–2000) and
    // 2500 (2000–3000); DS 900 (500–1500) over 3 runs, then 3500 (3000–4000) over the 2 that
    // reached 200k; the reference 1000 (600–1500) and 2500 (2000–3100).
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for row in [
        "| variant | seeds | 100k | 200k |",
        "| dense | 2 | 1500 (1000–2000) | 2500 (2000–3000) |",
        "| ds | 3 | 900 (500–1500) | 3500 (3000–4000) n=2 |",
        "| TD3 paper (v1, 3 seeds) | 3 | 1000 (600–1500) | 2500 (2000–3100) |",
    ] {
        assert!(md.contains(row), "{row} in\n{md}");
    }
    assert!(
        md.contains("without a matching task among the runs: "),
        "{md}"
    );
    assert!(md.contains("td3-Ant-v1.csv"), "{md}");
    let csv = std::fs::read_to_string(out.join("milestones.csv")).unwrap();
    for row in [
        "Hopper-v3,dense,100000,2,1500,1000,2000",
        "Hopper-v3,ds,200000,2,3500,3000,4000",
        "Hopper-v3,\"TD3 paper (v1, 3 seeds)\",200000,3,2500,2000,3100",
    ] {
        assert!(csv.lines().any(|l| l == row), "{row} in\n{csv}");
    }
    assert!(
        !csv.contains(",300000,"),
        "only the steps our runs reached: {csv}"
    );
    let svg = std::fs::read_to_string(out.join("curves-Hopper-v3.svg")).unwrap();
    assert!(svg.contains("TD3 paper (v1, 3 seeds)"), "legend");
    assert_eq!(png_size(&out.join("curves-Hopper-v3.png")), (960, 600));

    // The shipped curves: the published Hopper values at 100k and 200k.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/reference");
    let o = report(&root.join("out-shipped"), &shipped);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(root.join("out-shipped/report.md")).unwrap();
    let row = "| TD3 paper (v1, 10 seeds) | 10 | 659 (25–2790) | 2441 (903–3290) |";
    assert!(md.contains(row), "{row} in\n{md}");

    // Bad references are clear errors naming the file (and line), before anything is written.
    let bad = refs.join("td3-Hopper-v1.csv");
    std::fs::write(&bad, "step,seed0,seed1\n0,1,2\n5,1\n").unwrap();
    let unknown = root.join("td3-Hoper-v1.csv");
    std::fs::write(&unknown, "step,seed0\n0,1\n").unwrap();
    for (reference, message) in [
        (
            bad.clone(),
            format!("{}:3: 2 fields, the header has 3", bad.display()),
        ),
        (
            unknown.clone(),
            format!("{}: unknown task \"Hoper\"", unknown.display()),
        ),
        (
            root.join("missing.csv"),
            format!(
                "{}: no such reference file or directory",
                root.join("missing.csv").display()
            ),
        ),
    ] {
        let fresh = root.join("out-bad");
        let o = report(&fresh, &reference);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(&message),
            "{message} in {err}"
        );
        assert!(!fresh.exists(), "nothing written");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

fn write_grid(root: &Path, body: &str) -> PathBuf {
    let path = root.join("grid.toml");
    std::fs::write(
        &path,
        format!("out = \"{}\"\n{body}", root.join("runs").display()),
    )
    .unwrap();
    path
}

#[test]
fn slurm_script_names_every_run_once() {
    let root = temp_dir("slurm");
    let grid = write_grid(
        &root,
        "envs = [\"Pendulum-v1\"]\nalgos = [\"dense\", \"static\", \"ds\"]\nseeds = [0, 1]\n[set]\nsteps = 30000\n[sweep]\nevolution_period = [100, 200]\n",
    );
    let o = ds_td3(&["sweep", grid.to_str().unwrap(), "--emit", "slurm"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = std::fs::read_to_string(root.join("runs/sweep.slurm")).unwrap();
    assert!(script.contains("#SBATCH --array=0-11"));
    for algo in ["dense", "static", "ds"] {
        for e in [100, 200] {
            for s in [0, 1] {
                let name = format!("'Pendulum-v1-{algo}-evolution_period{e}-s{s}'");
                assert_eq!(script.matches(&name).count(), 1, "{name}");
                let cfg = root.join(format!(
                    "runs/configs/Pendulum-v1-{algo}-evolution_period{e}-s{s}.json"
                ));
                let c: Config =
                    serde_json::from_str(&std::fs::read_to_string(cfg).unwrap()).unwrap();
                assert_eq!((c.evolution_period, c.seed, c.steps), (e, s, 30000));
            }
        }
    }
    assert_eq!(
        script
            .lines()
            .filter(|l| l.starts_with("  'Pendulum"))
            .count(),
        12
    );
    // Bad grids are clear errors.
    let bad = write_grid(
        &root,
        "envs = [\"Pendulum-v1\"]\nalgos = [\"ds\"]\nseeds = [0]\n[set]\nlambda3 = 2\n",
    );
    let o = ds_td3(&["sweep", bad.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown setting 'lambda3'"));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_grid_refuses_run_names_taken_by_another_configuration() {
    // Two grids into one `out` whose differing setting is not swept produce the same run
    // names: the second must neither skip, resume nor restart the first's runs, nor rewrite the
    // configs/ files another sweep may be about to start from.
    let root = temp_dir("sweep-clash");
    let grid = |lr: &str, steps: u32| {
        write_grid(
            &root,
            &format!(
                "envs = [\"Pendulum-v1\"]\nalgos = [\"ds\"]\nseeds = [0, 1]\n[set]\nsteps = \
                 {steps}\nlr = {lr}\n"
            ),
        )
    };
    let first = grid("0.001", 30000);
    let o = ds_td3(&["sweep", first.to_str().unwrap(), "--emit", "slurm"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Seed 0 "finished" (its directory holds its configuration and a summary); seed 1 only has
    // its configs/ file.
    let runs = root.join("runs");
    let cfg0 = runs.join("configs/Pendulum-v1-ds-s0.json");
    let cfg1 = runs.join("configs/Pendulum-v1-ds-s1.json");
    let before = std::fs::read_to_string(&cfg1).unwrap();
    std::fs::create_dir_all(runs.join("Pendulum-v1-ds-s0")).unwrap();
    std::fs::copy(&cfg0, runs.join("Pendulum-v1-ds-s0/config.json")).unwrap();
    std::fs::write(runs.join("Pendulum-v1-ds-s0/summary.json"), "{}").unwrap();
    std::fs::remove_file(&cfg0).unwrap();

    let second = grid("0.0003", 30000);
    for extra in [&[][..], &["--emit", "slurm"][..]] {
        let mut args = vec!["sweep", second.to_str().unwrap()];
        args.extend(extra);
        let o = ds_td3(&args);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("2 run name(s) of this grid are taken"),
            "{err}"
        );
        assert!(err.contains("Pendulum-v1-ds-s0/config.json (lr: 0.001 there, 0.0003 here)"));
        assert!(err.contains("configs/Pendulum-v1-ds-s1.json (lr:"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&cfg1).unwrap(),
            before,
            "left alone"
        );
        assert!(!cfg0.exists(), "nothing written");
    }
    // The same grid with more steps extends its runs: allowed.
    let longer = grid("0.001", 40000);
    let o = ds_td3(&["sweep", longer.to_str().unwrap(), "--emit", "slurm"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c: Config = serde_json::from_str(&std::fs::read_to_string(&cfg1).unwrap()).unwrap();
    assert_eq!(c.steps, 40000);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn every_example_grid_expands_to_valid_runs() {
    // Each shipped grid, expanded from a scratch directory (its `out` is relative): every run's
    // configuration validates, and the grids that share an `out` do not take each other's run
    // names with other settings.
    let root = temp_dir("example-grids");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut grids: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    grids.sort();
    assert!(grids.len() >= 8, "{grids:?}");
    // Without MuJoCo only the grids of Pendulum-v1 can expand; the others must fail on their
    // task and nothing else.
    let mujoco = String::from_utf8_lossy(&ds_td3(&["envs"]).stdout).contains("Hopper-v3");
    for grid in &grids {
        let o = Command::new(env!("CARGO_BIN_EXE_ds-td3"))
            .args(["sweep", grid.to_str().unwrap(), "--emit", "slurm"])
            .current_dir(&root)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if !mujoco && !o.status.success() && err.contains("unknown environment") {
            skip::skip(
                &format!("results example grid {}", grid.display()),
                "built without the mujoco feature",
            );
            continue;
        }
        assert!(o.status.success(), "{}: {err}", grid.display());
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Evaluations without the wall-clock column.
fn evaluations(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("evaluations.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != 3)
                .map(|(_, f)| f)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[test]
fn interrupted_sweep_restarts_and_finishes_each_run_once() {
    let root = temp_dir("sweep");
    let grid = write_grid(
        &root,
        "envs = [\"Pendulum-v1\"]\nalgos = [\"ds\"]\nseeds = [0, 1, 2]\n[set]\nsteps = 40000\nstart_steps = 200\neval_every = 5000\neval_episodes = 1\nhidden = 16\nlambda1 = 1.0\nlambda2 = 4.0\nbatch_size = 16\nevolution_period = 100\n",
    );
    let grid_s = grid.to_str().unwrap();
    // One worker: interrupt the sweep after its first run finished, while the second trains.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ds-td3"))
        .args(["sweep", grid_s, "--workers", "1", "-q"])
        .spawn()
        .unwrap();
    let runs = root.join("runs");
    // The second run has started (and installed its Ctrl-C handler, which comes before its
    // logs) once its evaluations.csv exists; with one worker the first has finished by then.
    // No time limit: the wait ends with that file or, loudly, with the sweep.
    let second_started = runs.join("Pendulum-v1-ds-s1/evaluations.csv");
    while !second_started.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sweep ended ({status}) before its second run started");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        runs.join("Pendulum-v1-ds-s0/summary.json").exists(),
        "one worker: the first run finished before the second started"
    );
    // SAFETY: kill(2) on our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "the sweep reports the interruption (0: the second and third runs finished before the \
         interrupt arrived)"
    );
    let names: Vec<String> = (0..3).map(|s| format!("Pendulum-v1-ds-s{s}")).collect();
    let unfinished = names
        .iter()
        .filter(|n| !runs.join(n).join("summary.json").exists())
        .count();
    assert!(
        unfinished > 0,
        "the interruption came before the sweep finished"
    );
    assert!(
        runs.join("Pendulum-v1-ds-s1/checkpoints/latest.ckpt")
            .exists(),
        "the interrupted run checkpointed"
    );
    let mtimes: Vec<Option<std::time::SystemTime>> = names
        .iter()
        .map(|n| {
            std::fs::metadata(runs.join(n).join("summary.json"))
                .and_then(|m| m.modified())
                .ok()
        })
        .collect();

    // Restart: everything finishes; finished runs are not touched.
    let o = ds_td3(&["sweep", grid_s, "--workers", "2", "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (n, before) in names.iter().zip(&mtimes) {
        let dir = runs.join(n);
        let after = std::fs::metadata(dir.join("summary.json"))
            .and_then(|m| m.modified())
            .ok();
        assert!(after.is_some(), "{n} finished");
        if before.is_some() {
            assert_eq!(&after, before, "{n} was finished and must not run again");
        }
        // Exactly once: every evaluation step once, every episode once, and the same results
        // as an uninterrupted run of the same configuration.
        let steps: Vec<String> = evaluations(&dir)
            .iter()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        let want: Vec<String> = (0..=8).map(|i| (5000 * i).to_string()).collect();
        assert_eq!(steps, want, "{n}");
        let log = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
        let episodes: Vec<u64> = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["type"] == "episode")
            .map(|v| v["episode"].as_u64().unwrap())
            .collect();
        assert_eq!(
            episodes,
            (1..=episodes.len() as u64).collect::<Vec<_>>(),
            "{n}: episodes logged once each"
        );
    }
    let reference = root.join("reference");
    let cfg = runs.join("configs/Pendulum-v1-ds-s1.json");
    let o = ds_td3(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        reference.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        evaluations(&runs.join("Pendulum-v1-ds-s1")),
        evaluations(&reference)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn report_tells_the_bias_corrections_apart() {
    let root = temp_dir("bias");
    let runs = root.join("runs");
    let rows = [(-1000.0, 0), (-800.0, 100), (-600.0, 200), (-400.0, 300)];
    synthetic_run(&runs, Algo::Dense, 0, 1000, &rows);
    synthetic_run(&runs, Algo::Ds, 0, 1000, &rows);
    synthetic_run(&runs, Algo::Ds, 1, 1000, &rows);
    // Seed 1 ran with the other bias correction (its directory name does not say so).
    let path = runs.join("ds-e1000-s1/config.json");
    let mut c: Config = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    c.bias_correction = sparse_core::BiasCorrection::Network;
    std::fs::write(&path, serde_json::to_string(&c).unwrap()).unwrap();
    let out = root.join("out");
    report_ok(&runs, &out);
    let mut labels: Vec<String> = csv_rows(&out.join("table1.csv"))
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            "dense",
            "ds bias correction per connection",
            "ds bias correction per network"
        ]
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn report_flags_a_row_cut_inside_its_last_field() {
    let root = temp_dir("cut");
    let runs = root.join("runs");
    let rows = [(-1000.0, 0), (-800.0, 100), (-600.0, 200), (-400.0, 300)];
    synthetic_run(&runs, Algo::Dense, 0, 1000, &rows);
    synthetic_run(&runs, Algo::Dense, 1, 1000, &rows);
    // Seed 1's last row lost its final characters and line break: "…,-40" of "…,-400\n".
    let path = runs.join("dense-e1000-s1/evaluations.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 2]).unwrap();
    let out = root.join("out");
    report_ok(&runs, &out);
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("dense-e1000-s1: malformed evaluations.csv (line 5: cut off, no line break)"),
        "{md}"
    );
    let t1 = csv_rows(&out.join("table1.csv"));
    assert_eq!(t1.iter().find(|r| r[1] == "dense").unwrap()[2], "1");
    std::fs::remove_dir_all(&root).unwrap();
}
