//! Running the `ds-td3` binary from an integration test, and reading what it printed.

#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `ds-td3` binary this test was built with, to completion.
pub fn ds_td3(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ds-td3"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// What a run printed on standard output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What a run printed on standard error.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
