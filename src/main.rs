//! `ds-td3`: the command-line front end of the workspace.
//!
//! `ds-td3 --env Hopper-v3` trains DS-TD3 with the paper's settings; `ds-td3 --help` lists the
//! other commands (evaluation, task list, network report, golden replays, benchmarks).

use clap::Parser;

mod bench;
mod bench_gpu;
mod cli;
mod eval;
mod flops;
mod networks;
mod plot;
#[cfg(feature = "mujoco")]
mod replay;
mod report;
mod run_dir;
mod sweep;
mod train;

fn main() -> std::process::ExitCode {
    // Output piped into a program that stops reading (`ds-td3 bench | head`) ends this process
    // quietly, as for other command-line tools, instead of a panic on the failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    warn_if_unoptimised();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
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
