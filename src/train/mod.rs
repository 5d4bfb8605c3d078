//! `ds-td3 train`: configure, start or resume a run, report progress, checkpoint.
//!
//! The stages: [`args`] (the command line), [`setup`] (configuration, run directory, trainer),
//! [`console`] (what is printed), the training loop here (checkpoint segments, logs, progress),
//! and [`log`] (the log records and the summary).

mod args;
mod console;
mod log;
mod setup;

use std::time::{Duration, Instant};

use td3::{Event, Trainer, checkpoint};

pub use args::{DeviceArg, TrainArgs};

use crate::interrupt::StopFlag;
use crate::progress::Progress;
use crate::run_dir::{Logs, RunDir};

/// Runs `ds-td3 train`.
pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (dir, _lock, mut trainer) = setup::start(args)?;
    if !args.quiet {
        if args.resume.is_some() {
            println!("resuming at step {}", trainer.step());
        }
        console::print_start(&trainer, &dir);
    }
    for w in trainer.config().warnings() {
        eprintln!("warning: {w}");
    }
    let stop = StopFlag::on_signals(|_| ())?;
    let started = (Instant::now(), trainer.step());
    let evolution = train(&mut trainer, &dir, args, &stop)?;
    if !trainer.is_finished() {
        console::print_interrupted(&trainer, &dir);
        return Err(stop.interrupted().into());
    }
    let summary = log::summary(&trainer, started, evolution);
    dir.write_summary(&summary)?;
    console::print_done(&trainer, &dir, &summary);
    Ok(())
}

/// Trains until the run is finished or `stop` is raised, in segments of `--checkpoint-every`
/// steps, each ended by a checkpoint; logs and progress follow the trainer's events. Returns the
/// network evolutions of this session and the seconds they took.
fn train(
    trainer: &mut Trainer,
    dir: &RunDir,
    args: &TrainArgs,
    stop: &StopFlag,
) -> anyhow::Result<(u64, f64)> {
    let mut evolution = (0u64, 0.0f64);
    let mut logs = Logs::open(
        dir,
        trainer.step(),
        trainer.evaluations(),
        trainer.config().eval_episodes,
    )?;
    let total = trainer.config().steps;
    let mut progress = Progress::new(total, trainer.step(), args.quiet, true);
    let every = args.checkpoint_every;
    // At least one segment, so that even a zero-step run records its initial evaluation.
    loop {
        let next = (trainer.step() / every + 1) * every;
        let mut observe = |event: Event<'_>| -> td3::Result<()> {
            let io = |e: anyhow::Error| td3::Error::Checkpoint(format!("{e:#}"));
            for r in log::records(&event) {
                logs.record(r).map_err(io)?;
            }
            match event {
                Event::Evaluation(e) => {
                    logs.evaluation(e).map_err(io)?;
                    let msg = format!("eval {:.1} ± {:.1}", e.mean, e.std);
                    if let Some(line) = progress.show(e.step, msg.clone(), Duration::ZERO) {
                        println!(
                            "step {}/{total}  {:.0} steps/s  ETA {:.0} s  {msg}",
                            e.step, line.rate, line.eta
                        );
                    }
                }
                Event::Iteration { step, report } => {
                    for (_, stats) in &report.evolutions {
                        evolution.0 += 1;
                        evolution.1 += stats.seconds;
                    }
                    progress.step(step)
                }
                Event::Episode { step, .. } | Event::Buffer { step, .. } => progress.step(step),
            }
            Ok(())
        };
        trainer.run_until(next, &mut observe, &|| stop.is_raised())?;
        logs.sync()?;
        checkpoint::save(trainer, &dir.latest_checkpoint())?;
        if trainer.is_finished() || stop.is_raised() {
            break;
        }
    }
    progress.finish();
    Ok(evolution)
}
