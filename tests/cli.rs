//! The `ds-td3` binary end to end: help, version, and the network report.

use std::process::{Command, Output};

fn ds_td3(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ds-td3"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn version_and_help() {
    let v = ds_td3(&["--version"]);
    assert!(v.status.success());
    assert_eq!(
        stdout(&v).trim(),
        format!("ds-td3 {}", env!("CARGO_PKG_VERSION"))
    );
    let h = ds_td3(&["--help"]);
    assert!(h.status.success());
    assert!(stdout(&h).contains("networks"));
}

#[test]
fn networks_reports_the_papers_connection_counts() {
    // Hopper (11 obs, 3 actions) at λ1 = 7, λ2 = 64: the paper's 105 233; dense 207 872.
    let o = ds_td3(&["networks", "--obs-dim", "11", "--act-dim", "3"]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("total: 105233 live connections"),
        "{}",
        stdout(&o)
    );
    let o = ds_td3(&["networks", "--obs-dim", "17", "--act-dim", "6", "--dense"]);
    assert!(
        stdout(&o).contains("total: 214784 live connections"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let o = ds_td3(&[
        "networks",
        "--obs-dim",
        "11",
        "--act-dim",
        "3",
        "--lambda1=-2",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("λ must be a positive finite number"), "{err}");
    let o = ds_td3(&["networks", "--obs-dim", "0", "--act-dim", "3"]);
    assert!(!o.status.success());
}
