//! `ds-td3`: the command-line front end of the workspace.
//!
//! `ds-td3 --env Hopper-v3` trains DS-TD3 with the paper's settings; `ds-td3 --help` lists the
//! other commands (evaluation, export of a policy, task list, network report, golden replays, benchmarks).
//!
//! Every command returns an [`anyhow::Result`]; [`run`] and [`main`] decide the exit status in
//! one place: 0 on success, 128 + the signal's number when a signal stopped a run (130 for
//! Ctrl-C, 143 for SIGTERM, 129 for SIGHUP; [`interrupt::Interrupted`]), 1 with the error and its
//! causes on stderr otherwise.

use std::process::ExitCode;

use clap::Parser;

mod bench;
mod cli;
mod eval;
mod export;
mod flops;
mod interrupt;
mod networks;
mod plot;
mod progress;
#[cfg(feature = "mujoco")]
mod replay;
mod report;
mod run_dir;
mod sweep;
mod train;

fn main() -> ExitCode {
    // Output piped into a program that stops reading (`ds-td3 bench | head`) ends this process
    // quietly, as for other command-line tools, instead of a panic on the failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run() {
        Ok(code) => code,
        Err(e) if e.is::<interrupt::Interrupted>() => {
            let signal = e
                .downcast_ref::<interrupt::Interrupted>()
                .map(|i| i.exit_status());
            ExitCode::from(signal.unwrap_or(130))
        }
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs the command.
fn run() -> anyhow::Result<ExitCode> {
    let args = cli::Cli::parse();
    warn_if_unoptimised();
    cli::run(args)?;
    Ok(ExitCode::SUCCESS)
}

/// An error and its causes, outermost first, joined by `: `; a cause whose text its outer
/// message already includes (`"{path}: {source}"`) is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Says on stderr that this binary's own code was built without optimisation (the numeric
/// crates are optimised even in dev builds, see Cargo.toml, but a release build is faster still).
fn warn_if_unoptimised() {
    if cfg!(debug_assertions) && option_env!("DS_TD3_OPT_LEVEL") == Some("0") {
        eprintln!(
            "warning: this ds-td3 is a debug build (its own code unoptimised); for full speed use \
             `cargo run --release -p ds-td3 -- …`"
        );
    }
}
