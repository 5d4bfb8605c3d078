//! Visible skips, shared by the workspace's test crates: each includes this one file with
//! `#[path]` (no crate to publish, no dependency).
//!
//! The test harness captures what a test prints with `print!`/`eprint!` (and threads it
//! spawns) and shows it only when the test fails, so a skip reported that way vanishes from a
//! passing run. [`skip`] writes to the process's standard error through `std::io::stderr()`,
//! which the harness does not capture: the line shows in plain `cargo test` output.
//!
//! A skip governed by an environment variable (`DS_TD3_REQUIRE_NVRTC`, `DS_TD3_REQUIRE_GPU`) fails
//! instead when the variable is `1`, so a machine set up for the check cannot skip it.

// Each test crate uses part of this file.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write;
use std::sync::Mutex;

/// Makes GPU tests fail rather than skip when this machine has no GPU (`1`);
/// `scripts/gpu-check.sh` sets it.
pub const REQUIRE_GPU: &str = "DS_TD3_REQUIRE_GPU";

/// Makes the PTX test fail rather than skip without NVRTC (`1`); `.ci/run` sets it.
pub const REQUIRE_NVRTC: &str = "DS_TD3_REQUIRE_NVRTC";

/// Reports, past the test harness's capture, that `what` did not run and why: one line
/// `SKIPPED <what>: <why>` on standard error, written once per test binary however often the
/// same skip is met.
pub fn skip(what: &str, why: impl Display) {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let line = format!("SKIPPED {what}: {why}");
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&line) {
        let _ = writeln!(std::io::stderr(), "{line}");
        seen.push(line);
    }
}

/// Whether the environment variable `var` is `1`.
pub fn required(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| v == "1")
}

/// [`skip`], or a failure naming `var` when `var` is `1`.
pub fn skip_unless_required(var: &str, what: &str, why: impl Display) {
    assert!(!required(var), "{var}=1 but {what} cannot run: {why}");
    skip(what, why);
}

/// The GPU `opened` holds, for the GPU half of a test named `what`. An error that `no_gpu`
/// says means "no GPU on this machine" (no driver, no device) skips that half visibly, or
/// fails it under [`REQUIRE_GPU`]`=1`; any other error (a device that will not open, NVRTC or
/// cuBLAS failing) fails the test.
pub fn gpu<T, E: Display>(
    what: &str,
    opened: Result<T, E>,
    no_gpu: impl FnOnce(&E) -> bool,
) -> Option<T> {
    match opened {
        Ok(gpu) => Some(gpu),
        Err(e) if no_gpu(&e) => {
            skip_unless_required(REQUIRE_GPU, what, e);
            None
        }
        Err(e) => panic!("{what}: this machine has a GPU driver but the GPU is unusable: {e}"),
    }
}

/// Reports a result worth seeing in a passing run (a count, a measured figure) past the test
/// harness's capture: one line `<what>: <message>` on standard error.
pub fn note(what: &str, message: impl Display) {
    let _ = writeln!(std::io::stderr(), "{what}: {message}");
}
