//! `ds-td3 export`, `ds-td3 eval --policy` and `ds-td3 act` end to end: an exported policy
//! gives exactly the returns of its run directory, Python (safetensors + scipy.sparse + numpy,
//! `tests/python/roundtrip.py`) reproduces its actions, and bad files and arguments are clear
//! errors.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/skip.rs"]
mod skip;

#[path = "support/bin.rs"]
mod bin;
use bin::{ds_td3, stderr, stdout};

/// Makes the Python round trip fail rather than skip when python3 or its packages (safetensors,
/// numpy, scipy) are missing (`1`); `.ci/run` sets it.
const REQUIRE_PYTHON: &str = "DS_TD3_REQUIRE_PYTHON";

/// Runs `args`, which must succeed; returns its standard output.
fn ok(args: &[&str]) -> String {
    let o = ds_td3(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

/// Runs `args`, which must fail cleanly with a message containing `message`.
fn fails(args: &[&str], message: &str) {
    let o = ds_td3(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        err.contains(message),
        "{args:?}: {err:?} should say {message:?}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ds-td3-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A short Pendulum run of `algo` (hidden width 64) in `dir/run`.
fn train(dir: &Path, algo: &str) -> String {
    let run = dir.join("run");
    let run = run.to_str().unwrap().to_string();
    ok(&[
        "--env",
        "Pendulum-v1",
        "--algo",
        algo,
        "--steps",
        "400",
        "--start-steps",
        "200",
        "--eval-every",
        "200",
        "--eval-episodes",
        "1",
        "--hidden",
        "64",
        "--evolution-period",
        "50",
        "--seed",
        "5",
        "--out",
        &run,
        "-q",
    ]);
    run
}

/// Every line of an `eval` output but the first (which names the source): the returns.
fn returns(eval_output: &str) -> Vec<String> {
    eval_output.lines().skip(1).map(str::to_string).collect()
}

/// 64 observations of width `d`, spread over and beyond typical ranges, one per line.
fn write_observations(path: &Path, d: u32) {
    let mut text = String::from("# one observation per line\n");
    for i in 0..64u32 {
        let row: Vec<String> = (0..d)
            .map(|f| {
                let x = ((i * d + f) as f32 * 0.618_034).fract() * 2.0 - 1.0;
                format!("{:?}", x * (1.2 + (f % 3) as f32 * 4.0))
            })
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Our actions for 64 observations of width `d` (`ds-td3 act`), and Python's from the same
/// file.
fn act_and_python(what: &str, dir: &Path, file: &Path, d: u32, bound: f32) {
    let obs = dir.join("obs.csv");
    write_observations(&obs, d);
    let out = file.to_str().unwrap();
    let actions = ok(&["act", "--policy", out, "--obs", obs.to_str().unwrap()]);
    assert_eq!(actions.lines().count(), 64);
    assert!(
        actions.lines().all(|l| l
            .split(',')
            .all(|a| a.parse::<f32>().is_ok_and(|a| a.abs() <= bound))),
        "{actions}"
    );
    let actions_file = dir.join("actions.csv");
    std::fs::write(&actions_file, actions).unwrap();
    python_round_trip(what, file, &obs, &actions_file);
}

/// Runs `tests/python/roundtrip.py` on a policy file, observations and `ds-td3 act`'s actions;
/// skips visibly (or fails under `DS_TD3_REQUIRE_PYTHON=1`) without python3 or its packages.
fn python_round_trip(what: &str, policy: &Path, obs: &Path, actions: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/roundtrip.py");
    let o = Command::new("python3")
        .arg(&script)
        .args([policy, obs, actions])
        .output();
    let o = match o {
        Ok(o) => o,
        Err(e) => {
            skip::skip_unless_required(REQUIRE_PYTHON, what, format!("python3: {e}"));
            return;
        }
    };
    match o.status.code() {
        Some(0) => skip::note(what, stdout(&o).trim()),
        Some(3) => skip::skip_unless_required(REQUIRE_PYTHON, what, stderr(&o).trim()),
        _ => panic!(
            "{what}: Python disagrees with ds-td3 act: {}{}",
            stdout(&o),
            stderr(&o)
        ),
    }
}

/// Export, eval both ways, act and the Python round trip for one algorithm.
fn export_round_trip(algo: &str) {
    let dir = temp_dir(algo);
    let run = train(&dir, algo);
    let file = dir.join("actor.safetensors");
    let out = file.to_str().unwrap();
    let text = ok(&["export", "--run", &run, "--out", out]);
    assert!(
        text.contains("Pendulum-v1") && text.contains("at step 400"),
        "{text}"
    );
    let kinds = if algo == "dense" {
        "3→64 dense 192, 64→64 dense 4096, 64→1 dense 64"
    } else {
        "sparse"
    };
    assert!(text.contains(kinds), "{text}");
    // SAC's actor has a mean and a log-std head; its policy keeps the mean's row.
    assert!(text.contains("64→1 dense 64; action bound ±2"), "{text}");

    // Never overwritten unless asked.
    let before = std::fs::read(&file).unwrap();
    fails(
        &["export", "--run", &run, "--out", out],
        "already exists; pass --force",
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    std::fs::write(&file, b"stale").unwrap();
    ok(&["export", "--run", &run, "--out", out, "--force"]);
    assert_eq!(std::fs::read(&file).unwrap().len(), before.len());

    // Exactly the returns of the run directory, every digit.
    let by_run = ok(&["eval", "--run", &run, "--episodes", "3", "--exact"]);
    let by_file = ok(&[
        "eval",
        "--policy",
        out,
        "--env",
        "Pendulum-v1",
        "--episodes",
        "3",
        "--exact",
    ]);
    assert_eq!(returns(&by_run), returns(&by_file), "{by_run}\n{by_file}");
    assert_eq!(returns(&by_run).len(), 4);
    assert!(
        by_file.contains(&format!("Pendulum-v1 {algo} seed 5")),
        "{by_file}"
    );
    // The file's task is the default, and another task is refused.
    let default_env = ok(&["eval", "--policy", out, "--episodes", "3", "--exact"]);
    assert_eq!(returns(&default_env), returns(&by_file));
    fails(
        &["eval", "--policy", out, "--env", "Hopper-v3"],
        "was trained on Pendulum-v1, not Hopper-v3",
    );

    act_and_python(
        &format!("export python round trip ({algo})"),
        &dir,
        &file,
        3,
        2.0,
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_ds_policy_exports_evaluates_identically_and_runs_in_python() {
    export_round_trip("ds");
}

#[test]
fn a_ds_sac_policy_exports_evaluates_identically_and_runs_in_python() {
    export_round_trip("ds-sac");
}

#[test]
fn a_dense_policy_exports_evaluates_identically_and_runs_in_python() {
    export_round_trip("dense");
}

#[test]
fn a_hopper_ds_policy_at_the_papers_shapes() {
    let what = "export hopper round trip";
    if !ok(&["envs"]).contains("Hopper-v3") {
        skip::skip(what, "built without the mujoco feature");
        return;
    }
    let dir = temp_dir("hopper");
    let run = dir.join("run");
    let run = run.to_str().unwrap();
    ok(&[
        "--env",
        "Hopper-v3",
        "--steps",
        "0",
        "--start-steps",
        "0",
        "--eval-episodes",
        "1",
        "--seed",
        "2",
        "--out",
        run,
        "-q",
    ]);
    let file = dir.join("actor.safetensors");
    let out = file.to_str().unwrap();
    let text = ok(&["export", "--run", run, "--out", out]);
    assert!(
        text.contains("11→256 sparse 1869, 256→256 sparse 32768, 256→3 dense 768"),
        "{text}"
    );
    let by_run = ok(&["eval", "--run", run, "--episodes", "2", "--exact"]);
    let by_file = ok(&[
        "eval",
        "--policy",
        out,
        "--env",
        "Hopper-v3",
        "--episodes",
        "2",
        "--exact",
    ]);
    assert_eq!(returns(&by_run), returns(&by_file), "{by_run}\n{by_file}");
    act_and_python(what, &dir, &file, 11, 1.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_files_and_arguments_are_clear_errors() {
    let dir = temp_dir("bad");
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();
    fails(
        &["export", "--run", &path("nowhere"), "--out", &path("a.st")],
        "nowhere",
    );
    assert!(!dir.join("a.st").exists());
    std::fs::write(dir.join("junk.safetensors"), b"\x10\0\0\0\0\0\0\0{\"a\":").unwrap();
    fails(
        &["eval", "--policy", &path("junk.safetensors")],
        "not a valid safetensors file",
    );
    fails(
        &[
            "act",
            "--policy",
            &path("missing.safetensors"),
            "--obs",
            &path("o.csv"),
        ],
        "missing.safetensors",
    );
    let o = ds_td3(&["eval", "--run", "x", "--policy", "y"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = ds_td3(&["eval", "--env", "Pendulum-v1"]);
    assert!(!o.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_teaches_the_file_layout() {
    let top = ok(&["--help"]);
    for cmd in ["export", "act"] {
        assert!(top.contains(cmd), "{top}");
    }
    let help = ok(&["export", "--help"]);
    for word in [
        "layers.i.indptr",
        "action_bound",
        "--force",
        "eval --policy",
    ] {
        assert!(help.contains(word), "{help}");
    }
}

#[test]
fn the_readme_shows_the_python_that_the_round_trip_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("tests/python/roundtrip.py")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let code = |text: &str, from: &str, to: &str| -> Vec<String> {
        let start = text.find(from).expect("start marker");
        let end = start + text[start..].find(to).expect("end marker");
        text[start..end]
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    let tested = code(&script, "def load_actor", "# --- end of the snippet");
    let shown = code(&readme, "def load_actor", "```");
    assert_eq!(
        tested, shown,
        "README.md and tests/python/roundtrip.py differ"
    );
}

#[test]
fn bench_times_batch_one_inference_sparse_against_dense() {
    let text = ok(&["bench", "--only", "inference", "--quick"]);
    assert!(
        text.contains("Inference: the exported actor's action for one observation"),
        "{text}"
    );
    // Hopper-v3 actors: dense 11·256 + 256·256 + 256·3 weights; DS at the paper's λ 35 405.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() == 6 && ["dense", "ds-paper", "ds-90%", "ds-95%"].contains(&f[0]))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert_eq!(rows[0][..3], ["dense", "100.0%", "69120"]);
    assert_eq!(rows[1][..3], ["ds-paper", "51.2%", "35405"]);
    assert_eq!(rows[0][5], "1.000");
    for row in &rows {
        let ratio: f64 = row[5].parse().unwrap();
        assert!(ratio > 0.0 && ratio.is_finite(), "{text}");
    }
    let o = ds_td3(&["bench", "--only", "inference", "--device", "emulator"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("measure the CPU"), "{}", stderr(&o));
}
